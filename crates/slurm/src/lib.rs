//! `lrscape slurm`: a sharded sweep as a SLURM job chain.
//!
//! Writes `pretrain.sbatch` (the base, once), `shards.sbatch` (a job array
//! `--array=0-(N-1)`, each task `lrscape run --shard $SLURM_ARRAY_TASK_ID/N`,
//! `--requeue`), `merge.sbatch` (`lrscape merge` then `lrscape report`) and
//! `submit.sh` (the chain with `--dependency=afterok`). Every script names
//! the lrscape binary, the config and the output directory by absolute path,
//! so it runs the same from any working directory on any node that sees the
//! shared file system.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context;

/// What `lrscape slurm` was asked for; paths absolute.
#[derive(Debug, Clone)]
pub struct SlurmOptions {
    /// The experiment's name (the jobs' names).
    pub name: String,
    pub exe: PathBuf,
    /// The backends compiled into `exe` (the tasks' device must be one).
    pub compiled: Vec<&'static str>,
    pub config: PathBuf,
    pub out: PathBuf,
    pub scripts: PathBuf,
    pub shards: usize,
    pub partition: Option<String>,
    pub gpus_per_task: u32,
    pub time: Option<String>,
    pub cpus_per_task: Option<u32>,
}

impl SlurmOptions {
    /// The device the jobs run on: CUDA when GPUs are asked for.
    pub fn device(&self) -> &'static str {
        if self.gpus_per_task > 0 {
            "cuda"
        } else {
            "flex"
        }
    }

    /// Checks the flags, naming the bad one, its value and what is allowed.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.shards == 0 {
            anyhow::bail!("--shards 0: at least 1");
        }
        if let Some(p) = &self.partition
            && (p.is_empty()
                || !p
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_-.,".contains(c)))
        {
            anyhow::bail!(
                "--partition {p:?}: a SLURM partition name (letters, digits, _ - . and commas)"
            );
        }
        if let Some(t) = &self.time
            && (t.is_empty()
                || !t
                    .chars()
                    .all(|c| c.is_ascii_digit() || c == ':' || c == '-'))
        {
            anyhow::bail!(
                "--time {t:?}: a SLURM time limit such as 30, 4:00:00 or 1-12:00:00 (digits, ':' and '-')"
            );
        }
        if self.cpus_per_task == Some(0) {
            anyhow::bail!("--cpus-per-task 0: at least 1");
        }
        let device = self.device();
        let compiled = &self.compiled;
        if !compiled.contains(&device) {
            anyhow::bail!(
                "--gpus-per-task {}: the tasks would run on {device}, but this lrscape binary ({}) \
                 was built without it (compiled in: {}); build it with \
                 `cargo build --release -p lrscape --features {device}`",
                self.gpus_per_task,
                self.exe.display(),
                compiled.join(", ")
            );
        }
        Ok(())
    }
}

/// Single-quotes `s` for bash.
pub(crate) fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn quoted(p: &Path) -> String {
    sh_quote(&p.display().to_string())
}

/// The scripts written by [`write_scripts`].
#[derive(Debug, Clone)]
pub struct Scripts {
    pub dir: PathBuf,
    pub pretrain: PathBuf,
    pub shards: PathBuf,
    pub merge: PathBuf,
    pub submit: PathBuf,
}

fn header(opts: &SlurmOptions, name: &str, log: &str, gpus: bool) -> String {
    let mut h = String::from("#!/bin/bash\n");
    h.push_str(&format!("#SBATCH --job-name={name}\n"));
    h.push_str(&format!(
        "#SBATCH --output={}\n",
        opts.scripts.join("logs").join(log).display()
    ));
    h.push_str("#SBATCH --open-mode=append\n");
    h.push_str("#SBATCH --ntasks=1\n");
    if let Some(p) = &opts.partition {
        h.push_str(&format!("#SBATCH --partition={p}\n"));
    }
    if let Some(t) = &opts.time {
        h.push_str(&format!("#SBATCH --time={t}\n"));
    }
    if let Some(c) = opts.cpus_per_task {
        h.push_str(&format!("#SBATCH --cpus-per-task={c}\n"));
    }
    if gpus && opts.gpus_per_task > 0 {
        h.push_str(&format!("#SBATCH --gpus-per-task={}\n", opts.gpus_per_task));
    }
    h
}

