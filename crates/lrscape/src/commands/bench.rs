//! `lrscape bench`: training speed here, against PyTorch + PEFT.

use crate::families::AnyConfig;
use anyhow::Context;
use bench::memory::{MemoryJob, MemoryResult};
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
            match config {
                AnyConfig::Gpt2(_) => "gpt2",
                AnyConfig::Tinyformer(_) => "tinyformer",
            }
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

/// `--gpt2-memory`: every configuration in a child process of its own.
fn gpt2_memory(args: &BenchArgs) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("cannot find the lrscape binary")?;
    let job = |population, full, compute| MemoryJob {
        population,
        full,
        rank: args.rank,
        compute,
        seq: 64,
        batch: 1,
        steps: 2,
    };
    let jobs: Vec<MemoryJob> = [peft::Compute::ActivationSpace, peft::Compute::WeightSpace]
        .into_iter()
        .flat_map(|compute| {
            args.populations
                .iter()
                .map(move |&p| job(p, false, compute))
        })
        .chain([job(1, true, peft::Compute::default())])
        .collect();
    let mut results = Vec::new();
    for job in jobs {
        eprintln!("bench: {job:?}");
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
    let md = bench::memory::render_markdown(
        "GPT-2-124M shape, random weights",
        &args.device.device,
        &results,
    );
    std::fs::create_dir_all(&args.out)?;
    std::fs::write(args.out.join("MEMORY-gpt2.md"), &md)?;
    std::fs::write(
        args.out.join("memory-gpt2.json"),
        serde_json::to_string_pretty(&results)? + "\n",
    )?;
    print!("{md}");
    Ok(())
}
