//! Shapes, the member axis and the adapter seam.

use burn::tensor::{Device, Int, Tensor, TensorData};
use nn::{LinearHook, LinearSite, PopLinear, expand_members, member_count, select_member};
use tinyformer::adaptable::{MLP_DOWN, MODULES};
use tinyformer::{PosInit, Tinyformer, TinyformerConfig};

fn small() -> TinyformerConfig {
    TinyformerConfig {
        vocab: 10,
        seq_len: 5,
        d_model: 8,
        n_layers: 2,
        n_heads: 2,
        d_ff: 12,
        pos_init: PosInit::Normal { std: 0.3 },
        causal: false,
    }
}

fn tokens(g: usize, b: usize, t: usize, device: &Device) -> Tensor<3, Int> {
    let values: Vec<i64> = (0..g * b * t).map(|i| ((i * 7 + 3) % 10) as i64).collect();
    Tensor::from_data(TensorData::new(values, [g, b, t]), device)
}

fn values(t: Tensor<3>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_into_vec().unwrap()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn output_shapes_follow_streams_and_members() {
    let device = Device::flex();
    let model = Tinyformer::init(&small(), 0, &device).unwrap();
    assert_eq!(model.forward(tokens(1, 4, 5, &device)).dims(), [1, 4, 10]);
    // Three data streams on one shared model: three members' outputs.
    assert_eq!(model.forward(tokens(3, 4, 5, &device)).dims(), [3, 4, 10]);
    // Shorter sequences use the first rows of the position table.
    assert_eq!(model.forward(tokens(1, 2, 3, &device)).dims(), [1, 2, 10]);
    let population = expand_members(model, 3);
    assert_eq!(member_count(&population), 3);
    assert_eq!(
        population.forward(tokens(1, 4, 5, &device)).dims(),
        [3, 4, 10]
    );
}

#[test]
fn init_rejects_a_bad_config_with_its_field() {
    let device = Device::flex();
    let config = TinyformerConfig {
        d_model: 10,
        n_heads: 4,
        ..small()
    };
    let err = Tinyformer::init(&config, 0, &device).unwrap_err();
    assert_eq!(err.field, "n_heads");
}

#[test]
fn init_is_deterministic_per_seed() {
    let device = Device::flex();
    let a = Tinyformer::init(&small(), 5, &device).unwrap();
    let b = Tinyformer::init(&small(), 5, &device).unwrap();
    let c = Tinyformer::init(&small(), 6, &device).unwrap();
    let input = tokens(1, 3, 5, &device);
    assert_eq!(
        values(a.forward(input.clone())),
        values(b.forward(input.clone()))
    );
    assert_ne!(values(a.forward(input.clone())), values(c.forward(input)));
}

/// Members that differ only in their own copies give exactly the outputs of
/// the same models run one by one.
#[test]
fn each_member_computes_its_own_model() {
    let device = Device::flex();
    let base = Tinyformer::init(&small(), 1, &device).unwrap();
    let mut population = expand_members(base, 3);
    // Make the members different: scale member c's head and q weights by (1 + c).
    let scale = Tensor::<1>::from_floats([1.0, 2.0, 3.0], &device).reshape([3, 1, 1]);
    population.head.weight = population.head.weight.clone().map(|w| w * scale.clone());
    population.blocks[0].attn.q.weight = population.blocks[0]
        .attn
        .q
        .weight
        .clone()
        .map(|w| w * scale.clone());
    let input = tokens(1, 4, 5, &device);
    let together = values(population.forward(input.clone()));
    let per_member = 4 * 10;
    for c in 0..3 {
        let alone = select_member(population.clone(), c);
        assert_eq!(member_count(&alone), 1);
        let own = values(alone.forward(input.clone()));
        let slice = &together[c * per_member..(c + 1) * per_member];
        assert!(max_abs_diff(slice, &own) <= 1e-6, "member {c}");
    }
}

/// A hook sees every block linear once, in order, and can change the output.
#[test]
fn hook_reaches_every_block_linear() {
    use std::cell::RefCell;
    struct Recorder(RefCell<Vec<LinearSite>>);
    impl LinearHook for Recorder {
        fn linear(&self, site: LinearSite, base: &PopLinear, x: Tensor<4>) -> Tensor<4> {
            self.0.borrow_mut().push(site);
            let y = base.forward(x);
            if site.module == MLP_DOWN && site.layer == 1 {
                y * 2.0
            } else {
                y
            }
        }
    }
    let device = Device::flex();
    let model = Tinyformer::init(&small(), 2, &device).unwrap();
    let hook = Recorder(RefCell::new(Vec::new()));
    let input = tokens(1, 2, 5, &device);
    let hooked = values(model.forward_with(input.clone(), &hook));
    let sites = hook.0.into_inner();
    assert_eq!(sites.len(), 2 * 6);
    for module in MODULES {
        assert_eq!(
            sites.iter().filter(|s| s.module == module).count(),
            2,
            "{module}"
        );
    }
    assert!(max_abs_diff(&hooked, &values(model.forward(input))) > 1e-4);
}

fn input_again(device: &Device) -> Tensor<3, Int> {
    tokens(1, 2, 5, device)
}

/// A causal model's logits at position `t` depend on tokens `..=t` only,
/// and it emits one row of logits per position.
#[test]
fn causal_logits_see_only_the_past() {
    let device = Device::flex();
    let config = TinyformerConfig {
        causal: true,
        ..small()
    };
    let model = Tinyformer::init(&config, 3, &device).unwrap();
    let input = tokens(1, 2, 5, &device);
    let logits = model.forward(input.clone());
    assert_eq!(logits.dims(), [1, 2 * 5, 10]);
    let before = values(logits);
    // Change the token at position 3 of example 1.
    let mut changed: Vec<i64> = input.into_data().convert::<i64>().try_into_vec().unwrap();
    changed[5 + 3] = (changed[5 + 3] + 1) % 10;
    let after = values(model.forward(Tensor::from_data(
        TensorData::new(changed, [1, 2, 5]),
        &device,
    )));
    let row = |v: &[f32], example: usize, pos: usize| v[(example * 5 + pos) * 10..][..10].to_vec();
    for pos in 0..5 {
        let same = row(&before, 1, pos) == row(&after, 1, pos);
        assert_eq!(same, pos < 3, "example 1, position {pos}");
        assert_eq!(
            row(&before, 0, pos),
            row(&after, 0, pos),
            "example 0 untouched"
        );
    }
    // Without the mask the last position (the classifier's) sees the change.
    let open = Tinyformer::init(&small(), 3, &device).unwrap();
    assert_eq!(open.forward(input_again(&device)).dims(), [1, 2, 10]);
    let mut changed_open: Vec<i64> = input_again(&device)
        .into_data()
        .convert::<i64>()
        .try_into_vec()
        .unwrap();
    changed_open[5 + 3] = (changed_open[5 + 3] + 1) % 10;
    let before = values(open.forward(input_again(&device)));
    let after = values(open.forward(Tensor::from_data(
        TensorData::new(changed_open, [1, 2, 5]),
        &device,
    )));
    assert_ne!(before[10..20], after[10..20], "example 1's logits");
    assert_eq!(before[..10], after[..10], "example 0's logits");
}
