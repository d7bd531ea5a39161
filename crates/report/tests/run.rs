//! `lrscape run` on configs/quick.toml: derived files, resume, divergence.

mod common;

use common::trials;
use tinyformer::TinyformerConfig;

use std::path::{Path, PathBuf};

use records::RankLrEntry;
use sweep::ExperimentConfig;
use sweep::runner::{RunOptions, run_experiment};

fn quick() -> ExperimentConfig<TinyformerConfig> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/quick.toml");
    ExperimentConfig::<TinyformerConfig>::from_toml_file(&path).unwrap()
}

/// The quick config cut to one LoRA r=2 cell at the given learning rates.
fn one_lora_cell(lrs: &[f64]) -> ExperimentConfig<TinyformerConfig> {
    let mut config = quick();
    config.grid.methods = vec![peft::Method::Lora];
    config.grid.ranks = vec![2];
    config.finetune.lrs = sweep::config::LrGrid::List(lrs.to_vec());
    config
}

fn options(out: &Path, max_populations: Option<usize>) -> RunOptions {
    RunOptions {
        out: out.to_path_buf(),
        device: common::flex(),
        max_populations,
        shard: None,
        config_path: None,
    }
}

fn rank_x_lr(out: &Path) -> String {
    std::fs::read_to_string(out.join("rank_x_lr_results.json")).unwrap()
}

/// A base shared by the tests of this file (pre-training is the slow part).
fn with_base(dir: &Path) -> PathBuf {
    let shared = std::env::temp_dir().join(format!("lrscape-run-base-{}", std::process::id()));
    let config = quick();
    let base_dir = sweep::pretrain::base_dir(&shared, &config);
    static ONCE: std::sync::Mutex<()> = std::sync::Mutex::new(());
    {
        let _guard = ONCE.lock().unwrap();
        if !base_dir.join("base.json").exists() {
            let device = common::flex();
            sweep::pretrain::pretrain(&config, &shared, &device, &sweep::Quiet).unwrap();
        }
    }
    let target = sweep::pretrain::base_dir(dir, &config);
    std::fs::create_dir_all(&target).unwrap();
    for file in ["model.bpk", "base.json"] {
        std::fs::copy(base_dir.join(file), target.join(file)).unwrap();
    }
    dir.to_path_buf()
}

