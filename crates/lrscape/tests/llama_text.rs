//! The llama family end to end through the binary: Llama, Qwen2 and Qwen3
//! checkpoints and PEFT adapters scored as `transformers` + `peft` score
//! them (fixtures/llama/text_golden.json, from
//! tools/golden/llama_golden.py), the shipped tiny Qwen3 config run whole
//! with its adapters saved and read back.

mod common;

use std::path::Path;

use common::{
    absolute_config, failure, json, last_json, lrscape, near, only_entry, python_json, root,
    stderr, study, succeeded, trials,
};

const VAL: &str = "fixtures/text/genesis-val.txt";
const CONFIG: &str = "configs/qwen3-tiny.toml";

/// The JSON of `lrscape eval`'s last line on `model` over Genesis 3.
fn eval(model: &str, adapter: Option<&str>, block: usize) -> serde_json::Value {
    let block = block.to_string();
    let mut args = vec![
        "eval",
        "--model",
        model,
        "--text",
        VAL,
        "--block-size",
        &block,
    ];
    if let Some(adapter) = adapter {
        args.extend(["--adapter", adapter]);
    }
    last_json(lrscape(&args))
}

fn golden() -> serde_json::Value {
    json(&root().join("fixtures/llama/text_golden.json"))
}

fn close(ours: &serde_json::Value, want: &serde_json::Value, what: &str) {
    near(&ours["loss"], &want["loss"], &format!("{what}: loss"));
    assert_eq!(ours["tokens"], want["tokens"], "{what}: tokens");
}

#[test]
fn eval_scores_checkpoints_and_peft_saved_adapters_as_peft_does() {
    let golden = golden();
    let block = golden["block_size"].as_u64().unwrap() as usize;
    for name in ["tiny-llama", "tiny-qwen2", "tiny-qwen3"] {
        let model = format!("fixtures/llama/{name}");
        close(&eval(&model, None, block), &golden[name]["base"], name);
        let Some(adapters) = golden[name]["adapters"].as_object() else {
            continue;
        };
        for (adapter, want) in adapters {
            // PEFT saved these with `target_modules = "all-linear"`,
            // resolved to one path per layer and module.
            let dir = format!("fixtures/llama/{name}-adapters/{adapter}");
            let config = json(&root().join(&dir).join("adapter_config.json"));
            assert!(
                config["target_modules"][0]
                    .as_str()
                    .unwrap()
                    .starts_with("model.layers.")
            );
            close(
                &eval(&model, Some(&dir), block),
                want,
                &format!("{name} {adapter}"),
            );
        }
    }
}

#[test]
fn the_tiny_qwen3_config_runs_whole_and_its_adapters_score_their_trials() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    succeeded(study("run", Path::new(CONFIG), &out));
    let trials = trials(&out);
    assert_eq!(trials.len(), 8);
    succeeded(study("report", Path::new(CONFIG), &out));
    let report = std::fs::read_to_string(out.join("REPORT.md")).unwrap();
    assert!(report.contains("qwen3-tiny"), "{report}");
    for method in ["lora", "dora", "pissa", "olora"] {
        let member = only_entry(&out.join("adapters").join(format!("{method}-r-4")));
        let lr = member.file_name().unwrap().to_str().unwrap().to_string();
        let trial = trials
            .iter()
            .find(|t| {
                t["method"] == method && lr == format!("lr{:.4e}-seed0", t["lr"].as_f64().unwrap())
            })
            .unwrap();
        // Read back on the untouched checkpoint (PiSSA's and OLoRA's as
        // rank-2r adapters), it scores what training recorded.
        let score = eval(
            "fixtures/llama/tiny-qwen3",
            Some(member.to_str().unwrap()),
            64,
        );
        near(&score["loss"], &trial["val_loss"], method);
        let config = json(&member.join("adapter_config.json"));
        assert_eq!(config["fan_in_fan_out"], false);
        let targets: Vec<&str> = config["target_modules"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap())
            .collect();
        assert_eq!(targets.len(), 7, "{targets:?}");
        assert!(targets.contains(&"mlp.gate_proj"), "{targets:?}");
    }
}

