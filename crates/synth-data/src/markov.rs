//! A language-modelling task: sequences from a random sparse Markov chain,
//! and a fine-tuning shift that redraws some of its rows.
//!
//! Every token has `branching` possible successors with integer weights, so
//! sampling is exact integer arithmetic on [`uniform_below`] draws (portable
//! bit for bit) and the best any model can do is known in closed form
//! ([`MarkovChain::optimum`]): the floor under a trained model's loss.

use crate::dataset::{check_shape, invalid};
use crate::{SequenceDataset, TaskError, seeded_rng, uniform_below};
use rand_chacha::ChaCha8Rng;

/// Largest successor weight: weights are uniform in `1..=MAX_WEIGHT`, so a
/// token's successors are neither all alike nor one of them certain.
pub const MAX_WEIGHT: u32 = 64;

/// The successors of one token and their weights.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Row {
    next: Vec<u32>,
    weights: Vec<u32>,
}

impl Row {
    /// `branching` distinct successors (a partial Fisher–Yates shuffle of
    /// `0..vocab`), then one weight each.
    fn draw(vocab: u32, branching: usize, rng: &mut ChaCha8Rng) -> Self {
        let mut pool: Vec<u32> = (0..vocab).collect();
        for i in 0..branching {
            let j = i + uniform_below(rng, vocab - i as u32) as usize;
            pool.swap(i, j);
        }
        pool.truncate(branching);
        let weights = (0..branching)
            .map(|_| 1 + uniform_below(rng, MAX_WEIGHT))
            .collect();
        Self {
            next: pool,
            weights,
        }
    }

    fn total(&self) -> u32 {
        self.weights.iter().sum()
    }

    fn sample(&self, rng: &mut ChaCha8Rng) -> u32 {
        let mut u = uniform_below(rng, self.total());
        for (&token, &w) in self.next.iter().zip(&self.weights) {
            if u < w {
                return token;
            }
            u -= w;
        }
        unreachable!("u < total weight")
    }

    fn probabilities(&self) -> impl Iterator<Item = (u32, f64)> + '_ {
        let total = f64::from(self.total());
        self.next
            .iter()
            .zip(&self.weights)
            .map(move |(&t, &w)| (t, f64::from(w) / total))
    }
}

/// A first-order Markov chain over the tokens `0..vocab`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarkovChain {
    rows: Vec<Row>,
}

/// The best possible next-token prediction on sequences of a chain: the
/// expected loss and accuracy of predicting with the chain itself.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Optimum {
    /// Mean cross-entropy per target, in nats.
    pub loss: f64,
    /// Mean probability that the most likely successor is the next token.
    pub accuracy: f64,
}

impl Optimum {
    /// `exp(loss)`: the lowest validation perplexity a model can reach.
    pub fn perplexity(&self) -> f64 {
        self.loss.exp()
    }
}

fn check_vocab(vocab: usize) -> Result<u32, TaskError> {
    if vocab < 2 {
        return Err(invalid("vocab", vocab, "at least 2 tokens"));
    }
    u32::try_from(vocab).map_err(|_| invalid("vocab", vocab, format!("at most {}", u32::MAX)))
}

impl MarkovChain {
    /// Rows drawn in token order from [`seeded_rng`]`(seed)`, each by
    /// `Row::draw`: `branching` successors, weights in `1..=MAX_WEIGHT`.
    pub fn random(vocab: usize, branching: usize, seed: u64) -> Result<Self, TaskError> {
        let v = check_vocab(vocab)?;
        if branching == 0 || branching > vocab {
            return Err(invalid(
                "branching",
                branching,
                format!("between 1 and vocab = {vocab}"),
            ));
        }
        let mut rng = seeded_rng(seed);
        let rows = (0..vocab)
            .map(|_| Row::draw(v, branching, &mut rng))
            .collect();
        Ok(Self { rows })
    }

    pub fn vocab(&self) -> usize {
        self.rows.len()
    }

    /// Successors per token.
    pub fn branching(&self) -> usize {
        self.rows.first().map_or(0, |r| r.next.len())
    }

