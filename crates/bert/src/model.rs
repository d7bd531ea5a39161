//! The encoder body with a member axis: token, position (and for BERT
//! token-type) embeddings and a LayerNorm, then post-LN blocks of
//! bidirectional self-attention and a GELU MLP. No dropout.

use burn::module::{Module, Param};
use burn::tensor::activation::{gelu, relu};
use burn::tensor::{Device, Int, Tensor};

use nn::attention::{lookup, softmax_last};
use nn::init::{ParamRng, tensor_from};
use nn::{LayerNorm, LinearHook, LinearSite, PopLinear};

use crate::adaptable::Modules;
use crate::config::{Activation, BertConfig, Variant};

/// Token, position and token-type embeddings, summed and normalised.
#[derive(Module, Debug)]
pub struct Embeddings {
    /// `[M, vocab, d]`.
    pub word_embeddings: Param<Tensor<3>>,
    /// `[M, max_position_embeddings, d]`.
    pub position_embeddings: Param<Tensor<3>>,
    /// BERT's `[M, type_vocab_size, d]`; every token is of type 0 (one
    /// text per example). `None` for DistilBERT.
    pub token_type_embeddings: Option<Param<Tensor<3>>>,
    pub layer_norm: LayerNorm,
}

/// Bidirectional self-attention over the tokens that are not padding.
#[derive(Module, Debug)]
pub struct Attention {
    pub query: PopLinear,
    pub key: PopLinear,
    pub value: PopLinear,
    pub output: PopLinear,
    #[module(skip)]
    pub heads: usize,
}

/// `x = norm(x + attention(x))`, then `x = norm(x + output(act(intermediate(x))))`.
#[derive(Module, Debug)]
pub struct EncoderLayer {
    pub attention: Attention,
    /// DistilBERT's `sa_layer_norm`, BERT's `attention.output.LayerNorm`.
    pub attention_norm: LayerNorm,
    /// DistilBERT's `ffn.lin1`, BERT's `intermediate.dense`.
    pub intermediate: PopLinear,
    /// DistilBERT's `ffn.lin2`, BERT's `output.dense`.
    pub output: PopLinear,
    /// DistilBERT's `output_layer_norm`, BERT's `output.LayerNorm`.
    pub output_norm: LayerNorm,
    #[module(skip)]
    pub relu: bool,
}

/// `DistilBertModel` or `BertModel` without the pooler (which belongs to
/// BERT's classifier here).
#[derive(Module, Debug)]
pub struct Bert {
    pub embeddings: Embeddings,
    pub layers: Vec<EncoderLayer>,
    /// DistilBERT rather than BERT: the module ids depend on it.
    #[module(skip)]
    pub distil: bool,
    /// The token that is padding, which attention ignores.
    #[module(skip)]
    pub pad_token_id: u32,
}

/// `[G, B, 1, 1, T]`: 0 at keys that are tokens, a large negative number
/// at padding, so softmax gives padding weight 0 (finite, so a backend
/// never sees `inf - inf`).
fn padding_bias(tokens: Tensor<3, Int>, pad: u32) -> Tensor<5> {
    let [g, b, t] = tokens.dims();
    let padding = tokens.clone().equal_elem(pad as i64);
    Tensor::<3>::zeros([g, b, t], &tokens.device())
        .mask_fill(padding, -1.0e9)
        .reshape([g, b, 1, 1, t])
}

impl Attention {
    /// `x: [C, B, T, d] -> [C', B, T, d]`; `bias` masks padding keys.
    fn forward(
        &self,
        x: Tensor<4>,
        bias: Tensor<5>,
        layer: usize,
        modules: &Modules,
        hook: &impl LinearHook,
    ) -> Tensor<4> {
        let [_, b, t, d] = x.dims();
        let (h, dh) = (self.heads, d / self.heads);
        let site = |module| LinearSite { layer, module };
        let split = |y: Tensor<4>| {
            let c = y.dims()[0];
            y.reshape([c, b, t, h, dh]).swap_dims(2, 3)
        };
        let q = split(hook.linear(site(modules.query), &self.query, x.clone()));
        let k = split(hook.linear(site(modules.key), &self.key, x.clone()));
        let v = split(hook.linear(site(modules.value), &self.value, x));
        let scores = q
            .matmul(k.swap_dims(3, 4))
            .mul_scalar(1.0 / (dh as f64).sqrt())
            + bias;
        let mixed = softmax_last(scores).matmul(v);
        let c = mixed.dims()[0];
        let merged = mixed.swap_dims(2, 3).reshape([c, b, t, d]);
        hook.linear(site(modules.attention_output), &self.output, merged)
    }
}

impl EncoderLayer {
    fn forward(
        &self,
        x: Tensor<4>,
        bias: Tensor<5>,
        layer: usize,
        modules: &Modules,
        hook: &impl LinearHook,
    ) -> Tensor<4> {
        let site = |module| LinearSite { layer, module };
        // Residual sums broadcast a 1-member stream against C members.
        let attended = self
            .attention
            .forward(x.clone(), bias, layer, modules, hook);
        let x = self.attention_norm.forward(x + attended);
        let up = hook.linear(site(modules.intermediate), &self.intermediate, x.clone());
        let act = if self.relu { relu(up) } else { gelu(up) };
        let down = hook.linear(site(modules.output), &self.output, act);
        self.output_norm.forward(x + down)
    }
}

