//! Encoders as a model family: a `[model]` table naming a Hugging Face
//! directory (`family = "bert"`, `path = "..."`) whose `config.json` says
//! `model_type` `distilbert` or `bert`, and the classifier's label count
//! (`num_labels`, unless the checkpoint is a classifier). Its checkpoint is
//! the base and its `tokenizer.json` (WordPiece) encodes text tasks with
//! `[CLS] … [SEP]`.

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use nn::{ConfigError, LinearLayout, ModelConfig, TransformerShape};
use serde::{Deserialize, Serialize};

use crate::classify::BertForSequenceClassification;
use crate::config::{BertConfig, Variant};
use crate::hf;
use crate::model::Bert;

/// The tokenizer file of a model directory.
pub const TOKENIZER: &str = "tokenizer.json";

/// `[model]` of a study of an encoder checkpoint.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BertFamily {
    /// A Hugging Face directory: `config.json`, `model.safetensors` (or
    /// shards), `tokenizer.json`.
    #[serde(default)]
    pub path: PathBuf,
    /// The classes of the sequence classifier: a classifier checkpoint's
    /// own count, or a new head on any other checkpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_labels: Option<usize>,
    /// `path` resolved against the config file's directory.
    #[serde(skip)]
    dir: PathBuf,
    /// The directory's `config.json`, once [`resolve`](ModelConfig::resolve)d
    /// (`distilbert-base-uncased`'s shape before).
    #[serde(skip)]
    hf: BertConfig,
}

impl BertFamily {
    /// A family config for the directory `dir`, already resolved.
    pub fn from_dir(dir: &Path, num_labels: Option<usize>) -> Result<Self, ConfigError> {
        let mut family = Self {
            path: dir.to_path_buf(),
            num_labels,
            ..Self::default()
        };
        family.resolve(Path::new(""))?;
        Ok(family)
    }

    /// A classifier of `hf`'s shape with no checkpoint behind it: what
    /// [`init`](ModelConfig::init) draws (benchmarks of real sizes).
    pub fn shaped(hf: BertConfig, num_labels: usize) -> Self {
        Self {
            hf,
            num_labels: Some(num_labels),
            ..Self::default()
        }
    }

    /// The checkpoint's `config.json`.
    pub fn hf(&self) -> &BertConfig {
        &self.hf
    }

    fn path_error(&self, message: impl Into<String>) -> ConfigError {
        ConfigError::new("path", format!("{:?}", self.path), message)
    }

    fn labels(&self) -> usize {
        self.num_labels().unwrap_or(2)
    }
}

impl ModelConfig for BertFamily {
    const FAMILY: &'static str = "bert";
    type Model = BertForSequenceClassification;

