//! `lrscape eval`: a checkpoint (and adapter) scored on text or on
//! labelled texts.

use std::path::{Path, PathBuf};

use crate::families::{ModelDir, with_model_dir};
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
        text_column: String,
        label_column: String,
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
            text_column,
            label_column,
        } => {
            if crate::families::family_of_model_dir(model)? != Gpt2Family::FAMILY {
                anyhow::bail!(
                    "--data: sequence classification reads GPT-2 checkpoints \
                     (GPT2ForSequenceClassification); {} is not one",
                    model.display()
                );
            }
            let mut family =
                Gpt2Family::from_dir(model).map_err(|e| anyhow::anyhow!("--model: {e}"))?;
            if family.num_labels().is_none() {
                // A language model's checkpoint: the adapter brings the head.
                family.num_labels = match adapter {
                    Some(dir) => peft::pretrained::saved_head_rows(dir, "score")?,
                    None => None,
                };
            }
            if family.num_labels().is_none() {
                anyhow::bail!(
                    "--model: {} is not a sequence classifier (GPT2ForSequenceClassification), \
                     and no --adapter saves a score head for it",
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
            let score = sweep::eval::classification(
                classifier,
                adapter,
                &model.join(gpt2::family::TOKENIZER),
                (data, text_column, label_column),
                (*max_length, pad, family.vocab()),
                &selected.device,
            )?;
            eprintln!(
                "{} on {}{with}: {} examples of at most {max_length} tokens",
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
