//! Loading plugin libraries through the C ABI v1 and wrapping their
//! functions as [`Criterion`] and [`Schedule`] objects.
//!
//! All `unsafe` of the host side is in this file: opening the library,
//! resolving the entry symbol, reading the descriptor list, and calling the
//! function table with buffers the host owns. Everything a plugin returns is
//! checked (ABI version, kinds, UTF-8 strings, non-null functions, JSON
//! schema, status codes); scores and decisions are validated again by the
//! engine.

use std::ffi::{c_char, c_void, CStr, CString};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use libloading::Library;

pub use crate::error::LibraryError;
use shears_plugin_api::abi::*;
use shears_plugin_api::{
    Criterion, Decision, LayerView, Needs, PluginError, PluginKind, PluginResult, Schedule,
    ScheduleState, ABI_VERSION,
};

/// Size of the error buffer the host hands to every call.
const ERR_CAP: usize = 1024;

/// A plugin found in a library, with owned copies of its strings.
#[derive(Clone)]
pub struct LoadedPlugin {
    /// Criterion or schedule.
    pub kind: PluginKind,
    /// Name.
    pub name: String,
    /// Version.
    pub version: String,
    /// Description.
    pub description: String,
    /// JSON Schema of its parameters (parsed: it is valid JSON).
    pub params_schema: String,
    /// The library file.
    pub path: PathBuf,
    table: ShearsPlugin,
    lib: Arc<OpenLibrary>,
}

/// A loaded library and the lock every call into it holds: runs in
/// parallel jobs use their own instances, but a plugin written before jobs
/// existed may keep state across instances, so no two threads are ever
/// inside one library at once (the calls are short beside training).
struct OpenLibrary {
    _lib: Library,
    calls: Mutex<()>,
}

impl OpenLibrary {
    /// Held for the duration of one call into the library.
    fn one_call(&self) -> MutexGuard<'_, ()> {
        self.calls.lock().unwrap_or_else(|e| e.into_inner())
    }
}

// SAFETY: the table's pointers are the library's immutable descriptor
// strings and functions, valid while `lib` keeps it loaded; every call
// through them holds the library's lock (`OpenLibrary::one_call`).
unsafe impl Sync for LoadedPlugin {}

impl std::fmt::Debug for LoadedPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedPlugin")
            .field("kind", &self.kind)
            .field("name", &self.name)
            .field("path", &self.path)
            .finish()
    }
}

fn descriptor_error(path: &Path, msg: impl std::fmt::Display) -> LibraryError {
    LibraryError::Descriptor {
        path: path.to_path_buf(),
        msg: msg.to_string(),
    }
}

/// # Safety
/// `p` is null or a NUL-terminated string that lives as long as the library.
unsafe fn owned_str(p: *const c_char, what: &str) -> Result<String, String> {
    if p.is_null() {
        return Err(format!("{what} is null"));
    }
    CStr::from_ptr(p)
        .to_str()
        .map(str::to_string)
        .map_err(|_| format!("{what} is not UTF-8"))
}

