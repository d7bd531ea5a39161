//! The model against PyTorch: fixture from `tools/golden/tinyformer_golden.py`.

use burn::tensor::{Device, Int, Tensor, TensorData};
use nn::member_cross_entropy;
use serde::Deserialize;
use tinyformer::{Tinyformer, TinyformerConfig, TorchState, TorchStateError};

#[derive(Deserialize)]
struct Golden {
    config: TinyformerConfig,
    state: TorchState,
    tokens: Vec<Vec<i64>>,
    labels: Vec<i64>,
    logits: Vec<Vec<f32>>,
    loss: f32,
}

fn golden() -> (Golden, TinyformerConfig) {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../fixtures/tinyformer_golden.json"
    );
    let text = std::fs::read_to_string(path).expect("golden fixture present");
    let golden: Golden = serde_json::from_str(&text).expect("golden fixture parses");
    let config = golden.config.clone();
    (golden, config)
}

fn batch(golden: &Golden, device: &Device) -> (Tensor<3, Int>, Tensor<2, Int>) {
    let b = golden.tokens.len();
    let t = golden.tokens[0].len();
    let tokens = Tensor::from_data(TensorData::new(golden.tokens.concat(), [1, b, t]), device);
    let labels = Tensor::from_data(TensorData::new(golden.labels.clone(), [1, b]), device);
    (tokens, labels)
}

#[test]
fn logits_and_loss_match_pytorch() {
    let device = Device::flex();
    let (golden, config) = golden();
    let model = Tinyformer::from_torch_state(&config, &golden.state, &device).unwrap();
    let (tokens, labels) = batch(&golden, &device);
    let logits = model.forward(tokens);
    let loss = member_cross_entropy(logits.clone(), labels);
    let got: Vec<f32> = logits.into_data().convert::<f32>().try_into_vec().unwrap();
    let want: Vec<f32> = golden.logits.concat();
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert!((g - w).abs() <= 1e-5, "logit {i}: lrscape {g} vs torch {w}");
    }
    let loss: Vec<f32> = loss.into_data().convert::<f32>().try_into_vec().unwrap();
    assert!(
        (loss[0] - golden.loss).abs() <= 1e-5,
        "loss {} vs {}",
        loss[0],
        golden.loss
    );
}

#[test]
fn state_dict_round_trips() {
    let device = Device::flex();
    let (golden, config) = golden();
    let model = Tinyformer::from_torch_state(&config, &golden.state, &device).unwrap();
    let back = model.to_torch_state().unwrap();
    assert_eq!(
        back.keys().collect::<Vec<_>>(),
        golden.state.keys().collect::<Vec<_>>()
    );
    for (name, tensor) in &golden.state {
        assert_eq!(back[name].shape, tensor.shape, "{name}");
        assert_eq!(back[name].data, tensor.data, "{name}");
    }
}

#[test]
fn broken_state_dicts_are_named() {
    let device = Device::flex();
    let (golden, config) = golden();
    let mut missing = golden.state.clone();
    missing.remove("blocks.1.attn.v.weight");
    let err = Tinyformer::from_torch_state(&config, &missing, &device).unwrap_err();
    assert_eq!(
        err,
        TorchStateError::Missing("blocks.1.attn.v.weight".into())
    );

    let mut reshaped = golden.state.clone();
    reshaped.get_mut("head.weight").unwrap().shape = vec![8, 12];
    let err = Tinyformer::from_torch_state(&config, &reshaped, &device).unwrap_err();
    assert!(
        err.to_string()
            .contains("`head.weight` has shape [8, 12], expected [12, 8]"),
        "{err}"
    );
}

/// `tools/golden/causal_lm_golden.py`: the same model as a causal language
/// model (masked attention, the head on every position).
#[derive(Deserialize)]
struct CausalGolden {
    config: TinyformerConfig,
    state: TorchState,
    tokens: Vec<Vec<i64>>,
    targets: Vec<Vec<i64>>,
    logits: Vec<Vec<f32>>,
    loss: f32,
    grads: std::collections::BTreeMap<String, tinyformer::NamedTensor>,
}

#[test]
fn causal_language_model_matches_pytorch() {
    let device = Device::flex().autodiff();
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../fixtures/causal_lm_golden.json"
    );
    let golden: CausalGolden =
        serde_json::from_str(&std::fs::read_to_string(path).expect("fixture present")).unwrap();
    assert!(golden.config.causal);
    let mut model = Tinyformer::from_torch_state(&golden.config, &golden.state, &device).unwrap();
    model.head.weight = model.head.weight.clone().map(|w| w.require_grad());
    model.blocks[0].attn.q.weight = model.blocks[0]
        .attn
        .q
        .weight
        .clone()
        .map(|w| w.require_grad());
    let (b, t) = (golden.tokens.len(), golden.tokens[0].len());
    let tokens = Tensor::from_data(TensorData::new(golden.tokens.concat(), [1, b, t]), &device);
    let targets = Tensor::from_data(
        TensorData::new(golden.targets.concat(), [1, b * t]),
        &device,
    );
    let logits = model.forward(tokens);
    assert_eq!(logits.dims(), [1, b * t, golden.config.vocab]);
    let got: Vec<f32> = logits
        .clone()
        .into_data()
        .convert::<f32>()
        .try_into_vec()
        .unwrap();
    for (i, (g, w)) in got.iter().zip(golden.logits.concat()).enumerate() {
        assert!((g - w).abs() <= 1e-5, "logit {i}: lrscape {g} vs torch {w}");
    }
    let loss = member_cross_entropy(logits, targets);
    let value: Vec<f32> = loss
        .clone()
        .into_data()
        .convert::<f32>()
        .try_into_vec()
        .unwrap();
    assert!(
        (value[0] - golden.loss).abs() <= 1e-5,
        "loss {} vs {}",
        value[0],
        golden.loss
    );

    let grads = loss.sum().backward();
    for (name, weight) in [
        ("head.weight", &model.head.weight),
        ("blocks.0.attn.q.weight", &model.blocks[0].attn.q.weight),
    ] {
        // lrscape keeps weights as [1, in, out], PyTorch as [out, in].
        let grad: Tensor<3> = weight.val().grad(&grads).expect("a gradient");
        let [_, d_in, d_out] = weight.dims();
        let got: Vec<f32> = grad
            .reshape([d_in, d_out])
            .transpose()
            .into_data()
            .convert::<f32>()
            .try_into_vec()
            .unwrap();
        let want = &golden.grads[name];
        assert_eq!(got.len(), want.data.len(), "{name}");
        for (i, (g, w)) in got.iter().zip(&want.data).enumerate() {
            assert!(
                (g - w).abs() <= 1e-5,
                "{name}[{i}]: lrscape {g} vs torch {w}"
            );
        }
    }
}
