//! A frozen tinyformer with adapters: building, forward, merge, counts.

use std::collections::BTreeSet;

use burn::module::{Module, Param};
use burn::tensor::{Device, Int, Tensor};
use tinyformer::{
    Classifier, LinearHook, LinearKind, LinearSite, PopLinear, Tinyformer, TinyformerConfig,
    expand_members,
};

use crate::PeftError;
use crate::config::{LoraConfig, Method};
use crate::init::{Components, random_a, random_b, site_rng, svd_factors};
use crate::layer::{LayerKind, LoraLayer};

/// The adapters of one block, one optional layer per linear.
#[derive(Module, Debug)]
pub struct BlockAdapters {
    pub q: Option<LoraLayer>,
    pub k: Option<LoraLayer>,
    pub v: Option<LoraLayer>,
    pub o: Option<LoraLayer>,
    pub mlp_up: Option<LoraLayer>,
    pub mlp_down: Option<LoraLayer>,
}

impl BlockAdapters {
    pub fn get(&self, kind: LinearKind) -> Option<&LoraLayer> {
        match kind {
            LinearKind::Q => self.q.as_ref(),
            LinearKind::K => self.k.as_ref(),
            LinearKind::V => self.v.as_ref(),
            LinearKind::O => self.o.as_ref(),
            LinearKind::MlpUp => self.mlp_up.as_ref(),
            LinearKind::MlpDown => self.mlp_down.as_ref(),
        }
    }

    fn slot(&mut self, kind: LinearKind) -> &mut Option<LoraLayer> {
        match kind {
            LinearKind::Q => &mut self.q,
            LinearKind::K => &mut self.k,
            LinearKind::V => &mut self.v,
            LinearKind::O => &mut self.o,
            LinearKind::MlpUp => &mut self.mlp_up,
            LinearKind::MlpDown => &mut self.mlp_down,
        }
    }

    fn empty() -> Self {
        Self {
            q: None,
            k: None,
            v: None,
            o: None,
            mlp_up: None,
            mlp_down: None,
        }
    }
}

/// The block linear of `model` at `site`.
pub fn base_linear(model: &Tinyformer, site: LinearSite) -> &PopLinear {
    let block = &model.blocks[site.layer];
    match site.kind {
        LinearKind::Q => &block.attn.q,
        LinearKind::K => &block.attn.k,
        LinearKind::V => &block.attn.v,
        LinearKind::O => &block.attn.o,
        LinearKind::MlpUp => &block.mlp.up,
        LinearKind::MlpDown => &block.mlp.down,
    }
}

fn base_linear_mut(model: &mut Tinyformer, site: LinearSite) -> &mut PopLinear {
    let block = &mut model.blocks[site.layer];
    match site.kind {
        LinearKind::Q => &mut block.attn.q,
        LinearKind::K => &mut block.attn.k,
        LinearKind::V => &mut block.attn.v,
        LinearKind::O => &mut block.attn.o,
        LinearKind::MlpUp => &mut block.mlp.up,
        LinearKind::MlpDown => &mut block.mlp.down,
    }
}

/// A population of fine-tuned models sharing one frozen base.
///
/// `base` holds the frozen weights once (1 member) — for PiSSA/MiLoRA the
/// residuals — except what each member trains: the head when
/// `train_head`, everything for full fine-tuning. `blocks` holds the
/// adapters, `C` members each.
#[derive(Module, Debug)]
pub struct PeftModel {
    pub base: Tinyformer,
    pub blocks: Vec<BlockAdapters>,
}

struct AdapterHook<'a>(&'a [BlockAdapters]);

impl LinearHook for AdapterHook<'_> {
    fn linear(&self, site: LinearSite, base: &PopLinear, x: Tensor<4>) -> Tensor<4> {
        match self.0.get(site.layer).and_then(|b| b.get(site.kind)) {
            Some(layer) => layer.forward(base, x),
            None => base.forward(x),
        }
    }
}

impl Classifier for PeftModel {
    fn logits(&self, tokens: Tensor<3, Int>) -> Tensor<3> {
        self.base.forward_with(tokens, &AdapterHook(&self.blocks))
    }
}

/// A new trainable parameter (gradients activate on an autodiff device).
fn trainable<const D: usize>(t: Tensor<D>) -> Param<Tensor<D>> {
    Param::from_tensor(t.detach())
}

impl PeftModel {
    /// Adapts a 1-member `base` with `config` for members whose adapter seeds
    /// are `member_seeds` (members with equal seeds start identical). The
    /// base is frozen; trainable tensors get the member axis.
    pub fn new(
        base: Tinyformer,
        model_config: &TinyformerConfig,
        config: &LoraConfig,
        member_seeds: &[u64],
    ) -> Result<Self, PeftError> {
        let targets = config.validate(model_config)?;
        let members = member_seeds.len();
        if members == 0 {
            return Err(PeftError::invalid("members", 0, "at least one member"));
        }
        if config.method == Method::Full {
            let base = expand_members(base.unfreeze(), members);
            return Ok(Self {
                base,
                blocks: Vec::new(),
            });
        }
        let mut base = base.no_grad();
        let blocks = build_adapters(&mut base, config, &targets, member_seeds)?;
        if config.train_head {
            base.head = expand_members(base.head.clone().unfreeze(), members);
        }
        Ok(Self { base, blocks })
    }

    /// Members in the population.
    pub fn members(&self) -> usize {
        tinyformer::member_count(self)
    }

    /// Trainable parameters per member.
    pub fn trainable_per_member(&self) -> usize {
        count_params(self, true) / self.members()
    }

    /// Every parameter of one member's model: frozen base plus its own
    /// trainable tensors.
    pub fn total_per_member(&self) -> usize {
        count_params(self, false) - count_params(self, true) + self.trainable_per_member()
    }

