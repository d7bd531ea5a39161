//! PEFT's adapter directories: `adapter_config.json` and
//! `adapter_model.safetensors`, as `PeftModel.save_pretrained` writes them
//! and `PeftModel.from_pretrained` reads them.
//!
//! Keys are PEFT's: `base_model.model.{hf_blocks}.{layer}.{module}.lora_A.weight`
//! (`[r, in]`), `…lora_B.weight` (`[out, r]`) and, for DoRA,
//! `…lora_magnitude_vector` (`[out]`). An adapter whose method replaced
//! the frozen weight by a residual (PiSSA, MiLoRA) is saved as PEFT
//! converts PiSSA for sharing (`path_initial_model_for_weight_conversion`):
//! the trained factors beside the initial ones negated, rank 2r, so it
//! applies to the untouched checkpoint.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use burn::module::Param;
use burn::tensor::{Tensor, TensorData};
use nn::safetensors_io::{self, HostTensor};
use nn::{Adaptable, LinearSite};
use serde::{Deserialize, Serialize};

use crate::PeftError;
use crate::config::{LoraConfig, Method, TargetModules};
use crate::layer::{LayerKind, LoraLayer};
use crate::model::PeftModel;

pub const ADAPTER_CONFIG: &str = "adapter_config.json";
pub const ADAPTER_WEIGHTS: &str = "adapter_model.safetensors";
const PREFIX: &str = "base_model.model.";

/// The fields of PEFT's `LoraConfig` lrscape writes and reads; others in a
/// file are ignored when they hold PEFT's defaults, and refused otherwise
/// (see [`from_pretrained`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdapterConfig {
    pub peft_type: String,
    #[serde(default)]
    pub task_type: Option<String>,
    #[serde(default)]
    pub base_model_name_or_path: Option<String>,
    pub r: usize,
    /// LoRA's α (GraLoRA's is `alpha`, RandLoRA's `randlora_alpha`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lora_alpha: Option<serde_json::Number>,
    pub target_modules: TargetModules,
    #[serde(default)]
    pub fan_in_fan_out: bool,
    #[serde(default)]
    pub use_dora: bool,
    #[serde(default)]
    pub use_rslora: bool,
    #[serde(default = "none")]
    pub bias: String,
    #[serde(default)]
    pub lora_dropout: f64,
    #[serde(default)]
    pub modules_to_save: Option<Vec<String>>,
    #[serde(default)]
    pub rank_pattern: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    pub alpha_pattern: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    pub layers_to_transform: Option<serde_json::Value>,
    #[serde(default = "yes")]
    pub init_lora_weights: serde_json::Value,
    #[serde(default)]
    pub inference_mode: bool,
    /// The other adapter types' own fields (`GRALORA`, `RANDLORA`).
    #[serde(flatten, skip_serializing)]
    pub other: BTreeMap<String, serde_json::Value>,
}

fn none() -> String {
    "none".into()
}

fn yes() -> serde_json::Value {
    serde_json::Value::Bool(true)
}

fn file_error(path: &Path, message: impl std::fmt::Display) -> PeftError {
    PeftError::File {
        path: path.display().to_string(),
        message: message.to_string(),
    }
}

/// α as JSON: an integer where it is one (PEFT's configs spell it so).
fn alpha_number(alpha: f64) -> serde_json::Number {
    if alpha.fract() == 0.0 && alpha.abs() < 1e15 {
        serde_json::Number::from(alpha as i64)
    } else {
        serde_json::Number::from_f64(alpha).unwrap_or_else(|| serde_json::Number::from(0))
    }
}

/// The HF module name of `site` (under `hf_blocks`, or a head's path).
fn module_key(layout: &nn::LinearLayout, site: LinearSite) -> Result<String, PeftError> {
    layout.hf_module(site).ok_or(PeftError::NoSuchSite(site))
}

/// Member `member`'s factors `(A [in, r], B [r, out], magnitude [out])`.
fn member_factors(layer: &LoraLayer, member: usize) -> (Tensor<2>, Tensor<2>, Option<Tensor<1>>) {
    let pick = |t: Tensor<3>| t.narrow(0, member, 1).squeeze_dim::<2>(0);
    (
        pick(layer.a.val()),
        pick(layer.b.val()),
        layer
            .magnitude
            .as_ref()
            .map(|m| m.val().narrow(0, member, 1).squeeze_dim::<1>(0)),
    )
}

