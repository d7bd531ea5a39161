//! The model families this binary knows: a config's `[model] family` picks
//! the type its `[model]` table is read as, and [`with_family!`] runs
//! generic code on whichever it is. A new family is one variant here and
//! one arm in the macro.

use std::path::Path;

use bert::BertFamily;
use gpt2::Gpt2Family;
use llama::LlamaFamily;
use nn::ModelConfig;
use sweep::ExperimentConfig;
use tinyformer::TinyformerConfig;

/// A config of any known family.
pub enum AnyConfig {
    Tinyformer(ExperimentConfig<TinyformerConfig>),
    Gpt2(ExperimentConfig<Gpt2Family>),
    Llama(ExperimentConfig<LlamaFamily>),
    Bert(ExperimentConfig<BertFamily>),
}

/// The `family` names a config may give.
pub const FAMILIES: &[&str] = &[
    TinyformerConfig::FAMILY,
    Gpt2Family::FAMILY,
    LlamaFamily::FAMILY,
    BertFamily::FAMILY,
];

impl AnyConfig {
    /// Parses and validates TOML text as the family it names; `origin`
    /// names the text in errors, its relative paths are read from `dir`.
    pub fn from_toml_in(text: &str, origin: &str, dir: &Path) -> anyhow::Result<Self> {
        let family = sweep::config::family_of_toml(text)
            .map_err(|e| anyhow::anyhow!("{origin}: invalid config: {e}"))?;
        match family.as_str() {
            TinyformerConfig::FAMILY => Ok(Self::Tinyformer(ExperimentConfig::from_toml_in(
                text, origin, dir,
            )?)),
            Gpt2Family::FAMILY => Ok(Self::Gpt2(ExperimentConfig::from_toml_in(
                text, origin, dir,
            )?)),
            LlamaFamily::FAMILY => Ok(Self::Llama(ExperimentConfig::from_toml_in(
                text, origin, dir,
            )?)),
            BertFamily::FAMILY => Ok(Self::Bert(ExperimentConfig::from_toml_in(
                text, origin, dir,
            )?)),
            other => anyhow::bail!(
                "{origin}: invalid config: model.family = {other:?}: one of {}",
                FAMILIES.join(", ")
            ),
        }
    }

    pub fn from_toml_file(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read config {}: {e}", path.display()))?;
        let dir = path.parent().unwrap_or(Path::new(""));
        Self::from_toml_in(&text, &path.display().to_string(), dir)
    }

    /// The config `--config` names, or the embedded default without one.
    pub fn load(path: Option<&Path>) -> anyhow::Result<Self> {
        match path {
            Some(path) => Self::from_toml_file(path),
            None => Self::embedded_default(),
        }
    }

    /// The embedded `configs/default.toml`.
    pub fn embedded_default() -> anyhow::Result<Self> {
        Self::from_toml_in(
            sweep::config::DEFAULT_CONFIG,
            "configs/default.toml (embedded)",
            Path::new(""),
        )
    }

    pub fn name(&self) -> &str {
        with_family!(self, config => &config.name)
    }

    /// The `[model] family` the config names.
    pub fn family(&self) -> &'static str {
        fn of<M: ModelConfig>(_: &ExperimentConfig<M>) -> &'static str {
            M::FAMILY
        }
        with_family!(self, config => of(config))
    }
}

