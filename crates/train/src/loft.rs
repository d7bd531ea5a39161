//! LoFT's step of one low-rank pair (Tastan et al., "LoFT: Low-Rank
//! Adaptation That Behaves Like Full Fine-Tuning", arXiv 2505.21289): AdamW
//! run in the full weight space and projected back onto the factors.
//!
//! In the paper's notation `W = W₀ + s·U Vᵀ` with `U = bᵀ` `[out, r]` and
//! `V = a` `[in, r]`. Each step, for both factors:
//! - gradients scaled by the other factor's inverse Gram matrix,
//!   `∇̃_U = ∇_U (VᵀV)⁻¹` (building block 2);
//! - first moments carried into the new subspace, `m_U ← m_U C_V` with
//!   `C_V = (V_prevᵀ V)(VᵀV)⁻¹`, then the moving average (block 3);
//! - second moments kept whole as one `r × r` matrix per row,
//!   `P_i ← β₂ C_Vᵀ P_i C_V + (1 − β₂) g̃_i g̃_iᵀ`, from which the full
//!   `[out, in]` second moment is exact: `v_ij = V_jᵀ P_i V_j` (block 4).
//!
//! Only one factor moves, U on odd steps and V on even ones (block 1), by
//! the full AdamW direction `D = m̂ ⊘ (√v̂ + ε)` projected by least squares,
//! `U ← U (1 − η λ) − η D V (VᵀV)⁻¹ / s` (block 5 and the paper's decoupled
//! decay). Dividing by `s` makes the weight move as AdamW's whatever α; at
//! the paper's α = r it is 1. At full rank the weight follows AdamW
//! exactly. Gradient clipping (block 6) is not used: lrscape clips nothing.
//! The inverses carry the authors' ridges (1e-6 on UᵀU, 1e-8 on VᵀV), which
//! keep them defined while B = 0.

use burn::tensor::{Tensor, TensorData};

/// What LoFT keeps of one pair between steps.
pub(crate) struct LoftState {
    m_u: Tensor<3>,
    m_v: Tensor<3>,
    /// `[C, out, r·r]`: row i's `P_i`.
    p_u: Tensor<3>,
    /// `[C, in, r·r]`.
    p_v: Tensor<3>,
    u_prev: Tensor<3>,
    v_prev: Tensor<3>,
}

/// One pair's inputs: the factors, their gradients and the step's settings.
pub(crate) struct LoftStep {
    /// `[C, in, r]`, `[C, r, out]` and their gradients.
    pub a: Tensor<3>,
    pub b: Tensor<3>,
    pub grad_a: Tensor<3>,
    pub grad_b: Tensor<3>,
    pub scale: f64,
    /// `[C, 1]` learning rates of this step.
    pub lrs: Tensor<2>,
    pub step: i32,
    pub betas: (f64, f64),
    pub eps: f64,
    pub weight_decay: f64,
}

/// `(a, b)` after LoFT's step, and the state it leaves.
pub(crate) fn loft_step(
    s: LoftStep,
    state: Option<LoftState>,
) -> (Tensor<3>, Tensor<3>, LoftState) {
    let (beta1, beta2) = s.betas;
    let [c, d_in, r] = s.a.dims();
    let d_out = s.b.dims()[2];
    let (u, v) = (s.b.clone().swap_dims(1, 2), s.a.clone());
    let (g_u, g_v) = (s.grad_b.swap_dims(1, 2), s.grad_a);
    let s_v = inverse(gram(&v), 1e-8);
    let s_u = inverse(gram(&u), 1e-6);
    let gt_u = g_u.matmul(s_v.clone());
    let gt_v = g_v.matmul(s_u.clone());
    let (m_u, m_v, p_u, p_v) = match state {
        Some(old) => {
            let c_v = old
                .v_prev
                .swap_dims(1, 2)
                .matmul(v.clone())
                .matmul(s_v.clone());
            let c_u = old
                .u_prev
                .swap_dims(1, 2)
                .matmul(u.clone())
                .matmul(s_u.clone());
            (
                old.m_u.matmul(c_v.clone()),
                old.m_v.matmul(c_u.clone()),
                congruence(old.p_u, &c_v),
                congruence(old.p_v, &c_u),
            )
        }
        None => (
            Tensor::zeros([c, d_out, r], &u.device()),
            Tensor::zeros([c, d_in, r], &u.device()),
            Tensor::zeros([c, d_out, r * r], &u.device()),
            Tensor::zeros([c, d_in, r * r], &u.device()),
        ),
    };
    let m_u = m_u.mul_scalar(beta1) + gt_u.clone().mul_scalar(1.0 - beta1);
    let m_v = m_v.mul_scalar(beta1) + gt_v.clone().mul_scalar(1.0 - beta1);
    let p_u = p_u.mul_scalar(beta2) + outer(&gt_u).mul_scalar(1.0 - beta2);
    let p_v = p_v.mul_scalar(beta2) + outer(&gt_v).mul_scalar(1.0 - beta2);
    let bias1 = 1.0 - beta1.powi(s.step);
    let bias2 = 1.0 - beta2.powi(s.step);
    let lr = s.lrs.reshape([c, 1, 1]);
    let decay = |t: Tensor<3>| t.clone() - t.mul(lr.clone()).mul_scalar(s.weight_decay);
    let direction = |first: Tensor<3>, second: Tensor<3>| {
        first.div_scalar(bias1)
            / (second
                .clamp_min(0.0)
                .div_scalar(bias2)
                .sqrt()
                .add_scalar(s.eps))
    };
    let (a, b) = if s.step % 2 == 1 {
        // U moves: M = m_U Vᵀ, v_ij = V_jᵀ P_i V_j.
        let m = m_u.clone().matmul(v.clone().swap_dims(1, 2));
        let second = p_u.clone().matmul(outer(&v).swap_dims(1, 2));
        let d = direction(m, second);
        let step = d
            .matmul(v.clone())
            .matmul(s_v)
            .mul(lr.clone())
            .div_scalar(s.scale);
        (s.a, (decay(u.clone()) - step).swap_dims(1, 2))
    } else {
        // V moves: M = U m_Vᵀ, v_ij = U_iᵀ P_j U_i.
        let m = u.clone().matmul(m_v.clone().swap_dims(1, 2));
        let second = outer(&u).matmul(p_v.clone().swap_dims(1, 2));
        let d = direction(m, second);
        let step = d
            .swap_dims(1, 2)
            .matmul(u.clone())
            .matmul(s_u)
            .mul(lr.clone())
            .div_scalar(s.scale);
        (decay(v.clone()) - step, s.b)
    };
    let state = LoftState {
        m_u,
        m_v,
        p_u,
        p_v,
        u_prev: u,
        v_prev: v,
    };
    (a, b, state)
}

