//! Pieces every transformer family shares: the member-aware embedding
//! lookup, the causal mask and the softmax attention uses.

use burn::tensor::{Bool, Device, Int, Tensor};

/// Rows of `table: [M, vocab, d]` for `tokens: [G, B, T]`:
/// `[max(G, M), B, T, d]`, each member reading its own copy of the table
/// (or the shared one, never copied, when `M = 1`).
pub fn lookup(table: Tensor<3>, tokens: Tensor<3, Int>) -> Tensor<4> {
    let [g, b, t] = tokens.dims();
    let [m, vocab, d] = table.dims();
    if m == 1 {
        // A shared table is read in place: copying it per member would cost
        // a whole embedding per member.
        return table
            .reshape([vocab, d])
            .select(0, tokens.reshape([g * b * t]))
            .reshape([g, b, t, d]);
    }
    let members = g.max(m);
    let tokens = if g < members {
        tokens.repeat_dim(0, members)
    } else {
        tokens
    };
    let table = if m < members {
        table.repeat_dim(0, members)
    } else {
        table
    };
    // Member c's rows live at c*vocab.. in the flattened table.
    let offsets = if members > 1 {
        Tensor::<1, Int>::arange(0..members as i64, &tokens.device())
            .mul_scalar(vocab as i64)
            .reshape([members, 1, 1])
    } else {
        Tensor::<3, Int>::zeros([1, 1, 1], &tokens.device())
    };
    let flat = (tokens + offsets).reshape([members * b * t]);
    table
        .reshape([members * vocab, d])
        .select(0, flat)
        .reshape([members, b, t, d])
}

/// Logits `[C, B × T, vocab]` of hidden states `x: [C, B, T, d]` through a
/// head tied to the token embedding `table: [M, vocab, d]`.
pub fn tied_head(x: Tensor<4>, table: Tensor<3>) -> Tensor<3> {
    head_product(x, table.swap_dims(1, 2))
}

/// Logits `[C, B × T, vocab]` of hidden states `[C, B, T, d]` through a
/// head's weight `[M, d, vocab]`.
pub fn head_product(x: Tensor<4>, head: Tensor<3>) -> Tensor<3> {
    let [c, b, t, d] = x.dims();
    let [m, _, vocab] = head.dims();
    if m == 1 && c > 1 {
        // One shared head: one product over every member's rows.
        x.reshape([1, c * b * t, d])
            .matmul(head)
            .reshape([c, b * t, vocab])
    } else {
        x.reshape([c, b * t, d]).matmul(head)
    }
}

/// Softmax over the last axis as `e · (1 / Σe)` with `e = exp(x − max x)`:
/// Burn's `softmax` divides by the sum, and a division's backward pass costs
/// two more passes over the scores than a product's.
pub fn softmax_last<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    let max = x.clone().detach().max_dim(D - 1);
    let e = (x - max).exp();
    let inv_sum = e.clone().sum_dim(D - 1).recip();
    e * inv_sum
}

/// `[1, 1, 1, T, T]`: 0 where key `j <= i` (query `i`), a large negative
/// number above the diagonal, so softmax gives those keys weight 0 (finite,
/// so no backend sees `inf - inf`).
pub fn causal_bias(t: usize, device: &Device) -> Tensor<5> {
    causal_bias_after(0, t, device)
}

/// `[1, 1, 1, T, past + T]`: the causal bias of `T` new queries at
/// positions `past..past + T` over every key so far (query `i` sees keys
/// up to `past + i`).
pub fn causal_bias_after(past: usize, t: usize, device: &Device) -> Tensor<5> {
    let above = Tensor::<2, Bool>::tril_mask([t, past + t], past as i64, device);
    Tensor::<2>::zeros([t, past + t], device)
        .mask_fill(above, -1.0e9)
        .reshape([1, 1, 1, t, past + t])
}

/// Keys and values of the tokens decoded so far, per layer `[C, B, heads,
/// T, head_dim]`: what incremental decoding reads instead of recomputing
/// the past.
#[derive(Debug, Clone, Default)]
pub struct KvCache {
    layers: Vec<Option<(Tensor<5>, Tensor<5>)>>,
    len: usize,
}

impl KvCache {
    /// Tokens cached.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends `layer`'s keys and values of the new tokens (`[C, B, heads,
    /// T, dh]`) and returns all of them so far. A 1-member past meets a
    /// `C`-member present (or the reverse) by repeating the 1-member side.
    pub fn extend(&mut self, layer: usize, k: Tensor<5>, v: Tensor<5>) -> (Tensor<5>, Tensor<5>) {
        if self.layers.len() <= layer {
            self.layers.resize(layer + 1, None);
        }
        let joined = match self.layers[layer].take() {
            None => (k, v),
            Some((pk, pv)) => (joined(pk, k), joined(pv, v)),
        };
        self.layers[layer] = Some(joined.clone());
        joined
    }

    /// Marks `t` more tokens cached (once every layer has extended).
    pub fn advance(&mut self, t: usize) {
        self.len += t;
    }
}

/// `past` and `new` along the time axis, member counts matched.
fn joined(past: Tensor<5>, new: Tensor<5>) -> Tensor<5> {
    let (p, n) = (past.dims()[0], new.dims()[0]);
    let (past, new) = match (p, n) {
        (1, n) if n > 1 => (past.repeat_dim(0, n), new),
        (p, 1) if p > 1 => (past, new.repeat_dim(0, p)),
        _ => (past, new),
    };
    Tensor::cat(vec![past, new], 3)
}
