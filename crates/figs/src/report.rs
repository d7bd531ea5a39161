//! The generated markdown report (REPORT.md) of an experiment: provenance,
//! best accuracy per method and rank with confidence intervals, good-LR
//! bands, how far apart the methods land after LR tuning versus at one fixed
//! LR, and the figures. Every number is computed from the trials.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::PathBuf;

use records::{CellCurve, Metric, TrialRecord};

use crate::draw::fmt_lr;
use records::analysis::{BestPoint, curves};
pub use records::compare::*;

/// Everything the report shows.
#[derive(Debug, Clone, Default)]
pub struct ReportInput {
    pub experiment: String,
    pub description: String,
    pub config_hash: String,
    /// The experiment's config (TOML), embedded collapsed.
    pub config_toml: String,
    /// Wall time of the runs that trained the trials.
    pub wall_seconds: f64,
    pub trials: Vec<TrialRecord>,
    /// Figures to embed, relative to the report's directory.
    pub figures: Vec<PathBuf>,
    /// Another experiment (name, trials) to compare best accuracies with.
    pub comparison: Option<(String, Vec<TrialRecord>)>,
    /// λmax at initialisation per cell beside its best LR (`lrscape
    /// sharpness`); a "Sharpness" section when present.
    pub sharpness: Option<Vec<crate::data::SharpnessPoint>>,
    /// The same after N training steps (`lrscape sharpness --after-steps
    /// N`), one section per N.
    pub sharpness_after: Vec<(usize, Vec<crate::data::SharpnessPoint>)>,
    /// A language-modelling experiment: a "Perplexity" section first.
    pub language_model: Option<LanguageModel>,
}

/// What the report says of a language-modelling task beyond its trials.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LanguageModel {
    /// One line on the task and its shift.
    pub task: String,
    /// The fine-tuning source's own predictions, where the source is known
    /// (a Markov chain): no model can go below them.
    pub floor: Option<Floor>,
    /// The base's perplexity on the fine-tuning validation split, before
    /// fine-tuning (from the run log).
    pub base_perplexity: Option<f64>,
}

/// The best any model can do on a synthetic language.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Floor {
    pub perplexity: f64,
    /// Next-token accuracy of the source's own predictions.
    pub accuracy: f64,
}

fn language_model_section(md: &mut String, input: &ReportInput, lm: &LanguageModel) {
    md.push_str(
        "## Perplexity (language modelling)

",
    );
    let _ = write!(
        md,
        "{} Scored by validation perplexity, exp of the mean cross-entropy per predicted \
         token (lower is better); a cell's perplexity at an LR is the mean of its seeds' \
         perplexities (infinite if a seed diverged), with a 95% CI. ",
        lm.task.trim(),
    );
    if let Some(floor) = lm.floor {
        let _ = write!(
            md,
            "The fine-tuning source's own predictions reach perplexity **{:.3}** (next-token \
             accuracy {}): no model can go below that floor. ",
            floor.perplexity,
            pct(floor.accuracy)
        );
    }
    if let Some(base) = lm.base_perplexity {
        let _ = write!(
            md,
            "Before fine-tuning, the base scores perplexity **{base:.3}** on the validation text. "
        );
    }
    md.push_str("Elsewhere in this report \"accuracy\" is next-token accuracy.\n\n");
    // Each best perplexity against the floor, else against the base.
    let (against, reference) = match (lm.floor, lm.base_perplexity) {
        (Some(floor), _) => ("Above the floor", Some(floor.perplexity)),
        (None, Some(base)) => ("Against the base", Some(base)),
        (None, None) => ("Against the base", None),
    };
    let rows = perplexity_rows(&input.trials);
    let acc = curves(&input.trials);
    let ppl = records::analysis::curves_of(&input.trials, Metric::Perplexity);
    let _ = writeln!(
        md,
        "| Method | Rank | Best perplexity | {against} | Seeds | Best LR | LR band (within the CI) | Next-token accuracy there, % |",
    );
    md.push_str("|---|---:|---:|---:|---:|---:|---|---:|\n");
    for b in &rows {
        let at_lr = acc
            .iter()
            .find(|c| c.kind == b.kind && c.rank == b.rank)
            .and_then(|c| c.lrs.iter().position(|&lr| lr == b.lr).map(|i| c.acc[i]))
            .unwrap_or(f64::NAN);
        let ci = if b.n > 1 && b.half_width.is_finite() {
            format!("{:.3} ± {:.3}", b.mean, b.half_width)
        } else {
            format!("{:.3} (1 seed)", b.mean)
        };
        let band = ppl
            .iter()
            .find(|c| c.kind == b.kind && c.rank == b.rank)
            .map_or_else(
                || "n/a".to_string(),
                |c| {
                    band_text(&CellSummary {
                        best: b.clone(),
                        band: records::analysis::lr_band(c, Metric::Perplexity),
                        held_out: None,
                        n_lrs: c.lrs.len(),
                    })
                },
            );
        let relative = reference.map_or_else(
            || "n/a".to_string(),
            |r| format!("{:+.1}%", (b.mean / r - 1.0) * 100.0),
        );
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            cell(&b.label),
            rank_name(b.rank),
            ci,
            relative,
            b.n,
            fmt_lr(b.lr),
            band,
            pct(at_lr)
        );
    }
    md.push('\n');
    let best_ranks = best_rank_by_perplexity(&rows);
    if !best_ranks.is_empty() {
        md.push_str("Best rank per method (lowest best-of-LR perplexity):\n\n");
        for (label, rank, ppl, tied) in best_ranks {
            let _ = writeln!(
                md,
                "- {}: rank {} ({:.3}){}",
                cell(&label),
                rank,
                ppl,
                if tied {
                    "; the next-best rank is inside its 95% CI"
                } else {
                    ""
                }
            );
        }
        md.push('\n');
    }
    render_perplexity_spreads(md, &rows, &input.trials);
    let summaries: Vec<CellSummary> = rows
        .iter()
        .map(|b| CellSummary {
            best: b.clone(),
            band: Vec::new(),
            held_out: None,
            n_lrs: 0,
        })
        .collect();
    let lrs = trial_lrs(&input.trials);
    render_lr_across_ranks(md, &summaries, &lrs, Metric::Perplexity);
}

