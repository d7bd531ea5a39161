//! Properties of every method: identity at init, SVD inits, merge/unmerge,
//! parameter counts, the member axis and errors.

use burn::module::{Module, Param};
use burn::tensor::{Device, Int, Tensor, TensorData};
use nn::{Adaptable, LinearSite, PopulationModel, select_member};
use peft::{LoraConfig, LoraInit, Method, PeftError, PeftModel, TargetModules};
use tinyformer::adaptable::{K, MLP_UP, MODULES, Q};
use tinyformer::{PosInit, Tinyformer, TinyformerConfig};

fn config() -> TinyformerConfig {
    TinyformerConfig {
        vocab: 12,
        seq_len: 6,
        d_model: 8,
        n_layers: 2,
        n_heads: 2,
        d_ff: 16,
        pos_init: PosInit::Normal { std: 0.5 },
        causal: false,
    }
}

fn device() -> Device {
    Device::flex().autodiff()
}

fn base(device: &Device) -> Tinyformer {
    Tinyformer::init(&config(), 3, device).unwrap()
}

fn tokens(device: &Device) -> Tensor<3, Int> {
    let values: Vec<i64> = (0..4 * 6).map(|i| ((i * 5 + 1) % 12) as i64).collect();
    Tensor::from_data(TensorData::new(values, [1, 4, 6]), device)
}

fn host<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_into_vec().unwrap()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn adapted(method: Method, r: usize, seeds: &[u64], device: &Device) -> PeftModel<Tinyformer> {
    PeftModel::new(base(device), &LoraConfig::new(method, r), seeds).unwrap()
}

/// Gives every factor (and magnitude) a random nudge, as training would.
fn perturb(model: PeftModel<Tinyformer>, device: &Device) -> PeftModel<Tinyformer> {
    use burn::module::ModuleMapper;
    struct Nudge(u64, Device);
    impl ModuleMapper for Nudge {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            if !param.is_require_grad() {
                return param;
            }
            self.0 += 1;
            let mut rng = nn::init::ParamRng::new(self.0);
            let shape = param.dims();
            let n = shape.iter().product();
            let noise = Tensor::<1>::from_data(TensorData::new(rng.normal(n, 0.2), [n]), &self.1);
            param.map(|t| {
                (t.inner() + noise.inner().reshape(shape))
                    .autodiff()
                    .require_grad()
            })
        }
    }
    model.map(&mut Nudge(0, device.clone()))
}

#[test]
fn output_is_unchanged_at_init_for_the_exact_methods() {
    let device = device();
    let plain = host(base(&device).forward(tokens(&device)));
    for method in [
        Method::Lora,
        Method::Rslora,
        Method::Dora,
        Method::Pissa,
        Method::Milora,
        Method::Full,
    ] {
        for r in [1, 4, 8] {
            let model = adapted(method, r, &[0, 1], &device);
            let out = host(model.logits(tokens(&device)));
            // Two members, both equal to the base.
            let worst =
                max_diff(&out[..plain.len()], &plain).max(max_diff(&out[plain.len()..], &plain));
            assert!(
                worst <= 1e-5,
                "{method:?} r={r}: output moved by {worst} at init"
            );
        }
    }
    // The seed notebook's PiSSA/MiLoRA and Init[AB] do change the output at init.
    for method in [Method::PissaSeed, Method::InitAb] {
        let out = host(adapted(method, 4, &[0], &device).logits(tokens(&device)));
        assert!(
            max_diff(&out, &plain) > 1e-3,
            "{method:?} should change the output at init"
        );
    }
}

fn singular_values(w: Tensor<2>) -> Vec<f32> {
    let (_, s, _) = burn::linalg::svd::<2, 1>(w.inner(), 200);
    host(s)
}