/// The family that reads the Hugging Face directory `dir`, by the
/// `model_type` of its `config.json`.
pub fn family_of_model_dir(dir: &Path) -> anyhow::Result<&'static str> {
    let path = dir.join("config.json");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| anyhow::anyhow!("--model: cannot read {} ({e})", path.display()))?;
    let json: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| anyhow::anyhow!("--model: {}: not JSON: {e}", path.display()))?;
    let model_type = json.get("model_type").and_then(|t| t.as_str());
    match model_type {
        Some("gpt2") => Ok(Gpt2Family::FAMILY),
        Some(t) if llama::config::Variant::parse(t).is_some() => Ok(LlamaFamily::FAMILY),
        Some(t) if bert::Variant::parse(t).is_some() => Ok(BertFamily::FAMILY),
        other => anyhow::bail!(
            "--model: {}: model_type = {}: one of gpt2, {}, {} (the families lrscape reads)",
            path.display(),
            other.map_or("missing".into(), |t| format!("{t:?}")),
            llama::config::Variant::MODEL_TYPES.join(", "),
            bert::Variant::MODEL_TYPES.join(", ")
        ),
    }
}

/// A language model's Hugging Face directory read as the family its
/// `model_type` names (what `lrscape eval --model` scores on text).
pub enum ModelDir {
    Gpt2(Gpt2Family),
    Llama(LlamaFamily),
}

impl ModelDir {
    pub fn read(dir: &Path) -> anyhow::Result<Self> {
        let bad = |e: nn::ConfigError| anyhow::anyhow!("--model: {e}");
        Ok(match family_of_model_dir(dir)? {
            LlamaFamily::FAMILY => Self::Llama(LlamaFamily::from_dir(dir).map_err(bad)?),
            BertFamily::FAMILY => anyhow::bail!(
                "--model: {} is an encoder, not a language model: score it on labelled \
                 texts (--data)",
                dir.display()
            ),
            _ => Self::Gpt2(Gpt2Family::from_dir(dir).map_err(bad)?),
        })
    }
}

/// `with_model_dir!(dir, family => expr)`: `expr` with `family` bound to
/// the typed family config inside a [`ModelDir`].
macro_rules! with_model_dir {
    ($dir:expr, $family:ident => $body:expr) => {
        match $dir {
            $crate::families::ModelDir::Gpt2($family) => $body,
            $crate::families::ModelDir::Llama($family) => $body,
        }
    };
}
pub(crate) use with_model_dir;

