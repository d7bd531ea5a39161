//! Adapters against HF PEFT on the seed model: fixture from
//! `tools/golden/peft_golden.py`, checked by the shared harness.

mod common;

use std::collections::BTreeMap;

use burn::module::Param;
use burn::optim::GradientsParams;
use burn::tensor::{Device, Int, Tensor, TensorData};
use nn::{Adaptable, LinearSite, PopulationModel, member_cross_entropy};
use peft::{LoraConfig, Method, PeftModel};
use serde::Deserialize;
use tinyformer::adaptable::{K, MLP_DOWN, MLP_UP, O, Q, V};
use tinyformer::{NamedTensor, Tinyformer, TinyformerConfig, TorchState};

use common::{GoldenMethod, Setting, Subject, assert_close, host, site};

#[derive(Deserialize)]
struct Golden {
    config: TinyformerConfig,
    #[serde(flatten)]
    setting: Setting,
    base_state: TorchState,
    tokens: Vec<Vec<i64>>,
    labels: Vec<i64>,
    methods: BTreeMap<String, GoldenMethod>,
}

/// `blocks.1.mlp.2` -> layer 1, `mlp_down`.
fn site_of(name: &str) -> LinearSite {
    let parts: Vec<&str> = name.split('.').collect();
    let layer = parts[1].parse().unwrap();
    let module = match (parts[2], parts[3]) {
        ("attn", "q") => Q,
        ("attn", "k") => K,
        ("attn", "v") => V,
        ("attn", "o") => O,
        ("mlp", "0") => MLP_UP,
        ("mlp", "2") => MLP_DOWN,
        other => panic!("unexpected module {other:?}"),
    };
    site(layer, module)
}

fn check(method_name: &str, method: Method) {
    let device = Device::flex().autodiff();
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../fixtures/peft_golden.json"
    );
    let mut golden: Golden = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let g = golden.methods.remove(method_name).unwrap();
    let base = Tinyformer::from_torch_state(&golden.config, &golden.base_state, &device).unwrap();
    let labels: Tensor<2, Int> = Tensor::from_data(
        TensorData::new(golden.labels.clone(), [1, golden.labels.len()]),
        &device,
    );
    let subject = Subject {
        base,
        site: site_of,
        tokens: common::tokens(&golden.tokens, &device),
        loss: Box::new(move |logits| member_cross_entropy(logits, labels.clone())),
        given: None,
    };
    common::check(&g, method, &golden.setting, subject, &device);
}

#[test]
fn lora_matches_peft() {
    check("lora", Method::Lora);
}

#[test]
fn rslora_matches_peft() {
    check("rslora", Method::Rslora);
}

/// LoRA stepped by PEFT's `create_loraplus_optimizer`: B at 16 × A's rate.
#[test]
fn loraplus_matches_peft() {
    check("loraplus", Method::Loraplus);
}

#[test]
fn dora_matches_peft() {
    check("dora", Method::Dora);
}

#[test]
fn pissa_matches_peft() {
    check("pissa", Method::Pissa);
}

#[test]
fn olora_matches_peft() {
    check("olora", Method::Olora);
}

/// PEFT has no MiLoRA: the reference is PEFT's PiSSA init on the smallest
/// singular components (tools/golden/milora.py).
#[test]
fn milora_matches_the_reference() {
    check("milora", Method::Milora);
}

// ---------------------------------------------------------------------------
// The paper's second-version methods PEFT has (GraLoRA, RandLoRA, LoRA-GA):
// fixtures/peft_variants_golden.json from tools/golden/peft_variants_golden.py.

type Tensors = BTreeMap<String, NamedTensor>;

#[derive(Deserialize)]
struct VariantGolden {
    config: TinyformerConfig,
    lr: f64,
    base_state: TorchState,
    tokens: Vec<Vec<i64>>,
    labels: Vec<i64>,
    methods: BTreeMap<String, Variant>,
}

