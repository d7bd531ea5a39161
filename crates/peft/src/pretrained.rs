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
use crate::layer::LoraLayer;
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
    pub lora_alpha: serde_json::Number,
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

/// The HF module name of `site` under `hf_blocks`.
fn module_key(hf_blocks: &str, site: LinearSite) -> String {
    format!("{hf_blocks}.{}.{}", site.layer, site.module.name)
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
    let hf_blocks = layout.hf_blocks.ok_or_else(|| {
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
    let mut modules = BTreeSet::new();
    for (site, layer) in model.adapted_sites() {
        modules.insert(site.module.name);
        let key = format!("{PREFIX}{}", module_key(hf_blocks, site));
        let (mut a, mut b, magnitude) = member_factors(layer, member);
        if let Some(initial) = initial {
            let start = initial.adapter(site).ok_or(PeftError::NoSuchSite(site))?;
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
    // Heads trained beside the adapters go where PEFT keeps
    // `modules_to_save` (a classifier's head, for `SEQ_CLS`).
    let mut saved = Vec::new();
    if config.train_head {
        for head in model.base.saved_heads() {
            let (weight, bias) = head.linear.member(member);
            let weight = weight.transpose().into_data();
            tensors.insert(format!("{PREFIX}{}.weight", head.path), weight);
            if let Some(bias) = bias {
                tensors.insert(format!("{PREFIX}{}.bias", head.path), bias.into_data());
            }
            saved.push(head.module.to_string());
        }
    }
    // Rank 2r at the same scale: α doubles, or grows by √2 under rsLoRA.
    let (r, alpha) = match (initial.is_some(), config.use_rslora) {
        (false, _) => (config.r, config.lora_alpha),
        (true, false) => (2 * config.r, 2.0 * config.lora_alpha),
        (true, true) => (2 * config.r, std::f64::consts::SQRT_2 * config.lora_alpha),
    };
    let adapter = AdapterConfig {
        peft_type: "LORA".into(),
        task_type: (!saved.is_empty()).then(|| "SEQ_CLS".to_string()),
        base_model_name_or_path: Some(base_name.to_string()),
        r,
        lora_alpha: alpha_number(alpha),
        target_modules: TargetModules::List(modules.iter().map(|m| m.to_string()).collect()),
        fan_in_fan_out: layout.fan_in_fan_out,
        use_dora: matches!(config.method, Method::Dora),
        use_rslora: config.use_rslora,
        bias: none(),
        lora_dropout: 0.0,
        modules_to_save: (!saved.is_empty()).then_some(saved),
        rank_pattern: BTreeMap::new(),
        alpha_pattern: BTreeMap::new(),
        layers_to_transform: None,
        init_lora_weights: yes(),
        inference_mode: true,
    };
    let bytes = safetensors_io::to_bytes(&tensors).map_err(|e| file_error(dir, e))?;
    let json = serde_json::to_string_pretty(&adapter).map_err(|e| file_error(dir, e))? + "\n";
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

/// The setting an adapter config describes, refusing what lrscape cannot
/// reproduce exactly (a bias, extra trained modules, per-layer ranks).
fn lora_config_of(adapter: &AdapterConfig, path: &Path) -> Result<LoraConfig, PeftError> {
    let refuse = |field: &str, value: String, allowed: &str| {
        Err(file_error(path, format!("{field} = {value}: {allowed}")))
    };
    if adapter.peft_type != "LORA" {
        return refuse("peft_type", format!("{:?}", adapter.peft_type), "\"LORA\"");
    }
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
    let alpha = adapter.lora_alpha.as_f64().unwrap_or(f64::NAN);
    let mut config = LoraConfig::new(
        if adapter.use_dora {
            Method::Dora
        } else {
            Method::Lora
        },
        adapter.r,
    );
    config.lora_alpha = alpha;
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
        let key = module_key(hf_blocks, site);
        let layer = model.adapter_mut(site).ok_or(PeftError::NoSuchSite(site))?;
        let [_, d_in, r] = layer.a.dims();
        let d_out = layer.b.dims()[2];
        let device = layer.a.device();
        // Older PEFT releases kept DoRA's magnitude in a ParameterDict.
        let older = !tensors.contains_key(&format!("{key}.lora_magnitude_vector"));
        let mut take = |suffix: &str, shape: &[usize]| -> Result<TensorData, PeftError> {
            let name = format!("{key}.{suffix}");
            let tensor = tensors.remove(&name).ok_or_else(|| {
                file_error(
                    &weights_path,
                    format!(
                        "no tensor {PREFIX}{name} (target_modules \
                    names this module)"
                    ),
                )
            })?;
            Ok(tensor.take(&name, shape)?)
        };
        let a = Tensor::<2>::from_data(take("lora_A.weight", &[r, d_in])?, &device);
        let b = Tensor::<2>::from_data(take("lora_B.weight", &[d_out, r])?, &device);
        layer.a = Param::from_tensor(a.transpose().unsqueeze_dim::<3>(0));
        layer.b = Param::from_tensor(b.transpose().unsqueeze_dim::<3>(0));
        if layer.magnitude.is_some() {
            let name = if older {
                "lora_magnitude_vector.weight"
            } else {
                "lora_magnitude_vector"
            };
            let m = take(name, &[d_out])?;
            let m = Tensor::<1>::from_data(m, &device);
            layer.magnitude = Some(Param::from_tensor(m.unsqueeze_dim::<2>(0)));
        }
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
