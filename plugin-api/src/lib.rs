//! The Shears plugin contract, version 1.
//!
//! A pruning **criterion** scores the weights (or output channels) of one layer;
//! a pruning **schedule** decides, after each phase of a run, whether to prune to
//! a new sparsity, fine-tune, or stop. Both are created from a JSON parameter
//! string and exchange only plain data (`f32` slices with shapes, strings,
//! numbers), so the C ABI that wraps these traits needs no redesign: every type
//! here maps one-to-one onto a `#[repr(C)]` counterpart.
//!
//! Built-in plugins (the `plugins/` crates) implement these traits and expose a
//! [`CriterionFactory`] or [`ScheduleFactory`] per method; the host finds them
//! by [`PluginMeta::name`].

#![warn(missing_docs)]

pub mod abi;
pub mod sdk;
#[cfg(feature = "testing")]
pub mod testing;

use std::fmt;

/// Version of the plugin contract described by this crate.
pub const ABI_VERSION: u32 = 1;

/// Upper bound on the number of decisions a host asks one schedule for in one
/// run; a schedule that has not answered [`Decision::Stop`] by then is broken.
pub const MAX_SCHEDULE_DECISIONS: u32 = 10_000;

/// Upper bound on the number of prune steps in one run; every prune must
/// also raise the sparsity.
pub const MAX_PRUNE_STEPS: u32 = 1_000;

/// Error returned by a plugin: a human-readable message (the host adds which
/// plugin and which file it came from).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginError(pub String);

impl PluginError {
    /// Builds an error from anything printable.
    pub fn new(msg: impl Into<String>) -> Self {
        Self(msg.into())
    }
}

impl fmt::Display for PluginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PluginError {}

/// Result type of every plugin call.
pub type PluginResult<T> = Result<T, PluginError>;

/// What a plugin provides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PluginKind {
    /// Scores weights or channels of a layer.
    Criterion,
    /// Decides when to prune, how far, and how long to fine-tune.
    Schedule,
}

/// Descriptive data every plugin carries (the C ABI descriptor holds the same
/// fields as C strings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PluginMeta {
    /// Criterion or schedule.
    pub kind: PluginKind,
    /// Unique name a config refers to, e.g. `"magnitude"` or `"one-shot"`.
    pub name: &'static str,
    /// The plugin's own semantic version.
    pub version: &'static str,
    /// One line for users.
    pub description: &'static str,
    /// JSON Schema (draft 2020-12 subset: `type: object`, `properties` with
    /// `type`, `default`, `minimum`, `maximum`, `items`, `description`) of the
    /// parameter object accepted by the plugin's constructor.
    pub params_schema: &'static str,
}

/// Kind of a prunable layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LayerKind {
    /// Fully connected; weight shape `[out, in]`.
    Linear,
    /// 2-D convolution; weight shape `[out, in, kh, kw]`.
    Conv2d,
}

/// What a criterion scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Granularity {
    /// One score per weight: `out.len() == weight.len()`.
    Unstructured,
    /// One score per output channel (neuron): `out.len() == shape[0]`.
    StructuredChannel,
}

/// One layer as a criterion sees it. All slices are row-major in `shape`.
#[derive(Debug, Clone, Copy)]
pub struct LayerView<'a> {
    /// Layer name, e.g. `"conv1"`.
    pub name: &'a str,
    /// Linear or convolution.
    pub kind: LayerKind,
    /// Weight shape: `[out, in]` or `[out, in, kh, kw]`.
    pub shape: &'a [usize],
    /// Current weights (already pruned ones are exactly zero).
    pub weight: &'a [f32],
    /// Current mask (1 = kept, 0 = pruned), same length as `weight`.
    pub mask: &'a [f32],
    /// Gradient of the loss w.r.t. the weights, accumulated over a few
    /// batches, if the criterion asked for it ([`Needs::gradient`]).
    pub grad: Option<&'a [f32]>,
    /// L2 norm of each input feature / input channel over a calibration set
    /// (length `shape[1]`), if the criterion asked for it
    /// ([`Needs::activations`]).
    pub act_norms: Option<&'a [f32]>,
    /// Whether one score per weight or per output channel is wanted.
    pub granularity: Granularity,
}

