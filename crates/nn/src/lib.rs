//! Population building blocks shared by every model family, and the two
//! traits families implement.
//!
//! **Member axis.** Every parameter carries a leading axis `M`: 1 for one
//! shared copy, `C` when each of `C` population members trains its own
//! ([`expand_members`]). Activations are `[C, B, T, d]`; a 1-member tensor
//! broadcasts against `C` members, so a frozen base is stored once and a
//! population of adapters or heads sits on top of it.
//!
//! **Two traits.** [`PopulationModel`] is what the trainer needs (logits per
//! member); [`Adaptable`] is what adapters need (named linear sites, access
//! to each base linear, a forward pass through a [`LinearHook`]). A model
//! family implements both; `peft` and `train` are generic over them. A
//! third, [`ModelConfig`], is the family seen through its config: how a base
//! is made, saved and loaded, for orchestration that never names a family.
//!
//! The crate takes a Burn [`Device`](burn::tensor::Device) and never names a
//! backend. Initial weights are drawn on the host ([`init::ParamRng`]), so a
//! seed gives the same model on every backend.

pub mod attention;
mod family;
mod flops;
mod hook;
pub mod init;
mod layers;
mod loss;
mod members;
mod model;
pub mod safetensors_io;

pub use family::{
    ConfigError, ModelConfig, TrainedTokenizer, TransformerShape, hf_label_count, required_shape,
};
pub use flops::{FlopCount, matmul_flops, matmul_step_flops};
pub use hook::{LinearHook, LinearSite, ModuleId, NoAdapter};
pub use layers::{LayerNorm, PopLinear, RmsNorm};
pub use loss::{
    HeadLoss, member_correct, member_cross_entropy, member_weighted_correct,
    member_weighted_cross_entropy,
};
pub use members::{expand_members, member_count, select_member};
pub use model::{
    Adaptable, FactorPair, HeadLinear, LinearLayout, ParamLr, PopulationModel, SavedHead, SplitHead,
};
