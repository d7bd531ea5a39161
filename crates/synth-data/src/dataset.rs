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

/// A target that is not scored (HF's `-100` label): a prompt token of an
/// instruction, padding. Neither loss nor accuracy counts it.
pub const IGNORE: u32 = u32::MAX;

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
/// flattened targets of a batch. A target may be [`IGNORE`]: not scored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SequenceDataset {
    tokens: Vec<u32>,
    targets: Vec<u32>,
    seq_len: usize,
    targets_per_example: usize,
    vocab: usize,
    /// Targets equal to [`IGNORE`].
    ignored: usize,
}

impl SequenceDataset {
    /// A dataset of examples of `seq_len` tokens, each with
    /// `targets_per_example` targets (1 for a classifier, `seq_len` for a
    /// language model), every id below `vocab`. Any other shape is an error
    /// naming the field, so a loader of user data (text, a tokenizer's ids)
    /// can build one from what it read.
    pub fn new(
        tokens: Vec<u32>,
        targets: Vec<u32>,
        seq_len: usize,
        targets_per_example: usize,
        vocab: usize,
    ) -> Result<Self, TaskError> {
        if seq_len == 0 {
            return Err(invalid("seq_len", seq_len, "at least 1"));
        }
        if targets_per_example == 0 {
            return Err(invalid("targets_per_example", 0, "at least 1"));
        }
        if !tokens.len().is_multiple_of(seq_len) {
            return Err(invalid(
                "tokens",
                format!("{} tokens", tokens.len()),
                format!("whole examples of seq_len = {seq_len} tokens"),
            ));
        }
        let examples = tokens.len() / seq_len;
        if targets.len() != examples * targets_per_example {
            return Err(invalid(
                "targets",
                format!("{} targets", targets.len()),
                format!(
                    "{targets_per_example} per example, {} for {examples} examples",
                    examples * targets_per_example
                ),
            ));
        }
        if let Some(&id) = tokens
            .iter()
            .chain(targets.iter().filter(|&&t| t != IGNORE))
            .find(|&&id| id as usize >= vocab)
        {
            return Err(invalid("token id", id, format!("below vocab = {vocab}")));
        }
        let ignored = targets.iter().filter(|&&t| t == IGNORE).count();
        Ok(Self {
            tokens,
            targets,
            seq_len,
            targets_per_example,
            vocab,
            ignored,
        })
    }

    /// Whether some targets are [`IGNORE`]d.
    pub fn has_ignored(&self) -> bool {
        self.ignored > 0
    }

    /// Targets that are scored (not [`IGNORE`]).
    pub fn scored_targets(&self) -> usize {
        self.targets.len() - self.ignored
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
        let targets = self.targets[..n * self.targets_per_example].to_vec();
        Self {
            tokens: self.tokens[..n * self.seq_len].to_vec(),
            ignored: targets.iter().filter(|&&t| t == IGNORE).count(),
            targets,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dataset_of_any_other_shape_is_an_error_naming_the_field() {
        let ok = SequenceDataset::new(vec![1, 2, 3, 0, 1, 2], vec![3, 0], 3, 1, 4).unwrap();
        assert_eq!((ok.len(), ok.tokens_of(1)), (2, &[0, 1, 2][..]));
        let lm = SequenceDataset::new(vec![1, 2], vec![2, 3], 2, 2, 4).unwrap();
        assert_eq!(lm.targets_per_example(), 2);
        let err = |r: Result<SequenceDataset, TaskError>| r.unwrap_err().to_string();
        assert_eq!(
            err(SequenceDataset::new(vec![1, 2, 3], vec![0], 2, 1, 4)),
            "tokens = 3 tokens: whole examples of seq_len = 2 tokens"
        );
        assert_eq!(
            err(SequenceDataset::new(vec![1, 2], vec![0], 2, 2, 4)),
            "targets = 1 targets: 2 per example, 2 for 1 examples"
        );
        assert_eq!(
            err(SequenceDataset::new(vec![1, 4], vec![0], 2, 1, 4)),
            "token id = 4: below vocab = 4"
        );
        assert!(err(SequenceDataset::new(vec![], vec![], 0, 1, 4)).starts_with("seq_len = 0"));
        assert!(
            err(SequenceDataset::new(vec![1], vec![], 1, 0, 4)).starts_with("targets_per_example")
        );
        // A target may be left unscored; a token may not.
        let masked = SequenceDataset::new(vec![1, 2], vec![IGNORE, 3], 2, 2, 4).unwrap();
        assert!(masked.has_ignored());
        assert_eq!(masked.scored_targets(), 1);
        assert!(!lm.has_ignored());
        assert_eq!(
            err(SequenceDataset::new(vec![IGNORE, 2], vec![1, 3], 2, 2, 4)),
            format!("token id = {IGNORE}: below vocab = 4")
        );
    }
}
