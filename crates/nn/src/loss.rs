//! Per-member classification loss and accuracy.

use burn::tensor::activation::log_softmax;
use burn::tensor::{Int, Tensor};

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
