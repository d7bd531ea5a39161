//! `lrscape bench`: how fast a training step is on this machine, in one run.
//!
//! What it measures (all in one run, so ratios compare like with like on a
//! shared, noisy machine):
//!
//! - **member-steps per second** of a LoRA cell (rank `--rank`, every block
//!   linear, the config's alpha, init and head setting) at each population
//!   size of `--populations`, all members reading one batch (as a cell's
//!   learning rates with one seed do), in the default compute mode (weight
//!   space, [`peft::Compute`]); at the largest population also with a batch
//!   of its own per member; `--workers` populations of the largest size at
//!   once, one per thread, as `lrscape run` trains one population per core
//!   (the sweep's throughput on this machine); the largest population
//!   (alone and at once) with the low-rank path in activation space (HF
//!   PEFT's form); and a full fine-tuning step (population 1). A
//!   step is [`train_population`]'s: forward, backward,
//!   [`PopulationAdamW`](train::PopulationAdamW)
//!   on a [`PeftModel`] built on a frozen base.
//! - **achieved GFLOP/s** from [`step_flops`], a counted FLOP model of the
//!   step, against the GFLOP/s of one large GEMM (`1024 × 1024 × 1024` f32
//!   matmul, best of a few; larger where that is over in under 5 ms, as on
//!   a GPU) timed on the same device: the practical limit.
//! - **peak memory per member**: every configuration runs in a child
//!   process of its own (`lrscape bench --child ..`); it reads `VmHWM` (the
//!   resident-set high-water mark, Linux `/proc/self/status`) once before
//!   the model is adapted (process, data and frozen base: the idle level)
//!   and once after its timed steps. Peak per member = (after − idle) /
//!   population. In process (tests, or without `/proc`) the same
//!   difference is a lower bound: the high-water mark never goes down.
//! - the **same step in PyTorch eager** (`tools/bench/torch_step.py`,
//!   population 1, LoRA in activation and in weight space, full
//!   fine-tuning), when `python3 -c "import
//!   torch"` works, at `torch.set_num_threads(2)` and `(1)`, or once on
//!   the GPU (`--torch-device cuda`, the default for `--device cuda`); the
//!   ratio column divides lrscape's time per member-step by PyTorch's
//!   faster one for the same workload and compute mode.
//!
//! The base is randomly initialised, not pre-trained: a step costs the same
//! whatever the weights hold. Timing: `--warmup` steps first (allocator and
//! caches warm), then `--steps` timed steps of one `train_population` call,
//! wall clock, including the batch gather and the loss read-back at the end.

pub mod memory;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::Context;
use burn::tensor::{Device, Distribution, Tensor};
use nn::ModuleId;
use peft::{Compute, LoraConfig, Method, PeftModel};
use serde::{Deserialize, Serialize};
use sweep::config::ExperimentConfig;
use sweep::store::write_atomic;
use tinyformer::adaptable::MODULES;
use tinyformer::flops::Trained;
use tinyformer::{Tinyformer, TinyformerConfig};
use train::{Member, Schedule, SelectedDevice, WorkerPools, train_population};

/// The config `lrscape bench` uses unless `--config` names another: the seed
/// notebook's model, batch 64 and LoRA settings.
pub const SEED_NOTEBOOK_CONFIG: &str = include_str!("../../../configs/seed-notebook.toml");

/// Side of the square GEMM timed as the practical peak: the smallest one,
/// doubled (up to [`GEMM_MAX_SIZE`]) while a product takes less than
/// [`GEMM_MIN_SECONDS`] — on a GPU a 1024³ product is over before the
/// launch and read-back latency is.
pub const GEMM_SIZE: usize = 1024;
pub const GEMM_MAX_SIZE: usize = 8192;
pub const GEMM_MIN_SECONDS: f64 = 0.005;
/// Timed repetitions of the GEMM (the best one counts).
pub const GEMM_REPS: usize = 5;

// ---------------------------------------------------------------------------
// What is measured

/// What a step trains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Workload {
    /// LoRA at `rank` on the config's targets, frozen base.
    Lora { rank: usize, compute: Compute },
    /// Full fine-tuning: every parameter trained.
    Full,
}

/// One measured configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Case {
    pub workload: Workload,
    pub population: usize,
    /// Each member reads its own batch (its own data order) instead of all
    /// reading one.
    pub distinct_data: bool,
    /// Populations trained at once, one per thread, as `lrscape run` trains
    /// one population per core.
    #[serde(default = "one")]
    pub workers: usize,
}

fn one() -> usize {
    1
}

impl Case {
    pub fn label(&self) -> String {
        let what = match self.workload {
            Workload::Lora { rank, compute } => format!(
                "LoRA r{rank} {}",
                match compute {
                    Compute::ActivationSpace => "activation-space",
                    Compute::WeightSpace => "weight-space",
                }
            ),
            Workload::Full => "full fine-tuning".to_string(),
        };
        let data = if self.distinct_data {
            ", own batch per member"
        } else {
            ""
        };
        let workers = if self.workers > 1 {
            format!(", {} populations at once", self.workers)
        } else {
            String::new()
        };
        format!("{what} ×{}{data}{workers}", self.population)
    }

