//! The generated markdown report (REPORT.md) of an experiment: provenance,
//! best accuracy per method and rank with confidence intervals, good-LR
//! bands, how far apart the methods land after LR tuning versus at one fixed
//! LR, and the figures. Every number is computed from the trials.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::PathBuf;

use records::{CellCurve, Metric, TrialRecord};

use crate::data::{BestPoint, best_point, curves, lr_band};
use crate::draw::fmt_lr;

/// Fraction of the best mean accuracy that bounds the good-LR band.
pub const BAND_FRACTION: f64 = 0.95;

/// Everything the report shows.
#[derive(Debug, Clone, Default)]
pub struct ReportInput {
    pub experiment: String,
    pub description: String,
    pub config_hash: String,
    /// The experiment's config (TOML), embedded collapsed.
    pub config_toml: String,
    pub git_revision: String,
    pub backend: String,
    pub device: String,
    /// Total wall time of the experiment.
    pub wall_seconds: f64,
    pub trials: Vec<TrialRecord>,
    /// Figures to embed, relative to the report's directory.
    pub figures: Vec<PathBuf>,
    /// Another experiment (name, trials) to compare best accuracies with.
    pub comparison: Option<(String, Vec<TrialRecord>)>,
    /// λmax at initialisation per cell beside its best LR (`lrscape
    /// sharpness`); a "Sharpness" section when present.
    pub sharpness: Option<Vec<crate::data::SharpnessPoint>>,
    /// The same after N training steps (`lrscape sharpness --after-steps
    /// N`), one section per N.
    pub sharpness_after: Vec<(usize, Vec<crate::data::SharpnessPoint>)>,
    /// A language-modelling experiment: a "Perplexity" section first.
    pub language_model: Option<LanguageModel>,
}

/// What the report says of a language-modelling task beyond its trials.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LanguageModel {
    /// One line on the task and its shift.
    pub task: String,
    /// Perplexity of the fine-tuning source's own predictions: no model
    /// can go below it.
    pub floor_perplexity: f64,
    /// Next-token accuracy of those predictions.
    pub floor_accuracy: f64,
}

/// The lowest perplexity of every cell, ordered as the accuracy table.
pub fn perplexity_rows(trials: &[TrialRecord]) -> Vec<BestPoint> {
    let mut rows: Vec<BestPoint> = crate::data::curves_of(trials, records::Metric::Perplexity)
        .iter()
        .filter_map(|c| crate::data::best_point_by(c, records::Metric::Perplexity))
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

fn language_model_section(md: &mut String, input: &ReportInput, lm: &LanguageModel) {
    md.push_str(
        "## Perplexity (language modelling)

",
    );
    let _ = writeln!(
        md,
        "{} Scored by validation perplexity, exp of the mean cross-entropy per predicted \
         token (lower is better); a cell's perplexity at an LR is the mean of its seeds' \
         perplexities (infinite if a seed diverged), with a 95% CI. The fine-tuning source's own predictions reach \
         perplexity **{:.3}** (next-token accuracy {}): no model can go below that floor. \
         Elsewhere in this report \"accuracy\" is next-token accuracy.\n",
        lm.task.trim(),
        lm.floor_perplexity,
        pct(lm.floor_accuracy)
    );
    let rows = perplexity_rows(&input.trials);
    let acc = curves(&input.trials);
    md.push_str(
        "| Method | Rank | Best perplexity | Above the floor | Seeds | Best LR | Next-token accuracy there, % |\n",
    );
    md.push_str("|---|---:|---:|---:|---:|---:|---:|\n");
    for b in &rows {
        let at_lr = acc
            .iter()
            .find(|c| c.kind == b.kind && c.rank == b.rank)
            .and_then(|c| c.lrs.iter().position(|&lr| lr == b.lr).map(|i| c.acc[i]))
            .unwrap_or(f64::NAN);
        let ci = if b.n > 1 && b.half_width.is_finite() {
            format!("{:.3} ± {:.3}", b.mean, b.half_width)
        } else {
            format!("{:.3} (1 seed)", b.mean)
        };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {:+.1}% | {} | {} | {} |",
            cell(&b.label),
            rank_name(b.rank),
            ci,
            (b.mean / lm.floor_perplexity - 1.0) * 100.0,
            b.n,
            fmt_lr(b.lr),
            pct(at_lr)
        );
    }
    md.push('\n');
    let best_ranks = best_rank_by_perplexity(&rows);
    if !best_ranks.is_empty() {
        md.push_str("Best rank per method (lowest best-of-LR perplexity):\n\n");
        for (label, rank, ppl, tied) in best_ranks {
            let _ = writeln!(
                md,
                "- {}: rank {} ({:.3}){}",
                cell(&label),
                rank,
                ppl,
                if tied {
                    "; the next-best rank is inside its 95% CI"
                } else {
                    ""
                }
            );
        }
        md.push('\n');
    }
    render_perplexity_spreads(md, &rows, &input.trials);
    let summaries: Vec<CellSummary> = rows
        .iter()
        .map(|b| CellSummary {
            best: b.clone(),
            band: Vec::new(),
            n_lrs: 0,
        })
        .collect();
    let lrs = trial_lrs(&input.trials);
    render_lr_across_ranks(md, &summaries, &lrs, Metric::Perplexity);
}

