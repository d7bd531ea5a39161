//! Sharded sweeps: `lrscape run --shard I/N`, `lrscape merge`, per-shard status.
//!
//! - [`partition`]: the grid's cells split into N shards, balanced by cost
//!   (members × steps) with LPT greedy on a stable order, so a shard index
//!   means the same cells on every machine and every run.
//! - Each shard appends to its own `trials.shard-I-of-N.jsonl` in the shared
//!   output directory (no two processes ever write one file) and holds
//!   `trials.shard-I-of-N.lock` (pid, host, SLURM job) while it runs; a
//!   stale lock (dead pid on this host, or this very SLURM job restarted) is
//!   taken over.
//! - [`gather`] reads `trials.jsonl` and every shard file, drops exact
//!   duplicates (a requeued task may record a trial twice) and refuses
//!   conflicting ones; [`merge`] writes the merged `trials.jsonl` in grid
//!   order and the derived files, and says which cells are still missing.

use std::collections::HashMap;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::Context;
use records::{TrialKey, TrialRecord};

use crate::config::{Cell, ExperimentConfig};
use crate::store::{read_trials, write_atomic};

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
        let rest = name.strip_prefix("trials.shard-")?.strip_suffix(".jsonl")?;
        let (i, n) = rest.split_once("-of-")?;
        let shard = Self {
            index: i.parse().ok()?,
            count: n.parse().ok()?,
        };
        (shard.index < shard.count).then_some(shard)
    }
}

/// Splits items of the given costs into `n` shards: LPT greedy (largest cost
/// first, ties by index; each to the least loaded shard, ties to the lowest
/// shard). Returns each shard's item indices, ascending. Deterministic, and
/// the most loaded shard exceeds `sum / n` by at most the largest cost.
pub fn partition(costs: &[u64], n: usize) -> Vec<Vec<usize>> {
    let n = n.max(1);
    let mut order: Vec<usize> = (0..costs.len()).collect();
    order.sort_by(|&a, &b| costs[b].cmp(&costs[a]).then(a.cmp(&b)));
    let mut load = vec![0u64; n];
    let mut shards = vec![Vec::new(); n];
    for item in order {
        let target = (0..n)
            .min_by(|&a, &b| load[a].cmp(&load[b]).then(a.cmp(&b)))
            .unwrap_or(0);
        load[target] += costs[item];
        shards[target].push(item);
    }
    for shard in &mut shards {
        shard.sort_unstable();
    }
    shards
}

/// Work of each cell of `config`: population size × steps × batch size
/// (member-examples, so cells of different budgets weigh what they cost).
pub fn cell_costs(config: &ExperimentConfig) -> Vec<u64> {
    let members = config.finetune.lrs.values().map_or(0, |l| l.len()) * config.grid.seeds.len();
    let n = config.task.n_finetune_train;
    config
        .cells()
        .iter()
        .map(|cell| (members * cell.steps(n) * cell.batch_size) as u64)
        .collect()
}

/// Indices (into `config.cells()`) of the cells of `shard`.
pub fn shard_cells(config: &ExperimentConfig, shard: Shard) -> Vec<usize> {
    partition(&cell_costs(config), shard.count)
        .into_iter()
        .nth(shard.index)
        .unwrap_or_default()
}

/// This machine's host name.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

