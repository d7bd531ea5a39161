//! `lrscape eval`: a checkpoint (and adapter) scored on text.

use std::path::Path;

use gpt2::Gpt2Family;

pub fn eval(
    model: &Path,
    adapter: Option<&Path>,
    text: &Path,
    block_size: usize,
    device: &str,
) -> anyhow::Result<()> {
    let family = Gpt2Family::from_dir(model).map_err(|e| anyhow::anyhow!("--model: {e}"))?;
    let selected = backends::select_device(device)?;
    let score = sweep::eval::text_lm(&family, adapter, text, block_size, &selected.device)?;
    eprintln!(
        "{} on {}{}: {} predictions in blocks of {block_size}",
        model.display(),
        text.display(),
        adapter.map_or_else(String::new, |a| format!(" with adapter {}", a.display())),
        score.tokens
    );
    println!("{}", serde_json::to_string(&score)?);
    Ok(())
}
