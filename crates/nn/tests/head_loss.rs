//! `HeadLoss` (the head's backward pass formed by hand) against autodiff
//! through `member_cross_entropy` / `member_weighted_cross_entropy`.

use burn::tensor::{Bool, Device, Int, Tensor, TensorData};
use nn::attention::head_product;
use nn::{HeadLoss, SplitHead, member_cross_entropy, member_weighted_cross_entropy};

const C: usize = 3;
const B: usize = 2;
const T: usize = 4;
const D: usize = 5;
const V: usize = 11;

fn values(n: usize, seed: f32, scale: f32) -> Vec<f32> {
    (0..n)
        .map(|i| scale * ((i as f32 * 0.731 + seed).sin() + 0.3 * (i as f32 * 1.37).cos()))
        .collect()
}

fn host<const N: usize>(t: Tensor<N>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_into_vec().unwrap()
}

struct Case {
    hidden: Vec<f32>,
    members_in_head: usize,
    weight_scale: f32,
    labels: Vec<i64>,
    label_rows: usize,
    weights: Option<Vec<f32>>,
    stopped: [bool; C],
}

impl Case {
    fn new(members_in_head: usize) -> Self {
        let n = B * T;
        Self {
            hidden: values(C * n * D, 0.1, 1.0),
            members_in_head,
            weight_scale: 1.0,
            labels: (0..C * n).map(|i| ((i * 7 + 3) % V) as i64).collect(),
            label_rows: C,
            weights: None,
            stopped: [false; C],
        }
    }

    /// `(losses, ∂/∂hidden)` by autodiff (`reference`) or by `HeadLoss`.
    fn run(&self, reference: bool) -> (Vec<f32>, Vec<f32>) {
        let device = Device::default().autodiff();
        let n = B * T;
        let hidden =
            Tensor::<4>::from_data(TensorData::new(self.hidden.clone(), [C, B, T, D]), &device)
                .require_grad();
        let m = self.members_in_head;
        let weight = Tensor::<3>::from_data(
            TensorData::new(values(m * D * V, 0.7, self.weight_scale), [m, D, V]),
            &device,
        );
        let labels = Tensor::<2, Int>::from_data(
            TensorData::new(
                self.labels[..self.label_rows * n].to_vec(),
                [self.label_rows, n],
            ),
            &device,
        );
        let weights = self
            .weights
            .as_ref()
            .map(|w| Tensor::<2>::from_data(TensorData::new(w.clone(), [C, n]), &device));
        let stopped =
            Tensor::<1, Bool>::from_data(TensorData::new(self.stopped.to_vec(), [C]), &device);
        let (losses, total) = if reference {
            let logits = head_product(hidden.clone(), weight);
            let losses = match weights {
                Some(w) => member_weighted_cross_entropy(logits, labels, w),
                None => member_cross_entropy(logits, labels),
            };
            (losses.clone(), losses.mask_fill(stopped, 0.0).sum())
        } else {
            let loss = HeadLoss::new(
                SplitHead {
                    hidden: hidden.clone(),
                    weight,
                },
                labels,
                weights,
            );
            (loss.losses(), loss.objective(stopped))
        };
        let grads = total.backward();
        let grad = hidden.grad(&grads).expect("hidden is tracked");
        (host(losses.inner()), host(grad))
    }

    fn check(&self) {
        let (want_loss, want_grad) = self.run(true);
        let (loss, grad) = self.run(false);
        for (m, (a, b)) in loss.iter().zip(&want_loss).enumerate() {
            if b.is_nan() {
                assert!(a.is_nan(), "member {m}: loss {a}, autodiff's NaN");
            } else {
                assert!(
                    (a - b).abs() <= 1e-5 * b.abs().max(1.0),
                    "member {m}: loss {a} vs {b}"
                );
            }
        }
        let per_member = B * T * D;
        for (i, (a, b)) in grad.iter().zip(&want_grad).enumerate() {
            let member = i / per_member;
            if self.stopped[member] {
                assert_eq!(
                    *a, 0.0,
                    "stopped member {member} gets no gradient (element {i})"
                );
            } else {
                assert!((a - b).abs() <= 1e-6, "element {i}: gradient {a} vs {b}");
            }
        }
    }
}

#[test]
fn a_shared_head_gives_autodiffs_losses_and_gradients() {
    Case::new(1).check();
}

#[test]
fn a_head_per_member_gives_autodiffs_losses_and_gradients() {
    Case::new(C).check();
}

#[test]
fn labels_shared_by_the_members_are_repeated() {
    let mut case = Case::new(1);
    case.label_rows = 1;
    case.check();
}

#[test]
fn weighted_targets_and_a_member_without_any_match_autodiff() {
    let mut case = Case::new(1);
    let n = B * T;
    let mut w: Vec<f32> = (0..C * n).map(|i| f32::from(i % 3 != 1)).collect();
    // Member 2 scores nothing: loss 0, no gradient.
    w[2 * n..].fill(0.0);
    case.weights = Some(w);
    case.check();
}

#[test]
fn stopped_members_get_no_gradient_even_when_not_finite() {
    let mut case = Case::new(1);
    case.stopped = [false, true, false];
    let per_member = B * T * D;
    case.hidden[per_member..2 * per_member].fill(f32::NAN);
    case.check();
}

#[test]
fn a_label_whose_probability_underflows_keeps_a_finite_loss() {
    // Logits spread over hundreds: exp(z − max) of many labels is 0 in f32.
    let mut case = Case::new(1);
    case.weight_scale = 60.0;
    case.check();
    let (loss, _) = case.run(false);
    assert!(loss.iter().all(|l| l.is_finite()), "{loss:?}");
}
