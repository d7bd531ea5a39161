//! Adapters against HF PEFT: fixture from `tools/golden/peft_golden.py`.

use std::collections::BTreeMap;

use burn::module::Param;
use burn::optim::GradientsParams;
use burn::tensor::{Device, Int, Tensor, TensorData};
use nn::{Adaptable, LinearSite, ModuleId, PopulationModel, member_cross_entropy};
use peft::{LoraConfig, Method, PeftModel};
use serde::Deserialize;
use tinyformer::adaptable::{K, MLP_DOWN, MLP_UP, O, Q, V};
use tinyformer::{NamedTensor, Tinyformer, TinyformerConfig, TorchState};

#[derive(Deserialize)]
struct Golden {
    config: TinyformerConfig,
    r: usize,
    lora_alpha: f64,
    lr: f64,
    base_state: TorchState,
    tokens: Vec<Vec<i64>>,
    labels: Vec<i64>,
    methods: BTreeMap<String, GoldenMethod>,
}

#[derive(Deserialize)]
struct GoldenMethod {
    scaling: f64,
    factors: BTreeMap<String, Factors>,
    logits: Vec<Vec<f32>>,
    loss: f32,
    grads: BTreeMap<String, Factors>,
    after_step: BTreeMap<String, Factors>,
    trainable: usize,
}

#[derive(Deserialize)]
struct Factors {
    #[serde(rename = "A")]
    a: NamedTensor,
    #[serde(rename = "B")]
    b: NamedTensor,
    m: Option<NamedTensor>,
    base: Option<NamedTensor>,
}

fn golden() -> (Golden, TinyformerConfig) {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../fixtures/peft_golden.json"
    );
    let golden: Golden = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let config = golden.config.clone();
    (golden, config)
}

/// `blocks.1.mlp.2` -> (1, MlpDown).
fn site(name: &str) -> (usize, ModuleId) {
    let parts: Vec<&str> = name.split('.').collect();
    let layer = parts[1].parse().unwrap();
    let kind = match (parts[2], parts[3]) {
        ("attn", "q") => Q,
        ("attn", "k") => K,
        ("attn", "v") => V,
        ("attn", "o") => O,
        ("mlp", "0") => MLP_UP,
        ("mlp", "2") => MLP_DOWN,
        other => panic!("unexpected module {other:?}"),
    };
    (layer, kind)
}

fn tensor2(t: &NamedTensor, device: &Device) -> Tensor<2> {
    Tensor::from_data(
        TensorData::new(t.data.clone(), [t.shape[0], t.shape[1]]),
        device,
    )
}

fn host<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_into_vec().unwrap()
}

