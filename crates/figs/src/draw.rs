//! Drawing with plotters. Each figure is drawn by one function generic over
//! the backend, so the PNG and the SVG come from the same code.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::coord::ranged1d::{AsRangedCoord, DefaultFormatting, KeyPointHint, ValueFormatter};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::data::{
    AlignedSeries, BestPoint, HeatmapData, LrSeries, RankSeries, SharpnessFit, SharpnessPoint,
};
use crate::{FigsError, Format, decade_ticks};
use records::Metric;

/// Pixel size of every figure (PNG); the SVG has the same view box.
pub const WIDTH: u32 = 1000;
pub const HEIGHT: u32 = 700;

/// The family name the embedded font is registered under.
const FONT: &str = "sans-serif";
/// DejaVu Sans (Bitstream Vera licence, see `assets/`): embedded so figures
/// render the same on any machine without system font libraries.
static FONT_BYTES: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

pub(crate) fn ensure_font() -> Result<(), FigsError> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| {
        plotters::style::register_font(FONT, FontStyle::Normal, FONT_BYTES).is_ok()
    });
    if ok { Ok(()) } else { Err(FigsError::Font) }
}

type DrawResult = Result<(), String>;

fn err<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

fn font(size: u32) -> TextStyle<'static> {
    (FONT, size).into_font().into()
}

fn anchored(size: u32, h: HPos, v: VPos) -> TextStyle<'static> {
    font(size).pos(Pos::new(h, v))
}

/// A linear f64 axis whose ticks are exactly the given values (decades,
/// grid ranks, cell centres), labelled by the chart's formatter.
#[derive(Debug, Clone)]
struct Ticked {
    lo: f64,
    hi: f64,
    ticks: Vec<f64>,
}

fn ticked(range: std::ops::Range<f64>, ticks: Vec<f64>) -> Ticked {
    let (lo, hi) = (range.start, range.end);
    let ticks = ticks
        .into_iter()
        .filter(|t| t.is_finite() && *t >= lo.min(hi) && *t <= lo.max(hi))
        .collect();
    Ticked { lo, hi, ticks }
}

impl Ranged for Ticked {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        let span = self.hi - self.lo;
        if span == 0.0 || !value.is_finite() {
            return limit.0;
        }
        let f = (value - self.lo) / span;
        limit.0 + (f * (limit.1 - limit.0) as f64).round() as i32
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            Vec::new()
        } else {
            self.ticks.clone()
        }
    }

    fn range(&self) -> std::ops::Range<f64> {
        self.lo..self.hi
    }
}

/// A figure that can draw itself on any backend.
pub(crate) trait Figure {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult;
}

/// Draws `figure` to `base` + `.png` / `.svg`.
pub(crate) fn save(
    figure: &impl Figure,
    dir: &Path,
    stem: &str,
    formats: &[Format],
) -> Result<Vec<PathBuf>, FigsError> {
    std::fs::create_dir_all(dir).map_err(|source| FigsError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut out = Vec::new();
    for format in formats {
        let path = dir.join(format!("{stem}.{}", format.extension()));
        let fail = |message: String| FigsError::Draw {
            path: path.clone(),
            message,
        };
        match format {
            Format::Png => {
                let root = BitMapBackend::new(&path, (WIDTH, HEIGHT)).into_drawing_area();
                figure.draw(&root).map_err(fail)?;
                root.present().map_err(|e| fail(e.to_string()))?;
            }
            Format::Svg => {
                let root = SVGBackend::new(&path, (WIDTH, HEIGHT)).into_drawing_area();
                figure.draw(&root).map_err(fail)?;
                root.present().map_err(|e| fail(e.to_string()))?;
            }
        }
        out.push(path);
    }
    Ok(out)
}

/// A file-name-safe form of a method kind (`lora@constant:32/...`).
pub(crate) fn file_stem(kind: &str) -> String {
    kind.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Colours per method kind, the same in every figure; full fine-tuning is
/// black (and dashed where it is a reference line) where it is one kind, and
/// coloured like the others where it is several (one per budget).
#[derive(Debug, Clone)]
pub(crate) struct Colors(BTreeMap<String, RGBColor>);

/// Tableau's ten colours, then the same hues darkened: twenty kinds (a
/// budget grid: 2 methods × 6 budgets) before a colour repeats.
const PALETTE: [RGBColor; 20] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
    RGBColor(16, 60, 90),
    RGBColor(150, 75, 8),
    RGBColor(22, 85, 22),
    RGBColor(120, 20, 20),
    RGBColor(80, 55, 105),
    RGBColor(75, 45, 40),
    RGBColor(130, 50, 105),
    RGBColor(60, 60, 60),
    RGBColor(100, 100, 15),
    RGBColor(10, 100, 110),
];

impl Colors {
    pub(crate) fn new<'a>(kinds: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let kinds: Vec<(&str, &str)> = kinds.into_iter().collect();
        let full_kinds: std::collections::BTreeSet<&str> = kinds
            .iter()
            .filter(|(_, method)| *method == "full")
            .map(|(kind, _)| *kind)
            .collect();
        let mut map = BTreeMap::new();
        let mut next = 0;
        for (kind, method) in kinds {
            if map.contains_key(kind) {
                continue;
            }
            let color = if method == "full" && full_kinds.len() == 1 {
                BLACK
            } else {
                next += 1;
                PALETTE[(next - 1) % PALETTE.len()]
            };
            map.insert(kind.to_string(), color);
        }
        Colors(map)
    }

    fn of(&self, kind: &str) -> RGBColor {
        self.0.get(kind).copied().unwrap_or(BLACK)
    }
}

