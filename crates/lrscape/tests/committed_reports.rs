//! The committed studies are what the current code makes of their records:
//! `lrscape report` on a copy of every `results/<study>/` rewrites each
//! derived file, figure and REPORT.md byte for byte. A change to the
//! analysis, the figures or the report shows up here as the study files it
//! changes, to be committed with it.

use std::path::Path;
use std::process::Command;

mod common;
use common::{copy_dir, files, root};

const EXE: &str = env!("CARGO_BIN_EXE_lrscape");

/// The committed studies: `results/<name>/` with records, a report and
/// `configs/<name>.toml`.
fn studies() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(root().join("results"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("trials.jsonl").exists() && p.join("REPORT.md").exists())
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// The study a committed report compares with, as its heading names it
/// (`## Comparison with `default``).
fn compared_with(report: &str) -> Option<String> {
    let rest = report.split("## Comparison with `").nth(1)?;
    Some(rest.split('`').next()?.to_string())
}

#[test]
fn committed_reports_are_what_the_code_makes_of_their_records() {
    let names = studies();
    assert!(
        names.len() >= 6,
        "expected the committed studies under results/, found {names:?}"
    );
    let scratch = tempfile::tempdir().unwrap();
    let mut changed = Vec::new();
    for name in &names {
        let committed = root().join("results").join(name);
        let config = root().join("configs").join(format!("{name}.toml"));
        assert!(config.exists(), "results/{name} has no configs/{name}.toml");
        let copy = scratch.path().join(name);
        copy_dir(&committed, &copy);
        let report = std::fs::read_to_string(committed.join("REPORT.md")).unwrap();
        let mut command = Command::new(EXE);
        command.arg("report").arg("--config").arg(&config);
        command.arg("--out").arg(&copy);
        if let Some(other) = compared_with(&report) {
            command
                .arg("--compare")
                .arg(root().join("results").join(other));
        }
        let output = command.output().unwrap();
        assert!(
            output.status.success(),
            "lrscape report on results/{name}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let before = files(&committed);
        let after = files(&copy);
        assert_eq!(before, after, "results/{name}: files added by the report");
        for file in &before {
            if std::fs::read(committed.join(file)).unwrap()
                != std::fs::read(copy.join(file)).unwrap()
            {
                changed.push(format!("results/{name}/{}", file.display()));
            }
        }
    }
    assert!(
        changed.is_empty(),
        "the current code makes other files of the committed records (rerun `lrscape \
         report` on each study and commit them if the change is meant): {changed:?}"
    );
}

/// Config hashes are part of the record: a change to what is hashed (a new
/// config key, a family) must leave every committed config's hash as its
/// records have it, or resuming and merging would treat them as another
/// experiment's.
#[test]
fn committed_records_carry_the_hash_of_their_config() {
    for name in studies() {
        let path = root().join("configs").join(format!("{name}.toml"));
        let Some(hash) = results_hash(&path) else {
            continue;
        };
        let text = std::fs::read_to_string(root().join("results").join(&name).join("trials.jsonl"))
            .unwrap();
        let hashes: std::collections::BTreeSet<String> = text
            .lines()
            .map(|line| {
                let record: serde_json::Value = serde_json::from_str(line).unwrap();
                record["config_hash"].as_str().unwrap().to_string()
            })
            .collect();
        assert_eq!(
            hashes.into_iter().collect::<Vec<_>>(),
            vec![hash],
            "results/{name}"
        );
    }
}

/// The results hash of the config at `path`, in its family. A text study's
/// hash covers its texts' bytes: the King James Bible's parts are written
/// first (tools/data/kjv.py) where missing; `None` (the study skipped) only
/// outside CI on a machine without the `bible` command.
fn results_hash(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).unwrap();
    let written = ["gospels-val.txt", "genre-pretrain-val.txt"]
        .iter()
        .all(|f| root().join("data/kjv").join(f).exists());
    if text.contains("\"../data/kjv/") && !written {
        let script = Command::new("python3")
            .args(["tools/data/kjv.py", "data/kjv"])
            .current_dir(root())
            .output()
            .expect("python3 runs");
        if !script.status.success() {
            let why = String::from_utf8_lossy(&script.stderr);
            assert!(std::env::var_os("CI").is_none(), "CI: {why}");
            eprintln!("skipped {}: {why}", path.display());
            return None;
        }
    }
    let table: toml::Table = toml::from_str(&text).unwrap();
    let family = table
        .get("model")
        .and_then(|m| m.get("family"))
        .and_then(|f| f.as_str());
    Some(match family {
        Some("gpt2") => sweep::ExperimentConfig::<gpt2::Gpt2Family>::from_toml_file(path)
            .unwrap()
            .results_hash(),
        Some("bert") => sweep::ExperimentConfig::<bert::BertFamily>::from_toml_file(path)
            .unwrap()
            .results_hash(),
        _ => sweep::ExperimentConfig::<tinyformer::TinyformerConfig>::from_toml_file(path)
            .unwrap()
            .results_hash(),
    })
}

/// The `| method | r = a | r = b |` tables of best accuracy @ best LR in
/// `text`: (label, rank, quoted cell) for each filled cell.
fn quoted_best_points(text: &str) -> Vec<(String, usize, String)> {
    let mut out = Vec::new();
    let mut ranks: Vec<usize> = Vec::new();
    for line in text.lines() {
        let cells: Vec<&str> = line
            .trim()
            .trim_matches('|')
            .split('|')
            .map(str::trim)
            .collect();
        if cells.first() == Some(&"method") {
            ranks = cells[1..]
                .iter()
                .filter_map(|c| c.strip_prefix("r = ").and_then(|r| r.parse().ok()))
                .collect();
            continue;
        }
        if !line.starts_with('|') {
            ranks.clear();
            continue;
        }
        for (cell, &rank) in cells[1..].iter().zip(&ranks) {
            if cell.contains(" @ ") {
                out.push((cells[0].to_string(), rank, cell.to_string()));
            }
        }
    }
    out
}

/// The tables of best points in the README and the study pages are what
/// the committed records give (mean over seeds at the best LR, by the
/// code's tie rule).
#[test]
fn quoted_best_points_are_the_records() {
    for (study, docs, cells) in [
        ("default", &["README.md", "docs/studies/default.md"][..], 13),
        ("variants", &["docs/studies/variants.md"][..], 25),
    ] {
        let path = root().join("results").join(study).join("trials.jsonl");
        let text = std::fs::read_to_string(path).unwrap();
        let trials: Vec<records::TrialRecord> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        check_quoted_best_points(&trials, docs, cells);
    }
}

fn check_quoted_best_points(trials: &[records::TrialRecord], docs: &[&str], cells: usize) {
    let curves = records::analysis::curves(trials);
    for &doc in docs {
        let quoted = quoted_best_points(&std::fs::read_to_string(root().join(doc)).unwrap());
        assert!(quoted.len() >= cells, "{doc}: found {quoted:?}");
        for (label, rank, cell) in quoted {
            let curve = curves
                .iter()
                .find(|c| {
                    records::method_label(&c.method) == label
                        && (c.rank == rank || (c.method == "full" && c.rank == 0))
                })
                .unwrap_or_else(|| panic!("{doc}: no cell {label} r={rank}"));
            let best = records::analysis::best_point(curve).unwrap();
            let expected = format!("{:.3} @ {:.1e}", best.mean, best.lr);
            assert_eq!(cell, expected, "{doc}: {label} r = {rank}");
        }
    }
}
