//! Greedy generation with the key/value cache against `transformers`'
//! `generate(do_sample=False)` (fixtures/llama/generate_golden.json, from
//! tools/golden/generate_golden.py), with and without a PEFT adapter; and
//! the same tokens without the cache.

use std::path::{Path, PathBuf};

use burn::tensor::{Device, Int, Tensor};
use llama::{Llama, hf};
use nn::PopulationModel;
use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/llama")
}

fn golden() -> Value {
    let text = std::fs::read_to_string(fixtures().join("generate_golden.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn load(name: &str) -> Llama {
    hf::load_dir(&fixtures().join(name), &Device::default())
        .unwrap()
        .1
}

/// Each golden prompt's generation by `model` against the entry `entry`.
fn check<M: PopulationModel>(model: &M, entry: &str, eos: u32) {
    let golden = golden();
    let new = golden["max_new_tokens"].as_u64().unwrap() as usize;
    for case in golden[entry].as_array().unwrap() {
        let prompt: Vec<u32> = serde_json::from_value(case["prompt"].clone()).unwrap();
        let want: Vec<u32> = serde_json::from_value(case["new"].clone()).unwrap();
        let got = train::generate::greedy(model, &prompt, new, Some(eos), &Device::default());
        assert_eq!(got, vec![want], "{entry}: {prompt:?}");
    }
}

#[test]
fn greedy_generation_matches_transformers() {
    for name in ["tiny-llama", "tiny-qwen2", "tiny-qwen3"] {
        check(&load(name), name, 0);
    }
    let (adapted, _) = peft::pretrained::from_pretrained(
        load("tiny-qwen3"),
        &fixtures().join("tiny-qwen3-adapters/lora"),
    )
    .unwrap();
    check(&adapted, "tiny-qwen3+lora", 0);
}

/// The Llama without its cache: generation recomputes every step.
#[derive(burn::module::Module, Debug)]
struct Uncached {
    inner: Llama,
}

impl PopulationModel for Uncached {
    fn logits(&self, tokens: Tensor<3, Int>) -> Tensor<3> {
        self.inner.logits(tokens)
    }
}

#[test]
fn without_a_cache_generation_gives_the_same_tokens() {
    for name in ["tiny-llama", "tiny-qwen3"] {
        check(&Uncached { inner: load(name) }, name, 0);
    }
}

/// Zeroes member 1 of every 2-member parameter (of the adapters it maps).
struct ZeroSecond;

impl burn::module::ModuleMapper for ZeroSecond {
    fn map_float<const D: usize>(
        &mut self,
        param: burn::module::Param<Tensor<D>>,
    ) -> burn::module::Param<Tensor<D>> {
        param.map(|t| {
            if t.dims()[0] != 2 {
                return t;
            }
            let first = t.clone().narrow(0, 0, 1);
            let zero = t.narrow(0, 1, 1).zeros_like();
            Tensor::cat(vec![first, zero], 0)
        })
    }
}

#[test]
fn every_member_of_a_population_generates_its_own() {
    use burn::module::Module;
    let (mut population, _) = peft::pretrained::from_pretrained(
        load("tiny-qwen3"),
        &fixtures().join("tiny-qwen3-adapters/lora"),
    )
    .unwrap();
    // Two members on the one shared base: the adapter, and a zero one
    // (the plain model).
    population.blocks = std::mem::take(&mut population.blocks)
        .into_iter()
        .map(|b| nn::expand_members(b, 2).map(&mut ZeroSecond))
        .collect();
    let golden = golden();
    for i in 0..3 {
        let prompt: Vec<u32> =
            serde_json::from_value(golden["tiny-qwen3"][i]["prompt"].clone()).unwrap();
        let got = train::generate::greedy(&population, &prompt, 16, Some(0), &Device::default());
        let want = |entry: &str| -> Vec<u32> {
            serde_json::from_value(golden[entry][i]["new"].clone()).unwrap()
        };
        // Members end at different steps; each keeps its own tokens.
        assert_eq!(
            got,
            vec![want("tiny-qwen3+lora"), want("tiny-qwen3")],
            "{i}"
        );
    }
}
