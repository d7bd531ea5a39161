//! The sharpness figure and its numbers: λmax per cell paired with the best
//! LR of the records, the correlations and `c` of `best_lr ≈ c / λmax`,
//! recomputed here by hand.

use figs::report::{ReportInput, render};
use figs::{
    FigureOptions, Format, SharpnessCell, average_ranks, draw_sharpness, pearson, sharpness_fit,
    sharpness_points, spearman,
};
use records::{TrialRecord, cell_curves};

const LRS: [f64; 4] = [1e-4, 3e-4, 1e-3, 3e-3];

fn trial(method: &str, rank: usize, lr: f64, seed: u64, acc: f64) -> TrialRecord {
    TrialRecord::synthetic(method, rank, lr, seed, acc)
}

/// (method, rank, best LR, λmax).
const CELLS: [(&str, usize, f64, f64); 5] = [
    ("lora", 4, 1e-3, 2.0),
    ("lora", 16, 3e-4, 5.0),
    ("dora", 4, 3e-3, 1.0),
    ("dora", 16, 1e-3, 4.0),
    ("full", 0, 1e-4, 30.0),
];

fn variant(rank: usize) -> String {
    if rank > 0 {
        "alpha_eq_r/kaiming_uniform/all".into()
    } else {
        "none/none/all".into()
    }
}

fn study() -> Vec<TrialRecord> {
    let mut out = Vec::new();
    for (method, rank, best, _) in CELLS {
        for lr in LRS {
            for seed in 0..2 {
                let d = (lr / best).log10();
                out.push(trial(method, rank, lr, seed, 0.9 - 0.2 * d * d));
            }
        }
    }
    out
}

fn cells() -> Vec<SharpnessCell> {
    CELLS
        .iter()
        .map(|&(method, rank, _, lambda)| SharpnessCell {
            method: method.into(),
            rank,
            variant: variant(rank),
            lambda_max: lambda,
        })
        .collect()
}

#[test]
fn points_pair_lambda_with_the_best_lr_and_the_fit_is_recomputed() {
    let curves = cell_curves(&study());
    let mut cells = cells();
    // A cell without records and one of another variant are left out.
    cells.push(SharpnessCell {
        method: "pissa".into(),
        rank: 4,
        variant: variant(4),
        lambda_max: 3.0,
    });
    cells.push(SharpnessCell {
        method: "lora".into(),
        rank: 4,
        variant: "constant:32/kaiming_uniform/all".into(),
        lambda_max: 9.0,
    });
    let points = sharpness_points(&curves, &cells);
    assert_eq!(points.len(), CELLS.len());
    for (method, rank, best, lambda) in CELLS {
        let p = points
            .iter()
            .find(|p| p.method == method && p.rank == rank)
            .unwrap();
        assert_eq!(
            (p.best_lr, p.lambda_max),
            (best, lambda),
            "{method} r{rank}"
        );
        assert!((p.best_acc - 0.9).abs() < 1e-12);
    }

    // By hand: x = ln λ, y = ln lr.
    let x: Vec<f64> = CELLS.iter().map(|c| c.3.ln()).collect();
    let y: Vec<f64> = CELLS.iter().map(|c| c.2.ln()).collect();
    let n = x.len() as f64;
    let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
    let cov: f64 = x.iter().zip(&y).map(|(a, b)| (a - mx) * (b - my)).sum();
    let vx: f64 = x.iter().map(|a| (a - mx).powi(2)).sum();
    let vy: f64 = y.iter().map(|b| (b - my).powi(2)).sum();
    let r = cov / (vx * vy).sqrt();
    let products: Vec<f64> = CELLS.iter().map(|c| c.2 * c.3).collect();
    let c = products.iter().product::<f64>().powf(1.0 / n);
    let fit = sharpness_fit(&points).unwrap();
    assert_eq!(fit.n, 5);
    assert!((fit.pearson - r).abs() < 1e-12, "{} vs {r}", fit.pearson);
    assert!(fit.pearson < -0.9, "{}", fit.pearson);
    assert!((fit.c - c).abs() < 1e-12 * c, "{} vs {c}", fit.c);
    // lr·λ: 0.002, 0.0015, 0.003, 0.004, 0.003.
    assert!((fit.c_min - 0.0015).abs() < 1e-12 && (fit.c_max - 0.004).abs() < 1e-12);
    assert!(fit.c_spread > 1.0);
    // λ ranks 2,4,1,3,5; lr ranks 3.5,2,5,3.5,1 (1e-3 twice):
    // Spearman by hand from d² needs no ties, so check with Pearson of ranks.
    assert_eq!(
        average_ranks(&[1e-3, 3e-4, 3e-3, 1e-3, 1e-4]),
        vec![3.5, 2.0, 5.0, 3.5, 1.0]
    );
    let rs = pearson(&[2.0, 4.0, 1.0, 3.0, 5.0], &[3.5, 2.0, 5.0, 3.5, 1.0]);
    assert!((fit.spearman - rs).abs() < 1e-12);
    assert!((spearman(&x, &y) - rs).abs() < 1e-12);
    // Exactly c/λ: perfect correlation, no spread.
    let exact: Vec<_> = points
        .iter()
        .map(|p| {
            let mut p = p.clone();
            p.best_lr = 0.01 / p.lambda_max;
            p
        })
        .collect();
    let fit = sharpness_fit(&exact).unwrap();
    assert!((fit.pearson + 1.0).abs() < 1e-12 && (fit.spearman + 1.0).abs() < 1e-12);
    assert!((fit.c - 0.01).abs() < 1e-12 && (fit.c_spread - 1.0).abs() < 1e-9);
    assert!(sharpness_fit(&exact[..1]).is_none());
}