/// The distinct learning rates of `trials`, ascending.
fn spread_text(spread: f64) -> String {
    if spread.is_finite() {
        format!("{:.1}%", spread * 100.0)
    } else {
        "n/a".into()
    }
}

fn render_perplexity_spreads(md: &mut String, rows: &[BestPoint], trials: &[TrialRecord]) {
    let spreads = perplexity_spreads(rows, trials);
    if spreads.is_empty() {
        return;
    }
    md.push_str(
        "How far apart the methods land (the highest over the lowest perplexity, minus 1), \
         each at its own best LR and all at LoRA's best LR:\n\n\
         | Rank | Lowest (tuned) | Highest (tuned) | Spread after tuning | LoRA's best LR | Spread at that LR |\n\
         |---:|---|---|---:|---:|---:|\n",
    );
    for s in &spreads {
        let (lo, hi) = (&s.tuned[0], &s.tuned[s.tuned.len() - 1]);
        let (lr, fixed) = match &s.at_lora_lr {
            Some((lr, values)) => (fmt_lr(*lr), spread_text(relative_spread(values))),
            None => ("n/a".into(), "n/a".into()),
        };
        let _ = writeln!(
            md,
            "| {} | {} ({:.3}) | {} ({:.3}) | {:.1}% | {} | {} |",
            s.rank,
            cell(&lo.0),
            lo.1,
            cell(&hi.0),
            hi.1,
            relative_spread(&s.tuned) * 100.0,
            lr,
            fixed
        );
    }
    md.push('\n');
}

/// Accuracy (a fraction) in percent, two decimals.
pub fn pct(x: f64) -> String {
    if x.is_finite() {
        format!("{:.2}", x * 100.0)
    } else {
        "n/a".to_string()
    }
}

/// Mean ± 95% CI in percent (`91.23 ± 0.45`); a single seed has no CI.
pub fn pct_ci(mean: f64, half_width: f64, n: usize) -> String {
    if n > 1 && half_width.is_finite() {
        format!("{} ± {}", pct(mean), pct(half_width))
    } else {
        format!("{} (1 seed)", pct(mean))
    }
}

fn cell(text: &str) -> String {
    text.replace('|', "\\|")
}

fn rank_name(rank: usize) -> String {
    if rank == 0 {
        "— (all weights)".to_string()
    } else {
        rank.to_string()
    }
}

fn duration(seconds: f64) -> String {
    if !seconds.is_finite() || seconds < 0.0 {
        return "unknown".to_string();
    }
    if seconds < 60.0 {
        return format!("{seconds:.1} s");
    }
    let s = seconds.round() as u64;
    let (h, m, s) = (s / 3600, (s / 60) % 60, s % 60);
    if h > 0 {
        format!("{h} h {m:02} min {s:02} s")
    } else {
        format!("{m} min {s:02} s")
    }
}

