//! GPT-2 against `transformers` (fixtures/gpt2, made by
//! tools/golden/gpt2_golden.py from a random tiny `GPT2LMHeadModel`): logits
//! and loss of the checkpoint as saved, in f16 shards, and after lrscape
//! saved it again; and every bad input named.

use std::path::{Path, PathBuf};

use burn::tensor::{Device, Int, Tensor, TensorData};
use gpt2::{Gpt2, hf};
use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/gpt2")
}

fn golden() -> Value {
    let text = std::fs::read_to_string(fixtures().join("golden.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

fn tokens(golden: &Value, device: &Device) -> (Tensor<3, Int>, Vec<Vec<i64>>) {
    let rows: Vec<Vec<i64>> = golden["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|t| t.as_i64().unwrap())
                .collect()
        })
        .collect();
    let (b, t) = (rows.len(), rows[0].len());
    let flat: Vec<i64> = rows.iter().flatten().copied().collect();
    (
        Tensor::from_data(TensorData::new(flat, [1, b, t]), device),
        rows,
    )
}

/// HF's causal-LM loss: position i predicts token i + 1, mean over all.
fn lm_loss(logits: &[f32], rows: &[Vec<i64>], vocab: usize) -> f64 {
    let t = rows[0].len();
    let mut total = 0.0;
    let mut n = 0;
    for (b, row) in rows.iter().enumerate() {
        for i in 0..t - 1 {
            let at = &logits[(b * t + i) * vocab..(b * t + i + 1) * vocab];
            let max = at.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x)) as f64;
            let sum: f64 = at.iter().map(|&x| (x as f64 - max).exp()).sum();
            total += max + sum.ln() - at[row[i + 1] as usize] as f64;
            n += 1;
        }
    }
    total / n as f64
}

fn check(model: &Gpt2, expected: &Value, what: &str) {
    let device = Device::default();
    let golden = golden();
    let (tokens, rows) = tokens(&golden, &device);
    let logits = model.forward(tokens);
    let [c, n, vocab] = logits.dims();
    assert_eq!((c, n), (1, rows.len() * rows[0].len()), "{what}");
    let got: Vec<f32> = logits.into_data().try_to_vec().unwrap();
    let want = floats(&expected["logits"]["data"]);
    assert_eq!(got.len(), want.len(), "{what}");
    let worst = got
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(worst < 1e-5, "{what}: logits differ by {worst}");
    let loss = lm_loss(&got, &rows, vocab);
    let want_loss = expected["loss"].as_f64().unwrap();
    assert!(
        (loss - want_loss).abs() < 1e-5,
        "{what}: loss {loss} vs {want_loss}"
    );
}

#[test]
fn logits_and_loss_match_transformers() {
    let device = Device::default();
    let (config, model) = hf::load_dir(&fixtures().join("tiny"), &device).unwrap();
    assert_eq!(
        (config.n_layer, config.n_embd, config.vocab_size),
        (2, 32, 96)
    );
    check(&model, &golden()["f32"], "f32 checkpoint");
}

#[test]
fn f16_shards_load_as_f32() {
    let device = Device::default();
    let (_, model) = hf::load_dir(&fixtures().join("tiny-f16-sharded"), &device).unwrap();
    check(&model, &golden()["f16"], "f16 sharded checkpoint");
}

#[test]
fn a_saved_directory_loads_to_the_same_model() {
    let device = Device::default();
    let (config, model) = hf::load_dir(&fixtures().join("tiny"), &device).unwrap();
    let dir = tempfile::tempdir().unwrap();
    hf::save_dir(&model, &config, dir.path()).unwrap();
    let (again, reloaded) = hf::load_dir(dir.path(), &device).unwrap();
    assert_eq!(again, config);
    check(&reloaded, &golden()["f32"], "saved and reloaded");
    // The saved file holds exactly the keys transformers saved.
    let keys = |path: &Path| {
        let bytes = std::fs::read(path).unwrap();
        let mut names: Vec<String> = safetensors::SafeTensors::deserialize(&bytes)
            .unwrap()
            .names()
            .into_iter()
            .map(str::to_string)
            .collect();
        names.sort();
        names
    };
    assert_eq!(
        keys(&dir.path().join(hf::WEIGHTS)),
        keys(&fixtures().join("tiny").join(hf::WEIGHTS))
    );
}

