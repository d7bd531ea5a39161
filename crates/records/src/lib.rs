//! Result records of lrscape and pure analyses over them.
//!
//! Plain serde types, no Burn: anything that reads results (plots, reports,
//! a notebook) depends on this crate alone.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub mod analysis;
pub mod compare;
mod derived;
pub use derived::{
    CellCurve, LrSweepEntry, Metric, RankEntry, RankLrEntry, best_lr_index, best_of_lr,
    best_of_lr_by, cell_curves, cell_curves_of, lr_sweep_results, rank_x_lr_results, trials_csv,
};
pub mod sharpness;
mod stats;
pub use sharpness::{SharpnessCell, SharpnessEntry, SharpnessFile};
pub use stats::{MeanCi, mean_ci95, t_critical_95};
pub mod verify;

/// `YYYY-MM-DD HH:MM UTC` of a Unix time (proleptic Gregorian calendar).
pub fn utc_date(unix_seconds: u64) -> String {
    let days = (unix_seconds / 86_400) as i64;
    let rem = unix_seconds % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60
    )
}

/// Where and how a result was computed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Provenance {
    /// Backend name as given to `--device` (`flex`, `ndarray`, `wgpu`, ...).
    pub backend: String,
    /// The device as Burn describes it.
    pub device: String,
    /// `git rev-parse HEAD` of the source tree, or `unknown`.
    pub git_revision: String,
    /// Whether tracked files of the source tree differed from that revision
    /// (`None` in records from before the field, or without git).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git_dirty: Option<bool>,
    pub lrscape_version: String,
}

impl Provenance {
    /// The revision, marked `+dirty` when the tree had uncommitted changes.
    pub fn revision(&self) -> String {
        match self.git_dirty {
            Some(true) => format!("{}+dirty", self.git_revision),
            _ => self.git_revision.clone(),
        }
    }
}

/// Metadata written next to a pre-trained base checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PretrainRecord {
    /// Experiment name from the config.
    pub experiment: String,
    /// Hash of everything that determines the base (task, model, pre-training).
    pub config_hash: String,
    pub val_accuracy: f64,
    pub val_loss: f64,
    /// Mean training loss of each epoch.
    pub train_loss: Vec<f64>,
    pub diverged: bool,
    pub steps: usize,
    /// Wall time of training and evaluation.
    pub seconds: f64,
    pub provenance: Provenance,
    /// SHA-256 of the saved model file: a damaged checkpoint is refused
    /// (absent in records from before the field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_sha256: Option<String>,
}

/// One fine-tuning run: one member of one grid cell.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrialRecord {
    pub experiment: String,
    /// Method name as in configs (`lora`, `dora`, `pissa_seed`, ...).
    pub method: String,
    /// Adapter rank; 0 for full fine-tuning.
    pub rank: usize,
    /// The alpha rule (`alpha_eq_r`, `constant:32`, `rslora:16`).
    pub alpha_rule: String,
    pub lora_alpha: f64,
    /// Scale on `B A` (α/r, or α/√r for rsLoRA).
    pub scaling: f64,
    /// LoRA+'s ratio of B's learning rate to A's; absent for other methods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loraplus_lr_ratio: Option<f64>,
    /// Init of `A` (`kaiming_uniform`, `gaussian:0.02`).
    pub init: String,
    /// Target modules (`all`, `qv`, ...).
    pub targets: String,
    /// Where the low-rank path was computed (`weight_space`,
    /// `activation_space`): the same function, rounded differently. Absent
    /// for full fine-tuning and in records written before it was recorded
    /// (those adapters ran in activation space).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adapter_compute: Option<String>,
    /// Fine-tuning examples per step.
    pub batch_size: usize,
    /// Fine-tuning epochs.
    pub epochs: usize,
    pub lr: f64,
    pub seed: u64,
    /// Mean training loss of each epoch (`null` in JSON where it was not
    /// finite: a diverged trial).
    #[serde(with = "nullable::vec")]
    pub train_loss: Vec<f64>,
    pub val_accuracy: f64,
    #[serde(with = "nullable::one")]
    pub val_loss: f64,
    pub steps: usize,
    /// Wall time of the population this trial trained in, divided by its size.
    pub seconds: f64,
    pub diverged: bool,
    /// Hash of the whole experiment config.
    pub config_hash: String,
    pub provenance: Provenance,
}