/// Opens `path`, checks its ABI version and reads its plugins. The error
/// names the file and the problem.
pub fn load_library(path: &Path) -> Result<Vec<LoadedPlugin>, LibraryError> {
    // SAFETY: loading a library runs its initialisers; a user who puts a
    // library in a plugin folder trusts it to that extent (`shears plugins
    // check` tries it in a child process first).
    let lib = unsafe { Library::new(path) }.map_err(|e| {
        let detail = std::error::Error::source(&e).map_or_else(|| e.to_string(), |s| s.to_string());
        LibraryError::Open {
            path: path.to_path_buf(),
            detail,
        }
    })?;
    // SAFETY: the symbol, if present, has the ABI v1 entry type by contract;
    // a library that exports the name with another type breaks the contract.
    let entry: EntryFn = unsafe {
        *lib.get::<EntryFn>(ENTRY_SYMBOL.as_bytes())
            .map_err(|_| LibraryError::Symbol {
                path: path.to_path_buf(),
            })?
    };
    let lib = Arc::new(OpenLibrary {
        _lib: lib,
        calls: Mutex::new(()),
    });
    let _one = lib.one_call();
    // SAFETY: calling the entry function as the contract describes.
    let list = unsafe { entry() };
    if list.is_null() {
        return Err(descriptor_error(
            path,
            "the entry function returned no plugin list (it failed or panicked)",
        ));
    }
    // SAFETY: non-null; the first field is the version in every ABI version.
    let version = unsafe { (*list).abi_version };
    if version != ABI_VERSION {
        return Err(LibraryError::Version {
            path: path.to_path_buf(),
            found: version,
        });
    }
    // SAFETY: an ABI v1 list: `count` descriptors at `plugins`.
    let list = unsafe { &*list };
    if list.count > 0 && list.plugins.is_null() {
        return Err(descriptor_error(path, "plugin list is null"));
    }
    if list.count > 1024 {
        return Err(descriptor_error(
            path,
            format!("implausible plugin count {}", list.count),
        ));
    }
    let tables = if list.count == 0 {
        &[][..]
    } else {
        // SAFETY: checked non-null above, `count` entries by contract.
        unsafe { std::slice::from_raw_parts(list.plugins, list.count) }
    };
    let mut out = Vec::new();
    for (i, t) in tables.iter().enumerate() {
        // SAFETY: string pointers of a v1 descriptor live as long as the library.
        let read = |p, what: &str| unsafe { owned_str(p, what) };
        let name =
            read(t.name, "name").map_err(|e| descriptor_error(path, format!("plugin {i}: {e}")))?;
        let bad = |msg: String| descriptor_error(path, format!("plugin `{name}`: {msg}"));
        let kind = PluginKind::try_from(t.kind).map_err(|e| bad(e.to_string()))?;
        let complete = t.create.is_some()
            && t.destroy.is_some()
            && match kind {
                PluginKind::Criterion => t.score.is_some() && t.needs.is_some(),
                PluginKind::Schedule => t.decide.is_some(),
            };
        if !complete {
            return Err(bad("its function table is incomplete".into()));
        }
        let params_schema = read(t.params_schema, "params_schema").map_err(bad)?;
        serde_json::from_str::<serde_json::Value>(&params_schema)
            .map_err(|e| bad(format!("parameter schema is not valid JSON ({e})")))?;
        out.push(LoadedPlugin {
            kind,
            version: read(t.version, "version").map_err(bad)?,
            description: read(t.description, "description").map_err(bad)?,
            name,
            params_schema,
            path: path.to_path_buf(),
            table: *t,
            lib: lib.clone(),
        });
    }
    Ok(out)
}

/// A zeroed error buffer and its ABI view.
struct ErrBuf(Vec<u8>);

impl ErrBuf {
    fn new() -> Self {
        Self(vec![0; ERR_CAP])
    }
    fn abi(&mut self) -> ShearsErrorBuf {
        ShearsErrorBuf {
            ptr: self.0.as_mut_ptr().cast(),
            cap: self.0.len(),
        }
    }
    fn message(&self, status: i32) -> PluginError {
        let end = self.0.iter().position(|&b| b == 0).unwrap_or(self.0.len());
        let msg = String::from_utf8_lossy(&self.0[..end]).into_owned();
        let msg = if msg.is_empty() {
            "no message".into()
        } else {
            msg
        };
        PluginError(match status {
            STATUS_PANIC => format!("panicked: {msg}"),
            STATUS_ERROR => msg,
            s => format!("returned unknown status {s}: {msg}"),
        })
    }
}

/// An instance created by a loaded plugin, released on drop.
struct Instance {
    ptr: *mut c_void,
    destroy: DestroyFn,
    lib: Arc<OpenLibrary>,
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _one = self.lib.one_call();
        // SAFETY: `ptr` came from the same plugin's `create` and is released once.
        unsafe { (self.destroy)(self.ptr) }
    }
}

impl LoadedPlugin {
    fn instantiate(&self, params_json: &str) -> PluginResult<Instance> {
        let params = CString::new(params_json)
            .map_err(|_| PluginError::new("parameters contain a NUL byte"))?;
        let (create, destroy) = match (self.table.create, self.table.destroy) {
            (Some(c), Some(d)) => (c, d),
            _ => return Err(PluginError::new("incomplete function table")),
        };
        let mut err = ErrBuf::new();
        let mut ptr: *mut c_void = std::ptr::null_mut();
        let one = self.lib.one_call();
        // SAFETY: valid C string, out pointer and error buffer for the call.
        let status = unsafe { create(params.as_ptr(), &mut ptr, err.abi()) };
        drop(one);
        if status != STATUS_OK {
            return Err(err.message(status));
        }
        if ptr.is_null() {
            return Err(PluginError::new("create returned success but no instance"));
        }
        Ok(Instance {
            ptr,
            destroy,
            lib: self.lib.clone(),
        })
    }

