//! GPT-2's architecture as Hugging Face's `config.json` (`GPT2Config`)
//! states it.

use serde::{Deserialize, Serialize};

use crate::Gpt2Error;

/// The activations GPT-2 checkpoints name in `activation_function`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// `gelu_new`: the tanh approximation (GPT-2's own).
    GeluNew,
    /// `gelu_pytorch_tanh`: the same function.
    GeluPytorchTanh,
    /// `gelu`: the exact (erf) GELU.
    Gelu,
}

impl Activation {
    pub const NAMES: [&'static str; 3] = ["gelu_new", "gelu_pytorch_tanh", "gelu"];

    fn parse(name: &str) -> Option<Self> {
        match name {
            "gelu_new" => Some(Self::GeluNew),
            "gelu_pytorch_tanh" => Some(Self::GeluPytorchTanh),
            "gelu" => Some(Self::Gelu),
            _ => None,
        }
    }
}

/// The fields of `GPT2Config` the forward pass depends on, with its
/// defaults; everything else in `config.json` (dropouts, generation
/// settings) is ignored on load and written back with HF's names on save.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Gpt2Config {
    pub vocab_size: usize,
    /// The longest sequence (rows of the position table).
    pub n_positions: usize,
    pub n_embd: usize,
    pub n_layer: usize,
    pub n_head: usize,
    /// The MLP's width; `4 · n_embd` when absent (`null`).
    #[serde(default)]
    pub n_inner: Option<usize>,
    #[serde(default = "default_eps")]
    pub layer_norm_epsilon: f64,
    #[serde(default = "default_activation")]
    pub activation_function: String,
    #[serde(default = "yes")]
    pub scale_attn_weights: bool,
    #[serde(default)]
    pub scale_attn_by_inverse_layer_idx: bool,
    #[serde(default = "yes")]
    pub tie_word_embeddings: bool,
}

fn default_eps() -> f64 {
    1e-5
}

fn default_activation() -> String {
    "gelu_new".into()
}

fn yes() -> bool {
    true
}

impl Default for Gpt2Config {
    /// The 124M-parameter `gpt2`.
    fn default() -> Self {
        Self {
            vocab_size: 50257,
            n_positions: 1024,
            n_embd: 768,
            n_layer: 12,
            n_head: 12,
            n_inner: None,
            layer_norm_epsilon: default_eps(),
            activation_function: default_activation(),
            scale_attn_weights: true,
            scale_attn_by_inverse_layer_idx: false,
            tie_word_embeddings: true,
        }
    }
}

impl Gpt2Config {
    /// The MLP's width.
    pub fn d_ff(&self) -> usize {
        self.n_inner.unwrap_or(4 * self.n_embd)
    }

    /// FLOPs (2 per multiply-add) of one forward pass over `seq` tokens:
    /// the block linears, the attention products (scores and weighted sum,
    /// the whole `seq × seq` square counted) and the tied head.
    pub fn forward_flops(&self, seq: usize) -> f64 {
        let [d, ff, layers, vocab, t] =
            [self.n_embd, self.d_ff(), self.n_layer, self.vocab_size, seq].map(|n| n as f64);
        let linears = 2.0 * (3.0 * d * d + d * d + 2.0 * d * ff);
        let attention = 2.0 * 2.0 * t * d;
        t * (layers * (linears + attention) + 2.0 * vocab * d)
    }

    pub fn activation(&self) -> Result<Activation, Gpt2Error> {
        Activation::parse(&self.activation_function).ok_or_else(|| {
            Gpt2Error::config(
                "activation_function",
                format!("{:?}", self.activation_function),
                format!("one of {}", Activation::NAMES.join(", ")),
            )
        })
    }

