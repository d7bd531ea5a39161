//! A frozen model with adapters: building, forward, merge, counts.
//!
//! Generic over any [`Adaptable`] model: adapters find the linears they
//! wrap by [`LinearSite`] (block and module id), as HF PEFT finds them by
//! module name, and never name a model family.

use std::collections::{BTreeMap, BTreeSet};

use burn::module::{Module, Param};
use burn::tensor::{Device, Int, Tensor};
use nn::{Adaptable, LinearHook, LinearSite, ModuleId, PopLinear, PopulationModel, expand_members};

use crate::PeftError;
use crate::config::{LoraConfig, Method};
use crate::init::{
    Components, SharedBases, gradient_factors, gralora_a, random_a, random_b, site_rng, svd_factors,
};
use crate::layer::{GeneralFactors, LayerKind, LoraLayer, RandBases};

/// The mean gradient of the fine-tuning loss with respect to each targeted
/// base weight (`[in, out]`), which LoRA-GA's init decomposes.
pub type SiteGradients = BTreeMap<LinearSite, Tensor<2>>;

/// The adapters of one block: one optional layer per module of the model's
/// [`LinearLayout`](nn::LinearLayout), in its order.
#[derive(Module, Debug)]
pub struct BlockAdapters {
    pub modules: Vec<Option<LoraLayer>>,
}

impl BlockAdapters {
    pub fn get(&self, module: ModuleId) -> Option<&LoraLayer> {
        self.modules.get(usize::from(module.index))?.as_ref()
    }

    pub fn get_mut(&mut self, module: ModuleId) -> Option<&mut LoraLayer> {
        self.modules.get_mut(usize::from(module.index))?.as_mut()
    }

    /// Every adapted module with its layer.
    fn adapted(&self) -> impl Iterator<Item = (u8, &LoraLayer)> {
        self.modules
            .iter()
            .enumerate()
            .filter_map(|(i, l)| Some((i as u8, l.as_ref()?)))
    }
}

/// A population of fine-tuned models sharing one frozen base.
///
/// `base` holds the frozen weights once (1 member) — for PiSSA/MiLoRA the
/// residuals — except what each member trains: the head when
/// `train_head`, everything for full fine-tuning. `blocks` holds the
/// adapters, `C` members each.
#[derive(Module, Debug)]
pub struct PeftModel<M: Adaptable> {
    pub base: M,
    pub blocks: Vec<BlockAdapters>,
    /// LoRA+'s ratio of B's learning rate to A's; `None` for other methods.
    #[module(skip)]
    pub loraplus_lr_ratio: Option<f64>,
    /// LoFT: the optimizer steps each layer's A and B together.
    #[module(skip)]
    pub loft: bool,
}

struct AdapterHook<'a>(&'a [BlockAdapters]);

impl LinearHook for AdapterHook<'_> {
    fn linear(&self, site: LinearSite, base: &PopLinear, x: Tensor<4>) -> Tensor<4> {
        match self.0.get(site.layer).and_then(|b| b.get(site.module)) {
            Some(layer) => layer.forward(base, x),
            None => base.forward(x),
        }
    }
}

impl<M: Adaptable> PopulationModel for PeftModel<M> {
    fn logits(&self, tokens: Tensor<3, Int>) -> Tensor<3> {
        self.base.forward_with(tokens, &AdapterHook(&self.blocks))
    }

    /// LoRA+'s groups as `create_loraplus_optimizer` forms them: every B
    /// (and DoRA magnitude) at the ratio × the member's rate with weight
    /// decay; a trainable bias of the base (a trained head's) at the ratio
    /// without decay; A and the rest at the member's rate.
    fn param_lrs(&self) -> Vec<nn::ParamLr> {
        let Some(ratio) = self.loraplus_lr_ratio else {
            return Vec::new();
        };
        let lr = |id, decay| nn::ParamLr {
            id,
            lr_scale: ratio,
            decay,
        };
        let mut params = Vec::new();
        for (_, layer) in self.blocks.iter().flat_map(BlockAdapters::adapted) {
            params.push(lr(layer.b.id, true));
            if let Some(m) = &layer.magnitude {
                params.push(lr(m.id, true));
            }
        }
        params.extend(
            trainable_vectors(&self.base)
                .into_iter()
                .map(|id| lr(id, false)),
        );
        params
    }

