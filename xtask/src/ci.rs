//! `cargo xtask ci`: what CI runs.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, bail};

use crate::{cargo, run, target_dir};

/// Format check, tidy, clippy, the test suite with every backend this
/// machine runs (the committed reports' regeneration among the tests), the
/// backend parity and SLURM tests, a CUDA type-check, and libtorch's parity
/// test where torch 2.9.0 is installed.
pub fn ci() -> anyhow::Result<()> {
    let mut fmt = cargo();
    fmt.args(["fmt", "--all", "--check"]);
    run(fmt)?;
    // The crate graph keeps the arrows of ARCHITECTURE.md.
    crate::tidy::tidy()?;
    // One build of the test suite with every backend that runs on
    // this CPU machine: flex (the default), ndarray, and wgpu where
    // a Vulkan driver is installed (Mesa's llvmpipe on CI). Clippy
    // sees the same features, so backend-gated code is linted too.
    let features = ci_backend_features()?;
    eprintln!("ci: testing with {features}");
    let mut clippy = cargo();
    clippy.args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--features",
        &features,
    ]);
    clippy.args(["--", "-D", "warnings"]);
    run(clippy)?;
    // The libraries' docs build without a broken link (the binary's doc
    // comments are its --help texts).
    let mut doc = cargo();
    doc.args(["doc", "--no-deps", "--workspace", "--exclude", "lrscape"]);
    doc.args(["--exclude", "xtask"]);
    doc.env("RUSTDOCFLAGS", "-D warnings");
    run(doc)?;
    let mut test = cargo();
    test.args(["test", "--workspace", "--features", &features, "--"]);
    test.args(["--skip", "every_compiled_backend_follows_flex"]);
    run(test)?;
    // The same population on each other backend follows flex's loss
    // trajectory (crates/lrscape/tests/backend_parity.rs).
    let mut parity = cargo();
    parity.args(["test", "--package", "lrscape", "--features", &features]);
    parity.args(["--test", "backend_parity", "--", "--nocapture"]);
    run(parity)?;
    // A real one-node SLURM cluster (tools/slurm/cluster.sh): the
    // sharded sweep as a job array, merged, with a requeued task.
    // Under CI=true it starts the cluster itself and never skips.
    let mut slurm = cargo();
    slurm.args(["test", "--package", "lrscape", "--features", &features]);
    slurm.args(["--test", "slurm", "--", "--ignored", "--nocapture"]);
    run(slurm)?;
    // CUDA cannot run here; type-check it. `DOCS_RS` makes
    // tracel-llvm-bundler (cubecl-cuda's LLVM) skip its download.
    // Build scripts that watch `DOCS_RS` would rerun (and their
    // dependents rebuild) in the shared target directory at every
    // switch, so the check has a directory of its own.
    let mut cuda = cargo();
    cuda.args(["check", "--package", "lrscape", "--features", "cuda"]);
    cuda.env("DOCS_RS", "1");
    cuda.env("CARGO_TARGET_DIR", target_dir().join("cuda-check"));
    run(cuda)?;
    python_references()?;
    // libtorch (burn-tch) only where PyTorch 2.9.0 is installed, the
    // one version tch 0.22 builds against; a build of its own.
    match torch_2_9_lib()? {
        Some(lib) => {
            eprintln!("ci: torch 2.9.0 found ({}): tch parity test", lib.display());
            let mut tch = cargo();
            tch.args(["test", "--package", "lrscape", "--features", "tch"]);
            tch.args(["--test", "backend_parity", "--", "--nocapture"]);
            tch.env("LIBTORCH_USE_PYTORCH", "1");
            let paths = std::env::var_os("LD_LIBRARY_PATH").unwrap_or_default();
            let joined =
                std::env::join_paths(std::iter::once(lib).chain(std::env::split_paths(&paths)))?;
            tch.env("LD_LIBRARY_PATH", joined);
            run(tch)
        }
        None => {
            eprintln!(
                "ci: python3 has no torch 2.9.0, so no tch parity test \
                 (pip install torch==2.9.0 adds it)"
            );
            Ok(())
        }
    }
}

