//! HF's `LlamaForCausalLM` (and Qwen2's and Qwen3's) with a member axis:
//! pre-norm decoder layers (RMSNorm), rotary attention with grouped
//! key/value heads, a SwiGLU MLP, a final RMSNorm and the head (the token
//! embedding when tied). No dropout.

use burn::module::{Module, Param};
use burn::tensor::activation::silu;
use burn::tensor::{Device, Int, Tensor};

use nn::attention::{KvCache, causal_bias_after, lookup, softmax_last, tied_head};
use nn::init::{ParamRng, tensor_from};
use nn::{LinearHook, LinearSite, NoAdapter, PopLinear, PopulationModel, RmsNorm, SplitHead};

use crate::LlamaError;
use crate::adaptable::{DOWN_PROJ, GATE_PROJ, K_PROJ, O_PROJ, Q_PROJ, UP_PROJ, V_PROJ};
use crate::config::LlamaConfig;
use crate::rope;

/// Causal self-attention with `n_heads` query heads sharing `n_kv_heads`
/// key/value heads (grouped-query attention: query head `h` reads
/// key/value head `h / (n_heads / n_kv_heads)`, as HF's `repeat_kv`).
#[derive(Module, Debug)]
pub struct Attention {
    pub q_proj: PopLinear,
    pub k_proj: PopLinear,
    pub v_proj: PopLinear,
    pub o_proj: PopLinear,
    /// Qwen3's RMSNorm over each head's queries and keys, before rotation.
    pub q_norm: Option<RmsNorm>,
    pub k_norm: Option<RmsNorm>,
    #[module(skip)]
    pub n_heads: usize,
    #[module(skip)]
    pub n_kv_heads: usize,
    #[module(skip)]
    pub head_dim: usize,
}

/// `down_proj(silu(gate_proj(x)) · up_proj(x))`.
#[derive(Module, Debug)]
pub struct Mlp {
    pub gate_proj: PopLinear,
    pub up_proj: PopLinear,
    pub down_proj: PopLinear,
}

/// `x + attn(norm(x))`, then `x + mlp(norm(x))`.
#[derive(Module, Debug)]
pub struct DecoderLayer {
    pub input_layernorm: RmsNorm,
    pub self_attn: Attention,
    pub post_attention_layernorm: RmsNorm,
    pub mlp: Mlp,
}

/// A causal language model of Llama's layout.
#[derive(Module, Debug)]
pub struct Llama {
    /// `[M, vocab, d]`: the token embedding, and the head when tied.
    pub embed_tokens: Param<Tensor<3>>,
    pub layers: Vec<DecoderLayer>,
    pub norm: RmsNorm,
    /// The untied head (`lm_head`, no bias); `None` when tied.
    pub lm_head: Option<PopLinear>,
    /// One head's rotary frequencies.
    #[module(skip)]
    pub inv_freq: Vec<f32>,
}

/// `[C, B, T, heads · dh] -> [C, B, heads, T, dh]`.
fn split_heads(y: Tensor<4>, heads: usize) -> Tensor<5> {
    let [c, b, t, width] = y.dims();
    y.reshape([c, b, t, heads, width / heads]).swap_dims(2, 3)
}

/// Qwen3's per-head RMSNorm of `x: [C, B, H, T, dh]`.
fn head_norm(norm: &Option<RmsNorm>, x: Tensor<5>) -> Tensor<5> {
    let Some(norm) = norm else { return x };
    let [c, b, h, t, dh] = x.dims();
    norm.forward(x.reshape([c, b * h, t, dh]))
        .reshape([c, b, h, t, dh])
}