#[derive(Deserialize)]
struct Variant {
    scaling: f64,
    options: serde_json::Value,
    #[serde(default)]
    init: BTreeMap<String, Tensors>,
    factors: BTreeMap<String, Tensors>,
    delta: BTreeMap<String, NamedTensor>,
    logits: Vec<Vec<f32>>,
    loss: f32,
    grads: BTreeMap<String, Tensors>,
    after_step: BTreeMap<String, Tensors>,
    trainable: usize,
    #[serde(default)]
    bases: Tensors,
    #[serde(default)]
    ga_batches: Vec<GaBatch>,
}

#[derive(Deserialize)]
struct GaBatch {
    tokens: Vec<Vec<i64>>,
    labels: Vec<i64>,
}

fn variant_golden() -> VariantGolden {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../fixtures/peft_variants_golden.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn tensor_of<const D: usize>(t: &NamedTensor, shape: [usize; D], device: &Device) -> Tensor<D> {
    assert_eq!(
        t.shape.iter().product::<usize>(),
        shape.iter().product::<usize>()
    );
    Tensor::from_data(TensorData::new(t.data.clone(), shape), device)
}

/// A method's adapter in PEFT's layout ↔ lrscape's `[C, …]` tensors, for
/// one member.
struct Layout {
    /// PEFT's tensor name and its lrscape parameter, and how to map between.
    to_ours: fn(&str, &NamedTensor, &Device) -> Tensor<3>,
    to_peft: fn(&str, Tensor<3>, &[usize]) -> Vec<f32>,
}

/// GraLoRA: `gralora_A` `[k, in/k, r]` is A `[in, r]`; `gralora_B` `[k, r,
/// out/k]` sits side by side as B `[r, out]`; the general pair is a plain
/// LoRA pair.
fn gralora_to_ours(name: &str, t: &NamedTensor, device: &Device) -> Tensor<3> {
    let s = &t.shape;
    match name {
        "gralora_A" => tensor_of(t, [s[0] * s[1], s[2]], device).unsqueeze_dim(0),
        "gralora_B" => tensor_of(t, [s[0], s[1], s[2]], device)
            .swap_dims(0, 1)
            .reshape([s[1], s[0] * s[2]])
            .unsqueeze_dim(0),
        _ => tensor_of(t, [s[0], s[1]], device)
            .transpose()
            .unsqueeze_dim(0),
    }
}

fn gralora_to_peft(name: &str, ours: Tensor<3>, shape: &[usize]) -> Vec<f32> {
    let ours = ours.squeeze_dim::<2>(0);
    match name {
        "gralora_A" => host(ours),
        "gralora_B" => host(ours.reshape([shape[1], shape[0], shape[2]]).swap_dims(0, 1)),
        _ => host(ours.transpose()),
    }
}

/// RandLoRA: Λ `[r, nb]` and Γ `[nb, min]` as they are.
fn randlora_to_ours(_: &str, t: &NamedTensor, device: &Device) -> Tensor<3> {
    tensor_of(t, [t.shape[0], t.shape[1]], device).unsqueeze_dim(0)
}

fn randlora_to_peft(_: &str, ours: Tensor<3>, _: &[usize]) -> Vec<f32> {
    host(ours)
}

/// LoRA-GA: PEFT's `lora_A` `[r, in]` and `lora_B` `[out, r]`, transposed.
fn lora_to_ours(_: &str, t: &NamedTensor, device: &Device) -> Tensor<3> {
    tensor_of(t, [t.shape[0], t.shape[1]], device)
        .transpose()
        .unsqueeze_dim(0)
}

fn lora_to_peft(_: &str, ours: Tensor<3>, _: &[usize]) -> Vec<f32> {
    host(ours.squeeze_dim::<2>(0).transpose())
}

/// The parameter of `layer` that PEFT calls `name`.
fn param_of<'a>(layer: &'a mut peft::LoraLayer, name: &str) -> &'a mut Param<Tensor<3>> {
    match name {
        "gralora_A" | "randlora_lambda" | "A" => &mut layer.a,
        "gralora_B" | "randlora_gamma" | "B" => &mut layer.b,
        "gralora_A_general" => &mut layer.general.as_mut().unwrap().a,
        "gralora_B_general" => &mut layer.general.as_mut().unwrap().b,
        other => panic!("unexpected tensor {other}"),
    }
}

