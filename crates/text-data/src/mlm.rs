//! Masked language modelling, as `transformers`' `DataCollatorForLanguageModeling`
//! masks: 15% of the tokens that are not special are chosen; of those 80%
//! become `[MASK]`, 10% a token drawn uniformly from the vocabulary and 10%
//! stay; the chosen positions are the targets (their original tokens),
//! every other position is `IGNORE`d. Text is tokenized whole and cut into
//! blocks of `max_length - 2` tokens, each wrapped in `[CLS] … [SEP]` as
//! the tokenizer's post-processor does. A split holds `copies` maskings of
//! every block, drawn from a seed: one per epoch gives each pass fresh
//! masks (as the collator's dynamic masking does), and a split is the same
//! in every run.

use synth_data::{IGNORE, SequenceDataset, seeded_rng, uniform_below};

use crate::{TextError, TextTokenizer};

/// The special tokens masking needs, by the names BERT's tokenizers give
/// them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MlmTokens {
    pub cls: u32,
    pub sep: u32,
    pub mask: u32,
}

impl MlmTokens {
    /// `[CLS]`, `[SEP]` and `[MASK]` of `tokenizer`; an error names the
    /// one it lacks.
    pub fn of(tokenizer: &TextTokenizer) -> Result<Self, TextError> {
        let id =
            |token: &str| {
                tokenizer.token_to_id(token).ok_or_else(|| TextError::Encode {
                origin: tokenizer.origin().to_string(),
                message: format!(
                    "no {token} token: masked language modelling needs [CLS], [SEP] and [MASK]"
                ),
            })
            };
        Ok(Self {
            cls: id("[CLS]")?,
            sep: id("[SEP]")?,
            mask: id("[MASK]")?,
        })
    }
}

/// What one position becomes, from its draws: `select` in `0..100` (chosen
/// below 15), `kind` in `0..10` (`[MASK]` below 8, a random token at 8,
/// kept at 9), `random` the token drawn for it. Returns `(input, target)`.
pub fn mask_position(token: u32, select: u32, kind: u32, random: u32, mask: u32) -> (u32, u32) {
    if select >= 15 {
        return (token, IGNORE);
    }
    let input = match kind {
        0..=7 => mask,
        8 => random,
        _ => token,
    };
    (input, token)
}

/// The masked blocks of `text`: `[CLS]`, `max_length - 2` tokens, `[SEP]`
/// each (the remainder dropped), every block `copies` times, masks drawn
/// from `seed`.
pub fn masked_lm(
    tokenizer: &TextTokenizer,
    text: &str,
    (max_length, copies): (usize, usize),
    seed: u64,
    origin: &str,
) -> Result<SequenceDataset, TextError> {
    if max_length < 3 {
        return Err(TextError::Encode {
            origin: origin.to_string(),
            message: format!(
                "max_length = {max_length}: at least 3 ([CLS], a token and [SEP]) for masked \
                 language modelling"
            ),
        });
    }
    let special = MlmTokens::of(tokenizer)?;
    let vocab = tokenizer.vocab_size();
    let ids = tokenizer.encode(text)?;
    let body = max_length - 2;
    if ids.len() < body {
        return Err(TextError::TooShort {
            origin: origin.to_string(),
            tokens: ids.len(),
            block_size: max_length,
        });
    }
    let mut rng = seeded_rng(seed);
    let blocks = copies * (ids.len() / body);
    let mut tokens = Vec::with_capacity(blocks * max_length);
    let mut targets = Vec::with_capacity(blocks * max_length);
    let every = (0..copies).flat_map(|_| ids.chunks_exact(body));
    for block in every {
        tokens.push(special.cls);
        targets.push(IGNORE);
        for &token in block {
            let select = uniform_below(&mut rng, 100);
            let kind = uniform_below(&mut rng, 10);
            let random = uniform_below(&mut rng, vocab as u32);
            let (input, target) = mask_position(token, select, kind, random, special.mask);
            tokens.push(input);
            targets.push(target);
        }
        tokens.push(special.sep);
        targets.push(IGNORE);
    }
    SequenceDataset::new(tokens, targets, max_length, max_length, vocab).map_err(|e| {
        TextError::Encode {
            origin: origin.to_string(),
            message: e.to_string(),
        }
    })
}

