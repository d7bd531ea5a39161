//! `lrscape params`: one JSON line per (method, rank), closed-form counts.

use std::process::Command;

fn lrscape(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_lrscape"))
        .args(args)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .output()
        .expect("lrscape runs")
}

#[test]
fn params_prints_closed_form_counts() {
    let run = lrscape(&[
        "params",
        "--config",
        "configs/default.toml",
        "--methods",
        "lora,dora,full",
        "--ranks",
        "1,8",
    ]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&run.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2 + 2 + 1, "full fine-tuning has no rank axis");
    let (d, ff, vocab, layers) = (128usize, 256usize, 64usize, 3usize);
    let head = d * vocab + vocab;
    let base = vocab * d + 32 * d + layers * (4 * d * d + 2 * d * ff + ff + d + 2 * d) + d + head;
    for line in &lines {
        let rank = line["rank"].as_u64().unwrap() as usize;
        let lora = layers * rank * (4 * 2 * d + 2 * (d + ff));
        let expected = match line["method"].as_str().unwrap() {
            "lora" => lora + head,
            "dora" => lora + layers * (4 * d + ff + d) + head,
            "full" => base,
            other => panic!("{other}"),
        };
        assert_eq!(
            line["trainable"].as_u64().unwrap() as usize,
            expected,
            "{line}"
        );
        let total = line["total"].as_u64().unwrap() as f64;
        let percent = line["percent"].as_f64().unwrap();
        assert!((percent - 100.0 * expected as f64 / total).abs() < 1e-9);
    }
}

#[test]
fn params_rejects_bad_flags() {
    for (args, expected) in [
        (
            vec!["params", "--methods", "lora,foo"],
            "unknown method \"foo\"",
        ),
        (vec!["params", "--ranks", "0"], "ranks must be at least 1"),
        (
            vec!["params", "--ranks", "129"],
            "r = 129: at most min(in, out) = 128",
        ),
        (
            vec!["params", "--targets", "gate"],
            "target_modules = \"gate\"",
        ),
    ] {
        let run = lrscape(&args);
        assert!(!run.status.success());
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(
            stderr.contains(expected) && !stderr.contains("panicked"),
            "{args:?}: {stderr}"
        );
    }
}

#[test]
fn params_counts_the_configs_grid_by_default() {
    let run = lrscape(&["params", "--config", "configs/quick.toml"]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let cells: Vec<(String, u64)> = String::from_utf8_lossy(&run.stdout)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                v["method"].as_str().unwrap().to_string(),
                v["rank"].as_u64().unwrap(),
            )
        })
        .collect();
    // quick.toml: lora, dora, pissa at ranks 2 and 4, and full fine-tuning.
    let expected: Vec<(String, u64)> = ["lora", "dora", "pissa"]
        .iter()
        .flat_map(|m| [2, 4].map(|r| (m.to_string(), r)))
        .chain([("full".to_string(), 0)])
        .collect();
    assert_eq!(cells, expected);
}

#[test]
fn commands_that_do_not_compute_take_no_device_or_out() {
    for args in [
        vec!["status", "--device", "flex"],
        vec!["report", "--device", "flex"],
        vec!["merge", "--device", "flex"],
        vec!["params", "--out", "x"],
    ] {
        let run = lrscape(&args);
        assert!(!run.status.success(), "{args:?}");
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(stderr.contains("unexpected argument"), "{args:?}: {stderr}");
    }
}