/// `Xᵀ X`, `[C, r, r]`.
fn gram(x: &Tensor<3>) -> Tensor<3> {
    x.clone().swap_dims(1, 2).matmul(x.clone())
}

/// Row-wise outer products `x_i x_iᵀ`, flattened: `[C, n, r] -> [C, n, r·r]`.
fn outer(x: &Tensor<3>) -> Tensor<3> {
    let [c, n, r] = x.dims();
    (x.clone().reshape([c, n, r, 1]) * x.clone().reshape([c, n, 1, r])).reshape([c, n, r * r])
}

/// `Cᵀ P_i C` for every row's `P_i` (`[C, n, r·r]`).
fn congruence(p: Tensor<3>, c_mat: &Tensor<3>) -> Tensor<3> {
    let [c, n, rr] = p.dims();
    let r = c_mat.dims()[1];
    let expand = |t: Tensor<3>| t.reshape([c, 1, r, r]).expand([c, n, r, r]);
    let p4 = p.reshape([c, n, r, r]);
    expand(c_mat.clone().swap_dims(1, 2))
        .matmul(p4)
        .matmul(expand(c_mat.clone()))
        .reshape([c, n, rr])
}

/// `(G + ridge·I)⁻¹` of each member's `r × r` Gram matrix, by Gauss-Jordan
/// elimination on the host in f64 (r is small).
fn inverse(gram: Tensor<3>, ridge: f64) -> Tensor<3> {
    let [c, r, _] = gram.dims();
    let device = gram.device();
    let values: Vec<f32> = gram
        .into_data()
        .convert::<f32>()
        .try_into_vec()
        .expect("float tensors read back as f32");
    let mut out = Vec::with_capacity(values.len());
    for member in values.chunks(r * r) {
        let mut m: Vec<f64> = member.iter().map(|&x| f64::from(x)).collect();
        for i in 0..r {
            m[i * r + i] += ridge;
        }
        out.extend(invert(m, r).into_iter().map(|x| x as f32));
    }
    Tensor::from_data(TensorData::new(out, [c, r, r]), &device)
}

/// The inverse of the row-major `r × r` matrix `m`, partial pivoting; a
/// singular matrix gives non-finite values (the member then diverges).
fn invert(mut m: Vec<f64>, r: usize) -> Vec<f64> {
    let mut inv = vec![0.0; r * r];
    for i in 0..r {
        inv[i * r + i] = 1.0;
    }
    for col in 0..r {
        let pivot = (col..r)
            .max_by(|&x, &y| m[x * r + col].abs().total_cmp(&m[y * r + col].abs()))
            .unwrap_or(col);
        for k in 0..r {
            m.swap(col * r + k, pivot * r + k);
            inv.swap(col * r + k, pivot * r + k);
        }
        let head = m[col * r + col];
        for k in 0..r {
            m[col * r + k] /= head;
            inv[col * r + k] /= head;
        }
        for row in 0..r {
            if row == col {
                continue;
            }
            let f = m[row * r + col];
            if f != 0.0 {
                for k in 0..r {
                    m[row * r + k] -= f * m[col * r + k];
                    inv[row * r + k] -= f * inv[col * r + k];
                }
            }
        }
    }
    inv
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inverse_of_a_small_matrix() {
        let m = vec![4.0, 7.0, 2.0, 6.0];
        let inv = invert(m, 2);
        let want = [0.6, -0.7, -0.2, 0.4];
        for (x, y) in inv.iter().zip(want) {
            assert!((x - y).abs() < 1e-12);
        }
    }
}
