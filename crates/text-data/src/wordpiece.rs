//! Training a BERT WordPiece vocabulary, deterministically.
//!
//! The `tokenizers` crate's `WordPieceTrainer` numbers continuation symbols
//! (`##x`) in hash-map order and breaks ties between equally frequent
//! merges by those numbers, so two trainings on one text differ; a base
//! pre-trained here must get the same tokenizer on every machine. This is
//! the same algorithm (BPE over words, a word's later symbols prefixed
//! `##`, merges of at least 2 occurrences) with ties broken by the
//! symbols' text. Texts are normalized and split as BERT's tokenizers do
//! (the `tokenizers` crate's `BertNormalizer` and `BertPreTokenizer`).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use tokenizers::normalizers::bert::BertNormalizer;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::{
    NormalizedString, Normalizer, OffsetReferential, OffsetType, PreTokenizedString, PreTokenizer,
};

use crate::TextError;

const PREFIX: &str = "##";

/// Words of `texts` after BERT's normalizer (lower case) and
/// pre-tokenizer, with their counts.
fn word_counts(texts: &[&str]) -> Result<BTreeMap<String, u64>, TextError> {
    let normalizer = BertNormalizer::new(true, true, None, true);
    let mut counts = BTreeMap::new();
    for text in texts {
        let mut normalized = NormalizedString::from(*text);
        normalizer
            .normalize(&mut normalized)
            .map_err(|e| TextError::Training(e.to_string()))?;
        let mut words = PreTokenizedString::from(normalized);
        BertPreTokenizer
            .pre_tokenize(&mut words)
            .map_err(|e| TextError::Training(e.to_string()))?;
        for (word, _, _) in words.get_splits(OffsetReferential::Original, OffsetType::Char) {
            *counts.entry(word.to_string()).or_insert(0) += 1;
        }
    }
    Ok(counts)
}

/// The vocabulary, in id order: `special`, every character of the text,
/// then `##` + each character that follows another in a word (each set
/// sorted), then merges until `vocab_size` tokens or no pair occurs twice.
/// The most frequent pair of symbols is merged first, a tie to the pair of
/// lowest ids (as the `tokenizers` trainer orders its queue).
pub fn train_vocab(
    texts: &[&str],
    vocab_size: usize,
    special: &[&str],
) -> Result<Vec<String>, TextError> {
    let counts = word_counts(texts)?;
    let mut vocab: Vec<String> = special.iter().map(|s| s.to_string()).collect();
    let (mut chars, mut laters) = (BTreeSet::new(), BTreeSet::new());
    for word in counts.keys() {
        for (i, c) in word.chars().enumerate() {
            chars.insert(c.to_string());
            if i > 0 {
                laters.insert(format!("{PREFIX}{c}"));
            }
        }
    }
    vocab.extend(chars);
    vocab.extend(laters);
    let mut ids: HashMap<String, u32> = vocab
        .iter()
        .enumerate()
        .map(|(id, token)| (token.clone(), id as u32))
        .collect();
    // Each word as its symbols' ids, with its count.
    let mut words: Vec<(Vec<u32>, u64)> = counts
        .iter()
        .map(|(word, &count)| {
            let symbols = word
                .chars()
                .enumerate()
                .map(|(i, c)| {
                    let symbol = if i == 0 {
                        c.to_string()
                    } else {
                        format!("{PREFIX}{c}")
                    };
                    ids[&symbol]
                })
                .collect();
            (symbols, count)
        })
        .collect();
    while vocab.len() < vocab_size {
        let mut pairs: HashMap<(u32, u32), u64> = HashMap::new();
        for (symbols, count) in &words {
            for pair in symbols.windows(2) {
                *pairs.entry((pair[0], pair[1])).or_insert(0) += count;
            }
        }
        let best = pairs
            .into_iter()
            .filter(|&(_, n)| n >= 2)
            .max_by(|(a, n), (b, m)| n.cmp(m).then_with(|| b.cmp(a)));
        let Some(((left, right), _)) = best else {
            break;
        };
        let tail = &vocab[right as usize];
        let merged = format!(
            "{}{}",
            vocab[left as usize],
            tail.strip_prefix(PREFIX).unwrap_or(tail)
        );
        let id = match ids.get(&merged) {
            Some(&id) => id,
            None => {
                let id = vocab.len() as u32;
                ids.insert(merged.clone(), id);
                vocab.push(merged);
                id
            }
        };
        for (symbols, _) in &mut words {
            let mut i = 0;
            while i + 1 < symbols.len() {
                if symbols[i] == left && symbols[i + 1] == right {
                    symbols[i] = id;
                    symbols.remove(i + 1);
                }
                i += 1;
            }
        }
    }
    Ok(vocab)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_by_hand() {
        // "aab" ×3, "ab" ×2: symbols a 1, b 2, ##a 3, ##b 4; pairs (a, ##a)
        // 3, (##a, ##b) 3, (a, ##b) 2: the tie of 3 goes to the lower ids,
        // (1, 3): "aa" first; then (aa, ##b) 3 -> "aab", then (a, ##b) 2 ->
        // "ab".
        let texts = ["aab aab aab ab ab"];
        let vocab = train_vocab(&texts, 100, &["[PAD]"]).unwrap();
        assert_eq!(vocab, ["[PAD]", "a", "b", "##a", "##b", "aa", "aab", "ab"]);
        // A size cap stops the merges.
        assert_eq!(train_vocab(&texts, 6, &["[PAD]"]).unwrap().len(), 6);
        // Normalized and split as BERT's tokenizers: lower case, punctuation
        // a word of its own.
        let vocab = train_vocab(&["Ab, ab."], 100, &[]).unwrap();
        assert_eq!(vocab, [",", ".", "a", "b", "##b", "ab"]);
    }

    #[test]
    fn the_same_text_gives_the_same_vocabulary() {
        let text = "In the beginning God created the heaven and the earth. And the earth was \
                    without form, and void; and darkness was upon the face of the deep.";
        let a = train_vocab(&[text], 80, &["[PAD]"]).unwrap();
        for _ in 0..3 {
            assert_eq!(train_vocab(&[text], 80, &["[PAD]"]).unwrap(), a);
        }
    }
}
