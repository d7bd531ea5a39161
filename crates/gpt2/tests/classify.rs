//! The sequence classifier against `transformers`' `GPT2ForSequenceClassification`
//! (fixtures/gpt2/classify_golden.json and tiny-classifier/, made by
//! tools/golden/gpt2_classify_golden.py): the last non-padding token rule
//! with right padding, a pad inside a row and a row of padding only; the
//! class logits and loss of the checkpoint as `transformers` saved it.

use std::path::Path;

use burn::tensor::{Device, Int, Tensor, TensorData};
use gpt2::hf;
use serde_json::Value;

fn golden() -> Value {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/gpt2/classify_golden.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn ints(v: &Value) -> Vec<i64> {
    v.as_array()
        .unwrap()
        .iter()
        .flat_map(|x| match x.as_array() {
            Some(row) => row.iter().map(|t| t.as_i64().unwrap()).collect(),
            None => vec![x.as_i64().unwrap()],
        })
        .collect()
}

fn load() -> gpt2::Gpt2ForSequenceClassification {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/gpt2/tiny-classifier");
    hf::load_classifier_dir(&dir, &Device::default()).unwrap().1
}

fn tokens(golden: &Value) -> Tensor<3, Int> {
    let rows = golden["tokens"].as_array().unwrap();
    let (b, t) = (rows.len(), rows[0].as_array().unwrap().len());
    Tensor::from_data(
        TensorData::new(ints(&golden["tokens"]), [1, b, t]),
        &Device::default(),
    )
}

#[test]
fn the_last_real_token_is_the_one_transformers_reads() {
    let model = load();
    assert_eq!(model.pad_token_id, Some(0));
    let last = model.last_token(tokens(&golden()));
    let last: Vec<i64> = last.into_data().convert::<i64>().try_into_vec().unwrap();
    // No padding; padding from 4; padding only; a pad inside, padding from 6.
    assert_eq!(last, vec![7, 3, 0, 5]);
}

#[test]
fn logits_and_loss_match_transformers() {
    let golden = golden();
    let model = load();
    assert_eq!(model.num_labels(), 3);
    let logits = model.forward(tokens(&golden));
    let ours: Vec<f32> = logits
        .clone()
        .into_data()
        .convert::<f32>()
        .try_into_vec()
        .unwrap();
    let want: Vec<f32> = golden["logits"]["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect();
    assert_eq!(ours.len(), want.len());
    for (i, (a, b)) in ours.iter().zip(&want).enumerate() {
        assert!(
            (a - b).abs() < 1e-5 * b.abs().max(1.0),
            "logit {i}: {a} vs {b}"
        );
    }
    let labels = ints(&golden["labels"]);
    let labels = Tensor::<2, Int>::from_data(
        TensorData::new(labels.clone(), [1, labels.len()]),
        &Device::default(),
    );
    let loss: f32 = nn::member_cross_entropy(logits, labels).into_scalar();
    let want = golden["loss"].as_f64().unwrap() as f32;
    assert!((loss - want).abs() < 1e-5, "loss {loss} vs {want}");
}

#[test]
fn members_read_their_own_rows() {
    let golden = golden();
    let model = load();
    let all = tokens(&golden);
    // Two members, each given two of the rows: the logits are those rows'.
    let split = Tensor::cat(
        vec![all.clone().narrow(1, 0, 2), all.clone().narrow(1, 2, 2)],
        0,
    );
    let ours: Vec<f32> = model
        .forward(split)
        .into_data()
        .convert::<f32>()
        .try_into_vec()
        .unwrap();
    let alone: Vec<f32> = model
        .forward(all)
        .into_data()
        .convert::<f32>()
        .try_into_vec()
        .unwrap();
    for (a, b) in ours.iter().zip(&alone) {
        assert!((a - b).abs() < 1e-5, "{a} vs {b}");
    }
}

#[test]
fn a_checkpoint_without_a_score_head_is_named() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/gpt2/tiny");
    let err = hf::load_classifier_dir(&dir, &Device::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("score.weight"), "{err}");
}

#[test]
fn lora_on_the_classifier_trains_the_score_head_per_member() {
    let device = Device::default().autodiff();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/gpt2/tiny-classifier");
    let (_, model) = hf::load_classifier_dir(&dir, &device).unwrap();
    let mut config = peft::LoraConfig::new(peft::Method::Lora, 2);
    config.target_modules = peft::TargetModules::Preset("c_attn".into());
    config.train_head = true;
    let adapted = peft::PeftModel::new(model, &config, &[0, 1, 2]).unwrap();
    // Each member: its c_attn adapters (2 layers × 2 × (32 + 96)) and its
    // own score (32 × 3).
    assert_eq!(adapted.trainable_per_member(), 2 * 2 * (32 + 96) + 32 * 3);
    assert_eq!(adapted.base.score.members(), 3);
    let tokens = tokens(&golden());
    let logits = nn::PopulationModel::logits(&adapted, tokens.clone().to_device(&device));
    // B = 0: every member still gives the checkpoint's logits.
    let plain = load().forward(tokens);
    let (ours, plain): (Vec<f32>, Vec<f32>) = (
        logits
            .narrow(0, 2, 1)
            .into_data()
            .convert::<f32>()
            .try_into_vec()
            .unwrap(),
        plain.into_data().convert::<f32>().try_into_vec().unwrap(),
    );
    for (a, b) in ours.iter().zip(&plain) {
        assert!((a - b).abs() < 1e-5, "{a} vs {b}");
    }
}
