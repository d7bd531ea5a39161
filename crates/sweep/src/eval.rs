//! `lrscape eval`: a checkpoint (and optionally a PEFT adapter) scored on a
//! text file under the `text_lm` convention: blocks of `block_size` tokens,
//! the mean cross-entropy of every block's `block_size - 1` predictions; or
//! a sequence classifier on labelled texts: the mean cross-entropy over
//! examples and the share whose argmax is the label.

use std::path::Path;
pub use text_data::{ClassifierEncoding, Columns, CsvLayout};

use anyhow::Context;
use nn::ModelConfig;
use serde::Serialize;
use synth_data::Dataset;
use text_data::TextTokenizer;

/// What `lrscape eval` prints as its last line.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TextScore {
    pub loss: f64,
    pub perplexity: f64,
    /// Predictions scored: blocks × (block_size - 1), or an instruction
    /// set's response tokens.
    pub tokens: usize,
}

/// Scores `model`'s checkpoint, with the PEFT adapter in `adapter` if
/// given, on the text at `text`.
pub fn text_lm<M: ModelConfig>(
    model: &M,
    adapter: Option<&Path>,
    text: &Path,
    block_size: usize,
    device: &burn::tensor::Device,
) -> anyhow::Result<TextScore> {
    if block_size < 2 || block_size > model.seq_len() {
        anyhow::bail!(
            "--block-size {block_size}: between 2 and the model's {} positions",
            model.seq_len()
        );
    }
    let tokenizer_path = model
        .tokenizer()
        .with_context(|| format!("family {} has no tokenizer", M::FAMILY))?;
    let tokenizer = TextTokenizer::from_file(&tokenizer_path)?;
    let data = text_data::text_lm(&tokenizer, text, block_size, model.vocab())?;
    let base = model
        .load_checkpoint(device)
        .map_err(|e| anyhow::anyhow!("cannot read the model: {e}"))?;
    let eval = evaluate_with(base, adapter, &data, device)?;
    let loss = eval.loss[0];
    Ok(TextScore {
        loss,
        perplexity: loss.exp(),
        tokens: data.len() * (block_size - 1),
    })
}

/// What `lrscape eval --instructions` prints as its last line.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct InstructionScore {
    pub loss: f64,
    pub perplexity: f64,
    /// Response tokens scored.
    pub tokens: usize,
    /// With `--max-new-tokens`: the share of examples whose generated
    /// answer agrees with the output's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exact_match: Option<f64>,
    pub examples: usize,
}

/// Scores `model`'s checkpoint, with the PEFT adapter in `adapter` if
/// given, on the instructions in `file` as `task.kind = "instruction"` makes
/// them (padded to `max_length`, the prompt from `template` or Alpaca's):
/// the mean cross-entropy of the response tokens; with `max_new_tokens`,
/// also the exact-match share of greedy generations.
pub fn instructions<M: ModelConfig>(
    model: &M,
    adapter: Option<&Path>,
    file: &Path,
    (max_length, template, max_new_tokens): (usize, Option<&str>, Option<usize>),
    device: &burn::tensor::Device,
) -> anyhow::Result<InstructionScore> {
    if max_length < 2 || max_length > model.seq_len() {
        anyhow::bail!(
            "--max-length {max_length}: between 2 and the model's {} positions",
            model.seq_len()
        );
    }
    if let Some(new) = max_new_tokens {
        crate::config::answer_fits(new, max_length, model.seq_len())
            .map_err(|allowed| anyhow::anyhow!("--max-new-tokens {new}: {allowed}"))?;
    }
    let template = match template {
        Some(t) => text_data::PromptTemplate::single(t)
            .map_err(|why| anyhow::anyhow!("--prompt-template {why}"))?,
        None => text_data::PromptTemplate::default(),
    };
    let tokenizer_path = model
        .tokenizer()
        .with_context(|| format!("family {} has no tokenizer", M::FAMILY))?;
    let tokenizer = std::sync::Arc::new(TextTokenizer::from_file(&tokenizer_path)?);
    let pad_id = model
        .pad_token_id()
        .context("--model: config.json names neither pad_token_id nor eos_token_id")?;
    let sequences = text_data::Sequences {
        max_length,
        pad_id,
        eos_id: model.eos_token_id(),
        packing: false,
        vocab: model.vocab(),
    };
    let examples = text_data::read_instructions(file)?;
    let data = text_data::instruction_tuning(&tokenizer, &template, &examples, sequences, file)?;
    let base = model
        .load_checkpoint(device)
        .map_err(|e| anyhow::anyhow!("cannot read the model: {e}"))?;
    let questions = max_new_tokens
        .map(|new| {
            let generation = (new, model.eos_token_id());
            crate::task::Questions::new(tokenizer, &template, &examples, max_length, generation)
        })
        .transpose()?;
    let (eval, exact_match) = score_with(base, adapter, &data, questions.as_ref(), device)?;
    let loss = eval.loss[0];
    Ok(InstructionScore {
        loss,
        perplexity: loss.exp(),
        tokens: data.scored_targets(),
        exact_match: exact_match.map(|e| e[0]),
        examples: examples.len(),
    })
}

