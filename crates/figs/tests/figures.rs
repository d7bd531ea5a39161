//! Figures and report from a small synthetic study: two adapter methods at
//! two ranks, full fine-tuning, four learning rates, three seeds. Every
//! expected number is recomputed here from the trials, independently of the
//! crate's own aggregation.

use std::path::{Path, PathBuf};

use figs::report::{ReportInput, render};
use figs::{FigureOptions, Format, draw_figures};
use records::TrialRecord;

const LRS: [f64; 4] = [1e-4, 3e-4, 1e-3, 3e-3];
const SEEDS: [u64; 3] = [0, 1, 2];
/// Two-sided 95% Student t for 2 degrees of freedom (three seeds), from a
/// printed table.
const T2: f64 = 4.3027;

fn trial(method: &str, rank: usize, lr: f64, seed: u64, acc: f64) -> TrialRecord {
    TrialRecord::synthetic(method, rank, lr, seed, acc)
}

/// (method, rank, base accuracy, best LR).
const CELLS: [(&str, usize, f64, f64); 5] = [
    ("lora", 4, 0.85, 1e-3),
    ("lora", 16, 0.88, 3e-4),
    ("dora", 4, 0.83, 3e-3),
    ("dora", 16, 0.87, 1e-3),
    ("full", 0, 0.90, 1e-4),
];

fn seed_offset(seed: u64) -> f64 {
    [-0.010, 0.004, 0.009][seed as usize]
}

fn study() -> Vec<TrialRecord> {
    let mut out = Vec::new();
    for (method, rank, base, best) in CELLS {
        for lr in LRS {
            for seed in SEEDS {
                let d = (lr / best).log10();
                let acc = base - 0.2 * d * d + seed_offset(seed);
                out.push(trial(method, rank, lr, seed, acc));
            }
        }
    }
    out
}

