//! `lrscape bench`: training speed here, against PyTorch + PEFT.

use crate::families::AnyConfig;
use anyhow::Context;
use bench::memory::{MemoryJob, MemoryResult, TorchGpt2};
use bench::{BenchOptions, CaseJob, GEMM_REPS, TorchDevice, run_bench, run_case, write_outputs};
use gpt2::{Gpt2Config, Gpt2Family};
use llama::{LlamaConfig, LlamaFamily};

use crate::args::BenchArgs;

pub fn bench(args: BenchArgs) -> anyhow::Result<()> {
    if let Some(job) = &args.child {
        // One configuration in a child process (exact peak memory).
        let job: CaseJob = serde_json::from_str(job).context("--child: not a bench job")?;
        let selected = backends::select_device(&job.device)?;
        let result = run_case(&job, &selected)?;
        println!("{}", serde_json::to_string(&result)?);
        return Ok(());
    }
    if let Some(job) = &args.memory_child {
        let job: MemoryJob =
            serde_json::from_str(job).context("--memory-child: not a memory job")?;
        let selected = backends::select_device(&args.device.device)?;
        let result = match Shape::of(&job.model)? {
            Shape::Gpt2 => bench::memory::measure(&gpt2_124m(), &job, &selected.device)?,
            Shape::Qwen3 => bench::memory::measure(&qwen3_06b(), &job, &selected.device)?,
        };
        println!("{}", serde_json::to_string(&result)?);
        return Ok(());
    }
    if args.gpt2_memory {
        return model_memory(&args, Shape::Gpt2);
    }
    if args.qwen3_memory {
        return model_memory(&args, Shape::Qwen3);
    }
    let config = match &args.config {
        Some(path) => AnyConfig::from_toml_file(path)?,
        None => AnyConfig::from_toml_in(
            bench::SEED_NOTEBOOK_CONFIG,
            "configs/seed-notebook.toml (embedded)",
            std::path::Path::new(""),
        )?,
    };
    // The bench mirrors tinyformer in its PyTorch driver.
    let AnyConfig::Tinyformer(config) = config else {
        anyhow::bail!(
            "lrscape bench measures tinyformer configs (its PyTorch driver mirrors tinyformer); \
             {} is a {} config",
            config.name(),
            config.family()
        );
    };
    let child_exe = if args.in_process {
        None
    } else {
        Some(
            std::env::current_exe()
                .context("cannot find the lrscape binary to run configurations in")?,
        )
    };
    let selected = backends::select_device(&args.device.device)?;
    let workers = args
        .workers
        .unwrap_or_else(|| config.run.workers(selected.is_gpu()));
    let opts = BenchOptions {
        config,
        device: args.device.device.clone(),
        steps: args.steps,
        warmup: args.warmup,
        populations: args.populations,
        rank: args.rank,
        workers,
        child_exe,
        torch_script: (!args.no_torch).then(|| {
            args.torch_script
                .unwrap_or_else(|| bench::bench_script("torch_step.py"))
        }),
        torch_threads: args.torch_threads,
        torch_device: args
            .torch_device
            .unwrap_or_else(|| TorchDevice::for_device(&selected)),
        gemm_reps: GEMM_REPS,
    };
    let report = run_bench(&opts, &selected, &mut |line| eprintln!("bench: {line}"))?;
    let md = write_outputs(&report, &args.out)?;
    print!("{md}");
    eprintln!(
        "wrote {} and {}",
        args.out.join("BENCH.md").display(),
        args.out.join("bench.json").display()
    );
    Ok(())
}

/// The real-size shapes `--gpt2-memory` and `--qwen3-memory` measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Gpt2,
    Qwen3,
}

