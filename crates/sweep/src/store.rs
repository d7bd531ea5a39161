//! What an output directory holds, read and written: the records
//! ([`TrialStore`], [`gather`]), the derived files ([`write_derived`]) and
//! the run log. File names come from [`crate::layout`].
//!
//! `trials.jsonl` holds one JSON line per finished trial, appended and
//! fsynced. Re-opening tolerates exactly what a crash can leave: a last line
//! cut short (no final newline) is dropped with a warning and cut from the
//! file; any other unreadable line is an error naming it, and the file is
//! left untouched.

use nn::ModelConfig;
use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use records::{
    SharpnessFile, TrialKey, TrialRecord, cell_curves, lr_sweep_results, rank_x_lr_results,
    trials_csv,
};
use serde::{Deserialize, Serialize};

use crate::config::ExperimentConfig;
use crate::layout::{self, Shard};

pub struct TrialStore {
    path: PathBuf,
    trials: Vec<TrialRecord>,
}

impl TrialStore {
    /// Opens (or starts) the store at `path`, cutting a cut-short last line
    /// from the file; returns warnings to show.
    pub fn open(path: &Path) -> anyhow::Result<(Self, Vec<String>)> {
        let (numbered, cut_at, mut warnings) = read_numbered(path)?;
        let mut records = Records::default();
        for (line, trial) in numbered {
            records.add(trial, || format!("{} line {line}", path.display()))?;
        }
        if records.duplicates > 0 {
            warnings.push(format!(
                "{} holds {} exact duplicate record(s) of trials recorded before it; \
                 each trial counts once",
                path.display(),
                records.duplicates
            ));
        }
        let trials = records.trials;
        if let Some(offset) = cut_at {
            let file = OpenOptions::new()
                .write(true)
                .open(path)
                .with_context(|| format!("cannot repair {}", path.display()))?;
            file.set_len(offset)?;
            file.sync_all()?;
            if let Some(w) = warnings.iter_mut().find(|w| w.contains("cut short")) {
                w.push_str("; dropped it, its trial will run again");
            }
        }
        Ok((
            Self {
                path: path.to_path_buf(),
                trials,
            },
            warnings,
        ))
    }

    pub fn trials(&self) -> &[TrialRecord] {
        &self.trials
    }

    pub fn done(&self) -> HashSet<TrialKey> {
        self.trials.iter().map(TrialRecord::key).collect()
    }

    /// Appends records and syncs them to disk before returning.
    pub fn append(&mut self, records: Vec<TrialRecord>) -> anyhow::Result<()> {
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut file: File = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .with_context(|| format!("cannot open {}", self.path.display()))?;
        let mut text = String::new();
        for record in &records {
            text.push_str(&serde_json::to_string(record)?);
            text.push('\n');
        }
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        self.trials.extend(records);
        Ok(())
    }
}

/// Reads the records of `path` without changing the file (safe while a run
/// appends to it): the trials, the offset of a cut-short last line if any,
/// and warnings. A missing file is an empty store.
pub fn read_trials(path: &Path) -> anyhow::Result<(Vec<TrialRecord>, Option<u64>, Vec<String>)> {
    let (numbered, cut_at, warnings) = read_numbered(path)?;
    Ok((
        numbered.into_iter().map(|(_, t)| t).collect(),
        cut_at,
        warnings,
    ))
}

/// Records with their line numbers.
type Numbered = Vec<(usize, TrialRecord)>;

/// [`read_trials`] with each record's line number.
fn read_numbered(path: &Path) -> anyhow::Result<(Numbered, Option<u64>, Vec<String>)> {
    let mut trials = Vec::new();
    let mut warnings = Vec::new();
    if !path.exists() {
        return Ok((trials, None, warnings));
    }
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut offset = 0u64;
    let lines: Vec<&[u8]> = bytes.split_inclusive(|&b| b == b'\n').collect();
    for (i, line) in lines.iter().enumerate() {
        let number = i + 1;
        if !line.ends_with(b"\n") {
            // Only the last line can lack its newline: an interrupted write.
            warnings.push(format!(
                "{} line {number} was cut short (an interrupted write)",
                path.display()
            ));
            return Ok((trials, Some(offset), warnings));
        }
        let body = std::str::from_utf8(&line[..line.len() - 1]).map_err(|e| {
            anyhow::anyhow!(
                "{} line {number} is not UTF-8 text ({e}); the file was left as it is: fix \
                 or delete that line",
                path.display()
            )
        })?;
        if !body.trim().is_empty() {
            let trial = serde_json::from_str::<TrialRecord>(body)
                .map_err(|e| e.to_string())
                .and_then(|t| check_record(&t).map(|()| t))
                .map_err(|e| {
                    anyhow::anyhow!(
                        "{} line {number} is not a valid trial record ({e}); \
                         the file was left as it is: fix or delete that line",
                        path.display()
                    )
                })?;
            trials.push((number, trial));
        }
        offset += line.len() as u64;
    }
    Ok((trials, None, warnings))
}

