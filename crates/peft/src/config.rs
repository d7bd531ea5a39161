//! Adapter configuration, in HF PEFT's `LoraConfig` vocabulary.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use tinyformer::{LinearKind, TinyformerConfig};

use crate::PeftError;

/// A fine-tuning method of the study.
///
/// The `*_seed` variants are the seed notebook's simplified versions, kept so
/// its numbers can be reproduced next to the exact ones:
/// - `dora_seed`: magnitude initialised to 1 (not the weight's norms), the
///   column norm differentiated through;
/// - `pissa_seed` / `milora_seed`: A, B set from the SVD without dividing by
///   the scale, and the frozen weight *not* replaced by its residual (so the
///   output changes at init).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// `h = Wx + (α/r)·B A x`, B = 0 at init.
    Lora,
    /// LoRA with scale α/√r (HF PEFT `use_rslora`).
    Rslora,
    /// LoRA with both A and B random at init (the paper's Init\[AB\]).
    InitAb,
    /// Weight-decomposed LoRA (HF PEFT `use_dora`).
    Dora,
    /// Principal singular components as the adapter, residual frozen.
    Pissa,
    /// Minor singular components as the adapter, residual frozen.
    Milora,
    /// Every weight trainable: the baseline.
    Full,
    DoraSeed,
    PissaSeed,
    MiloraSeed,
}

impl Method {
    pub const ALL: [Method; 10] = [
        Method::Lora,
        Method::Rslora,
        Method::InitAb,
        Method::Dora,
        Method::Pissa,
        Method::Milora,
        Method::Full,
        Method::DoraSeed,
        Method::PissaSeed,
        Method::MiloraSeed,
    ];

    /// The config spelling (`lora`, `dora_seed`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Method::Lora => "lora",
            Method::Rslora => "rslora",
            Method::InitAb => "init_ab",
            Method::Dora => "dora",
            Method::Pissa => "pissa",
            Method::Milora => "milora",
            Method::Full => "full",
            Method::DoraSeed => "dora_seed",
            Method::PissaSeed => "pissa_seed",
            Method::MiloraSeed => "milora_seed",
        }
    }

    /// The name used in figures and reports, as in the paper.
    pub fn label(self) -> &'static str {
        match self {
            Method::Lora => "LoRA",
            Method::Rslora => "rsLoRA",
            Method::InitAb => "Init[AB]",
            Method::Dora => "DoRA",
            Method::Pissa => "PiSSA",
            Method::Milora => "MiLoRA",
            Method::Full => "Full FT",
            Method::DoraSeed => "DoRA (seed)",
            Method::PissaSeed => "PiSSA (seed)",
            Method::MiloraSeed => "MiLoRA (seed)",
        }
    }

    /// Whether the method adds low-rank factors (every method but `full`).
    pub fn has_adapters(self) -> bool {
        self != Method::Full
    }

    /// Whether `A` is drawn at random, so that [`LoraInit`] matters (not
    /// for the SVD methods or full fine-tuning).
    pub fn uses_init(self) -> bool {
        matches!(
            self,
            Method::Lora | Method::Rslora | Method::InitAb | Method::Dora | Method::DoraSeed
        )
    }
}

/// How `A` (`[r, in]` in PyTorch's layout) starts for random-init methods.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum LoraInit {
    /// HF PEFT's default (`init_lora_weights = True`): kaiming-uniform with
    /// a = √5, i.e. uniform in ±1/√in.
    #[default]
    KaimingUniform,
    /// N(0, std²); the seed notebook uses std 0.02.
    Gaussian { std: f64 },
}

/// Which block linears get adapters: a preset (`qv`, `attn`, `all`) or a
/// list of module names (`q`, `k`, `v`, `o`, `mlp_up`, `mlp_down`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TargetModules {
    Preset(String),
    List(Vec<String>),
}

impl Default for TargetModules {
    /// Every linear of every block, as the seed notebook (all but the head).
    fn default() -> Self {
        TargetModules::Preset("all".into())
    }
}

impl TargetModules {
    /// The set of linear kinds named; unknown names and empty sets are errors.
    pub fn resolve(&self) -> Result<BTreeSet<LinearKind>, PeftError> {
        let names: Vec<&str> = match self {
            TargetModules::Preset(p) => match p.as_str() {
                "qv" => vec!["q", "v"],
                "attn" => vec!["q", "k", "v", "o"],
                "all" => LinearKind::ALL.iter().map(|k| k.name()).collect(),
                other => vec![other],
            },
            TargetModules::List(list) => list.iter().map(String::as_str).collect(),
        };
        let mut kinds = BTreeSet::new();
        for name in names {
            let kind = LinearKind::ALL
                .into_iter()
                .find(|k| k.name() == name)
                .ok_or_else(|| {
                    PeftError::invalid(
                        "target_modules",
                        format!("{name:?}"),
                        "q, k, v, o, mlp_up, mlp_down or a preset qv, attn, all",
                    )
                })?;
            kinds.insert(kind);
        }
        if kinds.is_empty() {
            return Err(PeftError::invalid(
                "target_modules",
                "[]",
                "at least one module",
            ));
        }
        Ok(kinds)
    }
}