/// PiSSA's update is the top-r part of W and MiLoRA's the bottom-r part:
/// its singular values are W's largest (smallest) r, it is orthogonal to the
/// residual, and residual + update = W.
#[test]
fn svd_inits_split_the_weight_into_components() {
    let device = device();
    let reference = base(&device);
    for (method, top) in [(Method::Pissa, true), (Method::Milora, false)] {
        let r = 3;
        let model = adapted(method, r, &[0], &device);
        for layer in 0..2 {
            for module in MODULES {
                let site = LinearSite { layer, module };
                let w = reference.linear(site).unwrap().weight.val();
                let [_, d_in, d_out] = w.dims();
                let w = w.reshape([d_in, d_out]);
                let adapter = model.blocks[layer].get(module).unwrap();
                let update = adapter.delta_weight().reshape([d_in, d_out]);
                let residual = model
                    .base
                    .linear(site)
                    .unwrap()
                    .weight
                    .val()
                    .reshape([d_in, d_out]);
                let sum = host(residual.clone() + update.clone());
                assert!(
                    max_diff(&sum, &host(w.clone())) <= 1e-5,
                    "{method:?} {site:?}: W_res + s·BA != W"
                );
                let all = singular_values(w);
                let mine = singular_values(update.clone());
                let expected: Vec<f32> = if top {
                    all[..r].to_vec()
                } else {
                    all[all.len() - r..].to_vec()
                };
                assert!(
                    max_diff(&mine[..r], &expected) <= 1e-4,
                    "{method:?} {site:?}: {mine:?} vs {expected:?}"
                );
                assert!(
                    mine[r..].iter().all(|s| s.abs() < 1e-4),
                    "{method:?}: update has rank > r"
                );
                let cross = host(residual.transpose().matmul(update));
                assert!(
                    cross.iter().all(|v| v.abs() < 1e-4),
                    "{method:?} {site:?}: residual not orthogonal to the update"
                );
            }
        }
    }
}

#[test]
fn merge_then_forward_equals_adapted_forward_and_unmerge_restores_w() {
    let device = device();
    for method in [
        Method::Lora,
        Method::Rslora,
        Method::InitAb,
        Method::Dora,
        Method::DoraSeed,
        Method::Pissa,
        Method::Milora,
    ] {
        let model = perturb(adapted(method, 2, &[0, 1, 2], &device), &device);
        merges_exactly(&model, &format!("{method:?}"), &device);
    }
}

/// `model`'s merged weights give its output, and unmerging gives back its
/// frozen base for every member.
fn merges_exactly(model: &PeftModel<Tinyformer>, name: &str, device: &Device) {
    let adapted_out = host(model.logits(tokens(device)));
    let merged = model.merge().unwrap();
    let merged_out = host(merged.model.forward(tokens(device)));
    assert!(
        max_diff(&adapted_out, &merged_out) <= 1e-5,
        "{name}: merged forward differs"
    );
    let restored = model.unmerge(&merged).unwrap();
    let members = model.members();
    for layer in 0..2 {
        for module in MODULES {
            let site = LinearSite { layer, module };
            let got = restored.linear(site).unwrap().weight.val();
            let want = model.base.linear(site).unwrap().weight.val();
            assert!(
                max_diff(&host(got), &host(want.repeat_dim(0, members))) <= 1e-5,
                "{name} {site:?}: unmerge"
            );
        }
    }
}

