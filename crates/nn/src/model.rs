//! What the trainer and the adapters need of a model family.

use burn::module::{Module, ModuleDisplay, ParamId};
use burn::tensor::{Int, Tensor};

use crate::attention::KvCache;
use crate::hook::{LinearHook, LinearSite, ModuleId};
use crate::layers::PopLinear;

/// What a trainer needs of a model: logits `[C, N, vocab]` for token streams
/// `[G, B, T]`, one row per target (`N = B` for a classifier, `B × T` for a
/// language model). Implemented by every model family and by adapted models
/// built on them.
pub trait PopulationModel: Module + ModuleDisplay + Clone {
    fn logits(&self, tokens: Tensor<3, Int>) -> Tensor<3>;

    /// Trainable parameters whose learning rate differs from the member's
    /// (LoRA+'s B); every other one trains at the member's rate with the
    /// optimizer's weight decay.
    fn param_lrs(&self) -> Vec<ParamLr> {
        Vec::new()
    }

    /// Low-rank factor pairs the optimizer steps together (LoFT's), each
    /// other trainable parameter stepped alone.
    fn factor_pairs(&self) -> Vec<FactorPair> {
        Vec::new()
    }

    /// Logits `[C, B × T, vocab]` of `tokens: [G, B, T]` following the
    /// `cache.len()` tokens whose keys and values `cache` holds, appending
    /// theirs: incremental decoding. `None` where the model has no cache
    /// (generation then recomputes the whole sequence).
    fn decode(&self, tokens: Tensor<3, Int>, cache: &mut KvCache) -> Option<Tensor<3>> {
        let _ = (tokens, cache);
        None
    }

    /// [`logits`](Self::logits) stopped before a frozen head: the final
    /// hidden states and the head's weight, for [`HeadLoss`](crate::HeadLoss),
    /// which forms the head's gradient itself instead of through autodiff's
    /// graph of `[C, B × T, vocab]` tensors. `None` (the default) where the
    /// head trains or is more than one product.
    fn split_head(&self, tokens: Tensor<3, Int>) -> Option<SplitHead> {
        let _ = tokens;
        None
    }
}

/// A model's output before its head: `logits = hidden · weight`.
#[derive(Debug, Clone)]
pub struct SplitHead {
    /// `[C, B, T, d]`.
    pub hidden: Tensor<4>,
    /// `[M, d, vocab]`, `M` in {1, C}, frozen.
    pub weight: Tensor<3>,
}

impl SplitHead {
    /// A tied head: the token embedding `table` `[M, vocab, d]`.
    pub fn tied(hidden: Tensor<4>, table: Tensor<3>) -> Self {
        Self {
            hidden,
            weight: table.swap_dims(1, 2),
        }
    }
}

/// The two factors of one low-rank update `scale · a b`: `a` `[C, in, r]`
/// and `b` `[C, r, out]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FactorPair {
    pub a: ParamId,
    pub b: ParamId,
    pub scale: f64,
}

/// One parameter's learning rate, as a factor on its member's, and whether
/// weight decay applies to it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ParamLr {
    pub id: ParamId,
    pub lr_scale: f64,
    pub decay: bool,
}

/// The adaptable linears of a model family, known from its config before a
/// model exists: module ids in site order, each with its `(in, out)`, the
/// number of blocks, the linears outside them, and named target presets
/// (HF PEFT's per-architecture defaults and `all-linear`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinearLayout {
    pub n_layers: usize,
    /// `(module, in, out)` for every adaptable linear of a block; each
    /// module's `index` is its position here.
    pub modules: Vec<(ModuleId, usize, usize)>,
    /// Adaptable linears outside the blocks, which PEFT's `all-linear`
    /// reaches too (an encoder classifier's pooler); their indices follow
    /// the block modules'.
    pub heads: Vec<HeadLinear>,
    /// `(preset, module names)`.
    pub presets: Vec<(&'static str, Vec<&'static str>)>,
    /// Where the blocks sit in the Hugging Face model (`transformer.h` for
    /// GPT-2): a site's HF module is `{hf_blocks}.{layer}.{module}`. `None`
    /// for a family with no HF counterpart.
    pub hf_blocks: Option<&'static str>,
    /// HF stores these linears' weights `[in, out]` (GPT-2's `Conv1D`),
    /// which PEFT records as `fan_in_fan_out`.
    pub fan_in_fan_out: bool,
}

/// An adaptable linear outside the blocks: its module id (the name lrscape
/// writes in `target_modules`), its Hugging Face path and `(in, out)`. Its
/// one site is at layer `n_layers`, after the last block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeadLinear {
    pub module: ModuleId,
    pub path: &'static str,
    pub d_in: usize,
    pub d_out: usize,
}

/// Whether a `target_modules` entry names the module at `path`, as HF PEFT
/// matches it: equal, or `path` ends with `.` + the entry.
fn names(entry: &str, path: &str) -> bool {
    path == entry
        || path
            .strip_suffix(entry)
            .is_some_and(|head| head.ends_with('.'))
}

