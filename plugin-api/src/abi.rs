//! The C ABI, version 1: the `#[repr(C)]` types and function signatures a
//! plugin library exports and the host calls. `include/shears_plugin.h` is
//! the same contract for C and C++.
//!
//! Rules:
//! - One entry symbol per library, [`ENTRY_SYMBOL`], of type [`EntryFn`],
//!   returning a pointer to a [`ShearsPluginList`] that stays valid until the
//!   library is unloaded. Its first field is the ABI version, so a host can
//!   read it from a library of any version.
//! - Data crosses as host memory: `f32` buffers with lengths, shapes as
//!   `u64`, NUL-terminated UTF-8 strings. The plugin never frees host memory
//!   and the host never frees plugin memory: instances made by `create` are
//!   released with the same plugin's `destroy`.
//! - Every call returns a status ([`STATUS_OK`], [`STATUS_ERROR`],
//!   [`STATUS_PANIC`]); on failure the plugin writes a message into the
//!   host's [`ShearsErrorBuf`].

use std::ffi::{c_char, c_void};

/// Name of the entry symbol every plugin library exports.
pub const ENTRY_SYMBOL: &str = "shears_plugin_v1";

/// The call succeeded.
pub const STATUS_OK: i32 = 0;
/// The call failed; the error buffer holds the message.
pub const STATUS_ERROR: i32 = 1;
/// The plugin panicked (or threw); the error buffer holds the message.
pub const STATUS_PANIC: i32 = 2;

/// [`ShearsPlugin::kind`] of a criterion.
pub const KIND_CRITERION: u32 = 1;
/// [`ShearsPlugin::kind`] of a schedule.
pub const KIND_SCHEDULE: u32 = 2;

/// [`ShearsLayer::kind`]: fully connected, shape `[out, in]`.
pub const LAYER_LINEAR: u32 = 0;
/// [`ShearsLayer::kind`]: 2-D convolution, shape `[out, in, kh, kw]`.
pub const LAYER_CONV2D: u32 = 1;

/// [`ShearsLayer::granularity`]: one score per weight.
pub const GRANULARITY_UNSTRUCTURED: u32 = 0;
/// [`ShearsLayer::granularity`]: one score per output channel.
pub const GRANULARITY_STRUCTURED_CHANNEL: u32 = 1;

/// Bit of a criterion's `needs` answer: it wants gradients.
pub const NEEDS_GRADIENT: u32 = 1;
/// Bit of a criterion's `needs` answer: it wants input activation norms.
pub const NEEDS_ACTIVATIONS: u32 = 2;

/// [`ShearsScheduleState::last`]: nothing happened yet.
pub const PHASE_START: u32 = 0;
/// [`ShearsScheduleState::last`]: the host just pruned.
pub const PHASE_PRUNED: u32 = 1;
/// [`ShearsScheduleState::last`]: the host just fine-tuned.
pub const PHASE_FINETUNED: u32 = 2;

/// [`ShearsDecision::kind`]: the run is over.
pub const DECISION_STOP: u32 = 0;
/// [`ShearsDecision::kind`]: prune to `sparsity`.
pub const DECISION_PRUNE: u32 = 1;
/// [`ShearsDecision::kind`]: fine-tune up to `max_epochs` with `patience`.
pub const DECISION_FINETUNE: u32 = 2;

/// A host-owned buffer for an error message: the plugin writes at most
/// `cap - 1` bytes of UTF-8 and a terminating NUL. `ptr` may be null.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ShearsErrorBuf {
    /// Start of the buffer.
    pub ptr: *mut c_char,
    /// Its size in bytes.
    pub cap: usize,
}

/// One layer to score. All pointers are valid for the duration of the call.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ShearsLayer {
    /// Layer name (NUL-terminated UTF-8).
    pub name: *const c_char,
    /// [`LAYER_LINEAR`] or [`LAYER_CONV2D`].
    pub kind: u32,
    /// [`GRANULARITY_UNSTRUCTURED`] or [`GRANULARITY_STRUCTURED_CHANNEL`].
    pub granularity: u32,
    /// Weight shape, `rank` entries.
    pub shape: *const u64,
    /// Number of shape entries.
    pub rank: usize,
    /// Weights, `len` values, row-major.
    pub weight: *const f32,
    /// Mask (1 kept, 0 pruned), `len` values.
    pub mask: *const f32,
    /// Number of weights.
    pub len: usize,
    /// Gradient, `len` values, or null.
    pub grad: *const f32,
    /// Per-input activation L2 norms, `act_len` values, or null.
    pub act_norms: *const f32,
    /// Number of activation norms (`shape[1]`), 0 when `act_norms` is null.
    pub act_len: usize,
}

