//! What every part of a comparison run shares: the [`Context`] (plugins,
//! cancel flag, output folder), the [`Sink`] that receives events, the base
//! model's training phase, a training phase that reports its epochs as
//! events, and the validation + test metrics of a model.

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use super::results::{ComparisonResults, Event, SplitMetrics};
use super::ExperimentConfig;
use crate::data::DataSplits;
use crate::error::Result;
use crate::model::Network;
use crate::plugins::Registry;
use crate::train::{evaluate, fit_reporting, BatchReport, EpochReport, FitOutcome, TrainPhase};

/// Least time between two [`Event::Batch`]es of a phase.
pub const BATCH_EVENT_INTERVAL: Duration = Duration::from_millis(250);

/// Receives every event with the results so far (to save them as they grow).
pub type Sink<'a> = dyn FnMut(&Event, &ComparisonResults) + 'a;

/// Receives the events of one run or training (the caller adds the results
/// to make them a [`Sink`]'s).
pub type Emit<'a> = dyn FnMut(&Event) + 'a;

/// Everything a run needs besides the config.
pub struct Context<'a> {
    /// Plugins.
    pub registry: &'a Registry,
    /// Set to stop the comparison at the next batch.
    pub cancel: &'a AtomicBool,
    /// Where to save the base checkpoints and pruned models (see
    /// [`output`](super::output) for their names), if anywhere.
    pub out_dir: Option<&'a Path>,
}

/// [`fit`](crate::train::fit) with an [`Event::Epoch`] per epoch and an
/// [`Event::Batch`] at most every [`BATCH_EVENT_INTERVAL`], labelled `(phase
/// name, target sparsity)`.
pub(super) fn train_phase(
    net: &mut Network,
    phase: &TrainPhase<'_>,
    (label, target): (&str, f32),
    data: &DataSplits,
    ctx: &Context<'_>,
    emit: &mut Emit<'_>,
) -> Result<FitOutcome> {
    let seed = phase.seed;
    // Both reports go to the one sink, in the order they happen.
    let emit = std::cell::RefCell::new(emit);
    let mut on_epoch = |r: EpochReport| {
        let e = Event::Epoch {
            phase: label.into(),
            target,
            seed,
            epoch: r.epoch,
            of: r.of,
            train: r.train,
            val: r.val,
            lr: r.lr,
        };
        (emit.borrow_mut())(&e);
    };
    let mut last = Instant::now();
    let mut on_batch = |b: BatchReport| {
        if b.batch < b.batches && last.elapsed() >= BATCH_EVENT_INTERVAL {
            last = Instant::now();
            let e = Event::Batch {
                phase: label.into(),
                target,
                seed,
                epoch: b.epoch,
                of: b.of,
                batch: b.batch,
                batches: b.batches,
            };
            (emit.borrow_mut())(&e);
        }
    };
    fit_reporting(
        net,
        phase,
        (&data.train, &data.val),
        ctx.cancel,
        &mut on_epoch,
        &mut on_batch,
    )
}

/// Validation and test metrics of `net` on `data`, in batches of `batch`.
pub(super) fn split_metrics(
    net: &mut Network,
    data: &DataSplits,
    batch: usize,
) -> Result<SplitMetrics> {
    Ok(SplitMetrics {
        val: evaluate(net, &data.val, batch)?,
        test: evaluate(net, &data.test, batch)?,
    })
}

/// The training of `seed`'s dense base model: `train.epochs` epochs from the
/// data order's first epoch.
pub(super) fn base_phase(cfg: &ExperimentConfig, seed: u64) -> TrainPhase<'_> {
    TrainPhase {
        tc: &cfg.train,
        max_epochs: cfg.train.epochs,
        stop: None,
        seed,
        first_epoch: 0,
    }
}
