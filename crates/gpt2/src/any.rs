//! The model of a GPT-2 study: the language model, or the sequence
//! classifier a `text_classification` task trains, behind one type so that
//! a family has one model.

use burn::module::Module;
use burn::tensor::{Int, Tensor};
use nn::attention::KvCache;
use nn::{
    Adaptable, LinearHook, LinearLayout, LinearSite, PopLinear, PopulationModel, SavedHead,
    SplitHead,
};

use crate::classify::Gpt2ForSequenceClassification;
use crate::model::Gpt2;

#[derive(Module, Debug)]
pub enum Gpt2Model {
    /// `GPT2LMHeadModel`: logits over the vocabulary at every position.
    Lm(Gpt2),
    /// `GPT2ForSequenceClassification`: class logits at each row's last
    /// token that is not padding.
    Classifier(Gpt2ForSequenceClassification),
}

impl Gpt2Model {
    /// The GPT-2 body.
    pub fn transformer(&self) -> &Gpt2 {
        match self {
            Self::Lm(m) => m,
            Self::Classifier(c) => &c.transformer,
        }
    }
}

impl PopulationModel for Gpt2Model {
    fn logits(&self, tokens: Tensor<3, Int>) -> Tensor<3> {
        match self {
            Self::Lm(m) => m.logits(tokens),
            Self::Classifier(c) => c.logits(tokens),
        }
    }

    fn decode(&self, tokens: Tensor<3, Int>, cache: &mut KvCache) -> Option<Tensor<3>> {
        match self {
            Self::Lm(m) => m.decode(tokens, cache),
            Self::Classifier(_) => None,
        }
    }

    fn split_head(&self, tokens: Tensor<3, Int>) -> Option<SplitHead> {
        match self {
            Self::Lm(m) => m.split_head(tokens),
            Self::Classifier(_) => None,
        }
    }
}

impl Adaptable for Gpt2Model {
    fn layout(&self) -> LinearLayout {
        self.transformer().layout()
    }

    fn linear(&self, site: LinearSite) -> Option<&PopLinear> {
        self.transformer().linear(site)
    }

    fn linear_mut(&mut self, site: LinearSite) -> Option<&mut PopLinear> {
        match self {
            Self::Lm(m) => m.linear_mut(site),
            Self::Classifier(c) => c.linear_mut(site),
        }
    }

    fn forward_with(&self, tokens: Tensor<3, Int>, hook: &impl LinearHook) -> Tensor<3> {
        match self {
            Self::Lm(m) => Adaptable::forward_with(m, tokens, hook),
            Self::Classifier(c) => Adaptable::forward_with(c, tokens, hook),
        }
    }

    fn decode_with(
        &self,
        tokens: Tensor<3, Int>,
        hook: &impl LinearHook,
        cache: &mut KvCache,
    ) -> Option<Tensor<3>> {
        match self {
            Self::Lm(m) => Adaptable::decode_with(m, tokens, hook, cache),
            Self::Classifier(_) => None,
        }
    }

    fn split_head_with(&self, tokens: Tensor<3, Int>, hook: &impl LinearHook) -> Option<SplitHead> {
        match self {
            Self::Lm(m) => Adaptable::split_head_with(m, tokens, hook),
            Self::Classifier(_) => None,
        }
    }

    fn unfreeze_head(self, members: usize) -> Self {
        match self {
            Self::Lm(m) => Self::Lm(m.unfreeze_head(members)),
            Self::Classifier(c) => Self::Classifier(c.unfreeze_head(members)),
        }
    }

    fn saved_heads(&self) -> Vec<SavedHead<'_>> {
        match self {
            Self::Lm(m) => m.saved_heads(),
            Self::Classifier(c) => c.saved_heads(),
        }
    }

    fn saved_heads_mut(&mut self) -> Vec<&mut PopLinear> {
        match self {
            Self::Lm(m) => m.saved_heads_mut(),
            Self::Classifier(c) => c.saved_heads_mut(),
        }
    }
}
