//! `cargo xtask`: the project's own commands. Shells out to cargo and the
//! `lrscape` binary only.
//!
//! - `cargo xtask ci`: what CI runs (format check, clippy, the test suite
//!   built once with flex, ndarray and (where a Vulkan driver is installed)
//!   wgpu, the backend parity test (crates/sweep/tests/backend_parity.rs),
//!   then the SLURM test on a one-node cluster: crates/sweep/tests/slurm.rs;
//!   `cargo check` of the CUDA backend, which cannot run here; and, where
//!   `python3` imports torch 2.9.0, the parity test on libtorch).
//! - `cargo xtask reproduce [--config FILE] [--backend NAME]`: the main job on
//!   a config (default: the embedded configs/default.toml) and a backend
//!   (default: flex, the fastest CPU backend measured here): `lrscape run`,
//!   then `lrscape report` (figures and REPORT.md).
//! - `cargo xtask bench [--backend NAME] [-- FLAGS]`: builds `lrscape` in
//!   release mode and runs `lrscape bench --device NAME --out results/bench`
//!   (FLAGS go to `lrscape bench`): results/bench/BENCH.md and bench.json.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    command: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Format check, clippy with warnings denied, the workspace tests (built
    /// with flex, ndarray and, where Vulkan is installed, wgpu), the backend
    /// parity test, the SLURM job-array test (a real one-node cluster;
    /// needs root under CI), a type-check of the CUDA backend, and the
    /// libtorch parity test where torch 2.9.0 is installed.
    Ci,
    /// Run the experiment of a config end to end into results/<name>/.
    Reproduce {
        /// Experiment config; the embedded configs/default.toml if omitted.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Backend feature to build and device to run on (flex, ndarray, wgpu, vulkan, metal, cuda, tch).
        #[arg(long, default_value = "flex")]
        backend: String,
        /// Output directory (default results/<experiment name>).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Another experiment directory the report compares with (default:
        /// results/default for the seed-notebook config, when it exists).
        #[arg(long)]
        compare: Option<PathBuf>,
    },
    /// Measure training speed (release build): results/bench/BENCH.md and bench.json.
    Bench {
        /// Backend feature to build and device to run on (flex, ndarray, wgpu, vulkan, metal, cuda, tch).
        #[arg(long, default_value = "flex")]
        backend: String,
        /// Output directory.
        #[arg(long, default_value = "results/bench")]
        out: PathBuf,
        /// More `lrscape bench` flags, after `--` (e.g. -- --steps 8).
        #[arg(last = true)]
        rest: Vec<String>,
    },
}

/// The seed notebook's report sets its numbers beside the default study's.
fn seed_comparison(config: Option<&std::path::Path>) -> Option<PathBuf> {
    let is_seed = config
        .and_then(|c| c.file_stem())
        .is_some_and(|s| s == "seed-notebook");
    let default = PathBuf::from("results/default");
    (is_seed && default.join("trials.jsonl").exists()).then_some(default)
}

/// Cargo's target directory: `CARGO_TARGET_DIR`, else the workspace's `target/`.
fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"))
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

fn run(mut command: Command) -> anyhow::Result<()> {
    let shown = format!("{command:?}");
    eprintln!("xtask: {shown}");
    let status = command
        .status()
        .with_context(|| format!("cannot start {shown}"))?;
    if !status.success() {
        bail!("{shown} failed with {status}");
    }
    Ok(())
}

/// `sweep/ndarray`, plus `sweep/wgpu` where a Vulkan driver is installed.
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
        (true, _) => Ok("sweep/ndarray,sweep/wgpu".into()),
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
            Ok("sweep/ndarray".into())
        }
    }
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

