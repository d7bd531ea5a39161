//! `lrscape report`: figures and `REPORT.md` of an experiment, from its
//! records alone (`trials.jsonl`, `run_log.jsonl`), so a report can be
//! regenerated at any time, also from a partial or merged run.

use std::path::{Path, PathBuf};

use anyhow::Context;
use figs::{FigureOptions, draw_figures, report::ReportInput};
use serde::{Deserialize, Serialize};

use crate::ExperimentConfig;
use crate::store::write_atomic;

/// One `lrscape run` invocation, appended to `run_log.jsonl` when it ends:
/// the report's wall time is the sum over the log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunLogEntry {
    /// Seconds since the Unix epoch when the run ended.
    pub ended_unix: u64,
    /// Wall time of the run, pre-training included.
    pub seconds: f64,
    pub trained: usize,
    pub skipped: usize,
    pub backend: String,
    pub device: String,
    pub git_revision: String,
}

/// Appends one entry to the run log at `path` (`<out>/run_log.jsonl`; a
/// shard has its own).
pub fn append_run_log(path: &Path, entry: &RunLogEntry) -> anyhow::Result<()> {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    writeln!(file, "{}", serde_json::to_string(entry)?)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// The run log of `out`: `run_log.jsonl`, then the shards' logs
/// (`run_log.shard-I-of-N.jsonl`, by name); empty if there is none; a bad
/// line is an error naming it.
pub fn read_run_log(out: &Path) -> anyhow::Result<Vec<RunLogEntry>> {
    let mut paths = vec![out.join("run_log.jsonl")];
    let mut shard_logs: Vec<PathBuf> = std::fs::read_dir(out)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with("run_log.shard-") && n.ends_with(".jsonl"))
                })
                .collect()
        })
        .unwrap_or_default();
    shard_logs.sort();
    paths.extend(shard_logs);
    let mut entries = Vec::new();
    for path in paths {
        if path.exists() {
            entries.extend(read_run_log_file(&path)?);
        }
    }
    Ok(entries)
}

fn read_run_log_file(path: &Path) -> anyhow::Result<Vec<RunLogEntry>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| {
                anyhow::anyhow!(
                    "{} line {} is not a run-log entry ({e}); fix or delete that line",
                    path.display(),
                    i + 1
                )
            })
        })
        .collect()
}

/// The floor and a description of a `markov_lm` task; `None` for another.
fn language_model(
    config: &ExperimentConfig,
) -> anyhow::Result<Option<figs::report::LanguageModel>> {
    let Some(chains) = crate::task::markov_chains(config)? else {
        return Ok(None);
    };
    let floor = chains.finetune.optimum(config.model.seq_len);
    Ok(Some(figs::report::LanguageModel {
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
        floor_perplexity: floor.perplexity(),
        floor_accuracy: floor.accuracy,
    }))
}

/// What [`write_report`] produced.
#[derive(Debug, Clone)]
pub struct ReportOutput {
    pub report: PathBuf,
    pub figures: Vec<PathBuf>,
    pub trials: usize,
}

/// Draws every figure of the experiment in `out` and writes `out/REPORT.md`;
/// `compare` is another experiment directory whose best accuracies the
/// report sets beside these (the seed notebook beside the default study).
pub fn write_report(
    config: &ExperimentConfig,
    out: &Path,
    compare: Option<&Path>,
) -> anyhow::Result<ReportOutput> {
    // trials.jsonl and any shard files not merged yet.
    let gathered = crate::shard::gather(out)?;
    for w in &gathered.warnings {
        eprintln!("warning: {w}");
    }
    let trials = gathered.trials;
    let Some(provenance) = trials.last().map(|t| t.provenance.clone()) else {
        anyhow::bail!(
            "{} holds no trial records: run `lrscape run --config <file> --out {}` first",
            out.join("trials.jsonl").display(),
            out.display()
        );
    };
    let foreign = trials
        .iter()
        .filter(|t| t.experiment != config.name)
        .count();
    if foreign > 0 {
        eprintln!(
            "warning: {foreign} of {} records in {} name another experiment than {:?}",
            trials.len(),
            out.display(),
            config.name
        );
    }
    let options = FigureOptions::new(out.to_path_buf(), config.grid.parity_rank);
    let mut figures = draw_figures(&trials, &options)
        .map_err(|e| anyhow::anyhow!("cannot draw the figures of {}: {e}", out.display()))?;
    let language_model = language_model(config)?;
    if language_model.is_some() {
        figures.extend(
            figs::draw_perplexity(&trials, &options)
                .map_err(|e| anyhow::anyhow!("cannot draw the perplexity figures: {e}"))?,
        );
    }
    // λmax per cell (`lrscape sharpness`) beside the best LRs, when measured.
    // The seed means the report's own tables use.
    let curves = figs::curves_of(&trials, config.metric());
    let sharpness = match crate::sharpness::read_sharpness(out)? {
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
    let sharpness_after = crate::sharpness::read_sharpness_after(out)?
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
            let other = crate::shard::gather(dir)?;
            for w in &other.warnings {
                eprintln!("warning: {w}");
            }
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
    let input = ReportInput {
        experiment: config.name.clone(),
        description: config.description.clone(),
        config_hash: config.results_hash(),
        config_toml: toml::to_string(config).unwrap_or_default(),
        git_revision: provenance.git_revision,
        backend: provenance.backend,
        device: provenance.device,
        wall_seconds: log.iter().map(|e| e.seconds).sum(),
        trials,
        figures: relative,
        comparison,
        sharpness,
        sharpness_after,
        language_model,
    };
    let report = out.join("REPORT.md");
    write_atomic(&report, &figs::report::render(&input))?;
    Ok(ReportOutput {
        report,
        figures,
        trials: n_trials,
    })
}
