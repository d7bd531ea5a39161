//! Orchestration for lrscape: an experiment config becomes a validated grid
//! of cells, each cell's (learning rate, seed) members train as populations
//! on a shared base, and their records land in a results directory that
//! runs resume, shards split and `merge` joins.
//!
//! Below it: `train` (the trainer), `peft` (adapters), `nn` (the
//! [`ModelConfig`](nn::ModelConfig) trait every model family implements;
//! sweep is generic over it and never names a family), `synth-data` (tasks)
//! and `records` (result schemas and analyses). It never prints (progress and warnings go through
//! [`events::RunEvents`]), never names a backend (it takes a
//! [`train::SelectedDevice`]) and knows nothing of plots, benchmarks,
//! Hessians or SLURM.

pub mod adapters;
pub mod config;
pub mod digest;
pub mod eval;
pub mod events;
pub mod grid;
pub mod layout;
pub mod lock;
pub mod memory;
pub mod params;
pub mod pretrain;
pub mod runner;
pub mod shard;
pub mod store;
pub mod task;

pub use config::{ExperimentConfig, PretrainConfig, TaskConfig, TaskKind};
pub use events::{Quiet, RunEvents};
