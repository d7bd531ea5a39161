//! Sharpness: the largest eigenvalue λmax of the fine-tuning loss Hessian
//! with respect to a model's trainable parameters, per population member.
//!
//! Burn's autodiff is first-order, so Hessian-vector products are central
//! finite differences of gradients,
//! `Hv ≈ (g(θ + εv) − g(θ − εv)) / (2ε)` with `‖v‖ = 1`, and λmax comes from
//! power iteration ([`lambda_max`]: the Rayleigh quotient `vᵀHv` of the
//! iterate) or, as `lrscape sharpness` does, from the Lanczos iteration on
//! the same products ([`lanczos_lambda_max`], below).
//!
//! **Members.** Every trainable tensor carries the member axis, and the loss
//! is the sum of the members' own losses, so one backward pass gives every
//! member its own gradient. Each member has its own `v`, `ε`, λ and stopping
//! point: a member's result does not depend on the others in its population
//! (its start vector is drawn from its own seed, and its λ is the one at the
//! iteration where it met the tolerance, whatever the others still do).
//!
//! **ε.** `ε_c = eps_rel · max(‖θ_c‖, 1)`, with `‖θ_c‖` the norm of member
//! `c`'s trainable parameters and `eps_rel = 1e-3` by default. In f32 a
//! coordinate moved by `ε·v_i` is represented to about
//! `2⁻²⁴·|θ_i| / (ε·|v_i|)`; with `|θ_i| ≈ ‖θ‖/√n` and `|v_i| ≈ 1/√n` that is
//! `6e-8 / eps_rel`, so scaling ε with ‖θ‖ keeps that error near 1e-4
//! whatever the model's size, while the step stays a 1e-3 fraction of the
//! weights (the truncation error of a central difference is O(ε²) and zero
//! for a quadratic loss). The floor of 1 keeps ε sane for parameters near 0.
//!
//! **Sign.** Power iteration finds the eigenvalue of largest magnitude. When
//! that one is negative (the most negative curvature dominates, as on the
//! default study's base, where the fine-tuning task is new), a second phase
//! runs power iteration on `H − λ_neg I`, whose spectrum is shifted to
//! `[0, λmax − λ_neg]`, so it converges to the largest eigenvalue λmax. A
//! phase stops when `|λ_k − λ_{k−1}| ≤ tol · |λ_k|` or after `max_iters`
//! products. That second phase converges at the rate
//! `(λ₂ − λ_neg)/(λmax − λ_neg)`, hopeless when `|λ_neg| ≫ λmax`, which is
//! what the default study's cells have (λ_neg down to −95, λmax ≈ 1).
//!
//! **Lanczos.** [`lanczos_lambda_max`] (what `lrscape sharpness` uses) runs
//! the Lanczos iteration on the same Hessian-vector products, with full
//! reorthogonalisation, and takes the largest eigenvalue of the tridiagonal
//! matrix (bisection on Sturm counts): the extreme Ritz values converge
//! fast at both ends of the spectrum whatever the sign of the dominant one.
//! It stops when the largest Ritz value moves by at most `tol` relative
//! between iterations, or after `max_iters` products.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor, TensorData};
use nn::{ModelConfig, PopulationModel};
use peft::PeftModel;
use records::{SharpnessEntry, SharpnessFile};
use sweep::ExperimentConfig;
use sweep::store::write_atomic;
use synth_data::{Dataset, SequenceBatch};
use train::SelectedDevice;

/// How the iteration (power or Lanczos) runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PowerOptions {
    /// Most Hessian-vector products per member (power iteration: per phase;
    /// a second phase runs only when the dominant eigenvalue is negative).
    pub max_iters: usize,
    /// Stop a member when `|λ_k − λ_{k−1}| ≤ tol · |λ_k|` (λ_k: the Rayleigh
    /// quotient, or Lanczos' largest Ritz value, after product k).
    pub tol: f64,
    /// ε relative to the member's parameter norm (see the module docs).
    pub eps_rel: f64,
    /// Mixed with each member's seed to draw its start vector.
    pub seed: u64,
}

