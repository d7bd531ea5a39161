//! Population AdamW: closed form, decoupled decay, and PyTorch's numbers.

use burn::module::{Module, Param};
use burn::optim::GradientsParams;
use burn::tensor::{Device, Int, Tensor, TensorData};
use nn::member_cross_entropy;
use serde::Deserialize;
use tinyformer::{Tinyformer, TinyformerConfig, TorchState};
use train::{AdamWConfig, PopulationAdamW};

#[derive(Module, Debug)]
struct Weights {
    w: Param<Tensor<2>>,
}

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_into_vec().unwrap()
}

/// One step from a given gradient equals the textbook AdamW update, per
/// member with its own learning rate; weight decay is decoupled (applied to
/// the weights, not folded into the gradient's moments).
#[test]
fn one_step_is_the_closed_form_per_member() {
    let device = Device::flex().autodiff();
    let theta = [[1.0f32, -2.0, 0.5], [3.0, 0.25, -1.0]];
    let model = Weights {
        w: Param::from_tensor(Tensor::<2>::from_floats(theta, &device).require_grad()),
    };
    // loss = sum(w * g) has gradient g.
    let g = [[0.5f32, -1.5, 2.0], [0.1, 0.0, -3.0]];
    let loss = (model.w.val() * Tensor::<2>::from_floats(g, &device)).sum();
    let grads = GradientsParams::from_grads(loss.backward(), &model);
    let lrs = [0.1, 0.01];
    let config = AdamWConfig {
        weight_decay: 0.2,
        ..AdamWConfig::default()
    };
    let mut optim = PopulationAdamW::new(config, &lrs, &device);
    let updated = values(optim.step(model, grads).w.val());
    for c in 0..2 {
        for i in 0..3 {
            let (t, gi, lr) = (f64::from(theta[c][i]), f64::from(g[c][i]), lrs[c]);
            // Step 1: m̂ = g, v̂ = g², so the Adam direction is g / (|g| + eps).
            let m_hat = (1.0 - 0.9) * gi / (1.0 - 0.9);
            let v_hat = (1.0 - 0.999) * gi * gi / (1.0 - 0.999);
            let expected = t * (1.0 - lr * 0.2) - lr * m_hat / (v_hat.sqrt() + 1e-8);
            let got = f64::from(updated[c * 3 + i]);
            assert!(
                (got - expected).abs() < 1e-6,
                "member {c} entry {i}: {got} vs {expected}"
            );
        }
    }
    // With a zero gradient only the decay acts: θ(1 - lr·wd), the moments stay 0.
    let entry = updated[4];
    assert!(
        (f64::from(entry) - 0.25 * (1.0 - 0.01 * 0.2)).abs() < 1e-7,
        "{entry}"
    );
}

#[derive(Deserialize)]
struct Golden {
    config: TinyformerConfig,
    state: TorchState,
    tokens: Vec<Vec<i64>>,
    labels: Vec<i64>,
    adamw: GoldenAdamW,
}

#[derive(Deserialize)]
struct GoldenAdamW {
    lr: f64,
    weight_decay: f64,
    steps: Vec<GoldenStep>,
}

#[derive(Deserialize)]
struct GoldenStep {
    loss_before: f32,
    state_after: TorchState,
}

/// Two full training steps of the notebook's model match
/// `torch.optim.AdamW` (fixture from tools/golden/tinyformer_golden.py).
#[test]
fn two_steps_match_pytorch_adamw() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../fixtures/tinyformer_golden.json"
    );
    let golden: Golden = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let config = golden.config.clone();
    let device = Device::flex().autodiff();
    let mut model = Tinyformer::from_torch_state(&config, &golden.state, &device).unwrap();
    let (b, t) = (golden.tokens.len(), golden.tokens[0].len());
    let tokens: Tensor<3, Int> =
        Tensor::from_data(TensorData::new(golden.tokens.concat(), [1, b, t]), &device);
    let labels: Tensor<2, Int> =
        Tensor::from_data(TensorData::new(golden.labels.clone(), [1, b]), &device);
    let adamw = AdamWConfig {
        weight_decay: golden.adamw.weight_decay,
        ..AdamWConfig::default()
    };
    let mut optim = PopulationAdamW::new(adamw, &[golden.adamw.lr], &device);
    for (s, step) in golden.adamw.steps.iter().enumerate() {
        let loss = member_cross_entropy(model.forward(tokens.clone()), labels.clone()).sum();
        let got_loss = values(loss.clone())[0];
        assert!(
            (got_loss - step.loss_before).abs() < 1e-5,
            "step {s} loss {got_loss} vs {}",
            step.loss_before
        );
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(model, grads);
        let state = model.valid().to_torch_state().unwrap();
        for (name, want) in &step.state_after {
            let got = &state[name];
            assert_eq!(got.data.len(), want.data.len(), "step {s} {name}: size");
            let worst = got
                .data
                .iter()
                .zip(&want.data)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            assert!(worst <= 1e-5, "step {s} {name}: max abs diff {worst}");
        }
    }
}