/// `1e-4`, `3.2e-4`: compact learning rates for tick and cell labels.
pub(crate) fn fmt_lr(lr: f64) -> String {
    if !(lr.is_finite() && lr > 0.0) {
        return format!("{lr}");
    }
    let mut e = lr.log10().floor() as i32;
    let mut m = (lr / 10f64.powi(e) * 10.0).round() / 10.0;
    if m >= 10.0 {
        m /= 10.0;
        e += 1;
    }
    if (m - 1.0).abs() < 1e-9 {
        format!("1e{e}")
    } else {
        format!("{m}e{e}")
    }
}

/// `10⁻⁴` for a decade tick at log10 value `k`.
fn pow10_label(k: f64) -> String {
    let k = k.round() as i32;
    let sup: String = k
        .to_string()
        .chars()
        .map(|c| match c {
            '-' => '⁻',
            '0' => '⁰',
            '1' => '¹',
            '2' => '²',
            '3' => '³',
            '4' => '⁴',
            '5' => '⁵',
            '6' => '⁶',
            '7' => '⁷',
            '8' => '⁸',
            _ => '⁹',
        })
        .collect();
    format!("10{sup}")
}

/// A log10 axis over `values` (positive, finite): the padded range in log10
/// units and its tick positions, decades where at least two fall inside,
/// else the values themselves.
fn log10_axis(values: &[f64]) -> (f64, f64, Vec<f64>, bool) {
    let logs: Vec<f64> = values
        .iter()
        .filter(|v| v.is_finite() && **v > 0.0)
        .map(|v| v.log10())
        .collect();
    let (lo, hi) = min_max(&logs).unwrap_or((-4.0, -2.0));
    let pad = ((hi - lo) * 0.06).max(0.25);
    let (lo, hi) = (lo - pad, hi + pad);
    let decades: Vec<f64> = decade_ticks(10f64.powf(lo), 10f64.powf(hi))
        .into_iter()
        .map(|d| d.log10().round())
        .filter(|k| *k >= lo && *k <= hi)
        .collect();
    if decades.len() >= 2 {
        (lo, hi, decades, true)
    } else {
        // The values themselves, each at least MIN_TICK_GAP from the last
        // kept one, so that labels of nearby values do not overprint.
        let mut ticks = logs;
        ticks.sort_by(f64::total_cmp);
        ticks.dedup_by(|a, b| (*a - *b).abs() < MIN_TICK_GAP * (hi - lo));
        (lo, hi, ticks, false)
    }
}

/// Smallest distance between value ticks on a log axis, as a fraction of the
/// axis (about one label's width on a figure 1000 pixels wide).
const MIN_TICK_GAP: f64 = 0.08;

fn log_tick_label(x: f64, decades: bool) -> String {
    if decades {
        pow10_label(x)
    } else {
        fmt_lr(10f64.powf(x))
    }
}

fn min_max(values: &[f64]) -> Option<(f64, f64)> {
    let finite = values.iter().copied().filter(|v| v.is_finite());
    let lo = finite.clone().fold(f64::INFINITY, f64::min);
    let hi = finite.fold(f64::NEG_INFINITY, f64::max);
    (lo <= hi).then_some((lo, hi))
}

/// A padded y range for accuracies (with their CI ends), inside [0, 1].
fn accuracy_range(values: &[f64]) -> (f64, f64) {
    let Some((lo, hi)) = min_max(values) else {
        return (0.0, 1.0);
    };
    let span = (hi - lo).max(0.02);
    let lo = (lo - span * 0.08).max(0.0);
    let hi = (hi + span * 0.08).min(1.0);
    if hi > lo { (lo, hi) } else { (0.0, 1.0) }
}

fn finite_or(v: f64, default: f64) -> f64 {
    if v.is_finite() { v } else { default }
}

/// One row of a legend drawn beside the plot (never over the data).
pub(crate) struct LegendEntry {
    label: String,
    color: RGBColor,
    dashed: bool,
}

fn legend_width(entries: &[LegendEntry]) -> u32 {
    let chars = entries
        .iter()
        .map(|e| e.label.chars().count())
        .max()
        .unwrap_or(0) as u32;
    (chars * 9 + 80).clamp(170, 420)
}

fn draw_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    entries: &[LegendEntry],
) -> DrawResult {
    if entries.is_empty() {
        return Ok(());
    }
    let top = 30;
    let row = 28;
    let (w, _) = area.dim_in_pixel();
    let bottom = top + row * entries.len() as i32;
    area.draw(&Rectangle::new(
        [(4, top - 20), (w as i32 - 8, bottom - 6)],
        BLACK.mix(0.4).stroke_width(1),
    ))
    .map_err(err)?;
    for (i, e) in entries.iter().enumerate() {
        let y = top + row * i as i32;
        if e.dashed {
            for (a, b) in [(12, 22), (28, 38), (44, 50)] {
                area.draw(&PathElement::new(
                    vec![(a, y), (b, y)],
                    e.color.stroke_width(3),
                ))
                .map_err(err)?;
            }
        } else {
            area.draw(&PathElement::new(
                vec![(12, y), (50, y)],
                e.color.stroke_width(3),
            ))
            .map_err(err)?;
            area.draw(&Circle::new((31, y), 5, e.color.filled()))
                .map_err(err)?;
        }
        area.draw(&Text::new(
            e.label.clone(),
            (60, y),
            anchored(16, HPos::Left, VPos::Center),
        ))
        .map_err(err)?;
    }
    Ok(())
}

