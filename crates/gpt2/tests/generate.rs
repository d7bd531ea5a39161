//! Greedy generation with GPT-2's key/value cache against `transformers`'
//! `generate(do_sample=False)` (fixtures/gpt2/generate_golden.json, from
//! tools/golden/generate_golden.py), with and without a PEFT adapter.

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use gpt2::hf;
use nn::PopulationModel;
use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/gpt2")
}

fn check<M: PopulationModel>(model: &M, entry: &str) {
    let text = std::fs::read_to_string(fixtures().join("generate_golden.json")).unwrap();
    let golden: Value = serde_json::from_str(&text).unwrap();
    let new = golden["max_new_tokens"].as_u64().unwrap() as usize;
    let cases = golden[entry].as_array().unwrap();
    assert_eq!(cases.len(), 3);
    for case in cases {
        let prompt: Vec<u32> = serde_json::from_value(case["prompt"].clone()).unwrap();
        let want: Vec<u32> = serde_json::from_value(case["new"].clone()).unwrap();
        let got = train::generate::greedy(model, &prompt, new, Some(0), &Device::default());
        assert_eq!(got, vec![want], "{entry}: {prompt:?}");
    }
}

#[test]
fn greedy_generation_matches_transformers() {
    let device = Device::default();
    let (_, model) = hf::load_dir(&fixtures().join("tiny-lm"), &device).unwrap();
    // The cache is used: a first decode step gives logits.
    let mut cache = nn::attention::KvCache::default();
    let tokens = burn::tensor::Tensor::<3, burn::tensor::Int>::from_data(
        burn::tensor::TensorData::new(vec![5i64, 9, 2], [1, 1, 3]),
        &device,
    );
    assert!(model.decode(tokens, &mut cache).is_some());
    assert_eq!(cache.len(), 3);
    check(&model, "tiny-lm");
    let (adapted, _) =
        peft::pretrained::from_pretrained(model, &fixtures().join("tiny-lm-adapters/lora"))
            .unwrap();
    check(&adapted, "tiny-lm+lora");
}