    /// LoFT's pairs: every layer's `A` and `B` at its scale.
    fn factor_pairs(&self) -> Vec<nn::FactorPair> {
        if !self.loft {
            return Vec::new();
        }
        self.blocks
            .iter()
            .flat_map(BlockAdapters::adapted)
            .map(|(_, layer)| nn::FactorPair {
                a: layer.a.id,
                b: layer.b.id,
                scale: layer.scale,
            })
            .collect()
    }

    fn decode(
        &self,
        tokens: Tensor<3, Int>,
        cache: &mut nn::attention::KvCache,
    ) -> Option<Tensor<3>> {
        self.base
            .decode_with(tokens, &AdapterHook(&self.blocks), cache)
    }

    fn split_head(&self, tokens: Tensor<3, Int>) -> Option<nn::SplitHead> {
        self.base
            .split_head_with(tokens, &AdapterHook(&self.blocks))
    }
}

/// A new trainable parameter (gradients activate on an autodiff device).
fn trainable<const D: usize>(t: Tensor<D>) -> Param<Tensor<D>> {
    Param::from_tensor(t.detach())
}

/// The base linear of `model` at `site`, which the layout names.
fn site_linear<M: Adaptable>(model: &M, site: LinearSite) -> Result<&PopLinear, PeftError> {
    model.linear(site).ok_or(PeftError::NoSuchSite(site))
}

fn site_linear_mut<M: Adaptable>(
    model: &mut M,
    site: LinearSite,
) -> Result<&mut PopLinear, PeftError> {
    model.linear_mut(site).ok_or(PeftError::NoSuchSite(site))
}

impl<M: Adaptable> PeftModel<M> {
    /// Adapts a 1-member `base` with `config` for members whose adapter seeds
    /// are `member_seeds` (members with equal seeds start identical). The
    /// base is frozen; trainable tensors get the member axis.
    pub fn new(base: M, config: &LoraConfig, member_seeds: &[u64]) -> Result<Self, PeftError> {
        Self::with_gradients(base, config, member_seeds, &SiteGradients::new())
    }

    /// [`new`](Self::new) for a method whose init needs the loss gradient
    /// at each targeted weight (LoRA-GA); other methods ignore `gradients`.
    pub fn with_gradients(
        base: M,
        config: &LoraConfig,
        member_seeds: &[u64],
        gradients: &SiteGradients,
    ) -> Result<Self, PeftError> {
        let layout = base.layout();
        let targets = config.validate(&layout)?;
        let members = member_seeds.len();
        if members == 0 {
            return Err(PeftError::invalid("members", 0, "at least one member"));
        }
        if config.method == Method::Full {
            let base = expand_members(base.unfreeze(), members);
            return Ok(Self {
                base,
                blocks: Vec::new(),
                loraplus_lr_ratio: None,
                loft: false,
            });
        }
        let mut base = base.no_grad();
        let blocks = build_adapters(&mut base, config, &targets, member_seeds, gradients)?;
        if config.train_head {
            // A head linear with an adapter stays the frozen base of it, as
            // PEFT never trains a module it adapts whole.
            let adapted: Vec<(LinearSite, PopLinear)> = layout
                .sites(&targets)
                .into_iter()
                .filter(|s| layout.head(s.module).is_some())
                .map(|s| Ok((s, site_linear(&base, s)?.clone())))
                .collect::<Result<_, PeftError>>()?;
            base = base.unfreeze_head(members);
            for (site, linear) in adapted {
                *site_linear_mut(&mut base, site)? = linear;
            }
        }
        let loraplus_lr_ratio =
            (config.method == Method::Loraplus).then_some(config.loraplus_lr_ratio);
        Ok(Self {
            base,
            blocks,
            loraplus_lr_ratio,
            loft: config.method == Method::Loft,
        })
    }

    /// Members in the population.
    pub fn members(&self) -> usize {
        nn::member_count(self)
    }

    /// Trainable parameters per member.
    pub fn trainable_per_member(&self) -> usize {
        count_params(self, true) / self.members()
    }

    /// Every parameter of one member's model: frozen base plus its own
    /// trainable tensors. RandLoRA's random bases are buffers, not
    /// parameters, as PEFT counts them.
    pub fn total_per_member(&self) -> usize {
        let bases: usize = self
            .blocks
            .iter()
            .flat_map(BlockAdapters::adapted)
            .filter_map(|(_, layer)| layer.bases.as_ref())
            .map(|b| count_params(b, false))
            .sum();
        count_params(self, false) - bases - count_params(self, true) + self.trainable_per_member()
    }

