//! Llama's layout as a model family: a `[model]` table naming a Hugging
//! Face directory (`family = "llama"`, `path = "..."`) whose `config.json`
//! says `model_type` `llama`, `qwen2` or `qwen3`; its checkpoint is the
//! base and its `tokenizer.json` encodes text tasks.

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use nn::{ConfigError, LinearLayout, ModelConfig, TransformerShape};
use serde::{Deserialize, Serialize};

use crate::config::LlamaConfig;
use crate::hf;
use crate::model::Llama;

/// The tokenizer file of a model directory.
pub const TOKENIZER: &str = "tokenizer.json";

/// `[model]` of a study of a Llama-layout checkpoint: the directory as
/// written in the config (relative to the config file), and its
/// `config.json` once read.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LlamaFamily {
    /// A Hugging Face directory: `config.json`, `model.safetensors` (or
    /// shards), `tokenizer.json`.
    #[serde(default)]
    pub path: PathBuf,
    /// `path` resolved against the config file's directory.
    #[serde(skip)]
    dir: PathBuf,
    /// The directory's `config.json`, once [`resolve`](ModelConfig::resolve)d
    /// (Qwen3-0.6B's shape before).
    #[serde(skip)]
    hf: LlamaConfig,
}

impl LlamaFamily {
    /// A family config for the directory `dir`, already resolved.
    pub fn from_dir(dir: &Path) -> Result<Self, ConfigError> {
        let mut family = Self {
            path: dir.to_path_buf(),
            ..Self::default()
        };
        family.resolve(Path::new(""))?;
        Ok(family)
    }

    /// A model of `hf`'s shape with no checkpoint behind it: what
    /// [`init`](ModelConfig::init) draws (benchmarks of real sizes).
    pub fn shaped(hf: LlamaConfig) -> Self {
        Self {
            hf,
            ..Self::default()
        }
    }

    /// The checkpoint's `config.json`.
    pub fn hf(&self) -> &LlamaConfig {
        &self.hf
    }

    fn path_error(&self, message: impl Into<String>) -> ConfigError {
        ConfigError::new("path", format!("{:?}", self.path), message)
    }
}

impl ModelConfig for LlamaFamily {
    const FAMILY: &'static str = "llama";
    type Model = Llama;

    fn resolve(&mut self, dir: &Path) -> Result<(), ConfigError> {
        if self.path.as_os_str().is_empty() {
            return Err(ConfigError::new(
                "path",
                "missing",
                "a Hugging Face model directory of Llama's layout \
                 (config.json with model_type llama, qwen2 or qwen3)",
            ));
        }
        self.dir = dir.join(&self.path);
        self.hf = hf::read_config(&self.dir).map_err(|e| self.path_error(e.to_string()))?;
        Ok(())
    }

    fn validate(&self) -> Result<(), ConfigError> {
        self.hf
            .validate()
            .map_err(|e| self.path_error(e.to_string()))
    }

    fn vocab(&self) -> usize {
        self.hf.vocab_size
    }

    fn seq_len(&self) -> usize {
        self.hf.max_position_embeddings
    }

    fn causal(&self) -> bool {
        true
    }

    fn linear_layout(&self) -> LinearLayout {
        let hf = &self.hf;
        crate::adaptable::linear_layout(
            hf.num_hidden_layers,
            hf.hidden_size,
            hf.num_attention_heads * hf.head_dim(),
            hf.kv_heads() * hf.head_dim(),
            hf.intermediate_size,
        )
    }

    fn parameters(&self) -> f64 {
        let hf = &self.hf;
        let [vocab, d, ff, layers, dh] = [
            hf.vocab_size,
            hf.hidden_size,
            hf.intermediate_size,
            hf.num_hidden_layers,
            hf.head_dim(),
        ]
        .map(|n| n as f64);
        let (q, kv) = (
            hf.num_attention_heads as f64 * dh,
            hf.kv_heads() as f64 * dh,
        );
        let flag = |b: bool| if b { 1.0 } else { 0.0 };
        let attention = d * q
            + 2.0 * d * kv
            + q * d
            + flag(hf.qkv_bias()) * (q + 2.0 * kv)
            + flag(hf.o_bias()) * d
            + flag(hf.qk_norm()) * 2.0 * dh;
        let mlp = 3.0 * d * ff + flag(hf.mlp_bias()) * (2.0 * ff + d);
        let head = flag(!hf.tie_word_embeddings) * vocab * d;
        vocab * d + layers * (2.0 * d + attention + mlp) + d + head
    }

