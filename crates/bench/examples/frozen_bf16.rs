//! Does a frozen base stored in bfloat16 save memory while training?
//!
//! A GPT-2-124M-sized stack of frozen MLP weights (12 × `[768, 3072]` and
//! `[3072, 768]`, 56.6 M parameters) trains its input through a forward
//! and a backward pass, the weights either f32 or stored as bf16 and cast
//! to f32 where they are used (Burn's flex backend has no mixed-dtype
//! product). Prints the weights' bytes, the resident high-water mark
//! (`VmHWM`) above the process's start, and the time per step, for the
//! dtype given as the first argument (`f32` or `bf16`); run each in a
//! process of its own:
//!
//! ```sh
//! cargo run --release -p bench --example frozen_bf16 -- f32
//! cargo run --release -p bench --example frozen_bf16 -- bf16
//! ```

use std::time::Instant;

use burn::tensor::{Device, Distribution, FloatDType, Tensor};

const LAYERS: usize = 12;
const D: usize = 768;
const FF: usize = 3072;
const ROWS: usize = 1024;
const STEPS: usize = 3;

fn vm_hwm_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

fn main() {
    let dtype = std::env::args().nth(1).unwrap_or_else(|| "f32".into());
    let bf16 = match dtype.as_str() {
        "f32" => false,
        "bf16" => true,
        other => {
            eprintln!("frozen_bf16: dtype {other:?}: f32 or bf16");
            std::process::exit(2);
        }
    };
    let start = vm_hwm_mib();
    let device = Device::flex().autodiff();
    let frozen = |shape: [usize; 2]| {
        let w = Tensor::<2>::random(shape, Distribution::Normal(0.0, 0.02), &device).detach();
        if bf16 { w.cast(FloatDType::BF16) } else { w }
    };
    let weights: Vec<(Tensor<2>, Tensor<2>)> = (0..LAYERS)
        .map(|_| (frozen([D, FF]), frozen([FF, D])))
        .collect();
    let bytes = if bf16 { 2.0 } else { 4.0 };
    let weight_mib = (LAYERS * 2 * D * FF) as f64 * bytes / (1024.0 * 1024.0);
    let used = |w: &Tensor<2>| {
        if bf16 {
            w.clone().cast(FloatDType::F32)
        } else {
            w.clone()
        }
    };
    let mut seconds = Vec::new();
    let mut checksum = 0.0;
    for _ in 0..STEPS {
        let t = Instant::now();
        let x =
            Tensor::<2>::random([ROWS, D], Distribution::Normal(0.0, 1.0), &device).require_grad();
        let mut h = x.clone();
        for (up, down) in &weights {
            let inner = burn::tensor::activation::gelu(h.clone().matmul(used(up)));
            h = h + inner.matmul(used(down));
        }
        let grads = h.sum().backward();
        let grad = x.grad(&grads).expect("x is tracked");
        checksum = f64::from(grad.abs().mean().into_scalar::<f32>());
        seconds.push(t.elapsed().as_secs_f64());
    }
    let peak = vm_hwm_mib() - start;
    println!(
        "{{\"dtype\":\"{dtype}\",\"weights_mib\":{weight_mib:.1},\"peak_above_start_mib\":{peak:.1},\
         \"seconds_per_step\":{:.3},\"mean_abs_grad\":{checksum:.6}}}",
        seconds[1..].iter().sum::<f64>() / (STEPS - 1) as f64
    );
}
