//! Experiment configs: TOML, unknown fields rejected, validated once at load.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use nn::ModelConfig;
use peft::{LoraConfig, LoraInit, Method, TargetModules};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The config `cargo xtask reproduce` and `lrscape` use when none is given.
pub const DEFAULT_CONFIG: &str = include_str!("../../../configs/default.toml");

/// More training threads than any machine lrscape runs on has cores.
pub const MAX_THREADS: usize = 1024;

/// The first value of `values` seen before.
fn first_repeat<T: Ord + Clone>(values: impl IntoIterator<Item = T>) -> Option<T> {
    let mut seen = std::collections::BTreeSet::new();
    values.into_iter().find(|v| !seen.insert(v.clone()))
}

/// The family of a `[model]` table without a `family` key (configs from
/// before there were families).
pub const DEFAULT_FAMILY: &str = "tinyformer";

/// One experiment: the task, the model (of family `M`) and how the base is
/// pre-trained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentConfig<M: ModelConfig> {
    /// Names the results directory (`results/<name>/`).
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub task: TaskConfig,
    /// `[model]`: `family` (default [`DEFAULT_FAMILY`]) and the family's
    /// fields.
    #[serde(
        default,
        deserialize_with = "family::model_table",
        serialize_with = "family::serialize_model"
    )]
    pub model: M,
    /// How the base is pre-trained; absent when the model names a
    /// checkpoint, which is the base.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pretrain: Option<PretrainConfig>,
    pub finetune: FinetuneConfig,
    pub grid: GridConfig,
    #[serde(default)]
    pub run: RunConfig,
    /// The directory relative paths (task files, `model.path`) are read
    /// from: the config file's.
    #[serde(skip)]
    pub dir: PathBuf,
}

/// Fine-tuning of every grid cell.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FinetuneConfig {
    /// Epochs over the fine-tuning set; a list is an axis of the grid.
    pub epochs: OneOrMany<usize>,
    /// Examples per step; a list is an axis of the grid.
    pub batch_size: OneOrMany<usize>,
    #[serde(default)]
    pub weight_decay: f64,
    /// `"paper16"` or a list of learning rates.
    pub lrs: LrGrid,
    /// How each member's learning rate moves over its steps, in
    /// `transformers`' words: `"constant"` (the default), `"linear"` or
    /// `"cosine"` decay to 0 at the last step.
    #[serde(default, skip_serializing_if = "is_default")]
    pub lr_scheduler_type: train::LrDecay,
    /// The share of steps warming up linearly from 0 first, in [0, 1)
    /// (`transformers`' `warmup_ratio`; the paper's 0.03).
    #[serde(default, skip_serializing_if = "is_default")]
    pub warmup_ratio: f64,
    /// A step budget: each member stops after this many steps, where its
    /// epochs would run longer, and the schedule ends there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_steps: Option<usize>,
}

fn is_default<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}

impl FinetuneConfig {
    /// The learning-rate schedule of every member.
    pub fn lr_schedule(&self) -> train::LrSchedule {
        train::LrSchedule {
            decay: self.lr_scheduler_type,
            warmup_ratio: self.warmup_ratio,
        }
    }

    /// The first batch size: what single-setting commands (bench) use.
    pub fn first_batch_size(&self) -> usize {
        self.batch_size.first().unwrap_or(64)
    }
}

/// The learning-rate axis.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    untagged,
    expecting = "\"paper16\" or a list of learning rates such as [1e-3, 3e-4]"
)]
pub enum LrGrid {
    /// `paper16`: {1.1247, 2, 3.5566, 6.3246} × {1e-3, 1e-4, 1e-5, 1e-6}
    /// (the paper's and the seed notebook's 16 points, ≈ 4 per decade).
    Named(String),
    List(Vec<f64>),
}

impl LrGrid {
    /// The learning rates, largest first.
    pub fn values(&self) -> Result<Vec<f64>, ConfigError> {
        let mut lrs = match self {
            LrGrid::Named(name) if name == "paper16" => {
                let mut v = Vec::new();
                for decade in [1e-3, 1e-4, 1e-5, 1e-6] {
                    for m in [1.1247, 2.0, 3.5566, 6.3246] {
                        v.push(m * decade);
                    }
                }
                v
            }
            LrGrid::Named(name) => {
                return Err(bad(
                    "finetune.lrs",
                    format!("{name:?}"),
                    "\"paper16\" or a list of learning rates",
                ));
            }
            LrGrid::List(list) => list.clone(),
        };
        if lrs.is_empty() {
            return Err(bad("finetune.lrs", "[]", "at least one learning rate"));
        }
        if let Some(lr) = lrs.iter().find(|lr| !(lr.is_finite() && **lr > 0.0)) {
            return Err(bad("finetune.lrs", lr, "finite learning rates > 0"));
        }
        lrs.sort_by(|a, b| b.total_cmp(a));
        if let Some(pair) = lrs.windows(2).find(|w| w[0] == w[1]) {
            return Err(bad(
                "finetune.lrs",
                format!("{} twice", pair[0]),
                "distinct values",
            ));
        }
        Ok(lrs)
    }
}

/// How `lora_alpha` follows the rank.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[serde(
    tag = "rule",
    rename_all = "snake_case",
    deny_unknown_fields,
    expecting = "a table { rule = \"alpha_eq_r\" }, { rule = \"constant\", alpha = <number> } or { rule = \"rslora\", alpha = <number> }"
)]
pub enum AlphaRule {
    /// α = r, so the scale α/r is 1 (the seed notebook).
    #[default]
    AlphaEqR,
    /// A fixed α: scale α/r shrinks with the rank (HF PEFT's usual setting).
    Constant { alpha: f64 },
    /// A fixed α with rsLoRA's scale α/√r.
    Rslora { alpha: f64 },
}

impl AlphaRule {
    pub fn alpha(self, r: usize) -> f64 {
        match self {
            AlphaRule::AlphaEqR => r as f64,
            AlphaRule::Constant { alpha } | AlphaRule::Rslora { alpha } => alpha,
        }
    }

    /// The spelling in records (`alpha_eq_r`, `constant:32`, `rslora:16`).
    pub fn label(self) -> String {
        match self {
            AlphaRule::AlphaEqR => "alpha_eq_r".into(),
            AlphaRule::Constant { alpha } => format!("constant:{alpha}"),
            AlphaRule::Rslora { alpha } => format!("rslora:{alpha}"),
        }
    }
}

/// One value, or a list of them that becomes an axis of the grid
/// (`alpha = { rule = "alpha_eq_r" }` or `alpha = [{ ... }, { ... }]`;
/// `epochs = 3` or `epochs = [1, 3, 9]`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum OneOrMany<T> {
    One(T),
    Many(Vec<T>),
}

impl<T: Clone> OneOrMany<T> {
    /// The values in config order (possibly empty: `validate` rejects that).
    pub fn values(&self) -> Vec<T> {
        match self {
            OneOrMany::One(v) => vec![v.clone()],
            OneOrMany::Many(list) => list.clone(),
        }
    }

    /// The first value: what a single-setting command (bench, sharpness's
    /// default) uses.
    pub fn first(&self) -> Option<T> {
        self.values().into_iter().next()
    }
}

impl<T: Default> Default for OneOrMany<T> {
    fn default() -> Self {
        OneOrMany::One(T::default())
    }
}

/// A table or a scalar is one value, an array a list; inner errors keep their own
/// message (serde's untagged enums would say only "did not match").
impl<'de, T: Deserialize<'de>> Deserialize<'de> for OneOrMany<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
        struct Visit<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for Visit<T> {
            type Value = OneOrMany<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a value or an array of values")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
                T::deserialize(serde::de::value::I64Deserializer::new(v)).map(OneOrMany::One)
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
                T::deserialize(serde::de::value::U64Deserializer::new(v)).map(OneOrMany::One)
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Self::Value, E> {
                T::deserialize(serde::de::value::F64Deserializer::new(v)).map(OneOrMany::One)
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                T::deserialize(serde::de::value::StrDeserializer::new(v)).map(OneOrMany::One)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                seq: A,
            ) -> Result<Self::Value, A::Error> {
                Vec::<T>::deserialize(SeqAccessDeserializer::new(seq)).map(OneOrMany::Many)
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<Self::Value, A::Error> {
                T::deserialize(MapAccessDeserializer::new(map)).map(OneOrMany::One)
            }
        }
        d.deserialize_any(Visit(std::marker::PhantomData))
    }
}

/// The axes of the study; one cell per (method, alpha rule, init, rank),
/// each cell training every (learning rate, seed) as one population.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GridConfig {
    pub methods: Vec<Method>,
    pub ranks: Vec<usize>,
    /// One alpha rule, or a list: an axis of the grid.
    #[serde(default)]
    pub alpha: OneOrMany<AlphaRule>,
    /// One init of `A`, or a list: an axis of the grid (methods whose
    /// factors come from the SVD, or Init\[AB\]'s own init, ignore it beyond
    /// the first).
    #[serde(default)]
    pub init: OneOrMany<LoraInit>,
    /// LoRA+ (`loraplus`): B's learning rate over A's, one value or a list
    /// (an axis of the grid, each ratio its own cell); PEFT's example's 16
    /// when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loraplus_lr_ratio: Option<OneOrMany<f64>>,
    /// GraLoRA (`gralora`): blocks per side, PEFT's `gralora_k`; 2 when
    /// absent. It must divide the rank and every targeted linear's sizes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gralora_k: Option<usize>,
    /// GraLoRA: the rank of a plain LoRA beside the blocks, PEFT's
    /// `hybrid_r`; 0 when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hybrid_r: Option<usize>,
    /// RandLoRA (`randlora`): its scale is `randlora_alpha / r`; 20 × r when
    /// absent, as PEFT advises.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub randlora_alpha: Option<f64>,
    /// RandLoRA: the seed of the random bases every layer and member
    /// shares, PEFT's `projection_prng_key`; 0 when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub projection_prng_key: Option<u64>,
    /// RandLoRA: ternary bases, PEFT's `sparse`; false when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub randlora_sparse: Option<bool>,
    /// RandLoRA: sparser ternary bases, PEFT's `very_sparse`; false when
    /// absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub randlora_very_sparse: Option<bool>,
    /// LoRA-GA (`lora_ga`): PEFT's `LoraGAConfig` (`direction`, `scale`,
    /// `stable_gamma`) and `batches`, how many fine-tuning batches (in data
    /// seed 0's order) estimate the gradient; PEFT's defaults and 8 batches
    /// when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lora_ga: Option<peft::LoraGaConfig>,
    #[serde(default)]
    pub targets: TargetModules,
    /// Seeds of adapter init and data order; one member per (lr, seed).
    #[serde(default = "default_seeds")]
    pub seeds: Vec<u64>,
    /// Train the output head beside the adapters (the seed notebook's
    /// setting); absent: yes, unless the family's head stays frozen as PEFT
    /// leaves a causal language model's `lm_head` (GPT-2, Llama).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train_head: Option<bool>,
    /// The rank of `lr_sweep_results.json` (the seed notebook's r = 16).
    #[serde(default = "default_parity_rank")]
    pub parity_rank: usize,
}

fn default_seeds() -> Vec<u64> {
    vec![0]
}

fn default_parity_rank() -> usize {
    16
}

