//! Analyses shared by the figures, the report and `lrscape sharpness`:
//! seed-mean curves over finite seeds, a cell's best point, and the fit of
//! best learning rates against λmax.

use crate::{
    CellCurve, Metric, SharpnessCell, TrialRecord, cell_curves_of, mean_ci95, method_label,
};

/// Cells of an experiment (`records::cell_curves`), with each mean taken over
/// the finite seeds only, so that one failed evaluation (NaN) does not blank
/// a whole grid point.
pub fn curves(trials: &[TrialRecord]) -> Vec<CellCurve> {
    curves_of(trials, Metric::Accuracy)
}

/// [`curves`] of another metric (perplexity for a language model). A
/// perplexity point with a non-finite seed (a diverged run) is infinite: a
/// failed seed is the LR's failure there, not a missing number, so such an
/// LR is never a cell's best (figures draw it on their top edge).
pub fn curves_of(trials: &[TrialRecord], metric: Metric) -> Vec<CellCurve> {
    cell_curves_of(trials, metric)
        .into_iter()
        .map(|mut c| {
            let stats: Vec<_> = c.per_seed.iter().map(|s| mean_ci95(s)).collect();
            c.acc = stats
                .iter()
                .zip(&c.per_seed)
                .map(|(s, seeds)| {
                    let failed = seeds.iter().any(|v| !v.is_finite());
                    if metric == Metric::Perplexity && failed {
                        f64::INFINITY
                    } else {
                        s.mean
                    }
                })
                .collect();
            c.seeds = stats.iter().map(|s| s.n).collect();
            c
        })
        .collect()
}

/// The name a figure or table gives a cell's method: the paper's label, plus
/// the variant and budget where an experiment has several of one method
/// (the kind's suffix).
pub fn curve_label(curve: &CellCurve) -> String {
    let label = method_label(&curve.method);
    match curve.kind.split_once('@') {
        Some((_, suffix)) => format!("{label} [{suffix}]"),
        None => label,
    }
}

/// Index of the largest finite value; ties go to the first. A cell's best
/// learning rate is [`best_lr_index`](crate::best_lr_index), which breaks
/// ties by validation loss.
pub fn best_index(values: &[f64]) -> Option<usize> {
    let mut best: Option<usize> = None;
    for (i, v) in values.iter().enumerate() {
        if v.is_finite() && best.is_none_or(|b| *v > values[b]) {
            best = Some(i);
        }
    }
    best
}

/// The best learning rate of a cell and the accuracy there, with its 95%
/// confidence interval over seeds.
#[derive(Debug, Clone, PartialEq)]
pub struct BestPoint {
    pub kind: String,
    pub method: String,
    pub label: String,
    pub rank: usize,
    /// `alpha_rule/init/targets`.
    pub variant: String,
    pub batch_size: usize,
    pub epochs: usize,
    /// `bs64/ep3`.
    pub budget: String,
    pub lr: f64,
    /// Mean accuracy over seeds at `lr` (the maximum of the means).
    pub mean: f64,
    /// 95% CI half-width (Student's t) of that mean; 0 with one seed.
    pub half_width: f64,
    /// Seeds behind the mean.
    pub n: usize,
}

/// The best point of a cell; `None` when it has no finite accuracy.
pub fn best_point(curve: &CellCurve) -> Option<BestPoint> {
    best_point_by(curve, Metric::Accuracy)
}

/// The best point of a `metric` curve (the lowest perplexity), by
/// [`best_lr_index`](crate::best_lr_index) (ties to the lowest loss).
pub fn best_point_by(curve: &CellCurve, metric: Metric) -> Option<BestPoint> {
    let i = crate::best_lr_index(curve, metric)?;
    let ci = mean_ci95(curve.per_seed.get(i)?);
    Some(BestPoint {
        kind: curve.kind.clone(),
        method: curve.method.clone(),
        label: curve_label(curve),
        rank: curve.rank,
        variant: curve.variant.clone(),
        batch_size: curve.batch_size,
        epochs: curve.epochs,
        budget: curve.budget(),
        lr: curve.lrs[i],
        mean: ci.mean,
        half_width: ci.half_width,
        n: ci.n,
    })
}

/// A cell's λmax beside its measured best learning rate.
#[derive(Debug, Clone, PartialEq)]
pub struct SharpnessPoint {
    pub kind: String,
    pub method: String,
    pub label: String,
    pub rank: usize,
    pub lambda_max: f64,
    /// Best LR of the seed-mean curve (`records::best_of_lr`).
    pub best_lr: f64,
    /// The seed-mean metric there (accuracy, or perplexity by `sharpness_points_by`).
    pub best_acc: f64,
}