fn png_size(path: &std::path::Path) -> (u32, u32) {
    let decoder = png::Decoder::new(std::fs::File::open(path).unwrap());
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let frame = reader.next_frame(&mut buf).unwrap();
    let pixels = &buf[..frame.buffer_size()];
    let colored = pixels
        .chunks(3)
        .filter(|p| !(p[0] == p[1] && p[1] == p[2]))
        .count();
    assert!(colored > 500, "{} looks blank", path.display());
    (frame.width, frame.height)
}

#[test]
fn the_figure_is_drawn_and_the_report_has_a_section() {
    let dir = tempfile::tempdir().unwrap();
    let opts = FigureOptions::new(dir.path(), 16);
    let points = sharpness_points(&cell_curves(&study()), &cells());
    let written = draw_sharpness(&points, &opts).unwrap();
    let png = dir.path().join("figures/raw/sharpness_vs_best_lr.png");
    let svg = dir.path().join("figures/raw/sharpness_vs_best_lr.svg");
    assert_eq!(written, vec![png.clone(), svg.clone()]);
    assert_eq!(png_size(&png), (figs::WIDTH, figs::HEIGHT));
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.contains("Pearson"), "the title carries the fit");

    // No usable point: nothing drawn, no error.
    let empty = tempfile::tempdir().unwrap();
    let none = draw_sharpness(&[], &FigureOptions::new(empty.path(), 16)).unwrap();
    assert!(none.is_empty());
    let mut zero = points.clone();
    zero.iter_mut().for_each(|p| p.lambda_max = 0.0);
    let opts = FigureOptions {
        formats: vec![Format::Png],
        ..FigureOptions::new(empty.path(), 16)
    };
    assert!(draw_sharpness(&zero, &opts).unwrap().is_empty());

    let fit = sharpness_fit(&points).unwrap();
    let md = render(&ReportInput {
        trials: study(),
        sharpness: Some(points.clone()),
        ..Default::default()
    });
    let section = md
        .split("## Sharpness at initialisation vs best learning rate")
        .nth(1)
        .expect("a sharpness section");
    assert!(
        section.contains("| LoRA | 16 | 5.0000 | 3e-4 | 0.0015 |"),
        "{section}"
    );
    assert!(
        section.contains(&format!("Pearson {:+.3}", fit.pearson)),
        "{section}"
    );
    assert!(section.contains(&format!("c = {:.4}", fit.c)));
    let without = render(&ReportInput {
        trials: study(),
        ..Default::default()
    });
    assert!(!without.contains("## Sharpness"));
}
