//! AdamW with one learning rate per population member.
//!
//! Burn's optimizers take one scalar learning rate per step; a population
//! needs a vector of them (one per member, along each parameter's leading
//! axis) and a way to stop a diverged member without touching the others.
//! This is PyTorch's `torch.optim.AdamW` (decoupled weight decay, bias
//! correction, β = (0.9, 0.999), ε = 1e-8 by default), applied per member.

use std::collections::HashMap;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::tensor::{Bool, Device, Tensor, TensorData};

/// AdamW hyper-parameters shared by all members.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamWConfig {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

impl Default for AdamWConfig {
    /// PyTorch's defaults, weight decay 0.
    fn default() -> Self {
        Self {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        }
    }
}

/// First and second moments of one parameter, flattened to `[C, n]`.
struct Moments {
    m: Tensor<2>,
    v: Tensor<2>,
}

/// AdamW over a population of `C` members.
pub struct PopulationAdamW {
    config: AdamWConfig,
    /// `[C, 1]` learning rates as given.
    base_lrs: Tensor<2>,
    /// `[C, 1]` learning rates of the next step (a schedule's factor on
    /// `base_lrs`).
    lrs: Tensor<2>,
    /// `[C, 1]`, true for members that stopped (diverged): never updated again.
    stopped: Tensor<2, Bool>,
    members: usize,
    step: i32,
    moments: HashMap<ParamId, Moments>,
    /// Parameters with a learning rate of their own (a factor on the
    /// member's) and whether they decay.
    param_lrs: HashMap<ParamId, (f64, bool)>,
    /// Factor pairs stepped by LoFT's rule, and their state (by `a`'s id).
    pairs: Vec<nn::FactorPair>,
    loft: HashMap<ParamId, crate::loft::LoftState>,
}

impl PopulationAdamW {
    /// One learning rate per member; `device` is the training device (its
    /// non-autodiff side holds the optimizer state).
    pub fn new(config: AdamWConfig, lrs: &[f64], device: &Device) -> Self {
        let device = device.clone().inner();
        let members = lrs.len();
        let lrs = Tensor::from_data(
            TensorData::new(lrs.iter().map(|&lr| lr as f32).collect(), [members, 1]),
            &device,
        );
        let stopped = Tensor::<2>::zeros([members, 1], &device).equal_elem(1.0);
        Self {
            config,
            base_lrs: lrs.clone(),
            lrs,
            stopped,
            members,
            step: 0,
            moments: HashMap::new(),
            param_lrs: HashMap::new(),
            pairs: Vec::new(),
            loft: HashMap::new(),
        }
    }

    /// Factor pairs to step by LoFT's rule instead of AdamW's: each step one
    /// AdamW step in the full weight space, projected on the factor that
    /// moves (B on odd steps, A on even ones), with the moments carried
    /// from one subspace to the next (`loft.rs` has the equations).
    pub fn set_factor_pairs(&mut self, pairs: &[nn::FactorPair]) {
        self.pairs = pairs.to_vec();
    }

    pub fn members(&self) -> usize {
        self.members
    }

    /// Learning-rate factors and decay rules of single parameters (LoRA+'s
    /// groups); the others keep the member's rate and the weight decay.
    pub fn set_param_lrs(&mut self, params: &[nn::ParamLr]) {
        self.param_lrs = params
            .iter()
            .map(|p| (p.id, (p.lr_scale, p.decay)))
            .collect();
    }

    /// Every member's learning rate for the steps to come: `factor` × its
    /// own (a schedule's warm-up or decay).
    pub fn set_lr_factor(&mut self, factor: f64) {
        self.lrs = self.base_lrs.clone().mul_scalar(factor);
    }

    /// Stops every member whose flag in `stop: [C]` is true (on top of those
    /// already stopped). Stopped members keep their parameters as they are.
    pub fn stop_members(&mut self, stop: Tensor<1, Bool>) {
        let stop = stop.inner().reshape([self.members, 1]);
        self.stopped = self.stopped.clone().bool_or(stop);
    }

    /// `[C]`, true where a member has been stopped.
    pub fn stopped(&self) -> Tensor<1, Bool> {
        self.stopped.clone().reshape([self.members])
    }

    /// One AdamW step for every parameter that has a gradient in `grads`.
    /// Trainable parameters must carry the member axis (`C` copies).
    pub fn step<M: Module>(&mut self, module: M, mut grads: GradientsParams) -> M {
        self.step += 1;
        let replaced = if self.pairs.is_empty() {
            HashMap::new()
        } else {
            self.loft_updates(&module, &mut grads)
        };
        let mut mapper = StepMapper {
            optim: self,
            grads: &mut grads,
            replaced,
        };
        module.map(&mut mapper)
    }