/// Writes member `member` of `model` (adapted with `config`) to `dir` as
/// PEFT saves an adapter of `base_name`. A method that replaced the frozen
/// weights (PiSSA, MiLoRA) needs `initial`, the model as it started (its
/// member 0's factors), to be saved against the original weights.
pub fn save_pretrained<M: Adaptable>(
    model: &PeftModel<M>,
    member: usize,
    config: &LoraConfig,
    initial: Option<&PeftModel<M>>,
    base_name: &str,
    dir: &Path,
) -> Result<(), PeftError> {
    let layout = model.base.layout();
    layout.hf_blocks.ok_or_else(|| {
        PeftError::invalid(
            "save_adapters",
            "a model family without a Hugging Face counterpart",
            "a family PEFT can load adapters on (gpt2)",
        )
    })?;
    if !config.method.has_adapters() || matches!(config.method, Method::DoraSeed) {
        return Err(PeftError::invalid(
            "method",
            config.method.name(),
            "an adapter PEFT represents (lora, rslora, loraplus, dora, pissa, milora, olora, \
             init_ab and the seed notebook's pissa/milora)",
        ));
    }
    let residual = config.method.replaces_base();
    let initial = match (residual, initial) {
        (true, Some(initial)) => Some(initial),
        (true, None) => {
            return Err(PeftError::invalid(
                "initial",
                "missing",
                "the model as it started, for a method that replaced the frozen weights",
            ));
        }
        (false, _) => None,
    };
    let mut tensors: BTreeMap<String, TensorData> = BTreeMap::new();
    let modules: BTreeSet<&str> = model.adapted_sites().map(|(s, _)| s.module.name).collect();
    for (site, layer) in model.adapted_sites() {
        let key = format!("{PREFIX}{}", module_key(&layout, site)?);
        let start = match initial {
            Some(initial) => Some(initial.adapter(site).ok_or(PeftError::NoSuchSite(site))?),
            None => None,
        };
        match layer.kind {
            LayerKind::Gralora { k } => gralora_tensors(layer, member, k, &key, &mut tensors),
            LayerKind::Randlora { .. } => randlora_tensors(layer, member, &key, &mut tensors),
            _ => lora_tensors(layer, member, start, &key, &mut tensors),
        }
    }
    if config.method == Method::Randlora {
        shared_bases_tensors(model, config, &mut tensors);
    }
    // Heads trained beside the adapters go where PEFT keeps
    // `modules_to_save` (a classifier's head, for `SEQ_CLS`).
    // A head carrying an adapter (a pooler under `all-linear`) is not.
    let mut saved = Vec::new();
    let adapted_heads: BTreeSet<String> = model
        .adapted_sites()
        .filter_map(|(site, _)| Some(layout.head(site.module)?.path.to_string()))
        .collect();
    if config.train_head {
        for head in model.base.saved_heads() {
            if adapted_heads.contains(head.path) {
                continue;
            }
            let (weight, bias) = head.linear.member(member);
            let weight = weight.transpose().into_data();
            tensors.insert(format!("{PREFIX}{}.weight", head.path), weight);
            if let Some(bias) = bias {
                tensors.insert(format!("{PREFIX}{}.bias", head.path), bias.into_data());
            }
            saved.push(head.module.to_string());
        }
    }
    let targets: Vec<String> = modules.iter().map(|m| m.to_string()).collect();
    let common = AdapterCommon {
        task_type: (!saved.is_empty()).then(|| "SEQ_CLS".to_string()),
        base_model_name_or_path: base_name.to_string(),
        target_modules: targets,
        fan_in_fan_out: layout.fan_in_fan_out,
        modules_to_save: (!saved.is_empty()).then_some(saved),
    };
    let json = match config.method {
        Method::Gralora | Method::Randlora => other_adapter_config(config, common),
        _ => serde_json::to_value(lora_adapter_config(config, initial.is_some(), common)),
    }
    .map_err(|e| file_error(dir, e))?;
    write_adapter(dir, &tensors, &json)
}

/// What every adapter config of lrscape's says the same way.
struct AdapterCommon {
    task_type: Option<String>,
    base_model_name_or_path: String,
    target_modules: Vec<String>,
    fan_in_fan_out: bool,
    modules_to_save: Option<Vec<String>>,
}

