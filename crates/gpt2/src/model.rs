//! HF's `GPT2LMHeadModel` with a member axis: learned positions, pre-LN
//! blocks with a fused `c_attn`, causal attention, the configured GELU, a
//! final LayerNorm and the head tied to the token embedding. No dropout.

use burn::module::{Module, Param};
use burn::tensor::activation::gelu;
use burn::tensor::{Device, Int, Tensor};

use nn::attention::{KvCache, causal_bias_after, lookup, softmax_last, tied_head};
use nn::init::{ParamRng, tensor_from};
use nn::{LayerNorm, LinearHook, LinearSite, NoAdapter, PopLinear, PopulationModel, SplitHead};

use crate::Gpt2Error;
use crate::adaptable::{ATTN_C_PROJ, C_ATTN, MLP_C_FC, MLP_C_PROJ};
use crate::config::{Activation, Gpt2Config};

/// Causal self-attention: `c_attn` gives q, k and v side by side, `c_proj`
/// mixes the heads.
#[derive(Module, Debug)]
pub struct Attention {
    pub c_attn: PopLinear,
    pub c_proj: PopLinear,
    #[module(skip)]
    pub n_head: usize,
    /// `1 / sqrt(head_dim)`, and `1 / (layer + 1)` where the config says.
    #[module(skip)]
    pub scale: f64,
}

/// `c_fc -> GELU -> c_proj`.
#[derive(Module, Debug)]
pub struct Mlp {
    pub c_fc: PopLinear,
    pub c_proj: PopLinear,
    #[module(skip)]
    pub tanh_gelu: bool,
}

/// `x + attn(ln_1(x))`, then `x + mlp(ln_2(x))`.
#[derive(Module, Debug)]
pub struct Block {
    pub ln_1: LayerNorm,
    pub attn: Attention,
    pub ln_2: LayerNorm,
    pub mlp: Mlp,
}

/// GPT-2 with its language-model head (the token embedding, tied).
#[derive(Module, Debug)]
pub struct Gpt2 {
    /// `[M, vocab, d]`: token embedding and head.
    pub wte: Param<Tensor<3>>,
    /// `[M, n_positions, d]`.
    pub wpe: Param<Tensor<3>>,
    pub h: Vec<Block>,
    pub ln_f: LayerNorm,
}

impl Attention {
    /// `x: [C, B, T, d] -> [C', B, T, d]`, after the tokens `cache` holds
    /// (their keys and values, to which these are appended) where given.
    fn forward(
        &self,
        x: Tensor<4>,
        layer: usize,
        hook: &impl LinearHook,
        cache: Option<&mut KvCache>,
    ) -> Tensor<4> {
        let [_, b, t, d] = x.dims();
        let device = x.device();
        let (h, dh) = (self.n_head, d / self.n_head);
        let site = |module| LinearSite { layer, module };
        let qkv = hook.linear(site(C_ATTN), &self.c_attn, x);
        let c = qkv.dims()[0];
        // [C, B, T, d] -> [C, B, H, T, dh].
        let split = |part: usize| {
            qkv.clone()
                .narrow(3, part * d, d)
                .reshape([c, b, t, h, dh])
                .swap_dims(2, 3)
        };
        let (q, k, v) = (split(0), split(1), split(2));
        let past = cache.as_ref().map_or(0, |c| c.len());
        let (k, v) = match cache {
            Some(cache) => cache.extend(layer, k, v),
            None => (k, v),
        };
        let scores = q.matmul(k.swap_dims(3, 4)).mul_scalar(self.scale)
            + causal_bias_after(past, t, &device);
        let mixed = softmax_last(scores).matmul(v);
        let merged = mixed.swap_dims(2, 3).reshape([c, b, t, d]);
        hook.linear(site(ATTN_C_PROJ), &self.c_proj, merged)
    }
}