    fn resolve(&mut self, dir: &Path) -> Result<(), ConfigError> {
        if self.path.as_os_str().is_empty() {
            return Err(ConfigError::new(
                "path",
                "missing",
                "a Hugging Face model directory of an encoder \
                 (config.json with model_type distilbert or bert)",
            ));
        }
        self.dir = dir.join(&self.path);
        self.hf = hf::read_config(&self.dir).map_err(|e| self.path_error(e.to_string()))?;
        let config_path = self.dir.join(hf::CONFIG);
        match (self.num_labels, self.hf.num_labels) {
            (Some(given), Some(own)) if given != own => Err(ConfigError::new(
                "num_labels",
                given,
                format!(
                    "{own}, the labels of the classifier {} (or leave it out)",
                    config_path.display()
                ),
            )),
            (None, None) => Err(ConfigError::new(
                "num_labels",
                "missing",
                format!(
                    "the number of classes: {} is not a {} (its head is new)",
                    config_path.display(),
                    self.hf.variant.classifier_architecture()
                ),
            )),
            _ => Ok(()),
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        self.hf
            .validate()
            .map_err(|e| self.path_error(e.to_string()))?;
        match self.num_labels() {
            Some(n) if n < 2 => Err(ConfigError::new(
                "num_labels",
                n,
                "at least 2 (one label is regression, which lrscape does not train)",
            )),
            _ => Ok(()),
        }
    }

    fn vocab(&self) -> usize {
        self.hf.vocab_size
    }

    fn seq_len(&self) -> usize {
        self.hf.max_position_embeddings
    }

    fn causal(&self) -> bool {
        false
    }

    fn linear_layout(&self) -> LinearLayout {
        let hf = &self.hf;
        crate::adaptable::linear_layout(
            hf.variant,
            hf.num_hidden_layers,
            hf.hidden_size,
            hf.intermediate_size,
        )
    }

    fn parameters(&self) -> f64 {
        let hf = &self.hf;
        let [vocab, positions, types, d, ff, layers, labels] = [
            hf.vocab_size,
            hf.max_position_embeddings,
            hf.type_vocab_size,
            hf.hidden_size,
            hf.intermediate_size,
            hf.num_hidden_layers,
            self.labels(),
        ]
        .map(|n| n as f64);
        // Per block: four attention linears, the MLP, two LayerNorms (all
        // with biases); then the embeddings' norm and the head.
        let block = 4.0 * (d * d + d) + (2.0 * d * ff + ff + d) + 4.0 * d;
        let head = (d * d + d) + (d * labels + labels);
        (vocab + positions + types) * d + 2.0 * d + layers * block + head
    }

    fn activations_per_sequence(&self, seq_len: usize) -> f64 {
        let hf = &self.hf;
        TransformerShape {
            // A classifier's logits are one row per sequence.
            vocab: 0,
            d_model: hf.hidden_size,
            d_ff: hf.intermediate_size,
            layers: hf.num_hidden_layers,
            heads: hf.num_attention_heads,
        }
        .activations_per_sequence(seq_len)
    }

    fn init(&self, seed: u64, device: &Device) -> Result<Self::Model, ConfigError> {
        let bert = Bert::init(&self.hf, seed, device);
        Ok(BertForSequenceClassification::with_new_head(
            bert,
            self.labels(),
            device,
        ))
    }

    fn save_pretrained(&self, model: &Self::Model, dir: &Path) -> Result<bool, String> {
        hf::save_classifier(model, &self.hf, dir).map_err(|e| e.to_string())?;
        Ok(true)
    }

    /// The directory read; none for a [`shaped`](BertFamily::shaped) model.
    fn checkpoint(&self) -> Option<&Path> {
        (!self.dir.as_os_str().is_empty()).then_some(self.dir.as_path())
    }

    fn load_checkpoint(&self, device: &Device) -> Result<Self::Model, String> {
        let (config, model) =
            hf::load_classifier(&self.dir, self.labels(), device).map_err(|e| e.to_string())?;
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
        files.extend(nn::safetensors_io::weight_files(&self.dir).unwrap_or_default());
        files
    }

    fn num_labels(&self) -> Option<usize> {
        self.num_labels.or(self.hf.num_labels)
    }

    fn pad_token_id(&self) -> Option<u32> {
        Some(self.hf.pad_token_id)
    }

    fn special_tokens(&self) -> bool {
        true
    }
}

impl BertFamily {
    pub fn variant(&self) -> Variant {
        self.hf.variant
    }
}

#[cfg(test)]
mod tests {
    use burn::module::Module;

    use super::*;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fixtures/bert")
            .join(name)
    }

    #[test]
    fn the_parameter_count_from_the_config_is_the_checkpoints() {
        for name in [
            "tiny-distilbert",
            "tiny-distilbert-classifier",
            "tiny-bert",
            "tiny-bert-classifier",
        ] {
            let family = BertFamily::from_dir(&fixture(name), Some(3)).unwrap();
            let model = family.load_checkpoint(&Device::default()).unwrap();
            assert_eq!(family.parameters(), model.num_params() as f64, "{name}");
            let drawn = family.init(0, &Device::default()).unwrap();
            assert_eq!(drawn.num_params(), model.num_params(), "{name}");
            assert_eq!(family.files().len(), 2, "{name}");
        }
    }

    #[test]
    fn label_counts_and_bad_directories_are_named() {
        let err = |family: Result<BertFamily, ConfigError>| family.unwrap_err().to_string();
        let e = err(BertFamily::from_dir(&fixture("tiny-distilbert"), None));
        assert!(
            e.starts_with("model.num_labels = missing: the number of classes:")
                && e.contains("is not a DistilBertForSequenceClassification"),
            "{e}"
        );
        let e = err(BertFamily::from_dir(
            &fixture("tiny-bert-classifier"),
            Some(4),
        ));
        assert!(
            e.starts_with("model.num_labels = 4: 3, the labels of"),
            "{e}"
        );
        let e = err(
            BertFamily::from_dir(&fixture("tiny-bert"), Some(1)).and_then(|f| {
                f.validate()?;
                Ok(f)
            }),
        );
        assert!(e.starts_with("model.num_labels = 1: at least 2"), "{e}");
        let llama = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/llama/tiny-qwen3");
        let e = err(BertFamily::from_dir(&llama, Some(2)));
        assert!(
            e.contains("model_type = \"qwen3\": one of [\"distilbert\", \"bert\"]"),
            "{e}"
        );
        let e = err(BertFamily::from_dir(Path::new("/nonexistent"), Some(2)));
        assert!(e.contains("no such directory"), "{e}");
    }
}
