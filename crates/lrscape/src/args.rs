//! The command line: every subcommand's flags (clap), and the overrides
//! of config values they share.

use std::path::PathBuf;

use bench::TorchDevice;
use clap::{Parser, Subcommand};
use sweep::ExperimentConfig;

#[derive(Parser)]
#[command(
    name = "lrscape",
    version,
    about = "Learning-rate × rank studies of LoRA-family adapters: every learning rate \
             and seed of a cell trains as one population on a shared frozen base.",
    after_help = "Examples:\n  \
        lrscape reproduce                                  the default study, checked against results/default\n  \
        lrscape run --config configs/quick.toml --out runs/quick\n  \
        lrscape status --config configs/quick.toml --out runs/quick\n  \
        lrscape report --config configs/quick.toml --out runs/quick"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// Where a command reads its study: the config and the results directory.
#[derive(clap::Args)]
pub struct Common {
    /// Experiment config (TOML); the embedded configs/default.toml if omitted.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Output directory; results/<experiment name> if omitted.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Where a command computes (only the commands that train or evaluate).
#[derive(Debug, clap::Args)]
pub struct DeviceArg {
    /// Backend and device: flex, ndarray, wgpu[:cpu|:N], vulkan, metal, cuda[:N], tch
    /// (only those compiled in; see `--features`).
    #[arg(long, default_value_t = backends::default_device_name().to_string())]
    pub device: String,
}

/// Command-line overrides of the grid's axes (`run`, `sharpness`).
#[derive(clap::Args, Default)]
pub struct GridOverrides {
    /// Override grid.methods (comma-separated): lora, rslora, loraplus,
    /// init_ab, dora, pissa, milora, olora, lora_ga, gralora, randlora,
    /// loft, full, dora_seed, pissa_seed, milora_seed.
    #[arg(long, value_delimiter = ',')]
    methods: Option<Vec<String>>,
    /// Override grid.ranks (comma-separated); grid.parity_rank becomes the
    /// largest of them unless it is among them.
    #[arg(long, value_delimiter = ',')]
    ranks: Option<Vec<usize>>,
    /// Override grid.seeds (comma-separated; one member per LR and seed).
    #[arg(long, value_delimiter = ',')]
    seeds: Option<Vec<u64>>,
}

impl GridOverrides {
    fn apply(&self, grid: &mut sweep::config::GridConfig) -> anyhow::Result<()> {
        if let Some(methods) = &self.methods {
            grid.methods = parse_methods(methods)?;
        }
        if let Some(ranks) = &self.ranks {
            grid.ranks = ranks.clone();
            if !ranks.contains(&grid.parity_rank)
                && let Some(&largest) = ranks.iter().max()
            {
                grid.parity_rank = largest;
            }
        }
        if let Some(seeds) = &self.seeds {
            grid.seeds = seeds.clone();
        }
        Ok(())
    }