impl LayerView<'_> {
    /// Number of scores a criterion must write for this view.
    pub fn score_len(&self) -> usize {
        match self.granularity {
            Granularity::Unstructured => self.weight.len(),
            Granularity::StructuredChannel => self.shape.first().copied().unwrap_or(0),
        }
    }

    /// Number of weights per output channel (`in * kh * kw`).
    pub fn fan_in(&self) -> usize {
        self.shape.iter().skip(1).product()
    }
}

/// Extra inputs a criterion needs the host to compute.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Needs {
    /// Gradients of the loss on a few training batches.
    pub gradient: bool,
    /// Per-input activation L2 norms on a few training batches.
    pub activations: bool,
}

/// A pruning criterion: higher score = more important = kept longer.
///
/// The host ranks scores (per layer or globally: that is the host's job) and
/// removes the lowest. Scores must be finite; the host rejects NaN/inf.
pub trait Criterion: Send {
    /// Which extra inputs [`Criterion::score`] expects.
    fn needs(&self) -> Needs {
        Needs::default()
    }

    /// Fills `out` (length [`LayerView::score_len`]) with importance scores.
    fn score(&mut self, layer: &LayerView<'_>, out: &mut [f32]) -> PluginResult<()>;
}

/// What a schedule did last, so it can decide what to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Phase {
    /// Nothing yet: the run just started from the dense base model.
    #[default]
    Start,
    /// The host just pruned to the requested sparsity.
    Pruned,
    /// The host just finished a fine-tuning phase.
    FineTuned,
}

/// Everything a schedule is told before each decision.
#[derive(Debug, Clone, Copy)]
pub struct ScheduleState<'a> {
    /// Number of prune decisions carried out so far.
    pub prune_steps: u32,
    /// What happened last.
    pub last: Phase,
    /// Sparsity (fraction of prunable weights that are zero) now.
    pub current_sparsity: f32,
    /// Sparsity the run is aiming for, in `[0, 1)`.
    pub target_sparsity: f32,
    /// Fine-tuning epochs spent so far in this run.
    pub epochs_spent: u32,
    /// Validation accuracy after every fine-tuning epoch so far, oldest first.
    pub val_acc_history: &'a [f32],
}

impl ScheduleState<'_> {
    /// The state before a run's first decision: nothing pruned, nothing
    /// fine-tuned, aiming for `target_sparsity`.
    pub fn start(target_sparsity: f32) -> Self {
        ScheduleState {
            prune_steps: 0,
            last: Phase::Start,
            current_sparsity: 0.0,
            target_sparsity,
            epochs_spent: 0,
            val_acc_history: &[],
        }
    }
}

/// A schedule's answer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Decision {
    /// Prune to this overall sparsity (non-decreasing, `< 1`).
    Prune {
        /// Target sparsity after this step.
        sparsity: f32,
    },
    /// Fine-tune for at most `max_epochs`; when `patience > 0`, stop earlier
    /// once validation accuracy has not improved for `patience` epochs.
    FineTune {
        /// Upper bound on epochs.
        max_epochs: u32,
        /// Early-stopping patience in epochs; 0 disables it.
        patience: u32,
    },
    /// The run is finished.
    Stop,
}

