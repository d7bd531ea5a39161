//! The language-modelling task end to end on configs/quick-lm.toml: the base
//! learns the pre-training chain, fine-tuning learns the shifted one, the
//! records hold per-token losses, and the report scores by perplexity.

mod common;

use common::trials;
use tinyformer::TinyformerConfig;

use std::path::Path;

use sweep::ExperimentConfig;
use sweep::runner::{RunOptions, run_experiment};
use sweep::task::{Phase, optimum, splits};
use synth_data::Dataset;
use train::evaluate;

fn quick_lm() -> ExperimentConfig<TinyformerConfig> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/quick-lm.toml");
    ExperimentConfig::<TinyformerConfig>::from_toml_file(&path).unwrap()
}

#[test]
fn quick_lm_learns_the_shift_and_reports_perplexity() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path();
    let config = quick_lm();
    let selected = common::flex();
    let options = RunOptions {
        out: out.to_path_buf(),
        device: selected.clone(),
        max_populations: None,
        shard: None,
        config_path: None,
    };
    let summary = run_experiment(&config, &options, &sweep::Quiet).unwrap();
    let lrs = config.finetune.lrs.values().unwrap();
    assert_eq!(summary.trained, config.cells().len() * lrs.len());

    // The base learned the pre-training chain: close to its floor, far
    // below a uniform guess (perplexity = vocab = 16).
    let base_record: records::PretrainRecord = serde_json::from_str(
        &std::fs::read_to_string(sweep::pretrain::base_dir(out, &config).join("base.json"))
            .unwrap(),
    )
    .unwrap();
    let pre_floor = optimum(&config, Phase::Pretrain).unwrap().unwrap();
    let base_ppl = base_record.val_loss.exp();
    assert!(
        base_ppl < pre_floor.perplexity() * 1.25,
        "base perplexity {base_ppl} vs floor {}",
        pre_floor.perplexity()
    );

    // On the fine-tuning chain the base is worse; fine-tuning closes much
    // of the gap, and nothing beats the floor (up to the sample's noise).
    let (base, _) = sweep::pretrain::load_base(&config, out, &selected.device).unwrap();
    let (_, val) = splits(&config, Phase::Finetune).unwrap();
    let before = evaluate(&base, &val, 100, &selected.device).loss[0].exp();
    let floor = optimum(&config, Phase::Finetune)
        .unwrap()
        .unwrap()
        .perplexity();
    let all = trials(out);
    assert_eq!(all.len(), summary.trained);
    for t in &all {
        let ppl = t.val_loss.exp();
        assert!(
            ppl.is_finite() && ppl > floor * 0.95,
            "{} lr {}: {ppl}",
            t.method,
            t.lr
        );
        assert!((0.0..=1.0).contains(&t.val_accuracy));
    }
    for method in ["lora", "full"] {
        let best = all
            .iter()
            .filter(|t| t.method == method)
            .map(|t| t.val_loss.exp())
            .fold(f64::INFINITY, f64::min);
        assert!(
            best - floor < 0.5 * (before - floor),
            "{method}: best {best}, base {before}, floor {floor}"
        );
    }

    let status = sweep::runner::status_table(&config, &all);
    assert!(
        status.lines().next().unwrap().contains("best_ppl"),
        "{status}"
    );
    let lora2 = all
        .iter()
        .filter(|t| t.method == "lora" && t.rank == 2)
        .map(|t| t.val_loss.exp())
        .fold(f64::INFINITY, f64::min);
    let row = status.lines().find(|l| l.starts_with("lora r=2")).unwrap();
    assert!(row.ends_with(&format!("{lora2:.4}")), "{row}");

    let report = report::write_report(&config, out, None).unwrap();
    let md = std::fs::read_to_string(&report.report).unwrap();
    let section = md
        .split("## Perplexity (language modelling)")
        .nth(1)
        .expect("a perplexity section");
    assert!(section.contains(&format!("{floor:.3}")), "{section}");
    // The table's best LoRA r=4 perplexity is the seed mean's minimum over LRs.
    let lora4 = all
        .iter()
        .filter(|t| t.method == "lora" && t.rank == 4)
        .map(|t| t.val_loss.exp())
        .fold(f64::INFINITY, f64::min);
    assert!(
        section.contains(&format!("| LoRA | 4 | {lora4:.3} (1 seed)")),
        "{section}"
    );
    for rank in [2, 4] {
        let png = out.join(format!("figures/raw/perplexity_vs_lr_r{rank}.png"));
        assert!(png.exists(), "{}", png.display());
    }
}

#[test]
fn a_language_model_config_names_what_does_not_fit() {
    let text = include_str!("../../../configs/quick-lm.toml");
    for (from, to, expected) in [
        ("causal = true", "causal = false", "model.causal = false"),
        ("branching = 3", "branching = 17", "task.branching = 17"),
        ("branching = 3\n", "", "task.branching = missing"),
        ("shift = 0.5", "shift = 0.0", "task.shift = 0"),
        ("shift = 0.5", "shift = 0.01", "task.shift = 0.01"),
        (
            "shift = 0.5",
            "shift = 0.5\nk_pretrain = 3",
            "task.k_pretrain = set",
        ),
        ("kind = \"markov_lm\"", "kind = \"markov\"", "retrieve_at_k"),
    ] {
        assert!(text.contains(from), "{from}");
        let err = ExperimentConfig::<TinyformerConfig>::from_toml_str(
            &text.replacen(from, to, 1),
            "lm.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains(expected),
            "{err:?} should contain {expected:?}"
        );
    }
    // A classifier config with a causal model is refused too.
    let quick = include_str!("../../../configs/quick.toml");
    let err = ExperimentConfig::<TinyformerConfig>::from_toml_str(
        &quick.replacen("[model]\n", "[model]\ncausal = true\n", 1),
        "q.toml",
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("model.causal = true"), "{err}");
}

/// Seed offsets wrap: the largest data seed is a seed like any other.
#[test]
fn the_largest_data_seed_draws_data() {
    let mut config = quick_lm();
    config.task.data_seed = u64::MAX;
    let (train, val) = splits(&config, Phase::Finetune).unwrap();
    assert_eq!((train.len(), val.len()), (200, 100));
    assert!(optimum(&config, Phase::Finetune).unwrap().is_some());
}
