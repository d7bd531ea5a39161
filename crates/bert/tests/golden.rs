//! DistilBERT and BERT classifiers against `transformers` (fixtures/bert,
//! made by tools/golden/bert_golden.py from random tiny checkpoints): class
//! logits and loss on a batch with padding, as saved and after lrscape
//! saved them again; the padding a batch adds changes nothing; a
//! population shares one base; bad checkpoints are named.

use std::path::{Path, PathBuf};

use bert::{BertForSequenceClassification, hf};
use burn::module::Module;
use burn::tensor::{Device, Int, Tensor, TensorData};
use nn::{Adaptable, LinearHook, LinearSite, PopulationModel};
use serde_json::Value;

const CLASSIFIERS: [&str; 2] = ["tiny-distilbert-classifier", "tiny-bert-classifier"];

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/bert")
}

fn golden() -> Value {
    let text = std::fs::read_to_string(fixtures().join("golden.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// The golden batch as `[1, B, T]` (padded with the pad id 0), and its
/// labels.
fn batch(device: &Device) -> (Tensor<3, Int>, Vec<usize>) {
    let rows: Vec<Vec<i64>> = serde_json::from_value(golden()["input_ids"].clone()).unwrap();
    let labels: Vec<usize> = serde_json::from_value(golden()["labels"].clone()).unwrap();
    let (b, t) = (rows.len(), rows[0].len());
    let flat: Vec<i64> = rows.iter().flatten().copied().collect();
    (
        Tensor::from_data(TensorData::new(flat, [1, b, t]), device),
        labels,
    )
}

/// Mean cross-entropy of `logits: [B, classes]` against `labels`, in f64.
fn loss(logits: &[f32], labels: &[usize]) -> f64 {
    let classes = logits.len() / labels.len();
    labels
        .iter()
        .enumerate()
        .map(|(b, &label)| {
            let row = &logits[b * classes..(b + 1) * classes];
            let max = row.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x)) as f64;
            let sum: f64 = row.iter().map(|&x| (x as f64 - max).exp()).sum();
            max + sum.ln() - row[label] as f64
        })
        .sum::<f64>()
        / labels.len() as f64
}

/// `got` within 1e-5 of `want`'s scale (f32 sums of this size differ from
/// PyTorch's in the sixth digit).
fn assert_near(got: &[f32], want: &[f32], entry: &str) {
    assert_eq!(got.len(), want.len(), "{entry}");
    let scale = want.iter().fold(1.0f32, |m, x| m.max(x.abs()));
    let worst = got
        .iter()
        .zip(want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(
        worst < 1e-5 * scale,
        "{entry}: logits differ by {worst} (scale {scale})"
    );
}

fn load(dir: &Path) -> BertForSequenceClassification {
    hf::load_classifier(dir, 3, &Device::default()).unwrap().1
}

/// `model`'s logits and loss against the golden entry `entry`.
fn check(model: &BertForSequenceClassification, entry: &str) {
    let (tokens, labels) = batch(&Device::default());
    let logits = model.forward(tokens);
    assert_eq!(logits.dims(), [1, 3, 3], "{entry}");
    let got: Vec<f32> = logits.into_data().try_to_vec().unwrap();
    let expected = &golden()["models"][entry];
    let want: Vec<f32> = serde_json::from_value(expected["logits"]["data"].clone()).unwrap();
    assert_near(&got, &want, entry);
    let want_loss = expected["loss"].as_f64().unwrap();
    let got_loss = loss(&got, &labels);
    assert!(
        (got_loss - want_loss).abs() < 1e-5,
        "{entry}: loss {got_loss} vs {want_loss}"
    );
}

#[test]
fn classifiers_match_transformers_with_padding_in_the_batch() {
    let mask: Vec<Vec<u8>> = serde_json::from_value(golden()["attention_mask"].clone()).unwrap();
    assert!(
        mask.iter().any(|row| row.contains(&0)),
        "the batch pads a text"
    );
    for name in CLASSIFIERS {
        check(&load(&fixtures().join(name)), name);
    }
}

const MASKED_LMS: [&str; 2] = ["tiny-distilbert", "tiny-bert"];

/// A masked LM's logits at every position against the golden entry.
fn check_masked_lm(model: &bert::BertForMaskedLM, entry: &str) {
    let (tokens, _) = batch(&Device::default());
    let logits = model.forward(tokens);
    assert_eq!(logits.dims(), [1, 3 * 16, 256], "{entry}");
    let got: Vec<f32> = logits.into_data().try_to_vec().unwrap();
    let want: Vec<f32> =
        serde_json::from_value(golden()["models"][entry]["logits"]["data"].clone()).unwrap();
    assert_near(&got, &want, entry);
}

#[test]
fn masked_lms_match_transformers_and_save_the_same_keys() {
    for name in MASKED_LMS {
        let dir = fixtures().join(name);
        let (config, model) = hf::load_masked_lm(&dir, &Device::default()).unwrap();
        check_masked_lm(&model, name);
        let out = tempfile::tempdir().unwrap();
        hf::save_masked_lm(&model, &config, out.path()).unwrap();
        check_masked_lm(
            &hf::load_masked_lm(out.path(), &Device::default())
                .unwrap()
                .1,
            name,
        );
        let keys = |path: &Path| -> Vec<String> {
            let mut keys: Vec<String> = nn::safetensors_io::read_file(path)
                .unwrap()
                .into_keys()
                .collect();
            keys.sort();
            keys
        };
        assert_eq!(
            keys(&out.path().join(hf::WEIGHTS)),
            keys(&dir.join(hf::WEIGHTS)),
            "{name}"
        );
    }
}

#[test]
fn saved_and_read_again_the_numbers_and_keys_are_the_same() {
    for name in CLASSIFIERS {
        let dir = fixtures().join(name);
        let (config, model) = hf::load_classifier(&dir, 3, &Device::default()).unwrap();
        let out = tempfile::tempdir().unwrap();
        hf::save_classifier(&model, &config, out.path()).unwrap();
        check(&load(out.path()), name);
        let keys = |path: &Path| -> Vec<String> {
            let mut keys: Vec<String> = nn::safetensors_io::read_file(path)
                .unwrap()
                .into_keys()
                .collect();
            keys.sort();
            keys
        };
        assert_eq!(
            keys(&out.path().join(hf::WEIGHTS)),
            keys(&dir.join(hf::WEIGHTS)),
            "{name}"
        );
        let written: Value =
            serde_json::from_str(&std::fs::read_to_string(out.path().join(hf::CONFIG)).unwrap())
                .unwrap();
        let read: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join(hf::CONFIG)).unwrap()).unwrap();
        assert_eq!(written, read, "{name}: config.json as read");
    }
}

