//! Greedy decoding by every member of a population at once: what scoring by
//! generation (exact-match answers) needs. Incremental with the model's
//! key/value cache where it has one ([`PopulationModel::decode`]), else by
//! recomputing the whole sequence each step; the same tokens either way.

use burn::tensor::{Device, Int, Tensor, TensorData};
use nn::PopulationModel;
use nn::attention::KvCache;

/// Each member's argmax at the last position of `logits: [C, T, vocab]`.
fn last_argmax(logits: Tensor<3>) -> Vec<u32> {
    let [c, t, _] = logits.dims();
    logits
        .narrow(1, t - 1, 1)
        .argmax(2)
        .reshape([c])
        .into_data()
        .convert::<i64>()
        .try_to_vec::<i64>()
        .expect("int tensors read back")
        .into_iter()
        .map(|id| id as u32)
        .collect()
}

fn ids(rows: &[Vec<u32>], device: &Device) -> Tensor<3, Int> {
    let (g, t) = (rows.len(), rows[0].len());
    let flat: Vec<i64> = rows.iter().flatten().map(|&id| i64::from(id)).collect();
    Tensor::from_data(TensorData::new(flat, [g, 1, t]), device)
}

/// The tokens each member of `model` appends to `prompt` by greedy
/// decoding: at most `max_new`, a member's ending after `eos` (which is
/// kept, as `transformers`' `generate` keeps it).
pub fn greedy<M: PopulationModel>(
    model: &M,
    prompt: &[u32],
    max_new: usize,
    eos: Option<u32>,
    device: &Device,
) -> Vec<Vec<u32>> {
    let model = model.valid();
    let device = device.clone().inner();
    if prompt.is_empty() || max_new == 0 {
        return vec![Vec::new(); nn::member_count(&model).max(1)];
    }
    let mut cache = KvCache::default();
    let first = ids(&[prompt.to_vec()], &device);
    let (mut next, cached) = match model.decode(first.clone(), &mut cache) {
        Some(logits) => (last_argmax(logits), true),
        None => (last_argmax(model.logits(first)), false),
    };
    // Every member is fed every step (a finished one its own tokens after
    // its end, which are dropped), so the streams stay one tensor.
    let mut fed: Vec<Vec<u32>> = next.iter().map(|&t| vec![t]).collect();
    let ended =
        |fed: &[Vec<u32>]| eos.is_some_and(|e| fed.iter().all(|tokens| tokens.contains(&e)));
    for _ in 1..max_new {
        if ended(&fed) {
            break;
        }
        let logits = if cached {
            let step: Vec<Vec<u32>> = next.iter().map(|&t| vec![t]).collect();
            model
                .decode(ids(&step, &device), &mut cache)
                .expect("a model that decoded once decodes again")
        } else {
            let whole: Vec<Vec<u32>> = fed
                .iter()
                .map(|tokens| prompt.iter().chain(tokens).copied().collect())
                .collect();
            model.logits(ids(&whole, &device))
        };
        next = last_argmax(logits);
        for (tokens, &token) in fed.iter_mut().zip(&next) {
            tokens.push(token);
        }
    }
    fed.into_iter()
        .map(|mut tokens| {
            if let Some(end) = eos.and_then(|e| tokens.iter().position(|&t| t == e)) {
                tokens.truncate(end + 1);
            }
            tokens
        })
        .collect()
}
