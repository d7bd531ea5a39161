//! The model-family trait: what orchestration (`sweep`) needs of a family
//! without naming it.

use std::fmt::Debug;
use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::tensor::Device;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::model::{Adaptable, LinearLayout};

/// A value of a family's `[model]` table outside what the model can be built
/// with.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("model.{field} = {value}: {allowed}")]
pub struct ConfigError {
    pub field: &'static str,
    pub value: String,
    pub allowed: String,
}

impl ConfigError {
    pub fn new(field: &'static str, value: impl ToString, allowed: impl Into<String>) -> Self {
        Self {
            field,
            value: value.to_string(),
            allowed: allowed.into(),
        }
    }
}

/// The label count `transformers` reads from a classifier's `config.json`:
/// `id2label`'s entries, else `num_labels`, else its default, 2.
pub fn hf_label_count(json: &serde_json::Value) -> usize {
    json.get("id2label")
        .and_then(|m| m.as_object())
        .map(|m| m.len())
        .or_else(|| {
            json.get("num_labels")
                .and_then(|n| n.as_u64())
                .map(|n| n as usize)
        })
        .unwrap_or(2)
}

/// The values of a `[model]` table's shape fields `(field, value)`, each
/// required: the first one missing is an error saying it is `allowed`.
pub fn required_shape<const N: usize>(
    fields: [(&'static str, Option<usize>); N],
    allowed: &str,
) -> Result<[usize; N], ConfigError> {
    let mut values = [0; N];
    for (value, (field, given)) in values.iter_mut().zip(fields) {
        *value = given.ok_or_else(|| ConfigError::new(field, "missing", allowed))?;
    }
    Ok(values)
}

/// The sizes of a transformer that memory estimates depend on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransformerShape {
    pub vocab: usize,
    pub d_model: usize,
    pub d_ff: usize,
    pub layers: usize,
    pub heads: usize,
}

impl TransformerShape {
    /// Floats the forward pass over `seq` tokens keeps for the backward
    /// pass, roughly: per block the norms, the attention projections and
    /// residuals (≈ 10 d per token), the MLP (3 ff), the scores and their
    /// softmax (2 · heads · seq); then the logits and their log-softmax.
    pub fn activations_per_sequence(&self, seq: usize) -> f64 {
        let [vocab, seq, d, ff, layers, heads] = [
            self.vocab,
            seq,
            self.d_model,
            self.d_ff,
            self.layers,
            self.heads,
        ]
        .map(|n| n as f64);
        let block = seq * (10.0 * d + 3.0 * ff + 2.0 * heads * seq);
        seq * d + layers * block + 2.0 * seq * vocab
    }
}

/// The kind of tokenizer trained for a base pre-trained here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrainedTokenizer {
    /// GPT-2's: bytes, merges, `<|endoftext|>`.
    ByteLevelBpe,
    /// BERT's: lower case, `##` continuations, `[CLS] … [SEP]`.
    WordPiece,
}

