//! The PEFT golden harness shared by every model family: a fixture's
//! method record (tools/golden/peft_*golden.py) checked against lrscape's
//! adapters on a base of that family: initial factors (or PiSSA's s·BA and
//! residual), logits, loss, gradients, and one step of lrscape's AdamW.

use std::collections::BTreeMap;

use burn::module::Param;
use burn::optim::GradientsParams;
use burn::tensor::{Device, Int, Tensor, TensorData};
use nn::{Adaptable, LinearSite, ModuleId, PopulationModel};
use peft::{LoraConfig, Method, PeftModel};
use serde::Deserialize;
use tinyformer::NamedTensor;

/// Logits as the fixture holds them: rows (classifier) or one flat tensor.
#[derive(Deserialize)]
#[serde(untagged)]
pub enum Logits {
    Rows(Vec<Vec<f32>>),
    Flat(NamedTensor),
}

impl Logits {
    fn values(&self) -> Vec<f32> {
        match self {
            Logits::Rows(rows) => rows.concat(),
            Logits::Flat(t) => t.data.clone(),
        }
    }
}

#[derive(Deserialize)]
pub struct GoldenMethod {
    pub scaling: f64,
    pub factors: BTreeMap<String, Factors>,
    pub logits: Logits,
    pub loss: f32,
    pub grads: BTreeMap<String, Factors>,
    pub after_step: BTreeMap<String, Factors>,
    pub trainable: usize,
}

/// PEFT's layout: A `[r, in]`, B `[out, r]`, DoRA's magnitude `[out]`, and
/// PiSSA's residual base as the base layer stores it.
#[derive(Deserialize)]
pub struct Factors {
    #[serde(rename = "A")]
    pub a: Option<NamedTensor>,
    #[serde(rename = "B")]
    pub b: Option<NamedTensor>,
    pub m: Option<NamedTensor>,
    pub base: Option<NamedTensor>,
}

/// A family's side of a golden: its base, how PEFT's module names map to
/// sites, the batch, and the loss the fixture's model computed.
pub struct Subject<M> {
    pub base: M,
    pub site: fn(&str) -> LinearSite,
    pub tokens: Tensor<3, Int>,
    pub loss: Box<dyn Fn(Tensor<3>) -> Tensor<1>>,
    /// The given factors LoRA, rsLoRA and DoRA start from, where the
    /// fixture stores them once instead of per method.
    pub given: Option<BTreeMap<String, Factors>>,
}

/// The fixture's run: rank, alpha and learning rate.
#[derive(Deserialize)]
pub struct Setting {
    pub r: usize,
    pub lora_alpha: f64,
    pub lr: f64,
    /// LoRA+'s ratio, where the fixture has a LoRA+ case.
    #[serde(default)]
    pub loraplus_lr_ratio: Option<f64>,
}

fn tensor2(t: &NamedTensor, device: &Device) -> Tensor<2> {
    Tensor::from_data(
        TensorData::new(t.data.clone(), [t.shape[0], t.shape[1]]),
        device,
    )
}

pub fn host<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_into_vec().unwrap()
}