impl Default for PowerOptions {
    fn default() -> Self {
        Self {
            max_iters: 100,
            tol: 1e-3,
            eps_rel: 1e-3,
            seed: 0,
        }
    }
}

impl PowerOptions {
    /// Checks the settings, each named with the `lrscape sharpness` flag
    /// that sets it: `max_iters` ≥ 1, `tol` and `eps_rel` in (0, 1).
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.max_iters == 0 {
            anyhow::bail!("max_iters = 0 (--iters): at least 1 iteration");
        }
        if !(self.tol.is_finite() && self.tol > 0.0 && self.tol < 1.0) {
            anyhow::bail!(
                "tol = {} (--tol): a relative tolerance in (0, 1), e.g. 1e-3",
                self.tol
            );
        }
        if !(self.eps_rel.is_finite() && self.eps_rel > 0.0 && self.eps_rel < 1.0) {
            anyhow::bail!(
                "eps_rel = {} (--eps): a relative step in (0, 1), e.g. 1e-3",
                self.eps_rel
            );
        }
        Ok(())
    }
}

/// λmax of one member.
#[derive(Debug, Clone, PartialEq)]
pub struct MemberSharpness {
    /// The Rayleigh quotient at the last iteration counted.
    pub lambda_max: f64,
    /// Hessian-vector products until the tolerance was met (or `max_iters`).
    pub iterations: usize,
    pub converged: bool,
    /// The finite-difference step used.
    pub epsilon: f64,
    /// λ after each iteration, up to `iterations` (both phases).
    pub history: Vec<f64>,
    /// The most negative eigenvalue found, when there is one (power
    /// iteration: the dominant eigenvalue, then λmax from a second phase on
    /// `H − λI`; Lanczos: the smallest Ritz value).
    pub lambda_min: Option<f64>,
}

/// Numbers drawn by SplitMix64: portable, no dependency.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [-1, 1).
    fn next_f32(&mut self) -> f32 {
        ((self.next_u64() >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
}

/// Per-member elements of each trainable parameter, in visiting order.
fn trainable_sizes<M: Module>(model: &M, members: usize) -> anyhow::Result<Vec<usize>> {
    struct Sizes {
        members: usize,
        sizes: Vec<usize>,
        bad: Option<String>,
    }
    impl ModuleVisitor for Sizes {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if !param.is_require_grad() {
                return;
            }
            let dims = param.val().dims();
            if D == 0 || dims[0] != self.members {
                self.bad = Some(format!(
                    "trainable parameter {} has shape {dims:?}, not a leading member axis of {}",
                    param.id, self.members
                ));
                return;
            }
            self.sizes
                .push(dims.iter().product::<usize>() / self.members);
        }
    }
    let mut v = Sizes {
        members,
        sizes: Vec::new(),
        bad: None,
    };
    model.visit(&mut v);
    if let Some(bad) = v.bad {
        anyhow::bail!(bad);
    }
    if v.sizes.is_empty() {
        anyhow::bail!("the model has no trainable parameters: no Hessian to measure");
    }
    Ok(v.sizes)
}

/// The trainable parameters (`values`) or their gradients in `grads`
/// (zero where a parameter got none), flattened to `[C, N]`.
fn flatten<M: Module>(
    model: &M,
    members: usize,
    mut grads: Option<&mut GradientsParams>,
) -> Tensor<2> {
    struct Gather<'a> {
        members: usize,
        grads: Option<&'a mut GradientsParams>,
        parts: Vec<Tensor<2>>,
    }
    impl ModuleVisitor for Gather<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if !param.is_require_grad() {
                return;
            }
            let value = param.val();
            let n = value.shape().num_elements() / self.members;
            let flat = match self.grads.as_deref_mut() {
                None => value.inner().reshape([self.members, n]),
                Some(grads) => match grads.remove::<D>(param.id) {
                    Some(g) => g.inner().reshape([self.members, n]),
                    None => Tensor::zeros([self.members, n], &value.device().inner()),
                },
            };
            self.parts.push(flat);
        }
    }
    let mut gather = Gather {
        members,
        grads: grads.take(),
        parts: Vec::new(),
    };
    model.visit(&mut gather);
    Tensor::cat(gather.parts, 1)
}

