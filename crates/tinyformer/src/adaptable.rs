//! Tinyformer's adaptable linears, named as the seed notebook and HF PEFT's
//! `target_modules` name them, and its [`Adaptable`] implementation.

use burn::module::Module;
use burn::tensor::{Int, Tensor};
use nn::{Adaptable, LinearHook, LinearLayout, LinearSite, ModuleId, PopLinear, expand_members};

use crate::config::TinyformerConfig;
use crate::model::Tinyformer;

pub const Q: ModuleId = ModuleId::new(0, "q");
pub const K: ModuleId = ModuleId::new(1, "k");
pub const V: ModuleId = ModuleId::new(2, "v");
pub const O: ModuleId = ModuleId::new(3, "o");
pub const MLP_UP: ModuleId = ModuleId::new(4, "mlp_up");
pub const MLP_DOWN: ModuleId = ModuleId::new(5, "mlp_down");

/// Every block linear, in site order.
pub const MODULES: [ModuleId; 6] = [Q, K, V, O, MLP_UP, MLP_DOWN];

impl TinyformerConfig {
    /// The block linears adapters can target, with their shapes and the
    /// presets `qv`, `attn`, `all` (every block linear, the head excluded)
    /// and PEFT's `all-linear` (the same set).
    pub fn linear_layout(&self) -> LinearLayout {
        let (d, ff) = (self.d_model, self.d_ff);
        let all: Vec<&'static str> = MODULES.iter().map(|m| m.name).collect();
        let shape = |m: ModuleId| match m {
            MLP_UP => (d, ff),
            MLP_DOWN => (ff, d),
            _ => (d, d),
        };
        LinearLayout {
            n_layers: self.n_layers,
            modules: MODULES
                .iter()
                .map(|&m| {
                    let (d_in, d_out) = shape(m);
                    (m, d_in, d_out)
                })
                .collect(),
            presets: vec![
                ("qv", vec!["q", "v"]),
                ("attn", vec!["q", "k", "v", "o"]),
                ("all", all.clone()),
                ("all-linear", all),
            ],
            hf_blocks: None,
            heads: Vec::new(),
            fan_in_fan_out: false,
        }
    }
}

impl Tinyformer {
    fn config_of_linears(&self) -> TinyformerConfig {
        let mlp = self.blocks.first().map(|b| b.mlp.up.d_out());
        TinyformerConfig {
            n_layers: self.blocks.len(),
            d_model: self.d_model(),
            d_ff: mlp.unwrap_or(self.d_model()),
            ..TinyformerConfig::default()
        }
    }
}

impl Adaptable for Tinyformer {
    fn layout(&self) -> LinearLayout {
        self.config_of_linears().linear_layout()
    }

    fn linear(&self, site: LinearSite) -> Option<&PopLinear> {
        let block = self.blocks.get(site.layer)?;
        Some(match site.module {
            Q => &block.attn.q,
            K => &block.attn.k,
            V => &block.attn.v,
            O => &block.attn.o,
            MLP_UP => &block.mlp.up,
            MLP_DOWN => &block.mlp.down,
            _ => return None,
        })
    }

    fn linear_mut(&mut self, site: LinearSite) -> Option<&mut PopLinear> {
        let block = self.blocks.get_mut(site.layer)?;
        Some(match site.module {
            Q => &mut block.attn.q,
            K => &mut block.attn.k,
            V => &mut block.attn.v,
            O => &mut block.attn.o,
            MLP_UP => &mut block.mlp.up,
            MLP_DOWN => &mut block.mlp.down,
            _ => return None,
        })
    }

    fn forward_with(&self, tokens: Tensor<3, Int>, hook: &impl LinearHook) -> Tensor<3> {
        Tinyformer::forward_with(self, tokens, hook)
    }

    fn unfreeze_head(mut self, members: usize) -> Self {
        self.head = expand_members(self.head.clone().unfreeze(), members);
        self
    }
}
