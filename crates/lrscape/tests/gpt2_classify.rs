//! `lrscape eval --data`: a GPT-2 sequence classifier (and a PEFT adapter
//! with its `score` head in `modules_to_save`) scored on labelled texts, as
//! `tokenizers` + `transformers` + `peft` score them
//! (fixtures/gpt2/text_classify_golden.json, from
//! tools/golden/gpt2_text_classify_golden.py).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const MODEL: &str = "fixtures/gpt2/tiny-lm-classifier";
const ADAPTER: &str = "fixtures/gpt2/tiny-lm-classifier-lora";
const DATA: &str = "fixtures/text/genesis-labelled";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn lrscape(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lrscape"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("lrscape runs")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn eval_args<'a>(model: &'a str, data: &'a str, adapter: Option<&'a str>) -> Vec<&'a str> {
    let mut args = vec![
        "eval",
        "--model",
        model,
        "--data",
        data,
        "--max-length",
        "24",
    ];
    args.extend(adapter.iter().flat_map(|a| ["--adapter", *a]));
    args
}

fn eval(model: &str, data: &str, adapter: Option<&str>) -> serde_json::Value {
    let out = lrscape(&eval_args(model, data, adapter));
    assert!(out.status.success(), "{}", stderr(&out));
    let stdout = String::from_utf8(out.stdout).unwrap();
    serde_json::from_str(stdout.lines().last().unwrap()).unwrap()
}

/// `lrscape eval`'s error for a bad input, which must not be a panic.
fn eval_error(args: &[&str]) -> String {
    let out = lrscape(args);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(!err.contains("panicked"), "{err}");
    err
}

#[test]
fn a_classifier_and_its_peft_adapter_score_labelled_text_as_transformers_does() {
    let text =
        std::fs::read_to_string(root().join("fixtures/gpt2/text_classify_golden.json")).unwrap();
    let golden: serde_json::Value = serde_json::from_str(&text).unwrap();
    for (case, adapter) in [("base", None), ("lora", Some(ADAPTER))] {
        let want = &golden[case];
        for ext in ["jsonl", "csv"] {
            let data = format!("{DATA}.{ext}");
            let ours = eval(MODEL, &data, adapter);
            let (a, b) = (
                ours["loss"].as_f64().unwrap(),
                want["loss"].as_f64().unwrap(),
            );
            assert!(
                (a - b).abs() <= 1e-5 * b.abs().max(1.0),
                "{case} {ext}: {a} vs {b}"
            );
            let (a, b) = (
                ours["accuracy"].as_f64().unwrap(),
                want["accuracy"].as_f64().unwrap(),
            );
            // transformers' accuracy is an f32 mean of 24 examples.
            assert!((a - b).abs() < 1e-6, "{case} {ext}: accuracy {a} vs {b}");
            assert_eq!(ours["examples"], want["examples"]);
        }
    }
    // The adapter's head, not the base's, scores: without it the loss
    // differs.
    assert_ne!(golden["base"]["loss"], golden["lora"]["loss"]);
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

fn edit_json(path: &Path, edit: impl Fn(&mut serde_json::Value)) {
    let mut value: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    edit(&mut value);
    std::fs::write(path, value.to_string()).unwrap();
}

#[test]
fn bad_classification_inputs_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let data = format!("{DATA}.jsonl");

    // Flags that do not go together.
    let err = eval_error(&["eval", "--model", MODEL, "--data", &data]);
    assert!(err.contains("--max-length"), "{err}");
    let err = eval_error(&["eval", "--model", MODEL, "--text", &data, "--data", &data]);
    assert!(err.contains("cannot be used with"), "{err}");

    // A classifier without a pad id, a language model.
    let no_pad = dir.path().join("no-pad");
    copy_dir(&root().join(MODEL), &no_pad);
    edit_json(&no_pad.join("config.json"), |c| {
        c.as_object_mut().unwrap().remove("pad_token_id");
    });
    let err = eval_error(&eval_args(no_pad.to_str().unwrap(), &data, None));
    assert!(err.contains("has no pad_token_id"), "{err}");
    let err = eval_error(&eval_args("fixtures/gpt2/tiny-lm", &data, None));
    assert!(err.contains("no tensor score.weight"), "{err}");

    // Labels the head does not have, a file of another kind.
    let labels = dir.path().join("labels.jsonl");
    std::fs::write(&labels, "{\"text\": \"In the beginning\", \"label\": 3}\n").unwrap();
    let err = eval_error(&eval_args(MODEL, labels.to_str().unwrap(), None));
    assert!(
        err.contains("labels.jsonl:1: label 3: the model has 3 labels"),
        "{err}"
    );
    let err = eval_error(&eval_args(MODEL, "fixtures/text/genesis-val.txt", None));
    assert!(err.contains("extension \"txt\""), "{err}");

    // An adapter whose saved head is missing or names another module.
    let adapter = |edit: &dyn Fn(&mut serde_json::Value)| {
        let to = dir.path().join(format!("a{}", std::process::id() ^ rand()));
        copy_dir(&root().join(ADAPTER), &to);
        edit_json(&to.join("adapter_config.json"), edit);
        to.display().to_string()
    };
    let other = adapter(&|c| c["modules_to_save"] = serde_json::json!(["lm_head"]));
    let err = eval_error(&eval_args(MODEL, &data, Some(&other)));
    assert!(
        err.contains("modules_to_save = [\"lm_head\"]") && err.contains("naming \"score\""),
        "{err}"
    );
    let none = adapter(&|c| c["modules_to_save"] = serde_json::Value::Null);
    let err = eval_error(&eval_args(MODEL, &data, Some(&none)));
    assert!(err.contains("score.weight belongs to no module"), "{err}");
}

/// A name for a fresh directory.
fn rand() -> u32 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}