/// `model` with its trainable parameters moved by `delta: [C, N]`.
fn shifted<M: Module>(model: &M, delta: Tensor<2>) -> M {
    struct Shift {
        delta: Tensor<2>,
        offset: usize,
    }
    impl ModuleMapper for Shift {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            if !param.is_require_grad() {
                return param;
            }
            let delta = self.delta.clone();
            let offset = &mut self.offset;
            param.map(|tensor| {
                let dims = tensor.dims();
                let n = tensor.shape().num_elements() / dims[0];
                let part = delta.narrow(1, *offset, n).reshape(dims);
                *offset += n;
                Tensor::from_inner(tensor.inner() + part).require_grad()
            })
        }
    }
    model.clone().map(&mut Shift { delta, offset: 0 })
}

/// `[C, 1]` from host values.
fn column(values: &[f64], device: &Device) -> Tensor<2> {
    let data: Vec<f32> = values.iter().map(|&v| v as f32).collect();
    Tensor::from_data(TensorData::new(data, [values.len(), 1]), device)
}

fn host(t: Tensor<2>) -> Vec<f64> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .expect("float tensors read back as f32")
        .into_iter()
        .map(f64::from)
        .collect()
}

/// What both solvers share: the checked options, each member's ε, its
/// normalised start vector, and the finite-difference Hessian-vector product.
struct HvpSetup {
    /// Members.
    c: usize,
    /// Trainable values per member.
    n: usize,
    eps: Vec<f64>,
    /// `eps` as a `[C, 1]` column.
    eps_col: Tensor<2>,
    /// `[C, n]`, unit norm per member, drawn from the member's seed.
    v_start: Tensor<2>,
    device: Device,
}

impl HvpSetup {
    fn new<M: Module>(
        model: &M,
        member_seeds: &[u64],
        opts: &PowerOptions,
    ) -> anyhow::Result<Self> {
        let c = member_seeds.len();
        if c == 0 {
            anyhow::bail!("member_seeds is empty: at least one member");
        }
        opts.validate()?;
        let n: usize = trainable_sizes(model, c)?.iter().sum();
        let theta = flatten(model, c, None);
        let device = theta.device();
        let norms = host(theta.square().sum_dim(1).sqrt());
        let eps: Vec<f64> = norms.iter().map(|t| opts.eps_rel * t.max(1.0)).collect();
        let eps_col = column(&eps, &device);
        // Start vectors: member c's own stream, normalised.
        let mut start = Vec::with_capacity(c * n);
        for &seed in member_seeds {
            let mut rng = SplitMix64(opts.seed ^ seed.wrapping_mul(0xA076_1D64_78BD_642F));
            start.extend((0..n).map(|_| rng.next_f32()));
        }
        let v0: Tensor<2> = Tensor::from_data(TensorData::new(start, [c, n]), &device);
        let v_start = v0.clone() / v0.square().sum_dim(1).sqrt();
        Ok(HvpSetup {
            c,
            n,
            eps,
            eps_col,
            v_start,
            device,
        })
    }

    /// `Hv ≈ (g(θ + εv) − g(θ − εv)) / 2ε`, per member.
    fn hvp<M, F>(&self, model: &M, loss: &F, v: Tensor<2>) -> Tensor<2>
    where
        M: Module,
        F: Fn(&M) -> Tensor<1>,
    {
        let grad_at = |delta: Tensor<2>| {
            let moved = shifted(model, delta);
            let total = loss(&moved).sum();
            let mut grads = GradientsParams::from_grads(total.backward(), &moved);
            flatten(&moved, self.c, Some(&mut grads))
        };
        let step = v * self.eps_col.clone();
        (grad_at(step.clone()) - grad_at(step.neg())) / self.eps_col.clone().mul_scalar(2.0)
    }

