//! `DistilBertForSequenceClassification` (`pre_classifier` → ReLU →
//! `classifier`) and `BertForSequenceClassification` (the pooler's dense →
//! tanh → `classifier`), both on the first position (`[CLS]`).

use burn::module::Module;
use burn::tensor::activation::{relu, tanh};
use burn::tensor::{Device, Int, Tensor};
use nn::init::{ParamRng, tensor_from};
use nn::{
    LinearHook, LinearSite, NoAdapter, PopLinear, PopulationModel, SavedHead, expand_members,
};

use crate::model::{Bert, LinearWeights};

#[derive(Module, Debug)]
pub struct BertForSequenceClassification {
    pub bert: Bert,
    /// DistilBERT's `pre_classifier` or BERT's `pooler.dense`, `[M, d, d]`.
    pub pooler: PopLinear,
    /// `[M, d, num_labels]`.
    pub classifier: PopLinear,
}

/// A new head of `num_labels` for width `d`, `(pooler, classifier)` as
/// `([in, out], [out])`, drawn as `transformers` draws new linears
/// (weights N(0, 0.02²), bias 0) from a fixed seed, so that every run on a
/// checkpoint without a head adds the same one.
pub fn new_head(d: usize, num_labels: usize, device: &Device) -> (LinearWeights, LinearWeights) {
    let mut rng = ParamRng::new(0xc1a5);
    let mut draw = |d_in: usize, d_out: usize| {
        let w = tensor_from(rng.normal(d_out * d_in, 0.02), [d_out, d_in], device);
        (w.transpose(), Tensor::zeros([d_out], device))
    };
    let pooler = draw(d, d);
    (pooler, draw(d, num_labels))
}

impl BertForSequenceClassification {
    /// `bert` with the given head linears (`([in, out], [out])` each).
    pub fn new(bert: Bert, pooler: LinearWeights, classifier: LinearWeights) -> Self {
        Self {
            bert,
            pooler: PopLinear::from_weights(pooler.0, Some(pooler.1)),
            classifier: PopLinear::from_weights(classifier.0, Some(classifier.1)),
        }
    }

    /// `bert` with a [`new_head`] of `num_labels`.
    pub fn with_new_head(bert: Bert, num_labels: usize, device: &Device) -> Self {
        let (pooler, classifier) = new_head(bert.d_model(), num_labels, device);
        Self::new(bert, pooler, classifier)
    }

    pub fn num_labels(&self) -> usize {
        self.classifier.d_out()
    }

    /// The pooler's site after the last block, where adapters may reach
    /// it (BERT's; DistilBERT's `pre_classifier` is trained whole).
    pub fn pooler_site(&self) -> Option<LinearSite> {
        let (module, _) = crate::adaptable::Modules::of(self.bert.variant()).pooler?;
        Some(LinearSite {
            layer: self.bert.layers.len(),
            module,
        })
    }

    /// Class logits `[C, B, num_labels]` of `tokens: [G, B, T]`, block
    /// linears and the pooler through `hook`.
    pub fn forward_with(&self, tokens: Tensor<3, Int>, hook: &impl LinearHook) -> Tensor<3> {
        let hidden = self.bert.hidden_with(tokens, hook);
        let [_, b, _, d] = hidden.dims();
        let first = hidden.narrow(2, 0, 1);
        let pooled = match self.pooler_site() {
            Some(site) => hook.linear(site, &self.pooler, first),
            None => self.pooler.forward(first),
        };
        let c = pooled.dims()[0];
        let pooled = pooled.reshape([c, b, d]);
        let pooled = if self.bert.distil {
            relu(pooled)
        } else {
            tanh(pooled)
        };
        self.classifier.forward3(pooled)
    }

    pub fn forward(&self, tokens: Tensor<3, Int>) -> Tensor<3> {
        self.forward_with(tokens, &NoAdapter)
    }

    /// The head, as PEFT's `modules_to_save` names it.
    pub(crate) fn heads(&self) -> Vec<SavedHead<'_>> {
        let pooler = if self.bert.distil {
            SavedHead {
                module: "pre_classifier",
                path: "pre_classifier",
                linear: &self.pooler,
            }
        } else {
            SavedHead {
                module: "pooler",
                path: "bert.pooler.dense",
                linear: &self.pooler,
            }
        };
        vec![
            pooler,
            SavedHead {
                module: "classifier",
                path: "classifier",
                linear: &self.classifier,
            },
        ]
    }

    /// Both head linears train with the adapters, one copy per member.
    pub(crate) fn unfreeze_heads(mut self, members: usize) -> Self {
        self.pooler = expand_members(self.pooler.clone().unfreeze(), members);
        self.classifier = expand_members(self.classifier.clone().unfreeze(), members);
        self
    }
}

impl PopulationModel for BertForSequenceClassification {
    fn logits(&self, tokens: Tensor<3, Int>) -> Tensor<3> {
        self.forward(tokens)
    }
}
