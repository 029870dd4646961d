//! What a schedule will do at a target before anything runs: the host plays
//! its decisions (each fine-tuning phase assumed to run to its limit, the
//! validation accuracy flat), checked by the same rules as a real run.

use shears_plugin_api::{
    Decision, Phase, PluginKind, Schedule, ScheduleState, MAX_SCHEDULE_DECISIONS,
};

use super::rules::check_decision;
use super::{ExperimentConfig, StrategySpec};
use crate::error::{Error, Result};
use crate::plugins::Registry;
use crate::train::FinetunePolicy;

/// One prune step of a schedule's plan.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlannedStep {
    /// Sparsity the step prunes to.
    pub sparsity: f32,
    /// Fine-tuning epochs the schedule asks for after it (0 = none).
    pub finetune_epochs: u32,
    /// Early-stopping patience it asks for (0 = none).
    pub patience: u32,
    /// Fine-tuning phases it asks for after it (each may get its own epoch
    /// limit from the strategy's fine-tuning policy).
    pub phases: u32,
}

/// The prune steps `schedule` takes to reach `target`, in order. Errors name
/// `label` (the plugin) and say which rule a decision broke.
pub fn plan_schedule(
    schedule: &mut dyn Schedule,
    label: &str,
    target: f32,
    max_epochs_per_run: u32,
) -> Result<Vec<PlannedStep>> {
    let err = |msg: String| Error::Plugin {
        plugin: label.to_string(),
        msg,
    };
    let mut steps: Vec<PlannedStep> = Vec::new();
    let mut history: Vec<f32> = Vec::new();
    let mut state = ScheduleState::start(target);
    for _ in 0..MAX_SCHEDULE_DECISIONS {
        let view = ScheduleState {
            val_acc_history: &history,
            ..state
        };
        let decision = schedule.decide(&view).map_err(|e| err(e.to_string()))?;
        check_decision(&view, &decision, max_epochs_per_run).map_err(err)?;
        match decision {
            Decision::Prune { sparsity } => {
                steps.push(PlannedStep {
                    sparsity,
                    finetune_epochs: 0,
                    patience: 0,
                    phases: 0,
                });
                state.prune_steps += 1;
                state.current_sparsity = sparsity;
                state.last = Phase::Pruned;
            }
            Decision::FineTune {
                max_epochs,
                patience,
            } => {
                if let Some(last) = steps.last_mut() {
                    last.finetune_epochs += max_epochs;
                    last.patience = patience;
                    last.phases += 1;
                }
                history.extend(std::iter::repeat_n(0.5, max_epochs as usize));
                state.epochs_spent += max_epochs;
                state.last = Phase::FineTuned;
            }
            Decision::Stop => return Ok(steps),
        }
    }
    Err(err(format!(
        "did not stop within {MAX_SCHEDULE_DECISIONS} decisions"
    )))
}

/// Fine-tuning epochs `strategy` is expected to spend at `target`: its
/// schedule played with every phase given what a run gives it (the
/// strategy's fine-tuning policy or the comparison's equal budget), each run
/// to its limit, at most `max_epochs_per_run`. Early stopping may spend fewer.
pub fn expected_run_epochs(
    cfg: &ExperimentConfig,
    registry: &Registry,
    strategy: &StrategySpec,
    target: f32,
) -> Result<u32> {
    let mut schedule =
        registry.schedule(&strategy.schedule, &cfg.schedule_params(strategy, registry))?;
    let label = registry.label(PluginKind::Schedule, &strategy.schedule);
    let plan = plan_schedule(schedule.as_mut(), &label, target, u32::MAX)?;
    let phases: u32 = plan.iter().map(|s| s.phases).sum();
    let epochs = match (cfg.finetune_budget, strategy.finetune.as_ref()) {
        (Some(_), _) if phases == 0 => 0,
        (Some(budget), _) => budget,
        (None, None) => plan.iter().map(|s| s.finetune_epochs).sum(),
        (None, Some(policy)) => phases * FinetunePolicy::phase(Some(policy), 0, 0).0,
    };
    Ok(epochs.min(cfg.max_epochs_per_run))
}

/// The training epochs a comparison is expected to take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedEpochs {
    /// Each strategy's runs (in config order), at each target (in config
    /// order): [`expected_run_epochs`], 0 where the plan fails (that run will
    /// fail and say why).
    pub runs: Vec<Vec<u32>>,
    /// The whole comparison: per seed, the base model (none from a
    /// checkpoint), every run, and the dense controls (one training per
    /// distinct epoch count, the longest strategy at each target).
    pub total: u64,
}

/// What a comparison of `cfg` is expected to take, every schedule played once.
pub fn expected_epochs(cfg: &ExperimentConfig, registry: &Registry) -> ExpectedEpochs {
    let runs: Vec<Vec<u32>> = cfg
        .strategies
        .iter()
        .map(|s| {
            cfg.sparsities
                .iter()
                .map(|&t| expected_run_epochs(cfg, registry, s, t).unwrap_or(0))
                .collect()
        })
        .collect();
    let base = if cfg.base_checkpoint.is_some() {
        0
    } else {
        u64::from(cfg.train.epochs)
    };
    let mut controls: Vec<u32> = Vec::new();
    for t in 0..cfg.sparsities.len() {
        let longest = runs.iter().map(|per| per[t]).max().unwrap_or(0);
        if cfg.dense_control && !controls.contains(&longest) {
            controls.push(longest);
        }
    }
    let run_epochs: u64 = runs.iter().flatten().map(|&e| u64::from(e)).sum();
    let control_epochs: u64 = controls.iter().map(|&e| u64::from(e)).sum();
    let per_seed = base + run_epochs + control_epochs;
    ExpectedEpochs {
        total: cfg.seeds.len() as u64 * per_seed,
        runs,
    }
}