/// A pruning schedule.
pub trait Schedule: Send {
    /// Answers what to do next given the run's state.
    fn decide(&mut self, state: &ScheduleState<'_>) -> PluginResult<Decision>;
}

/// Constructor of a criterion from its JSON parameter string.
pub type CriterionCtor = fn(params_json: &str) -> PluginResult<Box<dyn Criterion>>;
/// Constructor of a schedule from its JSON parameter string.
pub type ScheduleCtor = fn(params_json: &str) -> PluginResult<Box<dyn Schedule>>;

/// A criterion a plugin library provides: metadata plus constructor.
#[derive(Debug, Clone, Copy)]
pub struct CriterionFactory {
    /// Name, version, description, parameter schema.
    pub meta: PluginMeta,
    /// Creates an instance from JSON parameters (`"{}"` = defaults).
    pub create: CriterionCtor,
}

/// A schedule a plugin library provides: metadata plus constructor.
#[derive(Debug, Clone, Copy)]
pub struct ScheduleFactory {
    /// Name, version, description, parameter schema.
    pub meta: PluginMeta,
    /// Creates an instance from JSON parameters (`"{}"` = defaults).
    pub create: ScheduleCtor,
}

/// Parses a plugin's JSON parameter string into its parameter struct; an empty
/// string means `{}`. Errors name the offending key (use
/// `#[serde(deny_unknown_fields, default)]` on the struct).
pub fn parse_params<T: serde::de::DeserializeOwned>(params_json: &str) -> PluginResult<T> {
    let text = if params_json.trim().is_empty() {
        "{}"
    } else {
        params_json
    };
    serde_json::from_str(text).map_err(|e| PluginError(format!("invalid parameters: {e}")))
}

/// Checks a parameter lies in `[lo, hi]`, naming it in the error.
pub fn check_range<T: PartialOrd + fmt::Display>(
    name: &str,
    v: T,
    lo: T,
    hi: T,
) -> PluginResult<()> {
    if v >= lo && v <= hi {
        Ok(())
    } else {
        Err(PluginError(format!(
            "parameter `{name}` = {v} is out of range [{lo}, {hi}]"
        )))
    }
}

/// Checks `out` has the length `layer` requires; every criterion calls it first.
pub fn check_score_len(layer: &LayerView<'_>, out: &[f32]) -> PluginResult<()> {
    let want = layer.score_len();
    if out.len() != want {
        return Err(PluginError(format!(
            "layer `{}`: score buffer has {} entries, expected {want}",
            layer.name,
            out.len()
        )));
    }
    if layer.weight.len() != layer.shape.iter().product::<usize>() {
        return Err(PluginError(format!(
            "layer `{}`: weight has {} values but shape {:?}",
            layer.name,
            layer.weight.len(),
            layer.shape
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Default, Debug)]
    #[serde(deny_unknown_fields, default)]
    struct P {
        steps: u32,
    }

    #[test]
    fn params_parse_defaults_and_name_unknown_keys() {
        let p: P = parse_params("").unwrap();
        assert_eq!(p.steps, 0);
        let p: P = parse_params(r#"{"steps": 3}"#).unwrap();
        assert_eq!(p.steps, 3);
        let e = parse_params::<P>(r#"{"stepz": 3}"#).unwrap_err();
        assert!(e.0.contains("stepz"), "{e}");
    }

    #[test]
    fn score_len_follows_granularity() {
        let w = [0.0f32; 24];
        let mut v = LayerView {
            name: "c",
            kind: LayerKind::Conv2d,
            shape: &[2, 3, 2, 2],
            weight: &w,
            mask: &w,
            grad: None,
            act_norms: None,
            granularity: Granularity::Unstructured,
        };
        assert_eq!(v.score_len(), 24);
        v.granularity = Granularity::StructuredChannel;
        assert_eq!(v.score_len(), 2);
        assert_eq!(v.fan_in(), 12);
        assert!(check_score_len(&v, &[0.0; 2]).is_ok());
        assert!(check_score_len(&v, &[0.0; 3]).is_err());
        assert!(check_range("p", 0.5, 0.0, 1.0).is_ok());
        assert!(check_range("p", 1.5, 0.0, 1.0)
            .unwrap_err()
            .0
            .contains("`p`"));
    }
}
