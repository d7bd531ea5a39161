//! Figures and the generated report of an lrscape study, from result
//! records only (never Burn), so that results can be re-plotted anywhere
//! without the training stack.
//!
//! The study's point is that LoRA-family methods differ mostly in *where*
//! their best learning rate sits, not in how sensitive they are to it; the
//! figures are chosen to show exactly that: raw accuracy over rank × LR,
//! per-rank normalisation (row max = 1), curves re-centred at their own best
//! LR, and best-of-LR comparisons with confidence intervals over seeds.
//!
//! The numbers behind each figure are plain functions ([`data`]) checked
//! before anything is drawn; [`draw_figures`] renders them (PNG and SVG via
//! plotters, with an embedded font so no system font library is needed), and
//! [`report::render`] writes the markdown report whose every number is
//! computed from the trials.

use std::path::PathBuf;

use records::{CellCurve, TrialRecord};

pub mod data;
mod draw;
pub mod report;

pub use data::{
    AlignedSeries, BestPoint, HeatmapData, LrSeries, RankSeries, SharpnessCell, SharpnessFit,
    SharpnessPoint, average_ranks, best_index, best_of_lr_data, best_point, best_point_by,
    best_vs_rank_data, curve_label, curves, curves_of, heatmap_data, lr_band, lr_series,
    lr_sweep_data, normalized_heatmap, pearson, reference_points, sharpness_fit, sharpness_points,
    sharpness_points_by, shift_aligned_data, spearman,
};
pub use draw::{HEIGHT, WIDTH};

/// An image format a figure is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Png,
    Svg,
}

impl Format {
    pub fn extension(self) -> &'static str {
        match self {
            Format::Png => "png",
            Format::Svg => "svg",
        }
    }
}

/// Where and how [`draw_figures`] writes.
#[derive(Debug, Clone, PartialEq)]
pub struct FigureOptions {
    /// The experiment directory: figures go to `out_dir/figures/raw` and
    /// `out_dir/figures/normalized`.
    pub out_dir: PathBuf,
    /// The rank of the single-rank figures (`lr_sweep_parity`, `best_of_lr`,
    /// `shift_aligned`); full fine-tuning (rank 0) is always included.
    pub parity_rank: usize,
    pub formats: Vec<Format>,
}

