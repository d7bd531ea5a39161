//! One adapted linear: low-rank factors (and a magnitude for DoRA) per
//! member; GraLoRA's blocks and RandLoRA's scaled random bases are other
//! readings of the same two trained tensors.

use burn::module::{Module, Param};
use burn::tensor::Tensor;
use nn::PopLinear;

/// How the factors act on the frozen linear.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LayerKind {
    /// `y = x W + b + s · (x A) B` (LoRA, rsLoRA, Init\[AB\], PiSSA, MiLoRA).
    #[default]
    Additive,
    /// `y = (x W + s · x A B) ⊙ m / ‖W + s A B‖ + b`, the column norm treated
    /// as a constant in the backward pass (DoRA paper §4.3, HF PEFT).
    Dora,
    /// The seed notebook's DoRA: the same formula with the norm
    /// differentiated through and clamped at 1e-12 (`F.normalize`).
    DoraSeed,
    /// GraLoRA: `ΔW` in `k × k` blocks; block (n, j) is the j-th rank-`r/k`
    /// slice of input block n's `A` times the n-th slice of output block
    /// j's `B` (HF PEFT's `get_delta_weight`). `A: [C, in, r]` stacks
    /// PEFT's `gralora_A` `[k, in/k, r]`; `B: [C, r, out]` lays PEFT's
    /// `gralora_B` `[k, r, out/k]` side by side.
    Gralora { k: usize },
    /// RandLoRA: `A` holds Λ `[C, r, nb]`, `B` holds Γ `[C, nb, min]`;
    /// `ΔW = B̂ (Λ ⊙ Â ⊙ Γ)` over the frozen bases ([`RandBases`]),
    /// transposed where `wide` (in > out), as HF PEFT forms it.
    Randlora { wide: bool },
}

impl LayerKind {
    pub fn is_dora(self) -> bool {
        matches!(self, LayerKind::Dora | LayerKind::DoraSeed)
    }

    /// Whether `(x A) B` is the update's activation-space form; GraLoRA and
    /// RandLoRA run through their dense update.
    fn has_factor_path(self) -> bool {
        matches!(
            self,
            LayerKind::Additive | LayerKind::Dora | LayerKind::DoraSeed
        )
    }
}

/// GraLoRA's hybrid part: a plain LoRA pair beside the blocks, `[C, in, h]`
/// and `[C, h, out]` (PEFT's `gralora_A_general`, `gralora_B_general`).
#[derive(Module, Debug)]
pub struct GeneralFactors {
    pub a: Param<Tensor<3>>,
    pub b: Param<Tensor<3>>,
}

/// RandLoRA's frozen random bases, sliced to one linear: `a` `[1, r, min]`
/// (PEFT's `randlora_A[:, 0, :min]`) and `b` `[1, max, nb·r]` (its
/// `randlora_B[:max, :nb, :]` flattened), one copy shared by every member
/// as the frozen base is.
#[derive(Module, Debug)]
pub struct RandBases {
    pub a: Param<Tensor<3>>,
    pub b: Param<Tensor<3>>,
}

/// Factors of one linear `in -> out` for `C` members.
///
/// Stored in the model's `[in, out]` orientation: `A: [C, in, r]` is HF
/// PEFT's `lora_A.weight` (`[r, in]`) transposed, `B: [C, r, out]` its
/// `lora_B.weight` (`[out, r]`) transposed. The low-rank path runs in
/// activation space, `(x A) B`, or through the merged weight ([`Compute`]).
#[derive(Module, Debug)]
pub struct LoraLayer {
    pub a: Param<Tensor<3>>,
    pub b: Param<Tensor<3>>,
    /// `[C, out]`, DoRA only.
    pub magnitude: Option<Param<Tensor<2>>>,
    /// GraLoRA with `hybrid_r > 0` only.
    pub general: Option<GeneralFactors>,
    /// RandLoRA only.
    pub bases: Option<RandBases>,
    #[module(skip)]
    pub scale: f64,
    #[module(skip)]
    pub kind: LayerKind,
    #[module(skip)]
    pub compute: Compute,
}

/// Where the low-rank path is evaluated. Both give the same function; they
/// differ in cost and in rounding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Compute {
    /// `x (W + s·A B)`: the adapted weight formed densely per member, as
    /// Burn's `apply_lora` does; its backward needs the dense `[in, out]`
    /// gradient. The default: faster on flex at every rank measured (and on
    /// wgpu), as its products are all dense and its cost does not grow with
    /// the rank, while activation space's thin rank-`r` products run far
    /// below a dense product's speed.
    #[default]
    WeightSpace,
    /// `x W + s·(x A) B`: two thin products, no dense weight gradient (HF
    /// PEFT's form).
    ActivationSpace,
}

impl LoraLayer {
    /// The adapter's rank `r` (RandLoRA: of each random basis).
    pub fn rank(&self) -> usize {
        match self.kind {
            LayerKind::Randlora { .. } => self.a.dims()[1],
            _ => self.a.dims()[2],
        }
    }

    /// `s · ΔW`, `[C, in, out]`: the weight-space update (`s · A B` for the
    /// LoRA family).
    pub fn delta_weight(&self) -> Tensor<3> {
        let (a, b) = (self.a.val(), self.b.val());
        let delta = match self.kind {
            LayerKind::Gralora { k } => gralora_delta(a, b, k),
            LayerKind::Randlora { wide } => {
                let bases = self.bases.as_ref().expect("RandLoRA layers carry bases");
                randlora_delta(a, b, bases, wide)
            }
            _ => a.matmul(b),
        };
        let delta = match &self.general {
            Some(g) => delta + g.a.val().matmul(g.b.val()),
            None => delta,
        };
        delta.mul_scalar(self.scale)
    }

