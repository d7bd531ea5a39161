//! One adapted linear: low-rank factors (and a magnitude for DoRA) per member.

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
    pub fn rank(&self) -> usize {
        self.a.dims()[2]
    }

    /// `s · A B`, `[C, in, out]`: the weight-space update.
    pub fn delta_weight(&self) -> Tensor<3> {
        self.a.val().matmul(self.b.val()).mul_scalar(self.scale)
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
        if self.compute == Compute::WeightSpace {
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
            LayerKind::Additive => base.forward3(x3) + low_rank,
            LayerKind::Dora | LayerKind::DoraSeed => {
                let magnitude = self.magnitude_row();
                let factor = magnitude / self.column_norm(base);
                let y = (x3.matmul(base.weight.val()) + low_rank) * factor;
                match &base.bias {
                    Some(bias) => y + bias.val().unsqueeze_dim::<3>(1),
                    None => y,
                }
            }
        };
        let c = y.dims()[0];
        y.reshape([c, b, t, base.d_out()])
    }

    /// The weight this layer is equivalent to, `[C, in, out]` (bias unchanged).
    pub fn merged_weight(&self, base: &PopLinear) -> Tensor<3> {
        let adapted = base.weight.val() + self.delta_weight();
        match self.kind {
            LayerKind::Additive => adapted,
            LayerKind::Dora | LayerKind::DoraSeed => {
                let factor = self.magnitude_row() / self.norm_of(adapted.clone());
                adapted * factor
            }
        }
    }
}
