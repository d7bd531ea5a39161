//! `lrscape bench --gpt2-memory`: peak memory per member of a population
//! on a model of real size, so the saving of one frozen base shared by all
//! members is a measured number.
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
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MemoryJob {
    pub population: usize,
    /// Full fine-tuning instead of LoRA.
    pub full: bool,
    pub rank: usize,
    /// Where the low-rank path is computed: weight space forms a dense
    /// adapted weight per member, activation space does not.
    pub compute: peft::Compute,
    /// Tokens per sequence and sequences per step.
    pub seq: usize,
    pub batch: usize,
    pub steps: usize,
}

/// What one configuration measured.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
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
    /// Seconds per step of the whole population.
    pub seconds_per_step: f64,
}

impl MemoryResult {
    /// What each member adds above the shared base.
    pub fn per_member_mib(&self) -> f64 {
        (self.peak_mib - self.idle_mib) / self.job.population.max(1) as f64
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
    let data = random_tokens(model.vocab(), job.seq, job.batch * job.steps)?;
    let base = model.init(0, &device)?;
    let idle = vm_hwm_kib();
    let mut lora = LoraConfig::new(if job.full { Method::Full } else { Method::Lora }, job.rank);
    lora.target_modules = TargetModules::Preset("all-linear".into());
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
    };
    let started = std::time::Instant::now();
    let outcome = train_population(
        adapted,
        &data,
        &members,
        schedule,
        Default::default(),
        &device,
        &|| {},
    );
    let seconds = started.elapsed().as_secs_f64() / outcome.steps.max(1) as f64;
    let peak = vm_hwm_kib();
    let (Some(idle), Some(peak)) = (idle, peak) else {
        anyhow::bail!("peak memory needs Linux's /proc/self/status (VmHWM)");
    };
    Ok(MemoryResult {
        job: *job,
        parameters: model.parameters() as usize,
        trainable,
        idle_mib: idle as f64 / 1024.0,
        peak_mib: peak as f64 / 1024.0,
        seconds_per_step: seconds,
    })
}

/// The table of `results` (`model` names the model measured).
pub fn render_markdown(model: &str, device: &str, results: &[MemoryResult]) -> String {
    let mut md = format!(
        "# Memory per member: {model}\n\n\
         `lrscape bench --gpt2-memory` on {device}: each row a child process; \
         *idle* is its resident high-water mark with the random base built, \
         *peak* after the steps, *per member* (peak − idle) / population. \
         LoRA on every block linear (`all-linear`), AdamW, random tokens.\n\n\
         | Workload | Population | Trainable / member | Seq × batch | Idle, MiB | Peak, MiB | Per member, MiB | s / step |\n\
         |---|---:|---:|---|---:|---:|---:|---:|\n"
    );
    for r in results {
        let j = r.job;
        let workload = if j.full {
            "full fine-tuning".to_string()
        } else {
            let compute = match j.compute {
                peft::Compute::WeightSpace => "weight space",
                peft::Compute::ActivationSpace => "activation space",
            };
            format!("LoRA r={}, {compute}", j.rank)
        };
        md.push_str(&format!(
            "| {workload} | {} | {} | {} × {} | {:.0} | {:.0} | {:.1} | {:.2} |\n",
            j.population,
            r.trainable,
            j.seq,
            j.batch,
            r.idle_mib,
            r.peak_mib,
            r.per_member_mib(),
            r.seconds_per_step
        ));
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

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
