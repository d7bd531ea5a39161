//! `[run] save_adapters`: trained adapters written in PEFT's format under
//! `<out>/adapters/<cell>/lr<lr>-seed<seed>/`, so `PeftModel.from_pretrained`
//! loads them on the checkpoint the study started from.

use std::path::{Path, PathBuf};

use nn::{Adaptable, LinearSite, ModelConfig};
use peft::{LoraConfig, PeftModel, SiteGradients};
use records::TrialRecord;
use synth_data::SequenceDataset;

use crate::config::{Cell, ExperimentConfig, SaveAdapters};

/// The adapters directory of a results directory.
pub const ADAPTERS_DIR: &str = "adapters";

/// A cell's label as a directory name: letters, digits, `.` and `-`.
pub fn cell_dir<M: ModelConfig>(out: &Path, config: &ExperimentConfig<M>, cell: &Cell) -> PathBuf {
    let label = cell.label(config);
    let mut slug = String::new();
    for c in label.chars() {
        if c.is_ascii_alphanumeric() || c == '.' {
            slug.push(c);
        } else if !slug.ends_with('-') {
            slug.push('-');
        }
    }
    out.join(ADAPTERS_DIR).join(slug.trim_matches('-'))
}

/// One member's directory in its cell's.
pub fn member_dir(cell_dir: &Path, lr: f64, seed: u64) -> PathBuf {
    cell_dir.join(format!("{}seed{seed}", lr_prefix(lr)))
}

/// The start of a member directory's name: its learning rate.
pub(crate) fn lr_prefix(lr: f64) -> String {
    format!("lr{lr:.4e}-")
}

/// Whether `config` saves the adapters of `cell` (adapter methods only:
/// full fine-tuning has none).
pub fn saves<M: ModelConfig>(config: &ExperimentConfig<M>, cell: &Cell) -> bool {
    config.run.save_adapters != SaveAdapters::None && cell.method.has_adapters()
}

/// The base's name for `adapter_config.json`: the checkpoint's directory,
/// or the Hugging Face directory of a base pre-trained here, absolute, so
/// PEFT finds it from anywhere on this machine.
pub fn base_name<M: ModelConfig>(config: &ExperimentConfig<M>, out: &Path) -> String {
    let hf = crate::pretrain::base_dir(out, config).join(crate::layout::BASE_HF);
    let dir = config.model.checkpoint().unwrap_or(&hf);
    std::fs::canonicalize(dir)
        .unwrap_or_else(|_| dir.to_path_buf())
        .display()
        .to_string()
}

/// What LoRA-GA's init reads: the mean loss gradient at every targeted
/// weight of `base` over `lora.lora_ga.batches` batches of `batch_size`
/// examples of `train`, in data seed 0's order (so every member and every
/// population of the cell starts alike, as PiSSA's do); empty for other
/// methods.
pub fn init_gradients<A: Adaptable>(
    base: &A,
    lora: &LoraConfig,
    (train, batch_size): (&SequenceDataset, usize),
    device: &burn::tensor::Device,
) -> anyhow::Result<SiteGradients> {
    if !lora.method.needs_gradients() {
        return Ok(SiteGradients::new());
    }
    let layout = base.layout();
    let targets = lora.validate(&layout)?;
    let sites: Vec<LinearSite> = layout.sites(&targets);
    train::weight_gradients(
        base,
        &sites,
        train,
        (lora.lora_ga.batches, batch_size, 0),
        device,
    )
    .map_err(|site| anyhow::anyhow!("{}", peft::PeftError::NoSuchSite(site)))
}

/// Writes every member of `model` that did not diverge; `base` is the
/// frozen base the population started from, `gradients` what its init
/// read.
pub fn save_population<A: Adaptable>(
    cell: &Cell,
    (dir, name): (&Path, &str),
    model: &PeftModel<A>,
    (base, gradients): (&A, &SiteGradients),
    members: &[(f64, u64)],
    diverged: &[bool],
) -> anyhow::Result<()> {
    let lora = cell.fine_tune();
    let initial = if cell.method.replaces_base() {
        Some(PeftModel::with_gradients(
            base.clone(),
            &lora,
            &[0],
            gradients,
        )?)
    } else {
        None
    };
    for (i, &(lr, seed)) in members.iter().enumerate() {
        if diverged.get(i).copied().unwrap_or(true) {
            continue;
        }
        let to = member_dir(dir, lr, seed);
        peft::pretrained::save_pretrained(model, i, &lora, initial.as_ref(), name, &to)
            .map_err(|e| anyhow::anyhow!("cannot save the adapter {}: {e}", to.display()))?;
    }
    Ok(())
}

/// With `save_adapters = "best"`, removes a finished cell's adapters of
/// every learning rate but its best (by the study's metric, from
/// `trials`); returns the best LR's directories kept.
pub fn keep_best<M: ModelConfig>(
    config: &ExperimentConfig<M>,
    cell: &Cell,
    dir: &Path,
    trials: &[TrialRecord],
) -> anyhow::Result<Option<f64>> {
    if config.run.save_adapters != SaveAdapters::Best || !dir.is_dir() {
        return Ok(None);
    }
    let own = crate::grid::cell_trials(config, cell, trials);
    let metric = config.metric();
    let Some(best) = records::cell_curves_of(&own, metric)
        .first()
        .and_then(|curve| records::best_of_lr_by(curve, metric))
        .map(|(_, lr)| lr)
    else {
        return Ok(None);
    };
    let keep = lr_prefix(best);
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().to_string();
        if name.starts_with("lr") && !name.starts_with(&keep) {
            std::fs::remove_dir_all(entry.path())?;
        }
    }
    Ok(Some(best))
}
