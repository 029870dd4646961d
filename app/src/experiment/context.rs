//! What every part of a comparison run shares: the [`Context`] (plugins,
//! cancel flag, output folder), the [`Sink`] that receives events, the base
//! model's training phase, a training phase that reports its epochs as
//! events, and the validation + test metrics of a model.

use std::path::Path;
use std::sync::atomic::AtomicBool;

use super::results::{ComparisonResults, Event, SplitMetrics};
use super::ExperimentConfig;
use crate::data::DataSplits;
use crate::error::Result;
use crate::model::Network;
use crate::plugins::Registry;
use crate::train::{evaluate, fit, EpochReport, FitOutcome, TrainPhase};

/// Receives every event with the results so far (to save them as they grow).
pub type Sink<'a> = dyn FnMut(&Event, &ComparisonResults) + 'a;

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

/// [`fit`] with an [`Event::Epoch`] per epoch, labelled `(phase name,
/// target sparsity)`.
pub(super) fn train_phase(
    net: &mut Network,
    phase: &TrainPhase<'_>,
    (label, target): (&str, f32),
    data: &DataSplits,
    ctx: &Context<'_>,
    sink: &mut Sink<'_>,
    results: &ComparisonResults,
) -> Result<FitOutcome> {
    let seed = phase.seed;
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
        sink(&e, results);
    };
    fit(
        net,
        phase,
        &data.train,
        &data.val,
        ctx.cancel,
        &mut on_epoch,
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