/// Execution settings; they do not change results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// Most members trained at once (larger cells are split).
    #[serde(default = "default_max_population")]
    pub max_population: usize,
    /// Populations trained side by side, one per thread (0: one per core;
    /// one on a GPU).
    /// Burn's CPU kernels leave cores idle between their parallel parts, so
    /// two populations on two cores, each on a pool of its own core
    /// (`train::pool`), are faster than one on both (docs/benchmarks).
    #[serde(default)]
    pub threads: usize,
    /// Where adapters compute their low-rank path: `weight_space` (a dense
    /// adapted weight per member: the faster on small models) or
    /// `activation_space` (HF PEFT's form). The function is the same; the
    /// cost and the rounding are not. Absent: [`default_compute`] of the
    /// model.
    #[serde(default)]
    pub adapter_compute: peft::Compute,
    /// Which trained adapters `run` writes in PEFT's format under
    /// `<out>/adapters/`: none, each cell's best learning rate, or all.
    #[serde(default, skip_serializing_if = "SaveAdapters::is_none")]
    pub save_adapters: SaveAdapters,
}

/// `[run] save_adapters`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", expecting = "\"none\", \"best\" or \"all\"")]
pub enum SaveAdapters {
    #[default]
    None,
    /// Each cell's best learning rate, every seed.
    Best,
    All,
}

impl SaveAdapters {
    fn is_none(&self) -> bool {
        *self == SaveAdapters::None
    }
}

impl RunConfig {
    /// `threads`, with 0 resolved to the machine's core count on a CPU
    /// backend and to 1 on a GPU, where one population per cell keeps the
    /// device busy and more only split cells into smaller products.
    pub fn workers(&self, on_gpu: bool) -> usize {
        match self.threads {
            0 if on_gpu => 1,
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }
}

fn default_max_population() -> usize {
    64
}

impl Default for RunConfig {
    fn default() -> Self {
        Self {
            max_population: default_max_population(),
            threads: 0,
            adapter_compute: peft::Compute::default(),
            save_adapters: SaveAdapters::None,
        }
    }
}

/// Models of this many parameters and more compute adapters in activation
/// space by default.
pub const ACTIVATION_SPACE_FROM: f64 = 1e7;

/// The compute mode of a model whose config names none: weight space for
/// the small models it is faster on (tinyformer's studies), activation
/// space from [`ACTIVATION_SPACE_FROM`] parameters, where a dense weight
/// per member costs more memory and time than the two thin products
/// (docs/benchmarks/gpt2-memory.md).
pub fn default_compute(model: &impl ModelConfig) -> peft::Compute {
    if model.parameters() >= ACTIVATION_SPACE_FROM {
        peft::Compute::ActivationSpace
    } else {
        peft::Compute::WeightSpace
    }
}

/// Record spelling of a compute mode (as in `[run] adapter_compute`).
pub fn compute_label(compute: peft::Compute) -> &'static str {
    match compute {
        peft::Compute::WeightSpace => "weight_space",
        peft::Compute::ActivationSpace => "activation_space",
    }
}

/// Record spelling of an init.
pub fn init_label(init: LoraInit) -> String {
    match init {
        LoraInit::KaimingUniform => "kaiming_uniform".into(),
        LoraInit::Gaussian { std } => format!("gaussian:{std}"),
    }
}

/// Record spelling of the target modules.
pub fn targets_label(targets: &TargetModules) -> String {
    match targets {
        TargetModules::Preset(p) => p.clone(),
        TargetModules::List(list) => list.join("+"),
    }
}

/// The synthetic task and its pre-train -> fine-tune shift.
///
/// `kind = "retrieve_at_k"` (the default, the seed's classification): the
/// label is the token at position `k`, and fine-tuning moves `k` from
/// `k_pretrain` to `k_finetune`. `kind = "markov_lm"`: next-token prediction
/// on sequences of a random Markov chain with `branching` successors per
/// token; fine-tuning redraws a fraction `shift` of the chain's rows (needs
/// `model.causal = true`).
///
/// The four splits are drawn from `data_seed + 0..3` (pre-train train / val,
/// fine-tune train / val), as the seed notebook does with its `seed`;
/// `markov_lm`'s chain from `data_seed + 4` and its shift from
/// `data_seed + 5`. Fields a kind does not use are left out of its hashes,
/// so the seed-shaped configs keep theirs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskConfig {
    #[serde(default, skip_serializing_if = "TaskKind::is_retrieval")]
    pub kind: TaskKind,
    /// `retrieve_at_k`: the position the base learns to read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub k_pretrain: Option<usize>,
    /// `retrieve_at_k`: the position fine-tuning must read instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub k_finetune: Option<usize>,
    /// `markov_lm`: successors per token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branching: Option<usize>,
    /// `markov_lm`: fraction of the chain's rows redrawn for fine-tuning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shift: Option<f64>,
    /// `text_lm`: the fine-tuning text, UTF-8 (relative to the config file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train: Option<PathBuf>,
    /// `text_lm`: the validation text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val: Option<PathBuf>,
    /// `text_lm`: tokens per block (each block predicts `block_size - 1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_size: Option<usize>,
    /// `text_lm` on a base pre-trained here: the text the base and its
    /// byte-level BPE learn from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pretrain_train: Option<PathBuf>,
    /// `text_lm` on a base pre-trained here: the base's validation text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pretrain_val: Option<PathBuf>,
    /// `text_classification`: tokens per example (longer texts cut,
    /// shorter ones padded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_length: Option<usize>,
    /// `text_classification`: the column (JSONL key, CSV header) of the
    /// text; `text` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text_column: Option<String>,
    /// `text_classification`: the column of the label (a class number);
    /// `label` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_column: Option<String>,
    /// `text_classification`: how a `.csv` file lays its columns out:
    /// `header` (a header row naming them, when absent) or `ag_news`
    /// (AG-News's CSVs as distributed: no header; class 1-4, title,
    /// description).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub csv_layout: Option<String>,
    /// `instruction`: the prompt made of an example, `{instruction}` and
    /// `{input}` replaced by its fields; Stanford Alpaca's two templates
    /// (with and without an input) when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_template: Option<String>,
    /// `instruction`: examples packed into one stream cut into sequences
    /// of `max_length`, rather than each cut and padded to it (false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub packing: Option<bool>,
    /// `instruction`: score each trial by generation instead of by
    /// perplexity: greedy decoding of at most this many tokens after each
    /// val prompt, its answer (GSM8K's `#### x`, else the last number)
    /// against the output's; the share that agree is the trial's accuracy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_new_tokens: Option<usize>,
    /// Examples of the synthetic tasks' splits (a text task's are its files).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub n_pretrain_train: usize,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub n_pretrain_val: usize,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub n_finetune_train: usize,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub n_finetune_val: usize,
    #[serde(default)]
    pub data_seed: u64,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// Which synthetic task a config trains on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum TaskKind {
    /// Classification: the token at position `k`, read from the last position.
    #[default]
    RetrieveAtK,
    /// Next-token prediction on a Markov chain, every position a target.
    MarkovLm,
    /// Next-token prediction on text files, cut into blocks.
    TextLm,
    /// Labelled texts (JSONL or CSV), one class per text.
    TextClassification,
    /// Instructions and responses (Alpaca JSONL), the loss on the
    /// response tokens.
    Instruction,
}

impl TaskKind {
    fn is_retrieval(&self) -> bool {
        *self == TaskKind::RetrieveAtK
    }

    pub fn name(self) -> &'static str {
        match self {
            TaskKind::RetrieveAtK => "retrieve_at_k",
            TaskKind::MarkovLm => "markov_lm",
            TaskKind::TextLm => "text_lm",
            TaskKind::TextClassification => "text_classification",
            TaskKind::Instruction => "instruction",
        }
    }

    /// A language-modelling task: scored by perplexity, the model causal.
    pub fn is_language_model(self) -> bool {
        matches!(
            self,
            TaskKind::MarkovLm | TaskKind::TextLm | TaskKind::Instruction
        )
    }

    /// A task whose examples lrscape draws (every split sized by
    /// `task.n_*`), rather than one read from files.
    pub fn is_synthetic(self) -> bool {
        !matches!(
            self,
            TaskKind::TextLm | TaskKind::TextClassification | TaskKind::Instruction
        )
    }
}

/// A task's own parameters, checked: what [`TaskConfig::spec`] returns.
#[derive(Debug, Clone, PartialEq)]
pub enum TaskSpec {
    RetrieveAtK {
        k_pretrain: usize,
        k_finetune: usize,
    },
    MarkovLm {
        branching: usize,
        shift: f64,
    },
    /// Paths as the config gives them (relative to its directory).
    TextLm {
        train: PathBuf,
        val: PathBuf,
        block_size: usize,
        /// The pre-training (train, val) texts of a base pre-trained here;
        /// `None` when the base is the model's checkpoint.
        pretrain: Option<(PathBuf, PathBuf)>,
    },
    /// Paths as the config gives them (relative to its directory).
    TextClassification {
        train: PathBuf,
        val: PathBuf,
        max_length: usize,
        /// Where each file keeps an example's text and label.
        columns: text_data::Columns,
        /// The id padding fills a row with.
        pad_token_id: u32,
        /// The (train, val) texts an encoder pre-trained here learns as a
        /// masked LM, in blocks of `max_length`; `None` when the base is
        /// the model's checkpoint.
        pretrain: Option<(PathBuf, PathBuf)>,
    },
    Instruction(InstructionSpec),
}

/// Whether `new` generated tokens after a prompt of up to `max_length` fit
/// a model of `seq_len` positions; the error says what is allowed.
pub fn answer_fits(new: usize, max_length: usize, seq_len: usize) -> Result<(), String> {
    if new == 0 || max_length + new > seq_len {
        return Err(format!(
            "between 1 and {} (a prompt of up to {max_length} tokens and its answer fit the \
             model's {seq_len} positions)",
            seq_len.saturating_sub(max_length)
        ));
    }
    Ok(())
}

/// `instruction`'s parameters, checked; paths as the config gives them
/// (relative to its directory).
#[derive(Debug, Clone, PartialEq)]
pub struct InstructionSpec {
    pub train: PathBuf,
    pub val: PathBuf,
    pub max_length: usize,
    pub template: text_data::PromptTemplate,
    pub packing: bool,
    /// The id padding fills a sequence with.
    pub pad_token_id: u32,
    /// Appended to every response.
    pub eos_token_id: Option<u32>,
    /// Scoring by generation: new tokens per val prompt.
    pub max_new_tokens: Option<usize>,
}

