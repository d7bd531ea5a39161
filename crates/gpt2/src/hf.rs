//! Hugging Face directories: `config.json` with `model.safetensors`, or
//! shards listed in `model.safetensors.index.json`. f16 and bf16 weights are
//! read as f32. Keys are `transformer.`-prefixed as `GPT2LMHeadModel` saves
//! them, or bare as the original `gpt2` checkpoints have them; the causal
//! mask buffers some checkpoints carry (`attn.bias`, `attn.masked_bias`) and
//! the tied `lm_head.weight` are not weights of their own.
//!
//! Not through `burn-store`: every lrscape parameter carries a member axis
//! (`[1, in, out]`), so no tensor of the file maps onto a parameter as it is.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use burn::tensor::{Device, Tensor, TensorData};
use nn::safetensors_io::{self, HostTensor};

use crate::Gpt2Error;
use crate::classify::Gpt2ForSequenceClassification;
use crate::config::Gpt2Config;
use crate::model::{BlockWeights, Gpt2};

pub const CONFIG: &str = "config.json";
pub use safetensors_io::{INDEX, WEIGHTS};

/// Reads `dir` as a GPT-2 checkpoint.
pub fn load_dir(dir: &Path, device: &Device) -> Result<(Gpt2Config, Gpt2), Gpt2Error> {
    let (config, _, mut tensors) = read_dir(dir)?;
    let model = build(&config, &mut tensors, device)?;
    Ok((config, model))
}

/// `dir`'s config (typed, and as JSON for the fields a head adds) and
/// every tensor of its weight files.
fn read_dir(
    dir: &Path,
) -> Result<(Gpt2Config, serde_json::Value, HashMap<String, HostTensor>), Gpt2Error> {
    if !dir.is_dir() {
        return Err(Gpt2Error::file(
            dir.display(),
            "no such directory (a Hugging Face model directory: config.json, model.safetensors)",
        ));
    }
    let config_path = dir.join(CONFIG);
    let text = std::fs::read_to_string(&config_path)
        .map_err(|e| Gpt2Error::file(config_path.display(), e))?;
    let (config, json) = Gpt2Config::read_hf_json(&text, &config_path.display().to_string())?;
    Ok((config, json, read_weights(dir)?))
}

/// Reads `dir` as a `GPT2ForSequenceClassification` checkpoint: the body,
/// `score.weight` (`[num_labels, n_embd]`) and `pad_token_id`.
pub fn load_classifier_dir(
    dir: &Path,
    device: &Device,
) -> Result<(Gpt2Config, Gpt2ForSequenceClassification), Gpt2Error> {
    let (config, json, mut tensors) = read_dir(dir)?;
    let body = build(&config, &mut tensors, device)?;
    let labels = nn::hf_label_count(&json);
    let pad = json
        .get("pad_token_id")
        .and_then(|p| p.as_u64())
        .map(|p| p as u32);
    let key = "score.weight";
    let tensor = tensors
        .remove(key)
        .ok_or_else(|| Gpt2Error::MissingTensor { key: key.into() })?;
    let score = tensor.take(key, &[labels, config.n_embd])?;
    let score = Tensor::<2>::from_data(score, device).transpose();
    Ok((config, Gpt2ForSequenceClassification::new(body, score, pad)))
}

/// The weight files of a checkpoint directory: `model.safetensors`, or the
/// shards its index lists.
pub fn weight_files(dir: &Path) -> Result<Vec<PathBuf>, Gpt2Error> {
    safetensors_io::weight_files(dir).map_err(|e| Gpt2Error::file(e.path.display(), e.message))
}

/// Every tensor of the directory's weight files, by key without the
/// `transformer.` prefix.
fn read_weights(dir: &Path) -> Result<HashMap<String, HostTensor>, Gpt2Error> {
    let mut tensors = HashMap::new();
    for file in weight_files(dir)? {
        let read =
            safetensors_io::read_file(&file).map_err(|e| Gpt2Error::file(file.display(), e))?;
        for (name, tensor) in read {
            let key = name
                .strip_prefix("transformer.")
                .unwrap_or(&name)
                .to_string();
            // Converted to f32 only when the model takes it, so tensors
            // GPT-2 does not use (mask buffers, the tied head) never are.
            tensors.insert(key, tensor);
        }
    }
    Ok(tensors)
}