    /// The adapter at `site`, if it has one.
    pub fn adapter(&self, site: LinearSite) -> Option<&LoraLayer> {
        self.blocks.get(site.layer)?.get(site.module)
    }

    pub fn adapter_mut(&mut self, site: LinearSite) -> Option<&mut LoraLayer> {
        self.blocks.get_mut(site.layer)?.get_mut(site.module)
    }

    /// Every adapted site with its layer.
    pub fn adapted_sites(&self) -> impl Iterator<Item = (LinearSite, &LoraLayer)> {
        let layout = self.base.layout();
        let modules: Vec<ModuleId> = (layout.modules.iter().map(|m| m.0))
            .chain(layout.heads.iter().map(|h| h.module))
            .collect();
        self.blocks.iter().enumerate().flat_map(move |(layer, b)| {
            let modules = modules.clone();
            b.adapted().filter_map(move |(index, adapter)| {
                let module = *modules.iter().find(|m| m.index == index)?;
                Some((LinearSite { layer, module }, adapter))
            })
        })
    }

    /// The weights each member's adapters amount to, folded into the plain
    /// model (`C` members; [`nn::select_member`] picks one). It runs with no
    /// `peft` code: zero-overhead inference.
    pub fn merge(&self) -> Result<MergedModel<M>, PeftError> {
        let members = self.members();
        let mut model = expand_members(self.base.clone().no_grad(), members);
        let mut norms = Vec::new();
        for (site, adapter) in self.adapted_sites() {
            let base = site_linear(&self.base, site)?;
            let merged = adapter.merged_weight(base).detach();
            if adapter.kind.is_dora() {
                norms.push((site, adapter.column_norm(base).detach()));
            }
            let copies = members / merged.dims()[0];
            site_linear_mut(&mut model, site)?.weight =
                Param::from_tensor(merged.repeat_dim(0, copies));
        }
        Ok(MergedModel { model, norms })
    }

    /// The frozen base weights back from a merged model, `[C, in, out]` per
    /// adapted linear (each member should give the same `W`). Fails on a
    /// merged model of another population (a site or DoRA norm it lacks).
    pub fn unmerge(&self, merged: &MergedModel<M>) -> Result<M, PeftError> {
        let mut model = merged.model.clone();
        for (site, adapter) in self.adapted_sites() {
            let w_merged = site_linear(&merged.model, site)?.weight.val();
            let direction_scaled = if adapter.kind.is_dora() {
                let (_, norm) = merged
                    .norms
                    .iter()
                    .find(|(s, _)| *s == site)
                    .ok_or(PeftError::NoSuchSite(site))?;
                w_merged * norm.clone() / adapter.magnitude_row()
            } else {
                w_merged
            };
            let w = direction_scaled - adapter.delta_weight();
            site_linear_mut(&mut model, site)?.weight = Param::from_tensor(w.detach());
        }
        Ok(model)
    }
}

/// A merged population and what un-merging DoRA needs (its column norms,
/// as HF PEFT caches them).
#[derive(Debug, Clone)]
pub struct MergedModel<M> {
    pub model: M,
    pub norms: Vec<(LinearSite, Tensor<3>)>,
}

/// The initial adapter of one site, and the residual its method leaves in
/// the frozen weight.
struct SiteInit {
    a: Tensor<3>,
    b: Tensor<3>,
    kind: LayerKind,
    magnitude: Option<Tensor<2>>,
    residual: Option<Tensor<2>>,
    general: Option<(Tensor<3>, Tensor<3>)>,
    bases: Option<(Tensor<2>, Tensor<2>)>,
}

impl SiteInit {
    fn factors(a: Tensor<3>, b: Tensor<3>, kind: LayerKind) -> Self {
        Self {
            a,
            b,
            kind,
            magnitude: None,
            residual: None,
            general: None,
            bases: None,
        }
    }
}

