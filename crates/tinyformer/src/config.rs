//! Model configuration and its validation.

pub use nn::ConfigError;
use serde::{Deserialize, Serialize};

/// Shape of the seed's `TinyTransformer` and how its position table starts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TinyformerConfig {
    #[serde(default = "defaults::vocab")]
    pub vocab: usize,
    #[serde(default = "defaults::seq_len")]
    pub seq_len: usize,
    #[serde(default = "defaults::d_model")]
    pub d_model: usize,
    #[serde(default = "defaults::n_layers")]
    pub n_layers: usize,
    #[serde(default = "defaults::n_heads")]
    pub n_heads: usize,
    #[serde(default = "defaults::d_ff")]
    pub d_ff: usize,
    #[serde(default)]
    pub pos_init: PosInit,
    /// A language model: a causal attention mask and the head on every
    /// position (logits for the next token at each). `false`, the seed's
    /// classifier: attention sees the whole sequence, the head reads the
    /// last position. Left out of serialized configs when `false`, so the
    /// seed-shaped configs' hashes are what they were.
    #[serde(default, skip_serializing_if = "is_false")]
    pub causal: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// Initial value of the learned position table `[seq_len, d_model]`.
///
/// The seed notebook starts it at zeros. Attention without a mask is blind to
/// order, so positions are told apart only by what pre-training writes into
/// this table; with `zeros`, positions pre-training never needed stay nearly
/// alike, and a fine-tuning method that cannot touch the table (every adapter)
/// cannot recover them. `normal` gives each position a distinct random code
/// from the start.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[serde(
    tag = "kind",
    rename_all = "snake_case",
    deny_unknown_fields,
    expecting = "a table { kind = \"zeros\" } or { kind = \"normal\", std = <number> }"
)]
pub enum PosInit {
    /// All zeros, as the seed notebook (`nn.Parameter(torch.zeros(..))`).
    #[default]
    Zeros,
    /// Independent N(0, std²) entries.
    Normal { std: f64 },
}

mod defaults {
    pub fn vocab() -> usize {
        64
    }
    pub fn seq_len() -> usize {
        32
    }
    pub fn d_model() -> usize {
        128
    }
    pub fn n_layers() -> usize {
        3
    }
    pub fn n_heads() -> usize {
        4
    }
    pub fn d_ff() -> usize {
        256
    }
}

impl Default for TinyformerConfig {
    /// The seed notebook's model: vocab 64, seq 32, d 128, 3 layers, 4 heads,
    /// d_ff 256, zero position table, a classifier (not causal).
    fn default() -> Self {
        Self {
            vocab: defaults::vocab(),
            seq_len: defaults::seq_len(),
            d_model: defaults::d_model(),
            n_layers: defaults::n_layers(),
            n_heads: defaults::n_heads(),
            d_ff: defaults::d_ff(),
            pos_init: PosInit::Zeros,
            causal: false,
        }
    }
}

impl TinyformerConfig {
    /// Checks every field; the first problem found is returned.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.vocab < 2 {
            return Err(ConfigError::new("vocab", self.vocab, "at least 2"));
        }
        if self.seq_len == 0 {
            return Err(ConfigError::new("seq_len", self.seq_len, "at least 1"));
        }
        if self.d_model == 0 {
            return Err(ConfigError::new("d_model", self.d_model, "at least 1"));
        }
        if self.n_layers == 0 {
            return Err(ConfigError::new("n_layers", self.n_layers, "at least 1"));
        }
        if self.n_heads == 0 {
            return Err(ConfigError::new("n_heads", self.n_heads, "at least 1"));
        }
        if !self.d_model.is_multiple_of(self.n_heads) {
            return Err(ConfigError::new(
                "n_heads",
                self.n_heads,
                format!("a divisor of d_model = {}", self.d_model),
            ));
        }
        if self.d_ff == 0 {
            return Err(ConfigError::new("d_ff", self.d_ff, "at least 1"));
        }
        if let PosInit::Normal { std } = self.pos_init
            && !(std.is_finite() && std > 0.0)
        {
            return Err(ConfigError::new("pos_init.std", std, "a finite number > 0"));
        }
        Ok(())
    }

    pub fn d_head(&self) -> usize {
        self.d_model / self.n_heads
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_the_seed_model_and_valid() {
        let config = TinyformerConfig::default();
        assert_eq!(
            (
                config.vocab,
                config.seq_len,
                config.d_model,
                config.n_layers,
                config.n_heads,
                config.d_ff
            ),
            (64, 32, 128, 3, 4, 256)
        );
        assert_eq!(config.pos_init, PosInit::Zeros);
        assert!(config.validate().is_ok());
    }

    #[test]
    fn bad_values_are_named_with_what_is_allowed() {
        let cases: Vec<(TinyformerConfig, &str)> = vec![
            (
                TinyformerConfig {
                    n_heads: 3,
                    ..Default::default()
                },
                "model.n_heads = 3: a divisor of d_model = 128",
            ),
            (
                TinyformerConfig {
                    seq_len: 0,
                    ..Default::default()
                },
                "model.seq_len = 0",
            ),
            (
                TinyformerConfig {
                    vocab: 1,
                    ..Default::default()
                },
                "model.vocab = 1",
            ),
            (
                TinyformerConfig {
                    n_heads: 0,
                    ..Default::default()
                },
                "model.n_heads = 0",
            ),
            (
                TinyformerConfig {
                    pos_init: PosInit::Normal { std: -1.0 },
                    ..Default::default()
                },
                "model.pos_init.std = -1",
            ),
        ];
        for (config, expected) in cases {
            let err = config.validate().unwrap_err().to_string();
            assert!(
                err.starts_with(expected),
                "{err:?} should start with {expected:?}"
            );
        }
    }

    #[test]
    fn toml_like_input_rejects_unknown_fields() {
        let ok: TinyformerConfig =
            serde_json::from_str(r#"{"d_model": 64, "pos_init": {"kind": "normal", "std": 0.02}}"#)
                .unwrap();
        assert_eq!(ok.d_model, 64);
        assert_eq!(ok.pos_init, PosInit::Normal { std: 0.02 });
        let err = serde_json::from_str::<TinyformerConfig>(r#"{"d_modle": 64}"#).unwrap_err();
        assert!(err.to_string().contains("d_modle"), "{err}");
    }
}
