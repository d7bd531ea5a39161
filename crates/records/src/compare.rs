//! How the methods of an experiment compare, from its seed-mean curves:
//! each cell's best point and good-LR band, how far apart the methods land
//! after LR tuning and at LoRA's LR, the best LR across ranks and budgets,
//! and perplexity's counterparts. The report renders these; nothing here
//! formats text.

use std::collections::{BTreeMap, BTreeSet};

use crate::analysis::{BestPoint, best_point, held_out, lr_band};
use crate::{CellCurve, Metric, TrialRecord};

/// The lowest perplexity of every cell, ordered as the accuracy table.
pub fn perplexity_rows(trials: &[TrialRecord]) -> Vec<BestPoint> {
    let mut rows: Vec<BestPoint> = crate::analysis::curves_of(trials, Metric::Perplexity)
        .iter()
        .filter_map(|c| crate::analysis::best_point_by(c, Metric::Perplexity))
        .collect();
    rows.sort_by(|a, b| row_order(a).cmp(&row_order(b)));
    rows
}

/// Per method kind (full fine-tuning apart), the adapter rank with the
/// lowest best perplexity, and whether the next-best rank is inside its
/// 95% CI (then the data do not single out one rank).
pub fn best_rank_by_perplexity(rows: &[BestPoint]) -> Vec<(String, usize, f64, bool)> {
    let mut kinds: Vec<&str> = rows
        .iter()
        .filter(|r| r.rank > 0)
        .map(|r| r.kind.as_str())
        .collect();
    kinds.sort_unstable();
    kinds.dedup();
    kinds
        .into_iter()
        .filter_map(|kind| {
            let mut cells: Vec<&BestPoint> = rows
                .iter()
                .filter(|r| r.kind == kind && r.rank > 0)
                .collect();
            cells.sort_by(|a, b| a.mean.total_cmp(&b.mean));
            let best = cells.first()?;
            let tied = cells
                .get(1)
                .is_some_and(|next| next.mean <= best.mean + best.half_width.max(0.0));
            Some((best.label.clone(), best.rank, best.mean, tied))
        })
        .collect()
}

pub fn trial_lrs(trials: &[TrialRecord]) -> Vec<f64> {
    sorted_values(
        trials
            .iter()
            .map(|t| t.lr.to_bits())
            .collect::<BTreeSet<u64>>()
            .into_iter()
            .map(f64::from_bits),
    )
}

/// How far apart the methods' perplexities land at one rank, each at its own
/// best LR, and all at LoRA's best LR.
#[derive(Debug, Clone, PartialEq)]
pub struct PerplexitySpread {
    pub rank: usize,
    /// (label, best perplexity), lowest first.
    pub tuned: Vec<(String, f64)>,
    /// LoRA's best LR and every method's perplexity there, lowest first.
    pub at_lora_lr: Option<(f64, Vec<(String, f64)>)>,
}

/// `worst / best − 1` of a list sorted lowest first; NaN with fewer than
/// two values (nothing to compare).
pub fn relative_spread(values: &[(String, f64)]) -> f64 {
    match values {
        [best, .., worst] => worst.1 / best.1 - 1.0,
        _ => f64::NAN,
    }
}

/// Per adapter rank with two or more methods (one budget and variant per
/// method, as in the language-modelling study): the perplexity spreads.
pub fn perplexity_spreads(rows: &[BestPoint], trials: &[TrialRecord]) -> Vec<PerplexitySpread> {
    let curves = crate::analysis::curves_of(trials, Metric::Perplexity);
    let mut ranks: Vec<usize> = rows.iter().map(|r| r.rank).filter(|&r| r > 0).collect();
    ranks.sort_unstable();
    ranks.dedup();
    let by_value = |a: &(String, f64), b: &(String, f64)| a.1.total_cmp(&b.1);
    ranks
        .into_iter()
        .filter_map(|rank| {
            let at: Vec<&BestPoint> = rows.iter().filter(|r| r.rank == rank).collect();
            if at.len() < 2 {
                return None;
            }
            let mut tuned: Vec<(String, f64)> =
                at.iter().map(|b| (b.label.clone(), b.mean)).collect();
            tuned.sort_by(by_value);
            let at_lora_lr = at.iter().find(|b| b.method == "lora").map(|lora| {
                let mut values: Vec<(String, f64)> = curves
                    .iter()
                    .filter(|c| c.rank == rank)
                    .filter_map(|c| {
                        let i = c.lrs.iter().position(|&lr| lr == lora.lr)?;
                        Some((crate::analysis::curve_label(c), c.acc[i]))
                    })
                    .filter(|v| v.1.is_finite())
                    .collect();
                values.sort_by(by_value);
                (lora.lr, values)
            });
            Some(PerplexitySpread {
                rank,
                tuned,
                at_lora_lr,
            })
        })
        .collect()
}

