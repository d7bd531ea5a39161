//! The text path on a GPT-2 checkpoint, end to end through the binary:
//! tokenizing and scoring against `tokenizers` + `transformers` + `peft`
//! (fixtures/gpt2/text_golden.json, from tools/golden/gpt2_text_golden.py),
//! PEFT adapters read and written, the shipped tiny config run whole; and
//! a GPT-2 lrscape pre-trains itself on text, saved as a Hugging Face
//! directory.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::{
    absolute_config, config_failure, failure, json, last_json, lrscape, near,
    only_entry as only_member, python_json, root, stderr, study, succeeded, trials,
};

const MODEL: &str = "fixtures/gpt2/tiny-lm";
const VAL: &str = "fixtures/text/genesis-val.txt";
const SCRATCH: &str = "fixtures/gpt2/scratch.toml";

/// `lrscape eval`'s arguments.
fn eval_args<'a>(
    model: &'a str,
    text: &'a str,
    block: &'a str,
    adapter: Option<&'a str>,
) -> Vec<&'a str> {
    let mut args = vec![
        "eval",
        "--model",
        model,
        "--text",
        text,
        "--block-size",
        block,
    ];
    if let Some(adapter) = adapter {
        args.extend(["--adapter", adapter]);
    }
    args
}

/// The JSON of `lrscape eval`'s last line on the tiny checkpoint.
fn eval(adapter: Option<&str>, block: usize) -> serde_json::Value {
    eval_on(MODEL, adapter, block)
}

/// The JSON of `lrscape eval`'s last line on the model directory `model`.
fn eval_on(model: &str, adapter: Option<&str>, block: usize) -> serde_json::Value {
    let block = block.to_string();
    last_json(lrscape(&eval_args(model, VAL, &block, adapter)))
}