impl Shape {
    fn of(name: &str) -> anyhow::Result<Self> {
        match name {
            "gpt2-124m" => Ok(Self::Gpt2),
            "qwen3-0.6b" => Ok(Self::Qwen3),
            other => anyhow::bail!("model {other:?}: gpt2-124m or qwen3-0.6b"),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Gpt2 => "gpt2-124m",
            Self::Qwen3 => "qwen3-0.6b",
        }
    }

    /// `(title, flag, file stem)`.
    fn labels(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Self::Gpt2 => (
                "GPT-2-124M shape, random weights",
                "lrscape bench --gpt2-memory",
                "gpt2",
            ),
            Self::Qwen3 => (
                "Qwen3-0.6B shape, random weights",
                "lrscape bench --qwen3-memory",
                "qwen3",
            ),
        }
    }

    /// `(targets, compute)` of the LoRA rows. Weight space forms a dense
    /// adapted weight per member, which at Qwen3-0.6B's size and 16
    /// members exceeds a small machine: activation space only there.
    fn settings(self) -> Vec<(&'static str, peft::Compute)> {
        match self {
            Self::Gpt2 => vec![
                ("c_attn", peft::Compute::ActivationSpace),
                ("all-linear", peft::Compute::ActivationSpace),
                ("all-linear", peft::Compute::WeightSpace),
            ],
            Self::Qwen3 => vec![
                ("qv", peft::Compute::ActivationSpace),
                ("all-linear", peft::Compute::ActivationSpace),
            ],
        }
    }

    fn step_flops(self, job: &MemoryJob) -> f64 {
        match self {
            Self::Gpt2 => gpt2_step_flops(job),
            Self::Qwen3 => qwen3_step_flops(job),
        }
    }
}

/// Qwen3-0.6B's shape (its config.json), random weights.
fn qwen3_06b() -> LlamaFamily {
    LlamaFamily::shaped(LlamaConfig::default())
}

/// FLOPs of one member's training step of `job` on Qwen3-0.6B.
fn qwen3_step_flops(job: &MemoryJob) -> f64 {
    let config = LlamaConfig::default();
    let d = config.hidden_size as f64;
    let q = (config.num_attention_heads * config.head_dim()) as f64;
    let kv = (config.kv_heads() * config.head_dim()) as f64;
    let ff = config.intermediate_size as f64;
    // Σ (in + out) over the adapted linears of a block.
    let in_out = match job.targets.as_str() {
        "qv" => (d + q) + (d + kv),
        _ => 2.0 * (d + q) + 2.0 * (d + kv) + 3.0 * (d + ff),
    };
    step_flops(
        job,
        config.forward_flops(job.seq),
        in_out,
        config.num_hidden_layers,
    )
}

/// FLOPs of one member's training step of `job`: the forward pass
/// (`forward` per sequence), the backward pass's input gradients (as many
/// again; through a frozen weight nothing else), and for full fine-tuning
/// the weight gradients (as many again); LoRA adds its factors' products,
/// three per token and adapted linear (`in_out`: Σ (in + out) over a
/// block's adapted linears, in each of `layers` blocks).
fn step_flops(job: &MemoryJob, forward: f64, in_out: f64, layers: usize) -> f64 {
    let forward = forward * job.batch as f64;
    if job.full {
        return 3.0 * forward;
    }
    let tokens = (job.seq * job.batch) as f64;
    2.0 * forward + 3.0 * 2.0 * job.rank as f64 * in_out * layers as f64 * tokens
}

/// GPT-2-124M's shape (`gpt2`'s config.json), random weights.
fn gpt2_124m() -> Gpt2Family {
    Gpt2Family::shaped(Gpt2Config::default())
}

/// FLOPs of one member's training step of `job` on GPT-2-124M.
fn gpt2_step_flops(job: &MemoryJob) -> f64 {
    let config = Gpt2Config::default();
    let (d, ff) = (config.n_embd as f64, config.d_ff() as f64);
    // Σ (in + out) over the adapted linears of a block.
    let in_out = match job.targets.as_str() {
        "c_attn" => 4.0 * d,
        _ => 4.0 * d + 2.0 * d + 2.0 * (d + ff),
    };
    step_flops(job, config.forward_flops(job.seq), in_out, config.n_layer)
}

