//! Adapter configuration, in HF PEFT's `LoraConfig` vocabulary.

use std::collections::BTreeSet;

use nn::{LinearLayout, ModuleId};
use serde::{Deserialize, Serialize};

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
    /// LoRA trained with B's learning rate `loraplus_lr_ratio` × A's (HF
    /// PEFT's `create_loraplus_optimizer`).
    Loraplus,
    /// LoRA with both A and B random at init (the paper's Init\[AB\]).
    InitAb,
    /// Weight-decomposed LoRA (HF PEFT `use_dora`).
    Dora,
    /// Principal singular components as the adapter, residual frozen.
    Pissa,
    /// Minor singular components as the adapter, residual frozen.
    Milora,
    /// The QR decomposition's first `r` columns of Q and rows of R as the
    /// adapter, residual frozen (HF PEFT `init_lora_weights = "olora"`).
    Olora,
    /// Factors from the SVD of the loss gradient on a few fine-tuning
    /// batches, residual frozen (HF PEFT `init_lora_weights = "lora_ga"`).
    LoraGa,
    /// Granular LoRA: the update cut into `gralora_k × gralora_k` blocks,
    /// each its own rank-`r/k` LoRA (HF PEFT's `GraloraConfig`).
    Gralora,
    /// Random frozen bases shared by every layer, scaled per layer by
    /// trained diagonals: full-rank updates (HF PEFT's `RandLoraConfig`).
    Randlora,
    /// LoRA stepped by LoFT's optimizer: AdamW in the full weight space
    /// projected on one factor at a time (Tastan et al., arXiv 2505.21289;
    /// not in PEFT).
    Loft,
    /// Every weight trainable: the baseline.
    Full,
    DoraSeed,
    PissaSeed,
    MiloraSeed,
}

impl Method {
    pub const ALL: [Method; 16] = [
        Method::Lora,
        Method::Rslora,
        Method::Loraplus,
        Method::InitAb,
        Method::Dora,
        Method::Pissa,
        Method::Milora,
        Method::Olora,
        Method::LoraGa,
        Method::Gralora,
        Method::Randlora,
        Method::Loft,
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
            Method::Loraplus => "loraplus",
            Method::InitAb => "init_ab",
            Method::Dora => "dora",
            Method::Pissa => "pissa",
            Method::Milora => "milora",
            Method::Olora => "olora",
            Method::LoraGa => "lora_ga",
            Method::Gralora => "gralora",
            Method::Randlora => "randlora",
            Method::Loft => "loft",
            Method::Full => "full",
            Method::DoraSeed => "dora_seed",
            Method::PissaSeed => "pissa_seed",
            Method::MiloraSeed => "milora_seed",
        }
    }

    /// Whether the method adds low-rank factors (every method but `full`).
    pub fn has_adapters(self) -> bool {
        self != Method::Full
    }

    /// Whether the factors come from the base weight's SVD (PiSSA, MiLoRA
    /// and their seed variants).
    pub fn uses_svd(self) -> bool {
        matches!(
            self,
            Method::Pissa | Method::Milora | Method::PissaSeed | Method::MiloraSeed
        )
    }

    /// Whether the adapter starts as part of the base weight, which keeps
    /// only the residual (PiSSA, MiLoRA, OLoRA, LoRA-GA): such adapters are
    /// saved as PEFT converts them, against the untouched base.
    pub fn replaces_base(self) -> bool {
        matches!(
            self,
            Method::Pissa | Method::Milora | Method::Olora | Method::LoraGa
        )
    }

    /// Whether the initial factors need gradients of the fine-tuning loss
    /// at the base (LoRA-GA).
    pub fn needs_gradients(self) -> bool {
        self == Method::LoraGa
    }

    /// Whether `A` is drawn at random, so that [`LoraInit`] matters (not
    /// for the SVD methods or full fine-tuning).
    pub fn uses_init(self) -> bool {
        matches!(
            self,
            Method::Lora
                | Method::Rslora
                | Method::Loraplus
                | Method::InitAb
                | Method::Dora
                | Method::DoraSeed
                | Method::Gralora
                | Method::Loft
        )
    }
}

