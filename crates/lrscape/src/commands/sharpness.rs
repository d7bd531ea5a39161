//! `lrscape sharpness`: λmax of the fine-tuning loss Hessian per grid cell.

use std::path::PathBuf;

use nn::ModelConfig;
use sharpness::{PowerOptions, SharpnessOptions, measure_grid, sharpness_table};

use crate::args::SharpnessArgs;
use crate::families::with_family;
use crate::progress::Bars;
use sweep::ExperimentConfig;

pub fn sharpness(flags: SharpnessArgs) -> anyhow::Result<()> {
    let (config, out) = super::load_config(&flags.common)?;
    with_family!(config, config => sharpness_as(config, out, &flags))
}

fn sharpness_as<M: ModelConfig>(
    mut config: ExperimentConfig<M>,
    out: PathBuf,
    flags: &SharpnessArgs,
) -> anyhow::Result<()> {
    flags.grid.apply_to(&mut config)?;
    let power = PowerOptions {
        max_iters: flags.iters,
        tol: flags.tol,
        eps_rel: flags.eps,
        seed: 0,
    };
    power.validate()?;
    let selected = backends::select_device(&flags.device.device)?;
    let file_name = sweep::layout::sharpness_file(flags.after_steps);
    eprintln!(
        "{}: λmax of {} cells × {} seeds on {} examples, up to {} iterations, on {} -> {}",
        config.name,
        config.cells().len(),
        config.grid.seeds.len(),
        flags.examples,
        flags.iters,
        selected.name,
        out.join(&file_name).display()
    );
    let options = SharpnessOptions {
        out: out.clone(),
        device: selected,
        examples: flags.examples,
        power,
        after_steps: flags.after_steps,
        config_path: flags.common.config.clone(),
    };
    let file = measure_grid(&config, &options, &Bars::new(false))?;
    let gathered = sweep::store::gather(&out)?;
    super::print_warnings(&gathered.warnings);
    if gathered.trials.is_empty() {
        println!(
            "no trials in {}: λmax only (run `lrscape run` for the best LRs)",
            out.display()
        );
    } else {
        print!(
            "{}",
            sharpness_table(&file, &gathered.trials, config.metric())
        );
    }
    println!(
        "{} measurements in {:.0}s -> {}",
        file.entries.len(),
        file.seconds,
        out.join(&file_name).display()
    );
    Ok(())
}