/// Title across the top, a legend column at the right; returns the plot area.
fn layout<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    legend: &[LegendEntry],
) -> Result<DrawingArea<DB, Shift>, String> {
    root.fill(&WHITE).map_err(err)?;
    let body = root
        .margin(10, 0, 0, 0)
        .titled(title, font(22))
        .map_err(err)?;
    let (w, _) = body.dim_in_pixel();
    let lw = if legend.is_empty() {
        0
    } else {
        legend_width(legend)
    };
    let (plot, side) = body.split_horizontally(w - lw);
    let side = side.margin(40, 0, 0, 0);
    draw_legend(&side, legend)?;
    Ok(plot)
}

/// Axis titles and tick labels of a chart drawn by [`chart_with_axes`].
struct Axes<'f> {
    x_desc: &'f str,
    y_desc: &'f str,
    x_label: &'f dyn Fn(&f64) -> String,
    y_label: &'f dyn Fn(&f64) -> String,
    /// Keep plotters' light grid lines (log-LR axes use them as minor ticks).
    light_grid: bool,
}

/// The line charts' common frame: margins, label areas, and the mesh with
/// the shared fonts and grid style.
fn chart_with_axes<'a, DB, Y>(
    plot: &'a DrawingArea<DB, Shift>,
    x: Ticked,
    y: Y,
    axes: &Axes,
) -> Result<ChartContext<'a, DB, Cartesian2d<Ticked, Y::CoordDescType>>, String>
where
    DB: DrawingBackend + 'a,
    Y: AsRangedCoord<Value = f64>,
    Y::CoordDescType: ValueFormatter<f64>,
{
    let mut chart = ChartBuilder::on(plot)
        .margin(16)
        .x_label_area_size(60)
        .y_label_area_size(80)
        .build_cartesian_2d(x, y)
        .map_err(err)?;
    let mut mesh = chart.configure_mesh();
    mesh.x_desc(axes.x_desc)
        .y_desc(axes.y_desc)
        .x_label_formatter(axes.x_label)
        .y_label_formatter(axes.y_label)
        .label_style(font(16))
        .axis_desc_style(font(18))
        .bold_line_style(BLACK.mix(0.12));
    if !axes.light_grid {
        mesh.light_line_style(TRANSPARENT);
    }
    mesh.draw().map_err(err)?;
    Ok(chart)
}

fn error_bar(x: f64, lo: f64, hi: f64, cap: f64, color: RGBColor) -> Vec<PathElement<(f64, f64)>> {
    let style = color.stroke_width(2);
    vec![
        PathElement::new(vec![(x, lo), (x, hi)], style),
        PathElement::new(vec![(x - cap, lo), (x + cap, lo)], style),
        PathElement::new(vec![(x - cap, hi), (x + cap, hi)], style),
    ]
}

fn error_bar_y(
    y: f64,
    lo: f64,
    hi: f64,
    cap: f64,
    color: RGBColor,
) -> Vec<PathElement<(f64, f64)>> {
    let style = color.stroke_width(2);
    vec![
        PathElement::new(vec![(lo, y), (hi, y)], style),
        PathElement::new(vec![(lo, y - cap), (lo, y + cap)], style),
        PathElement::new(vec![(hi, y - cap), (hi, y + cap)], style),
    ]
}

const ACC_DESC: &str = "Validation accuracy (fraction correct)";
const PPL_DESC: &str = "Validation perplexity (lower is better; higher values on the top edge)";
const RANK_DESC: &str = "Adapter rank r (log₂ scale)";

/// A padded y range for perplexities: from just below the lowest mean up
/// to at most `PERPLEXITY_SPAN` times it, so a diverged or untrained LR
/// (perplexity near the vocabulary size) and its wide CI do not flatten the
/// curves near their best; points above are drawn at the top edge.
fn perplexity_range(means: &[f64], ends: &[f64]) -> (f64, f64) {
    let Some((best, _)) = min_max(means) else {
        return (1.0, 2.0);
    };
    let best = best.max(1.0);
    let (lo_end, hi_end) = min_max(ends).unwrap_or((best, best));
    let lo = lo_end.max(best * 0.9).min(best);
    let hi = hi_end.min(best * PERPLEXITY_SPAN).max(best * 1.05);
    let pad = (hi - lo) * 0.06;
    ((lo - pad).max(1.0), hi + pad)
}

const PERPLEXITY_SPAN: f64 = 3.0;

/// `lr_sweep_parity` (accuracy) and `perplexity_vs_lr_r{rank}`: a metric vs
/// LR per method at one rank.
pub(crate) struct LrSweepFigure<'a> {
    pub rank: usize,
    pub series: &'a [LrSeries],
    pub colors: &'a Colors,
    pub metric: Metric,
}