#[test]
fn more_padding_changes_no_logit() {
    // Padding is ignored by attention: the same texts padded further give
    // the same class logits.
    let device = Device::default();
    let (tokens, _) = batch(&device);
    for name in CLASSIFIERS {
        let model = load(&fixtures().join(name));
        let padded = Tensor::cat(
            vec![tokens.clone(), Tensor::<3, Int>::zeros([1, 3, 5], &device)],
            2,
        );
        let a: Vec<f32> = model
            .forward(tokens.clone())
            .into_data()
            .try_to_vec()
            .unwrap();
        let b: Vec<f32> = model.forward(padded).into_data().try_to_vec().unwrap();
        for (x, y) in a.iter().zip(&b) {
            assert!((x - y).abs() < 1e-5, "{name}: {a:?} vs {b:?}");
        }
    }
}

/// Scales every adaptable linear's output of member `m` by `1 + m / 10`.
struct Shift {
    members: usize,
    sites: std::cell::RefCell<Vec<LinearSite>>,
}

impl LinearHook for Shift {
    fn linear(&self, site: LinearSite, base: &nn::PopLinear, x: Tensor<4>) -> Tensor<4> {
        self.sites.borrow_mut().push(site);
        let scales: Vec<f32> = (0..self.members).map(|m| 1.0 + m as f32 * 0.1).collect();
        let scales = Tensor::<1>::from_data(TensorData::new(scales, [self.members]), &x.device());
        base.forward(x) * scales.reshape([self.members, 1, 1, 1])
    }
}

#[test]
fn a_population_shares_the_base_and_the_hook_reaches_every_linear() {
    let device = Device::default();
    let (tokens, _) = batch(&device);
    for name in CLASSIFIERS {
        let model = load(&fixtures().join(name));
        let plain: Vec<f32> = model
            .forward(tokens.clone())
            .into_data()
            .try_to_vec()
            .unwrap();
        let hook = Shift {
            members: 2,
            sites: Default::default(),
        };
        let logits = model.forward_with(tokens.clone(), &hook);
        assert_eq!(logits.dims(), [2, 3, 3]);
        let values: Vec<f32> = logits.into_data().try_to_vec().unwrap();
        // Member 0's scale is 1: the plain model; member 1's differs.
        for (x, y) in values[..9].iter().zip(&plain) {
            assert!((x - y).abs() < 1e-6, "{name}");
        }
        assert!(
            values[9..]
                .iter()
                .zip(&plain)
                .any(|(x, y)| (x - y).abs() > 1e-4)
        );
        let layout = model.layout();
        let sites = hook.sites.borrow();
        assert_eq!(
            sites.len(),
            layout.n_layers * layout.modules.len() + layout.heads.len(),
            "{name}"
        );
        for &site in sites.iter() {
            assert!(model.linear(site).is_some(), "{name}: {site}");
        }
        assert_eq!(
            model.num_params(),
            load(&fixtures().join(name)).num_params()
        );
        let _ = model.logits(tokens.clone());
    }
}