/// PEFT's `LoraConfig` of a saved adapter; `converted` for one saved
/// against the original weights (rank 2r at the same scale: α doubles, or
/// grows by √2 under rsLoRA).
fn lora_adapter_config(
    config: &LoraConfig,
    converted: bool,
    common: AdapterCommon,
) -> AdapterConfig {
    let (r, alpha) = match (converted, config.use_rslora) {
        (false, _) => (config.r, config.lora_alpha),
        (true, false) => (2 * config.r, 2.0 * config.lora_alpha),
        (true, true) => (2 * config.r, std::f64::consts::SQRT_2 * config.lora_alpha),
    };
    AdapterConfig {
        peft_type: "LORA".into(),
        task_type: common.task_type,
        base_model_name_or_path: Some(common.base_model_name_or_path),
        r,
        lora_alpha: Some(alpha_number(alpha)),
        target_modules: TargetModules::List(common.target_modules),
        fan_in_fan_out: common.fan_in_fan_out,
        use_dora: matches!(config.method, Method::Dora),
        use_rslora: config.use_rslora,
        bias: none(),
        lora_dropout: 0.0,
        modules_to_save: common.modules_to_save,
        rank_pattern: BTreeMap::new(),
        alpha_pattern: BTreeMap::new(),
        layers_to_transform: None,
        init_lora_weights: yes(),
        inference_mode: true,
        other: BTreeMap::new(),
    }
}

/// PEFT's `GraloraConfig` or `RandLoraConfig` of a saved adapter.
fn other_adapter_config(
    config: &LoraConfig,
    common: AdapterCommon,
) -> Result<serde_json::Value, serde_json::Error> {
    let mut json = serde_json::json!({
        "task_type": common.task_type,
        "base_model_name_or_path": common.base_model_name_or_path,
        "r": config.r,
        "target_modules": common.target_modules,
        "fan_in_fan_out": common.fan_in_fan_out,
        "bias": "none",
        "modules_to_save": common.modules_to_save,
        "init_weights": true,
        "layers_to_transform": null,
        "layers_pattern": null,
        "inference_mode": true,
    });
    let extra = if config.method == Method::Gralora {
        serde_json::json!({
            "peft_type": "GRALORA",
            "alpha": alpha_number(config.lora_alpha),
            "gralora_k": config.gralora_k,
            "hybrid_r": config.hybrid_r,
            "gralora_dropout": 0.0,
        })
    } else {
        serde_json::json!({
            "peft_type": "RANDLORA",
            "randlora_alpha": alpha_number(config.scaling() * config.r as f64),
            "projection_prng_key": config.projection_prng_key,
            "save_projection": true,
            "sparse": config.randlora_sparse,
            "very_sparse": config.randlora_very_sparse,
            "randlora_dropout": 0.0,
        })
    };
    if let (Some(json), serde_json::Value::Object(extra)) = (json.as_object_mut(), extra) {
        json.extend(extra);
    }
    Ok(json)
}

/// A LoRA layer's `lora_A.weight` `[r, in]`, `lora_B.weight` `[out, r]` (and
/// DoRA's magnitude); with `start`, beside its initial factors negated, so
/// it applies to the untouched base.
fn lora_tensors(
    layer: &LoraLayer,
    member: usize,
    start: Option<&LoraLayer>,
    key: &str,
    tensors: &mut BTreeMap<String, TensorData>,
) {
    let (mut a, mut b, magnitude) = member_factors(layer, member);
    if let Some(start) = start {
        let (a0, b0, _) = member_factors(start, 0);
        a = Tensor::cat(vec![a, a0], 1);
        b = Tensor::cat(vec![b, b0.neg()], 0);
    }
    tensors.insert(format!("{key}.lora_A.weight"), a.transpose().into_data());
    tensors.insert(format!("{key}.lora_B.weight"), b.transpose().into_data());
    if let Some(m) = magnitude {
        tensors.insert(format!("{key}.lora_magnitude_vector"), m.into_data());
    }
}

/// GraLoRA's `gralora_A` `[k, in/k, r]` and `gralora_B` `[k, r, out/k]`
/// (and the hybrid pair's `…_general.weight`).
fn gralora_tensors(
    layer: &LoraLayer,
    member: usize,
    k: usize,
    key: &str,
    tensors: &mut BTreeMap<String, TensorData>,
) {
    let (a, b, _) = member_factors(layer, member);
    let ([d_in, r], [_, d_out]) = (a.dims(), b.dims());
    let a = a.reshape([k, d_in / k, r]);
    let b = b.reshape([r, k, d_out / k]).swap_dims(0, 1);
    tensors.insert(format!("{key}.gralora_A"), a.into_data());
    tensors.insert(format!("{key}.gralora_B"), b.into_data());
    if let Some(general) = &layer.general {
        let pick = |t: Tensor<3>| t.narrow(0, member, 1).squeeze_dim::<2>(0).transpose();
        let (a, b) = (pick(general.a.val()), pick(general.b.val()));
        tensors.insert(format!("{key}.gralora_A_general.weight"), a.into_data());
        tensors.insert(format!("{key}.gralora_B_general.weight"), b.into_data());
    }
}

