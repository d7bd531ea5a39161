//! The real-text study (configs/real-text.toml): its corpus, split by
//! tools/data/kjv.py from Debian's `bible-kjv`, is the same bytes every
//! time; and the study's config, shrunk to the Genesis fixtures, runs whole.

mod common;

use std::process::Command;

use common::{only_entry, root, stderr, study, succeeded, trials};
use sha2::Digest;

/// SHA-256 of what tools/data/kjv.py writes from bible-kjv 4.x.
const PARTS: [(&str, &str); 4] = [
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
