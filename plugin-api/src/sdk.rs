//! The safe Rust SDK: implement [`crate::Criterion`] or [`crate::Schedule`],
//! list the factories, and invoke [`crate::export_plugins!`] once in a
//! `cdylib` crate. The generated entry symbol and every function of the table
//! catch panics and turn them into [`STATUS_PANIC`] with the message.
//!
//! All `unsafe` of the plugin side lives in this module: turning the host's
//! raw pointers into slices and strings for the duration of one call.

use std::any::Any;
use std::ffi::{c_char, c_void, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::abi::*;
use crate::{
    Criterion, CriterionFactory, Granularity, LayerKind, LayerView, Phase, PluginError, PluginKind,
    PluginMeta, PluginResult, Schedule, ScheduleFactory, ScheduleState,
};

/// Most criteria (and, separately, schedules) one library can export.
pub const MAX_PER_KIND: usize = 16;

/// The plugins a library exports; implemented by [`crate::export_plugins!`].
pub trait PluginSet: 'static {
    /// The criteria, in order.
    fn criteria() -> &'static [CriterionFactory];
    /// The schedules, in order.
    fn schedules() -> &'static [ScheduleFactory];
}

/// Writes `msg` into the host's buffer (truncated at a character boundary,
/// NUL-terminated). Does nothing for a null or empty buffer.
pub fn write_error(err: ShearsErrorBuf, msg: &str) {
    if err.ptr.is_null() || err.cap == 0 {
        return;
    }
    let mut n = msg.len().min(err.cap - 1);
    while !msg.is_char_boundary(n) {
        n -= 1;
    }
    // SAFETY: the host guarantees `ptr` points to `cap` writable bytes; we
    // write `n + 1 <= cap` bytes.
    unsafe {
        std::ptr::copy_nonoverlapping(msg.as_ptr(), err.ptr.cast::<u8>(), n);
        *err.ptr.add(n) = 0;
    }
}

fn panic_message(p: Box<dyn Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic payload".into()
    }
}

/// Runs `f`, mapping errors and panics to a status and a message.
fn guard(err: ShearsErrorBuf, f: impl FnOnce() -> PluginResult<()>) -> i32 {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => STATUS_OK,
        Ok(Err(e)) => {
            write_error(err, &e.0);
            STATUS_ERROR
        }
        Err(p) => {
            write_error(err, &format!("panic: {}", panic_message(p)));
            STATUS_PANIC
        }
    }
}

/// # Safety
/// `p` is null or a NUL-terminated string valid for `'a`.
unsafe fn str_arg<'a>(p: *const c_char, what: &str) -> PluginResult<&'a str> {
    if p.is_null() {
        return Err(PluginError(format!("{what} is null")));
    }
    CStr::from_ptr(p)
        .to_str()
        .map_err(|_| PluginError(format!("{what} is not UTF-8")))
}

/// # Safety
/// `p` is null or points to `len` values valid for `'a`.
unsafe fn slice_arg<'a, T>(p: *const T, len: usize, what: &str) -> PluginResult<&'a [T]> {
    if p.is_null() {
        if len == 0 {
            return Ok(&[]);
        }
        return Err(PluginError(format!("{what} is null")));
    }
    Ok(std::slice::from_raw_parts(p, len))
}

unsafe fn create_with<T: ?Sized>(
    out: *mut *mut c_void,
    err: ShearsErrorBuf,
    make: impl FnOnce() -> PluginResult<Box<T>>,
) -> i32 {
    guard(err, || {
        if out.is_null() {
            return Err(PluginError::new("output pointer is null"));
        }
        let inst: Box<Box<T>> = Box::new(make()?);
        *out = Box::into_raw(inst).cast::<c_void>();
        Ok(())
    })
}

/// `create` of the `I`-th criterion of `P`.
///
/// # Safety
/// Called by the host with the pointers the ABI describes.
pub unsafe extern "C" fn criterion_create<P: PluginSet, const I: usize>(
    params_json: *const c_char,
    out: *mut *mut c_void,
    err: ShearsErrorBuf,
) -> i32 {
    create_with::<dyn Criterion>(out, err, || {
        let f = P::criteria()
            .get(I)
            .ok_or_else(|| PluginError::new("no such criterion"))?;
        (f.create)(str_arg(params_json, "parameters")?)
    })
}

/// `create` of the `I`-th schedule of `P`.
///
/// # Safety
/// Called by the host with the pointers the ABI describes.
pub unsafe extern "C" fn schedule_create<P: PluginSet, const I: usize>(
    params_json: *const c_char,
    out: *mut *mut c_void,
    err: ShearsErrorBuf,
) -> i32 {
    create_with::<dyn Schedule>(out, err, || {
        let f = P::schedules()
            .get(I)
            .ok_or_else(|| PluginError::new("no such schedule"))?;
        (f.create)(str_arg(params_json, "parameters")?)
    })
}