    /// Creates a criterion instance (this plugin must be a criterion).
    pub fn criterion(&self, params_json: &str) -> PluginResult<Box<dyn Criterion>> {
        let (Some(needs), Some(score)) = (self.table.needs, self.table.score) else {
            return Err(PluginError::new("not a criterion"));
        };
        let inst = self.instantiate(params_json)?;
        Ok(Box::new(FfiCriterion { inst, needs, score }))
    }

    /// Creates a schedule instance (this plugin must be a schedule).
    pub fn schedule(&self, params_json: &str) -> PluginResult<Box<dyn Schedule>> {
        let Some(decide) = self.table.decide else {
            return Err(PluginError::new("not a schedule"));
        };
        let inst = self.instantiate(params_json)?;
        Ok(Box::new(FfiSchedule { inst, decide }))
    }
}

struct FfiCriterion {
    inst: Instance,
    needs: NeedsFn,
    score: ScoreFn,
}

// SAFETY: an instance is used by one thread at a time (the engine owns it
// through `&mut`); the ABI requires plugins not to rely on thread identity.
unsafe impl Send for FfiCriterion {}

impl Criterion for FfiCriterion {
    fn needs(&self) -> Needs {
        let _one = self.inst.lib.one_call();
        // SAFETY: a live instance of this plugin.
        let bits = unsafe { (self.needs)(self.inst.ptr) };
        Needs {
            gradient: bits & NEEDS_GRADIENT != 0,
            activations: bits & NEEDS_ACTIVATIONS != 0,
        }
    }

    fn score(&mut self, layer: &LayerView<'_>, out: &mut [f32]) -> PluginResult<()> {
        // The plugin trusts these lengths: check them before handing pointers over.
        let n = layer.weight.len();
        let lengths_ok = layer.shape.iter().product::<usize>() == n
            && layer.mask.len() == n
            && layer.grad.is_none_or(|g| g.len() == n)
            && layer
                .act_norms
                .is_none_or(|a| layer.shape.get(1) == Some(&a.len()))
            && out.len() == layer.score_len();
        if !lengths_ok {
            return Err(PluginError(format!(
                "layer `{}`: buffers do not match the shape {:?}",
                layer.name, layer.shape
            )));
        }
        let name =
            CString::new(layer.name).map_err(|_| PluginError::new("layer name contains NUL"))?;
        let shape: Vec<u64> = layer.shape.iter().map(|&d| d as u64).collect();
        let abi_layer = ShearsLayer {
            name: name.as_ptr(),
            kind: layer.kind.into(),
            granularity: layer.granularity.into(),
            shape: shape.as_ptr(),
            rank: shape.len(),
            weight: layer.weight.as_ptr(),
            mask: layer.mask.as_ptr(),
            len: layer.weight.len(),
            grad: layer.grad.map_or(std::ptr::null(), |g| g.as_ptr()),
            act_norms: layer.act_norms.map_or(std::ptr::null(), |a| a.as_ptr()),
            act_len: layer.act_norms.map_or(0, |a| a.len()),
        };
        let mut err = ErrBuf::new();
        let _one = self.inst.lib.one_call();
        // SAFETY: every pointer refers to host memory alive for the call;
        // `out` has `out.len()` writable values.
        let status = unsafe {
            (self.score)(
                self.inst.ptr,
                &abi_layer,
                out.as_mut_ptr(),
                out.len(),
                err.abi(),
            )
        };
        if status == STATUS_OK {
            Ok(())
        } else {
            Err(err.message(status))
        }
    }
}

struct FfiSchedule {
    inst: Instance,
    decide: DecideFn,
}

// SAFETY: as for `FfiCriterion`.
unsafe impl Send for FfiSchedule {}

impl Schedule for FfiSchedule {
    fn decide(&mut self, s: &ScheduleState<'_>) -> PluginResult<Decision> {
        let state = ShearsScheduleState {
            prune_steps: s.prune_steps,
            last: s.last.into(),
            current_sparsity: s.current_sparsity,
            target_sparsity: s.target_sparsity,
            epochs_spent: s.epochs_spent,
            val_acc_history: s.val_acc_history.as_ptr(),
            history_len: s.val_acc_history.len(),
        };
        let mut out = ShearsDecision {
            kind: u32::MAX,
            ..Default::default()
        };
        let mut err = ErrBuf::new();
        // SAFETY: state, output and error buffer are host memory alive for the call.
        let _one = self.inst.lib.one_call();
        let status = unsafe { (self.decide)(self.inst.ptr, &state, &mut out, err.abi()) };
        if status != STATUS_OK {
            return Err(err.message(status));
        }
        Decision::try_from(out).map_err(|e| PluginError(e.to_string()))
    }
}
