//! Learning-rate schedules over the epochs of one training phase.

use serde::{Deserialize, Serialize};

/// How the learning rate changes over the epochs of a phase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum LrSchedule {
    /// The same rate throughout.
    Constant,
    /// Cosine annealing: `base * (1 + cos(pi * epoch / total)) / 2`, from the
    /// base rate at the first epoch towards 0 after the last.
    #[default]
    Cosine,
    /// Multiply by `gamma` every `every` epochs.
    Step {
        /// Epochs between decays.
        every: u32,
        /// Decay factor.
        gamma: f64,
    },
}

impl LrSchedule {
    /// Learning rate for `epoch` (0-based) of a phase of `total` epochs
    /// starting at `base`; constant within an epoch.
    pub fn lr(&self, base: f64, epoch: u32, total: u32) -> f64 {
        match *self {
            LrSchedule::Constant => base,
            LrSchedule::Cosine => {
                let t = epoch as f64 / total.max(1) as f64;
                base * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())
            }
            LrSchedule::Step { every, gamma } => base * gamma.powi((epoch / every.max(1)) as i32),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_give_known_values() {
        assert_eq!(LrSchedule::Constant.lr(0.1, 7, 10), 0.1);
        let c = LrSchedule::Cosine;
        assert!((c.lr(0.1, 0, 10) - 0.1).abs() < 1e-12);
        assert!((c.lr(0.1, 5, 10) - 0.05).abs() < 1e-12);
        assert!(c.lr(0.1, 9, 10) > 0.0);
        let s = LrSchedule::Step {
            every: 2,
            gamma: 0.5,
        };
        assert_eq!(s.lr(1.0, 0, 10), 1.0);
        assert_eq!(s.lr(1.0, 3, 10), 0.5);
        assert_eq!(s.lr(1.0, 4, 10), 0.25);
    }
}
