//! `lrscape reproduce`: the study into a scratch directory, its report, and
//! a verdict against the committed reference.

use std::path::{Path, PathBuf};

use nn::ModelConfig;
use records::verify::{Tolerance, render, verify};
use sweep::ExperimentConfig;

use crate::args::{Common, Overrides, ReproduceArgs};
use crate::families::{AnyConfig, with_family};

/// What a reference is made of: the records and the log of the runs that
/// made them (everything else is derived from them by `report`).
const REFERENCE_FILES: [&str; 2] = [sweep::layout::TRIALS, sweep::layout::RUN_LOG];

pub fn reproduce(args: &ReproduceArgs) -> anyhow::Result<()> {
    let config = AnyConfig::load(args.config.as_deref())?;
    let name = config.name().to_string();
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("runs").join(&name));
    let reference = args
        .reference
        .clone()
        .unwrap_or_else(|| PathBuf::from("results").join(&name));
    if same_dir(&out, &reference) {
        anyhow::bail!(
            "--out {} is the reference; reproduce trains elsewhere (--update-reference \
             copies the run there afterwards)",
            out.display()
        );
    }
    with_family!(config, config => reproduce_as(config, &out, &reference, args))
}

fn same_dir(a: &Path, b: &Path) -> bool {
    match (std::path::absolute(a), std::path::absolute(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

fn reproduce_as<M: ModelConfig>(
    config: ExperimentConfig<M>,
    out: &Path,
    reference: &Path,
    args: &ReproduceArgs,
) -> anyhow::Result<()> {
    let common = Common {
        config: args.config.clone(),
        out: Some(out.to_path_buf()),
    };
    super::run::run_as(
        config.clone(),
        out.to_path_buf(),
        &common,
        &args.device.device,
        &Overrides::default(),
        None,
    )?;
    let written = report::write_report(&config, out, args.compare.as_deref())?;
    super::print_warnings(&written.warnings);
    println!("report: {}", written.report.display());
    let has_reference = reference.join(sweep::layout::TRIALS).exists();
    let verdict = if has_reference {
        Some(compare(&config, out, reference)?)
    } else {
        println!(
            "no reference at {}: nothing to compare with (--update-reference makes this run \
             the reference)",
            reference.display()
        );
        None
    };
    if args.update_reference {
        update_reference(&config, out, reference, args.compare.as_deref())?;
    }
    match verdict {
        Some(failing) if !failing.is_empty() && args.update_reference => {
            println!(
                "{} cells differed from the reference this run replaced",
                failing.len()
            );
            Ok(())
        }
        Some(failing) if !failing.is_empty() => anyhow::bail!(
            "{} of the reference's cells do not reproduce: {}",
            failing.len(),
            failing.join(", ")
        ),
        _ => Ok(()),
    }
}

/// Prints the verdict of `out` against `reference`; returns the cells that
/// do not reproduce.
fn compare<M: ModelConfig>(
    config: &ExperimentConfig<M>,
    out: &Path,
    reference: &Path,
) -> anyhow::Result<Vec<String>> {
    let run = sweep::store::gather(out)?;
    let refs = sweep::store::gather(reference)?;
    super::print_warnings(&refs.warnings);
    let hash = config.results_hash();
    let other: std::collections::BTreeSet<&str> = refs
        .trials
        .iter()
        .map(|t| t.config_hash.as_str())
        .filter(|h| *h != hash)
        .collect();
    if !other.is_empty() {
        eprintln!(
            "warning: the reference's records were made with another config (hash {}; this \
             config's is {hash}): the comparison is across setups",
            other.into_iter().collect::<Vec<_>>().join(", ")
        );
    }
    let verdict = verify(
        &run.trials,
        &refs.trials,
        config.metric(),
        Tolerance::DEFAULT,
    );
    println!(
        "\n{} against the reference {}:",
        out.display(),
        reference.display()
    );
    print!("{}", render(&verdict));
    Ok(verdict.failing().into_iter().map(String::from).collect())
}

/// Copies the run's records into `reference` and writes its report there.
fn update_reference<M: ModelConfig>(
    config: &ExperimentConfig<M>,
    out: &Path,
    reference: &Path,
    compare: Option<&Path>,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(reference)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", reference.display()))?;
    for file in REFERENCE_FILES {
        let from = out.join(file);
        if from.exists() {
            sweep::store::write_atomic(
                &reference.join(file),
                &std::fs::read_to_string(&from)
                    .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", from.display()))?,
            )?;
        }
    }
    let written = report::write_report(config, reference, compare)?;
    super::print_warnings(&written.warnings);
    println!(
        "reference updated: {} records and {}",
        reference.join(sweep::layout::TRIALS).display(),
        written.report.display()
    );
    Ok(())
}
