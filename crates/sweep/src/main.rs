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
    /// Override finetune.epochs (several, comma-separated: an axis).
    #[arg(long, value_delimiter = ',')]
    finetune_epochs: Option<Vec<usize>>,
    /// Override finetune.batch_size (several, comma-separated: an axis).
    #[arg(long, value_delimiter = ',')]
    batch_sizes: Option<Vec<usize>>,
    /// Override pretrain.epochs.
    #[arg(long)]
    pretrain_epochs: Option<usize>,
    /// Override run.max_population (an execution setting: on CPU backends
    /// small populations are faster per member, see README "Benchmarks").
    #[arg(long)]
    max_population: Option<usize>,
    /// Override run.threads: populations trained side by side (0: one per
    /// core on a CPU backend, one on a GPU).
    #[arg(long)]
    threads: Option<usize>,
}

/// A single value stays one value (records and labels as before); several
/// make an axis.
fn one_or_many(values: &[usize]) -> sweep::config::OneOrMany<usize> {
    match values {
        [one] => sweep::config::OneOrMany::One(*one),
        many => sweep::config::OneOrMany::Many(many.to_vec()),
    }
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
        if let Some(epochs) = &self.finetune_epochs {
            config.finetune.epochs = one_or_many(epochs);
        }
        if let Some(sizes) = &self.batch_sizes {
            config.finetune.batch_size = one_or_many(sizes);
        }
        if let Some(epochs) = self.pretrain_epochs {
            config.pretrain.epochs = epochs;
        }
        if let Some(max) = self.max_population {
            config.run.max_population = max;
        }
        if let Some(threads) = self.threads {
            config.run.threads = threads;
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
        /// Run only shard I of N (0-based) of the grid's cells, into
        /// trials.shard-I-of-N.jsonl; the base must be pre-trained already
        /// (`lrscape pretrain`); `lrscape merge` joins the shards.
        #[arg(long, value_name = "I/N")]
        shard: Option<sweep::shard::Shard>,
    },
    /// Merge trials.jsonl and every shard's records (trials.shard-I-of-N.jsonl)
    /// into trials.jsonl and rewrite the derived files; says which cells are
    /// still missing, per shard.
    Merge {
        #[command(flatten)]
        common: Common,
        /// Succeed even when cells are missing (merge what is there so far).
        #[arg(long)]
        partial: bool,
    },
    /// Write (and with --submit, submit) SLURM batch scripts running the
    /// study as a job array of N shards: pretrain -> shards -> merge + report.
    Slurm {
        /// Experiment config (TOML).
        #[arg(long)]
        config: PathBuf,
        /// Output directory, on a file system every node sees; results/<experiment name> if omitted.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Number of shards (array tasks).
        #[arg(long)]
        shards: usize,
        /// Directory for the scripts and job logs; <out>/slurm if omitted.
        #[arg(long)]
        scripts: Option<PathBuf>,
        /// SLURM partition (the cluster's default if omitted).
        #[arg(long)]
        partition: Option<String>,
        /// GPUs per array task; more than 0 runs on cuda (else flex).
        #[arg(long, default_value_t = 0)]
        gpus_per_task: u32,
        /// Time limit per job (SLURM format, e.g. 4:00:00).
        #[arg(long)]
        time: Option<String>,
        /// CPU cores per job.
        #[arg(long)]
        cpus_per_task: Option<u32>,
        /// Submit the chain with sbatch and print the job ids.
        #[arg(long)]
        submit: bool,
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
    /// λmax of the fine-tuning loss Hessian (w.r.t. the trainable parameters)
    /// at initialisation, per grid cell and seed, on the cached base, by the
    /// Lanczos iteration on finite-difference Hessian-vector products; writes
    /// sharpness.json and, with trials.jsonl there, pairs each cell's λmax
    /// with its best learning rate (correlations and c in best_lr ≈ c/λmax).
    Sharpness {
        #[command(flatten)]
        common: Common,
        /// Override grid.methods (comma-separated).
        #[arg(long, value_delimiter = ',')]
        methods: Option<Vec<String>>,
        /// Override grid.ranks.
        #[arg(long, value_delimiter = ',')]
        ranks: Option<Vec<usize>>,
        /// Override grid.seeds (each seed's adapter init is one member).
        #[arg(long, value_delimiter = ',')]
        seeds: Option<Vec<u64>>,
        /// Fine-tuning training examples in the one fixed batch (the first N).
        #[arg(long, default_value_t = 256)]
        examples: usize,
        /// Most Lanczos iterations (Hessian-vector products) per cell.
        #[arg(long, default_value_t = 100)]
        iters: usize,
        /// Relative tolerance on λ between iterations.
        #[arg(long, default_value_t = 1e-3)]
        tol: f64,
        /// Finite-difference step relative to the parameter norm: ε = eps·max(‖θ‖, 1).
        #[arg(long, default_value_t = 1e-3)]
        eps: f64,
        /// Measure after this many training steps at each cell's best recorded
        /// LR instead of at initialisation (-> sharpness-after-N.json).
        #[arg(long, default_value_t = 0)]
        after_steps: usize,
    },
    /// Measure training speed here: member-steps/s of a LoRA cell at several
    /// population sizes, full fine-tuning, both adapter compute modes, GFLOP/s
    /// against a timed GEMM, peak memory per member, and PyTorch eager on the
    /// same step; writes BENCH.md and bench.json.
    Bench(sweep::bench::BenchArgs),
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
        Command::Bench(args) => sweep::bench::command(args),
        Command::Status { common } => {
            let (config, out) = load_config(&common)?;
            // trials.jsonl and the shards' files, read only (safe while jobs run).
            let gathered = sweep::shard::gather(&out)?;
            for w in &gathered.warnings {
                eprintln!("warning: {w}");
            }
            print!("{}", sweep::runner::status_table(&config, &gathered.trials));
            let shards = sweep::shard::shard_status(&config, &out, &gathered.trials)?;
            if !shards.is_empty() {
                print!("\n{shards}");
            }
            Ok(())
        }
        Command::Merge { common, partial } => {
            let (config, out) = load_config(&common)?;
            let merged = sweep::shard::merge(&config, &out)?;
            for w in &merged.warnings {
                eprintln!("warning: {w}");
            }
            for (path, n) in &merged.files {
                println!("{n:>6} records in {}", path.display());
            }
            println!(
                "merged {} trials ({} duplicates dropped) -> {}",
                merged.trials,
                merged.duplicates,
                out.join("trials.jsonl").display()
            );
            if merged.missing.is_empty() {
                println!("every cell of the grid is complete");
                return Ok(());
            }
            let config_arg = common
                .config
                .as_ref()
                .map_or_else(|| "<file>".into(), |p| p.display().to_string());
            print!(
                "{}",
                sweep::shard::missing_report(&merged.missing).replace(
                    "`lrscape run --shard",
                    &format!(
                        "`lrscape run --config {config_arg} --out {} --shard",
                        out.display()
                    )
                )
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
        Command::Slurm {
            config,
            out,
            shards,
            scripts,
            partition,
            gpus_per_task,
            time,
            cpus_per_task,
            submit,
        } => {
            let loaded = ExperimentConfig::from_toml_file(&config)?;
            let config = std::fs::canonicalize(&config)
                .map_err(|e| anyhow::anyhow!("--config {}: {e}", config.display()))?;
            let out = out.unwrap_or_else(|| PathBuf::from("results").join(&loaded.name));
            std::fs::create_dir_all(&out)
                .map_err(|e| anyhow::anyhow!("--out {}: cannot create it ({e})", out.display()))?;
            let out = std::fs::canonicalize(&out)
                .map_err(|e| anyhow::anyhow!("--out {}: {e}", out.display()))?;
            let scripts = match scripts {
                Some(dir) => std::path::absolute(&dir)
                    .map_err(|e| anyhow::anyhow!("--scripts {}: {e}", dir.display()))?,
                None => out.join("slurm"),
            };
            let options = sweep::slurm::SlurmOptions {
                exe: std::env::current_exe()
                    .map_err(|e| anyhow::anyhow!("cannot find the lrscape binary's path: {e}"))?,
                config,
                out,
                scripts,
                shards,
                partition,
                gpus_per_task,
                time,
                cpus_per_task,
            };
            let written = sweep::slurm::write_scripts(&options, &loaded)?;
            if loaded.run.threads == 0 {
                eprintln!(
                    "note: run.threads = 0, so each task splits populations by its node's core \
                     count; set run.threads for results bit-identical to a single-process run \
                     with the same value"
                );
            }
            println!("wrote {}", written.dir.display());
            for path in [
                &written.pretrain,
                &written.shards,
                &written.merge,
                &written.submit,
            ] {
                println!("  {}", path.display());
            }
            if submit {
                let ids = sweep::slurm::submit(&written)?;
                println!("pretrain {}", ids.pretrain);
                println!("shards {}", ids.shards);
                println!("merge {}", ids.merge);
            } else {
                println!("submit with {}", written.submit.display());
            }
            Ok(())
        }
        Command::Sharpness {
            common,
            methods,
            ranks,
            seeds,
            examples,
            iters,
            tol,
            eps,
            after_steps,
        } => {
            let (mut config, out) = load_config(&common)?;
            if let Some(methods) = &methods {
                config.grid.methods = parse_methods(methods)?;
            }
            if let Some(ranks) = ranks {
                config.grid.ranks = ranks;
            }
            if let Some(seeds) = seeds {
                config.grid.seeds = seeds;
            }
            config
                .validate()
                .map_err(|e| anyhow::anyhow!("after command-line overrides: {e}"))?;
            if iters == 0 {
                anyhow::bail!("--iters 0: at least 1 iteration");
            }
            if !(tol.is_finite() && tol > 0.0 && tol < 1.0) {
                anyhow::bail!("--tol {tol}: a relative tolerance in (0, 1), e.g. 1e-3");
            }
            if !(eps.is_finite() && eps > 0.0 && eps < 1.0) {
                anyhow::bail!("--eps {eps}: a relative step in (0, 1), e.g. 1e-3");
            }
            let selected = device::select_device(&common.device)?;
            eprintln!(
                "{}: λmax of {} cells × {} seeds on {} examples, up to {iters} iterations, on {} -> {}",
                config.name,
                config.cells().len(),
                config.grid.seeds.len(),
                examples,
                selected.name,
                out.join(sweep::sharpness::sharpness_file_name(after_steps))
                    .display()
            );
            let options = sweep::sharpness::SharpnessOptions {
                out: out.clone(),
                device: selected,
                examples,
                power: sweep::sharpness::PowerOptions {
                    max_iters: iters,
                    tol,
                    eps_rel: eps,
                    seed: 0,
                },
                after_steps,
                config_path: common.config.clone(),
            };
            let file = sweep::sharpness::measure_grid(&config, &options)?;
            let gathered = sweep::shard::gather(&out)?;
            for w in &gathered.warnings {
                eprintln!("warning: {w}");
            }
            if gathered.trials.is_empty() {
                println!(
                    "no trials in {}: λmax only (run `lrscape run` for the best LRs)",
                    out.display()
                );
            } else {
                print!(
                    "{}",
                    sweep::sharpness::sharpness_table(&file, &gathered.trials, config.metric())
                );
            }
            println!(
                "{} measurements in {:.0}s -> {}",
                file.entries.len(),
                file.seconds,
                out.join(sweep::sharpness::sharpness_file_name(after_steps))
                    .display()
            );
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
        Command::Run {
            common,
            overrides,
            shard,
        } => {
            let (mut config, out) = load_config(&common)?;
            overrides.apply(&mut config)?;
            let selected = device::select_device(&common.device)?;
            let all_cells = config.cells();
            let members = config.finetune.lrs.values()?.len() * config.grid.seeds.len();
            let n_train = config.task.n_finetune_train;
            let chosen: Vec<&sweep::config::Cell> = match shard {
                Some(shard) => {
                    let own: Vec<_> = sweep::shard::shard_cells(&config, shard)
                        .into_iter()
                        .filter_map(|i| all_cells.get(i))
                        .collect();
                    eprintln!(
                        "shard {shard}: {} of the grid's {} cells",
                        own.len(),
                        all_cells.len()
                    );
                    own
                }
                None => all_cells.iter().collect(),
            };
            let member_steps: usize = chosen.iter().map(|c| members * c.steps(n_train)).sum();
            eprintln!(
                "{}: {} cells × {members} members = {member_steps} member-steps on {} -> {}",
                config.name,
                chosen.len(),
                selected.name,
                out.display()
            );
            let options = sweep::runner::RunOptions {
                out: out.clone(),
                device: selected,
                max_chunks: None,
                progress: shard.is_none() || std::io::IsTerminal::is_terminal(&std::io::stderr()),
                shard,
                config_path: common.config.clone(),
            };
            let summary = sweep::runner::run_experiment(&config, &options)?;
            let (store, _) = sweep::store::TrialStore::open(&options.records_path())?;
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
            if let Some(floor) = sweep::task::optimum(&config, sweep::task::Phase::Pretrain)? {
                println!(
                    "  perplexity {:.4}; the pre-training chain's own predictions reach {:.4}",
                    record.val_loss.exp(),
                    floor.perplexity()
                );
            }
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    keep_freed_memory();
    sweep::pool::flush_subnormals();
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
