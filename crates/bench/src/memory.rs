//! `lrscape bench --gpt2-memory`: peak memory and time per member of a
//! population on a model of real size, so the saving of one frozen base
//! shared by all members is a measured number, beside the same step in
//! PyTorch eager with HF PEFT (`tools/bench/gpt2_peft_step.py`).
//!
//! Each configuration runs in a child process of its own and reads `VmHWM`
//! (Linux's resident high-water mark) once the random base exists (the idle
//! level: process and base) and again after its training steps; the
//! difference divided by the population is the memory each member adds:
//! its adapters, their gradients and AdamW moments, and its activations.
//! A full fine-tuning member (population 1) is the comparison: a whole
//! trainable copy of the model.

use nn::ModelConfig;
use peft::{LoraConfig, Method, PeftModel, TargetModules};
use serde::{Deserialize, Serialize};
use synth_data::SequenceDataset;
use train::{Member, Schedule, train_population};

use crate::vm_hwm_kib;

/// One configuration: a LoRA population (or full fine-tuning) on random
/// tokens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemoryJob {
    /// The shape measured (`gpt2-124m`, `qwen3-0.6b`): the binary maps it
    /// to a family's config.
    #[serde(default = "gpt2_124m")]
    pub model: String,
    pub population: usize,
    /// Full fine-tuning instead of LoRA.
    pub full: bool,
    pub rank: usize,
    /// LoRA's `target_modules`: a preset of the model or a module name.
    #[serde(default = "all_linear")]
    pub targets: String,
    /// Untimed steps before the timed ones.
    #[serde(default)]
    pub warmup: usize,
    /// Where the low-rank path is computed: weight space forms a dense
    /// adapted weight per member, activation space does not.
    pub compute: peft::Compute,
    /// Tokens per sequence and sequences per step.
    pub seq: usize,
    pub batch: usize,
    pub steps: usize,
}

fn all_linear() -> String {
    "all-linear".into()
}

fn gpt2_124m() -> String {
    "gpt2-124m".into()
}

/// What one configuration measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemoryResult {
    pub job: MemoryJob,
    /// The base's parameters.
    pub parameters: usize,
    /// Trainable parameters per member.
    pub trainable: usize,
    /// `VmHWM` with the base built, before adapting, in MiB.
    pub idle_mib: f64,
    /// `VmHWM` after the steps, in MiB.
    pub peak_mib: f64,
    /// Seconds per timed step of the whole population.
    pub seconds_per_step: f64,
}

impl MemoryResult {
    /// What each member adds above the shared base.
    pub fn per_member_mib(&self) -> f64 {
        (self.peak_mib - self.idle_mib) / self.job.population.max(1) as f64
    }

    pub fn ms_per_member_step(&self) -> f64 {
        1000.0 * self.seconds_per_step / self.job.population.max(1) as f64
    }

    /// `full fine-tuning` or `LoRA r=16 on c_attn, activation space`.
    pub fn workload(&self) -> String {
        let j = &self.job;
        if j.full {
            return "full fine-tuning".into();
        }
        let compute = match j.compute {
            peft::Compute::WeightSpace => "weight space",
            peft::Compute::ActivationSpace => "activation space",
        };
        format!("LoRA r={} on {}, {compute}", j.rank, j.targets)
    }
}

/// Random tokens below `vocab`, each sequence's targets its next tokens.
fn random_tokens(vocab: usize, seq: usize, n: usize) -> anyhow::Result<SequenceDataset> {
    let mut rng = synth_data::seeded_rng(0);
    let ids: Vec<u32> = (0..n * (seq + 1))
        .map(|_| synth_data::uniform_below(&mut rng, vocab as u32))
        .collect();
    let mut tokens = Vec::with_capacity(n * seq);
    let mut targets = Vec::with_capacity(n * seq);
    for row in ids.chunks_exact(seq + 1) {
        tokens.extend_from_slice(&row[..seq]);
        targets.extend_from_slice(&row[1..]);
    }
    Ok(SequenceDataset::new(tokens, targets, seq, seq, vocab)?)
}

