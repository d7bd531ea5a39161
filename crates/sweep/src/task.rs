//! The data of an experiment's task, split by split, from its config.

use nn::ModelConfig;
use synth_data::{MarkovChain, Optimum, SequenceDataset, markov_lm, retrieve_at_k};

use crate::config::{ExperimentConfig, TaskSpec};

/// The two phases of an experiment: the base learns the pre-training
/// distribution, the adapters the shifted one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Pretrain,
    Finetune,
}

/// `markov_lm`'s chains: the pre-training chain and the fine-tuning chain
/// (some rows redrawn), with the redrawn tokens.
#[derive(Debug, Clone)]
pub struct Chains {
    pub pretrain: MarkovChain,
    pub finetune: MarkovChain,
    pub shifted_rows: Vec<u32>,
}

/// The chains of a `markov_lm` config (drawn from `data_seed + 4` and
/// `+ 5`, wrapping, as every seed offset here); `None` for another task.
pub fn markov_chains<M: ModelConfig>(
    config: &ExperimentConfig<M>,
) -> anyhow::Result<Option<Chains>> {
    let TaskSpec::MarkovLm { branching, shift } = config.task.spec(&config.model)? else {
        return Ok(None);
    };
    let seed = config.task.data_seed;
    let pretrain = MarkovChain::random(config.model.vocab(), branching, seed.wrapping_add(4))?;
    let (finetune, shifted_rows) = pretrain.shifted(shift, seed.wrapping_add(5))?;
    Ok(Some(Chains {
        pretrain,
        finetune,
        shifted_rows,
    }))
}

/// `n` examples of `phase`'s distribution drawn from `seed`.
pub fn examples<M: ModelConfig>(
    config: &ExperimentConfig<M>,
    phase: Phase,
    n: usize,
    seed: u64,
) -> anyhow::Result<SequenceDataset> {
    let (seq, vocab) = (config.model.seq_len(), config.model.vocab());
    Ok(match config.task.spec(&config.model)? {
        TaskSpec::RetrieveAtK {
            k_pretrain,
            k_finetune,
        } => {
            let k = match phase {
                Phase::Pretrain => k_pretrain,
                Phase::Finetune => k_finetune,
            };
            retrieve_at_k(n, seq, vocab, k, seed)?
        }
        TaskSpec::MarkovLm { .. } => {
            let chains = markov_chains(config)?.expect("a markov_lm spec has chains");
            let chain = match phase {
                Phase::Pretrain => &chains.pretrain,
                Phase::Finetune => &chains.finetune,
            };
            markov_lm(chain, n, seq, seed)?
        }
    })
}

/// The (train, val) splits of `phase`, sized and seeded as the config says.
pub fn splits<M: ModelConfig>(
    config: &ExperimentConfig<M>,
    phase: Phase,
) -> anyhow::Result<(SequenceDataset, SequenceDataset)> {
    // Every command that trains or measures comes through here first.
    crate::memory::check(config)?;
    let t = &config.task;
    let seed = t.data_seed;
    Ok(match phase {
        Phase::Pretrain => (
            examples(config, phase, t.n_pretrain_train, seed)?,
            examples(config, phase, t.n_pretrain_val, seed.wrapping_add(1))?,
        ),
        Phase::Finetune => (
            examples(config, phase, t.n_finetune_train, seed.wrapping_add(2))?,
            examples(config, phase, t.n_finetune_val, seed.wrapping_add(3))?,
        ),
    })
}

/// The lowest loss any model can reach on `phase`'s data (`markov_lm`); `None`
/// for retrieval, where it is 0.
pub fn optimum<M: ModelConfig>(
    config: &ExperimentConfig<M>,
    phase: Phase,
) -> anyhow::Result<Option<Optimum>> {
    Ok(markov_chains(config)?.map(|chains| {
        let chain = match phase {
            Phase::Pretrain => &chains.pretrain,
            Phase::Finetune => &chains.finetune,
        };
        chain.optimum(config.model.seq_len())
    }))
}

/// The fine-tuning splits (train, val).
pub fn finetune_data<M: ModelConfig>(
    config: &ExperimentConfig<M>,
) -> anyhow::Result<(SequenceDataset, SequenceDataset)> {
    splits(config, Phase::Finetune)
}
