//! `lrscape pretrain`: the base of an experiment, cached by config hash.

use std::path::Path;

use nn::ModelConfig;
use sweep::ExperimentConfig;

use crate::args::Common;
use crate::families::with_family;
use crate::progress::Bars;

pub fn pretrain(
    common: &Common,
    device: &str,
    pretrain_epochs: Option<usize>,
    force: bool,
) -> anyhow::Result<()> {
    let (config, out) = super::load_config(common)?;
    with_family!(config, config => pretrain_as(config, &out, device, pretrain_epochs, force))
}

fn pretrain_as<M: ModelConfig>(
    mut config: ExperimentConfig<M>,
    out: &Path,
    device: &str,
    pretrain_epochs: Option<usize>,
    force: bool,
) -> anyhow::Result<()> {
    if let Some(dir) = config.model.checkpoint() {
        if pretrain_epochs.is_some() {
            anyhow::bail!(
                "--pretrain-epochs: {} pre-trains nothing (its base is the checkpoint {})",
                config.name,
                dir.display()
            );
        }
        println!(
            "the base of {} is the checkpoint {} (model.path): nothing to pre-train",
            config.name,
            dir.display()
        );
        return Ok(());
    }
    let Some(pretrain) = config.pretrain.as_mut() else {
        anyhow::bail!("{}: no [pretrain] table", config.name);
    };
    if let Some(epochs) = pretrain_epochs {
        pretrain.epochs = epochs;
    }
    let epochs = pretrain.epochs;
    config
        .validate()
        .map_err(|e| anyhow::anyhow!("--pretrain-epochs: {e}"))?;
    let selected = backends::select_device(device)?;
    let dir = sweep::pretrain::base_dir(out, &config);
    if !force && dir.join(sweep::layout::BASE_RECORD).exists() {
        let (_, record) = sweep::pretrain::load_base(&config, out, &selected.device)?;
        println!(
            "base for {} already at {} (val_acc {:.4}); --force retrains",
            config.name,
            dir.display(),
            record.val_accuracy
        );
        return Ok(());
    }
    eprintln!(
        "pre-training {} on {} ({} epochs, {} examples) -> {}",
        config.name,
        selected.name,
        epochs,
        config.task.n_pretrain_train,
        dir.display()
    );
    let (_, record) = sweep::pretrain::pretrain(&config, out, &selected, &Bars::new(true))?;
    println!(
        "pretrained {}: val_acc {:.4}, val_loss {:.4}, {} steps in {:.1}s on {}{} -> {}",
        config.name,
        record.val_accuracy,
        record.val_loss,
        record.steps,
        record.seconds,
        record.provenance.backend,
        if record.diverged { " (DIVERGED)" } else { "" },
        dir.display()
    );
    if let Some(floor) = sweep::task::optimum(&config, sweep::task::Phase::Pretrain)? {
        println!(
            "  perplexity {:.4}; the pre-training chain's own predictions reach {:.4}",
            record.val_loss.exp(),
            floor.perplexity()
        );
    }
    Ok(())
}