/// Within `tol` of `want`'s scale (its largest magnitude, at least 1): f32
/// sums of a few hundred terms of size ~6 differ from PyTorch's in the 5th
/// digit.
pub fn assert_close(got: &[f32], want: &[f32], tol: f32, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let scale = want.iter().fold(1.0f32, |m, v| m.max(v.abs()));
    let worst = got
        .iter()
        .zip(want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(
        worst <= tol * scale,
        "{what}: max abs diff {worst} > {tol} × {scale}"
    );
}

fn layer<M: Adaptable>(model: &PeftModel<M>, site: LinearSite) -> &peft::LoraLayer {
    model.blocks[site.layer].get(site.module).expect("adapted")
}

/// `s·BA` of PEFT's factors, `[out, in]`.
fn peft_delta(f: &Factors, scaling: f64, device: &Device) -> Vec<f32> {
    let (a, b) = (f.a.as_ref().unwrap(), f.b.as_ref().unwrap());
    host(
        tensor2(b, device)
            .matmul(tensor2(a, device))
            .mul_scalar(scaling),
    )
}

/// lrscape's `s·BA` at `l`, `[out, in]`.
fn our_delta(l: &peft::LoraLayer) -> Vec<f32> {
    let [_, d_in, d_out] = l.delta_weight().dims();
    host(l.delta_weight().reshape([d_in, d_out]).transpose())
}

/// Starts the adapters from the fixture's factors (PiSSA: checks its SVD
/// init instead) and checks DoRA's initial magnitude.
fn start<M: Adaptable>(
    model: &mut PeftModel<M>,
    original: &M,
    g: &GoldenMethod,
    subject: &Subject<M>,
    method: Method,
    device: &Device,
) {
    let given = subject.given.as_ref();
    for (name, f) in &g.factors {
        let site = (subject.site)(name);
        let l = model.blocks[site.layer]
            .get_mut(site.module)
            .expect("adapted");
        if let Some(m) = &f.m {
            // DoRA's magnitude starts at the weight's row norms, as PEFT's.
            let ours = host(l.magnitude.as_ref().unwrap().val());
            assert_close(&ours, &m.data, 1e-5, &format!("{name} magnitude"));
        }
        if method == Method::Olora {
            // The QR decomposition's signs are LAPACK's: the factors
            // themselves agree.
            let (a, b) = (f.a.as_ref().unwrap(), f.b.as_ref().unwrap());
            let ours_a = host(l.a.val().squeeze_dim::<2>(0).transpose());
            let ours_b = host(l.b.val().squeeze_dim::<2>(0).transpose());
            assert_close(&ours_a, &a.data, 1e-5, &format!("{name} A"));
            assert_close(&ours_b, &b.data, 1e-5, &format!("{name} B"));
        }
        if svd_init(method) {
            // Factors are defined up to the sign of each singular pair:
            // compare the update s·BA.
            assert_close(
                &our_delta(l),
                &peft_delta(f, g.scaling, device),
                1e-5,
                &format!("{name} s·BA"),
            );
            continue;
        }
        let f = given.map_or(f, |given| &given[name]);
        let (a, b) = (f.a.as_ref().unwrap(), f.b.as_ref().unwrap());
        l.a = Param::from_tensor(
            tensor2(a, device)
                .transpose()
                .unsqueeze_dim::<3>(0)
                .require_grad(),
        );
        l.b = Param::from_tensor(
            tensor2(b, device)
                .transpose()
                .unsqueeze_dim::<3>(0)
                .require_grad(),
        );
    }
    if !svd_init(method) {
        return;
    }
    // PiSSA's residual: the original weight less s·BA, and PEFT's own
    // residual where the fixture holds it (nn.Linear's [out, in]).
    for (name, f) in &g.factors {
        let site = (subject.site)(name);
        let residual = model.base.linear(site).unwrap().weight.val();
        let [_, d_in, d_out] = residual.dims();
        let residual_out_in = host(residual.clone().reshape([d_in, d_out]).transpose());
        let weight = original.linear(site).unwrap().weight.val();
        let ours = host(weight - residual);
        let delta: Vec<f32> = host(layer(model, site).delta_weight());
        assert_close(&ours, &delta, 1e-5, &format!("{name} W - residual = s·BA"));
        if let Some(base) = &f.base {
            assert_close(
                &residual_out_in,
                &base.data,
                1e-5,
                &format!("{name} residual"),
            );
        }
    }
}

/// Every check of one method of a fixture.
pub fn check<M: Adaptable>(
    g: &GoldenMethod,
    method: Method,
    setting: &Setting,
    subject: Subject<M>,
    device: &Device,
) {
    let mut lora = LoraConfig::new(method, setting.r);
    lora.lora_alpha = setting.lora_alpha;
    if let Some(ratio) = setting.loraplus_lr_ratio {
        lora.loraplus_lr_ratio = ratio;
    }
    lora.train_head = false;
    // PEFT's form: x·A then ·B, not the merged weight.
    lora.compute = peft::Compute::ActivationSpace;
    assert!((lora.scaling() - g.scaling).abs() < 1e-12, "scaling");
    let original = subject.base.clone();
    let mut model = PeftModel::new(subject.base.clone(), &lora, &[0]).unwrap();
    assert_eq!(
        model.trainable_per_member(),
        g.trainable,
        "trainable parameters"
    );
    start(&mut model, &original, g, &subject, method, device);

    let logits = model.logits(subject.tokens.clone());
    assert_close(&host(logits.clone()), &g.logits.values(), 1e-5, "logits");
    let loss = (subject.loss)(logits).sum();
    assert_close(&host(loss.clone()), &[g.loss], 1e-5, "loss");

    let grads = GradientsParams::from_grads(loss.backward(), &model);
    check_gradients(&model, &grads, g, &subject, method);

    // lrscape's own optimizer (PyTorch's AdamW defaults, no weight decay).
    let mut adamw =
        train::PopulationAdamW::new(train::AdamWConfig::default(), &[setting.lr], device);
    adamw.set_param_lrs(&model.param_lrs());
    let model = adamw.step(model, grads);
    for (name, f) in &g.after_step {
        let l = layer(&model, (subject.site)(name));
        let (a, b) = (f.a.as_ref().unwrap(), f.b.as_ref().unwrap());
        if svd_init(method) {
            assert_close(
                &our_delta(l),
                &peft_delta(f, g.scaling, device),
                1e-5,
                &format!("{name} s·BA after a step"),
            );
        } else {
            assert_close(
                &host(l.a.val().reshape([a.shape[1], a.shape[0]]).transpose()),
                &a.data,
                1e-5,
                &format!("{name} A after a step"),
            );
            assert_close(
                &host(l.b.val().reshape([b.shape[1], b.shape[0]]).transpose()),
                &b.data,
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

/// Gradients of A, B and DoRA's magnitude (with the column norm detached,
/// as PEFT). PiSSA's factors are PEFT's up to the sign of each singular pair
/// (row i of A with column i of B): its gradients flip with them.
fn check_gradients<M: Adaptable>(
    model: &PeftModel<M>,
    grads: &GradientsParams,
    g: &GoldenMethod,
    subject: &Subject<M>,
    method: Method,
) {
    for (name, f) in &g.grads {
        let l = layer(model, (subject.site)(name));
        let ga: Tensor<3> = grads.get(l.a.id).expect("A has a gradient");
        let gb: Tensor<3> = grads.get(l.b.id).expect("B has a gradient");
        let (fa, fb) = (f.a.as_ref().unwrap(), f.b.as_ref().unwrap());
        let (r, d_in, d_out) = (fa.shape[0], fa.shape[1], fb.shape[0]);
        let mut ga = host(ga.reshape([d_in, r]).transpose());
        let mut gb = host(gb.reshape([r, d_out]).transpose());
        if svd_init(method) {
            let ours_a = host(l.a.val().reshape([d_in, r]).transpose());
            let peft_a = &g.factors[name].a.as_ref().unwrap().data;
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
        assert_close(&ga, &fa.data, 1e-5, &format!("{name} dL/dA"));
        assert_close(&gb, &fb.data, 1e-5, &format!("{name} dL/dB"));
        if let (Some(m), Some(ours)) = (&f.m, &l.magnitude) {
            let gm: Tensor<2> = grads.get(ours.id).expect("m has a gradient");
            assert_close(&host(gm), &m.data, 1e-5, &format!("{name} dL/dm"));
        }
    }
}

/// A fixture's token rows as one stream, `[1, B, T]`.
pub fn tokens(rows: &[Vec<i64>], device: &Device) -> Tensor<3, Int> {
    let (b, t) = (rows.len(), rows[0].len());
    Tensor::from_data(TensorData::new(rows.concat(), [1, b, t]), device)
}

/// A site from its layer and module.
pub fn site(layer: usize, module: ModuleId) -> LinearSite {
    LinearSite { layer, module }
}

/// PiSSA, MiLoRA and OLoRA: factors from the weight, part of it moved into
/// the adapter (the SVD's defined up to the sign of each singular pair).
fn svd_init(method: Method) -> bool {
    matches!(method, Method::Pissa | Method::Milora | Method::Olora)
}
