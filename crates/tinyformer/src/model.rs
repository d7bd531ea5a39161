//! The seed notebook's `TinyTransformer` with a member axis.

use burn::module::{Module, Param};
use burn::tensor::activation::gelu;
use burn::tensor::{Device, Int, Tensor};

use nn::attention::{causal_bias, lookup, softmax_last};
use nn::init::{ParamRng, tensor_from};
use nn::{LinearHook, LinearSite, NoAdapter, PopLinear, PopulationModel, RmsNorm};

use crate::adaptable::{K, MLP_DOWN, MLP_UP, O, Q, V};
use crate::config::{ConfigError, PosInit, TinyformerConfig};

/// Multi-head self-attention, without a mask (the seed) or causal (a
/// language model); q, k, v, o bias-free.
#[derive(Module, Debug)]
pub struct Attention {
    pub q: PopLinear,
    pub k: PopLinear,
    pub v: PopLinear,
    pub o: PopLinear,
    #[module(skip)]
    pub n_heads: usize,
    /// Position `i` attends to positions `<= i` only.
    #[module(skip)]
    pub causal: bool,
}

/// `Linear(d, d_ff) -> GELU (erf) -> Linear(d_ff, d)`, with biases.
#[derive(Module, Debug)]
pub struct Mlp {
    pub up: PopLinear,
    pub down: PopLinear,
}

/// Pre-norm block: `x + attn(n1(x))`, then `x + mlp(n2(x))`.
#[derive(Module, Debug)]
pub struct Block {
    pub n1: RmsNorm,
    pub attn: Attention,
    pub n2: RmsNorm,
    pub mlp: Mlp,
}

/// Token embedding, learned positions, blocks, final norm, and a linear head
/// on the last position (a classifier) or on every position (`causal`, a
/// language model). Every parameter has a leading member axis `M`.
#[derive(Module, Debug)]
pub struct Tinyformer {
    /// `[M, vocab, d]`.
    pub embedding: Param<Tensor<3>>,
    /// `[M, seq_len, d]`.
    pub position: Param<Tensor<3>>,
    pub blocks: Vec<Block>,
    pub norm: RmsNorm,
    /// `[M, d, vocab]` plus bias.
    pub head: PopLinear,
    /// Causal attention and the head on every position.
    #[module(skip)]
    pub causal: bool,
}

impl Attention {
    /// `x: [C, B, T, d]`; with `last_only` the queries (and so the output)
    /// are the last position's alone, `[C, B, 1, d]`, while keys and values
    /// still come from every position.
    fn forward(
        &self,
        x: Tensor<4>,
        last_only: bool,
        layer: usize,
        hook: &impl LinearHook,
    ) -> Tensor<4> {
        let [_, b, t, d] = x.dims();
        let x_device = x.device();
        let h = self.n_heads;
        let dh = d / h;
        let site = |module| LinearSite { layer, module };
        // [C, B, T, d] -> [C, B, H, T, dh]. q, k and v may differ in member
        // count (1 or C) when only some are adapted; matmul broadcasts.
        let split = |y: Tensor<4>| {
            let [c, _, t, _] = y.dims();
            y.reshape([c, b, t, h, dh]).swap_dims(2, 3)
        };
        let queries = if last_only {
            x.clone().narrow(2, t - 1, 1)
        } else {
            x.clone()
        };
        let q = split(hook.linear(site(Q), &self.q, queries));
        let k = split(hook.linear(site(K), &self.k, x.clone()));
        let v = split(hook.linear(site(V), &self.v, x));
        let scores = q.matmul(k.swap_dims(3, 4)).div_scalar((dh as f64).sqrt());
        let scores = if self.causal {
            scores + causal_bias(t, &x_device)
        } else {
            scores
        };
        let mixed = softmax_last(scores).matmul(v);
        let [c, _, _, tq, _] = mixed.dims();
        let merged = mixed.swap_dims(2, 3).reshape([c, b, tq, d]);
        hook.linear(site(O), &self.o, merged)
    }
}

impl Mlp {
    fn forward(&self, x: Tensor<4>, layer: usize, hook: &impl LinearHook) -> Tensor<4> {
        let site = |module| LinearSite { layer, module };
        let up = hook.linear(site(MLP_UP), &self.up, x);
        hook.linear(site(MLP_DOWN), &self.down, gelu(up))
    }
}

