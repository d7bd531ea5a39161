//! Sharded sweeps as separate `lrscape` processes on configs/quick.toml:
//! 3 shards merged equal a single-process run; shards killed with SIGKILL at
//! several times and rerun merge to the same result; a cut last line of a
//! shard file is recovered.
//!
//! One fixture (base, single-process reference, 3-shard run) is shared by
//! the tests of this file: pre-training and the reference are the slow part.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use records::TrialRecord;
use sweep::layout::Shard;
use sweep::store::same_result;

const EXE: &str = env!("CARGO_BIN_EXE_lrscape");
const DERIVED_JSON: [&str; 2] = ["rank_x_lr_results.json", "lr_sweep_results.json"];

struct Fixture {
    _root: tempfile::TempDir,
    config: PathBuf,
    base: PathBuf,
    reference: PathBuf,
    sharded: PathBuf,
    /// Wall seconds of each shard process of the 3-shard run.
    shard_seconds: Vec<f64>,
    /// stderr of a second process started on a running shard.
    second_on_shard: Output,
    /// stderr of a shard started before the base existed.
    without_base: Output,
}

fn lrscape(args: &[&str]) -> Command {
    let mut command = Command::new(EXE);
    command
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn ok(output: Output) -> Output {
    assert!(
        output.status.success(),
        "lrscape failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A fresh output directory holding a copy of the shared base.
fn with_base(fixture_base: &Path, dir: &Path) {
    for entry in walk(fixture_base) {
        let target = dir.join(entry.strip_prefix(fixture_base).unwrap());
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::copy(&entry, &target).unwrap();
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            files.extend(walk(&p));
        } else {
            files.push(p);
        }
    }
    files
}

fn records(file: &Path) -> Vec<TrialRecord> {
    std::fs::read_to_string(file)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let root = tempfile::tempdir().unwrap();
        // quick.toml with the thread count fixed: populations are split by
        // it, and identical splits give bit-identical results.
        let quick = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/quick.toml"),
        )
        .unwrap()
        .replace("[run]\n", "[run]\nthreads = 2\n");
        let config = root.path().join("quick.toml");
        std::fs::write(&config, quick).unwrap();
        let cfg = path(&config);

        let base = root.path().join("base-only");
        ok(
            lrscape(&["pretrain", "--config", cfg, "--out", path(&base)])
                .output()
                .unwrap(),
        );

        let reference = root.path().join("single");
        with_base(&base, &reference);
        ok(
            lrscape(&["run", "--config", cfg, "--out", path(&reference)])
                .output()
                .unwrap(),
        );

        let sharded = root.path().join("sharded");
        // A shard never pre-trains: without a base it names the job to run.
        let without_base = lrscape(&[
            "run",
            "--config",
            cfg,
            "--out",
            path(&sharded),
            "--shard",
            "0/3",
        ])
        .output()
        .unwrap();
        with_base(&base, &sharded);
        let started = Instant::now();
        let mut children: Vec<_> = (0..3)
            .map(|i| {
                lrscape(&[
                    "run",
                    "--config",
                    cfg,
                    "--out",
                    path(&sharded),
                    "--shard",
                    &format!("{i}/3"),
                ])
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(root.path().join(format!("shard-{i}.log"))).unwrap())
                .spawn()
                .unwrap()
            })
            .collect();
        // A second process on a running shard is refused.
        let lock = sharded.join(Shard { index: 0, count: 3 }.lock_file());
        while sweep::lock::holder(&lock).is_none() && started.elapsed() < Duration::from_secs(60) {
            std::thread::sleep(Duration::from_millis(20));
        }
        let second_on_shard = lrscape(&[
            "run",
            "--config",
            cfg,
            "--out",
            path(&sharded),
            "--shard",
            "0/3",
        ])
        .output()
        .unwrap();
        let mut shard_seconds = vec![0.0; 3];
        let mut pending: Vec<usize> = (0..3).collect();
        while !pending.is_empty() {
            pending.retain(|&i| match children[i].try_wait().unwrap() {
                Some(status) => {
                    assert!(
                        status.success(),
                        "shard {i}/3 failed: {}",
                        std::fs::read_to_string(root.path().join(format!("shard-{i}.log")))
                            .unwrap_or_default()
                    );
                    shard_seconds[i] = started.elapsed().as_secs_f64();
                    false
                }
                None => true,
            });
            std::thread::sleep(Duration::from_millis(50));
        }
        Fixture {
            _root: root,
            config,
            base,
            reference,
            sharded,
            shard_seconds,
            second_on_shard,
            without_base,
        }
    })
}