impl TaskConfig {
    /// The kind's parameters: each one the kind needs present, the other
    /// kind's absent, every value in range for `model`.
    pub fn spec(&self, model: &impl ModelConfig) -> Result<TaskSpec, ConfigError> {
        let kind = self.kind.name();
        let absent = |field: &str, set: bool| {
            if set {
                Err(bad(
                    &format!("task.{field}"),
                    "set",
                    format!("not a parameter of task.kind = \"{kind}\" (remove it)"),
                ))
            } else {
                Ok(())
            }
        };
        let needed = |field: &str, value: Option<usize>| {
            value.ok_or_else(|| {
                bad(
                    &format!("task.{field}"),
                    "missing",
                    format!("required for task.kind = \"{kind}\""),
                )
            })
        };
        self.other_kinds_absent(&absent)?;
        match self.kind {
            TaskKind::RetrieveAtK => {
                absent("branching", self.branching.is_some())?;
                absent("shift", self.shift.is_some())?;
                let k_pretrain = needed("k_pretrain", self.k_pretrain)?;
                let k_finetune = needed("k_finetune", self.k_finetune)?;
                let seq = model.seq_len();
                for (field, k) in [
                    ("task.k_pretrain", k_pretrain),
                    ("task.k_finetune", k_finetune),
                ] {
                    if k >= seq {
                        return Err(bad(
                            field,
                            k,
                            format!("a position below model.seq_len = {seq}"),
                        ));
                    }
                }
                if model.causal() {
                    return Err(bad(
                        "model.causal",
                        true,
                        "false for task.kind = \"retrieve_at_k\" (a classifier reads the last position)",
                    ));
                }
                Ok(TaskSpec::RetrieveAtK {
                    k_pretrain,
                    k_finetune,
                })
            }
            TaskKind::MarkovLm => {
                absent("k_pretrain", self.k_pretrain.is_some())?;
                absent("k_finetune", self.k_finetune.is_some())?;
                let branching = needed("branching", self.branching)?;
                if branching == 0 || branching > model.vocab() {
                    return Err(bad(
                        "task.branching",
                        branching,
                        format!("between 1 and model.vocab = {}", model.vocab()),
                    ));
                }
                let shift = self.shift.ok_or_else(|| {
                    bad(
                        "task.shift",
                        "missing",
                        "required for task.kind = \"markov_lm\"",
                    )
                })?;
                let vocab = model.vocab() as f64;
                if !(shift > 0.0 && shift <= 1.0) || (shift * vocab).round() < 1.0 {
                    return Err(bad(
                        "task.shift",
                        shift,
                        format!(
                            "a fraction of the chain's rows in (0, 1] that redraws at least \
                             one of model.vocab = {} rows (shift × vocab rounds to ≥ 1)",
                            model.vocab()
                        ),
                    ));
                }
                if !model.causal() {
                    return Err(bad(
                        "model.causal",
                        false,
                        "true for task.kind = \"markov_lm\" (a language model predicts every \
                         next token, seeing only the past)",
                    ));
                }
                Ok(TaskSpec::MarkovLm { branching, shift })
            }
            TaskKind::TextLm => self.text_lm_spec(model, &absent),
            TaskKind::TextClassification => self.text_classification_spec(model, &absent),
            TaskKind::Instruction => self.instruction_spec(model, &absent),
        }
    }

    /// Every field of another kind's is absent.
    fn other_kinds_absent(
        &self,
        absent: &dyn Fn(&str, bool) -> Result<(), ConfigError>,
    ) -> Result<(), ConfigError> {
        let text_fields = [
            ("train", self.train.is_some()),
            ("val", self.val.is_some()),
            ("block_size", self.block_size.is_some()),
            ("pretrain_train", self.pretrain_train.is_some()),
            ("pretrain_val", self.pretrain_val.is_some()),
        ];
        let classification_fields = [
            ("text_column", self.text_column.is_some()),
            ("label_column", self.label_column.is_some()),
            ("csv_layout", self.csv_layout.is_some()),
        ];
        let instruction_fields = [
            ("prompt_template", self.prompt_template.is_some()),
            ("packing", self.packing.is_some()),
            ("max_new_tokens", self.max_new_tokens.is_some()),
        ];
        if !matches!(
            self.kind,
            TaskKind::TextClassification | TaskKind::Instruction
        ) {
            absent("max_length", self.max_length.is_some())?;
        }
        if self.kind != TaskKind::Instruction {
            for (field, set) in instruction_fields {
                absent(field, set)?;
            }
        }
        if self.kind.is_synthetic() {
            for (field, set) in text_fields {
                absent(field, set)?;
            }
        }
        if self.kind != TaskKind::TextClassification {
            for (field, set) in classification_fields {
                absent(field, set)?;
            }
        }
        Ok(())
    }

    /// `instruction`'s parameters: both files, a length the model reads, a
    /// causal checkpoint with a tokenizer and a pad (or end-of-text) token.
    fn instruction_spec<M: ModelConfig>(
        &self,
        model: &M,
        absent: &dyn Fn(&str, bool) -> Result<(), ConfigError>,
    ) -> Result<TaskSpec, ConfigError> {
        let examples = "a JSONL file of {\"instruction\", \"input\", \"output\"} objects";
        absent("pretrain_train", self.pretrain_train.is_some())?;
        absent("pretrain_val", self.pretrain_val.is_some())?;
        let (train, val, max_length) = self.example_files(
            model,
            absent,
            examples,
            (2, "2 (a sequence predicts each token after its first)"),
        )?;
        let template = match &self.prompt_template {
            Some(t) => text_data::PromptTemplate::single(t)
                .map_err(|why| bad("task.prompt_template", "this text", why))?,
            None => text_data::PromptTemplate::default(),
        };
        if model.checkpoint().is_none() || model.tokenizer().is_none() || !model.causal() {
            return Err(bad(
                "task.kind",
                "\"instruction\"",
                format!(
                    "a task of a causal language model's checkpoint with a tokenizer \
                     (model.path), not of model.family = \"{}\" without one",
                    M::FAMILY
                ),
            ));
        }
        if let Some(labels) = model.num_labels() {
            return Err(bad(
                "model.num_labels",
                labels,
                "absent for task.kind = \"instruction\" (a language model, not a classifier)",
            ));
        }
        let pad_token_id = model.pad_token_id().ok_or_else(|| {
            bad(
                "model.path",
                "a checkpoint without pad_token_id or eos_token_id",
                "a config.json naming the token padding fills sequences with",
            )
        })?;
        if let Some(new) = self.max_new_tokens {
            answer_fits(new, max_length, model.seq_len())
                .map_err(|allowed| bad("task.max_new_tokens", new, allowed))?;
        }
        Ok(TaskSpec::Instruction(InstructionSpec {
            train,
            val,
            max_length,
            template,
            packing: self.packing.unwrap_or(false),
            pad_token_id,
            eos_token_id: model.eos_token_id(),
            max_new_tokens: self.max_new_tokens,
        }))
    }

    /// `text_classification`'s parameters: both files, a length the model
    /// reads, a classifier checkpoint (or a language model's with
    /// `model.num_labels`) with a tokenizer and a pad token.
    fn text_classification_spec<M: ModelConfig>(
        &self,
        model: &M,
        absent: &dyn Fn(&str, bool) -> Result<(), ConfigError>,
    ) -> Result<TaskSpec, ConfigError> {
        let texts = "a JSONL or CSV file of labelled texts";
        let (train, val, max_length) = self.example_files(model, absent, texts, (1, "1"))?;
        let pretrain = self.pretrain_texts(model, "masked language modelling")?;
        if model.checkpoint().is_some() && model.tokenizer().is_none() {
            return Err(bad(
                "task.kind",
                "\"text_classification\"",
                format!(
                    "a task of a checkpoint with a tokenizer (model.path), not of \
                     model.family = \"{}\" without one",
                    M::FAMILY
                ),
            ));
        }
        if pretrain.is_some() && model.special_tokens() && max_length < 3 {
            return Err(bad(
                "task.max_length",
                max_length,
                "at least 3 ([CLS], a token and [SEP]) for masked language modelling",
            ));
        }
        if model.num_labels().is_none() {
            return Err(bad(
                "model.num_labels",
                "missing",
                "the classes of task.kind = \"text_classification\" (a \
                 classifier checkpoint gives its own)",
            ));
        }
        let pad_token_id = match pretrain {
            // A WordPiece trained here pads with [PAD] = 0.
            Some(_) => model.pad_token_id().unwrap_or(0),
            None => model.pad_token_id().ok_or_else(|| {
                bad(
                    "model.path",
                    "a checkpoint without pad_token_id or eos_token_id",
                    "a config.json naming the token padding fills rows with",
                )
            })?,
        };
        Ok(TaskSpec::TextClassification {
            train,
            val,
            max_length,
            columns: self.columns()?,
            pad_token_id,
            pretrain,
        })
    }

    /// `text_classification`'s columns: named ones, or AG-News's layout
    /// (which has no names to give).
    fn columns(&self) -> Result<text_data::Columns, ConfigError> {
        let csv = match &self.csv_layout {
            None => text_data::CsvLayout::Header,
            Some(layout) => layout.parse().map_err(|_| {
                bad(
                    "task.csv_layout",
                    format!("{layout:?}"),
                    text_data::CsvLayout::ALLOWED,
                )
            })?,
        };
        if csv == text_data::CsvLayout::AgNews {
            for (field, set) in [
                ("task.text_column", self.text_column.is_some()),
                ("task.label_column", self.label_column.is_some()),
            ] {
                if set {
                    return Err(bad(
                        field,
                        "set",
                        "absent with task.csv_layout = \"ag_news\": its columns have no \
                         names (class 1-4, title, description)",
                    ));
                }
            }
        }
        let defaults = text_data::Columns::default();
        Ok(text_data::Columns {
            text: self.text_column.clone().unwrap_or(defaults.text),
            label: self.label_column.clone().unwrap_or(defaults.label),
            csv,
        })
    }

    /// The train and val files (each `what`) and `max_length` (at least
    /// `min`, within the model's positions) of a task of examples read from
    /// files, which sets none of the synthetic or `text_lm` fields.
    fn example_files<M: ModelConfig>(
        &self,
        model: &M,
        absent: &dyn Fn(&str, bool) -> Result<(), ConfigError>,
        what: &str,
        (min, min_why): (usize, &str),
    ) -> Result<(PathBuf, PathBuf, usize), ConfigError> {
        self.no_synthetic_fields(absent)?;
        absent("block_size", self.block_size.is_some())?;
        let train = self.required("train", &self.train, what)?;
        let val = self.required("val", &self.val, what)?;
        let unit = if min == 1 { "example" } else { "sequence" };
        let max_length = self.required(
            "max_length",
            &self.max_length,
            &format!("tokens per {unit}"),
        )?;
        if max_length < min || max_length > model.seq_len() {
            return Err(bad(
                "task.max_length",
                max_length,
                format!(
                    "between {min_why} and the model's {} positions",
                    model.seq_len()
                ),
            ));
        }
        Ok((train, val, max_length))
    }

    /// `value` of `task.<field>`, or an error saying it is `what` and
    /// required for this kind.
    fn required<T: Clone>(
        &self,
        field: &str,
        value: &Option<T>,
        what: &str,
    ) -> Result<T, ConfigError> {
        value.clone().ok_or_else(|| {
            bad(
                &format!("task.{field}"),
                "missing",
                format!("{what}, required for task.kind = \"{}\"", self.kind.name()),
            )
        })
    }

    /// A task read from files sets none of the synthetic tasks' fields.
    fn no_synthetic_fields(
        &self,
        absent: &dyn Fn(&str, bool) -> Result<(), ConfigError>,
    ) -> Result<(), ConfigError> {
        for (field, set) in [
            ("k_pretrain", self.k_pretrain.is_some()),
            ("k_finetune", self.k_finetune.is_some()),
            ("branching", self.branching.is_some()),
            ("shift", self.shift.is_some()),
            ("n_pretrain_train", self.n_pretrain_train != 0),
            ("n_pretrain_val", self.n_pretrain_val != 0),
            ("n_finetune_train", self.n_finetune_train != 0),
            ("n_finetune_val", self.n_finetune_val != 0),
        ] {
            absent(field, set)?;
        }
        Ok(())
    }

