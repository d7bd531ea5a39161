//! Adapters against HF PEFT on GPT-2 (Conv1D layers, `fan_in_fan_out`):
//! fixture from `tools/golden/peft_gpt2_golden.py` on the random tiny GPT-2
//! of fixtures/gpt2/tiny, checked by the shared harness.

mod common;

use std::collections::BTreeMap;

use burn::tensor::{Device, Int, Tensor, TensorData};
use gpt2::adaptable::MODULES;
use nn::{LinearSite, member_cross_entropy};
use peft::Method;
use serde::Deserialize;

use common::{Factors, GoldenMethod, Setting, Subject, site};

#[derive(Deserialize)]
struct Golden {
    #[serde(flatten)]
    setting: Setting,
    tokens: Vec<Vec<i64>>,
    given: BTreeMap<String, Factors>,
    methods: BTreeMap<String, GoldenMethod>,
}

/// `h.1.mlp.c_proj` -> layer 1, `mlp.c_proj`.
fn site_of(name: &str) -> LinearSite {
    let (layer, module) = name
        .strip_prefix("h.")
        .and_then(|rest| rest.split_once('.'))
        .unwrap();
    let module = MODULES.into_iter().find(|m| m.name == module).unwrap();
    site(layer.parse().unwrap(), module)
}

/// HF's causal-LM loss: position i predicts token i + 1, the mean over
/// every prediction of every row.
fn lm_loss(tokens: &[Vec<i64>], device: &Device) -> impl Fn(Tensor<3>) -> Tensor<1> + use<> {
    let (b, t) = (tokens.len(), tokens[0].len());
    let rows: Vec<i64> = (0..b)
        .flat_map(|i| (0..t - 1).map(move |j| (i * t + j) as i64))
        .collect();
    let next: Vec<i64> = tokens.iter().flat_map(|r| r[1..].to_vec()).collect();
    let n = rows.len();
    let rows = Tensor::<1, Int>::from_data(TensorData::new(rows, [n]), device);
    let next = Tensor::<2, Int>::from_data(TensorData::new(next, [1, n]), device);
    move |logits: Tensor<3>| member_cross_entropy(logits.select(1, rows.clone()), next.clone())
}

fn check(method_name: &str, method: Method) {
    let device = Device::flex().autodiff();
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures");
    let text = std::fs::read_to_string(format!("{fixtures}/peft_gpt2_golden.json")).unwrap();
    let mut golden: Golden = serde_json::from_str(&text).unwrap();
    let g = golden.methods.remove(method_name).unwrap();
    let (_, base) = gpt2::hf::load_dir(
        std::path::Path::new(&format!("{fixtures}/gpt2/tiny")),
        &device,
    )
    .unwrap();
    let subject = Subject {
        base,
        site: site_of,
        tokens: common::tokens(&golden.tokens, &device),
        loss: Box::new(lm_loss(&golden.tokens, &device)),
        given: Some(golden.given),
    };
    common::check(&g, method, &golden.setting, subject, &device);
}

#[test]
fn lora_on_gpt2_matches_peft() {
    check("lora", Method::Lora);
}

#[test]
fn rslora_on_gpt2_matches_peft() {
    check("rslora", Method::Rslora);
}

#[test]
fn dora_on_gpt2_conv1d_matches_peft() {
    check("dora", Method::Dora);
}

#[test]
fn pissa_on_gpt2_conv1d_matches_peft() {
    check("pissa", Method::Pissa);
}

/// PEFT has no MiLoRA: the reference is PEFT's PiSSA init on the smallest
/// singular components (tools/golden/milora.py).
#[test]
fn milora_on_gpt2_conv1d_matches_the_reference() {
    check("milora", Method::Milora);
}
