//! `exp` on the CPU backend against f64 `exp`. The CPU backend evaluates it
//! with a polynomial instead of libm (vendor/burn-flex/LRSCAPE-PATCH.md);
//! softmax and GELU's backward pass use it, so this bounds it everywhere a
//! model can reach: normal results, denormal results, overflow and NaN;
//! sigmoid, built on it, likewise.

use burn::tensor::{Device, Tensor, TensorData};

fn flex_exp(x: &[f32]) -> Vec<f32> {
    let device = Device::flex();
    let t = Tensor::<1>::from_data(TensorData::new(x.to_vec(), [x.len()]), &device);
    t.exp()
        .into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .expect("f32 data")
}

/// Distance in units in the last place between an f32 and the exact value.
fn ulps(got: f32, exact: f64) -> f64 {
    let rounded = exact as f32;
    let ulp = (f32::from_bits(rounded.to_bits() + 1) - rounded) as f64;
    (got as f64 - exact).abs() / ulp
}

#[test]
fn exp_is_within_two_ulp_over_the_normal_range() {
    // Every 1/1024 from the smallest normal result (x ≥ −87.33) to the
    // largest finite one (x ≤ 88.72), plus 20,000 points off that grid.
    let mut x: Vec<f32> = (-89_425..=90_849).map(|i| i as f32 / 1024.0).collect();
    x.extend((0..20_000).map(|i| -87.0 + i as f32 * 0.008_752_3));
    let got = flex_exp(&x);
    let mut worst = (0.0, 0.0f32);
    for (&x, &g) in x.iter().zip(&got) {
        let exact = (x as f64).exp();
        let err = ulps(g, exact);
        assert!(err <= 2.0, "exp({x}) = {g}, exact {exact}: {err:.2} ulp");
        if err > worst.0 {
            worst = (err, x);
        }
    }
    println!("largest error {:.2} ulp at x = {}", worst.0, worst.1);
}

#[test]
fn exp_underflows_overflows_and_keeps_nan_like_f32() {
    let x = [
        -1000.0,
        -104.0,
        -100.0,
        -90.0,
        88.8,
        89.0,
        1000.0,
        f32::NEG_INFINITY,
        f32::INFINITY,
        0.0,
        -0.0,
    ];
    let got = flex_exp(&x);
    for (&x, &g) in x.iter().zip(&got) {
        let want = (x as f64).exp();
        if want as f32 == 0.0 {
            assert_eq!(g, 0.0, "exp({x}) = {g}, want 0");
        } else if want as f32 == f32::INFINITY {
            assert_eq!(g, f32::INFINITY, "exp({x}) = {g}, want inf");
        } else if (want as f32).is_subnormal() {
            // A denormal result keeps the absolute accuracy of the smallest
            // normal number, not its relative accuracy.
            let tol = 2.0 * f32::MIN_POSITIVE as f64 * f32::EPSILON as f64;
            assert!(
                (g as f64 - want).abs() <= tol,
                "exp({x}) = {g}, want {want}"
            );
        } else {
            assert!(ulps(g, want) <= 2.0, "exp({x}) = {g}, want {want}");
        }
    }
    assert!(flex_exp(&[f32::NAN])[0].is_nan(), "exp(NaN) is NaN");
}

fn flex_sigmoid(x: &[f32]) -> Vec<f32> {
    let device = Device::flex();
    let t = Tensor::<1>::from_data(TensorData::new(x.to_vec(), [x.len()]), &device);
    burn::tensor::activation::sigmoid(t)
        .into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .expect("f32 data")
}

/// Sigmoid, evaluated on the same polynomial `exp` (GPT-2's `gelu_new`
/// goes through it), against f64: within 3 ulp wherever the result is a
/// normal f32, and exact 0, 1, ½ and NaN where f32 has them.
#[test]
fn sigmoid_is_within_three_ulp_and_saturates_exactly() {
    let mut x: Vec<f32> = (-106_496..=106_496).map(|i| i as f32 / 1024.0).collect();
    x.extend((0..20_000).map(|i| -30.0 + i as f32 * 0.003_001_7));
    let got = flex_sigmoid(&x);
    let mut worst = (0.0, 0.0f32);
    for (&x, &g) in x.iter().zip(&got) {
        let exact = 1.0 / (1.0 + (-(x as f64)).exp());
        if (exact as f32).is_subnormal() || exact as f32 == 0.0 {
            let tol = 2.0 * f32::MIN_POSITIVE as f64 * f32::EPSILON as f64;
            assert!(
                (g as f64 - exact).abs() <= tol,
                "sigmoid({x}) = {g}, exact {exact}"
            );
            continue;
        }
        let err = ulps(g, exact);
        assert!(
            err <= 3.0,
            "sigmoid({x}) = {g}, exact {exact}: {err:.2} ulp"
        );
        if err > worst.0 {
            worst = (err, x);
        }
    }
    println!("largest error {:.2} ulp at x = {}", worst.0, worst.1);
    let ends = flex_sigmoid(&[
        f32::NEG_INFINITY,
        -1000.0,
        0.0,
        -0.0,
        1000.0,
        f32::INFINITY,
        f32::NAN,
    ]);
    assert_eq!(ends[..6], [0.0, 0.0, 0.5, 0.5, 1.0, 1.0]);
    assert!(ends[6].is_nan(), "sigmoid(NaN) is NaN");
}
