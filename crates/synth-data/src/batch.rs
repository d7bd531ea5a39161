//! Batches of token sequences and their targets as tensors on a device.

use burn::data::dataloader::batcher::Batcher;
use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::{IGNORE, SequenceDataset, SequenceItem};

/// Token and target tensors for `G` data streams of `B` examples each.
///
/// `G` is 1 when every member of a population sees the same examples and the
/// population size when each member has its own data order; the model
/// broadcasts a stream of 1 over all members. Targets are flattened per
/// stream, example-major (`B × L` for `L` targets per example), the order in
/// which the model emits its logits.
#[derive(Debug, Clone)]
pub struct SequenceBatch {
    /// `[G, B, seq_len]` token ids.
    pub tokens: Tensor<3, Int>,
    /// `[G, B × targets_per_example]` target token ids (an ignored target
    /// as 0).
    pub targets: Tensor<2, Int>,
    /// `[G, B × targets_per_example]`: 1 where a target is scored, 0 where
    /// it is [`IGNORE`]d; `None` when every target is scored.
    pub weights: Option<Tensor<2>>,
    /// Scored targets of each stream.
    pub scored: Vec<usize>,
}

/// Builds [`SequenceBatch`]es (one stream, `G = 1`) from items.
#[derive(Debug, Clone, Copy, Default)]
pub struct SequenceBatcher;

impl Batcher<SequenceItem, SequenceBatch> for SequenceBatcher {
    fn batch(&self, items: Vec<SequenceItem>, device: &Device) -> SequenceBatch {
        let seq_len = items.first().map_or(0, |item| item.tokens.len());
        let tokens: Vec<i64> = items
            .iter()
            .flat_map(|item| item.tokens.iter().map(|&t| i64::from(t)))
            .collect();
        let targets: Vec<u32> = items
            .iter()
            .flat_map(|item| item.targets.iter().copied())
            .collect();
        SequenceBatch::from_host(tokens, targets, 1, items.len(), seq_len, device)
    }
}

impl SequenceBatch {
    fn from_host(
        tokens: Vec<i64>,
        targets: Vec<u32>,
        streams: usize,
        batch: usize,
        seq_len: usize,
        device: &Device,
    ) -> Self {
        let per_stream = targets.len() / streams.max(1);
        let scored: Vec<usize> = targets
            .chunks(per_stream.max(1))
            .map(|row| row.iter().filter(|&&t| t != IGNORE).count())
            .collect();
        let weights = targets.contains(&IGNORE).then(|| {
            let w: Vec<f32> = targets
                .iter()
                .map(|&t| if t == IGNORE { 0.0 } else { 1.0 })
                .collect();
            Tensor::from_data(TensorData::new(w, [streams, per_stream]), device)
        });
        let ids: Vec<i64> = targets
            .iter()
            .map(|&t| if t == IGNORE { 0 } else { i64::from(t) })
            .collect();
        Self {
            tokens: Tensor::from_data(TensorData::new(tokens, [streams, batch, seq_len]), device),
            targets: Tensor::from_data(TensorData::new(ids, [streams, per_stream]), device),
            weights,
            scored,
        }
    }

    /// One batch per stream: row `g` holds the examples `indices[g]` (all
    /// streams must have the same batch size). Gathers straight from the
    /// dataset's storage into one upload.
    pub fn gather(data: &SequenceDataset, indices: &[&[usize]], device: &Device) -> Self {
        let batch = indices.first().map_or(0, |row| row.len());
        assert!(
            indices.iter().all(|row| row.len() == batch),
            "every stream needs the same batch size"
        );
        let seq_len = data.seq_len();
        let per_example = data.targets_per_example();
        let mut tokens = Vec::with_capacity(indices.len() * batch * seq_len);
        let mut targets = Vec::with_capacity(indices.len() * batch * per_example);
        for row in indices {
            for &i in row.iter() {
                tokens.extend(data.tokens_of(i).iter().map(|&t| i64::from(t)));
                targets.extend_from_slice(data.targets_of(i));
            }
        }
        Self::from_host(tokens, targets, indices.len(), batch, seq_len, device)
    }

    pub fn streams(&self) -> usize {
        self.tokens.dims()[0]
    }

    pub fn batch_size(&self) -> usize {
        self.tokens.dims()[1]
    }

    /// Targets per stream: batch size × targets per example.
    pub fn n_targets(&self) -> usize {
        self.targets.dims()[1]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{MarkovChain, markov_lm, retrieve_at_k};
    use burn::data::dataset::Dataset;

    fn host(t: Tensor<2, Int>) -> Vec<i64> {
        t.into_data().convert::<i64>().try_to_vec::<i64>().unwrap()
    }

    #[test]
    fn batcher_and_gather_agree() {
        let device = Device::flex();
        let data = retrieve_at_k(10, 4, 16, 1, 3).unwrap();
        let items: Vec<_> = [2, 5, 7].iter().map(|&i| data.get(i).unwrap()).collect();
        let from_batcher = SequenceBatcher.batch(items, &device);
        let from_gather = SequenceBatch::gather(&data, &[&[2, 5, 7]], &device);
        assert_eq!(from_batcher.tokens.dims(), [1, 3, 4]);
        assert_eq!(
            from_batcher.tokens.clone().into_data(),
            from_gather.tokens.into_data()
        );
        let expected: Vec<i64> = [2, 5, 7]
            .iter()
            .map(|&i| i64::from(data.targets_of(i)[0]))
            .collect();
        assert_eq!(host(from_batcher.targets), expected);
        assert_eq!(host(from_gather.targets), expected);
    }

    #[test]
    fn gather_stacks_streams() {
        let device = Device::flex();
        let data = retrieve_at_k(10, 4, 16, 1, 3).unwrap();
        let batch = SequenceBatch::gather(&data, &[&[0, 1], &[8, 9]], &device);
        assert_eq!(batch.tokens.dims(), [2, 2, 4]);
        assert_eq!((batch.streams(), batch.batch_size()), (2, 2));
        let tokens = batch
            .tokens
            .into_data()
            .convert::<i64>()
            .try_to_vec::<i64>()
            .unwrap();
        let row9: Vec<i64> = data.tokens_of(9).iter().map(|&t| i64::from(t)).collect();
        assert_eq!(&tokens[12..16], row9.as_slice());
    }

    #[test]
    fn language_model_targets_are_flattened_example_major() {
        let device = Device::flex();
        let chain = MarkovChain::random(8, 3, 1).unwrap();
        let data = markov_lm(&chain, 5, 6, 2).unwrap();
        let batch = SequenceBatch::gather(&data, &[&[3, 1]], &device);
        assert_eq!(batch.targets.dims(), [1, 12]);
        assert_eq!(batch.n_targets(), 12);
        let mut expected: Vec<i64> = data.targets_of(3).iter().map(|&t| i64::from(t)).collect();
        expected.extend(data.targets_of(1).iter().map(|&t| i64::from(t)));
        assert_eq!(host(batch.targets), expected);
    }
}
