//! The numbers behind each figure, as plain structs, so that they can be
//! checked before anything is drawn (and reused by the report).

use std::collections::{BTreeMap, BTreeSet};

use records::{CellCurve, Metric, mean_ci95};

// The analyses figures, the report and `lrscape sharpness` share live in
// `records::analysis`; they are re-exported here under their old names.
pub use records::SharpnessCell;
pub use records::analysis::{
    BestPoint, SharpnessFit, SharpnessPoint, average_ranks, best_index, best_point, best_point_by,
    curve_label, curves, curves_of, lr_band, pearson, sharpness_fit, sharpness_points,
    sharpness_points_by, spearman,
};

/// Accuracy vs learning rate of one cell, ascending in LR, with CIs.
#[derive(Debug, Clone, PartialEq)]
pub struct LrSeries {
    pub kind: String,
    pub method: String,
    pub label: String,
    pub rank: usize,
    /// Ascending.
    pub lrs: Vec<f64>,
    pub mean: Vec<f64>,
    pub half_width: Vec<f64>,
    pub n: Vec<usize>,
}

/// One cell as an ascending LR series.
pub fn lr_series(curve: &CellCurve) -> LrSeries {
    let mut points: Vec<(f64, records::MeanCi)> = curve
        .lrs
        .iter()
        .zip(&curve.per_seed)
        .map(|(&lr, s)| (lr, mean_ci95(s)))
        .collect();
    points.sort_by(|a, b| a.0.total_cmp(&b.0));
    LrSeries {
        kind: curve.kind.clone(),
        method: curve.method.clone(),
        label: curve_label(curve),
        rank: curve.rank,
        lrs: points.iter().map(|p| p.0).collect(),
        mean: points.iter().map(|p| p.1.mean).collect(),
        half_width: points.iter().map(|p| p.1.half_width).collect(),
        n: points.iter().map(|p| p.1.n).collect(),
    }
}

/// `lr_sweep_parity`: every method at `rank`, and full fine-tuning (rank 0).
pub fn lr_sweep_data(curves: &[CellCurve], rank: usize) -> Vec<LrSeries> {
    curves
        .iter()
        .filter(|c| c.rank == rank || c.rank == 0)
        .map(lr_series)
        .collect()
}

/// `best_of_lr`: the best point of every method at `rank`, and of full
/// fine-tuning.
pub fn best_of_lr_data(curves: &[CellCurve], rank: usize) -> Vec<BestPoint> {
    curves
        .iter()
        .filter(|c| c.rank == rank || c.rank == 0)
        .filter_map(best_point)
        .collect()
}

/// A rank × LR grid of one method kind.
#[derive(Debug, Clone, PartialEq)]
pub struct HeatmapData {
    pub kind: String,
    pub label: String,
    /// Ascending.
    pub ranks: Vec<usize>,
    /// Ascending; the union of the LRs of all ranks.
    pub lrs: Vec<f64>,
    /// `values[rank][lr]`: mean accuracy over seeds, NaN where the grid has
    /// no trial.
    pub values: Vec<Vec<f64>>,
}

/// The grid of `kind`; `None` when the experiment has no cell of it.
pub fn heatmap_data(curves: &[CellCurve], kind: &str) -> Option<HeatmapData> {
    let cells: Vec<&CellCurve> = curves.iter().filter(|c| c.kind == kind).collect();
    let first = cells.first()?;
    let ranks: BTreeSet<usize> = cells.iter().map(|c| c.rank).collect();
    let mut lrs: Vec<f64> = cells
        .iter()
        .flat_map(|c| c.lrs.iter().map(|lr| lr.to_bits()))
        .collect::<BTreeSet<u64>>()
        .into_iter()
        .map(f64::from_bits)
        .collect();
    lrs.sort_by(f64::total_cmp);
    let ranks: Vec<usize> = ranks.into_iter().collect();
    let values = ranks
        .iter()
        .map(|&r| {
            let by_lr: BTreeMap<u64, f64> = cells
                .iter()
                .filter(|c| c.rank == r)
                .flat_map(|c| c.lrs.iter().zip(&c.acc).map(|(lr, a)| (lr.to_bits(), *a)))
                .collect();
            lrs.iter()
                .map(|lr| by_lr.get(&lr.to_bits()).copied().unwrap_or(f64::NAN))
                .collect()
        })
        .collect();
    Some(HeatmapData {
        kind: kind.to_string(),
        label: curve_label(first),
        ranks,
        lrs,
        values,
    })
}

