//! Files derived from trial records, in the seed study's schemas.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::{TrialRecord, method_label};

/// Accuracy vs learning rate of one grid cell, averaged over seeds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CellCurve {
    /// The result-file key: the method, suffixed with the variant and the
    /// budget where an experiment has several of them for one method
    /// (`lora@constant:32/kaiming_uniform/all`, `lora@bs16/ep3`).
    pub kind: String,
    pub method: String,
    pub rank: usize,
    /// `alpha_rule/init/targets`.
    pub variant: String,
    pub batch_size: usize,
    pub epochs: usize,
    /// Descending, as the seed notebook orders its grid.
    pub lrs: Vec<f64>,
    /// Mean validation accuracy over seeds, per learning rate.
    pub acc: Vec<f64>,
    /// Seeds behind each mean.
    pub seeds: Vec<usize>,
    /// Accuracy of each seed, per learning rate.
    pub per_seed: Vec<Vec<f64>>,
}

impl CellCurve {
    /// `bs64/ep3`.
    pub fn budget(&self) -> String {
        crate::budget_label(self.batch_size, self.epochs)
    }
}

/// Groups trials into cells, sorted by (kind, rank).
pub fn cell_curves(trials: &[TrialRecord]) -> Vec<CellCurve> {
    let mut variants: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    let mut budgets: BTreeMap<&str, BTreeSet<(usize, usize)>> = BTreeMap::new();
    for t in trials {
        variants.entry(&t.method).or_default().insert(t.variant());
        budgets
            .entry(&t.method)
            .or_default()
            .insert((t.batch_size, t.epochs));
    }
    // (kind, method, rank, variant, batch size, epochs) -> lr bits -> accuracies
    type Cell = (String, String, usize, String, usize, usize);
    let mut cells: BTreeMap<Cell, BTreeMap<u64, Vec<f64>>> = BTreeMap::new();
    for t in trials {
        let v = t.variant();
        let mut suffix = Vec::new();
        if variants[t.method.as_str()].len() > 1 {
            suffix.push(v.clone());
        }
        if budgets[t.method.as_str()].len() > 1 {
            suffix.push(t.budget());
        }
        let kind = if suffix.is_empty() {
            t.method.clone()
        } else {
            format!("{}@{}", t.method, suffix.join("/"))
        };
        cells
            .entry((kind, t.method.clone(), t.rank, v, t.batch_size, t.epochs))
            .or_default()
            .entry(t.lr.to_bits())
            .or_default()
            .push(t.val_accuracy);
    }
    cells
        .into_iter()
        .map(
            |((kind, method, rank, variant, batch_size, epochs), by_lr)| {
                let mut points: Vec<(f64, Vec<f64>)> = by_lr
                    .into_iter()
                    .map(|(bits, accs)| (f64::from_bits(bits), accs))
                    .collect();
                points.sort_by(|a, b| b.0.total_cmp(&a.0));
                CellCurve {
                    kind,
                    method,
                    rank,
                    variant,
                    batch_size,
                    epochs,
                    lrs: points.iter().map(|p| p.0).collect(),
                    acc: points
                        .iter()
                        .map(|p| p.1.iter().sum::<f64>() / p.1.len() as f64)
                        .collect(),
                    seeds: points.iter().map(|p| p.1.len()).collect(),
                    per_seed: points.into_iter().map(|p| p.1).collect(),
                }
            },
        )
        .collect()
}

/// Best accuracy of a curve and the learning rate it was reached at; ties
/// go to the first point in the curve's order (the largest LR), as
/// `np.argmax` over the seed notebook's descending grid.
pub fn best_of_lr(curve: &CellCurve) -> Option<(f64, f64)> {
    let mut best: Option<(f64, f64)> = None;
    for (&lr, &acc) in curve.lrs.iter().zip(&curve.acc) {
        if best.is_none_or(|(b, _)| acc > b) {
            best = Some((acc, lr));
        }
    }
    best
}

/// One rank of `rank_x_lr_results.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RankEntry {
    pub lrs: Vec<f64>,
    pub acc: Vec<f64>,
    pub best: f64,
    pub best_lr: f64,
}

/// One method of `rank_x_lr_results.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RankLrEntry {
    pub name: String,
    /// Keyed by the rank as a string (`"16"`; `"0"` for full fine-tuning).
    pub ranks: BTreeMap<String, RankEntry>,
}

/// The seed notebook's `rank_x_lr_results.json`:
/// `{kind: {name, ranks: {"r": {lrs, acc, best, best_lr}}}}`.
pub fn rank_x_lr_results(curves: &[CellCurve]) -> BTreeMap<String, RankLrEntry> {
    let mut out: BTreeMap<String, RankLrEntry> = BTreeMap::new();
    for curve in curves {
        let Some((best, best_lr)) = best_of_lr(curve) else {
            continue;
        };
        out.entry(curve.kind.clone())
            .or_insert_with(|| RankLrEntry {
                name: method_label(&curve.method),
                ranks: BTreeMap::new(),
            })
            .ranks
            .insert(
                curve.rank.to_string(),
                RankEntry {
                    lrs: curve.lrs.clone(),
                    acc: curve.acc.clone(),
                    best,
                    best_lr,
                },
            );
    }
    out
}

/// One method of `lr_sweep_results.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LrSweepEntry {
    pub name: String,
    pub lrs: Vec<f64>,
    pub best_val_acc: Vec<f64>,
}

/// The seed notebook's single-rank sweep, `{kind: {name, lrs, best_val_acc}}`,
/// at `rank` (full fine-tuning, which has no rank, is included as is).
pub fn lr_sweep_results(curves: &[CellCurve], rank: usize) -> BTreeMap<String, LrSweepEntry> {
    curves
        .iter()
        .filter(|c| c.rank == rank || c.rank == 0)
        .map(|c| {
            (
                c.kind.clone(),
                LrSweepEntry {
                    name: method_label(&c.method),
                    lrs: c.lrs.clone(),
                    best_val_acc: c.acc.clone(),
                },
            )
        })
        .collect()
}

/// Every trial as one CSV row (the loss curve joined by `;`).
pub fn trials_csv(trials: &[TrialRecord]) -> String {
    let mut out = String::from(
        "method,rank,alpha_rule,lora_alpha,scaling,init,targets,batch_size,epochs,lr,seed,val_accuracy,val_loss,diverged,steps,seconds,train_loss,backend\n",
    );
    for t in trials {
        let loss: Vec<String> = t.train_loss.iter().map(|l| format!("{l:.6}")).collect();
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{:e},{},{},{},{},{},{:.3},{},{}\n",
            t.method,
            t.rank,
            t.alpha_rule,
            t.lora_alpha,
            t.scaling,
            t.init,
            t.targets,
            t.batch_size,
            t.epochs,
            t.lr,
            t.seed,
            t.val_accuracy,
            t.val_loss,
            t.diverged,
            t.steps,
            t.seconds,
            loss.join(";"),
            t.provenance.backend,
        ));
    }
    out
}
