//! The population trainer: members are independent runs, done together.

use burn::module::Module;
use burn::tensor::Device;
use nn::{PopulationModel, expand_members, select_member};
use synth_data::{SequenceDataset, retrieve_at_k};
use tinyformer::{PosInit, Tinyformer, TinyformerConfig};
use train::{AdamWConfig, Member, Schedule, TrainOutcome, evaluate, train_population};

fn config() -> TinyformerConfig {
    TinyformerConfig {
        vocab: 16,
        seq_len: 8,
        d_model: 16,
        n_layers: 2,
        n_heads: 2,
        d_ff: 32,
        pos_init: PosInit::Normal { std: 0.5 },
        causal: false,
    }
}

/// 20 steps: 320 examples in batches of 16, one epoch.
const SCHEDULE: Schedule = Schedule {
    epochs: 1,
    batch_size: 16,
    max_steps: None,
    budget: None,
    lr: train::LrSchedule::CONSTANT,
};

fn run(members: &[Member], device: &Device) -> TrainOutcome<Tinyformer> {
    let data = retrieve_at_k(320, 8, 16, 2, 42).unwrap();
    let model = Tinyformer::init(&config(), 9, device).unwrap();
    let model = expand_members(model, members.len());
    let adamw = AdamWConfig {
        weight_decay: 0.01,
        ..AdamWConfig::default()
    };
    train_population(model, &data, members, SCHEDULE, adamw, device, &|| {})
}

/// `train_population` with AdamW's defaults and no progress bar.
fn train_default<M: PopulationModel>(
    model: M,
    data: &SequenceDataset,
    members: &[Member],
    schedule: Schedule,
    device: &Device,
) -> TrainOutcome<M> {
    train_population(
        model,
        data,
        members,
        schedule,
        AdamWConfig::default(),
        device,
        &|| {},
    )
}

fn flat_params(model: &Tinyformer) -> Vec<f32> {
    let state = model.valid().to_torch_state().unwrap();
    state
        .values()
        .flat_map(|t| t.data.iter().copied())
        .collect()
}

fn member(lr: f64) -> Member {
    Member { lr, data_seed: 5 }
}

#[test]
fn population_equals_separate_runs() {
    let device = Device::flex().autodiff();
    let lrs = [1e-3, 3e-3, 1e-2, 3e-2];
    let members: Vec<Member> = lrs.iter().map(|&lr| member(lr)).collect();
    let together = run(&members, &device);
    assert_eq!(together.steps, 20);
    let mut spread = 0.0f32;
    for (c, &lr) in lrs.iter().enumerate() {
        let alone = run(&[member(lr)], &device);
        let a = flat_params(&select_member(together.model.clone(), c));
        let b = flat_params(&alone.model);
        let worst = a
            .iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max);
        assert!(
            worst <= 1e-4,
            "member {c} (lr {lr}): params differ by {worst}"
        );
        for (s, (x, y)) in together.step_loss[c]
            .iter()
            .zip(&alone.step_loss[0])
            .enumerate()
        {
            assert!(
                (x - y).abs() <= 1e-5,
                "member {c} step {s}: loss {x} vs {y}"
            );
        }
        if c > 0 {
            let previous = flat_params(&select_member(together.model.clone(), c - 1));
            spread = spread.max(
                a.iter()
                    .zip(&previous)
                    .map(|(x, y)| (x - y).abs())
                    .fold(0.0, f32::max),
            );
        }
    }
    // The members really differ, so the comparison above means something.
    assert!(spread > 1e-2, "members ended too close: {spread}");
}

#[test]
fn same_seeds_give_bit_identical_losses() {
    let device = Device::flex().autodiff();
    let members = [member(3e-3), member(1e-2)];
    let a = run(&members, &device);
    let b = run(&members, &device);
    assert_eq!(a.step_loss, b.step_loss);
    assert_eq!(
        flat_params(&select_member(a.model, 1)),
        flat_params(&select_member(b.model, 1))
    );
}

#[test]
fn own_data_orders_per_member() {
    let device = Device::flex().autodiff();
    let members = [
        Member {
            lr: 3e-3,
            data_seed: 1,
        },
        Member {
            lr: 3e-3,
            data_seed: 2,
        },
    ];
    let both = run(&members, &device);
    let first = run(&members[..1], &device);
    let second = run(&members[1..], &device);
    assert_eq!(both.step_loss[0].len(), 20);
    for s in 0..20 {
        assert!((both.step_loss[0][s] - first.step_loss[0][s]).abs() <= 1e-5);
        assert!((both.step_loss[1][s] - second.step_loss[0][s]).abs() <= 1e-5);
    }
    assert_ne!(
        both.step_loss[0], both.step_loss[1],
        "different orders, different losses"
    );
}