impl TrialRecord {
    /// A made-up trial (for figures' tests and demos): LoRA-style adapter
    /// settings (`alpha_eq_r`, `kaiming_uniform`, all modules; `none` at
    /// rank 0), batch 64 × 1 epoch, 10 steps, one second, provenance
    /// `synthetic`.
    pub fn synthetic(method: &str, rank: usize, lr: f64, seed: u64, val_accuracy: f64) -> Self {
        let adapter = rank > 0;
        TrialRecord {
            experiment: "synthetic".into(),
            method: method.into(),
            rank,
            alpha_rule: if adapter { "alpha_eq_r" } else { "none" }.into(),
            lora_alpha: rank as f64,
            scaling: if adapter { 1.0 } else { 0.0 },
            loraplus_lr_ratio: None,
            init: if adapter { "kaiming_uniform" } else { "none" }.into(),
            targets: "all".into(),
            adapter_compute: adapter.then(|| "weight_space".into()),
            batch_size: 64,
            epochs: 1,
            lr,
            seed,
            train_loss: vec![1.0],
            val_accuracy,
            val_loss: 0.5,
            steps: 10,
            seconds: 1.0,
            diverged: false,
            config_hash: "synthetic".into(),
            provenance: Provenance {
                backend: "synthetic".into(),
                device: "none".into(),
                git_revision: "synthetic".into(),
                git_dirty: None,
                lrscape_version: env!("CARGO_PKG_VERSION").into(),
            },
        }
    }

    /// `alpha_rule/init/targets`: how a method's adapter was set up.
    pub fn variant(&self) -> String {
        variant_label(
            &self.alpha_rule,
            &self.init,
            &self.targets,
            self.loraplus_lr_ratio,
        )
    }

    /// `bs64/ep3`: the fine-tuning budget.
    pub fn budget(&self) -> String {
        budget_label(self.batch_size, self.epochs)
    }

    /// Identifies a trial within an experiment: a rerun skips trials whose
    /// key is already recorded.
    pub fn key(&self) -> TrialKey {
        TrialKey {
            method: self.method.clone(),
            rank: self.rank,
            alpha_rule: self.alpha_rule.clone(),
            init: self.init.clone(),
            targets: self.targets.clone(),
            batch_size: self.batch_size,
            epochs: self.epochs,
            lr_bits: self.lr.to_bits(),
            seed: self.seed,
            loraplus_lr_ratio_bits: self.loraplus_lr_ratio.map(f64::to_bits),
        }
    }
}

/// `alpha/init/targets`, and `/ratio<r>` for LoRA+: how records and figures
/// name a cell's variant.
pub fn variant_label(alpha: &str, init: &str, targets: &str, loraplus: Option<f64>) -> String {
    match loraplus {
        Some(ratio) => format!("{alpha}/{init}/{targets}/ratio{ratio}"),
        None => format!("{alpha}/{init}/{targets}"),
    }
}

/// JSON has no NaN or infinity: such values are written as `null` and read
/// back as NaN.
mod nullable {
    pub mod one {
        use serde::{Deserialize, Deserializer, Serializer};

        pub fn serialize<S: Serializer>(value: &f64, s: S) -> Result<S::Ok, S::Error> {
            if value.is_finite() {
                s.serialize_f64(*value)
            } else {
                s.serialize_none()
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
            Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
        }
    }

    pub mod vec {
        use serde::{Deserialize, Deserializer, Serializer};

