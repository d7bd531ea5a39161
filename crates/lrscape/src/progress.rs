//! Progress bars (indicatif) and lines on stderr, drawn from the events a
//! run reports ([`sweep::RunEvents`]).

use std::sync::atomic::{AtomicBool, Ordering};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Bars for pre-training, cells and steps, and warnings and notes as lines
/// above them.
pub struct Bars {
    bars: MultiProgress,
    pretrain: ProgressBar,
    cells: ProgressBar,
    steps: ProgressBar,
    /// Steps count towards pre-training (else towards the sweep).
    pretraining: AtomicBool,
}

fn bar(label: &str) -> ProgressBar {
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{prefix:>14} [{bar:30}] {pos}/{len} {per_sec} eta {eta}")
            .expect("static template")
            .progress_chars("=> "),
    );
    bar.set_prefix(label.to_string());
    bar
}

impl Bars {
    /// Bars drawn on stderr when `visible`; lines are printed either way.
    pub fn new(visible: bool) -> Self {
        let bars = if visible {
            MultiProgress::new()
        } else {
            MultiProgress::with_draw_target(ProgressDrawTarget::hidden())
        };
        Self {
            bars,
            pretrain: bar("pretrain"),
            cells: bar("cells"),
            steps: bar("steps"),
            pretraining: AtomicBool::new(false),
        }
    }

    fn line(&self, text: &str) {
        if self.bars.is_hidden() {
            eprintln!("{text}");
        } else {
            let _ = self.bars.println(text);
        }
    }
}

impl sweep::RunEvents for Bars {
    fn warning(&self, text: &str) {
        self.line(&format!("warning: {text}"));
    }

    fn note(&self, text: &str) {
        self.line(text);
    }

    fn pretrain_started(&self, steps: u64) {
        let bar = self.bars.add(self.pretrain.clone());
        bar.set_length(steps);
        bar.set_position(0);
        self.pretraining.store(true, Ordering::Relaxed);
    }

    fn pretrain_finished(&self) {
        self.pretraining.store(false, Ordering::Relaxed);
        self.pretrain.finish_and_clear();
        self.bars.remove(&self.pretrain);
    }

    fn cells_started(&self, cells: u64) {
        self.bars.add(self.cells.clone()).set_length(cells);
        self.bars.add(self.steps.clone());
    }

    fn populations_started(&self, label: &str, members: usize, steps: u64) {
        self.steps.set_length(steps);
        self.steps.set_position(0);
        self.steps.set_prefix(format!("{label} ×{members}"));
    }

    fn step(&self) {
        if self.pretraining.load(Ordering::Relaxed) {
            self.pretrain.inc(1);
        } else {
            self.steps.inc(1);
        }
    }

    fn cell_finished(&self) {
        self.cells.inc(1);
    }

    fn finished(&self) {
        self.cells.finish_and_clear();
        self.steps.finish_and_clear();
    }
}