/// Writes the scripts of the chain into `opts.scripts` (and its `logs/`).
pub fn write_scripts(opts: &SlurmOptions) -> anyhow::Result<Scripts> {
    opts.validate()?;
    let dir = &opts.scripts;
    if dir.display().to_string().chars().any(char::is_whitespace) {
        anyhow::bail!(
            "--scripts {}: the path holds whitespace, which `#SBATCH --output` cannot; choose another directory",
            dir.display()
        );
    }
    std::fs::create_dir_all(dir.join("logs"))
        .with_context(|| format!("cannot create {}", dir.join("logs").display()))?;
    let (exe, cfg, out) = (quoted(&opts.exe), quoted(&opts.config), quoted(&opts.out));
    let device = opts.device();
    let name = format!("lrscape-{}", opts.name);
    let n = opts.shards;

    let mut pretrain = header(opts, &format!("{name}-pretrain"), "pretrain-%j.out", true);
    pretrain.push_str(&format!(
        "# Pre-trains the base once (cached by config hash); the shards only load it.\n\
         set -euo pipefail\n\
         exec {exe} pretrain --config {cfg} --out {out} --device {device}\n"
    ));

    let mut shards = header(opts, &format!("{name}-shards"), "shard-%A_%a.out", true);
    shards.push_str(&format!(
        "#SBATCH --array=0-{last}\n\
         #SBATCH --requeue\n\
         # Task I runs shard I/{n}: its own records file and lock in the output\n\
         # directory. A requeued task resumes its shard from its records.\n\
         set -euo pipefail\n\
         echo \"lrscape shard $SLURM_ARRAY_TASK_ID/{n} on $(hostname) (job $SLURM_JOB_ID, restart ${{SLURM_RESTART_COUNT:-0}})\"\n\
         exec {exe} run --config {cfg} --out {out} --device {device} --shard \"$SLURM_ARRAY_TASK_ID/{n}\"\n",
        last = n - 1
    ));

    let mut merge = header(opts, &format!("{name}-merge"), "merge-%j.out", false);
    merge.push_str(&format!(
        "# Merges the shards' records, then draws the figures and writes REPORT.md.\n\
         set -euo pipefail\n\
         {exe} merge --config {cfg} --out {out}\n\
         exec {exe} report --config {cfg} --out {out}\n"
    ));

    let submit = format!(
        "#!/bin/bash\n\
         # Submits the chain: pretrain -> shards (array) -> merge + report.\n\
         set -euo pipefail\n\
         cd {dir}\n\
         pretrain=$(sbatch --parsable pretrain.sbatch)\n\
         pretrain=${{pretrain%%;*}}\n\
         shards=$(sbatch --parsable --dependency=afterok:$pretrain shards.sbatch)\n\
         shards=${{shards%%;*}}\n\
         merge=$(sbatch --parsable --dependency=afterok:$shards merge.sbatch)\n\
         merge=${{merge%%;*}}\n\
         echo \"pretrain $pretrain\"\n\
         echo \"shards $shards\"\n\
         echo \"merge $merge\"\n",
        dir = quoted(dir)
    );

    let scripts = Scripts {
        dir: dir.clone(),
        pretrain: dir.join("pretrain.sbatch"),
        shards: dir.join("shards.sbatch"),
        merge: dir.join("merge.sbatch"),
        submit: dir.join("submit.sh"),
    };
    for (path, text) in [
        (&scripts.pretrain, &pretrain),
        (&scripts.shards, &shards),
        (&scripts.merge, &merge),
        (&scripts.submit, &submit),
    ] {
        std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))?;
        }
    }
    Ok(scripts)
}