    fn fresh_results(&self) -> Vec<MemberSharpness> {
        self.eps
            .iter()
            .map(|&epsilon| MemberSharpness {
                lambda_max: f64::NAN,
                iterations: 0,
                converged: false,
                epsilon,
                history: Vec::new(),
                lambda_min: None,
            })
            .collect()
    }
}

/// λmax of the Hessian of `loss` with respect to the trainable (require-grad)
/// parameters of `model`, per member, by power iteration on finite-difference
/// Hessian-vector products. `model` lives on an autodiff device; `loss`
/// returns each member's loss, `[C]` (their sum is differentiated);
/// `member_seeds[c]` draws member `c`'s start vector.
pub fn lambda_max<M, F>(
    model: &M,
    loss: F,
    member_seeds: &[u64],
    opts: &PowerOptions,
) -> anyhow::Result<Vec<MemberSharpness>>
where
    M: Module,
    F: Fn(&M) -> Tensor<1>,
{
    let setup = HvpSetup::new(model, member_seeds, opts)?;
    let (c, device) = (setup.c, setup.device.clone());
    let v_start = setup.v_start.clone();
    let mut v = v_start.clone();
    let mut out = setup.fresh_results();
    // Per member: the shift σ (0, then the dominant negative eigenvalue),
    // iterations in the current phase, and whether it is finished.
    let mut shift = vec![0.0; c];
    let mut phase_iters = vec![0usize; c];
    let mut done = vec![false; c];
    let mut previous = vec![f64::NAN; c];
    let mut shift_col = column(&shift, &device);
    for k in 1..=2 * opts.max_iters {
        let hv = setup.hvp(model, &loss, v.clone());
        // λ = vᵀHv (‖v‖ = 1); the iteration runs on H − σI.
        let lambda = host((v.clone() * hv.clone()).sum_dim(1));
        let w = hv - v.clone() * shift_col.clone();
        let w_norm = host(w.clone().square().sum_dim(1).sqrt());
        let mut restart = vec![0.0; c];
        for m in 0..c {
            if done[m] {
                continue;
            }
            let member = &mut out[m];
            phase_iters[m] += 1;
            member.lambda_max = lambda[m];
            member.iterations = k;
            member.history.push(lambda[m]);
            let settled =
                phase_iters[m] > 1 && (lambda[m] - previous[m]).abs() <= opts.tol * lambda[m].abs();
            previous[m] = lambda[m];
            if !(settled || phase_iters[m] >= opts.max_iters) {
                continue;
            }
            if member.lambda_min.is_none() && lambda[m] < 0.0 {
                // The most negative curvature dominates: start again on
                // H − λI, whose dominant eigenvalue is λmax − λ ≥ 0.
                member.lambda_min = Some(lambda[m]);
                shift[m] = lambda[m];
                phase_iters[m] = 0;
                previous[m] = f64::NAN;
                restart[m] = 1.0;
            } else {
                member.converged = settled;
                done[m] = true;
            }
        }
        if done.iter().all(|&d| d) {
            break;
        }
        // v <- w / ‖w‖ (a member with w = 0 keeps its v); restarted members
        // take their start vector again.
        let keep: Vec<f64> = w_norm
            .iter()
            .map(|&x| if x > 0.0 && x.is_finite() { 0.0 } else { 1.0 })
            .collect();
        let denom: Vec<f64> = w_norm
            .iter()
            .map(|&x| if x > 0.0 && x.is_finite() { x } else { 1.0 })
            .collect();
        let (keep, denom) = (column(&keep, &device), column(&denom, &device));
        let next = w.mul(keep.clone().neg().add_scalar(1.0)) / denom + v * keep;
        v = if restart.iter().any(|&r| r > 0.0) {
            let restart = column(&restart, &device);
            next * restart.clone().neg().add_scalar(1.0) + v_start.clone() * restart
        } else {
            next
        };
        shift_col = column(&shift, &device);
    }
    Ok(out)
}