impl Figure for LrSweepFigure<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult {
        let legend: Vec<LegendEntry> = self
            .series
            .iter()
            .map(|s| LegendEntry {
                label: s.label.clone(),
                color: self.colors.of(&s.kind),
                dashed: false,
            })
            .collect();
        let what = match self.metric {
            Metric::Accuracy => "Accuracy",
            Metric::Perplexity => "Perplexity",
        };
        let title = format!(
            "{what} vs learning rate at rank {} (mean ± 95% CI over seeds)",
            self.rank
        );
        let plot = layout(root, &title, &legend)?;
        let lrs: Vec<f64> = self.series.iter().flat_map(|s| s.lrs.clone()).collect();
        let (x0, x1, ticks, decades) = log10_axis(&lrs);
        let ends: Vec<f64> = self
            .series
            .iter()
            .flat_map(|s| {
                s.mean.iter().zip(&s.half_width).flat_map(|(m, h)| {
                    let h = finite_or(*h, 0.0);
                    [m - h, m + h]
                })
            })
            .collect();
        let (y0, y1) = match self.metric {
            Metric::Accuracy => accuracy_range(&ends),
            Metric::Perplexity => {
                let means: Vec<f64> = self.series.iter().flat_map(|s| s.mean.clone()).collect();
                perplexity_range(&means, &ends)
            }
        };
        let mut chart = chart_with_axes(
            &plot,
            ticked(x0..x1, ticks),
            y0..y1,
            &Axes {
                x_desc: "Learning rate (log scale)",
                y_desc: match self.metric {
                    Metric::Accuracy => ACC_DESC,
                    Metric::Perplexity => PPL_DESC,
                },
                x_label: &|x| log_tick_label(*x, decades),
                y_label: &|y| format!("{y:.2}"),
                light_grid: false,
            },
        )?;
        for s in self.series {
            let color = self.colors.of(&s.kind);
            let pts: Vec<(f64, f64, f64)> = s
                .lrs
                .iter()
                .zip(&s.mean)
                .zip(&s.half_width)
                .filter(|((lr, m), _)| **lr > 0.0 && m.is_finite())
                // A point above the range sits on the top edge, without a CI.
                .map(|((lr, m), h)| {
                    let h = if *m > y1 { 0.0 } else { finite_or(*h, 0.0) };
                    (lr.log10(), m.min(y1), h)
                })
                .collect();
            if pts.iter().any(|p| p.2 > 0.0) && pts.len() >= 2 {
                let mut band: Vec<(f64, f64)> =
                    pts.iter().map(|p| (p.0, (p.1 + p.2).min(y1))).collect();
                band.extend(pts.iter().rev().map(|p| (p.0, (p.1 - p.2).max(y0))));
                chart
                    .draw_series(std::iter::once(Polygon::new(
                        band,
                        color.mix(0.15).filled(),
                    )))
                    .map_err(err)?;
            } else if pts.len() == 1 && pts[0].2 > 0.0 {
                let p = pts[0];
                chart
                    .draw_series(error_bar(
                        p.0,
                        (p.1 - p.2).max(y0),
                        (p.1 + p.2).min(y1),
                        0.03,
                        color,
                    ))
                    .map_err(err)?;
            }
            chart
                .draw_series(LineSeries::new(
                    pts.iter().map(|p| (p.0, p.1)),
                    color.stroke_width(3),
                ))
                .map_err(err)?;
            chart
                .draw_series(
                    pts.iter()
                        .map(|p| Circle::new((p.0, p.1), 5, color.filled())),
                )
                .map_err(err)?;
        }
        Ok(())
    }
}

/// `best_of_lr`: the best accuracy of each method at one rank, as dots with
/// CI bars, one row per method.
pub(crate) struct BestOfLrFigure<'a> {
    pub rank: usize,
    pub points: &'a [BestPoint],
    pub colors: &'a Colors,
}

impl Figure for BestOfLrFigure<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult {
        let title = format!(
            "Best accuracy over learning rates at rank {} (mean ± 95% CI over seeds)",
            self.rank
        );
        let plot = layout(root, &title, &[])?;
        let n = self.points.len();
        let ends: Vec<f64> = self
            .points
            .iter()
            .flat_map(|p| {
                let h = finite_or(p.half_width, 0.0);
                [p.mean - h, p.mean + h]
            })
            .collect();
        let (lo, hi) = min_max(&ends).unwrap_or((0.0, 1.0));
        let span = (hi - lo).max(0.02);
        let (x0, x1) = ((lo - span * 0.3).max(0.0), (hi + span * 0.3).min(1.0));
        let (x0, x1) = if x1 > x0 { (x0, x1) } else { (0.0, 1.0) };
        let label_w = self
            .points
            .iter()
            .map(|p| p.label.chars().count())
            .max()
            .unwrap_or(4) as u32
            * 10
            + 60;
        // Row i (from the top) sits at y = n - 1 - i.
        let ticks: Vec<f64> = (0..n).map(|i| i as f64).collect();
        let mut chart = ChartBuilder::on(&plot)
            .margin(16)
            .margin_right(40)
            .x_label_area_size(60)
            .y_label_area_size(label_w.min(380))
            .build_cartesian_2d(x0..x1, ticked(-0.6..n as f64 - 0.4, ticks))
            .map_err(err)?;
        let labels: Vec<String> = self.points.iter().map(|p| p.label.clone()).collect();
        let fmt_y = |y: &f64| {
            let row = n as f64 - 1.0 - y.round();
            labels
                .get(row.max(0.0) as usize)
                .cloned()
                .unwrap_or_default()
        };
        chart
            .configure_mesh()
            .x_desc(ACC_DESC)
            .y_desc("Method")
            .y_label_formatter(&fmt_y)
            .x_label_formatter(&|x| format!("{x:.2}"))
            .label_style(font(16))
            .axis_desc_style(font(18))
            .bold_line_style(BLACK.mix(0.12))
            .light_line_style(TRANSPARENT)
            .draw()
            .map_err(err)?;
        for (i, p) in self.points.iter().enumerate() {
            if !p.mean.is_finite() {
                continue;
            }
            let y = (n - 1 - i) as f64;
            let color = self.colors.of(&p.kind);
            let h = finite_or(p.half_width, 0.0);
            if h > 0.0 {
                chart
                    .draw_series(error_bar_y(
                        y,
                        (p.mean - h).max(x0),
                        (p.mean + h).min(x1),
                        0.12,
                        color,
                    ))
                    .map_err(err)?;
            }
            chart
                .draw_series(std::iter::once(Circle::new((p.mean, y), 8, color.filled())))
                .map_err(err)?;
            let note = if p.n > 1 {
                format!(
                    "{:.2}% ± {:.2} at LR {} ({} seeds)",
                    p.mean * 100.0,
                    h * 100.0,
                    fmt_lr(p.lr),
                    p.n
                )
            } else {
                format!("{:.2}% at LR {} (1 seed)", p.mean * 100.0, fmt_lr(p.lr))
            };
            // Near an end of the axis the note runs inwards, so it is not
            // cut off at the plot's edge.
            let third = (x1 - x0) / 3.0;
            let side = if p.mean > x1 - third {
                HPos::Right
            } else if p.mean < x0 + third {
                HPos::Left
            } else {
                HPos::Center
            };
            chart
                .draw_series(std::iter::once(Text::new(
                    note,
                    (p.mean, y + 0.2),
                    anchored(15, side, VPos::Bottom),
                )))
                .map_err(err)?;
        }
        Ok(())
    }
}

