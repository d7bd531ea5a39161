//! Exchange with the seed notebook's PyTorch `state_dict`.
//!
//! Names and layouts are the notebook's (`blocks.0.attn.q.weight` as
//! `[out, in]`, `blocks.0.mlp.0` / `mlp.2` for the MLP, `pos` as
//! `[1, seq, d]`). This is how golden fixtures produced by PyTorch are loaded,
//! and how a base trained in the notebook can be brought into lrscape.

use std::collections::BTreeMap;

use burn::module::Param;
use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::config::TinyformerConfig;
use crate::model::{Attention, Block, Mlp, Tinyformer};
use nn::{PopLinear, RmsNorm};

/// One tensor of a state dict: row-major values and shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NamedTensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// A PyTorch-style state dict.
pub type TorchState = BTreeMap<String, NamedTensor>;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TorchStateError {
    #[error("state dict has no tensor named `{0}`")]
    Missing(String),
    #[error("`{name}` has shape {found:?}, expected {expected:?}")]
    Shape {
        name: String,
        found: Vec<usize>,
        expected: Vec<usize>,
    },
    #[error("`{name}` holds {len} values, its shape {shape:?} needs {needed}")]
    Length {
        name: String,
        len: usize,
        shape: Vec<usize>,
        needed: usize,
    },
    #[error("this model has {0} members; only 1-member models map to a state dict")]
    Members(usize),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
}

fn fetch<const D: usize>(
    state: &TorchState,
    name: &str,
    expected: [usize; D],
    device: &Device,
) -> Result<Tensor<D>, TorchStateError> {
    let entry = state
        .get(name)
        .ok_or_else(|| TorchStateError::Missing(name.to_string()))?;
    if entry.shape != expected {
        return Err(TorchStateError::Shape {
            name: name.to_string(),
            found: entry.shape.clone(),
            expected: expected.to_vec(),
        });
    }
    let needed: usize = expected.iter().product();
    if entry.data.len() != needed {
        return Err(TorchStateError::Length {
            name: name.to_string(),
            len: entry.data.len(),
            shape: entry.shape.clone(),
            needed,
        });
    }
    Ok(Tensor::from_data(
        TensorData::new(entry.data.clone(), expected),
        device,
    ))
}

fn linear(
    state: &TorchState,
    prefix: &str,
    d_in: usize,
    d_out: usize,
    bias: bool,
    device: &Device,
) -> Result<PopLinear, TorchStateError> {
    let weight = fetch(state, &format!("{prefix}.weight"), [d_out, d_in], device)?;
    let bias = if bias {
        let b = fetch(state, &format!("{prefix}.bias"), [d_out], device)?;
        Some(Param::from_tensor(b.unsqueeze_dim::<2>(0)))
    } else {
        None
    };
    Ok(PopLinear {
        weight: Param::from_tensor(weight.transpose().unsqueeze_dim::<3>(0)),
        bias,
    })
}

fn norm(
    state: &TorchState,
    name: &str,
    d: usize,
    device: &Device,
) -> Result<RmsNorm, TorchStateError> {
    let mut norm = RmsNorm::init(d, device);
    norm.scale = Param::from_tensor(fetch(state, name, [d], device)?.unsqueeze_dim::<2>(0));
    Ok(norm)
}

impl Tinyformer {
    /// Builds a 1-member model from a notebook-layout state dict.
    pub fn from_torch_state(
        config: &TinyformerConfig,
        state: &TorchState,
        device: &Device,
    ) -> Result<Self, TorchStateError> {
        config.validate()?;
        let (d, ff, vocab, seq) = (config.d_model, config.d_ff, config.vocab, config.seq_len);
        let mut blocks = Vec::with_capacity(config.n_layers);
        for i in 0..config.n_layers {
            let p = format!("blocks.{i}");
            blocks.push(Block {
                n1: norm(state, &format!("{p}.n1.scale"), d, device)?,
                attn: Attention {
                    q: linear(state, &format!("{p}.attn.q"), d, d, false, device)?,
                    k: linear(state, &format!("{p}.attn.k"), d, d, false, device)?,
                    v: linear(state, &format!("{p}.attn.v"), d, d, false, device)?,
                    o: linear(state, &format!("{p}.attn.o"), d, d, false, device)?,
                    n_heads: config.n_heads,
                    causal: config.causal,
                },
                n2: norm(state, &format!("{p}.n2.scale"), d, device)?,
                mlp: Mlp {
                    up: linear(state, &format!("{p}.mlp.0"), d, ff, true, device)?,
                    down: linear(state, &format!("{p}.mlp.2"), ff, d, true, device)?,
                },
            });
        }
        Ok(Self {
            embedding: Param::from_tensor(
                fetch(state, "emb.weight", [vocab, d], device)?.unsqueeze_dim::<3>(0),
            ),
            position: Param::from_tensor(fetch(state, "pos", [1, seq, d], device)?),
            blocks,
            norm: norm(state, "norm.scale", d, device)?,
            head: linear(state, "head", d, vocab, true, device)?,
            causal: config.causal,
        })
    }

    /// The notebook-layout state dict of a 1-member model.
    pub fn to_torch_state(&self) -> Result<TorchState, TorchStateError> {
        let members = nn::member_count(self);
        if members != 1 {
            return Err(TorchStateError::Members(members));
        }
        let mut state = TorchState::new();
        let mut put = |name: String, tensor: Tensor<2>| {
            let shape = tensor.dims().to_vec();
            let data = tensor
                .into_data()
                .convert::<f32>()
                .try_into_vec::<f32>()
                .expect("a float tensor converts to f32");
            state.insert(name, NamedTensor { shape, data });
        };
        let squeeze3 = |t: Tensor<3>| {
            let [_, a, b] = t.dims();
            t.reshape([a, b])
        };
        let put_linear = |put: &mut dyn FnMut(String, Tensor<2>), prefix: &str, l: &PopLinear| {
            put(
                format!("{prefix}.weight"),
                squeeze3(l.weight.val()).transpose(),
            );
            if let Some(b) = &l.bias {
                put(format!("{prefix}.bias"), b.val());
            }
        };
        put("emb.weight".into(), squeeze3(self.embedding.val()));
        for (i, block) in self.blocks.iter().enumerate() {
            let p = format!("blocks.{i}");
            put(format!("{p}.n1.scale"), block.n1.scale.val());
            put(format!("{p}.n2.scale"), block.n2.scale.val());
            put_linear(&mut put, &format!("{p}.attn.q"), &block.attn.q);
            put_linear(&mut put, &format!("{p}.attn.k"), &block.attn.k);
            put_linear(&mut put, &format!("{p}.attn.v"), &block.attn.v);
            put_linear(&mut put, &format!("{p}.attn.o"), &block.attn.o);
            put_linear(&mut put, &format!("{p}.mlp.0"), &block.mlp.up);
            put_linear(&mut put, &format!("{p}.mlp.2"), &block.mlp.down);
        }
        put("norm.scale".into(), self.norm.scale.val());
        put_linear(&mut put, "head", &self.head);
        // Shapes as PyTorch has them: 1-D vectors and a [1, seq, d] table.
        for (name, tensor) in state.iter_mut() {
            if name.ends_with(".scale") || name.ends_with(".bias") {
                tensor.shape = vec![tensor.data.len()];
            }
        }
        let position = self.position.val();
        let shape = position.dims().to_vec();
        let data = position
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .expect("f32");
        state.insert("pos".into(), NamedTensor { shape, data });
        Ok(state)
    }
}