/// `destroy` of every criterion.
///
/// # Safety
/// `instance` was made by [`criterion_create`] and is not used again.
pub unsafe extern "C" fn criterion_destroy(instance: *mut c_void) {
    if !instance.is_null() {
        let _ = catch_unwind(AssertUnwindSafe(|| {
            drop(Box::from_raw(instance.cast::<Box<dyn Criterion>>()))
        }));
    }
}

/// `destroy` of every schedule.
///
/// # Safety
/// `instance` was made by [`schedule_create`] and is not used again.
pub unsafe extern "C" fn schedule_destroy(instance: *mut c_void) {
    if !instance.is_null() {
        let _ = catch_unwind(AssertUnwindSafe(|| {
            drop(Box::from_raw(instance.cast::<Box<dyn Schedule>>()))
        }));
    }
}

/// `needs` of every criterion.
///
/// # Safety
/// `instance` was made by [`criterion_create`].
pub unsafe extern "C" fn criterion_needs(instance: *mut c_void) -> u32 {
    catch_unwind(AssertUnwindSafe(|| {
        let c = &*instance.cast::<Box<dyn Criterion>>();
        let n = c.needs();
        (if n.gradient { NEEDS_GRADIENT } else { 0 })
            | (if n.activations { NEEDS_ACTIVATIONS } else { 0 })
    }))
    .unwrap_or(0)
}

/// `score` of every criterion.
///
/// # Safety
/// `instance` was made by [`criterion_create`]; the other pointers are valid
/// as the ABI describes, for the duration of the call.
pub unsafe extern "C" fn criterion_score(
    instance: *mut c_void,
    layer: *const ShearsLayer,
    out: *mut f32,
    out_len: usize,
    err: ShearsErrorBuf,
) -> i32 {
    guard(err, || {
        if instance.is_null() || layer.is_null() || out.is_null() {
            return Err(PluginError::new("null instance, layer or output"));
        }
        let c = &mut *instance.cast::<Box<dyn Criterion>>();
        let l = &*layer;
        let shape64 = slice_arg(l.shape, l.rank, "shape")?;
        let shape: Vec<usize> = shape64.iter().map(|&d| d as usize).collect();
        let view = LayerView {
            name: str_arg(l.name, "layer name")?,
            kind: LayerKind::try_from(l.kind).map_err(|e| PluginError(e.to_string()))?,
            shape: &shape,
            weight: slice_arg(l.weight, l.len, "weight")?,
            mask: slice_arg(l.mask, l.len, "mask")?,
            grad: if l.grad.is_null() {
                None
            } else {
                Some(slice_arg(l.grad, l.len, "gradient")?)
            },
            act_norms: if l.act_norms.is_null() {
                None
            } else {
                Some(slice_arg(l.act_norms, l.act_len, "activation norms")?)
            },
            granularity: Granularity::try_from(l.granularity)
                .map_err(|e| PluginError(e.to_string()))?,
        };
        let out = std::slice::from_raw_parts_mut(out, out_len);
        c.score(&view, out)
    })
}

/// `decide` of every schedule.
///
/// # Safety
/// `instance` was made by [`schedule_create`]; `state` and `out` are valid.
pub unsafe extern "C" fn schedule_decide(
    instance: *mut c_void,
    state: *const ShearsScheduleState,
    out: *mut ShearsDecision,
    err: ShearsErrorBuf,
) -> i32 {
    guard(err, || {
        if instance.is_null() || state.is_null() || out.is_null() {
            return Err(PluginError::new("null instance, state or output"));
        }
        let s = &mut *instance.cast::<Box<dyn Schedule>>();
        let st = &*state;
        let state = ScheduleState {
            prune_steps: st.prune_steps,
            last: Phase::try_from(st.last).map_err(|e| PluginError(e.to_string()))?,
            current_sparsity: st.current_sparsity,
            target_sparsity: st.target_sparsity,
            epochs_spent: st.epochs_spent,
            val_acc_history: slice_arg(st.val_acc_history, st.history_len, "history")?,
        };
        *out = ShearsDecision::from(s.decide(&state)?);
        Ok(())
    })
}

/// The plugin list of a library, with the strings it points to.
pub struct ExportedList {
    _strings: Vec<CString>,
    _plugins: Vec<ShearsPlugin>,
    list: ShearsPluginList,
}

// SAFETY: the list is immutable after construction and only holds pointers
// into its own heap buffers, which live as long as it does.
unsafe impl Send for ExportedList {}
// SAFETY: as above; readers never mutate.
unsafe impl Sync for ExportedList {}

