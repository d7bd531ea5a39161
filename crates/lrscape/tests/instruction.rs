//! Instruction tuning end to end through the binary: Alpaca-style examples
//! scored on their response tokens as `transformers` scores them with
//! labels -100 on the prompt (fixtures/llama/instruction_golden.json, from
//! tools/golden/instruction_golden.py), and the shipped tiny config in the
//! paper's recipe (cosine with warm-up, α = r, every linear) run whole.

mod common;

use std::path::Path;

use common::{
    absolute_config, config_failure, failure, json, last_json, lrscape, near, only_entry, root,
    stderr, study, succeeded, trials,
};

const VAL: &str = "fixtures/text/genesis-instructions-val.jsonl";
const CONFIG: &str = "configs/qwen3-instruct-tiny.toml";

fn golden() -> serde_json::Value {
    json(&root().join("fixtures/llama/instruction_golden.json"))
}

/// `lrscape eval --instructions` on `model` (with `adapter`) over `file`,
/// with a golden file's `prompt_template`, `max_length` and, where it has
/// one, `max_new_tokens`.
fn eval_with(
    model: &str,
    adapter: Option<&str>,
    file: &str,
    settings: &serde_json::Value,
) -> serde_json::Value {
    let template = settings["prompt_template"].as_str().unwrap().to_string();
    let length = settings["max_length"].to_string();
    let new = settings["max_new_tokens"].to_string();
    let mut args = vec![
        "eval",
        "--model",
        model,
        "--instructions",
        file,
        "--max-length",
        &length,
        "--prompt-template",
        &template,
    ];
    if !settings["max_new_tokens"].is_null() {
        args.extend(["--max-new-tokens", &new]);
    }
    if let Some(adapter) = adapter {
        args.extend(["--adapter", adapter]);
    }
    last_json(lrscape(&args))
}

/// [`eval_with`] over the val examples, as the instruction golden scores
/// them.
fn eval(model: &str, adapter: Option<&str>) -> serde_json::Value {
    eval_with(model, adapter, VAL, &golden())
}

#[test]
fn response_tokens_are_scored_as_transformers_scores_them() {
    let golden = golden();
    for (model, adapter, entry) in [
        ("tiny-qwen3", None, "base"),
        (
            "tiny-qwen3",
            Some("fixtures/llama/tiny-qwen3-adapters/lora"),
            "lora",
        ),
        ("tiny-llama", None, "base"),
    ] {
        let ours = eval(&format!("fixtures/llama/{model}"), adapter);
        let want = &golden[model][entry];
        near(&ours["loss"], &want["loss"], &format!("{model} {entry}"));
        assert_eq!(ours["tokens"], want["tokens"], "{model} {entry}");
    }
}

#[test]
fn the_tiny_instruction_config_runs_whole_and_its_adapters_score_their_trials() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    succeeded(study("run", Path::new(CONFIG), &out));
    let trials = trials(&out);
    assert_eq!(trials.len(), 8);
    succeeded(study("report", Path::new(CONFIG), &out));
    let report = std::fs::read_to_string(out.join("REPORT.md")).unwrap();
    assert!(
        report.contains("the loss on the response tokens only"),
        "{report}"
    );
    assert!(
        report.contains("lr_scheduler_type = \"cosine\""),
        "{report}"
    );
    for method in ["lora", "dora", "pissa"] {
        let member = only_entry(&out.join("adapters").join(format!("{method}-r-4")));
        let name = member.file_name().unwrap().to_str().unwrap().to_string();
        let trial = trials
            .iter()
            .find(|t| {
                t["method"] == method
                    && name == format!("lr{:.4e}-seed0", t["lr"].as_f64().unwrap())
            })
            .unwrap();
        let score = eval("fixtures/llama/tiny-qwen3", Some(member.to_str().unwrap()));
        near(&score["loss"], &trial["val_loss"], method);
    }
}

