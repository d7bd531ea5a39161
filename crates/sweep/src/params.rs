//! Parameter counts of adapter settings (`lrscape params`).

use burn::tensor::Device;
use nn::ModelConfig;
use peft::{LoraConfig, Method, PeftModel, TargetModules};
use serde::Serialize;

/// One line of `lrscape params`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ParamCount {
    pub method: Method,
    pub rank: usize,
    /// The target modules as the config or `--targets` spells them.
    pub targets: String,
    /// Trainable parameters of one member (adapters, magnitudes, head).
    pub trainable: usize,
    /// All parameters of one member's model (frozen base included).
    pub total: usize,
    /// `100 · trainable / total`.
    pub percent: f64,
}

/// Counts for every (method, rank) on a freshly initialised base of `model`
/// (counts do not depend on the weights).
pub fn param_counts<M: ModelConfig>(
    model: &M,
    methods: &[Method],
    ranks: &[usize],
    targets: &TargetModules,
    train_head: bool,
    device: &Device,
) -> anyhow::Result<Vec<ParamCount>> {
    if ranks.is_empty() || ranks.contains(&0) {
        anyhow::bail!("--ranks {ranks:?}: ranks must be at least 1");
    }
    let label = match targets {
        TargetModules::Preset(name) => name.clone(),
        TargetModules::List(names) => names.join(","),
    };
    let mut out = Vec::new();
    // Trainability is only visible on an autodiff device. Counted on the
    // model fine-tuning trains (an encoder's classifier, not the masked
    // LM it was pre-trained as).
    let device = device.clone().autodiff();
    let base = model.for_finetuning(model.init(0, &device)?, &device);
    for &method in methods {
        let ranks: &[usize] = if method.has_adapters() {
            ranks
        } else {
            &ranks[..1]
        };
        for &rank in ranks {
            let mut config = LoraConfig::new(method, rank);
            config.target_modules = targets.clone();
            config.train_head = train_head;
            // LoRA-GA's factors (from the loss gradient) have LoRA's shapes:
            // counted without data.
            if method.needs_gradients() {
                config.method = Method::Lora;
            }
            let adapted = PeftModel::new(base.clone(), &config, &[0])
                .map_err(|e| anyhow::anyhow!("{} at rank {rank}: {e}", method.name()))?;
            let (trainable, total) = (adapted.trainable_per_member(), adapted.total_per_member());
            out.push(ParamCount {
                method,
                rank: if method.has_adapters() { rank } else { 0 },
                targets: label.clone(),
                trainable,
                total,
                percent: 100.0 * trainable as f64 / total as f64,
            });
        }
    }
    Ok(out)
}
