//! Files derived from trial records, in the seed study's schemas.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::{TrialRecord, method_label};

/// A metric vs learning rate of one grid cell, averaged over seeds:
/// validation accuracy ([`cell_curves`]) or another [`Metric`]
/// ([`cell_curves_of`]).
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
    /// Mean over seeds, per learning rate, of the curve's metric
    /// (validation accuracy unless built by [`cell_curves_of`]).
    pub acc: Vec<f64>,
    /// Seeds behind each mean.
    pub seeds: Vec<usize>,
    /// The metric of each seed, per learning rate.
    pub per_seed: Vec<Vec<f64>>,
    /// Mean validation loss over the finite seeds, per learning rate: what
    /// breaks a tie of means ([`best_lr_index`]).
    pub loss: Vec<f64>,
}

impl CellCurve {
    /// Whether `trial` is one of this cell's (method, rank, variant, budget).
    pub fn holds(&self, trial: &TrialRecord) -> bool {
        trial.method == self.method
            && trial.rank == self.rank
            && (trial.batch_size, trial.epochs) == (self.batch_size, self.epochs)
            && trial.variant() == self.variant
    }

    /// `bs64/ep3`.
    pub fn budget(&self) -> String {
        crate::budget_label(self.batch_size, self.epochs)
    }
}

/// What a curve plots of each trial.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// `val_accuracy`: per example for a classifier, per token for a
    /// language model. Higher is better.
    Accuracy,
    /// `exp(val_loss)`, the validation loss per target in nats: a language
    /// model's perplexity. Lower is better.
    Perplexity,
}

impl Metric {
    pub fn of(self, trial: &TrialRecord) -> f64 {
        match self {
            Metric::Accuracy => trial.val_accuracy,
            Metric::Perplexity => trial.val_loss.exp(),
        }
    }

    pub fn higher_is_better(self) -> bool {
        self == Metric::Accuracy
    }

    /// Whether `a` is strictly better than `b`.
    pub fn better(self, a: f64, b: f64) -> bool {
        if self.higher_is_better() {
            a > b
        } else {
            a < b
        }
    }
}

/// Groups trials into cells, sorted by (kind, rank): validation accuracy.
pub fn cell_curves(trials: &[TrialRecord]) -> Vec<CellCurve> {
    cell_curves_of(trials, Metric::Accuracy)
}