/// Job ids of a submitted chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submitted {
    pub pretrain: String,
    pub shards: String,
    pub merge: String,
}

fn sbatch(args: &[&str], script: &Path) -> anyhow::Result<String> {
    let output = Command::new("sbatch")
        .arg("--parsable")
        .args(args)
        .arg(script)
        .output()
        .context("--submit: cannot run sbatch (is SLURM installed and on PATH?)")?;
    if !output.status.success() {
        anyhow::bail!(
            "--submit: sbatch {} failed: {}",
            script.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let text = String::from_utf8_lossy(&output.stdout);
    // --parsable prints `jobid` or `jobid;cluster`.
    let id = text.trim().split(';').next().unwrap_or("").to_string();
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_digit()) {
        anyhow::bail!(
            "--submit: sbatch {} printed {:?}, not a job id",
            script.display(),
            text.trim()
        );
    }
    Ok(id)
}

/// Submits pretrain, then the array after it, then merge after the array.
pub fn submit(scripts: &Scripts) -> anyhow::Result<Submitted> {
    let pretrain = sbatch(&[], &scripts.pretrain)?;
    let shards = sbatch(
        &[&format!("--dependency=afterok:{pretrain}")],
        &scripts.shards,
    )?;
    let merge = sbatch(&[&format!("--dependency=afterok:{shards}")], &scripts.merge)?;
    Ok(Submitted {
        pretrain,
        shards,
        merge,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(dir: &Path) -> SlurmOptions {
        SlurmOptions {
            name: "default".into(),
            exe: PathBuf::from("/opt/lrscape/bin/lrscape"),
            compiled: vec!["flex"],
            config: PathBuf::from("/data/it's/full.toml"),
            out: PathBuf::from("/scratch/full"),
            scripts: dir.to_path_buf(),
            shards: 8,
            partition: Some("gpu".into()),
            gpus_per_task: 0,
            time: Some("4:00:00".into()),
            cpus_per_task: Some(4),
        }
    }

    #[test]
    fn scripts_name_absolute_paths_the_array_and_the_shard() {
        let dir = tempfile::tempdir().unwrap();
        let scripts = write_scripts(&options(dir.path())).unwrap();
        let shards = std::fs::read_to_string(&scripts.shards).unwrap();
        for want in [
            "#SBATCH --array=0-7\n",
            "#SBATCH --requeue\n",
            "#SBATCH --partition=gpu\n",
            "#SBATCH --time=4:00:00\n",
            "#SBATCH --cpus-per-task=4\n",
            "exec '/opt/lrscape/bin/lrscape' run --config '/data/it'\\''s/full.toml' \
             --out '/scratch/full' --device flex --shard \"$SLURM_ARRAY_TASK_ID/8\"",
        ] {
            assert!(shards.contains(want), "{want:?} not in\n{shards}");
        }
        assert!(!shards.contains("--gpus-per-task"));
        let merge = std::fs::read_to_string(&scripts.merge).unwrap();
        assert!(merge.contains("merge --config") && merge.contains("report --config"));
        let submit = std::fs::read_to_string(&scripts.submit).unwrap();
        assert!(submit.contains("--dependency=afterok:$shards merge.sbatch"));
    }

    #[test]
    fn bad_flags_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let mut o = options(dir.path());
        o.shards = 0;
        assert!(
            write_scripts(&o)
                .unwrap_err()
                .to_string()
                .contains("--shards 0")
        );
        let mut o = options(dir.path());
        o.time = Some("4h; rm -rf /".into());
        assert!(
            write_scripts(&o)
                .unwrap_err()
                .to_string()
                .contains("--time")
        );
        let mut o = options(dir.path());
        o.partition = Some("gpu long".into());
        assert!(
            write_scripts(&o)
                .unwrap_err()
                .to_string()
                .contains("--partition")
        );
        let mut o = options(dir.path());
        o.gpus_per_task = 1;
        let err = write_scripts(&o).unwrap_err().to_string();
        assert!(err.contains("--features cuda"), "{err}");
    }
}