    /// LoFT's new values of every pair's factors (`[C, ·, ·]`, inner
    /// device), their gradients taken out of `grads`.
    fn loft_updates<M: Module>(
        &mut self,
        module: &M,
        grads: &mut GradientsParams,
    ) -> HashMap<ParamId, Tensor<3>> {
        struct Values<'a>(&'a [ParamId], HashMap<ParamId, Tensor<3>>);
        impl ModuleVisitor for Values<'_> {
            fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
                if self.0.contains(&param.id) {
                    let t = param.val().inner();
                    let d = t.dims();
                    assert_eq!(D, 3, "a factor pair's tensors are [C, ·, ·]");
                    self.1.insert(param.id, t.reshape([d[0], d[1], d[2]]));
                }
            }
        }
        let ids: Vec<ParamId> = self.pairs.iter().flat_map(|p| [p.a, p.b]).collect();
        let mut values = Values(&ids, HashMap::new());
        module.visit(&mut values);
        let mut out = HashMap::new();
        for pair in self.pairs.clone() {
            let (Some(a), Some(b)) = (values.1.remove(&pair.a), values.1.remove(&pair.b)) else {
                continue;
            };
            let (Some(grad_a), Some(grad_b)) =
                (grads.remove::<3>(pair.a), grads.remove::<3>(pair.b))
            else {
                continue;
            };
            let step = crate::loft::LoftStep {
                a: a.clone(),
                b: b.clone(),
                grad_a: grad_a.inner(),
                grad_b: grad_b.inner(),
                scale: pair.scale,
                lrs: self.lrs.clone(),
                step: self.step,
                betas: (self.config.beta1, self.config.beta2),
                eps: self.config.eps,
                weight_decay: self.config.weight_decay,
            };
            let state = self.loft.remove(&pair.a);
            let (new_a, new_b, state) = crate::loft::loft_step(step, state);
            self.loft.insert(pair.a, state);
            let keep = |new: Tensor<3>, old: Tensor<3>| {
                let dims = new.dims();
                let stopped = self.stopped.clone().reshape([dims[0], 1, 1]).expand(dims);
                new.mask_where(stopped, old)
            };
            out.insert(pair.a, keep(new_a, a));
            out.insert(pair.b, keep(new_b, b));
        }
        out
    }
}

struct StepMapper<'a> {
    optim: &'a mut PopulationAdamW,
    grads: &'a mut GradientsParams,
    /// Parameters whose new values are already computed (LoFT's pairs).
    replaced: HashMap<ParamId, Tensor<3>>,
}

impl ModuleMapper for StepMapper<'_> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        if let Some(new) = self.replaced.remove(&param.id) {
            return param.map(|tensor| {
                let shape = tensor.dims();
                Tensor::from_inner(new.reshape(shape)).require_grad()
            });
        }
        let Some(grad) = self.grads.remove::<D>(param.id) else {
            return param;
        };
        let id = param.id;
        let optim = &mut *self.optim;
        param.map(|tensor| {
            let shape = tensor.dims();
            let members = shape[0];
            assert_eq!(
                members, optim.members,
                "trainable parameter {id} has {members} members, the optimizer {}",
                optim.members
            );
            let n = tensor.shape().num_elements() / members;
            let theta = tensor.inner().reshape([members, n]);
            let grad = grad.inner().reshape([members, n]);
            let updated = optim.update(id, theta, grad);
            Tensor::from_inner(updated.reshape(shape)).require_grad()
        })
    }
}

impl PopulationAdamW {
    /// PyTorch's AdamW step on one flattened parameter `[C, n]`.
    fn update(&mut self, id: ParamId, theta: Tensor<2>, grad: Tensor<2>) -> Tensor<2> {
        let AdamWConfig {
            beta1,
            beta2,
            eps,
            weight_decay,
        } = self.config;
        let (m, v) = match self.moments.remove(&id) {
            Some(Moments { m, v }) => (
                m.mul_scalar(beta1) + grad.clone().mul_scalar(1.0 - beta1),
                v.mul_scalar(beta2) + grad.square().mul_scalar(1.0 - beta2),
            ),
            None => (
                grad.clone().mul_scalar(1.0 - beta1),
                grad.square().mul_scalar(1.0 - beta2),
            ),
        };
        let bias1 = 1.0 - beta1.powi(self.step);
        let bias2 = 1.0 - beta2.powi(self.step);
        let (scale, decays) = self.param_lrs.get(&id).copied().unwrap_or((1.0, true));
        let lr = if scale == 1.0 {
            self.lrs.clone()
        } else {
            self.lrs.clone().mul_scalar(scale)
        };
        let weight_decay = if decays { weight_decay } else { 0.0 };
        // Without decay, three passes over the parameter that leave it as
        // it is (θ − θ·lr·0 = θ) are skipped.
        let decayed = if weight_decay == 0.0 {
            theta.clone()
        } else {
            theta.clone() - theta.clone().mul(lr.clone()).mul_scalar(weight_decay)
        };
        let denom = v.clone().sqrt().div_scalar(bias2.sqrt()).add_scalar(eps);
        let updated = decayed - m.clone().div(denom).mul(lr).div_scalar(bias1);
        let shape = updated.dims();
        let updated = updated.mask_where(self.stopped.clone().expand(shape), theta);
        self.moments.insert(id, Moments { m, v });
        updated
    }
}