/// How `A` (`[r, in]` in PyTorch's layout) starts for random-init methods.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[serde(
    tag = "kind",
    rename_all = "snake_case",
    deny_unknown_fields,
    expecting = "a table { kind = \"kaiming_uniform\" } or { kind = \"gaussian\", std = <number> }"
)]
pub enum LoraInit {
    /// HF PEFT's default (`init_lora_weights = True`): kaiming-uniform with
    /// a = √5, i.e. uniform in ±1/√in.
    #[default]
    KaimingUniform,
    /// N(0, std²); the seed notebook uses std 0.02.
    Gaussian { std: f64 },
}

/// Which block linears get adapters: a preset of the model family (for
/// tinyformer `qv`, `attn`, `all`, `all-linear`) or a list of its module
/// names (for tinyformer `q`, `k`, `v`, `o`, `mlp_up`, `mlp_down`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    untagged,
    expecting = "a preset name (e.g. \"all-linear\") or a list of module names"
)]
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
    /// The modules of `layout` named; unknown names and empty sets are
    /// errors naming what the family allows.
    pub fn resolve(&self, layout: &LinearLayout) -> Result<BTreeSet<ModuleId>, PeftError> {
        let names: Vec<&str> = match self {
            TargetModules::Preset(p) => match layout.preset(p) {
                Some(names) => names.to_vec(),
                None => vec![p.as_str()],
            },
            TargetModules::List(list) => list.iter().map(String::as_str).collect(),
        };
        let mut modules = BTreeSet::new();
        for name in names {
            let matched = layout.matching(name);
            if matched.is_empty() {
                let known: Vec<&str> = (layout.modules.iter().map(|m| m.0.name))
                    .chain(layout.heads.iter().map(|h| h.module.name))
                    .collect();
                let presets: Vec<&str> = layout.presets.iter().map(|p| p.0).collect();
                return Err(PeftError::invalid(
                    "target_modules",
                    format!("{name:?}"),
                    format!(
                        "a module of the model ({}, or a suffix after '.') or a preset ({})",
                        known.join(", "),
                        presets.join(", ")
                    ),
                ));
            }
            modules.extend(matched);
        }
        if modules.is_empty() {
            return Err(PeftError::invalid(
                "target_modules",
                "[]",
                "at least one module",
            ));
        }
        Ok(modules)
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
    /// LoRA+: B's (and any 1-D trainable parameter's) learning rate over
    /// A's, as `create_loraplus_optimizer` groups them; 16 in PEFT's
    /// example.
    #[serde(default = "loraplus_default")]
    pub loraplus_lr_ratio: f64,
    /// GraLoRA: blocks per side (PEFT's `gralora_k`, default 2); must
    /// divide `r` and every targeted linear's sizes.
    #[serde(default = "gralora_k_default")]
    pub gralora_k: usize,
    /// GraLoRA: the rank of a plain LoRA added beside the blocks (PEFT's
    /// `hybrid_r`, default 0); the scale is α / (r + hybrid_r).
    #[serde(default)]
    pub hybrid_r: usize,
    /// RandLoRA: the scale's numerator, scale = `randlora_alpha / r`;
    /// 20 × r when absent, as PEFT advises (its default 640 is 20 × its
    /// default rank 32).
    #[serde(default)]
    pub randlora_alpha: Option<f64>,
    /// RandLoRA: the seed of the shared random bases (PEFT's
    /// `projection_prng_key`, default 0): every member and layer shares
    /// them.
    #[serde(default)]
    pub projection_prng_key: u64,
    /// RandLoRA: ternary bases (−1, 0, 1; each sign with probability 1/6),
    /// PEFT's `sparse`.
    #[serde(default)]
    pub randlora_sparse: bool,
    /// RandLoRA: ternary bases with each sign at probability 1/(2√min),
    /// PEFT's `very_sparse` (which wins over `sparse`).
    #[serde(default)]
    pub randlora_very_sparse: bool,
    /// LoRA-GA: PEFT's `LoraGAConfig`.
    #[serde(default)]
    pub lora_ga: LoraGaConfig,
}

fn gralora_k_default() -> usize {
    2
}

