//! `lrscape eval`: a checkpoint (and adapter) scored on text or on
//! labelled texts.

use std::path::{Path, PathBuf};

use gpt2::Gpt2Family;

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
            let family =
                Gpt2Family::from_dir(model).map_err(|e| anyhow::anyhow!("--model: {e}"))?;
            let score =
                sweep::eval::text_lm(&family, adapter, text, *block_size, &selected.device)?;
            eprintln!(
                "{} on {}{with}: {} predictions in blocks of {block_size}",
                model.display(),
                text.display(),
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
            let (config, classifier) = gpt2::hf::load_classifier_dir(model, &selected.device)
                .map_err(|e| anyhow::anyhow!("--model: {e}"))?;
            let pad = classifier.pad_token_id.ok_or_else(|| {
                anyhow::anyhow!(
                    "--model: {} has no pad_token_id: a classifier scores padded batches \
                     (set it, as transformers does, to the tokenizer's end-of-text id)",
                    model.join("config.json").display()
                )
            })?;
            let score = sweep::eval::classification(
                classifier,
                adapter,
                &model.join(gpt2::family::TOKENIZER),
                (data, text_column, label_column),
                (*max_length, pad, config.vocab_size),
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
