//! `lrscape bench`: training speed here, against PyTorch + PEFT.

use crate::families::AnyConfig;
use anyhow::Context;
use bench::{BenchOptions, CaseJob, GEMM_REPS, TorchDevice, run_bench, run_case, write_outputs};

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
