//! Dense controls: the base model fine-tuned without pruning for as many
//! epochs as the longest strategy spent at a target, so that what a strategy
//! gains from extra training is not credited to pruning.

use std::collections::btree_map::{BTreeMap, Entry};
use std::time::Instant;

use super::context::{split_metrics, train_phase, Context, Sink};
use super::results::{ComparisonResults, Event, RunResult, Status, StepRecord, DENSE_CONTROL};
use super::ExperimentConfig;
use crate::data::DataSplits;
use crate::error::{Error, Result};
use crate::model::Network;
use crate::prune::{dense_cost, sparsity};
use crate::train::TrainPhase;

/// Fine-tuning epochs of the longest completed run of `seed` at `target`.
pub fn control_epochs(results: &ComparisonResults, seed: u64, target: f32) -> u32 {
    results
        .runs
        .iter()
        .filter(|r| r.seed == seed && r.target == target && r.status == Status::Complete)
        .filter_map(|r| r.last().map(|s| s.epochs))
        .max()
        .unwrap_or(0)
}

/// The dense controls of one seed.
pub(super) struct Controls<'a> {
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
}

impl Controls<'_> {
    /// Runs the control at every target of the config (one training per
    /// distinct epoch count) and adds them to `results.controls`. A failed
    /// control is recorded as failed; only a cancel stops the rest.
    pub fn run(&self, results: &mut ComparisonResults, sink: &mut Sink<'_>) -> Result<()> {
        let mut done: BTreeMap<u32, std::result::Result<StepRecord, String>> = BTreeMap::new();
        for &target in &self.cfg.sparsities {
            let epochs = control_epochs(results, self.seed, target);
            let step = match done.entry(epochs) {
                Entry::Occupied(e) => e.into_mut(),
                Entry::Vacant(slot) => match self.train(epochs, target, results, sink) {
                    Err(Error::Cancelled) => return Err(Error::Cancelled),
                    other => slot.insert(other.map_err(|e| e.to_string())),
                },
            };
            let (steps, status) = match step {
                Ok(step) => (vec![step.clone()], Status::Complete),
                Err(e) => (vec![], Status::Failed(e.clone())),
            };
            let run = RunResult {
                steps,
                status,
                ..RunResult::new(DENSE_CONTROL, (DENSE_CONTROL, ""), target, self.seed)
            };
            results.controls.push(run.clone());
            sink(&Event::ControlFinished(run), results);
        }
        Ok(())
    }

    /// Fine-tunes a copy of the base for `epochs` epochs and records it as
    /// one step at sparsity 0.
    fn train(
        &self,
        epochs: u32,
        target: f32,
        results: &ComparisonResults,
        sink: &mut Sink<'_>,
    ) -> Result<StepRecord> {
        let (cfg, data) = (self.cfg, self.data);
        let started = Instant::now();
        let mut net = self.base.try_clone()?;
        net.seed_dropout(self.seed);
        let phase = TrainPhase {
            tc: &cfg.finetune,
            max_epochs: epochs,
            stop: None,
            seed: self.seed,
            first_epoch: cfg.train.epochs,
        };
        let label = (DENSE_CONTROL, target);
        train_phase(&mut net, &phase, label, data, self.ctx, &mut |e| {
            sink(e, results)
        })?;
        let now = split_metrics(&mut net, data, cfg.finetune.batch_size)?;
        Ok(StepRecord {
            step: 1,
            target_sparsity: 0.0,
            sparsity: sparsity(&net)?,
            val: now.val,
            test: now.test,
            epochs,
            seconds: started.elapsed().as_secs_f64(),
            pruned: None,
            finetune_epochs: epochs,
            kept_epoch: None,
            cost: Some(dense_cost(&net)),
        })
    }
}