#[test]
fn a_fresh_model_has_hf_shapes_and_a_population_shares_its_base() {
    let device = Device::default();
    let config = gpt2::Gpt2Config {
        vocab_size: 50,
        n_positions: 16,
        n_embd: 16,
        n_layer: 2,
        n_head: 2,
        ..gpt2::Gpt2Config::default()
    };
    let model = Gpt2::init(&config, 7, &device).unwrap();
    let tokens = Tensor::<3, Int>::from_data(
        TensorData::new(vec![1i64, 5, 9, 3, 2, 8], [1, 2, 3]),
        &device,
    );
    let one = model.forward(tokens.clone());
    // Two token streams through the one shared base: each as alone.
    let both = model.forward(Tensor::cat(vec![tokens.clone(), tokens], 0));
    assert_eq!(both.dims(), [2, 6, 50]);
    let diff = (both.narrow(0, 1, 1) - one)
        .abs()
        .max()
        .into_scalar::<f32>();
    assert!(diff < 1e-6, "{diff}");
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

    let missing = dir.path().join("nowhere");
    assert!(
        err(&missing).contains("no such directory"),
        "{}",
        err(&missing)
    );

    let tiny = dir.path().join("tiny");
    copy_dir(&fixtures().join("tiny"), &tiny);
    let config = std::fs::read_to_string(tiny.join("config.json")).unwrap();

    // config.json edits: (from, to, what the error must say).
    for (from, to, expected) in [
        (
            "\"gpt2\"",
            "\"llama\"",
            "model_type = \"llama\": this family reads \"gpt2\"",
        ),
        (
            "\"n_embd\": 32",
            "\"n_embd\": 40",
            "tensor wte.weight has shape [96, 32], the config needs [96, 40]",
        ),
        (
            "\"n_embd\": 32",
            "\"n_embd\": 30",
            "n_head = 4: a divisor of n_embd = 30",
        ),
        (
            "\"n_layer\": 2",
            "\"n_layer\": 3",
            "no tensor h.2.ln_1.weight",
        ),
        (
            "\"vocab_size\": 96",
            "\"vocab_size\": 97",
            "tensor wte.weight has shape [96, 32], the config needs [97, 32]",
        ),
        (
            "\"gelu_new\"",
            "\"swish\"",
            "activation_function = \"swish\"",
        ),
    ] {
        assert!(config.contains(from), "{from}");
        std::fs::write(tiny.join("config.json"), config.replace(from, to)).unwrap();
        let e = err(&tiny);
        assert!(e.contains(expected), "{to}: {e}");
    }

    std::fs::write(tiny.join("config.json"), &config).unwrap();
    std::fs::remove_file(tiny.join(hf::WEIGHTS)).unwrap();
    let e = err(&tiny);
    assert!(e.contains("neither model.safetensors nor"), "{e}");

    std::fs::write(tiny.join(hf::WEIGHTS), b"not a safetensors file").unwrap();
    let e = err(&tiny);
    assert!(e.contains("not a safetensors file"), "{e}");

    std::fs::remove_file(tiny.join("config.json")).unwrap();
    let e = err(&tiny);
    assert!(e.contains("config.json"), "{e}");

    let shards = dir.path().join("shards");
    copy_dir(&fixtures().join("tiny-f16-sharded"), &shards);
    std::fs::remove_file(shards.join("model-00002-of-00002.safetensors")).unwrap();
    let e = err(&shards);
    assert!(
        e.contains("model-00002-of-00002.safetensors") && e.contains("missing"),
        "{e}"
    );
}