/// LoRA-GA's options in PEFT's words (`LoraGAConfig`), and how many
/// fine-tuning batches estimate the gradient.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoraGaConfig {
    /// Which singular vectors of the gradient become A and B: `ArB2r`
    /// (A the first r right vectors, B the next r left ones, PEFT's
    /// default), `A2rBr`, `ArBr` or `random` (the same r of the first 2r
    /// for both, drawn per site from a fixed seed where PEFT draws them
    /// from PyTorch's generator).
    pub direction: String,
    /// How B is scaled: `stable` (by out^¼ / √stable_gamma, PEFT's
    /// default), `weight_svd`, `gd_scale` or `unit`.
    pub scale: String,
    pub stable_gamma: f64,
    /// Batches of the fine-tuning split whose mean gradient is decomposed.
    pub batches: usize,
}

impl Default for LoraGaConfig {
    fn default() -> Self {
        Self {
            direction: "ArB2r".into(),
            scale: "stable".into(),
            stable_gamma: 16.0,
            batches: 8,
        }
    }
}

impl LoraGaConfig {
    pub const DIRECTIONS: [&'static str; 4] = ["ArB2r", "A2rBr", "ArBr", "random"];
    pub const SCALES: [&'static str; 4] = ["stable", "weight_svd", "gd_scale", "unit"];
}

fn loraplus_default() -> f64 {
    16.0
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
            loraplus_lr_ratio: loraplus_default(),
            gralora_k: gralora_k_default(),
            hybrid_r: 0,
            randlora_alpha: None,
            projection_prng_key: 0,
            randlora_sparse: false,
            randlora_very_sparse: false,
            lora_ga: LoraGaConfig::default(),
        }
    }

    /// The factor on the update: α/√r for rsLoRA (or `use_rslora`),
    /// α/(r + hybrid_r) for GraLoRA, randlora_alpha/r for RandLoRA, α/r
    /// otherwise.
    pub fn scaling(&self) -> f64 {
        let r = self.r as f64;
        match self.method {
            _ if self.use_rslora || self.method == Method::Rslora => self.lora_alpha / r.sqrt(),
            Method::Gralora => self.lora_alpha / (self.r + self.hybrid_r) as f64,
            Method::Randlora => self.randlora_alpha.unwrap_or(20.0 * r) / r,
            _ => self.lora_alpha / r,
        }
    }