#[test]
fn quick_end_to_end_writes_every_derived_file_in_its_schema() {
    let dir = tempfile::tempdir().unwrap();
    let out = with_base(dir.path());
    let config = quick();
    let summary = run_experiment(&config, &options(&out, None), &sweep::Quiet).unwrap();
    let lrs = config.finetune.lrs.values().unwrap();
    let cells = config.cells();
    assert_eq!(summary.trained, cells.len() * lrs.len());

    let all = trials(&out);
    assert_eq!(all.len(), cells.len() * lrs.len());
    for t in &all {
        assert!((0.0..=1.0).contains(&t.val_accuracy));
        assert_eq!(Some(t.train_loss.len()), config.finetune.epochs.first());
        assert_eq!(t.config_hash, config.results_hash());
        assert_eq!(t.provenance.backend, "flex");
        assert!(t.steps > 0 && !t.diverged);
        // Adapters record where their low-rank path ran (the default).
        let compute = (t.method != "full").then_some("weight_space");
        assert_eq!(t.adapter_compute.as_deref(), compute, "{}", t.method);
    }

    let table: std::collections::BTreeMap<String, RankLrEntry> =
        serde_json::from_str(&rank_x_lr(&out)).unwrap();
    assert_eq!(
        table.keys().cloned().collect::<Vec<_>>(),
        ["dora", "full", "lora", "pissa"]
    );
    for (kind, entry) in &table {
        for (rank, r) in &entry.ranks {
            assert_eq!(r.lrs, lrs, "{kind} r={rank}: lrs largest first");
            assert_eq!(r.acc.len(), lrs.len());
            let max = r.acc.iter().cloned().fold(f64::MIN, f64::max);
            assert_eq!(r.best, max);
            let at = r.acc.iter().position(|&a| a == max).unwrap();
            assert_eq!(r.best_lr, r.lrs[at]);
            // Each accuracy is the recorded trial's.
            for (lr, acc) in r.lrs.iter().zip(&r.acc) {
                let t = all
                    .iter()
                    .find(|t| &t.method == kind && t.rank.to_string() == *rank && t.lr == *lr)
                    .unwrap();
                assert_eq!(t.val_accuracy, *acc);
            }
        }
    }
    assert_eq!(table["full"].ranks.keys().collect::<Vec<_>>(), ["0"]);
    assert!(
        table["full"].ranks["0"].best > 0.9,
        "full fine-tuning learns the quick task"
    );

    let sweep: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("lr_sweep_results.json")).unwrap())
            .unwrap();
    assert_eq!(sweep["lora"]["name"], "LoRA");
    assert_eq!(
        sweep["lora"]["best_val_acc"].as_array().unwrap().len(),
        lrs.len()
    );
    let csv = std::fs::read_to_string(out.join("trials.csv")).unwrap();
    assert_eq!(csv.lines().count(), all.len() + 1);
    assert!(csv.starts_with("method,rank,"));

    // Running again trains nothing; both runs are in the run log.
    let again = run_experiment(&config, &options(&out, None), &sweep::Quiet).unwrap();
    assert_eq!((again.trained, again.skipped), (0, all.len()));
    let log = sweep::store::read_run_log(&out).unwrap();
    assert_eq!(log.len(), 2);
    assert_eq!(log[0].trained, all.len());
    assert_eq!((log[1].trained, log[1].skipped), (0, all.len()));

    // The report: figures on disk, and its numbers are the records'.
    let written = report::write_report(&config, &out, None).unwrap();
    assert_eq!(written.trials, all.len());
    for name in [
        "figures/raw/lr_sweep_parity.png",
        "figures/raw/heatmap_lora.svg",
        "figures/normalized/heatmap_normalized_dora.png",
        "figures/normalized/shift_aligned.png",
        "figures/raw/best_of_lr_vs_rank.png",
    ] {
        assert!(
            written.figures.contains(&out.join(name)),
            "{name} missing from {:?}",
            written.figures
        );
        assert!(std::fs::metadata(out.join(name)).unwrap().len() > 1000);
    }
    let report = std::fs::read_to_string(&written.report).unwrap();
    assert!(report.contains("figures/raw/lr_sweep_parity.png"));
    // One seed per cell: the best accuracy is the largest recorded one.
    let lora_best = all
        .iter()
        .filter(|t| t.method == "lora" && t.rank == 4)
        .map(|t| t.val_accuracy)
        .fold(f64::MIN, f64::max);
    let shown = format!("{:.2}", lora_best * 100.0);
    assert!(
        report.contains(&shown),
        "LoRA r=4 best {shown} not in report"
    );
    for label in ["LoRA", "DoRA", "PiSSA", "Full FT"] {
        assert!(report.contains(label), "{label} not in report");
    }
    // --compare with a directory holding no records names the flag.
    let empty = tempfile::tempdir().unwrap();
    let err = report::write_report(&config, &out, Some(empty.path())).unwrap_err();
    assert!(err.to_string().contains("--compare"), "{err}");
    // Compared with itself, the report gains the comparison section.
    report::write_report(&config, &out, Some(&out)).unwrap();
    let compared = std::fs::read_to_string(out.join("REPORT.md")).unwrap();
    assert!(
        compared.contains("## Comparison with `quick`"),
        "{compared}"
    );
}

#[test]
fn a_report_without_records_says_which_run_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let err = report::write_report(&quick(), dir.path(), None).unwrap_err();
    assert!(err.to_string().contains("lrscape run"), "{err}");
    std::fs::write(dir.path().join("run_log.jsonl"), "{\"bad\": 1}\n").unwrap();
    let err = sweep::store::read_run_log(dir.path()).unwrap_err();
    assert!(err.to_string().contains("line 1"), "{err}");
}

#[test]
fn an_interrupted_run_resumes_to_the_same_results() {
    let config = quick();
    let whole = tempfile::tempdir().unwrap();
    let whole = with_base(whole.path());
    run_experiment(&config, &options(&whole, None), &sweep::Quiet).unwrap();

    let parts = tempfile::tempdir().unwrap();
    let parts = with_base(parts.path());
    let first = run_experiment(&config, &options(&parts, Some(1)), &sweep::Quiet).unwrap();
    assert!(first.trained > 0 && first.trained < trials(&whole).len());
    // Status reads the records without touching them.
    let status = sweep::runner::status_table(&config, &trials(&parts));
    let total = trials(&whole).len();
    assert!(
        status.contains(&format!("{}/{total} trials recorded", first.trained)),
        "{status}"
    );
    // A crash in the middle of writing the next record leaves half a line.
    let path = parts.join("trials.jsonl");
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str("{\"experiment\":\"quick\",\"meth");
    std::fs::write(&path, text).unwrap();
    let rest = run_experiment(&config, &options(&parts, None), &sweep::Quiet).unwrap();
    assert_eq!(rest.skipped, first.trained);
    assert!(
        rest.warnings
            .iter()
            .any(|w| w.contains("line") && w.contains("cut short")),
        "{:?}",
        rest.warnings
    );
    assert_eq!(trials(&parts).len(), trials(&whole).len());
    assert_eq!(rank_x_lr(&parts), rank_x_lr(&whole));
}