    /// `task.pretrain_train` and `pretrain_val`: both required where the
    /// base is pre-trained here (on `objective`, with a tokenizer trained
    /// on that text), both absent beside a checkpoint.
    fn pretrain_texts<M: ModelConfig>(
        &self,
        model: &M,
        objective: &str,
    ) -> Result<Option<(PathBuf, PathBuf)>, ConfigError> {
        Ok(
            match (&self.pretrain_train, &self.pretrain_val, model.checkpoint()) {
                (None, None, Some(_)) => None,
                (Some(_), _, Some(dir)) | (_, Some(_), Some(dir)) => {
                    let field = if self.pretrain_train.is_some() {
                        "task.pretrain_train"
                    } else {
                        "task.pretrain_val"
                    };
                    return Err(bad(
                        field,
                        "set",
                        format!(
                            "absent: the base is the checkpoint {} (model.path), not pre-trained \
                         here",
                            dir.display()
                        ),
                    ));
                }
                (train, val, None) => {
                    let text = |field: &str, value: &Option<PathBuf>| {
                        value.clone().ok_or_else(|| {
                            bad(
                                &format!("task.{field}"),
                                "missing",
                                format!(
                                    "a UTF-8 text file: the base of model.family = \"{}\" is \
                                 pre-trained here by {objective}, on this text with a \
                                 tokenizer trained on it (or give the model a checkpoint)",
                                    M::FAMILY
                                ),
                            )
                        })
                    };
                    Some((text("pretrain_train", train)?, text("pretrain_val", val)?))
                }
            },
        )
    }

    /// `text_lm`'s parameters: both files, a block the model can read, a
    /// causal model with a tokenizer, and none of the synthetic fields.
    fn text_lm_spec<M: ModelConfig>(
        &self,
        model: &M,
        absent: &dyn Fn(&str, bool) -> Result<(), ConfigError>,
    ) -> Result<TaskSpec, ConfigError> {
        self.no_synthetic_fields(absent)?;
        let train = self.required("train", &self.train, "a UTF-8 text file")?;
        let val = self.required("val", &self.val, "a UTF-8 text file")?;
        let block_size = self.required("block_size", &self.block_size, "tokens per block")?;
        if block_size < 2 || block_size > model.seq_len() {
            return Err(bad(
                "task.block_size",
                block_size,
                format!(
                    "between 2 (a block predicts each token after its first) and the \
                     model's {} positions",
                    model.seq_len()
                ),
            ));
        }
        if !model.causal() {
            return Err(bad(
                "model.causal",
                false,
                "true for task.kind = \"text_lm\" (a language model sees only the past)",
            ));
        }
        if let Some(labels) = model.num_labels() {
            return Err(bad(
                "model.num_labels",
                labels,
                "absent for task.kind = \"text_lm\" (a language model, not a classifier)",
            ));
        }
        let pretrain = self.pretrain_texts(model, "language modelling")?;
        Ok(TaskSpec::TextLm {
            train,
            val,
            block_size,
            pretrain,
        })
    }
}

/// Full training of the base model on the pre-training task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PretrainConfig {
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f64,
    #[serde(default)]
    pub weight_decay: f64,
    /// Seed of the initial weights.
    #[serde(default)]
    pub seed: u64,
}

/// One grid cell: a method at a fine-tuning budget (batch size, epochs),
/// alpha rule, init and rank (full fine-tuning: rank 0, no adapter).
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    pub method: Method,
    pub rank: usize,
    pub alpha: AlphaRule,
    pub init: LoraInit,
    pub batch_size: usize,
    pub epochs: usize,
    /// `finetune.max_steps`: the step budget, where shorter than the epochs.
    pub max_steps: Option<usize>,
    pub lora: Option<LoraConfig>,
}

impl Cell {
    /// The record spelling of the alpha rule (`none` without adapters).
    pub fn alpha_label(&self) -> String {
        match self.lora {
            Some(_) => self.alpha.label(),
            None => "none".into(),
        }
    }

    /// The record spelling of A's init (`none` without adapters).
    pub fn init_label(&self) -> String {
        match self.lora {
            Some(_) => init_label(self.init),
            None => "none".into(),
        }
    }

    /// The record spelling of the targets (`all` without adapters).
    pub fn targets_label<M: ModelConfig>(&self, config: &ExperimentConfig<M>) -> String {
        match self.lora {
            Some(_) => targets_label(&config.grid.targets),
            None => "all".into(),
        }
    }

    /// `alpha/init/targets` (and LoRA+'s ratio), as records and figures name
    /// a cell's variant.
    pub fn variant<M: ModelConfig>(&self, config: &ExperimentConfig<M>) -> String {
        records::variant_label(
            &self.alpha_label(),
            &self.init_label(),
            &self.targets_label(config),
            self.loraplus_lr_ratio(),
        )
    }

    /// LoRA+'s ratio, for a LoRA+ cell.
    pub fn loraplus_lr_ratio(&self) -> Option<f64> {
        self.lora
            .as_ref()
            .filter(|l| l.method == Method::Loraplus)
            .map(|l| l.loraplus_lr_ratio)
    }

    /// The adapter setting this cell trains: its `LoraConfig`, or for full
    /// fine-tuning the `full` method (every weight trainable, no adapter).
    pub fn fine_tune(&self) -> LoraConfig {
        self.lora
            .clone()
            .unwrap_or_else(|| LoraConfig::new(Method::Full, 1))
    }

    /// Optimizer steps of one member: `epochs × ⌈n_train / batch_size⌉`, or
    /// the step budget where smaller; `None` where that overflows.
    pub fn checked_steps(&self, n_train: usize) -> Option<usize> {
        let epochs = self
            .epochs
            .checked_mul(n_train.div_ceil(self.batch_size.max(1)));
        match (epochs, self.max_steps) {
            (Some(steps), Some(budget)) => Some(steps.min(budget)),
            (None, Some(budget)) => Some(budget),
            (steps, None) => steps,
        }
    }

    /// [`checked_steps`](Self::checked_steps), saturating: `runner::plan`
    /// refuses a study whose member-steps overflow before anything counts them.
    pub fn steps(&self, n_train: usize) -> usize {
        self.checked_steps(n_train).unwrap_or(usize::MAX)
    }

    /// `lora r=16`, plus the alpha rule, init, batch size and epochs where
    /// the grid has several.
    pub fn label<M: ModelConfig>(&self, config: &ExperimentConfig<M>) -> String {
        let mut label = format!("{} r={}", self.method.name(), self.rank);
        if config.finetune.batch_size.values().len() > 1 {
            label.push_str(&format!(" bs={}", self.batch_size));
        }
        if config.finetune.epochs.values().len() > 1 {
            label.push_str(&format!(" ep={}", self.epochs));
        }
        if self.lora.is_some() {
            if config.grid.alpha.values().len() > 1 {
                label.push_str(&format!(" {}", self.alpha.label()));
            }
            if config.grid.init.values().len() > 1 {
                label.push_str(&format!(" {}", init_label(self.init)));
            }
        }
        if let Some(ratio) = self.loraplus_lr_ratio()
            && config.loraplus_ratios().len() > 1
        {
            label.push_str(&format!(" ratio={ratio}"));
        }
        label
    }
}

/// A config value that is out of range, named by its TOML path.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field} = {value}: {allowed}")]
pub struct ConfigError {
    pub field: String,
    pub value: String,
    pub allowed: String,
}

fn bad(field: &str, value: impl ToString, allowed: impl Into<String>) -> ConfigError {
    ConfigError {
        field: field.to_string(),
        value: value.to_string(),
        allowed: allowed.into(),
    }
}

impl<M: ModelConfig> ExperimentConfig<M> {
    /// Parses and validates TOML text, relative paths in it read from the
    /// working directory; `origin` names it in errors.
    pub fn from_toml_str(text: &str, origin: &str) -> anyhow::Result<Self> {
        Self::from_toml_in(text, origin, Path::new(""))
    }

    /// Parses TOML text whose relative paths are relative to `dir`, reads
    /// what the model names there, and validates.
    pub fn from_toml_in(text: &str, origin: &str, dir: &Path) -> anyhow::Result<Self> {
        let invalid = |e: &dyn std::fmt::Display| anyhow::anyhow!("{origin}: invalid config: {e}");
        let mut config: Self = toml::from_str(text).map_err(|e| invalid(&e))?;
        config.dir = dir.to_path_buf();
        config.model.resolve(dir).map_err(|e| invalid(&e))?;
        let table: toml::Table = toml::from_str(text).map_err(|e| invalid(&e))?;
        let compute_given = table
            .get("run")
            .and_then(|run| run.get("adapter_compute"))
            .is_some();
        if !compute_given {
            config.run.adapter_compute = default_compute(&config.model);
        }
        config.validate().map_err(|e| invalid(&e))?;
        Ok(config)
    }

    pub fn from_toml_file(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read config {}: {e}", path.display()))?;
        let dir = path.parent().unwrap_or(Path::new(""));
        Self::from_toml_in(&text, &path.display().to_string(), dir)
    }

    /// A path of the config, as the process opens it.
    pub fn path(&self, path: &Path) -> PathBuf {
        self.dir.join(path)
    }

    /// Whether the output head trains beside the adapters
    /// (`grid.train_head`, by default: unless the head is tied).
    pub fn train_head(&self) -> bool {
        self.grid.train_head.unwrap_or(!self.model.head_is_frozen())
    }

    /// Tokens per example: a text block's predictions, else the model's
    /// sequence.
    pub fn sequence_len(&self) -> usize {
        match (self.task.kind, self.task.block_size, self.task.max_length) {
            (TaskKind::TextLm, Some(block), _) => block.saturating_sub(1).max(1),
            (TaskKind::TextClassification, _, Some(length)) => length,
            _ => self.model.seq_len(),
        }
    }