    /// Applies the flags given to `config` and validates the result.
    pub fn apply_to<M: nn::ModelConfig>(
        &self,
        config: &mut ExperimentConfig<M>,
    ) -> anyhow::Result<()> {
        self.apply(&mut config.grid)?;
        validated(config)
    }
}

fn validated<M: nn::ModelConfig>(config: &ExperimentConfig<M>) -> anyhow::Result<()> {
    config
        .validate()
        .map_err(|e| anyhow::anyhow!("after command-line overrides: {e}"))
}

/// Command-line overrides of config values.
#[derive(clap::Args, Default)]
pub struct Overrides {
    #[command(flatten)]
    grid: GridOverrides,
    /// Override finetune.lrs (comma-separated numbers > 0, or paper16).
    #[arg(long, value_delimiter = ',', allow_negative_numbers = true)]
    lrs: Option<Vec<String>>,
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
    /// small populations are faster per member, see docs/benchmarks).
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
    /// Applies the flags given to `config` and validates the result.
    pub fn apply<M: nn::ModelConfig>(
        &self,
        config: &mut ExperimentConfig<M>,
    ) -> anyhow::Result<()> {
        self.grid.apply(&mut config.grid)?;
        if let Some(lrs) = &self.lrs {
            config.finetune.lrs = if lrs.len() == 1 && lrs[0] == "paper16" {
                sweep::config::LrGrid::Named("paper16".into())
            } else {
                sweep::config::LrGrid::List(
                    lrs.iter()
                        .map(|lr| match lr.trim().parse::<f64>() {
                            Ok(value) if value.is_finite() && value > 0.0 => Ok(value),
                            _ => Err(anyhow::anyhow!(
                                "--lrs: {lr:?} is not a learning rate (numbers > 0, \
                                 e.g. 1e-3,3e-4, or paper16)"
                            )),
                        })
                        .collect::<anyhow::Result<_>>()?,
                )
            };
        }
        if let Some(epochs) = &self.finetune_epochs {
            config.finetune.epochs = one_or_many(epochs);
        }
        if let Some(sizes) = &self.batch_sizes {
            config.finetune.batch_size = one_or_many(sizes);
        }
        if let Some(epochs) = self.pretrain_epochs {
            match config.pretrain.as_mut() {
                Some(pretrain) => pretrain.epochs = epochs,
                None => anyhow::bail!(
                    "--pretrain-epochs {epochs}: {} pre-trains nothing (its base is the \
                     model's checkpoint)",
                    config.name
                ),
            }
        }
        if let Some(max) = self.max_population {
            config.run.max_population = max;
        }
        if let Some(threads) = self.threads {
            config.run.threads = threads;
        }
        validated(config)
    }
}

#[derive(Subcommand)]
pub enum Command {
    /// Run (or resume) the study of a config: pre-train, sweep, derived files.
    Run {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        device: DeviceArg,
        #[command(flatten)]
        overrides: Overrides,
        /// Run only shard I of N (0-based) of the grid's cells, into
        /// trials.shard-I-of-N.jsonl; the base must be pre-trained already
        /// (`lrscape pretrain`); `lrscape merge` joins the shards.
        #[arg(long, value_name = "I/N")]
        shard: Option<sweep::layout::Shard>,
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
    Slurm(SlurmArgs),
    /// Print trainable / total parameter counts, one JSON line per (method,
    /// rank), of the config's model and grid (or the flags' methods, ranks
    /// and targets).
    Params {
        /// Experiment config (TOML); the embedded configs/default.toml if omitted.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Methods (comma-separated; grid.methods if omitted): lora, rslora,
        /// loraplus, init_ab, dora, pissa, milora, olora, lora_ga, gralora,
        /// randlora, loft, full, dora_seed, pissa_seed, milora_seed.
        #[arg(long, value_delimiter = ',')]
        methods: Option<Vec<String>>,
        /// Ranks (comma-separated; grid.ranks if omitted).
        #[arg(long, value_delimiter = ',')]
        ranks: Option<Vec<usize>>,
        /// Target modules: a preset of the family (tinyformer: qv, attn, all,
        /// all-linear) or one module name; grid.targets if omitted.
        #[arg(long)]
        targets: Option<String>,
    },
    /// Score a Hugging Face checkpoint (and a PEFT adapter) on a text file
    /// (--text, --block-size: blocks of tokens, the mean next-token
    /// cross-entropy; the last line is JSON {"loss", "perplexity", "tokens"})
    /// or, for a sequence classifier, on labelled texts (--data,
    /// --max-length; the last line is JSON {"loss", "accuracy", "examples"}).
    Eval {
        /// A Hugging Face model directory (config.json, model.safetensors,
        /// tokenizer.json) of a family lrscape reads: gpt2
        /// (GPT2LMHeadModel, or GPT2ForSequenceClassification with --data),
        /// llama, qwen2 or qwen3.
        #[arg(long)]
        model: PathBuf,
        /// A PEFT adapter directory (adapter_config.json,
        /// adapter_model.safetensors) to apply to the model.
        #[arg(long)]
        adapter: Option<PathBuf>,
        /// UTF-8 text, tokenized whole without special tokens.
        #[arg(
            long,
            required_unless_present_any = ["data", "instructions"],
            conflicts_with_all = ["data", "instructions"],
            requires = "block_size"
        )]
        text: Option<PathBuf>,
        /// Tokens per block (the remainder of the text is dropped).
        #[arg(long, requires = "text")]
        block_size: Option<usize>,
        /// Labelled texts: JSONL (one object per line) or CSV (a header
        /// row), with the columns --text-column and --label-column.
        #[arg(long, requires = "max_length", conflicts_with = "instructions")]
        data: Option<PathBuf>,
        /// Instructions and responses: JSONL of {"instruction", "input",
        /// "output"} objects, scored on the response tokens (as
        /// task.kind = "instruction").
        #[arg(long, requires = "max_length")]
        instructions: Option<PathBuf>,
        /// With --instructions: the prompt template ({instruction},
        /// {input}); Stanford Alpaca's without it.
        #[arg(long, requires = "instructions")]
        prompt_template: Option<String>,
        /// With --instructions: also score by generation, greedy decoding
        /// of at most this many tokens per prompt; prints "exact_match",
        /// the share whose answer (GSM8K's "#### x", else the last number)
        /// agrees with the output's.
        #[arg(long, requires = "instructions")]
        max_new_tokens: Option<usize>,
        /// Tokens per example: longer texts are cut, shorter ones padded.
        #[arg(long)]
        max_length: Option<usize>,
        #[arg(long, default_value = "text", requires = "data")]
        text_column: String,
        #[arg(long, default_value = "label", requires = "data")]
        label_column: String,
        /// With --data: how a .csv file lays its columns out, "header" (a
        /// header row naming them) or "ag_news" (AG-News's CSVs: no header;
        /// class 1-4, title, description).
        #[arg(long, default_value = "header", requires = "data",
              value_parser = clap::builder::ValueParser::new(
                  |s: &str| s.parse::<sweep::eval::CsvLayout>()))]
        csv_layout: sweep::eval::CsvLayout,
        #[command(flatten)]
        device: DeviceArg,
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
        #[command(flatten)]
        device: DeviceArg,
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
    Sharpness(SharpnessArgs),
    /// The main job: run (or resume) the study of a config into a scratch
    /// directory (runs/<name>), write its report there, and compare it cell
    /// by cell with the committed reference (results/<name>); fails naming
    /// the cells that do not reproduce. Never writes the reference unless
    /// --update-reference.
    Reproduce(ReproduceArgs),
    /// Measure training speed here: member-steps/s of a LoRA cell at several
    /// population sizes, full fine-tuning, both adapter compute modes, GFLOP/s
    /// against a timed GEMM, peak memory per member, and PyTorch eager on the
    /// same step; writes BENCH.md and bench.json.
    Bench(BenchArgs),
}

