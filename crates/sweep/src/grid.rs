//! A grid cell's trials: the (lr, seed) members it enumerates, their keys
//! and record stubs, and the population that trains them. Everything that
//! walks a cell's members uses [`members`], so runs, resumes, shards and
//! status tables agree on what a cell holds.

use nn::ModelConfig;
use records::{TrialKey, TrialRecord};
use train::{AdamWConfig, Member};

use crate::config::{Cell, ExperimentConfig};

/// A cell's members, learning rate major: every seed of the first LR, then
/// of the next.
pub fn members(lrs: &[f64], seeds: &[u64]) -> Vec<(f64, u64)> {
    lrs.iter()
        .flat_map(|&lr| seeds.iter().map(move |&seed| (lr, seed)))
        .collect()
}

/// The seed of a member's data order: the task's data seed and the trial seed.
pub fn data_order_seed<M: ModelConfig>(config: &ExperimentConfig<M>, seed: u64) -> u64 {
    config
        .task
        .data_seed
        .wrapping_mul(1_000_003)
        .wrapping_add(seed)
}

/// The trainer's members for `(lr, seed)` pairs of `config`'s grid.
pub fn population<M: ModelConfig>(
    config: &ExperimentConfig<M>,
    members: &[(f64, u64)],
) -> Vec<Member> {
    members
        .iter()
        .map(|&(lr, seed)| Member {
            lr,
            data_seed: data_order_seed(config, seed),
        })
        .collect()
}

/// AdamW with PyTorch's defaults and `weight_decay`.
pub fn adamw(weight_decay: f64) -> AdamWConfig {
    AdamWConfig {
        weight_decay,
        ..AdamWConfig::default()
    }
}

/// The key of the trial at (cell, lr, seed) of `config`.
pub fn trial_key<M: ModelConfig>(
    config: &ExperimentConfig<M>,
    cell: &Cell,
    lr: f64,
    seed: u64,
) -> TrialKey {
    trial_stub(config, cell, lr, seed).key()
}

/// Every trial key of `config`'s grid.
pub fn keys<M: ModelConfig>(config: &ExperimentConfig<M>) -> std::collections::HashSet<TrialKey> {
    let lrs = config.finetune.lrs.values().unwrap_or_default();
    config
        .cells()
        .iter()
        .flat_map(|cell| {
            members(&lrs, &config.grid.seeds)
                .into_iter()
                .map(|(lr, seed)| trial_key(config, cell, lr, seed))
        })
        .collect()
}

/// The records of `trials` inside `config`'s grid, and how many are not.
/// Every summary (run's table, status, report, merge's derived files) reads
/// only the grid's records; the others stay in the records files.
pub fn within_grid<M: ModelConfig>(
    config: &ExperimentConfig<M>,
    trials: &[TrialRecord],
) -> (Vec<TrialRecord>, usize) {
    let keys = keys(config);
    let inside: Vec<TrialRecord> = trials
        .iter()
        .filter(|t| keys.contains(&t.key()))
        .cloned()
        .collect();
    let outside = trials.len() - inside.len();
    (inside, outside)
}

/// How many records of `trials` lie outside `config`'s grid (what
/// [`within_grid`] leaves out), without copying the others.
pub fn outside_count<M: ModelConfig>(
    config: &ExperimentConfig<M>,
    trials: &[TrialRecord],
) -> usize {
    let keys = keys(config);
    trials.iter().filter(|t| !keys.contains(&t.key())).count()
}

/// The warning every command gives when records lie outside the grid.
pub fn outside_note(outside: usize, total: usize, place: &std::path::Path) -> Option<String> {
    (outside > 0).then(|| {
        format!(
            "{outside} of {total} records in {} lie outside the config's grid (other \
             methods, ranks, learning rates, seeds or axes): kept there, left out of \
             every summary",
            place.display()
        )
    })
}

/// A record carrying only a trial's grid coordinates (for its key).
pub fn trial_stub<M: ModelConfig>(
    config: &ExperimentConfig<M>,
    cell: &Cell,
    lr: f64,
    seed: u64,
) -> TrialRecord {
    let (lora_alpha, scaling) = cell
        .lora
        .as_ref()
        .map_or((0.0, 0.0), |l| (l.lora_alpha, l.scaling()));
    TrialRecord {
        experiment: config.name.clone(),
        method: cell.method.name().to_string(),
        rank: cell.rank,
        alpha_rule: cell.alpha_label(),
        lora_alpha,
        scaling,
        loraplus_lr_ratio: cell.loraplus_lr_ratio(),
        init: cell.init_label(),
        targets: cell.targets_label(config),
        adapter_compute: cell
            .lora
            .as_ref()
            .map(|l| crate::config::compute_label(l.compute).to_string()),
        batch_size: cell.batch_size,
        epochs: cell.epochs,
        lr,
        seed,
        train_loss: Vec::new(),
        val_accuracy: f64::NAN,
        val_loss: f64::NAN,
        steps: 0,
        seconds: 0.0,
        diverged: false,
        config_hash: config.results_hash(),
        provenance: records::Provenance {
            backend: String::new(),
            device: String::new(),
            git_revision: String::new(),
            git_dirty: None,
            lrscape_version: String::new(),
        },
    }
}

/// The records of `trials` that belong to `cell`: the same key up to the
/// learning rate and seed.
pub fn cell_trials<M: ModelConfig>(
    config: &ExperimentConfig<M>,
    cell: &Cell,
    trials: &[TrialRecord],
) -> Vec<TrialRecord> {
    let cell_of = |t: &TrialRecord| {
        let mut key = t.key();
        (key.lr_bits, key.seed) = (0, 0);
        key
    };
    let own_cell = cell_of(&trial_stub(config, cell, 0.0, 0));
    trials
        .iter()
        .filter(|t| cell_of(t) == own_cell)
        .cloned()
        .collect()
}
