//! The model-family trait: what orchestration (`sweep`) needs of a family
//! without naming it.

use std::fmt::Debug;
use std::path::Path;

use burn::module::Module;
use burn::tensor::Device;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::model::{Adaptable, LinearLayout};

/// A value of a family's `[model]` table outside what the model can be built
/// with.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("model.{field} = {value}: {allowed}")]
pub struct ConfigError {
    pub field: &'static str,
    pub value: String,
    pub allowed: String,
}

impl ConfigError {
    pub fn new(field: &'static str, value: impl ToString, allowed: impl Into<String>) -> Self {
        Self {
            field,
            value: value.to_string(),
            allowed: allowed.into(),
        }
    }
}

/// A model family, seen through its config (the `[model]` table of an
/// experiment): the shapes tasks are checked against, the adaptable linears,
/// and how a base is made, saved and loaded. `sweep` is generic over it;
/// the binary maps `[model] family` to an implementation.
pub trait ModelConfig:
    Clone + Debug + PartialEq + Default + Serialize + DeserializeOwned + Send + Sync + 'static
{
    /// The `family` key of `[model]` that selects this family.
    const FAMILY: &'static str;

    /// The model a base of this family is.
    type Model: Adaptable + Send + Sync;

    /// Checks every field; the first problem found is returned.
    fn validate(&self) -> Result<(), ConfigError>;

    /// Token ids are below this.
    fn vocab(&self) -> usize;

    /// The longest token sequence the model reads.
    fn seq_len(&self) -> usize;

    /// A language model (causal mask, logits at every position) rather than
    /// a classifier reading the last position.
    fn causal(&self) -> bool;

    /// The adaptable linears, known before a model exists.
    fn linear_layout(&self) -> LinearLayout;

    /// The base's parameter count, from the config alone (in `f64`: a
    /// config can name sizes whose product overflows an integer).
    fn parameters(&self) -> f64;

    /// Floats the forward pass of one sequence keeps for the backward pass,
    /// roughly: what memory estimates scale with the batch.
    fn activations_per_sequence(&self) -> f64;

    /// A freshly initialised model; `seed` decides every weight.
    fn init(&self, seed: u64, device: &Device) -> Result<Self::Model, ConfigError>;

    /// Writes a base to `path` (a Burn record by default).
    fn save_base(model: &Self::Model, path: &Path) -> Result<(), String> {
        model.clone().save_file(path).map_err(|e| format!("{e:?}"))
    }

    /// Reads a base [`save_base`](Self::save_base) wrote, checking that it
    /// fits this config's shapes.
    fn load_base(&self, path: &Path, device: &Device) -> Result<Self::Model, String> {
        let skeleton = self.init(0, device).map_err(|e| e.to_string())?;
        skeleton.try_load_file(path).map_err(|e| format!("{e:?}"))
    }
}
