//! Learning-rate schedules: the factors `transformers`' schedulers apply
//! (fixtures/schedule_golden.json, from tools/golden/schedule_golden.py),
//! the optimizer stepping at a factor, and the trainer warming up from 0.

use std::path::Path;

use burn::module::{Module, Param};
use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor};
use nn::expand_members;
use synth_data::retrieve_at_k;
use tinyformer::{PosInit, Tinyformer, TinyformerConfig};
use train::{
    AdamWConfig, LrDecay, LrSchedule, Member, PopulationAdamW, Schedule, train_population,
};

#[test]
fn factors_are_the_ones_transformers_schedulers_apply() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/schedule_golden.json");
    let golden: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let cases = golden["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 27);
    for case in cases {
        let decay: LrDecay = serde_json::from_value(case["schedule"].clone()).unwrap();
        let schedule = LrSchedule {
            decay,
            warmup_ratio: case["warmup_ratio"].as_f64().unwrap(),
        };
        let total = case["total"].as_u64().unwrap() as usize;
        let want: Vec<f64> = serde_json::from_value(case["factors"].clone()).unwrap();
        assert_eq!(want.len(), total);
        for (step, want) in want.iter().enumerate() {
            let got = schedule.factor(step, total);
            assert!(
                (got - want).abs() < 1e-12,
                "{case}: step {step}: {got} vs {want}"
            );
        }
    }
}

#[derive(Module, Debug)]
struct Weights {
    w: Param<Tensor<2>>,
}

/// One AdamW step of `[2, 3]` weights (two members) from the same state.
fn one_step(optim: &mut PopulationAdamW, device: &Device) -> Vec<f32> {
    let device = device.clone().autodiff();
    let init = Tensor::<2>::from_floats([[0.5, -1.0, 2.0], [1.5, 0.25, -0.75]], &device);
    let model = Weights {
        w: Param::from_tensor(init.require_grad()),
    };
    let loss = (model.w.val() * model.w.val()).sum();
    let grads = GradientsParams::from_grads(loss.backward(), &model);
    let model = optim.step(model, grads);
    model.w.val().into_data().try_to_vec().unwrap()
}

#[test]
fn a_factor_steps_as_the_scaled_learning_rates_would() {
    let device = Device::default();
    let adamw = AdamWConfig {
        weight_decay: 0.1,
        ..AdamWConfig::default()
    };
    let mut scaled = PopulationAdamW::new(adamw, &[2e-2, 4e-2], &device);
    scaled.set_lr_factor(0.25);
    let mut plain = PopulationAdamW::new(adamw, &[5e-3, 1e-2], &device);
    let (a, b) = (
        one_step(&mut scaled, &device),
        one_step(&mut plain, &device),
    );
    for (x, y) in a.iter().zip(&b) {
        assert!((x - y).abs() < 1e-7, "{a:?} vs {b:?}");
    }
    let mut unscaled = PopulationAdamW::new(adamw, &[2e-2, 4e-2], &device);
    let c = one_step(&mut unscaled, &device);
    assert!(a.iter().zip(&c).any(|(x, y)| (x - y).abs() > 1e-4));
}

/// A one-layer tinyformer's config and 320 retrieval examples for it.
fn tiny_task() -> (TinyformerConfig, synth_data::SequenceDataset) {
    let config = TinyformerConfig {
        vocab: 16,
        seq_len: 8,
        d_model: 16,
        n_layers: 1,
        n_heads: 2,
        d_ff: 32,
        pos_init: PosInit::Normal { std: 0.5 },
        causal: false,
    };
    (config, retrieve_at_k(320, 8, 16, 2, 42).unwrap())
}

/// The first `steps` steps of a 20-step run under `lr`.
fn trained(lr: LrSchedule, steps: usize) -> (Tinyformer, Tinyformer) {
    let device = Device::default().autodiff();
    let (config, data) = tiny_task();
    let model = expand_members(Tinyformer::init(&config, 9, &device).unwrap(), 1);
    let schedule = Schedule {
        epochs: 1,
        batch_size: 16,
        max_steps: Some(steps),
        budget: None,
        lr,
    };
    let member = Member {
        lr: 1e-2,
        data_seed: 0,
    };
    let adamw = AdamWConfig {
        weight_decay: 0.01,
        ..AdamWConfig::default()
    };
    let out = train_population(
        model.clone(),
        &data,
        &[member],
        schedule,
        adamw,
        &device,
        &|| {},
    );
    (model, out.model)
}

fn max_difference(a: &Tinyformer, b: &Tinyformer) -> f32 {
    let (a, b) = (a.head.weight.val(), b.head.weight.val());
    (a - b).abs().max().into_scalar::<f32>()
}

#[test]
fn warm_up_starts_from_zero_and_decay_changes_the_steps() {
    let warm = LrSchedule {
        decay: LrDecay::Cosine,
        warmup_ratio: 0.5,
    };
    // Step 0 of a warm-up runs at learning rate 0: nothing moves.
    let (before, after) = trained(warm, 1);
    assert_eq!(max_difference(&before, &after), 0.0);
    let (before, after) = trained(warm, 2);
    assert!(max_difference(&before, &after) > 0.0);
    // Without warm-up the first step is the constant schedule's; the
    // second is not.
    let linear = LrSchedule {
        decay: LrDecay::Linear,
        warmup_ratio: 0.0,
    };
    let (_, constant_one) = trained(LrSchedule::CONSTANT, 1);
    let (_, linear_one) = trained(linear, 1);
    assert_eq!(max_difference(&constant_one, &linear_one), 0.0);
    let (_, constant_two) = trained(LrSchedule::CONSTANT, 2);
    let (_, linear_two) = trained(linear, 2);
    assert!(max_difference(&constant_two, &linear_two) > 0.0);
}

#[test]
fn a_step_budget_ends_the_run_and_its_schedule() {
    let schedule = Schedule {
        epochs: 2,
        batch_size: 16,
        max_steps: None,
        budget: Some(5),
        lr: LrSchedule {
            decay: LrDecay::Linear,
            warmup_ratio: 0.0,
        },
    };
    // 320 examples in batches of 16: 40 steps over two epochs, 5 budgeted.
    assert_eq!(schedule.total_steps(320), 5);
    let longer = Schedule {
        budget: Some(100),
        ..schedule
    };
    assert_eq!(longer.total_steps(320), 40);
    let device = Device::default().autodiff();
    let (config, data) = tiny_task();
    let model = Tinyformer::init(&config, 9, &device).unwrap();
    let member = Member {
        lr: 1e-2,
        data_seed: 0,
    };
    let out = train_population(
        model,
        &data,
        &[member],
        schedule,
        AdamWConfig::default(),
        &device,
        &|| {},
    );
    assert_eq!(out.steps, 5);
    assert_eq!(out.step_loss[0].len(), 5);
}
