//! Real text as tasks, beside `synth-data`'s synthetic ones.
//!
//! A [`TextTokenizer`] is a Hugging Face `tokenizer.json` read through the
//! `tokenizers` crate (the library `transformers` calls, so ids match), or a
//! tokenizer trained here for a model lrscape pre-trains itself: GPT-2's
//! byte-level BPE, or BERT's WordPiece ([`wordpiece`], deterministic).
//! [`text_lm`] reads a UTF-8 file, tokenizes it whole without special
//! tokens and cuts it into consecutive blocks of `block_size` tokens (the
//! remainder dropped), as `transformers`' `run_clm` groups text. A block is
//! one example whose `block_size - 1` next-token predictions are its
//! targets: the loss is their mean cross-entropy, perplexity its `exp`.
//! [`classification`] reads labelled texts (JSONL or CSV) as a classifier's
//! examples; [`instruction_tuning`] Alpaca-style instructions, the loss on
//! the response tokens only; [`masked_lm`] a pre-training text as an
//! encoder's masked-language-modelling blocks.

mod answer;
mod classify;
mod instruction;
mod mlm;
pub mod wordpiece;

use std::path::{Path, PathBuf};

pub use answer::{answers_match, extract_answer};
pub use classify::{
    Classified, ClassifierEncoding, Columns, CsvLayout, Labelled, classification, read_labelled,
};
pub use instruction::{
    Instruction, PromptTemplate, Question, Sequences, instruction_tuning, questions,
    read_instructions,
};
pub use mlm::masked_lm;
use synth_data::SequenceDataset;
use tokenizers::models::TrainerWrapper;
use tokenizers::models::bpe::{BPE, BpeTrainerBuilder};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::{AddedToken, Tokenizer};

/// A tokenizer's file in a Hugging Face model directory.
pub const TOKENIZER: &str = "tokenizer.json";

/// A BERT WordPiece's special tokens, in the order of their ids.
pub const WORDPIECE_SPECIAL: [&str; 5] = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"];

/// GPT-2's one special token, which byte-level BPEs trained here also get.
pub const END_OF_TEXT: &str = "<|endoftext|>";

/// What went wrong reading text or a tokenizer, naming the file.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TextError {
    #[error("cannot read {}: {message}", path.display())]
    File { path: PathBuf, message: String },
    #[error("{} is not UTF-8 text: the bytes at offset {offset} are not UTF-8", path.display())]
    NotUtf8 { path: PathBuf, offset: usize },
    #[error("{} is not a tokenizer the tokenizers library reads: {message}", path.display())]
    Tokenizer { path: PathBuf, message: String },
    #[error("{origin}: {message}")]
    Encode { origin: String, message: String },
    /// A labelled-text file that is not JSONL or CSV as expected.
    #[error("{}: {message}", path.display())]
    Format { path: PathBuf, message: String },
    /// One example of a labelled-text file (line 1 is the file's first).
    #[error("{}:{line}: {message}", path.display())]
    Example {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("block_size = {0}: at least 2 (a block predicts each of its tokens after the first)")]
    BlockSize(usize),
    #[error(
        "{origin}: {tokens} tokens, fewer than one block of block_size = {block_size}: \
         give more text or a smaller block_size"
    )]
    TooShort {
        origin: String,
        tokens: usize,
        block_size: usize,
    },
    #[error(
        "{origin}: token id {id} is not below the model's vocabulary of {vocab}: the \
         tokenizer does not belong to this model"
    )]
    Vocab {
        origin: String,
        id: u32,
        vocab: usize,
    },
    #[error("training a BPE: {0}")]
    Training(String),
}

/// A tokenizer and the file it came from (for errors).
#[derive(Clone)]
pub struct TextTokenizer {
    inner: Tokenizer,
    origin: String,
}

impl std::fmt::Debug for TextTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "TextTokenizer({}, {} tokens)",
            self.origin,
            self.vocab_size()
        )
    }
}

