//! The products of one GPT-2-124M-shaped training step, timed one by one
//! on the CPU backend: a `[rows, k]` input through each block weight and
//! the tied head, forward (`x · W`) and for the input gradient (`dy · Wᵀ`,
//! the weight read transposed), at `rows` = 64 (one 64-token sequence,
//! population 1) by default. `tools/bench/gemm_shapes.py` times the same
//! products in PyTorch; the two print the same lines.
//!
//! ```sh
//! cargo run --release -p bench --example gemm_shapes -- 64
//! ~/.cache/lrscape/venv/bin/python tools/bench/gemm_shapes.py 64
//! ```

use std::time::Instant;

use burn::tensor::{Device, Distribution, Tensor};

/// (name, k, n, weight stored `[n, k]` and read transposed, uses per step).
const PRODUCTS: [(&str, usize, usize, bool, usize); 10] = [
    ("c_attn", 768, 2304, false, 12),
    ("c_attn grad", 2304, 768, true, 12),
    ("attn.c_proj", 768, 768, false, 12),
    ("attn.c_proj grad", 768, 768, true, 12),
    ("c_fc", 768, 3072, false, 12),
    ("c_fc grad", 3072, 768, true, 12),
    ("mlp.c_proj", 3072, 768, false, 12),
    ("mlp.c_proj grad", 768, 3072, true, 12),
    ("head (wte^T)", 768, 50257, true, 1),
    ("head grad (wte)", 50257, 768, false, 1),
];

const REPS: usize = 20;

fn main() {
    let rows: usize = match std::env::args().nth(1).map(|s| s.parse()) {
        None => 64,
        Some(Ok(rows)) if rows > 0 => rows,
        Some(_) => {
            eprintln!("gemm_shapes: the argument is the number of rows, a positive integer");
            std::process::exit(2);
        }
    };
    let device = Device::flex();
    let mut step = 0.0;
    for (name, k, n, transposed, uses) in PRODUCTS {
        let x = Tensor::<2>::random([rows, k], Distribution::Normal(0.0, 1.0), &device);
        let w = if transposed {
            Tensor::<2>::random([n, k], Distribution::Normal(0.0, 1.0), &device).transpose()
        } else {
            Tensor::<2>::random([k, n], Distribution::Normal(0.0, 1.0), &device)
        };
        let run = || x.clone().matmul(w.clone()).into_data();
        run();
        let start = Instant::now();
        for _ in 0..REPS {
            run();
        }
        let seconds = start.elapsed().as_secs_f64() / REPS as f64;
        step += seconds * uses as f64;
        let gflops = 2.0 * (rows * k * n) as f64 / seconds / 1e9;
        println!(
            "{name:18} [{rows}, {k}] · [{k}, {n}]: {:8.3} ms {gflops:6.1} GFLOP/s",
            seconds * 1e3
        );
    }
    println!("one step's products: {:.1} ms", step * 1e3);
}
