//! Synthetic tasks for lrscape, deterministic from a seed.
//!
//! The seed study's task is [`retrieve_at_k`]: a sequence of uniform random
//! tokens whose label is the token at position `k`. Pre-training uses one `k`
//! and fine-tuning another, so the fine-tuning task is a *shift* of the
//! pre-training one: the model must learn to read a different position.
//!
//! Everything random here comes from [`rand_chacha::ChaCha8Rng`], whose stream
//! is specified by the ChaCha algorithm and does not change between platforms
//! or crate versions, and integers are drawn from it by the rejection rule in
//! [`uniform_below`]. So a seed names the same data everywhere; nothing here
//! depends on a Burn backend's RNG.
//!
//! The language-modelling task is [`markov_lm`]: sequences from a random
//! sparse [`MarkovChain`], every position's next token a target. Pre-training
//! uses one chain, fine-tuning the chain with some rows redrawn
//! ([`MarkovChain::shifted`]), so the model must relearn what follows those
//! tokens; [`MarkovChain::optimum`] is the best loss any model can reach.
//!
//! Both tasks produce a [`SequenceDataset`] (tokens and targets). Batches are
//! assembled by [`SequenceBatcher`] (Burn's [`Batcher`] trait) on any device;
//! [`EpochOrder`] gives the per-epoch shuffles of a population, one
//! permutation per member seed.

mod batch;
mod dataset;
mod markov;
mod order;
mod retrieval;

pub use batch::{SequenceBatch, SequenceBatcher};
pub use dataset::{IGNORE, SequenceDataset, SequenceItem, TaskError};
pub use markov::{MAX_WEIGHT, MarkovChain, Optimum, markov_lm};
pub use order::EpochOrder;
pub use retrieval::retrieve_at_k;

use rand_chacha::ChaCha8Rng;
use rand_core::{Rng, SeedableRng};

pub use burn::data::dataloader::batcher::Batcher;
pub use burn::data::dataset::Dataset;

/// The RNG every synthetic draw uses: ChaCha with 8 rounds, seeded by a `u64`
/// through `SeedableRng::seed_from_u64` (PCG32 key expansion, specified by
/// `rand_core`).
pub fn seeded_rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

/// A uniform integer in `[0, n)` by rejection on 32-bit draws, so that every
/// value is exactly equally likely and the rule is simple to reimplement
/// elsewhere: draw `u = next_u32()`, reject while `u >= zone` with
/// `zone = 2^32 - (2^32 mod n)`, return `u mod n`.
pub fn uniform_below(rng: &mut ChaCha8Rng, n: u32) -> u32 {
    assert!(n > 0, "uniform_below needs n > 0");
    let n64 = u64::from(n);
    let zone = (1u64 << 32) - ((1u64 << 32) % n64);
    loop {
        let u = u64::from(rng.next_u32());
        if u < zone {
            return (u % n64) as u32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uniform_below_stays_in_range_and_covers_it() {
        let mut rng = seeded_rng(7);
        let mut seen = [0usize; 5];
        for _ in 0..5000 {
            seen[uniform_below(&mut rng, 5) as usize] += 1;
        }
        for count in seen {
            // 1000 expected per bucket; 5 sigma is about 140.
            assert!((860..=1140).contains(&count), "bucket count {count}");
        }
    }

    #[test]
    fn seeded_rng_is_deterministic_and_seed_sensitive() {
        let mut rng = seeded_rng(0);
        let first: Vec<u32> = (0..3).map(|_| rng.next_u32()).collect();
        let mut again = seeded_rng(0);
        let second: Vec<u32> = (0..3).map(|_| again.next_u32()).collect();
        assert_eq!(first, second);
        assert_ne!(first, {
            let mut other = seeded_rng(1);
            (0..3).map(|_| other.next_u32()).collect::<Vec<_>>()
        });
    }
}