/// Largest and smallest eigenvalue of the symmetric tridiagonal matrix with
/// diagonal `alpha` and off-diagonal `beta` (bisection on Sturm counts).
pub fn tridiagonal_extremes(alpha: &[f64], beta: &[f64]) -> (f64, f64) {
    let n = alpha.len();
    let radius = |i: usize| {
        let left = if i > 0 { beta[i - 1].abs() } else { 0.0 };
        let right = if i + 1 < n { beta[i].abs() } else { 0.0 };
        left + right
    };
    let lo0 = (0..n)
        .map(|i| alpha[i] - radius(i))
        .fold(f64::INFINITY, f64::min);
    let hi0 = (0..n)
        .map(|i| alpha[i] + radius(i))
        .fold(f64::NEG_INFINITY, f64::max);
    // Eigenvalues below x.
    let below = |x: f64| {
        let mut count = 0;
        let mut d = 1.0;
        for i in 0..n {
            let off = if i > 0 {
                beta[i - 1] * beta[i - 1]
            } else {
                0.0
            };
            d = alpha[i] - x - if i > 0 { off / d } else { 0.0 };
            if d == 0.0 {
                d = -f64::EPSILON * (x.abs() + 1.0);
            }
            if d < 0.0 {
                count += 1;
            }
        }
        count
    };
    let bisect = |target: usize| {
        // The smallest x with `below(x) > target`: eigenvalue `target` (0-based).
        let (mut lo, mut hi) = (lo0 - 1e-12, hi0 + 1e-12);
        for _ in 0..200 {
            let mid = 0.5 * (lo + hi);
            if below(mid) > target {
                hi = mid;
            } else {
                lo = mid;
            }
            if hi - lo <= 1e-14 * (lo.abs() + hi.abs()).max(1e-300) {
                break;
            }
        }
        0.5 * (lo + hi)
    };
    (bisect(n - 1), bisect(0))
}

/// λmax of the Hessian of `loss` with respect to the trainable parameters
/// of `model`, per member, by the Lanczos iteration (full
/// reorthogonalisation) on finite-difference Hessian-vector products; same
/// arguments and ε as [`lambda_max`]. `history` holds the largest Ritz value
/// after each product.
pub fn lanczos_lambda_max<M, F>(
    model: &M,
    loss: F,
    member_seeds: &[u64],
    opts: &PowerOptions,
) -> anyhow::Result<Vec<MemberSharpness>>
where
    M: Module,
    F: Fn(&M) -> Tensor<1>,
{
    let setup = HvpSetup::new(model, member_seeds, opts)?;
    let (c, n, device) = (setup.c, setup.n, setup.device.clone());
    let hvp = |v: Tensor<2>| setup.hvp(model, &loss, v);
    let mut q = setup.v_start.clone();
    let mut out = setup.fresh_results();
    let mut basis: Vec<Tensor<2>> = Vec::new();
    let mut alphas: Vec<Vec<f64>> = vec![Vec::new(); c];
    let mut betas: Vec<Vec<f64>> = vec![Vec::new(); c];
    let mut done = vec![false; c];
    let mut previous: Option<Tensor<2>> = None;
    let mut beta_col = column(&vec![0.0; c], &device);
    for k in 1..=opts.max_iters {
        let mut w = hvp(q.clone());
        let alpha = host((q.clone() * w.clone()).sum_dim(1));
        w = w - q.clone() * column(&alpha, &device);
        if let Some(prev) = &previous {
            w = w - prev.clone() * beta_col.clone();
        }
        basis.push(q.clone());
        // Full reorthogonalisation against every basis vector, per member.
        for b in &basis {
            let coef = (b.clone() * w.clone()).sum_dim(1);
            w = w - b.clone() * coef;
        }
        let beta = host(w.clone().square().sum_dim(1).sqrt());
        for m in 0..c {
            if done[m] {
                continue;
            }
            alphas[m].push(alpha[m]);
            let (top, bottom) = tridiagonal_extremes(&alphas[m], &betas[m]);
            let member = &mut out[m];
            let last = member.lambda_max;
            member.lambda_max = top;
            member.lambda_min = (bottom < 0.0).then_some(bottom);
            member.iterations = k;
            member.history.push(top);
            let settled = k > 1 && (top - last).abs() <= opts.tol * top.abs();
            // An invariant subspace (β ≈ 0): the Ritz values are exact.
            let exhausted = beta[m] <= 1e-7 * alpha[m].abs().max(1e-12) || k >= n;
            if settled || exhausted {
                member.converged = true;
                done[m] = true;
            } else {
                betas[m].push(beta[m]);
            }
        }
        if done.iter().all(|&d| d) {
            break;
        }
        let denom: Vec<f64> = beta
            .iter()
            .map(|&b| if b > 0.0 && b.is_finite() { b } else { 1.0 })
            .collect();
        beta_col = column(&beta, &device);
        previous = Some(q);
        q = w / column(&denom, &device);
    }
    Ok(out)
}