/// A linear's weights as the model stores them: `([in, out], [out])`.
pub type LinearWeights = (Tensor<2>, Tensor<1>);
/// A LayerNorm's `(weight, bias)`.
pub(crate) type NormWeights = (Tensor<1>, Tensor<1>);

/// What a block is built from, in HF's order.
pub(crate) struct LayerWeights {
    pub query: LinearWeights,
    pub key: LinearWeights,
    pub value: LinearWeights,
    pub attention_output: LinearWeights,
    pub attention_norm: NormWeights,
    pub intermediate: LinearWeights,
    pub output: LinearWeights,
    pub output_norm: NormWeights,
}

/// What the embeddings are built from.
pub(crate) struct EmbeddingWeights {
    pub word: Tensor<2>,
    pub position: Tensor<2>,
    pub token_type: Option<Tensor<2>>,
    pub norm: NormWeights,
}

impl Bert {
    pub(crate) fn from_weights(
        config: &BertConfig,
        embeddings: EmbeddingWeights,
        layers: Vec<LayerWeights>,
    ) -> Self {
        let eps = config.layer_norm_eps;
        let linear = |(w, b): LinearWeights| PopLinear::from_weights(w, Some(b));
        let norm = |(w, b): NormWeights| LayerNorm::from_weights(w, b, eps);
        let table = |t: Tensor<2>| Param::from_tensor(t.unsqueeze_dim::<3>(0));
        let relu = config.activation == Activation::Relu;
        Self {
            embeddings: Embeddings {
                word_embeddings: table(embeddings.word),
                position_embeddings: table(embeddings.position),
                token_type_embeddings: embeddings.token_type.map(table),
                layer_norm: norm(embeddings.norm),
            },
            layers: layers
                .into_iter()
                .map(|w| EncoderLayer {
                    attention: Attention {
                        query: linear(w.query),
                        key: linear(w.key),
                        value: linear(w.value),
                        output: linear(w.attention_output),
                        heads: config.num_attention_heads,
                    },
                    attention_norm: norm(w.attention_norm),
                    intermediate: linear(w.intermediate),
                    output: linear(w.output),
                    output_norm: norm(w.output_norm),
                    relu,
                })
                .collect(),
            distil: config.variant == Variant::DistilBert,
            pad_token_id: config.pad_token_id,
        }
    }

    /// A fresh encoder drawn from `seed` as `transformers` initialises one:
    /// every weight N(0, 0.02²), biases 0, norms at weight 1 and bias 0.
    pub fn init(config: &BertConfig, seed: u64, device: &Device) -> Self {
        let (d, ff) = (config.hidden_size, config.intermediate_size);
        let mut rng = ParamRng::new(seed);
        let mut draw = |rows: usize, cols: usize| {
            tensor_from(rng.normal(rows * cols, 0.02), [rows, cols], device)
        };
        let zeros = |n: usize| Tensor::<1>::zeros([n], device);
        let ones = |n: usize| Tensor::<1>::ones([n], device);
        let embeddings = EmbeddingWeights {
            word: draw(config.vocab_size, d),
            position: draw(config.max_position_embeddings, d),
            token_type: (config.type_vocab_size > 0).then(|| draw(config.type_vocab_size, d)),
            norm: (ones(d), zeros(d)),
        };
        let layers = (0..config.num_hidden_layers)
            .map(|_| LayerWeights {
                query: (draw(d, d), zeros(d)),
                key: (draw(d, d), zeros(d)),
                value: (draw(d, d), zeros(d)),
                attention_output: (draw(d, d), zeros(d)),
                attention_norm: (ones(d), zeros(d)),
                intermediate: (draw(d, ff), zeros(ff)),
                output: (draw(ff, d), zeros(d)),
                output_norm: (ones(d), zeros(d)),
            })
            .collect();
        Self::from_weights(config, embeddings, layers)
    }

    pub fn variant(&self) -> Variant {
        if self.distil {
            Variant::DistilBert
        } else {
            Variant::Bert
        }
    }

    pub fn d_model(&self) -> usize {
        self.embeddings.word_embeddings.dims()[2]
    }

    /// The final hidden states `[C, B, T, d]` of `tokens: [G, B, T]`,
    /// every block linear evaluated through `hook`.
    pub fn hidden_with(&self, tokens: Tensor<3, Int>, hook: &impl LinearHook) -> Tensor<4> {
        let t = tokens.dims()[2];
        let bias = padding_bias(tokens.clone(), self.pad_token_id);
        let e = &self.embeddings;
        let position = e
            .position_embeddings
            .val()
            .narrow(1, 0, t)
            .unsqueeze_dim::<4>(1);
        let mut x = lookup(e.word_embeddings.val(), tokens) + position;
        if let Some(types) = &e.token_type_embeddings {
            x = x + types.val().narrow(1, 0, 1).unsqueeze_dim::<4>(1);
        }
        let mut x = e.layer_norm.forward(x);
        let modules = Modules::of(self.variant());
        for (layer, block) in self.layers.iter().enumerate() {
            x = block.forward(x, bias.clone(), layer, &modules, hook);
        }
        x
    }
}
