//! The architecture as Hugging Face's `config.json` states it for
//! DistilBERT (`DistilBertConfig`: `dim`, `n_layers`, …) and BERT
//! (`BertConfig`: `hidden_size`, `num_hidden_layers`, …), read into one
//! set of fields; the file itself is kept and written back.

use std::path::Path;

use serde_json::{Map, Value};

use crate::BertError;

/// Which encoder a checkpoint is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// `distilbert`: no token types, `pre_classifier` + ReLU before the
    /// classifier.
    DistilBert,
    /// `bert`: token-type embeddings, a pooler (dense + tanh) before the
    /// classifier.
    Bert,
}

impl Variant {
    pub const MODEL_TYPES: [&'static str; 2] = ["distilbert", "bert"];

    pub fn parse(model_type: &str) -> Option<Self> {
        match model_type {
            "distilbert" => Some(Self::DistilBert),
            "bert" => Some(Self::Bert),
            _ => None,
        }
    }

    pub fn model_type(self) -> &'static str {
        match self {
            Self::DistilBert => "distilbert",
            Self::Bert => "bert",
        }
    }

    /// The `transformers` class of the sequence classifier.
    pub fn classifier_architecture(self) -> &'static str {
        match self {
            Self::DistilBert => "DistilBertForSequenceClassification",
            Self::Bert => "BertForSequenceClassification",
        }
    }

    /// The `transformers` class of the masked LM.
    pub fn masked_lm_architecture(self) -> &'static str {
        match self {
            Self::DistilBert => "DistilBertForMaskedLM",
            Self::Bert => "BertForMaskedLM",
        }
    }

    /// The prefix of the body's keys in a `transformers` checkpoint.
    pub fn prefix(self) -> &'static str {
        match self {
            Self::DistilBert => "distilbert",
            Self::Bert => "bert",
        }
    }
}

/// The block MLP's activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// `gelu`: the exact (erf) GELU.
    Gelu,
    Relu,
}

/// The fields the forward pass depends on, in BERT's names, with
/// `transformers`' defaults; `json` is the whole `config.json` as read.
#[derive(Debug, Clone, PartialEq)]
pub struct BertConfig {
    pub variant: Variant,
    pub vocab_size: usize,
    pub max_position_embeddings: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    /// 0 for DistilBERT, which has no token types.
    pub type_vocab_size: usize,
    pub layer_norm_eps: f64,
    pub activation: Activation,
    pub pad_token_id: u32,
    /// The labels of a `*ForSequenceClassification` checkpoint; `None` for
    /// any other architecture (a masked LM, a bare body).
    pub num_labels: Option<usize>,
    pub json: Map<String, Value>,
}

impl Default for BertConfig {
    /// `distilbert-base-uncased`'s shape.
    fn default() -> Self {
        Self {
            variant: Variant::DistilBert,
            vocab_size: 30_522,
            max_position_embeddings: 512,
            hidden_size: 768,
            num_hidden_layers: 6,
            num_attention_heads: 12,
            intermediate_size: 3072,
            type_vocab_size: 0,
            layer_norm_eps: 1e-12,
            activation: Activation::Gelu,
            pad_token_id: 0,
            num_labels: None,
            json: Map::new(),
        }
    }
}