    /// Members trained in one timed step: population × populations at once.
    pub fn members(&self) -> usize {
        self.population * self.workers.max(1)
    }

    /// The configuration this one's speed-up is relative to: the same
    /// workload at population 1 on one shared batch.
    pub fn reference(&self) -> Case {
        Case {
            workload: self.workload,
            population: 1,
            distinct_data: false,
            workers: 1,
        }
    }
}

/// The configurations of a bench: LoRA in the default compute mode (weight
/// space, [`peft::Compute`]) at every population, with own batches at the
/// largest and, with `workers > 1`, that many populations of the largest
/// size at once; the same largest cases (alone and at once) in activation
/// space; full fine-tuning at 1.
pub fn cases(populations: &[usize], rank: usize, workers: usize) -> Vec<Case> {
    let mut pops = populations.to_vec();
    pops.sort_unstable();
    pops.dedup();
    let Some(&max) = pops.last() else {
        return Vec::new();
    };
    let lora = |compute| Workload::Lora { rank, compute };
    let case = |workload, population, distinct_data| Case {
        workload,
        population,
        distinct_data,
        workers: 1,
    };
    let at_once = |workload| Case {
        workers,
        ..case(workload, max, false)
    };
    let default = lora(Compute::default());
    let mut out: Vec<Case> = pops.iter().map(|&p| case(default, p, false)).collect();
    if max > 1 {
        out.push(case(default, max, true));
    }
    if workers > 1 {
        out.push(at_once(default));
    }
    let other = lora(Compute::ActivationSpace);
    out.push(case(other, max, false));
    if workers > 1 {
        out.push(at_once(other));
    }
    out.push(case(Workload::Full, 1, false));
    out
}

// ---------------------------------------------------------------------------
// The FLOP model

pub use nn::{FlopCount, matmul_flops, matmul_step_flops};

/// The FLOP model of one member's step of `workload` on a tinyformer
/// `model` ([`TinyformerConfig::step_flops`]).
pub fn step_flops(
    model: &TinyformerConfig,
    batch: usize,
    workload: Workload,
    targets: &BTreeSet<ModuleId>,
    train_head: bool,
) -> FlopCount {
    let trained = match workload {
        Workload::Full => Trained::Everything,
        Workload::Lora { rank, compute } => Trained::Adapters {
            rank,
            weight_space: compute == Compute::WeightSpace,
            targets,
        },
    };
    model.step_flops(batch, trained, train_head)
}

// ---------------------------------------------------------------------------
// Measurements

/// `VmHWM` and the idle level it is measured against.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Memory {
    /// High-water mark before the model was adapted (KiB).
    pub idle_kib: u64,
    /// High-water mark after the timed steps (KiB).
    pub peak_kib: u64,
    /// Measured in a process of its own (exact) or in a shared one (lower bound).
    pub isolated: bool,
}

/// One configuration, measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseResult {
    pub case: Case,
    pub label: String,
    /// Timed steps (each of `population` member-steps).
    pub steps: usize,
    /// Wall seconds of the timed steps.
    pub seconds: f64,
    /// [`step_flops`] per member-step.
    pub flops_per_member_step: f64,
    pub trainable_per_member: usize,
    pub memory: Option<Memory>,
    /// Every member's last loss was finite.
    pub losses_finite: bool,
}

impl CaseResult {
    pub fn member_steps(&self) -> usize {
        self.steps * self.case.members()
    }

    pub fn ms_per_member_step(&self) -> f64 {
        1000.0 * self.seconds / self.member_steps() as f64
    }

    pub fn member_steps_per_s(&self) -> f64 {
        self.member_steps() as f64 / self.seconds
    }

    pub fn gflops(&self) -> f64 {
        self.flops_per_member_step * self.member_steps_per_s() / 1e9
    }

    /// (peak − idle) / members (population × workers), MiB.
    pub fn peak_mib_per_member(&self) -> Option<f64> {
        self.memory.map(|m| {
            m.peak_kib.saturating_sub(m.idle_kib) as f64 / 1024.0 / self.case.members() as f64
        })
    }
}

/// The timed large GEMM.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GemmResult {
    pub n: usize,
    /// Seconds of each timed repetition.
    pub seconds: Vec<f64>,
}

impl GemmResult {
    pub fn best_seconds(&self) -> f64 {
        self.seconds.iter().copied().fold(f64::INFINITY, f64::min)
    }

    /// GFLOP/s of the fastest repetition: `2n³ / t`.
    pub fn gflops(&self) -> f64 {
        matmul_flops(self.n, self.n, self.n) / self.best_seconds() / 1e9
    }
}

/// Where the PyTorch reference runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TorchDevice {
    Cpu,
    Cuda,
}

impl std::str::FromStr for TorchDevice {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "cpu" => Ok(TorchDevice::Cpu),
            "cuda" => Ok(TorchDevice::Cuda),
            other => Err(format!("--torch-device {other:?}: one of cpu, cuda")),
        }
    }
}

