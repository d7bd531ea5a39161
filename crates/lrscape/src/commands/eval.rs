//! `lrscape eval`: a checkpoint (and adapter) scored on text or on
//! labelled texts.

use std::path::{Path, PathBuf};

use crate::families::{ModelDir, with_model_dir};
use bert::BertFamily;
use gpt2::Gpt2Family;
use nn::ModelConfig;

/// What `lrscape eval` scores the model on.
pub enum Scored {
    /// A language model on text cut into blocks.
    Text { text: PathBuf, block_size: usize },
    /// A sequence classifier on labelled texts.
    Labelled {
        data: PathBuf,
        max_length: usize,
        columns: sweep::eval::Columns,
    },
    /// A language model on instructions, the loss on the responses.
    Instructions {
        file: PathBuf,
        max_length: usize,
        prompt_template: Option<String>,
        max_new_tokens: Option<usize>,
    },
}

pub fn eval(
    model: &Path,
    adapter: Option<&Path>,
    scored: &Scored,
    device: &str,
) -> anyhow::Result<()> {
    let selected = backends::select_device(device)?;
    let with = adapter.map_or_else(String::new, |a| format!(" with adapter {}", a.display()));
    let json = match scored {
        Scored::Text { text, block_size } => {
            let score = with_model_dir!(ModelDir::read(model)?, family => {
                sweep::eval::text_lm(&family, adapter, text, *block_size, &selected.device)?
            });
            eprintln!(
                "{} on {}{with}: {} predictions in blocks of {block_size}",
                model.display(),
                text.display(),
                score.tokens
            );
            serde_json::to_string(&score)?
        }
        Scored::Instructions {
            file,
            max_length,
            prompt_template,
            max_new_tokens,
        } => {
            let settings = (*max_length, prompt_template.as_deref(), *max_new_tokens);
            let score = with_model_dir!(ModelDir::read(model)?, family => {
                sweep::eval::instructions(&family, adapter, file, settings, &selected.device)?
            });
            eprintln!(
                "{} on {}{with}: {} response tokens in sequences of {max_length}",
                model.display(),
                file.display(),
                score.tokens
            );
            serde_json::to_string(&score)?
        }
        Scored::Labelled {
            data,
            max_length,
            columns,
        } => {
            let columns = (data.as_path(), columns);
            let score = match crate::families::family_of_model_dir(model)? {
                Gpt2Family::FAMILY => {
                    let mut family =
                        Gpt2Family::from_dir(model).map_err(|e| anyhow::anyhow!("--model: {e}"))?;
                    if family.num_labels().is_none() {
                        // A language model's checkpoint: the adapter brings the head.
                        family.num_labels = adapter_labels(adapter, "score")?;
                    }
                    classify(&family, model, adapter, columns, *max_length, &selected)?
                }
                BertFamily::FAMILY => {
                    let labels = match bert::hf::read_config(model)
                        .map_err(|e| anyhow::anyhow!("--model: {e}"))?
                        .num_labels
                    {
                        Some(n) => Some(n),
                        None => adapter_labels(adapter, "classifier")?,
                    };
                    let family = match labels {
                        Some(n) => BertFamily::from_dir(model, Some(n))
                            .map_err(|e| anyhow::anyhow!("--model: {e}"))?,
                        None => anyhow::bail!(
                            "--model: {} is not a sequence classifier, and no --adapter saves \
                             a classifier head for it",
                            model.display()
                        ),
                    };
                    classify(&family, model, adapter, columns, *max_length, &selected)?
                }
                _ => anyhow::bail!(
                    "--data: sequence classification reads GPT-2 and encoder (DistilBERT, \
                     BERT) checkpoints; {} is neither",
                    model.display()
                ),
            };
            let cut = match score.truncated {
                0 => String::new(),
                n => format!(" ({n} cut)"),
            };
            eprintln!(
                "{} on {}{with}: {} examples of at most {max_length} tokens{cut}",
                model.display(),
                data.display(),
                score.examples
            );
            serde_json::to_string(&score)?
        }
    };
    println!("{json}");
    Ok(())
}

/// The labels of the classifier head `head` an adapter saves, if any.
fn adapter_labels(adapter: Option<&Path>, head: &str) -> anyhow::Result<Option<usize>> {
    Ok(match adapter {
        Some(dir) => peft::pretrained::saved_head_rows(dir, head)?,
        None => None,
    })
}

/// `family`'s classifier (the checkpoint in `model`, with `adapter`) scored
/// on the labelled texts of `columns`.
fn classify<M: ModelConfig>(
    family: &M,
    model: &Path,
    adapter: Option<&Path>,
    columns: (&Path, &sweep::eval::Columns),
    max_length: usize,
    selected: &backends::SelectedDevice,
) -> anyhow::Result<sweep::eval::ClassScore> {
    if family.num_labels().is_none() {
        anyhow::bail!(
            "--model: {} is not a sequence classifier, and no --adapter saves a head for it",
            model.display()
        );
    }
    let pad = family.pad_token_id().ok_or_else(|| {
        anyhow::anyhow!(
            "--model: {} has no pad_token_id (nor eos_token_id): a classifier scores \
             padded batches",
            model.join("config.json").display()
        )
    })?;
    let classifier = family
        .load_checkpoint(&selected.device)
        .map_err(|e| anyhow::anyhow!("--model: {e}"))?;
    let tokenizer = family
        .tokenizer()
        .ok_or_else(|| anyhow::anyhow!("--model: {} has no tokenizer", model.display()))?;
    let encoding = sweep::eval::ClassifierEncoding {
        max_length,
        pad_id: pad,
        special_tokens: family.special_tokens(),
    };
    sweep::eval::classification(
        classifier,
        adapter,
        &tokenizer,
        columns,
        (encoding, family.vocab()),
        &selected.device,
    )
}