#[test]
fn bad_instruction_tasks_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let text = absolute_config(CONFIG);
    for (from, to, expected) in [
        (
            "prompt_template = \"### Instruction: {instruction} {input}\\n### Response:\"",
            "prompt_template = \"Q: {input}\"",
            "task.prompt_template = this text: \"Q: {input}\": a template naming {instruction}",
        ),
        (
            "max_length = 64",
            "max_length = 65",
            "task.max_length = 65: between 2",
        ),
        (
            "max_length = 64",
            "max_length = 64\npacking = true\nblock_size = 8",
            "task.block_size = set: not a parameter of task.kind = \"instruction\"",
        ),
        (
            "kind = \"instruction\"",
            "kind = \"text_lm\"\nblock_size = 8",
            "task.max_length = set: not a parameter of task.kind = \"text_lm\"",
        ),
        (
            "warmup_ratio = 0.03",
            "warmup_ratio = 1.5",
            "finetune.warmup_ratio = 1.5: a number in [0, 1)",
        ),
        (
            "max_length = 64",
            "max_length = 48\nmax_new_tokens = 17",
            "task.max_new_tokens = 17: between 1 and 16",
        ),
        (
            "warmup_ratio = 0.03",
            "warmup_ratio = 0.03\nmax_steps = 0",
            "finetune.max_steps = 0: at least 1 step",
        ),
    ] {
        assert!(text.contains(from), "{from}");
        let err = config_failure("run", dir.path(), &text.replace(from, to));
        assert!(err.contains(expected), "{to}: {err}");
    }

    // A file whose line lacks a response is named by its line.
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(
        &bad,
        "{\"instruction\": \"a\", \"output\": \"b\"}\n{\"instruction\": \"a\"}\n",
    )
    .unwrap();
    let out = lrscape(&[
        "eval",
        "--model",
        "fixtures/llama/tiny-qwen3",
        "--instructions",
        bad.to_str().unwrap(),
        "--max-length",
        "64",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        failure(&out).contains("bad.jsonl:2: no field \"output\""),
        "{}",
        failure(&out)
    );

    // Bad flags of `lrscape eval --instructions`, each named.
    for (flags, expected) in [
        (
            vec!["--max-length", "1"],
            "--max-length 1: between 2 and the model's 64",
        ),
        (vec!["--max-length", "65"], "--max-length 65: between 2"),
        (
            vec!["--max-length", "48", "--max-new-tokens", "17"],
            "--max-new-tokens 17: between 1 and 16",
        ),
        (
            vec!["--max-length", "48", "--max-new-tokens", "0"],
            "--max-new-tokens 0: between 1 and 16",
        ),
        (
            vec!["--max-length", "48", "--prompt-template", "Q: {input}"],
            "--prompt-template \"Q: {input}\": a template naming {instruction}",
        ),
    ] {
        let mut args = vec![
            "eval",
            "--model",
            "fixtures/llama/tiny-qwen3",
            "--instructions",
            VAL,
        ];
        args.extend(&flags);
        let out = lrscape(&args);
        assert_eq!(out.status.code(), Some(1), "{flags:?}: {}", stderr(&out));
        assert!(
            failure(&out).contains(expected),
            "{flags:?}: {}",
            failure(&out)
        );
    }
}

/// `lrscape eval --instructions … --max-new-tokens`: the share of greedy
/// answers that agree, as tools/golden/generate_golden.py computes it with
/// `transformers`' `generate` and GSM8K's answer rule.
fn exact_match(adapter: Option<&str>, file: &str) -> serde_json::Value {
    let settings = json(&root().join("fixtures/llama/generate_golden.json"))["answers"].clone();
    eval_with("fixtures/llama/tiny-qwen3", adapter, file, &settings)
}

#[test]
fn generated_answers_are_scored_as_gsm8k_scoring_does() {
    let golden = json(&root().join("fixtures/llama/generate_golden.json"))["answers"].clone();
    let score = exact_match(None, "fixtures/text/genesis-answers-val.jsonl");
    assert_eq!(score["exact_match"], golden["exact_match"]);
    assert_eq!(score["examples"], golden["examples"]);
}

#[test]
fn a_study_scored_by_generation_records_exact_match_as_accuracy() {
    let dir = tempfile::tempdir().unwrap();
    let text = absolute_config(CONFIG)
        .replace("max_length = 64", "max_length = 48\nmax_new_tokens = 16")
        .replace(
            "genesis-instructions-val.jsonl",
            "genesis-answers-val.jsonl",
        )
        .replace("[\"lora\", \"dora\", \"pissa\", \"full\"]", "[\"lora\"]");
    let config = dir.path().join("c.toml");
    std::fs::write(&config, text).unwrap();
    let out = dir.path().join("out");
    succeeded(study("run", &config, &out));
    succeeded(study("report", &config, &out));
    let report = std::fs::read_to_string(out.join("REPORT.md")).unwrap();
    // Accuracy is the study's metric: no perplexity section.
    assert!(
        !report.contains("Scored by validation perplexity"),
        "{report}"
    );
    let trials = trials(&out);
    let member = only_entry(&out.join("adapters/lora-r-4"));
    let name = member.file_name().unwrap().to_str().unwrap().to_string();
    let trial = trials
        .iter()
        .find(|t| name == format!("lr{:.4e}-seed0", t["lr"].as_f64().unwrap()))
        .unwrap();
    // The kept adapter, read back, answers as it did when its trial was
    // scored.
    let score = exact_match(
        Some(member.to_str().unwrap()),
        &root()
            .join("fixtures/text/genesis-answers-val.jsonl")
            .display()
            .to_string(),
    );
    assert_eq!(score["exact_match"], trial["val_accuracy"], "{trial}");
}

#[test]
fn a_step_budget_caps_every_member() {
    let dir = tempfile::tempdir().unwrap();
    let text = absolute_config(CONFIG)
        .replace("warmup_ratio = 0.03", "warmup_ratio = 0.03\nmax_steps = 3")
        .replace("[\"lora\", \"dora\", \"pissa\", \"full\"]", "[\"lora\"]");
    let config = dir.path().join("c.toml");
    std::fs::write(&config, text).unwrap();
    let out = dir.path().join("out");
    succeeded(study("run", &config, &out));
    // 56 examples in batches of 8 for 2 epochs would be 14 steps.
    let trials = trials(&out);
    assert_eq!(trials.len(), 2);
    assert!(trials.iter().all(|t| t["steps"] == 3), "{trials:?}");
}