    /// What decides a cell's best LR: perplexity for a language model,
    /// accuracy otherwise (and for instructions scored by generation).
    pub fn metric(&self) -> records::Metric {
        if self.task.kind.is_language_model() && self.task.max_new_tokens.is_none() {
            records::Metric::Perplexity
        } else {
            records::Metric::Accuracy
        }
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.name.is_empty()
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(bad(
                "name",
                format!("{:?}", self.name),
                "a non-empty name of letters, digits, '-' and '_' (it names a directory)",
            ));
        }
        self.model
            .validate()
            .map_err(|e| bad(&format!("model.{}", e.field), e.value, e.allowed))?;
        let t = &self.task;
        t.spec(&self.model)?;
        if t.kind.is_synthetic() {
            for (field, n) in [
                ("task.n_pretrain_train", t.n_pretrain_train),
                ("task.n_pretrain_val", t.n_pretrain_val),
                ("task.n_finetune_train", t.n_finetune_train),
                ("task.n_finetune_val", t.n_finetune_val),
            ] {
                if n == 0 {
                    return Err(bad(
                        field,
                        n,
                        format!(
                            "at least 1 example (required for task.kind = \"{}\")",
                            t.kind.name()
                        ),
                    ));
                }
            }
        }
        self.validate_pretrain()?;
        if self.grid.train_head == Some(true) && self.model.head_is_frozen() {
            return Err(bad(
                "grid.train_head",
                true,
                format!(
                    "false for model.family = \"{}\": its head (a causal language \
                     model's lm_head) stays frozen, as in PEFT",
                    M::FAMILY
                ),
            ));
        }
        self.validate_finetune()
    }

    /// `[pretrain]`: required when the base is pre-trained here, absent when
    /// the model names a checkpoint.
    fn validate_pretrain(&self) -> Result<(), ConfigError> {
        let p = match (&self.pretrain, self.model.checkpoint()) {
            (Some(_), Some(dir)) => {
                return Err(bad(
                    "pretrain",
                    "set",
                    format!(
                        "absent: the base is the checkpoint {} (model.path); remove [pretrain]",
                        dir.display()
                    ),
                ));
            }
            (None, Some(_)) => return Ok(()),
            (None, None) => {
                return Err(bad(
                    "pretrain",
                    "missing",
                    "a [pretrain] table (epochs, batch_size, lr): the base is pre-trained here",
                ));
            }
            (Some(p), None) => p,
        };
        if p.epochs == 0 {
            return Err(bad("pretrain.epochs", p.epochs, "at least 1"));
        }
        if p.batch_size == 0 {
            return Err(bad("pretrain.batch_size", p.batch_size, "at least 1"));
        }
        if !(p.lr.is_finite() && p.lr > 0.0) {
            return Err(bad("pretrain.lr", p.lr, "a finite number > 0"));
        }
        if !(p.weight_decay.is_finite() && p.weight_decay >= 0.0) {
            return Err(bad(
                "pretrain.weight_decay",
                p.weight_decay,
                "a finite number >= 0",
            ));
        }
        Ok(())
    }

    /// `[finetune]`, the grid and `[run]`.
    fn validate_finetune(&self) -> Result<(), ConfigError> {
        let f = &self.finetune;
        for (field, axis) in [
            ("finetune.epochs", &f.epochs),
            ("finetune.batch_size", &f.batch_size),
        ] {
            let values = axis.values();
            if values.is_empty() {
                return Err(bad(field, "[]", "at least one value"));
            }
            if let Some(&zero) = values.iter().find(|&&v| v == 0) {
                return Err(bad(field, zero, "at least 1"));
            }
            let distinct: std::collections::BTreeSet<usize> = values.iter().copied().collect();
            if distinct.len() != values.len() {
                return Err(bad(field, format!("{values:?}"), "distinct values"));
            }
        }
        if !(f.weight_decay.is_finite() && f.weight_decay >= 0.0) {
            return Err(bad(
                "finetune.weight_decay",
                f.weight_decay,
                "a finite number >= 0",
            ));
        }
        if f.max_steps == Some(0) {
            return Err(bad("finetune.max_steps", 0, "at least 1 step (or absent)"));
        }
        if !(f.warmup_ratio.is_finite() && (0.0..1.0).contains(&f.warmup_ratio)) {
            return Err(bad(
                "finetune.warmup_ratio",
                f.warmup_ratio,
                "a number in [0, 1) (the share of steps warming up)",
            ));
        }
        f.lrs.values()?;
        self.validate_grid()?;
        if self.run.save_adapters != SaveAdapters::None {
            if self.model.linear_layout().hf_blocks.is_none() {
                return Err(bad(
                    "run.save_adapters",
                    format!("{:?}", self.run.save_adapters).to_lowercase(),
                    format!(
                        "\"none\" for model.family = \"{}\" (PEFT's adapter files need a \
                         Hugging Face model to load on, such as gpt2)",
                        M::FAMILY
                    ),
                ));
            }
            if self.grid.methods.contains(&Method::DoraSeed) {
                return Err(bad(
                    "run.save_adapters",
                    format!("{:?}", self.run.save_adapters).to_lowercase(),
                    "\"none\" with method dora_seed (PEFT's DoRA differs from the seed \
                     notebook's)",
                ));
            }
            // Each learning rate's adapters lie in a directory named by it.
            let lrs = f.lrs.values()?;
            for (i, a) in lrs.iter().enumerate() {
                if let Some(b) = lrs[i + 1..]
                    .iter()
                    .find(|b| crate::adapters::lr_prefix(**b) == crate::adapters::lr_prefix(*a))
                {
                    return Err(bad(
                        "finetune.lrs",
                        format!("{a} and {b}"),
                        "learning rates apart in their first five significant digits when \
                         run.save_adapters saves them (each in a directory lr<lr, 4 decimals>)",
                    ));
                }
            }
        }
        if self.run.max_population == 0 {
            return Err(bad("run.max_population", 0, "at least 1"));
        }
        if self.run.threads > MAX_THREADS {
            return Err(bad(
                "run.threads",
                self.run.threads,
                format!("0 (every core) or at most {MAX_THREADS}"),
            ));
        }
        Ok(())
    }

    /// The grid's axes: present, distinct, in range for the model.
    fn validate_grid(&self) -> Result<(), ConfigError> {
        let g = &self.grid;
        if g.methods.is_empty() {
            return Err(bad("grid.methods", "[]", "at least one method"));
        }
        if g.ranks.is_empty() {
            return Err(bad("grid.ranks", "[]", "at least one rank"));
        }
        if g.seeds.is_empty() {
            return Err(bad("grid.seeds", "[]", "at least one seed"));
        }
        let ratios = self.loraplus_ratios();
        if ratios.is_empty() {
            return Err(bad("grid.loraplus_lr_ratio", "[]", "at least one ratio"));
        }
        if let Some(ratio) = ratios.iter().find(|r| !(r.is_finite() && **r > 0.0)) {
            return Err(bad(
                "grid.loraplus_lr_ratio",
                ratio,
                "a finite number > 0 (LoRA+'s learning rate of B over A's)",
            ));
        }
        // A repeated value would train and record its trials twice.
        let twice = |field: &str, value: String| {
            Err(bad(field, format!("{value} twice"), "distinct values"))
        };
        if let Some(seed) = first_repeat(g.seeds.iter().copied()) {
            return twice("grid.seeds", seed.to_string());
        }
        if let Some(rank) = first_repeat(g.ranks.iter().copied()) {
            return twice("grid.ranks", rank.to_string());
        }
        if let Some(method) = first_repeat(g.methods.iter().map(|m| m.name())) {
            return twice("grid.methods", method.to_string());
        }
        if let Some(ratio) = first_repeat(ratios.iter().map(|r| r.to_bits())) {
            return twice("grid.loraplus_lr_ratio", f64::from_bits(ratio).to_string());
        }
        // lr_sweep_results.json reports the adapters at this rank.
        if g.methods.iter().any(|m| *m != Method::Full) && !g.ranks.contains(&g.parity_rank) {
            return Err(bad(
                "grid.parity_rank",
                g.parity_rank,
                format!("one of grid.ranks {:?}", g.ranks),
            ));
        }
        if g.alpha.values().is_empty() {
            return Err(bad("grid.alpha", "[]", "at least one alpha rule"));
        }
        if g.init.values().is_empty() {
            return Err(bad("grid.init", "[]", "at least one init"));
        }
        for rule in g.alpha.values() {
            if let AlphaRule::Constant { alpha } | AlphaRule::Rslora { alpha } = rule
                && !(alpha.is_finite() && alpha > 0.0)
            {
                return Err(bad("grid.alpha.alpha", alpha, "a finite number > 0"));
            }
        }
        for cell in self.cells() {
            if let Some(lora) = &cell.lora {
                lora.validate(&self.model.linear_layout())
                    .map_err(|e| match e {
                        peft::PeftError::Invalid {
                            field,
                            value,
                            allowed,
                        } => {
                            let field = match field {
                                "r" => "grid.ranks".to_string(),
                                "target_modules" => "grid.targets".to_string(),
                                other => format!("grid.{other}"),
                            };
                            bad(&field, value, allowed)
                        }
                        other => bad("grid", cell.method.name(), other.to_string()),
                    })?;
            }
        }
        Ok(())
    }

    /// The grid's cells in run order: methods, batch sizes, epochs, alpha
    /// rules and inits as listed, ranks ascending; full fine-tuning (no
    /// rank) is one cell per budget.
    pub fn cells(&self) -> Vec<Cell> {
        let mut cells = Vec::new();
        for &method in &self.grid.methods {
            for batch_size in self.finetune.batch_size.values() {
                for epochs in self.finetune.epochs.values() {
                    self.method_cells(method, batch_size, epochs, &mut cells);
                }
            }
        }
        cells
    }

    /// The cells of one method at one budget.
    fn method_cells(
        &self,
        method: Method,
        batch_size: usize,
        epochs: usize,
        cells: &mut Vec<Cell>,
    ) {
        let g = &self.grid;
        let mut ranks = g.ranks.clone();
        ranks.sort_unstable();
        ranks.dedup();
        let alphas = g.alpha.values();
        let inits = g.init.values();
        let first_alpha = alphas.first().copied().unwrap_or_default();
        let first_init = inits.first().copied().unwrap_or_default();
        if !method.has_adapters() {
            cells.push(Cell {
                method,
                rank: 0,
                alpha: first_alpha,
                init: first_init,
                batch_size,
                epochs,
                max_steps: self.finetune.max_steps,
                lora: None,
            });
            return;
        }
        // A's init only matters where A is drawn at random with B = 0.
        let inits: &[LoraInit] = if method.uses_init() {
            &inits
        } else {
            &inits[..inits.len().min(1)]
        };
        // LoRA+'s ratio is an axis of its own cells only.
        let ratios = if method == Method::Loraplus {
            self.loraplus_ratios()
        } else {
            vec![self.loraplus_ratios()[0]]
        };
        for &alpha in &alphas {
            for &init in inits {
                for &r in &ranks {
                    for &ratio in &ratios {
                        let mut lora =
                            self.lora_config(method, r, alpha, init, self.run.adapter_compute);
                        lora.loraplus_lr_ratio = ratio;
                        cells.push(Cell {
                            method,
                            rank: r,
                            alpha,
                            init,
                            batch_size,
                            epochs,
                            max_steps: self.finetune.max_steps,
                            lora: Some(lora),
                        });
                    }
                }
            }
        }
    }

    /// The adapter setting of `method` at rank `r` under alpha rule `alpha`
    /// and init `init`, with the grid's targets and head: the one place a
    /// config becomes a `LoraConfig` (cells and the bench).
    pub fn lora_config(
        &self,
        method: Method,
        r: usize,
        alpha: AlphaRule,
        init: LoraInit,
        compute: peft::Compute,
    ) -> LoraConfig {
        let defaults = LoraConfig::new(method, r);
        LoraConfig {
            method,
            r,
            lora_alpha: alpha.alpha(r),
            target_modules: self.grid.targets.clone(),
            init,
            train_head: self.train_head(),
            use_rslora: matches!(alpha, AlphaRule::Rslora { .. }),
            compute,
            loraplus_lr_ratio: self.loraplus_ratios()[0],
            gralora_k: self.grid.gralora_k.unwrap_or(defaults.gralora_k),
            hybrid_r: match method {
                Method::Gralora => self.grid.hybrid_r.unwrap_or(0),
                _ => 0,
            },
            randlora_alpha: self.grid.randlora_alpha,
            projection_prng_key: self.grid.projection_prng_key.unwrap_or(0),
            randlora_sparse: self.grid.randlora_sparse.unwrap_or(false),
            randlora_very_sparse: self.grid.randlora_very_sparse.unwrap_or(false),
            lora_ga: self.grid.lora_ga.clone().unwrap_or_default(),
        }
    }

    /// LoRA+'s ratios, the grid's axis (16 when absent).
    pub fn loraplus_ratios(&self) -> Vec<f64> {
        self.grid
            .loraplus_lr_ratio
            .as_ref()
            .map_or_else(|| vec![16.0], OneOrMany::values)
    }

    /// Hash of everything that changes a trial's result besides its grid
    /// coordinates (method, rank, alpha, init, targets, batch size, epochs,
    /// lr, seed are in the record itself): the grid can grow and a rerun
    /// still resumes.
    pub fn results_hash(&self) -> String {
        #[derive(Serialize)]
        struct Key<'a, M> {
            task: &'a TaskConfig,
            #[serde(skip_serializing_if = "family::is_default")]
            family: &'static str,
            model: &'a M,
            #[serde(skip_serializing_if = "Option::is_none")]
            pretrain: &'a Option<PretrainConfig>,
            weight_decay: f64,
            // Absent for the constant schedule, so earlier studies keep
            // their hashes.
            #[serde(skip_serializing_if = "is_default")]
            lr_scheduler_type: train::LrDecay,
            #[serde(skip_serializing_if = "is_default")]
            warmup_ratio: f64,
            #[serde(skip_serializing_if = "Option::is_none")]
            max_steps: Option<usize>,
            // The new methods' options, where given (LoRA+'s ratio is in
            // each record).
            #[serde(skip_serializing_if = "Option::is_none")]
            gralora_k: Option<usize>,
            #[serde(skip_serializing_if = "Option::is_none")]
            hybrid_r: Option<usize>,
            #[serde(skip_serializing_if = "Option::is_none")]
            randlora_alpha: Option<f64>,
            #[serde(skip_serializing_if = "Option::is_none")]
            projection_prng_key: Option<u64>,
            #[serde(skip_serializing_if = "Option::is_none")]
            randlora_sparse: Option<bool>,
            #[serde(skip_serializing_if = "Option::is_none")]
            randlora_very_sparse: Option<bool>,
            #[serde(skip_serializing_if = "Option::is_none")]
            lora_ga: &'a Option<peft::LoraGaConfig>,
            train_head: bool,
            // Heads the targets adapt (an encoder classifier's pooler under
            // `all-linear`), where any: such a pooler was trained whole
            // before it was a site.
            #[serde(skip_serializing_if = "Vec::is_empty")]
            adapted_heads: Vec<&'static str>,
            #[serde(skip_serializing_if = "BTreeMap::is_empty")]
            files: BTreeMap<String, String>,
        }
        let layout = self.model.linear_layout();
        let adapted_heads = self
            .grid
            .targets
            .resolve(&layout)
            .map(|targets| {
                (targets.into_iter())
                    .filter(|&m| layout.head(m).is_some())
                    .map(|m| m.name)
                    .collect()
            })
            .unwrap_or_default();
        let key = Key {
            task: &self.task,
            family: M::FAMILY,
            model: &self.model,
            pretrain: &self.pretrain,
            weight_decay: self.finetune.weight_decay,
            lr_scheduler_type: self.finetune.lr_scheduler_type,
            warmup_ratio: self.finetune.warmup_ratio,
            max_steps: self.finetune.max_steps,
            gralora_k: self.grid.gralora_k,
            hybrid_r: self.grid.hybrid_r,
            randlora_alpha: self.grid.randlora_alpha,
            projection_prng_key: self.grid.projection_prng_key,
            randlora_sparse: self.grid.randlora_sparse,
            randlora_very_sparse: self.grid.randlora_very_sparse,
            lora_ga: &self.grid.lora_ga,
            train_head: self.train_head(),
            adapted_heads,
            files: self.file_digests(),
        };
        let json = serde_json::to_string(&key).expect("plain structs serialize");
        hex::encode(&Sha256::digest(json.as_bytes())[..8])
    }

    /// Identifies the pre-trained base: a hash of everything it depends on
    /// (model, pre-training, and the pre-training part of the task).
    pub fn pretrain_hash(&self) -> String {
        #[derive(Serialize)]
        struct Key<'a, M> {
            #[serde(skip_serializing_if = "family::is_default")]
            family: &'static str,
            model: &'a M,
            #[serde(skip_serializing_if = "Option::is_none")]
            pretrain: &'a Option<PretrainConfig>,
            #[serde(skip_serializing_if = "TaskKind::is_retrieval")]
            kind: TaskKind,
            #[serde(skip_serializing_if = "Option::is_none")]
            k: Option<usize>,
            #[serde(skip_serializing_if = "Option::is_none")]
            branching: Option<usize>,
            n_train: usize,
            n_val: usize,
            data_seed: u64,
            /// A text base's blocks and the digests of its texts.
            #[serde(skip_serializing_if = "Option::is_none")]
            block_size: Option<usize>,
            #[serde(skip_serializing_if = "BTreeMap::is_empty")]
            files: BTreeMap<String, String>,
        }
        let mut files = self.file_digests();
        files.retain(|name, _| name.starts_with("task.pretrain_"));
        let key = Key {
            family: M::FAMILY,
            model: &self.model,
            pretrain: &self.pretrain,
            kind: self.task.kind,
            k: self.task.k_pretrain,
            branching: self.task.branching,
            n_train: self.task.n_pretrain_train,
            n_val: self.task.n_pretrain_val,
            data_seed: self.task.data_seed,
            block_size: (!files.is_empty())
                .then_some(self.task.block_size.or(self.task.max_length))
                .flatten(),
            files,
        };
        let json = serde_json::to_string(&key).expect("plain structs serialize");
        let digest = Sha256::digest(json.as_bytes());
        hex::encode(&digest[..8])
    }

    /// SHA-256 of every file results depend on (the task's text, the
    /// model's checkpoint and tokenizer), by a name that does not depend on
    /// where the study lies: `task.train`, `model/<file name>`. A file that
    /// cannot be read is digested as `unreadable` (reading it later fails
    /// with its own error).
    pub fn file_digests(&self) -> BTreeMap<String, String> {
        let mut files = BTreeMap::new();
        for (name, path) in [
            ("task.train", &self.task.train),
            ("task.val", &self.task.val),
            ("task.pretrain_train", &self.task.pretrain_train),
            ("task.pretrain_val", &self.task.pretrain_val),
        ] {
            if let Some(path) = path {
                files.insert(
                    name.to_string(),
                    crate::digest::file_sha256(&self.path(path)),
                );
            }
        }
        let model_files = self.model.files().into_iter().chain(self.model.tokenizer());
        for path in model_files {
            let name = path.file_name().map_or_else(
                || path.display().to_string(),
                |n| n.to_string_lossy().into(),
            );
            files.insert(format!("model/{name}"), crate::digest::file_sha256(&path));
        }
        files
    }
}

