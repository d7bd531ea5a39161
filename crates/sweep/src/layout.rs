//! The results directory: every file name lrscape reads or writes in an
//! experiment's output directory, in one place.
//!
//! ```text
//! <out>/trials.jsonl                  the records (one writer: `lrscape run`, `merge`)
//! <out>/lrscape.lock                  held by the writer of trials.jsonl (`run`, `merge`)
//! <out>/trials.shard-I-of-N.jsonl     a shard's records (`run --shard I/N`)
//! <out>/trials.shard-I-of-N.lock      held while a process runs that shard
//! <out>/run_log.jsonl                 one line per run (and run_log.shard-I-of-N.jsonl)
//! <out>/trials.csv, rank_x_lr_results.json, lr_sweep_results.json   derived
//! <out>/sharpness.json, sharpness-after-N.json                      `lrscape sharpness`
//! <out>/REPORT.md, figures/           `lrscape report`
//! <out>/base/<pretrain hash>/{model.bpk, base.json}                 the cached base
//! <out>/base/<pretrain hash>/hf/      the base as a Hugging Face directory (gpt2)
//! ```

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// The records of an unsharded run and of `lrscape merge`.
pub const TRIALS: &str = "trials.jsonl";
/// Held by the one process writing `trials.jsonl` and the derived files
/// (a plain `lrscape run`, `lrscape merge`).
pub const LOCK: &str = "lrscape.lock";
/// One line per `lrscape run`.
pub const RUN_LOG: &str = "run_log.jsonl";
/// The derived files, rewritten from the records.
pub const TRIALS_CSV: &str = "trials.csv";
pub const RANK_X_LR: &str = "rank_x_lr_results.json";
pub const LR_SWEEP: &str = "lr_sweep_results.json";
/// The report.
pub const REPORT: &str = "REPORT.md";
/// The cached base of a pre-training hash: `base/<hash>/`.
pub const BASE_DIR: &str = "base";
pub const BASE_MODEL: &str = "model.bpk";
pub const BASE_RECORD: &str = "base.json";
/// The cached base as a Hugging Face directory, where its family has one.
pub const BASE_HF: &str = "hf";

/// `sharpness.json` at initialisation, `sharpness-after-N.json` after N steps.
pub fn sharpness_file(after_steps: usize) -> String {
    if after_steps == 0 {
        "sharpness.json".into()
    } else {
        format!("sharpness-after-{after_steps}.json")
    }
}

/// The cache directory of the base whose pre-training hash is `hash`.
pub fn base_dir(out: &Path, hash: &str) -> PathBuf {
    out.join(BASE_DIR).join(hash)
}

/// Shard `index` of `count` (0-based), as `--shard I/N` gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl FromStr for Shard {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> anyhow::Result<Self> {
        let bad = || {
            anyhow::anyhow!(
                "--shard {s:?}: expected I/N, shard I (0-based) of N, with 0 <= I < N (e.g. 0/4 .. 3/4)"
            )
        };
        let (i, n) = s.trim().split_once('/').ok_or_else(bad)?;
        let index: usize = i.trim().parse().map_err(|_| bad())?;
        let count: usize = n.trim().parse().map_err(|_| bad())?;
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Self { index, count })
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl Shard {
    /// `trials.shard-I-of-N.jsonl`: this shard's records.
    pub fn records_file(&self) -> String {
        format!("trials.shard-{}-of-{}.jsonl", self.index, self.count)
    }

    /// `trials.shard-I-of-N.lock`: held while a process runs this shard.
    pub fn lock_file(&self) -> String {
        format!("trials.shard-{}-of-{}.lock", self.index, self.count)
    }

    /// `run_log.shard-I-of-N.jsonl`: this shard's run log.
    pub fn run_log_file(&self) -> String {
        format!("run_log.shard-{}-of-{}.jsonl", self.index, self.count)
    }

    /// The shard whose records file is named `name`, if it is one.
    pub fn from_records_file(name: &str) -> Option<Self> {
        Self::parse_name(name, "trials.shard-", ".jsonl")
    }

    /// The shard whose run log is named `name`, if it is one.
    pub fn from_run_log_file(name: &str) -> Option<Self> {
        Self::parse_name(name, "run_log.shard-", ".jsonl")
    }

    /// The shard whose lock is named `name`, if it is one.
    pub fn from_lock_file(name: &str) -> Option<Self> {
        Self::parse_name(name, "trials.shard-", ".lock")
    }

    /// `<prefix>I-of-N<suffix>` with I < N.
    fn parse_name(name: &str, prefix: &str, suffix: &str) -> Option<Self> {
        let rest = name.strip_prefix(prefix)?.strip_suffix(suffix)?;
        let (i, n) = rest.split_once("-of-")?;
        let shard = Self {
            index: i.parse().ok()?,
            count: n.parse().ok()?,
        };
        (shard.index < shard.count).then_some(shard)
    }
}