fn accs(trials: &[TrialRecord], method: &str, rank: usize, lr: f64) -> Vec<f64> {
    trials
        .iter()
        .filter(|t| t.method == method && t.rank == rank && t.lr == lr)
        .map(|t| t.val_accuracy)
        .collect()
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

/// Best (mean, half-width, lr) of a cell, recomputed by hand. Every trial
/// here has the same validation loss, so a tie of means goes to the
/// largest LR, as the code's rule (lowest loss, then largest LR) does.
fn best_by_hand(trials: &[TrialRecord], method: &str, rank: usize) -> (f64, f64, f64) {
    let mut best = (f64::NEG_INFINITY, 0.0, 0.0);
    for lr in LRS {
        let a = accs(trials, method, rank, lr);
        let m = mean(&a);
        if m >= best.0 {
            let sd = (a.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (a.len() - 1) as f64).sqrt();
            best = (m, T2 * sd / (a.len() as f64).sqrt(), lr);
        }
    }
    best
}

fn png_size(path: &Path) -> (u32, u32) {
    let decoder = png::Decoder::new(std::fs::File::open(path).unwrap());
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let frame = reader.next_frame(&mut buf).unwrap();
    let pixels = &buf[..frame.buffer_size()];
    // Not a blank canvas: some pixels are neither white nor black.
    let colored = pixels
        .chunks(3)
        .filter(|p| !(p[0] == p[1] && p[1] == p[2]))
        .count();
    assert!(colored > 1000, "{} looks blank", path.display());
    (frame.width, frame.height)
}

fn names(paths: &[PathBuf], root: &Path) -> Vec<String> {
    let mut n: Vec<String> = paths
        .iter()
        .map(|p| {
            p.strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/")
        })
        .collect();
    n.sort();
    n
}

#[test]
fn every_figure_is_a_valid_png_and_svg() {
    let dir = tempfile::tempdir().unwrap();
    let opts = FigureOptions::new(dir.path(), 16);
    assert_eq!(opts.formats, vec![Format::Png, Format::Svg]);
    let written = draw_figures(&study(), &opts).unwrap();
    let stems = [
        "raw/lr_sweep_parity",
        "raw/best_of_lr",
        "raw/heatmap_dora",
        "raw/heatmap_lora",
        "normalized/heatmap_normalized_dora",
        "normalized/heatmap_normalized_lora",
        "raw/best_of_lr_vs_rank",
        "normalized/shift_aligned",
        "raw/best_lr_vs_rank",
    ];
    let mut expected: Vec<String> = stems
        .iter()
        .flat_map(|s| [format!("figures/{s}.png"), format!("figures/{s}.svg")])
        .collect();
    expected.sort();
    assert_eq!(names(&written, dir.path()), expected);

    let titles = [
        (
            "raw/lr_sweep_parity",
            "Accuracy vs learning rate at rank 16",
        ),
        (
            "raw/best_of_lr",
            "Best accuracy over learning rates at rank 16",
        ),
        ("raw/heatmap_lora", "LoRA: validation accuracy over rank"),
        (
            "normalized/heatmap_normalized_dora",
            "DoRA: accuracy / best accuracy of its rank",
        ),
        (
            "raw/best_of_lr_vs_rank",
            "Best accuracy over learning rates vs rank",
        ),
        ("normalized/shift_aligned", "relative to each method"),
        ("raw/best_lr_vs_rank", "Best learning rate"),
    ];
    for (stem, title) in titles {
        let png = dir.path().join(format!("figures/{stem}.png"));
        assert_eq!(png_size(&png), (figs::WIDTH, figs::HEIGHT), "{stem}");
        assert_eq!((figs::WIDTH, figs::HEIGHT), (1000, 700));
        let svg = std::fs::read_to_string(dir.path().join(format!("figures/{stem}.svg"))).unwrap();
        assert!(
            svg.starts_with("<svg"),
            "{stem}: {}",
            &svg[..40.min(svg.len())]
        );
        assert!(svg.trim_end().ends_with("</svg>"), "{stem}");
        assert!(svg.contains(title), "{stem} lacks its title {title:?}");
        assert!(svg.contains("width=\"1000\"") && svg.contains("height=\"700\""));
    }
    // Legends and axes carry the paper's method names and units.
    let sweep =
        std::fs::read_to_string(dir.path().join("figures/raw/lr_sweep_parity.svg")).unwrap();
    for label in [
        "LoRA",
        "DoRA",
        "Full FT",
        "Learning rate (log scale)",
        "Validation accuracy",
    ] {
        assert!(sweep.contains(label), "lr_sweep_parity lacks {label:?}");
    }
}

#[test]
fn heatmap_values_are_means_over_seeds() {
    let trials = study();
    let curves = figs::curves(&trials);
    for method in ["lora", "dora"] {
        let h = figs::heatmap_data(&curves, method).unwrap();
        assert_eq!(h.ranks, vec![4, 16]);
        assert_eq!(h.lrs, LRS.to_vec());
        for (i, rank) in h.ranks.iter().enumerate() {
            for (j, lr) in h.lrs.iter().enumerate() {
                let expected = mean(&accs(&trials, method, *rank, *lr));
                assert!((h.values[i][j] - expected).abs() < 1e-12);
            }
        }
        let n = figs::normalized_heatmap(&h);
        for (row, raw) in n.values.iter().zip(&h.values) {
            let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            assert_eq!(max, 1.0);
            let raw_max = raw.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            for (v, r) in row.iter().zip(raw) {
                assert!((v - r / raw_max).abs() < 1e-12);
            }
        }
    }
    assert!(figs::heatmap_data(&curves, "pissa").is_none());
}

#[test]
fn shift_aligned_curves_peak_at_zero() {
    let trials = study();
    let curves = figs::curves(&trials);
    let aligned = figs::shift_aligned_data(&curves, 16);
    assert_eq!(aligned.len(), 3, "dora, full, lora at rank 16 / 0");
    for s in &aligned {
        let rank = s.rank;
        let (_, _, best_lr) = best_by_hand(&trials, &s.method, rank);
        let peak = s.points.iter().find(|p| p.0.abs() < 1e-12).unwrap();
        assert_eq!(peak.1, 1.0, "{}", s.kind);
        assert!(s.points.iter().all(|p| p.1 <= 1.0));
        let xs: Vec<f64> = s.points.iter().map(|p| p.0).collect();
        let expected: Vec<f64> = LRS.iter().map(|lr| (lr / best_lr).log10()).collect();
        for (x, e) in xs.iter().zip(&expected) {
            assert!((x - e).abs() < 1e-12, "{} {xs:?} vs {expected:?}", s.kind);
        }
    }
}

#[test]
fn best_points_carry_the_t_interval() {
    let trials = study();
    let curves = figs::curves(&trials);
    let best = figs::best_of_lr_data(&curves, 16);
    assert_eq!(best.len(), 3);
    for p in &best {
        let (m, h, lr) = best_by_hand(&trials, &p.method, p.rank);
        assert_eq!(p.lr, lr, "{}", p.kind);
        assert!((p.mean - m).abs() < 1e-12);
        assert!(
            (p.half_width - h).abs() < 1e-6,
            "{} {} vs {}",
            p.kind,
            p.half_width,
            h
        );
        assert_eq!(p.n, 3);
    }
    // The synthetic optima: LoRA at rank 16 peaks at 3e-4, DoRA at 1e-3.
    let lora = best.iter().find(|p| p.method == "lora").unwrap();
    assert_eq!(lora.lr, 3e-4);
    let by_rank = figs::best_vs_rank_data(&curves);
    assert_eq!(by_rank.len(), 2);
    assert_eq!(
        by_rank[1].points.iter().map(|p| p.lr).collect::<Vec<_>>(),
        vec![1e-3, 3e-4]
    );
}

fn pct(x: f64) -> String {
    format!("{:.2}", x * 100.0)
}

#[test]
fn report_numbers_are_recomputed_from_the_trials() {
    let trials = study();
    let input = ReportInput {
        experiment: "synthetic".into(),
        description: "A test study.".into(),
        config_hash: "cafe".into(),
        config_toml: "[study]\nname = \"synthetic\"".into(),
        wall_seconds: 125.0,
        trials: trials.clone(),
        figures: vec![PathBuf::from("figures/raw/lr_sweep_parity.png")],
        comparison: None,
        sharpness: None,
        sharpness_after: Vec::new(),
        language_model: None,
    };
    let md = render(&input);
    assert!(md.contains("name = \"synthetic\""));
    assert!(md.contains("<details>"));
    assert!(md.contains("![lr_sweep_parity](figures/raw/lr_sweep_parity.png)"));
    assert!(md.contains("| Trials | 60 (0 diverged) |"));

    // Best accuracy ± CI and best LR of every cell.
    for (method, rank, _, _) in CELLS {
        let (m, h, lr) = best_by_hand(&trials, method, rank);
        let label = records::method_label(method);
        let rank_text = if rank == 0 {
            "— (all weights)".to_string()
        } else {
            rank.to_string()
        };
        let lr_text = if lr == 1e-4 {
            "1e-4"
        } else if lr == 3e-4 {
            "3e-4"
        } else if lr == 1e-3 {
            "1e-3"
        } else {
            "3e-3"
        };
        // Each seed's offset is the same at every LR, so the LR chosen on
        // two seeds is the best of all three, and the held-out mean is m.
        let row = format!(
            "| {label} | {rank_text} | {} ± {} | {} | 3 | {lr_text} |",
            pct(m),
            pct(h),
            pct(m)
        );
        assert!(md.contains(&row), "missing row {row:?} in\n{md}");
    }

    // Spread after tuning, per rank.
    for rank in [4, 16] {
        let lora = best_by_hand(&trials, "lora", rank).0;
        let dora = best_by_hand(&trials, "dora", rank).0;
        let spread = (lora - dora).abs();
        let line = format!(
            "At rank {rank}, after LR tuning the methods land within {} points of each other.",
            pct(spread)
        );
        assert!(md.contains(&line), "missing {line:?}");
    }
    // At one LR (LoRA's best), the gap is wider: DoRA is read off its peak.
    let lora_lr = best_by_hand(&trials, "lora", 16).2;
    let gap = best_by_hand(&trials, "lora", 16).0 - mean(&accs(&trials, "dora", 16, lora_lr));
    let line = format!(
        "At rank 16, one LR (3e-4) puts the methods {} points apart",
        pct(gap)
    );
    assert!(md.contains(&line), "missing {line:?} in\n{md}");

    // LR band of LoRA at rank 16: LRs whose mean lies within the best's CI.
    let (best, half_width, _) = best_by_hand(&trials, "lora", 16);
    let band: Vec<f64> = LRS
        .iter()
        .copied()
        .filter(|lr| mean(&accs(&trials, "lora", 16, *lr)) >= best - half_width)
        .collect();
    let expected = format!("({} of 4 LRs)", band.len());
    let lora_row = md.lines().find(|l| l.starts_with("| LoRA | 16 |")).unwrap();
    assert!(lora_row.contains(&expected), "{lora_row} lacks {expected}");

    // Best LR across ranks: each kind's best LR per rank, the drift from
    // the smallest to the largest rank, and the ratio to full FT's best.
    assert!(md.contains("## Best learning rate across ranks"));
    assert!(md.contains("neighbouring LRs are 3.00× apart"), "{md}");
    let full_lr = best_by_hand(&trials, "full", 0).2;
    for method in ["dora", "lora"] {
        let lr4 = best_by_hand(&trials, method, 4).2;
        let lr16 = best_by_hand(&trials, method, 16).2;
        let row = format!(
            "| {} | {} | {} | {:.2}× | r=4: {:.2}×, r=16: {:.2}× |",
            records::method_label(method),
            lr_text(lr4),
            lr_text(lr16),
            lr16 / lr4,
            lr4 / full_lr,
            lr16 / full_lr
        );
        assert!(md.contains(&row), "missing row {row:?} in\n{md}");
    }
}

fn lr_text(lr: f64) -> &'static str {
    [
        (1e-4, "1e-4"),
        (3e-4, "3e-4"),
        (1e-3, "1e-3"),
        (3e-3, "3e-3"),
    ]
    .into_iter()
    .find(|(v, _)| *v == lr)
    .map(|(_, text)| text)
    .expect("an LR of the synthetic grid")
}

