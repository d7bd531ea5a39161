//! GPT-2 as a model family: a `[model]` table naming a Hugging Face
//! directory (`family = "gpt2"`, `path = "..."`), whose checkpoint is the
//! base and whose `tokenizer.json` text tasks encode with.

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use nn::{ConfigError, LinearLayout, ModelConfig};
use serde::{Deserialize, Serialize};

use crate::config::Gpt2Config;
use crate::hf;
use crate::model::Gpt2;

/// The tokenizer file of a model directory.
pub const TOKENIZER: &str = "tokenizer.json";

/// `[model]` of a GPT-2 study: the checkpoint directory as written in the
/// config (relative to the config file), and what was read from it.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Gpt2Family {
    /// A Hugging Face directory: `config.json`, `model.safetensors` (or
    /// shards), `tokenizer.json`.
    pub path: PathBuf,
    /// `path` resolved against the config file's directory.
    #[serde(skip)]
    dir: PathBuf,
    /// The directory's `config.json`, once [`resolve`](ModelConfig::resolve)d
    /// (the 124M `gpt2`'s before).
    #[serde(skip)]
    hf: Gpt2Config,
}

impl Gpt2Family {
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
    pub fn shaped(hf: Gpt2Config) -> Self {
        Self {
            hf,
            ..Self::default()
        }
    }

    /// The checkpoint's `config.json` (the 124M `gpt2`'s before
    /// [`resolve`](ModelConfig::resolve)).
    pub fn hf(&self) -> &Gpt2Config {
        &self.hf
    }
}

impl ModelConfig for Gpt2Family {
    const FAMILY: &'static str = "gpt2";
    type Model = Gpt2;

    fn resolve(&mut self, dir: &Path) -> Result<(), ConfigError> {
        if self.path.as_os_str().is_empty() {
            return Err(ConfigError::new(
                "path",
                "missing",
                "a Hugging Face model directory (config.json, model.safetensors, \
                 tokenizer.json); lrscape does not pre-train GPT-2 bases",
            ));
        }
        self.dir = dir.join(&self.path);
        let config_path = self.dir.join(hf::CONFIG);
        let text = std::fs::read_to_string(&config_path).map_err(|e| {
            ConfigError::new(
                "path",
                format!("{:?}", self.path),
                format!(
                    "a Hugging Face model directory: cannot read {} ({e})",
                    config_path.display()
                ),
            )
        })?;
        let config = Gpt2Config::from_hf_json(&text, &config_path.display().to_string())
            .map_err(|e| ConfigError::new("path", format!("{:?}", self.path), e.to_string()))?;
        self.hf = config;
        Ok(())
    }

    fn validate(&self) -> Result<(), ConfigError> {
        self.hf
            .validate()
            .map_err(|e| ConfigError::new("path", format!("{:?}", self.path), e.to_string()))
    }

    fn vocab(&self) -> usize {
        self.hf.vocab_size
    }

    fn seq_len(&self) -> usize {
        self.hf.n_positions
    }

    fn causal(&self) -> bool {
        true
    }

    fn linear_layout(&self) -> LinearLayout {
        let hf = &self.hf;
        crate::adaptable::linear_layout(hf.n_layer, hf.n_embd, hf.d_ff())
    }

    fn parameters(&self) -> f64 {
        let hf = &self.hf;
        let [vocab, positions, d, ff, layers] = [
            hf.vocab_size,
            hf.n_positions,
            hf.n_embd,
            hf.d_ff(),
            hf.n_layer,
        ]
        .map(|n| n as f64);
        // Per block: two LayerNorms, c_attn and c_proj with biases, the MLP
        // with biases; then ln_f. The head is wte.
        let block = 4.0 * d + (3.0 * d * d + 3.0 * d) + (d * d + d) + (2.0 * d * ff + ff + d);
        vocab * d + positions * d + layers * block + 2.0 * d
    }

    fn activations_per_sequence(&self, seq_len: usize) -> f64 {
        let hf = &self.hf;
        let [vocab, seq, d, ff, layers, heads] = [
            hf.vocab_size,
            seq_len,
            hf.n_embd,
            hf.d_ff(),
            hf.n_layer,
            hf.n_head,
        ]
        .map(|n| n as f64);
        // Per block: norms, the fused qkv, attention output and residuals
        // (≈ 10 d per token), the MLP (3 ff), scores and softmax; then the
        // logits and their log-softmax.
        let block = seq * (10.0 * d + 3.0 * ff + 2.0 * heads * seq);
        seq * d + layers * block + 2.0 * seq * vocab
    }

    fn init(&self, seed: u64, device: &Device) -> Result<Gpt2, ConfigError> {
        Gpt2::init(&self.hf, seed, device)
            .map_err(|e| ConfigError::new("path", format!("{:?}", self.path), e.to_string()))
    }

    /// The directory read; none for a [`shaped`](Gpt2Family::shaped) model.
    fn checkpoint(&self) -> Option<&Path> {
        (!self.dir.as_os_str().is_empty()).then_some(self.dir.as_path())
    }

    fn load_checkpoint(&self, device: &Device) -> Result<Gpt2, String> {
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
        Some(self.dir.join(TOKENIZER))
    }

    fn files(&self) -> Vec<PathBuf> {
        let mut files = vec![self.dir.join(hf::CONFIG)];
        files.extend(hf::weight_files(&self.dir).unwrap_or_default());
        files
    }

    fn head_is_tied(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use burn::module::Module;

    use super::*;

    fn tiny() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/gpt2/tiny")
    }

    #[test]
    fn the_parameter_count_from_the_config_is_the_checkpoints() {
        let family = Gpt2Family::from_dir(&tiny()).unwrap();
        let model = family.load_checkpoint(&Device::default()).unwrap();
        assert_eq!(family.parameters(), model.num_params() as f64);
        assert_eq!(family.vocab(), 96);
        assert_eq!(family.files().len(), 2);
    }

    #[test]
    fn a_directory_that_is_not_a_checkpoint_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let mut family = Gpt2Family {
            path: "model".into(),
            ..Gpt2Family::default()
        };
        let err = family.resolve(dir.path()).unwrap_err().to_string();
        assert!(err.starts_with("model.path = \"model\""), "{err}");
        assert!(err.contains("config.json"), "{err}");
        let err = Gpt2Family::default()
            .resolve(dir.path())
            .unwrap_err()
            .to_string();
        assert!(err.contains("model.path = missing"), "{err}");
    }
}
