//! Helpers shared by the binary's integration tests (each test binary uses
//! some of them).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository's root: where the binary runs and fixtures lie.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `lrscape ARGS`, run in the repository's root.
pub fn lrscape(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lrscape"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("lrscape runs")
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `out`, which must have succeeded.
pub fn succeeded(out: Output) -> Output {
    assert!(out.status.success(), "{}", stderr(&out));
    out
}

/// The error of `out`, which must have failed without a panic.
pub fn failure(out: &Output) -> String {
    assert!(!out.status.success());
    let err = stderr(out);
    assert!(!err.contains("panicked"), "{err}");
    err
}

/// The JSON object a successful command printed as its last line.
pub fn last_json(out: Output) -> serde_json::Value {
    let stdout = String::from_utf8(succeeded(out).stdout).unwrap();
    serde_json::from_str(stdout.lines().last().unwrap()).unwrap()
}

/// `lrscape COMMAND --config CONFIG --out OUT`.
pub fn study(command: &str, config: &Path, out: &Path) -> Output {
    lrscape(&[
        command,
        "--config",
        config.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ])
}

/// The error of `lrscape COMMAND` on the config `text`, written in `dir`.
pub fn config_failure(command: &str, dir: &Path, text: &str) -> String {
    let config = dir.join("c.toml");
    std::fs::write(&config, text).unwrap();
    failure(&study(command, &config, &dir.join("out")))
}

/// The JSON object a reference script (`tools/golden/…`, run by
/// `LRSCAPE_PYTHON`, else `python3`, in the repository's root) printed as
/// its last line.
pub fn python_json(script: &str, args: &[&str]) -> serde_json::Value {
    let python = std::env::var("LRSCAPE_PYTHON").unwrap_or_else(|_| "python3".into());
    last_json(
        Command::new(python)
            .arg(script)
            .args(args)
            .current_dir(root())
            .output()
            .expect("python runs"),
    )
}

/// The text of the config at `path` (from the repository's root) with its
/// relative paths (`"../…"`) made absolute, so a copy elsewhere reads the
/// same files.
pub fn absolute_config(path: &str) -> String {
    let file = root().join(path);
    let dir = file.parent().unwrap().display().to_string();
    std::fs::read_to_string(&file)
        .unwrap()
        .replace("\"../", &format!("\"{dir}/../"))
}

/// `ours` and `want` (JSON numbers) within 1e-5.
pub fn near(ours: &serde_json::Value, want: &serde_json::Value, what: &str) {
    let (a, b) = (ours.as_f64().unwrap(), want.as_f64().unwrap());
    assert!((a - b).abs() < 1e-5, "{what}: {a} vs {b}");
}

/// Copies every file under `from` to the same place under `to`.
pub fn copy_dir(from: &Path, to: &Path) {
    for file in files(from) {
        let target = to.join(&file);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::copy(from.join(&file), target).unwrap();
    }
}

pub fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The records of a results directory.
pub fn trials(out: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(out.join("trials.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The one entry of a directory (a cell's one member, a run's one base).
pub fn only_entry(dir: &Path) -> PathBuf {
    let entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    entries[0].clone()
}

/// Every file under `dir`, relative to it, sorted.
pub fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(next) = todo.pop() {
        for entry in std::fs::read_dir(&next).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                todo.push(path);
            } else {
                out.push(path.strip_prefix(dir).unwrap().to_path_buf());
            }
        }
    }
    out.sort();
    out
}

/// A classification study's kept adapters (`save_adapters = "best"`, one
/// seed) for `methods`: each saved for `SEQ_CLS` with `heads` in
/// `modules_to_save`, and scoring on `model` (`lrscape eval --data`) what
/// its trial recorded.
pub fn kept_adapters_score_their_trials(
    out: &Path,
    methods: &[&str],
    heads: serde_json::Value,
    (model, data, max_length): (&str, &str, &str),
) {
    let trials = trials(out);
    for method in methods {
        let member = &only_entry(&out.join("adapters").join(format!("{method}-r-4")));
        let adapter = json(&member.join("adapter_config.json"));
        assert_eq!(adapter["task_type"], "SEQ_CLS");
        assert_eq!(adapter["modules_to_save"], heads);
        let name = member.file_name().unwrap().to_str().unwrap().to_string();
        let trial = trials
            .iter()
            .find(|t| {
                t["method"] == *method
                    && name == format!("lr{:.4e}-seed0", t["lr"].as_f64().unwrap())
            })
            .unwrap();
        let args = [
            "eval",
            "--model",
            model,
            "--adapter",
            member.to_str().unwrap(),
            "--data",
            data,
            "--max-length",
            max_length,
        ];
        let ours = last_json(lrscape(&args));
        near(&ours["loss"], &trial["val_loss"], method);
        assert_eq!(ours["accuracy"], trial["val_accuracy"], "{method}");
    }
}

/// Every adapter a classification study kept, scored by `lrscape eval
/// --data` and by `transformers` + `peft`
/// (tools/golden/peft_classify_eval.py) on `model`: the same loss and
/// accuracy. Returns how many were checked.
pub fn peft_scores_kept_adapters(
    out: &Path,
    (model, data, max_length): (&str, &str, &str),
) -> usize {
    let mut checked = 0;
    for cell in std::fs::read_dir(out.join("adapters")).unwrap() {
        for member in std::fs::read_dir(cell.unwrap().path()).unwrap() {
            let member = member.unwrap().path();
            let member = member.to_str().unwrap();
            let args = [
                "eval",
                "--model",
                model,
                "--adapter",
                member,
                "--data",
                data,
                "--max-length",
                max_length,
            ];
            let ours = last_json(lrscape(&args));
            let want = python_json(
                "tools/golden/peft_classify_eval.py",
                &[model, data, max_length, member],
            );
            near(&ours["loss"], &want["loss"], member);
            assert_eq!(ours["accuracy"], want["accuracy"], "{member}");
            checked += 1;
        }
    }
    checked
}
