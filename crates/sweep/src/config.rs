//! Experiment configs: TOML, unknown fields rejected, validated once at load.

use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tinyformer::TinyformerConfig;

/// The config `cargo xtask reproduce` and `lrscape` use when none is given.
pub const DEFAULT_CONFIG: &str = include_str!("../../../configs/default.toml");

/// One experiment: the task, the model and how the base is pre-trained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentConfig {
    /// Names the results directory (`results/<name>/`).
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub task: TaskConfig,
    #[serde(default)]
    pub model: TinyformerConfig,
    pub pretrain: PretrainConfig,
}

/// Retrieve-at-k with a pre-train -> fine-tune shift of the position `k`.
///
/// The four splits are drawn from `data_seed + 0..3` (pre-train train / val,
/// fine-tune train / val), as the seed notebook does with its `seed`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskConfig {
    pub k_pretrain: usize,
    pub k_finetune: usize,
    pub n_pretrain_train: usize,
    pub n_pretrain_val: usize,
    pub n_finetune_train: usize,
    pub n_finetune_val: usize,
    #[serde(default)]
    pub data_seed: u64,
}

/// Full training of the base model on the pre-training task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PretrainConfig {
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f64,
    #[serde(default)]
    pub weight_decay: f64,
    /// Seed of the initial weights.
    #[serde(default)]
    pub seed: u64,
}

/// A config value that is out of range, named by its TOML path.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field} = {value}: {allowed}")]
pub struct ConfigError {
    pub field: String,
    pub value: String,
    pub allowed: String,
}

fn bad(field: &str, value: impl ToString, allowed: impl Into<String>) -> ConfigError {
    ConfigError {
        field: field.to_string(),
        value: value.to_string(),
        allowed: allowed.into(),
    }
}

impl ExperimentConfig {
    /// Parses and validates TOML text; `origin` names it in errors.
    pub fn from_toml_str(text: &str, origin: &str) -> anyhow::Result<Self> {
        let config: Self =
            toml::from_str(text).map_err(|e| anyhow::anyhow!("{origin}: invalid config: {e}"))?;
        config
            .validate()
            .map_err(|e| anyhow::anyhow!("{origin}: invalid config: {e}"))?;
        Ok(config)
    }

    pub fn from_toml_file(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read config {}: {e}", path.display()))?;
        Self::from_toml_str(&text, &path.display().to_string())
    }