impl FigureOptions {
    /// PNG and SVG into `out_dir/figures`.
    pub fn new(out_dir: impl Into<PathBuf>, parity_rank: usize) -> Self {
        FigureOptions {
            out_dir: out_dir.into(),
            parity_rank,
            formats: vec![Format::Png, Format::Svg],
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FigsError {
    #[error("cannot create {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("drawing {path} failed: {message}")]
    Draw { path: PathBuf, message: String },
    #[error("the embedded font could not be loaded")]
    Font,
}

/// Draws every figure the trials have data for and returns the files
/// written. A figure without data (one rank: no rank axis; no adapter
/// method: no heatmap) is skipped, not an error.
///
/// Written, each in every format of `opts`:
/// `raw/lr_sweep_parity`, `raw/best_of_lr`, `raw/heatmap_{kind}`,
/// `normalized/heatmap_normalized_{kind}`, `raw/best_of_lr_vs_rank`,
/// `normalized/shift_aligned`, `raw/best_lr_vs_rank`.
pub fn draw_figures(
    trials: &[TrialRecord],
    opts: &FigureOptions,
) -> Result<Vec<PathBuf>, FigsError> {
    use draw::*;
    draw::ensure_font()?;
    let curves = data::curves(trials);
    let colors = Colors::new(curves.iter().map(|c| (c.kind.as_str(), c.method.as_str())));
    let raw = opts.out_dir.join("figures").join("raw");
    let norm = opts.out_dir.join("figures").join("normalized");
    let formats = &opts.formats;
    let has_value = |v: &f64| v.is_finite();
    let mut out = Vec::new();

    // Full fine-tuning, the reference, is listed last.
    let mut sweep = lr_sweep_data(&curves, opts.parity_rank);
    sweep.sort_by_key(|s| s.method == "full");
    if sweep.iter().any(|s| s.mean.iter().any(has_value)) {
        let fig = LrSweepFigure {
            rank: opts.parity_rank,
            series: &sweep,
            colors: &colors,
            metric: records::Metric::Accuracy,
        };
        out.extend(save(&fig, &raw, "lr_sweep_parity", formats)?);
    }

    let mut best = best_of_lr_data(&curves, opts.parity_rank);
    best.sort_by_key(|p| p.method == "full");
    if !best.is_empty() {
        let fig = BestOfLrFigure {
            rank: opts.parity_rank,
            points: &best,
            colors: &colors,
        };
        out.extend(save(&fig, &raw, "best_of_lr", formats)?);
    }

    let adapters: Vec<CellCurve> = curves.iter().filter(|c| c.rank > 0).cloned().collect();
    let mut kinds: Vec<&str> = adapters.iter().map(|c| c.kind.as_str()).collect();
    kinds.dedup();
    for kind in kinds {
        let Some(heat) = heatmap_data(&adapters, kind) else {
            continue;
        };
        if !heat.values.iter().flatten().any(has_value) {
            continue;
        }
        let stem = file_stem(kind);
        let fig = HeatmapFigure {
            data: &heat,
            normalized: false,
        };
        out.extend(save(&fig, &raw, &format!("heatmap_{stem}"), formats)?);
        let normalized = normalized_heatmap(&heat);
        let fig = HeatmapFigure {
            data: &normalized,
            normalized: true,
        };
        out.extend(save(
            &fig,
            &norm,
            &format!("heatmap_normalized_{stem}"),
            formats,
        )?);
    }

    let by_rank = best_vs_rank_data(&curves);
    let refs = reference_points(&curves);
    let mut ranks: Vec<usize> = by_rank
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.rank))
        .collect();
    ranks.sort_unstable();
    ranks.dedup();
    if ranks.len() >= 2 {
        let fig = BestVsRankFigure {
            series: &by_rank,
            refs: &refs,
            colors: &colors,
        };
        out.extend(save(&fig, &raw, "best_of_lr_vs_rank", formats)?);
    }

    let mut aligned = shift_aligned_data(&curves, opts.parity_rank);
    aligned.sort_by_key(|s| s.method == "full");
    if !aligned.is_empty() {
        let fig = ShiftAlignedFigure {
            rank: opts.parity_rank,
            series: &aligned,
            colors: &colors,
        };
        out.extend(save(&fig, &norm, "shift_aligned", formats)?);
    }

    if ranks.len() >= 2 {
        let fig = BestLrVsRankFigure {
            series: &by_rank,
            refs: &refs,
            colors: &colors,
            metric: records::Metric::Accuracy,
        };
        out.extend(save(&fig, &raw, "best_lr_vs_rank", formats)?);
    }
    Ok(out)
}

/// Draws `raw/perplexity_vs_lr_r{rank}` for every adapter rank (each with
/// full fine-tuning) and `raw/best_lr_vs_rank_by_perplexity` (where two
/// ranks or more), for a language-modelling experiment, in every format
/// of `opts`; nothing when no trial has a finite validation loss.
pub fn draw_perplexity(
    trials: &[TrialRecord],
    opts: &FigureOptions,
) -> Result<Vec<PathBuf>, FigsError> {
    use draw::*;
    let curves = data::curves_of(trials, records::Metric::Perplexity);
    if !curves.iter().any(|c| c.acc.iter().any(|v| v.is_finite())) {
        return Ok(Vec::new());
    }
    draw::ensure_font()?;
    // The same colours as the accuracy figures: built from the same kinds.
    let colors = Colors::new(curves.iter().map(|c| (c.kind.as_str(), c.method.as_str())));
    let raw = opts.out_dir.join("figures").join("raw");
    let mut ranks: Vec<usize> = curves.iter().map(|c| c.rank).filter(|&r| r > 0).collect();
    ranks.sort_unstable();
    ranks.dedup();
    if ranks.is_empty() {
        ranks.push(0);
    }
    let mut out = Vec::new();
    for rank in ranks {
        let mut series = lr_sweep_data(&curves, rank);
        series.sort_by_key(|s| s.method == "full");
        let fig = LrSweepFigure {
            rank,
            series: &series,
            colors: &colors,
            metric: records::Metric::Perplexity,
        };
        out.extend(save(
            &fig,
            &raw,
            &format!("perplexity_vs_lr_r{rank}"),
            &opts.formats,
        )?);
    }
    let perplexity = records::Metric::Perplexity;
    let by_rank = data::best_vs_rank_data_by(&curves, perplexity);
    if by_rank.iter().any(|s| s.points.len() >= 2) {
        let refs = data::reference_points_by(&curves, perplexity);
        let fig = BestLrVsRankFigure {
            series: &by_rank,
            refs: &refs,
            colors: &colors,
            metric: perplexity,
        };
        out.extend(save(
            &fig,
            &raw,
            "best_lr_vs_rank_by_perplexity",
            &opts.formats,
        )?);
    }
    Ok(out)
}

/// Draws `raw/sharpness_vs_best_lr` (λmax at initialisation vs best LR,
/// log-log, with the line `c / λmax` of [`sharpness_fit`]) under
/// `opts.out_dir/figures`, in every format of `opts`; nothing (and no error)
/// when no point has a positive λmax and best LR.
pub fn draw_sharpness(
    points: &[SharpnessPoint],
    opts: &FigureOptions,
) -> Result<Vec<PathBuf>, FigsError> {
    use draw::*;
    let usable = points
        .iter()
        .filter(|p| p.lambda_max > 0.0 && p.lambda_max.is_finite() && p.best_lr > 0.0)
        .count();
    if usable == 0 {
        return Ok(Vec::new());
    }
    draw::ensure_font()?;
    // Kinds in the order of `records::cell_curves` (sorted), so each method
    // has the colour it has in the other figures when every method is here.
    let mut kinds: Vec<(&str, &str)> = points
        .iter()
        .map(|p| (p.kind.as_str(), p.method.as_str()))
        .collect();
    kinds.sort_unstable();
    let colors = Colors::new(kinds);
    let fit = sharpness_fit(points);
    let fig = SharpnessFigure {
        points,
        fit: fit.as_ref(),
        colors: &colors,
    };
    let raw = opts.out_dir.join("figures").join("raw");
    save(&fig, &raw, "sharpness_vs_best_lr", &opts.formats)
}

/// A curve divided by its own best value (row max = 1); an all-zero curve
/// stays zero.
pub fn normalized(curve: &CellCurve) -> Vec<f64> {
    let max = curve.acc.iter().cloned().fold(0.0, f64::max);
    if max <= 0.0 {
        return vec![0.0; curve.acc.len()];
    }
    curve.acc.iter().map(|a| a / max).collect()
}

/// `(log10(lr / best_lr), normalized accuracy)` points of a curve: every
/// method's peak lands at 0, so curves that differ only by where their best
/// learning rate sits overlap. The best is that of the finite accuracies
/// (`records::best_lr_index`: a tie to the lowest validation loss).
pub fn shift_aligned(curve: &CellCurve) -> Vec<(f64, f64)> {
    let Some(best_lr) =
        records::best_lr_index(curve, records::Metric::Accuracy).map(|i| curve.lrs[i])
    else {
        return Vec::new();
    };
    curve
        .lrs
        .iter()
        .zip(normalized(curve))
        .map(|(lr, y)| ((lr / best_lr).log10(), y))
        .collect()
}

/// Powers of ten covering `[lo, hi]` (both > 0), for a log-scale LR axis.
pub fn decade_ticks(lo: f64, hi: f64) -> Vec<f64> {
    if !(lo > 0.0 && hi >= lo && hi.is_finite()) {
        return Vec::new();
    }
    let first = lo.log10().floor() as i32;
    let last = hi.log10().ceil() as i32;
    (first..=last).map(|e| 10f64.powi(e)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn curve(lrs: &[f64], acc: &[f64]) -> CellCurve {
        CellCurve {
            kind: "lora".into(),
            method: "lora".into(),
            rank: 4,
            variant: "alpha_eq_r/kaiming_uniform/all".into(),
            batch_size: 64,
            epochs: 3,
            lrs: lrs.to_vec(),
            acc: acc.to_vec(),
            seeds: vec![1; lrs.len()],
            per_seed: acc.iter().map(|&a| vec![a]).collect(),
            loss: vec![1.0; lrs.len()],
        }
    }

    #[test]
    fn normalized_rows_peak_at_one() {
        let c = curve(&[1e-2, 1e-3, 1e-4], &[0.2, 0.8, 0.4]);
        assert_eq!(normalized(&c), vec![0.25, 1.0, 0.5]);
        assert_eq!(normalized(&curve(&[1e-2], &[0.0])), vec![0.0]);
    }

    #[test]
    fn shift_alignment_puts_every_peak_at_zero() {
        let a = curve(&[1e-2, 1e-3, 1e-4], &[0.2, 0.8, 0.4]);
        let b = curve(&[1e-1, 1e-2, 1e-3], &[0.1, 0.4, 0.2]);
        let (pa, pb) = (shift_aligned(&a), shift_aligned(&b));
        assert_eq!(pa.len(), 3);
        for (x, y) in pa.iter().zip(&pb) {
            assert!((x.0 - y.0).abs() < 1e-12 && (x.1 - y.1).abs() < 1e-12);
        }
        assert!(pa[1].0.abs() < 1e-12 && pa[1].1 == 1.0);
    }

    #[test]
    fn decade_ticks_cover_the_range() {
        let ticks = decade_ticks(1.1e-6, 6.3e-3);
        assert_eq!(ticks.len(), 5);
        assert!((ticks[0] - 1e-6).abs() < 1e-18 && (ticks[4] - 1e-2).abs() < 1e-15);
        assert!(decade_ticks(0.0, 1.0).is_empty());
    }
}
