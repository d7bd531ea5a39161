//! Does a run reproduce a reference? The same cells, compared by best
//! learning rate, best value and trial by trial.

use std::collections::BTreeMap;

use crate::analysis::{BestPoint, best_point_by, curves_of, lr_band};
use crate::{CellCurve, Metric, TrialRecord};

/// How far a run may sit from its reference and still reproduce it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tolerance {
    /// Grid steps between the two best LRs.
    pub lr_steps: usize,
    /// The least difference of best values allowed (the reference's 95% CI
    /// is used where wider): absolute for accuracy, relative for perplexity.
    pub value: f64,
}

impl Tolerance {
    /// One grid step; 0.01 accuracy, or 1% of a perplexity.
    pub const DEFAULT: Self = Self {
        lr_steps: 1,
        value: 0.01,
    };

    /// The difference [`value`](Self::value) allows around `reference`.
    fn around(&self, metric: Metric, reference: f64) -> f64 {
        match metric {
            Metric::Accuracy => self.value,
            Metric::Perplexity => self.value * reference.abs(),
        }
    }

    /// The difference allowed around a reference's best point.
    fn allowed(&self, metric: Metric, reference: &BestPoint) -> f64 {
        self.around(metric, reference.mean)
            .max(reference.half_width)
    }

    /// Whether two trials' values agree.
    fn agree(&self, metric: Metric, run: f64, reference: f64) -> bool {
        (run - reference).abs() <= self.around(metric, reference)
            || (run.is_nan() && reference.is_nan())
    }
}

/// One cell of the reference, as the run has it.
#[derive(Debug, Clone, PartialEq)]
pub struct CellVerdict {
    /// The cell's label (`LoRA r=4`, `Full FT [bs16/ep3]`).
    pub cell: String,
    pub reference: Option<BestPoint>,
    pub run: Option<BestPoint>,
    /// Grid steps between the best LRs (`None` when either is missing).
    pub lr_steps: Option<usize>,
    /// The run's best LR is among the reference's LRs whose mean lies within
    /// the reference best's 95% CI (a tie there is no disagreement).
    pub lr_in_band: bool,
    /// |run best − reference best| and what is allowed.
    pub value_diff: f64,
    pub value_allowed: f64,
    /// Trials of the reference also in the run, and how many of them agree.
    pub shared: usize,
    pub agreeing: usize,
    /// Why the cell does not reproduce; empty when it does.
    pub problems: Vec<String>,
}

impl CellVerdict {
    pub fn reproduces(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Every cell of a reference, judged.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub metric: Metric,
    pub tolerance: Tolerance,
    pub cells: Vec<CellVerdict>,
}

impl Verdict {
    pub fn reproduces(&self) -> bool {
        self.cells.iter().all(CellVerdict::reproduces)
    }

