//! Initial factors: random (LoRA family), from the SVD (PiSSA, MiLoRA) or
//! from the QR decomposition (OLoRA).

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

fn host_f32(t: Tensor<2>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec()
        .expect("float tensors read back as f32")
}

/// `linear`'s weight `[in, out]` on the plain (non-autodiff) device, and
/// whether it came from an autodiff one; a non-finite weight is an error
/// naming the site.
fn plain_weight(linear: &PopLinear, site: LinearSite) -> Result<(Tensor<2>, bool), PeftError> {
    let weight = linear.weight.val();
    let autodiff = weight.is_autodiff();
    let weight = weight.inner();
    let [_, d_in, d_out] = weight.dims();
    let w_in_out = weight.reshape([d_in, d_out]);
    if !host_f32(w_in_out.clone()).iter().all(|v| v.is_finite()) {
        return Err(PeftError::NonFiniteWeight(site));
    }
    Ok((w_in_out, autodiff))
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
    let (w_in_out, autodiff) = plain_weight(linear, site)?;
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
    Ok(with_residual(w_in_out, (a, b), scale, autodiff))
}

/// The factors `a` `[in, r]`, `b` `[r, out]` with the residual `W - scale ·
/// a b` they leave of `w_in_out`, back on the autodiff device where the
/// weight came from one.
fn with_residual(
    w_in_out: Tensor<2>,
    (a, b): (Tensor<2>, Tensor<2>),
    scale: f64,
    autodiff: bool,
) -> SvdFactors {
    let residual = w_in_out - a.clone().matmul(b.clone()).mul_scalar(scale);
    let lift = |t: Tensor<2>| if autodiff { Tensor::from_inner(t) } else { t };
    SvdFactors {
        a: lift(a),
        b: lift(b),
        residual: lift(residual),
    }
}

/// HF PEFT's LoRA-GA init from `grad`, the mean gradient of the loss with
/// respect to the site's weight (`[in, out]`): with `G = U S Vᵀ` in
/// PyTorch's `[out, in]` layout, `A` takes r rows of `Vᵀ` and `B` r columns
/// of `U S` as `config.lora_ga.direction` says, `B` is scaled as its
/// `scale` says, and the frozen weight becomes `W - scale · B A`. The SVD is
/// exact where PEFT's `svd_lowrank` is randomized: the factors agree up to
/// the sign of each singular vector.
pub fn gradient_factors(
    linear: &PopLinear,
    site: LinearSite,
    grad: Tensor<2>,
    config: &crate::LoraConfig,
) -> Result<SvdFactors, PeftError> {
    let (w_in_out, autodiff) = plain_weight(linear, site)?;
    let grad = if grad.is_autodiff() {
        grad.inner()
    } else {
        grad
    };
    if !host_f32(grad.clone()).iter().all(|v| v.is_finite()) {
        return Err(PeftError::NonFiniteGradient(site));
    }
    let [d_in, d_out] = w_in_out.dims();
    let r = config.r;
    let (u, s, vt) = burn::linalg::svd::<2, 1>(grad.transpose(), 200);
    let ga = &config.lora_ga;
    let (a_from, b_from): (Vec<usize>, Vec<usize>) = match ga.direction.as_str() {
        "A2rBr" => ((r..2 * r).collect(), (0..r).collect()),
        "ArBr" => (
            (0..r).map(|i| 2 * i + 1).collect(),
            (0..r).map(|i| 2 * i).collect(),
        ),
        "random" => {
            let picks = random_picks(r, &mut site_rng(0, site));
            (picks.clone(), picks)
        }
        _ => ((0..r).collect(), (r..2 * r).collect()),
    };
    let rows = |t: &Tensor<2>, picks: &[usize], dim: usize| {
        Tensor::cat(
            picks.iter().map(|&i| t.clone().narrow(dim, i, 1)).collect(),
            dim,
        )
    };
    let a_torch = rows(&vt, &a_from, 0); // [r, in]
    let s_b = rows(&s.clone().unsqueeze_dim::<2>(0), &b_from, 1); // [1, r]
    let mut b_torch = rows(&u, &b_from, 1) * s_b.clone(); // [out, r]
    let mut a_torch = a_torch;
    let scale = config.scaling();
    match ga.scale.as_str() {
        "stable" => {
            b_torch = b_torch.mul_scalar((d_out as f64).powf(0.25) / ga.stable_gamma.sqrt());
        }
        "weight_svd" => {
            let (_, sw, _) = burn::linalg::svd::<2, 1>(w_in_out.clone().transpose(), 200);
            let top_w = f64::from(host_f32(sw.unsqueeze_dim::<2>(0))[0]);
            let top_b = f64::from(host_f32(s_b)[0]);
            if top_b > 0.0 {
                b_torch = b_torch.mul_scalar(top_w / top_b);
            }
        }
        "gd_scale" => {
            a_torch = a_torch.div_scalar(scale);
            b_torch = b_torch.div_scalar(scale);
        }
        _ => {}
    }
    let a = a_torch.transpose(); // [in, r]
    let b = b_torch.transpose(); // [r, out]
    debug_assert_eq!(a.dims(), [d_in, r]);
    Ok(with_residual(w_in_out, (a, b), scale, autodiff))
}