/// A model family, seen through its config (the `[model]` table of an
/// experiment): the shapes tasks are checked against, the adaptable linears,
/// and how a base is made, saved and loaded. `sweep` is generic over it;
/// the binary maps `[model] family` to an implementation.
pub trait ModelConfig:
    Clone + Debug + PartialEq + Default + Serialize + DeserializeOwned + Send + Sync + 'static
{
    /// The `family` key of `[model]` that selects this family.
    const FAMILY: &'static str;

    /// The model a base of this family is.
    type Model: Adaptable + Send + Sync;

    /// Checks every field; the first problem found is returned.
    fn validate(&self) -> Result<(), ConfigError>;

    /// Token ids are below this.
    fn vocab(&self) -> usize;

    /// The longest token sequence the model reads.
    fn seq_len(&self) -> usize;

    /// A language model (causal mask, logits at every position) rather than
    /// a classifier reading the last position.
    fn causal(&self) -> bool;

    /// The adaptable linears, known before a model exists.
    fn linear_layout(&self) -> LinearLayout;

    /// The base's parameter count, from the config alone (in `f64`: a
    /// config can name sizes whose product overflows an integer).
    fn parameters(&self) -> f64;

    /// Floats the forward pass of one sequence of `seq_len` tokens keeps
    /// for the backward pass, roughly: what memory estimates scale with the
    /// batch.
    fn activations_per_sequence(&self, seq_len: usize) -> f64;

    /// A freshly initialised model; `seed` decides every weight.
    fn init(&self, seed: u64, device: &Device) -> Result<Self::Model, ConfigError>;

    /// Writes a base to `path` (a Burn record by default).
    fn save_base(model: &Self::Model, path: &Path) -> Result<(), String> {
        model.clone().save_file(path).map_err(|e| format!("{e:?}"))
    }

    /// Reads a base [`save_base`](Self::save_base) wrote, checking that it
    /// fits this config's shapes.
    fn load_base(&self, path: &Path, device: &Device) -> Result<Self::Model, String> {
        let skeleton = self.init(0, device).map_err(|e| e.to_string())?;
        skeleton.try_load_file(path).map_err(|e| format!("{e:?}"))
    }

    /// The model fine-tuning starts from a base pre-trained here: the base
    /// itself, or (an encoder pre-trained as a masked LM) its body with the
    /// fine-tuning task's head.
    fn for_finetuning(&self, base: Self::Model, device: &Device) -> Self::Model {
        let _ = device;
        base
    }

    /// Writes a base as a Hugging Face directory (`config.json`,
    /// `model.safetensors`) that `transformers` loads, where the family has
    /// that format; `Ok(false)` where it has none.
    fn save_pretrained(&self, model: &Self::Model, dir: &Path) -> Result<bool, String> {
        let _ = (model, dir);
        Ok(false)
    }

    /// Reads what the config names on disk (a checkpoint's `config.json`),
    /// relative paths taken from `dir` (the config file's directory).
    /// Called once after parsing, before [`validate`](Self::validate).
    fn resolve(&mut self, dir: &Path) -> Result<(), ConfigError> {
        let _ = dir;
        Ok(())
    }

    /// The checkpoint directory the base is read from; `None` when the base
    /// is pre-trained here (from [`init`](Self::init) and `[pretrain]`).
    fn checkpoint(&self) -> Option<&Path> {
        None
    }

    /// Reads the base from [`checkpoint`](Self::checkpoint).
    fn load_checkpoint(&self, device: &Device) -> Result<Self::Model, String> {
        let _ = device;
        Err(format!("family {} reads no checkpoints", Self::FAMILY))
    }

    /// The `tokenizer.json` text tasks encode with, where the model has one.
    fn tokenizer(&self) -> Option<PathBuf> {
        None
    }

    /// Files whose bytes decide results (a checkpoint's weights and config,
    /// its tokenizer): their digests key results, so a changed file is a
    /// new study rather than a silent resume.
    fn files(&self) -> Vec<PathBuf> {
        Vec::new()
    }

    /// A sequence classifier's label count; `None` for a language model.
    fn num_labels(&self) -> Option<usize> {
        None
    }

    /// The token a classifier's batches are padded with (a checkpoint's
    /// `pad_token_id`, else its end-of-text token).
    fn pad_token_id(&self) -> Option<u32> {
        None
    }

    /// The end-of-text token a response ends with (a checkpoint's
    /// `eos_token_id`).
    fn eos_token_id(&self) -> Option<u32> {
        None
    }

    /// The tokenizer trained on the pre-training text for a base
    /// pre-trained here (where the family has none of its own).
    fn trained_tokenizer(&self) -> TrainedTokenizer {
        TrainedTokenizer::ByteLevelBpe
    }

    /// Whether texts are encoded with the tokenizer's special tokens (an
    /// encoder's `[CLS] … [SEP]`), cut so that they fit with them, as
    /// `transformers`' tokenizers do by default; else without any.
    fn special_tokens(&self) -> bool {
        false
    }

    /// Whether the output head stays frozen under adapters, as PEFT leaves
    /// a causal language model's `lm_head` (GPT-2's is the token embedding):
    /// then `grid.train_head` defaults to, and must be, false.
    fn head_is_frozen(&self) -> bool {
        false
    }
}