/// Pairs each measured cell with its curve (same method, rank and variant)
/// and that curve's best LR; cells without a curve or a best LR are left
/// out. Ordered by rank, then kind.
pub fn sharpness_points(curves: &[CellCurve], cells: &[SharpnessCell]) -> Vec<SharpnessPoint> {
    sharpness_points_by(curves, cells, Metric::Accuracy)
}

/// [`sharpness_points`] on `metric` curves, each cell's best LR the one
/// `metric` prefers (the lowest perplexity for a language model).
pub fn sharpness_points_by(
    curves: &[CellCurve],
    cells: &[SharpnessCell],
    metric: Metric,
) -> Vec<SharpnessPoint> {
    let mut points: Vec<SharpnessPoint> = cells
        .iter()
        .filter_map(|cell| {
            let curve = curves.iter().find(|c| {
                c.method == cell.method && c.rank == cell.rank && c.variant == cell.variant
            })?;
            let (best_acc, best_lr) = crate::best_of_lr_by(curve, metric)?;
            Some(SharpnessPoint {
                kind: curve.kind.clone(),
                method: curve.method.clone(),
                label: curve_label(curve),
                rank: curve.rank,
                lambda_max: cell.lambda_max,
                best_lr,
                best_acc,
            })
        })
        .collect();
    points.sort_by(|a, b| (a.rank, &a.kind).cmp(&(b.rank, &b.kind)));
    points
}

/// How well `best_lr ≈ c / λmax` describes the cells.
#[derive(Debug, Clone, PartialEq)]
pub struct SharpnessFit {
    /// Cells with λmax > 0 and a best LR.
    pub n: usize,
    /// Pearson correlation of log λmax and log best LR.
    pub pearson: f64,
    /// Spearman rank correlation of the same (ties get their mean rank).
    pub spearman: f64,
    /// Geometric mean of best_lr · λmax.
    pub c: f64,
    /// Geometric standard deviation of best_lr · λmax (a factor ≥ 1).
    pub c_spread: f64,
    pub c_min: f64,
    pub c_max: f64,
}

/// Pearson correlation; NaN when either side is constant or n < 2.
pub fn pearson(x: &[f64], y: &[f64]) -> f64 {
    let n = x.len().min(y.len());
    if n < 2 {
        return f64::NAN;
    }
    let mx = x[..n].iter().sum::<f64>() / n as f64;
    let my = y[..n].iter().sum::<f64>() / n as f64;
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x[..n].iter().zip(&y[..n]) {
        sxy += (a - mx) * (b - my);
        sxx += (a - mx) * (a - mx);
        syy += (b - my) * (b - my);
    }
    if sxx == 0.0 || syy == 0.0 {
        return f64::NAN;
    }
    sxy / (sxx * syy).sqrt()
}

/// Ranks 1..n, ties sharing their mean rank.
pub fn average_ranks(values: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let mut ranks = vec![0.0; values.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && values[order[j + 1]] == values[order[i]] {
            j += 1;
        }
        let mean = (i + j) as f64 / 2.0 + 1.0;
        for &k in &order[i..=j] {
            ranks[k] = mean;
        }
        i = j + 1;
    }
    ranks
}

/// Spearman rank correlation: Pearson of the average ranks.
pub fn spearman(x: &[f64], y: &[f64]) -> f64 {
    pearson(&average_ranks(x), &average_ranks(y))
}

