//! Per-member classification loss and accuracy.

use burn::tensor::activation::{log_softmax, softmax};
use burn::tensor::{Bool, IndexingUpdateOp, Int, Tensor};

use crate::SplitHead;
use crate::attention::head_product;

fn labels_for(labels: Tensor<2, Int>, members: usize) -> Tensor<2, Int> {
    if labels.dims()[0] < members {
        labels.repeat_dim(0, members)
    } else {
        labels
    }
}

/// Mean cross-entropy of each member over its batch: logits `[C, B, V]`,
/// labels `[G, B]` with `G` in {1, C}, result `[C]`.
///
/// Summing this vector gives a scalar whose gradient with respect to member
/// `c`'s parameters is exactly member `c`'s own mean-loss gradient.
pub fn member_cross_entropy(logits: Tensor<3>, labels: Tensor<2, Int>) -> Tensor<1> {
    let [c, b, _] = logits.dims();
    let labels = labels_for(labels, c).unsqueeze_dim::<3>(2);
    let picked = log_softmax(logits, 2).gather(2, labels);
    picked.reshape([c, b]).mean_dim(1).reshape([c]).neg()
}

/// Number of correct argmax predictions per member, `[C]`.
pub fn member_correct(logits: Tensor<3>, labels: Tensor<2, Int>) -> Tensor<1, Int> {
    let [c, b, _] = logits.dims();
    let labels = labels_for(labels, c);
    let predicted = logits.argmax(2).reshape([c, b]);
    predicted.equal(labels).int().sum_dim(1).reshape([c])
}

/// `[G, N]` weights as `[C, N]`.
fn weights_for(weights: Tensor<2>, members: usize) -> Tensor<2> {
    if weights.dims()[0] < members {
        weights.repeat_dim(0, members)
    } else {
        weights
    }
}

/// [`member_cross_entropy`] over the targets whose weight (`[G, B]`, 1 or
/// 0) is 1: each member's mean over its scored targets, as PyTorch's
/// `ignore_index` averages; 0 for a member with none.
pub fn member_weighted_cross_entropy(
    logits: Tensor<3>,
    labels: Tensor<2, Int>,
    weights: Tensor<2>,
) -> Tensor<1> {
    let [c, b, _] = logits.dims();
    let labels = labels_for(labels, c).unsqueeze_dim::<3>(2);
    let weights = weights_for(weights, c);
    let count = weights.clone().sum_dim(1).clamp_min(1.0).reshape([c]);
    let picked = log_softmax(logits, 2).gather(2, labels).reshape([c, b]);
    (picked * weights).sum_dim(1).reshape([c]).div(count).neg()
}

/// [`member_correct`] over the scored targets, `[C]`.
pub fn member_weighted_correct(
    logits: Tensor<3>,
    labels: Tensor<2, Int>,
    weights: Tensor<2>,
) -> Tensor<1> {
    let [c, b, _] = logits.dims();
    let labels = labels_for(labels, c);
    let predicted = logits.argmax(2).reshape([c, b]);
    let right = predicted.equal(labels).float();
    (right * weights_for(weights, c)).sum_dim(1).reshape([c])
}

/// Each member's cross-entropy through a frozen head ([`SplitHead`]),
/// with the head's backward pass formed here rather than by autodiff:
/// `∂loss/∂logits = coef · (softmax − onehot)` and one product back through
/// the head, so the graph ends at the hidden states and none of its
/// `[C, B × T, vocab]` tensors are kept. The losses are
/// [`member_cross_entropy`]'s (with weights, [`member_weighted_cross_entropy`]'s)
/// to rounding.
pub struct HeadLoss {
    hidden: Tensor<4>,
    /// The head's weight, the probabilities `[C, N, vocab]`, the labels
    /// `[C, N, 1]`, each row's share of its member's loss `[C, N]` and the
    /// losses `[C]`: all off the autodiff graph.
    weight: Tensor<3>,
    probs: Tensor<3>,
    labels: Tensor<3, Int>,
    coef: Tensor<2>,
    losses: Tensor<1>,
}

