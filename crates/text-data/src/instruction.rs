//! Instruction tuning: Alpaca-style JSONL (`instruction`, optional `input`,
//! `output` per line), each example a prompt made from a template and the
//! response after it, the loss on the response tokens only.
//!
//! As Stanford Alpaca's training code builds an example: the prompt and
//! the whole text (prompt + output) are each tokenized as the tokenizer
//! does by default (`tokenizer(text)`, its special tokens added), the
//! end-of-text token follows, and the first `len(prompt ids)` labels are
//! ignored. Examples are cut to `max_length` tokens and right-padded
//! (padding ignored), or packed: every example's tokens one stream cut into
//! blocks of `max_length` (the remainder dropped).

use std::path::Path;

use synth_data::{IGNORE, SequenceDataset};

use crate::{TextError, TextTokenizer, read_text};

/// One example and the line it was read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instruction {
    pub instruction: String,
    /// Context for the instruction; empty when absent.
    pub input: String,
    pub output: String,
    pub line: usize,
}

/// How an example becomes a prompt: `{instruction}` and `{input}` in the
/// text are replaced by the example's fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromptTemplate {
    /// For an example with an `input`.
    pub with_input: String,
    /// For an example without one.
    pub without_input: String,
}

impl Default for PromptTemplate {
    /// Stanford Alpaca's `PROMPT_DICT`.
    fn default() -> Self {
        let head = "Below is an instruction that describes a task";
        Self {
            with_input: format!(
                "{head}, paired with an input that provides further context. Write a response \
                 that appropriately completes the request.\n\n### Instruction:\n{{instruction}}\
                 \n\n### Input:\n{{input}}\n\n### Response:\n"
            ),
            without_input: format!(
                "{head}. Write a response that appropriately completes the request.\n\n\
                 ### Instruction:\n{{instruction}}\n\n### Response:\n"
            ),
        }
    }
}

impl PromptTemplate {
    /// One template for every example; it must name `{instruction}`.
    pub fn single(template: &str) -> Result<Self, String> {
        if !template.contains("{instruction}") {
            return Err(format!(
                "{template:?}: a template naming {{instruction}} (and {{input}} where examples \
                 have one)"
            ));
        }
        Ok(Self {
            with_input: template.to_string(),
            without_input: template.to_string(),
        })
    }

    /// The prompt of `example`.
    pub fn prompt(&self, example: &Instruction) -> String {
        let template = if example.input.is_empty() {
            &self.without_input
        } else {
            &self.with_input
        };
        template
            .replace("{instruction}", &example.instruction)
            .replace("{input}", &example.input)
    }
}

/// The examples of a JSONL file: one object per non-empty line with a
/// string `instruction` and `output`, and optionally `input`.
pub fn read_instructions(path: &Path) -> Result<Vec<Instruction>, TextError> {
    let text = read_text(path)?;
    let error = |line: usize, message: String| TextError::Example {
        path: path.to_path_buf(),
        line,
        message,
    };
    let mut examples = Vec::new();
    for (i, row) in text.lines().enumerate() {
        let line = i + 1;
        if row.trim().is_empty() {
            continue;
        }
        let value: serde_json::Value =
            serde_json::from_str(row).map_err(|e| error(line, format!("not JSON: {e}")))?;
        let field = |name: &str, required: bool| -> Result<String, TextError> {
            match value.get(name) {
                Some(serde_json::Value::String(s)) => Ok(s.clone()),
                None | Some(serde_json::Value::Null) if !required => Ok(String::new()),
                None => Err(error(
                    line,
                    format!("no field {name:?} (instruction, output; input optional)"),
                )),
                Some(other) => Err(error(line, format!("{name} = {other}: a string"))),
            }
        };
        examples.push(Instruction {
            instruction: field("instruction", true)?,
            input: field("input", false)?,
            output: field("output", true)?,
            line,
        });
    }
    if examples.is_empty() {
        return Err(TextError::Format {
            path: path.to_path_buf(),
            message: "no examples (JSONL: one {\"instruction\", \"output\"} object per line)"
                .into(),
        });
    }
    Ok(examples)
}

/// A prompt to generate from and the answer its example's output gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question {
    /// The prompt's ids (special tokens added), at most `max_length`.
    pub prompt: Vec<u32>,
    /// [`extract_answer`](crate::extract_answer) of the output, else the
    /// trimmed output.
    pub answer: String,
    pub line: usize,
}

