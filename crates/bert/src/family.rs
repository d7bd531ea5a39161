//! Encoders as a model family (`family = "bert"`): a `[model]` table
//! naming a Hugging Face directory (`path`) whose `config.json` says
//! `model_type` `distilbert` or `bert`, whose checkpoint is the base and
//! whose `tokenizer.json` (WordPiece) encodes text tasks with `[CLS] …
//! [SEP]`; or the shape of an encoder lrscape pre-trains itself as a masked
//! LM (`model_type`, `vocab_size`, `hidden_size`, …, BERT's names for
//! both), with a WordPiece trained on the pre-training text. Either way
//! `num_labels` gives the classifier's classes (unless the checkpoint is a
//! classifier).

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use nn::{
    ConfigError, LinearLayout, ModelConfig, TrainedTokenizer, TransformerShape, required_shape,
};
use serde::{Deserialize, Serialize};

use crate::BertModel;
use crate::classify::BertForSequenceClassification;
use crate::config::{BertConfig, Variant};
use crate::hf;
use crate::masked_lm::BertForMaskedLM;
use crate::model::Bert;

/// The tokenizer file of a model directory.
pub const TOKENIZER: &str = "tokenizer.json";

/// `[model]` of a study of an encoder checkpoint.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BertFamily {
    /// A Hugging Face directory: `config.json`, `model.safetensors` (or
    /// shards), `tokenizer.json`; empty for an encoder pre-trained here.
    #[serde(default, skip_serializing_if = "is_empty")]
    pub path: PathBuf,
    /// The classes of the sequence classifier: a classifier checkpoint's
    /// own count, or a new head on any other checkpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_labels: Option<usize>,
    /// Without `path`: `distilbert` or `bert`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_type: Option<String>,
    /// Without `path`: the WordPiece trained on the pre-training text has
    /// at most this many tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vocab_size: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_position_embeddings: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hidden_size: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_hidden_layers: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_attention_heads: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intermediate_size: Option<usize>,
    /// `path` resolved against the config file's directory.
    #[serde(skip)]
    dir: PathBuf,
    /// The directory's `config.json`, once [`resolve`](ModelConfig::resolve)d
    /// (`distilbert-base-uncased`'s shape before).
    #[serde(skip)]
    hf: BertConfig,
}