fn band_text(row: &CellSummary) -> String {
    match (row.band.first(), row.band.last()) {
        (Some(lo), Some(_)) if row.band.len() == 1 => {
            format!("{} only (1 of {} LRs)", fmt_lr(*lo), row.n_lrs)
        }
        (Some(lo), Some(hi)) => format!(
            "{} – {} ({} of {} LRs)",
            fmt_lr(*lo),
            fmt_lr(*hi),
            row.band.len(),
            row.n_lrs
        ),
        _ => "n/a".to_string(),
    }
}

fn figure_caption(stem: &str, labels: &BTreeMap<String, String>) -> String {
    let label = |stem: &str| {
        labels
            .get(stem)
            .cloned()
            .unwrap_or_else(|| stem.to_string())
    };
    let known = [
        (
            "lr_sweep_parity",
            "Accuracy vs learning rate at the parity rank",
        ),
        ("best_of_lr", "Best accuracy over learning rates per method"),
        (
            "best_of_lr_vs_rank",
            "Best accuracy over learning rates vs rank",
        ),
        ("best_lr_vs_rank", "Best learning rate vs rank"),
        (
            "best_lr_vs_rank_by_perplexity",
            "Best learning rate by perplexity vs rank",
        ),
        (
            "sharpness_vs_best_lr",
            "Sharpness (λmax) at initialisation vs best learning rate",
        ),
        (
            "shift_aligned",
            "Normalized curves re-centred at each method's best LR",
        ),
    ];
    if let Some((_, caption)) = known.iter().find(|(s, _)| *s == stem) {
        return caption.to_string();
    }
    if let Some(rank) = stem.strip_prefix("perplexity_vs_lr_r") {
        return format!("Perplexity vs learning rate at rank {rank}");
    }
    if let Some(kind) = stem.strip_prefix("heatmap_normalized_") {
        return format!("{}: rank × LR, normalized per rank", label(kind));
    }
    if let Some(kind) = stem.strip_prefix("heatmap_") {
        return format!("{}: rank × LR heatmap", label(kind));
    }
    stem.to_string()
}

/// The markdown report.
pub fn render(input: &ReportInput) -> String {
    let mut md = String::new();
    let curves = curves(&input.trials);
    let rows = summarize(&curves, &input.trials);
    let tuned = spread_after_tuning(&curves);
    let fixed = spread_at_lora_lr(&curves);
    let lrs = trial_lrs(&input.trials);

    let _ = writeln!(md, "# {}: learning rate × rank report\n", input.experiment);
    let _ = writeln!(
        md,
        "*Generated by lrscape from {} trial records; every number below is computed from them.*\n",
        input.trials.len()
    );
    render_summary(&mut md, input, &curves, &tuned, &lrs);
    if input.trials.is_empty() {
        md.push_str("No trial records: nothing to report yet.\n");
        return md;
    }
    if let Some(lm) = &input.language_model {
        language_model_section(&mut md, input, lm);
    }
    render_best_accuracy(&mut md, &rows);
    render_spread_after_tuning(&mut md, &tuned);
    render_spread_at_one_lr(&mut md, &fixed, &tuned);
    render_lr_across_ranks(&mut md, &rows, &lrs, Metric::Accuracy);
    render_lr_across_budgets(&mut md, &rows, &lrs);
    if let Some(points) = input.sharpness.as_deref().filter(|p| !p.is_empty()) {
        render_sharpness(&mut md, points, 0);
    }
    for (steps, points) in &input.sharpness_after {
        if !points.is_empty() {
            render_sharpness(&mut md, points, *steps);
        }
    }
    render_figures(&mut md, input, &curves);
    render_trials(&mut md, input);
    if let Some((other, other_trials)) = &input.comparison {
        render_comparison(&mut md, &input.experiment, &rows, other, other_trials);
    }
    md
}

/// The distinct values of `key` over `trials`, in first-seen order, with
/// how many trials have each.
fn tally(trials: &[TrialRecord], key: impl Fn(&TrialRecord) -> String) -> Vec<(String, usize)> {
    let mut out: Vec<(String, usize)> = Vec::new();
    for t in trials {
        let k = key(t);
        match out.iter_mut().find(|(v, _)| *v == k) {
            Some((_, n)) => *n += 1,
            None => out.push((k, 1)),
        }
    }
    out
}

/// One value as it is; several with their trial counts.
fn listed(values: &[(String, usize)]) -> String {
    match values {
        [(one, _)] => one.clone(),
        many => many
            .iter()
            .map(|(v, n)| format!("{v} ({n} trials)"))
            .collect::<Vec<_>>()
            .join(", "),
    }
}