/// Viridis, interpolated between five anchors: perceptually ordered and
/// readable in greyscale.
fn viridis(t: f64) -> RGBColor {
    const ANCHORS: [(f64, f64, f64); 5] = [
        (68.0, 1.0, 84.0),
        (59.0, 82.0, 139.0),
        (33.0, 145.0, 140.0),
        (94.0, 201.0, 98.0),
        (253.0, 231.0, 37.0),
    ];
    let t = if t.is_finite() {
        t.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let pos = t * (ANCHORS.len() - 1) as f64;
    let i = (pos.floor() as usize).min(ANCHORS.len() - 2);
    let f = pos - i as f64;
    let (a, b) = (ANCHORS[i], ANCHORS[i + 1]);
    let mix = |x: f64, y: f64| (x + (y - x) * f).round() as u8;
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// `heatmap_{kind}` and `heatmap_normalized_{kind}`: rank × LR grid with
/// annotated cells and a colour bar.
pub(crate) struct HeatmapFigure<'a> {
    pub data: &'a HeatmapData,
    pub normalized: bool,
}

impl Figure for HeatmapFigure<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult {
        let d = self.data;
        let title = if self.normalized {
            format!(
                "{}: accuracy / best accuracy of its rank (row max = 1)",
                d.label
            )
        } else {
            format!("{}: validation accuracy over rank × learning rate", d.label)
        };
        let plot = layout(root, &title, &[])?;
        let (w, _) = plot.dim_in_pixel();
        let (main, bar) = plot.split_horizontally(w - 160);
        let (nl, nr) = (d.lrs.len(), d.ranks.len());
        let flat: Vec<f64> = d.values.iter().flatten().copied().collect();
        let (mut vmin, mut vmax) = min_max(&flat).unwrap_or((0.0, 1.0));
        if vmax - vmin < 1e-9 {
            vmin -= 0.01;
            vmax += 0.01;
        }
        let centers = |k: usize| (0..k).map(|i| i as f64 + 0.5).collect::<Vec<_>>();
        let mut chart = ChartBuilder::on(&main)
            .margin(16)
            .x_label_area_size(60)
            .y_label_area_size(80)
            .build_cartesian_2d(
                ticked(0.0..nl.max(1) as f64, centers(nl)),
                ticked(0.0..nr.max(1) as f64, centers(nr)),
            )
            .map_err(err)?;
        let lrs = d.lrs.clone();
        let ranks = d.ranks.clone();
        let fmt_x = |x: &f64| {
            lrs.get((x - 0.5).round().max(0.0) as usize)
                .map(|lr| fmt_lr(*lr))
                .unwrap_or_default()
        };
        let fmt_y = |y: &f64| {
            ranks
                .get((y - 0.5).round().max(0.0) as usize)
                .map(|r| r.to_string())
                .unwrap_or_default()
        };
        chart
            .configure_mesh()
            .disable_mesh()
            .x_desc("Learning rate")
            .y_desc("Adapter rank r")
            .x_label_formatter(&fmt_x)
            .y_label_formatter(&fmt_y)
            .label_style(font(16))
            .axis_desc_style(font(18))
            .draw()
            .map_err(err)?;
        let (pw, ph) = chart.plotting_area().dim_in_pixel();
        let cell_w = pw as f64 / nl.max(1) as f64;
        let cell_h = ph as f64 / nr.max(1) as f64;
        let digits = if self.normalized { 2 } else { 3 };
        let text_size = (cell_w / (digits as f64 + 2.2) * 1.45)
            .min(cell_h * 0.45)
            .min(18.0);
        for (j, row) in d.values.iter().enumerate() {
            for (i, v) in row.iter().enumerate() {
                let (x, y) = (i as f64, j as f64);
                let t = (v - vmin) / (vmax - vmin);
                let fill = if v.is_finite() {
                    viridis(t)
                } else {
                    RGBColor(220, 220, 220)
                };
                chart
                    .draw_series(std::iter::once(Rectangle::new(
                        [(x, y), (x + 1.0, y + 1.0)],
                        fill.filled(),
                    )))
                    .map_err(err)?;
                if text_size >= 9.0 {
                    let text = if v.is_finite() {
                        format!("{v:.digits$}")
                    } else {
                        "n/a".to_string()
                    };
                    let ink = if v.is_finite() && t < 0.6 {
                        WHITE
                    } else {
                        BLACK
                    };
                    let style = anchored(text_size as u32, HPos::Center, VPos::Center).color(&ink);
                    chart
                        .draw_series(std::iter::once(Text::new(text, (x + 0.5, y + 0.5), style)))
                        .map_err(err)?;
                }
            }
        }
        // The colour bar, aligned with the plot's vertical extent.
        let mut scale = ChartBuilder::on(&bar)
            .margin_top(16)
            .margin_bottom(16 + 60)
            .margin_right(50)
            .y_label_area_size(70)
            .build_cartesian_2d(0.0..1.0, vmin..vmax)
            .map_err(err)?;
        let bar_desc = if self.normalized {
            "Accuracy / row max"
        } else {
            "Validation accuracy"
        };
        scale
            .configure_mesh()
            .disable_mesh()
            .disable_x_axis()
            .y_desc(bar_desc)
            .y_labels(6)
            .y_label_formatter(&|y| format!("{y:.2}"))
            .label_style(font(15))
            .axis_desc_style(font(16))
            .draw()
            .map_err(err)?;
        let steps = 120;
        let step = (vmax - vmin) / steps as f64;
        scale
            .draw_series((0..steps).map(|k| {
                let y = vmin + k as f64 * step;
                Rectangle::new(
                    [(0.0, y), (1.0, y + step)],
                    viridis(k as f64 / (steps - 1) as f64).filled(),
                )
            }))
            .map_err(err)?;
        Ok(())
    }
}