/// The paper's second-version methods on the tiny Qwen3 (LoRA-GA from the
/// task's gradients, GraLoRA with its hybrid part, RandLoRA, LoFT) and LoRA+
/// at two ratios: every adapter lrscape saves (PEFT's LoRA, GraLoRA and
/// RandLoRA files) scores what its trial recorded once read back.
#[test]
fn the_new_methods_run_whole_and_their_adapters_score_their_trials() {
    let dir = tempfile::tempdir().unwrap();
    let text = absolute_config(CONFIG).replace(
        "methods = [\"lora\", \"dora\", \"pissa\", \"olora\"]",
        "methods = [\"lora_ga\", \"gralora\", \"randlora\", \"loraplus\", \"loft\"]\n\
             hybrid_r = 2\nloraplus_lr_ratio = [4.0, 16.0]\nlora_ga = { batches = 2 }\n\
             randlora_very_sparse = true",
    );
    let config = dir.path().join("c.toml");
    std::fs::write(&config, text).unwrap();
    let out = dir.path().join("out");
    succeeded(study("run", &config, &out));
    let trials = trials(&out);
    assert_eq!(trials.len(), 12, "6 cells × 2 learning rates");
    let ratios: Vec<f64> = trials
        .iter()
        .filter_map(|t| t["loraplus_lr_ratio"].as_f64())
        .collect();
    assert_eq!(ratios.len(), 4);
    let mut checked = Vec::new();
    for cell in std::fs::read_dir(out.join("adapters")).unwrap() {
        let member = only_entry(&cell.unwrap().path());
        let adapter = json(&member.join("adapter_config.json"));
        let name = cell_name(&member);
        let method = match adapter["peft_type"].as_str().unwrap() {
            "GRALORA" => {
                assert_eq!(adapter["hybrid_r"], 2);
                "gralora"
            }
            "RANDLORA" => {
                assert_eq!(adapter["save_projection"], true);
                assert_eq!(adapter["very_sparse"], true);
                "randlora"
            }
            // LoRA-GA's adapter is saved against the untouched base, as
            // PEFT converts it: rank 2r.
            _ if adapter["r"] == 8 => "lora_ga",
            // LoFT trains a plain LoRA with its own optimizer.
            _ if name.starts_with("loft") => "loft",
            _ => "loraplus",
        };
        let lr = member.file_name().unwrap().to_str().unwrap().to_string();
        let trial = trials
            .iter()
            .find(|t| {
                t["method"] == method
                    && lr == format!("lr{:.4e}-seed0", t["lr"].as_f64().unwrap())
                    && t["loraplus_lr_ratio"]
                        .as_f64()
                        .is_none_or(|r| name.ends_with(&format!("ratio-{r}")))
            })
            .unwrap_or_else(|| panic!("no trial of {method} for {name}/{lr}"));
        let score = eval(
            "fixtures/llama/tiny-qwen3",
            Some(member.to_str().unwrap()),
            64,
        );
        near(&score["loss"], &trial["val_loss"], &name);
        checked.push(method);
    }
    checked.sort();
    assert_eq!(
        checked,
        [
            "gralora", "loft", "lora_ga", "loraplus", "loraplus", "randlora"
        ]
    );
    // LoFT's optimizer moved its factors: its trials differ from LoRA+'s.
    let loss = |method: &str| {
        trials
            .iter()
            .find(|t| t["method"] == method && t["lr"] == 3e-3)
            .map(|t| t["val_loss"].as_f64().unwrap())
            .unwrap()
    };
    assert_ne!(loss("loft"), loss("loraplus"));
    let randlora = std::fs::read_dir(out.join("adapters"))
        .unwrap()
        .map(|cell| only_entry(&cell.unwrap().path()))
        .find(|m| cell_name(m).starts_with("randlora"))
        .unwrap();
    damaged_randlora_files_are_refused(&randlora, dir.path());
}