/// Groups trials into cells, sorted by (kind, rank), each point the mean of
/// `metric` over seeds.
pub fn cell_curves_of(trials: &[TrialRecord], metric: Metric) -> Vec<CellCurve> {
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
    let mut cells: BTreeMap<Cell, BTreeMap<u64, Vec<(f64, f64)>>> = BTreeMap::new();
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
            .push((metric.of(t), t.val_loss));
    }
    cells
        .into_iter()
        .map(
            |((kind, method, rank, variant, batch_size, epochs), by_lr)| {
                let mut points: Vec<(f64, Vec<f64>, f64)> = by_lr
                    .into_iter()
                    .map(|(bits, seeds)| {
                        let losses: Vec<f64> = seeds
                            .iter()
                            .map(|s| s.1)
                            .filter(|l| l.is_finite())
                            .collect();
                        let loss = if losses.is_empty() {
                            f64::NAN
                        } else {
                            losses.iter().sum::<f64>() / losses.len() as f64
                        };
                        (
                            f64::from_bits(bits),
                            seeds.into_iter().map(|s| s.0).collect(),
                            loss,
                        )
                    })
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
                    loss: points.iter().map(|p| p.2).collect(),
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
    best_of_lr_by(curve, Metric::Accuracy)
}

/// The best finite value of a `metric` curve (the highest accuracy, the
/// lowest perplexity) and its learning rate, by [`best_lr_index`].
pub fn best_of_lr_by(curve: &CellCurve, metric: Metric) -> Option<(f64, f64)> {
    best_lr_index(curve, metric).map(|i| (curve.acc[i], curve.lrs[i]))
}

/// The index of a cell's best learning rate: the best finite mean of the
/// metric; means equal to within 1e-12 (a tie, common where several LRs all
/// score 100%) go to the lowest mean validation loss, then to the largest LR.
pub fn best_lr_index(curve: &CellCurve, metric: Metric) -> Option<usize> {
    let mut best: Option<usize> = None;
    for (i, &value) in curve.acc.iter().enumerate() {
        if !value.is_finite() {
            continue;
        }
        let Some(b) = best else {
            best = Some(i);
            continue;
        };
        let kept = curve.acc[b];
        let tie = (value - kept).abs() <= 1e-12 * value.abs().max(kept.abs()).max(1.0);
        let loss = |j: usize| curve.loss.get(j).copied().unwrap_or(f64::NAN);
        let lower_loss = loss(i) < loss(b) || (loss(b).is_nan() && !loss(i).is_nan());
        if (!tie && metric.better(value, kept)) || (tie && lower_loss) {
            best = Some(i);
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
        "method,rank,alpha_rule,lora_alpha,scaling,init,targets,batch_size,epochs,lr,seed,val_accuracy,val_loss,diverged,steps,seconds,train_loss,backend,adapter_compute\n",
    );
    for t in trials {
        let loss: Vec<String> = t.train_loss.iter().map(|l| format!("{l:.6}")).collect();
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{:e},{},{},{},{},{},{:.3},{},{},{}\n",
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
            t.adapter_compute.as_deref().unwrap_or(""),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perplexity_curves_take_exp_of_the_loss_and_the_lowest_is_best() {
        let mut trials = Vec::new();
        // (lr, seed 0 loss, seed 1 loss); the middle LR is best, the top one diverged.
        for (lr, losses) in [
            (1e-2, [f64::NAN, f64::NAN]),
            (1e-3, [1.0, 1.2]),
            (1e-4, [2.0, 2.0]),
        ] {
            for (seed, loss) in losses.into_iter().enumerate() {
                let mut t = TrialRecord::synthetic("lora", 4, lr, seed as u64, 0.5);
                t.val_loss = loss;
                trials.push(t);
            }
        }
        let curves = cell_curves_of(&trials, Metric::Perplexity);
        assert_eq!(curves.len(), 1);
        let c = &curves[0];
        assert_eq!(c.lrs, vec![1e-2, 1e-3, 1e-4]);
        let want = (1f64.exp() + 1.2f64.exp()) / 2.0;
        assert!((c.acc[1] - want).abs() < 1e-12);
        assert!(c.acc[0].is_nan());
        assert_eq!(best_of_lr_by(c, Metric::Perplexity), Some((c.acc[1], 1e-3)));
        // Every accuracy is 0.5, a tie: the lowest finite mean loss decides.
        assert_eq!(
            best_of_lr(&cell_curves(&trials)[0]).map(|b| b.1),
            Some(1e-3)
        );
        assert!(Metric::Perplexity.better(2.0, 3.0) && Metric::Accuracy.better(3.0, 2.0));
    }

    #[test]
    fn a_tie_of_means_goes_to_the_lowest_validation_loss_not_the_largest_lr() {
        // Full fine-tuning scores 1.0 at three LRs; the middle one has the
        // lowest loss. 1e-4 scores less, with a lower loss still.
        let mut trials = Vec::new();
        for (lr, acc, loss) in [
            (1e-2, 1.0, 0.30),
            (3e-3, 1.0, 0.05),
            (1e-3, 1.0, 0.10),
            (1e-4, 0.9, 0.01),
        ] {
            for seed in 0..3 {
                let mut t = TrialRecord::synthetic("full", 0, lr, seed, acc);
                t.val_loss = loss;
                trials.push(t);
            }
        }
        let curve = &cell_curves(&trials)[0];
        assert_eq!(best_lr_index(curve, Metric::Accuracy), Some(1));
        assert_eq!(best_of_lr(curve), Some((1.0, 3e-3)));
        // Without losses to tell them apart, the first (largest) LR.
        let mut blind = curve.clone();
        blind.loss = vec![f64::NAN; 4];
        assert_eq!(best_lr_index(&blind, Metric::Accuracy), Some(0));
        // A strictly better mean wins whatever its loss.
        blind.acc[3] = 1.0 + 1e-9;
        assert_eq!(best_lr_index(&blind, Metric::Accuracy), Some(3));
    }
}