fn golden() -> serde_json::Value {
    let text = std::fs::read_to_string(root().join("fixtures/gpt2/text_golden.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn close(ours: &serde_json::Value, want: &serde_json::Value, what: &str) {
    near(&ours["loss"], &want["loss"], &format!("{what}: loss"));
    let a = ours["loss"].as_f64().unwrap();
    assert_eq!(ours["tokens"], want["tokens"], "{what}: tokens");
    let p = ours["perplexity"].as_f64().unwrap();
    assert!(
        (p - a.exp()).abs() < 1e-9 * p,
        "{what}: perplexity is exp(loss)"
    );
}

#[test]
fn the_tokenizer_gives_the_ids_tokenizers_gives() {
    let tokenizer =
        text_data::TextTokenizer::from_file(&root().join(MODEL).join("tokenizer.json")).unwrap();
    let text = std::fs::read_to_string(root().join(VAL)).unwrap();
    let ids = tokenizer.encode(&text).unwrap();
    let want: Vec<u32> = golden()["val_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as u32)
        .collect();
    assert_eq!(ids, want);
}

#[test]
fn eval_scores_the_checkpoint_and_peft_saved_adapters_as_peft_does() {
    let golden = golden();
    let block = golden["block_size"].as_u64().unwrap() as usize;
    close(&eval(None, block), &golden["base"], "base");
    for name in ["lora", "rslora", "dora"] {
        let dir = format!("fixtures/gpt2/tiny-lm-adapters/{name}");
        close(&eval(Some(&dir), block), &golden["adapters"][name], name);
    }
}

/// `(key, shape)` of every tensor of a safetensors file.
fn tensor_shapes(path: &Path) -> BTreeMap<String, Vec<usize>> {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    st.tensors()
        .into_iter()
        .map(|(k, v)| (k, v.shape().to_vec()))
        .collect()
}

#[test]
fn the_tiny_config_runs_whole_and_saves_the_best_adapters_peft_loads() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    succeeded(study("run", Path::new("configs/gpt2-tiny.toml"), &out));
    let trials = trials(&out);
    assert_eq!(trials.len(), 6);
    succeeded(study("report", Path::new("configs/gpt2-tiny.toml"), &out));
    let report_md = std::fs::read_to_string(out.join("REPORT.md")).unwrap();
    assert!(report_md.contains("gpt2-tiny"), "{report_md}");

    for method in ["lora", "dora", "pissa"] {
        let member = only_member(&out.join("adapters").join(format!("{method}-r-4")));
        // The best LR's: the lowest validation loss of the method's trials.
        let best = trials
            .iter()
            .filter(|t| t["method"] == method)
            .min_by(|a, b| {
                a["val_loss"]
                    .as_f64()
                    .partial_cmp(&b["val_loss"].as_f64())
                    .unwrap()
            })
            .unwrap();
        let lr = best["lr"].as_f64().unwrap();
        assert!(
            member.ends_with(format!("lr{lr:.4e}-seed0")),
            "{member:?} for lr {lr}"
        );
        // Read back on the untouched checkpoint (PiSSA's as a rank-2r
        // adapter), it scores what training recorded.
        let score = eval(Some(member.to_str().unwrap()), 64);
        near(&score["loss"], &best["val_loss"], method);
        let config = json(&member.join("adapter_config.json"));
        let r = if method == "pissa" { 8 } else { 4 };
        assert_eq!(config["r"], r, "{method}");
        assert_eq!(config["use_dora"], method == "dora", "{method}");
    }

    // What PEFT saves for the same setting (LoRA, r = 4 on c_attn, c_proj,
    // c_fc): the same tensors, shapes and fields; α is the grid's (α = r)
    // where the fixture's is 8.
    let ours = only_member(&out.join("adapters/lora-r-4"));
    let peft = root().join("fixtures/gpt2/tiny-lm-adapters/lora");
    let weights = "adapter_model.safetensors";
    assert_eq!(
        tensor_shapes(&ours.join(weights)),
        tensor_shapes(&peft.join(weights))
    );
    let (a, b) = (
        json(&ours.join("adapter_config.json")),
        json(&peft.join("adapter_config.json")),
    );
    for field in [
        "peft_type",
        "r",
        "fan_in_fan_out",
        "use_dora",
        "use_rslora",
        "bias",
    ] {
        assert_eq!(a[field], b[field], "{field}");
    }
    let alphas = (a["lora_alpha"].as_u64(), b["lora_alpha"].as_u64());
    assert_eq!(alphas, (Some(4), Some(8)));
}

/// `lrscape eval`'s error for a bad input, which must not be a panic.
fn eval_error(args: &[&str]) -> String {
    let out = lrscape(args);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    failure(&out)
}

#[test]
fn bad_eval_inputs_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let err = eval_error(&eval_args(MODEL, VAL, "65", None));
    assert!(
        err.contains("--block-size 65: between 2 and the model's 64"),
        "{err}"
    );
    let err = eval_error(&eval_args(MODEL, VAL, "1", None));
    assert!(err.contains("--block-size 1"), "{err}");
    let err = eval_error(&eval_args("fixtures/text", VAL, "8", None));
    assert!(
        err.contains("--model") && err.contains("config.json"),
        "{err}"
    );
    let err = eval_error(&eval_args(MODEL, "none.txt", "8", None));
    assert!(err.contains("none.txt"), "{err}");

    // Adapters PEFT would refuse, or lrscape cannot reproduce.
    let adapter = |edit: &dyn Fn(&mut serde_json::Value), drop_key: Option<&str>| {
        let to = dir.path().join(format!("a{}", rand_name()));
        std::fs::create_dir_all(&to).unwrap();
        let from = root().join("fixtures/gpt2/tiny-lm-adapters/lora");
        let mut config = json(&from.join("adapter_config.json"));
        edit(&mut config);
        std::fs::write(to.join("adapter_config.json"), config.to_string()).unwrap();
        let bytes = std::fs::read(from.join("adapter_model.safetensors")).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let kept: Vec<(String, safetensors::tensor::TensorView)> = st
            .tensors()
            .into_iter()
            .filter(|(k, _)| Some(k.as_str()) != drop_key)
            .collect();
        std::fs::write(
            to.join("adapter_model.safetensors"),
            safetensors::serialize(kept, None).unwrap(),
        )
        .unwrap();
        to.display().to_string()
    };
    let adapter_error = |path: String| eval_error(&eval_args(MODEL, VAL, "8", Some(&path)));
    let err = adapter_error(adapter(&|c| c["bias"] = "all".into(), None));
    assert!(err.contains("bias = \"all\""), "{err}");
    let err = adapter_error(adapter(&|c| c["r"] = 3.into(), None));
    assert!(err.contains("lora_A.weight has shape [4, 32]"), "{err}");
    let key = "base_model.model.transformer.h.1.mlp.c_fc.lora_B.weight";
    let err = adapter_error(adapter(&|_| {}, Some(key)));
    assert!(err.contains(&format!("no tensor {key}")), "{err}");
    let err = adapter_error(adapter(
        &|c| c["target_modules"] = serde_json::json!(["c_attn"]),
        None,
    ));
    assert!(err.contains("belongs to no module"), "{err}");
    let err = adapter_error(dir.path().join("none").display().to_string());
    assert!(err.contains("adapter_config.json"), "{err}");
}

fn rand_name() -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    N.fetch_add(1, Ordering::Relaxed).to_string()
}

