//! `lrscape reproduce` on configs/quick.toml, run from a scratch directory
//! as a user runs it from a checkout: it trains into runs/<name>, leaves the
//! reference results/<name> alone, passes against an honest reference and
//! names the cell of a doctored one.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod common;

const EXE: &str = env!("CARGO_BIN_EXE_lrscape");

fn quick() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/quick.toml")
}

fn reproduce(dir: &Path, extra: &[&str]) -> Output {
    Command::new(EXE)
        .arg("reproduce")
        .arg("--config")
        .arg(quick())
        .args(extra)
        .current_dir(dir)
        .output()
        .unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Every file under `dir` with its bytes, sorted by path.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    common::files(dir)
        .into_iter()
        .map(|f| {
            let bytes = std::fs::read(dir.join(&f)).unwrap();
            (f, bytes)
        })
        .collect()
}

#[test]
fn reproduce_checks_the_run_against_the_reference_and_never_writes_it() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();

    // No reference yet: trains into runs/quick, says so, succeeds.
    let first = reproduce(dir, &[]);
    assert!(first.status.success(), "{}", text(&first));
    assert!(
        text(&first).contains("no reference at results/quick"),
        "{}",
        text(&first)
    );
    let run = dir.join("runs/quick");
    assert!(run.join("trials.jsonl").exists() && run.join("REPORT.md").exists());
    assert!(
        !dir.join("results").exists(),
        "reproduce wrote a reference unasked"
    );

    // An honest reference: every cell reproduces, nothing is trained again,
    // and the reference is left byte for byte as it was.
    let reference = dir.join("results/quick");
    std::fs::create_dir_all(&reference).unwrap();
    let records = std::fs::read_to_string(run.join("trials.jsonl")).unwrap();
    std::fs::write(reference.join("trials.jsonl"), &records).unwrap();
    let before = snapshot(&reference);
    let honest = reproduce(dir, &[]);
    assert!(honest.status.success(), "{}", text(&honest));
    assert!(
        text(&honest).contains("0 trials trained"),
        "{}",
        text(&honest)
    );
    assert!(
        text(&honest).contains("7 of 7 cells reproduce"),
        "{}",
        text(&honest)
    );
    assert!(
        text(&honest).contains("28 of 28 shared trials agree"),
        "{}",
        text(&honest)
    );
    assert_eq!(
        snapshot(&reference),
        before,
        "reproduce changed the reference"
    );

    // DoRA r=4's records doctored: that cell, and only that one, is named.
    let doctored: Vec<String> = records
        .lines()
        .map(|line| {
            let mut t: serde_json::Value = serde_json::from_str(line).unwrap();
            if t["method"] == "dora" && t["rank"] == 4 {
                t["val_accuracy"] = serde_json::json!(0.05);
            }
            t.to_string()
        })
        .collect();
    std::fs::write(reference.join("trials.jsonl"), doctored.join("\n") + "\n").unwrap();
    let failed = reproduce(dir, &[]);
    assert!(!failed.status.success(), "{}", text(&failed));
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(
        stderr.contains("1 of the reference's cells do not reproduce: DoRA r=4"),
        "{}",
        text(&failed)
    );
    assert!(
        text(&failed).contains("6 of 7 cells reproduce"),
        "{}",
        text(&failed)
    );

    // Asked to, it makes the run the reference.
    let updated = reproduce(dir, &["--update-reference"]);
    assert!(updated.status.success(), "{}", text(&updated));
    assert_eq!(
        std::fs::read_to_string(reference.join("trials.jsonl")).unwrap(),
        records
    );
    assert!(reference.join("REPORT.md").exists());

    // The reference itself is never the run's directory.
    let same = reproduce(dir, &["--out", "results/quick"]);
    assert!(!same.status.success());
    assert!(text(&same).contains("is the reference"), "{}", text(&same));
}