/// RandLoRA's Λ `randlora_lambda` `[r, nb]` and Γ `randlora_gamma` `[nb,
/// min]`.
fn randlora_tensors(
    layer: &LoraLayer,
    member: usize,
    key: &str,
    tensors: &mut BTreeMap<String, TensorData>,
) {
    let (lambda, gamma, _) = member_factors(layer, member);
    tensors.insert(format!("{key}.randlora_lambda"), lambda.into_data());
    tensors.insert(format!("{key}.randlora_gamma"), gamma.into_data());
}

/// RandLoRA's shared bases, whole (`[r, 1, MIN]` and `[MAX, NB, r]`), where
/// PEFT's `save_projection` keeps them: beside every adapted linear and
/// once for the model, so PEFT loads these bases instead of drawing its
/// own.
fn shared_bases_tensors<M: Adaptable>(
    model: &PeftModel<M>,
    config: &LoraConfig,
    tensors: &mut BTreeMap<String, TensorData>,
) {
    let Some(bases) = crate::model::shared_bases(model.base.layout(), config) else {
        return;
    };
    let a = TensorData::new(bases.a.clone(), [bases.r, 1, bases.min]);
    let b = TensorData::new(bases.b.clone(), [bases.max, bases.nb, bases.r]);
    let keys: Vec<String> = tensors
        .keys()
        .filter_map(|k| k.strip_suffix(".randlora_lambda").map(str::to_string))
        .chain(["base_model".to_string()])
        .collect();
    for key in keys {
        tensors.insert(format!("{key}.randlora_A"), a.clone());
        tensors.insert(format!("{key}.randlora_B"), b.clone());
    }
}

/// Writes the adapter's weights and config to `dir`, whole or not at all.
fn write_adapter(
    dir: &Path,
    tensors: &BTreeMap<String, TensorData>,
    json: &serde_json::Value,
) -> Result<(), PeftError> {
    let bytes = safetensors_io::to_bytes(tensors).map_err(|e| file_error(dir, e))?;
    let json = serde_json::to_string_pretty(json).map_err(|e| file_error(dir, e))? + "\n";
    // The pair is written whole or not at all: into a directory beside,
    // which then replaces `dir`, so a reader never finds a config without
    // its weights or the weights of another save.
    let name = dir
        .file_name()
        .map_or_else(|| "adapter".into(), |n| n.to_string_lossy().into_owned());
    let tmp = dir.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(|e| file_error(&tmp, e))?;
    for (file, contents) in [
        (ADAPTER_WEIGHTS, bytes),
        (ADAPTER_CONFIG, json.into_bytes()),
    ] {
        let path = tmp.join(file);
        std::fs::write(&path, contents).map_err(|e| file_error(&path, e))?;
    }
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(|e| file_error(dir, e))?;
    }
    std::fs::rename(&tmp, dir).map_err(|e| file_error(dir, e))
}

/// Takes a tensor of the adapter file by its suffix after the module's key,
/// checking its shape where one is given.
type Take<'a> = dyn FnMut(&str, Option<&[usize]>) -> Result<TensorData, PeftError> + 'a;

/// LoRA's `lora_A.weight` `[r, in]`, `lora_B.weight` `[out, r]` and DoRA's
/// magnitude.
fn load_lora(layer: &mut LoraLayer, take: &mut Take) -> Result<(), PeftError> {
    let [_, d_in, r] = layer.a.dims();
    let d_out = layer.b.dims()[2];
    let device = layer.a.device();
    let a = Tensor::<2>::from_data(take("lora_A.weight", Some(&[r, d_in]))?, &device);
    let b = Tensor::<2>::from_data(take("lora_B.weight", Some(&[d_out, r]))?, &device);
    layer.a = Param::from_tensor(a.transpose().unsqueeze_dim::<3>(0));
    layer.b = Param::from_tensor(b.transpose().unsqueeze_dim::<3>(0));
    if layer.magnitude.is_some() {
        // Older PEFT releases kept DoRA's magnitude in a ParameterDict: the
        // newer key where the file has it, a misshapen one named as such.
        let m = match take("lora_magnitude_vector", Some(&[d_out])) {
            Err(PeftError::File { .. }) => take("lora_magnitude_vector.weight", Some(&[d_out]))?,
            found => found?,
        };
        let m = Tensor::<1>::from_data(m, &device);
        layer.magnitude = Some(Param::from_tensor(m.unsqueeze_dim::<2>(0)));
    }
    Ok(())
}