/// `with_family!(any, config => expr)`: `expr` with `config` bound to the
/// typed [`ExperimentConfig`] inside `any` (by value or by reference, as
/// `any` is given).
macro_rules! with_family {
    ($any:expr, $config:ident => $body:expr) => {
        match $any {
            $crate::families::AnyConfig::Tinyformer($config) => $body,
            $crate::families::AnyConfig::Gpt2($config) => $body,
            $crate::families::AnyConfig::Llama($config) => $body,
            $crate::families::AnyConfig::Bert($config) => $body,
        }
    };
}
pub(crate) use with_family;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_family_is_named_with_the_known_ones() {
        let text = sweep::config::DEFAULT_CONFIG.replace("[model]", "[model]\nfamily = \"gpt5\"");
        let err = AnyConfig::from_toml_in(&text, "x.toml", Path::new(""))
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("model.family = \"gpt5\""), "{err}");
        assert!(err.contains("tinyformer"), "{err}");
    }

    #[test]
    fn the_default_family_may_be_named_or_left_out() {
        let named =
            sweep::config::DEFAULT_CONFIG.replace("[model]", "[model]\nfamily = \"tinyformer\"");
        let Ok(AnyConfig::Tinyformer(a)) = AnyConfig::from_toml_in(&named, "a.toml", Path::new(""))
        else {
            panic!("a tinyformer config")
        };
        let Ok(AnyConfig::Tinyformer(b)) = AnyConfig::embedded_default() else {
            panic!("the default config is a tinyformer config")
        };
        assert_eq!(a, b);
        assert_eq!(a.results_hash(), b.results_hash());
        assert_eq!(a.pretrain_hash(), b.pretrain_hash());
    }

    #[test]
    fn every_shipped_config_parses_as_its_family() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
        let mut families = std::collections::BTreeSet::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                let text = std::fs::read_to_string(&path).unwrap();
                // Configs of checkpoints and text fetched by hand
                // (docs/real-models.md) are read with the fixtures' instead.
                let text = text
                    .replace("../models/distilgpt2", "../fixtures/gpt2/tiny-lm")
                    .replace("../models/gpt2", "../fixtures/gpt2/tiny-lm")
                    .replace(
                        "../data/wikitext-2-raw/train.txt",
                        "../fixtures/text/genesis-train.txt",
                    )
                    .replace(
                        "../data/wikitext-2-raw/validation.txt",
                        "../fixtures/text/genesis-val.txt",
                    )
                    .replace("block_size = 1024", "block_size = 64")
                    .replace("ranks = [16, 128]", "ranks = [16]")
                    .replace("../models/Qwen3-0.6B-Base", "../fixtures/llama/tiny-qwen3")
                    .replace("../models/SmolLM2-135M", "../fixtures/llama/tiny-llama")
                    .replace(
                        "../data/metamathqa/train.jsonl",
                        "../fixtures/text/genesis-instructions-train.jsonl",
                    )
                    .replace(
                        "../data/gsm8k/test.jsonl",
                        "../fixtures/text/genesis-answers-val.jsonl",
                    )
                    .replace("max_length = 512", "max_length = 48")
                    .replace(
                        "../models/distilbert-base-uncased",
                        "../fixtures/bert/tiny-distilbert",
                    )
                    .replace(
                        "../data/agnews/train.jsonl",
                        "../fixtures/text/genesis-labelled-train.jsonl",
                    )
                    .replace(
                        "../data/agnews/test.jsonl",
                        "../fixtures/text/genesis-labelled.jsonl",
                    )
                    .replace("max_length = 128", "max_length = 32")
                    .replace("ranks = [1, 4, 16, 64, 256]", "ranks = [1, 4, 16]")
                    .replace("max_new_tokens = 256", "max_new_tokens = 16")
                    .replace("ranks = [128]", "ranks = [16]")
                    .replace("parity_rank = 128", "parity_rank = 16");
                let dir = path.parent().unwrap();
                let config = AnyConfig::from_toml_in(&text, &path.display().to_string(), dir)
                    .unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
                families.insert(with_family!(&config, c => family_name(c)));
            }
        }
        assert!(
            families.contains("gpt2")
                && families.contains("tinyformer")
                && families.contains("llama")
                && families.contains("bert"),
            "{families:?}"
        );
    }

    #[test]
    fn large_models_compute_adapters_in_activation_space_unless_told() {
        use sweep::config::default_compute;
        let big = Gpt2Family::shaped(gpt2::Gpt2Config::default());
        assert_eq!(default_compute(&big), peft::Compute::ActivationSpace);
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
        let Ok(AnyConfig::Gpt2(tiny)) = AnyConfig::from_toml_file(&root.join("gpt2-tiny.toml"))
        else {
            panic!("gpt2-tiny.toml is a gpt2 config")
        };
        assert_eq!(tiny.run.adapter_compute, peft::Compute::WeightSpace);
        let text = std::fs::read_to_string(root.join("gpt2-tiny.toml"))
            .unwrap()
            .replace("[run]\n", "[run]\nadapter_compute = \"activation_space\"\n");
        let Ok(AnyConfig::Gpt2(told)) = AnyConfig::from_toml_in(&text, "t.toml", &root) else {
            panic!("a gpt2 config")
        };
        assert_eq!(told.run.adapter_compute, peft::Compute::ActivationSpace);
    }

    fn family_name<M: ModelConfig>(_: &ExperimentConfig<M>) -> &'static str {
        M::FAMILY
    }

    #[test]
    fn a_family_that_is_not_a_string_is_an_error() {
        let text = sweep::config::DEFAULT_CONFIG.replace("[model]", "[model]\nfamily = 3");
        let err = AnyConfig::from_toml_in(&text, "x.toml", Path::new(""))
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("model.family = 3"), "{err}");
    }
}
