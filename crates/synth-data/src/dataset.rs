//! Token sequences with their prediction targets, the one data type every task
//! produces.

use burn::data::dataset::{Dataset, DatasetError};
use serde::{Deserialize, Serialize};

/// A task parameter the caller got wrong.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TaskError {
    #[error("{field} = {value}: {allowed}")]
    Invalid {
        field: &'static str,
        value: String,
        allowed: String,
    },
}

pub(crate) fn invalid(
    field: &'static str,
    value: impl ToString,
    allowed: impl Into<String>,
) -> TaskError {
    TaskError::Invalid {
        field,
        value: value.to_string(),
        allowed: allowed.into(),
    }
}

/// `n` examples of `seq_len` tokens: at least one of each.
pub(crate) fn check_shape(n: usize, seq_len: usize) -> Result<(), TaskError> {
    if n == 0 {
        return Err(invalid("n", n, "at least 1 example"));
    }
    if seq_len == 0 {
        return Err(invalid("seq_len", seq_len, "at least 1"));
    }
    Ok(())
}

/// One example: `seq_len` tokens and its targets (token ids): one for a
/// classification task, one per position for next-token prediction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SequenceItem {
    pub tokens: Vec<u32>,
    pub targets: Vec<u32>,
}

/// `n` examples held in memory, row-major: `tokens` `[n, seq_len]`,
/// `targets` `[n, targets_per_example]`.
///
/// A classifier reads one target per example (`targets_per_example = 1`,
/// predicted from the last position); a language model one per position
/// (`targets_per_example = seq_len`, target `t` predicted at position `t`).
/// The model's logits `[C, B × targets_per_example, vocab]` line up with the
/// flattened targets of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SequenceDataset {
    tokens: Vec<u32>,
    targets: Vec<u32>,
    seq_len: usize,
    targets_per_example: usize,
    vocab: usize,
}

impl SequenceDataset {
    /// Panics unless the lengths agree: a task's constructor builds these.
    pub(crate) fn new(
        tokens: Vec<u32>,
        targets: Vec<u32>,
        seq_len: usize,
        targets_per_example: usize,
        vocab: usize,
    ) -> Self {
        assert!(seq_len > 0 && targets_per_example > 0);
        assert_eq!(tokens.len() % seq_len, 0);
        assert_eq!(
            tokens.len() / seq_len * targets_per_example,
            targets.len(),
            "one row of targets per example"
        );
        Self {
            tokens,
            targets,
            seq_len,
            targets_per_example,
            vocab,
        }
    }

    pub fn seq_len(&self) -> usize {
        self.seq_len
    }

    pub fn vocab(&self) -> usize {
        self.vocab
    }

    /// 1 for a classification task, `seq_len` for next-token prediction.
    pub fn targets_per_example(&self) -> usize {
        self.targets_per_example
    }

    /// Tokens of example `index`; panics when out of range like slice indexing.
    pub fn tokens_of(&self, index: usize) -> &[u32] {
        &self.tokens[index * self.seq_len..(index + 1) * self.seq_len]
    }

    /// The first `n` examples (all of them when `n >= len()`).
    pub fn take(&self, n: usize) -> Self {
        let n = n.min(self.tokens.len() / self.seq_len);
        Self {
            tokens: self.tokens[..n * self.seq_len].to_vec(),
            targets: self.targets[..n * self.targets_per_example].to_vec(),
            seq_len: self.seq_len,
            targets_per_example: self.targets_per_example,
            vocab: self.vocab,
        }
    }

    /// Targets of example `index`; panics when out of range.
    pub fn targets_of(&self, index: usize) -> &[u32] {
        let l = self.targets_per_example;
        &self.targets[index * l..(index + 1) * l]
    }
}

impl Dataset<SequenceItem> for SequenceDataset {
    /// Panics when `index >= len()`, as Burn's `Dataset` contract says.
    fn get(&self, index: usize) -> Result<SequenceItem, DatasetError> {
        Ok(SequenceItem {
            tokens: self.tokens_of(index).to_vec(),
            targets: self.targets_of(index).to_vec(),
        })
    }

    fn len(&self) -> usize {
        self.tokens.len() / self.seq_len
    }
}
