//! Llama-layout causal language models, population-aware, from and to
//! Hugging Face directories.
//!
//! [`Llama`] is HF's `LlamaForCausalLM` and the checkpoints that share its
//! layout (`model_type` `llama`: Llama 2/3, SmolLM/SmolLM2; `qwen2`:
//! Qwen2/Qwen2.5, with q/k/v biases; `qwen3`: Qwen3, with per-head q/k
//! RMSNorm): RMSNorm, rotary position embeddings as HF applies them
//! (`rotate_half`), grouped-query attention, a SwiGLU MLP, a tied or untied
//! head. Every parameter has a member axis, so a frozen base is stored once
//! and shared by the members of a population; block linears are evaluated
//! through [`LinearHook`](nn::LinearHook) at sites named as HF PEFT names
//! them ([`adaptable::MODULES`]). [`hf`] reads and writes `config.json` +
//! `model.safetensors` directories; [`LlamaFamily`] is the `[model]` table
//! of a study of one (`family = "llama"`, `path`).

pub mod adaptable;
pub mod config;
pub mod family;
pub mod hf;
mod model;
mod rope;

pub use config::{LlamaConfig, RopeScaling};
pub use family::LlamaFamily;
pub use model::{Attention, DecoderLayer, Llama, Mlp};

/// What can go wrong reading a checkpoint or building a model; each names
/// the file, key or field.
#[derive(Debug, thiserror::Error)]
pub enum LlamaError {
    #[error("config.json: {field} = {value}: {allowed}")]
    Config {
        field: &'static str,
        value: String,
        allowed: String,
    },
    #[error(transparent)]
    File(#[from] nn::safetensors_io::FileError),
    #[error(
        "the checkpoint has no tensor {key} (Llama's keys: model.embed_tokens.weight, model.layers.<i>.*, model.norm.weight, lm_head.weight unless tied)"
    )]
    MissingTensor { key: String },
    /// A tensor of the wrong shape or dtype.
    #[error(transparent)]
    Tensor(#[from] nn::safetensors_io::TakeError),
}

impl LlamaError {
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