/// `lrscape run`'s error for a variant of the tiny config.
fn config_error(edit: impl Fn(String) -> String) -> String {
    let dir = tempfile::tempdir().unwrap();
    let text = absolute_config("configs/gpt2-tiny.toml");
    let err = config_failure("run", dir.path(), &edit(text));
    assert!(!dir.path().join("out/trials.jsonl").exists());
    err
}

#[test]
fn bad_text_configs_are_named() {
    // (text of the tiny config, its replacement, the error's words)
    let cases = [
        ("path = \"", "path = \"/none", "model.path = \"/none"),
        (
            "block_size = 64",
            "block_size = 65",
            "task.block_size = 65: between 2",
        ),
        ("block_size = 64\n", "", "task.block_size = missing"),
        (
            "block_size = 64",
            "block_size = 64\nn_finetune_train = 5",
            "task.n_finetune_train = set: not a parameter of task.kind = \"text_lm\"",
        ),
        (
            "[run]",
            "[pretrain]\nepochs = 1\nbatch_size = 8\nlr = 1e-3\n\n[run]",
            "pretrain = set: absent: the base is the checkpoint",
        ),
        (
            "seeds = [0]",
            "seeds = [0]\ntrain_head = true",
            "grid.train_head = true: false for model.family = \"gpt2\"",
        ),
        ("\"c_fc\"]", "\"q\"]", "grid.targets = \"q\""),
        ("genesis-val.txt", "none.txt", "none.txt"),
        (
            "\"pissa\"]",
            "\"dora_seed\"]",
            "run.save_adapters = best: \"none\" with method dora_seed",
        ),
        (
            "save_adapters = \"best\"",
            "save_adapters = \"some\"",
            "unknown variant `some`, expected one of `none`, `best`, `all`",
        ),
        (
            "lrs = [3e-3, 3e-4]",
            "lrs = [3e-3, 3.00001e-3]",
            "finetune.lrs = 0.00300001 and 0.003: learning rates apart in their first five",
        ),
    ];
    for (from, to, want) in cases {
        let err = config_error(|t| t.replace(from, to));
        assert!(err.contains(want), "want {want:?} in: {err}");
    }
}

#[test]
fn a_checkpoint_base_is_not_pre_trained() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let config = [
        "--config",
        "configs/gpt2-tiny.toml",
        "--out",
        out.to_str().unwrap(),
    ];
    let pretrain = lrscape(&[&["pretrain"], &config[..]].concat());
    assert!(pretrain.status.success(), "{}", stderr(&pretrain));
    let said = String::from_utf8_lossy(&pretrain.stdout);
    assert!(
        said.contains("is the checkpoint") && said.contains("nothing to pre-train"),
        "{said}"
    );
    assert!(!out.join("base").exists());
    let epochs = lrscape(&[&["run"], &config[..], &["--pretrain-epochs", "1"]].concat());
    assert_eq!(epochs.status.code(), Some(1), "{}", stderr(&epochs));
    assert!(stderr(&epochs).contains("--pretrain-epochs 1: gpt2-tiny pre-trains nothing"));
}

