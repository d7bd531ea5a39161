//! `lrscape merge`: the shards' records into `trials.jsonl`, the derived
//! files rewritten, and the cells still missing named per shard.

use std::path::Path;

use nn::ModelConfig;
use sweep::ExperimentConfig;

use crate::args::Common;
use crate::families::with_family;

pub fn merge(common: &Common, partial: bool) -> anyhow::Result<()> {
    let (config, out) = super::load_config(common)?;
    with_family!(config, config => merge_as(&config, &out, common, partial))
}

fn merge_as<M: ModelConfig>(
    config: &ExperimentConfig<M>,
    out: &Path,
    common: &Common,
    partial: bool,
) -> anyhow::Result<()> {
    let merged = sweep::shard::merge(config, out)?;
    super::print_warnings(&merged.warnings);
    for (path, n) in &merged.files {
        println!("{n:>6} records in {}", path.display());
    }
    println!(
        "merged {} trials ({} duplicates dropped) -> {}",
        merged.trials,
        merged.duplicates,
        out.join(sweep::layout::TRIALS).display()
    );
    if merged.missing.is_empty() {
        println!("every cell of the grid is complete");
        return Ok(());
    }
    let command = format!(
        "lrscape run --config {} --out {}",
        super::config_arg(common),
        out.display()
    );
    print!(
        "{}",
        sweep::shard::missing_report(&merged.missing, &command)
    );
    if partial {
        Ok(())
    } else {
        anyhow::bail!(
            "{} cell(s) still missing (listed above); the merged files hold what is \
             recorded so far (--partial accepts that)",
            merged.missing.len()
        )
    }
}
