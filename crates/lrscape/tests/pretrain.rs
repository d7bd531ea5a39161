//! `lrscape pretrain` end to end on configs/quick.toml, and loading the base.

use std::path::{Path, PathBuf};
use std::process::Command;
use tinyformer::TinyformerConfig;

use burn::tensor::Device;
use sweep::ExperimentConfig;
use sweep::pretrain::{base_dir, load_base, pretrain_data};
use train::evaluate;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn lrscape(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_lrscape"))
        .args(args)
        .current_dir(workspace())
        .output()
        .expect("lrscape runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn pretrain_quick_learns_saves_and_reloads_to_the_same_accuracy() {
    let out = tempfile::tempdir().unwrap();
    let out_arg = out.path().to_str().unwrap();
    let run = lrscape(&[
        "pretrain",
        "--config",
        "configs/quick.toml",
        "--out",
        out_arg,
    ]);
    assert!(run.status.success(), "stderr: {}", text(&run.stderr));
    let stdout = text(&run.stdout);
    assert!(stdout.contains("pretrained quick: val_acc"), "{stdout}");

    let config = ExperimentConfig::<TinyformerConfig>::from_toml_file(
        &workspace().join("configs/quick.toml"),
    )
    .unwrap();
    let device = Device::flex();
    let (model, record) = load_base(&config, out.path(), &device).unwrap();
    assert!(
        record.val_accuracy >= 0.95,
        "quick pre-training reached {}",
        record.val_accuracy
    );
    assert!(!record.diverged);
    assert_eq!(record.config_hash, config.pretrain_hash());
    assert_eq!(
        record.train_loss.len(),
        config.pretrain.as_ref().unwrap().epochs
    );
    assert_eq!(record.provenance.backend, "flex");

    let (_, val) = pretrain_data(&config).unwrap();
    let eval = evaluate(&model, &val, 256, &device);
    assert_eq!(
        eval.accuracy[0], record.val_accuracy,
        "reloaded base evaluates the same"
    );

    // A second run finds the cached base instead of training again.
    let again = lrscape(&[
        "pretrain",
        "--config",
        "configs/quick.toml",
        "--out",
        out_arg,
    ]);
    assert!(again.status.success());
    assert!(
        text(&again.stdout).contains("already at"),
        "{}",
        text(&again.stdout)
    );

    // A base recorded under another hash is refused with a message saying why.
    let meta = base_dir(out.path(), &config).join("base.json");
    let tampered = std::fs::read_to_string(&meta)
        .unwrap()
        .replace(&config.pretrain_hash(), "0000000000000000");
    std::fs::write(&meta, tampered).unwrap();
    let err = load_base(&config, out.path(), &device)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("belongs to config hash 0000000000000000"),
        "{err}"
    );

    std::fs::write(
        &meta,
        std::fs::read_to_string(&meta)
            .unwrap()
            .replace("0000000000000000", &config.pretrain_hash()),
    )
    .unwrap();
    // One flipped byte in the weights (the header intact) is refused by its
    // checksum, by the loader and by `lrscape pretrain` alike.
    let model_path = base_dir(out.path(), &config).join("model.bpk");
    let mut bytes = std::fs::read(&model_path).unwrap();
    let at = bytes.len() - 100;
    bytes[at] ^= 0x40;
    std::fs::write(&model_path, &bytes).unwrap();
    let err = load_base(&config, out.path(), &device)
        .unwrap_err()
        .to_string();
    assert!(err.contains("model.bpk is damaged"), "{err}");
    let kept = lrscape(&[
        "pretrain",
        "--config",
        "configs/quick.toml",
        "--out",
        out_arg,
    ]);
    assert!(!kept.status.success(), "{}", text(&kept.stdout));
    assert!(
        text(&kept.stderr).contains("is damaged"),
        "{}",
        text(&kept.stderr)
    );

    // A checkpoint from before checksums that does not fit the model is an
    // error, not a panic.
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&meta).unwrap()).unwrap();
    let mut record = record.as_object().unwrap().clone();
    assert!(
        record.remove("model_sha256").is_some(),
        "the base records its checksum"
    );
    std::fs::write(&meta, serde_json::to_string(&record).unwrap()).unwrap();
    std::fs::write(
        base_dir(out.path(), &config).join("model.bpk"),
        b"not a checkpoint",
    )
    .unwrap();
    let err = load_base(&config, out.path(), &device)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("cannot load") && err.contains("model.bpk"),
        "{err}"
    );
}

