//! The rules the host enforces on every decision of a schedule (built-in or
//! plugin), as one pure function.

use shears_plugin_api::{Decision, ScheduleState, MAX_PRUNE_STEPS};

/// Largest fine-tuning phase the host accepts from a schedule, in epochs.
pub const MAX_PHASE_EPOCHS: u32 = 10_000;

/// Slack for a prune target just below the current sparsity (a float
/// round-trip through a plugin), in sparsity units.
const SPARSITY_SLACK: f32 = 1e-6;

/// Checks `decision` against the run's `state`; `max_epochs_per_run` is the
/// config's limit on fine-tuning epochs. The error says what the schedule did
/// wrong, in words for the user (the caller names the plugin).
///
/// - A prune target must be finite, in `[0, 1)`, not below the current
///   sparsity, above it once anything was pruned, and the run may prune at
///   most [`MAX_PRUNE_STEPS`] times.
/// - A fine-tuning phase must last `1..=`[`MAX_PHASE_EPOCHS`] epochs and keep
///   the run within `max_epochs_per_run`.
/// - Stopping is always allowed.
pub fn check_decision(
    state: &ScheduleState<'_>,
    decision: &Decision,
    max_epochs_per_run: u32,
) -> Result<(), String> {
    match *decision {
        Decision::Prune { sparsity: s } => {
            let current = state.current_sparsity;
            if !s.is_finite() || !(0.0..1.0).contains(&s) {
                return Err(format!("asked to prune to {s}, outside [0, 1)"));
            }
            if s + SPARSITY_SLACK < current {
                return Err(format!(
                    "asked to prune to {s}, below the current {current} (sparsity cannot decrease)"
                ));
            }
            if state.prune_steps > 0 && s <= current {
                return Err(format!(
                    "asked to prune to {s} again (every prune must raise the sparsity)"
                ));
            }
            if state.prune_steps >= MAX_PRUNE_STEPS {
                return Err(format!("did not stop within {MAX_PRUNE_STEPS} prune steps"));
            }
        }
        Decision::FineTune { max_epochs, .. } => {
            if max_epochs == 0 || max_epochs > MAX_PHASE_EPOCHS {
                return Err(format!(
                    "asked to fine-tune {max_epochs} epochs (allowed 1..={MAX_PHASE_EPOCHS})"
                ));
            }
            if state.epochs_spent + max_epochs > max_epochs_per_run {
                return Err(format!(
                    "did not stop within {max_epochs_per_run} fine-tuning epochs (max_epochs_per_run)"
                ));
            }
        }
        Decision::Stop => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use shears_plugin_api::Phase;

    fn state(prune_steps: u32, current: f32, epochs: u32) -> ScheduleState<'static> {
        ScheduleState {
            prune_steps,
            last: if prune_steps == 0 {
                Phase::Start
            } else {
                Phase::Pruned
            },
            current_sparsity: current,
            target_sparsity: 0.9,
            epochs_spent: epochs,
            val_acc_history: &[],
        }
    }

    fn prune(s: f32) -> Decision {
        Decision::Prune { sparsity: s }
    }

    fn tune(max_epochs: u32) -> Decision {
        Decision::FineTune {
            max_epochs,
            patience: 0,
        }
    }

    #[test]
    fn every_rule_on_schedules() {
        // (state, decision, max_epochs_per_run, the error it gives, if any)
        let table: Vec<(ScheduleState, Decision, u32, Option<&str>)> = vec![
            (state(0, 0.0, 0), prune(0.5), 100, None),
            (state(0, 0.0, 0), prune(0.0), 100, None), // a first prune may keep the sparsity
            (state(0, 0.3, 0), prune(0.3 - 1e-7), 100, None), // within the slack
            (state(0, 0.0, 0), prune(1.0), 100, Some("outside [0, 1)")),
            (state(0, 0.0, 0), prune(-0.1), 100, Some("outside [0, 1)")),
            (
                state(0, 0.0, 0),
                prune(f32::NAN),
                100,
                Some("outside [0, 1)"),
            ),
            (
                state(0, 0.0, 0),
                prune(f32::INFINITY),
                100,
                Some("outside [0, 1)"),
            ),
            (state(1, 0.5, 0), prune(0.4), 100, Some("cannot decrease")),
            (state(1, 0.5, 0), prune(0.5), 100, Some("must raise")),
            (state(1, 0.5, 0), prune(0.6), 100, None),
            (state(MAX_PRUNE_STEPS - 1, 0.5, 0), prune(0.6), 100, None),
            (
                state(MAX_PRUNE_STEPS, 0.5, 0),
                prune(0.6),
                100,
                Some("prune steps"),
            ),
            (state(1, 0.5, 0), tune(1), 100, None),
            (state(1, 0.5, 0), tune(0), 100, Some("allowed 1..=")),
            (state(1, 0.5, 0), tune(MAX_PHASE_EPOCHS), u32::MAX, None),
            (
                state(1, 0.5, 0),
                tune(MAX_PHASE_EPOCHS + 1),
                u32::MAX,
                Some("allowed 1..="),
            ),
            (state(1, 0.5, 98), tune(2), 100, None),
            (state(1, 0.5, 99), tune(2), 100, Some("max_epochs_per_run")),
            (state(0, 0.0, 0), Decision::Stop, 100, None),
            (state(MAX_PRUNE_STEPS, 0.99, 100), Decision::Stop, 100, None),
        ];
        for (i, (s, d, limit, expected)) in table.iter().enumerate() {
            let got = check_decision(s, d, *limit);
            match (expected, &got) {
                (None, Ok(())) => {}
                (Some(needle), Err(msg)) => {
                    assert!(msg.contains(needle), "row {i}: `{msg}` lacks `{needle}`")
                }
                _ => panic!("row {i}: {d:?} gave {got:?}, expected {expected:?}"),
            }
        }
    }
}
