//! The loss gradient at a frozen base's weights, for inits that read it
//! (LoRA-GA).

use std::collections::BTreeMap;

use burn::module::Param;
use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor};
use nn::{Adaptable, LinearSite};
use synth_data::{EpochOrder, SequenceBatch, SequenceDataset};

use crate::trainer::batch_loss;

/// The mean over `batches` batches of `batch_size` examples of `data` (in
/// data seed `seed`'s order, epoch after epoch) of the gradient of the
/// batch's mean loss with respect to the weight at each of `sites`, `[in,
/// out]`, as PEFT's `preprocess_loraga` averages them. `base` is one member
/// on an autodiff `device`; `None` names a site the model lacks.
pub fn weight_gradients<M: Adaptable>(
    base: &M,
    sites: &[LinearSite],
    data: &SequenceDataset,
    (batches, batch_size, seed): (usize, usize, u64),
    device: &Device,
) -> Result<BTreeMap<LinearSite, Tensor<2>>, LinearSite> {
    // Only the targeted weights are tracked: a base shared with other
    // threads must not join their autodiff graphs.
    let mut model = base.clone().no_grad();
    let mut ids = Vec::with_capacity(sites.len());
    for &site in sites {
        let linear = model.linear_mut(site).ok_or(site)?;
        let weight = Param::from_tensor(linear.weight.val().detach()).set_require_grad(true);
        ids.push(weight.id);
        linear.weight = weight;
    }
    let order = EpochOrder::new(seed);
    let n = synth_data::Dataset::len(data);
    if n == 0 || batches == 0 {
        return Ok(BTreeMap::new());
    }
    let batch_size = batch_size.clamp(1, n.max(1));
    let mut sums: Vec<Option<Tensor<3>>> = vec![None; sites.len()];
    let mut taken = 0;
    let mut epoch = 0;
    while taken < batches {
        for rows in order.batches(n, batch_size, epoch) {
            if taken == batches {
                break;
            }
            let batch = SequenceBatch::gather(data, &[rows.as_slice()], device);
            let loss = batch_loss(model.logits(batch.tokens), batch.targets, batch.weights).sum();
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            for (sum, id) in sums.iter_mut().zip(&ids) {
                let grad: Tensor<3> = grads.get(*id).expect("a trained weight has a gradient");
                *sum = Some(match sum.take() {
                    Some(s) => s + grad,
                    None => grad,
                });
            }
            taken += 1;
        }
        epoch += 1;
    }
    Ok(sites
        .iter()
        .zip(sums)
        .map(|(&site, sum)| {
            let sum = sum.expect("at least one batch");
            let [_, d_in, d_out] = sum.dims();
            (site, sum.reshape([d_in, d_out]).div_scalar(taken as f64))
        })
        .collect())
}