/// The summary: what was run, where, how long, and the headline spread;
/// the config as a folded TOML block.
fn render_summary(
    md: &mut String,
    input: &ReportInput,
    curves: &[CellCurve],
    tuned: &[Spread],
    lrs: &[f64],
) {
    let diverged = input.trials.iter().filter(|t| t.diverged).count();
    md.push_str("## Summary\n\n");
    if !input.description.trim().is_empty() {
        let _ = writeln!(md, "{}\n", input.description.trim());
    }
    let methods: BTreeSet<String> = curves.iter().map(crate::curve_label).collect();
    let ranks = adapter_ranks(curves);
    let seeds: BTreeSet<u64> = input.trials.iter().map(|t| t.seed).collect();
    let _ = writeln!(md, "| | |\n|---|---|");
    let _ = writeln!(md, "| Config hash | `{}` |", input.config_hash);
    // Provenance from the records themselves: every revision, device and
    // compute mode that produced them, not the last run's alone.
    let revisions = tally(&input.trials, |t| format!("`{}`", t.provenance.revision()));
    let _ = writeln!(md, "| Git revision | {} |", listed(&revisions));
    let devices = tally(&input.trials, |t| {
        cell(&format!(
            "{} / {}",
            t.provenance.backend, t.provenance.device
        ))
    });
    let _ = writeln!(md, "| Backend / device | {} |", listed(&devices));
    let adapters: Vec<TrialRecord> = input
        .trials
        .iter()
        .filter(|t| t.method != "full")
        .cloned()
        .collect();
    let modes = tally(&adapters, |t| {
        t.adapter_compute
            .clone()
            .unwrap_or_else(|| "activation_space (not recorded)".into())
    });
    if modes.len() > 1 {
        let _ = writeln!(md, "| Adapter compute | {} |", listed(&modes));
    }
    let _ = writeln!(md, "| Wall time | {} |", duration(input.wall_seconds));
    let _ = writeln!(
        md,
        "| Trials | {} ({} diverged) |",
        input.trials.len(),
        diverged
    );
    let _ = writeln!(
        md,
        "| Methods | {} |",
        cell(&methods.into_iter().collect::<Vec<_>>().join(", "))
    );
    let _ = writeln!(
        md,
        "| Ranks | {} |",
        if ranks.is_empty() {
            "none (full fine-tuning only)".to_string()
        } else {
            ranks
                .iter()
                .map(|r| r.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        }
    );
    match (lrs.first(), lrs.last()) {
        (Some(lo), Some(hi)) => {
            let _ = writeln!(
                md,
                "| Learning rates | {} from {} to {} |",
                lrs.len(),
                fmt_lr(*lo),
                fmt_lr(*hi)
            );
        }
        _ => {
            let _ = writeln!(md, "| Learning rates | none |");
        }
    }
    let _ = writeln!(md, "| Seeds | {} |\n", seeds.len());
    let lm_spreads = match &input.language_model {
        Some(_) => perplexity_spreads(&perplexity_rows(&input.trials), &input.trials),
        None => Vec::new(),
    };
    if let Some(widest) = lm_spreads
        .iter()
        .max_by(|a, b| relative_spread(&a.tuned).total_cmp(&relative_spread(&b.tuned)))
    {
        let _ = writeln!(
            md,
            "**After LR tuning the methods' perplexities land within {:.1}% of each other** \
             (the widest gap over {} rank{}, at rank {}).\n",
            relative_spread(&widest.tuned) * 100.0,
            lm_spreads.len(),
            if lm_spreads.len() == 1 { "" } else { "s" },
            widest.rank
        );
    } else if let Some(widest) = tuned
        .iter()
        .max_by(|a, b| a.spread().total_cmp(&b.spread()))
    {
        let _ = writeln!(
            md,
            "**After LR tuning the methods land within {} points of each other** \
             (the widest gap over {} comparison{}, at rank {}).\n",
            pct(widest.spread()),
            tuned.len(),
            if tuned.len() == 1 { "" } else { "s" },
            widest.place()
        );
    }
    let _ = writeln!(
        md,
        "<details><summary>Config (TOML)</summary>\n\n```toml\n{}\n```\n\n</details>\n",
        input.config_toml.trim_end()
    );
}

/// Each method's best mean accuracy per rank, its CI and LR band.
fn render_best_accuracy(md: &mut String, rows: &[CellSummary]) {
    md.push_str("## Best accuracy per method and rank\n\n");
    md.push_str(
        "Accuracy in percent: the mean over seeds at the learning rate that maximizes \
         that mean (a tie of means goes to the lower mean validation loss), ± the \
         half-width of its 95% confidence interval (Student's t, n − 1 degrees of \
         freedom). That mean is optimistic: the LR was chosen on the seeds it averages. \
         *Held out* chooses the LR on all seeds but one, scores the one left out there, \
         and averages over which seed is left out. The LR band holds the learning rates \
         whose mean lies within the best's confidence interval: the seeds cannot tell \
         them from the best, so statements about where a method's best LR lies rest on \
         the band, not on the single best point.\n\n",
    );
    md.push_str(
        "| Method | Rank | Best accuracy, % | Held out, % | Seeds | Best LR | LR band (within the CI) |\n",
    );
    md.push_str("|---|---:|---:|---:|---:|---:|---|\n");
    for row in rows {
        let b = &row.best;
        let held_out = row.held_out.map_or("–".to_string(), |(v, _)| pct(v));
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} |",
            cell(&b.label),
            rank_name(b.rank),
            pct_ci(b.mean, b.half_width, b.n),
            held_out,
            b.n,
            fmt_lr(b.lr),
            band_text(row)
        );
    }
    md.push('\n');
}

