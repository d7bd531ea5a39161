//! The real-text study (configs/real-text.toml): its corpus, split by
//! tools/data/kjv.py from Debian's `bible-kjv`, is the same bytes every
//! time; and the study's config, shrunk to the Genesis fixtures, runs whole.

mod common;

use std::process::Command;

use common::{only_entry, root, stderr, study, succeeded, trials};
use sha2::Digest;

/// SHA-256 of what tools/data/kjv.py writes from bible-kjv 4.x.
const PARTS: [(&str, &str); 8] = [
    (
        "ot-train.txt",
        "c81c47ed870bc26cf53cf62e2cb7f521f2e3a64b025710e810f5a4e91b016b83",
    ),
    (
        "ot-val.txt",
        "00b39018ae7af7743b308ba7d2f8b1e325d9d25d14e1a8eaee64ff757e84908d",
    ),
    (
        "gospels-train.txt",
        "4409beb0db4a3d855ec4796add3cb1d34aced1ea8b9e9238ee23bce4b9e79d26",
    ),
    (
        "gospels-val.txt",
        "76b9885c00e7530423acc65e58df84d566dac056c3fdbfbe8f1dafe669f435b7",
    ),
    (
        "genre-train.jsonl",
        "bca45cc8a70a60799ab41e93eee646203f82b8ecf3a737072f9fc81b76b367cf",
    ),
    (
        "genre-val.jsonl",
        "3e04fa5387d638171e268a8b06a363684ccf02ed63178ff4ea999d9d217cfc9a",
    ),
    (
        "genre-pretrain-train.txt",
        "bc9de4537344d3cf063392b63d9fbcdf95eb4ff2e954918a0f153312c0244211",
    ),
    (
        "genre-pretrain-val.txt",
        "df8058a3aba9a5824e79bf83f7e9f77961758274530d186ed346ecda46135131",
    ),
];

/// Whether the `bible` command is here; under CI (which installs
/// bible-kjv) its absence is a failure, elsewhere the test says so and
/// passes.
fn has_bible() -> bool {
    let found = Command::new("sh")
        .args(["-c", "command -v bible"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI: no `bible` command (apt-get install bible-kjv; .ci/run does)"
        );
        eprintln!("skipped: no `bible` command (apt-get install bible-kjv)");
    }
    found
}

#[test]
fn the_kjv_split_is_the_same_bytes_every_time() {
    if !has_bible() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new("python3")
        .arg("tools/data/kjv.py")
        .arg(dir.path())
        .current_dir(root())
        .output()
        .expect("python3 runs");
    assert!(out.status.success(), "{}", stderr(&out));
    for (name, want) in PARTS {
        let bytes = std::fs::read(dir.path().join(name)).unwrap();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert_eq!(hex::encode(sha2::Sha256::digest(&bytes)), want, "{name}");
        // One verse per line, no verse numbers left.
        assert!(!text.lines().any(|l| l.is_empty()), "{name}");
        assert!(!text.contains("Ge1:1") && !text.contains("Mt1:1"), "{name}");
    }
    let first = std::fs::read_to_string(dir.path().join("ot-train.txt")).unwrap();
    assert!(first.starts_with("In the beginning God created the heaven and the earth.\n"));
    let gospels = std::fs::read_to_string(dir.path().join("gospels-train.txt")).unwrap();
    assert!(gospels.starts_with("The book of the generation of Jesus Christ"));

    // The genre task keeps books apart: no verse of a validation book is a
    // training verse, and the pre-training books share only formulas
    // repeated across books ("And the LORD spake unto Moses, saying,").
    let verses = |name: &str| -> std::collections::BTreeSet<String> {
        let text = std::fs::read_to_string(dir.path().join(name)).unwrap();
        if name.ends_with(".jsonl") {
            text.lines()
                .map(|l| {
                    let row: serde_json::Value = serde_json::from_str(l).unwrap();
                    row["text"].as_str().unwrap().to_string()
                })
                .collect()
        } else {
            text.lines().map(str::to_string).collect()
        }
    };
    let (train, val) = (verses("genre-train.jsonl"), verses("genre-val.jsonl"));
    let pretrain: std::collections::BTreeSet<String> = verses("genre-pretrain-train.txt")
        .into_iter()
        .chain(verses("genre-pretrain-val.txt"))
        .collect();
    assert_eq!(train.intersection(&val).count(), 0);
    assert!(train.intersection(&pretrain).count() <= 2);
    assert_eq!(val.intersection(&pretrain).count(), 0);
    // Seven genres, balanced: 240 training and 120 validation verses each.
    let labels = |name: &str| -> Vec<u64> {
        let text = std::fs::read_to_string(dir.path().join(name)).unwrap();
        text.lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["label"]
                    .as_u64()
                    .unwrap()
            })
            .collect()
    };
    for (name, per) in [("genre-train.jsonl", 240), ("genre-val.jsonl", 120)] {
        let labels = labels(name);
        for genre in 0..7 {
            assert_eq!(
                labels.iter().filter(|&&l| l == genre).count(),
                per,
                "{name} {genre}"
            );
        }
    }
}

/// configs/real-text.toml with its texts replaced by the Genesis fixtures
/// and its model shrunk: every method and rank of the study, two learning
/// rates, one seed.
#[test]
fn the_real_text_config_runs_whole_on_a_small_text() {
    let dir = tempfile::tempdir().unwrap();
    let fixtures = root().join("fixtures/text").display().to_string();
    let text = std::fs::read_to_string(root().join("configs/real-text.toml"))
        .unwrap()
        .replace("../data/kjv/ot-", &format!("{fixtures}/genesis-"))
        .replace("../data/kjv/gospels-", &format!("{fixtures}/genesis-"))
        .replace("vocab_size = 1024", "vocab_size = 300")
        .replace("n_embd = 64", "n_embd = 16")
        .replace("n_positions = 64", "n_positions = 32")
        .replace("block_size = 64", "block_size = 32")
        .replace("seeds = [0, 1, 2]", "seeds = [0]");
    // Two learning rates: the grid's first and last lines.
    let (head, rest) = text.split_once("lrs = [").unwrap();
    let (_, tail) = rest.split_once(']').unwrap();
    let text = format!("{head}lrs = [1e-2, 1e-3]{tail}");
    assert!(!text.contains("\"../data/kjv/"), "{text}");
    let config = dir.path().join("real-text.toml");
    std::fs::write(&config, text).unwrap();
    let out = dir.path().join("out");
    succeeded(study("run", &config, &out));
    // Six adapter methods at two ranks and full fine-tuning, two LRs each.
    assert_eq!(trials(&out).len(), (6 * 2 + 1) * 2);
    succeeded(study("report", &config, &out));
    let report = std::fs::read_to_string(out.join("REPORT.md")).unwrap();
    assert!(report.contains("perplexity"), "{report}");
    let hf = only_entry(&out.join("base")).join("hf/tokenizer.json");
    assert!(hf.is_file(), "{hf:?}");
}
