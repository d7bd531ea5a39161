//! A device and the `--device` spelling that chose it.

use burn::tensor::Device;

/// A chosen backend and device; made by the `backends` crate from a
/// `--device` spelling, recorded with every result.
#[derive(Debug, Clone)]
pub struct SelectedDevice {
    /// The `--device` spelling (`flex`, `cuda:0`, ...).
    pub name: String,
    /// The backend family (`flex`, `ndarray`, `wgpu`, `vulkan`, `metal`, `cuda`, `tch`).
    pub backend: &'static str,
    pub device: Device,
}

impl SelectedDevice {
    /// Whether the device is a GPU: `cuda`, `metal`, `tch:N`, and `wgpu` /
    /// `vulkan` unless `:cpu` (their default adapter is a GPU where one
    /// is; on a machine with Mesa's llvmpipe alone it is that CPU device,
    /// which parallelises a population itself just the same).
    pub fn is_gpu(&self) -> bool {
        let arg = self.name.split_once(':').map(|(_, a)| a);
        match self.backend {
            "cuda" | "metal" => true,
            "wgpu" | "vulkan" => arg != Some("cpu"),
            "tch" => arg.is_some_and(|a| a != "cpu"),
            _ => false,
        }
    }
}