/// `lrscape reproduce` flags.
#[derive(clap::Args)]
pub struct ReproduceArgs {
    /// Experiment config (TOML); the embedded configs/default.toml if omitted.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Where the run trains (resumable there); runs/<experiment name> if omitted.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// The reference to compare with; results/<experiment name> if omitted.
    #[arg(long)]
    pub reference: Option<PathBuf>,
    /// Make this run the reference: copy its records into --reference and
    /// write the reference's report from them (after the comparison).
    #[arg(long)]
    pub update_reference: bool,
    /// Another experiment directory the report compares best values with.
    #[arg(long)]
    pub compare: Option<PathBuf>,
    #[command(flatten)]
    pub device: DeviceArg,
}

/// `lrscape slurm` flags.
#[derive(clap::Args)]
pub struct SlurmArgs {
    /// Experiment config (TOML).
    #[arg(long)]
    pub config: PathBuf,
    /// Output directory, on a file system every node sees; results/<experiment name> if omitted.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Number of shards (array tasks).
    #[arg(long)]
    pub shards: usize,
    /// Directory for the scripts and job logs; <out>/slurm if omitted.
    #[arg(long)]
    pub scripts: Option<PathBuf>,
    /// SLURM partition (the cluster's default if omitted).
    #[arg(long)]
    pub partition: Option<String>,
    /// GPUs per array task; more than 0 runs on cuda (else flex).
    #[arg(long, default_value_t = 0)]
    pub gpus_per_task: u32,
    /// Time limit per job (SLURM format, e.g. 4:00:00).
    #[arg(long)]
    pub time: Option<String>,
    /// CPU cores per job.
    #[arg(long)]
    pub cpus_per_task: Option<u32>,
    /// Submit the chain with sbatch and print the job ids.
    #[arg(long)]
    pub submit: bool,
}