#[test]
fn report_comparison_and_divergence() {
    let mut trials = study();
    trials[0].diverged = true;
    let mut other = study();
    for t in &mut other {
        t.val_accuracy -= 0.01;
    }
    let input = ReportInput {
        experiment: "default".into(),
        trials,
        comparison: Some(("seed-notebook".into(), other)),
        ..Default::default()
    };
    let md = render(&input);
    assert!(md.contains("60 trials, 1 diverged"));
    assert!(md.contains("## Comparison with `seed-notebook`"));
    // Every seed is 0.01 lower in the other experiment: Δ = 1.00 points.
    let section = md.split("## Comparison with").nth(1).unwrap();
    let deltas = section.lines().filter(|l| l.ends_with("| 1.00 |")).count();
    assert_eq!(deltas, CELLS.len(), "{md}");
}

#[test]
fn odd_input_never_panics() {
    let dir = tempfile::tempdir().unwrap();
    let opts = FigureOptions::new(dir.path(), 16);
    // No trials: nothing to draw, no error.
    assert!(draw_figures(&[], &opts).unwrap().is_empty());
    assert!(render(&ReportInput::default()).contains("No trial records"));

    // One LR, one rank, one seed, a NaN accuracy and a missing grid point.
    let trials = vec![
        trial("lora", 16, 1e-3, 0, 0.8),
        trial("dora", 16, 1e-3, 0, f64::NAN),
        trial("dora", 16, 1e-3, 1, 0.7),
        trial("pissa", 16, 1e-3, 0, f64::NAN),
    ];
    let written = draw_figures(&trials, &opts).unwrap();
    let n = names(&written, dir.path());
    // A single rank: no rank-axis figures.
    assert!(!n.iter().any(|f| f.contains("vs_rank")), "{n:?}");
    assert!(n.contains(&"figures/raw/heatmap_lora.png".to_string()));
    // PiSSA has no finite accuracy: no heatmap for it.
    assert!(!n.iter().any(|f| f.contains("pissa")), "{n:?}");
    let curves = figs::curves(&trials);
    let dora = figs::best_of_lr_data(&curves, 16)
        .into_iter()
        .find(|p| p.method == "dora")
        .unwrap();
    assert_eq!((dora.mean, dora.n, dora.half_width), (0.7, 1, 0.0));
    let md = render(&ReportInput {
        trials,
        ..Default::default()
    });
    assert!(
        md.contains("after LR tuning the methods land within 10.00 points"),
        "{md}"
    );

    // All NaN: figures skip, report still renders.
    let nan = vec![trial("lora", 4, 1e-3, 0, f64::NAN)];
    let written = draw_figures(&nan, &opts).unwrap();
    assert!(
        written
            .iter()
            .all(|p| !p.to_string_lossy().contains("heatmap"))
    );
    let _ = render(&ReportInput {
        trials: nan,
        ..Default::default()
    });
}