/// One method × rank row of the report's table.
#[derive(Debug, Clone, PartialEq)]
pub struct CellSummary {
    /// Best LR (the one maximizing the mean over seeds) and the accuracy
    /// there, with its 95% CI.
    pub best: BestPoint,
    /// LRs whose mean accuracy lies within the best's 95% CI
    /// ([`lr_band`]), ascending.
    pub band: Vec<f64>,
    /// The accuracy of each seed at the LR chosen on the other seeds,
    /// averaged ([`held_out`]), and the seeds behind it.
    pub held_out: Option<(f64, usize)>,
    /// LRs in the cell's grid.
    pub n_lrs: usize,
}

/// A row per cell with a finite accuracy, ordered by rank, then kind.
pub fn summarize(curves: &[CellCurve], trials: &[TrialRecord]) -> Vec<CellSummary> {
    let mut rows: Vec<CellSummary> = curves
        .iter()
        .filter_map(|c| {
            Some(CellSummary {
                best: best_point(c)?,
                band: lr_band(c, Metric::Accuracy),
                held_out: held_out(trials, c, Metric::Accuracy),
                n_lrs: c.lrs.len(),
            })
        })
        .collect();
    rows.sort_by(|a, b| row_order(&a.best).cmp(&row_order(&b.best)));
    rows
}

/// Rank, then the kind without its budget, then the budget numerically
/// (bs16 before bs64 before bs256).
pub fn row_order(b: &BestPoint) -> (usize, &str, usize, usize) {
    let base = b
        .kind
        .strip_suffix(b.budget.as_str())
        .map_or(b.kind.as_str(), |k| k.trim_end_matches(['/', '@']));
    (b.rank, base, b.batch_size, b.epochs)
}

/// One method's accuracy in a comparison across methods.
#[derive(Debug, Clone, PartialEq)]
pub struct MethodAcc {
    pub kind: String,
    pub label: String,
    pub acc: f64,
}

/// How far apart the methods are at one rank (and budget).
#[derive(Debug, Clone, PartialEq)]
pub struct Spread {
    pub rank: usize,
    /// The fine-tuning budget compared at, where the experiment has several
    /// (methods are compared within a budget, never across).
    pub budget: Option<String>,
    /// The one LR every method was read at, or `None` after LR tuning (each
    /// method at its own best LR).
    pub lr: Option<f64>,
    /// Descending in accuracy.
    pub methods: Vec<MethodAcc>,
    /// Methods without a trial at `lr`.
    pub missing: Vec<String>,
}

impl Spread {
    /// Best minus worst accuracy (a fraction; ×100 for points).
    pub fn spread(&self) -> f64 {
        match (self.methods.first(), self.methods.last()) {
            (Some(top), Some(bottom)) => top.acc - bottom.acc,
            _ => f64::NAN,
        }
    }
    pub fn top(&self) -> Option<&MethodAcc> {
        self.methods.first()
    }
    pub fn bottom(&self) -> Option<&MethodAcc> {
        self.methods.last()
    }

    /// `4`, or `4 · bs16/ep3` where budgets vary.
    pub fn place(&self) -> String {
        match &self.budget {
            Some(budget) => format!("{} · {budget}", self.rank),
            None => self.rank.to_string(),
        }
    }
}

pub fn adapter_ranks(curves: &[CellCurve]) -> BTreeSet<usize> {
    curves.iter().map(|c| c.rank).filter(|r| *r > 0).collect()
}

/// The groups methods are compared in: each adapter rank, times each budget
/// where the experiment has several (`None` where it has one).
pub fn comparison_groups(curves: &[CellCurve]) -> Vec<(usize, Option<(usize, usize)>)> {
    let budgets: BTreeSet<(usize, usize)> =
        curves.iter().map(|c| (c.batch_size, c.epochs)).collect();
    adapter_ranks(curves)
        .into_iter()
        .flat_map(|rank| {
            let per_budget: Vec<Option<(usize, usize)>> = if budgets.len() > 1 {
                budgets.iter().copied().map(Some).collect()
            } else {
                vec![None]
            };
            per_budget.into_iter().map(move |b| (rank, b))
        })
        .collect()
}

pub fn in_group(c: &CellCurve, rank: usize, budget: Option<(usize, usize)>) -> bool {
    c.rank == rank && budget.is_none_or(|b| (c.batch_size, c.epochs) == b)
}

pub fn budget_name(budget: Option<(usize, usize)>) -> Option<String> {
    budget.map(|(b, e)| crate::budget_label(b, e))
}