/// Measures `job` on a randomly initialised model of `model`'s shape, in
/// this process (run it in a child of its own for a clean high-water mark).
pub fn measure<M: ModelConfig>(
    model: &M,
    job: &MemoryJob,
    device: &burn::tensor::Device,
) -> anyhow::Result<MemoryResult> {
    let device = device.clone().autodiff();
    let data = random_tokens(model.vocab(), job.seq, job.batch * (job.steps + job.warmup))?;
    let base = model.init(0, &device)?;
    let idle = vm_hwm_kib();
    let mut lora = LoraConfig::new(if job.full { Method::Full } else { Method::Lora }, job.rank);
    lora.target_modules = TargetModules::Preset(job.targets.clone());
    lora.train_head = false;
    lora.compute = job.compute;
    let seeds: Vec<u64> = (0..job.population as u64).collect();
    let adapted = PeftModel::new(base, &lora, &seeds)?;
    let trainable = adapted.trainable_per_member();
    let members: Vec<Member> = (0..job.population)
        .map(|i| Member {
            lr: 1e-4,
            data_seed: i as u64,
        })
        .collect();
    let schedule = Schedule {
        epochs: 1,
        batch_size: job.batch,
        max_steps: Some(job.steps),
        budget: None,
        lr: train::LrSchedule::CONSTANT,
    };
    let train = |model, steps| {
        let schedule = Schedule {
            max_steps: Some(steps),
            ..schedule
        };
        train_population(
            model,
            &data,
            &members,
            schedule,
            Default::default(),
            &device,
            &|| {},
        )
    };
    let adapted = if job.warmup > 0 {
        train(adapted, job.warmup).model
    } else {
        adapted
    };
    let started = std::time::Instant::now();
    let outcome = train(adapted, job.steps);
    let seconds = started.elapsed().as_secs_f64() / outcome.steps.max(1) as f64;
    let peak = vm_hwm_kib();
    let (Some(idle), Some(peak)) = (idle, peak) else {
        anyhow::bail!("peak memory needs Linux's /proc/self/status (VmHWM)");
    };
    Ok(MemoryResult {
        job: job.clone(),
        parameters: model.parameters() as usize,
        trainable,
        idle_mib: idle as f64 / 1024.0,
        peak_mib: peak as f64 / 1024.0,
        seconds_per_step: seconds,
    })
}

/// The same steps in PyTorch eager with HF PEFT
/// (`tools/bench/gpt2_peft_step.py`'s output).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TorchGpt2 {
    pub torch: String,
    pub transformers: String,
    pub peft: String,
    pub threads: usize,
    pub modes: Vec<TorchGpt2Mode>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TorchGpt2Mode {
    /// `lora_c_attn`, `lora_all_linear` or `full`.
    pub mode: String,
    pub ms_per_step: f64,
    pub idle_mib: f64,
    pub peak_mib: f64,
    pub trainable: usize,
}

impl TorchGpt2 {
    /// The PyTorch mode of `job`: LoRA on `c_attn` or on every linear
    /// (activation space, as PEFT computes it), or full fine-tuning.
    pub fn mode_of(&self, job: &MemoryJob) -> Option<&TorchGpt2Mode> {
        let name = match (job.full, job.targets.as_str(), job.compute) {
            (true, _, _) => "full",
            (false, "c_attn", peft::Compute::ActivationSpace) => "lora_c_attn",
            (false, "all-linear", peft::Compute::ActivationSpace) => "lora_all_linear",
            _ => return None,
        };
        self.modes.iter().find(|m| m.mode == name)
    }
}

