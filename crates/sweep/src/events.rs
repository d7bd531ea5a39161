//! What a run tells as it goes. The library never prints: the `lrscape`
//! binary draws progress bars and prints lines from these calls, and tests
//! pass [`Quiet`].

/// Told of a run's progress; every method does nothing by default.
pub trait RunEvents: Sync {
    /// Something the user should know that did not stop the run (also kept
    /// in [`RunSummary::warnings`](crate::runner::RunSummary)).
    fn warning(&self, text: &str) {
        let _ = text;
    }
    /// A line of news: the work left and its ETA, a cell's best LR, a
    /// pre-trained base.
    fn note(&self, text: &str) {
        let _ = text;
    }
    /// Pre-training starts: `steps` optimizer steps.
    fn pretrain_started(&self, steps: u64) {
        let _ = steps;
    }
    /// Pre-training is over.
    fn pretrain_finished(&self) {}
    /// The sweep starts: `cells` grid cells.
    fn cells_started(&self, cells: u64) {
        let _ = cells;
    }
    /// Populations of the cell `label` (`members` members in all) start:
    /// `steps` optimizer steps together.
    fn populations_started(&self, label: &str, members: usize, steps: u64) {
        let _ = (label, members, steps);
    }
    /// One optimizer step of one population.
    fn step(&self) {}
    /// A cell is done.
    fn cell_finished(&self) {}
    /// The sweep is over.
    fn finished(&self) {}
}

/// Events nobody watches.
#[derive(Debug, Clone, Copy, Default)]
pub struct Quiet;

impl RunEvents for Quiet {}