pub fn sorted_desc(mut methods: Vec<MethodAcc>) -> Vec<MethodAcc> {
    methods.sort_by(|a, b| b.acc.total_cmp(&a.acc).then_with(|| a.kind.cmp(&b.kind)));
    methods
}

/// One adapter kind's best learning rate at each of its ranks.
#[derive(Debug, Clone, PartialEq)]
pub struct LrAcrossRanks {
    pub kind: String,
    pub label: String,
    /// `bs64/ep3`.
    pub budget: String,
    /// `(rank, best LR)`, ascending in rank.
    pub best: Vec<(usize, f64)>,
}

impl LrAcrossRanks {
    /// Best LR at the largest rank over the best LR at the smallest: 1 when
    /// the optimum does not move with the rank.
    pub fn drift(&self) -> f64 {
        match (self.best.first(), self.best.last()) {
            (Some(first), Some(last)) => last.1 / first.1,
            _ => f64::NAN,
        }
    }
}

/// Every adapter kind's best LR per rank (from the report's rows), in kind
/// order; kinds with one rank are included (their drift is 1).
pub fn best_lr_across_ranks(rows: &[CellSummary]) -> Vec<LrAcrossRanks> {
    let mut by_kind: BTreeMap<(&str, usize, usize, &str), LrAcrossRanks> = BTreeMap::new();
    for row in rows.iter().filter(|r| r.best.rank > 0) {
        let b = &row.best;
        let (_, base, batch, epochs) = row_order(b);
        by_kind
            .entry((base, batch, epochs, &b.kind))
            .or_insert_with(|| LrAcrossRanks {
                kind: b.kind.clone(),
                label: b.label.clone(),
                budget: b.budget.clone(),
                best: Vec::new(),
            })
            .best
            .push((b.rank, b.lr));
    }
    by_kind
        .into_values()
        .map(|mut k| {
            k.best.sort_by_key(|&(rank, _)| rank);
            k
        })
        .collect()
}

/// One method's (variant's, rank's) best point at each fine-tuning budget.
#[derive(Debug, Clone, PartialEq)]
pub struct LrAcrossBudgets {
    pub label: String,
    pub rank: usize,
    /// Ascending in (batch size, epochs).
    pub best: Vec<BudgetBest>,
}

/// The best LR of one budget, the mean accuracy there, and its LR band.
#[derive(Debug, Clone, PartialEq)]
pub struct BudgetBest {
    pub batch_size: usize,
    pub epochs: usize,
    pub lr: f64,
    pub acc: f64,
    /// LRs within the best's 95% CI ([`lr_band`]), ascending.
    pub band: Vec<f64>,
}

/// A budget whose best accuracy is below this fraction of the method's best
/// budget did not learn: its argmax LR is noise and is left out of drifts.
pub const LEARNED_FRACTION: f64 = 0.5;

impl LrAcrossBudgets {
    /// Whether the budget at `i` learned (best accuracy at least
    /// [`LEARNED_FRACTION`] of the best over budgets).
    pub fn learned(&self, i: usize) -> bool {
        let top = self.best.iter().map(|b| b.acc).fold(f64::NAN, f64::max);
        self.best
            .get(i)
            .is_some_and(|b| b.acc >= LEARNED_FRACTION * top)
    }

    fn learned_points(&self) -> impl Iterator<Item = &BudgetBest> {
        self.best
            .iter()
            .enumerate()
            .filter(|(i, _)| self.learned(*i))
            .map(|(_, b)| b)
    }

    /// Largest over smallest best LR across the budgets that learned: 1
    /// when the optimum does not move with the budget.
    pub fn drift(&self) -> f64 {
        let (lo, hi) = self
            .learned_points()
            .fold((f64::INFINITY, 0.0f64), |(lo, hi), b| {
                (lo.min(b.lr), hi.max(b.lr))
            });
        if hi > 0.0 { hi / lo } else { f64::NAN }
    }

    /// Per value of the other axis, the best LR at the largest batch size
    /// over the best LR at the smallest (`(epochs, batch ratio, LR ratio)`),
    /// or with `by_epochs` the same along epochs at each batch size; only
    /// budgets that learned count.
    pub fn axis_ratios(&self, by_epochs: bool) -> Vec<(usize, f64, f64)> {
        let mut lines: BTreeMap<usize, Vec<(usize, f64)>> = BTreeMap::new();
        for p in self.learned_points() {
            let (fixed, moving) = if by_epochs {
                (p.batch_size, p.epochs)
            } else {
                (p.epochs, p.batch_size)
            };
            lines.entry(fixed).or_default().push((moving, p.lr));
        }
        lines
            .into_iter()
            .filter(|(_, line)| line.len() > 1)
            .map(|(fixed, mut line)| {
                line.sort_by_key(|p| p.0);
                let (first, last) = (line[0], line[line.len() - 1]);
                (fixed, last.0 as f64 / first.0 as f64, last.1 / first.1)
            })
            .collect()
    }
}

