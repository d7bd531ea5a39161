//! Initial factors: random (LoRA family) or from the SVD (PiSSA, MiLoRA).

use burn::tensor::{Device, Tensor};
use nn::init::{ParamRng, linear_bound, tensor_from};
use nn::{LinearSite, PopLinear};

use crate::PeftError;
use crate::config::LoraInit;

/// The RNG for one member's factors at one site: a member seed names the
/// same initial adapter whatever its learning rate or population.
pub fn site_rng(member_seed: u64, site: LinearSite) -> ParamRng {
    let kind = u64::from(site.module.index);
    let mixed = member_seed
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add((site.layer as u64) << 8 | kind)
        .rotate_left(17);
    ParamRng::new(mixed)
}

/// `A` for one member in the model's `[in, r]` orientation, drawn in
/// PyTorch's `[r, in]` order.
pub fn random_a(
    init: LoraInit,
    d_in: usize,
    r: usize,
    rng: &mut ParamRng,
    device: &Device,
) -> Tensor<2> {
    let values = match init {
        LoraInit::KaimingUniform => rng.uniform(r * d_in, linear_bound(d_in)),
        LoraInit::Gaussian { std } => rng.normal(r * d_in, std),
    };
    tensor_from(values, [r, d_in], device).transpose()
}

/// `B` for Init\[AB\], `[r, out]`: kaiming-uniform on PyTorch's `[out, r]`
/// (fan-in r, so uniform in ±1/√r), the same rule PEFT applies to `A`.
pub fn random_b(d_out: usize, r: usize, rng: &mut ParamRng, device: &Device) -> Tensor<2> {
    tensor_from(rng.uniform(d_out * r, linear_bound(r)), [d_out, r], device).transpose()
}

/// Which singular components an SVD init takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Components {
    /// The `r` largest (PiSSA).
    Principal,
    /// The `r` smallest (MiLoRA).
    Minor,
}

/// Factors from the SVD of a frozen weight.
pub struct SvdFactors {
    /// `[in, r]`.
    pub a: Tensor<2>,
    /// `[r, out]`.
    pub b: Tensor<2>,
    /// `W - scale · A B` in `[in, out]`: the frozen residual.
    pub residual: Tensor<2>,
}

/// HF PEFT's PiSSA init (and MiLoRA's, with the minor components): with
/// `W = U S Vᵀ` in PyTorch's `[out, in]` layout and the chosen `r`
/// components, `A = diag(√(S_r / divisor)) V_rᵀ`, `B = U_r diag(√(S_r / divisor))`.
/// `divisor` is the adapter's scale for the exact methods (so `scale · B A`
/// is exactly the components' reconstruction) and 1 for the seed notebook's
/// variants.
pub fn svd_factors(
    linear: &PopLinear,
    site: LinearSite,
    r: usize,
    components: Components,
    scale: f64,
    divisor: f64,
) -> Result<SvdFactors, PeftError> {
    // Burn's SVD runs on the host and has no autodiff support: compute on
    // the plain device and lift the results back.
    let weight = linear.weight.val();
    let autodiff = weight.is_autodiff();
    let weight = weight.inner();
    let [_, d_in, d_out] = weight.dims();
    let w_in_out = weight.reshape([d_in, d_out]);
    let values: Vec<f32> = w_in_out
        .clone()
        .into_data()
        .convert::<f32>()
        .try_into_vec()
        .expect("float tensors read back as f32");
    if !values.iter().all(|v| v.is_finite()) {
        return Err(PeftError::NonFiniteWeight(site));
    }
    let w_out_in = w_in_out.clone().transpose();
    let (u, s, vt) = burn::linalg::svd::<2, 1>(w_out_in, 200);
    let k = s.dims()[0];
    let start = match components {
        Components::Principal => 0,
        Components::Minor => k - r,
    };
    let u_r = u.narrow(1, start, r); // [out, r]
    let s_r = s.narrow(0, start, r).div_scalar(divisor).sqrt(); // [r]
    let vt_r = vt.narrow(0, start, r); // [r, in]
    let a_torch = vt_r * s_r.clone().unsqueeze_dim::<2>(1); // [r, in]
    let b_torch = u_r * s_r.unsqueeze_dim::<2>(0); // [out, r]
    let a = a_torch.transpose(); // [in, r]
    let b = b_torch.transpose(); // [r, out]
    let residual = w_in_out - a.clone().matmul(b.clone()).mul_scalar(scale);
    let lift = |t: Tensor<2>| if autodiff { Tensor::from_inner(t) } else { t };
    Ok(SvdFactors {
        a: lift(a),
        b: lift(b),
        residual: lift(residual),
    })
}