/// The `family` key of `[model]`.
mod family {
    use nn::ModelConfig;
    use serde::de::Error;
    use serde::{Deserialize, Deserializer};

    /// Hashes leave out the default family, so configs from before families
    /// keep their hashes.
    pub(super) fn is_default(family: &&'static str) -> bool {
        *family == super::DEFAULT_FAMILY
    }

    /// The family named in a config's text (`[model] family`, else
    /// [`DEFAULT_FAMILY`](super::DEFAULT_FAMILY)); the binary reads it to
    /// pick the type a config is parsed as.
    pub fn of_toml(text: &str) -> Result<String, String> {
        let table: toml::Table = toml::from_str(text).map_err(|e| e.to_string())?;
        name(table.get("model").and_then(|m| m.get("family")))
    }

    /// The family a `family` value names: absent, the default one.
    fn name(value: Option<&toml::Value>) -> Result<String, String> {
        match value {
            None => Ok(super::DEFAULT_FAMILY.to_string()),
            Some(toml::Value::String(name)) => Ok(name.clone()),
            Some(other) => Err(format!(
                "model.family = {other}: the name of a model family, e.g. \"{}\"",
                super::DEFAULT_FAMILY
            )),
        }
    }

    /// `[model]` as written: `family` first unless it is the default.
    pub(super) fn serialize_model<S: serde::Serializer, M: ModelConfig>(
        model: &M,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        use serde::Serialize;
        use serde::ser::Error;
        if M::FAMILY == super::DEFAULT_FAMILY {
            return model.serialize(s);
        }
        let mut table = toml::Table::try_from(model).map_err(S::Error::custom)?;
        table.insert("family".into(), M::FAMILY.into());
        table.serialize(s)
    }

    /// `[model]` read as family `M`: its `family` key (absent: the default
    /// family) must be `M`'s, the other keys are `M`'s fields.
    pub(super) fn model_table<'de, D: Deserializer<'de>, M: ModelConfig>(
        d: D,
    ) -> Result<M, D::Error> {
        let mut table = toml::Table::deserialize(d)?;
        let family = name(table.remove("family").as_ref()).map_err(D::Error::custom)?;
        if family != M::FAMILY {
            return Err(D::Error::custom(format!(
                "model.family = {family:?}, but this config is read as a {:?} config",
                M::FAMILY
            )));
        }
        M::deserialize(toml::Value::Table(table)).map_err(D::Error::custom)
    }
}