/// Per (method, variant, rank) with more than one budget: the best LR and
/// accuracy at each budget, in row order.
pub fn best_lr_across_budgets(rows: &[CellSummary]) -> Vec<LrAcrossBudgets> {
    let mut variants: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for r in rows {
        variants
            .entry(&r.best.method)
            .or_default()
            .insert(&r.best.variant);
    }
    let mut groups: BTreeMap<(&str, &str, usize), LrAcrossBudgets> = BTreeMap::new();
    for r in rows {
        let b = &r.best;
        let label = if variants[b.method.as_str()].len() > 1 {
            format!("{} [{}]", crate::method_label(&b.method), b.variant)
        } else {
            crate::method_label(&b.method)
        };
        groups
            .entry((&b.method, &b.variant, b.rank))
            .or_insert_with(|| LrAcrossBudgets {
                label,
                rank: b.rank,
                best: Vec::new(),
            })
            .best
            .push(BudgetBest {
                batch_size: b.batch_size,
                epochs: b.epochs,
                lr: b.lr,
                acc: b.mean,
                band: r.band.clone(),
            });
    }
    groups
        .into_values()
        .filter(|g| g.best.len() > 1)
        .map(|mut g| {
            g.best.sort_by_key(|p| (p.batch_size, p.epochs));
            g
        })
        .collect()
}

/// The typical ratio between neighbouring learning rates of a grid (the
/// median over neighbours): the finest LR shift a grid can resolve.
pub fn lr_grid_step(lrs: &[f64]) -> Option<f64> {
    let mut lrs: Vec<f64> = lrs.iter().copied().filter(|l| *l > 0.0).collect();
    lrs.sort_by(f64::total_cmp);
    lrs.dedup();
    let mut steps: Vec<f64> = lrs.windows(2).map(|w| w[1] / w[0]).collect();
    steps.sort_by(f64::total_cmp);
    steps.get(steps.len().checked_sub(1)? / 2).copied()
}

/// Per adapter rank (and budget) with at least two methods: the spread of
/// the methods' best accuracies, each at its own best LR (after LR tuning).
pub fn spread_after_tuning(curves: &[CellCurve]) -> Vec<Spread> {
    comparison_groups(curves)
        .into_iter()
        .filter_map(|(rank, budget)| {
            let methods: Vec<MethodAcc> = curves
                .iter()
                .filter(|c| in_group(c, rank, budget))
                .filter_map(best_point)
                .map(|p| MethodAcc {
                    kind: p.kind,
                    label: p.label,
                    acc: p.mean,
                })
                .collect();
            (methods.len() >= 2).then(|| Spread {
                rank,
                budget: budget_name(budget),
                lr: None,
                methods: sorted_desc(methods),
                missing: Vec::new(),
            })
        })
        .collect()
}

pub fn same_lr(a: f64, b: f64) -> bool {
    a == b || (a - b).abs() <= 1e-9 * a.abs().max(b.abs())
}

/// Per adapter rank (and budget): every method read at the one LR that is
/// best for LoRA there, the way a single-LR comparison would report them.
/// Groups without a LoRA cell, or with fewer than two methods at that LR,
/// are left out.
pub fn spread_at_lora_lr(curves: &[CellCurve]) -> Vec<Spread> {
    comparison_groups(curves)
        .into_iter()
        .filter_map(|(rank, budget)| {
            let at_rank: Vec<&CellCurve> = curves
                .iter()
                .filter(|c| in_group(c, rank, budget))
                .collect();
            let lora = at_rank.iter().find(|c| c.method == "lora")?;
            let lr = best_point(lora)?.lr;
            let mut methods = Vec::new();
            let mut missing = Vec::new();
            for c in &at_rank {
                let acc = c
                    .lrs
                    .iter()
                    .position(|l| same_lr(*l, lr))
                    .map(|i| c.acc[i])
                    .filter(|a| a.is_finite());
                match acc {
                    Some(acc) => methods.push(MethodAcc {
                        kind: c.kind.clone(),
                        label: crate::analysis::curve_label(c),
                        acc,
                    }),
                    None => missing.push(crate::analysis::curve_label(c)),
                }
            }
            (methods.len() >= 2).then(|| Spread {
                rank,
                budget: budget_name(budget),
                lr: Some(lr),
                methods: sorted_desc(methods),
                missing,
            })
        })
        .collect()
}

pub fn sorted_values<T: PartialOrd + Copy>(values: impl IntoIterator<Item = T>) -> Vec<T> {
    let mut v: Vec<T> = values.into_iter().collect();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    v
}
