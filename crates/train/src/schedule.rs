//! Learning-rate schedules as `transformers` defines them
//! (`get_constant_schedule_with_warmup`, `get_linear_schedule_with_warmup`,
//! `get_cosine_schedule_with_warmup` with half a cycle): a factor on every
//! member's learning rate at each optimizer step, warming up linearly from
//! 0 over `ceil(warmup_ratio · total)` steps (the `Trainer`'s rule).

use serde::{Deserialize, Serialize};

/// The decay after warm-up, in `transformers`' `lr_scheduler_type` words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LrDecay {
    /// The learning rate as given.
    #[default]
    Constant,
    /// Linearly to 0 at the last step.
    Linear,
    /// Half a cosine to 0 at the last step.
    Cosine,
}

impl LrDecay {
    pub const NAMES: [&'static str; 3] = ["constant", "linear", "cosine"];
}

/// A schedule: the decay and the share of steps spent warming up.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct LrSchedule {
    pub decay: LrDecay,
    /// In `[0, 1)`.
    pub warmup_ratio: f64,
}

impl LrSchedule {
    /// Every step at the learning rate given.
    pub const CONSTANT: Self = Self {
        decay: LrDecay::Constant,
        warmup_ratio: 0.0,
    };

    /// The factor at optimizer step `step` (0-based, the steps taken
    /// before it) of a run of `total` steps.
    pub fn factor(&self, step: usize, total: usize) -> f64 {
        let warmup = (self.warmup_ratio * total as f64).ceil() as usize;
        if step < warmup {
            return step as f64 / warmup.max(1) as f64;
        }
        let progress = (step - warmup) as f64 / total.saturating_sub(warmup).max(1) as f64;
        match self.decay {
            LrDecay::Constant => 1.0,
            LrDecay::Linear => (1.0 - progress).max(0.0),
            LrDecay::Cosine => (0.5 * (1.0 + (std::f64::consts::PI * progress).cos())).max(0.0),
        }
    }

    /// Whether every factor is 1 (no warm-up, constant).
    pub fn is_constant(&self) -> bool {
        self.decay == LrDecay::Constant && self.warmup_ratio == 0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warm_up_then_decay_reach_their_ends() {
        let cosine = LrSchedule {
            decay: LrDecay::Cosine,
            warmup_ratio: 0.1,
        };
        // 100 steps: 10 of warm-up from 0, the peak at step 10, half-way
        // down at step 55, nearly 0 at the last step.
        assert_eq!(cosine.factor(0, 100), 0.0);
        assert_eq!(cosine.factor(5, 100), 0.5);
        assert_eq!(cosine.factor(10, 100), 1.0);
        assert!((cosine.factor(55, 100) - 0.5).abs() < 1e-12);
        let linear = LrSchedule {
            decay: LrDecay::Linear,
            warmup_ratio: 0.0,
        };
        assert_eq!(linear.factor(0, 4), 1.0);
        assert_eq!(linear.factor(3, 4), 0.25);
        assert!(LrSchedule::default().is_constant());
        assert_eq!(LrSchedule::default().factor(7, 10), 1.0);
    }
}
