//! Per-epoch example orders.

use crate::{seeded_rng, uniform_below};

/// The order in which one data stream visits a dataset, epoch by epoch.
///
/// Epoch `e` of stream seed `s` is a Fisher–Yates shuffle of `0..n` driven by
/// [`seeded_rng`]`(mix(s, e))`, so any epoch can be recomputed on its own (a
/// resumed run needs no RNG state) and two seeds give independent orders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochOrder {
    pub seed: u64,
}

impl EpochOrder {
    pub fn new(seed: u64) -> Self {
        Self { seed }
    }

    /// The permutation of `0..n` used in `epoch`.
    pub fn permutation(&self, n: usize, epoch: u64) -> Vec<usize> {
        // SplitMix64-style mixing keeps (seed, epoch) pairs from colliding
        // for small consecutive values.
        let mixed = self
            .seed
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .rotate_left(31)
            ^ epoch.wrapping_add(0xD1B5_4A32_D192_ED03);
        let mut rng = seeded_rng(mixed);
        let mut order: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            let bound = u32::try_from(i + 1).expect("datasets are below 2^32 examples");
            let j = uniform_below(&mut rng, bound) as usize;
            order.swap(i, j);
        }
        order
    }

    /// Full batches of `batch_size` indices in `epoch`; a last partial batch
    /// is kept (as PyTorch's `DataLoader` does with `drop_last = False`).
    pub fn batches(&self, n: usize, batch_size: usize, epoch: u64) -> Vec<Vec<usize>> {
        assert!(batch_size > 0, "batch_size must be positive");
        self.permutation(n, epoch)
            .chunks(batch_size)
            .map(<[usize]>::to_vec)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permutation_is_a_permutation_and_varies_by_epoch_and_seed() {
        let order = EpochOrder::new(5);
        let p0 = order.permutation(100, 0);
        let mut sorted = p0.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..100).collect::<Vec<_>>());
        assert_eq!(p0, order.permutation(100, 0));
        assert_ne!(p0, order.permutation(100, 1));
        assert_ne!(p0, EpochOrder::new(6).permutation(100, 0));
    }

    #[test]
    fn batches_cover_every_example_once() {
        let batches = EpochOrder::new(1).batches(10, 4, 0);
        assert_eq!(batches.iter().map(Vec::len).collect::<Vec<_>>(), [4, 4, 2]);
        let mut all: Vec<usize> = batches.concat();
        all.sort_unstable();
        assert_eq!(all, (0..10).collect::<Vec<_>>());
    }
}
