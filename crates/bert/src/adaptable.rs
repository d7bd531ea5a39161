//! The encoders' adaptable linears, named as HF PEFT names them under a
//! block: DistilBERT's `attention.{q,k,v,out}_lin`, `ffn.lin1`, `ffn.lin2`;
//! BERT's `attention.self.{query,key,value}`, `attention.output.dense`,
//! `intermediate.dense`, `output.dense` (so the target `dense` matches
//! three of them, and `output.dense` two, as in PEFT).

use burn::tensor::{Int, Tensor};
use nn::{Adaptable, LinearHook, LinearLayout, LinearSite, ModuleId, PopLinear};

use crate::config::Variant;
use crate::model::Bert;

pub mod distilbert {
    use nn::ModuleId;

    pub const Q_LIN: ModuleId = ModuleId::new(0, "attention.q_lin");
    pub const K_LIN: ModuleId = ModuleId::new(1, "attention.k_lin");
    pub const V_LIN: ModuleId = ModuleId::new(2, "attention.v_lin");
    pub const OUT_LIN: ModuleId = ModuleId::new(3, "attention.out_lin");
    pub const LIN1: ModuleId = ModuleId::new(4, "ffn.lin1");
    pub const LIN2: ModuleId = ModuleId::new(5, "ffn.lin2");
}

pub mod bert {
    use nn::ModuleId;

    pub const QUERY: ModuleId = ModuleId::new(0, "attention.self.query");
    pub const KEY: ModuleId = ModuleId::new(1, "attention.self.key");
    pub const VALUE: ModuleId = ModuleId::new(2, "attention.self.value");
    pub const ATTENTION_OUTPUT: ModuleId = ModuleId::new(3, "attention.output.dense");
    pub const INTERMEDIATE: ModuleId = ModuleId::new(4, "intermediate.dense");
    pub const OUTPUT: ModuleId = ModuleId::new(5, "output.dense");
}

/// A variant's module ids by role, in site order.
#[derive(Debug, Clone, Copy)]
pub struct Modules {
    pub query: ModuleId,
    pub key: ModuleId,
    pub value: ModuleId,
    pub attention_output: ModuleId,
    pub intermediate: ModuleId,
    pub output: ModuleId,
}

impl Modules {
    pub fn of(variant: Variant) -> Self {
        match variant {
            Variant::DistilBert => Self {
                query: distilbert::Q_LIN,
                key: distilbert::K_LIN,
                value: distilbert::V_LIN,
                attention_output: distilbert::OUT_LIN,
                intermediate: distilbert::LIN1,
                output: distilbert::LIN2,
            },
            Variant::Bert => Self {
                query: bert::QUERY,
                key: bert::KEY,
                value: bert::VALUE,
                attention_output: bert::ATTENTION_OUTPUT,
                intermediate: bert::INTERMEDIATE,
                output: bert::OUTPUT,
            },
        }
    }

    pub fn all(&self) -> [ModuleId; 6] {
        [
            self.query,
            self.key,
            self.value,
            self.attention_output,
            self.intermediate,
            self.output,
        ]
    }
}

/// The linears of an encoder with `n_layers` blocks of width `d` and MLP
/// width `ff`; presets `qv` (PEFT's default for BERT, and the usual choice
/// for DistilBERT, for which PEFT has none), `attn`, `mlp`, `all` and
/// `all-linear` (every block linear; the classification head is trained
/// whole as `modules_to_save`, never adapted).
pub fn linear_layout(variant: Variant, n_layers: usize, d: usize, ff: usize) -> LinearLayout {
    let m = Modules::of(variant);
    let all: Vec<&'static str> = m.all().iter().map(|m| m.name).collect();
    LinearLayout {
        n_layers,
        modules: vec![
            (m.query, d, d),
            (m.key, d, d),
            (m.value, d, d),
            (m.attention_output, d, d),
            (m.intermediate, d, ff),
            (m.output, ff, d),
        ],
        presets: vec![
            ("qv", vec![m.query.name, m.value.name]),
            ("attn", all[..4].to_vec()),
            ("mlp", all[4..].to_vec()),
            ("all", all.clone()),
            ("all-linear", all),
        ],
        hf_blocks: Some(match variant {
            Variant::DistilBert => "distilbert.transformer.layer",
            Variant::Bert => "bert.encoder.layer",
        }),
        fan_in_fan_out: false,
    }
}

impl Bert {
    pub fn layout(&self) -> LinearLayout {
        let ff = self
            .layers
            .first()
            .map_or(4 * self.d_model(), |l| l.intermediate.d_out());
        linear_layout(self.variant(), self.layers.len(), self.d_model(), ff)
    }

    pub fn linear(&self, site: LinearSite) -> Option<&PopLinear> {
        let layer = self.layers.get(site.layer)?;
        let m = Modules::of(self.variant());
        Some(match site.module {
            id if id == m.query => &layer.attention.query,
            id if id == m.key => &layer.attention.key,
            id if id == m.value => &layer.attention.value,
            id if id == m.attention_output => &layer.attention.output,
            id if id == m.intermediate => &layer.intermediate,
            id if id == m.output => &layer.output,
            _ => return None,
        })
    }

    pub fn linear_mut(&mut self, site: LinearSite) -> Option<&mut PopLinear> {
        let m = Modules::of(self.variant());
        let layer = self.layers.get_mut(site.layer)?;
        Some(match site.module {
            id if id == m.query => &mut layer.attention.query,
            id if id == m.key => &mut layer.attention.key,
            id if id == m.value => &mut layer.attention.value,
            id if id == m.attention_output => &mut layer.attention.output,
            id if id == m.intermediate => &mut layer.intermediate,
            id if id == m.output => &mut layer.output,
            _ => return None,
        })
    }
}

/// The classifier's adaptable linears are its body's.
impl Adaptable for crate::BertForSequenceClassification {
    fn layout(&self) -> LinearLayout {
        self.bert.layout()
    }

    fn linear(&self, site: LinearSite) -> Option<&PopLinear> {
        self.bert.linear(site)
    }

    fn linear_mut(&mut self, site: LinearSite) -> Option<&mut PopLinear> {
        self.bert.linear_mut(site)
    }

    fn forward_with(&self, tokens: Tensor<3, Int>, hook: &impl LinearHook) -> Tensor<3> {
        crate::BertForSequenceClassification::forward_with(self, tokens, hook)
    }

    fn unfreeze_head(self, members: usize) -> Self {
        self.unfreeze_heads(members)
    }

    fn saved_heads(&self) -> Vec<nn::SavedHead<'_>> {
        self.heads()
    }

    fn saved_heads_mut(&mut self) -> Vec<&mut PopLinear> {
        vec![&mut self.pooler, &mut self.classifier]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_match_as_in_peft() {
        let layout = linear_layout(Variant::Bert, 2, 8, 16);
        let names =
            |entry: &str| -> Vec<&str> { layout.matching(entry).iter().map(|m| m.name).collect() };
        assert_eq!(
            names("dense"),
            [
                "attention.output.dense",
                "intermediate.dense",
                "output.dense"
            ]
        );
        assert_eq!(
            names("output.dense"),
            ["attention.output.dense", "output.dense"]
        );
        assert_eq!(names("query"), ["attention.self.query"]);
        let distil = linear_layout(Variant::DistilBert, 2, 8, 16);
        assert_eq!(
            distil.preset("qv").unwrap(),
            ["attention.q_lin", "attention.v_lin"]
        );
        assert_eq!(distil.shape(distilbert::LIN2), Some((16, 8)));
    }
}
