//! `lrscape run`: the study of a config, or one shard of it, resumable.

use std::path::PathBuf;

use nn::ModelConfig;
use sweep::ExperimentConfig;
use sweep::layout::Shard;
use sweep::runner::{RunOptions, run_experiment, summary_table};

use crate::args::{Common, Overrides};
use crate::families::with_family;
use crate::progress::Bars;

pub fn run(
    common: &Common,
    device: &str,
    overrides: &Overrides,
    shard: Option<Shard>,
) -> anyhow::Result<()> {
    let (config, out) = super::load_config(common)?;
    with_family!(config, config => run_as(config, out, common, device, overrides, shard))
}

pub(super) fn run_as<M: ModelConfig>(
    mut config: ExperimentConfig<M>,
    out: PathBuf,
    common: &Common,
    device: &str,
    overrides: &Overrides,
    shard: Option<Shard>,
) -> anyhow::Result<()> {
    overrides.apply(&mut config)?;
    let selected = backends::select_device(device)?;
    let plan = sweep::runner::plan(&config, shard)?;
    if let Some(shard) = shard {
        eprintln!(
            "shard {shard}: {} of the grid's {} cells",
            plan.cells.len(),
            plan.grid_cells
        );
    }
    match &common.config {
        Some(path) => eprintln!("config: {}", path.display()),
        None => eprintln!(
            "config: the embedded configs/default.toml (--config FILE runs another); \
             its whole grid takes about 13 min on 2 CPU cores, an ETA follows"
        ),
    }
    eprintln!(
        "{}: {} cells × {} members = {} member-steps on {} -> {}",
        config.name,
        plan.cells.len(),
        plan.members,
        plan.member_steps,
        selected.name,
        out.display()
    );
    let options = RunOptions {
        out: out.clone(),
        device: selected,
        max_populations: None,
        shard,
        config_path: common.config.clone(),
    };
    // A shard's bars only where someone watches (not in a SLURM log).
    let visible = shard.is_none() || std::io::IsTerminal::is_terminal(&std::io::stderr());
    let summary = run_experiment(&config, &options, &Bars::new(visible))?;
    print!("{}", summary_table(&summary.trials));
    println!(
        "{} trials trained, {} already recorded, {:.0}s -> {}",
        summary.trained,
        summary.skipped,
        summary.seconds,
        out.display()
    );
    Ok(())
}
