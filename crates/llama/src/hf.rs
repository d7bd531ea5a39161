//! Hugging Face directories of Llama's layout: `config.json` with
//! `model.safetensors`, or shards listed in `model.safetensors.index.json`.
//! f16 and bf16 weights are read as f32. `nn.Linear` weights are `[out,
//! in]` in the file and `[in, out]` in lrscape; keys are `model.`-prefixed
//! as `LlamaForCausalLM` saves them (or bare), the head is `lm_head.weight`
//! unless tied (a tied checkpoint's copy is skipped).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use burn::tensor::{Device, Tensor, TensorData};
use nn::safetensors_io::{self, HostTensor};

use crate::LlamaError;
use crate::config::LlamaConfig;
use crate::model::{LayerWeights, LinearWeights, Llama};

pub const CONFIG: &str = "config.json";
pub use safetensors_io::{INDEX, WEIGHTS};

/// Reads `dir` as a checkpoint of Llama's layout.
pub fn load_dir(dir: &Path, device: &Device) -> Result<(LlamaConfig, Llama), LlamaError> {
    let config = read_config(dir)?;
    let mut tensors = read_weights(dir)?;
    let model = build(&config, &mut tensors, device)?;
    Ok((config, model))
}

/// `dir/config.json`, checked.
pub fn read_config(dir: &Path) -> Result<LlamaConfig, LlamaError> {
    if !dir.is_dir() {
        return Err(LlamaError::file(
            dir,
            "no such directory (a Hugging Face model directory: config.json, model.safetensors)",
        ));
    }
    let path = dir.join(CONFIG);
    let text = std::fs::read_to_string(&path).map_err(|e| LlamaError::file(&path, e))?;
    LlamaConfig::from_hf_json(&text, &path)
}

/// The weight files of a checkpoint directory.
pub fn weight_files(dir: &Path) -> Result<Vec<PathBuf>, LlamaError> {
    Ok(safetensors_io::weight_files(dir)?)
}

/// Every tensor of the directory's weight files, by its key in
/// `LlamaForCausalLM` (`model.`-prefixed but for `lm_head.weight`).
fn read_weights(dir: &Path) -> Result<HashMap<String, HostTensor>, LlamaError> {
    let mut tensors = HashMap::new();
    for file in weight_files(dir)? {
        let read = safetensors_io::read_file(&file).map_err(|e| LlamaError::file(&file, e))?;
        for (name, tensor) in read {
            // Bare keys (as some exports write them) as transformers names them.
            let key = if name.starts_with("model.") || name.starts_with("lm_head.") {
                name
            } else {
                format!("model.{name}")
            };
            tensors.insert(key, tensor);
        }
    }
    Ok(tensors)
}

/// `[rows, cols]` values as `[cols, rows]`.
fn transposed(data: TensorData, rows: usize, cols: usize) -> TensorData {
    let values: Vec<f32> = data.try_to_vec().expect("taken tensors are f32");
    let mut out = vec![0.0f32; values.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = values[r * cols + c];
        }
    }
    TensorData::new(out, [cols, rows])
}

