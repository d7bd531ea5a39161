//! Llama, Qwen2 and Qwen3 against `transformers` (fixtures/llama, made by
//! tools/golden/llama_golden.py from random tiny checkpoints): logits and
//! loss as saved, in bf16 shards, and after lrscape saved them again; a
//! population sharing one base; every bad input named.

use std::path::{Path, PathBuf};

use burn::tensor::{Device, Int, Tensor, TensorData};
use llama::{Llama, hf};
use nn::LinearHook;
use serde_json::Value;

const MODELS: [&str; 3] = ["tiny-llama", "tiny-qwen2", "tiny-qwen3"];

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/llama")
}

fn golden() -> Value {
    let text = std::fs::read_to_string(fixtures().join("golden.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// The golden token batch as `[1, B, T]`, and its rows.
fn tokens(device: &Device) -> (Tensor<3, Int>, Vec<Vec<i64>>) {
    let rows: Vec<Vec<i64>> = serde_json::from_value(golden()["tokens"].clone()).unwrap();
    let (b, t) = (rows.len(), rows[0].len());
    let flat: Vec<i64> = rows.iter().flatten().copied().collect();
    (
        Tensor::from_data(TensorData::new(flat, [1, b, t]), device),
        rows,
    )
}

/// HF's causal-LM loss from logits `[B·T, vocab]`: position i predicts
/// token i + 1, mean over all, in f64.
fn lm_loss(logits: &[f32], rows: &[Vec<i64>], vocab: usize) -> f64 {
    let t = rows[0].len();
    let mut total = 0.0;
    for (b, row) in rows.iter().enumerate() {
        for i in 0..t - 1 {
            let at = &logits[(b * t + i) * vocab..(b * t + i + 1) * vocab];
            let max = at.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x)) as f64;
            let sum: f64 = at.iter().map(|&x| (x as f64 - max).exp()).sum();
            total += max + sum.ln() - at[row[i + 1] as usize] as f64;
        }
    }
    total / (rows.len() * (t - 1)) as f64
}

/// `model`'s logits and loss against the golden entry `entry`.
fn check(model: &Llama, entry: &str) {
    let device = Device::default();
    let (tokens, rows) = tokens(&device);
    let logits = model.forward(tokens);
    let [c, n, vocab] = logits.dims();
    assert_eq!((c, n), (1, rows.len() * rows[0].len()), "{entry}");
    let got: Vec<f32> = logits.into_data().try_to_vec().unwrap();
    let expected = &golden()[entry];
    let want: Vec<f32> = serde_json::from_value(expected["logits"]["data"].clone()).unwrap();
    assert_eq!(got.len(), want.len(), "{entry}");
    let scale = want.iter().fold(1.0f32, |m, x| m.max(x.abs()));
    let worst = got
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    // 1e-5 of the logits' scale: f32 sums of this size differ from
    // PyTorch's in the sixth digit.
    assert!(
        worst < 1e-5 * scale,
        "{entry}: logits differ by {worst} (scale {scale})"
    );
    let loss = lm_loss(&got, &rows, vocab);
    let want_loss = expected["loss"].as_f64().unwrap();
    assert!(
        (loss - want_loss).abs() < 1e-5,
        "{entry}: loss {loss} vs {want_loss}"
    );
}

fn load(name: &str) -> (llama::LlamaConfig, Llama) {
    hf::load_dir(&fixtures().join(name), &Device::default()).unwrap()
}

#[test]
fn logits_and_loss_match_transformers() {
    for name in MODELS {
        let (config, model) = load(name);
        assert_eq!(config.num_hidden_layers, 2, "{name}");
        check(&model, name);
    }
    let (llama, model) = load("tiny-llama");
    assert!(model.lm_head.is_some() && llama.kv_heads() == 2);
    let (qwen3, model) = load("tiny-qwen3");
    assert!(model.lm_head.is_none() && qwen3.head_dim() == 16);
    assert!(model.layers[0].self_attn.q_norm.is_some());
}

#[test]
fn bf16_shards_load_as_f32() {
    let (_, model) = load("tiny-qwen3-bf16-sharded");
    check(&model, "tiny-qwen3-bf16-sharded");
}

fn keys(path: &Path) -> Vec<String> {
    let bytes = std::fs::read(path).unwrap();
    let mut names: Vec<String> = safetensors::SafeTensors::deserialize(&bytes)
        .unwrap()
        .names()
        .into_iter()
        .map(str::to_string)
        .collect();
    names.sort();
    names
}

#[test]
fn a_saved_directory_loads_to_the_same_model_with_transformers_keys() {
    for name in MODELS {
        let (config, model) = load(name);
        let dir = tempfile::tempdir().unwrap();
        hf::save_dir(&model, &config, dir.path()).unwrap();
        let (again, reloaded) = hf::load_dir(dir.path(), &Device::default()).unwrap();
        assert_eq!(again.vocab_size, config.vocab_size, "{name}");
        check(&reloaded, name);
        assert_eq!(
            keys(&dir.path().join(hf::WEIGHTS)),
            keys(&fixtures().join(name).join(hf::WEIGHTS)),
            "{name}"
        );
    }
}

#[test]
fn a_population_shares_its_base_and_each_stream_is_as_alone() {
    let (_, model) = load("tiny-qwen3");
    let device = Device::default();
    let (tokens, _) = tokens(&device);
    let one = model.forward(tokens.clone());
    let both = model.forward(Tensor::cat(vec![tokens.clone(), tokens], 0));
    let diff = (both.narrow(0, 1, 1) - one)
        .abs()
        .max()
        .into_scalar::<f32>();
    assert!(diff < 1e-5, "{diff}");
}

/// Adds `delta` to the output of one module: a hook that must change the
/// logits exactly where that module is reached.
struct Nudge(nn::ModuleId);

impl LinearHook for Nudge {
    fn linear(&self, site: nn::LinearSite, base: &nn::PopLinear, x: Tensor<4>) -> Tensor<4> {
        let y = base.forward(x);
        if site.module == self.0 {
            y.add_scalar(0.5)
        } else {
            y
        }
    }
}

#[test]
fn every_module_is_evaluated_through_the_hook() {
    let (_, model) = load("tiny-llama");
    let device = Device::default();
    let (tokens, _) = tokens(&device);
    let plain = model.forward(tokens.clone());
    for module in llama::adaptable::MODULES {
        let nudged = model.forward_with(tokens.clone(), &Nudge(module));
        let diff = (nudged - plain.clone()).abs().max().into_scalar::<f32>();
        assert!(diff > 1e-3, "{}: the hook did not reach it", module.name);
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

#[test]
fn bad_checkpoints_are_named() {
    let device = Device::default();
    let dir = tempfile::tempdir().unwrap();
    let err = |path: &Path| hf::load_dir(path, &device).unwrap_err().to_string();
    let e = err(&dir.path().join("nowhere"));
    assert!(e.contains("no such directory"), "{e}");

    let tiny = dir.path().join("tiny");
    copy_dir(&fixtures().join("tiny-llama"), &tiny);
    let config = std::fs::read_to_string(tiny.join("config.json")).unwrap();
    for (from, to, expected) in [
        (
            "\"llama\"",
            "\"mistral\"",
            "model_type = \"mistral\": this family reads llama, qwen2, qwen3",
        ),
        (
            "\"hidden_size\": 32",
            "\"hidden_size\": 40",
            "tensor model.embed_tokens.weight has shape [320, 32], the config needs [320, 40]",
        ),
        (
            "\"num_key_value_heads\": 2",
            "\"num_key_value_heads\": 3",
            "num_key_value_heads = 3: a divisor of num_attention_heads = 4",
        ),
        (
            "\"num_hidden_layers\": 2",
            "\"num_hidden_layers\": 3",
            "no tensor model.layers.2.self_attn.q_proj.weight",
        ),
        (
            "\"tie_word_embeddings\": false",
            "\"tie_word_embeddings\": true",
            "",
        ),
        ("\"silu\"", "\"gelu\"", "hidden_act = \"gelu\""),
        (
            "\"rope_type\": \"llama3\"",
            "\"rope_type\": \"yarn\"",
            "rope_scaling.rope_type = \"yarn\"",
        ),
    ] {
        assert!(config.contains(from), "{from}");
        std::fs::write(tiny.join("config.json"), config.replace(from, to)).unwrap();
        let result = hf::load_dir(&tiny, &device);
        if expected.is_empty() {
            // A tied head beside an lm_head in the file: the copy is skipped.
            assert!(result.unwrap().1.lm_head.is_none());
            continue;
        }
        let e = result.unwrap_err().to_string();
        assert!(e.contains(expected), "{to}: {e}");
    }
    std::fs::write(tiny.join("config.json"), &config).unwrap();
    std::fs::remove_file(tiny.join(hf::WEIGHTS)).unwrap();
    let e = err(&tiny);
    assert!(e.contains("neither model.safetensors nor"), "{e}");
}

/// `transformers` reads what lrscape saved. Needs a python with torch and
/// transformers (`LRSCAPE_PYTHON`, else `python3`); `cargo xtask ci` runs
/// it where one imports them.
#[test]
#[ignore = "needs torch and transformers"]
fn transformers_loads_a_saved_directory() {
    for name in MODELS {
        let (config, model) = load(name);
        let dir = tempfile::tempdir().unwrap();
        hf::save_dir(&model, &config, dir.path()).unwrap();
        let python = std::env::var("LRSCAPE_PYTHON").unwrap_or_else(|_| "python3".into());
        let out = std::process::Command::new(python)
            .arg(fixtures().join("../../tools/golden/check_saved.py"))
            .arg(dir.path())
            .arg(fixtures().join("golden.json"))
            .arg(name)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{name}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