impl Attention {
    /// `x: [C, B, T, d] -> [C', B, T, d]`, after the tokens `cache` holds
    /// (their keys and values, to which these are appended) where given.
    fn forward(
        &self,
        x: Tensor<4>,
        layer: usize,
        hook: &impl LinearHook,
        (cos, sin): (&Tensor<5>, &Tensor<5>),
        cache: Option<&mut KvCache>,
    ) -> Tensor<4> {
        let [_, b, t, _] = x.dims();
        let device = x.device();
        let (h, kv, dh) = (self.n_heads, self.n_kv_heads, self.head_dim);
        let group = h / kv;
        let site = |module| LinearSite { layer, module };
        // q, k and v may differ in member count (1 or C) when only some are
        // adapted; matmul broadcasts.
        let q = split_heads(hook.linear(site(Q_PROJ), &self.q_proj, x.clone()), h);
        let k = split_heads(hook.linear(site(K_PROJ), &self.k_proj, x.clone()), kv);
        let v = split_heads(hook.linear(site(V_PROJ), &self.v_proj, x), kv);
        let q = rope::apply(head_norm(&self.q_norm, q), cos, sin);
        let k = rope::apply(head_norm(&self.k_norm, k), cos, sin);
        let past = cache.as_ref().map_or(0, |c| c.len());
        let (k, v) = match cache {
            Some(cache) => cache.extend(layer, k, v),
            None => (k, v),
        };
        // The `group` query heads of one key/value head as one block of
        // `group · T` rows: no copies of k and v per query head.
        let cq = q.dims()[0];
        let q = q.reshape([cq, b, kv, group * t, dh]);
        let bias = causal_bias_after(past, t, &device).repeat_dim(3, group);
        let scores = q.matmul(k.swap_dims(3, 4)).div_scalar((dh as f64).sqrt()) + bias;
        let mixed = softmax_last(scores).matmul(v);
        let c = mixed.dims()[0];
        let merged = mixed
            .reshape([c, b, h, t, dh])
            .swap_dims(2, 3)
            .reshape([c, b, t, h * dh]);
        hook.linear(site(O_PROJ), &self.o_proj, merged)
    }
}

impl Mlp {
    fn forward(&self, x: Tensor<4>, layer: usize, hook: &impl LinearHook) -> Tensor<4> {
        let site = |module| LinearSite { layer, module };
        let gate = hook.linear(site(GATE_PROJ), &self.gate_proj, x.clone());
        let up = hook.linear(site(UP_PROJ), &self.up_proj, x);
        hook.linear(site(DOWN_PROJ), &self.down_proj, silu(gate) * up)
    }
}

impl DecoderLayer {
    fn forward(
        &self,
        x: Tensor<4>,
        layer: usize,
        hook: &impl LinearHook,
        rotary: (&Tensor<5>, &Tensor<5>),
        cache: Option<&mut KvCache>,
    ) -> Tensor<4> {
        // Residual sums broadcast a 1-member stream against C members.
        let normed = self.input_layernorm.forward(x.clone());
        let attn = self.self_attn.forward(normed, layer, hook, rotary, cache);
        let x = x + attn;
        x.clone()
            + self
                .mlp
                .forward(self.post_attention_layernorm.forward(x), layer, hook)
    }
}

/// A linear's weights: `[in, out]` and an optional `[out]` bias.
pub(crate) type LinearWeights = (Tensor<2>, Option<Tensor<1>>);

/// What a decoder layer is built from, in HF's names.
pub(crate) struct LayerWeights {
    pub input_layernorm: Tensor<1>,
    pub q_proj: LinearWeights,
    pub k_proj: LinearWeights,
    pub v_proj: LinearWeights,
    pub o_proj: LinearWeights,
    pub q_norm: Option<Tensor<1>>,
    pub k_norm: Option<Tensor<1>>,
    pub post_attention_layernorm: Tensor<1>,
    pub gate_proj: LinearWeights,
    pub up_proj: LinearWeights,
    pub down_proj: LinearWeights,
}