/// GraLoRA's `gralora_A` `[k, in/k, r]`, `gralora_B` `[k, r, out/k]` and the
/// hybrid pair.
fn load_gralora(layer: &mut LoraLayer, k: usize, take: &mut Take) -> Result<(), PeftError> {
    let [_, d_in, r] = layer.a.dims();
    let d_out = layer.b.dims()[2];
    let device = layer.a.device();
    let a = Tensor::<3>::from_data(take("gralora_A", Some(&[k, d_in / k, r]))?, &device);
    let b = Tensor::<3>::from_data(take("gralora_B", Some(&[k, r, d_out / k]))?, &device);
    layer.a = Param::from_tensor(a.reshape([1, d_in, r]));
    layer.b = Param::from_tensor(b.swap_dims(0, 1).reshape([1, r, d_out]));
    if let Some(general) = &mut layer.general {
        let h = general.a.dims()[2];
        let a =
            Tensor::<2>::from_data(take("gralora_A_general.weight", Some(&[h, d_in]))?, &device);
        let b = Tensor::<2>::from_data(
            take("gralora_B_general.weight", Some(&[d_out, h]))?,
            &device,
        );
        general.a = Param::from_tensor(a.transpose().unsqueeze_dim::<3>(0));
        general.b = Param::from_tensor(b.transpose().unsqueeze_dim::<3>(0));
    }
    Ok(())
}

/// RandLoRA's Λ `[r, nb]`, Γ `[nb, min]` and the bases the file carries
/// (`[r, 1, MIN]`, `[MAX, NB, r]`), sliced to the linear.
fn load_randlora(layer: &mut LoraLayer, take: &mut Take) -> Result<(), PeftError> {
    let [_, r, nb] = layer.a.dims();
    let min = layer.b.dims()[2];
    let device = layer.a.device();
    let lambda = Tensor::<2>::from_data(take("randlora_lambda", Some(&[r, nb]))?, &device);
    let gamma = Tensor::<2>::from_data(take("randlora_gamma", Some(&[nb, min]))?, &device);
    layer.a = Param::from_tensor(lambda.unsqueeze_dim::<3>(0));
    layer.b = Param::from_tensor(gamma.unsqueeze_dim::<3>(0));
    let bases = layer.bases.as_mut().expect("RandLoRA layers carry bases");
    let max = bases.b.dims()[1];
    // The whole bases' sizes are the file's: read them from its shapes.
    let a_full = take("randlora_A", None)?;
    let b_full = take("randlora_B", None)?;
    let (a_shape, b_shape) = (a_full.shape().to_vec(), b_full.shape().to_vec());
    let covers = match (a_shape.as_slice(), b_shape.as_slice()) {
        (&[a_r, 1, a_min], &[b_max, b_nb, b_r]) => {
            a_r == r && a_min >= min && b_max >= max && b_nb >= nb && b_r == r
        }
        _ => false,
    };
    if !covers {
        return Err(PeftError::invalid(
            "randlora_A/randlora_B",
            format!("{a_shape:?}/{b_shape:?}"),
            format!("bases of rank {r} covering a {min} x {max} linear"),
        ));
    }
    let a = Tensor::<3>::from_data(a_full, &device)
        .reshape([r, a_shape[2]])
        .narrow(1, 0, min);
    let b = Tensor::<3>::from_data(b_full, &device)
        .narrow(0, 0, max)
        .narrow(1, 0, nb)
        .reshape([1, max, nb * r]);
    bases.a = Param::from_tensor(a.unsqueeze_dim::<3>(0)).set_require_grad(false);
    bases.b = Param::from_tensor(b).set_require_grad(false);
    Ok(())
}