/// Builds the method's population of one, starts it from the fixture's
/// factors and checks update, logits, loss, gradients and one AdamW step.
fn check_variant(
    golden: &VariantGolden,
    v: &Variant,
    mut model: PeftModel<Tinyformer>,
    layout: &Layout,
    device: &Device,
) {
    assert_eq!(
        model.trainable_per_member(),
        v.trainable,
        "trainable parameters"
    );
    for (name, tensors) in &v.factors {
        let layer = model.adapter_mut(site_of(name)).unwrap();
        for (tensor, t) in tensors {
            if matches!(tensor.as_str(), "grad" | "base") {
                continue;
            }
            *param_of(layer, tensor) =
                Param::from_tensor((layout.to_ours)(tensor, t, device).require_grad());
        }
    }
    for (name, delta) in &v.delta {
        let ours = model.adapter(site_of(name)).unwrap().delta_weight();
        let [_, d_in, d_out] = ours.dims();
        let ours = host(ours.reshape([d_in, d_out]).transpose());
        assert_close(&ours, &delta.data, 1e-5, &format!("{name} ΔW"));
    }
    let labels: Tensor<2, Int> = Tensor::from_data(
        TensorData::new(golden.labels.clone(), [1, golden.labels.len()]),
        device,
    );
    let logits = model.logits(common::tokens(&golden.tokens, device));
    assert_close(&host(logits.clone()), &v.logits.concat(), 1e-5, "logits");
    let loss = member_cross_entropy(logits, labels).sum();
    assert_close(&host(loss.clone()), &[v.loss], 1e-5, "loss");
    let grads = GradientsParams::from_grads(loss.backward(), &model);
    for (name, tensors) in &v.grads {
        let layer = model.adapter_mut(site_of(name)).unwrap();
        for (tensor, want) in tensors {
            let grad: Tensor<3> = grads.get(param_of(layer, tensor).id).expect("a gradient");
            let ours = (layout.to_peft)(tensor, grad, &want.shape);
            assert_close(&ours, &want.data, 1e-5, &format!("{name} d/d{tensor}"));
        }
    }
    let mut adamw =
        train::PopulationAdamW::new(train::AdamWConfig::default(), &[golden.lr], device);
    let mut model = adamw.step(model, grads);
    for (name, tensors) in &v.after_step {
        let layer = model.adapter_mut(site_of(name)).unwrap();
        for (tensor, want) in tensors {
            let ours = (layout.to_peft)(tensor, param_of(layer, tensor).val(), &want.shape);
            assert_close(
                &ours,
                &want.data,
                1e-5,
                &format!("{name} {tensor} after a step"),
            );
        }
    }
}

fn variant_setup(method: Method, v: &Variant) -> (Tinyformer, LoraConfig, Device) {
    let device = Device::flex().autodiff();
    let golden = variant_golden();
    let base = Tinyformer::from_torch_state(&golden.config, &golden.base_state, &device).unwrap();
    let option = |key: &str| v.options[key].as_f64();
    let mut lora = LoraConfig::new(method, option("r").unwrap() as usize);
    lora.lora_alpha = option("alpha")
        .or(option("lora_alpha"))
        .unwrap_or(lora.lora_alpha);
    lora.gralora_k = option("gralora_k").map_or(lora.gralora_k, |k| k as usize);
    lora.hybrid_r = option("hybrid_r").map_or(0, |h| h as usize);
    lora.randlora_alpha = option("randlora_alpha");
    lora.train_head = false;
    assert!((lora.scaling() - v.scaling).abs() < 1e-12, "scaling");
    (base, lora, device)
}