/// `lrscape/ndarray`, plus `lrscape/wgpu` where a Vulkan driver is installed.
/// Under `CI=true` wgpu is required: CI installs Mesa's CPU driver
/// (`.ci/run`), so a missing driver is a broken CI, not a skip.
fn ci_backend_features() -> anyhow::Result<String> {
    let icd_dirs = ["/usr/share/vulkan/icd.d", "/etc/vulkan/icd.d"];
    let has_vulkan = icd_dirs.iter().any(|dir| {
        std::fs::read_dir(dir).is_ok_and(|entries| {
            entries
                .flatten()
                .any(|e| e.path().extension().is_some_and(|x| x == "json"))
        })
    });
    let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    match (has_vulkan, ci) {
        (true, _) => Ok("lrscape/ndarray,lrscape/wgpu".into()),
        (false, true) => bail!(
            "CI=true but no Vulkan driver (no ICD json in {}): install mesa-vulkan-drivers \
             (.ci/run does) for the wgpu parity test",
            icd_dirs.join(" or ")
        ),
        (false, false) => {
            eprintln!(
                "ci: no Vulkan driver found, so no wgpu parity test \
                 (Debian/Ubuntu: apt install mesa-vulkan-drivers libvulkan1)"
            );
            Ok("lrscape/ndarray".into())
        }
    }
}

/// Whether `python3 -c "import <modules>"` succeeds.
fn python_imports(modules: &str) -> bool {
    Command::new("python3")
        .args(["-c", &format!("import {modules}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// PyTorch 2.9.0's library directory when `python3` imports exactly that
/// version (tch 0.22's C++ wrapper compiles against no other).
fn torch_2_9_lib() -> anyhow::Result<Option<PathBuf>> {
    let script = "import os, torch\n\
                  if torch.__version__.split('+')[0] == '2.9.0':\n    \
                  print(os.path.join(os.path.dirname(torch.__file__), 'lib'))";
    let Ok(out) = Command::new("python3").args(["-c", script]).output() else {
        return Ok(None);
    };
    let lib = String::from_utf8(out.stdout).context("python3 printed non-UTF-8")?;
    let lib = lib.trim();
    Ok((out.status.success() && !lib.is_empty()).then(|| PathBuf::from(lib)))
}

/// The tests that check lrscape against PyTorch, `transformers` and PEFT
/// (ignored by default), each where python3 imports what it needs.
fn python_references() -> anyhow::Result<()> {
    // The bench's PyTorch reference step, where python3 imports torch.
    if python_imports("torch") {
        let mut reference = cargo();
        reference.args(["test", "--package", "lrscape", "--test", "bench"]);
        reference.args([
            "--",
            "--ignored",
            "pytorch_reference_runs_when_torch_is_there",
        ]);
        run(reference)?;
    } else {
        eprintln!(
            "ci: python3 has no torch, so the bench's PyTorch reference test is skipped \
             (pip install torch adds it)"
        );
    }
    // transformers reading GPT-2, Llama and encoder directories lrscape saved,
    // where python3 imports it.
    if python_imports("torch, transformers") {
        for family in ["gpt2", "llama", "bert"] {
            let mut interop = cargo();
            interop.args(["test", "--package", family, "--test", "golden"]);
            interop.args(["--", "--ignored", "transformers_loads_a_saved_directory"]);
            run(interop)?;
        }
        // An encoder base pre-trained here, as transformers reads it.
        let mut base = cargo();
        base.args(["test", "--package", "lrscape", "--test", "bert_classify"]);
        base.args(["--", "--ignored", "transformers_loads_a_pretrained"]);
        run(base)?;
    } else {
        eprintln!(
            "ci: python3 has no transformers, so loading lrscape's model files in \
             transformers is skipped (pip install torch transformers adds it)"
        );
    }
    // PEFT reading every kind of adapter lrscape saved, where python3
    // imports it.
    if python_imports("torch, transformers, peft, tokenizers") {
        let mut peft = cargo();
        peft.args(["test", "--package", "lrscape"]);
        peft.args([
            "--test",
            "gpt2_text",
            "--test",
            "gpt2_classify",
            "--test",
            "llama_text",
            "--test",
            "bert_classify",
        ]);
        // Every test named `peft_loads_…`.
        peft.args(["--", "--ignored", "peft_loads_"]);
        run(peft)?;
    } else {
        eprintln!(
            "ci: python3 has no peft, so loading lrscape's adapters in PEFT is skipped \
             (pip install torch transformers peft adds it)"
        );
    }
    Ok(())
}
