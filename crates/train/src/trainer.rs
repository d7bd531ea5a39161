//! The population trainer: `C` members trained together as one model.
//!
//! The loss is the sum over members of each member's mean cross-entropy, so
//! each member's gradient is exactly the one it would get alone; AdamW steps
//! each member with its own learning rate. A member whose loss turns
//! non-finite is stopped (its parameters frozen where they were, flagged
//! diverged) while the others go on.

use std::time::Instant;

use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor};
use nn::{
    HeadLoss, PopulationModel, member_correct, member_cross_entropy, member_weighted_correct,
    member_weighted_cross_entropy,
};
use synth_data::{EpochOrder, SequenceBatch, SequenceDataset};

use crate::optim::{AdamWConfig, PopulationAdamW};
use crate::schedule::LrSchedule;

/// How long and in what portions to train.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    pub epochs: usize,
    pub batch_size: usize,
    /// Stop after this many steps (the first steps of the full schedule,
    /// in the same order); `None`: every step of every epoch.
    pub max_steps: Option<usize>,
    /// A step budget shorter than the epochs: the run ends there, and so
    /// does the learning-rate schedule (`transformers`' `max_steps`).
    pub budget: Option<usize>,
    /// The learning rate over the steps of the full schedule.
    pub lr: LrSchedule,
}

impl Schedule {
    /// Steps of the full schedule over `n` examples: every batch of every
    /// epoch, or the budget where it is shorter.
    pub fn total_steps(&self, n: usize) -> usize {
        let epochs = self
            .epochs
            .saturating_mul(n.div_ceil(self.batch_size.max(1)));
        self.budget.map_or(epochs, |budget| budget.min(epochs))
    }
}

/// One population member: its learning rate and the seed of its data order.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Member {
    pub lr: f64,
    pub data_seed: u64,
}

/// What training produced, per member.
#[derive(Debug, Clone)]
pub struct TrainOutcome<M> {
    pub model: M,
    /// `[member][step]` training loss before each step.
    pub step_loss: Vec<Vec<f32>>,
    /// `[member][epoch]` mean training loss of each epoch.
    pub epoch_loss: Vec<Vec<f64>>,
    pub diverged: Vec<bool>,
    pub steps: usize,
    pub seconds: f64,
}

/// Accuracy and mean loss of each member on a dataset, per target (per
/// example for a classifier, per token for a language model).
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    pub accuracy: Vec<f64>,
    pub loss: Vec<f64>,
}

fn host_f32(t: Tensor<1>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec()
        .expect("float tensors read back as f32")
}

/// Trains `model` (on an autodiff `device`) with one member per entry of
/// `members`. Members sharing one data seed share one data stream; otherwise
/// every member gets its own order. `on_step` is called after every
/// optimizer step (a progress bar, a counter).
///
/// # Panics
/// On an empty `members` or a zero batch size (callers validate both).
pub fn train_population<M: PopulationModel>(
    model: M,
    data: &SequenceDataset,
    members: &[Member],
    schedule: Schedule,
    adamw: AdamWConfig,
    device: &Device,
    on_step: &dyn Fn(),
) -> TrainOutcome<M> {
    use synth_data::Dataset;
    let started = Instant::now();
    let c = members.len();
    assert!(c > 0, "a population needs at least one member");
    let lrs: Vec<f64> = members.iter().map(|m| m.lr).collect();
    let mut optim = PopulationAdamW::new(adamw, &lrs, device);
    optim.set_param_lrs(&model.param_lrs());
    optim.set_factor_pairs(&model.factor_pairs());
    let shared = members.iter().all(|m| m.data_seed == members[0].data_seed);
    let orders: Vec<EpochOrder> = if shared {
        vec![EpochOrder::new(members[0].data_seed)]
    } else {
        members
            .iter()
            .map(|m| EpochOrder::new(m.data_seed))
            .collect()
    };
    let mut model = model;
    let mut step_loss: Vec<Vec<f32>> = vec![Vec::new(); c];
    let mut epoch_loss: Vec<Vec<f64>> = vec![Vec::new(); c];
    let mut steps = 0;
    // Every order has the same number of batches per epoch.
    let total_steps = schedule.total_steps(data.len());
    let limit = schedule
        .max_steps
        .map_or(total_steps, |max| max.min(total_steps));
    let done = |steps: usize| steps >= limit;
    for epoch in 0..schedule.epochs {
        if done(steps) {
            break;
        }
        let batches: Vec<Vec<Vec<usize>>> = orders
            .iter()
            .map(|o| o.batches(data.len(), schedule.batch_size, epoch as u64))
            .collect();
        let mut losses_this_epoch: Vec<Tensor<1>> = Vec::with_capacity(batches[0].len());
        for step in 0..batches[0].len() {
            if done(steps) {
                break;
            }
            let rows: Vec<&[usize]> = batches.iter().map(|b| b[step].as_slice()).collect();
            if !schedule.lr.is_constant() {
                optim.set_lr_factor(schedule.lr.factor(steps, total_steps));
            }
            let batch = SequenceBatch::gather(data, &rows, device);
            let loss = StepLoss::new(&model, batch);
            let losses = loss.losses.clone();
            optim.stop_members(losses.clone().is_finite().bool_not());
            losses_this_epoch.push(losses.inner());
            let total = loss.objective(optim.stopped());
            let grads = GradientsParams::from_grads(total.backward(), &model);
            model = optim.step(model, grads);
            steps += 1;
            on_step();
        }
        // One read-back per epoch keeps the device busy between steps.
        let n_steps = losses_this_epoch.len();
        let all = host_f32(Tensor::cat(losses_this_epoch, 0));
        for member in 0..c {
            let own: Vec<f32> = (0..n_steps).map(|s| all[s * c + member]).collect();
            let mean = own.iter().map(|&l| f64::from(l)).sum::<f64>() / n_steps as f64;
            epoch_loss[member].push(mean);
            step_loss[member].extend(own);
        }
    }
    let diverged = optim
        .stopped()
        .into_data()
        .convert::<bool>()
        .try_into_vec::<bool>()
        .expect("bool tensors read back");
    TrainOutcome {
        model,
        step_loss,
        epoch_loss,
        diverged,
        steps,
        seconds: started.elapsed().as_secs_f64(),
    }
}

