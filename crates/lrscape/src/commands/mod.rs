//! One module per subcommand; [`run`] dispatches.

mod bench;
mod eval;
mod merge;
mod params;
mod pretrain;
mod report;
mod reproduce;
mod run;
mod sharpness;
mod slurm;
mod status;

use std::path::PathBuf;

use crate::families::AnyConfig;

use crate::args::{Command, Common};

pub fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Run {
            common,
            device,
            overrides,
            shard,
        } => run::run(&common, &device.device, &overrides, shard),
        Command::Merge { common, partial } => merge::merge(&common, partial),
        Command::Slurm(args) => slurm::slurm(args),
        Command::Params {
            config,
            methods,
            ranks,
            targets,
        } => params::params(
            config.as_deref(),
            methods.as_deref(),
            ranks.as_deref(),
            targets.as_deref(),
        ),
        Command::Eval {
            model,
            adapter,
            text,
            block_size,
            data,
            instructions,
            prompt_template,
            max_new_tokens,
            max_length,
            text_column,
            label_column,
            csv_layout,
            device,
        } => {
            let scored = match (text, block_size, data, instructions, max_length) {
                (Some(text), Some(block_size), ..) => eval::Scored::Text { text, block_size },
                (_, _, Some(data), _, Some(max_length)) => eval::Scored::Labelled {
                    data,
                    max_length,
                    columns: sweep::eval::Columns {
                        text: text_column,
                        label: label_column,
                        csv: csv_layout,
                    },
                },
                (_, _, _, Some(file), Some(max_length)) => eval::Scored::Instructions {
                    file,
                    max_length,
                    prompt_template,
                    max_new_tokens,
                },
                _ => unreachable!(
                    "clap requires --text/--block-size, --data/--max-length or \
                     --instructions/--max-length"
                ),
            };
            eval::eval(&model, adapter.as_deref(), &scored, &device.device)
        }
        Command::Report { common, compare } => report::report(&common, compare.as_deref()),
        Command::Status { common } => status::status(&common),
        Command::Pretrain {
            common,
            device,
            pretrain_epochs,
            force,
        } => pretrain::pretrain(&common, &device.device, pretrain_epochs, force),
        Command::Sharpness(args) => sharpness::sharpness(args),
        Command::Reproduce(args) => reproduce::reproduce(&args),
        Command::Bench(args) => bench::bench(args),
    }
}

/// The config `--config` names (the embedded default without one) and the
/// output directory (`results/<name>` without `--out`).
fn load_config(common: &Common) -> anyhow::Result<(AnyConfig, PathBuf)> {
    let config = AnyConfig::load(common.config.as_deref())?;
    let out = common
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("results").join(config.name()));
    Ok((config, out))
}

/// `--config FILE` as a command to type again names it (`<file>` for the
/// embedded default).
fn config_arg(common: &Common) -> String {
    common
        .config
        .as_ref()
        .map_or_else(|| "<file>".into(), |p| p.display().to_string())
}

fn print_warnings(warnings: &[String]) {
    for w in warnings {
        eprintln!("warning: {w}");
    }
}
