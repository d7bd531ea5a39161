//! Population-aware building blocks: a linear layer and RMSNorm whose
//! parameters carry a leading member axis `M` (1 for a shared frozen weight,
//! `C` when every member trains its own copy).

use burn::module::{Module, Param};
use burn::tensor::{Device, Tensor};

use crate::init::{ParamRng, linear_bound, tensor_from};

/// `y = x W + b` with `W: [M, in, out]` and `b: [M, out]`.
///
/// Inputs are `[C, N, in]` (or any rank ≥ 3 via [`PopLinear::forward`]) with
/// `C` = `M`, or either of them 1; the size-1 side broadcasts.
#[derive(Module, Debug)]
pub struct PopLinear {
    pub weight: Param<Tensor<3>>,
    pub bias: Option<Param<Tensor<2>>>,
}

impl PopLinear {
    /// PyTorch's `nn.Linear` initialisation for one shared copy (`M = 1`).
    pub fn init(
        d_in: usize,
        d_out: usize,
        bias: bool,
        rng: &mut ParamRng,
        device: &Device,
    ) -> Self {
        let bound = linear_bound(d_in);
        // Drawn in PyTorch's [out, in] order, then stored as [in, out].
        let w_out_in = tensor_from(rng.uniform(d_out * d_in, bound), [d_out, d_in], device);
        let weight = Param::from_tensor(w_out_in.transpose().unsqueeze_dim::<3>(0));
        let bias = bias.then(|| {
            Param::from_tensor(tensor_from(rng.uniform(d_out, bound), [1, d_out], device))
        });
        Self { weight, bias }
    }

    /// One shared copy (`M = 1`) of given weights: `weight: [in, out]`,
    /// `bias: [out]`.
    pub fn from_weights(weight: Tensor<2>, bias: Option<Tensor<1>>) -> Self {
        Self {
            weight: Param::from_tensor(weight.unsqueeze_dim::<3>(0)),
            bias: bias.map(|b| Param::from_tensor(b.unsqueeze_dim::<2>(0))),
        }
    }

    pub fn d_in(&self) -> usize {
        self.weight.dims()[1]
    }

    /// Member `member`'s weight `[in, out]` and bias (the one copy of a
    /// shared linear, `M = 1`, whatever `member` is): what a checkpoint or
    /// adapter file stores of it.
    pub fn member(&self, member: usize) -> (Tensor<2>, Option<Tensor<1>>) {
        let at = if self.members() == 1 { 0 } else { member };
        let weight = self.weight.val().narrow(0, at, 1).squeeze_dim::<2>(0);
        let bias = self
            .bias
            .as_ref()
            .map(|b| b.val().narrow(0, at, 1).squeeze_dim::<1>(0));
        (weight, bias)
    }

    pub fn d_out(&self) -> usize {
        self.weight.dims()[2]
    }

    pub fn members(&self) -> usize {
        self.weight.dims()[0]
    }

    /// `x: [C, N, in] -> [C', N, out]`, `C'` = max(C, M).
    pub fn forward3(&self, x: Tensor<3>) -> Tensor<3> {
        let [c, n, d_in] = x.dims();
        let y = if self.members() == 1 && c > 1 {
            // One shared weight: one [C·N, in] × [in, out] product instead of
            // C products against a broadcast weight.
            x.reshape([1, c * n, d_in])
                .matmul(self.weight.val())
                .reshape([c, n, self.d_out()])
        } else {
            x.matmul(self.weight.val())
        };
        match &self.bias {
            Some(bias) => y + bias.val().unsqueeze_dim::<3>(1),
            None => y,
        }
    }

    /// `x: [C, ..., in] -> [C', ..., out]` for any rank `D ≥ 3`.
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let dims = x.dims();
        let c = dims[0];
        let n: usize = dims[1..D - 1].iter().product();
        let y = self.forward3(x.reshape([c, n, dims[D - 1]]));
        let mut out = dims;
        out[0] = y.dims()[0];
        out[D - 1] = self.d_out();
        y.reshape(out)
    }
}

/// `x · scale / sqrt(mean(x²) + eps)` over the last axis, `scale: [M, d]`.
#[derive(Module, Debug)]
pub struct RmsNorm {
    pub scale: Param<Tensor<2>>,
    #[module(skip)]
    pub eps: f64,
}

impl RmsNorm {
    /// Scale 1, eps 1e-6 as in the seed notebook.
    pub fn init(d: usize, device: &Device) -> Self {
        Self {
            scale: Param::from_tensor(Tensor::ones([1, d], device)),
            eps: 1e-6,
        }
    }

    /// One shared copy of a given `weight: [d]` (a checkpoint's norm).
    pub fn from_weights(weight: Tensor<1>, eps: f64) -> Self {
        Self {
            scale: Param::from_tensor(weight.unsqueeze_dim::<2>(0)),
            eps,
        }
    }

    /// `x: [C, B, T, d]`. Multiplies by `1 / rms` rather than dividing by
    /// `rms`: a division's backward pass costs two more passes over `x`'s size
    /// than a product's.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let inv_rms = inverse_rms(x.clone(), self.eps);
        x.mul(inv_rms).mul(per_position(&self.scale))
    }
}

/// `(x − mean) / sqrt(var + eps) · weight + bias` over the last axis
/// (PyTorch's `nn.LayerNorm`, biased variance), `weight, bias: [M, d]`.
#[derive(Module, Debug)]
pub struct LayerNorm {
    pub weight: Param<Tensor<2>>,
    pub bias: Param<Tensor<2>>,
    #[module(skip)]
    pub eps: f64,
}

impl LayerNorm {
    /// One shared copy of given `weight, bias: [d]`.
    pub fn from_weights(weight: Tensor<1>, bias: Tensor<1>, eps: f64) -> Self {
        Self {
            weight: Param::from_tensor(weight.unsqueeze_dim::<2>(0)),
            bias: Param::from_tensor(bias.unsqueeze_dim::<2>(0)),
            eps,
        }
    }

    /// `x: [C, B, T, d]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let centred = x.clone() - x.mean_dim(3);
        let inv_std = inverse_rms(centred.clone(), self.eps);
        centred.mul(inv_std).mul(per_position(&self.weight)) + per_position(&self.bias)
    }
}

/// `1 / sqrt(mean(x²) + eps)` over the last axis, `[C, B, T, 1]`.
fn inverse_rms(x: Tensor<4>, eps: f64) -> Tensor<4> {
    x.square().mean_dim(3).add_scalar(eps).sqrt().recip()
}

/// A `[M, d]` parameter as `[M, 1, 1, d]`, to scale `[C, B, T, d]`.
fn per_position(p: &Param<Tensor<2>>) -> Tensor<4> {
    p.val().unsqueeze_dim::<3>(1).unsqueeze_dim::<4>(1)
}
