//! Pre-training the base model and caching it by config hash.
//!
//! A base lives in `<out>/base/<hash>/` as `model.bpk` (what the family's
//! [`ModelConfig::save_base`] writes) and `base.json` ([`PretrainRecord`]). Loading checks the hash and the shapes,
//! and re-evaluating a loaded base gives the recorded accuracy.

use nn::ModelConfig;
use std::path::{Path, PathBuf};

use anyhow::Context;
use records::{PretrainRecord, Provenance};
use synth_data::{Dataset, SequenceDataset};
use train::{Member, Schedule, SelectedDevice, evaluate, train_population};

use crate::config::ExperimentConfig;
use crate::events::RunEvents;
use crate::layout;

/// The pre-training splits (train, val) of an experiment.
pub fn pretrain_data<M: ModelConfig>(
    config: &ExperimentConfig<M>,
) -> anyhow::Result<(SequenceDataset, SequenceDataset)> {
    crate::task::splits(config, crate::task::Phase::Pretrain)
}

/// Directory of the base for `config` under the experiment output `out`.
pub fn base_dir<M: ModelConfig>(out: &Path, config: &ExperimentConfig<M>) -> PathBuf {
    layout::base_dir(out, &config.pretrain_hash())
}

fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// Provenance of results computed now on `device`: the revision of the
/// source tree this binary was built from, and whether its tracked files
/// differ from it.
pub fn provenance(device: &SelectedDevice) -> Provenance {
    let (git_revision, git_dirty) = git_state(Path::new(env!("CARGO_MANIFEST_DIR")));
    Provenance {
        backend: device.backend.to_string(),
        device: format!("{:?}", device.device),
        git_revision,
        git_dirty,
        lrscape_version: env!("CARGO_PKG_VERSION").to_string(),
    }
}

/// `HEAD` of the git tree holding `dir` (`unknown` outside one or without
/// git) and whether its tracked files have uncommitted changes.
pub fn git_state(dir: &Path) -> (String, Option<bool>) {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    match git(&["rev-parse", "HEAD"]) {
        Some(revision) => {
            let dirty =
                git(&["status", "--porcelain", "--untracked-files=no"]).map(|s| !s.is_empty());
            (revision, dirty)
        }
        None => ("unknown".into(), None),
    }
}

/// Trains the base as the seed notebook does (full model, AdamW, one run),
/// evaluates it and writes it to [`base_dir`]. Returns the model (on the
/// training device) and its record.
pub fn pretrain<M: ModelConfig>(
    config: &ExperimentConfig<M>,
    out: &Path,
    device: &SelectedDevice,
    events: &dyn RunEvents,
) -> anyhow::Result<(M::Model, PretrainRecord)> {
    let started = std::time::Instant::now();
    let p = config.pretrain.as_ref().with_context(|| {
        format!(
            "{}: the base is the checkpoint the model names; there is nothing to pre-train",
            config.name
        )
    })?;
    let (train, val) = pretrain_data(config)?;
    let train_device = device.device.clone().autodiff();
    let model = config.model.init(p.seed, &train_device)?;
    let epochs = crate::task::pretrain_epochs(config)?;
    let schedule = Schedule {
        epochs,
        batch_size: p.batch_size,
        max_steps: None,
        budget: None,
        lr: train::LrSchedule::CONSTANT,
    };
    events.pretrain_started((epochs * train.len().div_ceil(p.batch_size)) as u64);
    let member = Member {
        lr: p.lr,
        data_seed: config.task.data_seed,
    };
    let outcome = train_population(
        model,
        &train,
        &[member],
        schedule,
        crate::grid::adamw(p.weight_decay),
        &train_device,
        &|| events.step(),
    );
    events.pretrain_finished();
    let eval = evaluate(&outcome.model, &val, p.batch_size.max(256), &train_device);
    if outcome.diverged[0] || !eval.loss[0].is_finite() {
        anyhow::bail!(
            "pre-training diverged (validation loss {} at pretrain.lr = {}): the base is not \
             cached; lower pretrain.lr",
            eval.loss[0],
            p.lr
        );
    }
    let mut record = PretrainRecord {
        experiment: config.name.clone(),
        config_hash: config.pretrain_hash(),
        val_accuracy: eval.accuracy[0],
        val_loss: eval.loss[0],
        train_loss: outcome.epoch_loss[0].clone(),
        diverged: outcome.diverged[0],
        steps: outcome.steps,
        seconds: started.elapsed().as_secs_f64(),
        provenance: provenance(device),
        model_sha256: None,
    };
    let dir = base_dir(out, config);
    save_base::<M>(&outcome.model, &mut record, &dir)?;
    save_hf(config, &outcome.model, &dir)?;
    Ok((outcome.model, record))
}

