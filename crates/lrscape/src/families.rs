//! The model families this binary knows: a config's `[model] family` picks
//! the type its `[model]` table is read as, and [`with_family!`] runs
//! generic code on whichever it is. A new family is one variant here and
//! one arm in the macro.

use std::path::Path;

use nn::ModelConfig;
use sweep::ExperimentConfig;
use tinyformer::TinyformerConfig;

/// A config of any known family.
pub enum AnyConfig {
    Tinyformer(ExperimentConfig<TinyformerConfig>),
}

/// The `family` names a config may give.
pub const FAMILIES: &[&str] = &[TinyformerConfig::FAMILY];

impl AnyConfig {
    /// Parses and validates TOML text as the family it names; `origin`
    /// names the text in errors.
    pub fn from_toml_str(text: &str, origin: &str) -> anyhow::Result<Self> {
        let family = sweep::config::family_of_toml(text)
            .map_err(|e| anyhow::anyhow!("{origin}: invalid config: {e}"))?;
        match family.as_str() {
            TinyformerConfig::FAMILY => Ok(Self::Tinyformer(ExperimentConfig::from_toml_str(
                text, origin,
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
        Self::from_toml_str(&text, &path.display().to_string())
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
        Self::from_toml_str(
            sweep::config::DEFAULT_CONFIG,
            "configs/default.toml (embedded)",
        )
    }

    pub fn name(&self) -> &str {
        with_family!(self, config => &config.name)
    }
}

/// `with_family!(any, config => expr)`: `expr` with `config` bound to the
/// typed [`ExperimentConfig`] inside `any` (by value or by reference, as
/// `any` is given).
macro_rules! with_family {
    ($any:expr, $config:ident => $body:expr) => {
        match $any {
            $crate::families::AnyConfig::Tinyformer($config) => $body,
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
        let err = AnyConfig::from_toml_str(&text, "x.toml")
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
        let AnyConfig::Tinyformer(a) = AnyConfig::from_toml_str(&named, "a.toml").unwrap();
        let AnyConfig::Tinyformer(b) = AnyConfig::embedded_default().unwrap();
        assert_eq!(a, b);
        assert_eq!(a.results_hash(), b.results_hash());
        assert_eq!(a.pretrain_hash(), b.pretrain_hash());
    }

    #[test]
    fn a_family_that_is_not_a_string_is_an_error() {
        let text = sweep::config::DEFAULT_CONFIG.replace("[model]", "[model]\nfamily = 3");
        let err = AnyConfig::from_toml_str(&text, "x.toml")
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("model.family = 3"), "{err}");
    }
}
