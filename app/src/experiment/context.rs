//! What every part of a comparison run shares: the [`Context`] (plugins,
//! cancel flag, output folder), the [`Sink`] that receives events, and a
//! training phase that reports its epochs as events.

use std::path::Path;
use std::sync::atomic::AtomicBool;

use super::results::{ComparisonResults, Event};
use crate::data::DataSplits;
use crate::error::Result;
use crate::model::Network;
use crate::plugins::Registry;
use crate::train::{fit, EpochReport, FitOutcome, TrainPhase};

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