fn check_gralora(case: &str) {
    let golden = variant_golden();
    let v = &golden.methods[case];
    let (base, lora, device) = variant_setup(Method::Gralora, v);
    let model = PeftModel::new(base, &lora, &[0]).unwrap();
    // PEFT's init: B = 0 (output unchanged), each block's A uniform in
    // ±1/√(in/k); the general pair a plain LoRA's.
    for (name, init) in &v.init {
        let layer = model.adapter(site_of(name)).unwrap();
        let k = lora.gralora_k;
        let block_rows = init["gralora_A"].shape[1];
        let bound = 1.0 / (block_rows as f32).sqrt();
        let a = host(layer.a.val());
        assert!(
            a.iter().all(|x| x.abs() <= bound),
            "{name}: A within ±1/√(in/k)"
        );
        assert!(
            a.iter().any(|x| x.abs() > 0.5 * bound),
            "{name}: A spreads to its bound"
        );
        assert!(
            host(layer.b.val()).iter().all(|&x| x == 0.0),
            "{name}: B = 0"
        );
        assert_eq!(layer.a.dims()[1], k * block_rows);
        if let Some(general) = &layer.general {
            let d_in = general.a.dims()[1];
            let bound = 1.0 / (d_in as f32).sqrt();
            assert!(host(general.a.val()).iter().all(|x| x.abs() <= bound));
            assert!(host(general.b.val()).iter().all(|&x| x == 0.0));
        }
    }
    let layout = Layout {
        to_ours: gralora_to_ours,
        to_peft: gralora_to_peft,
    };
    check_variant(&golden, v, model, &layout, &device);
}

#[test]
fn gralora_matches_peft() {
    check_gralora("gralora");
}

/// GraLoRA with a plain LoRA beside its blocks (`hybrid_r`).
#[test]
fn gralora_hybrid_matches_peft() {
    check_gralora("gralora_hybrid");
}

#[test]
fn randlora_matches_peft() {
    let golden = variant_golden();
    let v = &golden.methods["randlora"];
    let (base, lora, device) = variant_setup(Method::Randlora, v);
    let mut model = PeftModel::new(base, &lora, &[0]).unwrap();
    // PEFT's start: Λ = 0 (output unchanged) and Γ = 1/max(nb, min).
    for (name, init) in &v.init {
        let layer = model.adapter(site_of(name)).unwrap();
        assert_eq!(
            host(layer.a.val()),
            init["randlora_lambda"].data,
            "{name} Λ"
        );
        assert_close(
            &host(layer.b.val()),
            &init["randlora_gamma"].data,
            1e-7,
            &format!("{name} Γ"),
        );
    }
    // The bases: sized by the largest targeted shape (16 × 16 here, though
    // no linear is), the same law as PEFT's; the fixture's replace them.
    let (a_full, b_full) = (&v.bases["randlora_A"], &v.bases["randlora_B"]);
    let (r, min_all, max_all, nb_all) = (
        a_full.shape[0],
        a_full.shape[2],
        b_full.shape[0],
        b_full.shape[1],
    );
    let ours = peft::init::SharedBases::new(0, r, (16, 16), None);
    assert_eq!((ours.min, ours.max, ours.nb), (min_all, max_all, nb_all));
    for values in [&ours.a, &ours.b] {
        let n = values.len() as f64;
        let var = values.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>() / n;
        assert!((var - 1.0).abs() < 0.25, "unit variance: {var}");
        assert!(values.iter().all(|x| x.abs() < 1.8), "uniform within ±√3");
    }
    let sites: Vec<LinearSite> = model.adapted_sites().map(|(s, _)| s).collect();
    for site in sites {
        let layer = model.adapter_mut(site).unwrap();
        let bases = layer.bases.as_mut().unwrap();
        let [_, _, min] = bases.a.dims();
        let [_, max, nb_r] = bases.b.dims();
        let nb = nb_r / r;
        let a = tensor_of(a_full, [r, min_all], &device).narrow(1, 0, min);
        let b = tensor_of(b_full, [max_all, nb_all, r], &device)
            .narrow(0, 0, max)
            .narrow(1, 0, nb)
            .reshape([max, nb * r]);
        bases.a = Param::from_tensor(a.unsqueeze_dim(0)).set_require_grad(false);
        bases.b = Param::from_tensor(b.unsqueeze_dim(0)).set_require_grad(false);
    }
    let layout = Layout {
        to_ours: randlora_to_ours,
        to_peft: randlora_to_peft,
    };
    check_variant(&golden, v, model, &layout, &device);
}

