//! Figures of an lrscape study, from result records only (never Burn).
//!
//! This crate holds the data behind each figure, checked numerically before
//! anything is drawn: per-rank normalisation (the seed study's "killer"
//! figure), curves re-centred at their best learning rate (the "differences
//! are horizontal shifts" picture), and log-scale learning-rate ticks.
//! Drawing (plotters, PNG and SVG) builds on these.

use records::{CellCurve, best_of_lr};

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
/// learning rate sits overlap.
pub fn shift_aligned(curve: &CellCurve) -> Vec<(f64, f64)> {
    let Some((_, best_lr)) = best_of_lr(curve) else {
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
            lrs: lrs.to_vec(),
            acc: acc.to_vec(),
            seeds: vec![1; lrs.len()],
            per_seed: acc.iter().map(|&a| vec![a]).collect(),
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