/// One line for people: `0.5 -> 0.75 -> 0.9 (3 steps, 3 fine-tuning epochs)`;
/// long plans show their first and last three steps.
pub fn plan_summary(steps: &[PlannedStep]) -> String {
    let fmt = |s: &PlannedStep| {
        format!("{:.4}", s.sparsity)
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
    };
    let shown: Vec<String> = if steps.len() <= 7 {
        steps.iter().map(fmt).collect()
    } else {
        let mut v: Vec<String> = steps[..3].iter().map(fmt).collect();
        v.push("…".into());
        v.extend(steps[steps.len() - 3..].iter().map(fmt));
        v
    };
    let epochs: u32 = steps.iter().map(|s| s.finetune_epochs).sum();
    let patience = steps.iter().any(|s| s.patience > 0);
    format!(
        "{} ({} step{}, {}{} fine-tuning epoch{})",
        if shown.is_empty() {
            "no prune".to_string()
        } else {
            shown.join(" -> ")
        },
        steps.len(),
        if steps.len() == 1 { "" } else { "s" },
        if patience { "at most " } else { "" },
        epochs,
        if epochs == 1 { "" } else { "s" },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::Registry;

    fn plan(name: &str, params: serde_json::Value, target: f32) -> Vec<PlannedStep> {
        let mut s = Registry::builtin().schedule(name, &params).unwrap();
        plan_schedule(s.as_mut(), name, target, 10_000).unwrap()
    }

    #[test]
    fn plans_follow_the_schedules() {
        let p = plan(
            "hybrid",
            serde_json::json!({"initial": 0.5, "steps": 3}),
            0.95,
        );
        let s: Vec<f32> = p.iter().map(|s| s.sparsity).collect();
        assert_eq!(s.len(), 4);
        for (a, b) in s.iter().zip([0.5, 0.680_679, 0.828_713, 0.95]) {
            assert!((a - b).abs() < 1e-6, "{s:?}");
        }
        assert!(p.iter().all(|s| s.finetune_epochs == 1 && s.patience == 0));
        assert_eq!(
            plan_summary(&p),
            "0.5 -> 0.6807 -> 0.8287 -> 0.95 (4 steps, 4 fine-tuning epochs)"
        );
        let p = plan("patience", serde_json::json!({"steps": 2}), 0.8);
        assert_eq!(p.len(), 2);
        assert_eq!((p[0].finetune_epochs, p[0].patience), (20, 2));
        assert_eq!(
            plan_summary(&p),
            "0.4 -> 0.8 (2 steps, at most 40 fine-tuning epochs)"
        );
        let p = plan(
            "iterative-geometric",
            serde_json::json!({"rate": 0.02}),
            0.9,
        );
        assert_eq!(p.len(), 114);
        assert!(plan_summary(&p).starts_with("0.02 -> 0.0396 -> 0.0588 -> … -> "));
        assert!(plan("one-shot", serde_json::json!({}), 0.0).is_empty());
        assert_eq!(
            plan_summary(&[]),
            "no prune (0 steps, 0 fine-tuning epochs)"
        );
    }

    /// What the progress display expects: the schedule's epochs, or the
    /// policy's per phase, or the equal budget; bases and controls added.
    #[test]
    fn expected_epochs_follow_schedule_policy_and_budget() {
        let registry = Registry::builtin();
        let mut cfg = ExperimentConfig::demo();
        cfg.seeds = vec![0, 1];
        cfg.sparsities = vec![0.5, 0.9];
        cfg.finetune.epochs = 1;
        let strategy = |schedule: &str, params: serde_json::Value| StrategySpec {
            schedule: schedule.into(),
            schedule_params: params,
            ..cfg.strategies[0].clone()
        };
        let geo = strategy("iterative-geometric", serde_json::json!({"steps": 3}));
        assert_eq!(expected_run_epochs(&cfg, &registry, &geo, 0.9).unwrap(), 3);
        let mut two = geo.clone();
        two.finetune = Some(FinetunePolicy::Epochs(2));
        assert_eq!(expected_run_epochs(&cfg, &registry, &two, 0.9).unwrap(), 6);
        let mut budget = cfg.clone();
        budget.finetune_budget = Some(7);
        assert_eq!(
            expected_run_epochs(&budget, &registry, &geo, 0.9).unwrap(),
            7
        );
        cfg.strategies = vec![geo, two];
        cfg.dense_control = true;
        // Per seed: base + (3 + 6) at each target + one control of 6 epochs.
        let per_seed = u64::from(cfg.train.epochs) + 2 * 9 + 6;
        assert_eq!(expected_epochs(&cfg, &registry).total, 2 * per_seed);
        cfg.dense_control = false;
        assert_eq!(expected_epochs(&cfg, &registry).total, 2 * (per_seed - 6));
    }

    #[test]
    fn a_broken_schedule_is_named() {
        struct Again;
        impl Schedule for Again {
            fn decide(
                &mut self,
                _: &ScheduleState<'_>,
            ) -> shears_plugin_api::PluginResult<Decision> {
                Ok(Decision::Prune { sparsity: 0.5 })
            }
        }
        let e = plan_schedule(&mut Again, "again", 0.9, 100)
            .unwrap_err()
            .to_string();
        assert!(e.contains("again") && e.contains("0.5 again"), "{e}");
        let mut s = Registry::builtin()
            .schedule("iterative", &serde_json::json!({"steps": 10}))
            .unwrap();
        let e = plan_schedule(s.as_mut(), "iterative", 0.9, 5)
            .unwrap_err()
            .to_string();
        assert!(e.contains("max_epochs_per_run"), "{e}");
    }
}