/// The examples as questions for scoring by generation.
pub fn questions(
    tokenizer: &TextTokenizer,
    template: &PromptTemplate,
    examples: &[Instruction],
    max_length: usize,
) -> Result<Vec<Question>, TextError> {
    examples
        .iter()
        .map(|example| {
            let mut prompt = tokenizer.encode_with_special_tokens(&template.prompt(example))?;
            prompt.truncate(max_length);
            let answer = crate::extract_answer(&example.output)
                .unwrap_or_else(|| example.output.trim().to_string());
            Ok(Question {
                prompt,
                answer,
                line: example.line,
            })
        })
        .collect()
}

/// How examples become sequences.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sequences {
    /// Tokens per sequence.
    pub max_length: usize,
    /// What padding fills.
    pub pad_id: u32,
    /// Appended to every response (the model's end-of-text token).
    pub eos_id: Option<u32>,
    /// Examples packed into one stream rather than padded one by one.
    pub packing: bool,
    /// Token ids are below this.
    pub vocab: usize,
}

/// An example's ids and labels (prompt labels [`IGNORE`]d), cut to
/// `max_length` unless packed.
fn example_ids(
    tokenizer: &TextTokenizer,
    template: &PromptTemplate,
    example: &Instruction,
    seq: &Sequences,
) -> Result<(Vec<u32>, Vec<u32>), TextError> {
    let prompt = template.prompt(example);
    let prompt_len = tokenizer.encode_with_special_tokens(&prompt)?.len();
    let mut ids = tokenizer.encode_with_special_tokens(&(prompt + &example.output))?;
    ids.extend(seq.eos_id);
    if !seq.packing {
        ids.truncate(seq.max_length);
    }
    let labels = ids
        .iter()
        .enumerate()
        .map(|(i, &id)| if i < prompt_len { IGNORE } else { id })
        .collect();
    Ok((ids, labels))
}

/// The examples as sequences of `max_length - 1` tokens, each target the
/// next token's label ([`IGNORE`] for prompt and padding).
pub fn instruction_tuning(
    tokenizer: &TextTokenizer,
    template: &PromptTemplate,
    examples: &[Instruction],
    seq: Sequences,
    path: &Path,
) -> Result<SequenceDataset, TextError> {
    if seq.max_length < 2 {
        return Err(TextError::Format {
            path: path.to_path_buf(),
            message: format!(
                "max_length = {}: at least 2 (a sequence predicts each token after the first)",
                seq.max_length
            ),
        });
    }
    let width = seq.max_length - 1;
    let (mut tokens, mut targets) = (Vec::new(), Vec::new());
    let (mut stream, mut stream_labels) = (Vec::new(), Vec::new());
    for example in examples {
        let (ids, labels) = example_ids(tokenizer, template, example, &seq)?;
        if let Some(&id) = ids.iter().find(|&&id| id as usize >= seq.vocab) {
            return Err(TextError::Vocab {
                origin: format!("{}:{}", path.display(), example.line),
                id,
                vocab: seq.vocab,
            });
        }
        if seq.packing {
            stream.extend(ids);
            stream_labels.extend(labels);
            continue;
        }
        // Position i reads token i and predicts label i + 1.
        let start = tokens.len();
        tokens.extend_from_slice(&ids[..ids.len().saturating_sub(1)]);
        tokens.resize(start + width, seq.pad_id);
        targets.extend_from_slice(labels.get(1..).unwrap_or_default());
        targets.resize(start + width, IGNORE);
    }
    if seq.packing {
        for (ids, labels) in stream
            .chunks_exact(seq.max_length)
            .zip(stream_labels.chunks_exact(seq.max_length))
        {
            tokens.extend_from_slice(&ids[..width]);
            targets.extend_from_slice(&labels[1..]);
        }
        if tokens.is_empty() {
            return Err(TextError::TooShort {
                origin: path.display().to_string(),
                tokens: stream.len(),
                block_size: seq.max_length,
            });
        }
    }
    let data = SequenceDataset::new(tokens, targets, width, width, seq.vocab).map_err(|e| {
        TextError::Encode {
            origin: path.display().to_string(),
            message: e.to_string(),
        }
    })?;
    if data.scored_targets() == 0 {
        return Err(TextError::Format {
            path: path.to_path_buf(),
            message: format!(
                "no response token within max_length = {}: every prompt fills it (raise \
                 max_length)",
                seq.max_length
            ),
        });
    }
    Ok(data)
}