#[test]
fn a_diverged_pretraining_is_an_error_and_never_cached() {
    let out = tempfile::tempdir().unwrap();
    let text_config = std::fs::read_to_string(workspace().join("configs/quick.toml"))
        .unwrap()
        .replace("lr = 3e-3", "lr = 1e300");
    let path = out.path().join("diverging.toml");
    std::fs::write(&path, text_config).unwrap();
    let run = lrscape(&[
        "pretrain",
        "--config",
        path.to_str().unwrap(),
        "--out",
        out.path().to_str().unwrap(),
    ]);
    assert!(!run.status.success());
    assert!(
        text(&run.stderr).contains("pre-training diverged"),
        "{}",
        text(&run.stderr)
    );
    let config = ExperimentConfig::<TinyformerConfig>::from_toml_file(&path).unwrap();
    assert!(
        !base_dir(out.path(), &config).join("base.json").exists(),
        "cached"
    );
}

#[test]
fn bad_input_gets_one_clear_error() {
    let cases: [(&[&str], &str); 7] = [
        (
            &[
                "slurm",
                "--config",
                "configs/quick.toml",
                "--shards",
                "100",
                "--out",
                "/tmp/lrscape-slurm-never-written",
            ],
            "--shards 100: at most 7, the cells of quick",
        ),
        (
            &["pretrain", "--config", "configs/missing.toml"],
            "cannot read config configs/missing.toml",
        ),
        (
            &[
                "pretrain",
                "--config",
                "configs/quick.toml",
                "--device",
                "tpu",
            ],
            "unknown backend \"tpu\"",
        ),
        (
            &[
                "pretrain",
                "--config",
                "configs/quick.toml",
                "--pretrain-epochs",
                "0",
            ],
            "pretrain.epochs = 0",
        ),
        (
            &["pretrain", "--pretrain-epochs", "ten"],
            "invalid value 'ten'",
        ),
        (
            &["run", "--config", "configs/quick.toml", "--lrs", "-1"],
            "--lrs: \"-1\" is not a learning rate",
        ),
        (
            &["run", "--config", "configs/quick.toml", "--lrs", "1e-3,inf"],
            "--lrs: \"inf\" is not a learning rate",
        ),
    ];
    for (args, expected) in cases {
        let run = lrscape(args);
        assert!(!run.status.success(), "{args:?} should fail");
        let stderr = text(&run.stderr);
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?} panicked: {stderr}");
    }
    assert!(!std::path::Path::new("/tmp/lrscape-slurm-never-written").exists());
}

#[test]
fn a_bad_config_file_names_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    let quick = std::fs::read_to_string(workspace().join("configs/quick.toml")).unwrap();
    std::fs::write(&path, quick.replace("k_finetune = 11", "k_finetune = 99")).unwrap();
    let run = lrscape(&["pretrain", "--config", path.to_str().unwrap()]);
    assert!(!run.status.success());
    let stderr = text(&run.stderr);
    assert!(
        stderr.contains("task.k_finetune = 99: a position below model.seq_len = 16"),
        "{stderr}"
    );
}

#[test]
fn sizes_no_machine_holds_are_refused_before_anything_is_allocated() {
    let dir = tempfile::tempdir().unwrap();
    let quick = std::fs::read_to_string(workspace().join("configs/quick.toml")).unwrap();
    for (from, to) in [
        ("vocab = 16", "vocab = 4000000000"),
        ("seq_len = 16", "seq_len = 100000000"),
        (
            "n_finetune_val = 500",
            "n_finetune_val = 9223372036854775807",
        ),
    ] {
        assert!(quick.contains(from), "{from}");
        let path = dir.path().join("huge.toml");
        std::fs::write(&path, quick.replace(from, to)).unwrap();
        let out = dir.path().join("out");
        for command in ["run", "pretrain"] {
            let run = lrscape(&[
                command,
                "--config",
                path.to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
            ]);
            let stderr = text(&run.stderr);
            assert_eq!(run.status.code(), Some(1), "{to}: {stderr}");
            assert!(
                stderr.contains("the study needs about") && !stderr.contains("panicked"),
                "{to}: {stderr}"
            );
        }
    }
    let run = lrscape(&[
        "run",
        "--config",
        "configs/quick.toml",
        "--finetune-epochs",
        "9223372036854775807",
        "--out",
        dir.path().join("steps").to_str().unwrap(),
    ]);
    let stderr = text(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("member-steps"), "{stderr}");
}
