//! `lrscape slurm`: the study as a SLURM job chain (pretrain, a job array
//! of shards, merge and report).

use std::path::PathBuf;

use crate::families::{AnyConfig, with_family};

use crate::args::SlurmArgs;

pub fn slurm(flags: SlurmArgs) -> anyhow::Result<()> {
    let loaded = AnyConfig::from_toml_file(&flags.config)?;
    let cells = with_family!(&loaded, config => config.cells().len());
    if flags.shards > cells {
        anyhow::bail!(
            "--shards {}: at most {cells}, the cells of {} (a shard without a cell would \
             only wait in the queue)",
            flags.shards,
            loaded.name()
        );
    }
    // Every script names files by absolute path: it runs from any directory
    // on any node.
    let config = std::fs::canonicalize(&flags.config)
        .map_err(|e| anyhow::anyhow!("--config {}: {e}", flags.config.display()))?;
    let out = flags
        .out
        .unwrap_or_else(|| PathBuf::from("results").join(loaded.name()));
    std::fs::create_dir_all(&out)
        .map_err(|e| anyhow::anyhow!("--out {}: cannot create it ({e})", out.display()))?;
    let out =
        std::fs::canonicalize(&out).map_err(|e| anyhow::anyhow!("--out {}: {e}", out.display()))?;
    let scripts = match flags.scripts {
        Some(dir) => std::path::absolute(&dir)
            .map_err(|e| anyhow::anyhow!("--scripts {}: {e}", dir.display()))?,
        None => out.join("slurm"),
    };
    let options = slurm::SlurmOptions {
        name: loaded.name().to_string(),
        exe: std::env::current_exe()
            .map_err(|e| anyhow::anyhow!("cannot find the lrscape binary's path: {e}"))?,
        compiled: backends::compiled_backends(),
        config,
        out,
        scripts,
        shards: flags.shards,
        partition: flags.partition,
        gpus_per_task: flags.gpus_per_task,
        time: flags.time,
        cpus_per_task: flags.cpus_per_task,
    };
    let written = slurm::write_scripts(&options)?;
    if with_family!(&loaded, config => config.run.threads) == 0 {
        eprintln!(
            "note: run.threads = 0, so each task splits populations by its node's core \
             count; set run.threads for results bit-identical to a single-process run \
             with the same value"
        );
    }
    println!("wrote {}", written.dir.display());
    for path in [
        &written.pretrain,
        &written.shards,
        &written.merge,
        &written.submit,
    ] {
        println!("  {}", path.display());
    }
    if flags.submit {
        let ids = slurm::submit(&written)?;
        println!("pretrain {}", ids.pretrain);
        println!("shards {}", ids.shards);
        println!("merge {}", ids.merge);
    } else {
        println!("submit with {}", written.submit.display());
    }
    Ok(())
}