/// Adapters lrscape saved, for every method PEFT represents, read by
/// `transformers` + `peft` (`LRSCAPE_PYTHON`, else `python3`): the same
/// score as `lrscape eval` gives them. `cargo xtask ci` runs it where
/// python has torch, transformers and peft.
#[test]
#[ignore = "needs python with torch, transformers, peft and tokenizers"]
fn peft_loads_every_saved_adapter_with_the_same_score() {
    let dir = tempfile::tempdir().unwrap();
    let text = absolute_config("configs/gpt2-tiny.toml")
        .replace(
            "methods = [\"lora\", \"dora\", \"pissa\"]",
            "methods = [\"lora\", \"rslora\", \"dora\", \"pissa\", \"milora\", \"init_ab\", \"pissa_seed\"]",
        )
        .replace("save_adapters = \"best\"", "save_adapters = \"all\"");
    let config = dir.path().join("c.toml");
    std::fs::write(&config, text).unwrap();
    let out = dir.path().join("out");
    succeeded(study("run", &config, &out));
    let mut checked = 0;
    for cell in std::fs::read_dir(out.join("adapters")).unwrap() {
        for member in std::fs::read_dir(cell.unwrap().path()).unwrap() {
            let member = member.unwrap().path();
            let ours = eval(Some(member.to_str().unwrap()), 64);
            let want = python_json(
                "tools/golden/peft_text_eval.py",
                &[MODEL, VAL, "64", member.to_str().unwrap()],
            );
            close(&ours, &want, &member.display().to_string());
            checked += 1;
        }
    }
    assert_eq!(checked, 14, "7 methods × 2 learning rates");
}

/// A study whose GPT-2 base lrscape pre-trains on Genesis 1–2 with a BPE
/// trained there, copied into `dir` with its paths made absolute.
fn scratch_config(dir: &Path) -> PathBuf {
    let path = dir.join("scratch.toml");
    std::fs::write(&path, absolute_config(SCRATCH)).unwrap();
    path
}

/// The scratch study run whole in a temporary directory (kept while its
/// guard lives), and its results directory.
fn scratch_run() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let config = scratch_config(dir.path());
    let out = dir.path().join("out");
    succeeded(study("run", &config, &out));
    (dir, out)
}

/// The run's base directory (`<out>/base/<hash>/`) and its record.
fn only_base(out: &Path) -> (PathBuf, serde_json::Value) {
    let base = only_member(&out.join("base"));
    let record = json(&base.join("base.json"));
    (base, record)
}

#[test]
fn a_gpt2_pre_trained_here_is_a_hugging_face_directory_its_adapters_load_on() {
    let (_dir, out) = scratch_run();
    let (base, record) = only_base(&out);
    let hf = base.join("hf");
    let hf_arg = hf.to_str().unwrap();
    let hf_config = json(&hf.join("config.json"));
    assert_eq!(hf_config["model_type"], "gpt2");
    assert_eq!(
        (&hf_config["vocab_size"], &hf_config["n_layer"]),
        (&300.into(), &2.into())
    );
    let tokenizer = json(&hf.join("tokenizer.json"));
    let tokens = tokenizer["model"]["vocab"].as_object().unwrap().len();
    assert!((258..=300).contains(&tokens), "{tokens} tokens");

    // The saved directory scores the validation text as pre-training
    // recorded it, and each kept adapter on it as fine-tuning did.
    let base_score = eval_on(hf_arg, None, 32);
    near(&base_score["loss"], &record["val_loss"], "the base");
    let trials = trials(&out);
    assert_eq!(trials.len(), 4);
    for method in ["lora", "pissa"] {
        let member = only_member(&out.join("adapters").join(format!("{method}-r-4")));
        let adapter = json(&member.join("adapter_config.json"));
        let named = std::fs::canonicalize(&hf).unwrap();
        assert_eq!(adapter["base_model_name_or_path"], named.to_str().unwrap());
        let lr = member.file_name().unwrap().to_str().unwrap().to_string();
        let trial = trials
            .iter()
            .find(|t| {
                t["method"] == method && lr == format!("lr{:.4e}-seed0", t["lr"].as_f64().unwrap())
            })
            .unwrap();
        let score = eval_on(hf_arg, Some(member.to_str().unwrap()), 32);
        near(&score["loss"], &trial["val_loss"], method);
    }
    // The loss fell: the base learned the text it was pre-trained on.
    let losses = record["train_loss"].as_array().unwrap();
    assert!(losses[1].as_f64() < losses[0].as_f64(), "{losses:?}");
}