/// The distinct learning rates of `trials`, ascending.
fn trial_lrs(trials: &[TrialRecord]) -> Vec<f64> {
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

fn spread_text(spread: f64) -> String {
    if spread.is_finite() {
        format!("{:.1}%", spread * 100.0)
    } else {
        "n/a".into()
    }
}

/// Per adapter rank with two or more methods (one budget and variant per
/// method, as in the language-modelling study): the perplexity spreads.
pub fn perplexity_spreads(rows: &[BestPoint], trials: &[TrialRecord]) -> Vec<PerplexitySpread> {
    let curves = crate::data::curves_of(trials, Metric::Perplexity);
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
                        Some((crate::curve_label(c), c.acc[i]))
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

fn render_perplexity_spreads(md: &mut String, rows: &[BestPoint], trials: &[TrialRecord]) {
    let spreads = perplexity_spreads(rows, trials);
    if spreads.is_empty() {
        return;
    }
    md.push_str(
        "How far apart the methods land (the highest over the lowest perplexity, minus 1), \
         each at its own best LR and all at LoRA's best LR:\n\n\
         | Rank | Lowest (tuned) | Highest (tuned) | Spread after tuning | LoRA's best LR | Spread at that LR |\n\
         |---:|---|---|---:|---:|---:|\n",
    );
    for s in &spreads {
        let (lo, hi) = (&s.tuned[0], &s.tuned[s.tuned.len() - 1]);
        let (lr, fixed) = match &s.at_lora_lr {
            Some((lr, values)) => (fmt_lr(*lr), spread_text(relative_spread(values))),
            None => ("n/a".into(), "n/a".into()),
        };
        let _ = writeln!(
            md,
            "| {} | {} ({:.3}) | {} ({:.3}) | {:.1}% | {} | {} |",
            s.rank,
            cell(&lo.0),
            lo.1,
            cell(&hi.0),
            hi.1,
            relative_spread(&s.tuned) * 100.0,
            lr,
            fixed
        );
    }
    md.push('\n');
}

/// One method × rank row of the report's table.
#[derive(Debug, Clone, PartialEq)]
pub struct CellSummary {
    /// Best LR (the one maximizing the mean over seeds) and the accuracy
    /// there, with its 95% CI.
    pub best: BestPoint,
    /// LRs whose mean accuracy is within [`BAND_FRACTION`] of the best,
    /// ascending.
    pub band: Vec<f64>,
    /// LRs in the cell's grid.
    pub n_lrs: usize,
}

/// A row per cell with a finite accuracy, ordered by rank, then kind.
pub fn summarize(curves: &[CellCurve]) -> Vec<CellSummary> {
    let mut rows: Vec<CellSummary> = curves
        .iter()
        .filter_map(|c| {
            Some(CellSummary {
                best: best_point(c)?,
                band: lr_band(c, BAND_FRACTION),
                n_lrs: c.lrs.len(),
            })
        })
        .collect();
    rows.sort_by(|a, b| row_order(&a.best).cmp(&row_order(&b.best)));
    rows
}

/// Rank, then the kind without its budget, then the budget numerically
/// (bs16 before bs64 before bs256).
fn row_order(b: &BestPoint) -> (usize, &str, usize, usize) {
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

fn adapter_ranks(curves: &[CellCurve]) -> BTreeSet<usize> {
    curves.iter().map(|c| c.rank).filter(|r| *r > 0).collect()
}

/// The groups methods are compared in: each adapter rank, times each budget
/// where the experiment has several (`None` where it has one).
fn comparison_groups(curves: &[CellCurve]) -> Vec<(usize, Option<(usize, usize)>)> {
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

fn in_group(c: &CellCurve, rank: usize, budget: Option<(usize, usize)>) -> bool {
    c.rank == rank && budget.is_none_or(|b| (c.batch_size, c.epochs) == b)
}

fn budget_name(budget: Option<(usize, usize)>) -> Option<String> {
    budget.map(|(b, e)| records::budget_label(b, e))
}

fn sorted_desc(mut methods: Vec<MethodAcc>) -> Vec<MethodAcc> {
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
    /// LRs within [`BAND_FRACTION`] of the best accuracy, ascending.
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
            format!("{} [{}]", records::method_label(&b.method), b.variant)
        } else {
            records::method_label(&b.method)
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

fn same_lr(a: f64, b: f64) -> bool {
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
                        label: crate::curve_label(c),
                        acc,
                    }),
                    None => missing.push(crate::curve_label(c)),
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

/// Accuracy (a fraction) in percent, two decimals.
pub fn pct(x: f64) -> String {
    if x.is_finite() {
        format!("{:.2}", x * 100.0)
    } else {
        "n/a".to_string()
    }
}

/// Mean ± 95% CI in percent (`91.23 ± 0.45`); a single seed has no CI.
pub fn pct_ci(mean: f64, half_width: f64, n: usize) -> String {
    if n > 1 && half_width.is_finite() {
        format!("{} ± {}", pct(mean), pct(half_width))
    } else {
        format!("{} (1 seed)", pct(mean))
    }
}

fn cell(text: &str) -> String {
    text.replace('|', "\\|")
}

fn rank_name(rank: usize) -> String {
    if rank == 0 {
        "— (all weights)".to_string()
    } else {
        rank.to_string()
    }
}

fn duration(seconds: f64) -> String {
    if !seconds.is_finite() || seconds < 0.0 {
        return "unknown".to_string();
    }
    if seconds < 60.0 {
        return format!("{seconds:.1} s");
    }
    let s = seconds.round() as u64;
    let (h, m, s) = (s / 3600, (s / 60) % 60, s % 60);
    if h > 0 {
        format!("{h} h {m:02} min {s:02} s")
    } else {
        format!("{m} min {s:02} s")
    }
}

fn band_text(row: &CellSummary) -> String {
    match (row.band.first(), row.band.last()) {
        (Some(lo), Some(_)) if row.band.len() == 1 => {
            format!("{} only (1 of {} LRs)", fmt_lr(*lo), row.n_lrs)
        }
        (Some(lo), Some(hi)) => format!(
            "{} – {} ({} of {} LRs)",
            fmt_lr(*lo),
            fmt_lr(*hi),
            row.band.len(),
            row.n_lrs
        ),
        _ => "n/a".to_string(),
    }
}

fn figure_caption(stem: &str, labels: &BTreeMap<String, String>) -> String {
    let label = |stem: &str| {
        labels
            .get(stem)
            .cloned()
            .unwrap_or_else(|| stem.to_string())
    };
    let known = [
        (
            "lr_sweep_parity",
            "Accuracy vs learning rate at the parity rank",
        ),
        ("best_of_lr", "Best accuracy over learning rates per method"),
        (
            "best_of_lr_vs_rank",
            "Best accuracy over learning rates vs rank",
        ),
        ("best_lr_vs_rank", "Best learning rate vs rank"),
        (
            "best_lr_vs_rank_by_perplexity",
            "Best learning rate by perplexity vs rank",
        ),
        (
            "sharpness_vs_best_lr",
            "Sharpness (λmax) at initialisation vs best learning rate",
        ),
        (
            "shift_aligned",
            "Normalized curves re-centred at each method's best LR",
        ),
    ];
    if let Some((_, caption)) = known.iter().find(|(s, _)| *s == stem) {
        return caption.to_string();
    }
    if let Some(rank) = stem.strip_prefix("perplexity_vs_lr_r") {
        return format!("Perplexity vs learning rate at rank {rank}");
    }
    if let Some(kind) = stem.strip_prefix("heatmap_normalized_") {
        return format!("{}: rank × LR, normalized per rank", label(kind));
    }
    if let Some(kind) = stem.strip_prefix("heatmap_") {
        return format!("{}: rank × LR heatmap", label(kind));
    }
    stem.to_string()
}

fn sorted_values<T: PartialOrd + Copy>(values: impl IntoIterator<Item = T>) -> Vec<T> {
    let mut v: Vec<T> = values.into_iter().collect();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    v
}

/// The markdown report.
pub fn render(input: &ReportInput) -> String {
    let mut md = String::new();
    let curves = curves(&input.trials);
    let rows = summarize(&curves);
    let tuned = spread_after_tuning(&curves);
    let fixed = spread_at_lora_lr(&curves);
    let lrs = trial_lrs(&input.trials);

    let _ = writeln!(md, "# {}: learning rate × rank report\n", input.experiment);
    let _ = writeln!(
        md,
        "*Generated by lrscape from {} trial records; every number below is computed from them.*\n",
        input.trials.len()
    );
    render_summary(&mut md, input, &curves, &tuned, &lrs);
    if input.trials.is_empty() {
        md.push_str("No trial records: nothing to report yet.\n");
        return md;
    }
    if let Some(lm) = &input.language_model {
        language_model_section(&mut md, input, lm);
    }
    render_best_accuracy(&mut md, &rows);
    render_spread_after_tuning(&mut md, &tuned);
    render_spread_at_one_lr(&mut md, &fixed, &tuned);
    render_lr_across_ranks(&mut md, &rows, &lrs, Metric::Accuracy);
    render_lr_across_budgets(&mut md, &rows, &lrs);
    if let Some(points) = input.sharpness.as_deref().filter(|p| !p.is_empty()) {
        render_sharpness(&mut md, points, 0);
    }
    for (steps, points) in &input.sharpness_after {
        if !points.is_empty() {
            render_sharpness(&mut md, points, *steps);
        }
    }
    render_figures(&mut md, input, &curves);
    render_trials(&mut md, input);
    if let Some((other, other_trials)) = &input.comparison {
        render_comparison(&mut md, &input.experiment, &rows, other, other_trials);
    }
    md
}

/// The summary: what was run, where, how long, and the headline spread;
/// the config as a folded TOML block.
fn render_summary(
    md: &mut String,
    input: &ReportInput,
    curves: &[CellCurve],
    tuned: &[Spread],
    lrs: &[f64],
) {
    let diverged = input.trials.iter().filter(|t| t.diverged).count();
    md.push_str("## Summary\n\n");
    if !input.description.trim().is_empty() {
        let _ = writeln!(md, "{}\n", input.description.trim());
    }
    let methods: BTreeSet<String> = curves.iter().map(crate::curve_label).collect();
    let ranks = adapter_ranks(curves);
    let seeds: BTreeSet<u64> = input.trials.iter().map(|t| t.seed).collect();
    let _ = writeln!(md, "| | |\n|---|---|");
    let _ = writeln!(md, "| Config hash | `{}` |", input.config_hash);
    let _ = writeln!(md, "| Git revision | `{}` |", input.git_revision);
    let _ = writeln!(
        md,
        "| Backend / device | {} / {} |",
        cell(&input.backend),
        cell(&input.device)
    );
    let _ = writeln!(md, "| Wall time | {} |", duration(input.wall_seconds));
    let _ = writeln!(
        md,
        "| Trials | {} ({} diverged) |",
        input.trials.len(),
        diverged
    );
    let _ = writeln!(
        md,
        "| Methods | {} |",
        cell(&methods.into_iter().collect::<Vec<_>>().join(", "))
    );
    let _ = writeln!(
        md,
        "| Ranks | {} |",
        if ranks.is_empty() {
            "none (full fine-tuning only)".to_string()
        } else {
            ranks
                .iter()
                .map(|r| r.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        }
    );
    match (lrs.first(), lrs.last()) {
        (Some(lo), Some(hi)) => {
            let _ = writeln!(
                md,
                "| Learning rates | {} from {} to {} |",
                lrs.len(),
                fmt_lr(*lo),
                fmt_lr(*hi)
            );
        }
        _ => {
            let _ = writeln!(md, "| Learning rates | none |");
        }
    }
    let _ = writeln!(md, "| Seeds | {} |\n", seeds.len());
    let lm_spreads = match &input.language_model {
        Some(_) => perplexity_spreads(&perplexity_rows(&input.trials), &input.trials),
        None => Vec::new(),
    };
    if let Some(widest) = lm_spreads
        .iter()
        .max_by(|a, b| relative_spread(&a.tuned).total_cmp(&relative_spread(&b.tuned)))
    {
        let _ = writeln!(
            md,
            "**After LR tuning the methods' perplexities land within {:.1}% of each other** \
             (the widest gap over {} rank{}, at rank {}).\n",
            relative_spread(&widest.tuned) * 100.0,
            lm_spreads.len(),
            if lm_spreads.len() == 1 { "" } else { "s" },
            widest.rank
        );
    } else if let Some(widest) = tuned
        .iter()
        .max_by(|a, b| a.spread().total_cmp(&b.spread()))
    {
        let _ = writeln!(
            md,
            "**After LR tuning the methods land within {} points of each other** \
             (the widest gap over {} comparison{}, at rank {}).\n",
            pct(widest.spread()),
            tuned.len(),
            if tuned.len() == 1 { "" } else { "s" },
            widest.place()
        );
    }
    let _ = writeln!(
        md,
        "<details><summary>Config (TOML)</summary>\n\n```toml\n{}\n```\n\n</details>\n",
        input.config_toml.trim_end()
    );
}

/// Each method's best mean accuracy per rank, its CI and LR band.
fn render_best_accuracy(md: &mut String, rows: &[CellSummary]) {
    md.push_str("## Best accuracy per method and rank\n\n");
    let _ = writeln!(
        md,
        "Accuracy in percent: the mean over seeds at the learning rate that maximizes \
         that mean, ± the half-width of its 95% confidence interval (Student's t, n − 1 \
         degrees of freedom). The LR band is the range of learning rates whose mean \
         accuracy is within {:.0}% of the best: how much room the LR choice has.\n",
        BAND_FRACTION * 100.0
    );
    md.push_str(
        "| Method | Rank | Best accuracy, % | Seeds | Best LR | LR band (≥ 95% of best) |\n",
    );
    md.push_str("|---|---:|---:|---:|---:|---|\n");
    for row in rows {
        let b = &row.best;
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} |",
            cell(&b.label),
            rank_name(b.rank),
            pct_ci(b.mean, b.half_width, b.n),
            b.n,
            fmt_lr(b.lr),
            band_text(row)
        );
    }
    md.push('\n');
}

/// Each method at its own best LR: how far apart the methods land.
fn render_spread_after_tuning(md: &mut String, tuned: &[Spread]) {
    md.push_str("## How far apart the methods land after LR tuning\n\n");
    if tuned.is_empty() {
        md.push_str("No rank has two or more methods to compare.\n\n");
    } else {
        md.push_str(
            "Each method at its own best learning rate; the spread is the best minus the \
             worst mean accuracy, in percentage points.\n\n",
        );
        md.push_str("| Rank | Methods | Top | Bottom | Spread (points) |\n");
        md.push_str("|---:|---:|---|---|---:|\n");
        for s in tuned {
            let (top, bottom) = (s.top().expect("two methods"), s.bottom().expect("two"));
            let _ = writeln!(
                md,
                "| {} | {} | {} ({}) | {} ({}) | {} |",
                s.place(),
                s.methods.len(),
                cell(&top.label),
                pct(top.acc),
                cell(&bottom.label),
                pct(bottom.acc),
                pct(s.spread())
            );
        }
        md.push('\n');
        for s in tuned {
            let _ = writeln!(
                md,
                "- At rank {}, after LR tuning the methods land within {} points of each other.",
                s.place(),
                pct(s.spread())
            );
        }
        md.push('\n');
    }
}

/// Every method at LoRA's best LR, beside the spread after tuning.
fn render_spread_at_one_lr(md: &mut String, fixed: &[Spread], tuned: &[Spread]) {
    md.push_str("## The same comparison at one fixed learning rate\n\n");
    if fixed.is_empty() {
        md.push_str(
            "No rank has a LoRA cell and another method sharing its best learning rate, \
             so there is no single-LR comparison to show.\n\n",
        );
    } else {
        md.push_str(
            "Every method read at the one learning rate that is best for LoRA at that \
             rank, as a comparison that tunes only the baseline's LR would report it.\n\n",
        );
        md.push_str(
            "| Rank | LR (LoRA's best) | Top | Bottom | Spread at this LR (points) | Spread after tuning (points) |\n",
        );
        md.push_str("|---:|---:|---|---|---:|---:|\n");
        for s in fixed {
            let (top, bottom) = (s.top().expect("two methods"), s.bottom().expect("two"));
            let after = tuned
                .iter()
                .find(|t| (t.rank, &t.budget) == (s.rank, &s.budget))
                .map_or("n/a".to_string(), |t| pct(t.spread()));
            let _ = writeln!(
                md,
                "| {} | {} | {} ({}) | {} ({}) | {} | {} |",
                s.place(),
                fmt_lr(s.lr.unwrap_or(f64::NAN)),
                cell(&top.label),
                pct(top.acc),
                cell(&bottom.label),
                pct(bottom.acc),
                pct(s.spread()),
                after
            );
        }
        md.push('\n');
        for s in fixed {
            if let Some(t) = tuned
                .iter()
                .find(|t| (t.rank, &t.budget) == (s.rank, &s.budget))
            {
                let _ = writeln!(
                    md,
                    "- At rank {}, one LR ({}) puts the methods {} points apart; tuning each \
                     method's LR puts them {} points apart.",
                    s.place(),
                    fmt_lr(s.lr.unwrap_or(f64::NAN)),
                    pct(s.spread()),
                    pct(t.spread())
                );
            }
            if !s.missing.is_empty() {
                let _ = writeln!(
                    md,
                    "  (Not in this LR's grid: {}.)",
                    cell(&s.missing.join(", "))
                );
            }
        }
        md.push('\n');
    }
}

/// Every figure with its caption.
fn render_figures(md: &mut String, input: &ReportInput, curves: &[CellCurve]) {
    if !input.figures.is_empty() {
        md.push_str("## Figures\n\n");
        let labels: BTreeMap<String, String> = curves
            .iter()
            .map(|c| (crate::draw::file_stem(&c.kind), crate::curve_label(c)))
            .collect();
        for path in &input.figures {
            let text = path.to_string_lossy().replace('\\', "/");
            let stem = path
                .file_stem()
                .map(|s| s.to_string_lossy().to_string())
                .unwrap_or_default();
            let _ = writeln!(
                md,
                "### {}\n\n![{}]({})\n",
                figure_caption(&stem, &labels),
                stem,
                text
            );
        }
    }
}

/// Trials and divergences per method, and the first diverged trials.
fn render_trials(md: &mut String, input: &ReportInput) {
    let diverged = input.trials.iter().filter(|t| t.diverged).count();
    md.push_str("## Trials\n\n");
    let mut per_method: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for t in &input.trials {
        let e = per_method
            .entry(records::method_label(&t.method))
            .or_default();
        e.0 += 1;
        e.1 += usize::from(t.diverged);
    }
    let _ = writeln!(
        md,
        "{} trials, {} diverged (non-finite loss).\n",
        input.trials.len(),
        diverged
    );
    md.push_str("| Method | Trials | Diverged |\n|---|---:|---:|\n");
    for (m, (n, d)) in &per_method {
        let _ = writeln!(md, "| {} | {} | {} |", cell(m), n, d);
    }
    md.push('\n');
    if diverged > 0 {
        md.push_str("Diverged trials:\n\n");
        for (listed, t) in input.trials.iter().filter(|t| t.diverged).enumerate() {
            if listed == 20 {
                let _ = writeln!(md, "- … and {} more", diverged - listed);
                break;
            }
            let _ = writeln!(
                md,
                "- {} rank {} LR {} seed {}",
                records::method_label(&t.method),
                rank_name(t.rank),
                fmt_lr(t.lr),
                t.seed
            );
        }
        md.push('\n');
    }
}

fn render_comparison(
    md: &mut String,
    this: &str,
    rows: &[CellSummary],
    other: &str,
    other_trials: &[TrialRecord],
) {
    let other_rows = summarize(&curves(other_trials));
    let key = |r: &CellSummary| (r.best.rank, r.best.kind.clone());
    let mine: BTreeMap<_, _> = rows.iter().map(|r| (key(r), r)).collect();
    let theirs: BTreeMap<_, _> = other_rows.iter().map(|r| (key(r), r)).collect();
    let keys: BTreeSet<_> = mine.keys().chain(theirs.keys()).cloned().collect();
    let _ = writeln!(md, "## Comparison with `{other}`\n");
    let _ = writeln!(
        md,
        "Best accuracy (%, mean ± 95% CI over seeds at the best LR) per method and rank in \
         both experiments; Δ is `{this}` minus `{other}`, in points.\n"
    );
    let _ = writeln!(
        md,
        "| Method | Rank | {} | {} | Δ (points) |\n|---|---:|---:|---:|---:|",
        cell(this),
        cell(other)
    );
    for k in &keys {
        let a = mine.get(k);
        let b = theirs.get(k);
        let label = a.or(b).map(|r| r.best.label.clone()).unwrap_or_default();
        let show = |r: Option<&&CellSummary>| {
            r.map_or("—".to_string(), |r| {
                format!(
                    "{} at {}",
                    pct_ci(r.best.mean, r.best.half_width, r.best.n),
                    fmt_lr(r.best.lr)
                )
            })
        };
        let delta = match (a, b) {
            (Some(a), Some(b)) => pct(a.best.mean - b.best.mean),
            _ => "—".to_string(),
        };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} |",
            cell(&label),
            rank_name(k.0),
            show(a),
            show(b),
            delta
        );
    }
    md.push('\n');
    let spread = |rows: &[CellSummary]| {
        let mut per_rank: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
        for r in rows.iter().filter(|r| r.best.rank > 0) {
            per_rank.entry(r.best.rank).or_default().push(r.best.mean);
        }
        per_rank
            .values()
            .filter(|v| v.len() >= 2)
            .map(|v| {
                let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let min = v.iter().copied().fold(f64::INFINITY, f64::min);
                max - min
            })
            .fold(f64::NAN, f64::max)
    };
    let (sa, sb) = (spread(rows), spread(&other_rows));
    if sa.is_finite() && sb.is_finite() {
        let _ = writeln!(
            md,
            "After LR tuning the methods land within {} points of each other in `{this}` and \
             within {} points in `{other}` (widest gap over ranks).\n",
            pct(sa),
            pct(sb)
        );
    }
}

/// The "Sharpness" section: λmax per cell, its product with the best LR, and
/// how well `best_lr ≈ c / λmax` fits.
/// "Best learning rate across ranks": does the optimum move with the rank
/// (the alpha rule decides), and how it compares with full fine-tuning's.
fn render_lr_across_ranks(md: &mut String, rows: &[CellSummary], lrs: &[f64], by: Metric) {
    let kinds = best_lr_across_ranks(rows);
    // Full fine-tuning's best LR per budget: each kind is compared with the
    // full fine-tuning of its own budget.
    let fulls: BTreeMap<&str, (&str, f64)> = rows
        .iter()
        .filter(|r| r.best.rank == 0)
        .map(|r| (r.best.budget.as_str(), (r.best.label.as_str(), r.best.lr)))
        .collect();
    // The ratio column's name: full fine-tuning's own label where it has
    // one budget, a generic one where each budget has its own.
    let full = match fulls.values().collect::<Vec<_>>()[..] {
        [] => None,
        [&(label, _)] => Some(label.to_string()),
        _ => Some("full FT".to_string()),
    };
    let several_ranks = kinds.iter().any(|k| k.best.len() > 1);
    if kinds.is_empty() || (!several_ranks && full.is_none()) {
        return;
    }
    let ranks: BTreeSet<usize> = kinds
        .iter()
        .flat_map(|k| k.best.iter().map(|&(r, _)| r))
        .collect();
    let (title, best) = match by {
        Metric::Accuracy => ("", "maximizes each method's mean accuracy"),
        Metric::Perplexity => (
            " (by perplexity)",
            "minimizes each method's mean perplexity",
        ),
    };
    let _ = write!(
        md,
        "## Best learning rate across ranks{title}\n\n\
         The learning rate that {best}, per rank. *Drift* \
         is the best LR at the largest rank over the best LR at the smallest: 1× means the \
         optimum does not move with the rank."
    );
    if let Some(step) = lr_grid_step(lrs) {
        let _ = write!(
            md,
            " The grid's neighbouring LRs are {step:.2}× apart, so a drift within \
             ÷{step:.2}…×{step:.2} is one grid step, the finest shift the grid resolves."
        );
    }
    if let Some(label) = &full {
        match fulls.values().collect::<Vec<_>>()[..] {
            [&(_, lr)] => {
                let _ = write!(
                    md,
                    " *÷ {label}* is each best LR over {label}'s best ({}).",
                    fmt_lr(lr)
                );
            }
            _ => {
                let _ = write!(
                    md,
                    " *÷ {label}* is each best LR over full fine-tuning's best at the same budget."
                );
            }
        }
    }
    md.push_str("\n\n| Method |");
    for r in &ranks {
        let _ = write!(md, " r={r} |");
    }
    md.push_str(" Drift |");
    if let Some(label) = &full {
        let _ = write!(md, " ÷ {} |", cell(label));
    }
    md.push_str("\n|---|");
    for _ in &ranks {
        md.push_str("---:|");
    }
    md.push_str("---:|");
    if full.is_some() {
        md.push_str("---|");
    }
    md.push('\n');
    for k in &kinds {
        let _ = write!(md, "| {} |", cell(&k.label));
        for r in &ranks {
            match k.best.iter().find(|(rank, _)| rank == r) {
                Some((_, lr)) => {
                    let _ = write!(md, " {} |", fmt_lr(*lr));
                }
                None => md.push_str(" – |"),
            }
        }
        let _ = write!(md, " {:.2}× |", k.drift());
        if full.is_some() {
            let full_lr = fulls.get(k.budget.as_str()).map_or(f64::NAN, |f| f.1);
            let ratios: Vec<String> = k
                .best
                .iter()
                .map(|(r, lr)| format!("r={r}: {:.2}×", lr / full_lr))
                .collect();
            let _ = write!(md, " {} |", ratios.join(", "));
        }
        md.push('\n');
    }
    md.push('\n');
}

/// "Best learning rate across budgets": does the optimum move with the
/// batch size or the number of epochs.
fn render_lr_across_budgets(md: &mut String, rows: &[CellSummary], lrs: &[f64]) {
    let groups = best_lr_across_budgets(rows);
    if groups.is_empty() {
        return;
    }
    let budgets: BTreeSet<(usize, usize)> = groups
        .iter()
        .flat_map(|g| g.best.iter().map(|p| (p.batch_size, p.epochs)))
        .collect();
    md.push_str("## Best learning rate across budgets\n\n");
    md.push_str(
        "The learning rate that maximizes each method's mean accuracy at each fine-tuning \
         budget (batch size `bs`, epochs `ep`), with the accuracy there in percent and the \
         LR band (≥ 95% of that accuracy). † marks a budget that did not learn (best \
         accuracy below half the method's best budget): its best LR is noise and is left \
         out of the drift and the ratios below. *Drift* is the largest best LR over the \
         smallest: 1× means the optimum does not move with the budget.",
    );
    if let Some(step) = lr_grid_step(lrs) {
        let _ = write!(
            md,
            " Neighbouring LRs of the grid are {step:.2}× apart (one grid step)."
        );
    }
    md.push_str("\n\n| Method | Rank |");
    for &(b, e) in &budgets {
        let _ = write!(md, " {} |", records::budget_label(b, e));
    }
    md.push_str(" Drift |\n|---|---:|");
    for _ in &budgets {
        md.push_str("---:|");
    }
    md.push_str("---:|\n");
    for g in &groups {
        let _ = write!(md, "| {} | {} |", cell(&g.label), rank_name(g.rank));
        for &(b, e) in &budgets {
            match g
                .best
                .iter()
                .position(|p| (p.batch_size, p.epochs) == (b, e))
            {
                Some(i) => {
                    let p = &g.best[i];
                    let mark = if g.learned(i) { "" } else { "†" };
                    let band = match (p.band.first(), p.band.last()) {
                        (Some(lo), Some(hi)) if p.band.len() > 1 => {
                            format!(" {}–{}", fmt_lr(*lo), fmt_lr(*hi))
                        }
                        _ => String::new(),
                    };
                    let _ = write!(md, " {}{mark} ({}){band} |", fmt_lr(p.lr), pct(p.acc));
                }
                None => md.push_str(" – |"),
            }
        }
        let _ = writeln!(md, " {:.2}× |", g.drift());
    }
    md.push('\n');
    for g in &groups {
        let mut parts = Vec::new();
        for (epochs, batch_ratio, lr_ratio) in g.axis_ratios(false) {
            parts.push(format!(
                "at {epochs} epoch{}, {batch_ratio:.0}× the batch size moves the best LR \
                 {lr_ratio:.2}×",
                if epochs == 1 { "" } else { "s" }
            ));
        }
        for (batch, epoch_ratio, lr_ratio) in g.axis_ratios(true) {
            parts.push(format!(
                "at batch size {batch}, {epoch_ratio:.0}× the epochs moves it {lr_ratio:.2}×"
            ));
        }
        if !parts.is_empty() {
            let _ = writeln!(
                md,
                "- {} ({}): {}.",
                cell(&g.label),
                rank_name(g.rank),
                parts.join("; ")
            );
        }
    }
    md.push('\n');
}

fn render_sharpness(md: &mut String, points: &[crate::data::SharpnessPoint], after_steps: usize) {
    if after_steps == 0 {
        md.push_str("## Sharpness at initialisation vs best learning rate\n\n");
        md.push_str(
            "λmax: the largest eigenvalue of the fine-tuning loss Hessian with respect to \
             the trainable parameters, at initialisation (`lrscape sharpness`, mean over \
             seeds; `sharpness.json`). Best LR: of the mean over seeds.\n\n",
        );
    } else {
        let _ = writeln!(
            md,
            "## Sharpness after {after_steps} steps vs best learning rate\n\n\
             λmax as above, measured after every member trained {after_steps} steps at its \
             cell's best LR (`lrscape sharpness --after-steps {after_steps}`, mean over \
             seeds; `sharpness-after-{after_steps}.json`).\n"
        );
    }
    md.push_str("| method | rank | λmax | best LR | best LR × λmax |\n|---|---|---|---|---|\n");
    for p in points {
        let _ = writeln!(
            md,
            "| {} | {} | {:.4} | {} | {:.4} |",
            cell(&p.label),
            rank_name(p.rank),
            p.lambda_max,
            fmt_lr(p.best_lr),
            p.best_lr * p.lambda_max
        );
    }
    md.push('\n');
    match crate::data::sharpness_fit(points) {
        Some(fit) => {
            let _ = writeln!(
                md,
                "Across {} cells, log λmax vs log best LR: Pearson {:+.3}, Spearman {:+.3}. \
                 Fitting best LR ≈ c / λmax: c = {:.4} (geometric mean of best LR × λmax; \
                 geometric SD × / ÷ {:.2}, range {:.4} … {:.4}).\n",
                fit.n, fit.pearson, fit.spearman, fit.c, fit.c_spread, fit.c_min, fit.c_max
            );
        }
        None => md.push_str("Fewer than two cells have a positive λmax and a best LR: no fit.\n\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration(12.34), "12.3 s");
        assert_eq!(duration(125.0), "2 min 05 s");
        assert_eq!(duration(3723.0), "1 h 02 min 03 s");
        assert_eq!(duration(f64::NAN), "unknown");
    }

    #[test]
    fn percent_formats() {
        assert_eq!(pct(0.91234), "91.23");
        assert_eq!(pct_ci(0.5, 0.01, 3), "50.00 ± 1.00");
        assert_eq!(pct_ci(0.5, 0.0, 1), "50.00 (1 seed)");
    }
}