/// Each method at its own best LR: how far apart the methods land.
fn render_spread_after_tuning(md: &mut String, tuned: &[Spread]) {
    md.push_str("## How far apart the methods land after LR tuning\n\n");
    if tuned.is_empty() {
        md.push_str("No rank has two or more methods to compare.\n\n");
    } else {
        md.push_str(
            "Each method at its own best learning rate; the spread is the best minus the \
             worst mean accuracy, in percentage points.\n\n",
        );
        md.push_str("| Rank | Methods | Top | Bottom | Spread (points) |\n");
        md.push_str("|---:|---:|---|---|---:|\n");
        for s in tuned {
            let (top, bottom) = (s.top().expect("two methods"), s.bottom().expect("two"));
            let _ = writeln!(
                md,
                "| {} | {} | {} ({}) | {} ({}) | {} |",
                s.place(),
                s.methods.len(),
                cell(&top.label),
                pct(top.acc),
                cell(&bottom.label),
                pct(bottom.acc),
                pct(s.spread())
            );
        }
        md.push('\n');
        for s in tuned {
            let _ = writeln!(
                md,
                "- At rank {}, after LR tuning the methods land within {} points of each other.",
                s.place(),
                pct(s.spread())
            );
        }
        md.push('\n');
    }
}

/// Every method at LoRA's best LR, beside the spread after tuning.
fn render_spread_at_one_lr(md: &mut String, fixed: &[Spread], tuned: &[Spread]) {
    md.push_str("## The same comparison at one fixed learning rate\n\n");
    if fixed.is_empty() {
        md.push_str(
            "No rank has a LoRA cell and another method sharing its best learning rate, \
             so there is no single-LR comparison to show.\n\n",
        );
    } else {
        md.push_str(
            "Every method read at the one learning rate that is best for LoRA at that \
             rank, as a comparison that tunes only the baseline's LR would report it.\n\n",
        );
        md.push_str(
            "| Rank | LR (LoRA's best) | Top | Bottom | Spread at this LR (points) | Spread after tuning (points) |\n",
        );
        md.push_str("|---:|---:|---|---|---:|---:|\n");
        for s in fixed {
            let (top, bottom) = (s.top().expect("two methods"), s.bottom().expect("two"));
            let after = tuned
                .iter()
                .find(|t| (t.rank, &t.budget) == (s.rank, &s.budget))
                .map_or("n/a".to_string(), |t| pct(t.spread()));
            let _ = writeln!(
                md,
                "| {} | {} | {} ({}) | {} ({}) | {} | {} |",
                s.place(),
                fmt_lr(s.lr.unwrap_or(f64::NAN)),
                cell(&top.label),
                pct(top.acc),
                cell(&bottom.label),
                pct(bottom.acc),
                pct(s.spread()),
                after
            );
        }
        md.push('\n');
        for s in fixed {
            if let Some(t) = tuned
                .iter()
                .find(|t| (t.rank, &t.budget) == (s.rank, &s.budget))
            {
                let _ = writeln!(
                    md,
                    "- At rank {}, one LR ({}) puts the methods {} points apart; tuning each \
                     method's LR puts them {} points apart.",
                    s.place(),
                    fmt_lr(s.lr.unwrap_or(f64::NAN)),
                    pct(s.spread()),
                    pct(t.spread())
                );
            }
            if !s.missing.is_empty() {
                let _ = writeln!(
                    md,
                    "  (Not in this LR's grid: {}.)",
                    cell(&s.missing.join(", "))
                );
            }
        }
        md.push('\n');
    }
}

/// Every figure with its caption.
fn render_figures(md: &mut String, input: &ReportInput, curves: &[CellCurve]) {
    if !input.figures.is_empty() {
        md.push_str("## Figures\n\n");
        let labels: BTreeMap<String, String> = curves
            .iter()
            .map(|c| (crate::draw::file_stem(&c.kind), crate::curve_label(c)))
            .collect();
        for path in &input.figures {
            let text = path.to_string_lossy().replace('\\', "/");
            let stem = path
                .file_stem()
                .map(|s| s.to_string_lossy().to_string())
                .unwrap_or_default();
            let _ = writeln!(
                md,
                "### {}\n\n![{}]({})\n",
                figure_caption(&stem, &labels),
                stem,
                text
            );
        }
    }
}

