//! One strategy at one target sparsity, from a copy of a seed's base model:
//! the schedule decides, the host checks each decision
//! ([`check_decision`](super::rules::check_decision)) and carries it out
//! (prune, fine-tune under the strategy's fine-tuning policy or the
//! comparison's equal budget), recording a step after each prune (metrics
//! right after the prune and after fine-tuning, cost) and measuring and
//! saving the final model.

use std::time::Instant;

use shears_plugin_api::MAX_SCHEDULE_DECISIONS;
use shears_plugin_api::{Criterion, Decision, Phase, PluginKind, Schedule, ScheduleState};

use super::config::{ExperimentConfig, StrategySpec};
use super::context::{split_metrics, train_phase, Context, Emit};
use super::preview::plan_schedule;
use super::results::{Event, RunResult, SplitMetrics, Status, StepRecord};
use super::rules::check_decision;
use crate::data::DataSplits;
use crate::error::{Error, Result};
use crate::model::{checkpoint, latency, Network};
use crate::prune::{
    compact, cost, criterion_inputs, dense_cost, prune_to, sparsity, CalibrationSpec, Cost,
    GranularityChoice,
};
use crate::train::{evaluate, FinetunePolicy, TrainPhase};

/// Where a run stands, in the terms a schedule sees.
#[derive(Debug, Clone, Default)]
struct Progress {
    prune_steps: u32,
    last: Option<Phase>,
    /// Sparsity in the unit of the strategy's granularity.
    current: f32,
    epochs: u32,
    val_acc_history: Vec<f32>,
    /// The target of the last prune, until its step is recorded.
    unrecorded: Option<f32>,
    /// Metrics right after the last prune.
    pruned: Option<SplitMetrics>,
    /// Fine-tuning epochs since the last prune, and the epoch kept.
    step_epochs: u32,
    kept_epoch: Option<u32>,
    /// Fine-tuning phases run so far (indexes the equal budget).
    phases: usize,
}

/// Epochs of each fine-tuning phase under an equal budget: `budget` split
/// evenly over `phases`, the later phases taking the remainder.
pub fn split_budget(budget: u32, phases: usize) -> Vec<u32> {
    let n = phases.max(1) as u32;
    let (each, extra) = (budget / n, budget % n);
    (0..n).map(|i| each + u32::from(i >= n - extra)).collect()
}

/// What one run is and the objects it works with.
pub(super) struct StrategyRun<'a> {
    cfg: &'a ExperimentConfig,
    ctx: &'a Context<'a>,
    data: &'a DataSplits,
    strategy: &'a StrategySpec,
    schedule_label: String,
    criterion_label: String,
    schedule: Box<dyn Schedule>,
    criterion: Box<dyn Criterion>,
    net: Network,
    progress: Progress,
    started: Instant,
    /// Where the final model goes, relative to the output folder.
    save_as: Option<String>,
    /// Cost of the dense model.
    dense: Cost,
    /// Under an equal budget: the epochs of each fine-tuning phase.
    budget: Option<Vec<u32>>,
    /// The result so far (its steps are kept when the run fails).
    pub run: RunResult,
}