impl Block {
    /// `x: [C, B, T, d] -> [C, B, T, d]`, or `[C, B, 1, d]` (the last
    /// position) with `last_only`: the classifier reads the last position
    /// only, and in the final block nothing else reaches it past k and v.
    fn forward(
        &self,
        x: Tensor<4>,
        last_only: bool,
        layer: usize,
        hook: &impl LinearHook,
    ) -> Tensor<4> {
        let t = x.dims()[2];
        let attn = self
            .attn
            .forward(self.n1.forward(x.clone()), last_only, layer, hook);
        let residual = if last_only { x.narrow(2, t - 1, 1) } else { x };
        // Residual sums broadcast a 1-member stream against C members.
        let x = residual + attn;
        x.clone() + self.mlp.forward(self.n2.forward(x), layer, hook)
    }
}

impl Tinyformer {
    /// A fresh model (`M = 1`) drawn from `seed`: embedding N(0, 1), linears
    /// as PyTorch's `nn.Linear`, norms at scale 1, positions per
    /// [`PosInit`]. Fails on an invalid config.
    pub fn init(
        config: &TinyformerConfig,
        seed: u64,
        device: &Device,
    ) -> Result<Self, ConfigError> {
        config.validate()?;
        let TinyformerConfig {
            vocab,
            seq_len,
            d_model: d,
            n_layers,
            n_heads,
            d_ff,
            pos_init,
            causal,
        } = *config;
        let mut rng = ParamRng::new(seed);
        let embedding = tensor_from(rng.normal(vocab * d, 1.0), [1, vocab, d], device);
        let position = match pos_init {
            PosInit::Zeros => Tensor::zeros([1, seq_len, d], device),
            PosInit::Normal { std } => {
                tensor_from(rng.normal(seq_len * d, std), [1, seq_len, d], device)
            }
        };
        let blocks = (0..n_layers)
            .map(|_| Block {
                attn: Attention {
                    q: PopLinear::init(d, d, false, &mut rng, device),
                    k: PopLinear::init(d, d, false, &mut rng, device),
                    v: PopLinear::init(d, d, false, &mut rng, device),
                    o: PopLinear::init(d, d, false, &mut rng, device),
                    n_heads,
                    causal,
                },
                mlp: Mlp {
                    up: PopLinear::init(d, d_ff, true, &mut rng, device),
                    down: PopLinear::init(d_ff, d, true, &mut rng, device),
                },
                n1: RmsNorm::init(d, device),
                n2: RmsNorm::init(d, device),
            })
            .collect();
        Ok(Self {
            embedding: Param::from_tensor(embedding),
            position: Param::from_tensor(position),
            blocks,
            norm: RmsNorm::init(d, device),
            head: PopLinear::init(d, vocab, true, &mut rng, device),
            causal,
        })
    }

    pub fn vocab(&self) -> usize {
        self.embedding.dims()[1]
    }

    pub fn seq_len(&self) -> usize {
        self.position.dims()[1]
    }

    pub fn d_model(&self) -> usize {
        self.embedding.dims()[2]
    }

    /// Logits of the plain model: `[C, B, vocab]`, or `[C, B × T, vocab]`
    /// when `causal`.
    pub fn forward(&self, tokens: Tensor<3, Int>) -> Tensor<3> {
        self.forward_with(tokens, &NoAdapter)
    }

    /// Logits for `tokens: [G, B, T]` with every block linear evaluated
    /// through `hook`: `[C, B, vocab]` from the last position, or, when
    /// `causal`, `[C, B × T, vocab]` from every position (example-major, the
    /// order of `SequenceBatch` targets). `C` is the largest member count
    /// among the streams `G`, the parameters and what the hook adds.
    pub fn forward_with(&self, tokens: Tensor<3, Int>, hook: &impl LinearHook) -> Tensor<3> {
        let mut h = self.embed(tokens);
        let n_layers = self.blocks.len();
        for (layer, block) in self.blocks.iter().enumerate() {
            let last_only = !self.causal && layer + 1 == n_layers;
            h = block.forward(h, last_only, layer, hook);
        }
        let h = self.norm.forward(h);
        let [c, b, t, d] = h.dims();
        let read = if self.causal {
            h.reshape([c, b * t, d])
        } else {
            h.narrow(2, t - 1, 1).reshape([c, b, d])
        };
        self.head.forward3(read)
    }

    /// Token embedding plus position table: `[G, B, T] -> [max(G, M), B, T, d]`.
    fn embed(&self, tokens: Tensor<3, Int>) -> Tensor<4> {
        let t = tokens.dims()[2];
        let position = self.position.val().narrow(1, 0, t).unsqueeze_dim::<4>(1);
        lookup(self.embedding.val(), tokens) + position
    }
}

impl PopulationModel for Tinyformer {
    fn logits(&self, tokens: Tensor<3, Int>) -> Tensor<3> {
        self.forward(tokens)
    }
}
