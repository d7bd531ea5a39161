//! λmax by power iteration on finite-difference Hessian-vector products:
//! exact on quadratics with known spectra, per member, and a member of a
//! population gets what it gets alone.

use burn::module::{Module, Param};
use burn::tensor::{Device, Tensor, TensorData};
use peft::PeftModel;
use sharpness::{
    PowerOptions, classifier_lambda_max, lambda_max, lanczos_lambda_max, tridiagonal_extremes,
};
use sweep::ExperimentConfig;
use synth_data::SequenceBatch;
use tinyformer::Tinyformer;

/// `L_c(θ_c) = ½ θ_cᵀ A_c θ_c + 5 ‖φ_c‖²`: θ is trainable, φ frozen (were
/// φ perturbed, its curvature 10 would be the largest eigenvalue).
#[derive(Module, Debug)]
struct Quadratic {
    theta: Param<Tensor<2>>,
    frozen: Param<Tensor<2>>,
}

fn tensor<const D: usize>(values: Vec<f64>, shape: [usize; D], device: &Device) -> Tensor<D> {
    let data: Vec<f32> = values.into_iter().map(|v| v as f32).collect();
    Tensor::from_data(TensorData::new(data, shape), device)
}

/// `H diag(d) H` with the Householder reflection `H = I − 2wwᵀ/‖w‖²`:
/// symmetric, eigenvalues exactly `d`.
fn reflected(d: [f64; 4], w: [f64; 4]) -> Vec<f64> {
    let ww: f64 = w.iter().map(|x| x * x).sum();
    let h = |i: usize, j: usize| f64::from(u8::from(i == j)) - 2.0 * w[i] * w[j] / ww;
    let mut a = vec![0.0; 16];
    for i in 0..4 {
        for j in 0..4 {
            a[i * 4 + j] = (0..4).map(|k| h(i, k) * d[k] * h(k, j)).sum();
        }
    }
    a
}

#[test]
fn quadratic_lambda_max_is_the_largest_eigenvalue_per_member() {
    let device = Device::flex().autodiff();
    // Member 0: eigenvalues {5, 3, −1, 0.5} in a rotated basis.
    let a0 = reflected([5.0, 3.0, -1.0, 0.5], [1.0, 2.0, -1.0, 3.0]);
    // Member 1: [[2, 1], [1, 3]] ⊕ diag(0.5, 1); the block's largest
    // eigenvalue is (5 + √5)/2 in closed form.
    #[rustfmt::skip]
    let a1 = vec![
        2.0, 1.0, 0.0, 0.0,
        1.0, 3.0, 0.0, 0.0,
        0.0, 0.0, 0.5, 0.0,
        0.0, 0.0, 0.0, 1.0,
    ];
    // Member 2: eigenvalues {−6, 2, 0.5, −0.5}: the dominant one is
    // negative, so λmax = 2 comes from the shifted second phase.
    let a2 = reflected([-6.0, 2.0, 0.5, -0.5], [2.0, -1.0, 1.0, 1.0]);
    let expected = [5.0, (5.0 + 5f64.sqrt()) / 2.0, 2.0];
    let a = tensor([a0, a1, a2].concat(), [3, 4, 4], &device);
    let model = Quadratic {
        theta: Param::from_tensor(tensor(
            vec![
                0.3, -1.2, 0.7, 2.0, 1.5, 0.1, -0.4, 0.9, -0.8, 0.2, 1.1, 0.6,
            ],
            [3, 4],
            &device,
        )),
        frozen: Param::from_tensor(tensor(vec![1.0, -2.0, 0.5, 3.0, 0.1, 0.2], [3, 2], &device))
            .set_require_grad(false),
    };
    let loss = |m: &Quadratic| -> Tensor<1> {
        let theta = m.theta.val();
        let at = theta
            .clone()
            .unsqueeze_dim::<3>(1)
            .matmul(a.clone())
            .reshape([3, 4]);
        let quad = (at * theta).sum_dim(1).mul_scalar(0.5);
        let frozen = m.frozen.val().square().sum_dim(1).mul_scalar(5.0);
        (quad + frozen).reshape([3])
    };
    let opts = PowerOptions {
        max_iters: 200,
        tol: 1e-5,
        ..PowerOptions::default()
    };
    for lanczos in [false, true] {
        let result = if lanczos {
            lanczos_lambda_max(&model, loss, &[7, 8, 9], &opts).unwrap()
        } else {
            lambda_max(&model, loss, &[7, 8, 9], &opts).unwrap()
        };
        check(&result, &expected, lanczos);
    }
    // Bad options are errors naming the field.
    let bad = PowerOptions {
        max_iters: 0,
        ..opts
    };
    let err = lambda_max(&model, loss, &[7, 8, 9], &bad).unwrap_err();
    assert!(err.to_string().contains("max_iters"), "{err}");
    let err = lanczos_lambda_max(&model, loss, &[7, 8, 9], &bad).unwrap_err();
    assert!(err.to_string().contains("max_iters"), "{err}");
}

