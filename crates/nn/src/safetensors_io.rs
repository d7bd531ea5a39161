//! safetensors files as Hugging Face libraries write and read them: every
//! tensor of a file with its dtype (f16 and bf16 converted to f32 only when
//! taken), and f32 tensors written with the `format = pt` metadata
//! `transformers` and `peft` expect. Shared by the families' checkpoints
//! and PEFT's adapter files.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use burn::tensor::TensorData;
use safetensors::{Dtype, SafeTensors};

/// A tensor as its file stores it.
#[derive(Debug, Clone)]
pub struct HostTensor {
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    pub bytes: Vec<u8>,
    pub file: PathBuf,
}

impl HostTensor {
    /// Its values as f32 (`None` for a dtype other than F32, F16, BF16).
    pub fn to_f32(&self) -> Option<Vec<f32>> {
        let pairs = || self.bytes.chunks_exact(2).map(|c| [c[0], c[1]]);
        Some(match self.dtype {
            Dtype::F32 => self
                .bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            Dtype::F16 => pairs()
                .map(|b| half::f16::from_le_bytes(b).to_f32())
                .collect(),
            Dtype::BF16 => pairs()
                .map(|b| half::bf16::from_le_bytes(b).to_f32())
                .collect(),
            _ => return None,
        })
    }

    /// As f32 tensor data of `expected` shape; the error names the key,
    /// the file and what was found.
    pub fn take(&self, key: &str, expected: &[usize]) -> Result<TensorData, TakeError> {
        let file = self.file.display().to_string();
        if self.shape != expected {
            return Err(TakeError::Shape {
                key: key.to_string(),
                file,
                found: self.shape.clone(),
                expected: expected.to_vec(),
            });
        }
        let values = self.to_f32().ok_or_else(|| TakeError::Dtype {
            key: key.to_string(),
            file,
            dtype: format!("{:?}", self.dtype),
        })?;
        Ok(TensorData::new(values, self.shape.clone()))
    }
}

/// A tensor of a file that does not fit what the config needs.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TakeError {
    #[error("{file}: tensor {key} has shape {found:?}, the config needs {expected:?}")]
    Shape {
        key: String,
        file: String,
        found: Vec<usize>,
        expected: Vec<usize>,
    },
    #[error("{file}: tensor {key} is {dtype}: lrscape reads F32, F16 and BF16")]
    Dtype {
        key: String,
        file: String,
        dtype: String,
    },
}

/// Every tensor of the safetensors file at `path`, by key; the error names
/// the file.
pub fn read_file(path: &Path) -> Result<HashMap<String, HostTensor>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let st = SafeTensors::deserialize(&bytes)
        .map_err(|e| format!("{}: not a safetensors file: {e}", path.display()))?;
    Ok(st
        .tensors()
        .into_iter()
        .map(|(name, view)| {
            let tensor = HostTensor {
                dtype: view.dtype(),
                shape: view.shape().to_vec(),
                bytes: view.data().to_vec(),
                file: path.to_path_buf(),
            };
            (name, tensor)
        })
        .collect())
}

/// f32 tensors as one safetensors file, with the `format = pt` metadata.
pub fn to_bytes(tensors: &BTreeMap<String, TensorData>) -> Result<Vec<u8>, String> {
    let mut raw = Vec::with_capacity(tensors.len());
    for (key, data) in tensors {
        let values: Vec<f32> = data
            .try_to_vec::<f32>()
            .map_err(|e| format!("tensor {key}: {e:?}"))?;
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        raw.push((key, data.shape().to_vec(), bytes));
    }
    let views = raw
        .iter()
        .map(|(key, shape, bytes)| {
            safetensors::tensor::TensorView::new(Dtype::F32, shape.clone(), bytes)
                .map(|view| (key.as_str(), view))
                .map_err(|e| format!("tensor {key}: {e}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
    safetensors::serialize(views, Some(metadata)).map_err(|e| format!("safetensors: {e}"))
}

/// A checkpoint file that cannot be used, and why.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}: {message}", path.display())]
pub struct FileError {
    pub path: PathBuf,
    pub message: String,
}

impl FileError {
    pub fn new(path: &Path, message: impl std::fmt::Display) -> Self {
        Self {
            path: path.to_path_buf(),
            message: message.to_string(),
        }
    }
}

pub const WEIGHTS: &str = "model.safetensors";
pub const INDEX: &str = "model.safetensors.index.json";

/// The weight files of a Hugging Face model directory: `model.safetensors`,
/// or the shards `model.safetensors.index.json` lists, each once.
pub fn weight_files(dir: &Path) -> Result<Vec<PathBuf>, FileError> {
    let single = dir.join(WEIGHTS);
    let index = dir.join(INDEX);
    if single.is_file() {
        Ok(vec![single])
    } else if index.is_file() {
        shard_files(&index)
    } else {
        Err(FileError::new(
            dir,
            format!("neither {WEIGHTS} nor {INDEX} (lrscape reads safetensors weights only)"),
        ))
    }
}

/// The shard files an index names, each once, in order.
fn shard_files(index: &Path) -> Result<Vec<PathBuf>, FileError> {
    let text = std::fs::read_to_string(index).map_err(|e| FileError::new(index, e))?;
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| FileError::new(index, format!("not JSON: {e}")))?;
    let map = value
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| FileError::new(index, "no \"weight_map\" object"))?;
    let mut files: Vec<&str> = map.values().filter_map(|f| f.as_str()).collect();
    files.sort_unstable();
    files.dedup();
    let dir = index.parent().unwrap_or(Path::new("."));
    let paths: Vec<PathBuf> = files.iter().map(|f| dir.join(f)).collect();
    if let Some(missing) = paths.iter().find(|p| !p.is_file()) {
        return Err(FileError::new(
            missing,
            format!("named in {} but missing", index.display()),
        ));
    }
    Ok(paths)
}