/// `r` distinct indices of `0..2r` in random order (PEFT's
/// `torch.randperm(2r)[:r]`).
fn random_picks(r: usize, rng: &mut ParamRng) -> Vec<usize> {
    let mut all: Vec<usize> = (0..2 * r).collect();
    let draws = rng.uniform(2 * r, 1.0);
    for i in (1..2 * r).rev() {
        let u = (f64::from(draws[i]) + 1.0) / 2.0;
        let j = ((u * (i + 1) as f64) as usize).min(i);
        all.swap(i, j);
    }
    all.truncate(r);
    all
}

/// GraLoRA's `A` for one member, `[in, r]`: each of the `k` input blocks
/// kaiming-uniform on PyTorch's `[r, in/k]` (so uniform in ±1/√(in/k)), as
/// PEFT draws them block by block.
pub fn gralora_a(
    d_in: usize,
    r: usize,
    k: usize,
    rng: &mut ParamRng,
    device: &Device,
) -> Tensor<2> {
    let rows = d_in / k;
    let blocks = (0..k)
        .map(|_| {
            tensor_from(rng.uniform(r * rows, linear_bound(rows)), [r, rows], device).transpose()
        })
        .collect();
    Tensor::cat(blocks, 0)
}

/// RandLoRA's shared bases for the largest targeted shape `(max, min)` at
/// rank `r`: `A` `[r, min]` kaiming-uniform (±1/√min) and `B` `[max, nb, r]`
/// drawn as `nb` chunks `[max, 1, r]` (±1/√r), each divided by its standard
/// deviation, as PEFT builds them from `projection_prng_key`. PEFT draws
/// them in bfloat16 from PyTorch's generator: the same law, other numbers.
pub struct SharedBases {
    /// `[r, MIN]`, row-major.
    pub a: Vec<f32>,
    /// `[MAX, NB, r]`, row-major.
    pub b: Vec<f32>,
    pub r: usize,
    pub min: usize,
    pub max: usize,
    pub nb: usize,
}