impl Llama {
    /// A model of `config` from its weights (`[in, out]` for every linear).
    pub(crate) fn from_weights(
        config: &LlamaConfig,
        embed_tokens: Tensor<2>,
        layers: Vec<LayerWeights>,
        norm: Tensor<1>,
        lm_head: Option<Tensor<2>>,
    ) -> Self {
        let eps = config.rms_norm_eps;
        let linear = |(w, b): LinearWeights| PopLinear::from_weights(w, b);
        let rms = |w: Tensor<1>| RmsNorm::from_weights(w, eps);
        let layers = layers
            .into_iter()
            .map(|w| DecoderLayer {
                input_layernorm: rms(w.input_layernorm),
                self_attn: Attention {
                    q_proj: linear(w.q_proj),
                    k_proj: linear(w.k_proj),
                    v_proj: linear(w.v_proj),
                    o_proj: linear(w.o_proj),
                    q_norm: w.q_norm.map(rms),
                    k_norm: w.k_norm.map(rms),
                    n_heads: config.num_attention_heads,
                    n_kv_heads: config.kv_heads(),
                    head_dim: config.head_dim(),
                },
                post_attention_layernorm: rms(w.post_attention_layernorm),
                mlp: Mlp {
                    gate_proj: linear(w.gate_proj),
                    up_proj: linear(w.up_proj),
                    down_proj: linear(w.down_proj),
                },
            })
            .collect();
        Self {
            embed_tokens: Param::from_tensor(embed_tokens.unsqueeze_dim::<3>(0)),
            layers,
            norm: rms(norm),
            lm_head: lm_head.map(|w| PopLinear::from_weights(w, None)),
            inv_freq: rope::inverse_frequencies(config),
        }
    }

    /// A fresh model drawn from `seed` as HF initialises one: every weight
    /// N(0, 0.02²), biases 0, norms 1.
    pub fn init(config: &LlamaConfig, seed: u64, device: &Device) -> Result<Self, LlamaError> {
        config.validate()?;
        let (d, ff, vocab) = (
            config.hidden_size,
            config.intermediate_size,
            config.vocab_size,
        );
        let (q, kv) = (
            config.num_attention_heads * config.head_dim(),
            config.kv_heads() * config.head_dim(),
        );
        let mut rng = ParamRng::new(seed);
        let mut draw = |d_in: usize, d_out: usize| {
            tensor_from(rng.normal(d_in * d_out, 0.02), [d_in, d_out], device)
        };
        let zeros = |n: usize| Tensor::<1>::zeros([n], device);
        let ones = |n: usize| Tensor::<1>::ones([n], device);
        let embed_tokens = draw(vocab, d);
        let mut linear = |d_in: usize, d_out: usize, bias: bool| -> LinearWeights {
            (draw(d_in, d_out), bias.then(|| zeros(d_out)))
        };
        let (qkv_bias, o_bias, mlp_bias) = (config.qkv_bias(), config.o_bias(), config.mlp_bias());
        let dh = config.head_dim();
        let layers = (0..config.num_hidden_layers)
            .map(|_| LayerWeights {
                input_layernorm: ones(d),
                q_proj: linear(d, q, qkv_bias),
                k_proj: linear(d, kv, qkv_bias),
                v_proj: linear(d, kv, qkv_bias),
                o_proj: linear(q, d, o_bias),
                q_norm: config.qk_norm().then(|| ones(dh)),
                k_norm: config.qk_norm().then(|| ones(dh)),
                post_attention_layernorm: ones(d),
                gate_proj: linear(d, ff, mlp_bias),
                up_proj: linear(d, ff, mlp_bias),
                down_proj: linear(ff, d, mlp_bias),
            })
            .collect();
        let lm_head = (!config.tie_word_embeddings).then(|| linear(d, vocab, false).0);
        Ok(Self::from_weights(
            config,
            embed_tokens,
            layers,
            ones(d),
            lm_head,
        ))
    }

    pub fn vocab(&self) -> usize {
        self.embed_tokens.dims()[1]
    }

    pub fn d_model(&self) -> usize {
        self.embed_tokens.dims()[2]
    }