/// The fit over the points with a positive finite λmax and best LR; `None`
/// with fewer than two.
pub fn sharpness_fit(points: &[SharpnessPoint]) -> Option<SharpnessFit> {
    let usable: Vec<&SharpnessPoint> = points
        .iter()
        .filter(|p| {
            p.lambda_max.is_finite()
                && p.lambda_max > 0.0
                && p.best_lr.is_finite()
                && p.best_lr > 0.0
        })
        .collect();
    let n = usable.len();
    if n < 2 {
        return None;
    }
    let x: Vec<f64> = usable.iter().map(|p| p.lambda_max.ln()).collect();
    let y: Vec<f64> = usable.iter().map(|p| p.best_lr.ln()).collect();
    let logc: Vec<f64> = x.iter().zip(&y).map(|(a, b)| a + b).collect();
    let mean = logc.iter().sum::<f64>() / n as f64;
    let var = logc.iter().map(|l| (l - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    let (lo, hi) = logc
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &l| {
            (lo.min(l), hi.max(l))
        });
    Some(SharpnessFit {
        n,
        pearson: pearson(&x, &y),
        spearman: spearman(&x, &y),
        c: mean.exp(),
        c_spread: var.sqrt().exp(),
        c_min: lo.exp(),
        c_max: hi.exp(),
    })
}

/// The LRs of a cell the seeds cannot tell from its best: those whose mean
/// lies within the 95% CI of the best LR's mean (only exact ties with one
/// seed). Ascending. Statements about where a method's best LR lies compare
/// these bands, not the single best points.
pub fn lr_band(curve: &CellCurve, metric: Metric) -> Vec<f64> {
    let Some(best) = best_point_by(curve, metric) else {
        return Vec::new();
    };
    let hw = if best.half_width.is_finite() {
        best.half_width
    } else {
        0.0
    };
    let tol = 1e-12 * best.mean.abs().max(1.0);
    let mut band: Vec<f64> = curve
        .lrs
        .iter()
        .zip(&curve.acc)
        .filter(|(_, m)| {
            m.is_finite()
                && if metric.higher_is_better() {
                    **m >= best.mean - hw - tol
                } else {
                    **m <= best.mean + hw + tol
                }
        })
        .map(|(lr, _)| *lr)
        .collect();
    band.sort_by(f64::total_cmp);
    band
}

/// The held-out score of a cell's LR choice: for each seed, the LR is chosen
/// on the other seeds ([`crate::best_lr_index`] on their means) and that
/// seed is scored there; the mean over seeds, and how many took part. The
/// best mean itself is optimistic, as it picks the LR on the seeds it
/// reports. `None` with fewer than two seeds.
pub fn held_out(trials: &[TrialRecord], curve: &CellCurve, metric: Metric) -> Option<(f64, usize)> {
    let mine: Vec<&TrialRecord> = trials.iter().filter(|t| curve.holds(t)).collect();
    let seeds: std::collections::BTreeSet<u64> = mine.iter().map(|t| t.seed).collect();
    if seeds.len() < 2 {
        return None;
    }
    let mut scores = Vec::new();
    for &left_out in &seeds {
        let others: Vec<TrialRecord> = mine
            .iter()
            .filter(|t| t.seed != left_out)
            .map(|t| (*t).clone())
            .collect();
        let Some(chosen) = curves_of(&others, metric)
            .into_iter()
            .next()
            .and_then(|c| crate::best_lr_index(&c, metric).map(|i| c.lrs[i]))
        else {
            continue;
        };
        if let Some(t) = mine.iter().find(|t| t.seed == left_out && t.lr == chosen) {
            scores.push(metric.of(t));
        }
    }
    let finite: Vec<f64> = scores.iter().copied().filter(|v| v.is_finite()).collect();
    (!finite.is_empty()).then(|| {
        (
            finite.iter().sum::<f64>() / finite.len() as f64,
            finite.len(),
        )
    })
}

#[cfg(test)]
mod held_out_tests {
    use super::*;

    #[test]
    fn held_out_scores_each_seed_where_the_others_put_the_lr() {
        // Two LRs, three seeds: 1e-3 has the best mean (0.533 > 0.5), but
        // each seed left out is scored where the other two put the best LR.
        let mut trials = Vec::new();
        for (lr, accs) in [(1e-2, [1.0, 0.0, 0.5]), (1e-3, [0.0, 1.0, 0.6])] {
            for (seed, acc) in accs.into_iter().enumerate() {
                trials.push(TrialRecord::synthetic("lora", 4, lr, seed as u64, acc));
            }
        }
        let curve = &curves(&trials)[0];
        assert_eq!(best_point(curve).unwrap().lr, 1e-3);
        // Seed 0 out: the others prefer 1e-3 (0.8 vs 0.25): it scores 0.0.
        // Seed 1 out: the others prefer 1e-2 (0.75 vs 0.3): 0.0.
        // Seed 2 out: a tie (0.5, 0.5), equal losses: the larger LR: 0.5.
        let (value, n) = held_out(&trials, curve, Metric::Accuracy).unwrap();
        assert_eq!(n, 3);
        assert!((value - 0.5 / 3.0).abs() < 1e-12, "{value}");
        // One seed: nothing to hold out.
        let one: Vec<_> = trials.iter().filter(|t| t.seed == 0).cloned().collect();
        assert_eq!(held_out(&one, &curves(&one)[0], Metric::Accuracy), None);
    }
}