fn merge(out: &Path, cfg: &Path) -> Output {
    lrscape(&["merge", "--config", path(cfg), "--out", path(out)])
        .output()
        .unwrap()
}

/// The merged directory's derived JSON equals the single-process run's,
/// byte for byte, and its records hold the same results.
fn assert_same_as_reference(f: &Fixture, out: &Path) {
    for name in DERIVED_JSON {
        assert_eq!(
            std::fs::read_to_string(out.join(name)).unwrap(),
            std::fs::read_to_string(f.reference.join(name)).unwrap(),
            "{name} of {} differs from the single-process run",
            out.display()
        );
    }
    let merged = records(&out.join("trials.jsonl"));
    let single = records(&f.reference.join("trials.jsonl"));
    assert_eq!(merged.len(), single.len(), "nothing lost, nothing twice");
    for (m, s) in merged.iter().zip(&single) {
        assert!(
            same_result(m, s),
            "{} r={} lr={}: merged record differs",
            m.method,
            m.rank,
            m.lr
        );
    }
}

#[test]
fn three_shard_processes_merge_to_the_single_process_result() {
    let f = fixture();
    let err = stderr(&f.without_base);
    assert!(!f.without_base.status.success());
    assert!(
        err.contains("lrscape pretrain --config") && err.contains("pretrain job"),
        "{err}"
    );
    let err = stderr(&f.second_on_shard);
    assert!(!f.second_on_shard.status.success());
    assert!(
        err.contains("shard 0/3") && err.contains("already running"),
        "{err}"
    );
    eprintln!("shard wall seconds: {:?}", f.shard_seconds);

    // Each shard wrote only its own file; the derived files wait for merge.
    for i in 0..3 {
        let shard = Shard { index: i, count: 3 };
        assert!(f.sharded.join(shard.records_file()).exists());
        assert_eq!(
            sweep::lock::holder(&f.sharded.join(shard.lock_file())),
            None,
            "lock released"
        );
    }
    assert!(!f.sharded.join("rank_x_lr_results.json").exists());

    let status = ok(lrscape(&[
        "status",
        "--config",
        path(&f.config),
        "--out",
        path(&f.sharded),
    ])
    .output()
    .unwrap());
    let status = String::from_utf8_lossy(&status.stdout).into_owned();
    assert!(status.contains("28/28 trials recorded"), "{status}");
    for line in ["0/3", "1/3", "2/3"] {
        assert!(
            status
                .lines()
                .any(|l| l.starts_with(line) && l.ends_with("done")),
            "{status}"
        );
    }

    let merged = ok(merge(&f.sharded, &f.config));
    let text = String::from_utf8_lossy(&merged.stdout).into_owned();
    assert!(
        text.contains("every cell of the grid is complete"),
        "{text}"
    );
    assert_same_as_reference(f, &f.sharded);
    // Merging again changes nothing (trials.jsonl's copies are dropped).
    let again = ok(merge(&f.sharded, &f.config));
    assert!(String::from_utf8_lossy(&again.stdout).contains("28 duplicates dropped"));
    assert_same_as_reference(f, &f.sharded);
}