    /// Checks the config against the linears of the model it will adapt;
    /// returns the targeted modules.
    pub fn validate(&self, layout: &LinearLayout) -> Result<BTreeSet<ModuleId>, PeftError> {
        let targets = self.target_modules.resolve(layout)?;
        if !self.method.has_adapters() {
            return Ok(targets);
        }
        if self.r == 0 {
            return Err(PeftError::invalid("r", 0, "at least 1"));
        }
        if self.method == Method::Loraplus
            && !(self.loraplus_lr_ratio.is_finite() && self.loraplus_lr_ratio > 0.0)
        {
            return Err(PeftError::invalid(
                "loraplus_lr_ratio",
                self.loraplus_lr_ratio,
                "a finite number > 0 (B's learning rate over A's)",
            ));
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
        self.validate_method_options()?;
        for &module in &targets {
            let Some((d_in, d_out)) = layout.shape(module) else {
                continue;
            };
            self.validate_shape(module.name, d_in, d_out)?;
            // RandLoRA's bases may outnumber a linear's sizes.
            if self.method == Method::Randlora {
                continue;
            }
            let max = d_in.min(d_out);
            if self.r > max {
                return Err(PeftError::invalid(
                    "r",
                    self.r,
                    format!(
                        "at most min(in, out) = {max} of the {} linear ({d_in} -> {d_out})",
                        module.name
                    ),
                ));
            }
        }
        Ok(targets)
    }

    /// The options of the new methods, each named by its PEFT field.
    fn validate_method_options(&self) -> Result<(), PeftError> {
        match self.method {
            Method::Gralora => {
                let k = self.gralora_k;
                if k == 0 || !self.r.is_multiple_of(k) {
                    return Err(PeftError::invalid(
                        "gralora_k",
                        k,
                        format!("a number of blocks >= 1 that divides r = {}", self.r),
                    ));
                }
            }
            Method::Randlora => {
                if let Some(alpha) = self.randlora_alpha
                    && !(alpha.is_finite() && alpha > 0.0)
                {
                    return Err(PeftError::invalid(
                        "randlora_alpha",
                        alpha,
                        "a finite number > 0 (20 × r when absent)",
                    ));
                }
            }
            Method::LoraGa => {
                let ga = &self.lora_ga;
                if !LoraGaConfig::DIRECTIONS.contains(&ga.direction.as_str()) {
                    return Err(PeftError::invalid(
                        "lora_ga.direction",
                        format!("{:?}", ga.direction),
                        LoraGaConfig::DIRECTIONS.join(", "),
                    ));
                }
                if !LoraGaConfig::SCALES.contains(&ga.scale.as_str()) {
                    return Err(PeftError::invalid(
                        "lora_ga.scale",
                        format!("{:?}", ga.scale),
                        LoraGaConfig::SCALES.join(", "),
                    ));
                }
                if !(ga.stable_gamma.is_finite() && ga.stable_gamma > 0.0) {
                    return Err(PeftError::invalid(
                        "lora_ga.stable_gamma",
                        ga.stable_gamma,
                        "a finite number > 0",
                    ));
                }
                if ga.batches == 0 {
                    return Err(PeftError::invalid(
                        "lora_ga.batches",
                        0,
                        "at least 1 batch of the fine-tuning split",
                    ));
                }
            }
            _ => {}
        }
        if self.hybrid_r > 0 && self.method != Method::Gralora {
            return Err(PeftError::invalid(
                "hybrid_r",
                self.hybrid_r,
                "0 for a method other than gralora",
            ));
        }
        Ok(())
    }

    /// A targeted linear `d_in -> d_out` the method can adapt.
    fn validate_shape(&self, module: &str, d_in: usize, d_out: usize) -> Result<(), PeftError> {
        let k = self.gralora_k;
        if self.method == Method::Gralora && (!d_in.is_multiple_of(k) || !d_out.is_multiple_of(k)) {
            return Err(PeftError::invalid(
                "gralora_k",
                k,
                format!(
                    "a number of blocks that divides the sizes of every targeted linear \
                     ({module}: {d_in} -> {d_out})"
                ),
            ));
        }
        if self.method == Method::LoraGa && 2 * self.r > d_in.min(d_out) {
            return Err(PeftError::invalid(
                "r",
                self.r,
                format!(
                    "at most min(in, out) / 2 = {} for lora_ga, which takes 2r singular \
                     vectors of the {module} linear ({d_in} -> {d_out})",
                    d_in.min(d_out) / 2
                ),
            ));
        }
        if self.method == Method::Gralora && self.hybrid_r > d_in.min(d_out) {
            return Err(PeftError::invalid(
                "hybrid_r",
                self.hybrid_r,
                format!("at most min(in, out) of the {module} linear ({d_in} -> {d_out})"),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A family of two blocks with a square `q` and a `128 -> 512` `up`.
    fn layout() -> LinearLayout {
        let q = ModuleId {
            index: 0,
            name: "q",
        };
        let up = ModuleId {
            index: 1,
            name: "up",
        };
        LinearLayout {
            n_layers: 2,
            modules: vec![(q, 128, 128), (up, 128, 512)],
            presets: vec![("all", vec!["q", "up"]), ("attn", vec!["q"])],
            hf_blocks: None,
            heads: Vec::new(),
            fan_in_fan_out: false,
        }
    }

    #[test]
    fn presets_and_lists_resolve() {
        let attn = TargetModules::Preset("attn".into())
            .resolve(&layout())
            .unwrap();
        let names: Vec<&str> = attn.into_iter().map(|m| m.name).collect();
        assert_eq!(names, ["q"]);
        assert_eq!(
            TargetModules::default().resolve(&layout()).unwrap().len(),
            2
        );
        let one = TargetModules::Preset("up".into())
            .resolve(&layout())
            .unwrap();
        assert_eq!(one.into_iter().next().unwrap().index, 1);
        let list = TargetModules::List(vec!["up".into(), "q".into()])
            .resolve(&layout())
            .unwrap();
        assert_eq!(list.len(), 2);
    }

    #[test]
    fn bad_configs_name_field_value_and_allowed() {
        let model = layout();
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
        assert_eq!(
            err(c.clone()),
            "target_modules = \"gate\": a module of the model (q, up, or a suffix after '.') \
             or a preset (all, attn)"
        );
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