    /// The final hidden states `[C, B, T, d]` (after `norm`) for `tokens:
    /// [G, B, T]` at positions `0..T`, every block linear evaluated through
    /// `hook`.
    pub fn hidden_with(&self, tokens: Tensor<3, Int>, hook: &impl LinearHook) -> Tensor<4> {
        self.hidden(tokens, hook, None)
    }

    /// The hidden states of `tokens` after those `cache` holds (positions
    /// from `cache.len()`), or from position 0 without a cache.
    fn hidden(
        &self,
        tokens: Tensor<3, Int>,
        hook: &impl LinearHook,
        mut cache: Option<&mut KvCache>,
    ) -> Tensor<4> {
        let t = tokens.dims()[2];
        let device = tokens.device();
        let start = cache.as_ref().map_or(0, |c| c.len());
        let (cos, sin) = rope::cos_sin(&self.inv_freq, start, t, &device);
        let mut x = lookup(self.embed_tokens.val(), tokens);
        for (layer, block) in self.layers.iter().enumerate() {
            x = block.forward(x, layer, hook, (&cos, &sin), cache.as_deref_mut());
        }
        if let Some(cache) = cache {
            cache.advance(t);
        }
        self.norm.forward(x)
    }

    /// [`forward_with`](Self::forward_with) after the tokens `cache` holds,
    /// appending these tokens' keys and values: incremental decoding.
    pub fn decode_with(
        &self,
        tokens: Tensor<3, Int>,
        hook: &impl LinearHook,
        cache: &mut KvCache,
    ) -> Tensor<3> {
        let x = self.hidden(tokens, hook, Some(cache));
        self.head(x)
    }

    /// Logits of the plain model, `[C, B × T, vocab]`.
    pub fn forward(&self, tokens: Tensor<3, Int>) -> Tensor<3> {
        self.forward_with(tokens, &NoAdapter)
    }

    /// Logits for `tokens: [G, B, T]` at every position, example-major
    /// (`[C, B × T, vocab]`), with every block linear evaluated through
    /// `hook`.
    pub fn forward_with(&self, tokens: Tensor<3, Int>, hook: &impl LinearHook) -> Tensor<3> {
        self.head(self.hidden_with(tokens, hook))
    }

    /// [`forward_with`](Self::forward_with) stopped before the head; `None`
    /// where the head trains or has a bias.
    pub fn split_head_with(
        &self,
        tokens: Tensor<3, Int>,
        hook: &impl LinearHook,
    ) -> Option<SplitHead> {
        match &self.lm_head {
            Some(head) => {
                let weight = head.weight.val();
                if weight.is_require_grad() || head.bias.is_some() {
                    return None;
                }
                Some(SplitHead {
                    hidden: self.hidden_with(tokens, hook),
                    weight,
                })
            }
            None => {
                let table = self.embed_tokens.val();
                if table.is_require_grad() {
                    return None;
                }
                Some(SplitHead::tied(self.hidden_with(tokens, hook), table))
            }
        }
    }

    /// Logits `[C, B × T, vocab]` of hidden states `[C, B, T, d]`.
    fn head(&self, x: Tensor<4>) -> Tensor<3> {
        match &self.lm_head {
            Some(head) => {
                let [c, b, t, d] = x.dims();
                head.forward3(x.reshape([c, b * t, d]))
            }
            None => tied_head(x, self.embed_tokens.val()),
        }
    }
}

impl PopulationModel for Llama {
    fn logits(&self, tokens: Tensor<3, Int>) -> Tensor<3> {
        self.forward(tokens)
    }

    fn decode(&self, tokens: Tensor<3, Int>, cache: &mut KvCache) -> Option<Tensor<3>> {
        Some(self.decode_with(tokens, &NoAdapter, cache))
    }

    fn split_head(&self, tokens: Tensor<3, Int>) -> Option<SplitHead> {
        self.split_head_with(tokens, &NoAdapter)
    }
}