/// What a schedule is told before each decision.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ShearsScheduleState {
    /// Prunes carried out so far.
    pub prune_steps: u32,
    /// [`PHASE_START`], [`PHASE_PRUNED`] or [`PHASE_FINETUNED`].
    pub last: u32,
    /// Sparsity now.
    pub current_sparsity: f32,
    /// Target of the run.
    pub target_sparsity: f32,
    /// Fine-tuning epochs spent so far.
    pub epochs_spent: u32,
    /// Validation accuracy after every fine-tuning epoch, oldest first.
    pub val_acc_history: *const f32,
    /// Entries in `val_acc_history`.
    pub history_len: usize,
}

/// A schedule's answer, written by the plugin.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ShearsDecision {
    /// [`DECISION_STOP`], [`DECISION_PRUNE`] or [`DECISION_FINETUNE`].
    pub kind: u32,
    /// Target sparsity of a prune.
    pub sparsity: f32,
    /// Epoch limit of a fine-tune.
    pub max_epochs: u32,
    /// Patience of a fine-tune (0 = none).
    pub patience: u32,
}

/// Creates an instance from JSON parameters; writes it to `*out`.
pub type CreateFn = unsafe extern "C" fn(
    params_json: *const c_char,
    out: *mut *mut c_void,
    err: ShearsErrorBuf,
) -> i32;
/// Releases an instance made by the same plugin's `create`.
pub type DestroyFn = unsafe extern "C" fn(instance: *mut c_void);
/// A criterion's needs: a bit set of [`NEEDS_GRADIENT`], [`NEEDS_ACTIVATIONS`].
pub type NeedsFn = unsafe extern "C" fn(instance: *mut c_void) -> u32;
/// Fills `out` (`out_len` values) with the scores of `layer`.
pub type ScoreFn = unsafe extern "C" fn(
    instance: *mut c_void,
    layer: *const ShearsLayer,
    out: *mut f32,
    out_len: usize,
    err: ShearsErrorBuf,
) -> i32;
/// Writes a schedule's next decision to `out`.
pub type DecideFn = unsafe extern "C" fn(
    instance: *mut c_void,
    state: *const ShearsScheduleState,
    out: *mut ShearsDecision,
    err: ShearsErrorBuf,
) -> i32;

/// One plugin of a library: descriptor and function table.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ShearsPlugin {
    /// [`KIND_CRITERION`] or [`KIND_SCHEDULE`].
    pub kind: u32,
    /// Unique name (NUL-terminated UTF-8).
    pub name: *const c_char,
    /// The plugin's version.
    pub version: *const c_char,
    /// One line for users.
    pub description: *const c_char,
    /// JSON Schema of the parameter object.
    pub params_schema: *const c_char,
    /// Makes an instance.
    pub create: Option<CreateFn>,
    /// Releases an instance.
    pub destroy: Option<DestroyFn>,
    /// Criteria: what the instance needs (null for schedules).
    pub needs: Option<NeedsFn>,
    /// Criteria: scores a layer (null for schedules).
    pub score: Option<ScoreFn>,
    /// Schedules: decides the next step (null for criteria).
    pub decide: Option<DecideFn>,
}

/// What the entry symbol returns.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ShearsPluginList {
    /// Must be [`crate::ABI_VERSION`]; always the first field.
    pub abi_version: u32,
    /// Number of plugins.
    pub count: usize,
    /// `count` descriptors.
    pub plugins: *const ShearsPlugin,
}

/// Type of the entry symbol.
pub type EntryFn = unsafe extern "C" fn() -> *const ShearsPluginList;

/// A code read from the other side of the ABI that names no known value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnknownCode {
    /// What the code stands for (`layer kind`, `phase`, ...).
    pub what: &'static str,
    /// The code.
    pub code: u32,
}

impl std::fmt::Display for UnknownCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "unknown {} {}", self.what, self.code)
    }
}

impl std::error::Error for UnknownCode {}