/// LoRA-GA: lrscape's mean gradient over the fixture's two batches is
/// PEFT's; the factors are its SVD's up to the sign of each vector (PEFT's
/// SVD is randomized), the residual keeps the output; then PEFT's own
/// factors and residual give its logits, gradients and step.
#[test]
fn lora_ga_matches_peft() {
    let golden = variant_golden();
    let v = &golden.methods["lora_ga"];
    let (base, lora, device) = variant_setup(Method::LoraGa, v);
    let rows: Vec<Vec<i64>> = v.ga_batches.iter().flat_map(|b| b.tokens.clone()).collect();
    let targets: Vec<u32> = v
        .ga_batches
        .iter()
        .flat_map(|b| b.labels.iter().map(|&l| l as u32))
        .collect();
    let seq_len = rows[0].len();
    let tokens: Vec<u32> = rows.concat().into_iter().map(|t| t as u32).collect();
    let data =
        synth_data::SequenceDataset::new(tokens, targets, seq_len, 1, golden.config.vocab).unwrap();
    let sites: Vec<LinearSite> = v.factors.keys().map(|n| site_of(n)).collect();
    // Two equal batches: the mean of their means is every row's mean,
    // whichever rows each batch draws.
    let batch = v.ga_batches[0].tokens.len();
    let gradients = train::weight_gradients(&base, &sites, &data, (2, batch, 0), &device).unwrap();
    let original = base.clone();
    let mut model = PeftModel::with_gradients(base, &lora, &[0], &gradients).unwrap();
    for (name, f) in &v.factors {
        let site = site_of(name);
        let ours = gradients[&site].clone();
        assert_close(
            &host(ours.transpose()),
            &f["grad"].data,
            1e-5,
            &format!("{name} gradient"),
        );
        let layer = model.adapter(site).unwrap();
        let (a_peft, b_peft) = (&f["A"], &f["B"]);
        let (r, d_in, d_out) = (a_peft.shape[0], a_peft.shape[1], b_peft.shape[0]);
        let a = host(layer.a.val().reshape([d_in, r]).transpose()); // [r, in]
        let b = host(layer.b.val().reshape([r, d_out]).transpose()); // [out, r]
        for i in 0..r {
            let row = |m: &[f32]| m[i * d_in..(i + 1) * d_in].to_vec();
            let col = |m: &[f32]| (0..d_out).map(|o| m[o * r + i]).collect::<Vec<_>>();
            for (what, ours, theirs) in [
                ("A row", row(&a), row(&a_peft.data)),
                ("B column", col(&b), col(&b_peft.data)),
            ] {
                let dot: f32 = ours.iter().zip(&theirs).map(|(x, y)| x * y).sum();
                let flipped: Vec<f32> = ours.iter().map(|x| x * dot.signum()).collect();
                assert_close(
                    &flipped,
                    &theirs,
                    1e-4,
                    &format!("{name} {what} {i} (up to sign)"),
                );
            }
        }
        // The residual plus the update is the original weight.
        let residual = model.base.linear(site).unwrap().weight.val();
        let w = original.linear(site).unwrap().weight.val();
        assert_close(
            &host(residual + layer.delta_weight()),
            &host(w),
            1e-5,
            &format!("{name} W"),
        );
    }
    // PEFT's factors on PEFT's residual.
    for (name, f) in &v.factors {
        let site = site_of(name);
        let base = &f["base"];
        let residual = tensor_of(base, [base.shape[0], base.shape[1]], &device).transpose();
        model.base.linear_mut(site).unwrap().weight =
            Param::from_tensor(residual.unsqueeze_dim::<3>(0)).set_require_grad(false);
    }
    let layout = Layout {
        to_ours: lora_to_ours,
        to_peft: lora_to_peft,
    };
    check_variant(&golden, v, model, &layout, &device);
}
