//! The population trainer: `C` members of one model trained together.
//!
//! [`train_population`] and [`evaluate`] take any [`nn::PopulationModel`]
//! (a model family, or adapters on one) and a [`SequenceDataset`]; the
//! optimizer ([`PopulationAdamW`]) steps each member with its own learning
//! rate; [`pool`] keeps concurrent populations on their own cores. No config
//! files, no file system, no printing: progress is a callback.
//!
//! [`SequenceDataset`]: synth_data::SequenceDataset

mod device;
pub mod generate;
mod gradients;
mod loft;
mod optim;
pub mod pool;
mod schedule;
mod trainer;

pub use device::SelectedDevice;
pub use gradients::weight_gradients;
pub use optim::{AdamWConfig, PopulationAdamW};
pub use pool::{WorkerPools, flush_subnormals, panic_message};
pub use schedule::{LrDecay, LrSchedule};
pub use trainer::{
    Evaluation, Member, Schedule, TrainOutcome, batch_loss, evaluate, train_population,
};