impl TextTokenizer {
    /// Reads a `tokenizer.json`.
    pub fn from_file(path: &Path) -> Result<Self, TextError> {
        if !path.is_file() {
            return Err(TextError::File {
                path: path.to_path_buf(),
                message: "no such file".into(),
            });
        }
        let mut inner = Tokenizer::from_file(path).map_err(|e| TextError::Tokenizer {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        // Padding and truncation a file was saved with would change every
        // encoding; lrscape pads and cuts where it says it does.
        inner.with_padding(None);
        inner
            .with_truncation(None)
            .map_err(|e| TextError::Tokenizer {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?;
        Ok(Self {
            inner,
            origin: path.display().to_string(),
        })
    }

    /// A GPT-2-style byte-level BPE of at most `vocab_size` tokens (the 256
    /// byte symbols, [`END_OF_TEXT`], then merges by frequency) trained on
    /// `texts`: every string encodes, and decodes back to itself.
    pub fn train_byte_level_bpe(texts: &[&str], vocab_size: usize) -> Result<Self, TextError> {
        let alphabet: std::collections::HashSet<char> = ByteLevel::alphabet().into_iter().collect();
        if vocab_size <= alphabet.len() {
            return Err(TextError::Training(format!(
                "vocab_size = {vocab_size}: more than the {} byte symbols",
                alphabet.len()
            )));
        }
        let trainer = BpeTrainerBuilder::new()
            .vocab_size(vocab_size)
            .min_frequency(2)
            .show_progress(false)
            .initial_alphabet(alphabet)
            .special_tokens(vec![AddedToken::from(END_OF_TEXT, true)])
            .build();
        let mut inner = Tokenizer::new(BPE::default());
        let byte_level = ByteLevel::new(false, true, true);
        inner
            .with_pre_tokenizer(Some(byte_level))
            .with_decoder(Some(byte_level))
            .with_post_processor(Some(ByteLevel::new(false, false, true)));
        inner
            .train(&mut TrainerWrapper::BpeTrainer(trainer), texts.iter())
            .map_err(|e| TextError::Training(e.to_string()))?;
        Ok(Self {
            inner,
            origin: "a byte-level BPE trained here".into(),
        })
    }

    /// A BERT WordPiece of at most `vocab_size` tokens trained on `texts`
    /// (deterministically: [`wordpiece::train_vocab`]): BERT's normalizer
    /// (lower case) and pre-tokenizer, the special tokens
    /// [`WORDPIECE_SPECIAL`] first (`[PAD]` = 0), `##` continuations,
    /// `[CLS] … [SEP]` added to every text, as `BertWordPieceTokenizer`.
    pub fn train_wordpiece(texts: &[&str], vocab_size: usize) -> Result<Self, TextError> {
        use tokenizers::decoders::wordpiece::WordPiece as WordPieceDecoder;
        use tokenizers::models::wordpiece::WordPiece;
        use tokenizers::normalizers::bert::BertNormalizer;
        use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
        use tokenizers::processors::template::TemplateProcessing;
        if vocab_size <= WORDPIECE_SPECIAL.len() {
            return Err(TextError::Training(format!(
                "vocab_size = {vocab_size}: more than the {} special tokens",
                WORDPIECE_SPECIAL.len()
            )));
        }
        let vocab = wordpiece::train_vocab(texts, vocab_size, &WORDPIECE_SPECIAL)?;
        let ids: serde_json::Map<String, serde_json::Value> = vocab
            .iter()
            .enumerate()
            .map(|(id, token)| (token.clone(), id.into()))
            .collect();
        let json = serde_json::json!({
            "type": "WordPiece",
            "unk_token": "[UNK]",
            "continuing_subword_prefix": "##",
            "max_input_chars_per_word": 100,
            "vocab": ids,
        });
        // The model's fields borrow from the text they are read from.
        let model: WordPiece = serde_json::from_str(&json.to_string())
            .map_err(|e| TextError::Training(e.to_string()))?;
        let mut inner = Tokenizer::new(model);
        inner
            .with_normalizer(Some(BertNormalizer::new(true, true, None, true)))
            .with_pre_tokenizer(Some(BertPreTokenizer))
            .with_decoder(Some(WordPieceDecoder::new("##".into(), true)));
        inner.add_special_tokens(
            &WORDPIECE_SPECIAL
                .iter()
                .map(|t| AddedToken::from(*t, true))
                .collect::<Vec<_>>(),
        );
        let id = |token: &str| {
            inner
                .token_to_id(token)
                .expect("special tokens are in the vocabulary")
        };
        let template = TemplateProcessing::builder()
            .try_single("[CLS] $A [SEP]")
            .and_then(|b| b.try_pair("[CLS] $A [SEP] $B:1 [SEP]:1"))
            .map_err(TextError::Training)?
            .special_tokens(vec![("[CLS]", id("[CLS]")), ("[SEP]", id("[SEP]"))])
            .build()
            .map_err(|e| TextError::Training(e.to_string()))?;
        inner.with_post_processor(Some(template));
        Ok(Self {
            inner,
            origin: "a WordPiece trained here".into(),
        })
    }

    /// The id of `token` (a special token's, such as `[MASK]`), if the
    /// vocabulary has it.
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// The file this tokenizer was read from, or how it was made.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Writes `tokenizer.json` as `transformers` reads it.
    pub fn save(&self, path: &Path) -> Result<(), TextError> {
        self.inner.save(path, true).map_err(|e| TextError::File {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
    }

    /// Tokens, added (special) tokens included.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// The ids of `text`, without special tokens (no BOS/EOS added).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, TextError> {
        self.ids(text, false)
    }

    /// The ids of `text` as the tokenizer encodes by default, its special
    /// tokens added (a BOS where the tokenizer has one).
    pub fn encode_with_special_tokens(&self, text: &str) -> Result<Vec<u32>, TextError> {
        self.ids(text, true)
    }

    fn ids(&self, text: &str, special: bool) -> Result<Vec<u32>, TextError> {
        Ok(self.encoding(text, special)?.get_ids().to_vec())
    }

    fn encoding(&self, text: &str, special: bool) -> Result<tokenizers::Encoding, TextError> {
        self.inner
            .encode(text, special)
            .map_err(|e| TextError::Encode {
                origin: self.origin.clone(),
                message: e.to_string(),
            })
    }

    /// This tokenizer cutting every text to `max_length` tokens, special
    /// tokens (where `special`) included.
    pub fn truncating(&self, max_length: usize, special: bool) -> Result<Truncating, TextError> {
        let added = if special {
            self.inner
                .get_post_processor()
                .map_or(0, |p| tokenizers::PostProcessor::added_tokens(p, false))
        } else {
            0
        };
        if max_length <= added {
            return Err(TextError::Encode {
                origin: self.origin.clone(),
                message: format!(
                    "max_length = {max_length}: more than the {added} special tokens \
                     the tokenizer adds to every text"
                ),
            });
        }
        let mut cutting = self.clone();
        cutting
            .inner
            .with_truncation(Some(tokenizers::TruncationParams {
                max_length,
                ..Default::default()
            }))
            .map_err(|e| TextError::Encode {
                origin: self.origin.clone(),
                message: e.to_string(),
            })?;
        Ok(Truncating {
            tokenizer: cutting,
            special,
        })
    }

    pub fn decode(&self, ids: &[u32]) -> Result<String, TextError> {
        self.inner
            .decode(ids, false)
            .map_err(|e| TextError::Encode {
                origin: self.origin.clone(),
                message: e.to_string(),
            })
    }
}

/// A tokenizer that cuts texts to a length ([`TextTokenizer::truncating`]).
pub struct Truncating {
    tokenizer: TextTokenizer,
    special: bool,
}

impl Truncating {
    /// The ids of `text`, cut, and whether it was cut.
    pub fn encode(&self, text: &str) -> Result<(Vec<u32>, bool), TextError> {
        let encoding = self.tokenizer.encoding(text, self.special)?;
        Ok((
            encoding.get_ids().to_vec(),
            !encoding.get_overflowing().is_empty(),
        ))
    }
}

/// A file's text, or an error naming the file (missing, unreadable, or
/// not UTF-8, with the offset of the first bad byte).
pub fn read_text(path: &Path) -> Result<String, TextError> {
    let bytes = std::fs::read(path).map_err(|e| TextError::File {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    String::from_utf8(bytes).map_err(|e| TextError::NotUtf8 {
        path: path.to_path_buf(),
        offset: e.utf8_error().valid_up_to(),
    })
}

/// `ids` cut into consecutive blocks of `block_size` (the remainder
/// dropped), each an example of `block_size - 1` tokens whose targets are
/// the tokens after them; `origin` names the text in errors.
pub fn lm_blocks(
    ids: &[u32],
    block_size: usize,
    vocab: usize,
    origin: &str,
) -> Result<SequenceDataset, TextError> {
    if block_size < 2 {
        return Err(TextError::BlockSize(block_size));
    }
    if let Some(&id) = ids.iter().find(|&&id| id as usize >= vocab) {
        return Err(TextError::Vocab {
            origin: origin.to_string(),
            id,
            vocab,
        });
    }
    let blocks = ids.len() / block_size;
    if blocks == 0 {
        return Err(TextError::TooShort {
            origin: origin.to_string(),
            tokens: ids.len(),
            block_size,
        });
    }
    let seq = block_size - 1;
    let mut tokens = Vec::with_capacity(blocks * seq);
    let mut targets = Vec::with_capacity(blocks * seq);
    for block in ids.chunks_exact(block_size) {
        tokens.extend_from_slice(&block[..seq]);
        targets.extend_from_slice(&block[1..]);
    }
    SequenceDataset::new(tokens, targets, seq, seq, vocab).map_err(|e| TextError::Encode {
        origin: origin.to_string(),
        message: e.to_string(),
    })
}

/// The `text_lm` examples of the file at `path`: read, tokenized whole and
/// cut into blocks ([`lm_blocks`]).
pub fn text_lm(
    tokenizer: &TextTokenizer,
    path: &Path,
    block_size: usize,
    vocab: usize,
) -> Result<SequenceDataset, TextError> {
    let text = read_text(path)?;
    let ids = tokenizer.encode(&text)?;
    lm_blocks(&ids, block_size, vocab, &path.display().to_string())
}

#[cfg(test)]
mod tests {
    /// A WordPiece trained here encodes as BERT's tokenizers do: Python's
    /// `tokenizers` (fixtures/bert's tokenizer.json, from
    /// tools/golden/bert_golden.py) trained on the same text gives the same
    /// tokens, and all but 6 of the 256 in its vocabulary (Python breaks
    /// ties between equally frequent `##` merges in hash order).
    #[test]
    fn a_wordpiece_trained_here_encodes_as_the_python_one() {
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures");
        let text = std::fs::read_to_string(fixtures.join("text/genesis-train.txt")).unwrap();
        let ours = TextTokenizer::train_wordpiece(&[&text], 256).unwrap();
        let python =
            TextTokenizer::from_file(&fixtures.join("bert/tiny-bert/tokenizer.json")).unwrap();
        let (a, b) = (ours.inner.get_vocab(true), python.inner.get_vocab(true));
        assert_eq!(a.len(), 256);
        let shared = a.keys().filter(|k| b.contains_key(*k)).count();
        assert!(shared >= 250, "{shared} of 256 tokens shared");
        for sample in [
            "In the beginning God created the heaven and the earth.",
            "And God said",
        ] {
            let tokens = |t: &TextTokenizer| -> Vec<String> {
                t.encode_with_special_tokens(sample)
                    .unwrap()
                    .iter()
                    .map(|&id| t.inner.id_to_token(id).unwrap())
                    .collect()
            };
            assert_eq!(tokens(&ours), tokens(&python), "{sample}");
            let ids = ours.encode_with_special_tokens(sample).unwrap();
            assert_eq!((ids[0], *ids.last().unwrap()), (2, 3), "[CLS] … [SEP]");
        }
        assert_eq!(ours.token_to_id("[PAD]"), Some(0));
        assert_eq!(ours.token_to_id("[MASK]"), Some(4));
        assert_eq!(
            TextTokenizer::train_wordpiece(&[&text], 256)
                .unwrap()
                .inner
                .get_vocab(true),
            a,
            "the same every time"
        );
        let err = TextTokenizer::train_wordpiece(&[&text], 5).unwrap_err();
        assert!(err.to_string().contains("more than the 5 special tokens"));
        // Saved, it reads back the same.
        let dir = tempfile::tempdir().unwrap();
        ours.save(&dir.path().join(TOKENIZER)).unwrap();
        let back = TextTokenizer::from_file(&dir.path().join(TOKENIZER)).unwrap();
        assert_eq!(
            back.encode_with_special_tokens("Let there be light")
                .unwrap(),
            ours.encode_with_special_tokens("Let there be light")
                .unwrap()
        );
    }

    use synth_data::Dataset;

    use super::*;

    #[test]
    fn blocks_are_consecutive_and_the_remainder_is_dropped() {
        let ids: Vec<u32> = (0..11).collect();
        let data = lm_blocks(&ids, 4, 20, "t").unwrap();
        assert_eq!(data.len(), 2);
        let first = data.get(0).unwrap();
        assert_eq!(first.tokens, vec![0, 1, 2]);
        assert_eq!(first.targets, vec![1, 2, 3]);
        let second = data.get(1).unwrap();
        assert_eq!(second.tokens, vec![4, 5, 6]);
        assert_eq!(second.targets, vec![5, 6, 7]);
    }

    #[test]
    fn bad_blocks_are_named() {
        let ids: Vec<u32> = (0..5).collect();
        assert_eq!(lm_blocks(&ids, 1, 20, "t"), Err(TextError::BlockSize(1)));
        let err = lm_blocks(&ids, 6, 20, "val.txt").unwrap_err().to_string();
        assert!(
            err.contains("val.txt: 5 tokens") && err.contains("block_size = 6"),
            "{err}"
        );
        let err = lm_blocks(&ids, 2, 4, "val.txt").unwrap_err().to_string();
        assert!(
            err.contains("token id 4") && err.contains("vocabulary of 4"),
            "{err}"
        );
    }

    #[test]
    fn text_that_is_not_utf8_names_the_offset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.txt");
        std::fs::write(&path, b"abc\xffdef").unwrap();
        assert_eq!(
            read_text(&path),
            Err(TextError::NotUtf8 {
                path: path.clone(),
                offset: 3
            })
        );
        let missing = read_text(&dir.path().join("none.txt")).unwrap_err();
        assert!(missing.to_string().contains("none.txt"), "{missing}");
    }

    #[test]
    fn a_trained_byte_level_bpe_round_trips_and_saves() {
        let text = "the cat sat on the mat; the cat ate the rat. ünïcödé ✓";
        let tokenizer = TextTokenizer::train_byte_level_bpe(&[text, text], 300).unwrap();
        assert!(tokenizer.vocab_size() > 257 && tokenizer.vocab_size() <= 300);
        let ids = tokenizer.encode(text).unwrap();
        // Merges happened: fewer tokens than bytes.
        assert!(ids.len() < text.len(), "{} ids", ids.len());
        assert_eq!(tokenizer.decode(&ids).unwrap(), text);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokenizer.json");
        tokenizer.save(&path).unwrap();
        let again = TextTokenizer::from_file(&path).unwrap();
        assert_eq!(again.encode(text).unwrap(), ids);
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(json["model"]["type"], "BPE");
        assert_eq!(json["pre_tokenizer"]["type"], "ByteLevel");
    }

    #[test]
    fn a_file_that_is_not_a_tokenizer_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokenizer.json");
        std::fs::write(&path, "{\"model\": 3}").unwrap();
        let err = TextTokenizer::from_file(&path).unwrap_err().to_string();
        assert!(err.contains("tokenizer.json is not a tokenizer"), "{err}");
        let err = TextTokenizer::from_file(&dir.path().join("none.json"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("none.json") && err.contains("no such file"),
            "{err}"
        );
    }
}