    /// The embedded `configs/default.toml`.
    pub fn embedded_default() -> Self {
        Self::from_toml_str(DEFAULT_CONFIG, "configs/default.toml (embedded)")
            .expect("the embedded default config is valid (tested)")
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.name.is_empty()
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(bad(
                "name",
                format!("{:?}", self.name),
                "a non-empty name of letters, digits, '-' and '_' (it names a directory)",
            ));
        }
        self.model
            .validate()
            .map_err(|e| bad(&format!("model.{}", e.field), e.value, e.allowed))?;
        let seq = self.model.seq_len;
        let t = &self.task;
        for (field, k) in [
            ("task.k_pretrain", t.k_pretrain),
            ("task.k_finetune", t.k_finetune),
        ] {
            if k >= seq {
                return Err(bad(
                    field,
                    k,
                    format!("a position below model.seq_len = {seq}"),
                ));
            }
        }
        for (field, n) in [
            ("task.n_pretrain_train", t.n_pretrain_train),
            ("task.n_pretrain_val", t.n_pretrain_val),
            ("task.n_finetune_train", t.n_finetune_train),
            ("task.n_finetune_val", t.n_finetune_val),
        ] {
            if n == 0 {
                return Err(bad(field, n, "at least 1 example"));
            }
        }
        let p = &self.pretrain;
        if p.epochs == 0 {
            return Err(bad("pretrain.epochs", p.epochs, "at least 1"));
        }
        if p.batch_size == 0 {
            return Err(bad("pretrain.batch_size", p.batch_size, "at least 1"));
        }
        if !(p.lr.is_finite() && p.lr > 0.0) {
            return Err(bad("pretrain.lr", p.lr, "a finite number > 0"));
        }
        if !(p.weight_decay.is_finite() && p.weight_decay >= 0.0) {
            return Err(bad(
                "pretrain.weight_decay",
                p.weight_decay,
                "a finite number >= 0",
            ));
        }
        Ok(())
    }

    /// Identifies the pre-trained base: a hash of everything it depends on
    /// (model, pre-training, and the pre-training part of the task).
    pub fn pretrain_hash(&self) -> String {
        #[derive(Serialize)]
        struct Key<'a> {
            model: &'a TinyformerConfig,
            pretrain: &'a PretrainConfig,
            k: usize,
            n_train: usize,
            n_val: usize,
            data_seed: u64,
        }
        let key = Key {
            model: &self.model,
            pretrain: &self.pretrain,
            k: self.task.k_pretrain,
            n_train: self.task.n_pretrain_train,
            n_val: self.task.n_pretrain_val,
            data_seed: self.task.data_seed,
        };
        let json = serde_json::to_string(&key).expect("plain structs serialize");
        let digest = Sha256::digest(json.as_bytes());
        hex::encode(&digest[..8])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_configs_parse_and_validate() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../configs");
        let mut seen = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                ExperimentConfig::from_toml_file(&path).unwrap();
                seen += 1;
            }
        }
        assert!(
            seen >= 2,
            "configs/ should hold default.toml and quick.toml"
        );
        assert_eq!(ExperimentConfig::embedded_default().name, "default");
    }

    fn quick() -> ExperimentConfig {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../configs/quick.toml");
        ExperimentConfig::from_toml_file(Path::new(path)).unwrap()
    }

    #[test]
    fn bad_values_name_their_field() {
        type Mutation = Box<dyn Fn(&mut ExperimentConfig)>;
        let cases: Vec<(Mutation, &str)> = vec![
            (
                Box::new(|c| c.task.k_pretrain = c.model.seq_len),
                "task.k_pretrain",
            ),
            (
                Box::new(|c| c.task.n_finetune_val = 0),
                "task.n_finetune_val = 0",
            ),
            (Box::new(|c| c.pretrain.lr = -1.0), "pretrain.lr = -1"),
            (Box::new(|c| c.pretrain.lr = f64::NAN), "pretrain.lr = NaN"),
            (Box::new(|c| c.model.n_heads = 5), "model.n_heads = 5"),
            (Box::new(|c| c.name = "a/b".into()), "name = \"a/b\""),
        ];
        for (mutate, expected) in cases {
            let mut config = quick();
            mutate(&mut config);
            let err = config.validate().unwrap_err().to_string();
            assert!(
                err.starts_with(expected),
                "{err:?} should start with {expected:?}"
            );
        }
    }

    #[test]
    fn unknown_fields_and_type_errors_are_reported_with_their_name() {
        let text = include_str!("../../../configs/quick.toml");
        let typo = text.replacen("[pretrain]\n", "[pretrain]\nlearning_rate = 1.0\n", 1);
        let err = ExperimentConfig::from_toml_str(&typo, "typo.toml")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("typo.toml") && err.contains("learning_rate"),
            "{err}"
        );
        let wrong_type = text.replacen("epochs = ", "epochs = \"ten\" #", 1);
        let err = ExperimentConfig::from_toml_str(&wrong_type, "t.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("epochs"), "{err}");
    }

    #[test]
    fn pretrain_hash_tracks_what_the_base_depends_on() {
        let a = quick();
        let mut b = a.clone();
        b.task.k_finetune = (a.task.k_finetune + 1) % a.model.seq_len;
        b.description = "changed".into();
        assert_eq!(
            a.pretrain_hash(),
            b.pretrain_hash(),
            "fine-tune settings do not change the base"
        );
        let mut c = a.clone();
        c.pretrain.lr *= 2.0;
        assert_ne!(a.pretrain_hash(), c.pretrain_hash());
        let mut d = a.clone();
        d.task.data_seed += 1;
        assert_ne!(a.pretrain_hash(), d.pretrain_hash());
    }
}