fn pid_alive(pid: u32) -> bool {
    if Path::new("/proc/self").exists() {
        return Path::new("/proc").join(pid.to_string()).exists();
    }
    std::process::Command::new("kill")
        .args(["-0", &pid.to_string()])
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Who holds a shard lock, as its file says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockOwner {
    pub pid: u32,
    pub host: String,
    /// `SLURM_JOB_ID` of the holder (kept by a requeued task), if any.
    pub slurm_job: Option<String>,
}

impl LockOwner {
    fn this_process() -> Self {
        Self {
            pid: std::process::id(),
            host: host_name(),
            slurm_job: std::env::var("SLURM_JOB_ID").ok().filter(|j| !j.is_empty()),
        }
    }

    fn to_text(&self) -> String {
        let mut text = format!("pid={}\nhost={}\n", self.pid, self.host);
        if let Some(job) = &self.slurm_job {
            text.push_str(&format!("slurm_job={job}\n"));
        }
        text
    }

    fn parse(text: &str) -> Option<Self> {
        let mut pid = None;
        let mut host = None;
        let mut slurm_job = None;
        for line in text.lines() {
            match line.split_once('=') {
                Some(("pid", v)) => pid = v.trim().parse().ok(),
                Some(("host", v)) => host = Some(v.trim().to_string()),
                Some(("slurm_job", v)) => slurm_job = Some(v.trim().to_string()),
                _ => {}
            }
        }
        Some(Self {
            pid: pid?,
            host: host?,
            slurm_job,
        })
    }

    /// Whether the holder is certainly gone: a dead pid on this host, or,
    /// on another host, this very SLURM job (which SLURM runs once at a
    /// time: a requeued task restarted elsewhere).
    fn is_stale(&self, me: &Self) -> bool {
        if self.host == me.host {
            !pid_alive(self.pid)
        } else {
            self.slurm_job.is_some() && self.slurm_job == me.slurm_job
        }
    }

    pub fn describe(&self) -> String {
        match &self.slurm_job {
            Some(job) => format!("pid {} on {} (SLURM job {job})", self.pid, self.host),
            None => format!("pid {} on {}", self.pid, self.host),
        }
    }
}

/// A held shard lock; the file is removed when this is dropped.
#[derive(Debug)]
pub struct ShardLock {
    path: PathBuf,
}

impl Drop for ShardLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The holder of `out`'s lock of `shard`, if the lock file exists.
pub fn lock_owner(out: &Path, shard: Shard) -> Option<LockOwner> {
    std::fs::read_to_string(out.join(shard.lock_file()))
        .ok()
        .and_then(|t| LockOwner::parse(&t))
}

/// Takes the lock of `shard` in `out`: refused while another live process
/// holds it, taken over (with a message) from a dead one.
pub fn acquire_lock(out: &Path, shard: Shard) -> anyhow::Result<(ShardLock, Option<String>)> {
    let path = out.join(shard.lock_file());
    let me = LockOwner::this_process();
    let mut message = None;
    for _ in 0..3 {
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(mut file) => {
                file.write_all(me.to_text().as_bytes())
                    .and_then(|()| file.sync_all())
                    .with_context(|| format!("cannot write {}", path.display()))?;
                return Ok((ShardLock { path }, message));
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                match LockOwner::parse(&text) {
                    Some(owner) if !owner.is_stale(&me) => anyhow::bail!(
                        "shard {shard} of {} is already running ({}; lock {}); \
                         one process per shard. If that process is gone (e.g. on another \
                         host that crashed), delete the lock file and run again",
                        out.display(),
                        owner.describe(),
                        path.display()
                    ),
                    Some(owner) => {
                        let m = format!(
                            "took over the stale lock {} of {} (no longer running)",
                            path.display(),
                            owner.describe()
                        );
                        eprintln!("warning: {m}");
                        message = Some(m);
                    }
                    None if text.is_empty() => {
                        // A lock being written right now, or left empty by a
                        // crash between create and write: wait, then look again.
                        std::thread::sleep(std::time::Duration::from_millis(200));
                        if std::fs::read_to_string(&path)
                            .unwrap_or_default()
                            .is_empty()
                        {
                            message = Some(format!("took over the empty lock {}", path.display()));
                        } else {
                            continue;
                        }
                    }
                    None => anyhow::bail!(
                        "{} is not a shard lock (expected pid=… and host=… lines); \
                         delete it if no process runs shard {shard}",
                        path.display()
                    ),
                }
                std::fs::remove_file(&path)
                    .or_else(|e| {
                        if e.kind() == std::io::ErrorKind::NotFound {
                            Ok(())
                        } else {
                            Err(e)
                        }
                    })
                    .with_context(|| format!("cannot remove the stale lock {}", path.display()))?;
            }
            Err(e) => {
                return Err(e).with_context(|| format!("cannot create {}", path.display()));
            }
        }
    }
    anyhow::bail!(
        "could not take the lock {} (another process keeps taking it)",
        path.display()
    )
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
    let main = out.join("trials.jsonl");
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

/// The grid's trial keys, per cell of `config.cells()`, in the order a
/// single-process run records them (learning rates, then seeds).
pub fn grid_keys(config: &ExperimentConfig) -> Vec<(Cell, Vec<TrialKey>)> {
    let lrs = config.finetune.lrs.values().unwrap_or_default();
    config
        .cells()
        .into_iter()
        .map(|cell| {
            let keys = lrs
                .iter()
                .flat_map(|&lr| config.grid.seeds.iter().map(move |&seed| (lr, seed)))
                .map(|(lr, seed)| crate::runner::trial_key(config, &cell, lr, seed))
                .collect();
            (cell, keys)
        })
        .collect()
}

/// Sorts records into grid order (cell, learning rate, seed, as a
/// single-process run appends them); records outside the grid keep their
/// order after those of the grid.
pub fn sort_by_grid(config: &ExperimentConfig, trials: &mut [TrialRecord]) {
    let rank: HashMap<TrialKey, usize> = grid_keys(config)
        .into_iter()
        .flat_map(|(_, keys)| keys)
        .enumerate()
        .map(|(i, k)| (k, i))
        .collect();
    trials.sort_by_key(|t| rank.get(&t.key()).copied().unwrap_or(usize::MAX));
}

/// A cell with trials missing, and the shard that owns it.
#[derive(Debug, Clone, PartialEq)]
pub struct MissingCell {
    pub shard: Option<Shard>,
    pub label: String,
    pub recorded: usize,
    pub wanted: usize,
}

/// The shard count of the shard files in `out` (the largest when several
/// counts were used), if any.
pub fn shard_count(out: &Path) -> anyhow::Result<Option<usize>> {
    Ok(shard_files(out)?.iter().map(|(s, _)| s.count).max())
}

/// Cells of the grid with trials not in `trials`, each with its shard of
/// `count` (when sharded).
pub fn missing_cells(
    config: &ExperimentConfig,
    trials: &[TrialRecord],
    count: Option<usize>,
) -> Vec<MissingCell> {
    let done: std::collections::HashSet<TrialKey> = trials.iter().map(|t| t.key()).collect();
    let owner: HashMap<usize, Shard> = match count {
        Some(count) => partition(&cell_costs(config), count)
            .into_iter()
            .enumerate()
            .flat_map(|(index, cells)| cells.into_iter().map(move |c| (c, Shard { index, count })))
            .collect(),
        None => HashMap::new(),
    };
    let mut missing: Vec<MissingCell> = grid_keys(config)
        .into_iter()
        .enumerate()
        .filter_map(|(i, (cell, keys))| {
            let recorded = keys.iter().filter(|k| done.contains(k)).count();
            (recorded < keys.len()).then(|| MissingCell {
                shard: owner.get(&i).copied(),
                label: cell.label(config),
                recorded,
                wanted: keys.len(),
            })
        })
        .collect();
    missing.sort_by_key(|m| m.shard);
    missing
}

/// Human-readable lines for [`missing_cells`], one per shard.
pub fn missing_report(missing: &[MissingCell]) -> String {
    let mut out = String::new();
    let mut shards: Vec<Option<Shard>> = missing.iter().map(|m| m.shard).collect();
    shards.dedup();
    for shard in shards {
        let cells: Vec<String> = missing
            .iter()
            .filter(|m| m.shard == shard)
            .map(|m| format!("{} ({}/{})", m.label, m.recorded, m.wanted))
            .collect();
        match shard {
            Some(s) => out.push_str(&format!(
                "shard {s}: {} cell(s) missing: {}; rerun `lrscape run --shard {s}`\n",
                cells.len(),
                cells.join(", ")
            )),
            None => out.push_str(&format!(
                "{} cell(s) missing: {}\n",
                cells.len(),
                cells.join(", ")
            )),
        }
    }
    out
}

/// What [`merge`] did.
#[derive(Debug)]
pub struct MergeSummary {
    pub trials: usize,
    pub duplicates: usize,
    pub files: Vec<(PathBuf, usize)>,
    pub missing: Vec<MissingCell>,
    pub warnings: Vec<String>,
}

/// Merges every records file of `out` into `out/trials.jsonl` (grid order,
/// duplicates dropped) and rewrites the derived files. Shard files are left
/// as they are, so merging again gives the same result.
pub fn merge(config: &ExperimentConfig, out: &Path) -> anyhow::Result<MergeSummary> {
    let gathered = gather(out)?;
    let hash = config.results_hash();
    if let Some(other) = gathered.trials.iter().find(|t| t.config_hash != hash) {
        anyhow::bail!(
            "{} holds trials of another setup (hash {}, this config's is {hash}): \
             merge with the config the shards ran",
            out.display(),
            other.config_hash
        );
    }
    if gathered.files.is_empty() {
        anyhow::bail!(
            "{} holds no records (trials.jsonl or trials.shard-I-of-N.jsonl): run \
             `lrscape run --config <file> --out {} [--shard I/N]` first",
            out.display(),
            out.display()
        );
    }
    let mut trials = gathered.trials;
    sort_by_grid(config, &mut trials);
    let mut text = String::new();
    for t in &trials {
        text.push_str(&serde_json::to_string(t)?);
        text.push('\n');
    }
    write_atomic(&out.join("trials.jsonl"), &text)?;
    crate::runner::write_derived(config, out, &trials)?;
    let missing = missing_cells(config, &trials, shard_count(out)?);
    Ok(MergeSummary {
        trials: trials.len(),
        duplicates: gathered.duplicates,
        files: gathered.files,
        missing,
        warnings: gathered.warnings,
    })
}

/// Per-shard progress of `out` from its records (any file counts) and locks.
pub fn shard_status(
    config: &ExperimentConfig,
    out: &Path,
    trials: &[TrialRecord],
) -> anyhow::Result<String> {
    let Some(count) = shard_count(out)? else {
        return Ok(String::new());
    };
    let done: std::collections::HashSet<TrialKey> = trials.iter().map(|t| t.key()).collect();
    let keys = grid_keys(config);
    let own_files: HashMap<Shard, PathBuf> = shard_files(out)?.into_iter().collect();
    let mut text = format!(
        "{:<8} {:>11} {:>11} {:>8}  state\n",
        "shard", "cells done", "trials", "in file"
    );
    for (index, cells) in partition(&cell_costs(config), count)
        .into_iter()
        .enumerate()
    {
        let shard = Shard { index, count };
        let (mut cells_done, mut recorded, mut wanted) = (0, 0, 0);
        for &c in &cells {
            let have = keys[c].1.iter().filter(|k| done.contains(k)).count();
            cells_done += usize::from(have == keys[c].1.len());
            recorded += have;
            wanted += keys[c].1.len();
        }
        let in_file = own_files
            .get(&shard)
            .map(|p| read_trials(p).map_or(0, |(t, _, _)| t.len()))
            .unwrap_or(0);
        let state = match lock_owner(out, shard) {
            Some(owner) if owner.host == host_name() && !pid_alive(owner.pid) => {
                format!("stale lock of {}", owner.describe())
            }
            Some(owner) => format!("running: {}", owner.describe()),
            None if recorded == wanted => "done".into(),
            None if recorded == 0 => "not started".into(),
            None => "stopped".into(),
        };
        text.push_str(&format!(
            "{:<8} {:>5}/{:<5} {:>5}/{:<5} {:>8}  {state}\n",
            shard.to_string(),
            cells_done,
            cells.len(),
            recorded,
            wanted,
            in_file
        ));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// splitmix64: a small deterministic generator for the property test.
    fn next(state: &mut u64) -> u64 {
        *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = *state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    #[test]
    fn partition_is_disjoint_covering_balanced_and_stable() {
        let mut state = 7u64;
        for case in 0..400 {
            let cells = (next(&mut state) % 200) as usize;
            // Uniform costs (as in today's grids) and mixed ones (budget axes).
            let uniform = case % 3 == 0;
            let costs: Vec<u64> = (0..cells)
                .map(|_| {
                    if uniform {
                        48
                    } else {
                        1 + next(&mut state) % 10_000
                    }
                })
                .collect();
            let n = 1 + (next(&mut state) % 63) as usize;
            let shards = partition(&costs, n);
            assert_eq!(shards.len(), n);
            let mut seen = vec![0usize; cells];
            for shard in &shards {
                for &c in shard {
                    seen[c] += 1;
                }
            }
            assert!(
                seen.iter().all(|&s| s == 1),
                "case {case}: every cell exactly once"
            );
            let total: u64 = costs.iter().sum();
            let largest = costs.iter().copied().max().unwrap_or(0);
            let max_load = shards
                .iter()
                .map(|s| s.iter().map(|&c| costs[c]).sum::<u64>())
                .max()
                .unwrap_or(0);
            // max_load - total/n <= largest, in integers: n·max_load <= total + n·largest.
            assert!(
                max_load * n as u64 <= total + largest * n as u64,
                "case {case}: {cells} cells, n={n}: max load {max_load}, total {total}, largest {largest}"
            );
            assert_eq!(partition(&costs, n), shards, "case {case}: deterministic");
        }
    }

    #[test]
    fn equal_costs_split_by_count() {
        let shards = partition(&[5; 7], 3);
        assert_eq!(shards, vec![vec![0, 3, 6], vec![1, 4], vec![2, 5]]);
        assert_eq!(partition(&[5; 2], 4)[3], Vec::<usize>::new());
    }

    #[test]
    fn shard_flag_parses_and_names_what_is_allowed() {
        assert_eq!(
            "2/8".parse::<Shard>().unwrap(),
            Shard { index: 2, count: 8 }
        );
        for bad in ["8/8", "1/0", "x/2", "3", "-1/2", ""] {
            let err = bad.parse::<Shard>().unwrap_err().to_string();
            assert!(
                err.contains("--shard") && err.contains("0 <= I < N"),
                "{err}"
            );
        }
        let s = Shard {
            index: 3,
            count: 12,
        };
        assert_eq!(Shard::from_records_file(&s.records_file()), Some(s));
        assert_eq!(Shard::from_records_file("trials.jsonl"), None);
        assert_eq!(Shard::from_records_file("trials.shard-4-of-4.jsonl"), None);
    }

    #[test]
    fn a_live_lock_is_refused_and_a_dead_one_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let shard = Shard { index: 1, count: 3 };
        let (lock, message) = acquire_lock(dir.path(), shard).unwrap();
        assert!(message.is_none());
        let owner = lock_owner(dir.path(), shard).unwrap();
        assert_eq!(owner.pid, std::process::id());
        // This process is alive: a second taker is refused.
        let err = acquire_lock(dir.path(), shard).unwrap_err().to_string();
        assert!(
            err.contains("already running") && err.contains("pid"),
            "{err}"
        );
        drop(lock);
        assert!(lock_owner(dir.path(), shard).is_none(), "released on drop");
        // A dead pid on this host: taken over.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        std::fs::write(
            dir.path().join(shard.lock_file()),
            format!("pid={dead}\nhost={}\n", host_name()),
        )
        .unwrap();
        let (_lock, message) = acquire_lock(dir.path(), shard).unwrap();
        assert!(message.unwrap().contains("stale"));
        // Another host's live-looking lock is refused.
        drop(_lock);
        std::fs::write(
            dir.path().join(shard.lock_file()),
            format!("pid={}\nhost=elsewhere\n", std::process::id()),
        )
        .unwrap();
        assert!(acquire_lock(dir.path(), shard).is_err());
    }
}