#[cfg(test)]
mod tests {
    use synth_data::Dataset;

    use super::*;

    #[test]
    fn the_rule_by_hand() {
        let mask = 4;
        // Not chosen: kept, not scored.
        assert_eq!(mask_position(17, 15, 0, 9, mask), (17, IGNORE));
        assert_eq!(mask_position(17, 99, 8, 9, mask), (17, IGNORE));
        // Chosen: [MASK] for kinds 0-7, the random token for 8, kept for 9;
        // scored against the original each time.
        assert_eq!(mask_position(17, 0, 0, 9, mask), (mask, 17));
        assert_eq!(mask_position(17, 14, 7, 9, mask), (mask, 17));
        assert_eq!(mask_position(17, 3, 8, 9, mask), (9, 17));
        assert_eq!(mask_position(17, 3, 9, 9, mask), (17, 17));
    }

    fn tokenizer() -> TextTokenizer {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fixtures/bert/tiny-bert/tokenizer.json");
        TextTokenizer::from_file(&path).unwrap()
    }

    #[test]
    fn blocks_are_wrapped_and_a_seed_masks_as_the_rule_says() {
        let tokenizer = tokenizer();
        let text = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../fixtures/text/genesis-train.txt"),
        )
        .unwrap();
        let data = masked_lm(&tokenizer, &text, (16, 1), 7, "genesis").unwrap();
        let ids = tokenizer.encode(&text).unwrap();
        assert_eq!(data.len(), ids.len() / 14);
        let special = MlmTokens::of(&tokenizer).unwrap();
        let (mut chosen, mut masked, mut kept, mut total) = (0, 0, 0, 0);
        for i in 0..data.len() {
            let item = data.get(i).unwrap();
            assert_eq!(item.tokens[0], special.cls);
            assert_eq!(item.tokens[15], special.sep);
            assert_eq!((item.targets[0], item.targets[15]), (IGNORE, IGNORE));
            for p in 1..15 {
                let original = ids[i * 14 + p - 1];
                total += 1;
                if item.targets[p] == IGNORE {
                    assert_eq!(item.tokens[p], original, "unchosen tokens stay");
                    continue;
                }
                assert_eq!(item.targets[p], original, "a chosen token is its target");
                chosen += 1;
                masked += usize::from(item.tokens[p] == special.mask);
                kept += usize::from(item.tokens[p] == original);
            }
        }
        // The shares of a few thousand draws: 15% chosen, 80% of them
        // masked, about 10% kept (a random token may also be the original).
        let share = |a: usize, b: usize| a as f64 / b as f64;
        assert!(
            (share(chosen, total) - 0.15).abs() < 0.02,
            "{chosen}/{total}"
        );
        assert!(
            (share(masked, chosen) - 0.8).abs() < 0.05,
            "{masked}/{chosen}"
        );
        assert!((share(kept, chosen) - 0.1).abs() < 0.05, "{kept}/{chosen}");
        // The same seed, the same masks; another, others.
        assert_eq!(masked_lm(&tokenizer, &text, (16, 1), 7, "g").unwrap(), data);
        assert_ne!(masked_lm(&tokenizer, &text, (16, 1), 8, "g").unwrap(), data);
        // Two copies: the blocks twice, masked afresh.
        let twice = masked_lm(&tokenizer, &text, (16, 2), 7, "g").unwrap();
        assert_eq!(twice.len(), 2 * data.len());
        let n = data.len();
        for i in 0..n {
            let (a, b) = (twice.get(i).unwrap(), twice.get(n + i).unwrap());
            assert_eq!(
                a,
                data.get(i).unwrap(),
                "the first copy is the one-copy split"
            );
            let unmasked = |item: &synth_data::SequenceItem| -> Vec<u32> {
                item.tokens
                    .iter()
                    .zip(&item.targets)
                    .map(|(&t, &y)| if y == IGNORE { t } else { y })
                    .collect()
            };
            assert_eq!(unmasked(&a), unmasked(&b), "the same block");
        }
        assert!((0..n).any(|i| twice.get(i).unwrap().targets != twice.get(n + i).unwrap().targets));
        let err = masked_lm(&tokenizer, "In the", (16, 1), 7, "short").unwrap_err();
        assert!(err.to_string().contains("fewer than one block"), "{err}");
    }
}