#[test]
fn a_corrupt_record_in_the_middle_is_an_error_naming_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = with_base(dir.path());
    let mut config = quick();
    config.grid.methods = vec![peft::Method::Lora];
    config.grid.ranks = vec![2];
    run_experiment(&config, &options(&out, None), &sweep::Quiet).unwrap();
    let path = out.join("trials.jsonl");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines[1] = "{not json";
    let broken = lines.join("\n") + "\n";
    std::fs::write(&path, &broken).unwrap();
    let err = run_experiment(&config, &options(&out, None), &sweep::Quiet)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("trials.jsonl line 2 is not a valid trial record"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        broken,
        "nothing already computed is lost"
    );
}

#[test]
fn a_diverging_member_is_recorded_and_the_others_finish() {
    let dir = tempfile::tempdir().unwrap();
    let out = with_base(dir.path());
    let config = one_lora_cell(&[1e30, 1e-2]);
    run_experiment(&config, &options(&out, None), &sweep::Quiet).unwrap();
    let all = trials(&out);
    assert_eq!(all.len(), 2);
    let huge = all.iter().find(|t| t.lr == 1e30).unwrap();
    let sane = all.iter().find(|t| t.lr == 1e-2).unwrap();
    assert!(huge.diverged && !sane.diverged);
    assert!(sane.train_loss.iter().all(|l| l.is_finite()));
    assert!(rank_x_lr(&out).contains("\"best_lr\": 0.01"));
}

#[test]
fn records_of_another_setup_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = with_base(dir.path());
    let mut config = one_lora_cell(&[1e-2]);
    run_experiment(&config, &options(&out, None), &sweep::Quiet).unwrap();
    config.finetune.weight_decay += 0.1;
    let err = run_experiment(&config, &options(&out, None), &sweep::Quiet)
        .unwrap_err()
        .to_string();
    assert!(err.contains("holds trials of another setup"), "{err}");
    // The report refuses them too (it used to mix them in silently).
    let err = report::write_report(&config, &out, None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("were made with another setup"), "{err}");
    assert!(!out.join("REPORT.md").exists());
}

#[test]
fn budget_axes_are_trained_recorded_and_grow_without_rerunning() {
    use sweep::config::OneOrMany;
    let dir = tempfile::tempdir().unwrap();
    let out = with_base(dir.path());
    let mut config = one_lora_cell(&[1e-2]);
    config.finetune.epochs = OneOrMany::One(1);
    config.finetune.batch_size = OneOrMany::Many(vec![16, 64]);
    let first = run_experiment(&config, &options(&out, None), &sweep::Quiet).unwrap();
    assert_eq!(first.trained, 2);

    // A second epochs value is a new axis point: only its trials train.
    config.finetune.epochs = OneOrMany::Many(vec![1, 2]);
    let second = run_experiment(&config, &options(&out, None), &sweep::Quiet).unwrap();
    assert_eq!((second.trained, second.skipped), (2, 2));

    let n = config.task.n_finetune_train;
    let all = trials(&out);
    let mut budgets: Vec<(usize, usize)> = all.iter().map(|t| (t.batch_size, t.epochs)).collect();
    budgets.sort_unstable();
    assert_eq!(budgets, vec![(16, 1), (16, 2), (64, 1), (64, 2)]);
    for t in &all {
        assert_eq!(t.train_loss.len(), t.epochs);
        assert_eq!(t.steps, t.epochs * n.div_ceil(t.batch_size), "{t:?}");
    }
    // Each budget is a curve of its own in the derived files.
    let table: std::collections::BTreeMap<String, RankLrEntry> =
        serde_json::from_str(&rank_x_lr(&out)).unwrap();
    let kinds: Vec<&str> = table.keys().map(String::as_str).collect();
    assert_eq!(
        kinds,
        vec![
            "lora@bs16/ep1",
            "lora@bs16/ep2",
            "lora@bs64/ep1",
            "lora@bs64/ep2"
        ]
    );
}
