//! `lrscape bench`: training speed here, against PyTorch + PEFT.

use crate::families::AnyConfig;
use anyhow::Context;
use bench::memory::{MemoryJob, MemoryResult, TorchGpt2};
use bench::{BenchOptions, CaseJob, GEMM_REPS, TorchDevice, run_bench, run_case, write_outputs};
use gpt2::{Gpt2Config, Gpt2Family};

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
        let result = bench::memory::measure(&gpt2_124m(), &job, &selected.device)?;
        println!("{}", serde_json::to_string(&result)?);
        return Ok(());
    }
    if args.gpt2_memory {
        return gpt2_memory(&args);
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
        torch_script: (!args.no_torch).then_some(args.torch_script),
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

/// GPT-2-124M's shape (`gpt2`'s config.json), random weights.
fn gpt2_124m() -> Gpt2Family {
    Gpt2Family::shaped(Gpt2Config::default())
}

/// FLOPs of one member's training step of `job` on GPT-2-124M: the forward
/// pass, the backward pass's input gradients (as many again; through a
/// frozen weight nothing else), and for full fine-tuning the weight
/// gradients (as many again); LoRA adds its factors' products, three per
/// token and adapted linear.
fn gpt2_step_flops(job: &MemoryJob) -> f64 {
    let config = Gpt2Config::default();
    let tokens = (job.seq * job.batch) as f64;
    let forward = config.forward_flops(job.seq) * job.batch as f64;
    if job.full {
        return 3.0 * forward;
    }
    let (d, ff) = (config.n_embd as f64, config.d_ff() as f64);
    // Σ (in + out) over the adapted linears of a block.
    let in_out = match job.targets.as_str() {
        "c_attn" => 4.0 * d,
        _ => 4.0 * d + 2.0 * d + 2.0 * (d + ff),
    };
    let adapters = 3.0 * 2.0 * job.rank as f64 * in_out * config.n_layer as f64 * tokens;
    2.0 * forward + adapters
}

/// `tools/bench/gpt2_peft_step.py`'s measurements, or why there are none.
fn torch_gpt2(args: &BenchArgs) -> Result<TorchGpt2, String> {
    if args.no_torch {
        return Err("not run (--no-torch)".into());
    }
    let out = std::process::Command::new("python3")
        .arg("tools/bench/gpt2_peft_step.py")
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
        .map_err(|e| format!("tools/bench/gpt2_peft_step.py printed no result: {e}"))
}

/// `--gpt2-memory`: every configuration in a child process of its own.
fn gpt2_memory(args: &BenchArgs) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("cannot find the lrscape binary")?;
    let job = |population, full, targets: &str, compute| MemoryJob {
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
    let settings = [
        ("c_attn", peft::Compute::ActivationSpace),
        ("all-linear", peft::Compute::ActivationSpace),
        ("all-linear", peft::Compute::WeightSpace),
    ];
    let jobs: Vec<MemoryJob> = settings
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
    eprintln!("bench: PyTorch + PEFT (tools/bench/gpt2_peft_step.py)");
    let torch = torch_gpt2(args);
    let selected = backends::select_device(&args.device.device)?;
    let gemm = bench::time_peak_gemm(&selected.device, GEMM_REPS);
    let md = bench::memory::render_markdown(
        "GPT-2-124M shape, random weights",
        &args.device.device,
        &results,
        torch.as_ref().map_err(String::as_str),
        &gpt2_step_flops,
        gemm.gflops(),
    );
    std::fs::create_dir_all(&args.out)?;
    std::fs::write(args.out.join("MEMORY-gpt2.md"), &md)?;
    let json = serde_json::json!({
        "lrscape": results,
        "pytorch": torch.as_ref().ok(),
        "gemm": gemm,
    });
    std::fs::write(
        args.out.join("memory-gpt2.json"),
        serde_json::to_string_pretty(&json)? + "\n",
    )?;
    print!("{md}");
    Ok(())
}
