//! The encoders' adaptable linears, named as HF PEFT names them under a
//! block: DistilBERT's `attention.{q,k,v,out}_lin`, `ffn.lin1`, `ffn.lin2`;
//! BERT's `attention.self.{query,key,value}`, `attention.output.dense`,
//! `intermediate.dense`, `output.dense` (so the target `dense` matches
//! three of them, and `output.dense` two, as in PEFT). BERT's classifier
//! has one more site after the blocks, `bert.pooler.dense`: PEFT's
//! `all-linear` adapts it, and so does an entry matching its path (`dense`).
//! DistilBERT's `pre_classifier` never is: PEFT's default `modules_to_save`
//! entry `classifier` matches it as a suffix, so PEFT trains it whole.

use burn::tensor::{Int, Tensor};
use nn::{Adaptable, HeadLinear, LinearHook, LinearLayout, LinearSite, ModuleId, PopLinear};

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
    pub const POOLER: ModuleId = ModuleId::new(6, "pooler.dense");
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
    /// A classifier's adaptable pooler, and its Hugging Face path.
    pub pooler: Option<(ModuleId, &'static str)>,
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
                pooler: None,
            },
            Variant::Bert => Self {
                query: bert::QUERY,
                key: bert::KEY,
                value: bert::VALUE,
                attention_output: bert::ATTENTION_OUTPUT,
                intermediate: bert::INTERMEDIATE,
                output: bert::OUTPUT,
                pooler: Some((bert::POOLER, "bert.pooler.dense")),
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
/// for DistilBERT, for which PEFT has none), `attn`, `mlp` and `all` (every
/// block linear). A BERT classifier's layout (`classifier`) has its pooler
/// as a head site, which `all-linear` adds as PEFT resolves it; the head's
/// other linears are trained whole as `modules_to_save`, never adapted.
pub fn linear_layout(
    variant: Variant,
    n_layers: usize,
    (d, ff): (usize, usize),
    classifier: bool,
) -> LinearLayout {
    let m = Modules::of(variant);
    let all: Vec<&'static str> = m.all().iter().map(|m| m.name).collect();
    let heads: Vec<HeadLinear> = (m.pooler.filter(|_| classifier).into_iter())
        .map(|(module, path)| HeadLinear {
            module,
            path,
            d_in: d,
            d_out: d,
        })
        .collect();
    let mut all_linear = all.clone();
    all_linear.extend(heads.iter().map(|h| h.module.name));
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
        heads,
        presets: vec![
            ("qv", vec![m.query.name, m.value.name]),
            ("attn", all[..4].to_vec()),
            ("mlp", all[4..].to_vec()),
            ("all", all),
            ("all-linear", all_linear),
        ],
        hf_blocks: Some(match variant {
            Variant::DistilBert => "distilbert.transformer.layer",
            Variant::Bert => "bert.encoder.layer",
        }),
        fan_in_fan_out: false,
    }
}

impl Bert {
    /// The body's layout, with the pooler site where a `classifier` has one.
    pub fn layout(&self, classifier: bool) -> LinearLayout {
        let ff = self
            .layers
            .first()
            .map_or(4 * self.d_model(), |l| l.intermediate.d_out());
        linear_layout(
            self.variant(),
            self.layers.len(),
            (self.d_model(), ff),
            classifier,
        )
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

/// The classifier's adaptable linears: its body's, then its pooler.
impl Adaptable for crate::BertForSequenceClassification {
    fn layout(&self) -> LinearLayout {
        self.bert.layout(true)
    }

    fn linear(&self, site: LinearSite) -> Option<&PopLinear> {
        if Some(site) == self.pooler_site() {
            return Some(&self.pooler);
        }
        self.bert.linear(site)
    }

    fn linear_mut(&mut self, site: LinearSite) -> Option<&mut PopLinear> {
        if Some(site) == self.pooler_site() {
            return Some(&mut self.pooler);
        }
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
        let layout = linear_layout(Variant::Bert, 2, (8, 16), false);
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
        let distil = linear_layout(Variant::DistilBert, 2, (8, 16), false);
        assert_eq!(
            distil.preset("qv").unwrap(),
            ["attention.q_lin", "attention.v_lin"]
        );
        assert_eq!(distil.shape(distilbert::LIN2), Some((16, 8)));
    }

    /// PEFT 0.21.2's `all-linear` on a BERT sequence classifier adapts the
    /// pooler (`get_peft_model(BertForSequenceClassification(...),
    /// LoraConfig(task_type="SEQ_CLS", target_modules="all-linear"))` wraps
    /// `bert.pooler.dense` in a LoRA layer and saves it in
    /// `target_modules`), and `dense` matches the pooler's path as a
    /// suffix. On DistilBERT it wraps `pre_classifier` in
    /// `modules_to_save` instead (the entry `classifier` is its suffix).
    #[test]
    fn a_classifier_pooler_is_a_site_after_the_blocks() {
        let bert = linear_layout(Variant::Bert, 2, (8, 16), true);
        let all = crate::adaptable::Modules::of(Variant::Bert).all();
        let names =
            |entry: &str| -> Vec<&str> { bert.matching(entry).iter().map(|m| m.name).collect() };
        assert_eq!(names("dense").last(), Some(&"pooler.dense"));
        assert_eq!(names("bert.pooler.dense"), ["pooler.dense"]);
        assert_eq!(names("pooler.dense"), ["pooler.dense"]);
        let linear = bert.preset("all-linear").unwrap();
        assert_eq!(linear.len(), all.len() + 1);
        assert_eq!(bert.preset("all").unwrap().len(), all.len());
        let targets = [bert::QUERY, bert::POOLER].into_iter().collect();
        let sites = bert.sites(&targets);
        assert_eq!(sites.len(), 3);
        assert_eq!(
            sites[2],
            LinearSite {
                layer: 2,
                module: bert::POOLER
            }
        );
        assert_eq!(bert.hf_module(sites[2]).unwrap(), "bert.pooler.dense");
        assert_eq!(
            bert.hf_module(sites[1]).unwrap(),
            "bert.encoder.layer.1.attention.self.query"
        );
        let distil = linear_layout(Variant::DistilBert, 2, (8, 16), true);
        assert!(distil.matching("pre_classifier").is_empty());
        assert!(distil.heads.is_empty());
        // The body alone (a masked LM) has no pooler site.
        let lm = linear_layout(Variant::Bert, 2, (8, 16), false);
        assert!(lm.matching("pooler.dense").is_empty());
        assert_eq!(lm.preset("all-linear").unwrap().len(), all.len());
    }
}