fn is_empty(path: &Path) -> bool {
    path.as_os_str().is_empty()
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

    fn shape(&self) -> [(&'static str, Option<usize>); 6] {
        [
            ("vocab_size", self.vocab_size),
            ("max_position_embeddings", self.max_position_embeddings),
            ("hidden_size", self.hidden_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("num_attention_heads", self.num_attention_heads),
            ("intermediate_size", self.intermediate_size),
        ]
    }

    /// The config of an encoder pre-trained here: the shape given, in the
    /// variant's own `config.json` names, `transformers`' defaults for the
    /// rest (GELU, `[PAD]` = 0).
    fn shape_config(&self) -> Result<BertConfig, ConfigError> {
        let model_type = self.model_type.as_deref().ok_or_else(|| {
            ConfigError::new(
                "model_type",
                "missing",
                "\"distilbert\" or \"bert\": required without model.path (the encoder \
                 lrscape pre-trains); or set path to a Hugging Face directory",
            )
        })?;
        let variant = Variant::parse(model_type).ok_or_else(|| {
            ConfigError::new(
                "model_type",
                format!("{model_type:?}"),
                "\"distilbert\" or \"bert\"",
            )
        })?;
        let values = required_shape(
            self.shape(),
            "required without model.path (the shape of the encoder lrscape \
                     pre-trains); or set path to a Hugging Face directory",
        )?;
        let [vocab, positions, d, layers, heads, ff] = values;
        let json = match variant {
            Variant::DistilBert => serde_json::json!({
                "model_type": "distilbert", "vocab_size": vocab,
                "max_position_embeddings": positions, "dim": d, "n_layers": layers,
                "n_heads": heads, "hidden_dim": ff, "activation": "gelu",
                "sinusoidal_pos_embds": false, "pad_token_id": 0,
            }),
            Variant::Bert => serde_json::json!({
                "model_type": "bert", "vocab_size": vocab, "max_position_embeddings": positions,
                "hidden_size": d, "num_hidden_layers": layers, "num_attention_heads": heads,
                "intermediate_size": ff, "hidden_act": "gelu", "type_vocab_size": 2,
                "layer_norm_eps": 1e-12, "pad_token_id": 0,
            }),
        };
        BertConfig::from_hf_json(&json.to_string(), Path::new("model")).map_err(|e| match e {
            crate::BertError::Config {
                field,
                value,
                allowed,
            } => ConfigError::new(field, value, allowed),
            e => ConfigError::new("model_type", model_type, e.to_string()),
        })
    }
}

impl ModelConfig for BertFamily {
    const FAMILY: &'static str = "bert";
    type Model = BertModel;

    fn resolve(&mut self, dir: &Path) -> Result<(), ConfigError> {
        if self.path.as_os_str().is_empty() {
            self.hf = self.shape_config()?;
            return match self.num_labels {
                Some(_) => Ok(()),
                None => Err(ConfigError::new(
                    "num_labels",
                    "missing",
                    "the number of classes of the classifier fine-tuned on the encoder \
                     pre-trained here",
                )),
            };
        }
        let shape_given =
            self.model_type.is_some() || self.shape().iter().any(|(_, v)| v.is_some());
        if shape_given {
            return Err(ConfigError::new(
                "model_type",
                "or another shape field set",
                "not beside model.path (the checkpoint's config.json gives the shape; \
                 remove it, or remove path to pre-train an encoder of this shape)",
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
        // Fine-tuning trains a classifier: its pooler is a site.
        crate::adaptable::linear_layout(
            hf.variant,
            hf.num_hidden_layers,
            (hf.hidden_size, hf.intermediate_size),
            true,
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

    /// A masked LM to pre-train without a checkpoint; a classifier of the
    /// checkpoint's shape beside one.
    fn init(&self, seed: u64, device: &Device) -> Result<Self::Model, ConfigError> {
        Ok(match self.checkpoint() {
            None => BertModel::MaskedLm(BertForMaskedLM::init(&self.hf, seed, device)),
            Some(_) => BertModel::Classifier(BertForSequenceClassification::with_new_head(
                Bert::init(&self.hf, seed, device),
                self.labels(),
                device,
            )),
        })
    }

    /// The pre-trained masked LM's body with a new classification head.
    fn for_finetuning(&self, base: Self::Model, device: &Device) -> Self::Model {
        match base {
            BertModel::MaskedLm(lm) => BertModel::Classifier(
                BertForSequenceClassification::with_new_head(lm.bert, self.labels(), device),
            ),
            classifier => classifier,
        }
    }

    fn save_pretrained(&self, model: &Self::Model, dir: &Path) -> Result<bool, String> {
        match model {
            BertModel::MaskedLm(lm) => hf::save_masked_lm(lm, &self.hf, dir),
            BertModel::Classifier(c) => hf::save_classifier(c, &self.hf, dir),
        }
        .map_err(|e| e.to_string())?;
        Ok(true)
    }

    fn trained_tokenizer(&self) -> TrainedTokenizer {
        TrainedTokenizer::WordPiece
    }

    /// The directory read; none for an encoder pre-trained here.
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
        Ok(BertModel::Classifier(model))
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

    #[test]
    fn an_encoder_pre_trained_here_is_named_by_its_shape() {
        let shape = BertFamily {
            num_labels: Some(7),
            model_type: Some("bert".into()),
            vocab_size: Some(300),
            max_position_embeddings: Some(32),
            hidden_size: Some(16),
            num_hidden_layers: Some(2),
            num_attention_heads: Some(4),
            intermediate_size: Some(32),
            ..BertFamily::default()
        };
        let mut ok = shape.clone();
        ok.resolve(Path::new("")).unwrap();
        ok.validate().unwrap();
        assert_eq!(
            (ok.hf().variant, ok.hf().type_vocab_size),
            (Variant::Bert, 2)
        );
        // Pre-trained as a masked LM, fine-tuned as a classifier of its body.
        let device = Device::default();
        let base = ok.init(0, &device).unwrap();
        assert!(matches!(base, BertModel::MaskedLm(_)));
        let tuned = ok.for_finetuning(base, &device);
        let BertModel::Classifier(c) = &tuned else {
            panic!("a classifier")
        };
        assert_eq!(c.num_labels(), 7);
        // The count from the config is the classifier's, what fine-tuning
        // trains (and `lrscape params` counts).
        assert_eq!(tuned.num_params() as f64, ok.parameters());
        let err = |edit: &dyn Fn(&mut BertFamily)| {
            let mut f = shape.clone();
            edit(&mut f);
            f.resolve(Path::new("")).unwrap_err().to_string()
        };
        assert!(err(&|f| f.model_type = None).starts_with("model.model_type = missing"));
        assert!(
            err(&|f| f.model_type = Some("roberta".into()))
                .starts_with("model.model_type = \"roberta\": \"distilbert\" or \"bert\"")
        );
        assert!(err(&|f| f.hidden_size = None).starts_with("model.hidden_size = missing"));
        assert!(
            err(&|f| f.num_attention_heads = Some(5))
                .starts_with("model.num_attention_heads = 5: a divisor of the width 16")
        );
        assert!(err(&|f| f.num_labels = None).starts_with("model.num_labels = missing"));
        assert!(
            err(&|f| f.path = fixture("tiny-bert")).starts_with("model.model_type = or another")
        );
    }
}