        pub fn serialize<S: Serializer>(values: &[f64], s: S) -> Result<S::Ok, S::Error> {
            s.collect_seq(values.iter().map(|v| v.is_finite().then_some(*v)))
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<f64>, D::Error> {
            let values = Vec::<Option<f64>>::deserialize(d)?;
            Ok(values.into_iter().map(|v| v.unwrap_or(f64::NAN)).collect())
        }
    }
}

/// The grid coordinates of a trial.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TrialKey {
    pub method: String,
    pub rank: usize,
    pub alpha_rule: String,
    pub init: String,
    pub targets: String,
    pub batch_size: usize,
    pub epochs: usize,
    pub lr_bits: u64,
    pub seed: u64,
    pub loraplus_lr_ratio_bits: Option<u64>,
}

/// `bs64/ep3`: how records and figures name a fine-tuning budget.
pub fn budget_label(batch_size: usize, epochs: usize) -> String {
    format!("bs{batch_size}/ep{epochs}")
}

/// Labels for method names as the paper writes them.
pub fn method_label(method: &str) -> String {
    let known: BTreeMap<&str, &str> = [
        ("lora", "LoRA"),
        ("rslora", "rsLoRA"),
        ("loraplus", "LoRA+"),
        ("init_ab", "Init[AB]"),
        ("dora", "DoRA"),
        ("pissa", "PiSSA"),
        ("milora", "MiLoRA"),
        ("olora", "OLoRA"),
        ("lora_ga", "LoRA-GA"),
        ("gralora", "GraLoRA"),
        ("randlora", "RandLoRA"),
        ("loft", "LoFT"),
        ("full", "Full FT"),
        ("dora_seed", "DoRA (seed)"),
        ("pissa_seed", "PiSSA-like (seed)"),
        ("milora_seed", "MiLoRA-like (seed)"),
    ]
    .into_iter()
    .collect();
    known
        .get(method)
        .map_or_else(|| method.to_string(), |l| l.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates() {
        assert_eq!(utc_date(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc_date(951_782_400), "2000-02-29 00:00 UTC");
        assert_eq!(utc_date(1_700_000_000), "2023-11-14 22:13 UTC");
    }

    /// LoRA+'s ratio is part of a record's key and variant; other records
    /// are written (and read) as before, without the field.
    #[test]
    fn the_loraplus_ratio_names_its_trials() {
        let plain = TrialRecord::synthetic("lora", 4, 1e-3, 0, 0.5);
        assert!(
            !serde_json::to_string(&plain)
                .unwrap()
                .contains("loraplus_lr_ratio")
        );
        assert_eq!(plain.variant(), "alpha_eq_r/kaiming_uniform/all");
        let mut plus = TrialRecord::synthetic("loraplus", 4, 1e-3, 0, 0.5);
        plus.loraplus_lr_ratio = Some(16.0);
        let back: TrialRecord =
            serde_json::from_str(&serde_json::to_string(&plus).unwrap()).unwrap();
        assert_eq!(back.loraplus_lr_ratio, Some(16.0));
        assert_eq!(back.variant(), "alpha_eq_r/kaiming_uniform/all/ratio16");
        let mut other = plus.clone();
        other.loraplus_lr_ratio = Some(4.0);
        assert_ne!(other.key(), plus.key());
    }

    /// A trial's key holds its LR's bits: reading a record back must give
    /// the very f64 that was written, or a resumed run would not recognise
    /// its own trials (serde_json's default float parser is off by an ulp
    /// on values such as 1.1247e-4 computed as 1.1247 × 1e-4; the
    /// `float_roundtrip` feature parses exactly).
    #[test]
    fn learning_rates_read_back_bit_for_bit() {
        for lr in [
            1.1247 * 1e-4,
            1.1247 * 1e-5,
            6.3246 * 1e-6,
            3.5566 * 1e-5,
            0.1 + 0.2,
        ] {
            let t = TrialRecord::synthetic("lora", 4, lr, 0, 0.5);
            let back: TrialRecord =
                serde_json::from_str(&serde_json::to_string(&t).unwrap()).unwrap();
            assert_eq!(back.lr.to_bits(), lr.to_bits(), "{lr:e}");
            assert_eq!(back.key(), t.key());
        }
    }

    fn sample() -> PretrainRecord {
        PretrainRecord {
            experiment: "quick".into(),
            config_hash: "abc".into(),
            val_accuracy: 0.97,
            val_loss: 0.1,
            train_loss: vec![2.0, 1.0],
            diverged: false,
            steps: 10,
            seconds: 1.5,
            provenance: Provenance {
                backend: "flex".into(),
                device: "cpu".into(),
                git_revision: "unknown".into(),
                git_dirty: Some(true),
                lrscape_version: "0.1.0".into(),
            },
            model_sha256: Some("00ff".into()),
        }
    }

    #[test]
    fn pretrain_record_round_trips_and_rejects_unknown_fields() {
        let record = sample();
        let text = serde_json::to_string(&record).unwrap();
        assert_eq!(
            serde_json::from_str::<PretrainRecord>(&text).unwrap(),
            record
        );
        let tampered = text.replacen("\"steps\"", "\"stepz\"", 1);
        let err = serde_json::from_str::<PretrainRecord>(&tampered).unwrap_err();
        assert!(err.to_string().contains("stepz"), "{err}");
    }
}