/// A training step's loss: through autodiff's graph from the logits, or
/// from the hidden states where the model's head is frozen ([`HeadLoss`]).
struct StepLoss {
    /// Each member's loss `[C]`: on the graph unless `head` is set.
    losses: Tensor<1>,
    head: Option<HeadLoss>,
}

impl StepLoss {
    fn new<M: PopulationModel>(model: &M, batch: SequenceBatch) -> Self {
        match model.split_head(batch.tokens.clone()) {
            Some(split) => {
                let head = HeadLoss::new(split, batch.targets, batch.weights);
                Self {
                    losses: head.losses(),
                    head: Some(head),
                }
            }
            None => Self {
                losses: batch_loss(model.logits(batch.tokens), batch.targets, batch.weights),
                head: None,
            },
        }
    }

    /// The scalar whose gradient trains the members not `stopped`.
    fn objective(self, stopped: Tensor<1, burn::tensor::Bool>) -> Tensor<1> {
        match self.head {
            Some(head) => head.objective(stopped),
            None => self.losses.mask_fill(stopped, 0.0).sum(),
        }
    }
}

/// Each member's mean cross-entropy over a batch's scored targets.
pub fn batch_loss(
    logits: Tensor<3>,
    targets: Tensor<2, burn::tensor::Int>,
    weights: Option<Tensor<2>>,
) -> Tensor<1> {
    match weights {
        Some(w) => member_weighted_cross_entropy(logits, targets, w),
        None => member_cross_entropy(logits, targets),
    }
}

/// Evaluates every member of `model` on `data` in order, without gradients.
pub fn evaluate<M: PopulationModel>(
    model: &M,
    data: &SequenceDataset,
    batch_size: usize,
    device: &Device,
) -> Evaluation {
    use synth_data::Dataset;
    let model = model.valid();
    let device = device.clone().inner();
    let n = data.len();
    let mut correct: Option<Tensor<1>> = None;
    let mut loss_sum: Option<Tensor<1>> = None;
    let indices: Vec<usize> = (0..n).collect();
    let mut targets = 0usize;
    for chunk in indices.chunks(batch_size) {
        let batch = SequenceBatch::gather(data, &[chunk], &device);
        let n_targets = batch.scored[0];
        let logits = model.logits(batch.tokens);
        let right = match &batch.weights {
            Some(w) => member_weighted_correct(logits.clone(), batch.targets.clone(), w.clone()),
            None => member_correct(logits.clone(), batch.targets.clone()).float(),
        };
        let loss = batch_loss(logits, batch.targets, batch.weights).mul_scalar(n_targets as f64);
        targets += n_targets;
        correct = Some(match correct {
            Some(acc) => acc + right,
            None => right,
        });
        loss_sum = Some(match loss_sum {
            Some(acc) => acc + loss,
            None => loss,
        });
    }
    let (Some(correct), Some(loss_sum)) = (correct, loss_sum) else {
        return Evaluation {
            accuracy: Vec::new(),
            loss: Vec::new(),
        };
    };
    Evaluation {
        accuracy: host_f32(correct)
            .into_iter()
            .map(|c| f64::from(c) / targets as f64)
            .collect(),
        loss: host_f32(loss_sum)
            .into_iter()
            .map(|l| f64::from(l) / targets as f64)
            .collect(),
    }
}
