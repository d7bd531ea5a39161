//! `exp` on the CPU backend against f64 `exp`. The CPU backend evaluates it
//! with a polynomial instead of libm (vendor/burn-flex/LRSCAPE-PATCH.md);
//! softmax and GELU's backward pass use it, so this bounds it everywhere a
//! model can reach: normal results, denormal results, overflow and NaN;
//! sigmoid, built on it, likewise.

use burn::tensor::{Device, Tensor, TensorData};

/// `op` on `x` on the CPU backend.
fn on_flex(x: &[f32], op: impl Fn(Tensor<1>) -> Tensor<1>) -> Vec<f32> {
    let device = Device::flex();
    let t = Tensor::<1>::from_data(TensorData::new(x.to_vec(), [x.len()]), &device);
    op(t)
        .into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .expect("f32 data")
}

fn flex_exp(x: &[f32]) -> Vec<f32> {
    on_flex(x, Tensor::exp)
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
    on_flex(x, burn::tensor::activation::sigmoid)
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

/// Rows of `len` values spread over `[-spread, spread]`, softmax on the
/// CPU backend against f64's.
fn check_softmax(len: usize, spread: f32) {
    let rows = 3;
    let x: Vec<f32> = (0..rows * len)
        .map(|i| spread * ((i as f32 * 0.618_034).fract() * 2.0 - 1.0))
        .collect();
    let device = Device::flex();
    let t = Tensor::<2>::from_data(TensorData::new(x.clone(), [rows, len]), &device);
    let got: Vec<f32> = burn::tensor::activation::softmax(t, 1)
        .into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .expect("f32 data");
    for (row, (x, got)) in x.chunks(len).zip(got.chunks(len)).enumerate() {
        let max = x.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
        let sum: f64 = x.iter().map(|&v| (v as f64 - max).exp()).sum();
        for (i, (&v, &g)) in x.iter().zip(got).enumerate() {
            let exact = (v as f64 - max).exp() / sum;
            let err = (g as f64 - exact).abs();
            // A few ulp, the rounding of `x − max` in f32 (half an ulp of
            // it) and of the sum over 16 lanes, which an f32 softmax carries.
            let half_ulp = f64::from(f32::EPSILON) / 2.0;
            let shift = (v as f64 - max).abs() * half_ulp;
            let summed = (len as f64 / 16.0 + 16.0) * half_ulp;
            assert!(
                err <= (4e-7 + shift + summed) * exact + 1e-44,
                "len {len}, row {row}, element {i}: softmax {g}, exact {exact}"
            );
        }
    }
}

#[test]
fn softmax_is_within_a_few_ulp_of_f64_at_every_row_length() {
    // Lengths below one SIMD vector, around it, and a GPT-2 vocabulary.
    for len in [1, 3, 15, 16, 17, 33, 100, 50_257] {
        check_softmax(len, 20.0);
    }
    // A spread whose smallest terms underflow to 0 in f32.
    check_softmax(1000, 120.0);
}
