//! GPT-2's adaptable linears, named as HF PEFT names them under a block
//! (`attn.c_attn`, `attn.c_proj`, `mlp.c_fc`, `mlp.c_proj`: a target such as
//! `c_proj` matches both projections, as in PEFT), and its [`Adaptable`]
//! implementation.

use burn::tensor::{Int, Tensor};
use nn::attention::KvCache;
use nn::{Adaptable, LinearHook, LinearLayout, LinearSite, ModuleId, PopLinear, SplitHead};

use crate::model::Gpt2;

pub const C_ATTN: ModuleId = ModuleId::new(0, "attn.c_attn");
pub const ATTN_C_PROJ: ModuleId = ModuleId::new(1, "attn.c_proj");
pub const MLP_C_FC: ModuleId = ModuleId::new(2, "mlp.c_fc");
pub const MLP_C_PROJ: ModuleId = ModuleId::new(3, "mlp.c_proj");

/// Every block linear, in site order.
pub const MODULES: [ModuleId; 4] = [C_ATTN, ATTN_C_PROJ, MLP_C_FC, MLP_C_PROJ];

/// The linears of a GPT-2 with `n_layers` blocks of width `d` and MLP width
/// `ff`; presets `c_attn` (PEFT's default for GPT-2), `attn`, `mlp`, `all`
/// and `all-linear` (every block linear; the tied head is never a target).
pub fn linear_layout(n_layers: usize, d: usize, ff: usize) -> LinearLayout {
    let all: Vec<&'static str> = MODULES.iter().map(|m| m.name).collect();
    LinearLayout {
        n_layers,
        modules: vec![
            (C_ATTN, d, 3 * d),
            (ATTN_C_PROJ, d, d),
            (MLP_C_FC, d, ff),
            (MLP_C_PROJ, ff, d),
        ],
        presets: vec![
            ("c_attn", vec![C_ATTN.name]),
            ("attn", vec![C_ATTN.name, ATTN_C_PROJ.name]),
            ("mlp", vec![MLP_C_FC.name, MLP_C_PROJ.name]),
            ("all", all.clone()),
            ("all-linear", all),
        ],
        hf_blocks: Some("transformer.h"),
        heads: Vec::new(),
        fan_in_fan_out: true,
    }
}

impl Adaptable for Gpt2 {
    fn layout(&self) -> LinearLayout {
        let ff = self
            .h
            .first()
            .map_or(4 * self.d_model(), |b| b.mlp.c_fc.d_out());
        linear_layout(self.h.len(), self.d_model(), ff)
    }

    fn linear(&self, site: LinearSite) -> Option<&PopLinear> {
        let block = self.h.get(site.layer)?;
        Some(match site.module {
            C_ATTN => &block.attn.c_attn,
            ATTN_C_PROJ => &block.attn.c_proj,
            MLP_C_FC => &block.mlp.c_fc,
            MLP_C_PROJ => &block.mlp.c_proj,
            _ => return None,
        })
    }

    fn linear_mut(&mut self, site: LinearSite) -> Option<&mut PopLinear> {
        let block = self.h.get_mut(site.layer)?;
        Some(match site.module {
            C_ATTN => &mut block.attn.c_attn,
            ATTN_C_PROJ => &mut block.attn.c_proj,
            MLP_C_FC => &mut block.mlp.c_fc,
            MLP_C_PROJ => &mut block.mlp.c_proj,
            _ => return None,
        })
    }

    fn forward_with(&self, tokens: Tensor<3, Int>, hook: &impl LinearHook) -> Tensor<3> {
        Gpt2::forward_with(self, tokens, hook)
    }

    fn decode_with(
        &self,
        tokens: Tensor<3, Int>,
        hook: &impl LinearHook,
        cache: &mut KvCache,
    ) -> Option<Tensor<3>> {
        Some(Gpt2::decode_with(self, tokens, hook, cache))
    }

    fn split_head_with(&self, tokens: Tensor<3, Int>, hook: &impl LinearHook) -> Option<SplitHead> {
        Gpt2::split_head_with(self, tokens, hook)
    }

    /// The language-model head is the token embedding, which PEFT leaves
    /// frozen for a causal LM: nothing to unfreeze.
    fn unfreeze_head(self, _members: usize) -> Self {
        self
    }
}