impl SharedBases {
    /// `sparsity` `s` makes the bases ternary, each sign drawn with
    /// probability 1/(2s) (PEFT's `sparse`: s = 3; `very_sparse`: s = √min).
    pub fn new(key: u64, r: usize, (max, min): (usize, usize), sparsity: Option<f64>) -> Self {
        let mut rng = ParamRng::new(key ^ 0x5241_4e44_4c4f_5241);
        let nb = min.div_ceil(r);
        let mut draw = |n: usize, bound: f64| match sparsity {
            None => rng.uniform(n, bound),
            Some(s) => rng
                .uniform(n, 1.0)
                .into_iter()
                .map(|x| {
                    let u = (f64::from(x) + 1.0) / 2.0;
                    let tail = 1.0 / (2.0 * s);
                    if u < tail {
                        -1.0
                    } else if u > 1.0 - tail {
                        1.0
                    } else {
                        0.0
                    }
                })
                .collect(),
        };
        let a = normalized(draw(r * min, linear_bound(min)));
        let chunks: Vec<Vec<f32>> = (0..nb).map(|_| draw(max * r, linear_bound(r))).collect();
        // [MAX, NB, r]: row p of chunk j at (p, j).
        let b = (0..max)
            .flat_map(|p| {
                chunks
                    .iter()
                    .flat_map(move |c| c[p * r..(p + 1) * r].iter().copied())
            })
            .collect();
        Self {
            a,
            b: normalized(b),
            r,
            min,
            max,
            nb,
        }
    }

    /// The slices a linear `d_in -> d_out` uses: `A[:, :min]` `[r, min]`
    /// and `B[:max, :nb, :]` as `[max, nb·r]`, with `min`, `max` its own.
    pub fn for_linear(&self, d_in: usize, d_out: usize, device: &Device) -> (Tensor<2>, Tensor<2>) {
        let (min, max) = (d_in.min(d_out), d_in.max(d_out));
        let nb = min.div_ceil(self.r);
        let a: Vec<f32> = (0..self.r)
            .flat_map(|i| self.a[i * self.min..i * self.min + min].iter().copied())
            .collect();
        let b: Vec<f32> = (0..max)
            .flat_map(|p| {
                let row = p * self.nb * self.r;
                self.b[row..row + nb * self.r].iter().copied()
            })
            .collect();
        (
            tensor_from(a, [self.r, min], device),
            tensor_from(b, [max, nb * self.r], device),
        )
    }
}

/// `values` over their unbiased standard deviation (`x / x.std()`).
fn normalized(values: Vec<f32>) -> Vec<f32> {
    let n = values.len() as f64;
    let mean = values.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
    let var = values
        .iter()
        .map(|&v| (f64::from(v) - mean).powi(2))
        .sum::<f64>()
        / (n - 1.0).max(1.0);
    let std = var.sqrt();
    values
        .into_iter()
        .map(|v| (f64::from(v) / std) as f32)
        .collect()
}

/// The reduced QR decomposition `W = Q R` of `w: [m, n]` (row-major f64),
/// as LAPACK's `geqrf` and `orgqr` compute it (and so `torch.linalg.qr`):
/// Householder reflections with `R`'s diagonal `-sign(α)·‖x‖`. Returns `Q`
/// `[m, k]` and `R` `[k, n]`, `k = min(m, n)`.
pub fn householder_qr(w: &[f64], m: usize, n: usize) -> (Vec<f64>, Vec<f64>) {
    let k = m.min(n);
    let mut a = w.to_vec();
    let mut reflectors: Vec<(Vec<f64>, f64)> = Vec::with_capacity(k);
    for j in 0..k {
        let alpha = a[j * n + j];
        let xnorm = (j + 1..m).map(|i| a[i * n + j].powi(2)).sum::<f64>().sqrt();
        if xnorm == 0.0 {
            reflectors.push((vec![1.0], 0.0));
            continue;
        }
        // -sign(α)·‖x‖, a zero α counted positive (Fortran's SIGN).
        let beta = if alpha < 0.0 { 1.0 } else { -1.0 } * alpha.hypot(xnorm);
        let tau = (beta - alpha) / beta;
        let mut v = vec![1.0];
        v.extend((j + 1..m).map(|i| a[i * n + j] / (alpha - beta)));
        // H = I - tau v vᵀ on the trailing columns.
        for c in j + 1..n {
            let dot: f64 = (j..m).map(|i| v[i - j] * a[i * n + c]).sum();
            for i in j..m {
                a[i * n + c] -= tau * v[i - j] * dot;
            }
        }
        a[j * n + j] = beta;
        for i in j + 1..m {
            a[i * n + j] = 0.0;
        }
        reflectors.push((v, tau));
    }
    let mut r = vec![0.0; k * n];
    for i in 0..k {
        for c in i..n {
            r[i * n + c] = a[i * n + c];
        }
    }
    // Q = H_0 H_1 ⋯ H_{k-1} applied to the first k columns of I, last first.
    let mut q = vec![0.0; m * k];
    for i in 0..k {
        q[i * k + i] = 1.0;
    }
    for (j, (v, tau)) in reflectors.iter().enumerate().rev() {
        if *tau == 0.0 {
            continue;
        }
        for c in 0..k {
            let dot: f64 = (j..m).map(|i| v[i - j] * q[i * k + c]).sum();
            for i in j..m {
                q[i * k + c] -= tau * v[i - j] * dot;
            }
        }
    }
    (q, r)
}