/// Sharpness of a classifier on a fixed batch: each member's mean
/// cross-entropy, as in training (Lanczos, [`lanczos_lambda_max`]).
pub fn classifier_lambda_max<M: PopulationModel>(
    model: &M,
    batch: &SequenceBatch,
    member_seeds: &[u64],
    opts: &PowerOptions,
) -> anyhow::Result<Vec<MemberSharpness>> {
    lanczos_lambda_max(
        model,
        |m: &M| {
            train::batch_loss(
                m.logits(batch.tokens.clone()),
                batch.targets.clone(),
                batch.weights.clone(),
            )
        },
        member_seeds,
        opts,
    )
}

/// What `lrscape sharpness` is asked to do.
pub struct SharpnessOptions {
    pub out: PathBuf,
    pub device: SelectedDevice,
    /// Fine-tuning training examples in the fixed batch.
    pub examples: usize,
    pub power: PowerOptions,
    /// Train this many steps before measuring, each cell at the best LR of
    /// its recorded seed-mean curve (0: measure at initialisation).
    pub after_steps: usize,
    /// The config file, for messages naming a command.
    pub config_path: Option<PathBuf>,
}

/// `lrscape sharpness`: λmax at initialisation of every cell of the grid
/// (every seed of a cell is one member of one population; methods whose
/// init does not depend on the seed are measured once) on the cached base,
/// written to `<out>/sharpness.json`. With `after_steps = N`, every member
/// first replays the first N steps of its recorded run (same batches, same
/// order) at its cell's recorded best LR, and the result goes to
/// `<out>/sharpness-after-N.json`: how the curvature has moved once
/// training is under way.
pub fn measure_grid<M: ModelConfig>(
    config: &ExperimentConfig<M>,
    opts: &SharpnessOptions,
    events: &dyn sweep::RunEvents,
) -> anyhow::Result<SharpnessFile> {
    let started = Instant::now();
    let device = opts.device.device.clone().autodiff();
    let checkpoint = sweep::pretrain::checkpoint_base(config, &device).transpose()?;
    let base = match checkpoint {
        Some(base) => base,
        None => sweep::pretrain::load_base(config, &opts.out, &device)
            .map_err(|e| {
                let config_arg = opts
                    .config_path
                    .as_ref()
                    .map_or_else(|| "<file>".to_string(), |p| p.display().to_string());
                anyhow::anyhow!(
                    "{e:#}. `lrscape sharpness` measures on the cached base: run `lrscape pretrain \
             --config {config_arg} --out {}` first",
                    opts.out.display()
                )
            })?
            .0,
    };
    let (train, _) = sweep::task::finetune_data(config)?;
    if opts.examples == 0 || opts.examples > train.len() {
        anyhow::bail!(
            "--examples {}: between 1 and the {} fine-tuning training examples \
             (task.n_finetune_train)",
            opts.examples,
            train.len()
        );
    }
    let rows: Vec<usize> = (0..opts.examples).collect();
    let batch = SequenceBatch::gather(&train, &[&rows], &device);
    let seeds = config.grid.seeds.clone();
    let best_lrs = if opts.after_steps > 0 {
        let trials = sweep::store::gather(&opts.out)?.trials;
        records::analysis::curves_of(&trials, config.metric())
    } else {
        Vec::new()
    };
    let mut entries = Vec::new();
    for cell in config.cells() {
        let cell_started = Instant::now();
        let lora = cell.fine_tune();
        // Without a random A (PiSSA/MiLoRA factors, full fine-tuning) every
        // member starts identical: measured once, recorded for every seed.
        let seed_free = !cell.method.uses_init();
        // Training orders the data by seed, so trained members all differ.
        let seed_free = seed_free && opts.after_steps == 0;
        let members: &[u64] = if seed_free { &seeds[..1] } else { &seeds };
        let gradients =
            sweep::adapters::init_gradients(&base, &lora, (&train, cell.batch_size), &device)?;
        let model = PeftModel::with_gradients(base.clone(), &lora, members, &gradients)
            .map_err(|e| anyhow::anyhow!("cell {}: {e}", cell.label(config)))?;
        let (model, trained_lr) = if opts.after_steps > 0 {
            let lr = cell_best_lr(config, &cell, &best_lrs, opts)?;
            (
                train_steps(
                    config,
                    &cell,
                    model,
                    &train,
                    members,
                    lr,
                    opts.after_steps,
                    &device,
                )?,
                Some(lr),
            )
        } else {
            (model, None)
        };
        let mut result = classifier_lambda_max(&model, &batch, members, &opts.power)
            .with_context(|| format!("cell {}", cell.label(config)))?;
        if seed_free {
            result = vec![result[0].clone(); seeds.len()];
        }
        let variant = cell.variant(config);
        for (seed, m) in seeds.iter().zip(result) {
            events.note(&format!(
                "{} seed {seed}: λmax {:.4} ({} iterations{}{})",
                cell.label(config),
                m.lambda_max,
                m.iterations,
                m.lambda_min
                    .map(|l| format!(", λmin {l:.4}"))
                    .unwrap_or_default(),
                if m.converged { "" } else { ", not converged" }
            ));
            entries.push(SharpnessEntry {
                method: cell.method.name().to_string(),
                rank: cell.rank,
                variant: variant.clone(),
                seed: *seed,
                lambda_max: m.lambda_max,
                iterations: m.iterations,
                converged: m.converged,
                epsilon: m.epsilon,
                history: m.history,
                lambda_min: m.lambda_min,
                trained_lr,
            });
        }
        events.note(&format!(
            "{}: {:.0}s",
            cell.label(config),
            cell_started.elapsed().as_secs_f64()
        ));
    }
    let file = SharpnessFile {
        experiment: config.name.clone(),
        config_hash: config.results_hash(),
        examples: opts.examples,
        max_iters: opts.power.max_iters,
        tol: opts.power.tol,
        eps_rel: opts.power.eps_rel,
        backend: opts.device.backend.to_string(),
        seconds: started.elapsed().as_secs_f64(),
        after_steps: opts.after_steps,
        entries,
    };
    std::fs::create_dir_all(&opts.out)
        .with_context(|| format!("cannot create {}", opts.out.display()))?;
    write_atomic(
        &opts
            .out
            .join(sweep::layout::sharpness_file(opts.after_steps)),
        &(serde_json::to_string_pretty(&file)? + "\n"),
    )?;
    Ok(file)
}

