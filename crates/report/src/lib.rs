//! `lrscape report`: figures and `REPORT.md` of an experiment, from its
//! records alone (`trials.jsonl`, `run_log.jsonl`, `sharpness*.json`), so a
//! report can be regenerated at any time, also from a partial or merged run.
//!
//! The glue between the results directory (`sweep`) and the drawing and
//! writing (`figs`); it trains nothing and needs no backend.

use nn::ModelConfig;
use std::path::{Path, PathBuf};

use figs::{FigureOptions, draw_figures, report::ReportInput};
use peft::Compute;
use records::TrialRecord;
use sweep::ExperimentConfig;
use sweep::layout;
use sweep::store::{gather, read_run_log, read_sharpness, read_sharpness_after, write_atomic};

/// What the report says of a language-modelling task: its description, the
/// floor of a `markov_lm` task, the base's perplexity on the fine-tuning
/// text (the run log's); `None` for a classifier.
fn language_model<M: ModelConfig>(
    config: &ExperimentConfig<M>,
    out: &Path,
) -> anyhow::Result<Option<figs::report::LanguageModel>> {
    let base_perplexity = read_run_log(out)?
        .iter()
        .rev()
        .find_map(|entry| entry.base_val_loss)
        .map(f64::exp);
    if let Some(chains) = sweep::task::markov_chains(config)? {
        let floor = chains.finetune.optimum(config.model.seq_len());
        return Ok(Some(figs::report::LanguageModel {
            task: format!(
                "Next-token prediction on a random Markov chain over {} tokens, {} successors \
                 each; fine-tuning redraws the successors of {} of them ({} of the rows).",
                chains.finetune.vocab(),
                chains.finetune.branching(),
                chains.shifted_rows.len(),
                config
                    .task
                    .shift
                    .map_or("?".into(), |s| format!("{:.0}%", s * 100.0)),
            ),
            floor: Some(figs::report::Floor {
                perplexity: floor.perplexity(),
                accuracy: floor.accuracy,
            }),
            base_perplexity,
        }));
    }
    let name = |p: &Path| format!("`{}`", p.display());
    let spec = config.task.spec(&config.model)?;
    if let sweep::config::TaskSpec::Instruction(i) = &spec {
        if i.max_new_tokens.is_some() {
            // Scored by generation: accuracy is the study's metric.
            return Ok(None);
        }
        let dir = config.model.checkpoint().map_or("?".into(), name);
        return Ok(Some(figs::report::LanguageModel {
            task: format!(
                "Instruction tuning of the checkpoint {dir} on {}, scored on {}: the loss on \
                 the response tokens only, sequences of {} tokens {}.",
                name(&i.train),
                name(&i.val),
                i.max_length,
                if i.packing { "packed" } else { "padded" }
            ),
            floor: None,
            base_perplexity,
        }));
    }
    let sweep::config::TaskSpec::TextLm {
        train,
        val,
        block_size,
        pretrain,
    } = spec
    else {
        return Ok(None);
    };
    let base = match (&pretrain, config.model.checkpoint()) {
        (Some((text, _)), _) => format!(
            "a {} base pre-trained here on {} with a byte-level BPE trained there",
            M::FAMILY,
            name(text)
        ),
        (None, Some(dir)) => format!("the checkpoint {}", name(dir)),
        (None, None) => format!("a {} base", M::FAMILY),
    };
    Ok(Some(figs::report::LanguageModel {
        task: format!(
            "Next-token prediction on text: {base}, fine-tuned on {} and scored on {}, each \
             cut into blocks of {block_size} tokens.",
            name(&train),
            name(&val)
        ),
        floor: None,
        base_perplexity,
    }))
}

/// What [`write_report`] produced.
#[derive(Debug, Clone)]
pub struct ReportOutput {
    pub report: PathBuf,
    pub figures: Vec<PathBuf>,
    pub trials: usize,
    /// Things the reader should know (unreadable lines, foreign records).
    pub warnings: Vec<String>,
}

/// The config as it produced the records: the adapter compute mode the
/// adapter trials recorded (when they agree) replaces the config file's, so
/// the report describes its records, not a config edited since. Adapter
/// records without the field predate it, and adapters computed in
/// activation space alone until weight space came, with that field.
fn config_of_records<M: ModelConfig>(
    config: &ExperimentConfig<M>,
    trials: &[TrialRecord],
) -> ExperimentConfig<M> {
    let mut config = config.clone();
    let adapters: Vec<&TrialRecord> = trials.iter().filter(|t| t.method != "full").collect();
    let recorded: Vec<&str> = adapters
        .iter()
        .filter_map(|t| t.adapter_compute.as_deref())
        .collect();
    let mode = match recorded.first() {
        None if !adapters.is_empty() => Some(Compute::ActivationSpace),
        Some(first) if recorded.len() == adapters.len() && recorded.iter().all(|m| m == first) => {
            [Compute::WeightSpace, Compute::ActivationSpace]
                .into_iter()
                .find(|&c| sweep::config::compute_label(c) == *first)
        }
        _ => None,
    };
    if let Some(mode) = mode {
        config.run.adapter_compute = mode;
    }
    config
}

