//! The trainer's step through a frozen head formed by hand (`nn::HeadLoss`,
//! taken where a model splits off its head) against the same population
//! trained through autodiff from the logits: LoRA on the random tiny GPT-2
//! of fixtures/gpt2/tiny, a member that diverges among them. (AdamW does
//! not see a uniform scale of the gradient; `nn`'s head_loss test checks
//! the gradient itself.)

use burn::module::Module;
use burn::tensor::{Device, Int, Tensor};
use nn::PopulationModel;
use peft::{LoraConfig, Method, PeftModel};
use synth_data::{IGNORE, SequenceDataset};
use train::{AdamWConfig, Member, Schedule, TrainOutcome, train_population};

/// A model that never splits off its head: the trainer's loss then runs
/// through autodiff from the logits.
#[derive(Module, Debug)]
struct ThroughLogits<M: PopulationModel> {
    inner: M,
}

impl<M: PopulationModel> PopulationModel for ThroughLogits<M> {
    fn logits(&self, tokens: Tensor<3, Int>) -> Tensor<3> {
        self.inner.logits(tokens)
    }
}

const SEQ: usize = 8;

/// 24 sequences of a fixed pseudo-random walk over the tiny vocabulary,
/// each target the next token; every fifth target ignored.
fn data(vocab: usize) -> SequenceDataset {
    let n = 24 * SEQ;
    let walk: Vec<u32> = (0..=n)
        .map(|i| ((i * 37 + i * i * 11) % vocab) as u32)
        .collect();
    let tokens = walk[..n].to_vec();
    let targets = (0..n)
        .map(|i| if i % 5 == 4 { IGNORE } else { walk[i + 1] })
        .collect();
    SequenceDataset::new(tokens, targets, SEQ, SEQ, vocab).unwrap()
}

fn model(device: &Device) -> PeftModel<gpt2::Gpt2Model> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/gpt2/tiny");
    let (_, base) = gpt2::hf::load_dir(std::path::Path::new(dir), device).unwrap();
    PeftModel::new(
        gpt2::Gpt2Model::Lm(base),
        &LoraConfig::new(Method::Lora, 4),
        &[1, 2, 3],
    )
    .unwrap()
}

fn train<M: PopulationModel>(model: M, device: &Device) -> TrainOutcome<M> {
    // The last rate diverges: its member stops, the others go on.
    let members: Vec<Member> = [1e-3, 3e-2, 1e30]
        .into_iter()
        .map(|lr| Member { lr, data_seed: 7 })
        .collect();
    let schedule = Schedule {
        epochs: 2,
        batch_size: 4,
        max_steps: None,
        budget: None,
        lr: train::LrSchedule::CONSTANT,
    };
    let data = data(96);
    train_population(
        model,
        &data,
        &members,
        schedule,
        AdamWConfig::default(),
        device,
        &|| {},
    )
}

#[test]
fn a_split_head_trains_as_autodiff_through_the_logits_does() {
    let device = Device::flex().autodiff();
    let split = model(&device);
    assert!(
        split
            .split_head(Tensor::zeros([1, 1, SEQ], &device))
            .is_some(),
        "a LoRA GPT-2 splits off its frozen head"
    );
    let graph = ThroughLogits {
        inner: model(&device),
    };
    let (ours, theirs) = (train(split, &device), train(graph, &device));
    assert_eq!(ours.steps, 12);
    assert_eq!(ours.diverged, theirs.diverged);
    assert_eq!(ours.diverged, [false, false, true]);
    for (m, (a, b)) in ours.step_loss.iter().zip(&theirs.step_loss).enumerate() {
        for (s, (x, y)) in a.iter().zip(b).enumerate() {
            if y.is_finite() {
                assert!(
                    (x - y).abs() <= 1e-4 * y.abs(),
                    "member {m} step {s}: loss {x} against {y}"
                );
            } else {
                assert!(!x.is_finite(), "member {m} step {s}: loss {x} against {y}");
            }
        }
    }
}