fn check(result: &[sharpness::MemberSharpness], expected: &[f64], lanczos: bool) {
    for (member, (r, want)) in result.iter().zip(expected).enumerate() {
        let rel = (r.lambda_max - want).abs() / want;
        assert!(
            rel < 1e-2,
            "lanczos {lanczos}, member {member}: λmax {} vs {want} (history {:?})",
            r.lambda_max,
            r.history
        );
        assert!(r.converged, "member {member}: {r:?}");
        assert_eq!(r.history.len(), r.iterations);
        assert_eq!(r.history.last().copied(), Some(r.lambda_max));
        // ‖θ_c‖ > 1: ε is relative to it.
        assert!(r.epsilon > 1e-3, "{}", r.epsilon);
    }
    // Member 1's spectrum is positive; member 2's most negative is −6.
    assert_eq!(result[1].lambda_min, None, "lanczos {lanczos}");
    let negative = result[2].lambda_min.expect("a negative eigenvalue");
    assert!(
        (negative + 6.0).abs() < 6e-2,
        "lanczos {lanczos}: {negative}"
    );
}

#[test]
fn tridiagonal_extremes_match_closed_forms() {
    // [[2, 1], [1, 3]]: (5 ± √5)/2.
    let (top, bottom) = tridiagonal_extremes(&[2.0, 3.0], &[1.0]);
    assert!((top - (5.0 + 5f64.sqrt()) / 2.0).abs() < 1e-12, "{top}");
    assert!(
        (bottom - (5.0 - 5f64.sqrt()) / 2.0).abs() < 1e-12,
        "{bottom}"
    );
    // The n×n matrix with 2 on the diagonal and −1 beside it has
    // eigenvalues 2 − 2cos(kπ/(n+1)), k = 1..n.
    let n = 7;
    let (top, bottom) = tridiagonal_extremes(&vec![2.0; n], &vec![-1.0; n - 1]);
    let angle = std::f64::consts::PI / (n as f64 + 1.0);
    assert!((top - (2.0 + 2.0 * angle.cos())).abs() < 1e-12, "{top}");
    assert!(
        (bottom - (2.0 - 2.0 * angle.cos())).abs() < 1e-12,
        "{bottom}"
    );
    let (top, bottom) = tridiagonal_extremes(&[-4.0], &[]);
    assert!((top + 4.0).abs() < 1e-12 && (bottom + 4.0).abs() < 1e-12);
}

