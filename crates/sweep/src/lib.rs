//! Orchestration for lrscape: experiment configs, backend selection, the
//! population trainer and the jobs the `lrscape` binary runs.
//!
//! This is the top floor: it depends on `synth-data`, `tinyformer`, `peft`,
//! `records` and `figs`, and nothing depends on it. Only [`device`] names backends.

pub mod bench;
pub mod config;
pub mod device;
pub mod optim;
pub mod params;
pub mod pool;
pub mod pretrain;
pub mod report;
pub mod runner;
pub mod shard;
pub mod sharpness;
pub mod slurm;
pub mod store;
pub mod task;
pub mod train;

pub use config::{ExperimentConfig, PretrainConfig, TaskConfig, TaskKind};
pub use device::{SelectedDevice, select_device};
pub use optim::{AdamWConfig, PopulationAdamW};
pub use train::{Evaluation, Member, Schedule, TrainOutcome, evaluate, train_population};
