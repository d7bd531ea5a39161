//! The one seam through which adapters reach a model.
//!
//! Every adaptable linear map of a model is evaluated through
//! [`LinearHook::linear`], told *which* linear it is ([`LinearSite`]). The
//! model never knows what an adapter does: a hook may add a low-rank side
//! path, rescale the weight, or replace it, and the plain model is the hook
//! [`NoAdapter`]. Heads are not routed through the hook; they are trained
//! directly when fine-tuning needs it.

use std::fmt;

use burn::tensor::Tensor;

use crate::layers::PopLinear;

/// A kind of adaptable linear inside a block (or a head outside them), named as HF PEFT's
/// `target_modules` names it for the model family (`q`, `c_attn`,
/// `mlp.c_proj`, ...). `index` is its place in the family's
/// [`LinearLayout::modules`](crate::LinearLayout) and seeds adapter inits,
/// so it must stay fixed for a family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ModuleId {
    pub index: u8,
    pub name: &'static str,
}

impl ModuleId {
    pub const fn new(index: u8, name: &'static str) -> Self {
        Self { index, name }
    }
}

impl fmt::Display for ModuleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

/// A linear map's place in the model: block index and module (`layer` is
/// the number of blocks for a head).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LinearSite {
    pub layer: usize,
    pub module: ModuleId,
}

impl fmt::Display for LinearSite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "layer {} {}", self.layer, self.module)
    }
}

/// Evaluates a model's adaptable linears; implemented by adapter sets.
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