/// `lrscape sharpness` flags.
#[derive(clap::Args)]
pub struct SharpnessArgs {
    #[command(flatten)]
    pub common: Common,
    #[command(flatten)]
    pub device: DeviceArg,
    #[command(flatten)]
    pub grid: GridOverrides,
    /// Fine-tuning training examples in the one fixed batch (the first N).
    #[arg(long, default_value_t = 256)]
    pub examples: usize,
    /// Most Lanczos iterations (Hessian-vector products) per cell.
    #[arg(long, default_value_t = 100)]
    pub iters: usize,
    /// Relative tolerance on λ between iterations.
    #[arg(long, default_value_t = 1e-3)]
    pub tol: f64,
    /// Finite-difference step relative to the parameter norm: ε = eps·max(‖θ‖, 1).
    #[arg(long, default_value_t = 1e-3)]
    pub eps: f64,
    /// Measure after this many training steps at each cell's best recorded
    /// LR instead of at initialisation (-> sharpness-after-N.json).
    #[arg(long, default_value_t = 0)]
    pub after_steps: usize,
}

/// `lrscape bench` flags.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Experiment config whose model, batch size and LoRA settings are used;
    /// the embedded configs/seed-notebook.toml if omitted.
    #[arg(long)]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub device: DeviceArg,
    /// Timed steps per configuration.
    #[arg(long, default_value_t = 6)]
    pub steps: usize,
    /// Untimed steps before them.
    #[arg(long, default_value_t = 2)]
    pub warmup: usize,
    /// Population sizes of the LoRA cell (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "1,4,16")]
    pub populations: Vec<usize>,
    /// LoRA rank.
    #[arg(long, default_value_t = 16)]
    pub rank: usize,
    /// Also time this many populations of the largest size at once, one per
    /// thread (`lrscape run`'s layout); default: as many as `lrscape run`
    /// trains at once for the config (`[run] threads`, 0 = the core count).
    #[arg(long)]
    pub workers: Option<usize>,
    /// Directory for BENCH.md and bench.json.
    #[arg(long, default_value = "results/bench")]
    pub out: PathBuf,
    /// The PyTorch reference script; default: `tools/bench/torch_step.py`
    /// under the working directory, else in the checkout lrscape was built
    /// from.
    #[arg(long)]
    pub torch_script: Option<PathBuf>,
    /// `torch.set_num_threads` values to time PyTorch at (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "2,1")]
    pub torch_threads: Vec<usize>,
    /// Where PyTorch runs: `cpu` or `cuda`; default `cuda` when `--device`
    /// is a CUDA device, else `cpu`.
    #[arg(long)]
    pub torch_device: Option<TorchDevice>,
    /// Skip the PyTorch reference.
    #[arg(long)]
    pub no_torch: bool,
    /// Run every configuration in this process (no per-configuration
    /// peak memory: the high-water mark is shared).
    #[arg(long)]
    pub in_process: bool,
    /// Instead of the tinyformer bench: peak memory per member of LoRA
    /// (rank --rank, every block linear) at --populations, and of full
    /// fine-tuning, on a GPT-2-124M-shaped model with random weights ->
    /// MEMORY-gpt2.md, memory-gpt2.json.
    #[arg(long, conflicts_with = "qwen3_memory")]
    pub gpt2_memory: bool,
    /// The same on a Qwen3-0.6B-shaped model (llama family, random
    /// weights): LoRA on q_proj/v_proj (PEFT's default) and on every
    /// linear, and full fine-tuning; no PyTorch reference -> MEMORY-qwen3.md,
    /// memory-qwen3.json.
    #[arg(long)]
    pub qwen3_memory: bool,
    /// Internal: measure one configuration (JSON) and print its result.
    #[arg(long, hide = true)]
    pub child: Option<String>,
    /// Internal: measure one --gpt2-memory or --qwen3-memory configuration
    /// (JSON).
    #[arg(long, hide = true)]
    pub memory_child: Option<String>,
}

/// Parses `--methods` names, naming the bad one and the allowed ones.
pub fn parse_methods(names: &[String]) -> anyhow::Result<Vec<peft::Method>> {
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
