//! `lrscape eval --data`: a GPT-2 sequence classifier (and a PEFT adapter
//! with its `score` head in `modules_to_save`) scored on labelled texts, as
//! `tokenizers` + `transformers` + `peft` score them
//! (fixtures/gpt2/text_classify_golden.json, from
//! tools/golden/gpt2_text_classify_golden.py).

mod common;

use std::path::Path;

use common::{
    absolute_config, config_failure, copy_dir, failure, json, kept_adapters_score_their_trials,
    last_json, lrscape, near, peft_scores_kept_adapters, root, study, succeeded, trials,
};

const MODEL: &str = "fixtures/gpt2/tiny-lm-classifier";
const ADAPTER: &str = "fixtures/gpt2/tiny-lm-classifier-lora";
const DATA: &str = "fixtures/text/genesis-labelled";
/// The checkpoint configs/gpt2-classify-tiny.toml adds a head to.
const CONFIG_MODEL: &str = "fixtures/gpt2/tiny-lm";

/// The fixtures' lengths: the golden's 24 tokens for the classifier
/// checkpoint, the tiny config's 32 on the language model's.
fn eval_args<'a>(model: &'a str, data: &'a str, adapter: Option<&'a str>) -> Vec<&'a str> {
    let length = if model == CONFIG_MODEL { "32" } else { "24" };
    let mut args = vec![
        "eval",
        "--model",
        model,
        "--data",
        data,
        "--max-length",
        length,
    ];
    args.extend(adapter.iter().flat_map(|a| ["--adapter", *a]));
    args
}

fn eval(model: &str, data: &str, adapter: Option<&str>) -> serde_json::Value {
    last_json(lrscape(&eval_args(model, data, adapter)))
}

/// `lrscape eval`'s error for a bad input, which must not be a panic.
fn eval_error(args: &[&str]) -> String {
    failure(&lrscape(args))
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
            near(&ours["loss"], &want["loss"], &format!("{case} {ext}"));
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

fn edit_json(path: &Path, edit: impl Fn(&mut serde_json::Value)) {
    let mut value = json(path);
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
        let c = c.as_object_mut().unwrap();
        c.remove("pad_token_id");
        c.remove("eos_token_id");
    });
    let err = eval_error(&eval_args(no_pad.to_str().unwrap(), &data, None));
    assert!(
        err.contains("has no pad_token_id (nor eos_token_id)"),
        "{err}"
    );
    let err = eval_error(&eval_args("fixtures/gpt2/tiny-lm", &data, None));
    assert!(err.contains("is not a sequence classifier"), "{err}");

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

/// configs/gpt2-classify-tiny.toml run whole: a new `score` head on a
/// language model's checkpoint, trained per member beside the adapters and
/// saved as PEFT's `modules_to_save`; each kept adapter, read back on the
/// checkpoint, scores what its trial recorded.
#[test]
fn the_tiny_classification_config_runs_whole_and_saves_its_heads() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let config = Path::new("configs/gpt2-classify-tiny.toml");
    succeeded(study("run", config, &out));
    succeeded(study("report", config, &out));
    assert_eq!(trials(&out).len(), 6);
    kept_adapters_score_their_trials(
        &out,
        &["lora", "dora"],
        serde_json::json!(["score"]),
        (
            "fixtures/gpt2/tiny-lm",
            "fixtures/text/genesis-labelled.csv",
            "32",
        ),
    );
}

/// Classification adapters lrscape saved (their heads in
/// `modules_to_save`), read by `transformers` + `peft` (`LRSCAPE_PYTHON`,
/// else `python3`) on the language model's checkpoint: the score `lrscape
/// eval --data` gives them. `cargo xtask ci` runs it where python has peft.
#[test]
#[ignore = "needs python with torch, transformers, peft and tokenizers"]
fn peft_loads_saved_classification_adapters_with_the_same_score() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    succeeded(study(
        "run",
        Path::new("configs/gpt2-classify-tiny.toml"),
        &out,
    ));
    let checked = peft_scores_kept_adapters(
        &out,
        (CONFIG_MODEL, "fixtures/text/genesis-labelled.csv", "32"),
    );
    assert_eq!(checked, 2, "LoRA's and DoRA's best");
}

#[test]
fn bad_classification_configs_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let original = absolute_config("configs/gpt2-classify-tiny.toml");
    let check = |edit: &dyn Fn(&str) -> String, want: &str| {
        let err = config_failure("run", dir.path(), &edit(&original));
        assert!(err.contains(want), "want {want:?} in:\n{err}");
    };
    check(
        &|t| t.replace("num_labels = 3\n", ""),
        "model.num_labels = missing: the classes of task.kind = \"text_classification\"",
    );
    check(
        &|t| t.replace("max_length = 32", "max_length = 65"),
        "task.max_length = 65: between 1 and the model's 64 positions",
    );
    check(
        &|t| t.replace("max_length = 32", "max_length = 32\nblock_size = 8"),
        "task.block_size = set: not a parameter of task.kind = \"text_classification\"",
    );
    check(
        &|t| {
            t.replace("max_length = 32", "block_size = 8")
                .replace("\"text_classification\"", "\"text_lm\"")
        },
        "model.num_labels = 3: absent for task.kind = \"text_lm\"",
    );
    check(
        &|t| {
            t.replace("tiny-lm\"", "tiny-lm-classifier\"")
                .replace("num_labels = 3", "num_labels = 4")
        },
        "model.num_labels = 4: 3, the labels of the classifier",
    );
    check(
        &|t| t.replace("max_length = 32", "max_length = 32\ncsv_layout = \"tsv\""),
        "task.csv_layout = \"tsv\": \"header\" (a header row naming the columns) or \"ag_news\"",
    );
    check(
        &|t| {
            t.replace(
                "max_length = 32",
                "max_length = 32\ncsv_layout = \"ag_news\"\ntext_column = \"body\"",
            )
        },
        "task.text_column = set: absent with task.csv_layout = \"ag_news\"",
    );
    check(&|t| t.replace("val = \"", "val = \"missing-"), "missing-");
    // A label the head lacks, named by file and line.
    let labels = dir.path().join("labels.jsonl");
    std::fs::write(
        &labels,
        "{\"text\": \"x\", \"label\": 0}\n{\"text\": \"y\", \"label\": 7}\n",
    )
    .unwrap();
    let path = labels.display().to_string();
    check(
        &|t| {
            let (head, rest) = t.split_once("train = \"").unwrap();
            let (_, tail) = rest.split_once('"').unwrap();
            format!("{head}train = \"{path}\"{tail}")
        },
        "labels.jsonl:2: label 7: the model has 3 labels (0 to 2)",
    );
}