/// What no honest record holds.
fn check_record(t: &TrialRecord) -> Result<(), String> {
    if !(t.val_accuracy.is_nan() || (0.0..=1.0).contains(&t.val_accuracy)) {
        return Err(format!(
            "val_accuracy = {}: a fraction from 0 to 1",
            t.val_accuracy
        ));
    }
    if !(t.lr.is_finite() && t.lr > 0.0) {
        return Err(format!("lr = {}: a finite number > 0", t.lr));
    }
    Ok(())
}

/// Records with the one rule for repeats, in every command: a record equal
/// to one kept before ([`same_result`]) is dropped and counted; two records
/// of one trial with different results are an error naming both.
#[derive(Default)]
struct Records {
    trials: Vec<TrialRecord>,
    duplicates: usize,
    seen: HashMap<TrialKey, (usize, String)>,
}

impl Records {
    fn add(&mut self, trial: TrialRecord, origin: impl Fn() -> String) -> anyhow::Result<()> {
        match self.seen.get(&trial.key()) {
            Some((at, first)) => {
                let kept = &self.trials[*at];
                if !same_result(kept, &trial) {
                    anyhow::bail!(
                        "conflicting records of trial {} r={} lr={:e} seed={}: {first} has \
                         val_accuracy {} and {} has {}; the same trial must give the same \
                         result, so one was computed with another setup: delete the wrong one",
                        trial.method,
                        trial.rank,
                        trial.lr,
                        trial.seed,
                        kept.val_accuracy,
                        origin(),
                        trial.val_accuracy
                    );
                }
                self.duplicates += 1;
            }
            None => {
                self.seen.insert(trial.key(), (self.trials.len(), origin()));
                self.trials.push(trial);
            }
        }
        Ok(())
    }
}

/// Writes `contents` to `path` through a temporary file and a rename.
pub fn write_atomic(path: &Path, contents: &str) -> anyhow::Result<()> {
    // A temporary name of this file and process: two files of one stem
    // (trials.jsonl, trials.csv) or two processes never share one.
    let name = path
        .file_name()
        .map_or_else(|| "lrscape".into(), |n| n.to_string_lossy().into_owned());
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    std::fs::write(&tmp, contents).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}
/// Rewrites `rank_x_lr_results.json`, `lr_sweep_results.json` and
/// `trials.csv` from the records.
pub fn write_derived<M: ModelConfig>(
    config: &ExperimentConfig<M>,
    out: &Path,
    trials: &[TrialRecord],
) -> anyhow::Result<()> {
    let (trials, _) = crate::grid::within_grid(config, trials);
    let trials = &trials[..];
    let curves = cell_curves(trials);
    write_atomic(
        &out.join(layout::RANK_X_LR),
        &(serde_json::to_string_pretty(&rank_x_lr_results(&curves))? + "\n"),
    )?;
    write_atomic(
        &out.join(layout::LR_SWEEP),
        &(serde_json::to_string_pretty(&lr_sweep_results(&curves, config.grid.parity_rank))?
            + "\n"),
    )?;
    write_atomic(&out.join(layout::TRIALS_CSV), &trials_csv(trials))?;
    Ok(())
}

/// Every shard records file in `out`, ordered by (N, I).
pub fn shard_files(out: &Path) -> anyhow::Result<Vec<(Shard, PathBuf)>> {
    let mut found = Vec::new();
    let entries = match std::fs::read_dir(out) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(found),
        Err(e) => return Err(e).with_context(|| format!("cannot list {}", out.display())),
    };
    for entry in entries {
        let entry = entry?;
        if let Some(shard) = entry
            .file_name()
            .to_str()
            .and_then(Shard::from_records_file)
        {
            found.push((shard, entry.path()));
        }
    }
    found.sort_by_key(|(s, _)| (s.count, s.index));
    Ok(found)
}