#[derive(Deserialize)]
struct Gpt2Golden {
    lr: f64,
    weight_decay: f64,
    tokens: Vec<Vec<i64>>,
    loss_before: Vec<f32>,
}

/// The tensors of a Hugging Face GPT-2 directory, by name, as f32.
fn weights(dir: &std::path::Path) -> std::collections::BTreeMap<String, Vec<f32>> {
    nn::safetensors_io::read_file(&dir.join("model.safetensors"))
        .unwrap()
        .into_iter()
        .map(|(name, t)| {
            (
                name.trim_start_matches("transformer.").to_string(),
                t.to_f32().unwrap(),
            )
        })
        .collect()
}

/// Full fine-tuning of GPT-2 (every weight, the tied embedding included):
/// two steps match `torch.optim.AdamW` on `GPT2LMHeadModel`, whose weights
/// after them are fixtures/gpt2/tiny-after-adamw (from
/// tools/golden/gpt2_adamw_golden.py).
#[test]
fn two_full_fine_tuning_steps_of_gpt2_match_pytorch_adamw() {
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/gpt2");
    let text = std::fs::read_to_string(fixtures.join("adamw_golden.json")).unwrap();
    let golden: Gpt2Golden = serde_json::from_str(&text).unwrap();
    let device = Device::flex().autodiff();
    let (_, mut model) = gpt2::hf::load_dir(&fixtures.join("tiny"), &device).unwrap();
    let (b, t) = (golden.tokens.len(), golden.tokens[0].len());
    let tokens: Tensor<3, Int> =
        Tensor::from_data(TensorData::new(golden.tokens.concat(), [1, b, t]), &device);
    // HF's causal-LM loss: position i predicts token i + 1, averaged over
    // every prediction of every row.
    let rows: Vec<i64> = (0..b)
        .flat_map(|i| (0..t - 1).map(move |j| (i * t + j) as i64))
        .collect();
    let next: Vec<i64> = golden.tokens.iter().flat_map(|r| r[1..].to_vec()).collect();
    let n = rows.len();
    let rows = Tensor::<1, Int>::from_data(TensorData::new(rows, [n]), &device);
    let next = Tensor::<2, Int>::from_data(TensorData::new(next, [1, n]), &device);
    let adamw = AdamWConfig {
        weight_decay: golden.weight_decay,
        ..AdamWConfig::default()
    };
    let mut optim = PopulationAdamW::new(adamw, &[golden.lr], &device);
    for (s, want) in golden.loss_before.iter().enumerate() {
        let logits = model.forward(tokens.clone()).select(1, rows.clone());
        let loss = member_cross_entropy(logits, next.clone()).sum();
        let got = values(loss.clone())[0];
        assert!((got - want).abs() < 1e-5, "step {s} loss {got} vs {want}");
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(model, grads);
    }
    let dir = tempfile::tempdir().unwrap();
    let config = gpt2::Gpt2Config::from_hf_json(
        &std::fs::read_to_string(fixtures.join("tiny/config.json")).unwrap(),
        "tiny",
    )
    .unwrap();
    gpt2::hf::save_dir(&model.valid(), &config, dir.path()).unwrap();
    let (ours, want) = (
        weights(dir.path()),
        weights(&fixtures.join("tiny-after-adamw")),
    );
    assert_eq!(
        ours.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>()
    );
    let d = config.n_embd;
    for (name, want) in &want {
        let got = &ours[name];
        assert_eq!(got.len(), want.len(), "{name}");
        for (i, (a, b)) in got.iter().zip(want).enumerate() {
            // The key bias's gradient is zero in exact arithmetic (a
            // constant added to every score of a row), ~1e-9 in floats, and
            // Adam scales that noise to ±lr: no reference can fix those.
            if name.ends_with("attn.c_attn.bias") && (d..2 * d).contains(&i) {
                continue;
            }
            assert!((a - b).abs() <= 1e-5, "{name}[{i}]: {a} vs {b}");
        }
    }
    // The steps moved the weights (lr 1e-2): the check is not of the start.
    let start = weights(&fixtures.join("tiny"));
    let moved = start["h.0.mlp.c_fc.weight"]
        .iter()
        .zip(&want["h.0.mlp.c_fc.weight"])
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(moved > 1e-3, "{moved}");
}