    /// DoRA's `‖W + s A B‖` over the input axis, `[C, 1, out]`.
    pub fn column_norm(&self, base: &PopLinear) -> Tensor<3> {
        self.norm_of(base.weight.val() + self.delta_weight())
    }

    /// DoRA's column norm of the adapted weight `W + s A B`.
    fn norm_of(&self, adapted: Tensor<3>) -> Tensor<3> {
        let norm = adapted.square().sum_dim(1).sqrt();
        match self.kind {
            LayerKind::DoraSeed => norm.clamp_min(1e-12),
            _ => norm.detach(),
        }
    }

    /// DoRA's magnitude as `[C, 1, out]`.
    pub fn magnitude_row(&self) -> Tensor<3> {
        self.magnitude
            .as_ref()
            .expect("DoRA layers carry a magnitude")
            .val()
            .unsqueeze_dim::<3>(1)
    }

    /// The adapted output for `x: [C, B, T, in]`.
    pub fn forward(&self, base: &PopLinear, x: Tensor<4>) -> Tensor<4> {
        let [cx, b, t, d_in] = x.dims();
        let x3 = x.reshape([cx, b * t, d_in]);
        if self.compute == Compute::WeightSpace || !self.kind.has_factor_path() {
            let y = x3.matmul(self.merged_weight(base));
            let y = match &base.bias {
                Some(bias) => y + bias.val().unsqueeze_dim::<3>(1),
                None => y,
            };
            let c = y.dims()[0];
            return y.reshape([c, b, t, base.d_out()]);
        }
        // The scale multiplies the thin `[C, N, r]` product (or nothing when
        // it is 1): the same function as scaling the `[C, N, out]` result,
        // at a fraction of the element-wise work forward and backward.
        let xa = x3.clone().matmul(self.a.val());
        let xa = if self.scale == 1.0 {
            xa
        } else {
            xa.mul_scalar(self.scale)
        };
        let low_rank = xa.matmul(self.b.val());
        let y = match self.kind {
            LayerKind::Dora | LayerKind::DoraSeed => {
                let magnitude = self.magnitude_row();
                let factor = magnitude / self.column_norm(base);
                let y = (x3.matmul(base.weight.val()) + low_rank) * factor;
                match &base.bias {
                    Some(bias) => y + bias.val().unsqueeze_dim::<3>(1),
                    None => y,
                }
            }
            _ => base.forward3(x3) + low_rank,
        };
        let c = y.dims()[0];
        y.reshape([c, b, t, base.d_out()])
    }

    /// The weight this layer is equivalent to, `[C, in, out]` (bias unchanged).
    pub fn merged_weight(&self, base: &PopLinear) -> Tensor<3> {
        let adapted = base.weight.val() + self.delta_weight();
        if self.kind.is_dora() {
            let factor = self.magnitude_row() / self.norm_of(adapted.clone());
            adapted * factor
        } else {
            adapted
        }
    }
}

/// GraLoRA's unscaled update `[C, in, out]` from `a: [C, in, r]`,
/// `b: [C, r, out]` in `k × k` blocks: block (n, j) `[in/k, out/k]` is
/// `a[n-th rows, j-th rank slice] · b[n-th rank slice, j-th columns]`.
pub fn gralora_delta(a: Tensor<3>, b: Tensor<3>, k: usize) -> Tensor<3> {
    let [c, d_in, r] = a.dims();
    let d_out = b.dims()[2];
    let (rows, cols, slice) = (d_in / k, d_out / k, r / k);
    // [C, n, I, j, s] -> [C, n, j, I, s] and [C, n, s, j, O] -> [C, n, j, s, O].
    let a = a.reshape([c, k, rows, k, slice]).swap_dims(2, 3);
    let b = b.reshape([c, k, slice, k, cols]).swap_dims(2, 3);
    // [C, n, j, I, O] -> [C, n, I, j, O] -> [C, in, out].
    a.matmul(b).swap_dims(2, 3).reshape([c, d_in, d_out])
}

/// RandLoRA's unscaled update `[C, in, out]` from Λ `[C, r, nb]` and Γ
/// `[C, nb, min]`: `M = B̂ · reshape(Λ ⊙ A ⊙ Γ, [r·nb, min])`, `[max, min]`,
/// read as `[in, out]` (transposed unless `wide`), PEFT's flattening orders
/// kept as they are.
pub fn randlora_delta(
    lambda: Tensor<3>,
    gamma: Tensor<3>,
    bases: &RandBases,
    wide: bool,
) -> Tensor<3> {
    let [c, r, nb] = lambda.dims();
    let [_, _, min] = bases.a.dims();
    let scaled = lambda.reshape([c, r, nb, 1])
        * bases.a.val().reshape([1, r, 1, min])
        * gamma.reshape([c, 1, nb, min]);
    let scaled = scaled.reshape([c, r * nb, min]);
    let b_hat = bases.b.val().repeat_dim(0, c);
    let m = b_hat.matmul(scaled);
    if wide { m } else { m.swap_dims(1, 2) }
}