#[test]
fn a_masked_lm_gets_a_new_head_and_bert_keeps_its_pooler() {
    let device = Device::default();
    let (tokens, _) = batch(&device);
    let a = load(&fixtures().join("tiny-distilbert"));
    let b = load(&fixtures().join("tiny-distilbert"));
    let (x, y): (Vec<f32>, Vec<f32>) = (
        a.forward(tokens.clone()).into_data().try_to_vec().unwrap(),
        b.forward(tokens.clone()).into_data().try_to_vec().unwrap(),
    );
    assert_eq!(x, y, "the new head is the same every time");
    let classifier = load(&fixtures().join("tiny-bert-classifier"));
    let saved: Vec<f32> = classifier
        .pooler
        .weight
        .val()
        .into_data()
        .try_to_vec()
        .unwrap();
    let file =
        nn::safetensors_io::read_file(&fixtures().join("tiny-bert-classifier").join(hf::WEIGHTS))
            .unwrap();
    let pooler: Vec<f32> = file["bert.pooler.dense.weight"].to_f32().unwrap();
    // [out, in] in the file, [in, out] here.
    let d = 32;
    for i in 0..d {
        for o in 0..d {
            assert_eq!(saved[i * d + o], pooler[o * d + i]);
        }
    }
}

#[test]
fn bad_checkpoints_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let err = |dir: &Path| {
        hf::load_classifier(dir, 3, &Device::default())
            .map(|_| ())
            .unwrap_err()
            .to_string()
    };
    assert!(err(&dir.path().join("none")).contains("no such directory"));
    let copy = dir.path().join("copy");
    std::fs::create_dir(&copy).unwrap();
    let source = fixtures().join("tiny-distilbert-classifier");
    std::fs::copy(source.join(hf::CONFIG), copy.join(hf::CONFIG)).unwrap();
    assert!(err(&copy).contains("model.safetensors"), "{}", err(&copy));
    // A tensor missing: named by its key.
    let mut tensors: std::collections::BTreeMap<String, TensorData> = Default::default();
    for (key, t) in nn::safetensors_io::read_file(&source.join(hf::WEIGHTS)).unwrap() {
        if key != "distilbert.transformer.layer.1.ffn.lin2.bias" {
            tensors.insert(key, TensorData::new(t.to_f32().unwrap(), t.shape.clone()));
        }
    }
    std::fs::write(
        copy.join(hf::WEIGHTS),
        nn::safetensors_io::to_bytes(&tensors).unwrap(),
    )
    .unwrap();
    let e = err(&copy);
    assert!(
        e.contains("no tensor transformer.layer.1.ffn.lin2.bias"),
        "{e}"
    );
}

/// What lrscape saves, `transformers` reads (`LRSCAPE_PYTHON`, else
/// `python3`) with the golden logits and loss. `cargo xtask ci` runs it
/// where python has transformers.
#[test]
#[ignore = "needs python with torch and transformers"]
fn transformers_loads_a_saved_directory() {
    for name in CLASSIFIERS.into_iter().chain(MASKED_LMS) {
        let dir = tempfile::tempdir().unwrap();
        if name.ends_with("classifier") {
            let (config, model) =
                hf::load_classifier(&fixtures().join(name), 3, &Device::default()).unwrap();
            hf::save_classifier(&model, &config, dir.path()).unwrap();
        } else {
            let (config, model) =
                hf::load_masked_lm(&fixtures().join(name), &Device::default()).unwrap();
            hf::save_masked_lm(&model, &config, dir.path()).unwrap();
        }
        let python = std::env::var("LRSCAPE_PYTHON").unwrap_or_else(|_| "python3".into());
        let out = std::process::Command::new(python)
            .arg(fixtures().join("../../tools/golden/check_saved.py"))
            .arg(dir.path())
            .arg(fixtures().join("golden.json"))
            .arg(name)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{name}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