/// `0.5 x (1 + tanh(z))` with `z = sqrt(2/π) (x + 0.044715 x³)`: HF's
/// `gelu_new`, computed as `x · sigmoid(2z)` (the same function): one
/// exponential per element and a backward pass from the output, where
/// `tanh` and a power cost several library calls each.
fn gelu_tanh(x: Tensor<4>) -> Tensor<4> {
    let cube = x.clone() * x.clone() * x.clone();
    let two_z = (x.clone() + cube.mul_scalar(0.044715))
        .mul_scalar(2.0 * (2.0 / std::f64::consts::PI).sqrt());
    x * burn::tensor::activation::sigmoid(two_z)
}

impl Mlp {
    fn forward(&self, x: Tensor<4>, layer: usize, hook: &impl LinearHook) -> Tensor<4> {
        let site = |module| LinearSite { layer, module };
        let up = hook.linear(site(MLP_C_FC), &self.c_fc, x);
        let act = if self.tanh_gelu {
            gelu_tanh(up)
        } else {
            gelu(up)
        };
        hook.linear(site(MLP_C_PROJ), &self.c_proj, act)
    }
}

impl Block {
    fn forward(
        &self,
        x: Tensor<4>,
        layer: usize,
        hook: &impl LinearHook,
        cache: Option<&mut KvCache>,
    ) -> Tensor<4> {
        // Residual sums broadcast a 1-member stream against C members.
        let x = x.clone() + self.attn.forward(self.ln_1.forward(x), layer, hook, cache);
        x.clone() + self.mlp.forward(self.ln_2.forward(x), layer, hook)
    }
}

/// What a block's modules are built from: `(weight [in, out], bias [out])`
/// per linear, `(weight, bias)` per norm, in HF's order.
pub(crate) struct BlockWeights {
    pub ln_1: (Tensor<1>, Tensor<1>),
    pub c_attn: (Tensor<2>, Tensor<1>),
    pub attn_c_proj: (Tensor<2>, Tensor<1>),
    pub ln_2: (Tensor<1>, Tensor<1>),
    pub c_fc: (Tensor<2>, Tensor<1>),
    pub mlp_c_proj: (Tensor<2>, Tensor<1>),
}

impl Gpt2 {
    /// A model of `config` from its weights (HF's shapes, `[in, out]` for
    /// every linear: Conv1D's layout).
    pub(crate) fn from_weights(
        config: &Gpt2Config,
        wte: Tensor<2>,
        wpe: Tensor<2>,
        blocks: Vec<BlockWeights>,
        ln_f: (Tensor<1>, Tensor<1>),
    ) -> Result<Self, Gpt2Error> {
        let tanh_gelu = config.activation()? != Activation::Gelu;
        let eps = config.layer_norm_epsilon;
        let dh = (config.n_embd / config.n_head) as f64;
        let linear = |(w, b): (Tensor<2>, Tensor<1>)| PopLinear::from_weights(w, Some(b));
        let norm = |(w, b): (Tensor<1>, Tensor<1>)| LayerNorm::from_weights(w, b, eps);
        let h = blocks
            .into_iter()
            .enumerate()
            .map(|(layer, w)| {
                let mut scale = if config.scale_attn_weights {
                    1.0 / dh.sqrt()
                } else {
                    1.0
                };
                if config.scale_attn_by_inverse_layer_idx {
                    scale /= (layer + 1) as f64;
                }
                Block {
                    ln_1: norm(w.ln_1),
                    attn: Attention {
                        c_attn: linear(w.c_attn),
                        c_proj: linear(w.attn_c_proj),
                        n_head: config.n_head,
                        scale,
                    },
                    ln_2: norm(w.ln_2),
                    mlp: Mlp {
                        c_fc: linear(w.c_fc),
                        c_proj: linear(w.mlp_c_proj),
                        tanh_gelu,
                    },
                }
            })
            .collect();
        Ok(Self {
            wte: Param::from_tensor(wte.unsqueeze_dim::<3>(0)),
            wpe: Param::from_tensor(wpe.unsqueeze_dim::<3>(0)),
            h,
            ln_f: norm(ln_f),
        })
    }