impl LinearLayout {
    /// Every module id, block modules then heads.
    fn all_modules(&self) -> impl Iterator<Item = (ModuleId, usize, usize)> + '_ {
        self.modules
            .iter()
            .copied()
            .chain(self.heads.iter().map(|h| (h.module, h.d_in, h.d_out)))
    }

    /// The module named `name`, if the family has one.
    pub fn module(&self, name: &str) -> Option<ModuleId> {
        self.all_modules()
            .map(|(m, _, _)| m)
            .find(|m| m.name == name)
    }

    /// The modules a `target_modules` entry names, as HF PEFT matches it: a
    /// module whose name equals the entry or ends with `.` + the entry
    /// (`c_proj` names both `attn.c_proj` and `mlp.c_proj`); a head by its
    /// whole path (`dense` names BERT's `bert.pooler.dense` too).
    pub fn matching(&self, entry: &str) -> Vec<ModuleId> {
        let blocks = self
            .modules
            .iter()
            .map(|&(m, _, _)| m)
            .filter(|m| names(entry, m.name));
        let heads = self
            .heads
            .iter()
            .filter(|h| names(entry, h.path) || h.module.name == entry)
            .map(|h| h.module);
        blocks.chain(heads).collect()
    }

    /// `(in, out)` of `module`.
    pub fn shape(&self, module: ModuleId) -> Option<(usize, usize)> {
        self.all_modules()
            .find(|(m, _, _)| *m == module)
            .map(|(_, i, o)| (i, o))
    }

    /// How many module ids the layout has: blocks' and heads'.
    pub fn slots(&self) -> usize {
        self.modules.len() + self.heads.len()
    }

    /// The head linear of `module`, if it is one.
    pub fn head(&self, module: ModuleId) -> Option<&HeadLinear> {
        self.heads.iter().find(|h| h.module == module)
    }

    /// The sites of `targets`: a block module's in every block, in block
    /// order, then each head's after the last block.
    pub fn sites(&self, targets: &std::collections::BTreeSet<ModuleId>) -> Vec<LinearSite> {
        let (heads, blocks): (Vec<ModuleId>, Vec<ModuleId>) =
            targets.iter().partition(|&&m| self.head(m).is_some());
        let mut sites: Vec<LinearSite> = (0..self.n_layers)
            .flat_map(|layer| {
                blocks
                    .iter()
                    .map(move |&module| LinearSite { layer, module })
            })
            .collect();
        sites.extend(heads.into_iter().map(|module| LinearSite {
            layer: self.n_layers,
            module,
        }));
        sites
    }

    /// The Hugging Face module path of `site` (`transformer.h.0.attn.c_attn`,
    /// `bert.pooler.dense`); `None` for a family with no HF counterpart.
    pub fn hf_module(&self, site: LinearSite) -> Option<String> {
        match self.head(site.module) {
            Some(head) => Some(head.path.to_string()),
            None => Some(format!(
                "{}.{}.{}",
                self.hf_blocks?, site.layer, site.module.name
            )),
        }
    }

    /// The module names of `preset`, if it is one.
    pub fn preset(&self, preset: &str) -> Option<&[&'static str]> {
        self.presets
            .iter()
            .find(|(p, _)| *p == preset)
            .map(|(_, names)| names.as_slice())
    }
}

/// A model whose block linears adapters can reach: named sites, access to
/// each base linear, a forward pass through a [`LinearHook`], and its head.
/// Adapter code (`peft`) is generic over it and never names a model.
pub trait Adaptable: PopulationModel {
    /// The adaptable linears of this model.
    fn layout(&self) -> LinearLayout;
    /// The base linear at `site`; `None` for a site the model lacks.
    fn linear(&self, site: LinearSite) -> Option<&PopLinear>;
    fn linear_mut(&mut self, site: LinearSite) -> Option<&mut PopLinear>;
    /// Logits with every adaptable linear evaluated through `hook`.
    fn forward_with(&self, tokens: Tensor<3, Int>, hook: &impl LinearHook) -> Tensor<3>;
    /// [`PopulationModel::decode`] with every adaptable linear evaluated
    /// through `hook`; `None` where the family has no cache.
    fn decode_with(
        &self,
        tokens: Tensor<3, Int>,
        hook: &impl LinearHook,
        cache: &mut KvCache,
    ) -> Option<Tensor<3>> {
        let _ = (tokens, hook, cache);
        None
    }
    /// [`PopulationModel::split_head`] with every adaptable linear
    /// evaluated through `hook`.
    fn split_head_with(&self, tokens: Tensor<3, Int>, hook: &impl LinearHook) -> Option<SplitHead> {
        let _ = (tokens, hook);
        None
    }
    /// Gives the head (what fine-tuning trains beside the adapters) `members`
    /// trainable copies.
    fn unfreeze_head(self, members: usize) -> Self;
    /// The heads PEFT saves beside the adapters as `modules_to_save` (a
    /// GPT-2 classifier's `score`; DistilBERT's `pre_classifier` and
    /// `classifier`), the classifier last; empty where adapters are saved
    /// alone (a language model's tied head).
    fn saved_heads(&self) -> Vec<SavedHead<'_>> {
        Vec::new()
    }
    /// The linears of [`saved_heads`](Self::saved_heads), in their order.
    fn saved_heads_mut(&mut self) -> Vec<&mut PopLinear> {
        Vec::new()
    }
}

/// A head saved beside the adapters: the `modules_to_save` entry that names
/// it, the Hugging Face path of its linear (`bert.pooler.dense` for the
/// entry `pooler`), and the linear.
#[derive(Debug, Clone, Copy)]
pub struct SavedHead<'a> {
    pub module: &'static str,
    pub path: &'static str,
    pub linear: &'a PopLinear,
}
