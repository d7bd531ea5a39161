//! The architecture as Hugging Face's `config.json` states it for the
//! checkpoints of Llama's layout (`LlamaConfig`, `Qwen2Config`,
//! `Qwen3Config`).

use serde::{Deserialize, Serialize};

use crate::LlamaError;

/// Which of Llama's relatives a checkpoint is: what its `model_type` says
/// beyond the shared fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// `llama`: biases where `attention_bias` / `mlp_bias` say.
    Llama,
    /// `qwen2`: q, k and v biases, none on `o_proj`.
    Qwen2,
    /// `qwen3`: RMSNorm over each head's q and k (`q_norm`, `k_norm`).
    Qwen3,
}

impl Variant {
    pub const MODEL_TYPES: [&'static str; 3] = ["llama", "qwen2", "qwen3"];

    pub fn parse(model_type: &str) -> Option<Self> {
        match model_type {
            "llama" => Some(Self::Llama),
            "qwen2" => Some(Self::Qwen2),
            "qwen3" => Some(Self::Qwen3),
            _ => None,
        }
    }

    /// The `transformers` class of the causal language model.
    pub fn architecture(self) -> &'static str {
        match self {
            Self::Llama => "LlamaForCausalLM",
            Self::Qwen2 => "Qwen2ForCausalLM",
            Self::Qwen3 => "Qwen3ForCausalLM",
        }
    }
}

/// `rope_scaling`: how the rotary frequencies are stretched for long
/// contexts. lrscape applies `default`, `linear` and `llama3` (Llama 3.1+).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RopeScaling {
    /// Older configs name it `type`.
    #[serde(alias = "type")]
    pub rope_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub factor: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub low_freq_factor: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub high_freq_factor: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_max_position_embeddings: Option<usize>,
}

impl RopeScaling {
    pub const TYPES: [&'static str; 3] = ["default", "linear", "llama3"];
}

/// The fields the forward pass depends on, with `transformers`' defaults;
/// every other field of `config.json` is kept as it was read and written
/// back on save.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LlamaConfig {
    pub model_type: String,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    /// Grouped-query attention: this many key/value heads, each shared by
    /// `num_attention_heads / num_key_value_heads` query heads; all of
    /// them when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_key_value_heads: Option<usize>,
    /// A head's width; `hidden_size / num_attention_heads` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head_dim: Option<usize>,
    #[serde(default = "default_eps")]
    pub rms_norm_eps: f64,
    #[serde(default = "default_theta")]
    pub rope_theta: f64,
    #[serde(default)]
    pub rope_scaling: Option<RopeScaling>,
    #[serde(default = "default_positions")]
    pub max_position_embeddings: usize,
    #[serde(default)]
    pub tie_word_embeddings: bool,
    #[serde(default)]
    pub attention_bias: bool,
    #[serde(default)]
    pub mlp_bias: bool,
    #[serde(default = "default_act")]
    pub hidden_act: String,
    #[serde(default)]
    pub use_sliding_window: bool,
    /// Everything else `config.json` holds (token ids, dtype, generation
    /// settings), as read.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

fn default_eps() -> f64 {
    1e-6
}

fn default_theta() -> f64 {
    10000.0
}

fn default_positions() -> usize {
    2048
}

fn default_act() -> String {
    "silu".into()
}

impl Default for LlamaConfig {
    /// Qwen3-0.6B's shape.
    fn default() -> Self {
        Self {
            model_type: "qwen3".into(),
            vocab_size: 151_936,
            hidden_size: 1024,
            intermediate_size: 3072,
            num_hidden_layers: 28,
            num_attention_heads: 16,
            num_key_value_heads: Some(8),
            head_dim: Some(128),
            rms_norm_eps: 1e-6,
            rope_theta: 1_000_000.0,
            rope_scaling: None,
            max_position_embeddings: 40_960,
            tie_word_embeddings: true,
            attention_bias: false,
            mlp_bias: false,
            hidden_act: default_act(),
            use_sliding_window: false,
            extra: serde_json::Map::new(),
        }
    }
}

impl LlamaConfig {
    /// The variant `model_type` names (checked by [`validate`](Self::validate)).
    pub fn variant(&self) -> Variant {
        Variant::parse(&self.model_type).unwrap_or(Variant::Llama)
    }

    pub fn kv_heads(&self) -> usize {
        self.num_key_value_heads.unwrap_or(self.num_attention_heads)
    }

    pub fn head_dim(&self) -> usize {
        self.head_dim
            .unwrap_or(self.hidden_size / self.num_attention_heads.max(1))
    }

    /// Biases on `q_proj`, `k_proj`, `v_proj`.
    pub fn qkv_bias(&self) -> bool {
        match self.variant() {
            Variant::Qwen2 => true,
            Variant::Llama | Variant::Qwen3 => self.attention_bias,
        }
    }