impl<'a> StrategyRun<'a> {
    /// Prepares `strategy` at `target` for `seed` from a copy of `base`: its
    /// schedule and criterion created, nothing run yet.
    pub fn new(
        ctx: &'a Context<'a>,
        cfg: &'a ExperimentConfig,
        data: &'a DataSplits,
        strategy: &'a StrategySpec,
        base: &Network,
        run: RunResult,
        save_as: Option<String>,
    ) -> Result<Self> {
        let registry = ctx.registry;
        let schedule =
            registry.schedule(&strategy.schedule, &cfg.schedule_params(strategy, registry))?;
        let criterion = registry.criterion(&strategy.criterion, &strategy.criterion_params)?;
        let mut net = base.try_clone()?;
        // Dropout draws from the run's seed, whatever the base went through
        // (trained here or read back from a plan's checkpoint).
        net.seed_dropout(run.seed);
        // The schedule sees sparsity in the unit of the granularity; a base
        // checkpoint may already be pruned.
        let start = sparsity(&net)?;
        let current = match strategy.granularity {
            GranularityChoice::Unstructured => start.global,
            GranularityChoice::Structured => start.channels,
        };
        let schedule_label = registry.label(PluginKind::Schedule, &strategy.schedule);
        let budget = match cfg.finetune_budget {
            Some(b) => {
                // The phases the schedule will ask for, played beforehand.
                let mut fresh = registry
                    .schedule(&strategy.schedule, &cfg.schedule_params(strategy, registry))?;
                let plan = plan_schedule(fresh.as_mut(), &schedule_label, run.target, u32::MAX)?;
                let phases = plan.iter().filter(|p| p.finetune_epochs > 0).count();
                Some(split_budget(b, phases))
            }
            None => None,
        };
        Ok(Self {
            cfg,
            ctx,
            data,
            strategy,
            schedule_label,
            criterion_label: registry.label(PluginKind::Criterion, &strategy.criterion),
            schedule,
            criterion,
            net,
            progress: Progress {
                current,
                ..Progress::default()
            },
            started: Instant::now(),
            save_as,
            dense: dense_cost(base),
            budget,
            run,
        })
    }

    /// Runs the schedule to its end (or to the first error), then returns
    /// the result with its status.
    pub fn execute(mut self, emit: &mut Emit<'_>) -> (RunResult, Result<()>) {
        let outcome = self.decide_until_stop(emit);
        self.run.status = match &outcome {
            Ok(()) => Status::Complete,
            Err(Error::Cancelled) => Status::Cancelled,
            Err(e) => Status::Failed(e.to_string()),
        };
        (self.run, outcome)
    }

    fn decide_until_stop(&mut self, emit: &mut Emit<'_>) -> Result<()> {
        for _ in 0..MAX_SCHEDULE_DECISIONS {
            if self.ctx.cancel.load(std::sync::atomic::Ordering::Relaxed) {
                return Err(Error::Cancelled);
            }
            match self.decide()? {
                Decision::Prune { sparsity } => self.prune(sparsity, emit)?,
                Decision::FineTune {
                    max_epochs,
                    patience,
                } => self.fine_tune(max_epochs, patience, emit)?,
                Decision::Stop => {
                    self.record_pending(emit)?;
                    self.measure_latency()?;
                    return self.save();
                }
            }
        }
        Err(self.schedule_error(format!(
            "did not stop within {MAX_SCHEDULE_DECISIONS} decisions"
        )))
    }

    /// The schedule's next decision, checked against the host's rules.
    fn decide(&mut self) -> Result<Decision> {
        let p = &self.progress;
        let state = ScheduleState {
            prune_steps: p.prune_steps,
            last: p.last.unwrap_or(Phase::Start),
            current_sparsity: p.current,
            target_sparsity: self.run.target,
            epochs_spent: p.epochs,
            val_acc_history: &p.val_acc_history,
        };
        let decision = self
            .schedule
            .decide(&state)
            .map_err(|e| self.schedule_error(e.to_string()))?;
        check_decision(&state, &decision, self.cfg.max_epochs_per_run)
            .map_err(|msg| self.schedule_error(msg))?;
        Ok(decision)
    }

    fn prune(&mut self, target: f32, emit: &mut Emit<'_>) -> Result<()> {
        self.record_pending(emit)?;
        let calibration = CalibrationSpec {
            batch_size: self.cfg.finetune.batch_size,
            batches: self.cfg.calibration_batches,
        };
        let inputs = criterion_inputs(
            &mut self.net,
            self.criterion.needs(),
            &self.data.train,
            calibration,
        )?;
        let outcome = prune_to(
            &mut self.net,
            self.criterion.as_mut(),
            &self.criterion_label,
            self.strategy.mode(),
            target,
            inputs.as_inputs(),
        )?;
        let pruned = split_metrics(&mut self.net, self.data, self.cfg.finetune.batch_size)?;
        let p = &mut self.progress;
        p.pruned = Some(pruned);
        p.step_epochs = 0;
        p.kept_epoch = None;
        emit(&Event::Pruned {
            strategy: self.run.strategy.clone(),
            seed: self.run.seed,
            run_target: self.run.target,
            step: p.prune_steps + 1,
            target,
            reached: outcome.reached,
            host_copy_ms: outcome.host_copy_seconds * 1000.0,
        });
        p.current = target;
        p.prune_steps += 1;
        p.last = Some(Phase::Pruned);
        p.unrecorded = Some(target);
        Ok(())
    }