/// LoRA, DoRA and full fine-tuning at two budgets: each method's accuracy
/// peaks at a chosen LR per budget (bs16: one grid point lower than bs64).
fn budget_study() -> Vec<TrialRecord> {
    // (method, rank, batch size, best LR, peak accuracy)
    let cells: [(&str, usize, usize, f64, f64); 6] = [
        ("lora", 4, 16, 1e-4, 0.70),
        ("lora", 4, 64, 3e-4, 0.90),
        ("dora", 4, 16, 1e-4, 0.80),
        ("dora", 4, 64, 3e-4, 0.85),
        ("full", 0, 16, 3e-4, 0.80),
        ("full", 0, 64, 1e-3, 0.85),
    ];
    let mut out = Vec::new();
    for (method, rank, batch, best, peak) in cells {
        for lr in [1e-4, 3e-4, 1e-3, 3e-3] {
            for seed in 0..3 {
                let d = (lr / best).log10();
                let mut t = trial(method, rank, lr, seed, peak - 0.2 * d * d);
                (t.batch_size, t.epochs) = (batch, 2);
                out.push(t);
            }
        }
    }
    out
}

#[test]
fn budgets_are_compared_within_and_tabulated_across() {
    use figs::report::{best_lr_across_budgets, spread_after_tuning, summarize};
    let trials = budget_study();
    let curves = figs::curves(&trials);
    assert_eq!(curves.len(), 6);
    assert!(
        curves.iter().all(|c| c.kind.ends_with("/ep2")),
        "{curves:?}"
    );

    // Methods are compared per budget (LoRA vs DoRA at bs16, at bs64),
    // never LoRA at one budget against DoRA at another.
    let tuned = spread_after_tuning(&curves);
    assert_eq!(tuned.len(), 2, "{tuned:?}");
    for (spread, budget, points) in [(&tuned[0], "bs16/ep2", 0.10), (&tuned[1], "bs64/ep2", 0.05)] {
        assert_eq!(spread.budget.as_deref(), Some(budget));
        assert_eq!(spread.methods.len(), 2);
        assert!((spread.spread() - points).abs() < 1e-9, "{spread:?}");
    }

    let across = best_lr_across_budgets(&summarize(&curves, &trials));
    let lora = across.iter().find(|g| g.label == "LoRA").unwrap();
    assert_eq!(lora.rank, 4);
    let lrs: Vec<(usize, usize, f64)> = lora
        .best
        .iter()
        .map(|b| (b.batch_size, b.epochs, b.lr))
        .collect();
    assert_eq!(lrs, vec![(16, 2, 1e-4), (64, 2, 3e-4)]);
    assert!((lora.drift() - 3.0).abs() < 1e-9);
    let ratios = lora.axis_ratios(false);
    assert_eq!(ratios.len(), 1);
    assert_eq!(ratios[0].0, 2);
    assert!((ratios[0].1 - 4.0).abs() < 1e-12 && (ratios[0].2 - 3.0).abs() < 1e-9);
    assert!(
        lora.axis_ratios(true).is_empty(),
        "one epochs value: no epochs axis"
    );
    let full = across.iter().find(|g| g.rank == 0).unwrap();
    assert!((full.drift() - 1e-3 / 3e-4).abs() < 1e-9);
    // A budget far below the method's best did not learn: its argmax is
    // marked and left out of the drift.
    let mut dead = full.clone();
    dead.best[0].acc = 0.3; // below half of 0.85
    assert!(!dead.learned(0) && dead.learned(1));
    assert!(dead.drift() == 1.0 && dead.axis_ratios(false).is_empty());

    let md = render(&ReportInput {
        experiment: "budget".into(),
        description: String::new(),
        config_hash: "cafe".into(),
        config_toml: String::new(),
        wall_seconds: 1.0,
        trials,
        figures: Vec::new(),
        comparison: None,
        sharpness: None,
        sharpness_after: Vec::new(),
        language_model: None,
    });
    assert!(md.contains("## Best learning rate across budgets"), "{md}");
    assert!(md.contains("| bs16/ep2 | bs64/ep2 |"), "{md}");
    // LoRA at bs16: best 1e-4 (70%), band: LRs within 95% of 0.70.
    assert!(md.contains("| LoRA | 4 | 1e-4 (70.00) |"), "{md}");
    assert!(md.contains("| 4 · bs16/ep2 | 2 |"), "{md}");
    assert!(
        md.contains("at 2 epochs, 4× the batch size moves the best LR 3.00×"),
        "{md}"
    );
}

