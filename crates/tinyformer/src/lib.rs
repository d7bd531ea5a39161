//! The seed study's tiny transformer, population-aware.
//!
//! [`Tinyformer`] is the seed notebook's `TinyTransformer`: token embedding,
//! a learned position table, pre-norm blocks (RMSNorm, unmasked multi-head
//! attention with bias-free q/k/v/o, a GELU MLP with biases), a final RMSNorm
//! and a linear head on the last position. With `causal` it is a language
//! model instead: a causal attention mask and the head on every position.
//!
//! **Member axis.** Every parameter carries a leading axis `M`: 1 for one
//! shared copy, `C` when each of `C` population members trains its own
//! ([`expand_members`]). Activations are `[C, B, T, d]`; a 1-member tensor
//! broadcasts against `C` members, so a frozen base is stored once and a
//! population of adapters or heads sits on top of it.
//!
//! **Adapter seam.** Block linears are evaluated through [`LinearHook`];
//! adapters implement it without this crate knowing any method.
//!
//! The crate takes a Burn [`Device`](burn::tensor::Device) and never names a
//! backend. Initial weights are drawn on the host ([`init::ParamRng`]), so a
//! seed gives the same model on every backend.

pub mod config;
mod hook;
pub mod init;
mod layers;
mod loss;
mod members;
mod model;
mod torch_state;

pub use config::{ConfigError, PosInit, TinyformerConfig};
pub use hook::{LinearHook, LinearKind, LinearSite, NoAdapter};
pub use layers::{PopLinear, RmsNorm};
pub use loss::{member_correct, member_cross_entropy};
pub use members::{expand_members, member_count, select_member};
pub use model::{Attention, Block, Classifier, Mlp, Tinyformer};
pub use torch_state::{NamedTensor, TorchState, TorchStateError};