impl TorchDevice {
    pub fn name(self) -> &'static str {
        match self {
            TorchDevice::Cpu => "cpu",
            TorchDevice::Cuda => "cuda",
        }
    }

    /// The PyTorch device comparable to lrscape's: the GPU where lrscape
    /// runs on an NVIDIA one through CUDA (`cuda[:N]`, `tch:N`), the CPU
    /// otherwise (a wgpu GPU may be any vendor's; `--torch-device` says).
    pub fn for_device(selected: &SelectedDevice) -> Self {
        if selected.is_gpu() && matches!(selected.backend, "cuda" | "tch") {
            TorchDevice::Cuda
        } else {
            TorchDevice::Cpu
        }
    }
}

/// One PyTorch timing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TorchTiming {
    /// `lora` (activation space), `lora_weight_space` or `full`.
    pub mode: String,
    /// `cpu` or `cuda` (bench files written before GPU runs: `cpu`).
    #[serde(default = "cpu")]
    pub device: String,
    pub threads: usize,
    pub steps: usize,
    pub ms_per_step: f64,
}

fn cpu() -> String {
    "cpu".to_string()
}

/// What the PyTorch reference gave.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TorchResult {
    /// `ok`, `torch not installed`, `not run (--no-torch)`, or why it failed.
    pub status: String,
    pub version: Option<String>,
    pub timings: Vec<TorchTiming>,
}

impl TorchResult {
    fn not_run(status: impl Into<String>) -> Self {
        Self {
            status: status.into(),
            version: None,
            timings: Vec::new(),
        }
    }

    /// The faster PyTorch timing of `mode` over the thread counts tried.
    pub fn best(&self, mode: &str) -> Option<&TorchTiming> {
        self.timings
            .iter()
            .filter(|t| t.mode == mode)
            .min_by(|a, b| a.ms_per_step.total_cmp(&b.ms_per_step))
    }
}

/// The machine and the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    /// Logical CPUs this process may use (what `nproc` prints).
    pub nproc: usize,
    pub cpu_model: String,
    /// The GPU, as `nvidia-smi` names it, when one is there.
    #[serde(default)]
    pub gpu: Option<String>,
    pub backend: String,
    pub device: String,
    pub git_revision: String,
    pub date_utc: String,
    /// `/proc/loadavg` (1, 5, 15 min) before and after the bench.
    pub load_before: Option<[f64; 3]>,
    pub load_after: Option<[f64; 3]>,
}

/// What was run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    pub config_name: String,
    pub model: TinyformerConfig,
    pub batch_size: usize,
    pub rank: usize,
    pub steps: usize,
    pub warmup: usize,
    pub populations: Vec<usize>,
}

/// A whole bench run: the raw measurements (everything else is derived).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchReport {
    pub machine: Machine,
    pub settings: Settings,
    pub gemm: GemmResult,
    pub cases: Vec<CaseResult>,
    pub torch: TorchResult,
    /// Wall seconds of the whole bench.
    pub seconds: f64,
}

/// One line of the table, derived from a [`BenchReport`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    pub configuration: String,
    pub ms_per_member_step: f64,
    pub member_steps_per_s: f64,
    pub speedup_vs_population_1: Option<f64>,
    pub gflops: f64,
    pub percent_of_gemm_peak: f64,
    pub peak_mib_per_member: Option<f64>,
    /// lrscape's ms per member-step / PyTorch's (the faster thread count);
    /// below 1 lrscape is faster.
    pub lrscape_over_pytorch: Option<f64>,
}

/// The table: every lrscape configuration, then the PyTorch timings.
pub fn rows(report: &BenchReport) -> Vec<Row> {
    let peak = report.gemm.gflops();
    let mut rows: Vec<Row> = report
        .cases
        .iter()
        .map(|c| {
            let reference = c.case.reference();
            let speedup = report
                .cases
                .iter()
                .find(|r| r.case == reference)
                .map(|r| c.member_steps_per_s() / r.member_steps_per_s());
            let mode = torch_mode(c.case.workload);
            Row {
                configuration: c.label.clone(),
                ms_per_member_step: c.ms_per_member_step(),
                member_steps_per_s: c.member_steps_per_s(),
                speedup_vs_population_1: speedup,
                gflops: c.gflops(),
                percent_of_gemm_peak: 100.0 * c.gflops() / peak,
                peak_mib_per_member: c.peak_mib_per_member(),
                lrscape_over_pytorch: report
                    .torch
                    .best(mode)
                    .map(|t| c.ms_per_member_step() / t.ms_per_step),
            }
        })
        .collect();
    for t in &report.torch.timings {
        // The FLOPs of a member-step do not depend on the population.
        let case = report
            .cases
            .iter()
            .find(|c| torch_mode(c.case.workload) == t.mode);
        let flops = case.map_or(f64::NAN, |c| c.flops_per_member_step);
        let what = match t.mode.as_str() {
            "lora" => format!("LoRA r{} activation-space", report.settings.rank),
            "lora_weight_space" => format!("LoRA r{} weight-space", report.settings.rank),
            _ => "full fine-tuning".to_string(),
        };
        let on = if t.device == "cpu" {
            format!(
                "{} thread{}",
                t.threads,
                if t.threads == 1 { "" } else { "s" }
            )
        } else {
            t.device.clone()
        };
        let gflops = flops * 1000.0 / t.ms_per_step / 1e9;
        rows.push(Row {
            configuration: format!("PyTorch eager {what} ×1, {on}"),
            ms_per_member_step: t.ms_per_step,
            member_steps_per_s: 1000.0 / t.ms_per_step,
            speedup_vs_population_1: None,
            gflops,
            percent_of_gemm_peak: 100.0 * gflops / peak,
            peak_mib_per_member: None,
            lrscape_over_pytorch: None,
        });
    }
    rows
}

