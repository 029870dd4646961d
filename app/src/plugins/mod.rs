//! The plugin host: the registry of criteria and schedules a run can use.
//!
//! Built-in plugins (the `plugins/` crates) are linked in statically; plugin
//! libraries found in plugin folders are loaded through the C ABI v1
//! ([`loader`]) and join the same registry. A library that fails to load is
//! listed with its error; it never stops the others.

pub mod loader;
pub mod probe;
pub mod schema;

use std::path::{Path, PathBuf};

use serde::Serialize;
use shears_plugin_api::{
    Criterion, CriterionCtor, CriterionFactory, PluginKind, Schedule, ScheduleCtor,
    ScheduleFactory, ABI_VERSION,
};

use crate::error::{Error, Result};
pub use loader::{load_library, LibraryError, LoadedPlugin};

/// Where a plugin came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Origin {
    /// Linked into the application.
    Builtin,
    /// Loaded from this shared library.
    Library(PathBuf),
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Builtin => f.write_str("builtin"),
            Origin::Library(p) => write!(f, "{}", p.display()),
        }
    }
}

#[derive(Clone)]
enum Source {
    Criterion(CriterionCtor),
    Schedule(ScheduleCtor),
    Library(Box<LoadedPlugin>),
}

/// One available plugin.
#[derive(Clone)]
pub struct PluginEntry {
    /// Criterion or schedule.
    pub kind: PluginKind,
    /// Name configs refer to.
    pub name: String,
    /// Version.
    pub version: String,
    /// One line for users.
    pub description: String,
    /// JSON Schema of the parameters, as the plugin declares it.
    pub params_schema: String,
    /// The same, parsed once (`Null` when it is not valid JSON: then not enforced).
    pub schema: serde_json::Value,
    /// Built in or the library file.
    pub origin: Origin,
    source: Source,
}

/// A library that could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LoadError {
    /// The file.
    pub path: PathBuf,
    /// What went wrong (one line, naming the file).
    pub message: String,
}

/// A row of `shears plugins list`.
#[derive(Debug, Clone, Serialize)]
pub struct PluginRow {
    /// `criterion`, `schedule`, or `-` for a library that failed to load.
    pub kind: String,
    /// Plugin name (file name for a failed library).
    pub name: String,
    /// Plugin version.
    pub version: String,
    /// ABI version (`None` for a library that failed to load: it may not
    /// have one).
    pub abi: Option<u32>,
    /// `builtin` or the library path.
    pub file: String,
    /// `ok` or the load error.
    pub status: String,
}

/// All criteria and schedules available to a run, and the libraries that
/// failed to load.
#[derive(Clone, Default)]
pub struct Registry {
    entries: Vec<PluginEntry>,
    errors: Vec<LoadError>,
}

fn kind_name(k: PluginKind) -> &'static str {
    match k {
        PluginKind::Criterion => "criterion",
        PluginKind::Schedule => "schedule",
    }
}

/// File extension of shared libraries on this platform.
pub const LIBRARY_EXTENSION: &str = std::env::consts::DLL_EXTENSION;

/// The default plugin folders: `plugins/` next to the executable and
/// `shears/plugins/` in the user's config folder.
pub fn default_plugin_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        dirs.push(dir.join("plugins"));
    }
    if let Some(cfg) = dirs::config_dir() {
        dirs.push(cfg.join("shears").join("plugins"));
    }
    dirs
}

impl Registry {
    /// The built-in plugins.
    pub fn builtin() -> Self {
        let mut r = Self::default();
        let criteria = [
            shears_magnitude::factories(),
            shears_random::factories(),
            shears_taylor::factories(),
            shears_wanda::factories(),
        ];
        for f in criteria.into_iter().flatten() {
            r.add_criterion(f).expect("built-in names are unique");
        }
        for f in shears_schedules::factories() {
            r.add_schedule(f).expect("built-in names are unique");
        }
        r
    }

    /// The built-ins plus every library in the default plugin folders and
    /// in `extra` folders (failures are recorded in [`Registry::errors`]).
    pub fn discover(extra: &[PathBuf]) -> Self {
        let mut r = Self::builtin();
        for dir in default_plugin_dirs().iter().chain(extra) {
            r.scan_dir(dir);
        }
        r
    }