    /// Checks every field the model is built from.
    pub fn validate(&self) -> Result<(), Gpt2Error> {
        for (field, value) in [
            ("vocab_size", self.vocab_size),
            ("n_positions", self.n_positions),
            ("n_embd", self.n_embd),
            ("n_layer", self.n_layer),
            ("n_head", self.n_head),
            ("n_inner", self.d_ff()),
        ] {
            if value == 0 {
                return Err(Gpt2Error::config(field, value, "at least 1"));
            }
        }
        if !self.n_embd.is_multiple_of(self.n_head) {
            return Err(Gpt2Error::config(
                "n_head",
                self.n_head,
                format!("a divisor of n_embd = {}", self.n_embd),
            ));
        }
        if !(self.layer_norm_epsilon.is_finite() && self.layer_norm_epsilon > 0.0) {
            return Err(Gpt2Error::config(
                "layer_norm_epsilon",
                self.layer_norm_epsilon,
                "a finite number > 0",
            ));
        }
        if !self.tie_word_embeddings {
            return Err(Gpt2Error::config(
                "tie_word_embeddings",
                false,
                "true (GPT-2's head is the token embedding)",
            ));
        }
        self.activation().map(|_| ())
    }

    /// Reads HF's `config.json` text, which must say `model_type = "gpt2"`.
    pub fn from_hf_json(text: &str, origin: &str) -> Result<Self, Gpt2Error> {
        Self::read_hf_json(text, origin).map(|(config, _)| config)
    }

    /// [`from_hf_json`](Self::from_hf_json), with the whole JSON for the
    /// fields beyond the shape (a classifier's labels, the pad token).
    pub fn read_hf_json(text: &str, origin: &str) -> Result<(Self, serde_json::Value), Gpt2Error> {
        let value: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| Gpt2Error::file(origin, format!("not JSON: {e}")))?;
        match value.get("model_type").and_then(|t| t.as_str()) {
            Some("gpt2") => {}
            Some(other) => {
                return Err(Gpt2Error::file(
                    origin,
                    format!("model_type = {other:?}: this family reads \"gpt2\""),
                ));
            }
            None => {
                return Err(Gpt2Error::file(
                    origin,
                    "no model_type: a Hugging Face config.json names it (\"gpt2\")",
                ));
            }
        }
        let config =
            Self::deserialize(&value).map_err(|e| Gpt2Error::file(origin, format!("{e}")))?;
        config.validate()?;
        Ok((config, value))
    }

    /// `config.json` as `transformers` writes it for `GPT2LMHeadModel`
    /// (dropouts 0: lrscape trains without dropout).
    pub fn to_hf_json(&self) -> String {
        let mut value = serde_json::to_value(self).expect("plain fields serialize");
        let extra = serde_json::json!({
            "model_type": "gpt2",
            "architectures": ["GPT2LMHeadModel"],
            "attn_pdrop": 0.0,
            "embd_pdrop": 0.0,
            "resid_pdrop": 0.0,
            "initializer_range": 0.02,
            "bos_token_id": self.vocab_size - 1,
            "eos_token_id": self.vocab_size - 1,
            "torch_dtype": "float32",
        });
        let map = value.as_object_mut().expect("a struct is an object");
        for (key, v) in extra.as_object().expect("an object") {
            map.insert(key.clone(), v.clone());
        }
        serde_json::to_string_pretty(&value).expect("JSON values serialize") + "\n"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forward_flops_count_linears_attention_and_head() {
        let config = Gpt2Config {
            vocab_size: 3,
            n_positions: 4,
            n_embd: 2,
            n_layer: 1,
            n_head: 1,
            n_inner: Some(8),
            ..Gpt2Config::default()
        };
        // Per token: c_attn 2·2·6, c_proj 2·2·2, c_fc 2·2·8, mlp.c_proj
        // 2·8·2 (96); scores and weighted sum over 2 positions, 2·2·2·2
        // (16); the head 2·3·2 (12). Two tokens.
        assert_eq!(config.forward_flops(2), 2.0 * (96.0 + 16.0 + 12.0));
    }
}