    fn fine_tune(&mut self, max_epochs: u32, patience: u32, emit: &mut Emit<'_>) -> Result<()> {
        let (epochs, stop) = match &self.budget {
            Some(split) => (split.get(self.progress.phases).copied().unwrap_or(0), None),
            None => FinetunePolicy::phase(self.strategy.finetune.as_ref(), max_epochs, patience),
        };
        self.progress.phases += 1;
        if self.progress.epochs + epochs > self.cfg.max_epochs_per_run {
            return Err(Error::config(
                format!("strategy `{}` finetune", self.run.strategy),
                format!(
                    "{epochs} more epochs would pass max_epochs_per_run ({})",
                    self.cfg.max_epochs_per_run
                ),
            ));
        }
        let start = match (stop, self.progress.pruned) {
            (None, _) => None,
            (Some(rule), Some(p)) if self.progress.step_epochs == 0 => Some((rule, p.val)),
            (Some(rule), _) => {
                let val = evaluate(&mut self.net, &self.data.val, self.cfg.finetune.batch_size)?;
                Some((rule, val))
            }
        };
        let phase = TrainPhase {
            tc: &self.cfg.finetune,
            max_epochs: epochs,
            stop: start,
            seed: self.run.seed,
            first_epoch: self.cfg.train.epochs + self.progress.epochs,
        };
        let label = (self.run.strategy.as_str(), self.run.target);
        let outcome = train_phase(&mut self.net, &phase, label, self.data, self.ctx, emit)?;
        let p = &mut self.progress;
        let ran = outcome.history.len() as u32;
        p.kept_epoch = outcome
            .kept_epoch
            .map(|k| p.step_epochs + k)
            .or(p.kept_epoch);
        p.epochs += ran;
        p.step_epochs += ran;
        p.val_acc_history
            .extend(outcome.history.iter().map(|m| m.acc));
        p.last = Some(Phase::FineTuned);
        match p.unrecorded.take() {
            Some(asked) => self.record(asked, emit),
            // More fine-tuning of the same step: its record is replaced.
            None => match self.run.steps.pop() {
                Some(prev) => self.record(prev.target_sparsity, emit),
                None => Ok(()),
            },
        }
    }

    fn record_pending(&mut self, emit: &mut Emit<'_>) -> Result<()> {
        match self.progress.unrecorded.take() {
            Some(asked) => self.record(asked, emit),
            None => Ok(()),
        }
    }

    /// Appends a step for the prune to `asked`: sparsity, validation and
    /// test metrics of the model now and right after the prune, the
    /// fine-tuning it had, and its cost.
    fn record(&mut self, asked: f32, emit: &mut Emit<'_>) -> Result<()> {
        let batch = self.cfg.finetune.batch_size;
        let p = &self.progress;
        let now = match p.pruned {
            // Nothing trained since the prune: the same model.
            Some(m) if p.step_epochs == 0 => m,
            _ => split_metrics(&mut self.net, self.data, batch)?,
        };
        let structured = self.strategy.granularity == GranularityChoice::Structured;
        let p = &self.progress;
        let rec = StepRecord {
            step: self.run.steps.len() as u32 + 1,
            target_sparsity: asked,
            sparsity: sparsity(&self.net)?,
            val: now.val,
            test: now.test,
            epochs: p.epochs,
            seconds: self.started.elapsed().as_secs_f64(),
            pruned: p.pruned,
            finetune_epochs: p.step_epochs,
            kept_epoch: p.kept_epoch,
            cost: Some(cost(&self.net, structured, &self.dense)?),
        };
        self.run.steps.push(rec.clone());
        let event = Event::Step {
            strategy: self.run.strategy.clone(),
            seed: self.run.seed,
            run_target: self.run.target,
            record: rec,
        };
        emit(&event);
        Ok(())
    }

