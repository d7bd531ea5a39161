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

/// Asserts `|got − want| ≤ bound(x) + rel·|want|` at every point (`rel`:
/// what f32 rounding of the value allows); returns the largest excess over
/// the rounding allowance and its point.
fn assert_within(
    what: &str,
    x: &[f32],
    got: &[f32],
    want: &[f64],
    bound: impl Fn(f32) -> f64,
) -> (f64, f32) {
    let rel = 4.0 * f32::EPSILON as f64;
    assert_eq!(
        (got.len(), want.len()),
        (x.len(), x.len()),
        "{what}: one value per point"
    );
    let mut worst = (f64::NEG_INFINITY, 0.0);
    for (i, (&x, (&g, &w))) in x.iter().zip(got.iter().zip(want)).enumerate() {
        let err = ((g as f64) - w).abs();
        assert!(
            err <= bound(x) + rel * w.abs(),
            "{what} at point {i}, x = {x}: lrscape {g} vs torch {w} (error {err:.2e})"
        );
        if err - rel * w.abs() > worst.0 {
            worst = (err - rel * w.abs(), x);
        }
    }
    worst
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
    let (v, vx) = assert_within("gelu", &golden.x, &value, &golden.gelu, |x| {
        2.5e-7 * (x.abs() as f64).max(1.0)
    });
    let (d, dx) = assert_within("gelu'", &golden.x, &derivative, &golden.gelu_grad, |_| 3e-7);
    println!("beyond rounding: gelu {v:.2e} at x = {vx}, gelu' {d:.2e} at x = {dx}");
}
