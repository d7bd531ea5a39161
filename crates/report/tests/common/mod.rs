//! What the end-to-end tests share.

/// flex, as `--device flex` selects it.
pub fn flex() -> train::SelectedDevice {
    train::SelectedDevice {
        name: "flex".into(),
        backend: "flex",
        device: burn::tensor::Device::flex(),
    }
}