    fn add(&mut self, e: PluginEntry) -> Result<()> {
        if let Some(old) = self.find(e.kind, &e.name) {
            return Err(Error::Plugin {
                plugin: e.name.clone(),
                msg: format!(
                    "a {} with this name is already registered (from {}); {} is not loaded",
                    kind_name(e.kind),
                    old.origin,
                    e.origin
                ),
            });
        }
        self.entries.push(e);
        Ok(())
    }

    /// Adds a statically linked criterion; a name already taken is an error.
    pub fn add_criterion(&mut self, f: CriterionFactory) -> Result<()> {
        self.add(PluginEntry {
            kind: PluginKind::Criterion,
            name: f.meta.name.into(),
            version: f.meta.version.into(),
            description: f.meta.description.into(),
            params_schema: f.meta.params_schema.into(),
            schema: parse_schema(f.meta.params_schema),
            origin: Origin::Builtin,
            source: Source::Criterion(f.create),
        })
    }

    /// Adds a statically linked schedule; a name already taken is an error.
    pub fn add_schedule(&mut self, f: ScheduleFactory) -> Result<()> {
        self.add(PluginEntry {
            kind: PluginKind::Schedule,
            name: f.meta.name.into(),
            version: f.meta.version.into(),
            description: f.meta.description.into(),
            params_schema: f.meta.params_schema.into(),
            schema: parse_schema(f.meta.params_schema),
            origin: Origin::Builtin,
            source: Source::Schedule(f.create),
        })
    }

    /// Loads the plugins of one library. On failure (not a library, wrong
    /// ABI, bad descriptor, a name already taken) nothing of it is added, the
    /// error is recorded and returned.
    pub fn add_library(&mut self, path: &Path) -> std::result::Result<usize, LibraryError> {
        let res = load_library(path).and_then(|plugins| {
            let mut names: Vec<(PluginKind, &str)> = Vec::new();
            for p in &plugins {
                let duplicate = |msg: String| LibraryError::Duplicate {
                    path: path.to_path_buf(),
                    msg,
                };
                if names.contains(&(p.kind, p.name.as_str())) {
                    return Err(duplicate(format!("declares `{}` twice", p.name)));
                }
                if let Some(old) = self.find(p.kind, &p.name) {
                    return Err(duplicate(format!(
                        "plugin `{}` duplicates the {} of that name from {}",
                        p.name,
                        kind_name(p.kind),
                        old.origin
                    )));
                }
                names.push((p.kind, p.name.as_str()));
            }
            Ok(plugins)
        });
        match res {
            Ok(plugins) => {
                let n = plugins.len();
                for p in plugins {
                    self.entries.push(PluginEntry {
                        kind: p.kind,
                        name: p.name.clone(),
                        version: p.version.clone(),
                        description: p.description.clone(),
                        params_schema: p.params_schema.clone(),
                        schema: parse_schema(&p.params_schema),
                        origin: Origin::Library(p.path.clone()),
                        source: Source::Library(Box::new(p)),
                    });
                }
                Ok(n)
            }
            Err(e) => {
                self.errors.push(LoadError {
                    path: path.to_path_buf(),
                    message: e.to_string(),
                });
                Err(e)
            }
        }
    }

