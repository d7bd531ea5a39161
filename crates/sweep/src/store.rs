//! `trials.jsonl`: one JSON line per finished trial, appended and fsynced.
//!
//! Re-opening tolerates exactly what a crash can leave: a last line cut
//! short (no final newline) is dropped with a warning and cut from the file;
//! any other unreadable line is an error naming it, and the file is left
//! untouched.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use records::{TrialKey, TrialRecord};

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
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, contents).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}
