//! Parameter-efficient adapters for any frozen [`nn::Adaptable`] model.
//!
//! Kept apart as HF PEFT's `tuners/lora/` does: [`config`] (the
//! `LoraConfig` vocabulary: method, `r`, `lora_alpha`, `target_modules`,
//! init), [`layer`] (one adapted linear), [`model`] (adapting, merging and
//! counting a whole model), [`init`] (random and SVD initial factors).
//!
//! Every adapter tensor carries the member axis: `A: [C, in, r]`,
//! `B: [C, r, out]`, DoRA's magnitude `[C, out]`. The frozen base is stored
//! once. Adapters reach the model only through `nn`'s `LinearHook`, at sites
//! the model family names; this crate never imports a model family.
//!
//! **Why not Burn's `apply_lora`.** Burn 0.22's built-in LoRA reparameterises
//! every matching 2-D weight as `W + s·a b` in weight space. It has no member
//! axis (its factors are `[in, r]`, one copy) and its init is fixed
//! (`a ~ N(0, 1/r)`). The study needs per-member factors, PEFT's inits,
//! DoRA's detached norm and PiSSA's residual base, so adapters here are
//! their own modules evaluated through the hook. The low-rank path runs in
//! weight space by default (the merged `W + s·A B` per member, the faster
//! on flex: every product dense) or in activation space (`(x A) B`, HF
//! PEFT's form), chosen by [`Compute`]; the function is the same.

pub mod config;
pub mod init;
pub mod layer;
pub mod model;
pub mod pretrained;

pub use config::{LoraConfig, LoraGaConfig, LoraInit, Method, TargetModules};
pub use layer::{Compute, LayerKind, LoraLayer};
pub use model::{BlockAdapters, MergedModel, PeftModel, SiteGradients};

use nn::LinearSite;

/// An adapter setting that cannot be applied.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PeftError {
    #[error("{field} = {value}: {allowed}")]
    Invalid {
        field: &'static str,
        value: String,
        allowed: String,
    },
    #[error(
        "the base weight of block {} linear {} holds NaN or infinite values; an SVD init needs a finite weight",
        .0.layer,
        .0.module
    )]
    NonFiniteWeight(LinearSite),
    #[error(
        "the loss gradient at block {} linear {} holds NaN or infinite values; lora_ga needs a finite gradient",
        .0.layer,
        .0.module
    )]
    NonFiniteGradient(LinearSite),
    #[error("lora_ga needs the loss gradient at block {} linear {} (no gradient was given)", .0.layer, .0.module)]
    NoGradient(LinearSite),
    #[error("the model has no linear at {0} (an adapter or merged model of another model)")]
    NoSuchSite(LinearSite),
    #[error("{path}: {message}")]
    File { path: String, message: String },
    /// A tensor of an adapter file of the wrong shape or dtype.
    #[error(transparent)]
    Tensor(#[from] nn::safetensors_io::TakeError),
}

impl PeftError {
    pub fn invalid(field: &'static str, value: impl ToString, allowed: impl Into<String>) -> Self {
        PeftError::Invalid {
            field,
            value: value.to_string(),
            allowed: allowed.into(),
        }
    }
}