/// `tools/bench/torch_step.py`'s mode for the same workload: LoRA in the
/// same compute mode (PyTorch's weight-space step is faster than its
/// activation-space one too), or full fine-tuning.
pub(crate) fn torch_mode(workload: Workload) -> &'static str {
    match workload {
        Workload::Lora {
            compute: Compute::ActivationSpace,
            ..
        } => "lora",
        Workload::Lora {
            compute: Compute::WeightSpace,
            ..
        } => "lora_weight_space",
        Workload::Full => "full",
    }
}

fn opt(value: Option<f64>, digits: usize, suffix: &str) -> String {
    match value {
        Some(v) if v.is_finite() => format!("{v:.digits$}{suffix}"),
        _ => "–".to_string(),
    }
}

fn load(l: Option<[f64; 3]>) -> String {
    l.map_or_else(
        || "unknown".into(),
        |[a, b, c]| format!("{a:.2} {b:.2} {c:.2}"),
    )
}

/// `BENCH.md`: the machine, the settings and the table.
pub fn render_markdown(report: &BenchReport) -> String {
    use std::fmt::Write;
    let m = &report.machine;
    let s = &report.settings;
    let model = &s.model;
    let mut md = String::new();
    let _ = writeln!(md, "# lrscape bench\n");
    let _ = writeln!(
        md,
        "Written by `lrscape bench` (`cargo xtask bench`). Every figure below \
         was measured in this one run on this machine, and every ratio is \
         between figures of this run.\n"
    );
    let _ = writeln!(md, "| | |\n|---|---|");
    let _ = writeln!(md, "| CPU | {} |", m.cpu_model);
    let _ = writeln!(md, "| cores (`nproc`) | {} |", m.nproc);
    if let Some(gpu) = &m.gpu {
        let _ = writeln!(md, "| GPU | {gpu} |");
    }
    let _ = writeln!(md, "| backend / device | {} / `{}` |", m.backend, m.device);
    let _ = writeln!(md, "| git revision | `{}` |", m.git_revision);
    let _ = writeln!(md, "| date | {} |", m.date_utc);
    let _ = writeln!(
        md,
        "| load average (1, 5, 15 min) before / after | {} / {} |",
        load(m.load_before),
        load(m.load_after)
    );
    let _ = writeln!(
        md,
        "| model | `{}`'s: vocab {}, seq_len {}, d_model {}, {} layers, {} heads, d_ff {}; \
         random weights (no pre-training: a step costs the same) |",
        s.config_name,
        model.vocab,
        model.seq_len,
        model.d_model,
        model.n_layers,
        model.n_heads,
        model.d_ff
    );
    let _ = writeln!(
        md,
        "| step | batch {} per member: forward, backward, AdamW; {} warm-up + {} timed steps \
         per configuration, {} |",
        s.batch_size,
        s.warmup,
        s.steps,
        if report
            .cases
            .iter()
            .any(|c| c.memory.is_some_and(|m| !m.isolated))
        {
            "all in one process (`--in-process`)"
        } else {
            "each configuration in a process of its own"
        }
    );
    let _ = writeln!(
        md,
        "| GEMM peak | {n}×{n}×{n} f32 matmul on the same device, best of {}: {:.1} ms = \
         **{:.1} GFLOP/s** |",
        report.gemm.seconds.len(),
        1000.0 * report.gemm.best_seconds(),
        report.gemm.gflops(),
        n = report.gemm.n
    );
    let torch = match (&report.torch.version, report.torch.status.as_str()) {
        (Some(v), "ok") => format!(
            "torch {v}, eager, `tools/bench/torch_step.py`, {}",
            torch_where(&report.torch)
        ),
        (_, status) => status.to_string(),
    };
    let _ = writeln!(md, "| PyTorch | {torch} |");
    let _ = writeln!(md, "| bench wall time | {:.0} s |\n", report.seconds);
    let _ = writeln!(
        md,
        "| configuration | ms / member-step | member-steps/s | speed-up vs ×1 | GFLOP/s | \
         % of GEMM peak | peak MiB / member | lrscape / PyTorch |"
    );
    let _ = writeln!(md, "|---|--:|--:|--:|--:|--:|--:|--:|");
    for r in rows(report) {
        let _ = writeln!(
            md,
            "| {} | {:.1} | {:.2} | {} | {:.2} | {:.1}% | {} | {} |",
            r.configuration,
            r.ms_per_member_step,
            r.member_steps_per_s,
            opt(r.speedup_vs_population_1, 2, "×"),
            r.gflops,
            r.percent_of_gemm_peak,
            opt(r.peak_mib_per_member, 1, ""),
            opt(r.lrscape_over_pytorch, 2, "×"),
        );
    }
    let flops: Vec<String> = report
        .cases
        .iter()
        .filter(|c| c.case.population == 1 && !c.case.distinct_data)
        .map(|c| {
            format!(
                "{}: {:.3} GFLOP",
                c.label.trim_end_matches(" ×1"),
                c.flops_per_member_step / 1e9
            )
        })
        .collect();
    let _ = writeln!(
        md,
        "\n- *ms / member-step*: wall time of the timed steps / (steps × population × populations at once). \
         *Speed-up vs ×1*: member-steps/s over those of the same workload at population 1.\n\
         - *GFLOP/s*: the counted FLOPs of a member-step (`bench::step_flops`: matrix \
         products only, 2·m·k·n each, forward plus one more per operand that carries a \
         gradient; {}) × member-steps/s. *% of GEMM peak* divides by the timed GEMM above.\n\
         - *Peak MiB / member*: (VmHWM after the timed steps − VmHWM before the model was \
         adapted) / (population × populations at once), in the configuration's own process \
         (host memory: a GPU's own memory is not in it).\n\
         - *lrscape / PyTorch*: lrscape's ms per member-step over PyTorch eager's ms per step \
         for the same workload (LoRA in the same compute mode, or full fine-tuning; population 1, \
         the faster of the thread counts tried); below 1 lrscape is faster.",
        flops.join("; ")
    );
    if report.cases.iter().any(|c| !c.losses_finite) {
        let _ = writeln!(
            md,
            "- Warning: some configuration ended with a non-finite loss."
        );
    }
    md
}