#[test]
fn a_merged_member_saves_and_loads_as_a_plain_tinyformer() {
    let device = device();
    let model = perturb(adapted(Method::Dora, 2, &[0, 1], &device), &device);
    let want = host(model.logits(tokens(&device)));
    let member1 = select_member(model.merge().unwrap().model, 1);
    let dir = std::env::temp_dir().join(format!("lrscape-merged-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("merged.bpk");
    member1.save_file(&path).unwrap();
    let loaded = Tinyformer::init(&config(), 0, &Device::flex())
        .unwrap()
        .try_load_file(&path)
        .unwrap();
    let got = host(loaded.forward(tokens(&Device::flex())));
    let per_member = want.len() / 2;
    assert!(max_diff(&got, &want[per_member..]) <= 1e-5);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn parameter_counts_follow_the_closed_form_at_every_rank() {
    let device = device();
    let c = config();
    let (d, ff, vocab) = (c.d_model, c.d_ff, c.vocab);
    let head = d * vocab + vocab;
    let per_block_io = [(d, d), (d, d), (d, d), (d, d), (d, ff), (ff, d)];
    let base_total = base(&device).num_params();
    for r in 1..=d {
        let lora: usize = per_block_io.iter().map(|(i, o)| r * (i + o)).sum::<usize>() * c.n_layers;
        let dora_m: usize = per_block_io.iter().map(|(_, o)| o).sum::<usize>() * c.n_layers;
        for (method, expected) in [
            (Method::Lora, lora + head),
            (Method::Pissa, lora + head),
            (Method::Dora, lora + dora_m + head),
        ] {
            let model = adapted(method, r, &[0, 1], &device);
            assert_eq!(model.trainable_per_member(), expected, "{method:?} r={r}");
            assert_eq!(
                model.total_per_member(),
                base_total + expected - head,
                "{method:?} r={r} total"
            );
        }
    }
    let full = adapted(Method::Full, 1, &[0, 1, 2], &device);
    assert_eq!(full.trainable_per_member(), base_total);
    let mut qv = LoraConfig::new(Method::Lora, 2);
    qv.target_modules = TargetModules::Preset("qv".into());
    qv.train_head = false;
    let model = PeftModel::new(base(&device), &qv, &[0]).unwrap();
    assert_eq!(model.trainable_per_member(), 2 * 2 * 2 * (d + d));
}

/// Members with equal seeds start identical; each member equals a 1-member
/// model built with its seed.
#[test]
fn adapters_with_c_members_are_c_independent_adapters() {
    let device = device();
    let mut config_ab = LoraConfig::new(Method::InitAb, 2);
    config_ab.init = LoraInit::Gaussian { std: 0.3 };
    let seeds = [4, 9, 4];
    let together = PeftModel::new(base(&device), &config_ab, &seeds).unwrap();
    let out = host(together.logits(tokens(&device)));
    let n = out.len() / 3;
    for (c, &seed) in seeds.iter().enumerate() {
        let alone = PeftModel::new(base(&device), &config_ab, &[seed]).unwrap();
        let own = host(alone.logits(tokens(&device)));
        assert!(
            max_diff(&out[c * n..(c + 1) * n], &own) <= 1e-6,
            "member {c}"
        );
    }
    assert!(
        max_diff(&out[..n], &out[n..2 * n]) > 1e-4,
        "different seeds differ"
    );
    assert_eq!(&out[..n], &out[2 * n..], "equal seeds start equal");
}

#[test]
fn bad_settings_are_errors() {
    let device = device();
    let err = PeftModel::new(base(&device), &LoraConfig::new(Method::Lora, 9), &[0]).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("r = 9: at most min(in, out) = 8"),
        "{err}"
    );
    let err = PeftModel::new(base(&device), &LoraConfig::new(Method::Lora, 2), &[]).unwrap_err();
    assert!(err.to_string().contains("members = 0"), "{err}");

    let mut broken = base(&device);
    broken.blocks[1].attn.k.weight = broken.blocks[1]
        .attn
        .k
        .weight
        .clone()
        .map(|w| w.clone() / w.zeros_like());
    let err = PeftModel::new(broken, &LoraConfig::new(Method::Pissa, 2), &[0]).unwrap_err();
    assert_eq!(
        err,
        PeftError::NonFiniteWeight(LinearSite {
            layer: 1,
            module: K
        })
    );
    assert!(err.to_string().contains("block 1 linear k"), "{err}");
}

/// Both compute modes give the same function and the same gradients, for
/// the additive adapters and both DoRAs (whose norm is differentiated
/// through in the seed variant), after a nudge so B ≠ 0.
#[test]
fn compute_modes_agree() {
    use burn::optim::GradientsParams;
    use peft::Compute;
    let device = device();
    for method in [Method::InitAb, Method::Dora, Method::DoraSeed] {
        let mut results = Vec::new();
        for compute in [Compute::ActivationSpace, Compute::WeightSpace] {
            let mut config = LoraConfig::new(method, 3);
            config.compute = compute;
            let model = PeftModel::new(base(&device), &config, &[0, 1]).unwrap();
            let model = perturb(model, &device);
            let logits = model.logits(tokens(&device));
            let out = host(logits.clone());
            let grads = GradientsParams::from_grads(logits.sum().backward(), &model);
            // A factor of the first block (its input untracked) and a later one.
            let first: Tensor<3> = grads.get(model.blocks[0].get(Q).unwrap().a.id).unwrap();
            let later: Tensor<3> = grads
                .get(model.blocks[1].get(MLP_UP).unwrap().b.id)
                .unwrap();
            results.push((compute, out, host(first), host(later)));
        }
        let [(_, out, first, later), (_, o, f, l)] = &results[..] else {
            unreachable!("two compute modes")
        };
        let diffs = [max_diff(out, o), max_diff(first, f), max_diff(later, l)];
        assert!(
            diffs[0] <= 1e-5 && diffs[1] <= 1e-4 && diffs[2] <= 1e-4,
            "{method:?}: weight space vs activation space: {diffs:?}"
        );
    }
}

/// A made-up loss gradient at every linear of the tiny model (LoRA-GA's
/// init reads one).
fn gradients(model: &Tinyformer, device: &Device) -> peft::SiteGradients {
    let mut rng = nn::init::ParamRng::new(77);
    let mut out = peft::SiteGradients::new();
    for layer in 0..2 {
        for module in MODULES {
            let site = LinearSite { layer, module };
            let [_, d_in, d_out] = model.linear(site).unwrap().weight.dims();
            let values = rng.normal(d_in * d_out, 1.0);
            out.insert(
                site,
                Tensor::from_data(TensorData::new(values, [d_in, d_out]), device),
            );
        }
    }
    out
}

/// The paper's second-version methods: GraLoRA (with and without its
/// hybrid LoRA), RandLoRA and LoRA-GA, each of `members` members.
fn variants(members: &[u64], device: &Device) -> Vec<(String, PeftModel<Tinyformer>)> {
    let mut out = Vec::new();
    for (k, hybrid) in [(2, 0), (4, 2)] {
        let mut config = LoraConfig::new(Method::Gralora, 4);
        (config.gralora_k, config.hybrid_r) = (k, hybrid);
        let model = PeftModel::new(base(device), &config, members).unwrap();
        out.push((format!("gralora k={k} hybrid_r={hybrid}"), model));
    }
    for r in [1, 3] {
        let model = PeftModel::new(base(device), &LoraConfig::new(Method::Randlora, r), members);
        out.push((format!("randlora r={r}"), model.unwrap()));
    }
    let grads = gradients(&base(device), device);
    let config = LoraConfig::new(Method::LoraGa, 2);
    let model = PeftModel::with_gradients(base(device), &config, members, &grads).unwrap();
    out.push(("lora_ga".into(), model));
    out
}

#[test]
fn the_new_methods_keep_the_output_at_init_and_merge_exactly() {
    let device = device();
    let plain = host(base(&device).forward(tokens(&device)));
    for (name, model) in variants(&[0, 1], &device) {
        let out = host(model.logits(tokens(&device)));
        let worst =
            max_diff(&out[..plain.len()], &plain).max(max_diff(&out[plain.len()..], &plain));
        assert!(worst <= 1e-5, "{name}: output moved by {worst} at init");
        let model = perturb(model, &device);
        let adapted_out = host(model.logits(tokens(&device)));
        assert!(
            max_diff(&adapted_out, &out) > 1e-3,
            "{name}: training moves it"
        );
        merges_exactly(&model, &name, &device);
    }
}

/// Trainable counts as PEFT's: GraLoRA (r + hybrid_r)(in + out) whatever
/// k; RandLoRA nb (r + min(in, out)) with nb = ⌈min / r⌉; LoRA-GA LoRA's.
#[test]
fn the_new_methods_count_as_peft_does() {
    let device = device();
    let c = config();
    let head = c.d_model * c.vocab + c.vocab;
    let io = [(8, 8), (8, 8), (8, 8), (8, 8), (8, 16), (16, 8)];
    let per_block = |f: &dyn Fn(usize, usize) -> usize| -> usize {
        io.iter().map(|&(i, o)| f(i, o)).sum::<usize>() * c.n_layers + head
    };
    let want = [
        per_block(&|i, o| 4 * (i + o)),
        per_block(&|i, o| 6 * (i + o)),
        per_block(&|i, o| i.min(o) * (1 + i.min(o))),
        per_block(&|i, o| i.min(o).div_ceil(3) * (3 + i.min(o))),
        per_block(&|i, o| 2 * (i + o)),
    ];
    let base_total = base(&device).num_params();
    for ((name, model), want) in variants(&[0], &device).into_iter().zip(want) {
        assert_eq!(model.trainable_per_member(), want, "{name}");
        // The frozen base plus what trains; RandLoRA's bases are buffers.
        assert_eq!(
            model.total_per_member(),
            base_total + want - head,
            "{name} total"
        );
    }
}

/// GraLoRA draws A per member seed; RandLoRA's bases are shared by every
/// member and layer (Λ = 0, Γ = 1/min at the start, as PEFT's).
#[test]
fn members_of_the_new_methods() {
    let device = device();
    let all = variants(&[5, 6], &device);
    let gralora = &all[0].1;
    let a = host(gralora.blocks[0].get(Q).unwrap().a.val());
    let half = a.len() / 2;
    assert!(
        max_diff(&a[..half], &a[half..]) > 1e-3,
        "seeds draw their own A"
    );
    let randlora = &all[2].1;
    let layer = randlora.blocks[1].get(MLP_UP).unwrap();
    let bases = layer.bases.as_ref().unwrap();
    assert_eq!(bases.a.dims(), [1, 1, 8], "[1, r, min]");
    assert_eq!(bases.b.dims(), [1, 16, 8], "[1, max, nb r]");
    let first = randlora.blocks[0].get(K).unwrap().bases.as_ref().unwrap();
    assert_eq!(
        host(first.a.val()),
        host(bases.a.val()),
        "one A for every layer"
    );
    assert!(host(layer.a.val()).iter().all(|&x| x == 0.0), "Λ = 0");
    assert!(
        host(layer.b.val()).iter().all(|&x| x == 1.0 / 8.0),
        "Γ = 1/min"
    );
}

#[test]
fn bad_options_of_the_new_methods_are_named() {
    let device = device();
    let err = |config: LoraConfig| {
        PeftModel::new(base(&device), &config, &[0])
            .unwrap_err()
            .to_string()
    };
    let mut c = LoraConfig::new(Method::Gralora, 4);
    c.gralora_k = 3;
    assert!(
        err(c.clone()).starts_with("gralora_k = 3: a number of blocks >= 1 that divides r = 4")
    );
    c.gralora_k = 0;
    assert!(err(c.clone()).starts_with("gralora_k = 0"));
    let mut c = LoraConfig::new(Method::Gralora, 16);
    c.gralora_k = 16;
    assert!(
        err(c).contains("divides the sizes of every targeted linear (q: 8 -> 8)"),
        "a block count above the sizes"
    );
    let mut c = LoraConfig::new(Method::Lora, 2);
    c.hybrid_r = 2;
    assert!(err(c).starts_with("hybrid_r = 2: 0 for a method other than gralora"));
    let mut c = LoraConfig::new(Method::Randlora, 2);
    c.randlora_alpha = Some(0.0);
    assert!(err(c).starts_with("randlora_alpha = 0: a finite number > 0"));
    let mut c = LoraConfig::new(Method::LoraGa, 2);
    c.lora_ga.direction = "Ar".into();
    assert!(err(c.clone()).starts_with("lora_ga.direction = \"Ar\": ArB2r, A2rBr, ArBr, random"));
    c.lora_ga.direction = "ArB2r".into();
    c.lora_ga.scale = "big".into();
    assert!(err(c.clone()).starts_with("lora_ga.scale = \"big\""));
    c.lora_ga.scale = "stable".into();
    assert_eq!(
        err(c.clone()),
        "lora_ga needs the loss gradient at block 0 linear q (no gradient was given)"
    );
    c.r = 5;
    assert!(err(c).starts_with("r = 5: at most min(in, out) / 2 = 4 for lora_ga"));
}

/// PEFT's sparse RandLoRA bases: ternary (−1, 0, 1 before the division by
/// their standard deviation), each sign with probability 1/(2s).
#[test]
fn sparse_randlora_bases_are_ternary() {
    for (sparsity, zeros) in [(3.0, 2.0 / 3.0), (8f64.sqrt(), 1.0 - 1.0 / 8f64.sqrt())] {
        let bases = peft::init::SharedBases::new(0, 2, (64, 32), Some(sparsity));
        let values: Vec<f32> = bases.a.iter().chain(&bases.b).copied().collect();
        let mut distinct: Vec<f32> = values.clone();
        distinct.sort_by(f32::total_cmp);
        distinct.dedup();
        assert!(
            distinct.len() <= 5,
            "two bases, each {{-c, 0, c}}: {distinct:?}"
        );
        let share = values.iter().filter(|&&x| x == 0.0).count() as f64 / values.len() as f64;
        assert!(
            (share - zeros).abs() < 0.06,
            "s = {sparsity}: {share} zeros"
        );
    }
    let dense = peft::init::SharedBases::new(0, 2, (64, 32), None);
    assert!(dense.a.iter().all(|&x| x != 0.0));
}

/// LoRA-GA's `random` direction takes the same r of the gradient's first
/// 2r singular pairs for A and B: the update's singular values are r of
/// the gradient's first 2r, times the `stable` factor.
#[test]
fn lora_ga_random_takes_r_of_the_first_2r_pairs() {
    let device = device();
    let grads = gradients(&base(&device), &device);
    let mut config = LoraConfig::new(Method::LoraGa, 2);
    config.lora_ga.direction = "random".into();
    let model = PeftModel::with_gradients(base(&device), &config, &[0], &grads).unwrap();
    let site = LinearSite {
        layer: 1,
        module: MLP_UP,
    };
    let grad = grads[&site].clone().inner();
    let svd = |t: Tensor<2>| {
        let (_, s, _) = burn::linalg::svd::<2, 1>(t, 200);
        host(s.unsqueeze_dim::<2>(0))
    };
    let top = svd(grad.transpose());
    let layer = model.adapter(site).unwrap();
    let [_, d_in, d_out] = layer.delta_weight().dims();
    let delta = layer.delta_weight().inner().reshape([d_in, d_out]);
    // B is scaled by out^¼ / √16, the update by α / r = 1.
    let factor = (d_out as f32).powf(0.25) / 4.0;
    let got: Vec<f32> = svd(delta).into_iter().take(2).map(|s| s / factor).collect();
    for s in &got {
        assert!(
            top[..4].iter().any(|t| (t - s).abs() < 1e-4 * t.max(1.0)),
            "{s} is one of the first four singular values {:?}",
            &top[..4]
        );
    }
    assert!((got[0] - got[1]).abs() > 1e-4, "two distinct pairs");
}
