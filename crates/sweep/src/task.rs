//! The data of an experiment's task, split by split, from its config.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use nn::{ModelConfig, TrainedTokenizer};
use synth_data::{MarkovChain, Optimum, SequenceDataset, markov_lm, retrieve_at_k};
use text_data::{Classified, TextTokenizer};

use crate::config::{ExperimentConfig, InstructionSpec, TaskSpec};

/// The two phases of an experiment: the base learns the pre-training
/// distribution, the adapters the shifted one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Pretrain,
    Finetune,
}

/// `markov_lm`'s chains: the pre-training chain and the fine-tuning chain
/// (some rows redrawn), with the redrawn tokens.
#[derive(Debug, Clone)]
pub struct Chains {
    pub pretrain: MarkovChain,
    pub finetune: MarkovChain,
    pub shifted_rows: Vec<u32>,
}

/// The chains of a `markov_lm` config (drawn from `data_seed + 4` and
/// `+ 5`, wrapping, as every seed offset here); `None` for another task.
pub fn markov_chains<M: ModelConfig>(
    config: &ExperimentConfig<M>,
) -> anyhow::Result<Option<Chains>> {
    let TaskSpec::MarkovLm { branching, shift } = config.task.spec(&config.model)? else {
        return Ok(None);
    };
    let seed = config.task.data_seed;
    let pretrain = MarkovChain::random(config.model.vocab(), branching, seed.wrapping_add(4))?;
    let (finetune, shifted_rows) = pretrain.shifted(shift, seed.wrapping_add(5))?;
    Ok(Some(Chains {
        pretrain,
        finetune,
        shifted_rows,
    }))
}

/// `n` examples of `phase`'s distribution drawn from `seed`.
pub fn examples<M: ModelConfig>(
    config: &ExperimentConfig<M>,
    phase: Phase,
    n: usize,
    seed: u64,
) -> anyhow::Result<SequenceDataset> {
    let (seq, vocab) = (config.model.seq_len(), config.model.vocab());
    Ok(match config.task.spec(&config.model)? {
        TaskSpec::RetrieveAtK {
            k_pretrain,
            k_finetune,
        } => {
            let k = match phase {
                Phase::Pretrain => k_pretrain,
                Phase::Finetune => k_finetune,
            };
            retrieve_at_k(n, seq, vocab, k, seed)?
        }
        TaskSpec::MarkovLm { .. } => {
            let chains = markov_chains(config)?.expect("a markov_lm spec has chains");
            let chain = match phase {
                Phase::Pretrain => &chains.pretrain,
                Phase::Finetune => &chains.finetune,
            };
            markov_lm(chain, n, seq, seed)?
        }
        TaskSpec::TextLm { .. }
        | TaskSpec::TextClassification { .. }
        | TaskSpec::Instruction(_) => {
            anyhow::bail!(
                "task.kind = \"{}\" reads its splits from files, not drawn",
                config.task.kind.name()
            )
        }
    })
}

/// Text datasets by (file, tokenizer, block size, vocab) digest: a study
/// tokenizes each file once per process.
type TextCache = HashMap<(String, String, usize, usize), Arc<SequenceDataset>>;
static TEXT: Mutex<Option<TextCache>> = Mutex::new(None);
/// Tokenizers by [`tokenizer`]'s key.
static TOKENIZERS: Mutex<Option<HashMap<String, Arc<TextTokenizer>>>> = Mutex::new(None);

fn cached<K: std::hash::Hash + Eq, V: Clone>(
    cache: &Mutex<Option<HashMap<K, V>>>,
    key: K,
    make: impl FnOnce() -> anyhow::Result<V>,
) -> anyhow::Result<V> {
    if let Some(value) = cache
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
        .and_then(|c| c.get(&key))
    {
        return Ok(value.clone());
    }
    let value = make()?;
    cache
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get_or_insert_with(HashMap::new)
        .insert(key, value.clone());
    Ok(value)
}