fn build(
    config: &LlamaConfig,
    tensors: &mut HashMap<String, HostTensor>,
    device: &Device,
) -> Result<Llama, LlamaError> {
    let (d, ff, vocab, dh) = (
        config.hidden_size,
        config.intermediate_size,
        config.vocab_size,
        config.head_dim(),
    );
    let (q, kv) = (config.num_attention_heads * dh, config.kv_heads() * dh);
    let mut take = |key: String, shape: &[usize]| -> Result<TensorData, LlamaError> {
        let tensor = tensors
            .remove(&key)
            .ok_or_else(|| LlamaError::MissingTensor { key: key.clone() })?;
        Ok(tensor.take(&key, shape)?)
    };
    let one = |data: TensorData| Tensor::<1>::from_data(data, device);
    let embed_tokens = Tensor::<2>::from_data(
        take("model.embed_tokens.weight".into(), &[vocab, d])?,
        device,
    );
    let mut layers = Vec::with_capacity(config.num_hidden_layers);
    for i in 0..config.num_hidden_layers {
        let mut linear = |name: &str,
                          d_in: usize,
                          d_out: usize,
                          bias: bool|
         -> Result<LinearWeights, LlamaError> {
            let w = take(format!("model.layers.{i}.{name}.weight"), &[d_out, d_in])?;
            let w = Tensor::<2>::from_data(transposed(w, d_out, d_in), device);
            let b = if bias {
                Some(one(take(
                    format!("model.layers.{i}.{name}.bias"),
                    &[d_out],
                )?))
            } else {
                None
            };
            Ok((w, b))
        };
        let (qkv_bias, o_bias, mlp_bias) = (config.qkv_bias(), config.o_bias(), config.mlp_bias());
        let q_proj = linear("self_attn.q_proj", d, q, qkv_bias)?;
        let k_proj = linear("self_attn.k_proj", d, kv, qkv_bias)?;
        let v_proj = linear("self_attn.v_proj", d, kv, qkv_bias)?;
        let o_proj = linear("self_attn.o_proj", q, d, o_bias)?;
        let gate_proj = linear("mlp.gate_proj", d, ff, mlp_bias)?;
        let up_proj = linear("mlp.up_proj", d, ff, mlp_bias)?;
        let down_proj = linear("mlp.down_proj", ff, d, mlp_bias)?;
        let mut norm = |name: &str, n: usize| -> Result<Tensor<1>, LlamaError> {
            Ok(one(take(format!("model.layers.{i}.{name}.weight"), &[n])?))
        };
        let (q_norm, k_norm) = if config.qk_norm() {
            (
                Some(norm("self_attn.q_norm", dh)?),
                Some(norm("self_attn.k_norm", dh)?),
            )
        } else {
            (None, None)
        };
        layers.push(LayerWeights {
            input_layernorm: norm("input_layernorm", d)?,
            q_proj,
            k_proj,
            v_proj,
            o_proj,
            q_norm,
            k_norm,
            post_attention_layernorm: norm("post_attention_layernorm", d)?,
            gate_proj,
            up_proj,
            down_proj,
        });
    }
    let norm = one(take("model.norm.weight".into(), &[d])?);
    let lm_head = if config.tie_word_embeddings {
        None
    } else {
        let w = take("lm_head.weight".into(), &[vocab, d])?;
        Some(Tensor::<2>::from_data(transposed(w, vocab, d), device))
    };
    Ok(Llama::from_weights(
        config,
        embed_tokens,
        layers,
        norm,
        lm_head,
    ))
}

/// Writes `model` (member 0 of every parameter) and `config` as a directory
/// `transformers` loads with `AutoModelForCausalLM.from_pretrained`.
pub fn save_dir(model: &Llama, config: &LlamaConfig, dir: &Path) -> Result<(), LlamaError> {
    std::fs::create_dir_all(dir).map_err(|e| LlamaError::file(dir, e))?;
    let mut tensors: BTreeMap<String, TensorData> = BTreeMap::new();
    let first = |p: Tensor<3>| p.narrow(0, 0, 1).squeeze_dim::<2>(0);
    let vector = |p: Tensor<2>| p.narrow(0, 0, 1).squeeze_dim::<1>(0).into_data();
    // lrscape's [in, out] as nn.Linear's [out, in].
    let linear_weight = |p: Tensor<3>| first(p).transpose().into_data();
    tensors.insert(
        "model.embed_tokens.weight".into(),
        first(model.embed_tokens.val()).into_data(),
    );
    for (i, layer) in model.layers.iter().enumerate() {
        let prefix = format!("model.layers.{i}");
        let attn = &layer.self_attn;
        for (name, linear) in [
            ("self_attn.q_proj", &attn.q_proj),
            ("self_attn.k_proj", &attn.k_proj),
            ("self_attn.v_proj", &attn.v_proj),
            ("self_attn.o_proj", &attn.o_proj),
            ("mlp.gate_proj", &layer.mlp.gate_proj),
            ("mlp.up_proj", &layer.mlp.up_proj),
            ("mlp.down_proj", &layer.mlp.down_proj),
        ] {
            tensors.insert(
                format!("{prefix}.{name}.weight"),
                linear_weight(linear.weight.val()),
            );
            if let Some(bias) = &linear.bias {
                tensors.insert(format!("{prefix}.{name}.bias"), vector(bias.val()));
            }
        }
        let mut norms = vec![
            ("input_layernorm", &layer.input_layernorm),
            ("post_attention_layernorm", &layer.post_attention_layernorm),
        ];
        if let (Some(q), Some(k)) = (&attn.q_norm, &attn.k_norm) {
            norms.extend([("self_attn.q_norm", q), ("self_attn.k_norm", k)]);
        }
        for (name, norm) in norms {
            tensors.insert(format!("{prefix}.{name}.weight"), vector(norm.scale.val()));
        }
    }
    tensors.insert("model.norm.weight".into(), vector(model.norm.scale.val()));
    if let Some(head) = &model.lm_head {
        tensors.insert("lm_head.weight".into(), linear_weight(head.weight.val()));
    }
    let bytes = safetensors_io::to_bytes(&tensors).map_err(|e| LlamaError::file(dir, e))?;
    write(&dir.join(WEIGHTS), &bytes)?;
    write(&dir.join(CONFIG), config.to_hf_json().as_bytes())
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), LlamaError> {
    std::fs::write(path, bytes).map_err(|e| LlamaError::file(path, e))
}
