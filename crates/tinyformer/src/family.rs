//! Tinyformer as a model family: what `sweep` makes and loads bases with.

use burn::tensor::Device;
use nn::{ConfigError, LinearLayout, ModelConfig, TransformerShape};

use crate::config::TinyformerConfig;
use crate::model::Tinyformer;

impl ModelConfig for TinyformerConfig {
    const FAMILY: &'static str = "tinyformer";
    type Model = Tinyformer;

    fn validate(&self) -> Result<(), ConfigError> {
        TinyformerConfig::validate(self)
    }

    fn vocab(&self) -> usize {
        self.vocab
    }

    fn seq_len(&self) -> usize {
        self.seq_len
    }

    fn causal(&self) -> bool {
        self.causal
    }

    fn linear_layout(&self) -> LinearLayout {
        TinyformerConfig::linear_layout(self)
    }

    fn parameters(&self) -> f64 {
        let [vocab, seq, d, ff, layers] = [
            self.vocab,
            self.seq_len,
            self.d_model,
            self.d_ff,
            self.n_layers,
        ]
        .map(|n| n as f64);
        // Embedding and positions; per block q, k, v, o, the MLP with its
        // biases and two norm gains; the final norm; the head with its bias.
        let block = 4.0 * d * d + 2.0 * d * ff + ff + d + 2.0 * d;
        vocab * d + seq * d + layers * block + d + d * vocab + vocab
    }

    fn activations_per_sequence(&self, seq_len: usize) -> f64 {
        TransformerShape {
            vocab: self.vocab,
            d_model: self.d_model,
            d_ff: self.d_ff,
            layers: self.n_layers,
            heads: self.n_heads,
        }
        .activations_per_sequence(seq_len)
    }

    fn init(&self, seed: u64, device: &Device) -> Result<Tinyformer, ConfigError> {
        Tinyformer::init(self, seed, device)
    }
}

#[cfg(test)]
mod tests {
    use burn::module::Module;

    use super::*;

    #[test]
    fn the_parameter_count_from_the_config_is_the_models() {
        let config = TinyformerConfig {
            vocab: 24,
            seq_len: 12,
            d_model: 16,
            n_layers: 3,
            n_heads: 2,
            d_ff: 40,
            ..TinyformerConfig::default()
        };
        let model = config.init(0, &Device::default()).unwrap();
        assert_eq!(ModelConfig::parameters(&config), model.num_params() as f64);
    }
}