/// Random factors (LoRA family, DoRA, GraLoRA), one draw per member seed.
fn random_init(
    linear: &PopLinear,
    site: LinearSite,
    config: &LoraConfig,
    member_seeds: &[u64],
    device: &Device,
) -> SiteInit {
    let (d_in, d_out, r) = (linear.d_in(), linear.d_out(), config.r);
    let members = member_seeds.len();
    let hybrid = (config.method == Method::Gralora)
        .then_some(config.hybrid_r)
        .filter(|&h| h > 0);
    let mut a_rows = Vec::with_capacity(members);
    let mut b_rows = Vec::with_capacity(members);
    let mut general_a = Vec::new();
    for &seed in member_seeds {
        let mut rng = site_rng(seed, site);
        let a = match config.method {
            Method::Gralora => gralora_a(d_in, r, config.gralora_k, &mut rng, device),
            _ => random_a(config.init, d_in, r, &mut rng, device),
        };
        a_rows.push(a.unsqueeze_dim::<3>(0));
        b_rows.push(if config.method == Method::InitAb {
            random_b(d_out, r, &mut rng, device).unsqueeze_dim::<3>(0)
        } else {
            Tensor::zeros([1, r, d_out], device)
        });
        if let Some(h) = hybrid {
            general_a.push(random_a(config.init, d_in, h, &mut rng, device).unsqueeze_dim::<3>(0));
        }
    }
    let (kind, magnitude) = match config.method {
        Method::Dora => {
            // ‖W‖ over the input axis: output unchanged at init.
            let norms = linear.weight.val().detach().square().sum_dim(1).sqrt();
            (
                LayerKind::Dora,
                Some(norms.reshape([1, d_out]).repeat_dim(0, members)),
            )
        }
        Method::DoraSeed => (
            LayerKind::DoraSeed,
            Some(Tensor::ones([members, d_out], device)),
        ),
        Method::Gralora => (
            LayerKind::Gralora {
                k: config.gralora_k,
            },
            None,
        ),
        _ => (LayerKind::Additive, None),
    };
    SiteInit {
        magnitude,
        general: hybrid.map(|h| {
            (
                Tensor::cat(general_a, 0),
                Tensor::zeros([members, h, d_out], device),
            )
        }),
        ..SiteInit::factors(Tensor::cat(a_rows, 0), Tensor::cat(b_rows, 0), kind)
    }
}

/// RandLoRA's start, the same for every member: Λ = 0 (output unchanged),
/// Γ = 1/max(nb, min), as PEFT sets them, over the shared bases' slices.
fn randlora_init(
    linear: &PopLinear,
    bases: &SharedBases,
    members: usize,
    device: &Device,
) -> SiteInit {
    let (d_in, d_out) = (linear.d_in(), linear.d_out());
    let (a_basis, b_basis) = bases.for_linear(d_in, d_out, device);
    let [r, min] = a_basis.dims();
    let nb = min.div_ceil(r);
    let lambda = Tensor::zeros([members, r, nb], device);
    let gamma = Tensor::ones([members, nb, min], device).div_scalar(nb.max(min) as f64);
    SiteInit {
        bases: Some((a_basis, b_basis)),
        ..SiteInit::factors(lambda, gamma, LayerKind::Randlora { wide: d_in > d_out })
    }
}

/// Factors from the base weight, the same for every member: its SVD
/// (PiSSA, MiLoRA and their seed variants), its QR decomposition (OLoRA)
/// or its loss gradient's SVD (LoRA-GA); for the exact methods the frozen
/// weight becomes the residual.
fn weight_init(
    linear: &PopLinear,
    site: LinearSite,
    config: &LoraConfig,
    members: usize,
    gradients: &SiteGradients,
) -> Result<SiteInit, PeftError> {
    let scale = config.scaling();
    let exact = config.method.replaces_base();
    let f = match config.method {
        Method::Olora => crate::init::qr_factors(linear, site, config.r, scale)?,
        Method::LoraGa => {
            let grad = gradients.get(&site).ok_or(PeftError::NoGradient(site))?;
            gradient_factors(linear, site, grad.clone(), config)?
        }
        _ => {
            let components = match config.method {
                Method::Pissa | Method::PissaSeed => Components::Principal,
                _ => Components::Minor,
            };
            let divisor = if exact { scale } else { 1.0 };
            svd_factors(linear, site, config.r, components, scale, divisor)?
        }
    };
    let a = f.a.unsqueeze_dim::<3>(0).repeat_dim(0, members);
    let b = f.b.unsqueeze_dim::<3>(0).repeat_dim(0, members);
    Ok(SiteInit {
        residual: exact.then_some(f.residual),
        ..SiteInit::factors(a, b, LayerKind::Additive)
    })
}

