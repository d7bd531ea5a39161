//! `DistilBertForMaskedLM` (`vocab_transform` → activation →
//! `vocab_layer_norm` → `vocab_projector`) and `BertForMaskedLM`
//! (`cls.predictions.transform`: dense → activation → LayerNorm, then the
//! decoder): the projector's weight is the token embedding (tied), its bias
//! a vector of its own. What an encoder lrscape pre-trains learns with.

use burn::module::{Module, Param};
use burn::tensor::activation::{gelu, relu};
use burn::tensor::{Device, Int, Tensor};
use nn::attention::tied_head;
use nn::init::{ParamRng, tensor_from};
use nn::{LayerNorm, LinearHook, NoAdapter, PopLinear, PopulationModel};

use crate::config::BertConfig;
use crate::model::Bert;

#[derive(Module, Debug)]
pub struct BertForMaskedLM {
    pub bert: Bert,
    /// `vocab_transform` / `cls.predictions.transform.dense`, `[M, d, d]`.
    pub transform: PopLinear,
    /// `vocab_layer_norm` / `cls.predictions.transform.LayerNorm`.
    pub norm: LayerNorm,
    /// `vocab_projector.bias` / `cls.predictions.bias`, `[M, vocab]`.
    pub bias: Param<Tensor<2>>,
}

impl BertForMaskedLM {
    /// A fresh masked LM drawn from `seed` as `transformers` initialises
    /// one ([`Bert::init`], the transform N(0, 0.02²), biases 0, the norm
    /// at 1 and 0).
    pub fn init(config: &BertConfig, seed: u64, device: &Device) -> Self {
        let bert = Bert::init(config, seed, device);
        let d = config.hidden_size;
        let mut rng = ParamRng::new(seed ^ 0x4d4c4d);
        let w = tensor_from(rng.normal(d * d, 0.02), [d, d], device);
        Self {
            bert,
            transform: PopLinear::from_weights(w.transpose(), Some(Tensor::zeros([d], device))),
            norm: LayerNorm::from_weights(
                Tensor::ones([d], device),
                Tensor::zeros([d], device),
                config.layer_norm_eps,
            ),
            bias: Param::from_tensor(Tensor::zeros([1, config.vocab_size], device)),
        }
    }

    /// Logits over the vocabulary at every position, `[C, B × T, vocab]`,
    /// block linears through `hook`.
    pub fn forward_with(&self, tokens: Tensor<3, Int>, hook: &impl LinearHook) -> Tensor<3> {
        let hidden = self.bert.hidden_with(tokens, hook);
        let x = self.transform.forward(hidden);
        let relu_act = self.bert.layers.first().is_some_and(|l| l.relu);
        let x = if relu_act { relu(x) } else { gelu(x) };
        let logits = tied_head(
            self.norm.forward(x),
            self.bert.embeddings.word_embeddings.val(),
        );
        let [m, vocab] = self.bias.dims();
        logits + self.bias.val().reshape([m, 1, vocab])
    }

    pub fn forward(&self, tokens: Tensor<3, Int>) -> Tensor<3> {
        self.forward_with(tokens, &NoAdapter)
    }
}

impl PopulationModel for BertForMaskedLM {
    fn logits(&self, tokens: Tensor<3, Int>) -> Tensor<3> {
        self.forward(tokens)
    }
}
