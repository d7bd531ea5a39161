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

/// Index of the best finite value; ties go to the first (the largest LR in a
/// curve's descending order, as `records::best_of_lr`).
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

/// The best point of a `metric` curve (the lowest perplexity); ties go to
/// the largest LR.
pub fn best_point_by(curve: &CellCurve, metric: Metric) -> Option<BestPoint> {
    let i = if metric.higher_is_better() {
        best_index(&curve.acc)?
    } else {
        let negated: Vec<f64> = curve.acc.iter().map(|v| -v).collect();
        best_index(&negated)?
    };
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

/// The LRs of a cell whose mean accuracy is within `fraction` of its best
/// (e.g. 0.95): the band in which the LR choice hardly matters. Ascending.
pub fn lr_band(curve: &CellCurve, fraction: f64) -> Vec<f64> {
    let Some(i) = best_index(&curve.acc) else {
        return Vec::new();
    };
    let threshold = curve.acc[i] * fraction;
    let mut band: Vec<f64> = curve
        .lrs
        .iter()
        .zip(&curve.acc)
        .filter(|(_, a)| a.is_finite() && **a >= threshold)
        .map(|(lr, _)| *lr)
        .collect();
    band.sort_by(f64::total_cmp);
    band
}
