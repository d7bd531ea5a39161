//! GELU (erf form) and its derivative against PyTorch's float64 values:
//! fixture from `tools/golden/gelu_golden.py`. The CPU backend evaluates erf
//! with a rational approximation (vendor/burn-flex/LRSCAPE-PATCH.md); this
//! bounds its error where the model uses it.

use burn::tensor::activation::gelu;
use burn::tensor::{Device, Tensor, TensorData};
use serde::Deserialize;

#[derive(Deserialize)]
struct Golden {
    x: Vec<f32>,
    gelu: Vec<f64>,
    gelu_grad: Vec<f64>,
}

fn golden() -> Golden {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../fixtures/gelu_golden.json"
    );
    let text = std::fs::read_to_string(path).expect("golden fixture present");
    serde_json::from_str(&text).expect("golden fixture parses")
}

/// GELU's value and derivative at every fixture point, on `device`.
fn evaluate(golden: &Golden, device: &Device) -> (Vec<f32>, Vec<f32>) {
    let n = golden.x.len();
    let x = Tensor::<1>::from_data(TensorData::new(golden.x.clone(), [n]), device).require_grad();
    let y = gelu(x.clone());
    let grads = y.clone().sum().backward();
    let grad = x.grad(&grads).expect("a gradient");
    let read = |t: Tensor<1>| {
        t.into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .unwrap()
    };
    (read(y), read(grad))
}

/// Largest `|got − want|` after subtracting what f32 rounding of the value
/// allows (`rel · |want|`), and the point where it occurs.
fn worst(x: &[f32], got: &[f32], want: &[f64], rel: f64) -> (f64, f32) {
    x.iter()
        .zip(got.iter().zip(want))
        .map(|(&x, (&g, &w))| (((g as f64) - w).abs() - rel * w.abs(), x))
        .fold(
            (f64::NEG_INFINITY, 0.0),
            |a, b| if b.0 > a.0 { b } else { a },
        )
}

#[test]
fn gelu_and_its_derivative_match_pytorch() {
    let golden = golden();
    let device = Device::flex().autodiff();
    let (value, derivative) = evaluate(&golden, &device);
    // erf's approximation is within 4.5e-7 of the exact function, so GELU
    // = x·(1 + erf(x/√2))/2 is within 2.3e-7·|x| plus f32 rounding; the
    // derivative Φ(x) + x·φ(x) within 2.3e-7 plus rounding. A tanh-form
    // GELU misses both by ~1e-4.
    let rel = 4.0 * f32::EPSILON as f64;
    let bounded = |x: f32| 2.5e-7 * (x.abs() as f64).max(1.0);
    for (i, (&x, (&g, &w))) in golden
        .x
        .iter()
        .zip(value.iter().zip(&golden.gelu))
        .enumerate()
    {
        let err = ((g as f64) - w).abs();
        assert!(
            err <= bounded(x) + rel * w.abs(),
            "gelu at point {i}, x = {x}: lrscape {g} vs torch {w} (error {err:.2e})"
        );
    }
    for (i, (&x, (&g, &w))) in golden
        .x
        .iter()
        .zip(derivative.iter().zip(&golden.gelu_grad))
        .enumerate()
    {
        let err = ((g as f64) - w).abs();
        assert!(
            err <= 3e-7 + rel * w.abs(),
            "gelu' at point {i}, x = {x}: lrscape {g} vs torch {w} (error {err:.2e})"
        );
    }
    let (v, vx) = worst(&golden.x, &value, &golden.gelu, rel);
    let (d, dx) = worst(&golden.x, &derivative, &golden.gelu_grad, rel);
    println!("beyond rounding: gelu {v:.2e} at x = {vx}, gelu' {d:.2e} at x = {dx}");
}