fn rank_axis(ranks: &[usize]) -> (f64, f64, Vec<f64>) {
    let mut xs: Vec<f64> = ranks
        .iter()
        .filter(|r| **r > 0)
        .map(|r| (*r as f64).log2())
        .collect();
    xs.sort_by(f64::total_cmp);
    xs.dedup();
    let (lo, hi) = min_max(&xs).unwrap_or((0.0, 1.0));
    (lo - 0.4, hi + 0.4, xs)
}

fn rank_label(x: f64) -> String {
    format!("{}", 2f64.powf(x).round() as u64)
}

fn reference_entries(refs: &[BestPoint], what: &str) -> Vec<LegendEntry> {
    refs.iter()
        .map(|p| LegendEntry {
            label: format!("{} ({what})", p.label),
            color: BLACK,
            dashed: true,
        })
        .collect()
}

fn series_entries(series: &[RankSeries], colors: &Colors) -> Vec<LegendEntry> {
    series
        .iter()
        .map(|s| LegendEntry {
            label: s.label.clone(),
            color: colors.of(&s.kind),
            dashed: false,
        })
        .collect()
}

/// `best_of_lr_vs_rank`: the best accuracy over LRs at each rank.
pub(crate) struct BestVsRankFigure<'a> {
    pub series: &'a [RankSeries],
    pub refs: &'a [BestPoint],
    pub colors: &'a Colors,
}

impl Figure for BestVsRankFigure<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult {
        let mut legend = series_entries(self.series, self.colors);
        legend.extend(reference_entries(self.refs, "best LR"));
        let plot = layout(
            root,
            "Best accuracy over learning rates vs rank (mean ± 95% CI over seeds)",
            &legend,
        )?;
        let ranks: Vec<usize> = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.rank))
            .collect();
        let (x0, x1, ticks) = rank_axis(&ranks);
        let ends: Vec<f64> = self
            .series
            .iter()
            .flat_map(|s| s.points.iter())
            .chain(self.refs)
            .flat_map(|p| {
                let h = finite_or(p.half_width, 0.0);
                [p.mean - h, p.mean + h]
            })
            .collect();
        let (y0, y1) = accuracy_range(&ends);
        let mut chart = chart_with_axes(
            &plot,
            ticked(x0..x1, ticks),
            y0..y1,
            &Axes {
                x_desc: RANK_DESC,
                y_desc: ACC_DESC,
                x_label: &|x| rank_label(*x),
                y_label: &|y| format!("{y:.2}"),
                light_grid: false,
            },
        )?;
        for p in self.refs.iter().filter(|p| p.mean.is_finite()) {
            chart
                .draw_series(DashedLineSeries::new(
                    [(x0, p.mean), (x1, p.mean)],
                    12,
                    8,
                    BLACK.stroke_width(2),
                ))
                .map_err(err)?;
        }
        let k = self.series.len();
        for (si, s) in self.series.iter().enumerate() {
            let color = self.colors.of(&s.kind);
            // Side by side, so that equal values stay visible.
            let dx = (si as f64 - (k as f64 - 1.0) / 2.0) * 0.06;
            let pts: Vec<(f64, f64, f64)> = s
                .points
                .iter()
                .filter(|p| p.mean.is_finite())
                .map(|p| {
                    (
                        (p.rank as f64).log2() + dx,
                        p.mean,
                        finite_or(p.half_width, 0.0),
                    )
                })
                .collect();
            for p in pts.iter().filter(|p| p.2 > 0.0) {
                chart
                    .draw_series(error_bar(
                        p.0,
                        (p.1 - p.2).max(y0),
                        (p.1 + p.2).min(y1),
                        0.04,
                        color,
                    ))
                    .map_err(err)?;
            }
            chart
                .draw_series(LineSeries::new(
                    pts.iter().map(|p| (p.0, p.1)),
                    color.stroke_width(3),
                ))
                .map_err(err)?;
            chart
                .draw_series(
                    pts.iter()
                        .map(|p| Circle::new((p.0, p.1), 6, color.filled())),
                )
                .map_err(err)?;
        }
        Ok(())
    }
}

