//! Products on the CPU backend against an f64 reference, at shapes where
//! the backend divides one product among threads by output columns or by
//! rows (vendor/burn-flex/LRSCAPE-PATCH.md, item 8): either operand
//! transposed, widths that leave a ragged last block, a batch broadcast
//! against a single matrix. Each runs in pools of 1, 3 and 4 threads, so
//! the division is exercised whatever the machine's core count.

#![cfg(feature = "flex")]

use burn::tensor::{Device, Tensor, TensorData};

/// Deterministic values in [−1, 1).
fn values(len: usize, seed: u64) -> Vec<f32> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

/// `a [m, k] · b [k, n]`, both row-major, in f64.
fn reference(a: &[f32], b: &[f32], m: usize, k: usize, n: usize) -> Vec<f64> {
    let mut out = vec![0.0f64; m * n];
    for i in 0..m {
        for p in 0..k {
            let x = a[i * k + p] as f64;
            for j in 0..n {
                out[i * n + j] += x * b[p * n + j] as f64;
            }
        }
    }
    out
}

/// Row-major `[rows, cols]` data as a tensor, or as the transpose of its
/// transpose (same values, column-major strides).
fn matrix(data: &[f32], rows: usize, cols: usize, strided: bool, device: &Device) -> Tensor<2> {
    if strided {
        let mut t = vec![0.0f32; data.len()];
        for r in 0..rows {
            for c in 0..cols {
                t[c * rows + r] = data[r * cols + c];
            }
        }
        Tensor::<2>::from_data(TensorData::new(t, [cols, rows]), device).transpose()
    } else {
        Tensor::<2>::from_data(TensorData::new(data.to_vec(), [rows, cols]), device)
    }
}

fn to_vec<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .expect("f32 data")
}

/// Largest |got − exact| over the scale of the terms summed (√k).
fn worst_error(got: &[f32], exact: &[f64], k: usize) -> f64 {
    assert_eq!(got.len(), exact.len());
    got.iter()
        .zip(exact)
        .map(|(&g, &e)| (g as f64 - e).abs())
        .fold(0.0, f64::max)
        / (k as f64).sqrt()
}

fn in_pool<R: Send>(threads: usize, f: impl FnOnce() -> R + Send) -> R {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("thread pool")
        .install(f)
}

// (m, k, n): every one at least the 192³ operations the backend spreads
// over threads; wide products split by columns, narrow ones by rows.
const SHAPES: [(usize, usize, usize); 5] = [
    (64, 768, 401),  // few rows, ragged column blocks
    (64, 300, 2304), // few rows, wide
    (2000, 300, 20), // too narrow to split columns: rows
    (1001, 256, 33), // rows, ragged row blocks
    (200, 200, 200), // square
];

#[test]
fn products_split_among_threads_match_f64() {
    let device = Device::flex();
    for (s, &(m, k, n)) in SHAPES.iter().enumerate() {
        let a = values(m * k, 2 * s as u64 + 1);
        let b = values(k * n, 2 * s as u64 + 2);
        let exact = reference(&a, &b, m, k, n);
        for threads in [1, 3, 4] {
            for (a_strided, b_strided) in
                [(false, false), (false, true), (true, false), (true, true)]
            {
                let got = in_pool(threads, || {
                    let lhs = matrix(&a, m, k, a_strided, &device);
                    let rhs = matrix(&b, k, n, b_strided, &device);
                    to_vec(lhs.matmul(rhs))
                });
                let err = worst_error(&got, &exact, k);
                assert!(
                    err < 1e-5,
                    "[{m}, {k}] · [{k}, {n}] on {threads} threads (lhs strided {a_strided}, \
                     rhs strided {b_strided}): error {err:e} × √k"
                );
            }
        }
    }
}

#[test]
fn batched_products_split_among_threads_match_f64() {
    // A batch of 1 (how a population's shared weight is applied) and a batch of 2 broadcast against one matrix.
    let device = Device::flex();
    for &(m, k, n) in &SHAPES[..3] {
        for batch in [1usize, 2] {
            let a = values(batch * m * k, 7);
            let b = values(k * n, 8);
            let mut exact = Vec::new();
            for i in 0..batch {
                exact.extend(reference(&a[i * m * k..(i + 1) * m * k], &b, m, k, n));
            }
            for threads in [1, 3] {
                let got = in_pool(threads, || {
                    let lhs =
                        Tensor::<3>::from_data(TensorData::new(a.clone(), [batch, m, k]), &device);
                    // `[1, k, n]` with column-major strides, as autodiff reads a weight for an input's gradient.
                    let rhs = matrix(&b, k, n, true, &device)
                        .transpose()
                        .unsqueeze::<3>()
                        .swap_dims(1, 2);
                    to_vec(lhs.matmul(rhs))
                });
                let err = worst_error(&got, &exact, k);
                assert!(
                    err < 1e-5,
                    "batch {batch} of [{m}, {k}] · [{k}, {n}] on {threads} threads: error {err:e} × √k"
                );
            }
        }
    }
}