    fn activations_per_sequence(&self, seq_len: usize) -> f64 {
        let hf = &self.hf;
        TransformerShape {
            vocab: hf.vocab_size,
            d_model: hf.hidden_size,
            d_ff: hf.intermediate_size,
            layers: hf.num_hidden_layers,
            heads: hf.num_attention_heads,
        }
        .activations_per_sequence(seq_len)
    }

    fn init(&self, seed: u64, device: &Device) -> Result<Llama, ConfigError> {
        Llama::init(&self.hf, seed, device).map_err(|e| self.path_error(e.to_string()))
    }

    fn save_pretrained(&self, model: &Llama, dir: &Path) -> Result<bool, String> {
        hf::save_dir(model, &self.hf, dir).map_err(|e| e.to_string())?;
        Ok(true)
    }

    /// The directory read; none for a [`shaped`](LlamaFamily::shaped) model.
    fn checkpoint(&self) -> Option<&Path> {
        (!self.dir.as_os_str().is_empty()).then_some(self.dir.as_path())
    }

    fn load_checkpoint(&self, device: &Device) -> Result<Llama, String> {
        let (config, model) = hf::load_dir(&self.dir, device).map_err(|e| e.to_string())?;
        if config != self.hf {
            return Err(format!(
                "{} changed since the config was read",
                self.dir.join(hf::CONFIG).display()
            ));
        }
        Ok(model)
    }

    fn tokenizer(&self) -> Option<PathBuf> {
        self.checkpoint().map(|dir| dir.join(TOKENIZER))
    }

    fn files(&self) -> Vec<PathBuf> {
        if self.checkpoint().is_none() {
            return Vec::new();
        }
        let mut files = vec![self.dir.join(hf::CONFIG)];
        files.extend(hf::weight_files(&self.dir).unwrap_or_default());
        files
    }

    fn head_is_frozen(&self) -> bool {
        true
    }

    fn pad_token_id(&self) -> Option<u32> {
        self.hf.pad_token_id()
    }

    fn eos_token_id(&self) -> Option<u32> {
        self.hf.eos_token_id()
    }
}

#[cfg(test)]
mod tests {
    use burn::module::Module;

    use super::*;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fixtures/llama")
            .join(name)
    }

    #[test]
    fn the_parameter_count_from_the_config_is_the_checkpoints() {
        for name in ["tiny-llama", "tiny-qwen2", "tiny-qwen3"] {
            let family = LlamaFamily::from_dir(&fixture(name)).unwrap();
            let model = family.load_checkpoint(&Device::default()).unwrap();
            assert_eq!(family.parameters(), model.num_params() as f64, "{name}");
            let drawn = family.init(0, &Device::default()).unwrap();
            assert_eq!(drawn.num_params(), model.num_params(), "{name}");
            assert_eq!(family.files().len(), 2, "{name}");
        }
    }

    #[test]
    fn a_directory_that_is_not_a_checkpoint_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let mut family = LlamaFamily {
            path: "model".into(),
            ..LlamaFamily::default()
        };
        let err = family.resolve(dir.path()).unwrap_err().to_string();
        assert!(err.starts_with("model.path = \"model\""), "{err}");
        assert!(err.contains("no such directory"), "{err}");
        let err = LlamaFamily::default()
            .resolve(dir.path())
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("model.path = missing: "), "{err}");
        let gpt2 = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/gpt2/tiny");
        let err = LlamaFamily::from_dir(&gpt2).unwrap_err().to_string();
        assert!(
            err.contains("model_type = \"gpt2\": this family reads llama, qwen2, qwen3"),
            "{err}"
        );
    }
}