/// fixtures/gpt2/scratch-base (a base `lrscape pretrain` wrote, kept by
/// tools/golden/gpt2_scratch_golden.py) scores Genesis 3 as `transformers`
/// and `tokenizers` score it.
#[test]
fn a_base_pre_trained_here_scores_as_transformers_reads_it() {
    let text = std::fs::read_to_string(root().join("fixtures/gpt2/scratch_golden.json")).unwrap();
    let want: serde_json::Value = serde_json::from_str(&text).unwrap();
    let ours = eval_on("fixtures/gpt2/scratch-base", None, 32);
    near(&ours["loss"], &want["loss"], "the scratch base");
    assert_eq!(ours["tokens"], want["tokens"]);
}

#[test]
fn a_bpe_trained_twice_on_one_text_is_the_same_tokenizer() {
    let dir = tempfile::tempdir().unwrap();
    let config = scratch_config(dir.path());
    let mut files = Vec::new();
    for run in ["a", "b"] {
        let out = dir.path().join(run);
        succeeded(study("pretrain", &config, &out));
        let (base, _) = only_base(&out);
        files.push(
            ["tokenizer.json", "model.safetensors"]
                .map(|f| std::fs::read(base.join("hf").join(f)).unwrap()),
        );
    }
    assert!(files[0][0] == files[1][0], "the tokenizers differ");
    let kept = std::fs::read(root().join("fixtures/gpt2/scratch-base/tokenizer.json")).unwrap();
    assert!(
        files[0][0] == kept,
        "the tokenizer differs from the one kept in fixtures"
    );
    assert!(files[0][1] == files[1][1], "the bases differ");
}

#[test]
fn bad_scratch_configs_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let config = scratch_config(dir.path());
    let original = std::fs::read_to_string(&config).unwrap();
    let check = |edit: &dyn Fn(&str) -> String, want: &str| {
        let err = config_failure("pretrain", dir.path(), &edit(&original));
        assert!(err.contains(want), "want {want:?} in:\n{err}");
    };
    check(
        &|t| t.replace("n_layer = 2\n", ""),
        "model.n_layer = missing: required without model.path",
    );
    check(
        &|t| t.replace("pretrain_val = ", "# "),
        "task.pretrain_val = missing: a UTF-8 text file",
    );
    check(
        &|t| t.replace("vocab_size = 300", "vocab_size = 200"),
        "vocab_size = 200: more than the 256 byte symbols",
    );
    check(
        &|t| t.replace("n_head = 4", "n_head = 5"),
        "model.n_head = 5: a divisor of n_embd = 32",
    );
    let tiny = root().join(MODEL).display().to_string();
    check(
        &|t| t.replace("vocab_size = 300", &format!("path = \"{tiny}\"")),
        "model.n_positions = set: not beside model.path",
    );
}

/// `transformers` + `peft` (`LRSCAPE_PYTHON`, else `python3`) read a base
/// lrscape pre-trained, with its tokenizer, and an adapter trained on it:
/// the scores `lrscape eval` gives them.
#[test]
#[ignore = "needs python with torch, transformers, peft and tokenizers"]
fn peft_loads_a_base_pre_trained_here_and_its_adapters_with_the_same_score() {
    let (_dir, out) = scratch_run();
    let (base, _) = only_base(&out);
    let hf = base.join("hf");
    let hf = hf.to_str().unwrap();
    let mut adapters = vec![None];
    for method in ["lora", "pissa"] {
        let member = only_member(&out.join("adapters").join(format!("{method}-r-4")));
        adapters.push(Some(member.display().to_string()));
    }
    for adapter in adapters {
        let ours = eval_on(hf, adapter.as_deref(), 32);
        let mut args = vec![hf, VAL, "32"];
        args.extend(adapter.as_deref());
        let want = python_json("tools/golden/peft_text_eval.py", &args);
        close(&ours, &want, adapter.as_deref().unwrap_or("the base"));
    }
}
