//! A rough estimate of the memory a study needs, so that a config no machine
//! can hold is refused up front, with the estimate and the fields it grows
//! with, instead of aborting in an allocation hours later.

use nn::ModelConfig;

use crate::config::ExperimentConfig;

const GIB: f64 = (1u64 << 30) as f64;

/// Bytes, by what they hold. `f64` because a config can name sizes whose
/// products overflow any integer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MemoryEstimate {
    /// The frozen base.
    pub base: f64,
    /// Every example of the task's four splits, tokens and targets.
    pub data: f64,
    /// The most the training of one phase holds at once: trainable weights,
    /// their gradients and AdamW's two moments per member, and activations,
    /// for every population trained side by side.
    pub training: f64,
}

impl MemoryEstimate {
    pub fn total(&self) -> f64 {
        self.base + self.data + self.training
    }
}

/// The estimate for `config` on a CPU backend (every core's population at
/// once when `run.threads` is 0).
pub fn estimate<M: ModelConfig>(config: &ExperimentConfig<M>) -> MemoryEstimate {
    let f32_bytes = 4.0;
    let model = &config.model;
    let params = model.parameters();
    let seq = config.sequence_len();
    let activations = model.activations_per_sequence(seq);
    let t = &config.task;
    let examples = [
        t.n_pretrain_train,
        t.n_pretrain_val,
        t.n_finetune_train,
        t.n_finetune_val,
    ]
    .iter()
    .map(|&n| n as f64)
    .sum::<f64>();
    // Text has at most a token per byte.
    let text_bytes: f64 = [&t.train, &t.val]
        .into_iter()
        .flatten()
        .filter_map(|p| std::fs::metadata(config.path(p)).ok())
        .map(|m| m.len() as f64)
        .sum();
    // u32 tokens and u32 targets per position.
    let data = (examples * seq as f64 + text_bytes) * 8.0;
    // Weights, gradients and two moments.
    let state = 4.0 * f32_bytes;
    let pretrain = config.pretrain.as_ref().map_or(0.0, |p| {
        params * state + p.batch_size as f64 * activations * f32_bytes
    });
    let members = config.finetune.lrs.values().map_or(1, |lrs| lrs.len()) * config.grid.seeds.len();
    let population = members.min(config.run.max_population).max(1) as f64;
    let batch = config
        .finetune
        .batch_size
        .values()
        .into_iter()
        .max()
        .unwrap_or(1) as f64;
    let layout = model.linear_layout();
    let finetune = config
        .cells()
        .iter()
        .map(|cell| {
            let trainable = if cell.method.has_adapters() {
                // Every linear adapted: an upper bound for any target set.
                let per_block: f64 = layout
                    .modules
                    .iter()
                    .map(|&(_, i, o)| (cell.rank * (i + o) + o) as f64)
                    .sum();
                let heads: f64 = (layout.heads.iter())
                    .map(|h| (cell.rank * (h.d_in + h.d_out) + h.d_out) as f64)
                    .sum();
                per_block * layout.n_layers as f64 + heads
            } else {
                params
            };
            population * (trainable * state + batch * activations * f32_bytes)
        })
        .fold(0.0, f64::max)
        * config.run.workers(false) as f64;
    MemoryEstimate {
        base: params * f32_bytes,
        data,
        training: pretrain.max(finetune),
    }
}

/// This machine's physical memory in bytes, where the system says.
pub fn machine_memory() -> Option<f64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024.0)
}

/// Refuses `config` when its estimate exceeds `available` bytes, naming the
/// estimate, its parts and the fields each grows with.
pub fn check_fits<M: ModelConfig>(
    config: &ExperimentConfig<M>,
    available: f64,
) -> anyhow::Result<()> {
    let e = estimate(config);
    if e.total() <= available {
        return Ok(());
    }
    anyhow::bail!(
        "{}: the study needs about {} of memory, more than this machine's {}: \
         base {} (the [model] sizes), data {} (task.n_* × model.seq_len), training {} \
         (batch sizes × run.max_population × run.threads × the model's sizes)",
        config.name,
        size(e.total()),
        size(available),
        size(e.base),
        size(e.data),
        size(e.training),
    )
}

/// [`check_fits`] against [`machine_memory`] (no check where it is unknown).
pub fn check<M: ModelConfig>(config: &ExperimentConfig<M>) -> anyhow::Result<()> {
    match machine_memory() {
        Some(available) => check_fits(config, available),
        None => Ok(()),
    }
}

fn size(bytes: f64) -> String {
    if bytes >= 1024.0 * 1024.0 * GIB {
        format!("{:.3e} bytes", bytes)
    } else if bytes >= 1024.0 * GIB {
        format!("{:.1} TiB", bytes / (1024.0 * GIB))
    } else if bytes >= GIB {
        format!("{:.1} GiB", bytes / GIB)
    } else {
        format!("{:.1} MiB", bytes / (1024.0 * 1024.0))
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use tinyformer::TinyformerConfig;

    use super::*;

    fn config(name: &str) -> ExperimentConfig<TinyformerConfig> {
        let path = format!("{}/../../configs/{name}.toml", env!("CARGO_MANIFEST_DIR"));
        ExperimentConfig::from_toml_file(Path::new(&path)).unwrap()
    }

    #[test]
    fn committed_studies_fit_in_a_few_gib() {
        for name in ["default", "quick", "lm", "seed-notebook", "full"] {
            let mut c = config(name);
            // The estimate scales with the cores; pin them.
            c.run.threads = 2;
            let e = estimate(&c);
            assert!(e.total() < 4.0 * GIB, "{name}: {e:?}");
            assert!(check_fits(&c, 24.0 * GIB).is_ok());
        }
    }

    #[test]
    fn sizes_no_machine_holds_are_refused_with_the_estimate() {
        type Mutation = fn(&mut ExperimentConfig<TinyformerConfig>);
        type Part = fn(&MemoryEstimate) -> f64;
        let cases: [(Mutation, Part); 6] = [
            (|c| c.model.seq_len = 100_000_000, |e| e.training),
            (|c| c.model.vocab = 4_000_000_000, |e| e.base),
            (|c| c.model.d_ff = 1_000_000_000_000, |e| e.base),
            (|c| c.model.n_layers = 100_000_000, |e| e.base),
            (|c| c.task.n_pretrain_train = 100_000_000_000, |e| e.data),
            (|c| c.task.n_finetune_val = usize::MAX, |e| e.data),
        ];
        for (mutate, part) in cases {
            let mut c = config("quick");
            mutate(&mut c);
            assert!(part(&estimate(&c)) > 24.0 * GIB, "{:?}", estimate(&c));
            let err = check_fits(&c, 24.0 * GIB).unwrap_err().to_string();
            assert!(
                err.contains("the study needs about")
                    && err.contains("more than this machine's 24.0 GiB"),
                "{err}"
            );
        }
    }
}