/// A language-modelling study: perplexity = exp(val_loss), lowest is best;
/// the section's table and best ranks, recomputed by hand.
#[test]
fn a_language_model_is_reported_by_perplexity_and_best_rank() {
    use figs::report::{Floor, LanguageModel, best_rank_by_perplexity, perplexity_rows};
    // (method, rank, lr, seed losses): LoRA r=16 beats r=4 clearly; DoRA's
    // two ranks tie within the seeds' CI.
    let cells: [(&str, usize, f64, [f64; 3]); 8] = [
        ("lora", 4, 1e-3, [1.50, 1.52, 1.54]),
        ("lora", 4, 1e-2, [1.40, 1.41, 1.42]),
        ("lora", 16, 1e-3, [1.20, 1.21, 1.22]),
        ("lora", 16, 1e-2, [3.00, 3.10, 3.20]),
        ("dora", 4, 1e-3, [1.30, 1.35, 1.40]),
        ("dora", 16, 1e-3, [1.31, 1.36, 1.41]),
        ("full", 0, 1e-3, [1.10, 1.11, 1.12]),
        ("full", 0, 1e-2, [f64::NAN, f64::NAN, f64::NAN]),
    ];
    let mut trials = Vec::new();
    for (method, rank, lr, losses) in cells {
        for (seed, loss) in losses.into_iter().enumerate() {
            let mut t = trial(method, rank, lr, seed as u64, 0.4);
            t.val_loss = loss;
            trials.push(t);
        }
    }
    let mean_ppl = |losses: [f64; 3]| losses.iter().map(|l| l.exp()).sum::<f64>() / 3.0;
    let rows = perplexity_rows(&trials);
    let lora4 = rows
        .iter()
        .find(|r| r.method == "lora" && r.rank == 4)
        .unwrap();
    assert_eq!(lora4.lr, 1e-2);
    assert!((lora4.mean - mean_ppl([1.40, 1.41, 1.42])).abs() < 1e-12);
    let full = rows.iter().find(|r| r.method == "full").unwrap();
    assert_eq!(full.lr, 1e-3, "a diverged LR is never the best");

    let best = best_rank_by_perplexity(&rows);
    let lora = best.iter().find(|b| b.0 == "LoRA").unwrap();
    assert_eq!((lora.1, lora.3), (16, false));
    let dora = best.iter().find(|b| b.0 == "DoRA").unwrap();
    assert_eq!((dora.1, dora.3), (4, true), "r=16 is inside r=4's CI");

    let md = render(&ReportInput {
        trials: trials.clone(),
        language_model: Some(LanguageModel {
            task: "A chain.".into(),
            floor: Some(Floor {
                perplexity: 2.5,
                accuracy: 0.45,
            }),
            base_perplexity: None,
        }),
        ..Default::default()
    });
    let section = md
        .split("## Perplexity (language modelling)")
        .nth(1)
        .expect("a perplexity section");
    let lora16 = mean_ppl([1.20, 1.21, 1.22]);
    assert!(
        section.contains(&format!(
            "| LoRA | 16 | {lora16:.3} ± {:.3} | {:+.1}% | 3 | 1e-3 |",
            rows.iter()
                .find(|r| r.method == "lora" && r.rank == 16)
                .unwrap()
                .half_width,
            (lora16 / 2.5 - 1.0) * 100.0
        )),
        "{section}"
    );
    assert!(section.contains("perplexity **2.500**"), "{section}");
    // Text has no floor: each best is set against the base's perplexity.
    let text = render(&ReportInput {
        trials: trials.clone(),
        language_model: Some(LanguageModel {
            task: "Some text.".into(),
            floor: None,
            base_perplexity: Some(2.0),
        }),
        ..Default::default()
    });
    assert!(!text.contains("floor"), "{text}");
    assert!(
        text.contains("the base scores perplexity **2.000**"),
        "{text}"
    );
    assert!(
        text.contains("| Best perplexity | Against the base |"),
        "{text}"
    );
    assert!(
        text.contains(&format!("| LoRA | 16 | {lora16:.3} ± ")),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            " | {:+.1}% | 3 | 1e-3 |",
            (lora16 / 2.0 - 1.0) * 100.0
        )),
        "{text}"
    );
    // Rank 16: LoRA (its best, 1e-3) vs DoRA (1e-3); rank 4: DoRA (1e-3)
    // vs LoRA (1e-2), and at LoRA's 1e-2 only LoRA has a value.
    let (lora16, dora16) = (mean_ppl([1.20, 1.21, 1.22]), mean_ppl([1.31, 1.36, 1.41]));
    let (dora4, lora4) = (mean_ppl([1.30, 1.35, 1.40]), mean_ppl([1.40, 1.41, 1.42]));
    let spread16 = (dora16 / lora16 - 1.0) * 100.0;
    assert!(
        section.contains(&format!(
            "| 16 | LoRA ({lora16:.3}) | DoRA ({dora16:.3}) | {spread16:.1}% | 1e-3 | {spread16:.1}% |"
        )),
        "{section}"
    );
    assert!(
        section.contains(&format!(
            "| 4 | DoRA ({dora4:.3}) | LoRA ({lora4:.3}) | {:.1}% | 1e-2 | n/a |",
            (lora4 / dora4 - 1.0) * 100.0
        )),
        "{section}"
    );
    assert!(
        md.contains(&format!(
            "**After LR tuning the methods' perplexities land within {spread16:.1}% of each other** \
             (the widest gap over 2 ranks, at rank 16)"
        )),
        "{md}"
    );
    assert!(section.contains("## Best learning rate across ranks (by perplexity)"));
    assert!(section.contains("| LoRA | 1e-2 | 1e-3 |"), "{section}");
    assert!(section.contains("- DoRA: rank 4"), "{section}");
    assert!(
        !render(&ReportInput {
            trials,
            ..Default::default()
        })
        .contains("## Perplexity")
    );
}

