//! Encoders in BERT's family, population-aware, from and to Hugging Face
//! directories, with the sequence-classification heads `transformers`
//! builds on them.
//!
//! [`Bert`] is HF's `DistilBertModel` (`model_type` `distilbert`) or
//! `BertModel` (`bert`: token-type embeddings, a pooler): learned
//! positions, post-LN blocks, bidirectional attention that ignores padding
//! (a token equal to `pad_token_id` is padding), GELU (erf). Every
//! parameter has a member axis, so a frozen base is stored once and shared
//! by the members of a population; block linears are evaluated through
//! [`LinearHook`](nn::LinearHook) at sites named as HF PEFT names them
//! ([`adaptable`]). [`BertForSequenceClassification`] reads the first
//! (`[CLS]`) position through DistilBERT's `pre_classifier` + ReLU or BERT's
//! pooler + tanh, then `classifier`; [`BertForMaskedLM`] is what an encoder
//! lrscape pre-trains itself learns, and [`BertModel`] either of the two
//! behind one type. [`hf`] reads and writes Hugging Face
//! directories (`config.json`, `model.safetensors`); [`BertFamily`] is the
//! `[model]` table of a study of one (`family = "bert"`, `path`,
//! `num_labels`).

pub mod adaptable;
mod any;
mod classify;
pub mod config;
pub mod family;
pub mod hf;
mod masked_lm;
mod model;

pub use any::BertModel;
pub use classify::{BertForSequenceClassification, new_head};
pub use config::{Activation, BertConfig, Variant};
pub use family::BertFamily;
pub use masked_lm::BertForMaskedLM;
pub use model::{Attention, Bert, Embeddings, EncoderLayer, LinearWeights};

/// What can go wrong reading a checkpoint or building a model; each names
/// the file, key or field.
#[derive(Debug, thiserror::Error)]
pub enum BertError {
    #[error("config.json: {field} = {value}: {allowed}")]
    Config {
        field: &'static str,
        value: String,
        allowed: String,
    },
    #[error(transparent)]
    File(#[from] nn::safetensors_io::FileError),
    #[error(
        "the checkpoint has no tensor {key} (an encoder's keys: embeddings.*, \
         transformer.layer.<i>.* (DistilBERT) or encoder.layer.<i>.* (BERT), optionally \
         prefixed distilbert. or bert.)"
    )]
    MissingTensor { key: String },
    /// A tensor of the wrong shape or dtype.
    #[error(transparent)]
    Tensor(#[from] nn::safetensors_io::TakeError),
}

impl BertError {
    pub fn config(field: &'static str, value: impl ToString, allowed: impl Into<String>) -> Self {
        Self::Config {
            field,
            value: value.to_string(),
            allowed: allowed.into(),
        }
    }

    pub fn file(path: &std::path::Path, message: impl std::fmt::Display) -> Self {
        Self::File(nn::safetensors_io::FileError::new(path, message))
    }
}