/// `tools/bench/gpt2_peft_step.py`'s measurements, or why there are none.
fn torch_gpt2(args: &BenchArgs) -> Result<TorchGpt2, String> {
    if args.no_torch {
        return Err("not run (--no-torch)".into());
    }
    let script = bench::bench_script("gpt2_peft_step.py");
    if !script.is_file() {
        return Err(format!("not run (script not found: {})", script.display()));
    }
    let out = std::process::Command::new("python3")
        .arg(&script)
        .args(["--seq", "64", "--batch", "1"])
        .arg(format!("--rank={}", args.rank))
        .arg(format!("--steps={}", args.steps))
        .arg(format!("--warmup={}", args.warmup))
        .arg("--threads=2")
        .output()
        .map_err(|e| format!("python3 did not start: {e}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err.lines().last().unwrap_or_default().to_string();
        return Err(format!(
            "not run ({last}); pip install torch transformers peft adds it"
        ));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .map_err(|e| format!("{} printed no result: {e}", script.display()))
}

/// `--gpt2-memory`, `--qwen3-memory`: every configuration in a child
/// process of its own.
fn model_memory(args: &BenchArgs, shape: Shape) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("cannot find the lrscape binary")?;
    let job = |population, full, targets: &str, compute| MemoryJob {
        model: shape.name().into(),
        population,
        full,
        rank: args.rank,
        targets: targets.to_string(),
        warmup: args.warmup,
        compute,
        seq: 64,
        batch: 1,
        steps: args.steps,
    };
    let jobs: Vec<MemoryJob> = shape
        .settings()
        .into_iter()
        .flat_map(|(targets, compute)| {
            args.populations
                .iter()
                .map(move |&p| job(p, false, targets, compute))
        })
        .chain([job(1, true, "all-linear", peft::Compute::default())])
        .collect();
    let mut results = Vec::new();
    for job in jobs {
        eprintln!("bench: {}", serde_json::to_string(&job)?);
        let out = std::process::Command::new(&exe)
            .args(["bench", "--device", &args.device.device, "--memory-child"])
            .arg(serde_json::to_string(&job)?)
            .output()
            .context("cannot run a bench child")?;
        if !out.status.success() {
            anyhow::bail!(
                "bench child {job:?} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let stdout = String::from_utf8_lossy(&out.stdout);
        let line = stdout.lines().last().unwrap_or_default();
        let result: MemoryResult =
            serde_json::from_str(line).with_context(|| format!("bench child printed {line:?}"))?;
        results.push(result);
    }
    let torch = match shape {
        Shape::Gpt2 => {
            eprintln!("bench: PyTorch + PEFT (tools/bench/gpt2_peft_step.py)");
            torch_gpt2(args)
        }
        Shape::Qwen3 => Err("not measured for this shape".to_string()),
    };
    let selected = backends::select_device(&args.device.device)?;
    let gemm = bench::time_peak_gemm(&selected.device, GEMM_REPS);
    let (title, command, stem) = shape.labels();
    let md = bench::memory::render_markdown(
        (title, command),
        &args.device.device,
        &results,
        torch.as_ref().map_err(String::as_str),
        &|job| shape.step_flops(job),
        gemm.gflops(),
    );
    std::fs::create_dir_all(&args.out)?;
    std::fs::write(args.out.join(format!("MEMORY-{stem}.md")), &md)?;
    let json = serde_json::json!({
        "lrscape": results,
        "pytorch": torch.as_ref().ok(),
        "gemm": gemm,
    });
    std::fs::write(
        args.out.join(format!("memory-{stem}.json")),
        serde_json::to_string_pretty(&json)? + "\n",
    )?;
    print!("{md}");
    Ok(())
}
