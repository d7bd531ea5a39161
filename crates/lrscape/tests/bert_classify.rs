//! Encoders end to end: `lrscape eval --data` scores DistilBERT and BERT
//! classifiers (and PEFT adapters with their heads in `modules_to_save`) on
//! labelled texts as `transformers` + `peft` score them
//! (fixtures/bert/text_classify_golden.json, from
//! tools/golden/bert_golden.py); configs/distilbert-classify-tiny.toml runs
//! whole and its adapters score what their trials recorded.

mod common;

use std::path::{Path, PathBuf};

use common::{
    failure, json, kept_adapters_score_their_trials, last_json, lrscape, near, only_entry,
    peft_scores_kept_adapters, python_json, root, study, succeeded, trials,
};

const DATA: &str = "fixtures/text/genesis-labelled";

fn eval_args<'a>(model: &'a str, data: &'a str, adapter: Option<&'a str>) -> Vec<&'a str> {
    let mut args = vec![
        "eval",
        "--model",
        model,
        "--data",
        data,
        "--max-length",
        "16",
    ];
    args.extend(adapter.iter().flat_map(|a| ["--adapter", *a]));
    args
}

#[test]
fn classifiers_and_peft_adapters_score_labelled_text_as_transformers_does() {
    let golden = json(&root().join("fixtures/bert/text_classify_golden.json"));
    let scores = golden["scores"].as_object().unwrap();
    // Both encoders with and without adapters, and BERT's `all-linear`
    // adapter on the classifier (its pooler adapted).
    assert_eq!(scores.len(), 7);
    for (entry, want) in scores {
        let (model, adapter) = match entry.split_once("-adapters/") {
            Some((base, _)) => (
                format!("fixtures/bert/{base}"),
                Some(format!("fixtures/bert/{entry}")),
            ),
            None => (format!("fixtures/bert/{entry}"), None),
        };
        for ext in ["jsonl", "csv"] {
            let data = format!("{DATA}.{ext}");
            let ours = last_json(lrscape(&eval_args(&model, &data, adapter.as_deref())));
            near(&ours["loss"], &want["loss"], &format!("{entry} {ext}"));
            let (a, b) = (
                ours["accuracy"].as_f64().unwrap(),
                want["accuracy"].as_f64().unwrap(),
            );
            // transformers' accuracy is an f32 mean of 24 examples.
            assert!((a - b).abs() < 1e-6, "{entry} {ext}: accuracy {a} vs {b}");
            assert_eq!(ours["examples"], want["examples"]);
        }
    }
}

/// AG-News's CSV as distributed scores as the JSONL the Hugging Face
/// loader's rule makes of it (tools/data/agnews.py).
#[test]
fn an_ag_news_csv_scores_as_its_jsonl() {
    let model = "fixtures/bert/tiny-distilbert-classifier";
    let score = |data: &str, layout: &[&str]| {
        let mut args = eval_args(model, data, None);
        args.extend(layout);
        last_json(lrscape(&args))
    };
    let csv = score("fixtures/agnews/sample.csv", &["--csv-layout", "ag_news"]);
    let jsonl = score("fixtures/agnews/sample.jsonl", &[]);
    assert_eq!(csv, jsonl);
    assert_eq!(csv["examples"], 4);
    // Read with a header row, the same file is refused, naming what it lacks.
    let err = failure(&lrscape(&eval_args(
        model,
        "fixtures/agnews/sample.csv",
        None,
    )));
    assert!(err.contains("no column \"text\""), "{err}");
    let mut args = eval_args(model, "fixtures/agnews/sample.csv", None);
    args.extend(["--csv-layout", "agnews"]);
    let err = failure(&lrscape(&args));
    assert!(err.contains("\"agnews\": \"header\""), "{err}");
}

#[test]
fn bad_encoder_inputs_are_named() {
    let data = format!("{DATA}.jsonl");
    // A masked LM without an adapter has no head to score with.
    let err = failure(&lrscape(&eval_args("fixtures/bert/tiny-bert", &data, None)));
    assert!(err.contains("is not a sequence classifier"), "{err}");
    // An encoder is not a language model.
    let err = failure(&lrscape(&[
        "eval",
        "--model",
        "fixtures/bert/tiny-bert-classifier",
        "--text",
        "fixtures/text/genesis-val.txt",
        "--block-size",
        "8",
    ]));
    assert!(err.contains("is an encoder, not a language model"), "{err}");
    // [CLS] and [SEP] do not fit in 2 tokens.
    let mut args = eval_args("fixtures/bert/tiny-bert-classifier", &data, None);
    args[6] = "2";
    let err = failure(&lrscape(&args));
    assert!(
        err.contains("max_length = 2: more than the 2 special tokens"),
        "{err}"
    );
}