/// The setting an adapter config describes, refusing what lrscape cannot
/// reproduce exactly (a bias, extra trained modules, per-layer ranks).
fn lora_config_of(adapter: &AdapterConfig, path: &Path) -> Result<LoraConfig, PeftError> {
    let refuse = |field: &str, value: String, allowed: &str| {
        Err(file_error(path, format!("{field} = {value}: {allowed}")))
    };
    let method = match adapter.peft_type.as_str() {
        "LORA" if adapter.use_dora => Method::Dora,
        "LORA" => Method::Lora,
        "GRALORA" => Method::Gralora,
        "RANDLORA" => Method::Randlora,
        other => {
            return refuse(
                "peft_type",
                format!("{other:?}"),
                "\"LORA\", \"GRALORA\" or \"RANDLORA\"",
            );
        }
    };
    if adapter.bias != "none" {
        return refuse("bias", format!("{:?}", adapter.bias), "\"none\"");
    }
    if !adapter.rank_pattern.is_empty() || !adapter.alpha_pattern.is_empty() {
        return refuse(
            "rank_pattern/alpha_pattern",
            "set".into(),
            "empty (one rank and alpha)",
        );
    }
    if adapter
        .layers_to_transform
        .as_ref()
        .is_some_and(|v| !v.is_null())
    {
        return refuse("layers_to_transform", "set".into(), "null (every layer)");
    }
    let number = |field: &str, default: f64| {
        adapter
            .other
            .get(field)
            .map_or(Some(default), serde_json::Value::as_f64)
    };
    let integer = |field: &str, default: u64| {
        adapter
            .other
            .get(field)
            .map_or(Some(default), serde_json::Value::as_u64)
    };
    let mut config = LoraConfig::new(method, adapter.r);
    match method {
        Method::Gralora => {
            // PEFT's defaults: alpha 64, gralora_k 2, hybrid_r 0.
            let (Some(alpha), Some(k), Some(hybrid)) = (
                number("alpha", 64.0),
                integer("gralora_k", 2),
                integer("hybrid_r", 0),
            ) else {
                return refuse(
                    "alpha/gralora_k/hybrid_r",
                    "not numbers".into(),
                    "a number and two integers >= 0",
                );
            };
            config.lora_alpha = alpha;
            config.gralora_k = k as usize;
            config.hybrid_r = hybrid as usize;
        }
        Method::Randlora => {
            // The bases come from the file whatever their law.
            let flag =
                |field: &str| adapter.other.get(field) == Some(&serde_json::Value::Bool(true));
            config.randlora_sparse = flag("sparse");
            config.randlora_very_sparse = flag("very_sparse");
            if adapter.other.get("save_projection") == Some(&serde_json::Value::Bool(false)) {
                return refuse(
                    "save_projection",
                    "false".into(),
                    "true: the bases PEFT would redraw come from PyTorch's generator, which \
                     lrscape does not reproduce; the file must carry them",
                );
            }
            let (Some(alpha), Some(key)) = (
                number("randlora_alpha", 640.0),
                integer("projection_prng_key", 0),
            ) else {
                return refuse(
                    "randlora_alpha/projection_prng_key",
                    "not numbers".into(),
                    "a number and an integer >= 0",
                );
            };
            config.randlora_alpha = Some(alpha);
            config.projection_prng_key = key;
        }
        _ => {
            config.lora_alpha = adapter
                .lora_alpha
                .as_ref()
                .and_then(serde_json::Number::as_f64)
                .unwrap_or(f64::NAN);
        }
    }
    config.use_rslora = adapter.use_rslora;
    config.target_modules = adapter.target_modules.clone();
    config.train_head = false;
    Ok(config)
}

/// The rows (`out` features: a classifier's labels) of the head `name`
/// that the adapter in `dir` saves in `modules_to_save`; `None` when it
/// saves none of that name.
pub fn saved_head_rows(dir: &Path, name: &str) -> Result<Option<usize>, PeftError> {
    let config_path = dir.join(ADAPTER_CONFIG);
    let text = std::fs::read_to_string(&config_path).map_err(|e| file_error(&config_path, e))?;
    let adapter: AdapterConfig = serde_json::from_str(&text)
        .map_err(|e| file_error(&config_path, format!("not a PEFT adapter config: {e}")))?;
    if !adapter
        .modules_to_save
        .is_some_and(|names| names.iter().any(|n| n == name))
    {
        return Ok(None);
    }
    let weights_path = dir.join(ADAPTER_WEIGHTS);
    let tensors =
        safetensors_io::read_file(&weights_path).map_err(|e| file_error(&weights_path, e))?;
    Ok(tensors
        .get(&format!("{PREFIX}{name}.weight"))
        .and_then(|t| t.shape.first().copied()))
}

