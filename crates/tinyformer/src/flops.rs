//! Tinyformer's FLOP model: what one member's training step costs in
//! matrix products, next to the model whose rows it counts.

use std::collections::BTreeSet;

use nn::{FlopCount, ModuleId, matmul_step_flops};

use crate::adaptable::{K, MLP_DOWN, MLP_UP, O, Q, V};
use crate::config::TinyformerConfig;

/// What a training step trains.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trained<'a> {
    /// Every parameter (full fine-tuning).
    Everything,
    /// Rank-`rank` adapters on `targets`, in weight space (`W + s·A B`
    /// formed, then one product) or activation space (`x A`, then `· B`).
    Adapters {
        rank: usize,
        weight_space: bool,
        targets: &'a BTreeSet<ModuleId>,
    },
}

impl TinyformerConfig {
    /// The FLOP model of one member's training step (forward, backward) on a
    /// batch of `batch` sequences.
    ///
    /// Only matrix products count (`2·m·k·n` each, [`matmul_flops`](nn::matmul_flops));
    /// norms, softmax, GELU, the loss, the embedding gather and AdamW are
    /// element-wise and left out. The backward of a product costs one forward
    /// for each operand that carries a gradient ([`matmul_step_flops`]): the
    /// familiar "forward ×3" for a trained linear, ×2 for a frozen weight whose
    /// input carries a gradient, ×1 when neither does (the first block's q, k,
    /// v base products under LoRA, whose input comes from the frozen embedding).
    /// Which tensors carry a gradient follows the data flow: the residual
    /// stream starts tracked only under full fine-tuning and becomes tracked at
    /// the first adapted linear.
    ///
    /// Per block with `N = batch·seq_len` tokens: the linears q, k, v, o
    /// (`d → d`) and the MLP (`d → d_ff → d`) on `N` rows; attention
    /// `2·(2·batch·seq_len²·d_model)` forward. The last block runs q, o, the
    /// MLP and attention's queries on the last position only (`batch` rows;
    /// k and v still on `N`), and the head `d → vocab` reads that position.
    /// Adapters, activation space: `x A` (`N × in × r`) and `(x A) B`
    /// (`N × r × out`), ×3 (×2 for `x A` on an untracked input); weight space:
    /// `A B` (`in × r × out`, ×3) and the product with the merged weight
    /// instead of the base's, its weight tracked. The count is per member as
    /// if it trained alone: a population on one shared batch computes the
    /// first block's base projections once for all members (in activation
    /// space), which is not credited.
    pub fn step_flops(&self, batch: usize, trained: Trained<'_>, train_head: bool) -> FlopCount {
        let model = self;
        let (d, ff, t) = (model.d_model, model.d_ff, model.seq_len);
        let full = trained == Trained::Everything;
        let mut count = FlopCount::default();
        // One block linear at `kind` over `n` rows on input tracked-ness
        // `x_tracked`; returns whether its output carries a gradient.
        let linear =
            |count: &mut FlopCount, kind: ModuleId, n: usize, d_in, d_out, x_tracked: bool| {
                match trained {
                    Trained::Everything => {
                        count.linears += matmul_step_flops(n, d_in, d_out, x_tracked, true);
                        true
                    }
                    Trained::Adapters {
                        rank,
                        weight_space,
                        targets,
                    } if targets.contains(&kind) => {
                        if weight_space {
                            count.adapters += matmul_step_flops(d_in, rank, d_out, true, true);
                            count.linears += matmul_step_flops(n, d_in, d_out, x_tracked, true);
                        } else {
                            count.linears += matmul_step_flops(n, d_in, d_out, x_tracked, false);
                            count.adapters += matmul_step_flops(n, d_in, rank, x_tracked, true)
                                + matmul_step_flops(n, rank, d_out, true, true);
                        }
                        true
                    }
                    Trained::Adapters { .. } => {
                        count.linears += matmul_step_flops(n, d_in, d_out, x_tracked, false);
                        x_tracked
                    }
                }
            };
        let mut stream = full;
        for layer in 0..model.n_layers {
            // A classifier's last block computes queries and everything after
            // them for the last position only (`Tinyformer::forward_with`); a
            // causal model (the head on every position) runs every row. Its
            // masked attention is counted as the full T × T product, as computed.
            let all = batch * t;
            let rows = if layer + 1 == model.n_layers && !model.causal {
                batch
            } else {
                all
            };
            let q = linear(&mut count, Q, rows, d, d, stream);
            let k = linear(&mut count, K, all, d, d, stream);
            let v = linear(&mut count, V, all, d, d, stream);
            // scores = q kᵀ over batch·heads of [rows/batch, dh] × [dh, T]; mixed = p v.
            let scores = matmul_step_flops(rows, d, t, q, k);
            let mixed = matmul_step_flops(rows, t, d, q || k, v);
            count.attention += scores + mixed;
            let mixed_tracked = q || k || v;
            let o = linear(&mut count, O, rows, d, d, mixed_tracked);
            stream = stream || o;
            let up = linear(&mut count, MLP_UP, rows, d, ff, stream);
            let down = linear(&mut count, MLP_DOWN, rows, ff, d, up);
            stream = stream || down;
        }
        let head_rows = if model.causal { batch * t } else { batch };
        count.head = matmul_step_flops(head_rows, d, model.vocab, stream, full || train_head);
        count
    }
}
