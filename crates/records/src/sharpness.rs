//! The schema of `sharpness.json` / `sharpness-after-N.json`: λmax of the
//! fine-tuning loss Hessian per (cell, seed), as `lrscape sharpness` writes
//! it and the report reads it.

use serde::{Deserialize, Serialize};

/// One line of `sharpness.json`: a (cell, seed) at initialisation (or, in
/// `sharpness-after-N.json`, after N steps at the cell's best LR).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SharpnessEntry {
    pub method: String,
    pub rank: usize,
    /// The cell's variant, `alpha_rule/init/targets` as in the records.
    pub variant: String,
    pub seed: u64,
    pub lambda_max: f64,
    pub iterations: usize,
    pub converged: bool,
    pub epsilon: f64,
    pub history: Vec<f64>,
    /// The most negative eigenvalue found, if any.
    #[serde(default)]
    pub lambda_min: Option<f64>,
    /// The learning rate the member trained at before the measurement
    /// (none at initialisation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trained_lr: Option<f64>,
}

/// `sharpness.json`: how λmax was measured, and one entry per (cell, seed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SharpnessFile {
    pub experiment: String,
    /// The config's results hash (`trials.jsonl` of the same setup has it).
    pub config_hash: String,
    /// The first `examples` fine-tuning training examples, one batch.
    pub examples: usize,
    pub max_iters: usize,
    pub tol: f64,
    pub eps_rel: f64,
    pub backend: String,
    pub seconds: f64,
    /// Training steps before the measurement (0: at initialisation).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub after_steps: usize,
    pub entries: Vec<SharpnessEntry>,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// A grid cell's λmax at initialisation (mean over its seeds).
#[derive(Debug, Clone, PartialEq)]
pub struct SharpnessCell {
    pub method: String,
    pub rank: usize,
    /// `alpha_rule/init/targets`, as the records spell it.
    pub variant: String,
    pub lambda_max: f64,
}

impl SharpnessFile {
    /// Mean λmax over seeds per cell, in the order cells first appear.
    pub fn cells(&self) -> Vec<SharpnessCell> {
        let mut cells: Vec<SharpnessCell> = Vec::new();
        let mut counts: Vec<usize> = Vec::new();
        for e in &self.entries {
            match cells
                .iter()
                .position(|c| c.method == e.method && c.rank == e.rank && c.variant == e.variant)
            {
                Some(i) => {
                    cells[i].lambda_max += e.lambda_max;
                    counts[i] += 1;
                }
                None => {
                    cells.push(SharpnessCell {
                        method: e.method.clone(),
                        rank: e.rank,
                        variant: e.variant.clone(),
                        lambda_max: e.lambda_max,
                    });
                    counts.push(1);
                }
            }
        }
        for (cell, n) in cells.iter_mut().zip(counts) {
            cell.lambda_max /= n as f64;
        }
        cells
    }
}