/// `modules_to_save`: the model's saved heads (a classifier's), each read
/// from `base_model.model.<path>.{weight,bias}` in place of the base's.
/// PEFT lists both `classifier` and `score` for a sequence classifier, so a
/// name the model lacks is skipped; a head left unnamed keeps the base's
/// weights; a list naming none of the model's heads is refused.
fn load_saved_heads<M: Adaptable>(
    model: &mut PeftModel<M>,
    adapter: &AdapterConfig,
    tensors: &mut HashMap<String, HostTensor>,
    config_path: &Path,
    weights_path: &Path,
) -> Result<(), PeftError> {
    let names = adapter.modules_to_save.clone().unwrap_or_default();
    if names.is_empty() {
        return Ok(());
    }
    let heads: Vec<(&'static str, &'static str)> = model
        .base
        .saved_heads()
        .iter()
        .map(|h| (h.module, h.path))
        .collect();
    let named = |module: &str| names.iter().any(|n| n == module);
    if !heads.iter().any(|(module, _)| named(module)) {
        let own: Vec<String> = heads.iter().map(|(m, _)| format!("{m:?}")).collect();
        return Err(PeftError::invalid(
            "modules_to_save",
            format!("{names:?} in {}", config_path.display()),
            if own.is_empty() {
                "null (this model's head is not saved with adapters)".to_string()
            } else {
                format!(
                    "null or a list naming {}, the model's head",
                    own.join(" and ")
                )
            },
        ));
    }
    let linears = model.base.saved_heads_mut();
    for ((module, path), linear) in heads.into_iter().zip(linears) {
        if !named(module) {
            continue;
        }
        let [_, d_in, d_out] = linear.weight.dims();
        let device = linear.weight.device();
        let mut take = |suffix: &str, shape: &[usize]| -> Result<TensorData, PeftError> {
            let key = format!("{path}.{suffix}");
            let tensor = tensors.remove(&key).ok_or_else(|| {
                file_error(
                    weights_path,
                    format!("no tensor {PREFIX}{key} (modules_to_save names {module:?})"),
                )
            })?;
            Ok(tensor.take(&key, shape)?)
        };
        let weight = Tensor::<2>::from_data(take("weight", &[d_out, d_in])?, &device);
        let bias = match linear.bias {
            Some(_) => Some(Tensor::<1>::from_data(take("bias", &[d_out])?, &device)),
            None => None,
        };
        *linear = nn::PopLinear::from_weights(weight.transpose(), bias);
    }
    Ok(())
}

/// `target_modules` as module names of every layer. PEFT saves
/// `all-linear` resolved to full paths (`model.layers.0.self_attn.q_proj`,
/// one per layer and module); lrscape adapts a module in every layer, so
/// a path list must name each of its modules in all layers.
fn per_module_targets(
    targets: &TargetModules,
    layout: &nn::LinearLayout,
    hf_blocks: &str,
) -> Result<TargetModules, String> {
    let TargetModules::List(entries) = targets else {
        return Ok(targets.clone());
    };
    let mut names = Vec::new();
    let mut layers: BTreeMap<&str, BTreeSet<usize>> = BTreeMap::new();
    let marker = format!("{hf_blocks}.");
    for entry in entries {
        let path = entry
            .find(&marker)
            .filter(|&at| at == 0 || entry[..at].ends_with('.'))
            .map(|at| &entry[at + marker.len()..]);
        let parsed = path.and_then(|rest| {
            let (layer, module) = rest.split_once('.')?;
            Some((layer.parse::<usize>().ok()?, layout.module(module)?.name))
        });
        match parsed {
            Some((layer, module)) => {
                layers.entry(module).or_default().insert(layer);
            }
            None => names.push(entry.clone()),
        }
    }
    for (module, found) in &layers {
        if let Some(missing) = (0..layout.n_layers).find(|l| !found.contains(l)) {
            return Err(format!(
                "target_modules names {module} in some layers but not {hf_blocks}.{missing}: \
                 lrscape adapts a module in every layer"
            ));
        }
        names.push(module.to_string());
    }
    Ok(TargetModules::List(names))
}