/// A RandLoRA file whose bases are misshapen, or that leaves them out, is
/// refused naming what is wrong (not a panic).
fn damaged_randlora_files_are_refused(member: &Path, scratch: &Path) {
    let bytes = std::fs::read(member.join("adapter_model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let config = json(&member.join("adapter_config.json"));
    let write = |name: &str,
                 tensors: Vec<(String, safetensors::tensor::TensorView)>,
                 config: &serde_json::Value| {
        let to = scratch.join(name);
        std::fs::create_dir_all(&to).unwrap();
        std::fs::write(to.join("adapter_config.json"), config.to_string()).unwrap();
        std::fs::write(
            to.join("adapter_model.safetensors"),
            safetensors::serialize(tensors, None).unwrap(),
        )
        .unwrap();
        let out = lrscape(&[
            "eval",
            "--model",
            "fixtures/llama/tiny-qwen3",
            "--text",
            VAL,
            "--block-size",
            "64",
            "--adapter",
            to.to_str().unwrap(),
        ]);
        failure(&out)
    };
    // One layer's A basis as a matrix [r, MIN] instead of [r, 1, MIN].
    let flat: Vec<(String, safetensors::tensor::TensorView)> = st
        .tensors()
        .into_iter()
        .map(|(k, v)| {
            if k.ends_with("layers.0.self_attn.q_proj.randlora_A") {
                let shape = vec![v.shape()[0], v.shape()[2]];
                let view =
                    safetensors::tensor::TensorView::new(v.dtype(), shape, v.data()).unwrap();
                (k, view)
            } else {
                (k, v)
            }
        })
        .collect();
    let err = write("flat", flat, &config);
    assert!(
        err.contains("randlora_A/randlora_B = [4, 64]/[64, 16, 4]: bases of rank 4"),
        "{err}"
    );
    let mut without = config.clone();
    without["save_projection"] = false.into();
    let err = write("without", st.tensors(), &without);
    assert!(err.contains("save_projection = false: true"), "{err}");
    let mut negative = config.clone();
    negative["projection_prng_key"] = (-1).into();
    let err = write("negative", st.tensors(), &negative);
    assert!(err.contains("an integer >= 0"), "{err}");
}

/// The name of the cell directory holding `member`.
fn cell_name(member: &Path) -> String {
    member
        .parent()
        .and_then(Path::file_name)
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

#[test]
fn adapters_of_some_layers_only_and_classifiers_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let adapter = dir.path().join("lora");
    std::fs::create_dir_all(&adapter).unwrap();
    let from = root().join("fixtures/llama/tiny-qwen3-adapters/lora");
    for file in ["adapter_config.json", "adapter_model.safetensors"] {
        std::fs::copy(from.join(file), adapter.join(file)).unwrap();
    }
    let mut config = json(&adapter.join("adapter_config.json"));
    let targets = config["target_modules"].as_array_mut().unwrap();
    targets.retain(|t| t != "model.layers.1.mlp.up_proj");
    std::fs::write(
        adapter.join("adapter_config.json"),
        serde_json::to_string(&config).unwrap(),
    )
    .unwrap();
    let out = lrscape(&[
        "eval",
        "--model",
        "fixtures/llama/tiny-qwen3",
        "--text",
        VAL,
        "--block-size",
        "16",
        "--adapter",
        adapter.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = failure(&out);
    assert!(
        err.contains("names mlp.up_proj in some layers but not model.layers.1"),
        "{err}"
    );

    let out = lrscape(&[
        "eval",
        "--model",
        "fixtures/llama/tiny-qwen3",
        "--data",
        "fixtures/text/genesis-labelled.jsonl",
        "--max-length",
        "16",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        failure(&out).contains("reads GPT-2 and encoder (DistilBERT, BERT) checkpoints"),
        "{}",
        failure(&out)
    );

    let text =
        absolute_config(CONFIG).replace("family = \"llama\"", "family = \"llama\"\nnum_labels = 3");
    let config = dir.path().join("c.toml");
    std::fs::write(&config, text).unwrap();
    let out = study("run", &config, &dir.path().join("out"));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(failure(&out).contains("num_labels"), "{}", failure(&out));
}

/// Adapters lrscape saved on the tiny Qwen3, for every method PEFT
/// represents, read by `transformers` + `peft` (`LRSCAPE_PYTHON`, else
/// `python3`): the same score as `lrscape eval` gives them. `cargo xtask
/// ci` runs it where python has torch, transformers and peft.
#[test]
#[ignore = "needs python with torch, transformers, peft and tokenizers"]
fn peft_loads_every_saved_adapter_with_the_same_score() {
    let dir = tempfile::tempdir().unwrap();
    let text = absolute_config(CONFIG)
        .replace(
            "methods = [\"lora\", \"dora\", \"pissa\", \"olora\"]",
            "methods = [\"lora\", \"rslora\", \"dora\", \"pissa\", \"milora\", \"init_ab\", \"loraplus\", \"olora\", \"lora_ga\", \"gralora\", \"randlora\", \"loft\"]\nhybrid_r = 2\nlora_ga = { batches = 2 }",
        )
        .replace("save_adapters = \"best\"", "save_adapters = \"all\"");
    let config = dir.path().join("c.toml");
    std::fs::write(&config, text).unwrap();
    let out = dir.path().join("out");
    succeeded(study("run", &config, &out));
    let model = "fixtures/llama/tiny-qwen3";
    let mut checked = 0;
    for cell in std::fs::read_dir(out.join("adapters")).unwrap() {
        for member in std::fs::read_dir(cell.unwrap().path()).unwrap() {
            let member = member.unwrap().path();
            let ours = eval(model, Some(member.to_str().unwrap()), 64);
            let want = python_json(
                "tools/golden/peft_text_eval.py",
                &[model, VAL, "64", member.to_str().unwrap()],
            );
            close(&ours, &want, &member.display().to_string());
            checked += 1;
        }
    }
    assert_eq!(checked, 24, "12 methods × 2 learning rates");
}