    /// A bias on `o_proj`.
    pub fn o_bias(&self) -> bool {
        match self.variant() {
            Variant::Qwen2 => false,
            Variant::Llama | Variant::Qwen3 => self.attention_bias,
        }
    }

    /// Biases on the MLP's projections.
    pub fn mlp_bias(&self) -> bool {
        self.variant() == Variant::Llama && self.mlp_bias
    }

    /// RMSNorm over each head's queries and keys.
    pub fn qk_norm(&self) -> bool {
        self.variant() == Variant::Qwen3
    }

    /// `config.json`'s `eos_token_id` (the first, where it lists several).
    pub fn eos_token_id(&self) -> Option<u32> {
        let id = self.extra.get("eos_token_id")?;
        let first = id.as_array().and_then(|ids| ids.first()).unwrap_or(id);
        first.as_u64().and_then(|v| u32::try_from(v).ok())
    }

    /// `config.json`'s `pad_token_id`, else its end-of-text token.
    pub fn pad_token_id(&self) -> Option<u32> {
        self.extra
            .get("pad_token_id")
            .and_then(|v| v.as_u64())
            .and_then(|v| u32::try_from(v).ok())
            .or_else(|| self.eos_token_id())
    }

    /// FLOPs (2 per multiply-add) of one forward pass over `seq` tokens:
    /// the block linears, the attention products (the whole `seq × seq`
    /// square counted) and the head.
    pub fn forward_flops(&self, seq: usize) -> f64 {
        let [d, ff, layers, vocab, t, q, kv] = [
            self.hidden_size,
            self.intermediate_size,
            self.num_hidden_layers,
            self.vocab_size,
            seq,
            self.num_attention_heads * self.head_dim(),
            self.kv_heads() * self.head_dim(),
        ]
        .map(|n| n as f64);
        let linears = 2.0 * (d * q + 2.0 * d * kv + q * d + 3.0 * d * ff);
        let attention = 2.0 * 2.0 * t * q;
        t * (layers * (linears + attention) + 2.0 * vocab * d)
    }

    /// Checks every field the model is built from.
    pub fn validate(&self) -> Result<(), LlamaError> {
        if Variant::parse(&self.model_type).is_none() {
            return Err(LlamaError::config(
                "model_type",
                format!("{:?}", self.model_type),
                format!("one of {}", Variant::MODEL_TYPES.join(", ")),
            ));
        }
        for (field, value) in [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("num_attention_heads", self.num_attention_heads),
            ("num_key_value_heads", self.kv_heads()),
            ("max_position_embeddings", self.max_position_embeddings),
        ] {
            if value == 0 {
                return Err(LlamaError::config(field, value, "at least 1"));
            }
        }
        if !self.num_attention_heads.is_multiple_of(self.kv_heads()) {
            return Err(LlamaError::config(
                "num_key_value_heads",
                self.kv_heads(),
                format!(
                    "a divisor of num_attention_heads = {}",
                    self.num_attention_heads
                ),
            ));
        }
        match self.head_dim {
            Some(h) if h == 0 || !h.is_multiple_of(2) => {
                return Err(LlamaError::config("head_dim", h, "an even number ≥ 2"));
            }
            None if !self
                .hidden_size
                .is_multiple_of(2 * self.num_attention_heads) =>
            {
                return Err(LlamaError::config(
                    "num_attention_heads",
                    self.num_attention_heads,
                    format!(
                        "heads of an even width dividing hidden_size = {} (or give head_dim)",
                        self.hidden_size
                    ),
                ));
            }
            _ => {}
        }
        for (field, value) in [
            ("rms_norm_eps", self.rms_norm_eps),
            ("rope_theta", self.rope_theta),
        ] {
            if !(value.is_finite() && value > 0.0) {
                return Err(LlamaError::config(field, value, "a finite number > 0"));
            }
        }
        if self.hidden_act != "silu" {
            return Err(LlamaError::config(
                "hidden_act",
                format!("{:?}", self.hidden_act),
                "\"silu\" (SwiGLU)",
            ));
        }
        if self.use_sliding_window {
            return Err(LlamaError::config(
                "use_sliding_window",
                true,
                "false (lrscape attends over the whole sequence)",
            ));
        }
        self.validate_rope_scaling()
    }