/// `best_lr_vs_rank`: where the best learning rate sits at each rank.
pub(crate) struct BestLrVsRankFigure<'a> {
    pub series: &'a [RankSeries],
    pub refs: &'a [BestPoint],
    pub colors: &'a Colors,
    /// Which metric's best: accuracy (highest) or perplexity (lowest).
    pub metric: Metric,
}

impl Figure for BestLrVsRankFigure<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult {
        let mut legend = series_entries(self.series, self.colors);
        legend.extend(reference_entries(self.refs, "no rank"));
        let title = match self.metric {
            Metric::Accuracy => "Best learning rate (of the mean over seeds) vs rank",
            Metric::Perplexity => {
                "Best learning rate by perplexity (of the mean over seeds) vs rank"
            }
        };
        let plot = layout(root, title, &legend)?;
        let ranks: Vec<usize> = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.rank))
            .collect();
        let (x0, x1, xticks) = rank_axis(&ranks);
        let lrs: Vec<f64> = self
            .series
            .iter()
            .flat_map(|s| s.points.iter())
            .chain(self.refs)
            .map(|p| p.lr)
            .collect();
        let (y0, y1, mut yticks, mut decades) = log10_axis(&lrs);
        // Best LRs are grid points: label them exactly where there are few.
        let mut grid: Vec<f64> = lrs
            .iter()
            .filter(|lr| lr.is_finite() && **lr > 0.0)
            .map(|lr| lr.log10())
            .collect();
        grid.sort_by(f64::total_cmp);
        grid.dedup_by(|a, b| (*a - *b).abs() < 1e-9);
        if grid.len() <= 8 {
            yticks = grid;
            decades = false;
        }
        let mut chart = chart_with_axes(
            &plot,
            ticked(x0..x1, xticks),
            ticked(y0..y1, yticks),
            &Axes {
                x_desc: RANK_DESC,
                y_desc: "Best learning rate (log scale)",
                x_label: &|x| rank_label(*x),
                y_label: &|y| log_tick_label(*y, decades),
                light_grid: true,
            },
        )?;
        for p in self.refs.iter().filter(|p| p.lr > 0.0) {
            let y = p.lr.log10();
            chart
                .draw_series(DashedLineSeries::new(
                    [(x0, y), (x1, y)],
                    12,
                    8,
                    BLACK.stroke_width(2),
                ))
                .map_err(err)?;
        }
        let k = self.series.len();
        for (si, s) in self.series.iter().enumerate() {
            let color = self.colors.of(&s.kind);
            let dx = (si as f64 - (k as f64 - 1.0) / 2.0) * 0.06;
            let pts: Vec<(f64, f64)> = s
                .points
                .iter()
                .filter(|p| p.lr > 0.0 && p.lr.is_finite())
                .map(|p| ((p.rank as f64).log2() + dx, p.lr.log10()))
                .collect();
            chart
                .draw_series(LineSeries::new(pts.clone(), color.stroke_width(3)))
                .map_err(err)?;
            chart
                .draw_series(pts.iter().map(|p| Circle::new(*p, 7, color.filled())))
                .map_err(err)?;
        }
        Ok(())
    }
}

/// `shift_aligned`: normalized curves re-centred at their own best LR.
pub(crate) struct ShiftAlignedFigure<'a> {
    pub rank: usize,
    pub series: &'a [AlignedSeries],
    pub colors: &'a Colors,
}

impl Figure for ShiftAlignedFigure<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult {
        let legend: Vec<LegendEntry> = self
            .series
            .iter()
            .map(|s| LegendEntry {
                label: s.label.clone(),
                color: self.colors.of(&s.kind),
                dashed: false,
            })
            .collect();
        let title = format!(
            "Normalized accuracy vs LR relative to each method's best, rank {}",
            self.rank
        );
        let plot = layout(root, &title, &legend)?;
        let xs: Vec<f64> = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.0))
            .collect();
        let ys: Vec<f64> = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.1))
            .collect();
        let (lo, hi) = min_max(&xs).unwrap_or((-1.0, 1.0));
        let (x0, x1) = (lo.min(-0.5) - 0.2, hi.max(0.5) + 0.2);
        let ticks: Vec<f64> = (x0.ceil() as i32..=x1.floor() as i32)
            .map(f64::from)
            .collect();
        let y0 = min_max(&ys).map_or(0.0, |(l, _)| (l - 0.05).clamp(0.0, 0.9));
        let mut chart = chart_with_axes(
            &plot,
            ticked(x0..x1, ticks),
            y0..1.05,
            &Axes {
                x_desc: "log₁₀(LR / method's best LR)  (decades from the peak)",
                y_desc: "Accuracy / best accuracy (normalized)",
                x_label: &|x| {
                    let k = x.round() as i32;
                    if k > 0 {
                        format!("+{k}")
                    } else {
                        k.to_string()
                    }
                },
                y_label: &|y| format!("{y:.2}"),
                light_grid: false,
            },
        )?;
        chart
            .draw_series(DashedLineSeries::new(
                [(0.0, y0), (0.0, 1.05)],
                8,
                6,
                BLACK.mix(0.5).stroke_width(1),
            ))
            .map_err(err)?;
        for s in self.series {
            let color = self.colors.of(&s.kind);
            chart
                .draw_series(LineSeries::new(s.points.clone(), color.stroke_width(3)))
                .map_err(err)?;
            chart
                .draw_series(s.points.iter().map(|p| Circle::new(*p, 5, color.filled())))
                .map_err(err)?;
        }
        Ok(())
    }
}