    /// The weights each member's adapters amount to, folded into a plain
    /// tinyformer (`C` members; [`tinyformer::select_member`] picks one). It
    /// runs with no `peft` code: zero-overhead inference.
    pub fn merge(&self) -> MergedModel {
        let members = self.members();
        let mut model = expand_members(self.base.clone().no_grad(), members);
        let mut norms = Vec::new();
        for (layer, block) in self.blocks.iter().enumerate() {
            for kind in LinearKind::ALL {
                let Some(adapter) = block.get(kind) else {
                    continue;
                };
                let site = LinearSite { layer, kind };
                let base = base_linear(&self.base, site);
                let merged = adapter.merged_weight(base).detach();
                if adapter.kind != LayerKind::Additive {
                    norms.push((site, adapter.column_norm(base).detach()));
                }
                let copies = members / merged.dims()[0];
                base_linear_mut(&mut model, site).weight =
                    Param::from_tensor(merged.repeat_dim(0, copies));
            }
        }
        MergedModel { model, norms }
    }

    /// The frozen base weights back from a merged model, `[C, in, out]` per
    /// adapted linear (each member should give the same `W`).
    pub fn unmerge(&self, merged: &MergedModel) -> Tinyformer {
        let mut model = merged.model.clone();
        for (layer, block) in self.blocks.iter().enumerate() {
            for kind in LinearKind::ALL {
                let Some(adapter) = block.get(kind) else {
                    continue;
                };
                let site = LinearSite { layer, kind };
                let w_merged = base_linear(&merged.model, site).weight.val();
                let direction_scaled = match adapter.kind {
                    LayerKind::Additive => w_merged,
                    LayerKind::Dora | LayerKind::DoraSeed => {
                        let (_, norm) = merged
                            .norms
                            .iter()
                            .find(|(s, _)| *s == site)
                            .expect("merge records a norm for every DoRA layer");
                        let magnitude = adapter.magnitude_row();
                        w_merged * norm.clone() / magnitude
                    }
                };
                let w = direction_scaled - adapter.delta_weight();
                base_linear_mut(&mut model, site).weight = Param::from_tensor(w.detach());
            }
        }
        model
    }
}

/// A merged population and what un-merging DoRA needs (its column norms,
/// as HF PEFT caches them).
#[derive(Debug, Clone)]
pub struct MergedModel {
    pub model: Tinyformer,
    pub norms: Vec<(LinearSite, Tensor<3>)>,
}

fn build_adapters(
    base: &mut Tinyformer,
    config: &LoraConfig,
    targets: &BTreeSet<LinearKind>,
    member_seeds: &[u64],
) -> Result<Vec<BlockAdapters>, PeftError> {
    let scale = config.scaling();
    let r = config.r;
    let members = member_seeds.len();
    let device: Device = base.embedding.device();
    let mut blocks = Vec::with_capacity(base.blocks.len());
    for layer in 0..base.blocks.len() {
        let mut adapters = BlockAdapters::empty();
        for &kind in targets {
            let site = LinearSite { layer, kind };
            let linear = base_linear(base, site);
            let (d_in, d_out) = (linear.d_in(), linear.d_out());
            let (a, b, kind_of_layer, magnitude, residual) = match config.method {
                Method::Lora
                | Method::Rslora
                | Method::InitAb
                | Method::Dora
                | Method::DoraSeed => {
                    let mut a_rows = Vec::with_capacity(members);
                    let mut b_rows = Vec::with_capacity(members);
                    for &seed in member_seeds {
                        let mut rng = site_rng(seed, site);
                        a_rows.push(
                            random_a(config.init, d_in, r, &mut rng, &device).unsqueeze_dim::<3>(0),
                        );
                        b_rows.push(if config.method == Method::InitAb {
                            random_b(d_out, r, &mut rng, &device).unsqueeze_dim::<3>(0)
                        } else {
                            Tensor::zeros([1, r, d_out], &device)
                        });
                    }
                    let (kind_of_layer, magnitude) = match config.method {
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
                            Some(Tensor::ones([members, d_out], &device)),
                        ),
                        _ => (LayerKind::Additive, None),
                    };
                    (
                        Tensor::cat(a_rows, 0),
                        Tensor::cat(b_rows, 0),
                        kind_of_layer,
                        magnitude,
                        None,
                    )
                }
                Method::Pissa | Method::Milora | Method::PissaSeed | Method::MiloraSeed => {
                    let components = match config.method {
                        Method::Pissa | Method::PissaSeed => Components::Principal,
                        _ => Components::Minor,
                    };
                    let exact = matches!(config.method, Method::Pissa | Method::Milora);
                    let divisor = if exact { scale } else { 1.0 };
                    let f = svd_factors(linear, site, r, components, scale, divisor)?;
                    let residual = exact.then_some(f.residual);
                    let a = f.a.unsqueeze_dim::<3>(0).repeat_dim(0, members);
                    let b = f.b.unsqueeze_dim::<3>(0).repeat_dim(0, members);
                    (a, b, LayerKind::Additive, None, residual)
                }
                Method::Full => unreachable!("full fine-tuning has no adapters"),
            };
            if let Some(residual) = residual {
                let target = base_linear_mut(base, site);
                target.weight =
                    Param::from_tensor(residual.unsqueeze_dim::<3>(0)).set_require_grad(false);
            }
            *adapters.slot(kind) = Some(LoraLayer {
                a: trainable(a),
                b: trainable(b),
                magnitude: magnitude.map(trainable),
                scale,
                kind: kind_of_layer,
                compute: config.compute,
            });
        }
        blocks.push(adapters);
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