const BACKENDS: [&str; 7] = ["flex", "ndarray", "wgpu", "vulkan", "metal", "cuda", "tch"];

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Task::Ci => {
            let mut fmt = cargo();
            fmt.args(["fmt", "--all", "--check"]);
            run(fmt)?;
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
            let mut test = cargo();
            test.args(["test", "--workspace", "--features", &features, "--"]);
            test.args(["--skip", "every_compiled_backend_follows_flex"]);
            run(test)?;
            // The same population on each other backend follows flex's loss
            // trajectory (crates/sweep/tests/backend_parity.rs).
            let mut parity = cargo();
            parity.args(["test", "--package", "sweep", "--features", &features]);
            parity.args(["--test", "backend_parity", "--", "--nocapture"]);
            run(parity)?;
            // A real one-node SLURM cluster (tools/slurm/cluster.sh): the
            // sharded sweep as a job array, merged, with a requeued task.
            // Under CI=true it starts the cluster itself and never skips.
            let mut slurm = cargo();
            slurm.args(["test", "--package", "sweep", "--features", &features]);
            slurm.args(["--test", "slurm", "--", "--ignored", "--nocapture"]);
            run(slurm)?;
            // CUDA cannot run here; type-check it. `DOCS_RS` makes
            // tracel-llvm-bundler (cubecl-cuda's LLVM) skip its download.
            // Build scripts that watch `DOCS_RS` would rerun (and their
            // dependents rebuild) in the shared target directory at every
            // switch, so the check has a directory of its own.
            let mut cuda = cargo();
            cuda.args(["check", "--package", "sweep", "--features", "cuda"]);
            cuda.env("DOCS_RS", "1");
            cuda.env("CARGO_TARGET_DIR", target_dir().join("cuda-check"));
            run(cuda)?;
            // libtorch (burn-tch) only where PyTorch 2.9.0 is installed, the
            // one version tch 0.22 builds against; a build of its own.
            match torch_2_9_lib()? {
                Some(lib) => {
                    eprintln!("ci: torch 2.9.0 found ({}): tch parity test", lib.display());
                    let mut tch = cargo();
                    tch.args(["test", "--package", "sweep", "--features", "tch"]);
                    tch.args(["--test", "backend_parity", "--", "--nocapture"]);
                    tch.env("LIBTORCH_USE_PYTORCH", "1");
                    let paths = std::env::var_os("LD_LIBRARY_PATH").unwrap_or_default();
                    let joined = std::env::join_paths(
                        std::iter::once(lib).chain(std::env::split_paths(&paths)),
                    )?;
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
        Task::Bench { backend, out, rest } => {
            if !BACKENDS.contains(&backend.as_str()) {
                bail!("--backend {backend:?}: one of {}", BACKENDS.join(", "));
            }
            // Build first, so the timed run never waits on the compiler.
            let mut build = cargo();
            build.args([
                "build",
                "--release",
                "--package",
                "sweep",
                "--bin",
                "lrscape",
            ]);
            if backend != "flex" {
                build.args(["--features", &backend]);
            }
            run(build)?;
            let mut bench = cargo();
            bench.args(["run", "--release", "--package", "sweep", "--bin", "lrscape"]);
            if backend != "flex" {
                bench.args(["--features", &backend]);
            }
            bench.args(["--", "bench", "--device", &backend, "--out"]);
            bench.arg(&out).args(&rest);
            run(bench)
        }
        Task::Reproduce {
            config,
            backend,
            out,
            compare,
        } => {
            if !BACKENDS.contains(&backend.as_str()) {
                bail!("--backend {backend:?}: one of {}", BACKENDS.join(", "));
            }
            // `lrscape run` pre-trains the base when needed, sweeps the grid
            // (resuming finished trials) and writes the derived files.
            let mut sweep = cargo();
            sweep.args(["run", "--release", "--package", "sweep", "--bin", "lrscape"]);
            if backend != "flex" {
                sweep.args(["--features", &backend]);
            }
            sweep.args(["--", "run", "--device", &backend]);
            if let Some(config) = &config {
                sweep.arg("--config").arg(config);
            }
            if let Some(out) = &out {
                sweep.arg("--out").arg(out);
            }
            run(sweep)?;
            // Figures and REPORT.md from the records just written.
            let mut report = cargo();
            report.args(["run", "--release", "--package", "sweep", "--bin", "lrscape"]);
            if backend != "flex" {
                report.args(["--features", &backend]);
            }
            report.args(["--", "report"]);
            if let Some(config) = &config {
                report.arg("--config").arg(config);
            }
            if let Some(out) = &out {
                report.arg("--out").arg(out);
            }
            if let Some(compare) = compare.or_else(|| seed_comparison(config.as_deref())) {
                report.arg("--compare").arg(compare);
            }
            run(report)
        }
    }
}
