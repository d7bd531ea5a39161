//! GPT-2 as a model family: a `[model]` table naming a Hugging Face
//! directory (`family = "gpt2"`, `path = "..."`), whose checkpoint is the
//! base and whose `tokenizer.json` text tasks encode with; or the shape of
//! a GPT-2 that lrscape pre-trains itself (`vocab_size`, `n_positions`,
//! `n_embd`, `n_layer`, `n_head`), saved as such a directory.

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use nn::{ConfigError, LinearLayout, ModelConfig, TransformerShape, required_shape};
use serde::{Deserialize, Serialize};

use crate::Gpt2Error;
use crate::Gpt2Model;
use crate::classify::Gpt2ForSequenceClassification;
use crate::config::Gpt2Config;
use crate::hf;
use crate::model::Gpt2;

/// The tokenizer file of a model directory.
pub const TOKENIZER: &str = "tokenizer.json";

/// `[model]` of a GPT-2 study: the checkpoint directory as written in the
/// config (relative to the config file), and what was read from it; or,
/// without a directory, the shape of a base to pre-train (`GPT2Config`'s
/// names and defaults).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Gpt2Family {
    /// A Hugging Face directory: `config.json`, `model.safetensors` (or
    /// shards), `tokenizer.json`.
    #[serde(default, skip_serializing_if = "is_empty")]
    pub path: PathBuf,
    /// Without `path`: the byte-level BPE trained on the pre-training text
    /// has at most this many tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vocab_size: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n_positions: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n_embd: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n_layer: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n_head: Option<usize>,
    /// A sequence classifier of this many labels
    /// (`GPT2ForSequenceClassification`): a classifier checkpoint's own
    /// count, or a new `score` head on a language model's checkpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_labels: Option<usize>,
    /// `path` resolved against the config file's directory.
    #[serde(skip)]
    dir: PathBuf,
    /// The directory's `config.json`, once [`resolve`](ModelConfig::resolve)d
    /// (the 124M `gpt2`'s before).
    #[serde(skip)]
    hf: Gpt2Config,
    /// What `config.json` says beyond the shape.
    #[serde(skip)]
    checkpoint_head: CheckpointHead,
}

/// A checkpoint's classifier fields: its label count if it is a
/// `GPT2ForSequenceClassification`, its pad (or end-of-text) token.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
struct CheckpointHead {
    labels: Option<usize>,
    pad_token_id: Option<u32>,
    eos_token_id: Option<u32>,
}

impl CheckpointHead {
    fn of(json: &serde_json::Value) -> Self {
        let is_classifier = json
            .get("architectures")
            .and_then(|a| a.as_array())
            .is_some_and(|a| {
                a.iter()
                    .any(|n| n.as_str() == Some("GPT2ForSequenceClassification"))
            });
        let id = |key: &str| json.get(key).and_then(|v| v.as_u64()).map(|v| v as u32);
        Self {
            labels: is_classifier.then(|| nn::hf_label_count(json)),
            pad_token_id: id("pad_token_id").or_else(|| id("eos_token_id")),
            eos_token_id: id("eos_token_id"),
        }
    }
}

/// `score`'s initial weights for a checkpoint without one, `[n_embd,
/// labels]`: normal with `transformers`' `initializer_range` (0.02), from a
/// fixed seed so that every run adds the same head.
fn new_score(n_embd: usize, labels: usize, device: &Device) -> burn::tensor::Tensor<2> {
    let mut rng = nn::init::ParamRng::new(0x5c0e);
    let values = rng.normal(labels * n_embd, 0.02);
    nn::init::tensor_from(values, [labels, n_embd], device).transpose()
}