/// configs/distilbert-classify-tiny.toml run whole: a new head on a masked
/// LM's body, trained per member beside the adapters and saved as PEFT's
/// `modules_to_save`; each kept adapter, read back on the checkpoint,
/// scores what its trial recorded; the texts cut are in the run log.
#[test]
fn the_tiny_encoder_config_runs_whole_and_saves_its_heads() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let config = Path::new("configs/distilbert-classify-tiny.toml");
    succeeded(study("run", config, &out));
    succeeded(study("report", config, &out));
    assert!(out.join("REPORT.md").is_file());
    assert_eq!(trials(&out).len(), 6);
    let log = std::fs::read_to_string(out.join("run_log.jsonl")).unwrap();
    assert!(
        log.contains("texts were longer than max_length = 32 tokens and were cut"),
        "{log}"
    );
    kept_adapters_score_their_trials(
        &out,
        &["lora", "dora"],
        serde_json::json!(["pre_classifier", "classifier"]),
        (
            "fixtures/bert/tiny-distilbert",
            "fixtures/text/genesis-labelled.csv",
            "32",
        ),
    );
}

/// configs/distilbert-classify-tiny.toml on the tiny BERT classifier (its
/// pooler in the checkpoint) with `targets = "all-linear"`, in `dir`.
fn bert_all_linear(dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(root().join("configs/distilbert-classify-tiny.toml"))
        .unwrap()
        .replace("../fixtures/", &format!("{}/fixtures/", root().display()))
        .replace(
            "fixtures/bert/tiny-distilbert\"",
            "fixtures/bert/tiny-bert-classifier\"",
        )
        .replace(
            "targets = [\"q_lin\", \"v_lin\"]",
            "targets = \"all-linear\"",
        )
        .replace(
            "methods = [\"lora\", \"dora\", \"full\"]",
            "methods = [\"lora\", \"dora\"]",
        );
    assert!(text.contains("tiny-bert-classifier\"") && text.contains("all-linear"));
    let config = dir.join("bert-all-linear.toml");
    std::fs::write(&config, text).unwrap();
    config
}

/// PEFT's `all-linear` on a BERT classifier adapts the pooler: its dense
/// gets factors (saved under `bert.pooler.dense`, named in
/// `target_modules`), its weights stay the checkpoint's, and only
/// `classifier` is saved whole. Each kept adapter scores its trial.
#[test]
fn bert_all_linear_adapts_the_pooler_as_peft_does() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let config = bert_all_linear(dir.path());
    succeeded(study("run", &config, &out));
    assert_eq!(trials(&out).len(), 4);
    let model = root().join("fixtures/bert/tiny-bert-classifier");
    let model = model.to_str().unwrap();
    kept_adapters_score_their_trials(
        &out,
        &["lora", "dora"],
        serde_json::json!(["classifier"]),
        (model, "fixtures/text/genesis-labelled.csv", "32"),
    );
    let member = only_entry(&out.join("adapters/lora-r-4"));
    let adapter = json(&member.join("adapter_config.json"));
    let targets: Vec<&str> = adapter["target_modules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert!(targets.contains(&"pooler.dense"), "{targets:?}");
    assert_eq!(targets.len(), 7, "{targets:?}");
    let tensors = nn::safetensors_io::read_file(&member.join("adapter_model.safetensors")).unwrap();
    let keys: Vec<&String> = tensors.keys().collect();
    for key in [
        "base_model.model.bert.pooler.dense.lora_A.weight",
        "base_model.model.bert.pooler.dense.lora_B.weight",
        "base_model.model.classifier.weight",
    ] {
        assert!(tensors.contains_key(key), "{key} not in {keys:?}");
    }
    assert!(
        !keys.iter().any(|k| k.ends_with("pooler.dense.weight")),
        "{keys:?}"
    );
}

/// The same adapters read by `transformers` + `peft` on the checkpoint:
/// the score `lrscape eval --data` gives them.
#[test]
#[ignore = "needs python with torch, transformers, peft and tokenizers"]
fn peft_loads_bert_all_linear_adapters_with_the_same_score() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let config = bert_all_linear(dir.path());
    succeeded(study("run", &config, &out));
    let model = root().join("fixtures/bert/tiny-bert-classifier");
    let checked = peft_scores_kept_adapters(
        &out,
        (
            model.to_str().unwrap(),
            "fixtures/text/genesis-labelled.csv",
            "32",
        ),
    );
    assert_eq!(checked, 2, "LoRA's and DoRA's best");
}

/// Encoder adapters lrscape saved (their heads in `modules_to_save`), read
/// by `transformers` + `peft` (`LRSCAPE_PYTHON`, else `python3`) on the
/// masked LM's checkpoint: the score `lrscape eval --data` gives them.
/// `cargo xtask ci` runs it where python has peft.
#[test]
#[ignore = "needs python with torch, transformers, peft and tokenizers"]
fn peft_loads_saved_encoder_adapters_with_the_same_score() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    succeeded(study(
        "run",
        Path::new("configs/distilbert-classify-tiny.toml"),
        &out,
    ));
    let checked = peft_scores_kept_adapters(
        &out,
        (
            "fixtures/bert/tiny-distilbert",
            "fixtures/text/genesis-labelled.csv",
            "32",
        ),
    );
    assert_eq!(checked, 2, "LoRA's and DoRA's best");
}

