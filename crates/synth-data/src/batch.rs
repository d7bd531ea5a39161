//! Batches of retrieve-at-k examples as tensors on a device.

use burn::data::dataloader::batcher::Batcher;
use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::{RetrievalDataset, RetrievalItem};

/// Token and label tensors for `G` data streams of `B` examples each.
///
/// `G` is 1 when every member of a population sees the same examples and the
/// population size when each member has its own data order; the model
/// broadcasts a stream of 1 over all members.
#[derive(Debug, Clone)]
pub struct RetrievalBatch {
    /// `[G, B, seq_len]` token ids.
    pub tokens: Tensor<3, Int>,
    /// `[G, B]` labels.
    pub labels: Tensor<2, Int>,
}

/// Builds [`RetrievalBatch`]es (one stream, `G = 1`) from items.
#[derive(Debug, Clone, Copy, Default)]
pub struct RetrievalBatcher;

impl Batcher<RetrievalItem, RetrievalBatch> for RetrievalBatcher {
    fn batch(&self, items: Vec<RetrievalItem>, device: &Device) -> RetrievalBatch {
        let seq_len = items.first().map_or(0, |item| item.tokens.len());
        let tokens: Vec<i64> = items
            .iter()
            .flat_map(|item| item.tokens.iter().map(|&t| i64::from(t)))
            .collect();
        let labels: Vec<i64> = items.iter().map(|item| i64::from(item.label)).collect();
        RetrievalBatch::from_host(tokens, labels, 1, items.len(), seq_len, device)
    }
}

impl RetrievalBatch {
    fn from_host(
        tokens: Vec<i64>,
        labels: Vec<i64>,
        streams: usize,
        batch: usize,
        seq_len: usize,
        device: &Device,
    ) -> Self {
        Self {
            tokens: Tensor::from_data(TensorData::new(tokens, [streams, batch, seq_len]), device),
            labels: Tensor::from_data(TensorData::new(labels, [streams, batch]), device),
        }
    }

    /// One batch per stream: row `g` holds the examples `indices[g]` (all
    /// streams must have the same batch size). Gathers straight from the
    /// dataset's storage into one upload.
    pub fn gather(data: &RetrievalDataset, indices: &[&[usize]], device: &Device) -> Self {
        let batch = indices.first().map_or(0, |row| row.len());
        assert!(
            indices.iter().all(|row| row.len() == batch),
            "every stream needs the same batch size"
        );
        let seq_len = data.seq_len();
        let mut tokens = Vec::with_capacity(indices.len() * batch * seq_len);
        let mut labels = Vec::with_capacity(indices.len() * batch);
        for row in indices {
            for &i in row.iter() {
                tokens.extend(data.tokens_of(i).iter().map(|&t| i64::from(t)));
                labels.push(i64::from(data.label_of(i)));
            }
        }
        Self::from_host(tokens, labels, indices.len(), batch, seq_len, device)
    }

    pub fn streams(&self) -> usize {
        self.labels.dims()[0]
    }

    pub fn batch_size(&self) -> usize {
        self.labels.dims()[1]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::retrieve_at_k;
    use burn::data::dataset::Dataset;

    #[test]
    fn batcher_and_gather_agree() {
        let device = Device::flex();
        let data = retrieve_at_k(10, 4, 16, 1, 3).unwrap();
        let items: Vec<_> = [2, 5, 7].iter().map(|&i| data.get(i).unwrap()).collect();
        let from_batcher = RetrievalBatcher.batch(items, &device);
        let from_gather = RetrievalBatch::gather(&data, &[&[2, 5, 7]], &device);
        assert_eq!(from_batcher.tokens.dims(), [1, 3, 4]);
        assert_eq!(
            from_batcher.tokens.clone().into_data(),
            from_gather.tokens.into_data()
        );
        let labels = from_batcher
            .labels
            .into_data()
            .convert::<i64>()
            .try_to_vec::<i64>()
            .unwrap();
        let expected: Vec<i64> = [2, 5, 7]
            .iter()
            .map(|&i| i64::from(data.label_of(i)))
            .collect();
        assert_eq!(labels, expected);
    }

    #[test]
    fn gather_stacks_streams() {
        let device = Device::flex();
        let data = retrieve_at_k(10, 4, 16, 1, 3).unwrap();
        let batch = RetrievalBatch::gather(&data, &[&[0, 1], &[8, 9]], &device);
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
}
