//! Two commands on one results directory, with the real binary: the second
//! writer is refused naming the first, and no record is lost or doubled.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const EXE: &str = env!("CARGO_BIN_EXE_lrscape");

fn quick() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/quick.toml")
}

fn lrscape(out: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(EXE);
    command
        .args(args)
        .arg("--config")
        .arg(quick())
        .arg("--out")
        .arg(out);
    command
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Waits until someone holds the lock at `path`.
fn wait_held(path: &Path) {
    let started = Instant::now();
    while sweep::lock::holder(path).is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{} never held",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn record_keys(path: &Path) -> (usize, usize) {
    let text = std::fs::read_to_string(path).unwrap();
    let keys: std::collections::HashSet<_> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<records::TrialRecord>(l)
                .unwrap()
                .key()
        })
        .collect();
    (text.lines().count(), keys.len())
}

#[test]
fn a_second_writer_is_refused_while_a_run_holds_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("quick");
    let mut first = lrscape(&out, &["run"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_held(&out.join(sweep::layout::LOCK));
    let holder = format!("lrscape run: pid {}", first.id());
    for args in [&["run"][..], &["merge"][..]] {
        let second = lrscape(&out, args).output().unwrap();
        assert!(!second.status.success(), "{args:?} beside a run succeeded");
        assert!(
            stderr(&second).contains(&format!("is locked by {holder}")),
            "{args:?}: {}",
            stderr(&second)
        );
    }
    // A shard beside the plain run is refused too.
    let shard = lrscape(&out, &["run", "--shard", "0/2"]).output().unwrap();
    assert!(!shard.status.success());
    assert!(
        stderr(&shard).contains("a shard beside it would train the same trials"),
        "{}",
        stderr(&shard)
    );
    assert!(first.wait().unwrap().success());
    // Every trial once.
    assert_eq!(record_keys(&out.join(sweep::layout::TRIALS)), (28, 28));
    // The lock went with the run: the next one takes it.
    let again = lrscape(&out, &["run"]).output().unwrap();
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(String::from_utf8_lossy(&again.stdout).contains("0 trials trained"));
    // With nothing left to train, no base is pre-trained (or even loaded).
    std::fs::remove_dir_all(out.join("base")).unwrap();
    let finished = lrscape(&out, &["run"]).output().unwrap();
    assert!(finished.status.success(), "{}", stderr(&finished));
    assert!(
        !out.join("base").exists(),
        "pre-trained a base it did not use"
    );
}

#[test]
fn a_plain_run_is_refused_beside_a_running_shard() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("quick");
    let pretrain = lrscape(&out, &["pretrain"]).output().unwrap();
    assert!(pretrain.status.success(), "{}", stderr(&pretrain));
    // Enough work (16 LRs × 2 seeds) that the shard is still running when
    // the other commands start, however fast the machine.
    let mut shard = lrscape(
        &out,
        &[
            "run", "--shard", "1/2", "--lrs", "paper16", "--seeds", "0,1",
        ],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let shard_lock = out.join(sweep::layout::Shard { index: 1, count: 2 }.lock_file());
    wait_held(&shard_lock);
    let plain = lrscape(&out, &["run"]).output().unwrap();
    assert!(
        !plain.status.success(),
        "a plain run beside a shard succeeded"
    );
    assert!(
        stderr(&plain).contains(&format!("shard 1/2 is running in {}", out.display())),
        "{}",
        stderr(&plain)
    );
    let same_shard = lrscape(&out, &["run", "--shard", "1/2"]).output().unwrap();
    assert!(
        stderr(&same_shard).contains("shard 1/2 is already running"),
        "{}",
        stderr(&same_shard)
    );
    assert!(shard.wait().unwrap().success());
    let file = out.join(sweep::layout::Shard { index: 1, count: 2 }.records_file());
    let (lines, keys) = record_keys(&file);
    assert_eq!(lines, keys, "a trial recorded twice");
}