/// configs/kjv-genre.toml with its texts replaced by the Genesis fixtures
/// and its model shrunk: a WordPiece trained and an encoder pre-trained
/// here as a masked LM, then every method fine-tuned as a classifier; the
/// base is written as a Hugging Face directory with its tokenizer.
fn shrunk_kjv_genre(dir: &Path) -> PathBuf {
    let fixtures = root().join("fixtures/text").display().to_string();
    let text = std::fs::read_to_string(root().join("configs/kjv-genre.toml"))
        .unwrap()
        .replace(
            "../data/kjv/genre-pretrain-train.txt",
            &format!("{fixtures}/genesis-train.txt"),
        )
        .replace(
            "../data/kjv/genre-pretrain-val.txt",
            &format!("{fixtures}/genesis-val.txt"),
        )
        .replace(
            "../data/kjv/genre-train.jsonl",
            &format!("{fixtures}/genesis-labelled-train.jsonl"),
        )
        .replace(
            "../data/kjv/genre-val.jsonl",
            &format!("{fixtures}/genesis-labelled.csv"),
        )
        .replace("vocab_size = 2048", "vocab_size = 300")
        .replace("hidden_size = 64", "hidden_size = 16")
        .replace("intermediate_size = 256", "intermediate_size = 32")
        .replace("max_length = 64", "max_length = 24")
        .replace(
            "max_position_embeddings = 64",
            "max_position_embeddings = 32",
        )
        .replace("seeds = [0, 1, 2]", "seeds = [0]");
    let (head, rest) = text.split_once("lrs = [").unwrap();
    let (_, tail) = rest.split_once(']').unwrap();
    let text = format!("{head}lrs = [1e-2, 1e-3]{tail}");
    assert!(!text.contains("\"../data/kjv/"), "{text}");
    let config = dir.join("kjv-genre.toml");
    std::fs::write(&config, text).unwrap();
    config
}

#[test]
fn the_kjv_genre_config_runs_whole_on_a_small_text() {
    let dir = tempfile::tempdir().unwrap();
    let config = shrunk_kjv_genre(dir.path());
    let out = dir.path().join("out");
    succeeded(study("run", &config, &out));
    // Six adapter methods at two ranks and full fine-tuning, two LRs each.
    assert_eq!(trials(&out).len(), (6 * 2 + 1) * 2);
    succeeded(study("report", &config, &out));
    let report = std::fs::read_to_string(out.join("REPORT.md")).unwrap();
    assert!(report.contains("accuracy"), "{report}");
    let hf = only_entry(&out.join("base")).join("hf");
    assert!(hf.join("tokenizer.json").is_file(), "{hf:?}");
    let saved = json(&hf.join("config.json"));
    assert_eq!(saved["architectures"][0], "DistilBertForMaskedLM");
    // The base's masked-LM accuracy is recorded, and a run again finds the
    // base and every trial done.
    let base = json(&only_entry(&out.join("base")).join("base.json"));
    assert!(base["val_accuracy"].as_f64().unwrap() > 0.0, "{base}");
    let again = succeeded(study("run", &config, &out));
    let said = String::from_utf8_lossy(&again.stdout);
    assert!(
        said.contains("0 trials trained, 26 already recorded"),
        "{said}"
    );
}

/// The base configs/kjv-genre.toml pre-trains, read by `transformers`
/// (`LRSCAPE_PYTHON`, else `python3`) as a masked LM with the logits
/// lrscape computes, and as a sequence classifier.
#[test]
#[ignore = "needs python with torch and transformers"]
fn transformers_loads_a_pretrained_encoder_base() {
    let dir = tempfile::tempdir().unwrap();
    let config = shrunk_kjv_genre(dir.path());
    let out = dir.path().join("out");
    succeeded(lrscape(&[
        "pretrain",
        "--config",
        config.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]));
    let hf = only_entry(&out.join("base")).join("hf");
    let text = "In the beginning God created the heaven and the earth.";
    let want = python_json(
        "tools/golden/check_encoder_base.py",
        &[hf.to_str().unwrap(), text, "7"],
    );
    assert_eq!(want["num_labels"], 7);
    let tokenizer = text_data::TextTokenizer::from_file(&hf.join("tokenizer.json")).unwrap();
    let ids = tokenizer.encode_with_special_tokens(text).unwrap();
    assert_eq!(want["ids"], serde_json::json!(ids));
    let device = burn::tensor::Device::default();
    let (_, model) = bert::hf::load_masked_lm(&hf, &device).unwrap();
    let tokens: Vec<i64> = ids.iter().map(|&i| i64::from(i)).collect();
    let tokens = burn::tensor::Tensor::<3, burn::tensor::Int>::from_data(
        burn::tensor::TensorData::new(tokens, [1, 1, ids.len()]),
        &device,
    );
    let ours: Vec<f32> = model.forward(tokens).into_data().try_to_vec().unwrap();
    let theirs: Vec<f32> = serde_json::from_value(want["logits"].clone()).unwrap();
    assert_eq!(ours.len(), theirs.len());
    let scale = theirs.iter().fold(1.0f32, |m, x| m.max(x.abs()));
    for (a, b) in ours.iter().zip(&theirs) {
        assert!((a - b).abs() < 1e-5 * scale, "{a} vs {b}");
    }
}