#[test]
fn a_diverging_member_is_stopped_and_the_others_are_untouched() {
    let device = Device::flex().autodiff();
    // lr 1e30 overflows the weights on the first step: every later loss is non-finite.
    let members = [member(3e-3), member(1e30), member(1e-2)];
    let together = run(&members, &device);
    assert_eq!(together.diverged, vec![false, true, false]);
    assert!(together.step_loss[1].iter().any(|l| !l.is_finite()));
    for (c, lr) in [(0, 3e-3), (2, 1e-2)] {
        let alone = run(&[member(lr)], &device);
        assert_eq!(together.step_loss[c].len(), alone.step_loss[0].len());
        for (x, y) in together.step_loss[c].iter().zip(&alone.step_loss[0]) {
            assert!((x - y).abs() <= 1e-5, "member {c}: {x} vs {y}");
        }
    }
    // The stopped member's weights stay what they were when it diverged: finite
    // or not, evaluation still runs and reports a number for everyone.
    let data = retrieve_at_k(64, 8, 16, 2, 7).unwrap();
    let eval = evaluate(&together.model, &data, 32, &device);
    assert_eq!(eval.accuracy.len(), 3);
    assert!(eval.accuracy.iter().all(|a| (0.0..=1.0).contains(a)));
}

#[test]
fn evaluation_counts_correct_predictions() {
    let device = Device::flex().autodiff();
    let outcome = run(&[member(1e-2)], &device);
    let data = retrieve_at_k(100, 8, 16, 2, 8).unwrap();
    let eval = evaluate(&outcome.model, &data, 30, &device);
    // Recount by hand with argmax over the logits of the whole set at once.
    let model = outcome.model.valid();
    let inner = device.clone().inner();
    let all: Vec<usize> = (0..100).collect();
    let batch = synth_data::SequenceBatch::gather(&data, &[&all], &inner);
    let predicted: Vec<i64> = model
        .forward(batch.tokens)
        .argmax(2)
        .into_data()
        .convert::<i64>()
        .try_into_vec()
        .unwrap();
    let right = predicted
        .iter()
        .enumerate()
        .filter(|&(i, &p)| p == i64::from(data.targets_of(i)[0]))
        .count();
    assert!((eval.accuracy[0] - right as f64 / 100.0).abs() < 1e-12);
    assert!(eval.loss[0].is_finite() && eval.loss[0] > 0.0);
}

/// `max_steps` stops after the first steps of the full schedule, exactly as
/// the full run took them.
#[test]
fn max_steps_is_a_prefix_of_the_full_schedule() {
    let device = Device::flex().autodiff();
    let data = retrieve_at_k(320, 8, 16, 2, 42).unwrap();
    let members = [
        member(3e-3),
        Member {
            lr: 1e-3,
            data_seed: 6,
        },
    ];
    let train = |max_steps| {
        let model = expand_members(Tinyformer::init(&config(), 9, &device).unwrap(), 2);
        let schedule = Schedule {
            epochs: 2,
            max_steps,
            ..SCHEDULE
        };
        train_default(model, &data, &members, schedule, &device)
    };
    let full = train(None);
    // 20 steps per epoch: stop 3 steps into the second epoch.
    let cut = train(Some(23));
    assert_eq!((full.steps, cut.steps), (40, 23));
    for m in 0..2 {
        assert_eq!(cut.step_loss[m], full.step_loss[m][..23]);
        assert_eq!(cut.epoch_loss[m].len(), 2);
    }
}

/// Training threads each get a pool of their share of the cores
/// (`train::pool`); that is only free if the kernels give the same numbers on
/// any number of threads. Sizes here are over burn-flex's thresholds for
/// parallel element-wise ops (256 Ki elements), batch-parallel products and
/// multi-threaded GEMM, so the parallel paths run: LoRA population of 4,
/// batch 64 × 16 tokens, d_model 64 (activations 4 × 64 × 16 × 64 = 256 Ki).
#[test]
fn losses_do_not_depend_on_the_thread_count() {
    let device = Device::flex().autodiff();
    let model_config = TinyformerConfig {
        vocab: 32,
        seq_len: 16,
        d_model: 64,
        n_heads: 4,
        d_ff: 128,
        ..config()
    };
    let data = retrieve_at_k(256, 16, 32, 2, 3).unwrap();
    let members: Vec<Member> = [1e-3, 3e-3, 1e-2, 3e-2]
        .iter()
        .map(|&lr| member(lr))
        .collect();
    let schedule = Schedule {
        epochs: 1,
        batch_size: 64,
        max_steps: Some(3),
        budget: None,
        lr: train::LrSchedule::CONSTANT,
    };
    let train = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let base = Tinyformer::init(&model_config, 4, &device).unwrap();
            let lora = peft::LoraConfig::new(peft::Method::Lora, 8);
            let model = peft::PeftModel::new(base, &lora, &[1, 2, 3, 4]).unwrap();
            train_default(model, &data, &members, schedule, &device).step_loss
        })
    };
    let one = train(1);
    let three = train(3);
    assert_eq!(one[0].len(), 3);
    assert_eq!(one, three, "1 thread vs 3 threads");
    assert_ne!(one[0], one[3], "members at different LRs differ");
}
