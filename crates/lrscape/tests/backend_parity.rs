//! Backend parity: one population of adapted models trained on `flex` and on
//! every other backend compiled in gives the same loss trajectory.
//!
//! Run with the backend's feature, e.g.
//! `cargo test -p lrscape --features ndarray --test backend_parity` (CI does),
//! or `--features wgpu` (then `LRSCAPE_PARITY_STEPS` keeps it short: the
//! first step on a CPU Vulkan driver compiles shaders for about a minute).
//!
//! Initial weights are drawn on the host (ChaCha8) and uploaded, so every
//! backend starts from the same numbers; the test checks that too before it
//! compares the trajectories.
#![cfg(any(
    feature = "ndarray",
    feature = "wgpu",
    feature = "vulkan",
    feature = "metal",
    feature = "cuda",
    feature = "tch"
))]

use backends::{compiled_backends, select_device};
use burn::module::Module;
use peft::{LoraConfig, Method, PeftModel};
use synth_data::retrieve_at_k;
use tinyformer::{PosInit, Tinyformer, TinyformerConfig};
use train::{AdamWConfig, Member, Schedule, train_population};

fn model_config() -> TinyformerConfig {
    TinyformerConfig {
        vocab: 16,
        seq_len: 8,
        d_model: 32,
        n_layers: 2,
        n_heads: 2,
        d_ff: 64,
        pos_init: PosInit::Normal { std: 1.0 },
        causal: false,
    }
}

/// Steps to compare (`LRSCAPE_PARITY_STEPS`, default 12).
fn steps() -> usize {
    std::env::var("LRSCAPE_PARITY_STEPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(12)
}

const BATCH: usize = 16;

/// Members: three learning rates, the largest enough to move the loss far.
const LRS: [f64; 3] = [3e-2, 1e-2, 1e-3];

struct Trajectory {
    /// The device as Burn describes it.
    device: String,
    /// Every parameter of the adapted model before training, flattened.
    initial: Vec<f32>,
    /// `[member][step]` training loss.
    loss: Vec<Vec<f32>>,
}

fn flat(model: &impl Module) -> Vec<f32> {
    struct Collect(Vec<f32>);
    impl burn::module::ModuleVisitor for Collect {
        fn visit_float<const D: usize>(
            &mut self,
            param: &burn::module::Param<burn::tensor::Tensor<D>>,
        ) {
            let data = param.val().into_data().convert::<f32>();
            self.0.extend(
                data.try_into_vec::<f32>()
                    .expect("float parameters read back"),
            );
        }
    }
    let mut collect = Collect(Vec::new());
    model.visit(&mut collect);
    collect.0
}

fn trajectory(device_spec: &str, method: Method) -> Trajectory {
    let selected = select_device(device_spec).unwrap();
    let described = format!("{:?}", selected.device);
    let device = selected.device.autodiff();
    let config = model_config();
    let base = Tinyformer::init(&config, 3, &device).unwrap();
    let lora = LoraConfig::new(method, 4);
    let seeds: Vec<u64> = (0..LRS.len() as u64).collect();
    let model = PeftModel::new(base, &lora, &seeds).unwrap();
    let initial = flat(&model);
    let data = retrieve_at_k(steps() * BATCH, 8, 16, 5, 11).unwrap();
    let members: Vec<Member> = LRS.iter().map(|&lr| Member { lr, data_seed: 7 }).collect();
    let outcome = train_population(
        model,
        &data,
        &members,
        Schedule {
            epochs: 1,
            batch_size: BATCH,
            max_steps: None,
            budget: None,
            lr: train::LrSchedule::CONSTANT,
        },
        AdamWConfig::default(),
        &device,
        &|| {},
    );
    Trajectory {
        device: described,
        initial,
        loss: outcome.step_loss,
    }
}

/// Largest |a − b| / max(1, |a|) over two equally long vectors.
fn max_rel_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(p, q)| (p - q).abs() / p.abs().max(1.0))
        .fold(0.0, f32::max)
}

/// [`max_rel_diff`] over two equally shaped trajectories.
fn max_rel_diff_2d(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| max_rel_diff(x, y))
        .fold(0.0, f32::max)
}

/// f32 kernels differ in summation order between backends; over a dozen
/// AdamW steps that stays far below these bounds (ndarray vs flex measured
/// 7e-6), while a wrong kernel or a different init moves the losses by
/// orders of magnitude more. GPU kernels (wgpu, CUDA) reorder sums more
/// freely and get a looser bound.
fn tolerance(backend: &str) -> f32 {
    match backend {
        "ndarray" | "tch" => 1e-4,
        _ => 2e-3,
    }
}

#[test]
fn every_compiled_backend_follows_flex() {
    let others: Vec<&str> = compiled_backends()
        .into_iter()
        .filter(|b| *b != "flex")
        .collect();
    assert!(
        !others.is_empty(),
        "compile with a second backend's feature"
    );
    for method in [Method::Lora, Method::Dora] {
        let reference = trajectory("flex", method);
        // The comparison means something only if training moves the
        // losses well beyond the tolerance, differently per learning rate.
        let fast = &reference.loss[0];
        let moved = fast.iter().fold(f32::MIN, |a, &b| a.max(b))
            - fast.iter().fold(f32::MAX, |a, &b| a.min(b));
        let last_gap = (fast.last().unwrap() - reference.loss[2].last().unwrap()).abs();
        assert!(
            moved > 0.1 && last_gap > 0.01,
            "training must move the loss for the comparison to mean anything: {:?}",
            reference.loss
        );
        for backend in &others {
            // wgpu/vulkan pick their default adapter: a GPU, or llvmpipe on
            // a machine with Mesa's CPU Vulkan driver only.
            let other = trajectory(backend, method);
            // Host-drawn weights are bit-equal; values computed from them
            // on the device (DoRA's magnitude, the column norms of W) may
            // differ in the last bits of f32.
            let init_diff = max_rel_diff(&reference.initial, &other.initial);
            assert!(
                init_diff <= 1e-6,
                "{backend}: initial weights differ from flex's by {init_diff:.2e}"
            );
            assert_ne!(
                other.device, reference.device,
                "{backend} ran on flex's device"
            );
            let diff = max_rel_diff_2d(&reference.loss, &other.loss);
            let bound = tolerance(backend);
            eprintln!(
                "{} on {backend} ({}) vs flex: {} steps × {} members, max relative loss difference {diff:.2e}",
                method.name(),
                other.device,
                steps(),
                LRS.len()
            );
            assert!(
                diff <= bound,
                "{backend} ({}) departs from flex by {diff:.2e} > {bound:.0e}:\n flex {:?}\n {backend} {:?}",
                method.name(),
                reference.loss,
                other.loss
            );
        }
    }
}