/// The best LR of `cell`'s recorded seed-mean curve; an error naming the
/// command to run when the cell has no records.
fn cell_best_lr<M: ModelConfig>(
    config: &ExperimentConfig<M>,
    cell: &sweep::config::Cell,
    curves: &[records::CellCurve],
    opts: &SharpnessOptions,
) -> anyhow::Result<f64> {
    let variant = cell.variant(config);
    curves
        .iter()
        .find(|c| {
            c.method == cell.method.name()
                && c.rank == cell.rank
                && c.variant == variant
                && c.batch_size == cell.batch_size
                && c.epochs == cell.epochs
        })
        .and_then(|c| records::best_of_lr_by(c, config.metric()))
        .map(|(_, lr)| lr)
        .ok_or_else(|| {
            anyhow::anyhow!(
                "--after-steps trains each cell at its best recorded LR, and cell {} has no \
                 records in {}: run `lrscape run` on this config first",
                cell.label(config),
                opts.out.display()
            )
        })
}

/// The first `steps` AdamW steps of `cell`'s schedule for every member at
/// `lr`: the same batches, in the same order, as the recorded run's.
#[allow(clippy::too_many_arguments)]
fn train_steps<M: ModelConfig>(
    config: &ExperimentConfig<M>,
    cell: &sweep::config::Cell,
    model: PeftModel<M::Model>,
    train: &synth_data::SequenceDataset,
    seeds: &[u64],
    lr: f64,
    steps: usize,
    device: &Device,
) -> anyhow::Result<PeftModel<M::Model>> {
    let total = cell.steps(train.len());
    if steps > total {
        anyhow::bail!(
            "--after-steps {steps}: at most {total} (cell {}: {} epochs of {} examples at \
             batch size {})",
            cell.label(config),
            cell.epochs,
            train.len(),
            cell.batch_size
        );
    }
    let pairs: Vec<(f64, u64)> = seeds.iter().map(|&seed| (lr, seed)).collect();
    let members = sweep::grid::population(config, &pairs);
    let adamw = sweep::grid::adamw(config.finetune.weight_decay);
    let schedule = train::Schedule {
        epochs: cell.epochs,
        batch_size: cell.batch_size,
        max_steps: Some(steps),
        budget: config.finetune.max_steps,
        lr: config.finetune.lr_schedule(),
    };
    let outcome = train::train_population(model, train, &members, schedule, adamw, device, &|| {});
    Ok(outcome.model)
}