/// `targets` less the heads `modules_to_save` names: PEFT adapts no
/// module inside one it saves whole (`dense` with `modules_to_save =
/// ["pooler", ...]` leaves BERT's pooler to be saved).
fn without_saved_heads<M: Adaptable>(
    targets: &TargetModules,
    base: &M,
    adapter: &AdapterConfig,
) -> Result<TargetModules, PeftError> {
    let layout = base.layout();
    let saved = adapter.modules_to_save.clone().unwrap_or_default();
    let saved_paths: Vec<&str> = base
        .saved_heads()
        .iter()
        .filter(|h| saved.iter().any(|n| n == h.module))
        .map(|h| h.path)
        .collect();
    let resolved = targets.resolve(&layout)?;
    if !resolved.iter().any(|&m| {
        layout
            .head(m)
            .is_some_and(|h| saved_paths.contains(&h.path))
    }) {
        return Ok(targets.clone());
    }
    Ok(TargetModules::List(
        resolved
            .into_iter()
            .filter(|&m| {
                !layout
                    .head(m)
                    .is_some_and(|h| saved_paths.contains(&h.path))
            })
            .map(|m| m.name.to_string())
            .collect(),
    ))
}

/// Reads a PEFT adapter directory onto `base` (one member): the setting it
/// describes and the model with its factors. Missing, extra or misshapen
/// tensors are errors naming the key.
pub fn from_pretrained<M: Adaptable>(
    base: M,
    dir: &Path,
) -> Result<(PeftModel<M>, LoraConfig), PeftError> {
    let config_path = dir.join(ADAPTER_CONFIG);
    let text = std::fs::read_to_string(&config_path).map_err(|e| file_error(&config_path, e))?;
    let adapter: AdapterConfig = serde_json::from_str(&text)
        .map_err(|e| file_error(&config_path, format!("not a PEFT adapter config: {e}")))?;
    let config = lora_config_of(&adapter, &config_path)?;
    let layout = base.layout();
    let hf_blocks = layout.hf_blocks.ok_or_else(|| {
        PeftError::invalid(
            "adapter",
            dir.display(),
            "a model family with a Hugging Face counterpart (gpt2)",
        )
    })?;
    let mut config = config;
    config.target_modules = per_module_targets(&adapter.target_modules, &layout, hf_blocks)
        .map_err(|why| file_error(&config_path, why))?;
    config.target_modules = without_saved_heads(&config.target_modules, &base, &adapter)?;
    let mut model = PeftModel::new(base, &config, &[0])?;
    let weights_path = dir.join(ADAPTER_WEIGHTS);
    let mut tensors: HashMap<String, HostTensor> = safetensors_io::read_file(&weights_path)
        .map_err(|e| file_error(&weights_path, e))?
        .into_iter()
        .map(|(k, t)| (k.strip_prefix(PREFIX).unwrap_or(&k).to_string(), t))
        .collect();
    load_saved_heads(
        &mut model,
        &adapter,
        &mut tensors,
        &config_path,
        &weights_path,
    )?;
    let sites: Vec<LinearSite> = model.adapted_sites().map(|(site, _)| site).collect();
    for site in sites {
        let key = module_key(&layout, site)?;
        let layer = model.adapter_mut(site).ok_or(PeftError::NoSuchSite(site))?;
        let mut take = |suffix: &str, shape: Option<&[usize]>| -> Result<TensorData, PeftError> {
            let name = format!("{key}.{suffix}");
            let tensor = tensors.remove(&name).ok_or_else(|| {
                file_error(
                    &weights_path,
                    format!("no tensor {PREFIX}{name} (target_modules names this module)"),
                )
            })?;
            let expected = shape.map_or_else(|| tensor.shape.clone(), <[usize]>::to_vec);
            Ok(tensor.take(&name, &expected)?)
        };
        match layer.kind {
            LayerKind::Gralora { k } => load_gralora(layer, k, &mut take)?,
            LayerKind::Randlora { .. } => load_randlora(layer, &mut take)?,
            _ => load_lora(layer, &mut take)?,
        }
    }
    // The model-level copy of RandLoRA's bases (the layers' were read).
    for name in ["randlora_A", "randlora_B"] {
        tensors.remove(&format!("base_model.{name}"));
    }
    if let Some(extra) = tensors.keys().min() {
        return Err(file_error(
            &weights_path,
            format!(
                "tensor {extra} belongs to no module target_modules = {:?} names",
                adapter.target_modules
            ),
        ));
    }
    Ok((model, config))
}
