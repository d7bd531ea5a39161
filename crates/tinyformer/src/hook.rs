//! The one seam through which adapters reach the model.
//!
//! Every linear map inside a block is evaluated through
//! [`LinearHook::linear`], told *which* linear it is ([`LinearSite`]). The
//! model never knows what an adapter does: a hook may add a low-rank side
//! path, rescale the weight, or replace it, and the plain model is the hook
//! [`NoAdapter`]. The head is not routed through the hook; it is trained
//! directly when fine-tuning needs it.

use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

use crate::layers::PopLinear;

/// The kind of a linear map inside a block, named as in the seed notebook
/// and HF PEFT's `target_modules` vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinearKind {
    Q,
    K,
    V,
    O,
    MlpUp,
    MlpDown,
}

impl LinearKind {
    pub const ALL: [LinearKind; 6] = [
        LinearKind::Q,
        LinearKind::K,
        LinearKind::V,
        LinearKind::O,
        LinearKind::MlpUp,
        LinearKind::MlpDown,
    ];

    pub fn name(self) -> &'static str {
        match self {
            LinearKind::Q => "q",
            LinearKind::K => "k",
            LinearKind::V => "v",
            LinearKind::O => "o",
            LinearKind::MlpUp => "mlp_up",
            LinearKind::MlpDown => "mlp_down",
        }
    }
}

/// A linear map's place in the model: block index and kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LinearSite {
    pub layer: usize,
    pub kind: LinearKind,
}

/// Evaluates the model's block linears; implemented by adapter sets.
pub trait LinearHook {
    /// The output of `base` at `site` for `x: [C, B, T, in]`. The default is
    /// the frozen base itself.
    fn linear(&self, site: LinearSite, base: &PopLinear, x: Tensor<4>) -> Tensor<4> {
        let _ = site;
        base.forward(x)
    }
}

/// The plain model: every linear is its base weight.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoAdapter;

impl LinearHook for NoAdapter {}