#[test]
fn a_member_of_a_population_gets_what_it_gets_alone() {
    let config = ExperimentConfig::from_toml_file(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../configs/quick.toml"
    )))
    .unwrap();
    let device = Device::flex().autodiff();
    let base = Tinyformer::init(&config.model, 3, &device).unwrap();
    let cell = config
        .cells()
        .into_iter()
        .find(|c| c.method == peft::Method::Lora)
        .unwrap();
    let lora = cell.lora.clone().unwrap();
    let (train, _) = sweep::task::finetune_data(&config).unwrap();
    let rows: Vec<usize> = (0..64).collect();
    let batch = SequenceBatch::gather(&train, &[&rows], &device);
    let opts = PowerOptions {
        max_iters: 60,
        ..PowerOptions::default()
    };
    let measure = |seeds: &[u64]| {
        let model = PeftModel::new(base.clone(), &lora, seeds).unwrap();
        classifier_lambda_max(&model, &batch, seeds, &opts).unwrap()
    };
    let together = measure(&[0, 1]);
    let alone: Vec<_> = [0, 1].iter().map(|&s| measure(&[s]).remove(0)).collect();
    for (m, (t, a)) in together.iter().zip(&alone).enumerate() {
        assert!(t.converged && a.converged, "member {m}: {t:?} / {a:?}");
        assert!(t.lambda_max > 0.0, "member {m}: {t:?}");
        let rel = (t.lambda_max - a.lambda_max).abs() / a.lambda_max;
        assert!(
            rel < 1e-4,
            "member {m}: {} together, {} alone",
            t.lambda_max,
            a.lambda_max
        );
        assert!((t.epsilon - a.epsilon).abs() < 1e-6 * a.epsilon);
    }
    // The members differ (different adapter inits), so equality above is
    // not the same number twice.
    let gap = (alone[0].lambda_max - alone[1].lambda_max).abs() / alone[0].lambda_max;
    assert!(
        gap > 1e-3,
        "{} vs {}",
        alone[0].lambda_max,
        alone[1].lambda_max
    );
}

#[test]
fn after_steps_trains_each_cell_at_its_recorded_best_lr() {
    use sharpness::{SharpnessOptions, measure_grid};
    use sweep::store::read_sharpness_after;
    let mut config =
        ExperimentConfig::<tinyformer::TinyformerConfig>::from_toml_file(std::path::Path::new(
            concat!(env!("CARGO_MANIFEST_DIR"), "/../../configs/quick.toml"),
        ))
        .unwrap();
    config.grid.methods = vec![peft::Method::Lora];
    config.grid.ranks = vec![2];
    config.grid.seeds = vec![0];
    let dir = tempfile::tempdir().unwrap();
    let selected = train::SelectedDevice {
        name: "flex".into(),
        backend: "flex",
        device: Device::flex(),
    };
    sweep::pretrain::pretrain(&config, dir.path(), &selected, &sweep::Quiet).unwrap();
    let options = |after_steps| SharpnessOptions {
        out: dir.path().to_path_buf(),
        device: selected.clone(),
        examples: 64,
        power: PowerOptions {
            max_iters: 40,
            ..PowerOptions::default()
        },
        after_steps,
        config_path: None,
    };
    let err = measure_grid(&config, &options(2), &sweep::Quiet)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("no records") && err.contains("lrscape run"),
        "{err}"
    );

    // Records saying the cell's best LR is 3e-3 (of 3e-2 and 3e-3).
    let records: String = [(3e-2, 0.2), (3e-3, 0.9)]
        .into_iter()
        .map(|(lr, acc)| {
            let mut t = records::TrialRecord::synthetic("lora", 2, lr, 0, acc);
            t.epochs = 3;
            serde_json::to_string(&t).unwrap() + "\n"
        })
        .collect();
    std::fs::write(dir.path().join("trials.jsonl"), records).unwrap();
    let at_init = measure_grid(&config, &options(0), &sweep::Quiet).unwrap();
    let after = measure_grid(&config, &options(2), &sweep::Quiet).unwrap();
    assert_eq!(after.after_steps, 2);
    assert_eq!(after.entries[0].trained_lr, Some(3e-3));
    assert_eq!(at_init.entries[0].trained_lr, None);
    assert!(dir.path().join("sharpness.json").exists());
    let read = read_sharpness_after(dir.path()).unwrap();
    assert_eq!(read.len(), 1);
    assert_eq!(read[0], after);
    // Two steps at 3e-3 moved the adapter, so the curvature moved too.
    let (a, b) = (at_init.entries[0].lambda_max, after.entries[0].lambda_max);
    assert!((a - b).abs() > 1e-3 * a, "{a} at init, {b} after 2 steps");

    let err = measure_grid(&config, &options(1000), &sweep::Quiet)
        .unwrap_err()
        .to_string();
    assert!(err.contains("--after-steps 1000: at most"), "{err}");
}