/// Trials and divergences per method, and the first diverged trials.
fn render_trials(md: &mut String, input: &ReportInput) {
    let diverged = input.trials.iter().filter(|t| t.diverged).count();
    md.push_str("## Trials\n\n");
    let mut per_method: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for t in &input.trials {
        let e = per_method
            .entry(records::method_label(&t.method))
            .or_default();
        e.0 += 1;
        e.1 += usize::from(t.diverged);
    }
    let _ = writeln!(
        md,
        "{} trials, {} diverged (non-finite loss).\n",
        input.trials.len(),
        diverged
    );
    md.push_str("| Method | Trials | Diverged |\n|---|---:|---:|\n");
    for (m, (n, d)) in &per_method {
        let _ = writeln!(md, "| {} | {} | {} |", cell(m), n, d);
    }
    md.push('\n');
    if diverged > 0 {
        md.push_str("Diverged trials:\n\n");
        for (listed, t) in input.trials.iter().filter(|t| t.diverged).enumerate() {
            if listed == 20 {
                let _ = writeln!(md, "- … and {} more", diverged - listed);
                break;
            }
            let _ = writeln!(
                md,
                "- {} rank {} LR {} seed {}",
                records::method_label(&t.method),
                rank_name(t.rank),
                fmt_lr(t.lr),
                t.seed
            );
        }
        md.push('\n');
    }
}

fn render_comparison(
    md: &mut String,
    this: &str,
    rows: &[CellSummary],
    other: &str,
    other_trials: &[TrialRecord],
) {
    let other_rows = summarize(&curves(other_trials), other_trials);
    let key = |r: &CellSummary| (r.best.rank, r.best.kind.clone());
    let mine: BTreeMap<_, _> = rows.iter().map(|r| (key(r), r)).collect();
    let theirs: BTreeMap<_, _> = other_rows.iter().map(|r| (key(r), r)).collect();
    let keys: BTreeSet<_> = mine.keys().chain(theirs.keys()).cloned().collect();
    let _ = writeln!(md, "## Comparison with `{other}`\n");
    let _ = writeln!(
        md,
        "Best accuracy (%, mean ± 95% CI over seeds at the best LR) per method and rank in \
         both experiments; Δ is `{this}` minus `{other}`, in points.\n"
    );
    let _ = writeln!(
        md,
        "| Method | Rank | {} | {} | Δ (points) |\n|---|---:|---:|---:|---:|",
        cell(this),
        cell(other)
    );
    for k in &keys {
        let a = mine.get(k);
        let b = theirs.get(k);
        let label = a.or(b).map(|r| r.best.label.clone()).unwrap_or_default();
        let show = |r: Option<&&CellSummary>| {
            r.map_or("—".to_string(), |r| {
                format!(
                    "{} at {}",
                    pct_ci(r.best.mean, r.best.half_width, r.best.n),
                    fmt_lr(r.best.lr)
                )
            })
        };
        let delta = match (a, b) {
            (Some(a), Some(b)) => pct(a.best.mean - b.best.mean),
            _ => "—".to_string(),
        };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} |",
            cell(&label),
            rank_name(k.0),
            show(a),
            show(b),
            delta
        );
    }
    md.push('\n');
    let spread = |rows: &[CellSummary]| {
        let mut per_rank: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
        for r in rows.iter().filter(|r| r.best.rank > 0) {
            per_rank.entry(r.best.rank).or_default().push(r.best.mean);
        }
        per_rank
            .values()
            .filter(|v| v.len() >= 2)
            .map(|v| {
                let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let min = v.iter().copied().fold(f64::INFINITY, f64::min);
                max - min
            })
            .fold(f64::NAN, f64::max)
    };
    let (sa, sb) = (spread(rows), spread(&other_rows));
    if sa.is_finite() && sb.is_finite() {
        let _ = writeln!(
            md,
            "After LR tuning the methods land within {} points of each other in `{this}` and \
             within {} points in `{other}` (widest gap over ranks).\n",
            pct(sa),
            pct(sb)
        );
    }
}