impl BertConfig {
    /// Reads `config.json`'s text (`path` names it in errors).
    pub fn from_hf_json(text: &str, path: &Path) -> Result<Self, BertError> {
        let json: Value = serde_json::from_str(text)
            .map_err(|e| BertError::file(path, format!("not JSON: {e}")))?;
        let labels = nn::hf_label_count(&json);
        let Value::Object(json) = json else {
            return Err(BertError::file(path, "not a JSON object"));
        };
        let model_type = json.get("model_type").and_then(Value::as_str);
        let variant = model_type.and_then(Variant::parse).ok_or_else(|| {
            BertError::config(
                "model_type",
                model_type.map_or_else(|| "missing".into(), |t| format!("{t:?}")),
                format!(
                    "one of {:?} (the bert family's encoders)",
                    Variant::MODEL_TYPES
                ),
            )
        })?;
        let size = |name: &'static str, default: usize| -> Result<usize, BertError> {
            match json.get(name) {
                None => Ok(default),
                Some(v) => v
                    .as_u64()
                    .map(|n| n as usize)
                    .ok_or_else(|| BertError::config(name, v, "a whole number")),
            }
        };
        let (d, layers, heads, ff, types, act_field) = match variant {
            Variant::DistilBert => (
                size("dim", 768)?,
                size("n_layers", 6)?,
                size("n_heads", 12)?,
                size("hidden_dim", 3072)?,
                0,
                "activation",
            ),
            Variant::Bert => (
                size("hidden_size", 768)?,
                size("num_hidden_layers", 12)?,
                size("num_attention_heads", 12)?,
                size("intermediate_size", 3072)?,
                size("type_vocab_size", 2)?,
                "hidden_act",
            ),
        };
        let activation = match json
            .get(act_field)
            .and_then(Value::as_str)
            .unwrap_or("gelu")
        {
            "gelu" => Activation::Gelu,
            "relu" => Activation::Relu,
            other => {
                return Err(BertError::config(
                    act_field,
                    format!("{other:?}"),
                    "\"gelu\" or \"relu\"",
                ));
            }
        };
        let layer_norm_eps = match variant {
            // DistilBERT's LayerNorms use 1e-12 whatever the config says.
            Variant::DistilBert => 1e-12,
            Variant::Bert => json
                .get("layer_norm_eps")
                .map_or(Some(1e-12), Value::as_f64)
                .ok_or_else(|| {
                    BertError::config("layer_norm_eps", &json["layer_norm_eps"], "a number")
                })?,
        };
        if let Some(kind) = json.get("position_embedding_type").and_then(Value::as_str)
            && kind != "absolute"
        {
            return Err(BertError::config(
                "position_embedding_type",
                format!("{kind:?}"),
                "\"absolute\" (learned positions)",
            ));
        }
        if let Some(problem) = json.get("problem_type").filter(|v| !v.is_null())
            && problem.as_str() != Some("single_label_classification")
        {
            return Err(BertError::config(
                "problem_type",
                problem,
                "null or \"single_label_classification\" (cross-entropy over classes)",
            ));
        }
        let classifier = json
            .get("architectures")
            .and_then(Value::as_array)
            .is_some_and(|a| {
                a.iter()
                    .any(|n| n.as_str() == Some(variant.classifier_architecture()))
            });
        let num_labels = classifier.then_some(labels);
        let pad = size("pad_token_id", 0)?;
        let config = Self {
            variant,
            vocab_size: size("vocab_size", 30_522)?,
            max_position_embeddings: size("max_position_embeddings", 512)?,
            hidden_size: d,
            num_hidden_layers: layers,
            num_attention_heads: heads,
            intermediate_size: ff,
            type_vocab_size: types,
            layer_norm_eps,
            activation,
            pad_token_id: u32::try_from(pad)
                .map_err(|_| BertError::config("pad_token_id", pad, "a token id"))?,
            num_labels,
            json,
        };
        config.validate()?;
        Ok(config)
    }

    /// Checks the shape; the first problem found is returned, by the field
    /// name of the variant's `config.json`.
    pub fn validate(&self) -> Result<(), BertError> {
        let distil = self.variant == Variant::DistilBert;
        let name = |distil_name: &'static str, bert_name: &'static str| {
            if distil { distil_name } else { bert_name }
        };
        for (field, value) in [
            ("vocab_size", self.vocab_size),
            ("max_position_embeddings", self.max_position_embeddings),
            (name("dim", "hidden_size"), self.hidden_size),
            (
                name("n_layers", "num_hidden_layers"),
                self.num_hidden_layers,
            ),
            (
                name("n_heads", "num_attention_heads"),
                self.num_attention_heads,
            ),
            (
                name("hidden_dim", "intermediate_size"),
                self.intermediate_size,
            ),
        ] {
            if value == 0 {
                return Err(BertError::config(field, 0, "at least 1"));
            }
        }
        if !self.hidden_size.is_multiple_of(self.num_attention_heads) {
            return Err(BertError::config(
                name("n_heads", "num_attention_heads"),
                self.num_attention_heads,
                format!("a divisor of the width {}", self.hidden_size),
            ));
        }
        if self.pad_token_id as usize >= self.vocab_size {
            return Err(BertError::config(
                "pad_token_id",
                self.pad_token_id,
                format!("below vocab_size = {}", self.vocab_size),
            ));
        }
        if let Some(labels) = self.num_labels
            && labels < 2
        {
            return Err(BertError::config(
                "id2label",
                format!("{labels} label(s)"),
                "at least 2 (one label is regression, which lrscape does not train)",
            ));
        }
        Ok(())
    }

    /// `config.json` of the `transformers` class `architecture`, with
    /// `num_labels` labels where it is a classifier: the file as read, its
    /// architecture and labels replaced.
    pub fn to_json(&self, architecture: &str, num_labels: Option<usize>) -> String {
        let mut json = self.json.clone();
        json.insert("model_type".into(), self.variant.model_type().into());
        json.insert(
            "architectures".into(),
            Value::Array(vec![architecture.into()]),
        );
        if let Some(num_labels) = num_labels {
            let id2label: Map<String, Value> = (0..num_labels)
                .map(|i| (i.to_string(), Value::from(format!("LABEL_{i}"))))
                .collect();
            let label2id: Map<String, Value> = (0..num_labels)
                .map(|i| (format!("LABEL_{i}"), Value::from(i)))
                .collect();
            json.insert("id2label".into(), Value::Object(id2label));
            json.insert("label2id".into(), Value::Object(label2id));
            json.remove("num_labels");
        }
        serde_json::to_string_pretty(&Value::Object(json)).expect("JSON values serialise") + "\n"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Result<BertConfig, String> {
        BertConfig::from_hf_json(text, Path::new("config.json")).map_err(|e| e.to_string())
    }

    #[test]
    fn both_variants_read_into_one_shape() {
        let distil = read(
            r#"{"model_type": "distilbert", "dim": 32, "n_layers": 2, "n_heads": 2,
                "hidden_dim": 48, "vocab_size": 256, "max_position_embeddings": 64,
                "architectures": ["DistilBertForSequenceClassification"],
                "id2label": {"0": "a", "1": "b", "2": "c"}}"#,
        )
        .unwrap();
        assert_eq!(
            (
                distil.hidden_size,
                distil.intermediate_size,
                distil.type_vocab_size
            ),
            (32, 48, 0)
        );
        assert_eq!(distil.num_labels, Some(3));
        let bert = read(
            r#"{"model_type": "bert", "hidden_size": 32, "num_hidden_layers": 2,
                "num_attention_heads": 4, "intermediate_size": 48, "vocab_size": 256,
                "layer_norm_eps": 1e-5, "architectures": ["BertForMaskedLM"]}"#,
        )
        .unwrap();
        assert_eq!((bert.type_vocab_size, bert.layer_norm_eps), (2, 1e-5));
        assert_eq!(bert.num_labels, None);
        // The file is kept: unknown fields come back.
        let json: Value =
            serde_json::from_str(&bert.to_json(bert.variant.classifier_architecture(), Some(2)))
                .unwrap();
        assert_eq!(json["layer_norm_eps"], 1e-5);
        assert_eq!(json["architectures"][0], "BertForSequenceClassification");
        assert_eq!(json["id2label"]["1"], "LABEL_1");
    }

    #[test]
    fn bad_configs_name_the_field() {
        let err = |text: &str| read(text).unwrap_err();
        assert!(err(r#"{"model_type": "roberta"}"#).contains("model_type = \"roberta\": one of"));
        assert!(err("[1]").contains("not a JSON object"));
        assert!(
            err(r#"{"model_type": "distilbert", "dim": 30, "n_heads": 4}"#)
                .contains("n_heads = 4: a divisor of the width 30")
        );
        assert!(
            err(r#"{"model_type": "bert", "hidden_act": "swish"}"#)
                .contains("hidden_act = \"swish\": \"gelu\" or \"relu\"")
        );
        assert!(
            err(r#"{"model_type": "bert", "position_embedding_type": "relative_key"}"#)
                .contains("position_embedding_type = \"relative_key\"")
        );
        assert!(
            err(r#"{"model_type": "bert", "problem_type": "regression"}"#)
                .contains("problem_type = \"regression\"")
        );
        assert!(
            err(
                r#"{"model_type": "bert", "architectures": ["BertForSequenceClassification"],
                    "id2label": {"0": "x"}}"#
            )
            .contains("id2label = 1 label(s): at least 2")
        );
        assert!(err(r#"{"model_type": "bert", "vocab_size": -3}"#).contains("vocab_size = -3"));
    }
}