/// The tokenizer a text task encodes with, and a key naming its content:
/// the model's `tokenizer.json`, or, for a base pre-trained here, a
/// byte-level BPE of the model's vocabulary trained on
/// `task.pretrain_train` (trained once per process; the same text and size
/// give the same tokenizer).
pub fn tokenizer<M: ModelConfig>(
    config: &ExperimentConfig<M>,
) -> anyhow::Result<(Arc<TextTokenizer>, String)> {
    if let Some(path) = config.model.tokenizer() {
        let key = format!("file:{}", crate::digest::file_sha256(&path));
        let tokenizer = cached(&TOKENIZERS, key.clone(), || {
            Ok(Arc::new(TextTokenizer::from_file(&path)?))
        })?;
        return Ok((tokenizer, key));
    }
    let pretrain = match config.task.spec(&config.model)? {
        TaskSpec::TextLm { pretrain, .. } | TaskSpec::TextClassification { pretrain, .. } => {
            pretrain
        }
        _ => None,
    };
    let Some((train, _)) = pretrain else {
        anyhow::bail!(
            "model.family = \"{}\" has no tokenizer and the task no pre-training text to \
             train one on",
            M::FAMILY
        );
    };
    let path = config.path(&train);
    let vocab = config.model.vocab();
    let kind = config.model.trained_tokenizer();
    let key = format!("{kind:?}:{vocab}:{}", crate::digest::file_sha256(&path));
    let tokenizer = cached(&TOKENIZERS, key.clone(), || {
        let text = text_data::read_text(&path)?;
        let trained = match kind {
            TrainedTokenizer::ByteLevelBpe => TextTokenizer::train_byte_level_bpe(&[&text], vocab),
            TrainedTokenizer::WordPiece => TextTokenizer::train_wordpiece(&[&text], vocab),
        };
        let trained = trained.with_context(|| {
            format!(
                "cannot train a tokenizer ({kind:?}) of the model's {vocab} tokens on {}",
                path.display()
            )
        })?;
        Ok(Arc::new(trained))
    })?;
    Ok((tokenizer, key))
}

/// The masked-LM blocks of the pre-training text `file` (a path of the
/// config): `max_length` tokens each, `copies` maskings of each, masks
/// drawn from `seed`.
fn masked_split<M: ModelConfig>(
    config: &ExperimentConfig<M>,
    file: &Path,
    (max_length, copies): (usize, usize),
    seed: u64,
) -> anyhow::Result<SequenceDataset> {
    let path = config.path(file);
    let (tokenizer, _) = tokenizer(config)?;
    let text = text_data::read_text(&path)?;
    Ok(text_data::masked_lm(
        &tokenizer,
        &text,
        (max_length, copies),
        seed,
        &path.display().to_string(),
    )?)
}

/// The `text_lm` examples of `file` (a path of the config), tokenized with
/// the task's [`tokenizer`].
fn text_split<M: ModelConfig>(
    config: &ExperimentConfig<M>,
    file: &Path,
    block_size: usize,
) -> anyhow::Result<Arc<SequenceDataset>> {
    let path = config.path(file);
    let (tokenizer, tokenizer_key) = tokenizer(config)?;
    let vocab = config.model.vocab();
    let key = (
        crate::digest::file_sha256(&path),
        tokenizer_key,
        block_size,
        vocab,
    );
    cached(&TEXT, key, || {
        Ok(Arc::new(text_data::text_lm(
            &tokenizer, &path, block_size, vocab,
        )?))
    })
}

/// Labelled datasets by (file, tokenizer, encoding, columns) digest.
type LabelledCache = HashMap<(String, String, String, String), Arc<Classified>>;
static LABELLED: Mutex<Option<LabelledCache>> = Mutex::new(None);

/// The `text_classification` examples of `file` (a path of the config).
fn labelled_split<M: ModelConfig>(
    config: &ExperimentConfig<M>,
    file: &Path,
    (max_length, pad): (usize, u32),
    columns: &text_data::Columns,
) -> anyhow::Result<Arc<Classified>> {
    let path = config.path(file);
    let (tokenizer, tokenizer_key) = tokenizer(config)?;
    let labels = config
        .model
        .num_labels()
        .context("task.kind = \"text_classification\" needs model.num_labels")?;
    let encoding = text_data::ClassifierEncoding {
        max_length,
        pad_id: pad,
        special_tokens: config.model.special_tokens(),
    };
    let key = (
        crate::digest::file_sha256(&path),
        tokenizer_key,
        format!("{encoding:?}"),
        format!("{columns:?}"),
    );
    cached(&LABELLED, key, || {
        let examples = text_data::read_labelled(&path, columns)?;
        Ok(Arc::new(text_data::classification(
            &tokenizer,
            &examples,
            encoding,
            labels,
            config.model.vocab(),
            &path,
        )?))
    })
}