/// The table of `results` (`model` names the model measured, `command`
/// the command that measured it), with
/// PyTorch's time and memory for the same workload where it ran, and each
/// configuration's GFLOP/s from `flops_per_member_step` against the GEMM
/// peak `peak_gflops`.
pub fn render_markdown(
    (model, command): (&str, &str),
    device: &str,
    results: &[MemoryResult],
    torch: Result<&TorchGpt2, &str>,
    flops_per_member_step: &dyn Fn(&MemoryJob) -> f64,
    peak_gflops: f64,
) -> String {
    let mut md = format!(
        "# Memory and time per member: {model}\n\n\
         `{command}` on {device}: each row a child process; \
         *idle* is its resident high-water mark with the random base built, \
         *peak* after the steps, *per member* (peak − idle) / population; \
         *ms / member-step* the timed steps' wall time over the population. \
         AdamW, random tokens. GFLOP/s from the step's FLOP model, against \
         one large GEMM on the same device: {peak_gflops:.1} GFLOP/s.\n\n\
         | Workload | Population | Trainable / member | Seq × batch | Idle, MiB | Peak, MiB | Per member, MiB | ms / member-step | GFLOP/s (% of GEMM) | PyTorch + PEFT ms / step | PyTorch ÷ lrscape |\n\
         |---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|\n"
    );
    for r in results {
        let j = &r.job;
        let ms = r.ms_per_member_step();
        let gflops = flops_per_member_step(j) / (ms / 1000.0) / 1e9;
        let reference = torch.ok().and_then(|t| t.mode_of(j));
        let (theirs, ratio) = reference.map_or(("—".to_string(), "—".to_string()), |m| {
            (
                format!("{:.0}", m.ms_per_step),
                format!("{:.2}×", m.ms_per_step / ms),
            )
        });
        md.push_str(&format!(
            "| {} | {} | {} | {} × {} | {:.0} | {:.0} | {:.1} | {ms:.0} | {gflops:.1} ({:.0}%) | {theirs} | {ratio} |\n",
            r.workload(),
            j.population,
            r.trainable,
            j.seq,
            j.batch,
            r.idle_mib,
            r.peak_mib,
            r.per_member_mib(),
            100.0 * gflops / peak_gflops,
        ));
    }
    match torch {
        Ok(t) => {
            md.push_str(&format!(
                "\nPyTorch {} eager, transformers {}, PEFT {}, {} threads \
                 (tools/bench/gpt2_peft_step.py; population 1: one model per process):\n\n\
                 | Mode | ms / step | Idle, MiB | Peak, MiB | Trainable |\n|---|---:|---:|---:|---:|\n",
                t.torch, t.transformers, t.peft, t.threads
            ));
            for m in &t.modes {
                md.push_str(&format!(
                    "| {} | {:.0} | {:.0} | {:.0} | {} |\n",
                    m.mode, m.ms_per_step, m.idle_mib, m.peak_mib, m.trainable
                ));
            }
        }
        Err(why) => md.push_str(&format!("\nPyTorch + PEFT: {why}.\n")),
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(population: usize, full: bool, targets: &str) -> MemoryResult {
        MemoryResult {
            job: MemoryJob {
                model: "gpt2-124m".into(),
                population,
                full,
                rank: 16,
                targets: targets.into(),
                warmup: 1,
                compute: peft::Compute::ActivationSpace,
                seq: 64,
                batch: 1,
                steps: 2,
            },
            parameters: 1000,
            trainable: 10,
            idle_mib: 100.0,
            peak_mib: 100.0 + 8.0 * population as f64,
            seconds_per_step: 0.5 * population as f64,
        }
    }

    #[test]
    fn the_table_sets_each_workload_beside_pytorchs() {
        let torch = TorchGpt2 {
            torch: "2.9.0".into(),
            transformers: "4.57.1".into(),
            peft: "0.21.2".into(),
            threads: 2,
            modes: vec![TorchGpt2Mode {
                mode: "lora_c_attn".into(),
                ms_per_step: 750.0,
                idle_mib: 1200.0,
                peak_mib: 1300.0,
                trainable: 10,
            }],
        };
        let rows = [result(4, false, "c_attn"), result(1, true, "all-linear")];
        // 1 GFLOP per member-step at 0.5 s: 2 GFLOP/s, 10% of 20.
        let md = render_markdown(("m", "bench"), "flex", &rows, Ok(&torch), &|_| 1e9, 20.0);
        assert!(
            md.contains("| LoRA r=16 on c_attn, activation space | 4 | 10 | 64 × 1 | 100 | 132 | 8.0 | 500 | 2.0 (10%) | 750 | 1.50× |"),
            "{md}"
        );
        assert!(md.contains("| full fine-tuning | 1 |"), "{md}");
        assert!(md.contains("| 2.0 (10%) | — | — |"), "{md}");
        let none = render_markdown(
            ("m", "bench"),
            "flex",
            &rows,
            Err("not run (--no-torch)"),
            &|_| 1e9,
            20.0,
        );
        assert!(
            none.contains("PyTorch + PEFT: not run (--no-torch)."),
            "{none}"
        );
    }

    #[test]
    fn random_tokens_predict_their_successors() {
        let data = random_tokens(7, 4, 3).unwrap();
        use synth_data::Dataset;
        assert_eq!(data.len(), 3);
        let item = data.get(1).unwrap();
        assert_eq!(item.tokens[1..], item.targets[..3]);
        assert!(item.tokens.iter().all(|&t| t < 7));
    }
}
