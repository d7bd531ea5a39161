//! Backend selection: which Burn backends are compiled in (cargo features of
//! this crate) and which one a run uses (`--device`).
//!
//! This is the only crate that names backends; everything else takes a
//! [`Device`]. Only the `lrscape` binary (and test crates) depend on it.

use burn::tensor::Device;
pub use train::SelectedDevice;

/// Every backend lrscape knows, in the order `--device` documents them.
pub const KNOWN: [&str; 7] = ["flex", "ndarray", "wgpu", "vulkan", "metal", "cuda", "tch"];

/// Backends compiled into this binary, in the order `--device` documents them.
pub fn compiled_backends() -> Vec<&'static str> {
    let mut names = Vec::new();
    if cfg!(feature = "flex") {
        names.push("flex");
    }
    if cfg!(feature = "ndarray") {
        names.push("ndarray");
    }
    if cfg!(feature = "wgpu") {
        names.push("wgpu");
    }
    if cfg!(feature = "vulkan") {
        names.push("vulkan");
    }
    if cfg!(feature = "metal") {
        names.push("metal");
    }
    if cfg!(feature = "cuda") {
        names.push("cuda");
    }
    if cfg!(feature = "tch") {
        names.push("tch");
    }
    names
}

/// The device used when `--device` is not given: the first compiled backend
/// (`flex` in a default build, the fastest CPU backend measured here).
pub fn default_device_name() -> &'static str {
    compiled_backends().first().copied().unwrap_or("none")
}

/// Parses `--device`: a backend name, optionally `:index` for GPU backends
/// (`cuda:1`) or `:cpu` for wgpu/vulkan on a CPU adapter (`wgpu:cpu`).
pub fn select_device(spec: &str) -> anyhow::Result<SelectedDevice> {
    let (backend, arg) = match spec.split_once(':') {
        Some((b, a)) => (b, Some(a)),
        None => (spec, None),
    };
    let compiled = compiled_backends();
    let Some(&backend) = KNOWN.iter().find(|&&k| k == backend) else {
        anyhow::bail!(
            "--device {spec:?}: unknown backend {backend:?}; known: {} (compiled in: {})",
            KNOWN.join(", "),
            compiled.join(", ")
        );
    };
    if !compiled.contains(&backend) {
        anyhow::bail!(
            "--device {spec:?}: backend {backend:?} is not compiled into this binary \
             (compiled in: {}); rebuild with `--features {backend}`",
            compiled.join(", ")
        );
    }
    let index = |arg: Option<&str>| -> anyhow::Result<usize> {
        match arg {
            None => Ok(0),
            Some(a) => a.parse().map_err(|_| {
                anyhow::anyhow!("--device {spec:?}: {a:?} is not a device index (e.g. {backend}:0)")
            }),
        }
    };
    let device = make_device(backend, arg, &index)?;
    Ok(SelectedDevice {
        name: spec.to_string(),
        backend,
        device,
    })
}

#[allow(unused_variables)]
fn make_device(
    backend: &str,
    arg: Option<&str>,
    index: &dyn Fn(Option<&str>) -> anyhow::Result<usize>,
) -> anyhow::Result<Device> {
    let no_arg = |arg: Option<&str>| -> anyhow::Result<()> {
        match arg {
            None => Ok(()),
            Some(a) => anyhow::bail!("--device {backend}:{a}: {backend} takes no ':' argument"),
        }
    };
    match backend {
        #[cfg(feature = "flex")]
        "flex" => no_arg(arg).map(|()| Device::flex()),
        // Deprecated upstream, still supported: kept for comparison runs.
        #[cfg(feature = "ndarray")]
        #[allow(deprecated)]
        "ndarray" => no_arg(arg).map(|()| Device::ndarray()),
        #[cfg(feature = "wgpu")]
        "wgpu" => Ok(Device::wgpu(wgpu_kind(arg, index)?)),
        #[cfg(feature = "vulkan")]
        "vulkan" => Ok(Device::vulkan(wgpu_kind(arg, index)?)),
        #[cfg(feature = "metal")]
        "metal" => Ok(Device::metal(wgpu_kind(arg, index)?)),
        #[cfg(feature = "cuda")]
        "cuda" => Ok(Device::cuda(index(arg)?)),
        // Deprecated upstream too; checked against flex by the parity test.
        #[cfg(feature = "tch")]
        #[allow(deprecated)]
        "tch" => match arg {
            None | Some("cpu") => Ok(Device::libtorch()),
            Some(_) => Ok(Device::libtorch_cuda(index(arg)?)),
        },
        other => anyhow::bail!("backend {other:?} is not compiled into this binary"),
    }
}

#[cfg(any(feature = "wgpu", feature = "vulkan", feature = "metal"))]
fn wgpu_kind(
    arg: Option<&str>,
    index: &dyn Fn(Option<&str>) -> anyhow::Result<usize>,
) -> anyhow::Result<burn::tensor::DeviceKind> {
    use burn::tensor::DeviceKind;
    Ok(match arg {
        None => DeviceKind::DefaultDevice,
        Some("cpu") => DeviceKind::Cpu,
        Some(_) => DeviceKind::DiscreteGpu(index(arg)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_build_has_flex_first() {
        assert_eq!(default_device_name(), "flex");
        let selected = select_device("flex").unwrap();
        assert_eq!((selected.backend, selected.name.as_str()), ("flex", "flex"));
        assert!(!selected.is_gpu());
    }

    #[test]
    fn gpu_devices_are_told_from_cpu_ones_by_their_spelling() {
        let gpu = |name: &str, backend: &'static str| {
            SelectedDevice {
                name: name.to_string(),
                backend,
                device: select_device("flex").unwrap().device,
            }
            .is_gpu()
        };
        for (name, backend) in [
            ("cuda", "cuda"),
            ("cuda:1", "cuda"),
            ("metal", "metal"),
            ("wgpu", "wgpu"),
            ("vulkan:0", "vulkan"),
            ("tch:0", "tch"),
        ] {
            assert!(gpu(name, backend), "{name}");
        }
        for (name, backend) in [
            ("flex", "flex"),
            ("ndarray", "ndarray"),
            ("wgpu:cpu", "wgpu"),
            ("vulkan:cpu", "vulkan"),
            ("tch", "tch"),
            ("tch:cpu", "tch"),
        ] {
            assert!(!gpu(name, backend), "{name}");
        }
    }

    #[test]
    fn bad_device_flags_say_what_is_allowed() {
        let err = select_device("tpu").unwrap_err().to_string();
        assert!(
            err.contains("unknown backend \"tpu\"") && err.contains("flex"),
            "{err}"
        );
        let err = select_device("flex:3").unwrap_err().to_string();
        assert!(err.contains("takes no ':' argument"), "{err}");
        if !compiled_backends().contains(&"cuda") {
            let err = select_device("cuda").unwrap_err().to_string();
            assert!(err.contains("--features cuda"), "{err}");
        }
    }
}