    /// The fine-tuning chain: `round(fraction × vocab)` rows, the first of a
    /// Fisher–Yates shuffle of the tokens by [`seeded_rng`]`(seed)`, redrawn
    /// from the same stream (in that order); the other rows are kept. Returns
    /// the chain and the redrawn tokens, ascending.
    pub fn shifted(&self, fraction: f64, seed: u64) -> Result<(Self, Vec<u32>), TaskError> {
        if !(0.0..=1.0).contains(&fraction) {
            return Err(invalid("shift", fraction, "a fraction in [0, 1]"));
        }
        let vocab = self.vocab();
        let v = check_vocab(vocab)?;
        let m = (fraction * vocab as f64).round() as usize;
        let mut rng = seeded_rng(seed);
        let mut order: Vec<u32> = (0..v).collect();
        for i in 0..m {
            let j = i + uniform_below(&mut rng, v - i as u32) as usize;
            order.swap(i, j);
        }
        let mut changed = order[..m].to_vec();
        let mut rows = self.rows.clone();
        for &token in &changed {
            rows[token as usize] = Row::draw(v, self.branching(), &mut rng);
        }
        changed.sort_unstable();
        Ok((Self { rows }, changed))
    }

    /// `P(next | token)` for every successor of `token`.
    pub fn successors(&self, token: u32) -> Vec<(u32, f64)> {
        self.rows[token as usize].probabilities().collect()
    }

    /// The expected loss and accuracy of the chain's own predictions on its
    /// sequences of `seq_len` targets, the first token uniform: target `t`
    /// follows token `t`, distributed as `uniform · Pᵗ`; averaged over `t`.
    pub fn optimum(&self, seq_len: usize) -> Optimum {
        let vocab = self.vocab();
        let entropy: Vec<f64> = self
            .rows
            .iter()
            .map(|r| r.probabilities().map(|(_, p)| -p * p.ln()).sum())
            .collect();
        let top: Vec<f64> = self
            .rows
            .iter()
            .map(|r| r.probabilities().map(|(_, p)| p).fold(0.0, f64::max))
            .collect();
        let mut dist = vec![1.0 / vocab as f64; vocab];
        let (mut loss, mut accuracy) = (0.0, 0.0);
        for _ in 0..seq_len {
            loss += dist.iter().zip(&entropy).map(|(p, h)| p * h).sum::<f64>();
            accuracy += dist.iter().zip(&top).map(|(p, a)| p * a).sum::<f64>();
            let mut next = vec![0.0; vocab];
            for (s, &p) in dist.iter().enumerate() {
                for (t, q) in self.rows[s].probabilities() {
                    next[t as usize] += p * q;
                }
            }
            dist = next;
        }
        let n = seq_len.max(1) as f64;
        Optimum {
            loss: loss / n,
            accuracy: accuracy / n,
        }
    }
}

