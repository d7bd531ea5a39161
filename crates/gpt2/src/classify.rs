//! `GPT2ForSequenceClassification`: the GPT-2 body with a `score` head
//! (`n_embd -> num_labels`, no bias) read at each row's last non-padding
//! token, as `transformers` picks it: the rightmost position whose token is
//! not `pad_token_id` (position 0 for a row of padding only; the last
//! position when there is no pad token).

use burn::module::Module;
use burn::tensor::{Int, Tensor};
use nn::{
    Adaptable, LinearHook, LinearLayout, LinearSite, NoAdapter, PopLinear, PopulationModel,
    SavedHead, expand_members,
};

use crate::model::Gpt2;

#[derive(Module, Debug)]
pub struct Gpt2ForSequenceClassification {
    pub transformer: Gpt2,
    /// `[M, n_embd, num_labels]`.
    pub score: PopLinear,
    #[module(skip)]
    pub pad_token_id: Option<u32>,
}

impl Gpt2ForSequenceClassification {
    /// A classifier of `transformer` with the head `score: [n_embd,
    /// num_labels]`.
    pub fn new(transformer: Gpt2, score: Tensor<2>, pad_token_id: Option<u32>) -> Self {
        Self {
            transformer,
            score: PopLinear::from_weights(score, None),
            pad_token_id,
        }
    }

    pub fn num_labels(&self) -> usize {
        self.score.d_out()
    }

    /// The position each row of `tokens: [G, B, T]` is classified at:
    /// `[G, B]`.
    pub fn last_token(&self, tokens: Tensor<3, Int>) -> Tensor<2, Int> {
        let [g, b, t] = tokens.dims();
        match self.pad_token_id {
            None => Tensor::<2, Int>::full([g, b], t as i64 - 1, &tokens.device()),
            Some(pad) => {
                let real = tokens.clone().not_equal_elem(pad as i64).int();
                let positions =
                    Tensor::<1, Int>::arange(0..t as i64, &tokens.device()).reshape([1, 1, t]);
                // The largest position holding a real token; 0 if none.
                (real * positions).argmax(2).reshape([g, b])
            }
        }
    }

    /// Class logits `[C, B, num_labels]`, block linears through `hook`.
    pub fn forward_with(&self, tokens: Tensor<3, Int>, hook: &impl LinearHook) -> Tensor<3> {
        let last = self.last_token(tokens.clone());
        let hidden = self.transformer.hidden_with(tokens, hook);
        let [c, b, _, d] = hidden.dims();
        let [g, _] = last.dims();
        let index = last.reshape([g, b, 1, 1]).repeat_dim(3, d);
        let index = if g < c { index.repeat_dim(0, c) } else { index };
        let picked = hidden.gather(2, index).reshape([c, b, d]);
        self.score.forward3(picked)
    }

    pub fn forward(&self, tokens: Tensor<3, Int>) -> Tensor<3> {
        self.forward_with(tokens, &NoAdapter)
    }
}

impl PopulationModel for Gpt2ForSequenceClassification {
    fn logits(&self, tokens: Tensor<3, Int>) -> Tensor<3> {
        self.forward(tokens)
    }
}

impl Adaptable for Gpt2ForSequenceClassification {
    fn layout(&self) -> LinearLayout {
        self.transformer.layout()
    }

    fn linear(&self, site: LinearSite) -> Option<&PopLinear> {
        self.transformer.linear(site)
    }

    fn linear_mut(&mut self, site: LinearSite) -> Option<&mut PopLinear> {
        self.transformer.linear_mut(site)
    }

    fn forward_with(&self, tokens: Tensor<3, Int>, hook: &impl LinearHook) -> Tensor<3> {
        Gpt2ForSequenceClassification::forward_with(self, tokens, hook)
    }

    /// `score` trains with the adapters, one per member (PEFT's
    /// `modules_to_save` for a sequence-classification task).
    fn unfreeze_head(mut self, members: usize) -> Self {
        self.score = expand_members(self.score.clone().unfreeze(), members);
        self
    }

    fn saved_heads(&self) -> Vec<SavedHead<'_>> {
        vec![SavedHead {
            module: "score",
            path: "score",
            linear: &self.score,
        }]
    }

    fn saved_heads_mut(&mut self) -> Vec<&mut PopLinear> {
        vec![&mut self.score]
    }
}
