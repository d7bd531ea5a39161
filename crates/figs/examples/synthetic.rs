//! Draws every figure and the report for a made-up study the size of the
//! real grid (four adapters, four ranks, ten LRs, three seeds, full
//! fine-tuning), to look at layout without running an experiment:
//!
//! `cargo run -p figs --example synthetic -- /tmp/figs-demo`
//!
//! With `sparse` after the directory: two LRs, two ranks, one seed and a
//! NaN accuracy, the layout of a smoke run.

use std::path::PathBuf;

use figs::report::{ReportInput, render};
use figs::{FigureOptions, draw_figures};
use records::TrialRecord;

fn main() {
    let out = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "figs-demo".to_string()),
    );
    let sparse = std::env::args().nth(2).is_some_and(|a| a == "sparse");
    let lrs: Vec<f64> = if sparse {
        vec![1e-4, 1e-3]
    } else {
        (0..10).map(|i| 1e-6 * 10f64.powf(i as f64 * 0.4)).collect()
    };
    let ranks: &[usize] = if sparse { &[4, 8] } else { &[4, 8, 16, 32] };
    let seeds = if sparse { 1 } else { 3 };
    let methods = [
        ("lora", 0.0, 0.0),
        ("dora", -0.3, -0.01),
        ("pissa_seed", -0.7, -0.02),
        ("milora_seed", 0.2, 0.005),
    ];
    let mut trials = Vec::new();
    let mut push = |method: &str, rank: usize, lr: f64, seed: u64, acc: f64| {
        let mut t = TrialRecord::synthetic(method, rank, lr, seed, acc);
        (t.experiment, t.steps, t.diverged) = ("demo".into(), 100, acc < 0.3);
        trials.push(t)
    };
    let noise = |s: u64, i: usize| ((s as f64 * 7.3 + i as f64 * 3.1).sin()) * 0.012;
    for (method, shift, offset) in methods {
        for (k, &rank) in ranks.iter().enumerate() {
            let best = -3.6 + shift - 0.25 * k as f64;
            for (i, &lr) in lrs.iter().enumerate() {
                for seed in 0..seeds {
                    let d = lr.log10() - best;
                    let acc = (0.9 + offset + 0.01 * k as f64 - 0.12 * d * d).max(0.1);
                    let acc = if sparse && method == "dora" && i == 0 {
                        f64::NAN
                    } else {
                        acc + noise(seed, i)
                    };
                    push(method, rank, lr, seed, acc);
                }
            }
        }
    }
    for (i, &lr) in lrs.iter().enumerate() {
        for seed in 0..seeds {
            let d = lr.log10() + 4.4;
            push(
                "full",
                0,
                lr,
                seed,
                (0.93 - 0.12 * d * d).max(0.1) + noise(seed, i),
            );
        }
    }
    let written = draw_figures(
        &trials,
        &FigureOptions::new(&out, if sparse { 8 } else { 16 }),
    )
    .expect("figures");
    let figures = written
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "png"))
        .map(|p| p.strip_prefix(&out).unwrap().to_path_buf())
        .collect();
    let md = render(&ReportInput {
        experiment: "demo".into(),
        description: "A made-up study to check the layout of figures and report.".into(),
        config_hash: "demo".into(),
        config_toml: "[study]\nname = \"demo\"".into(),
        wall_seconds: 4000.0,
        trials,
        figures,
        comparison: None,
        sharpness: None,
        sharpness_after: Vec::new(),
        language_model: None,
    });
    std::fs::write(out.join("REPORT.md"), md).expect("report");
    for p in written {
        println!("{}", p.display());
    }
}
