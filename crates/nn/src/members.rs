//! Operations on the member axis of any module.
//!
//! Every parameter of a population-aware module has a leading member axis of
//! size 1 (shared) or `C` (one copy per member). These mappers work on any
//! Burn module, so adapters defined elsewhere get them for free.

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::Tensor;

/// `f(tensor)` as a new graph leaf that requires gradients iff `tensor` did.
/// Computed off the autodiff graph, so the result is a fresh parameter and
/// not a view whose gradient would flow back into the old one.
fn leaf_from<const D: usize>(
    tensor: Tensor<D>,
    f: impl FnOnce(Tensor<D>) -> Tensor<D>,
) -> Tensor<D> {
    if !tensor.is_autodiff() {
        return f(tensor);
    }
    let trainable = tensor.is_require_grad();
    let fresh = Tensor::from_inner(f(tensor.inner()));
    if trainable {
        fresh.require_grad()
    } else {
        fresh
    }
}

/// Gives every 1-member parameter `count` identical copies, keeping whether
/// it requires gradients (each copy is then trained independently).
pub fn expand_members<M: Module>(module: M, count: usize) -> M {
    struct Expand(usize);
    impl ModuleMapper for Expand {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            let count = self.0;
            param.map(|tensor| {
                if tensor.dims()[0] != 1 || count == 1 {
                    return tensor;
                }
                leaf_from(tensor, |t| t.repeat_dim(0, count))
            })
        }
    }
    module.map(&mut Expand(count))
}

/// Member `index` of every `C`-member parameter as a 1-member module;
/// shared parameters are kept as they are.
pub fn select_member<M: Module>(module: M, index: usize) -> M {
    struct Select(usize);
    impl ModuleMapper for Select {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            let index = self.0;
            param.map(|tensor| {
                if tensor.dims()[0] == 1 {
                    return tensor;
                }
                leaf_from(tensor, |t| t.narrow(0, index, 1))
            })
        }
    }
    module.map(&mut Select(index))
}

/// The largest member axis among the module's parameters.
pub fn member_count<M: Module>(module: &M) -> usize {
    struct Count(usize);
    impl ModuleVisitor for Count {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            self.0 = self.0.max(param.dims()[0]);
        }
    }
    let mut count = Count(1);
    module.visit(&mut count);
    count.0
}
