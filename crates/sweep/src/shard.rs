//! Sharded sweeps: `lrscape run --shard I/N`, `lrscape merge`, per-shard status.
//!
//! - [`partition`]: the grid's cells split into N shards, balanced by cost
//!   (members × steps) with LPT greedy on a stable order, so a shard index
//!   means the same cells on every machine and every run.
//! - Each shard appends to its own `trials.shard-I-of-N.jsonl` in the shared
//!   output directory (no two processes ever write one file) and holds
//!   `trials.shard-I-of-N.lock` while it runs (an OS file lock, released
//!   when the process ends, so a requeued task simply takes it again).
//! - [`gather`] reads `trials.jsonl` and every shard
//!   file, drops exact duplicates (a requeued task may record a trial twice)
//!   and refuses conflicting ones; [`merge`] writes the merged `trials.jsonl` in grid
//!   order and the derived files, and says which cells are still missing.

use nn::ModelConfig;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use records::{TrialKey, TrialRecord};

use crate::config::{Cell, ExperimentConfig};
use crate::grid::trial_key;
pub use crate::layout::Shard;
use crate::lock::Lock;
use crate::store::{gather, read_trials, shard_files, write_atomic, write_derived};

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
        load[target] = load[target].saturating_add(costs[item]);
        shards[target].push(item);
    }
    for shard in &mut shards {
        shard.sort_unstable();
    }
    shards
}

/// Work of each cell of `config`: population size × steps × batch size
/// (member-examples, so cells of different budgets weigh what they cost).
pub(crate) fn cell_costs<M: ModelConfig>(config: &ExperimentConfig<M>) -> Vec<u64> {
    let members = config.finetune.lrs.values().map_or(0, |l| l.len()) * config.grid.seeds.len();
    // Text: its blocks once tokenized; a cost of 1 per step keeps cells of
    // different budgets apart even when the file cannot be read.
    let n = crate::task::finetune_train_len(config).unwrap_or(1);
    config
        .cells()
        .iter()
        .map(|cell| {
            members
                .saturating_mul(cell.steps(n))
                .saturating_mul(cell.batch_size) as u64
        })
        .collect()
}

/// Indices (into `config.cells()`) of the cells of `shard`.
pub fn shard_cells<M: ModelConfig>(config: &ExperimentConfig<M>, shard: Shard) -> Vec<usize> {
    partition(&cell_costs(config), shard.count)
        .into_iter()
        .nth(shard.index)
        .unwrap_or_default()
}

/// The shards of `out` whose lock is held now, with the holder.
pub(crate) fn running_shards(out: &Path) -> anyhow::Result<Vec<(Shard, String)>> {
    let entries = std::fs::read_dir(out)
        .map_err(|e| anyhow::anyhow!("cannot list {}: {e}", out.display()))?;
    let mut running: Vec<(Shard, String)> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| Shard::from_lock_file(&e.file_name().to_string_lossy()))
        .filter_map(|shard| {
            crate::lock::holder(&out.join(shard.lock_file())).map(|holder| (shard, holder))
        })
        .collect();
    running.sort_by_key(|(s, _)| (s.count, s.index));
    Ok(running)
}

/// Takes the lock of `shard` in `out`: refused while another process holds
/// it, or while a plain run writes `trials.jsonl` there (it would train the
/// shard's trials too).
pub fn acquire_lock(out: &Path, shard: Shard) -> anyhow::Result<Lock> {
    // Own lock first, then the check: a plain run takes its lock, then
    // checks the shards', so one of the two always sees the other.
    let lock = Lock::acquire(
        &out.join(shard.lock_file()),
        &format!("lrscape run --shard {shard}"),
    )
    .map_err(|e| anyhow::anyhow!("shard {shard} is already running: {e:#}"))?;
    if let Some(holder) = crate::lock::holder(&out.join(crate::layout::LOCK)) {
        anyhow::bail!(
            "{} is being written by {holder}: a shard beside it would train the same trials",
            out.display()
        );
    }
    Ok(lock)
}

/// The grid's trial keys, per cell of `config.cells()`, in the order a
/// single-process run records them (learning rates, then seeds).
pub(crate) fn grid_keys<M: ModelConfig>(
    config: &ExperimentConfig<M>,
) -> Vec<(Cell, Vec<TrialKey>)> {
    let lrs = config.finetune.lrs.values().unwrap_or_default();
    config
        .cells()
        .into_iter()
        .map(|cell| {
            let keys = crate::grid::members(&lrs, &config.grid.seeds)
                .into_iter()
                .map(|(lr, seed)| trial_key(config, &cell, lr, seed))
                .collect();
            (cell, keys)
        })
        .collect()
}

/// Sorts records into grid order (cell, learning rate, seed, as a
/// single-process run appends them); records outside the grid keep their
/// order after those of the grid.
pub(crate) fn sort_by_grid<M: ModelConfig>(
    config: &ExperimentConfig<M>,
    trials: &mut [TrialRecord],
) {
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
pub fn missing_cells<M: ModelConfig>(
    config: &ExperimentConfig<M>,
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

/// Human-readable lines for [`missing_cells`], one per shard: which cells are missing, each shard with the command that
/// reruns it (`command` is `lrscape run` with the flags that name the study,
/// `--shard I/N` appended).
pub fn missing_report(missing: &[MissingCell], command: &str) -> String {
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
                "shard {s}: {} cell(s) missing: {}; rerun `{command} --shard {s}`\n",
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
pub fn merge<M: ModelConfig>(
    config: &ExperimentConfig<M>,
    out: &Path,
) -> anyhow::Result<MergeSummary> {
    // One writer of trials.jsonl at a time: never beside a plain run.
    let _lock = Lock::acquire(&out.join(crate::layout::LOCK), "lrscape merge")?;
    let gathered = gather(out)?;
    crate::store::check_setup(config, out, &gathered.trials)?;
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
    write_atomic(&out.join(crate::layout::TRIALS), &text)?;
    write_derived(config, out, &trials)?;
    let missing = missing_cells(config, &trials, shard_count(out)?);
    let mut warnings = gathered.warnings;
    let outside = crate::grid::outside_count(config, &trials);
    warnings.extend(crate::grid::outside_note(outside, trials.len(), out));
    Ok(MergeSummary {
        trials: trials.len(),
        duplicates: gathered.duplicates,
        files: gathered.files,
        missing,
        warnings,
    })
}

/// Per-shard progress of `out` from its records (any file counts) and locks.
pub fn shard_status<M: ModelConfig>(
    config: &ExperimentConfig<M>,
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
        let state = match crate::lock::holder(&out.join(shard.lock_file())) {
            Some(holder) => format!("running: {holder}"),
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
}