/// `threads 2 and 1` on the CPU, `on cuda` on the GPU.
fn torch_where(torch: &TorchResult) -> String {
    if let Some(t) = torch.timings.iter().find(|t| t.device != "cpu") {
        return format!("on {}", t.device);
    }
    let mut threads: Vec<usize> = torch.timings.iter().map(|t| t.threads).collect();
    threads.dedup();
    let threads: Vec<String> = threads.iter().map(|t| t.to_string()).collect();
    format!("threads {}", threads.join(" and "))
}

// ---------------------------------------------------------------------------
// Running

/// How to run a bench.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub config: ExperimentConfig<TinyformerConfig>,
    /// `--device` spelling.
    pub device: String,
    pub steps: usize,
    pub warmup: usize,
    pub populations: Vec<usize>,
    pub rank: usize,
    /// Populations at once in the extra "populations at once" case (1: no
    /// such case).
    pub workers: usize,
    /// Run every configuration in a child process of this `lrscape`
    /// binary (exact peak memory); `None` runs them in this process.
    pub child_exe: Option<PathBuf>,
    /// The PyTorch reference script; `None` skips PyTorch.
    pub torch_script: Option<PathBuf>,
    pub torch_threads: Vec<usize>,
    pub torch_device: TorchDevice,
    pub gemm_reps: usize,
}

impl BenchOptions {
    /// Checks the flags, naming the bad one and what is allowed.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.steps == 0 {
            anyhow::bail!("--steps 0: at least 1 timed step");
        }
        if self.populations.is_empty() {
            anyhow::bail!("--populations: give at least one population size, e.g. 1,4,16");
        }
        if let Some(p) = self.populations.iter().find(|&&p| p == 0 || p > 4096) {
            anyhow::bail!("--populations {p}: population sizes from 1 to 4096");
        }
        if self.workers == 0 || self.workers > 64 {
            anyhow::bail!(
                "--workers {}: from 1 to 64 populations at once",
                self.workers
            );
        }
        if self.torch_threads.is_empty() || self.torch_threads.contains(&0) {
            anyhow::bail!(
                "--torch-threads {:?}: thread counts of at least 1, e.g. 2,1",
                self.torch_threads
            );
        }
        lora_config(&self.config, self.rank, Compute::ActivationSpace)
            .validate(&self.config.model.linear_layout())
            .map_err(|e| anyhow::anyhow!("--rank {}: {e}", self.rank))?;
        Ok(())
    }
}

/// The LoRA setting of the bench: the config's (first) alpha rule and
/// init, its targets and head at `rank`.
fn lora_config(
    config: &ExperimentConfig<TinyformerConfig>,
    rank: usize,
    compute: Compute,
) -> LoraConfig {
    let g = &config.grid;
    config.lora_config(
        Method::Lora,
        rank,
        g.alpha.first().unwrap_or_default(),
        g.init.first().unwrap_or_default(),
        compute,
    )
}

