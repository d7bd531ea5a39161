//! The seed study's tiny transformer, population-aware.
//!
//! [`Tinyformer`] is the seed notebook's `TinyTransformer`: token embedding,
//! a learned position table, pre-norm blocks (RMSNorm, unmasked multi-head
//! attention with bias-free q/k/v/o, a GELU MLP with biases), a final RMSNorm
//! and a linear head on the last position. With `causal` it is a language
//! model instead: a causal attention mask and the head on every position.
//!
//! It is built from `nn`'s population blocks (every parameter has a member
//! axis) and implements `nn`'s [`PopulationModel`](nn::PopulationModel) and
//! [`Adaptable`](nn::Adaptable): block linears are evaluated through
//! [`LinearHook`](nn::LinearHook) at sites named by [`adaptable::MODULES`].
//!
//! The crate takes a Burn [`Device`](burn::tensor::Device) and never names a
//! backend. Initial weights are drawn on the host ([`nn::init::ParamRng`]), so a
//! seed gives the same model on every backend.

pub mod adaptable;
pub mod config;
mod family;
pub mod flops;
mod model;
mod torch_state;

pub use config::{ConfigError, PosInit, TinyformerConfig};
pub use model::{Attention, Block, Mlp, Tinyformer};
pub use torch_state::{NamedTensor, TorchState, TorchStateError};