/// Each rank's row divided by its own best (finite) value: row max = 1, the
/// seed study's per-rank normalisation. A row whose best is not positive
/// becomes zeros; missing points stay NaN.
pub fn normalized_heatmap(heatmap: &HeatmapData) -> HeatmapData {
    let values = heatmap
        .values
        .iter()
        .map(|row| {
            let max = row
                .iter()
                .copied()
                .filter(|v| v.is_finite())
                .fold(f64::NEG_INFINITY, f64::max);
            row.iter()
                .map(|v| {
                    if !v.is_finite() {
                        f64::NAN
                    } else if max > 0.0 {
                        v / max
                    } else {
                        0.0
                    }
                })
                .collect()
        })
        .collect();
    HeatmapData {
        values,
        ..heatmap.clone()
    }
}

/// Best points of one method kind across ranks, ascending in rank.
#[derive(Debug, Clone, PartialEq)]
pub struct RankSeries {
    pub kind: String,
    pub method: String,
    pub label: String,
    pub points: Vec<BestPoint>,
}

/// `best_of_lr_vs_rank` and `best_lr_vs_rank`: per adapter kind (rank > 0),
/// the best point at each rank.
pub fn best_vs_rank_data(curves: &[CellCurve]) -> Vec<RankSeries> {
    best_vs_rank_data_by(curves, Metric::Accuracy)
}

/// [`best_vs_rank_data`] of `metric` curves (the lowest perplexity).
pub fn best_vs_rank_data_by(curves: &[CellCurve], metric: Metric) -> Vec<RankSeries> {
    let mut by_kind: BTreeMap<&str, RankSeries> = BTreeMap::new();
    for c in curves.iter().filter(|c| c.rank > 0) {
        let Some(p) = best_point_by(c, metric) else {
            continue;
        };
        by_kind
            .entry(&c.kind)
            .or_insert_with(|| RankSeries {
                kind: c.kind.clone(),
                method: c.method.clone(),
                label: curve_label(c),
                points: Vec::new(),
            })
            .points
            .push(p);
    }
    let mut out: Vec<RankSeries> = by_kind.into_values().collect();
    for s in &mut out {
        s.points.sort_by_key(|p| p.rank);
    }
    out
}

/// Best points of the rankless cells (full fine-tuning), drawn as reference
/// lines where the x axis is the rank.
pub fn reference_points(curves: &[CellCurve]) -> Vec<BestPoint> {
    reference_points_by(curves, Metric::Accuracy)
}

/// [`reference_points`] of `metric` curves.
pub fn reference_points_by(curves: &[CellCurve], metric: Metric) -> Vec<BestPoint> {
    curves
        .iter()
        .filter(|c| c.rank == 0)
        .filter_map(|c| best_point_by(c, metric))
        .collect()
}

/// One cell's normalized curve re-centred at its own best LR.
#[derive(Debug, Clone, PartialEq)]
pub struct AlignedSeries {
    pub kind: String,
    pub method: String,
    pub label: String,
    pub rank: usize,
    /// `(log10(lr / best_lr), accuracy / best accuracy)`, ascending in x;
    /// the peak is at `(0, 1)`.
    pub points: Vec<(f64, f64)>,
}

/// `shift_aligned`: every method at `rank` (and full fine-tuning), each
/// normalized and re-centred at its own best LR.
pub fn shift_aligned_data(curves: &[CellCurve], rank: usize) -> Vec<AlignedSeries> {
    curves
        .iter()
        .filter(|c| c.rank == rank || c.rank == 0)
        .filter_map(|c| {
            let mut points = crate::shift_aligned(c);
            points.retain(|(x, y)| x.is_finite() && y.is_finite());
            if points.is_empty() {
                return None;
            }
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
            Some(AlignedSeries {
                kind: c.kind.clone(),
                method: c.method.clone(),
                label: curve_label(c),
                rank: c.rank,
                points,
            })
        })
        .collect()
}