/// `n` sequences of `seq_len + 1` tokens from `chain`, the first token
/// uniform, drawn from [`seeded_rng`]`(seed)` row by row, left to right.
/// The model reads the first `seq_len` tokens and predicts, at each position
/// `t`, token `t + 1`: `targets_per_example = seq_len`.
pub fn markov_lm(
    chain: &MarkovChain,
    n: usize,
    seq_len: usize,
    seed: u64,
) -> Result<SequenceDataset, TaskError> {
    check_shape(n, seq_len)?;
    let vocab = chain.vocab();
    let v = check_vocab(vocab)?;
    let mut rng = seeded_rng(seed);
    let mut tokens = Vec::with_capacity(n * seq_len);
    let mut targets = Vec::with_capacity(n * seq_len);
    for _ in 0..n {
        let mut current = uniform_below(&mut rng, v);
        for _ in 0..seq_len {
            let next = chain.rows[current as usize].sample(&mut rng);
            tokens.push(current);
            targets.push(next);
            current = next;
        }
    }
    SequenceDataset::new(tokens, targets, seq_len, seq_len, vocab)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_have_distinct_successors_and_sequences_follow_them() {
        let chain = MarkovChain::random(16, 3, 4).unwrap();
        assert_eq!((chain.vocab(), chain.branching()), (16, 3));
        for token in 0..16 {
            let succ = chain.successors(token);
            let mut next: Vec<u32> = succ.iter().map(|s| s.0).collect();
            next.sort_unstable();
            next.dedup();
            assert_eq!(next.len(), 3);
            let total: f64 = succ.iter().map(|s| s.1).sum();
            assert!((total - 1.0).abs() < 1e-12);
        }
        let data = markov_lm(&chain, 20, 10, 5).unwrap();
        assert_eq!(data.targets_per_example(), 10);
        for i in 0..20 {
            let (tokens, targets) = (data.tokens_of(i), data.targets_of(i));
            // Targets are the tokens shifted by one.
            assert_eq!(&tokens[1..], &targets[..9]);
            for (&a, &b) in tokens.iter().zip(targets) {
                assert!(chain.successors(a).iter().any(|s| s.0 == b), "{a} -> {b}");
            }
        }
    }

    #[test]
    fn successor_frequencies_match_the_weights() {
        let chain = MarkovChain::random(4, 4, 9).unwrap();
        let data = markov_lm(&chain, 2000, 16, 1).unwrap();
        let mut counts = [[0usize; 4]; 4];
        for i in 0..2000 {
            for (&a, &b) in data.tokens_of(i).iter().zip(data.targets_of(i)) {
                counts[a as usize][b as usize] += 1;
            }
        }
        let mut chi2 = 0.0;
        for (a, row) in counts.iter().enumerate() {
            let n: usize = row.iter().sum();
            for (b, p) in chain.successors(a as u32) {
                let expected = n as f64 * p;
                chi2 += (row[b as usize] as f64 - expected).powi(2) / expected;
            }
        }
        // 4 rows × 3 dof = 12 dof; P(chi2 > 40) < 1e-4.
        assert!(chi2 < 40.0, "chi2 = {chi2}");
    }

    #[test]
    fn shift_redraws_exactly_the_named_rows() {
        let chain = MarkovChain::random(20, 4, 0).unwrap();
        let (shifted, changed) = chain.shifted(0.25, 1).unwrap();
        assert_eq!(changed.len(), 5);
        for token in 0..20u32 {
            let same = chain.successors(token) == shifted.successors(token);
            assert_eq!(same, !changed.contains(&token), "token {token}");
        }
        assert_eq!(chain.shifted(0.25, 1).unwrap().1, changed);
        assert_ne!(chain.shifted(0.25, 2).unwrap().1, changed);
        assert_eq!(chain.shifted(0.0, 1).unwrap().0, chain);
        assert_eq!(chain.shifted(1.0, 1).unwrap().1.len(), 20);
    }

    #[test]
    fn optimum_matches_the_loss_of_the_true_chain_on_samples() {
        // The closed form against a Monte Carlo estimate: the chain's own
        // log-loss averaged over sampled targets.
        let chain = MarkovChain::random(12, 3, 2).unwrap();
        let seq_len = 8;
        let optimum = chain.optimum(seq_len);
        let data = markov_lm(&chain, 4000, seq_len, 3).unwrap();
        let (mut loss, mut hits, mut n) = (0.0, 0usize, 0usize);
        for i in 0..4000 {
            for (&a, &b) in data.tokens_of(i).iter().zip(data.targets_of(i)) {
                let succ = chain.successors(a);
                let p = succ.iter().find(|s| s.0 == b).unwrap().1;
                loss -= p.ln();
                let best = succ.iter().max_by(|x, y| x.1.total_cmp(&y.1)).unwrap().0;
                hits += usize::from(best == b);
                n += 1;
            }
        }
        let (mc_loss, mc_acc) = (loss / n as f64, hits as f64 / n as f64);
        assert!(
            (mc_loss - optimum.loss).abs() < 0.02,
            "{mc_loss} vs {optimum:?}"
        );
        assert!(
            (mc_acc - optimum.accuracy).abs() < 0.02,
            "{mc_acc} vs {optimum:?}"
        );
        assert!(optimum.perplexity() > 1.0 && optimum.perplexity() < 3.0);
    }

    #[test]
    fn same_seed_same_data_and_bad_parameters_are_named() {
        let chain = MarkovChain::random(8, 2, 0).unwrap();
        assert_eq!(chain, MarkovChain::random(8, 2, 0).unwrap());
        assert_ne!(chain, MarkovChain::random(8, 2, 1).unwrap());
        assert_eq!(
            markov_lm(&chain, 3, 5, 7).unwrap(),
            markov_lm(&chain, 3, 5, 7).unwrap()
        );
        let err = MarkovChain::random(8, 9, 0).unwrap_err().to_string();
        assert!(
            err.contains("branching = 9") && err.contains("vocab = 8"),
            "{err}"
        );
        let err = MarkovChain::random(1, 1, 0).unwrap_err().to_string();
        assert!(err.contains("vocab = 1"), "{err}");
        let err = chain.shifted(1.5, 0).unwrap_err().to_string();
        assert!(err.contains("shift = 1.5"), "{err}");
        let err = markov_lm(&chain, 0, 5, 0).unwrap_err().to_string();
        assert!(err.contains("n = 0"), "{err}");
    }
}