/// The records files of `out`: `trials.jsonl` (when present), then the
/// shard files ordered by (N, I).
pub fn record_files(out: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let main = out.join(layout::TRIALS);
    if main.exists() {
        files.push(main);
    }
    files.extend(shard_files(out)?.into_iter().map(|(_, p)| p));
    Ok(files)
}

/// Whether two records of one key hold the same result (wall time and
/// provenance may differ: a requeued task recomputes the same trial).
pub fn same_result(a: &TrialRecord, b: &TrialRecord) -> bool {
    let eq = |x: f64, y: f64| x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan());
    a.key() == b.key()
        && a.experiment == b.experiment
        && a.config_hash == b.config_hash
        && eq(a.lora_alpha, b.lora_alpha)
        && eq(a.scaling, b.scaling)
        && a.train_loss.len() == b.train_loss.len()
        && a.train_loss
            .iter()
            .zip(&b.train_loss)
            .all(|(x, y)| eq(*x, *y))
        && eq(a.val_accuracy, b.val_accuracy)
        && eq(a.val_loss, b.val_loss)
        && a.steps == b.steps
        && a.diverged == b.diverged
}

/// The records of every file of an output directory, duplicates dropped.
#[derive(Debug, Default)]
pub struct Gathered {
    /// In file order (`trials.jsonl`, then shards by (N, I)), first copy kept.
    pub trials: Vec<TrialRecord>,
    /// Records dropped as exact duplicates of an earlier one.
    pub duplicates: usize,
    /// Records read per file.
    pub files: Vec<(PathBuf, usize)>,
    pub warnings: Vec<String>,
}

/// Reads `trials.jsonl` and every shard file of `out` without changing any
/// (safe while shards run): exact duplicates are dropped, two records of one
/// trial with different results are an error naming both files.
pub fn gather(out: &Path) -> anyhow::Result<Gathered> {
    let mut gathered = Gathered::default();
    let mut records = Records::default();
    for path in record_files(out)? {
        let (numbered, _, warnings) = read_numbered(&path)?;
        gathered.warnings.extend(warnings);
        gathered.files.push((path.clone(), numbered.len()));
        for (line, trial) in numbered {
            records.add(trial, || format!("{} line {line}", path.display()))?;
        }
    }
    gathered.trials = records.trials;
    gathered.duplicates = records.duplicates;
    Ok(gathered)
}

/// Refuses records of another setup (a config hash other than `config`'s):
/// every command that reads a results directory mixes no experiments.
pub fn check_setup<M: ModelConfig>(
    config: &ExperimentConfig<M>,
    out: &Path,
    trials: &[TrialRecord],
) -> anyhow::Result<()> {
    let hash = config.results_hash();
    let other: Vec<&TrialRecord> = trials.iter().filter(|t| t.config_hash != hash).collect();
    if let Some(first) = other.first() {
        anyhow::bail!(
            "{} of {} records in {} were made with another setup (config hash {}, this \
             config's is {hash}): use the config that made them, or another --out",
            other.len(),
            trials.len(),
            out.display(),
            first.config_hash
        );
    }
    Ok(())
}

/// One `lrscape run` invocation, appended to `run_log.jsonl` when it ends:
/// the report's wall time is the sum over the log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunLogEntry {
    /// Seconds since the Unix epoch when the run ended.
    pub ended_unix: u64,
    /// Wall time of the run, pre-training included.
    pub seconds: f64,
    pub trained: usize,
    pub skipped: usize,
    pub backend: String,
    pub device: String,
    pub git_revision: String,
    /// Uncommitted changes to tracked files (absent in logs from before).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git_dirty: Option<bool>,
    /// The config the run ran, as TOML (absent in logs from before).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<String>,
    /// The base's loss on the fine-tuning validation split, where the run
    /// trained (absent in logs from before).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_val_loss: Option<f64>,
    /// What the run warned of (texts cut to `max_length`, a setting it
    /// could not honour), as it printed them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// Appends one entry to the run log at `path` (`<out>/run_log.jsonl`; a
