//! LoFT's optimizer against a reference that follows its paper's equations
//! (fixtures/loft_golden.json from tools/golden/loft_golden.py), a step
//! derived by hand, and AdamW on the full weight (which LoFT reproduces at
//! full rank).

use burn::module::{Module, Param};
use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor, TensorData};
use nn::FactorPair;
use serde::Deserialize;
use train::{AdamWConfig, PopulationAdamW};

/// One low-rank update `a b` of `C` members, as an adapter layer holds it.
#[derive(Module, Debug)]
struct Pair {
    a: Param<Tensor<3>>,
    b: Param<Tensor<3>>,
}

#[derive(Deserialize)]
struct Case {
    #[serde(rename = "W0")]
    w0: Vec<Vec<f64>>,
    #[serde(rename = "T")]
    t: Vec<Vec<f64>>,
    #[serde(rename = "A")]
    a: Vec<Vec<f64>>,
    #[serde(rename = "B")]
    b: Vec<Vec<f64>>,
    lr: f64,
    b1: f64,
    b2: f64,
    eps: f64,
    wd: f64,
    after: Vec<Factors>,
    #[serde(default)]
    adamw_w: Vec<Vec<Vec<f64>>>,
}

#[derive(Deserialize)]
struct Factors {
    #[serde(rename = "A")]
    a: Vec<Vec<f64>>,
    #[serde(rename = "B")]
    b: Vec<Vec<f64>>,
}

fn golden(case: &str) -> Case {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../fixtures/loft_golden.json"
    );
    let all: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    serde_json::from_value(all[case].clone()).unwrap()
}

/// `m` (row-major `[rows, cols]`) transposed, as `[1, cols, rows]`:
/// the paper's `[r, in]` A is lrscape's `[in, r]`.
fn transposed(m: &[Vec<f64>], device: &Device) -> Tensor<3> {
    let (rows, cols) = (m.len(), m[0].len());
    let values: Vec<f32> = (0..cols)
        .flat_map(|c| m.iter().map(move |row| row[c] as f32))
        .collect();
    Tensor::from_data(TensorData::new(values, [1, cols, rows]), device)
}

fn host(t: Tensor<3>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_into_vec().unwrap()
}