/// One adapter setting: method, rank, alpha, targets, init, head.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoraConfig {
    pub method: Method,
    pub r: usize,
    pub lora_alpha: f64,
    #[serde(default)]
    pub target_modules: TargetModules,
    #[serde(default)]
    pub init: LoraInit,
    /// Train the classification head too (the seed notebook does).
    #[serde(default = "yes")]
    pub train_head: bool,
    /// Scale by α/√r instead of α/r for any method (HF PEFT `use_rslora`).
    #[serde(default)]
    pub use_rslora: bool,
    /// How the low-rank path is computed (same results, different cost).
    #[serde(default)]
    pub compute: crate::layer::Compute,
}

fn yes() -> bool {
    true
}

impl LoraConfig {
    /// `method` at rank `r` with α = r (the seed notebook's rule), all
    /// targets, PEFT's default init, head trained.
    pub fn new(method: Method, r: usize) -> Self {
        Self {
            method,
            r,
            lora_alpha: r as f64,
            target_modules: TargetModules::default(),
            init: LoraInit::default(),
            train_head: true,
            use_rslora: false,
            compute: crate::layer::Compute::default(),
        }
    }

    /// The factor on `B A`: α/√r for rsLoRA (or `use_rslora`), α/r otherwise.
    pub fn scaling(&self) -> f64 {
        if self.use_rslora || self.method == Method::Rslora {
            self.lora_alpha / (self.r as f64).sqrt()
        } else {
            self.lora_alpha / self.r as f64
        }
    }

    /// Checks the config against the model it will adapt.
    pub fn validate(&self, model: &TinyformerConfig) -> Result<BTreeSet<LinearKind>, PeftError> {
        let targets = self.target_modules.resolve()?;
        if !self.method.has_adapters() {
            return Ok(targets);
        }
        if self.r == 0 {
            return Err(PeftError::invalid("r", 0, "at least 1"));
        }
        if !(self.lora_alpha.is_finite() && self.lora_alpha > 0.0) {
            return Err(PeftError::invalid(
                "lora_alpha",
                self.lora_alpha,
                "a finite number > 0",
            ));
        }
        if let LoraInit::Gaussian { std } = self.init
            && !(std.is_finite() && std > 0.0)
        {
            return Err(PeftError::invalid("init.std", std, "a finite number > 0"));
        }
        for &kind in &targets {
            let (d_in, d_out) = linear_shape(model, kind);
            let max = d_in.min(d_out);
            if self.r > max {
                return Err(PeftError::invalid(
                    "r",
                    self.r,
                    format!(
                        "at most min(in, out) = {max} of the {} linear ({d_in} -> {d_out})",
                        kind.name()
                    ),
                ));
            }
        }
        Ok(targets)
    }
}

/// `(in, out)` of a block linear.
pub fn linear_shape(model: &TinyformerConfig, kind: LinearKind) -> (usize, usize) {
    let (d, ff) = (model.d_model, model.d_ff);
    match kind {
        LinearKind::Q | LinearKind::K | LinearKind::V | LinearKind::O => (d, d),
        LinearKind::MlpUp => (d, ff),
        LinearKind::MlpDown => (ff, d),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_and_lists_resolve() {
        let qv = TargetModules::Preset("qv".into()).resolve().unwrap();
        assert_eq!(
            qv.into_iter().collect::<Vec<_>>(),
            [LinearKind::Q, LinearKind::V]
        );
        assert_eq!(TargetModules::default().resolve().unwrap().len(), 6);
        let list = TargetModules::List(vec!["o".into(), "mlp_down".into()])
            .resolve()
            .unwrap();
        assert_eq!(list.len(), 2);
    }

    #[test]
    fn bad_configs_name_field_value_and_allowed() {
        let model = TinyformerConfig::default();
        let err = |c: LoraConfig| c.validate(&model).unwrap_err().to_string();
        assert_eq!(err(LoraConfig::new(Method::Lora, 0)), "r = 0: at least 1");
        assert!(
            err(LoraConfig::new(Method::Lora, 129))
                .starts_with("r = 129: at most min(in, out) = 128")
        );
        let mut c = LoraConfig::new(Method::Dora, 4);
        c.lora_alpha = 0.0;
        assert!(err(c).starts_with("lora_alpha = 0"));
        let mut c = LoraConfig::new(Method::Lora, 4);
        c.target_modules = TargetModules::List(vec!["q".into(), "gate".into()]);
        assert!(err(c.clone()).starts_with("target_modules = \"gate\""));
        c.target_modules = TargetModules::List(vec![]);
        assert!(err(c).starts_with("target_modules = []"));
        let mut c = LoraConfig::new(Method::Lora, 4);
        c.init = LoraInit::Gaussian { std: -0.1 };
        assert!(err(c).starts_with("init.std = -0.1"));
    }

    #[test]
    fn scaling_rules() {
        let mut c = LoraConfig::new(Method::Lora, 16);
        c.lora_alpha = 32.0;
        assert_eq!(c.scaling(), 2.0);
        c.method = Method::Rslora;
        assert_eq!(c.scaling(), 8.0);
    }

    #[test]
    fn method_names_round_trip_through_serde() {
        for m in Method::ALL {
            let json = serde_json::to_string(&m).unwrap();
            assert_eq!(json, format!("\"{}\"", m.name()));
            assert_eq!(serde_json::from_str::<Method>(&json).unwrap(), m);
        }
    }
}