    /// A fresh model drawn from `seed` as HF initialises GPT-2: every weight
    /// N(0, 0.02²), the residual projections (`c_proj`) N(0, (0.02 /
    /// sqrt(2 · n_layer))²), biases 0, norms at weight 1 and bias 0.
    pub fn init(config: &Gpt2Config, seed: u64, device: &Device) -> Result<Self, Gpt2Error> {
        config.validate()?;
        let (d, ff, vocab) = (config.n_embd, config.d_ff(), config.vocab_size);
        let mut rng = ParamRng::new(seed);
        let std = 0.02;
        let residual_std = std / (2.0 * config.n_layer as f64).sqrt();
        let mut draw = |shape: [usize; 2], std: f64| {
            tensor_from(rng.normal(shape[0] * shape[1], std), shape, device)
        };
        let wte = draw([vocab, d], std);
        let wpe = draw([config.n_positions, d], std);
        let zeros = |n: usize| Tensor::<1>::zeros([n], device);
        let ones = |n: usize| Tensor::<1>::ones([n], device);
        let blocks = (0..config.n_layer)
            .map(|_| BlockWeights {
                ln_1: (ones(d), zeros(d)),
                c_attn: (draw([d, 3 * d], std), zeros(3 * d)),
                attn_c_proj: (draw([d, d], residual_std), zeros(d)),
                ln_2: (ones(d), zeros(d)),
                c_fc: (draw([d, ff], std), zeros(ff)),
                mlp_c_proj: (draw([ff, d], residual_std), zeros(d)),
            })
            .collect();
        Self::from_weights(config, wte, wpe, blocks, (ones(d), zeros(d)))
    }

    pub fn vocab(&self) -> usize {
        self.wte.dims()[1]
    }

    pub fn n_positions(&self) -> usize {
        self.wpe.dims()[1]
    }

    pub fn d_model(&self) -> usize {
        self.wte.dims()[2]
    }

    /// The final hidden states `[C, B, T, d]` (after `ln_f`) for `tokens:
    /// [G, B, T]`, every block linear evaluated through `hook`.
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
        let start = cache.as_ref().map_or(0, |c| c.len());
        let position = self.wpe.val().narrow(1, start, t).unsqueeze_dim::<4>(1);
        let mut x = lookup(self.wte.val(), tokens) + position;
        for (layer, block) in self.h.iter().enumerate() {
            x = block.forward(x, layer, hook, cache.as_deref_mut());
        }
        if let Some(cache) = cache {
            cache.advance(t);
        }
        self.ln_f.forward(x)
    }

    /// [`forward_with`](Self::forward_with) after the tokens `cache` holds,
    /// appending these tokens' keys and values: incremental decoding.
    pub fn decode_with(
        &self,
        tokens: Tensor<3, Int>,
        hook: &impl LinearHook,
        cache: &mut KvCache,
    ) -> Tensor<3> {
        self.head(self.hidden(tokens, hook, Some(cache)))
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

    /// [`forward_with`](Self::forward_with) stopped before the tied head;
    /// `None` where the head (the token embedding) trains.
    pub fn split_head_with(
        &self,
        tokens: Tensor<3, Int>,
        hook: &impl LinearHook,
    ) -> Option<SplitHead> {
        let table = self.wte.val();
        if table.is_require_grad() {
            return None;
        }
        Some(SplitHead::tied(self.hidden_with(tokens, hook), table))
    }

    /// Logits `[C, B × T, vocab]` of hidden states `[C, B, T, d]` through
    /// the tied head.
    fn head(&self, x: Tensor<4>) -> Tensor<3> {
        tied_head(x, self.wte.val())
    }
}

impl PopulationModel for Gpt2 {
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