/// What `lrscape eval --data` prints as its last line.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ClassScore {
    pub loss: f64,
    pub accuracy: f64,
    pub examples: usize,
    /// Texts longer than the length asked for, cut (not printed).
    #[serde(skip)]
    pub truncated: usize,
}

/// Scores `classifier`, with the PEFT adapter in `adapter` if given (its
/// saved head included), on the labelled texts of `data` (columns `text`
/// and `label`) encoded by the `tokenizer.json` at `tokenizer` as
/// `encoding` says; token ids must lie below `vocab`.
pub fn classification<M: nn::Adaptable>(
    classifier: M,
    adapter: Option<&Path>,
    tokenizer: &Path,
    (data, columns): (&Path, &text_data::Columns),
    (encoding, vocab): (text_data::ClassifierEncoding, usize),
    device: &burn::tensor::Device,
) -> anyhow::Result<ClassScore> {
    if encoding.max_length == 0 {
        anyhow::bail!("--max-length 0: at least 1 token per example");
    }
    let num_labels = classifier
        .saved_heads()
        .last()
        .map(|head| head.linear.d_out())
        .context("the model is not a sequence classifier (no classification head)")?;
    let tokenizer = TextTokenizer::from_file(tokenizer)?;
    let examples = text_data::read_labelled(data, columns)?;
    let classified =
        text_data::classification(&tokenizer, &examples, encoding, num_labels, vocab, data)?;
    let eval = evaluate_with(classifier, adapter, &classified.data, device)?;
    Ok(ClassScore {
        loss: eval.loss[0],
        accuracy: eval.accuracy[0],
        examples: classified.data.len(),
        truncated: classified.truncated,
    })
}

/// `model`'s scores on `data`, with the PEFT adapter in `adapter` if given.
fn evaluate_with<M: nn::Adaptable>(
    model: M,
    adapter: Option<&Path>,
    data: &synth_data::SequenceDataset,
    device: &burn::tensor::Device,
) -> anyhow::Result<train::Evaluation> {
    Ok(score_with(model, adapter, data, None, device)?.0)
}

/// [`score`] of `model` with the PEFT adapter in `adapter` if given.
fn score_with<M: nn::Adaptable>(
    model: M,
    adapter: Option<&Path>,
    data: &synth_data::SequenceDataset,
    questions: Option<&crate::task::Questions>,
    device: &burn::tensor::Device,
) -> anyhow::Result<(train::Evaluation, Option<Vec<f64>>)> {
    match adapter {
        Some(dir) => {
            let (adapted, _) = peft::pretrained::from_pretrained(model, dir)?;
            score(&adapted, data, questions, device)
        }
        None => score(&model, data, questions, device),
    }
}

/// `model`'s scores on `data`, and its exact-match shares on `questions`
/// where given.
fn score<M: nn::PopulationModel>(
    model: &M,
    data: &synth_data::SequenceDataset,
    questions: Option<&crate::task::Questions>,
    device: &burn::tensor::Device,
) -> anyhow::Result<(train::Evaluation, Option<Vec<f64>>)> {
    let eval = train::evaluate(model, data, 8, device);
    let exact = questions
        .map(|q| exact_match(model, q, device))
        .transpose()?;
    Ok((eval, exact))
}

/// Each member's share of `questions` whose generated answer agrees with
/// the reference ([`text_data::answers_match`]).
pub fn exact_match<M: nn::PopulationModel>(
    model: &M,
    questions: &crate::task::Questions,
    device: &burn::tensor::Device,
) -> anyhow::Result<Vec<f64>> {
    let mut right: Vec<usize> = Vec::new();
    for question in &questions.items {
        let outputs = train::generate::greedy(
            model,
            &question.prompt,
            questions.max_new_tokens,
            questions.eos,
            device,
        );
        right.resize(outputs.len(), 0);
        for (member, tokens) in outputs.iter().enumerate() {
            let text = questions.tokenizer.decode(tokens)?;
            if text_data::extract_answer(&text)
                .is_some_and(|answer| text_data::answers_match(&answer, &question.answer))
            {
                right[member] += 1;
            }
        }
    }
    let n = questions.items.len().max(1) as f64;
    Ok(right.into_iter().map(|r| r as f64 / n).collect())
}