#[cfg(test)]
mod tests {
    use synth_data::Dataset;

    use super::*;

    fn tokenizer() -> TextTokenizer {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fixtures/gpt2/tiny-lm")
            .join(crate::TOKENIZER);
        TextTokenizer::from_file(&path).unwrap()
    }

    fn example(input: &str) -> Instruction {
        Instruction {
            instruction: "Say it".into(),
            input: input.into(),
            output: " and God".into(),
            line: 1,
        }
    }

    #[test]
    fn only_the_response_and_its_end_are_scored() {
        let tok = tokenizer();
        let template = PromptTemplate::single("Q: {instruction}{input} A:").unwrap();
        let prompt = tok.encode("Q: Say it A:").unwrap();
        let whole = tok.encode("Q: Say it A: and God").unwrap();
        let seq = Sequences {
            max_length: 32,
            pad_id: 7,
            eos_id: Some(0),
            packing: false,
            vocab: tok.vocab_size(),
        };
        let data =
            instruction_tuning(&tok, &template, &[example("")], seq, Path::new("x")).unwrap();
        assert_eq!((data.len(), data.seq_len()), (1, 31));
        let item = data.get(0).unwrap();
        // Inputs: the whole text and its end-of-text token but the last, then padding.
        let mut inputs = whole.clone();
        inputs.push(0);
        inputs.pop();
        inputs.resize(31, 7);
        assert_eq!(item.tokens, inputs);
        // Targets: the response's tokens and the end-of-text token; the
        // prompt's and the padding's are ignored.
        let mut targets = vec![IGNORE; prompt.len() - 1];
        targets.extend_from_slice(&whole[prompt.len()..]);
        targets.push(0);
        targets.resize(31, IGNORE);
        assert_eq!(item.targets, targets);
        assert_eq!(data.scored_targets(), whole.len() - prompt.len() + 1);
    }

    #[test]
    fn packing_joins_examples_and_cutting_keeps_the_first_tokens() {
        let tok = tokenizer();
        let template = PromptTemplate::default();
        let examples = [example(""), example("In the beginning")];
        let padded = Sequences {
            max_length: 8,
            pad_id: 0,
            eos_id: Some(0),
            packing: false,
            vocab: tok.vocab_size(),
        };
        let path = Path::new("x");
        // Each Alpaca prompt is longer than 8 tokens: nothing would be scored.
        let err = instruction_tuning(&tok, &template, &examples, padded, path).unwrap_err();
        assert!(
            err.to_string()
                .contains("no response token within max_length = 8"),
            "{err}"
        );
        let short = PromptTemplate::single("{instruction}{input}").unwrap();
        let data = instruction_tuning(&tok, &short, &examples, padded, path).unwrap();
        let with_input = tok.encode("Say itIn the beginning and God").unwrap();
        assert_eq!(data.get(1).unwrap().tokens, with_input[..7]);
        assert!(
            template
                .prompt(&examples[1])
                .contains("### Input:\nIn the beginning")
        );
        assert!(!template.prompt(&examples[0]).contains("### Input:"));
        let packed = Sequences {
            packing: true,
            max_length: 16,
            ..padded
        };
        let data = instruction_tuning(&tok, &template, &examples, packed, path).unwrap();
        let total: usize = examples
            .iter()
            .map(|e| tok.encode(&(template.prompt(e) + &e.output)).unwrap().len() + 1)
            .sum();
        assert_eq!(data.len(), total / 16);
        assert!(data.scored_targets() > 0);
    }

    #[test]
    fn bad_files_and_templates_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.jsonl");
        let read = |text: &str| {
            std::fs::write(&path, text).unwrap();
            read_instructions(&path)
                .map(|e| e.len())
                .map_err(|e| e.to_string())
        };
        assert_eq!(
            read("{\"instruction\": \"a\", \"output\": \"b\"}\n\n"),
            Ok(1)
        );
        let err = read("{\"instruction\": \"a\"}\n").unwrap_err();
        assert!(
            err.ends_with(":1: no field \"output\" (instruction, output; input optional)"),
            "{err}"
        );
        let err = read("\n{\"instruction\": 3, \"output\": \"b\"}").unwrap_err();
        assert!(err.ends_with(":2: instruction = 3: a string"), "{err}");
        assert!(read("").unwrap_err().contains("no examples"));
        let err = PromptTemplate::single("{input}").unwrap_err();
        assert!(err.contains("naming {instruction}"), "{err}");
    }
}
