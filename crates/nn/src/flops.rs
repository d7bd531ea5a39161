//! Counting a training step's FLOPs: matrix products only, the measure
//! benchmarks divide by time. Each model family counts its own step with
//! these (tinyformer: `TinyformerConfig::step_flops`).

use serde::{Deserialize, Serialize};

/// `2·m·k·n`: multiply-adds of an `[m, k] × [k, n]` product, counted as two
/// FLOPs each.
pub fn matmul_flops(m: usize, k: usize, n: usize) -> f64 {
    2.0 * m as f64 * k as f64 * n as f64
}

/// FLOPs of one product `A [m, k] × B [k, n]` in a training step: the
/// forward product, plus the same again for `dA = dC Bᵀ` when `A` carries a
/// gradient and again for `dB = Aᵀ dC` when `B` does. A trainable linear fed
/// by a tracked input is the usual ×3; a frozen weight on an untracked input
/// costs only its forward.
pub fn matmul_step_flops(m: usize, k: usize, n: usize, a_grad: bool, b_grad: bool) -> f64 {
    matmul_flops(m, k, n) * (1.0 + f64::from(u8::from(a_grad)) + f64::from(u8::from(b_grad)))
}

/// FLOPs of one member's training step, by part.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct FlopCount {
    /// The block linears' own products `x W` (forward and backward).
    pub linears: f64,
    /// The attention products `q kᵀ` and `softmax · v`.
    pub attention: f64,
    /// The adapters' extra products: `x A`, `(x A) B` (activation space) or
    /// `A B` (weight space).
    pub adapters: f64,
    /// The head on the last position.
    pub head: f64,
}

impl FlopCount {
    pub fn total(&self) -> f64 {
        self.linears + self.attention + self.adapters + self.head
    }
}