/// Draws the marker of the `i`-th rank of a figure (circle, triangle,
/// square, cross) at `at`.
fn draw_marker<DB: DrawingBackend, CT: plotters::coord::CoordTranslate>(
    area: &DrawingArea<DB, CT>,
    i: usize,
    at: CT::From,
    color: RGBColor,
) -> DrawResult
where
    CT::From: Clone + 'static,
{
    let style = color.filled();
    match i % 6 {
        0 => area.draw(&Circle::new(at, 7, style)),
        1 => area.draw(&TriangleMarker::new(at, 9, style)),
        2 => area.draw(&(EmptyElement::at(at) + Rectangle::new([(-6, -6), (6, 6)], style))),
        3 => area.draw(&Cross::new(at, 7, color.stroke_width(3))),
        4 => area.draw(&Circle::new(at, 7, color.stroke_width(3))),
        _ => area.draw(
            &(EmptyElement::at(at) + Rectangle::new([(-6, -6), (6, 6)], color.stroke_width(3))),
        ),
    }
    .map_err(err)
}

/// `sharpness_vs_best_lr`: λmax at initialisation against the measured best
/// LR, log-log, one colour per method, one marker per rank, and the line
/// `c / λmax` of the fit.
pub(crate) struct SharpnessFigure<'a> {
    pub points: &'a [SharpnessPoint],
    pub fit: Option<&'a SharpnessFit>,
    pub colors: &'a Colors,
}

impl Figure for SharpnessFigure<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult {
        let mut legend: Vec<LegendEntry> = Vec::new();
        for p in self.points {
            if !legend.iter().any(|e| e.label == p.label) {
                legend.push(LegendEntry {
                    label: p.label.clone(),
                    color: self.colors.of(&p.kind),
                    dashed: false,
                });
            }
        }
        let mut ranks: Vec<usize> = self.points.iter().map(|p| p.rank).collect();
        ranks.sort_unstable();
        ranks.dedup();
        if let Some(fit) = self.fit {
            legend.push(LegendEntry {
                label: format!("c/λmax, c = {:.3}", fit.c),
                color: RGBColor(90, 90, 90),
                dashed: true,
            });
        }
        let title = match self.fit {
            Some(fit) => format!(
                "Sharpness at init vs best LR: Pearson {:+.2}, Spearman {:+.2} (log-log, {} cells)",
                fit.pearson, fit.spearman, fit.n
            ),
            None => "Sharpness at init vs best LR".to_string(),
        };
        root.fill(&WHITE).map_err(err)?;
        let body = root
            .margin(10, 0, 0, 0)
            .titled(&title, font(20))
            .map_err(err)?;
        let (w, _) = body.dim_in_pixel();
        let lw = legend_width(&legend);
        let (plot, side) = body.split_horizontally(w - lw);
        let side = side.margin(40, 0, 0, 0);
        draw_legend(&side, &legend)?;
        // Rank markers, below the method legend.
        let top = 30 + 28 * legend.len() as i32 + 30;
        for (i, rank) in ranks.iter().enumerate() {
            let y = top + 28 * i as i32;
            let label = if *rank == 0 {
                "full (no rank)".to_string()
            } else {
                format!("r = {rank}")
            };
            draw_marker(&side, i, (31, y), BLACK)?;
            side.draw(&Text::new(
                label,
                (60, y),
                anchored(16, HPos::Left, VPos::Center),
            ))
            .map_err(err)?;
        }

        let usable: Vec<&SharpnessPoint> = self
            .points
            .iter()
            .filter(|p| p.lambda_max > 0.0 && p.lambda_max.is_finite() && p.best_lr > 0.0)
            .collect();
        let lambdas: Vec<f64> = usable.iter().map(|p| p.lambda_max).collect();
        let lrs: Vec<f64> = usable.iter().map(|p| p.best_lr).collect();
        let (x0, x1, xticks, xdec) = log10_axis(&lambdas);
        let (y0, y1, yticks, ydec) = log10_axis(&lrs);
        let mut chart = chart_with_axes(
            &plot,
            ticked(x0..x1, xticks),
            ticked(y0..y1, yticks),
            &Axes {
                x_desc: "λmax of the loss Hessian at initialisation (log scale)",
                y_desc: "Best learning rate (log scale)",
                x_label: &|x| log_tick_label(*x, xdec),
                y_label: &|y| log_tick_label(*y, ydec),
                light_grid: true,
            },
        )?;
        if let Some(fit) = self.fit {
            // log10(lr) = log10(c) - log10(λ), clipped to the plot.
            let lc = fit.c.log10();
            let xa = x0.max(lc - y1);
            let xb = x1.min(lc - y0);
            if xa < xb {
                chart
                    .draw_series(DashedLineSeries::new(
                        [(xa, lc - xa), (xb, lc - xb)],
                        12,
                        8,
                        RGBColor(90, 90, 90).stroke_width(2),
                    ))
                    .map_err(err)?;
            }
        }
        for p in &usable {
            let i = ranks.iter().position(|r| *r == p.rank).unwrap_or(0);
            let at = (p.lambda_max.log10(), p.best_lr.log10());
            draw_marker(chart.plotting_area(), i, at, self.colors.of(&p.kind))?;
        }
        Ok(())
    }
}
