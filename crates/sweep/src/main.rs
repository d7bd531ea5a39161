//! `lrscape`: learning-rate × rank studies of LoRA-family adapters.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Training allocates and frees many multi-megabyte activations per step.
/// glibc serves each from a fresh mmap and unmaps it on free, which cost a
/// quarter of the wall time (page faults) on the seed model; keep them in
/// the heap instead. (mimalloc, tried as well, was slower here.)
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tuning parameters; it is called
    // once at start-up, before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_MAX, 0);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
    }
}
use indicatif::{ProgressBar, ProgressStyle};
use sweep::{ExperimentConfig, device};

#[derive(Parser)]
#[command(name = "lrscape", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args)]
struct Common {
    /// Experiment config (TOML); the embedded configs/default.toml if omitted.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Output directory; results/<experiment name> if omitted.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Backend and device: flex, ndarray, wgpu[:cpu|:N], vulkan, metal, cuda[:N], tch
    /// (only those compiled in; see `--features`).
    #[arg(long, default_value_t = device::default_device_name().to_string())]
    device: String,
}

/// Command-line overrides of config values.
#[derive(clap::Args)]
struct Overrides {
    /// Override grid.methods (comma-separated).
    #[arg(long, value_delimiter = ',')]
    methods: Option<Vec<String>>,
    /// Override grid.ranks.
    #[arg(long, value_delimiter = ',')]
    ranks: Option<Vec<usize>>,
    /// Override finetune.lrs (comma-separated numbers, or paper16).
    #[arg(long, value_delimiter = ',')]
    lrs: Option<Vec<String>>,
    /// Override grid.seeds.
    #[arg(long, value_delimiter = ',')]
    seeds: Option<Vec<u64>>,
    /// Override finetune.epochs.
    #[arg(long)]
    finetune_epochs: Option<usize>,
    /// Override pretrain.epochs.
    #[arg(long)]
    pretrain_epochs: Option<usize>,
}

impl Overrides {
    fn apply(&self, config: &mut ExperimentConfig) -> anyhow::Result<()> {
        if let Some(methods) = &self.methods {
            config.grid.methods = parse_methods(methods)?;
        }
        if let Some(ranks) = &self.ranks {
            config.grid.ranks = ranks.clone();
        }
        if let Some(lrs) = &self.lrs {
            config.finetune.lrs = if lrs.len() == 1 && lrs[0] == "paper16" {
                sweep::config::LrGrid::Named("paper16".into())
            } else {
                sweep::config::LrGrid::List(
                    lrs.iter()
                        .map(|lr| {
                            lr.trim().parse::<f64>().map_err(|_| {
                                anyhow::anyhow!(
                                    "--lrs: {lr:?} is not a number (give e.g. 1e-3,3e-4 or paper16)"
                                )
                            })
                        })
                        .collect::<anyhow::Result<_>>()?,
                )
            };
        }
        if let Some(seeds) = &self.seeds {
            config.grid.seeds = seeds.clone();
        }
        if let Some(epochs) = self.finetune_epochs {
            config.finetune.epochs = epochs;
        }
        if let Some(epochs) = self.pretrain_epochs {
            config.pretrain.epochs = epochs;
        }
        config
            .validate()
            .map_err(|e| anyhow::anyhow!("after command-line overrides: {e}"))
    }
}

#[derive(Subcommand)]
enum Command {
    /// Run (or resume) the study of a config: pre-train, sweep, derived files.
    Run {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        overrides: Overrides,
    },
    /// Print trainable / total parameter counts, one JSON line per (method, rank).
    Params {
        #[command(flatten)]
        common: Common,
        /// Methods (lora, rslora, init_ab, dora, pissa, milora, full, dora_seed, pissa_seed, milora_seed).
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "lora,dora,pissa,milora,full"
        )]
        methods: Vec<String>,
        /// Ranks.
        #[arg(long, value_delimiter = ',', default_value = "2,4,8,16,32")]
        ranks: Vec<usize>,
        /// Target modules: a preset (qv, attn, all) or one module name.
        #[arg(long, default_value = "all")]
        targets: String,
    },
    /// Draw the figures and write REPORT.md of an experiment from its records.
    Report {
        #[command(flatten)]
        common: Common,
        /// Another experiment directory to compare best accuracies with
        /// (e.g. results/default beside the seed notebook).
        #[arg(long)]
        compare: Option<PathBuf>,
    },
    /// Show how far an experiment is, from its records alone.
    Status {
        #[command(flatten)]
        common: Common,
    },
    /// Pre-train the base model of an experiment and cache it by config hash.
    Pretrain {
        #[command(flatten)]
        common: Common,
        /// Override pretrain.epochs.
        #[arg(long)]
        pretrain_epochs: Option<usize>,
        /// Train again even if a base for this config exists.
        #[arg(long)]
        force: bool,
    },
}

fn load_config(common: &Common) -> anyhow::Result<(ExperimentConfig, PathBuf)> {
    let config = match &common.config {
        Some(path) => ExperimentConfig::from_toml_file(path)?,
        None => ExperimentConfig::embedded_default(),
    };
    let out = common
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("results").join(&config.name));
    Ok((config, out))
}