    fn validate_rope_scaling(&self) -> Result<(), LlamaError> {
        let Some(s) = &self.rope_scaling else {
            return Ok(());
        };
        let positive = |field: &'static str, v: Option<f64>| match v {
            Some(v) if v.is_finite() && v > 0.0 => Ok(v),
            _ => Err(LlamaError::config(
                field,
                format!("{v:?}"),
                format!("a finite number > 0 for rope_type {:?}", s.rope_type),
            )),
        };
        match s.rope_type.as_str() {
            "default" => Ok(()),
            "linear" => positive("rope_scaling.factor", s.factor).map(|_| ()),
            "llama3" => {
                positive("rope_scaling.factor", s.factor)?;
                let low = positive("rope_scaling.low_freq_factor", s.low_freq_factor)?;
                let high = positive("rope_scaling.high_freq_factor", s.high_freq_factor)?;
                if high <= low {
                    return Err(LlamaError::config(
                        "rope_scaling.high_freq_factor",
                        high,
                        format!("greater than low_freq_factor = {low}"),
                    ));
                }
                match s.original_max_position_embeddings {
                    Some(n) if n > 0 => Ok(()),
                    other => Err(LlamaError::config(
                        "rope_scaling.original_max_position_embeddings",
                        format!("{other:?}"),
                        "at least 1 for rope_type \"llama3\"",
                    )),
                }
            }
            other => Err(LlamaError::config(
                "rope_scaling.rope_type",
                format!("{other:?}"),
                format!("one of {}", RopeScaling::TYPES.join(", ")),
            )),
        }
    }

    /// Reads HF's `config.json` text, which must name a `model_type` of
    /// Llama's layout.
    pub fn from_hf_json(text: &str, origin: &std::path::Path) -> Result<Self, LlamaError> {
        let value: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| LlamaError::file(origin, format!("not JSON: {e}")))?;
        match value.get("model_type").and_then(|t| t.as_str()) {
            Some(t) if Variant::parse(t).is_some() => {}
            Some(other) => {
                return Err(LlamaError::file(
                    origin,
                    format!(
                        "model_type = {other:?}: this family reads {}",
                        Variant::MODEL_TYPES.join(", ")
                    ),
                ));
            }
            None => {
                return Err(LlamaError::file(
                    origin,
                    "no model_type: a Hugging Face config.json names it (llama, qwen2, qwen3)",
                ));
            }
        }
        let config =
            Self::deserialize(&value).map_err(|e| LlamaError::file(origin, format!("{e}")))?;
        config.validate()?;
        Ok(config)
    }

    /// `config.json` as `transformers` reads it for the causal language
    /// model, in float32 and without dropout.
    pub fn to_hf_json(&self) -> String {
        let mut value = serde_json::to_value(self).expect("plain fields serialize");
        let map = value.as_object_mut().expect("a struct is an object");
        map.remove("torch_dtype");
        for (key, v) in [
            (
                "architectures",
                serde_json::json!([self.variant().architecture()]),
            ),
            ("dtype", serde_json::json!("float32")),
            ("attention_dropout", serde_json::json!(0.0)),
        ] {
            map.insert(key.into(), v);
        }
        serde_json::to_string_pretty(&value).expect("JSON values serialize") + "\n"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> LlamaConfig {
        LlamaConfig {
            vocab_size: 3,
            hidden_size: 4,
            intermediate_size: 8,
            num_hidden_layers: 1,
            num_attention_heads: 2,
            num_key_value_heads: Some(1),
            head_dim: None,
            ..LlamaConfig::default()
        }
    }

    #[test]
    fn forward_flops_count_linears_attention_and_head() {
        // Per token: q 2·4·4, k and v 2·4·2 each, o 2·4·4, MLP 3·2·4·8
        // (288); scores and weighted sum over 2 positions, 2·2·2·4 (32);
        // the head 2·3·4 (24). Two tokens.
        assert_eq!(tiny().forward_flops(2), 2.0 * (288.0 + 32.0 + 24.0));
    }

    #[test]
    fn bad_fields_are_named() {
        type Change = fn(&mut LlamaConfig);
        let cases: [(Change, &str); 6] = [
            (
                |c| c.model_type = "mistral".into(),
                "model_type = \"mistral\": one of llama, qwen2, qwen3",
            ),
            (
                |c| c.num_key_value_heads = Some(3),
                "num_key_value_heads = 3: a divisor of num_attention_heads = 2",
            ),
            (|c| c.head_dim = Some(3), "head_dim = 3: an even number ≥ 2"),
            (
                |c| c.hidden_act = "gelu".into(),
                "hidden_act = \"gelu\": \"silu\" (SwiGLU)",
            ),
            (
                |c| {
                    c.rope_scaling = Some(RopeScaling {
                        rope_type: "yarn".into(),
                        factor: Some(2.0),
                        low_freq_factor: None,
                        high_freq_factor: None,
                        original_max_position_embeddings: None,
                    })
                },
                "rope_scaling.rope_type = \"yarn\": one of default, linear, llama3",
            ),
            (
                |c| c.use_sliding_window = true,
                "use_sliding_window = true: false",
            ),
        ];
        for (change, message) in cases {
            let mut config = tiny();
            change(&mut config);
            let err = config.validate().unwrap_err().to_string();
            assert!(err.starts_with(&format!("config.json: {message}")), "{err}");
        }
        tiny().validate().unwrap();
    }
}
