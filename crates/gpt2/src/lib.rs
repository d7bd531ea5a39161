//! GPT-2-family language models, population-aware, from and to Hugging Face
//! directories.
//!
//! [`Gpt2`] is HF's `GPT2LMHeadModel` (gpt2, distilgpt2, gpt2-medium and any
//! checkpoint of that layout) built from `nn`'s population blocks: every
//! parameter has a member axis, so a frozen base is stored once and shared
//! by the members of a population. Its block linears are evaluated through
//! [`LinearHook`](nn::LinearHook) at sites named as HF PEFT names them
//! ([`adaptable::MODULES`]). [`hf`] reads and writes `config.json` +
//! `model.safetensors` directories; [`Gpt2Family`] is the `[model]` table of
//! a study of one (`family = "gpt2"`, `path`).

pub mod adaptable;
mod any;
pub mod classify;
pub mod config;
pub mod family;
pub mod hf;
mod model;

pub use any::Gpt2Model;
pub use classify::Gpt2ForSequenceClassification;
pub use config::{Activation, Gpt2Config};
pub use family::Gpt2Family;
pub use model::{Attention, Block, Gpt2, Mlp};

/// What can go wrong reading a checkpoint or building a model; each names
/// the file, key or field.
#[derive(Debug, thiserror::Error)]
pub enum Gpt2Error {
    #[error("config.json: {field} = {value}: {allowed}")]
    Config {
        field: &'static str,
        value: String,
        allowed: String,
    },
    #[error("{path}: {message}")]
    File { path: String, message: String },
    #[error(
        "the checkpoint has no tensor {key} (GPT-2's keys: wte.weight, wpe.weight, h.<i>.*, ln_f.*, optionally prefixed transformer.)"
    )]
    MissingTensor { key: String },
    /// A tensor of the wrong shape or dtype.
    #[error(transparent)]
    Tensor(#[from] nn::safetensors_io::TakeError),
}

impl Gpt2Error {
    pub fn config(field: &'static str, value: impl ToString, allowed: impl Into<String>) -> Self {
        Self::Config {
            field,
            value: value.to_string(),
            allowed: allowed.into(),
        }
    }

    pub fn file(path: impl std::fmt::Display, message: impl std::fmt::Display) -> Self {
        Self::File {
            path: path.to_string(),
            message: message.to_string(),
        }
    }
}