/// `From<$ty> for u32` and `TryFrom<u32> for $ty`: the one mapping between
/// an enum and its ABI codes.
macro_rules! abi_codes {
    ($ty:ty, $what:literal, { $($variant:path => $code:ident),+ $(,)? }) => {
        impl From<$ty> for u32 {
            fn from(v: $ty) -> u32 {
                match v {
                    $($variant => $code,)+
                }
            }
        }

        impl TryFrom<u32> for $ty {
            type Error = UnknownCode;
            fn try_from(code: u32) -> Result<Self, UnknownCode> {
                match code {
                    $($code => Ok($variant),)+
                    code => Err(UnknownCode { what: $what, code }),
                }
            }
        }
    };
}

abi_codes!(crate::PluginKind, "plugin kind", {
    crate::PluginKind::Criterion => KIND_CRITERION,
    crate::PluginKind::Schedule => KIND_SCHEDULE,
});

abi_codes!(crate::LayerKind, "layer kind", {
    crate::LayerKind::Linear => LAYER_LINEAR,
    crate::LayerKind::Conv2d => LAYER_CONV2D,
});

abi_codes!(crate::Granularity, "granularity", {
    crate::Granularity::Unstructured => GRANULARITY_UNSTRUCTURED,
    crate::Granularity::StructuredChannel => GRANULARITY_STRUCTURED_CHANNEL,
});

abi_codes!(crate::Phase, "phase", {
    crate::Phase::Start => PHASE_START,
    crate::Phase::Pruned => PHASE_PRUNED,
    crate::Phase::FineTuned => PHASE_FINETUNED,
});

impl From<crate::Decision> for ShearsDecision {
    fn from(d: crate::Decision) -> Self {
        use crate::Decision;
        match d {
            Decision::Stop => ShearsDecision {
                kind: DECISION_STOP,
                ..Default::default()
            },
            Decision::Prune { sparsity } => ShearsDecision {
                kind: DECISION_PRUNE,
                sparsity,
                ..Default::default()
            },
            Decision::FineTune {
                max_epochs,
                patience,
            } => ShearsDecision {
                kind: DECISION_FINETUNE,
                sparsity: 0.0,
                max_epochs,
                patience,
            },
        }
    }
}

impl TryFrom<ShearsDecision> for crate::Decision {
    type Error = UnknownCode;
    fn try_from(d: ShearsDecision) -> Result<Self, UnknownCode> {
        use crate::Decision;
        match d.kind {
            DECISION_STOP => Ok(Decision::Stop),
            DECISION_PRUNE => Ok(Decision::Prune {
                sparsity: d.sparsity,
            }),
            DECISION_FINETUNE => Ok(Decision::FineTune {
                max_epochs: d.max_epochs,
                patience: d.patience,
            }),
            code => Err(UnknownCode {
                what: "decision kind",
                code,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Decision, Granularity, LayerKind, Phase, PluginKind};

    #[test]
    fn every_code_maps_both_ways_and_unknown_codes_are_named() {
        for k in [PluginKind::Criterion, PluginKind::Schedule] {
            assert_eq!(PluginKind::try_from(u32::from(k)), Ok(k));
        }
        for k in [LayerKind::Linear, LayerKind::Conv2d] {
            assert_eq!(LayerKind::try_from(u32::from(k)), Ok(k));
        }
        for g in [Granularity::Unstructured, Granularity::StructuredChannel] {
            assert_eq!(Granularity::try_from(u32::from(g)), Ok(g));
        }
        for p in [Phase::Start, Phase::Pruned, Phase::FineTuned] {
            assert_eq!(Phase::try_from(u32::from(p)), Ok(p));
        }
        for d in [
            Decision::Stop,
            Decision::Prune { sparsity: 0.25 },
            Decision::FineTune {
                max_epochs: 3,
                patience: 1,
            },
        ] {
            assert_eq!(Decision::try_from(ShearsDecision::from(d)), Ok(d));
        }
        assert_eq!(
            Phase::try_from(7).unwrap_err().to_string(),
            "unknown phase 7"
        );
        let bad = ShearsDecision {
            kind: 9,
            ..Default::default()
        };
        assert_eq!(
            Decision::try_from(bad).unwrap_err().to_string(),
            "unknown decision kind 9"
        );
    }
}
