//! Records outside the config's grid get one rule in every command: kept in
//! the records file, left out of every summary, and named in a warning.

use std::path::Path;
use std::process::{Command, Output};

fn lrscape(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lrscape"))
        .args(args)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .output()
        .expect("lrscape runs")
}

fn lines(path: &Path) -> usize {
    std::fs::read_to_string(path).unwrap().lines().count()
}

#[test]
fn records_outside_the_grid_are_kept_and_left_out_of_every_summary() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let out_arg = out.to_str().unwrap();
    let trained = lrscape(&[
        "run",
        "--config",
        "configs/quick.toml",
        "--out",
        out_arg,
        "--methods",
        "lora",
        "--ranks",
        "2",
        "--lrs",
        "3e-2,1e-2",
        "--pretrain-epochs",
        "1",
    ]);
    assert!(
        trained.status.success(),
        "{}",
        String::from_utf8_lossy(&trained.stderr)
    );
    assert_eq!(lines(&out.join("trials.jsonl")), 2);

    // The same setup with a narrower grid: one of the two LRs.
    let quick = std::fs::read_to_string("../../configs/quick.toml").unwrap();
    let narrow = quick
        .replace("lrs = [3e-2, 1e-2, 3e-3, 1e-3]", "lrs = [3e-2]")
        .replace("\"lora\", \"dora\", \"pissa\", \"full\"", "\"lora\"")
        .replace("ranks = [2, 4]", "ranks = [2]")
        .replace("parity_rank = 4", "parity_rank = 2")
        .replace("epochs = 6", "epochs = 1");
    let config = dir.path().join("narrow.toml");
    std::fs::write(&config, narrow).unwrap();
    let config_arg = config.to_str().unwrap();
    let note = "1 of 2 records in";
    for command in ["run", "status", "merge", "report"] {
        let run = lrscape(&[command, "--config", config_arg, "--out", out_arg]);
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(run.status.success(), "{command}: {stderr}");
        assert!(
            stderr.contains(note) && stderr.contains("lie outside the config's grid"),
            "{command}: {stderr}"
        );
        // Kept: nothing is deleted from the records.
        assert_eq!(lines(&out.join("trials.jsonl")), 2, "{command}");
        // Left out: the derived table holds the grid's one trial.
        assert_eq!(lines(&out.join("trials.csv")), 1 + 1, "{command}");
    }
    let status = lrscape(&["status", "--config", config_arg, "--out", out_arg]);
    assert!(String::from_utf8_lossy(&status.stdout).contains("1/1"));
}