/// One configuration for a child process.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CaseJob {
    pub config: ExperimentConfig<TinyformerConfig>,
    pub case: Case,
    pub steps: usize,
    pub warmup: usize,
    pub device: String,
    pub isolated: bool,
}

/// `VmHWM` of this process in KiB (Linux); `None` elsewhere.
pub(crate) fn vm_hwm_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Measures one configuration in this process, on `selected` (the device
/// `job.device` names).
pub fn run_case(job: &CaseJob, selected: &SelectedDevice) -> anyhow::Result<CaseResult> {
    let device = selected.device.clone().autodiff();
    let config = &job.config;
    let case = job.case;
    let batch = config.finetune.first_batch_size();
    let model_config = &config.model;
    let data = |steps: usize, seed: u64| {
        sweep::task::examples(
            config,
            sweep::task::Phase::Finetune,
            (steps * batch).max(1),
            seed,
        )
    };
    let warm_data = data(job.warmup, config.task.data_seed.wrapping_add(2))?;
    let timed_data = data(job.steps, config.task.data_seed.wrapping_add(3))?;
    let base = Tinyformer::init(
        model_config,
        config.pretrain.as_ref().map_or(0, |p| p.seed),
        &device,
    )?;
    let idle = vm_hwm_kib();
    let (lora, targets, train_head) = match case.workload {
        Workload::Lora { rank, compute } => {
            let lora = lora_config(config, rank, compute);
            let targets = lora.target_modules.resolve(&model_config.linear_layout())?;
            (lora, targets, config.train_head())
        }
        Workload::Full => (
            LoraConfig::new(Method::Full, 1),
            MODULES.into_iter().collect(),
            true,
        ),
    };
    let seeds: Vec<u64> = (0..case.population as u64).collect();
    let models = (0..case.workers.max(1))
        .map(|_| PeftModel::new(base.clone(), &lora, &seeds))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("{}: {e}", case.label()))?;
    let trainable_per_member = models[0].trainable_per_member();
    let lrs = config.finetune.lrs.values()?;
    let members: Vec<Member> = (0..case.population)
        .map(|i| Member {
            lr: lrs.get(i % lrs.len().max(1)).copied().unwrap_or(1e-3),
            data_seed: if case.distinct_data { i as u64 } else { 0 },
        })
        .collect();
    let adamw = sweep::grid::adamw(config.finetune.weight_decay);
    let schedule = Schedule {
        epochs: 1,
        batch_size: batch,
        max_steps: None,
        budget: None,
        lr: train::LrSchedule::CONSTANT,
    };
    // Every worker warms up, then all start their timed steps together (as
    // `lrscape run` trains one population per thread); the wall clock runs
    // from that start until the last one is done.
    let start = std::sync::Barrier::new(models.len() + 1);
    let workers = models.len();
    // Without pools of their own (`pools.warning()`) the workers share the
    // global pool: slower, and so are the timings, but nothing else changes.
    let pools = WorkerPools::new(workers);
    let (seconds, outcomes) = std::thread::scope(|scope| {
        let handles: Vec<_> = models
            .into_iter()
            .enumerate()
            .map(|(worker, model)| {
                let (start, members, device) = (&start, &members, &device);
                let (warm_data, timed_data, pools) = (&warm_data, &timed_data, &pools);
                scope.spawn(move || {
                    pools.install(worker, workers, || {
                        let model = if job.warmup > 0 {
                            train_population(
                                model,
                                warm_data,
                                members,
                                schedule,
                                adamw,
                                device,
                                &|| {},
                            )
                            .model
                        } else {
                            model
                        };
                        start.wait();
                        train_population(
                            model,
                            timed_data,
                            members,
                            schedule,
                            adamw,
                            device,
                            &|| {},
                        )
                    })
                })
            })
            .collect();
        start.wait();
        let started = Instant::now();
        let outcomes: Vec<_> = handles.into_iter().map(|h| h.join()).collect();
        (started.elapsed().as_secs_f64(), outcomes)
    });
    let outcomes = outcomes
        .into_iter()
        .collect::<Result<Vec<_>, _>>()
        .map_err(|panic| {
            let message = train::panic_message(panic.as_ref());
            anyhow::anyhow!("{}: a training thread panicked: {message}", case.label())
        })?;
    let peak = vm_hwm_kib();
    let losses_finite = outcomes.iter().all(|o| {
        o.step_loss
            .iter()
            .all(|l| l.last().is_some_and(|v| v.is_finite()))
    });
    let steps = outcomes.first().map_or(0, |o| o.steps);
    debug_assert_eq!(steps, job.steps);
    Ok(CaseResult {
        case,
        label: case.label(),
        steps,
        seconds,
        flops_per_member_step: step_flops(model_config, batch, case.workload, &targets, train_head)
            .total(),
        trainable_per_member,
        memory: idle.zip(peak).map(|(idle_kib, peak_kib)| Memory {
            idle_kib,
            peak_kib,
            isolated: job.isolated,
        }),
        losses_finite,
    })
}