/// Writes the base as a Hugging Face directory (`<base>/hf/`: config,
/// weights and, for a text task, the tokenizer) where the family has that
/// format, through a temporary directory and a rename.
fn save_hf<M: ModelConfig>(
    config: &ExperimentConfig<M>,
    model: &M::Model,
    dir: &Path,
) -> anyhow::Result<()> {
    let tmp = dir.join(format!("{}.tmp-{}", layout::BASE_HF, std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let written = config
        .model
        .save_pretrained(model, &tmp)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", tmp.display()))?;
    if !written {
        return Ok(());
    }
    // A tokenizer trained here goes with the base it was trained for.
    if !config.task.kind.is_synthetic() && config.model.tokenizer().is_none() {
        let (tokenizer, _) = crate::task::tokenizer(config)?;
        tokenizer.save(&tmp.join(text_data::TOKENIZER))?;
    }
    let hf = dir.join(layout::BASE_HF);
    let _ = std::fs::remove_dir_all(&hf);
    std::fs::rename(&tmp, &hf).with_context(|| format!("cannot move {} into place", hf.display()))
}

/// Writes `model.bpk` and `base.json` into `dir`, each through a temporary
/// file and a rename so an interrupted write never leaves a half checkpoint.
pub(crate) fn save_base<M: ModelConfig>(
    model: &M::Model,
    record: &mut PretrainRecord,
    dir: &Path,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let model_tmp = dir.join(format!("{}.tmp", layout::BASE_MODEL));
    M::save_base(model, &model_tmp)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", model_tmp.display()))?;
    let saved = if model_tmp.exists() {
        model_tmp.clone()
    } else {
        // Some Burn stores append their own extension.
        model_tmp.with_extension("tmp.bpk")
    };
    let bytes =
        std::fs::read(&saved).with_context(|| format!("cannot read back {}", saved.display()))?;
    record.model_sha256 = Some(sha256(&bytes));
    std::fs::rename(&saved, dir.join(layout::BASE_MODEL))
        .with_context(|| format!("cannot move checkpoint into {}", dir.display()))?;
    let meta_tmp = dir.join(format!("{}.tmp", layout::BASE_RECORD));
    std::fs::write(&meta_tmp, serde_json::to_string_pretty(record)? + "\n")
        .with_context(|| format!("cannot write {}", meta_tmp.display()))?;
    std::fs::rename(&meta_tmp, dir.join(layout::BASE_RECORD))?;
    Ok(())
}

/// The base read from the checkpoint the model names (`model.path`), or
/// `None` when the base is pre-trained here.
pub fn checkpoint_base<M: ModelConfig>(
    config: &ExperimentConfig<M>,
    device: &burn::tensor::Device,
) -> Option<anyhow::Result<M::Model>> {
    let dir = config.model.checkpoint()?;
    Some(
        config
            .model
            .load_checkpoint(device)
            .map_err(|e| anyhow::anyhow!("cannot read the base {}: {e}", dir.display())),
    )
}

/// Loads the base for `config` from [`base_dir`]: fails with a message
/// naming the file when it is missing, belongs to another config, or does
/// not fit the model's shapes.
pub fn load_base<M: ModelConfig>(
    config: &ExperimentConfig<M>,
    out: &Path,
    device: &burn::tensor::Device,
) -> anyhow::Result<(M::Model, PretrainRecord)> {
    let dir = base_dir(out, config);
    let meta_path = dir.join(layout::BASE_RECORD);
    let text = std::fs::read_to_string(&meta_path).with_context(|| {
        format!(
            "no pre-trained base at {} (run `lrscape pretrain --config <file> --out {}`)",
            meta_path.display(),
            out.display()
        )
    })?;
    let record: PretrainRecord = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a valid base record", meta_path.display()))?;
    let expected = config.pretrain_hash();
    if record.config_hash != expected {
        anyhow::bail!(
            "{} belongs to config hash {}, this config's is {expected}; re-run `lrscape pretrain`",
            meta_path.display(),
            record.config_hash
        );
    }
    let model_path = dir.join(layout::BASE_MODEL);
    if record.diverged || !record.val_loss.is_finite() {
        anyhow::bail!(
            "{} records a diverged pre-training (validation loss {}); delete {} and re-run \
             `lrscape pretrain` with a lower pretrain.lr",
            meta_path.display(),
            record.val_loss,
            dir.display()
        );
    }
    if let Some(expected) = &record.model_sha256 {
        let bytes = std::fs::read(&model_path)
            .with_context(|| format!("cannot read {}", model_path.display()))?;
        let found = sha256(&bytes);
        if &found != expected {
            anyhow::bail!(
                "{} is damaged (SHA-256 {found}, {} records {expected}); delete it and \
                 re-run `lrscape pretrain`",
                model_path.display(),
                meta_path.display()
            );
        }
    }
    let model = config.model.load_base(&model_path, device).map_err(|e| {
        anyhow::anyhow!(
            "cannot load {} for this config's model ({e}); delete it and re-run `lrscape pretrain`",
            model_path.display()
        )
    })?;
    Ok((model, record))
}

#[cfg(test)]
mod tests {
    use super::git_state;
    use std::process::Command;

    fn git(dir: &std::path::Path, args: &[&str]) {
        let status = Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(["-c", "user.name=t", "-c", "user.email=t@t"])
            .args(args)
            .output()
            .unwrap();
        assert!(status.status.success(), "git {args:?}: {status:?}");
    }

    #[test]
    fn git_dirty_is_uncommitted_changes_to_tracked_files() {
        let dir = tempfile::tempdir().unwrap();
        let dir = dir.path();
        assert_eq!(git_state(dir), ("unknown".to_string(), None));
        git(dir, &["init", "-q"]);
        std::fs::write(dir.join("a.rs"), "fn main() {}\n").unwrap();
        git(dir, &["add", "a.rs"]);
        git(dir, &["commit", "-q", "-m", "a"]);
        let (revision, dirty) = git_state(dir);
        assert_eq!(revision.len(), 40, "{revision}");
        assert_eq!(dirty, Some(false));
        // An untracked file is not a change to what was built.
        std::fs::write(dir.join("notes.txt"), "x").unwrap();
        assert_eq!(git_state(dir).1, Some(false));
        std::fs::write(dir.join("a.rs"), "fn main() { panic!() }\n").unwrap();
        assert_eq!(git_state(dir), (revision, Some(true)));
    }
}
