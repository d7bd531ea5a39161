//! Encoders end to end: `lrscape eval --data` scores DistilBERT and BERT
//! classifiers (and PEFT adapters with their heads in `modules_to_save`) on
//! labelled texts as `transformers` + `peft` score them
//! (fixtures/bert/text_classify_golden.json, from
//! tools/golden/bert_golden.py); configs/distilbert-classify-tiny.toml runs
//! whole and its adapters score what their trials recorded.

mod common;

use std::path::Path;

use common::{
    failure, json, last_json, lrscape, near, only_entry, python_json, root, study, succeeded,
    trials,
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
    assert_eq!(scores.len(), 6);
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
    let trials = trials(&out);
    assert_eq!(trials.len(), 6);
    let log = std::fs::read_to_string(out.join("run_log.jsonl")).unwrap();
    assert!(
        log.contains("texts were longer than max_length = 32 tokens and were cut"),
        "{log}"
    );
    for method in ["lora", "dora"] {
        let member = &only_entry(&out.join("adapters").join(format!("{method}-r-4")));
        let adapter = json(&member.join("adapter_config.json"));
        assert_eq!(adapter["task_type"], "SEQ_CLS");
        assert_eq!(
            adapter["modules_to_save"],
            serde_json::json!(["pre_classifier", "classifier"])
        );
        let name = member.file_name().unwrap().to_str().unwrap().to_string();
        let trial = trials
            .iter()
            .find(|t| {
                t["method"] == method
                    && name == format!("lr{:.4e}-seed0", t["lr"].as_f64().unwrap())
            })
            .unwrap();
        let args = [
            "eval",
            "--model",
            "fixtures/bert/tiny-distilbert",
            "--adapter",
            member.to_str().unwrap(),
            "--data",
            "fixtures/text/genesis-labelled.csv",
            "--max-length",
            "32",
        ];
        let ours = last_json(lrscape(&args));
        near(&ours["loss"], &trial["val_loss"], method);
        assert_eq!(ours["accuracy"], trial["val_accuracy"], "{method}");
    }
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
    let model = "fixtures/bert/tiny-distilbert";
    let data = "fixtures/text/genesis-labelled.csv";
    let mut checked = 0;
    for cell in std::fs::read_dir(out.join("adapters")).unwrap() {
        for member in std::fs::read_dir(cell.unwrap().path()).unwrap() {
            let member = member.unwrap().path();
            let member = member.to_str().unwrap();
            let args = [
                "eval",
                "--model",
                model,
                "--adapter",
                member,
                "--data",
                data,
                "--max-length",
                "32",
            ];
            let ours = last_json(lrscape(&args));
            let want = python_json(
                "tools/golden/peft_classify_eval.py",
                &[model, data, "32", member],
            );
            near(&ours["loss"], &want["loss"], member);
            assert_eq!(ours["accuracy"], want["accuracy"], "{member}");
            checked += 1;
        }
    }
    assert_eq!(checked, 2, "LoRA's and DoRA's best");
}
