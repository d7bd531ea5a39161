//! `cargo xtask`: the project's own commands. Shells out to cargo and the
//! `lrscape` binary only.
//!
//! - `cargo xtask tidy`: the crate graph against ARCHITECTURE.md's arrows.
//! - `cargo xtask ci`: what CI runs (format check, tidy, clippy, the docs, the test suite
//!   built once with flex, ndarray and (where a Vulkan driver is installed)
//!   wgpu, the backend parity test (crates/lrscape/tests/backend_parity.rs),
//!   then the SLURM test on a one-node cluster: crates/lrscape/tests/slurm.rs;
//!   `cargo check` of the CUDA backend, which cannot run here; and, where
//!   `python3` imports torch 2.9.0, the parity test on libtorch).
//! - `cargo xtask reproduce [--config FILE] [--backend NAME]`: the main job on
//!   a config (default: the embedded configs/default.toml) and a backend
//!   (default: flex, the fastest CPU backend measured here): a release build,
//!   then `lrscape reproduce` (the study into runs/<name>/, its report there,
//!   a verdict per cell against the committed results/<name>/).
//! - `cargo xtask bench [--backend NAME] [-- FLAGS]`: builds `lrscape` in
//!   release mode and runs `lrscape bench --device NAME --out results/bench`
//!   (FLAGS go to `lrscape bench`): results/bench/BENCH.md and bench.json.

mod ci;
mod tidy;

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
    /// Check the crate graph against ARCHITECTURE.md's arrows (which crate
    /// may depend on which; clap, indicatif, plotters and backends where
    /// they belong; no Burn under records and figs).
    Tidy,
    /// Run the experiment of a config end to end into runs/<name>/ and check
    /// it against the committed reference results/<name>/.
    Reproduce {
        /// Experiment config; the embedded configs/default.toml if omitted.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Backend feature to build and device to run on (flex, ndarray, wgpu, vulkan, metal, cuda, tch).
        #[arg(long, default_value = "flex")]
        backend: String,
        /// Where the run trains (default runs/<experiment name>).
        #[arg(long)]
        out: Option<PathBuf>,
        /// The reference (default results/<experiment name>).
        #[arg(long)]
        reference: Option<PathBuf>,
        /// Make the run the reference afterwards.
        #[arg(long)]
        update_reference: bool,
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

/// The King James Bible's parts (tools/data/kjv.py), written where a config
/// reads them (`data/kjv/`) and they are missing.
fn prepare_data(config: Option<&std::path::Path>) -> anyhow::Result<()> {
    let Some(config) = config else {
        return Ok(());
    };
    let text = std::fs::read_to_string(config)
        .with_context(|| format!("cannot read --config {}", config.display()))?;
    let parts = [
        "ot-train.txt",
        "ot-val.txt",
        "gospels-train.txt",
        "gospels-val.txt",
        "genre-train.jsonl",
        "genre-val.jsonl",
        "genre-pretrain-train.txt",
        "genre-pretrain-val.txt",
    ];
    let dir = PathBuf::from("data/kjv");
    if !text.contains("data/kjv/") || parts.iter().all(|p| dir.join(p).exists()) {
        return Ok(());
    }
    eprintln!(
        "xtask: {} reads data/kjv/: writing it (tools/data/kjv.py)",
        config.display()
    );
    let mut script = Command::new("python3");
    script.args(["tools/data/kjv.py", "data/kjv"]);
    run(script)
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

/// `cargo run --release -p lrscape [--features BACKEND] -- ARGS`.
fn lrscape(backend: &str) -> Command {
    let mut command = cargo();
    command.args(["run", "--release", "--package", "lrscape"]);
    if backend != "flex" {
        command.args(["--features", backend]);
    }
    command.arg("--");
    command
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

const BACKENDS: [&str; 7] = ["flex", "ndarray", "wgpu", "vulkan", "metal", "cuda", "tch"];

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Task::Ci => ci::ci(),
        Task::Tidy => tidy::tidy(),
        Task::Bench { backend, out, rest } => {
            if !BACKENDS.contains(&backend.as_str()) {
                bail!("--backend {backend:?}: one of {}", BACKENDS.join(", "));
            }
            // Build first, so the timed run never waits on the compiler.
            let mut build = cargo();
            build.args(["build", "--release", "--package", "lrscape"]);
            if backend != "flex" {
                build.args(["--features", &backend]);
            }
            run(build)?;
            let mut bench = lrscape(&backend);
            bench.args(["bench", "--device", &backend, "--out"]);
            bench.arg(&out).args(&rest);
            run(bench)
        }
        Task::Reproduce {
            config,
            backend,
            out,
            reference,
            update_reference,
            compare,
        } => {
            if !BACKENDS.contains(&backend.as_str()) {
                bail!("--backend {backend:?}: one of {}", BACKENDS.join(", "));
            }
            prepare_data(config.as_deref())?;
            let mut reproduce = lrscape(&backend);
            reproduce.args(["reproduce", "--device", &backend]);
            for (flag, value) in [
                ("--config", &config),
                ("--out", &out),
                ("--reference", &reference),
            ] {
                if let Some(value) = value {
                    reproduce.arg(flag).arg(value);
                }
            }
            if update_reference {
                reproduce.arg("--update-reference");
            }
            if let Some(compare) = compare.or_else(|| seed_comparison(config.as_deref())) {
                reproduce.arg("--compare").arg(compare);
            }
            run(reproduce)
        }
    }
}