/// Runs one configuration in a child process of `exe` (`lrscape bench
/// --child JOB`), which prints its [`CaseResult`] as the last stdout line.
fn run_case_child(exe: &Path, job: &CaseJob) -> anyhow::Result<CaseResult> {
    let json = serde_json::to_string(job)?;
    let output = Command::new(exe)
        .args(["bench", "--child", &json])
        .stderr(std::process::Stdio::inherit())
        .output()
        .with_context(|| format!("cannot start {}", exe.display()))?;
    if !output.status.success() {
        anyhow::bail!(
            "{}: the child process failed ({}); its error is above",
            job.case.label(),
            output.status
        );
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last)
        .with_context(|| format!("{}: unreadable child output {last:?}", job.case.label()))
}

/// The GEMM peak: `time_gemm` at [`GEMM_SIZE`], then at twice the side
/// while its best product took under [`GEMM_MIN_SECONDS`] (a CPU stays at
/// 1024; a GPU grows to where latency no longer dominates).
pub fn time_peak_gemm(device: &Device, reps: usize) -> GemmResult {
    let mut n = GEMM_SIZE;
    loop {
        let result = time_gemm(device, n, reps);
        if result.best_seconds() >= GEMM_MIN_SECONDS || n >= GEMM_MAX_SIZE {
            return result;
        }
        n *= 2;
    }
}

/// Times `reps` products of two random `n × n` f32 matrices on `device`
/// (after one untimed), each read back to the host to be sure it is done.
pub(crate) fn time_gemm(device: &Device, n: usize, reps: usize) -> GemmResult {
    let a = Tensor::<2>::random([n, n], Distribution::Default, device);
    let b = Tensor::<2>::random([n, n], Distribution::Default, device);
    let run = || {
        let started = Instant::now();
        let c = a.clone().matmul(b.clone());
        let _: f32 = c.narrow(0, 0, 1).narrow(1, 0, 1).reshape([1]).into_scalar();
        started.elapsed().as_secs_f64()
    };
    run();
    GemmResult {
        n,
        seconds: (0..reps.max(1)).map(|_| run()).collect(),
    }
}

/// A reference script of `tools/bench/`: under the working directory when
/// run from a checkout, else in the checkout this binary was built from,
/// so that `lrscape bench` finds it from anywhere on the build machine.
pub fn bench_script(name: &str) -> PathBuf {
    let here = Path::new("tools/bench").join(name);
    if here.is_file() {
        return here;
    }
    let built = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tools/bench")
        .join(name);
    if built.is_file() { built } else { here }
}