fn is_empty(path: &Path) -> bool {
    path.as_os_str().is_empty()
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

    fn shape(&self) -> [(&'static str, Option<usize>); 5] {
        [
            ("vocab_size", self.vocab_size),
            ("n_positions", self.n_positions),
            ("n_embd", self.n_embd),
            ("n_layer", self.n_layer),
            ("n_head", self.n_head),
        ]
    }

    /// The config of a base pre-trained here: the shape given, HF's
    /// defaults for the rest.
    fn shape_config(&self) -> Result<Gpt2Config, ConfigError> {
        let values = required_shape(
            self.shape(),
            "required without model.path (the shape of the GPT-2 lrscape \
                     pre-trains); or set path to a Hugging Face directory",
        )?;
        let [vocab_size, n_positions, n_embd, n_layer, n_head] = values;
        Ok(Gpt2Config {
            vocab_size,
            n_positions,
            n_embd,
            n_layer,
            n_head,
            ..Gpt2Config::default()
        })
    }

    /// The checkpoint's `config.json` (the 124M `gpt2`'s before
    /// [`resolve`](ModelConfig::resolve)).
    pub fn hf(&self) -> &Gpt2Config {
        &self.hf
    }
}

impl ModelConfig for Gpt2Family {
    const FAMILY: &'static str = "gpt2";
    type Model = Gpt2Model;

    fn resolve(&mut self, dir: &Path) -> Result<(), ConfigError> {
        if is_empty(&self.path) {
            if let Some(n) = self.num_labels {
                return Err(ConfigError::new(
                    "num_labels",
                    n,
                    "absent without model.path: a classifier starts from a checkpoint \
                     (GPT2LMHeadModel or GPT2ForSequenceClassification)",
                ));
            }
            self.hf = self.shape_config()?;
            return Ok(());
        }
        if let Some((field, _)) = self.shape().into_iter().find(|(_, v)| v.is_some()) {
            return Err(ConfigError::new(
                field,
                "set",
                "not beside model.path (the checkpoint's config.json gives the shape; \
                 remove it, or remove path to pre-train a GPT-2 of this shape)",
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
        let (config, json) = Gpt2Config::read_hf_json(&text, &config_path.display().to_string())
            .map_err(|e| ConfigError::new("path", format!("{:?}", self.path), e.to_string()))?;
        self.hf = config;
        self.checkpoint_head = CheckpointHead::of(&json);
        if let (Some(given), Some(own)) = (self.num_labels, self.checkpoint_head.labels)
            && given != own
        {
            return Err(ConfigError::new(
                "num_labels",
                given,
                format!(
                    "{own}, the labels of the classifier {} (or leave it out)",
                    config_path.display()
                ),
            ));
        }
        Ok(())
    }

    fn validate(&self) -> Result<(), ConfigError> {
        self.hf.validate().map_err(|e| match e {
            // A shape given in the config is named by its field.
            Gpt2Error::Config {
                field,
                value,
                allowed,
            } if is_empty(&self.path) => ConfigError::new(field, value, allowed),
            e => ConfigError::new("path", format!("{:?}", self.path), e.to_string()),
        })
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
        TransformerShape {
            vocab: hf.vocab_size,
            d_model: hf.n_embd,
            d_ff: hf.d_ff(),
            layers: hf.n_layer,
            heads: hf.n_head,
        }
        .activations_per_sequence(seq_len)
    }

    fn init(&self, seed: u64, device: &Device) -> Result<Gpt2Model, ConfigError> {
        let body = Gpt2::init(&self.hf, seed, device)
            .map_err(|e| ConfigError::new("path", format!("{:?}", self.path), e.to_string()))?;
        Ok(self.with_head(body, device))
    }

    fn save_pretrained(&self, model: &Gpt2Model, dir: &Path) -> Result<bool, String> {
        match model {
            Gpt2Model::Lm(lm) => hf::save_dir(lm, &self.hf, dir).map_err(|e| e.to_string())?,
            Gpt2Model::Classifier(_) => return Ok(false),
        }
        Ok(true)
    }

    fn num_labels(&self) -> Option<usize> {
        self.num_labels.or(self.checkpoint_head.labels)
    }

    fn pad_token_id(&self) -> Option<u32> {
        self.checkpoint_head.pad_token_id
    }

    fn eos_token_id(&self) -> Option<u32> {
        self.checkpoint_head.eos_token_id
    }

    /// The directory read; none for a [`shaped`](Gpt2Family::shaped) model.
    fn checkpoint(&self) -> Option<&Path> {
        (!self.dir.as_os_str().is_empty()).then_some(self.dir.as_path())
    }

    fn load_checkpoint(&self, device: &Device) -> Result<Gpt2Model, String> {
        if self.checkpoint_head.labels.is_some() {
            let (config, model) =
                hf::load_classifier_dir(&self.dir, device).map_err(|e| e.to_string())?;
            self.unchanged(&config)?;
            return Ok(Gpt2Model::Classifier(model));
        }
        let (config, model) = hf::load_dir(&self.dir, device).map_err(|e| e.to_string())?;
        self.unchanged(&config)?;
        Ok(self.with_head(model, device))
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
        self.num_labels().is_none()
    }
}

impl Gpt2Family {
    /// The config read at load still describes the checkpoint.
    fn unchanged(&self, config: &Gpt2Config) -> Result<(), String> {
        if *config != self.hf {
            return Err(format!(
                "{} changed since the config was read",
                self.dir.join(hf::CONFIG).display()
            ));
        }
        Ok(())
    }

    /// `body` as the model this config names: the language model, or a
    /// classifier with a new `score` head.
    fn with_head(&self, body: Gpt2, device: &Device) -> Gpt2Model {
        match self.num_labels() {
            None => Gpt2Model::Lm(body),
            Some(labels) => {
                let score = new_score(self.hf.n_embd, labels, device);
                Gpt2Model::Classifier(Gpt2ForSequenceClassification::new(
                    body,
                    score,
                    self.pad_token_id(),
                ))
            }
        }
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
        assert!(
            err.starts_with("model.vocab_size = missing: required without model.path"),
            "{err}"
        );
        let both = Gpt2Family {
            path: "model".into(),
            n_layer: Some(2),
            ..Gpt2Family::default()
        };
        let err = both.clone().resolve(dir.path()).unwrap_err().to_string();
        assert!(
            err.starts_with("model.n_layer = set: not beside model.path"),
            "{err}"
        );
    }

    #[test]
    fn a_shape_without_a_path_is_a_base_to_pre_train_named_by_its_fields() {
        let shape = Gpt2Family {
            vocab_size: Some(300),
            n_positions: Some(32),
            n_embd: Some(24),
            n_layer: Some(2),
            n_head: Some(4),
            ..Gpt2Family::default()
        };
        let mut family = shape.clone();
        family.resolve(Path::new("anywhere")).unwrap();
        family.validate().unwrap();
        assert_eq!(family.checkpoint(), None);
        assert_eq!(family.tokenizer(), None);
        assert!(family.files().is_empty());
        assert_eq!((family.vocab(), family.seq_len()), (300, 32));
        let model = family.init(0, &Device::default()).unwrap();
        assert_eq!(family.parameters(), model.num_params() as f64);
        let mut odd = Gpt2Family {
            n_head: Some(5),
            ..shape
        };
        odd.resolve(Path::new("")).unwrap();
        let err = odd.validate().unwrap_err().to_string();
        assert_eq!(err, "model.n_head = 5: a divisor of n_embd = 24");
    }
}
