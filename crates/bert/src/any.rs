//! The model of an encoder study: the masked LM a base is pre-trained as,
//! or the sequence classifier fine-tuning trains, behind one type so that
//! a family has one model.

use burn::module::Module;
use burn::tensor::{Int, Tensor};
use nn::{Adaptable, LinearHook, LinearLayout, LinearSite, PopLinear, PopulationModel, SavedHead};

use crate::classify::BertForSequenceClassification;
use crate::masked_lm::BertForMaskedLM;
use crate::model::Bert;

#[derive(Module, Debug)]
pub enum BertModel {
    /// `*ForMaskedLM`: logits over the vocabulary at every position.
    MaskedLm(BertForMaskedLM),
    /// `*ForSequenceClassification`: class logits of the first position.
    Classifier(BertForSequenceClassification),
}

impl BertModel {
    /// The encoder body.
    pub fn bert(&self) -> &Bert {
        match self {
            Self::MaskedLm(m) => &m.bert,
            Self::Classifier(c) => &c.bert,
        }
    }
}

impl PopulationModel for BertModel {
    fn logits(&self, tokens: Tensor<3, Int>) -> Tensor<3> {
        match self {
            Self::MaskedLm(m) => m.logits(tokens),
            Self::Classifier(c) => c.logits(tokens),
        }
    }
}

impl Adaptable for BertModel {
    fn layout(&self) -> LinearLayout {
        match self {
            Self::MaskedLm(m) => m.bert.layout(false),
            Self::Classifier(c) => c.layout(),
        }
    }

    fn linear(&self, site: LinearSite) -> Option<&PopLinear> {
        match self {
            Self::MaskedLm(m) => m.bert.linear(site),
            Self::Classifier(c) => c.linear(site),
        }
    }

    fn linear_mut(&mut self, site: LinearSite) -> Option<&mut PopLinear> {
        match self {
            Self::MaskedLm(m) => m.bert.linear_mut(site),
            Self::Classifier(c) => c.linear_mut(site),
        }
    }

    fn forward_with(&self, tokens: Tensor<3, Int>, hook: &impl LinearHook) -> Tensor<3> {
        match self {
            Self::MaskedLm(m) => m.forward_with(tokens, hook),
            Self::Classifier(c) => c.forward_with(tokens, hook),
        }
    }

    /// A masked LM's head is the tied embedding: nothing to unfreeze.
    fn unfreeze_head(self, members: usize) -> Self {
        match self {
            Self::Classifier(c) => Self::Classifier(c.unfreeze_head(members)),
            lm @ Self::MaskedLm(_) => lm,
        }
    }

    fn saved_heads(&self) -> Vec<SavedHead<'_>> {
        match self {
            Self::MaskedLm(_) => Vec::new(),
            Self::Classifier(c) => c.saved_heads(),
        }
    }

    fn saved_heads_mut(&mut self) -> Vec<&mut PopLinear> {
        match self {
            Self::MaskedLm(_) => Vec::new(),
            Self::Classifier(c) => c.saved_heads_mut(),
        }
    }
}
