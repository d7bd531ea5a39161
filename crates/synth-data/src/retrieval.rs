//! The retrieve-at-k task of the seed study.

use crate::dataset::{check_shape, invalid};
use crate::{SequenceDataset, TaskError, seeded_rng, uniform_below};

/// `n` sequences of `seq_len` tokens, each uniform in `[0, vocab)`, labelled
/// with the token at position `k` (0-based), drawn from `seed`.
///
/// Tokens are drawn row by row, left to right, with [`uniform_below`] on
/// [`seeded_rng`]`(seed)`: the data depend on nothing but these five numbers.
pub fn retrieve_at_k(
    n: usize,
    seq_len: usize,
    vocab: usize,
    k: usize,
    seed: u64,
) -> Result<SequenceDataset, TaskError> {
    check_shape(n, seq_len)?;
    if vocab < 2 {
        return Err(invalid("vocab", vocab, "at least 2 tokens"));
    }
    let vocab_u32 = u32::try_from(vocab)
        .map_err(|_| invalid("vocab", vocab, format!("at most {}", u32::MAX)))?;
    if k >= seq_len {
        return Err(invalid(
            "k",
            k,
            format!("a position in 0..{seq_len} (k < seq_len = {seq_len})"),
        ));
    }
    let mut rng = seeded_rng(seed);
    let tokens: Vec<u32> = (0..n * seq_len)
        .map(|_| uniform_below(&mut rng, vocab_u32))
        .collect();
    let targets = tokens.chunks_exact(seq_len).map(|row| row[k]).collect();
    SequenceDataset::new(tokens, targets, seq_len, 1, vocab)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::data::dataset::Dataset;

    #[test]
    fn label_is_the_token_at_k() {
        let data = retrieve_at_k(50, 8, 10, 3, 1).unwrap();
        assert_eq!(data.len(), 50);
        for i in 0..data.len() {
            let item = data.get(i).unwrap();
            assert_eq!(item.tokens.len(), 8);
            assert_eq!(item.targets, vec![item.tokens[3]]);
            assert!(item.tokens.iter().all(|&t| t < 10));
        }
    }

    #[test]
    fn same_seed_same_data_other_seed_other_data() {
        let a = retrieve_at_k(20, 6, 64, 2, 11).unwrap();
        let b = retrieve_at_k(20, 6, 64, 2, 11).unwrap();
        let c = retrieve_at_k(20, 6, 64, 2, 12).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn tokens_are_close_to_uniform() {
        let data = retrieve_at_k(2000, 32, 64, 5, 0).unwrap();
        let mut counts = [0usize; 64];
        for i in 0..data.len() {
            for &t in data.tokens_of(i) {
                counts[t as usize] += 1;
            }
        }
        // 1000 per token expected; a chi-square over 63 dof rarely exceeds 110.
        let chi2: f64 = counts
            .iter()
            .map(|&c| (c as f64 - 1000.0).powi(2) / 1000.0)
            .sum();
        assert!(chi2 < 110.0, "chi2 = {chi2}");
    }

    #[test]
    fn bad_parameters_are_named() {
        let err = retrieve_at_k(10, 8, 64, 8, 0).unwrap_err().to_string();
        assert!(err.contains("k = 8") && err.contains("seq_len"), "{err}");
        let err = retrieve_at_k(10, 0, 64, 0, 0).unwrap_err().to_string();
        assert!(err.contains("seq_len = 0"), "{err}");
        let err = retrieve_at_k(10, 8, 1, 0, 0).unwrap_err().to_string();
        assert!(err.contains("vocab = 1"), "{err}");
        let err = retrieve_at_k(0, 8, 64, 0, 0).unwrap_err().to_string();
        assert!(err.contains("n = 0"), "{err}");
    }
}