/// Draws every figure of the experiment in `out` and writes `out/REPORT.md`;
/// `compare` is another experiment directory whose best accuracies the
/// report sets beside these (the seed notebook beside the default study).
pub fn write_report<M: ModelConfig>(
    config: &ExperimentConfig<M>,
    out: &Path,
    compare: Option<&Path>,
) -> anyhow::Result<ReportOutput> {
    // trials.jsonl and any shard files not merged yet.
    let gathered = gather(out)?;
    let mut warnings = gathered.warnings;
    let trials = gathered.trials;
    if trials.is_empty() {
        anyhow::bail!(
            "{} holds no trial records: run `lrscape run --config <file> --out {}` first",
            out.join(layout::TRIALS).display(),
            out.display()
        );
    }
    sweep::store::check_setup(config, out, &trials)?;
    let (trials, outside) = sweep::grid::within_grid(config, &trials);
    warnings.extend(sweep::grid::outside_note(
        outside,
        trials.len() + outside,
        out,
    ));
    if trials.is_empty() {
        anyhow::bail!(
            "no record in {} lies inside the grid of {}: nothing to report",
            out.display(),
            config.name
        );
    }
    let foreign = trials
        .iter()
        .filter(|t| t.experiment != config.name)
        .count();
    if foreign > 0 {
        warnings.push(format!(
            "{foreign} of {} records in {} name another experiment than {:?}",
            trials.len(),
            out.display(),
            config.name
        ));
    }
    // The seed-format JSON and trials.csv, from the same records.
    sweep::store::write_derived(config, out, &trials)?;
    let options = FigureOptions::new(out.to_path_buf(), config.grid.parity_rank);
    let mut figures = draw_figures(&trials, &options)
        .map_err(|e| anyhow::anyhow!("cannot draw the figures of {}: {e}", out.display()))?;
    let language_model = language_model(config, out)?;
    if language_model.is_some() {
        figures.extend(
            figs::draw_perplexity(&trials, &options)
                .map_err(|e| anyhow::anyhow!("cannot draw the perplexity figures: {e}"))?,
        );
    }
    // λmax per cell (`lrscape sharpness`) beside the best LRs, when measured.
    // The seed means the report's own tables use.
    let curves = figs::curves_of(&trials, config.metric());
    let sharpness = match read_sharpness(out)? {
        Some(file) => {
            let points = figs::sharpness_points_by(&curves, &file.cells(), config.metric());
            figures.extend(
                figs::draw_sharpness(&points, &options)
                    .map_err(|e| anyhow::anyhow!("cannot draw the sharpness figure: {e}"))?,
            );
            Some(points)
        }
        None => None,
    };
    let sharpness_after = read_sharpness_after(out)?
        .iter()
        .map(|file| {
            (
                file.after_steps,
                figs::sharpness_points_by(&curves, &file.cells(), config.metric()),
            )
        })
        .collect();
    let relative: Vec<PathBuf> = figures
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "png"))
        .map(|p| p.strip_prefix(out).unwrap_or(p).to_path_buf())
        .collect();
    let comparison = match compare {
        Some(dir) => {
            let other = gather(dir)?;
            warnings.extend(other.warnings);
            let Some(name) = other.trials.first().map(|t| t.experiment.clone()) else {
                anyhow::bail!(
                    "--compare {}: no trial records there (trials.jsonl missing or empty)",
                    dir.display()
                );
            };
            Some((name, other.trials))
        }
        None => None,
    };
    let log = read_run_log(out)?;
    let n_trials = trials.len();
    // The config the latest run that trained anything logged; records from
    // before run logs carried it: the config file, as its records had it.
    let config_toml = match log
        .iter()
        .rev()
        .find(|e| e.trained > 0)
        .and_then(|e| e.config.clone())
    {
        Some(logged) => logged,
        None => toml::to_string(&config_of_records(config, &trials))
            .map_err(|e| anyhow::anyhow!("cannot write the config as TOML: {e}"))?,
    };
    let input = ReportInput {
        experiment: config.name.clone(),
        description: config.description.clone(),
        config_hash: config.results_hash(),
        config_toml,
        // A run that trained nothing (a resume of a finished study) adds
        // nothing to the study's wall time.
        wall_seconds: log
            .iter()
            .filter(|e| e.trained > 0)
            .map(|e| e.seconds)
            .sum(),
        trials,
        figures: relative,
        comparison,
        sharpness,
        sharpness_after,
        language_model,
    };
    let report = out.join(layout::REPORT);
    write_atomic(&report, &figs::report::render(&input))?;
    Ok(ReportOutput {
        report,
        figures,
        trials: n_trials,
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use sweep::config::DEFAULT_CONFIG;
    use tinyformer::TinyformerConfig;

    #[test]
    fn the_config_shown_has_the_compute_mode_of_the_records() {
        let config =
            ExperimentConfig::<TinyformerConfig>::from_toml_str(DEFAULT_CONFIG, "default.toml")
                .unwrap();
        let cell = config
            .cells()
            .into_iter()
            .find(|c| c.lora.is_some())
            .unwrap();
        let record = |compute: Option<&str>| {
            let mut r = sweep::grid::trial_stub(&config, &cell, 1e-3, 0);
            r.adapter_compute = compute.map(String::from);
            r
        };
        let shown = |file: Compute, trials: &[TrialRecord]| {
            let mut config = config.clone();
            config.run.adapter_compute = file;
            config_of_records(&config, trials).run.adapter_compute
        };
        let (weight, activation) = (Compute::WeightSpace, Compute::ActivationSpace);
        let weight_record = record(Some("weight_space"));
        let activation_record = record(Some("activation_space"));
        // Records from before the field: activation space, the only mode then.
        assert_eq!(shown(weight, &[record(None)]), activation);
        assert_eq!(
            shown(weight, std::slice::from_ref(&activation_record)),
            activation
        );
        assert_eq!(
            shown(activation, std::slice::from_ref(&weight_record)),
            weight
        );
        // Records that disagree leave the config file's mode.
        assert_eq!(
            shown(activation, &[weight_record.clone(), activation_record]),
            activation
        );
        assert_eq!(shown(weight, &[record(None), weight_record]), weight);
    }
}
