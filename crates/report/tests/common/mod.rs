//! What the end-to-end tests share.

use std::path::Path;

use records::TrialRecord;

/// flex, as `--device flex` selects it.
pub fn flex() -> train::SelectedDevice {
    train::SelectedDevice {
        name: "flex".into(),
        backend: "flex",
        device: burn::tensor::Device::flex(),
    }
}

/// The records of `out/trials.jsonl`, in file order.
pub fn trials(out: &Path) -> Vec<TrialRecord> {
    std::fs::read_to_string(out.join("trials.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}
