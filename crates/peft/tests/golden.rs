//! Adapters against HF PEFT on the seed model: fixture from
//! `tools/golden/peft_golden.py`, checked by the shared harness.

mod common;

use std::collections::BTreeMap;

use burn::tensor::{Device, Int, Tensor, TensorData};
use nn::{LinearSite, member_cross_entropy};
use peft::Method;
use serde::Deserialize;
use tinyformer::adaptable::{K, MLP_DOWN, MLP_UP, O, Q, V};
use tinyformer::{Tinyformer, TinyformerConfig, TorchState};

use common::{GoldenMethod, Setting, Subject, site};

#[derive(Deserialize)]
struct Golden {
    config: TinyformerConfig,
    #[serde(flatten)]
    setting: Setting,
    base_state: TorchState,
    tokens: Vec<Vec<i64>>,
    labels: Vec<i64>,
    methods: BTreeMap<String, GoldenMethod>,
}

/// `blocks.1.mlp.2` -> layer 1, `mlp_down`.
fn site_of(name: &str) -> LinearSite {
    let parts: Vec<&str> = name.split('.').collect();
    let layer = parts[1].parse().unwrap();
    let module = match (parts[2], parts[3]) {
        ("attn", "q") => Q,
        ("attn", "k") => K,
        ("attn", "v") => V,
        ("attn", "o") => O,
        ("mlp", "0") => MLP_UP,
        ("mlp", "2") => MLP_DOWN,
        other => panic!("unexpected module {other:?}"),
    };
    site(layer, module)
}

fn check(method_name: &str, method: Method) {
    let device = Device::flex().autodiff();
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../fixtures/peft_golden.json"
    );
    let mut golden: Golden = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let g = golden.methods.remove(method_name).unwrap();
    let base = Tinyformer::from_torch_state(&golden.config, &golden.base_state, &device).unwrap();
    let labels: Tensor<2, Int> = Tensor::from_data(
        TensorData::new(golden.labels.clone(), [1, golden.labels.len()]),
        &device,
    );
    let subject = Subject {
        base,
        site: site_of,
        tokens: common::tokens(&golden.tokens, &device),
        loss: Box::new(move |logits| member_cross_entropy(logits, labels.clone())),
        given: None,
    };
    common::check(&g, method, &golden.setting, subject, &device);
}

#[test]
fn lora_matches_peft() {
    check("lora", Method::Lora);
}

#[test]
fn rslora_matches_peft() {
    check("rslora", Method::Rslora);
}

/// LoRA stepped by PEFT's `create_loraplus_optimizer`: B at 16 × A's rate.
#[test]
fn loraplus_matches_peft() {
    check("loraplus", Method::Loraplus);
}

#[test]
fn dora_matches_peft() {
    check("dora", Method::Dora);
}

#[test]
fn pissa_matches_peft() {
    check("pissa", Method::Pissa);
}

#[test]
fn olora_matches_peft() {
    check("olora", Method::Olora);
}

/// PEFT has no MiLoRA: the reference is PEFT's PiSSA init on the smallest
/// singular components (tools/golden/milora.py).
#[test]
fn milora_matches_the_reference() {
    check("milora", Method::Milora);
}