fn close(got: &[f32], want: &[f32], tol: f32, what: &str) {
    let scale = want.iter().fold(1.0f32, |m, v| m.max(v.abs()));
    let worst = got
        .iter()
        .zip(want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(worst <= tol * scale, "{what}: {got:?} vs {want:?}");
}

/// Steps `case` with lrscape's LoFT; `check` sees the pair after each step.
fn run(case: &Case, mut check: impl FnMut(usize, &Pair, &Device)) {
    let device = Device::flex().autodiff();
    let w0 = transposed(&case.w0, &device).squeeze_dim::<2>(0);
    let t = transposed(&case.t, &device).squeeze_dim::<2>(0);
    let mut pair = Pair {
        a: Param::from_tensor(transposed(&case.a, &device).require_grad()),
        b: Param::from_tensor(transposed(&case.b, &device).require_grad()),
    };
    let config = AdamWConfig {
        beta1: case.b1,
        beta2: case.b2,
        eps: case.eps,
        weight_decay: case.wd,
    };
    let mut optim = PopulationAdamW::new(config, &[case.lr], &device);
    optim.set_factor_pairs(&[FactorPair {
        a: pair.a.id,
        b: pair.b.id,
        scale: 1.0,
    }]);
    for step in 0..case.after.len() {
        let w = w0.clone()
            + pair
                .a
                .val()
                .squeeze_dim::<2>(0)
                .matmul(pair.b.val().squeeze_dim(0));
        let loss = (w - t.clone()).square().sum().mul_scalar(0.5);
        let grads = GradientsParams::from_grads(loss.backward(), &pair);
        pair = optim.step(pair, grads);
        check(step, &pair, &device);
    }
}

fn check_factors(case: &Case, what: &str) {
    run(case, |step, pair, device| {
        let want = &case.after[step];
        let a = host(transposed(&want.a, device));
        let b = host(transposed(&want.b, device));
        close(
            &host(pair.a.val()),
            &a,
            2e-5,
            &format!("{what} A after step {}", step + 1),
        );
        close(
            &host(pair.b.val()),
            &b,
            2e-5,
            &format!("{what} B after step {}", step + 1),
        );
    });
}

/// in 3, out 2, r 1: B moves first, then A. Step 1 by hand: with
/// `G = W0 + B A - T = [[1.5, 0, -1.5], [-1.5, -1, 0]]` and `A Aᵀ = 6`,
/// `g̃_B = G Aᵀ / 6 = [0.5, -0.5833]`; the first Adam direction is the sign
/// of `g̃_B,i a_j` (up to ε), `[[1, 1, -1], [-1, -1, 1]]`, so
/// `B₁ = B₀ - 0.1 · [4, -4] / 6 = [0.43333, -0.93333]` and A stays.
#[test]
fn loft_matches_its_equations_on_a_tiny_case() {
    let case = golden("tiny");
    run(&case, |step, pair, _| {
        if step == 0 {
            close(
                &host(pair.b.val()),
                &[0.5 - 0.4 / 6.0, -1.0 + 0.4 / 6.0],
                1e-4,
                "by hand",
            );
            close(
                &host(pair.a.val()),
                &[1.0, 2.0, -1.0],
                0.0,
                "A waits its turn",
            );
        }
    });
    check_factors(&case, "tiny");
}

/// Rank 2 with weight decay: the calibrated moments carry over five
/// alternating steps.
#[test]
fn loft_matches_its_equations_at_rank_two_with_decay() {
    check_factors(&golden("rank2"), "rank 2");
}

/// At full rank LoFT's weight follows AdamW's on the weight itself.
#[test]
fn at_full_rank_loft_is_adamw_on_the_weight() {
    let case = golden("full_rank");
    let w0: Vec<f32> = case.w0.concat().iter().map(|&x| x as f32).collect();
    run(&case, |step, pair, _| {
        let a = pair.a.val().squeeze_dim::<2>(0);
        let b = pair.b.val().squeeze_dim::<2>(0);
        // lrscape's [in, out] is the reference's [out, in] transposed.
        let w: Vec<f32> = host(a.matmul(b).transpose().unsqueeze_dim::<3>(0))
            .iter()
            .zip(&w0)
            .map(|(d, w)| d + w)
            .collect();
        let want: Vec<f32> = case.adamw_w[step]
            .concat()
            .iter()
            .map(|&x| x as f32)
            .collect();
        close(&w, &want, 1e-4, &format!("W after step {}", step + 1));
    });
}

/// Members are independent: two learning rates at once step as each alone.
#[test]
fn loft_members_step_apart() {
    let case = golden("rank2");
    let device = Device::flex().autodiff();
    let make = |members: usize| {
        let a = transposed(&case.a, &device).repeat_dim(0, members);
        let b = transposed(&case.b, &device).repeat_dim(0, members);
        Pair {
            a: Param::from_tensor(a.require_grad()),
            b: Param::from_tensor(b.require_grad()),
        }
    };
    let w0 = transposed(&case.w0, &device);
    let t = transposed(&case.t, &device);
    let train = |lrs: &[f64]| {
        let mut pair = make(lrs.len());
        let mut optim = PopulationAdamW::new(AdamWConfig::default(), lrs, &device);
        optim.set_factor_pairs(&[FactorPair {
            a: pair.a.id,
            b: pair.b.id,
            scale: 1.0,
        }]);
        for _ in 0..4 {
            let w = w0.clone() + pair.a.val().matmul(pair.b.val());
            let loss = (w - t.clone()).square().sum().mul_scalar(0.5);
            let grads = GradientsParams::from_grads(loss.backward(), &pair);
            pair = optim.step(pair, grads);
        }
        host(pair.a.val().matmul(pair.b.val()))
    };
    let both = train(&[0.01, 0.1]);
    let half = both.len() / 2;
    close(&both[..half], &train(&[0.01]), 1e-6, "member 0");
    close(&both[half..], &train(&[0.1]), 1e-6, "member 1");
}