    /// Loads every shared library in `dir` (sorted by name); a missing folder
    /// is skipped silently.
    pub fn scan_dir(&mut self, dir: &Path) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        let mut files: Vec<PathBuf> = rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == LIBRARY_EXTENSION))
            .collect();
        files.sort();
        for f in files {
            let _ = self.add_library(&f);
        }
    }

    /// Libraries that failed to load, in load order.
    pub fn errors(&self) -> &[LoadError] {
        &self.errors
    }

    /// Every plugin, in registration order.
    pub fn entries(&self) -> &[PluginEntry] {
        &self.entries
    }

    fn find(&self, kind: PluginKind, name: &str) -> Option<&PluginEntry> {
        self.entries
            .iter()
            .find(|e| e.kind == kind && e.name == name)
    }

    fn names(&self, kind: PluginKind) -> Vec<&str> {
        self.entries
            .iter()
            .filter(|e| e.kind == kind)
            .map(|e| e.name.as_str())
            .collect()
    }

    /// Names of the criteria, in registry order.
    pub fn criterion_names(&self) -> Vec<&str> {
        self.names(PluginKind::Criterion)
    }

    /// Names of the schedules, in registry order.
    pub fn schedule_names(&self) -> Vec<&str> {
        self.names(PluginKind::Schedule)
    }

    /// Every plugin, then every library that failed to load.
    pub fn rows(&self) -> Vec<PluginRow> {
        let ok = self.entries.iter().map(|e| PluginRow {
            kind: kind_name(e.kind).into(),
            name: e.name.clone(),
            version: e.version.clone(),
            abi: Some(ABI_VERSION),
            file: e.origin.to_string(),
            status: "ok".into(),
        });
        let failed = self.errors.iter().map(|e| PluginRow {
            kind: "-".into(),
            name: e
                .path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            version: "-".into(),
            abi: None,
            file: e.path.display().to_string(),
            status: format!("error: {}", e.message),
        });
        ok.chain(failed).collect()
    }

    /// The parameter schema of the schedule called `name`.
    pub fn schedule_schema(&self, name: &str) -> Option<&serde_json::Value> {
        self.find(PluginKind::Schedule, name).map(|e| &e.schema)
    }

    /// The parameter schema of the criterion called `name`.
    pub fn criterion_schema(&self, name: &str) -> Option<&serde_json::Value> {
        self.find(PluginKind::Criterion, name).map(|e| &e.schema)
    }

    /// The entry of `kind` called `name`, with `params` checked against its
    /// schema (a schema that is not valid JSON is not enforced).
    fn entry(
        &self,
        kind: PluginKind,
        name: &str,
        params: &serde_json::Value,
    ) -> Result<&PluginEntry> {
        let e = self.find(kind, name).ok_or_else(|| Error::Plugin {
            plugin: name.into(),
            msg: format!(
                "no such {} (available: {})",
                kind_name(kind),
                self.names(kind).join(", ")
            ),
        })?;
        if !e.schema.is_null() {
            schema::validate(&e.schema, params).map_err(|msg| Self::plugin_error(e, msg))?;
        }
        Ok(e)
    }

    fn plugin_error(e: &PluginEntry, msg: impl std::fmt::Display) -> Error {
        Error::Plugin {
            plugin: Self::describe(e),
            msg: msg.to_string(),
        }
    }

    fn describe(e: &PluginEntry) -> String {
        match &e.origin {
            Origin::Builtin => e.name.clone(),
            Origin::Library(p) => format!("{}` from `{}", e.name, p.display()),
        }
    }

    /// How errors name the plugin: its name, and its library file for a
    /// loaded one (`obd` from `/path/libobd.so`).
    pub fn label(&self, kind: PluginKind, name: &str) -> String {
        self.find(kind, name)
            .map_or_else(|| name.to_string(), Self::describe)
    }

    /// Creates the criterion `name` with JSON `params`; an unknown name lists
    /// the known ones, invalid parameters name the plugin and the key.
    pub fn criterion(&self, name: &str, params: &serde_json::Value) -> Result<Box<dyn Criterion>> {
        let e = self.entry(PluginKind::Criterion, name, params)?;
        let text = params.to_string();
        match &e.source {
            Source::Criterion(create) => create(&text),
            Source::Library(p) => p.criterion(&text),
            Source::Schedule(_) => unreachable!("entries are found by kind"),
        }
        .map_err(|err| Self::plugin_error(e, err))
    }

    /// Creates the schedule `name` with JSON `params`.
    pub fn schedule(&self, name: &str, params: &serde_json::Value) -> Result<Box<dyn Schedule>> {
        let e = self.entry(PluginKind::Schedule, name, params)?;
        let text = params.to_string();
        match &e.source {
            Source::Schedule(create) => create(&text),
            Source::Library(p) => p.schedule(&text),
            Source::Criterion(_) => unreachable!("entries are found by kind"),
        }
        .map_err(|err| Self::plugin_error(e, err))
    }
}

/// A plugin's parameter schema, parsed (`Null` when it is not valid JSON).
fn parse_schema(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or(serde_json::Value::Null)
}