fn build(
    config: &Gpt2Config,
    tensors: &mut HashMap<String, HostTensor>,
    device: &Device,
) -> Result<Gpt2, Gpt2Error> {
    let (d, ff, vocab) = (config.n_embd, config.d_ff(), config.vocab_size);
    let mut take = |key: String, shape: &[usize]| -> Result<TensorData, Gpt2Error> {
        let tensor = tensors
            .remove(&key)
            .ok_or_else(|| Gpt2Error::MissingTensor { key: key.clone() })?;
        Ok(tensor.take(&key, shape)?)
    };
    let two = |data: TensorData| Tensor::<2>::from_data(data, device);
    let one = |data: TensorData| Tensor::<1>::from_data(data, device);
    let wte = two(take("wte.weight".into(), &[vocab, d])?);
    let wpe = two(take("wpe.weight".into(), &[config.n_positions, d])?);
    let mut blocks = Vec::with_capacity(config.n_layer);
    for i in 0..config.n_layer {
        let mut norm = |name: &str| -> Result<(Tensor<1>, Tensor<1>), Gpt2Error> {
            Ok((
                one(take(format!("h.{i}.{name}.weight"), &[d])?),
                one(take(format!("h.{i}.{name}.bias"), &[d])?),
            ))
        };
        let (ln_1, ln_2) = (norm("ln_1")?, norm("ln_2")?);
        let mut linear =
            |name: &str, d_in: usize, d_out: usize| -> Result<(Tensor<2>, Tensor<1>), Gpt2Error> {
                Ok((
                    two(take(format!("h.{i}.{name}.weight"), &[d_in, d_out])?),
                    one(take(format!("h.{i}.{name}.bias"), &[d_out])?),
                ))
            };
        blocks.push(BlockWeights {
            ln_1,
            c_attn: linear("attn.c_attn", d, 3 * d)?,
            attn_c_proj: linear("attn.c_proj", d, d)?,
            ln_2,
            c_fc: linear("mlp.c_fc", d, ff)?,
            mlp_c_proj: linear("mlp.c_proj", ff, d)?,
        });
    }
    let ln_f = (
        one(take("ln_f.weight".into(), &[d])?),
        one(take("ln_f.bias".into(), &[d])?),
    );
    Gpt2::from_weights(config, wte, wpe, blocks, ln_f)
}

/// Writes `model` (member 0 of every parameter) and `config` as a directory
/// `transformers` loads with `GPT2LMHeadModel.from_pretrained`.
pub fn save_dir(model: &Gpt2, config: &Gpt2Config, dir: &Path) -> Result<(), Gpt2Error> {
    std::fs::create_dir_all(dir).map_err(|e| Gpt2Error::file(dir.display(), e))?;
    let mut tensors: BTreeMap<String, TensorData> = BTreeMap::new();
    let matrix = |p: Tensor<3>| p.narrow(0, 0, 1).squeeze_dim::<2>(0).into_data();
    let vector = |p: Tensor<2>| p.narrow(0, 0, 1).squeeze_dim::<1>(0).into_data();
    let mut put = |key: String, data: TensorData| {
        tensors.insert(format!("transformer.{key}"), data);
    };
    put("wte.weight".into(), matrix(model.wte.val()));
    put("wpe.weight".into(), matrix(model.wpe.val()));
    for (i, block) in model.h.iter().enumerate() {
        for (name, norm) in [("ln_1", &block.ln_1), ("ln_2", &block.ln_2)] {
            put(format!("h.{i}.{name}.weight"), vector(norm.weight.val()));
            put(format!("h.{i}.{name}.bias"), vector(norm.bias.val()));
        }
        for (name, linear) in [
            ("attn.c_attn", &block.attn.c_attn),
            ("attn.c_proj", &block.attn.c_proj),
            ("mlp.c_fc", &block.mlp.c_fc),
            ("mlp.c_proj", &block.mlp.c_proj),
        ] {
            put(format!("h.{i}.{name}.weight"), matrix(linear.weight.val()));
            if let Some(bias) = &linear.bias {
                put(format!("h.{i}.{name}.bias"), vector(bias.val()));
            }
        }
    }
    put("ln_f.weight".into(), vector(model.ln_f.weight.val()));
    put("ln_f.bias".into(), vector(model.ln_f.bias.val()));
    let bytes =
        safetensors_io::to_bytes(&tensors).map_err(|e| Gpt2Error::file(dir.display(), e))?;
    write(&dir.join(WEIGHTS), &bytes)?;
    write(&dir.join(CONFIG), config.to_hf_json().as_bytes())
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), Gpt2Error> {
    std::fs::write(path, bytes).map_err(|e| Gpt2Error::file(path.display(), e))
}