/// Runs the PyTorch reference script, or says why not.
pub fn run_torch(
    script: &Path,
    settings: &Settings,
    threads: &[usize],
    device: TorchDevice,
) -> TorchResult {
    let importable = Command::new("python3")
        .args(["-c", "import torch"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !importable {
        return TorchResult::not_run("torch not installed");
    }
    if !script.is_file() {
        return TorchResult::not_run(format!("script not found: {}", script.display()));
    }
    let m = &settings.model;
    // On the GPU the host's thread count hardly matters: one run.
    let threads = match device {
        TorchDevice::Cpu => threads,
        TorchDevice::Cuda => &threads[..threads.len().min(1)],
    };
    let threads: Vec<String> = threads.iter().map(|t| t.to_string()).collect();
    let args: Vec<String> = vec![
        script.display().to_string(),
        format!("--vocab={}", m.vocab),
        format!("--seq-len={}", m.seq_len),
        format!("--d-model={}", m.d_model),
        format!("--n-layers={}", m.n_layers),
        format!("--n-heads={}", m.n_heads),
        format!("--d-ff={}", m.d_ff),
        format!("--batch={}", settings.batch_size),
        format!("--rank={}", settings.rank),
        format!("--steps={}", settings.steps),
        format!("--warmup={}", settings.warmup),
        format!("--threads={}", threads.join(",")),
        "--modes=lora,lora_weight_space,full".to_string(),
        format!("--device={}", device.name()),
    ];
    let output = match Command::new("python3").args(&args).output() {
        Ok(o) => o,
        Err(e) => return TorchResult::not_run(format!("failed to start python3: {e}")),
    };
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(3).collect();
        return TorchResult::not_run(format!(
            "failed ({}): {}",
            output.status,
            tail.into_iter().rev().collect::<Vec<_>>().join(" / ")
        ));
    }
    #[derive(Deserialize)]
    struct Out {
        torch_version: String,
        results: Vec<TorchTiming>,
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    match serde_json::from_str::<Out>(stdout.lines().last().unwrap_or_default()) {
        Ok(out) => TorchResult {
            status: "ok".into(),
            version: Some(out.torch_version),
            timings: out.results,
        },
        Err(e) => TorchResult::not_run(format!("unreadable output: {e}")),
    }
}

fn loadavg() -> Option<[f64; 3]> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    let v: Vec<f64> = text
        .split_whitespace()
        .take(3)
        .filter_map(|x| x.parse().ok())
        .collect();
    (v.len() == 3).then(|| [v[0], v[1], v[2]])
}

/// `nvidia-smi`'s name and memory of the first GPU; `None` without one.
fn gpu_name() -> Option<String> {
    let out = Command::new("nvidia-smi")
        .args(["--query-gpu=name,memory.total", "--format=csv,noheader"])
        .output()
        .ok()
        .filter(|o| o.status.success())?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .next()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

/// Runs the whole bench; `log` gets one line per finished part.
/// Runs the whole bench on `selected` (the device `opts.device` names);
/// `log` gets one line per finished part.
pub fn run_bench(
    opts: &BenchOptions,
    selected: &SelectedDevice,
    log: &mut dyn FnMut(&str),
) -> anyhow::Result<BenchReport> {
    opts.validate()?;
    let started = Instant::now();
    let provenance = sweep::pretrain::provenance(selected);
    let load_before = loadavg();
    let settings = Settings {
        config_name: opts.config.name.clone(),
        model: opts.config.model.clone(),
        batch_size: opts.config.finetune.first_batch_size(),
        rank: opts.rank,
        steps: opts.steps,
        warmup: opts.warmup,
        populations: opts.populations.clone(),
    };
    let gemm = time_peak_gemm(&selected.device, opts.gemm_reps);
    log(&format!(
        "GEMM {n}×{n}×{n}: best {:.1} ms, {:.1} GFLOP/s",
        1000.0 * gemm.best_seconds(),
        gemm.gflops(),
        n = gemm.n
    ));
    let mut results = Vec::new();
    for case in cases(&opts.populations, opts.rank, opts.workers) {
        let job = CaseJob {
            config: opts.config.clone(),
            case,
            steps: opts.steps,
            warmup: opts.warmup,
            device: opts.device.clone(),
            isolated: opts.child_exe.is_some(),
        };
        let result = match &opts.child_exe {
            Some(exe) => run_case_child(exe, &job)?,
            None => run_case(&job, selected)?,
        };
        log(&format!(
            "{}: {:.1} ms/member-step, {:.2} member-steps/s, {:.2} GFLOP/s, {} MiB/member",
            result.label,
            result.ms_per_member_step(),
            result.member_steps_per_s(),
            result.gflops(),
            opt(result.peak_mib_per_member(), 1, "")
        ));
        results.push(result);
    }
    let torch = match &opts.torch_script {
        Some(script) => run_torch(script, &settings, &opts.torch_threads, opts.torch_device),
        None => TorchResult::not_run("not run (--no-torch)"),
    };
    for t in &torch.timings {
        log(&format!(
            "PyTorch {} ({} thread(s)): {:.1} ms/step",
            t.mode, t.threads, t.ms_per_step
        ));
    }
    if torch.status != "ok" {
        log(&format!("PyTorch: {}", torch.status));
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    Ok(BenchReport {
        machine: Machine {
            nproc: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu_model: cpu_model(),
            gpu: gpu_name(),
            backend: selected.backend.to_string(),
            device: provenance.device,
            git_revision: provenance.git_revision,
            date_utc: records::utc_date(now),
            load_before,
            load_after: loadavg(),
        },
        settings,
        gemm,
        cases: results,
        torch,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// `bench.json`: the raw report and the derived table.
#[derive(Serialize)]
struct BenchJson<'a> {
    #[serde(flatten)]
    report: &'a BenchReport,
    rows: Vec<Row>,
}

/// Writes `BENCH.md` and `bench.json` into `out`; returns the Markdown.
pub fn write_outputs(report: &BenchReport, out: &Path) -> anyhow::Result<String> {
    std::fs::create_dir_all(out)
        .with_context(|| format!("--out {}: cannot create it", out.display()))?;
    let md = render_markdown(report);
    write_atomic(&out.join("BENCH.md"), &md)?;
    let json = serde_json::to_string_pretty(&BenchJson {
        report,
        rows: rows(report),
    })?;
    write_atomic(&out.join("bench.json"), &format!("{json}\n"))?;
    Ok(md)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bench_scripts_are_found_outside_the_checkout_root() {
        // Tests run in crates/bench, where tools/bench/ is not.
        assert!(!Path::new("tools/bench/gpt2_peft_step.py").exists());
        for name in ["gpt2_peft_step.py", "torch_step.py", "gemm_shapes.py"] {
            let path = bench_script(name);
            assert!(path.is_file(), "{name}: {}", path.display());
        }
        assert_eq!(
            bench_script("absent.py"),
            Path::new("tools/bench/absent.py")
        );
    }

    #[test]
    fn cases_cover_the_spec() {
        let labels: Vec<String> = cases(&[16, 1, 4], 16, 2).iter().map(Case::label).collect();
        assert_eq!(
            labels,
            [
                "LoRA r16 weight-space ×1",
                "LoRA r16 weight-space ×4",
                "LoRA r16 weight-space ×16",
                "LoRA r16 weight-space ×16, own batch per member",
                "LoRA r16 weight-space ×16, 2 populations at once",
                "LoRA r16 activation-space ×16",
                "LoRA r16 activation-space ×16, 2 populations at once",
                "full fine-tuning ×1",
            ]
        );
    }
}