/// Passes pre-training makes over its training split: `pretrain.epochs`,
/// or one where the split holds every epoch's data (a masked LM's, each
/// epoch masked afresh).
pub fn pretrain_epochs<M: ModelConfig>(config: &ExperimentConfig<M>) -> anyhow::Result<usize> {
    let epochs = config.pretrain.as_ref().map_or(1, |p| p.epochs);
    Ok(match config.task.spec(&config.model)? {
        TaskSpec::TextClassification {
            pretrain: Some(_), ..
        } => 1,
        _ => epochs,
    })
}

/// What the run should say about its data: texts of a
/// `text_classification` split longer than `max_length`, which were cut.
pub fn data_notes<M: ModelConfig>(config: &ExperimentConfig<M>) -> anyhow::Result<Vec<String>> {
    let TaskSpec::TextClassification {
        train,
        val,
        max_length,
        columns,
        pad_token_id,
        ..
    } = config.task.spec(&config.model)?
    else {
        return Ok(Vec::new());
    };
    let mut notes = Vec::new();
    for (split, file) in [("train", &train), ("val", &val)] {
        let classified = labelled_split(config, file, (max_length, pad_token_id), &columns)?;
        if classified.truncated > 0 {
            notes.push(format!(
                "task.{split}: {} of {} texts were longer than max_length = {max_length} \
                 tokens and were cut",
                classified.truncated,
                synth_data::Dataset::len(&classified.data)
            ));
        }
    }
    Ok(notes)
}

/// Instruction datasets by (file, tokenizer, the spec's other fields) digest.
type InstructionCache = HashMap<(String, String, String), Arc<SequenceDataset>>;
static INSTRUCTIONS: Mutex<Option<InstructionCache>> = Mutex::new(None);

/// The `instruction` examples of `file` (a path of the config).
fn instruction_split<M: ModelConfig>(
    config: &ExperimentConfig<M>,
    file: &Path,
    spec: &InstructionSpec,
) -> anyhow::Result<Arc<SequenceDataset>> {
    let path = config.path(file);
    let (tokenizer, tokenizer_key) = tokenizer(config)?;
    let sequences = text_data::Sequences {
        max_length: spec.max_length,
        pad_id: spec.pad_token_id,
        eos_id: spec.eos_token_id,
        packing: spec.packing,
        vocab: config.model.vocab(),
    };
    let template = &spec.template;
    let key = (
        crate::digest::file_sha256(&path),
        tokenizer_key,
        format!("{sequences:?} {template:?}"),
    );
    cached(&INSTRUCTIONS, key, || {
        let examples = text_data::read_instructions(&path)?;
        Ok(Arc::new(text_data::instruction_tuning(
            &tokenizer, template, &examples, sequences, &path,
        )?))
    })
}

/// The val prompts of an `instruction` task scored by generation, with
/// what decoding needs; `None` for any other task.
#[derive(Clone)]
pub struct Questions {
    pub items: Vec<text_data::Question>,
    pub max_new_tokens: usize,
    pub eos: Option<u32>,
    pub tokenizer: Arc<TextTokenizer>,
}

impl Questions {
    /// `examples` as prompts of up to `max_length` tokens made by
    /// `template`, each with the answer of its output.
    pub fn new(
        tokenizer: Arc<TextTokenizer>,
        template: &text_data::PromptTemplate,
        examples: &[text_data::Instruction],
        max_length: usize,
        (max_new_tokens, eos): (usize, Option<u32>),
    ) -> anyhow::Result<Self> {
        Ok(Self {
            items: text_data::questions(&tokenizer, template, examples, max_length)?,
            max_new_tokens,
            eos,
            tokenizer,
        })
    }
}

/// The val questions of a config's `instruction` task scored by generation.
pub fn questions<M: ModelConfig>(
    config: &ExperimentConfig<M>,
) -> anyhow::Result<Option<Questions>> {
    let TaskSpec::Instruction(spec) = config.task.spec(&config.model)? else {
        return Ok(None);
    };
    let Some(max_new_tokens) = spec.max_new_tokens else {
        return Ok(None);
    };
    let (tokenizer, _) = tokenizer(config)?;
    let examples = text_data::read_instructions(&config.path(&spec.val))?;
    let generation = (max_new_tokens, spec.eos_token_id);
    Questions::new(
        tokenizer,
        &spec.template,
        &examples,
        spec.max_length,
        generation,
    )
    .map(Some)
}

