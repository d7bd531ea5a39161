//! Result records of lrscape and pure analyses over them.
//!
//! Plain serde types, no Burn: anything that reads results (plots, reports,
//! a notebook) depends on this crate alone.

use serde::{Deserialize, Serialize};

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
    pub lrscape_version: String,
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
}

#[cfg(test)]
mod tests {
    use super::*;

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
                lrscape_version: "0.1.0".into(),
            },
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