/// shard has its own).
pub fn append_run_log(path: &Path, entry: &RunLogEntry) -> anyhow::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    writeln!(file, "{}", serde_json::to_string(entry)?)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// The run log of `out`: `run_log.jsonl`, then the shards' logs
/// (`run_log.shard-I-of-N.jsonl`, by name); empty if there is none; a bad
/// line is an error naming it.
pub fn read_run_log(out: &Path) -> anyhow::Result<Vec<RunLogEntry>> {
    let mut paths = vec![out.join(layout::RUN_LOG)];
    let mut shard_logs: Vec<PathBuf> = std::fs::read_dir(out)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| Shard::from_run_log_file(n).is_some())
                })
                .collect()
        })
        .unwrap_or_default();
    shard_logs.sort();
    paths.extend(shard_logs);
    let mut entries = Vec::new();
    for path in paths {
        if path.exists() {
            entries.extend(read_run_log_file(&path)?);
        }
    }
    Ok(entries)
}

fn read_run_log_file(path: &Path) -> anyhow::Result<Vec<RunLogEntry>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| {
                anyhow::anyhow!(
                    "{} line {} is not a run-log entry ({e}); fix or delete that line",
                    path.display(),
                    i + 1
                )
            })
        })
        .collect()
}

/// Reads `<out>/sharpness.json`; `None` when there is none.
pub fn read_sharpness(out: &Path) -> anyhow::Result<Option<SharpnessFile>> {
    read_sharpness_file(&out.join(layout::sharpness_file(0)))
}

/// The `sharpness-after-N.json` files of `out`, by N.
pub fn read_sharpness_after(out: &Path) -> anyhow::Result<Vec<SharpnessFile>> {
    let mut files = Vec::new();
    let Ok(entries) = std::fs::read_dir(out) else {
        return Ok(files);
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        let steps = name
            .strip_prefix("sharpness-after-")
            .and_then(|rest| rest.strip_suffix(".json"))
            .and_then(|n| n.parse::<usize>().ok());
        if steps.is_some_and(|n| n > 0 && name == layout::sharpness_file(n))
            && let Some(file) = read_sharpness_file(&entry.path())?
        {
            files.push(file);
        }
    }
    files.sort_by_key(|f| f.after_steps);
    Ok(files)
}

fn read_sharpness_file(path: &Path) -> anyhow::Result<Option<SharpnessFile>> {
    if !path.exists() {
        return Ok(None);
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let file = serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is not a sharpness file; delete it and rerun `lrscape sharpness`",
            path.display()
        )
    })?;
    Ok(Some(file))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(seed: u64, acc: f64) -> String {
        serde_json::to_string(&TrialRecord::synthetic("lora", 4, 1e-3, seed, acc)).unwrap() + "\n"
    }

    #[test]
    fn a_repeated_record_counts_once_and_a_conflicting_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("trials.jsonl");
        std::fs::write(&path, line(0, 0.5) + &line(1, 0.7) + &line(0, 0.5)).unwrap();
        let (store, warnings) = TrialStore::open(&path).unwrap();
        assert_eq!(store.trials().len(), 2, "the copy is not a third seed");
        assert!(
            warnings.iter().any(|w| w.contains("1 exact duplicate")),
            "{warnings:?}"
        );
        std::fs::write(&path, line(0, 0.5) + &line(1, 0.7) + &line(0, 0.9)).unwrap();
        let err = TrialStore::open(&path).err().unwrap().to_string();
        assert!(err.contains("conflicting records"), "{err}");
        assert!(
            err.contains("line 1 has val_accuracy 0.5") && err.contains("line 3 has 0.9"),
            "{err}"
        );
        // gather, as status, report and merge read, says the same.
        let err = gather(dir.path()).err().unwrap().to_string();
        assert!(err.contains("line 3 has 0.9"), "{err}");
    }

    #[test]
    fn impossible_and_unreadable_records_are_named_by_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("trials.jsonl");
        std::fs::write(&path, line(0, 0.5) + &line(1, 7.5)).unwrap();
        let err = TrialStore::open(&path).err().unwrap().to_string();
        assert!(
            err.contains("line 2") && err.contains("val_accuracy = 7.5"),
            "{err}"
        );
        let mut bytes = line(0, 0.5).into_bytes();
        bytes.extend_from_slice(b"{\"experiment\":\"\xff\"}\n");
        std::fs::write(&path, bytes).unwrap();
        let err = TrialStore::open(&path).err().unwrap().to_string();
        assert!(err.contains("line 2 is not UTF-8"), "{err}");
    }
}