#[test]
fn perplexity_figures_are_drawn_per_rank() {
    let dir = tempfile::tempdir().unwrap();
    let mut trials = study();
    for t in &mut trials {
        t.val_loss = 1.0 + (1.0 - t.val_accuracy);
    }
    let opts = FigureOptions {
        formats: vec![Format::Png],
        ..FigureOptions::new(dir.path(), 16)
    };
    let written = figs::draw_perplexity(&trials, &opts).unwrap();
    let names: Vec<String> = written
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().to_string())
        .collect();
    assert_eq!(
        names,
        [
            "perplexity_vs_lr_r4.png",
            "perplexity_vs_lr_r16.png",
            "best_lr_vs_rank_by_perplexity.png"
        ]
    );
    for t in &mut trials {
        t.val_loss = f64::NAN;
    }
    assert!(figs::draw_perplexity(&trials, &opts).unwrap().is_empty());
}

#[test]
fn provenance_lists_every_revision_device_and_compute_mode_of_the_records() {
    let mut trials = study();
    let n = trials.len();
    let one = ReportInput {
        trials: trials.clone(),
        ..ReportInput::default()
    };
    let md = render(&one);
    assert!(md.contains("| Git revision | `synthetic` |"), "{md}");
    assert!(
        md.contains("| Backend / device | synthetic / none |"),
        "{md}"
    );
    assert!(!md.contains("| Adapter compute |"), "{md}");
    for t in trials.iter_mut().take(10) {
        t.provenance.git_revision = "abc".into();
        t.provenance.git_dirty = Some(true);
        t.provenance.backend = "wgpu".into();
        if t.method != "full" {
            t.adapter_compute = Some("activation_space".into());
        }
    }
    let adapters_changed = trials
        .iter()
        .take(10)
        .filter(|t| t.method != "full")
        .count();
    let adapters = trials.iter().filter(|t| t.method != "full").count();
    let md = render(&ReportInput {
        trials,
        ..ReportInput::default()
    });
    assert!(
        md.contains(&format!(
            "| Git revision | `abc+dirty` (10 trials), `synthetic` ({} trials) |",
            n - 10
        )),
        "{md}"
    );
    assert!(
        md.contains(&format!(
            "| Backend / device | wgpu / none (10 trials), synthetic / none ({} trials) |",
            n - 10
        )),
        "{md}"
    );
    assert!(
        md.contains(&format!(
            "| Adapter compute | activation_space ({adapters_changed} trials), weight_space ({} trials) |",
            adapters - adapters_changed
        )),
        "{md}"
    );
}