#[test]
fn killed_shards_rerun_to_the_uninterrupted_result() {
    let f = fixture();
    let victim = Shard { index: 1, count: 3 };
    // Kill times: once the shard holds its lock (before any record), after
    // its first records, after its first cell; each plus a seeded delay of
    // up to 0.4 s.
    let mut seed = 0x5EED_u64;
    for (case, after_records) in [0usize, 2, 4].into_iter().enumerate() {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let delay = Duration::from_millis((seed >> 33) % 400);
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path();
        with_base(&f.base, out);
        for other in [0, 2] {
            let file = Shard {
                index: other,
                count: 3,
            }
            .records_file();
            std::fs::copy(f.sharded.join(&file), out.join(&file)).unwrap();
        }
        let args = [
            "run",
            "--config",
            path(&f.config),
            "--out",
            path(out),
            "--shard",
            "1/3",
        ];
        let file = out.join(victim.records_file());
        let lock = out.join(victim.lock_file());
        let started = Instant::now();
        let mut child = lrscape(&args).spawn().unwrap();
        loop {
            let lines = std::fs::read_to_string(&file).map_or(0, |t| t.lines().count());
            if sweep::lock::holder(&lock).is_some() && lines >= after_records {
                break;
            }
            assert!(
                child.try_wait().unwrap().is_none(),
                "case {case}: the shard ended before {after_records} records"
            );
            assert!(started.elapsed() < Duration::from_secs(120));
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(delay);
        child.kill().unwrap(); // SIGKILL
        let killed_at = started.elapsed().as_secs_f64();
        let killed = child.wait_with_output().unwrap();
        assert!(!killed.status.success(), "case {case}: killed");
        if case == 1 {
            // A kill between the appends of two populations of one cell
            // (drop the last record: its population is then half recorded),
            // and a crash in the middle of writing a record (half a line).
            let text = std::fs::read_to_string(&file).unwrap_or_default();
            let mut lines: Vec<&str> = text.split_inclusive('\n').collect();
            lines.pop();
            let mut text = lines.concat();
            text.push_str("{\"experiment\":\"quick\",\"meth");
            std::fs::write(&file, text).unwrap();
        }
        // Complete records only (a kill may cut the last one short).
        let before = std::fs::read_to_string(&file).map_or(0, |t| t.matches('\n').count());
        let rerun = ok(lrscape(&args).output().unwrap());
        let err = stderr(&rerun);
        if case == 1 {
            assert!(err.contains("cut short"), "case {case}: {err}");
        }
        assert_eq!(
            sweep::lock::holder(&out.join(victim.lock_file())),
            None,
            "case {case}: the rerun released the lock"
        );
        let shard_records = records(&file);
        let keys: std::collections::HashSet<_> = shard_records.iter().map(|t| t.key()).collect();
        assert_eq!(
            keys.len(),
            shard_records.len(),
            "case {case}: no duplicates"
        );
        eprintln!(
            "case {case}: killed after {:.1}s with {before} records; rerun recorded {}",
            killed_at,
            shard_records.len() - before
        );
        ok(merge(out, &f.config));
        assert_same_as_reference(f, out);
    }
}

#[test]
fn merge_refuses_conflicting_duplicates_and_lists_missing_cells_per_shard() {
    let f = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path();
    // Only shard 0 of 3 recorded: merge says what is missing, per shard.
    let file = Shard { index: 0, count: 3 }.records_file();
    std::fs::copy(f.sharded.join(&file), out.join(&file)).unwrap();
    let partial = merge(out, &f.config);
    assert!(!partial.status.success());
    let text = String::from_utf8_lossy(&partial.stdout).into_owned();
    assert!(text.contains("shard 1/3: 2 cell(s) missing"), "{text}");
    assert!(text.contains("shard 2/3: 2 cell(s) missing"), "{text}");
    assert!(!text.contains("shard 0/3"), "{text}");
    assert!(text.contains("--shard 1/3`"), "{text}");
    // The same trial with another result in another file is refused.
    let mut other = records(&out.join(&file));
    other.truncate(1);
    other[0].val_accuracy = 0.123;
    let line = serde_json::to_string(&other[0]).unwrap() + "\n";
    std::fs::write(out.join(Shard { index: 1, count: 3 }.records_file()), line).unwrap();
    let err = stderr(&merge(out, &f.config));
    assert!(err.contains("conflicting records"), "{err}");
}