impl ExportedList {
    /// What the entry symbol returns.
    pub fn as_ptr(&self) -> *const ShearsPluginList {
        &self.list
    }
}

macro_rules! table {
    ($f:ident, $p:ty) => {
        [
            $f::<$p, 0>,
            $f::<$p, 1>,
            $f::<$p, 2>,
            $f::<$p, 3>,
            $f::<$p, 4>,
            $f::<$p, 5>,
            $f::<$p, 6>,
            $f::<$p, 7>,
            $f::<$p, 8>,
            $f::<$p, 9>,
            $f::<$p, 10>,
            $f::<$p, 11>,
            $f::<$p, 12>,
            $f::<$p, 13>,
            $f::<$p, 14>,
            $f::<$p, 15>,
        ]
    };
}

/// Builds the descriptor list of `P` (at most [`MAX_PER_KIND`] of each kind).
///
/// # Panics
/// If `P` exports more than [`MAX_PER_KIND`] criteria or schedules, or a
/// string holds a NUL byte (the entry symbol turns the panic into null).
pub fn build_list<P: PluginSet>() -> ExportedList {
    let crit_create: [CreateFn; MAX_PER_KIND] = table!(criterion_create, P);
    let sched_create: [CreateFn; MAX_PER_KIND] = table!(schedule_create, P);
    assert!(P::criteria().len() <= MAX_PER_KIND && P::schedules().len() <= MAX_PER_KIND);
    let mut strings = Vec::new();
    let mut cstr = |s: &str| {
        let c = CString::new(s).expect("plugin strings hold no NUL byte");
        let p = c.as_ptr();
        strings.push(c);
        p
    };
    let mut plugins = Vec::new();
    let mut describe = |m: &PluginMeta, create: CreateFn| {
        let criterion = m.kind == PluginKind::Criterion;
        plugins.push(ShearsPlugin {
            kind: u32::from(m.kind),
            name: cstr(m.name),
            version: cstr(m.version),
            description: cstr(m.description),
            params_schema: cstr(m.params_schema),
            create: Some(create),
            destroy: Some(if criterion {
                criterion_destroy
            } else {
                schedule_destroy
            }),
            needs: if criterion {
                Some(criterion_needs)
            } else {
                None
            },
            score: if criterion {
                Some(criterion_score)
            } else {
                None
            },
            decide: if criterion {
                None
            } else {
                Some(schedule_decide)
            },
        });
    };
    for (f, c) in P::criteria().iter().zip(crit_create) {
        describe(&f.meta, c);
    }
    for (f, c) in P::schedules().iter().zip(sched_create) {
        describe(&f.meta, c);
    }
    let list = ShearsPluginList {
        abi_version: crate::ABI_VERSION,
        count: plugins.len(),
        plugins: plugins.as_ptr(),
    };
    ExportedList {
        _strings: strings,
        _plugins: plugins,
        list,
    }
}

/// Exports criteria and schedules from a `cdylib` through the C ABI v1.
///
/// ```ignore
/// shears_plugin_api::export_plugins!(
///     criteria: vec![my_criterion_factory()],
///     schedules: vec![],
/// );
/// ```
/// Both lists are expressions evaluated once, on the host's first call.
#[macro_export]
macro_rules! export_plugins {
    (criteria: $criteria:expr, schedules: $schedules:expr $(,)?) => {
        #[doc(hidden)]
        pub struct __ShearsPluginSet;

        impl $crate::sdk::PluginSet for __ShearsPluginSet {
            fn criteria() -> &'static [$crate::CriterionFactory] {
                static C: ::std::sync::OnceLock<::std::vec::Vec<$crate::CriterionFactory>> =
                    ::std::sync::OnceLock::new();
                C.get_or_init(|| $criteria)
            }
            fn schedules() -> &'static [$crate::ScheduleFactory] {
                static S: ::std::sync::OnceLock<::std::vec::Vec<$crate::ScheduleFactory>> =
                    ::std::sync::OnceLock::new();
                S.get_or_init(|| $schedules)
            }
        }

        /// Entry symbol of the Shears plugin ABI v1.
        #[no_mangle]
        pub extern "C" fn shears_plugin_v1() -> *const $crate::abi::ShearsPluginList {
            static L: ::std::sync::OnceLock<$crate::sdk::ExportedList> =
                ::std::sync::OnceLock::new();
            ::std::panic::catch_unwind(|| {
                L.get_or_init($crate::sdk::build_list::<__ShearsPluginSet>)
                    .as_ptr()
            })
            .unwrap_or(::std::ptr::null())
        }
    };
}