    /// The labels of the cells that do not reproduce.
    pub fn failing(&self) -> Vec<&str> {
        self.cells
            .iter()
            .filter(|c| !c.reproduces())
            .map(|c| c.cell.as_str())
            .collect()
    }
}

/// The cell's key in both record sets: method, rank and the kind's suffix.
fn cell_key(curve: &CellCurve) -> (String, usize, String, usize, usize) {
    (
        curve.method.clone(),
        curve.rank,
        curve.variant.clone(),
        curve.batch_size,
        curve.epochs,
    )
}

fn cell_label(curve: &CellCurve) -> String {
    let label = crate::analysis::curve_label(curve);
    if curve.method == "full" {
        label
    } else {
        format!("{label} r={}", curve.rank)
    }
}

/// Index of `lr` among `lrs` (equal to 1e-9 relative).
fn position(lrs: &[f64], lr: f64) -> Option<usize> {
    lrs.iter()
        .position(|&x| (x - lr).abs() <= 1e-9 * lr.abs().max(x.abs()))
}

/// Judges `run` against `reference`, cell by cell (every cell of the
/// reference; cells only the run has are not judged).
pub fn verify(
    run: &[TrialRecord],
    reference: &[TrialRecord],
    metric: Metric,
    tolerance: Tolerance,
) -> Verdict {
    let run_curves: BTreeMap<_, CellCurve> = curves_of(run, metric)
        .into_iter()
        .map(|c| (cell_key(&c), c))
        .collect();
    let run_trials: BTreeMap<_, &TrialRecord> = run.iter().map(|t| (t.key(), t)).collect();
    let mut cells = Vec::new();
    for ref_curve in curves_of(reference, metric) {
        let key = cell_key(&ref_curve);
        let cell = cell_label(&ref_curve);
        let mut problems = Vec::new();
        let ref_best = best_point_by(&ref_curve, metric);
        let run_curve = run_curves.get(&key);
        let run_best = run_curve.and_then(|c| best_point_by(c, metric));
        let (mut lr_steps, mut lr_in_band) = (None, false);
        let (mut value_diff, mut value_allowed) = (f64::NAN, f64::NAN);
        match (&ref_best, &run_best, run_curve) {
            (_, _, None) => problems.push("not in the run".to_string()),
            (None, _, _) => {}
            (Some(_), None, Some(_)) => problems.push("no finite value in the run".to_string()),
            (Some(r), Some(b), Some(run_curve)) => {
                let mut grid: Vec<f64> = ref_curve.lrs.clone();
                for &lr in &run_curve.lrs {
                    if position(&grid, lr).is_none() {
                        grid.push(lr);
                    }
                }
                grid.sort_by(f64::total_cmp);
                let steps = position(&grid, r.lr)
                    .zip(position(&grid, b.lr))
                    .map(|(i, j)| i.abs_diff(j));
                lr_steps = steps;
                lr_in_band = position(&lr_band(&ref_curve, metric), b.lr).is_some();
                if !lr_in_band && steps.is_none_or(|s| s > tolerance.lr_steps) {
                    problems.push(format!(
                        "best LR {:.2e}, the reference's {:.2e} ({} grid steps apart)",
                        b.lr,
                        r.lr,
                        steps.map_or("?".to_string(), |s| s.to_string())
                    ));
                }
                value_diff = (b.mean - r.mean).abs();
                value_allowed = tolerance.allowed(metric, r);
                if value_diff.is_nan() || value_diff > value_allowed {
                    problems.push(format!(
                        "best {:.4}, the reference's {:.4} (|Δ| {:.4} > {:.4})",
                        b.mean, r.mean, value_diff, value_allowed
                    ));
                }
            }
        }
        let (mut shared, mut agreeing) = (0, 0);
        for t in reference.iter().filter(|t| ref_curve.holds(t)) {
            if let Some(r) = run_trials.get(&t.key()) {
                shared += 1;
                if tolerance.agree(metric, metric.of(r), metric.of(t)) {
                    agreeing += 1;
                }
            }
        }
        cells.push(CellVerdict {
            cell,
            reference: ref_best,
            run: run_best,
            lr_steps,
            lr_in_band,
            value_diff,
            value_allowed,
            shared,
            agreeing,
            problems,
        });
    }
    Verdict {
        metric,
        tolerance,
        cells,
    }
}

/// The verdict as a table, one line per cell, and a summary line.
pub fn render(verdict: &Verdict) -> String {
    use std::fmt::Write;
    let name = match verdict.metric {
        Metric::Accuracy => "acc",
        Metric::Perplexity => "ppl",
    };
    let point = |p: &Option<BestPoint>| {
        p.as_ref()
            .map_or("-".to_string(), |p| format!("{:.4} @ {:.2e}", p.mean, p.lr))
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<34} {:>20} {:>20} {:>9}  verdict",
        "cell",
        format!("reference {name} @ lr"),
        format!("run {name} @ lr"),
        "trials"
    );
    for c in &verdict.cells {
        let verdict = if c.reproduces() {
            "reproduces".to_string()
        } else {
            format!("DIFFERS: {}", c.problems.join("; "))
        };
        let _ = writeln!(
            out,
            "{:<34} {:>20} {:>20} {:>9}  {verdict}",
            c.cell,
            point(&c.reference),
            point(&c.run),
            format!("{}/{}", c.agreeing, c.shared),
        );
    }
    let failing = verdict.failing();
    let (agreeing, shared) = verdict
        .cells
        .iter()
        .fold((0, 0), |(a, s), c| (a + c.agreeing, s + c.shared));
    let _ = writeln!(
        out,
        "{} of {} cells reproduce (best LR within {} grid step or the reference's CI band, \
         best value within the reference's 95% CI or {}{}); {agreeing} of {shared} shared \
         trials agree",
        verdict.cells.len() - failing.len(),
        verdict.cells.len(),
        verdict.tolerance.lr_steps,
        verdict.tolerance.value,
        if verdict.metric == Metric::Perplexity {
            " relative"
        } else {
            ""
        },
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A LoRA r=4 cell and a full fine-tuning cell: accuracy per (lr, seed).
    fn study(lora: &[[f64; 2]; 4], full: &[[f64; 2]; 4]) -> Vec<TrialRecord> {
        let lrs = [1e-1, 1e-2, 1e-3, 1e-4];
        let mut out = Vec::new();
        for (method, rank, values) in [("lora", 4, lora), ("full", 0, full)] {
            for (lr, seeds) in lrs.iter().zip(values) {
                for (seed, &acc) in seeds.iter().enumerate() {
                    out.push(TrialRecord::synthetic(method, rank, *lr, seed as u64, acc));
                }
            }
        }
        out
    }

    const LORA: [[f64; 2]; 4] = [[0.2, 0.2], [0.9, 0.92], [0.7, 0.72], [0.3, 0.3]];
    const FULL: [[f64; 2]; 4] = [[0.5, 0.5], [1.0, 1.0], [1.0, 1.0], [0.6, 0.6]];

    fn judge(run: &[TrialRecord], reference: &[TrialRecord]) -> Verdict {
        verify(run, reference, Metric::Accuracy, Tolerance::DEFAULT)
    }

    #[test]
    fn identical_records_reproduce_trial_for_trial() {
        let reference = study(&LORA, &FULL);
        let verdict = judge(&reference, &reference);
        assert!(verdict.reproduces(), "{}", render(&verdict));
        assert_eq!(verdict.cells.len(), 2);
        assert!(
            verdict
                .cells
                .iter()
                .all(|c| c.shared == 8 && c.agreeing == 8)
        );
        assert!(render(&verdict).contains("2 of 2 cells reproduce"));
    }

    #[test]
    fn a_tie_broken_the_other_way_is_no_disagreement() {
        // Full FT scores 1.0 at 1e-2 and 1e-3 in both; the run's 1e-3 edges
        // ahead by noise, two grid steps from nothing but inside the band.
        let reference = study(&LORA, &FULL);
        let mut full = FULL;
        full[1] = [0.995, 0.995];
        let run = study(&LORA, &full);
        let verdict = judge(&run, &reference);
        let cell = &verdict.cells.iter().find(|c| c.cell == "Full FT").unwrap();
        assert!(cell.lr_in_band);
        assert!(verdict.reproduces(), "{}", render(&verdict));
    }

    #[test]
    fn a_moved_optimum_or_a_lower_best_is_named() {
        let reference = study(&LORA, &FULL);
        // LoRA's best moves two grid steps (1e-2 -> 1e-4) and drops.
        let moved = study(&[[0.2, 0.2], [0.4, 0.4], [0.5, 0.5], [0.6, 0.6]], &FULL);
        let verdict = judge(&moved, &reference);
        assert!(!verdict.reproduces());
        assert_eq!(verdict.failing(), vec!["LoRA r=4"]);
        let cell = &verdict.cells[verdict
            .cells
            .iter()
            .position(|c| c.cell == "LoRA r=4")
            .unwrap()];
        assert_eq!(cell.lr_steps, Some(2));
        assert_eq!(cell.problems.len(), 2, "{:?}", cell.problems);
        assert_eq!(cell.agreeing, 2, "the 0.2s at 1e-1");
        let text = render(&verdict);
        assert!(
            text.contains("DIFFERS: best LR 1.00e-4, the reference's 1.00e-2 (2 grid steps apart)"),
            "{text}"
        );
        assert!(text.contains("1 of 2 cells reproduce"), "{text}");
    }

    #[test]
    fn a_cell_the_run_lacks_does_not_reproduce() {
        let reference = study(&LORA, &FULL);
        let run: Vec<_> = reference
            .iter()
            .filter(|t| t.method == "full")
            .cloned()
            .collect();
        let verdict = judge(&run, &reference);
        assert_eq!(verdict.failing(), vec!["LoRA r=4"]);
        let cell = verdict.cells.iter().find(|c| c.cell == "LoRA r=4").unwrap();
        assert_eq!(cell.problems, vec!["not in the run".to_string()]);
    }

    #[test]
    fn perplexity_tolerance_is_relative() {
        let mut reference = study(&LORA, &FULL);
        for t in &mut reference {
            t.val_loss = 3.0;
        }
        let mut run = reference.clone();
        for t in &mut run {
            t.val_loss = 3.0 + 0.005; // ppl × 1.005: within 1%
        }
        assert!(verify(&run, &reference, Metric::Perplexity, Tolerance::DEFAULT).reproduces());
        for t in &mut run {
            t.val_loss = 3.0 + 0.02; // ppl × 1.02
        }
        assert!(!verify(&run, &reference, Metric::Perplexity, Tolerance::DEFAULT).reproduces());
    }
}