fn bar(label: &str) -> ProgressBar {
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(
            "{prefix:>10} [{bar:32}] {pos}/{len} steps {per_sec} eta {eta}",
        )
        .expect("static template")
        .progress_chars("=> "),
    );
    bar.set_prefix(label.to_string());
    bar
}

/// Parses `--methods` names, naming the bad one and the allowed ones.
fn parse_methods(names: &[String]) -> anyhow::Result<Vec<peft::Method>> {
    names
        .iter()
        .map(|name| {
            peft::Method::ALL
                .into_iter()
                .find(|m| m.name() == name.trim())
                .ok_or_else(|| {
                    let allowed: Vec<&str> = peft::Method::ALL.iter().map(|m| m.name()).collect();
                    anyhow::anyhow!(
                        "--methods: unknown method {name:?}; one of {}",
                        allowed.join(", ")
                    )
                })
        })
        .collect()
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Status { common } => {
            let (config, out) = load_config(&common)?;
            let (trials, _, warnings) = sweep::store::read_trials(&out.join("trials.jsonl"))?;
            for w in warnings {
                eprintln!("warning: {w}");
            }
            print!("{}", sweep::runner::status_table(&config, &trials));
            Ok(())
        }
        Command::Report { common, compare } => {
            let (config, out) = load_config(&common)?;
            let written = sweep::report::write_report(&config, &out, compare.as_deref())?;
            println!(
                "{} figures and {} from {} trials",
                written.figures.len(),
                written.report.display(),
                written.trials
            );
            Ok(())
        }
        Command::Run { common, overrides } => {
            let (mut config, out) = load_config(&common)?;
            overrides.apply(&mut config)?;
            let selected = device::select_device(&common.device)?;
            let cells = config.cells().len();
            let members = config.finetune.lrs.values()?.len() * config.grid.seeds.len();
            let steps = config.finetune.epochs
                * config
                    .task
                    .n_finetune_train
                    .div_ceil(config.finetune.batch_size);
            eprintln!(
                "{}: {cells} cells × {members} members × {steps} steps = {} member-steps on {} -> {}",
                config.name,
                cells * members * steps,
                selected.name,
                out.display()
            );
            let options = sweep::runner::RunOptions {
                out: out.clone(),
                device: selected,
                max_chunks: None,
                progress: true,
            };
            let summary = sweep::runner::run_experiment(&config, &options)?;
            let (store, _) = sweep::store::TrialStore::open(&out.join("trials.jsonl"))?;
            print!("{}", sweep::runner::summary_table(store.trials()));
            println!(
                "{} trials trained, {} already recorded, {:.0}s -> {}",
                summary.trained,
                summary.skipped,
                summary.seconds,
                out.display()
            );
            Ok(())
        }
        Command::Params {
            common,
            methods,
            ranks,
            targets,
        } => {
            let (config, _) = load_config(&common)?;
            let methods = parse_methods(&methods)?;
            if ranks.is_empty() || ranks.contains(&0) {
                anyhow::bail!("--ranks {ranks:?}: ranks must be at least 1");
            }
            let selected = device::select_device(&common.device)?;
            let counts = sweep::params::param_counts(
                &config.model,
                &methods,
                &ranks,
                &targets,
                &selected.device,
            )?;
            for count in counts {
                println!("{}", serde_json::to_string(&count)?);
            }
            Ok(())
        }
        Command::Pretrain {
            common,
            pretrain_epochs,
            force,
        } => {
            let (mut config, out) = load_config(&common)?;
            if let Some(epochs) = pretrain_epochs {
                config.pretrain.epochs = epochs;
                config
                    .validate()
                    .map_err(|e| anyhow::anyhow!("--pretrain-epochs: {e}"))?;
            }
            let selected = device::select_device(&common.device)?;
            let dir = sweep::pretrain::base_dir(&out, &config);
            if !force && dir.join("base.json").exists() {
                let (_, record) = sweep::pretrain::load_base(&config, &out, &selected.device)?;
                println!(
                    "base for {} already at {} (val_acc {:.4}); --force retrains",
                    config.name,
                    dir.display(),
                    record.val_accuracy
                );
                return Ok(());
            }
            eprintln!(
                "pre-training {} on {} ({} epochs, {} examples) -> {}",
                config.name,
                selected.name,
                config.pretrain.epochs,
                config.task.n_pretrain_train,
                dir.display()
            );
            let progress = bar("pretrain");
            let (_, record) = sweep::pretrain::pretrain(&config, &out, &selected, &progress)?;
            progress.finish_and_clear();
            println!(
                "pretrained {}: val_acc {:.4}, val_loss {:.4}, {} steps in {:.1}s on {}{} -> {}",
                config.name,
                record.val_accuracy,
                record.val_loss,
                record.steps,
                record.seconds,
                record.provenance.backend,
                if record.diverged { " (DIVERGED)" } else { "" },
                dir.display()
            );
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    keep_freed_memory();
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