/// `transformers` reads what lrscape saved. Needs a python with torch and
/// transformers (`LRSCAPE_PYTHON`, else `python3`); `cargo xtask ci` runs
/// it where one imports them.
#[test]
#[ignore = "needs torch and transformers"]
fn transformers_loads_a_saved_directory() {
    let device = Device::default();
    let (config, model) = hf::load_dir(&fixtures().join("tiny"), &device).unwrap();
    let dir = tempfile::tempdir().unwrap();
    hf::save_dir(&model, &config, dir.path()).unwrap();
    let python = std::env::var("LRSCAPE_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = fixtures().join("../../tools/golden/check_saved.py");
    let out = std::process::Command::new(python)
        .arg(script)
        .arg(dir.path())
        .arg(fixtures().join("golden.json"))
        .arg("f32")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn targets_match_as_peft_matches_them() {
    use peft::TargetModules;
    let layout = gpt2::adaptable::linear_layout(2, 8, 32);
    let names = |targets: TargetModules| -> Vec<&'static str> {
        targets
            .resolve(&layout)
            .unwrap()
            .into_iter()
            .map(|m| m.name)
            .collect()
    };
    let list =
        |entries: &[&str]| TargetModules::List(entries.iter().map(|e| e.to_string()).collect());
    let all = vec!["attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"];
    // `c_proj` ends both projections' names, as in PEFT.
    assert_eq!(names(list(&["c_attn", "c_proj", "c_fc"])), all);
    assert_eq!(names(TargetModules::Preset("all-linear".into())), all);
    assert_eq!(names(list(&["mlp.c_proj"])), vec!["mlp.c_proj"]);
    assert_eq!(
        names(TargetModules::Preset("c_attn".into())),
        vec!["attn.c_attn"]
    );
    // A suffix counts only after a '.'.
    let err = list(&["proj"]).resolve(&layout).unwrap_err().to_string();
    assert!(
        err.contains("\"proj\"") && err.contains("attn.c_attn, attn.c_proj"),
        "{err}"
    );
}

/// Rewrites the tiny checkpoint's weights with `edit` applied to its
/// `(key, dtype, shape, bytes)` list.
fn edited_checkpoint(
    dir: &Path,
    edit: impl FnOnce(&mut Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)>),
) {
    copy_dir(&fixtures().join("tiny"), dir);
    let bytes = std::fs::read(dir.join(hf::WEIGHTS)).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut tensors: Vec<_> = file
        .tensors()
        .into_iter()
        .map(|(k, v)| (k, v.dtype(), v.shape().to_vec(), v.data().to_vec()))
        .collect();
    edit(&mut tensors);
    let views: Vec<_> = tensors
        .iter()
        .map(|(k, d, shape, b)| {
            (
                k.clone(),
                safetensors::tensor::TensorView::new(*d, shape.clone(), b).unwrap(),
            )
        })
        .collect();
    std::fs::write(
        dir.join(hf::WEIGHTS),
        safetensors::serialize(views, None).unwrap(),
    )
    .unwrap();
}

#[test]
fn unused_buffers_of_any_dtype_are_skipped_and_a_used_tensor_of_another_is_named() {
    let device = Device::default();
    let dir = tempfile::tempdir().unwrap();
    // Old checkpoints carry the causal mask as a buffer, here as U8.
    let with_mask = dir.path().join("mask");
    edited_checkpoint(&with_mask, |t| {
        t.push((
            "transformer.h.0.attn.bias".into(),
            safetensors::Dtype::U8,
            vec![1, 1, 4, 4],
            vec![1; 16],
        ));
    });
    let (_, model) = hf::load_dir(&with_mask, &device).unwrap();
    check(&model, &golden()["f32"], "with a U8 mask buffer");
    // A weight the model needs, stored as I32.
    let int_bias = dir.path().join("int");
    edited_checkpoint(&int_bias, |t| {
        let bias = t
            .iter_mut()
            .find(|t| t.0 == "transformer.ln_f.bias")
            .unwrap();
        bias.1 = safetensors::Dtype::I32;
    });
    let e = hf::load_dir(&int_bias, &device).unwrap_err().to_string();
    assert!(
        e.contains("tensor ln_f.bias is I32: lrscape reads F32, F16 and BF16"),
        "{e}"
    );
}
