//! Tinyformer as a model family: what `sweep` makes and loads bases with.

use burn::tensor::Device;
use nn::{ConfigError, LinearLayout, ModelConfig};

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

    fn init(&self, seed: u64, device: &Device) -> Result<Tinyformer, ConfigError> {
        Tinyformer::init(self, seed, device)
    }
}
