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
