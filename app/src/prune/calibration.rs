//! The extra inputs a criterion asks for (gradients, activation norms),
//! computed on a few batches of training data: one place for the engine,
//! the command line and the app.

use std::collections::BTreeMap;

use shears_plugin_api::Needs;

use super::CriterionInputs;
use crate::data::Dataset;
use crate::error::Result;
use crate::model::{ActivationStats, Network};
use crate::train::{accumulate_gradients, collect_activations};

/// Batches of training data a criterion's inputs are computed on, unless a
/// config says otherwise.
pub const DEFAULT_CALIBRATION_BATCHES: usize = 4;

/// How much training data the inputs are computed on: the first `batches`
/// batches of `batch_size` samples, in the data's own order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CalibrationSpec {
    /// Samples per batch.
    pub batch_size: usize,
    /// Number of batches.
    pub batches: usize,
}

/// The inputs computed for one prune (only what the criterion needs).
#[derive(Debug, Default)]
pub struct Calibration {
    /// Summed gradients of the training loss by parameter name.
    pub grads: Option<BTreeMap<String, Vec<f32>>>,
    /// Per-input activation statistics by layer name.
    pub acts: Option<ActivationStats>,
}

impl Calibration {
    /// The view [`prune_to`](super::prune_to) takes.
    pub fn as_inputs(&self) -> CriterionInputs<'_> {
        CriterionInputs {
            grads: self.grads.as_ref(),
            acts: self.acts.as_ref(),
        }
    }
}

/// Computes what `needs` asks for on `data` as `spec` says (nothing when the
/// criterion needs nothing).
pub fn criterion_inputs(
    net: &mut Network,
    needs: Needs,
    data: &Dataset,
    spec: CalibrationSpec,
) -> Result<Calibration> {
    let CalibrationSpec {
        batch_size,
        batches,
    } = spec;
    let grads = needs
        .gradient
        .then(|| accumulate_gradients(net, data, batch_size, batches))
        .transpose()?;
    let acts = needs
        .activations
        .then(|| collect_activations(net, data, batch_size, batches))
        .transpose()?;
    Ok(Calibration { grads, acts })
}
