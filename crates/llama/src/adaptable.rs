//! The adaptable linears of Llama's layout, named as HF PEFT names them
//! under a decoder layer (`self_attn.q_proj`, …, `mlp.down_proj`: a target
//! such as `q_proj` matches by suffix, as in PEFT), and the [`Adaptable`]
//! implementation.

use burn::tensor::{Int, Tensor};
use nn::attention::KvCache;
use nn::{Adaptable, LinearHook, LinearLayout, LinearSite, ModuleId, PopLinear, SplitHead};

use crate::model::Llama;

pub const Q_PROJ: ModuleId = ModuleId::new(0, "self_attn.q_proj");
pub const K_PROJ: ModuleId = ModuleId::new(1, "self_attn.k_proj");
pub const V_PROJ: ModuleId = ModuleId::new(2, "self_attn.v_proj");
pub const O_PROJ: ModuleId = ModuleId::new(3, "self_attn.o_proj");
pub const GATE_PROJ: ModuleId = ModuleId::new(4, "mlp.gate_proj");
pub const UP_PROJ: ModuleId = ModuleId::new(5, "mlp.up_proj");
pub const DOWN_PROJ: ModuleId = ModuleId::new(6, "mlp.down_proj");

/// Every block linear, in site order.
pub const MODULES: [ModuleId; 7] = [
    Q_PROJ, K_PROJ, V_PROJ, O_PROJ, GATE_PROJ, UP_PROJ, DOWN_PROJ,
];

/// The linears of a model with `n_layers` decoder layers of width `d`, `q`
/// query and `kv` key/value features and MLP width `ff`; presets `qv`
/// (PEFT's default for llama, qwen2 and qwen3: `q_proj`, `v_proj`),
/// `attn`, `mlp`, `all` and `all-linear` (every block linear; the head is
/// never a target, as PEFT's `all-linear` leaves the output layer out).
pub fn linear_layout(n_layers: usize, d: usize, q: usize, kv: usize, ff: usize) -> LinearLayout {
    let all: Vec<&'static str> = MODULES.iter().map(|m| m.name).collect();
    LinearLayout {
        n_layers,
        modules: vec![
            (Q_PROJ, d, q),
            (K_PROJ, d, kv),
            (V_PROJ, d, kv),
            (O_PROJ, q, d),
            (GATE_PROJ, d, ff),
            (UP_PROJ, d, ff),
            (DOWN_PROJ, ff, d),
        ],
        presets: vec![
            ("qv", vec![Q_PROJ.name, V_PROJ.name]),
            ("attn", all[..4].to_vec()),
            ("mlp", all[4..].to_vec()),
            ("all", all.clone()),
            ("all-linear", all),
        ],
        hf_blocks: Some("model.layers"),
        heads: Vec::new(),
        fan_in_fan_out: false,
    }
}

impl Adaptable for Llama {
    fn layout(&self) -> LinearLayout {
        let d = self.d_model();
        match self.layers.first() {
            Some(l) => linear_layout(
                self.layers.len(),
                d,
                l.self_attn.q_proj.d_out(),
                l.self_attn.k_proj.d_out(),
                l.mlp.gate_proj.d_out(),
            ),
            None => linear_layout(0, d, d, d, d),
        }
    }

    fn linear(&self, site: LinearSite) -> Option<&PopLinear> {
        let l = self.layers.get(site.layer)?;
        Some(match site.module {
            Q_PROJ => &l.self_attn.q_proj,
            K_PROJ => &l.self_attn.k_proj,
            V_PROJ => &l.self_attn.v_proj,
            O_PROJ => &l.self_attn.o_proj,
            GATE_PROJ => &l.mlp.gate_proj,
            UP_PROJ => &l.mlp.up_proj,
            DOWN_PROJ => &l.mlp.down_proj,
            _ => return None,
        })
    }

    fn linear_mut(&mut self, site: LinearSite) -> Option<&mut PopLinear> {
        let l = self.layers.get_mut(site.layer)?;
        Some(match site.module {
            Q_PROJ => &mut l.self_attn.q_proj,
            K_PROJ => &mut l.self_attn.k_proj,
            V_PROJ => &mut l.self_attn.v_proj,
            O_PROJ => &mut l.self_attn.o_proj,
            GATE_PROJ => &mut l.mlp.gate_proj,
            UP_PROJ => &mut l.mlp.up_proj,
            DOWN_PROJ => &mut l.mlp.down_proj,
            _ => return None,
        })
    }

    fn forward_with(&self, tokens: Tensor<3, Int>, hook: &impl LinearHook) -> Tensor<3> {
        Llama::forward_with(self, tokens, hook)
    }

    fn decode_with(
        &self,
        tokens: Tensor<3, Int>,
        hook: &impl LinearHook,
        cache: &mut KvCache,
    ) -> Option<Tensor<3>> {
        Some(Llama::decode_with(self, tokens, hook, cache))
    }

    fn split_head_with(&self, tokens: Tensor<3, Int>, hook: &impl LinearHook) -> Option<SplitHead> {
        Llama::split_head_with(self, tokens, hook)
    }

    /// A causal language model's head stays frozen under adapters, as PEFT
    /// leaves it: nothing to unfreeze.
    fn unfreeze_head(self, _members: usize) -> Self {
        self
    }
}