pub use family::of_toml as family_of_toml;

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use tinyformer::TinyformerConfig;

    #[test]
    fn compute_labels_are_the_config_spellings() {
        for compute in [peft::Compute::WeightSpace, peft::Compute::ActivationSpace] {
            let spelled = serde_json::to_value(compute).unwrap();
            assert_eq!(spelled.as_str(), Some(compute_label(compute)));
        }
    }

    #[test]
    fn zero_threads_mean_every_core_on_a_cpu_and_one_population_on_a_gpu() {
        let mut run = RunConfig::default();
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert_eq!((run.workers(false), run.workers(true)), (cores, 1));
        run.threads = 3;
        assert_eq!((run.workers(false), run.workers(true)), (3, 3));
    }

    #[test]
    fn shipped_configs_parse_and_validate() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../configs");
        let mut seen = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            // Other families' configs are checked by the binary, which
            // knows them.
            let text = std::fs::read_to_string(&path).unwrap();
            if path.extension().is_some_and(|e| e == "toml")
                && family_of_toml(&text).unwrap() == DEFAULT_FAMILY
            {
                ExperimentConfig::<TinyformerConfig>::from_toml_file(&path).unwrap();
                seen += 1;
            }
        }
        assert!(
            seen >= 2,
            "configs/ should hold default.toml and quick.toml"
        );
        assert_eq!(
            ExperimentConfig::<TinyformerConfig>::from_toml_str(DEFAULT_CONFIG, "default.toml")
                .unwrap()
                .name,
            "default"
        );
    }

    /// A second family for the tests: tinyformer's model under another name.
    #[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
    #[serde(transparent)]
    struct Other(TinyformerConfig);

    impl ModelConfig for Other {
        const FAMILY: &'static str = "other";
        type Model = tinyformer::Tinyformer;
        fn validate(&self) -> Result<(), nn::ConfigError> {
            self.0.validate()
        }
        fn vocab(&self) -> usize {
            self.0.vocab
        }
        fn seq_len(&self) -> usize {
            self.0.seq_len
        }
        fn causal(&self) -> bool {
            self.0.causal
        }
        /// Tinyformer's linears and a head site that no preset names.
        fn linear_layout(&self) -> nn::LinearLayout {
            let mut layout = self.0.linear_layout();
            layout.heads.push(nn::HeadLinear {
                module: nn::ModuleId::new(6, "pooler.dense"),
                path: "model.pooler.dense",
                d_in: self.0.d_model,
                d_out: self.0.d_model,
            });
            layout
        }
        fn parameters(&self) -> f64 {
            self.0.parameters()
        }
        fn activations_per_sequence(&self, seq_len: usize) -> f64 {
            self.0.activations_per_sequence(seq_len)
        }
        fn init(
            &self,
            seed: u64,
            device: &burn::tensor::Device,
        ) -> Result<Self::Model, nn::ConfigError> {
            self.0.init(seed, device)
        }
    }

    /// Targets that reach a head (a BERT pooler) enter the results hash:
    /// such a head was trained whole before it was a site. Other targets
    /// are in each record, not the hash.
    #[test]
    fn targets_that_adapt_a_head_change_the_results_hash() {
        let text = include_str!("../../../configs/quick.toml")
            .replace("[model]", "[model]\nfamily = \"other\"");
        let with = |targets: &str| {
            let text = text.replace("targets = \"all\"", &format!("targets = {targets}"));
            assert!(text.contains(targets));
            ExperimentConfig::<Other>::from_toml_str(&text, "o.toml")
                .unwrap()
                .results_hash()
        };
        assert_eq!(with("\"all\""), with("[\"q\", \"v\"]"));
        assert_ne!(with("[\"q\", \"dense\"]"), with("[\"q\"]"));
        assert_eq!(with("[\"q\", \"dense\"]"), with("[\"pooler.dense\"]"));
    }

    #[test]
    fn model_family_must_match_the_type_a_config_is_read_as() {
        let text = include_str!("../../../configs/quick.toml");
        let named = text.replace("[model]", "[model]\nfamily = \"other\"");
        let other = ExperimentConfig::<Other>::from_toml_str(&named, "o.toml").unwrap();
        let tiny = quick();
        assert_eq!(other.model.0, tiny.model);
        // The family is hashed, except the default one's.
        assert_ne!(other.results_hash(), tiny.results_hash());
        assert_ne!(other.pretrain_hash(), tiny.pretrain_hash());
        let err = ExperimentConfig::<Other>::from_toml_str(text, "t.toml")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("model.family = \"tinyformer\", but this config is read as a \"other\""),
            "{err}"
        );
        let err = ExperimentConfig::<TinyformerConfig>::from_toml_str(&named, "o.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("model.family = \"other\""), "{err}");
        assert_eq!(family_of_toml(&named).unwrap(), "other");
        assert_eq!(family_of_toml(text).unwrap(), DEFAULT_FAMILY);
    }

    fn quick() -> ExperimentConfig<TinyformerConfig> {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../configs/quick.toml");
        ExperimentConfig::<TinyformerConfig>::from_toml_file(Path::new(path)).unwrap()
    }

    #[test]
    fn bad_values_name_their_field() {
        type Mutation = Box<dyn Fn(&mut ExperimentConfig<TinyformerConfig>)>;
        let cases: Vec<(Mutation, &str)> = vec![
            (
                Box::new(|c| c.task.k_pretrain = Some(c.model.seq_len)),
                "task.k_pretrain",
            ),
            (
                Box::new(|c| c.task.n_finetune_val = 0),
                "task.n_finetune_val = 0",
            ),
            (
                Box::new(|c| c.pretrain.as_mut().unwrap().lr = -1.0),
                "pretrain.lr = -1",
            ),
            (
                Box::new(|c| c.pretrain.as_mut().unwrap().lr = f64::NAN),
                "pretrain.lr = NaN",
            ),
            (Box::new(|c| c.model.n_heads = 5), "model.n_heads = 5"),
            (Box::new(|c| c.name = "a/b".into()), "name = \"a/b\""),
            // What `lrscape run --max-population 0` sets before validating.
            (
                Box::new(|c| c.run.max_population = 0),
                "run.max_population = 0",
            ),
        ];
        for (mutate, expected) in cases {
            let mut config = quick();
            mutate(&mut config);
            let err = config.validate().unwrap_err().to_string();
            assert!(
                err.starts_with(expected),
                "{err:?} should start with {expected:?}"
            );
        }
    }

    #[test]
    fn a_parity_rank_outside_the_ranks_is_refused() {
        let mut config = quick();
        config.grid.parity_rank = 16;
        let err = config.validate().unwrap_err().to_string();
        assert!(
            err.contains("grid.parity_rank = 16") && err.contains("one of grid.ranks [2, 4]"),
            "{err}"
        );
        // Without an adapter there is nothing at that rank to report.
        config.grid.methods = vec![Method::Full];
        assert!(config.validate().is_ok());
    }

    #[test]
    fn a_value_of_the_wrong_shape_names_the_allowed_spellings() {
        let text = include_str!("../../../configs/quick.toml");
        for (from, to, expected) in [
            (
                "lrs = [3e-2, 1e-2, 3e-3, 1e-3]",
                "lrs = 3",
                "\"paper16\" or a list of learning rates",
            ),
            (
                "init = { kind = \"kaiming_uniform\" }",
                "init = \"x\"",
                "{ kind = \"kaiming_uniform\" } or { kind = \"gaussian\", std = <number> }",
            ),
            (
                "alpha = { rule = \"alpha_eq_r\" }",
                "alpha = 3",
                "{ rule = \"constant\", alpha = <number> }",
            ),
            (
                "targets = \"all\"",
                "targets = 3",
                "a preset name (e.g. \"all-linear\") or a list of module names",
            ),
            (
                "pos_init = { kind = \"normal\", std = 0.5 }",
                "pos_init = \"normal\"",
                "{ kind = \"normal\", std = <number> }",
            ),
        ] {
            let err = error_after_edit(text, from, to);
            assert!(err.contains(expected), "{expected} not in {err}");
            assert!(!err.contains("enum"), "{err}");
        }
    }

    #[test]
    fn a_thread_count_no_machine_has_is_refused() {
        let mut config = quick();
        config.run.threads = usize::MAX;
        let err = config.validate().unwrap_err().to_string();
        assert!(
            err.contains("run.threads") && err.contains("at most 1024"),
            "{err}"
        );
        config.run.threads = MAX_THREADS;
        assert!(config.validate().is_ok());
    }

    /// The error of quick.toml with `from` replaced by `to`.
    fn error_after_edit(text: &str, from: &str, to: &str) -> String {
        assert!(text.contains(from), "{from}");
        ExperimentConfig::<TinyformerConfig>::from_toml_str(&text.replace(from, to), "q.toml")
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn a_repeated_seed_rank_method_or_lr_is_refused() {
        let text = include_str!("../../../configs/quick.toml");
        for (from, to, expected) in [
            (
                "seeds = [0]",
                "seeds = [0, 0]",
                "grid.seeds = 0 twice: distinct values",
            ),
            ("ranks = [2, 4]", "ranks = [4, 4]", "grid.ranks = 4 twice"),
            (
                "\"lora\", \"dora\"",
                "\"lora\", \"lora\"",
                "grid.methods = lora twice",
            ),
            (
                "lrs = [3e-2, 1e-2",
                "lrs = [1e-2, 1e-2",
                "finetune.lrs = 0.01 twice",
            ),
        ] {
            let err = error_after_edit(text, from, to);
            assert!(err.contains(expected), "{err}");
        }
    }

    #[test]
    fn unknown_fields_and_type_errors_are_reported_with_their_name() {
        let text = include_str!("../../../configs/quick.toml");
        let typo = text.replacen("[pretrain]\n", "[pretrain]\nlearning_rate = 1.0\n", 1);
        let err = ExperimentConfig::<TinyformerConfig>::from_toml_str(&typo, "typo.toml")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("typo.toml") && err.contains("learning_rate"),
            "{err}"
        );
        let wrong_type = text.replacen("epochs = ", "epochs = \"ten\" #", 1);
        let err = ExperimentConfig::<TinyformerConfig>::from_toml_str(&wrong_type, "t.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("epochs"), "{err}");
    }

    #[test]
    fn adapters_are_saved_only_where_peft_can_load_them() {
        let text = include_str!("../../../configs/quick.toml");
        let set = |extra: &str| text.replacen("[run]\n", &format!("[run]\n{extra}\n"), 1);
        let err = ExperimentConfig::<TinyformerConfig>::from_toml_str(
            &set("save_adapters = \"best\""),
            "q.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("run.save_adapters = best: \"none\" for model.family = \"tinyformer\""),
            "{err}"
        );
        let none = ExperimentConfig::<TinyformerConfig>::from_toml_str(
            &set("save_adapters = \"none\""),
            "q.toml",
        )
        .unwrap();
        assert_eq!(none.run.save_adapters, SaveAdapters::None);
    }

    #[test]
    fn adapter_compute_defaults_to_weight_space_and_names_the_allowed_modes() {
        let text = include_str!("../../../configs/quick.toml");
        let config =
            ExperimentConfig::<TinyformerConfig>::from_toml_str(text, "quick.toml").unwrap();
        assert_eq!(config.run.adapter_compute, peft::Compute::WeightSpace);
        assert!(text.contains("[run]\n"));
        let set = |mode: &str| {
            text.replacen(
                "[run]\n",
                &format!("[run]\nadapter_compute = \"{mode}\"\n"),
                1,
            )
        };
        let config =
            ExperimentConfig::<TinyformerConfig>::from_toml_str(&set("activation_space"), "a.toml")
                .unwrap();
        assert_eq!(config.run.adapter_compute, peft::Compute::ActivationSpace);
        let err = ExperimentConfig::<TinyformerConfig>::from_toml_str(&set("auto"), "bad.toml")
            .unwrap_err()
            .to_string();
        for needle in [
            "bad.toml",
            "adapter_compute",
            "auto",
            "weight_space",
            "activation_space",
        ] {
            assert!(err.contains(needle), "{needle} not in {err}");
        }
    }

    #[test]
    fn alpha_and_init_lists_are_grid_axes() {
        let text = include_str!("../../../configs/quick.toml");
        let one_alpha = "alpha = { rule = \"alpha_eq_r\" }\n";
        let one_init = "init = { kind = \"kaiming_uniform\" }\n";
        assert!(text.contains(one_alpha) && text.contains(one_init));
        let axes = text
            .replacen(
                one_alpha,
                "alpha = [{ rule = \"alpha_eq_r\" }, { rule = \"constant\", alpha = 32.0 }]\n",
                1,
            )
            .replacen(
                one_init,
                "init = [{ kind = \"kaiming_uniform\" }, { kind = \"gaussian\", std = 0.02 }]\n",
                1,
            );
        let mut config =
            ExperimentConfig::<TinyformerConfig>::from_toml_str(&axes, "axes.toml").unwrap();
        config.grid.methods = vec![Method::Lora, Method::Pissa, Method::Full];
        config.grid.ranks = vec![2, 4];
        let cells = config.cells();
        // LoRA: 2 alphas × 2 inits × 2 ranks; PiSSA ignores the init: 2 × 2;
        // full fine-tuning: 1.
        assert_eq!(cells.len(), 8 + 4 + 1);
        let constant = cells
            .iter()
            .find(|c| c.method == Method::Lora && c.rank == 4 && c.alpha.label() == "constant:32")
            .unwrap();
        assert_eq!(constant.lora.as_ref().unwrap().lora_alpha, 32.0);
        assert_eq!(constant.lora.as_ref().unwrap().scaling(), 8.0);
        let labels: std::collections::BTreeSet<String> =
            cells.iter().map(|c| c.variant(&config)).collect();
        assert_eq!(labels.len(), 2 * 2 + 1, "{labels:?}");
        assert!(constant.label(&config).contains("constant:32"));

        let empty = text.replacen(one_alpha, "alpha = []\n", 1);
        let err = ExperimentConfig::<TinyformerConfig>::from_toml_str(&empty, "e.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("grid.alpha = []"), "{err}");
        let negative = text.replacen(
            one_alpha,
            "alpha = [{ rule = \"alpha_eq_r\" }, { rule = \"constant\", alpha = -1.0 }]\n",
            1,
        );
        let err = ExperimentConfig::<TinyformerConfig>::from_toml_str(&negative, "n.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("grid.alpha.alpha = -1"), "{err}");
        let typo = text.replacen(one_alpha, "alpha = [{ rule = \"const\" }]\n", 1);
        let err = ExperimentConfig::<TinyformerConfig>::from_toml_str(&typo, "t.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("const") && err.contains("alpha_eq_r"), "{err}");
    }

    #[test]
    fn batch_size_and_epochs_lists_are_grid_axes() {
        let text = include_str!("../../../configs/quick.toml");
        let (one_epochs, one_batch) = ("epochs = 3\n", "batch_size = 64\nweight_decay");
        assert!(text.contains(one_epochs) && text.contains(one_batch));
        let axes = text.replacen(one_epochs, "epochs = [1, 3]\n", 1).replacen(
            one_batch,
            "batch_size = [16, 64, 256]\nweight_decay",
            1,
        );
        let mut config =
            ExperimentConfig::<TinyformerConfig>::from_toml_str(&axes, "axes.toml").unwrap();
        config.grid.methods = vec![Method::Lora, Method::Full];
        config.grid.ranks = vec![2, 4];
        let cells = config.cells();
        // (LoRA: 2 ranks + full fine-tuning: 1) × 3 batch sizes × 2 epochs.
        assert_eq!(cells.len(), 3 * 3 * 2);
        let n = config.task.n_finetune_train;
        let small = cells
            .iter()
            .find(|c| c.method == Method::Lora && c.batch_size == 16 && c.epochs == 3)
            .unwrap();
        assert_eq!(small.steps(n), 3 * n.div_ceil(16));
        assert!(
            small.label(&config).contains("bs=16 ep=3"),
            "{}",
            small.label(&config)
        );
        // One value keeps the labels as they were.
        assert!(!quick().cells()[0].label(&quick()).contains("bs="));
        // The budget is in the trial key, not in the results hash: growing
        // an axis keeps the recorded trials valid.
        assert_eq!(config.results_hash(), quick().results_hash());

        for (field, bad_value, expected) in [
            ("epochs", "[]", "finetune.epochs = []"),
            ("epochs", "[1, 0]", "finetune.epochs = 0"),
            (
                "epochs",
                "[2, 2]",
                "finetune.epochs = [2, 2]: distinct values",
            ),
            ("batch_size", "0", "finetune.batch_size = 0"),
        ] {
            let bad_text = if field == "epochs" {
                text.replacen(one_epochs, &format!("epochs = {bad_value}\n"), 1)
            } else {
                text.replacen(
                    one_batch,
                    &format!("batch_size = {bad_value}\nweight_decay"),
                    1,
                )
            };
            let err = ExperimentConfig::<TinyformerConfig>::from_toml_str(&bad_text, "b.toml")
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(expected),
                "{err:?} should contain {expected:?}"
            );
        }
        let negative = text.replacen(one_epochs, "epochs = [-1]\n", 1);
        let err = ExperimentConfig::<TinyformerConfig>::from_toml_str(&negative, "n.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("epochs") && err.contains("-1"), "{err}");
    }

    #[test]
    fn a_learning_rate_schedule_is_read_in_transformers_words() {
        let text = include_str!("../../../configs/quick.toml");
        let anchor = "[finetune]";
        assert!(text.contains(anchor));
        let with = |lines: &str| text.replacen(anchor, &format!("{anchor}\n{lines}"), 1);
        let parse = |t: &str| ExperimentConfig::<TinyformerConfig>::from_toml_str(t, "s.toml");
        let config = parse(&with("lr_scheduler_type = \"cosine\"\nwarmup_ratio = 0.03")).unwrap();
        assert_eq!(
            config.finetune.lr_schedule(),
            train::LrSchedule {
                decay: train::LrDecay::Cosine,
                warmup_ratio: 0.03
            }
        );
        // A schedule is a new study; the constant one is every config's
        // default, written or not.
        assert_ne!(config.results_hash(), quick().results_hash());
        let constant = parse(&with(
            "lr_scheduler_type = \"constant\"\nwarmup_ratio = 0.0",
        ))
        .unwrap();
        assert_eq!(constant.results_hash(), quick().results_hash());
        for (lines, expected) in [
            (
                "warmup_ratio = 1.0",
                "finetune.warmup_ratio = 1: a number in [0, 1)",
            ),
            ("warmup_ratio = -0.1", "finetune.warmup_ratio = -0.1"),
            (
                "lr_scheduler_type = \"cosin\"",
                "`constant`, `linear`, `cosine`",
            ),
        ] {
            let err = parse(&with(lines)).unwrap_err().to_string();
            assert!(
                err.contains(expected),
                "{err:?} should contain {expected:?}"
            );
        }
    }

    #[test]
    fn loraplus_takes_its_ratio_from_the_grid() {
        let text = include_str!("../../../configs/quick.toml");
        let anchor = "[grid]";
        assert!(text.contains(anchor));
        let with = |lines: &str| text.replacen(anchor, &format!("{anchor}\n{lines}"), 1);
        let parse = |t: &str| ExperimentConfig::<TinyformerConfig>::from_toml_str(t, "p.toml");
        let config = parse(&with("loraplus_lr_ratio = 8.0")).unwrap();
        let cell = config.lora_config(
            Method::Loraplus,
            4,
            AlphaRule::AlphaEqR,
            LoraInit::default(),
            peft::Compute::default(),
        );
        assert_eq!(cell.loraplus_lr_ratio, 8.0);
        // The ratio is in each LoRA+ record, not the hash: a list grows
        // the grid and a rerun resumes.
        assert_eq!(config.results_hash(), quick().results_hash());
        let default = quick().lora_config(
            Method::Loraplus,
            4,
            AlphaRule::AlphaEqR,
            LoraInit::default(),
            peft::Compute::default(),
        );
        assert_eq!(default.loraplus_lr_ratio, 16.0);
        for (lines, want) in [
            (
                "loraplus_lr_ratio = 0.0",
                "grid.loraplus_lr_ratio = 0: a finite number > 0",
            ),
            (
                "loraplus_lr_ratio = []",
                "grid.loraplus_lr_ratio = []: at least one ratio",
            ),
            (
                "loraplus_lr_ratio = [4.0, 4.0]",
                "grid.loraplus_lr_ratio = 4 twice",
            ),
        ] {
            let err = parse(&with(lines)).unwrap_err().to_string();
            assert!(err.contains(want), "{err}");
        }
    }

    /// A list of ratios is an axis of LoRA+'s cells only; each cell, record
    /// key and variant carries its ratio.
    #[test]
    fn loraplus_ratios_are_an_axis() {
        let text = include_str!("../../../configs/quick.toml").replacen(
            "[grid]",
            "[grid]\nloraplus_lr_ratio = [2.0, 16.0]",
            1,
        );
        let text = text.replace("methods = [", "methods = [\"loraplus\", ");
        let config = ExperimentConfig::<TinyformerConfig>::from_toml_str(&text, "p.toml").unwrap();
        let cells = config.cells();
        let plus_cells: Vec<&Cell> = cells
            .iter()
            .filter(|c| c.method == Method::Loraplus)
            .collect();
        let per_ratio = config.grid.ranks.len();
        assert_eq!(plus_cells.len(), 2 * per_ratio);
        let ratios: BTreeSet<u64> = plus_cells
            .iter()
            .map(|c| c.loraplus_lr_ratio().unwrap().to_bits())
            .collect();
        assert_eq!(ratios.len(), 2);
        let variants: BTreeSet<String> = plus_cells.iter().map(|c| c.variant(&config)).collect();
        assert!(
            variants
                .iter()
                .all(|v| v.ends_with("/ratio2") || v.ends_with("/ratio16")),
            "{variants:?}"
        );
        assert_eq!(variants.len(), 2);
        let other = cells.iter().find(|c| c.method == Method::Lora).unwrap();
        assert_eq!(other.loraplus_lr_ratio(), None);
        assert!(!other.variant(&config).contains("ratio"));
        let labels: BTreeSet<String> = plus_cells.iter().map(|c| c.label(&config)).collect();
        assert_eq!(labels.len(), plus_cells.len(), "{labels:?}");
        let key = |c: &Cell| crate::grid::trial_key(&config, c, 1e-3, 0);
        assert_ne!(key(plus_cells[0]), key(plus_cells[per_ratio]));
    }

    /// The new methods' options enter the hash only when given (earlier
    /// studies keep theirs) and are named with `grid.` when wrong.
    #[test]
    fn new_method_options_are_hashed_and_checked() {
        let text = include_str!("../../../configs/quick.toml");
        let with = |lines: &str| text.replacen("[grid]", &format!("[grid]\n{lines}"), 1);
        let parse = |t: &str| ExperimentConfig::<TinyformerConfig>::from_toml_str(t, "p.toml");
        for lines in [
            "gralora_k = 4",
            "hybrid_r = 0",
            "randlora_alpha = 10.0",
            "projection_prng_key = 3",
            "randlora_sparse = true",
            "randlora_very_sparse = false",
            "lora_ga = { batches = 2 }",
        ] {
            let config = parse(&with(lines)).unwrap();
            assert_ne!(config.results_hash(), quick().results_hash(), "{lines}");
        }
        let methods = |m: &str| with("").replace("methods = [", &format!("methods = [\"{m}\", "));
        for (method, lines, want) in [
            (
                "gralora",
                "gralora_k = 3",
                "grid.gralora_k = 3: a number of blocks >= 1 that divides r",
            ),
            (
                "randlora",
                "randlora_alpha = -1.0",
                "grid.randlora_alpha = -1: a finite number > 0",
            ),
            (
                "lora_ga",
                "lora_ga = { scale = \"x\" }",
                "grid.lora_ga.scale = \"x\"",
            ),
        ] {
            let text = methods(method).replacen("[grid]", &format!("[grid]\n{lines}"), 1);
            let err = parse(&text).unwrap_err().to_string();
            assert!(err.contains(want), "{method}: {err}");
        }
        let err = parse(&with("lora_ga = { batch = 2 }"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `batch`"), "{err}");
    }

    #[test]
    fn pretrain_hash_tracks_what_the_base_depends_on() {
        let a = quick();
        let mut b = a.clone();
        b.task.k_finetune = a.task.k_finetune.map(|k| (k + 1) % a.model.seq_len);
        b.description = "changed".into();
        assert_eq!(
            a.pretrain_hash(),
            b.pretrain_hash(),
            "fine-tune settings do not change the base"
        );
        let mut c = a.clone();
        c.pretrain.as_mut().unwrap().lr *= 2.0;
        assert_ne!(a.pretrain_hash(), c.pretrain_hash());
        let mut d = a.clone();
        d.task.data_seed += 1;
        assert_ne!(a.pretrain_hash(), d.pretrain_hash());
    }
}