/// The "Sharpness" section: λmax per cell, its product with the best LR, and
/// how well `best_lr ≈ c / λmax` fits.
/// "Best learning rate across ranks": does the optimum move with the rank
/// (the alpha rule decides), and how it compares with full fine-tuning's.
fn render_lr_across_ranks(md: &mut String, rows: &[CellSummary], lrs: &[f64], by: Metric) {
    let kinds = best_lr_across_ranks(rows);
    // Full fine-tuning's best LR per budget: each kind is compared with the
    // full fine-tuning of its own budget.
    let fulls: BTreeMap<&str, (&str, f64)> = rows
        .iter()
        .filter(|r| r.best.rank == 0)
        .map(|r| (r.best.budget.as_str(), (r.best.label.as_str(), r.best.lr)))
        .collect();
    // The ratio column's name: full fine-tuning's own label where it has
    // one budget, a generic one where each budget has its own.
    let full = match fulls.values().collect::<Vec<_>>()[..] {
        [] => None,
        [&(label, _)] => Some(label.to_string()),
        _ => Some("full FT".to_string()),
    };
    let several_ranks = kinds.iter().any(|k| k.best.len() > 1);
    if kinds.is_empty() || (!several_ranks && full.is_none()) {
        return;
    }
    let ranks: BTreeSet<usize> = kinds
        .iter()
        .flat_map(|k| k.best.iter().map(|&(r, _)| r))
        .collect();
    let (title, best) = match by {
        Metric::Accuracy => ("", "maximizes each method's mean accuracy"),
        Metric::Perplexity => (
            " (by perplexity)",
            "minimizes each method's mean perplexity",
        ),
    };
    let _ = write!(
        md,
        "## Best learning rate across ranks{title}\n\n\
         The learning rate that {best}, per rank. *Drift* \
         is the best LR at the largest rank over the best LR at the smallest: 1× means the \
         optimum does not move with the rank."
    );
    if let Some(step) = lr_grid_step(lrs) {
        let _ = write!(
            md,
            " The grid's neighbouring LRs are {step:.2}× apart, so a drift within \
             ÷{step:.2}…×{step:.2} is one grid step, the finest shift the grid resolves."
        );
    }
    if let Some(label) = &full {
        match fulls.values().collect::<Vec<_>>()[..] {
            [&(_, lr)] => {
                let _ = write!(
                    md,
                    " *÷ {label}* is each best LR over {label}'s best ({}).",
                    fmt_lr(lr)
                );
            }
            _ => {
                let _ = write!(
                    md,
                    " *÷ {label}* is each best LR over full fine-tuning's best at the same budget."
                );
            }
        }
    }
    md.push_str("\n\n| Method |");
    for r in &ranks {
        let _ = write!(md, " r={r} |");
    }
    md.push_str(" Drift |");
    if let Some(label) = &full {
        let _ = write!(md, " ÷ {} |", cell(label));
    }
    md.push_str("\n|---|");
    for _ in &ranks {
        md.push_str("---:|");
    }
    md.push_str("---:|");
    if full.is_some() {
        md.push_str("---|");
    }
    md.push('\n');
    for k in &kinds {
        let _ = write!(md, "| {} |", cell(&k.label));
        for r in &ranks {
            match k.best.iter().find(|(rank, _)| rank == r) {
                Some((_, lr)) => {
                    let _ = write!(md, " {} |", fmt_lr(*lr));
                }
                None => md.push_str(" – |"),
            }
        }
        let _ = write!(md, " {:.2}× |", k.drift());
        if full.is_some() {
            let full_lr = fulls.get(k.budget.as_str()).map_or(f64::NAN, |f| f.1);
            let ratios: Vec<String> = k
                .best
                .iter()
                .map(|(r, lr)| format!("r={r}: {:.2}×", lr / full_lr))
                .collect();
            let _ = write!(md, " {} |", ratios.join(", "));
        }
        md.push('\n');
    }
    md.push('\n');
}