/// RandLoRA's bases for the largest targeted shape: the element-wise
/// maximum of every targeted linear's `(out, in)`, as PEFT sizes them.
pub(crate) fn shared_bases(layout: nn::LinearLayout, config: &LoraConfig) -> Option<SharedBases> {
    if config.method != Method::Randlora {
        return None;
    }
    let targets = config.target_modules.resolve(&layout).ok()?;
    let (mut d_out, mut d_in) = (0, 0);
    for module in targets {
        if let Some((i, o)) = layout.shape(module) {
            d_in = d_in.max(i);
            d_out = d_out.max(o);
        }
    }
    let (max, min) = (d_in.max(d_out), d_in.min(d_out));
    let sparsity = if config.randlora_very_sparse {
        Some((min as f64).sqrt())
    } else {
        config.randlora_sparse.then_some(3.0)
    };
    Some(SharedBases::new(
        config.projection_prng_key,
        config.r,
        (max, min),
        sparsity,
    ))
}

fn build_adapters<M: Adaptable>(
    base: &mut M,
    config: &LoraConfig,
    targets: &BTreeSet<ModuleId>,
    member_seeds: &[u64],
    gradients: &SiteGradients,
) -> Result<Vec<BlockAdapters>, PeftError> {
    let layout = base.layout();
    let slots = layout.slots();
    let bases = shared_bases(base.layout(), config);
    let members = member_seeds.len();
    let sites = layout.sites(targets);
    let n_blocks = sites.iter().map(|s| s.layer + 1).max().unwrap_or(0);
    let mut blocks: Vec<BlockAdapters> = (0..n_blocks)
        .map(|_| BlockAdapters {
            modules: (0..slots).map(|_| None).collect(),
        })
        .collect();
    for site in sites {
        let (layer, module) = (site.layer, site.module);
        let linear = site_linear(base, site)?;
        let device: Device = linear.weight.device();
        let from_weight = config.method.uses_svd() || config.method.replaces_base();
        let init = match &bases {
            Some(bases) => randlora_init(linear, bases, members, &device),
            None if from_weight => weight_init(linear, site, config, members, gradients)?,
            None => random_init(linear, site, config, member_seeds, &device),
        };
        if let Some(residual) = init.residual {
            site_linear_mut(base, site)?.weight =
                Param::from_tensor(residual.unsqueeze_dim::<3>(0)).set_require_grad(false);
        }
        blocks[layer].modules[usize::from(module.index)] = Some(LoraLayer {
            a: trainable(init.a),
            b: trainable(init.b),
            magnitude: init.magnitude.map(trainable),
            general: init.general.map(|(a, b)| GeneralFactors {
                a: trainable(a),
                b: trainable(b),
            }),
            bases: init.bases.map(|(a, b)| RandBases {
                a: Param::from_tensor(a.unsqueeze_dim(0)).set_require_grad(false),
                b: Param::from_tensor(b.unsqueeze_dim(0)).set_require_grad(false),
            }),
            scale: config.scaling(),
            kind: init.kind,
            compute: config.compute,
        });
    }
    Ok(blocks)
}

/// Elements of the module's parameters; only trainable ones if asked.
fn count_params<M: Module>(module: &M, trainable_only: bool) -> usize {
    use burn::module::ModuleVisitor;
    struct Count {
        trainable_only: bool,
        total: usize,
    }
    impl ModuleVisitor for Count {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if !self.trainable_only || param.is_require_grad() {
                self.total += param.shape().num_elements();
            }
        }
    }
    let mut count = Count {
        trainable_only,
        total: 0,
    };
    module.visit(&mut count);
    count.total
}

/// The trainable `[C, n]` parameters of `module`: one vector per member
/// (biases), which PEFT's LoRA+ puts in B's group without weight decay.
fn trainable_vectors<M: Module>(module: &M) -> Vec<burn::module::ParamId> {
    use burn::module::ModuleVisitor;
    struct Vectors(Vec<burn::module::ParamId>);
    impl ModuleVisitor for Vectors {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if D == 2 && param.is_require_grad() {
                self.0.push(param.id);
            }
        }
    }
    let mut found = Vectors(Vec::new());
    module.visit(&mut found);
    found.0
}
