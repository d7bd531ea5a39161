//! Rotary position embeddings as `transformers` applies them to Llama's
//! layout: frequencies `θ^(-2i/d)` (stretched by `rope_scaling`), each
//! head's two halves rotated together (`rotate_half`). Burn's
//! `RotaryEncoding` rotates interleaved pairs instead, a different map.
//! Computed in f32 as `transformers` computes them.

use burn::tensor::{Device, Tensor, TensorData};

use crate::config::LlamaConfig;

/// The rotary frequencies of one head, `head_dim / 2` of them.
pub fn inverse_frequencies(config: &LlamaConfig) -> Vec<f32> {
    let dim = config.head_dim();
    let theta = config.rope_theta as f32;
    let base: Vec<f32> = (0..dim)
        .step_by(2)
        .map(|i| 1.0 / theta.powf(i as f32 / dim as f32))
        .collect();
    let Some(scaling) = &config.rope_scaling else {
        return base;
    };
    let factor = scaling.factor.unwrap_or(1.0) as f32;
    match scaling.rope_type.as_str() {
        "linear" => base.iter().map(|f| f / factor).collect(),
        "llama3" => {
            let low = scaling.low_freq_factor.unwrap_or(1.0) as f32;
            let high = scaling.high_freq_factor.unwrap_or(4.0) as f32;
            let old = scaling.original_max_position_embeddings.unwrap_or(8192) as f32;
            let (low_wavelen, high_wavelen) = (old / low, old / high);
            base.iter()
                .map(|&f| {
                    let wavelen = 2.0 * std::f32::consts::PI / f;
                    if wavelen < high_wavelen {
                        f
                    } else if wavelen > low_wavelen {
                        f / factor
                    } else {
                        let smooth = (old / wavelen - low) / (high - low);
                        (1.0 - smooth) * f / factor + smooth * f
                    }
                })
                .collect()
        }
        _ => base,
    }
}

/// `cos` and `sin` of positions `start..start + len`, `[1, 1, 1, len,
/// head_dim]` each (the frequencies repeated over both halves).
pub fn cos_sin(
    frequencies: &[f32],
    start: usize,
    len: usize,
    device: &Device,
) -> (Tensor<5>, Tensor<5>) {
    let half = frequencies.len();
    let dim = 2 * half;
    let mut cos = Vec::with_capacity(len * dim);
    let mut sin = Vec::with_capacity(len * dim);
    for position in start..start + len {
        for _ in 0..2 {
            for f in frequencies {
                let angle = f * position as f32;
                cos.push(angle.cos());
                sin.push(angle.sin());
            }
        }
    }
    let tensor =
        |v: Vec<f32>| Tensor::<5>::from_data(TensorData::new(v, [1, 1, 1, len, dim]), device);
    (tensor(cos), tensor(sin))
}

/// `x · cos + rotate_half(x) · sin` for `x: [C, B, H, T, head_dim]`, where
/// `rotate_half([x1, x2]) = [-x2, x1]`.
pub fn apply(x: Tensor<5>, cos: &Tensor<5>, sin: &Tensor<5>) -> Tensor<5> {
    let dim = x.dims()[4];
    let half = dim / 2;
    let x1 = x.clone().narrow(4, 0, half);
    let x2 = x.clone().narrow(4, half, half);
    let rotated = Tensor::cat(vec![x2.neg(), x1], 4);
    x * cos.clone() + rotated * sin.clone()
}