/// The table `lrscape sharpness` prints: λmax per cell beside the best LR
/// of `trials`, and the fit across cells.
pub fn sharpness_table(
    file: &SharpnessFile,
    trials: &[records::TrialRecord],
    metric: records::Metric,
) -> String {
    let curves = records::analysis::curves_of(trials, metric);
    let points = records::analysis::sharpness_points_by(&curves, &file.cells(), metric);
    let mut out = format!(
        "{:<10} {:>5} {:>11} {:>10} {:>12}\n",
        "method", "rank", "lambda_max", "best_lr", "lr*lambda"
    );
    for p in &points {
        out.push_str(&format!(
            "{:<10} {:>5} {:>11.4} {:>10.3e} {:>12.4}\n",
            p.method,
            p.rank,
            p.lambda_max,
            p.best_lr,
            p.best_lr * p.lambda_max
        ));
    }
    match records::analysis::sharpness_fit(&points) {
        Some(fit) => out.push_str(&format!(
            "{} cells: log λmax vs log best LR: Pearson {:+.3}, Spearman {:+.3}; \
             best_lr ≈ c/λmax with c = {:.4} (geometric mean; × / ÷ {:.2} geometric SD, \
             range {:.4} … {:.4})\n",
            fit.n, fit.pearson, fit.spearman, fit.c, fit.c_spread, fit.c_min, fit.c_max
        )),
        None => out.push_str(
            "no fit: fewer than 2 cells have both a λmax > 0 and a best LR in the records\n",
        ),
    }
    out
}