/// HF PEFT's OLoRA init: with `W = Q R` in PyTorch's `[out, in]` layout,
/// `A = R[:r]`, `B = Q[:, :r]`, and the frozen weight becomes `W - scale ·
/// B A`.
pub fn qr_factors(
    linear: &PopLinear,
    site: LinearSite,
    r: usize,
    scale: f64,
) -> Result<SvdFactors, PeftError> {
    let (w_in_out, autodiff) = plain_weight(linear, site)?;
    let device = w_in_out.device();
    let [d_in, d_out] = w_in_out.dims();
    let w: Vec<f64> = host_f32(w_in_out.clone().transpose())
        .into_iter()
        .map(f64::from)
        .collect();
    let (q, rr) = householder_qr(&w, d_out, d_in);
    let k = d_out.min(d_in);
    // A = R[:r] as [r, in], B = Q[:, :r] as [out, r], in the model's
    // orientations [in, r] and [r, out].
    let a_torch: Vec<f32> = rr[..r * d_in].iter().map(|&v| v as f32).collect();
    let b_torch: Vec<f32> = (0..d_out)
        .flat_map(|i| q[i * k..i * k + r].iter().map(|&v| v as f32))
        .collect();
    let a = tensor_from(a_torch, [r, d_in], &device).transpose();
    let b = tensor_from(b_torch, [d_out, r], &device).transpose();
    Ok(with_residual(w_in_out, (a, b), scale, autodiff))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qr_reconstructs_with_orthonormal_q_and_lapacks_signs() {
        // A tall and a wide matrix.
        for (m, n) in [(4, 3), (2, 5)] {
            let w: Vec<f64> = (0..m * n).map(|i| ((i * 7 % 11) as f64) - 4.5).collect();
            let (q, r) = householder_qr(&w, m, n);
            let k = m.min(n);
            for i in 0..m {
                for c in 0..n {
                    let got: f64 = (0..k).map(|t| q[i * k + t] * r[t * n + c]).sum();
                    assert!((got - w[i * n + c]).abs() < 1e-12, "{m}×{n} ({i}, {c})");
                }
            }
            for a in 0..k {
                for b in 0..k {
                    let dot: f64 = (0..m).map(|i| q[i * k + a] * q[i * k + b]).sum();
                    let want = if a == b { 1.0 } else { 0.0 };
                    assert!((dot - want).abs() < 1e-12);
                }
                // R's diagonal has the sign opposite to the column's head
                // (LAPACK's dlarfg).
                for c in 0..a.min(n) {
                    assert_eq!(r[a * n + c], 0.0);
                }
            }
        }
        // w = [[3], [4]]: beta = -5, Q = [[-0.6], [-0.8]].
        let (q, r) = householder_qr(&[3.0, 4.0], 2, 1);
        assert!(
            (r[0] + 5.0).abs() < 1e-12 && (q[0] + 0.6).abs() < 1e-12 && (q[1] + 0.8).abs() < 1e-12
        );
    }
}