impl HeadLoss {
    /// `labels` `[G, B × T]` and `weights` (1 scores a target, 0 ignores
    /// it) `[G, B × T]`, `G` in {1, C}, as [`member_weighted_cross_entropy`]
    /// takes them.
    pub fn new(split: SplitHead, labels: Tensor<2, Int>, weights: Option<Tensor<2>>) -> Self {
        let [c, b, t, _] = split.hidden.dims();
        let n = b * t;
        let weight = split.weight.inner();
        let logits = head_product(split.hidden.clone().inner(), weight.clone());
        let labels = labels_for(labels.inner(), c).unsqueeze_dim::<3>(2);
        let picked = logits.clone().gather(2, labels.clone()).reshape([c, n]);
        let max = logits.clone().max_dim(2).reshape([c, n]);
        let probs = softmax(logits, 2);
        // The largest probability is exp(0) / Σ exp(z − max z), so this is
        // log Σ exp(z − max z) without another pass over the logits.
        let log_sum = probs.clone().max_dim(2).reshape([c, n]).log().neg();
        let nll = max - picked + log_sum;
        let (losses, coef) = match weights {
            None => {
                let coef = nll.ones_like().div_scalar(n as f64);
                (nll.mean_dim(1).reshape([c]), coef)
            }
            Some(w) => {
                let w = weights_for(w.inner(), c);
                let count = w.clone().sum_dim(1).clamp_min(1.0);
                let losses = (nll * w.clone()).sum_dim(1).div(count.clone());
                (losses.reshape([c]), w.div(count))
            }
        };
        Self {
            hidden: split.hidden,
            weight,
            probs,
            labels,
            coef,
            losses,
        }
    }

    /// Each member's loss `[C]`, on the hidden states' device, untracked.
    pub fn losses(&self) -> Tensor<1> {
        let losses = self.losses.clone();
        if self.hidden.is_autodiff() {
            losses.autodiff()
        } else {
            losses
        }
    }

    /// A scalar whose gradient is that of the sum of the losses of the
    /// members not `stopped` (`[C]`): `Σ hidden · ∂loss/∂hidden`, the
    /// second factor held constant.
    pub fn objective(self, stopped: Tensor<1, Bool>) -> Tensor<1> {
        let [c, b, t, d] = self.hidden.dims();
        let [_, n, _] = self.probs.dims();
        let minus_one = self.labels.clone().float().zeros_like().sub_scalar(1.0);
        let dlogits = self
            .probs
            .scatter(2, self.labels, minus_one, IndexingUpdateOp::Add);
        // Back through the head: its transpose `[M, vocab, d]` as a head.
        let vocab = dlogits.dims()[2];
        let dhidden = head_product(
            dlogits.reshape([c, n, 1, vocab]),
            self.weight.swap_dims(1, 2),
        );
        let stopped = stopped.inner().reshape([c, 1, 1]).expand([c, n, d]);
        let dhidden = (dhidden * self.coef.unsqueeze_dim::<3>(2)).mask_fill(stopped, 0.0);
        (self.hidden * dhidden.reshape([c, b, t, d])).sum()
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Device, TensorData};

    use super::*;

    #[test]
    fn ignored_targets_count_in_neither_loss_nor_accuracy() {
        let device = Device::default();
        // One member, three targets over a vocabulary of 2.
        let logits = Tensor::<3>::from_data(
            TensorData::new(vec![2.0f32, 0.0, 0.0, 1.0, 3.0, -1.0], [1, 3, 2]),
            &device,
        );
        let labels =
            Tensor::<2, Int>::from_data(TensorData::new(vec![0i64, 0, 1], [1, 3]), &device);
        let weights =
            Tensor::<2>::from_data(TensorData::new(vec![1.0f32, 0.0, 1.0], [1, 2 + 1]), &device);
        let loss: f32 =
            member_weighted_cross_entropy(logits.clone(), labels.clone(), weights.clone())
                .into_scalar();
        // Targets 0 and 2: -log softmax(2, 0)[0] and -log softmax(3, -1)[1].
        let nll = |a: f32, b: f32| (a.exp() + b.exp()).ln() - a;
        let want = (nll(2.0, 0.0) + nll(-1.0, 3.0)) / 2.0;
        assert!((loss - want).abs() < 1e-6, "{loss} vs {want}");
        let right: f32 = member_weighted_correct(logits, labels, weights).into_scalar();
        assert_eq!(right, 1.0);
    }
}