/// Examples in the fine-tuning training split (for `text_lm`, the train
/// file's blocks: the file is read and tokenized).
pub fn finetune_train_len<M: ModelConfig>(config: &ExperimentConfig<M>) -> anyhow::Result<usize> {
    match config.task.spec(&config.model)? {
        TaskSpec::TextLm {
            train, block_size, ..
        } => Ok(synth_data::Dataset::len(&*text_split(
            config, &train, block_size,
        )?)),
        TaskSpec::TextClassification {
            train,
            max_length,
            columns,
            pad_token_id,
            ..
        } => Ok(synth_data::Dataset::len(
            &labelled_split(config, &train, (max_length, pad_token_id), &columns)?.data,
        )),
        TaskSpec::Instruction(spec) => Ok(synth_data::Dataset::len(&*instruction_split(
            config,
            &spec.train,
            &spec,
        )?)),
        _ => Ok(config.task.n_finetune_train),
    }
}

/// The (train, val) splits of `phase`, sized and seeded as the config says.
pub fn splits<M: ModelConfig>(
    config: &ExperimentConfig<M>,
    phase: Phase,
) -> anyhow::Result<(SequenceDataset, SequenceDataset)> {
    // Every command that trains or measures comes through here first.
    crate::memory::check(config)?;
    let t = &config.task;
    if let TaskSpec::TextLm {
        train,
        val,
        block_size,
        pretrain,
    } = t.spec(&config.model)?
    {
        let (train, val) = match (phase, pretrain) {
            (Phase::Finetune, _) => (train, val),
            (Phase::Pretrain, Some(texts)) => texts,
            (Phase::Pretrain, None) => anyhow::bail!(
                "task.kind = \"text_lm\" has no pre-training split: the base is the model's \
                 checkpoint"
            ),
        };
        let train = text_split(config, &train, block_size)?;
        let val = text_split(config, &val, block_size)?;
        return Ok(((*train).clone(), (*val).clone()));
    }
    if let TaskSpec::TextClassification {
        train,
        val,
        max_length,
        columns,
        pad_token_id,
        pretrain,
    } = t.spec(&config.model)?
    {
        if phase == Phase::Pretrain {
            let Some((train, val)) = pretrain else {
                anyhow::bail!(
                    "task.kind = \"text_classification\" has no pre-training split: the base \
                     is the model's checkpoint"
                );
            };
            // Every epoch's masks in the training split: pre-training
            // passes over it once ([`pretrain_epochs`]).
            let (seed, epochs) = config
                .pretrain
                .as_ref()
                .map_or((0, 1), |p| (p.seed, p.epochs));
            return Ok((
                masked_split(config, &train, (max_length, epochs), seed)?,
                masked_split(config, &val, (max_length, 1), seed.wrapping_add(1))?,
            ));
        }
        let split =
            |file: &Path| labelled_split(config, file, (max_length, pad_token_id), &columns);
        return Ok((split(&train)?.data.clone(), split(&val)?.data.clone()));
    }
    if let TaskSpec::Instruction(spec) = t.spec(&config.model)? {
        if phase == Phase::Pretrain {
            anyhow::bail!(
                "task.kind = \"instruction\" has no pre-training split: the base is the \
                 model's checkpoint"
            );
        }
        let train = instruction_split(config, &spec.train, &spec)?;
        let val = instruction_split(config, &spec.val, &spec)?;
        return Ok(((*train).clone(), (*val).clone()));
    }
    let seed = t.data_seed;
    Ok(match phase {
        Phase::Pretrain => (
            examples(config, phase, t.n_pretrain_train, seed)?,
            examples(config, phase, t.n_pretrain_val, seed.wrapping_add(1))?,
        ),
        Phase::Finetune => (
            examples(config, phase, t.n_finetune_train, seed.wrapping_add(2))?,
            examples(config, phase, t.n_finetune_val, seed.wrapping_add(3))?,
        ),
    })
}

/// The lowest loss any model can reach on `phase`'s data (`markov_lm`); `None`
/// for retrieval, where it is 0.
pub fn optimum<M: ModelConfig>(
    config: &ExperimentConfig<M>,
    phase: Phase,
) -> anyhow::Result<Option<Optimum>> {
    Ok(markov_chains(config)?.map(|chains| {
        let chain = match phase {
            Phase::Pretrain => &chains.pretrain,
            Phase::Finetune => &chains.finetune,
        };
        chain.optimum(config.model.seq_len())
    }))
}

/// The fine-tuning splits (train, val).
pub fn finetune_data<M: ModelConfig>(
    config: &ExperimentConfig<M>,
) -> anyhow::Result<(SequenceDataset, SequenceDataset)> {
    splits(config, Phase::Finetune)
}