/// "Best learning rate across budgets": does the optimum move with the
/// batch size or the number of epochs.
fn render_lr_across_budgets(md: &mut String, rows: &[CellSummary], lrs: &[f64]) {
    let groups = best_lr_across_budgets(rows);
    if groups.is_empty() {
        return;
    }
    let budgets: BTreeSet<(usize, usize)> = groups
        .iter()
        .flat_map(|g| g.best.iter().map(|p| (p.batch_size, p.epochs)))
        .collect();
    md.push_str("## Best learning rate across budgets\n\n");
    md.push_str(
        "The learning rate that maximizes each method's mean accuracy at each fine-tuning \
         budget (batch size `bs`, epochs `ep`), with the accuracy there in percent and the \
         LR band (≥ 95% of that accuracy). † marks a budget that did not learn (best \
         accuracy below half the method's best budget): its best LR is noise and is left \
         out of the drift and the ratios below. *Drift* is the largest best LR over the \
         smallest: 1× means the optimum does not move with the budget.",
    );
    if let Some(step) = lr_grid_step(lrs) {
        let _ = write!(
            md,
            " Neighbouring LRs of the grid are {step:.2}× apart (one grid step)."
        );
    }
    md.push_str("\n\n| Method | Rank |");
    for &(b, e) in &budgets {
        let _ = write!(md, " {} |", records::budget_label(b, e));
    }
    md.push_str(" Drift |\n|---|---:|");
    for _ in &budgets {
        md.push_str("---:|");
    }
    md.push_str("---:|\n");
    for g in &groups {
        let _ = write!(md, "| {} | {} |", cell(&g.label), rank_name(g.rank));
        for &(b, e) in &budgets {
            match g
                .best
                .iter()
                .position(|p| (p.batch_size, p.epochs) == (b, e))
            {
                Some(i) => {
                    let p = &g.best[i];
                    let mark = if g.learned(i) { "" } else { "†" };
                    let band = match (p.band.first(), p.band.last()) {
                        (Some(lo), Some(hi)) if p.band.len() > 1 => {
                            format!(" {}–{}", fmt_lr(*lo), fmt_lr(*hi))
                        }
                        _ => String::new(),
                    };
                    let _ = write!(md, " {}{mark} ({}){band} |", fmt_lr(p.lr), pct(p.acc));
                }
                None => md.push_str(" – |"),
            }
        }
        let _ = writeln!(md, " {:.2}× |", g.drift());
    }
    md.push('\n');
    for g in &groups {
        let mut parts = Vec::new();
        for (epochs, batch_ratio, lr_ratio) in g.axis_ratios(false) {
            parts.push(format!(
                "at {epochs} epoch{}, {batch_ratio:.0}× the batch size moves the best LR \
                 {lr_ratio:.2}×",
                if epochs == 1 { "" } else { "s" }
            ));
        }
        for (batch, epoch_ratio, lr_ratio) in g.axis_ratios(true) {
            parts.push(format!(
                "at batch size {batch}, {epoch_ratio:.0}× the epochs moves it {lr_ratio:.2}×"
            ));
        }
        if !parts.is_empty() {
            let _ = writeln!(
                md,
                "- {} ({}): {}.",
                cell(&g.label),
                rank_name(g.rank),
                parts.join("; ")
            );
        }
    }
    md.push('\n');
}

fn render_sharpness(md: &mut String, points: &[crate::data::SharpnessPoint], after_steps: usize) {
    if after_steps == 0 {
        md.push_str("## Sharpness at initialisation vs best learning rate\n\n");
        md.push_str(
            "λmax: the largest eigenvalue of the fine-tuning loss Hessian with respect to \
             the trainable parameters, at initialisation (`lrscape sharpness`, mean over \
             seeds; `sharpness.json`). Best LR: of the mean over seeds.\n\n",
        );
    } else {
        let _ = writeln!(
            md,
            "## Sharpness after {after_steps} steps vs best learning rate\n\n\
             λmax as above, measured after every member trained {after_steps} steps at its \
             cell's best LR (`lrscape sharpness --after-steps {after_steps}`, mean over \
             seeds; `sharpness-after-{after_steps}.json`).\n"
        );
    }
    md.push_str("| method | rank | λmax | best LR | best LR × λmax |\n|---|---|---|---|---|\n");
    for p in points {
        let _ = writeln!(
            md,
            "| {} | {} | {:.4} | {} | {:.4} |",
            cell(&p.label),
            rank_name(p.rank),
            p.lambda_max,
            fmt_lr(p.best_lr),
            p.best_lr * p.lambda_max
        );
    }
    md.push('\n');
    match crate::data::sharpness_fit(points) {
        Some(fit) => {
            let _ = writeln!(
                md,
                "Across {} cells, log λmax vs log best LR: Pearson {:+.3}, Spearman {:+.3}. \
                 Fitting best LR ≈ c / λmax: c = {:.4} (geometric mean of best LR × λmax; \
                 geometric SD × / ÷ {:.2}, range {:.4} … {:.4}).\n",
                fit.n, fit.pearson, fit.spearman, fit.c, fit.c_spread, fit.c_min, fit.c_max
            );
        }
        None => md.push_str("Fewer than two cells have a positive λmax and a best LR: no fit.\n\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration(12.34), "12.3 s");
        assert_eq!(duration(125.0), "2 min 05 s");
        assert_eq!(duration(3723.0), "1 h 02 min 03 s");
        assert_eq!(duration(f64::NAN), "unknown");
    }

    #[test]
    fn percent_formats() {
        assert_eq!(pct(0.91234), "91.23");
        assert_eq!(pct_ci(0.5, 0.01, 3), "50.00 ± 1.00");
        assert_eq!(pct_ci(0.5, 0.0, 1), "50.00 (1 seed)");
    }
}