    /// Times the final model (and its compacted form for structured
    /// pruning) when the comparison asks for it.
    fn measure_latency(&mut self) -> Result<()> {
        if !self.cfg.latency {
            return Ok(());
        }
        let mut compacted = match self.strategy.granularity {
            GranularityChoice::Structured => Some(compact(&self.net)?),
            GranularityChoice::Unstructured => None,
        };
        self.run.latency = Some(latency::measure(&mut self.net, compacted.as_mut())?);
        Ok(())
    }

    /// Saves the final model where `save_as` says, if anywhere.
    fn save(&mut self) -> Result<()> {
        let (Some(dir), Some(rel)) = (self.ctx.out_dir, self.save_as.clone()) else {
            return Ok(());
        };
        let info = serde_json::json!({
            "seed": self.run.seed,
            "strategy": self.run.strategy,
            "target": self.run.target,
            "dataset": self.data.train.name,
            "test_acc": self.run.last().map(|s| s.test.acc),
        });
        checkpoint::save(&self.net, &info, &dir.join(&rel))?;
        self.run.model_file = Some(rel);
        Ok(())
    }

    fn schedule_error(&self, msg: String) -> Error {
        Error::Plugin {
            plugin: self.schedule_label.clone(),
            msg,
        }
    }
}

/// One run of a seed's plan: its index among all runs of the comparison
/// and which strategy and target it takes (indices into the config).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct PlannedRun {
    /// Index among all runs (what [`Event::RunStarted`] reports).
    pub index: usize,
    /// Index into `cfg.strategies`.
    pub strategy: usize,
    /// Index into `cfg.sparsities`.
    pub target: usize,
}

/// The runs of one seed: what each of them starts from.
pub(super) struct SeedRuns<'a> {
    /// The comparison.
    pub cfg: &'a ExperimentConfig,
    /// Plugins, cancel flag, output folder.
    pub ctx: &'a Context<'a>,
    /// The data splits.
    pub data: &'a DataSplits,
    /// The seed's dense base model.
    pub base: &'a Network,
    /// The seed.
    pub seed: u64,
    /// Expected fine-tuning epochs by strategy and target index.
    pub expected: &'a [Vec<u32>],
}

/// The runs of one seed of `cfg`, strategy by strategy, each at every
/// target; the first has index `first`.
pub(super) fn plan_runs(cfg: &ExperimentConfig, first: usize) -> Vec<PlannedRun> {
    let targets = cfg.sparsities.len();
    (0..cfg.strategies.len() * targets)
        .map(|i| PlannedRun {
            index: first + i,
            strategy: i / targets,
            target: i % targets,
        })
        .collect()
}

impl SeedRuns<'_> {
    /// Runs `planned` from a copy of the base, its events to `emit`
    /// ([`Event::RunStarted`] first); returns its result and whether it was
    /// cancelled. A run that cannot start is returned failed.
    pub fn run(&self, planned: &PlannedRun, emit: &mut Emit<'_>) -> (RunResult, bool) {
        let strategy = &self.cfg.strategies[planned.strategy];
        let target = self.cfg.sparsities[planned.target];
        emit(&Event::RunStarted {
            index: planned.index,
            strategy: strategy.label(),
            target,
            seed: self.seed,
            expected_epochs: self.expected[planned.strategy][planned.target],
        });
        let run = RunResult::new(
            strategy.label(),
            (&strategy.schedule, &strategy.criterion),
            target,
            self.seed,
        );
        let save_as = self.ctx.out_dir.map(|_| {
            super::output::model_file_name(
                planned.strategy,
                &run.strategy,
                planned.target,
                target,
                self.seed,
            )
        });
        let (cfg, data) = (self.cfg, self.data);
        let (run, outcome) = match StrategyRun::new(
            self.ctx,
            cfg,
            data,
            strategy,
            self.base,
            run.clone(),
            save_as,
        ) {
            Ok(r) => r.execute(emit),
            Err(e) => {
                let status = Status::Failed(e.to_string());
                (RunResult { status, ..run }, Err(e))
            }
        };
        (run, matches!(outcome, Err(Error::Cancelled)))
    }
}
