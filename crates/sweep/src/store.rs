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
        let (trials, cut_at, mut warnings) = read_trials(path)?;
        if let Some(offset) = cut_at {
            let file = OpenOptions::new()
                .write(true)
                .open(path)
                .with_context(|| format!("cannot repair {}", path.display()))?;
            file.set_len(offset)?;
            file.sync_all()?;
            if let Some(w) = warnings.last_mut() {
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
    let mut trials = Vec::new();
    let mut warnings = Vec::new();
    if !path.exists() {
        return Ok((trials, None, warnings));
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut offset = 0u64;
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    for (i, line) in lines.iter().enumerate() {
        let number = i + 1;
        let body = line.trim_end_matches('\n');
        if !line.ends_with('\n') {
            // Only the last line can lack its newline: an interrupted write.
            warnings.push(format!(
                "{} line {number} was cut short (an interrupted write)",
                path.display()
            ));
            return Ok((trials, Some(offset), warnings));
        }
        if !body.trim().is_empty() {
            let trial = serde_json::from_str::<TrialRecord>(body).map_err(|e| {
                anyhow::anyhow!(
                    "{} line {number} is not a valid trial record ({e}); \
                     the file was left as it is: fix or delete that line",
                    path.display()
                )
            })?;
            trials.push(trial);
        }
        offset += line.len() as u64;
    }
    Ok((trials, None, warnings))
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
    let mut seen: HashMap<TrialKey, (usize, PathBuf)> = HashMap::new();
    for path in record_files(out)? {
        let (trials, _, warnings) = read_trials(&path)?;
        gathered.warnings.extend(warnings);
        gathered.files.push((path.clone(), trials.len()));
        for trial in trials {
            match seen.get(&trial.key()) {
                Some((at, first)) => {
                    let kept = &gathered.trials[*at];
                    if !same_result(kept, &trial) {
                        anyhow::bail!(
                            "conflicting records of trial {} r={} lr={:e} seed={}: {} has \
                             val_accuracy {} and {} has {}; the same trial must give the same \
                             result, so one was computed with another setup: delete the wrong one",
                            trial.method,
                            trial.rank,
                            trial.lr,
                            trial.seed,
                            first.display(),
                            kept.val_accuracy,
                            path.display(),
                            trial.val_accuracy
                        );
                    }
                    gathered.duplicates += 1;
                }
                None => {
                    seen.insert(trial.key(), (gathered.trials.len(), path.clone()));
                    gathered.trials.push(trial);
                }
            }
        }
    }
    Ok(gathered)
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