fn assert_close(got: &[f32], want: &[f32], tol: f32, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let worst = got
        .iter()
        .zip(want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(worst <= tol, "{what}: max abs diff {worst} > {tol}");
}

fn layer_mut(
    model: &mut PeftModel<Tinyformer>,
    layer: usize,
    module: ModuleId,
) -> &mut peft::LoraLayer {
    model.blocks[layer]
        .get_mut(module)
        .expect("every block linear is adapted")
}

fn check(method_name: &str, method: Method) {
    let device = Device::flex().autodiff();
    let (golden, config) = golden();
    let g = &golden.methods[method_name];
    let base = Tinyformer::from_torch_state(&config, &golden.base_state, &device).unwrap();
    let mut lora = LoraConfig::new(method, golden.r);
    lora.lora_alpha = golden.lora_alpha;
    lora.train_head = false;
    assert!((lora.scaling() - g.scaling).abs() < 1e-12, "scaling");
    let mut model = PeftModel::new(base, &lora, &[0]).unwrap();
    assert_eq!(
        model.trainable_per_member(),
        g.trainable,
        "trainable parameters"
    );

    for (name, f) in &g.factors {
        let (layer, kind) = site(name);
        let l = layer_mut(&mut model, layer, kind);
        if let Some(m) = &f.m {
            // DoRA's magnitude starts at the weight's row norms, as PEFT's.
            let ours = host(l.magnitude.as_ref().unwrap().val());
            assert_close(&ours, &m.data, 1e-5, &format!("{name} magnitude"));
        }
        match method {
            Method::Pissa => {
                // Factors are defined up to the sign of each singular pair:
                // compare the update s·BA and the residual base.
                let ours = host(
                    l.delta_weight()
                        .reshape([f.a.shape[1], f.b.shape[0]])
                        .transpose(),
                );
                let want = host(
                    tensor2(&f.b, &device)
                        .matmul(tensor2(&f.a, &device))
                        .mul_scalar(g.scaling),
                );
                assert_close(&ours, &want, 1e-5, &format!("{name} s·BA"));
            }
            _ => {
                let a = tensor2(&f.a, &device).transpose().unsqueeze_dim::<3>(0);
                let b = tensor2(&f.b, &device).transpose().unsqueeze_dim::<3>(0);
                l.a = Param::from_tensor(a.require_grad());
                l.b = Param::from_tensor(b.require_grad());
            }
        }
    }
    if method == Method::Pissa {
        for (name, f) in &g.factors {
            let (layer, kind) = site(name);
            let residual = model
                .base
                .linear(LinearSite {
                    layer,
                    module: kind,
                })
                .unwrap();
            let ours = host(
                residual
                    .weight
                    .val()
                    .reshape([f.a.shape[1], f.b.shape[0]])
                    .transpose(),
            );
            assert_close(
                &ours,
                &f.base.as_ref().unwrap().data,
                1e-5,
                &format!("{name} residual"),
            );
        }
    }

    let (b, t) = (golden.tokens.len(), golden.tokens[0].len());
    let tokens: Tensor<3, Int> =
        Tensor::from_data(TensorData::new(golden.tokens.concat(), [1, b, t]), &device);
    let labels: Tensor<2, Int> =
        Tensor::from_data(TensorData::new(golden.labels.clone(), [1, b]), &device);
    let logits = model.logits(tokens.clone());
    assert_close(&host(logits.clone()), &g.logits.concat(), 1e-5, "logits");
    let loss = member_cross_entropy(logits, labels).sum();
    assert!((host(loss.clone())[0] - g.loss).abs() < 1e-5, "loss");

    let grads = GradientsParams::from_grads(loss.backward(), &model);
    // Gradients themselves (DoRA: with the column norm detached, as PEFT).
    // PiSSA's factors are PEFT's up to the sign of each singular pair (row i
    // of A with column i of B): its gradients flip with them.
    for (name, f) in &g.grads {
        let (layer, kind) = site(name);
        let l = block_layer(&model.blocks[layer], kind);
        let ga: Tensor<3> = grads.get(l.a.id).expect("A has a gradient");
        let gb: Tensor<3> = grads.get(l.b.id).expect("B has a gradient");
        let (r, d_in, d_out) = (f.a.shape[0], f.a.shape[1], f.b.shape[0]);
        let mut ga = host(ga.reshape([d_in, r]).transpose());
        let mut gb = host(gb.reshape([r, d_out]).transpose());
        if method == Method::Pissa {
            let ours_a = host(l.a.val().reshape([d_in, r]).transpose());
            let peft_a = &g.factors[name].a.data;
            for i in 0..r {
                let row = i * d_in..(i + 1) * d_in;
                let dot: f32 = ours_a[row.clone()]
                    .iter()
                    .zip(&peft_a[row.clone()])
                    .map(|(x, y)| x * y)
                    .sum();
                assert!(
                    dot.abs() > 1e-3,
                    "{name}: pair {i} is not PEFT's up to sign"
                );
                let sign = dot.signum();
                ga[row].iter_mut().for_each(|v| *v *= sign);
                (0..d_out).for_each(|o| gb[o * r + i] *= sign);
            }
        }
        assert_close(&ga, &f.a.data, 1e-5, &format!("{name} dL/dA"));
        assert_close(&gb, &f.b.data, 1e-5, &format!("{name} dL/dB"));
        if let (Some(m), Some(ours)) = (&f.m, &l.magnitude) {
            let gm: Tensor<2> = grads.get(ours.id).expect("m has a gradient");
            assert_close(&host(gm), &m.data, 1e-5, &format!("{name} dL/dm"));
        }
    }
    // lrscape's own optimizer (PyTorch's AdamW defaults, no weight decay).
    let mut adamw =
        train::PopulationAdamW::new(train::AdamWConfig::default(), &[golden.lr], &device);
    let model = adamw.step(model, grads);
    for (name, f) in &g.after_step {
        let (layer, kind) = site(name);
        let block = &model.blocks[layer];
        let l = block_layer(block, kind);
        if method == Method::Pissa {
            let ours = host(
                l.delta_weight()
                    .reshape([f.a.shape[1], f.b.shape[0]])
                    .transpose(),
            );
            let want = host(
                tensor2(&f.b, &device)
                    .matmul(tensor2(&f.a, &device))
                    .mul_scalar(g.scaling),
            );
            assert_close(&ours, &want, 1e-5, &format!("{name} s·BA after a step"));
        } else {
            assert_close(
                &host(l.a.val().reshape([f.a.shape[1], f.a.shape[0]]).transpose()),
                &f.a.data,
                1e-5,
                &format!("{name} A after a step"),
            );
            assert_close(
                &host(l.b.val().reshape([f.b.shape[1], f.b.shape[0]]).transpose()),
                &f.b.data,
                1e-5,
                &format!("{name} B after a step"),
            );
        }
        if let (Some(m), Some(ours)) = (&f.m, &l.magnitude) {
            assert_close(
                &host(ours.val()),
                &m.data,
                1e-5,
                &format!("{name} magnitude after a step"),
            );
        }
    }
}

fn block_layer(block: &peft::BlockAdapters, kind: ModuleId) -> &peft::LoraLayer {
    block.get(kind).expect("adapted")
}

#[test]
fn lora_matches_peft() {
    check("lora", Method::Lora);
}

#[test]
fn rslora_matches_peft() {
    check("rslora", Method::Rslora);
}

#[test]
fn dora_matches_peft() {
    check("dora", Method::Dora);
}

#[test]
fn pissa_matches_peft() {
    check("pissa", Method::Pissa);
}
