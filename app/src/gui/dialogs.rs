//! File dialogs: what each one asks for, native dialogs (rfd, on their own
//! thread so the window keeps drawing) starting in a sensible folder, and
//! the in-window path prompt used where no native dialog can show (no XDG
//! desktop portal and no zenity: minimal desktops, remote X), with why.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::time::{Duration, Instant};

use super::files::DialogPurpose;
use super::state::FileKind;
use crate::model::export::ExportFormat;

/// What a dialog picks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pick {
    /// An existing file.
    File,
    /// A folder.
    Folder,
    /// A file to write.
    Save,
}

/// A dialog's title, what it picks and its file filter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DialogSpec {
    /// Title.
    pub title: &'static str,
    /// File, folder or save.
    pub pick: Pick,
    /// Filter name and extensions (none: every file).
    pub filter: Option<(&'static str, &'static [&'static str])>,
}

/// The dialog for `purpose`.
pub fn spec(purpose: &DialogPurpose) -> DialogSpec {
    let (title, pick, filter): (_, _, Option<(&'static str, &'static [&'static str])>) =
        match purpose {
            DialogPurpose::Open(FileKind::Checkpoint) => (
                "Open a model (Shears checkpoint, PyTorch state dict or ONNX)",
                Pick::File,
                Some(("model", &crate::model::import::EXTENSIONS)),
            ),
            DialogPurpose::Open(FileKind::Dataset) => (
                "Open a dataset folder (IDX, CIFAR binary, digits CSV)",
                Pick::Folder,
                None,
            ),
            DialogPurpose::Open(FileKind::Plugin) => (
                "Add a plugin library",
                Pick::File,
                Some(("shared library", &["so", "dylib", "dll"])),
            ),
            DialogPurpose::Open(FileKind::Results) => ("Open a results folder", Pick::Folder, None),
            DialogPurpose::Open(FileKind::Plan) => {
                ("Open a plan folder (shears plan)", Pick::Folder, None)
            }
            DialogPurpose::Open(FileKind::Config) => (
                "Open an experiment config",
                Pick::File,
                Some(("TOML", &["toml"])),
            ),
            DialogPurpose::OutputFolder => ("Output folder", Pick::Folder, None),
            DialogPurpose::RunsFolder => ("Add a folder of saved comparisons", Pick::Folder, None),
            DialogPurpose::SaveConfig => (
                "Save the experiment config",
                Pick::Save,
                Some(("TOML", &["toml"])),
            ),
            DialogPurpose::ExportCsv(_) => (
                "Export the results as CSV",
                Pick::Save,
                Some(("CSV", &["csv"])),
            ),
            DialogPurpose::ExportJson(_) => (
                "Export the results as JSON",
                Pick::Save,
                Some(("JSON", &["json"])),
            ),
            DialogPurpose::SaveModel(_, ExportFormat::Pth) => (
                "Save the model as a PyTorch state dict",
                Pick::Save,
                Some(("PyTorch", &["pth", "pt"])),
            ),
            DialogPurpose::SaveModel(_, ExportFormat::Safetensors) => (
                "Save the model as a PyTorch state dict",
                Pick::Save,
                Some(("safetensors", &["safetensors"])),
            ),
            DialogPurpose::SaveModel(_, ExportFormat::Onnx) => (
                "Save the model as ONNX",
                Pick::Save,
                Some(("ONNX", &["onnx"])),
            ),
            DialogPurpose::SaveModel(_, ExportFormat::Shears) => (
                "Save the model as a Shears checkpoint",
                Pick::Save,
                Some(("safetensors", &["safetensors"])),
            ),
            DialogPurpose::SavePlot(_) => {
                ("Save the chart as PNG", Pick::Save, Some(("PNG", &["png"])))
            }
            DialogPurpose::SaveSvg(_) => {
                ("Save the chart as SVG", Pick::Save, Some(("SVG", &["svg"])))
            }
        };
    DialogSpec {
        title,
        pick,
        filter,
    }
}

/// Environment variable that turns native dialogs off (the in-window path
/// prompt is used instead).
pub const NO_NATIVE_DIALOGS: &str = "SHEARS_NO_NATIVE_DIALOGS";

/// Whether an executable named `name` is in the folders of `path_var` (a
/// `PATH` value).
pub fn on_path(name: &str, path_var: &std::ffi::OsStr) -> bool {
    std::env::split_paths(path_var).any(|d| {
        let p = d.join(name);
        p.is_file()
            && std::fs::metadata(&p).is_ok_and(|m| {
                #[cfg(unix)]
                {
                    use std::os::unix::fs::PermissionsExt;
                    m.permissions().mode() & 0o111 != 0
                }
                #[cfg(not(unix))]
                {
                    let _ = m;
                    true
                }
            })
    })
}

fn zenity_available() -> bool {
    std::env::var_os("PATH").is_some_and(|p| on_path("zenity", &p))
}

/// Why no native dialog can show here, when that is known before trying:
/// turned off by [`NO_NATIVE_DIALOGS`], or (on Linux and the BSDs) neither a
/// D-Bus session for an XDG desktop portal nor zenity. `None`: try one.
pub fn native_unavailable() -> Option<String> {
    if std::env::var_os(NO_NATIVE_DIALOGS).is_some_and(|v| !v.is_empty() && v != "0") {
        return Some(format!(
            "native file dialogs are turned off ({NO_NATIVE_DIALOGS})"
        ));
    }
    if cfg!(any(target_os = "windows", target_os = "macos")) {
        return None;
    }
    let bus = std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_some()
        || std::env::var_os("XDG_RUNTIME_DIR").is_some_and(|d| Path::new(&d).join("bus").exists());
    if !bus && !zenity_available() {
        return Some(
            "no file dialog can show here: no D-Bus session for an XDG desktop portal and no zenity"
                .into(),
        );
    }
    None
}

/// A dialog that closes sooner than this without a path, with no zenity to
/// fall back on, never showed (no person cancels that fast).
const NEVER_SHOWN: Duration = Duration::from_millis(400);

/// The answer of a native dialog.
#[derive(Debug, Clone, PartialEq)]
pub struct DialogAnswer {
    /// What it was for.
    pub purpose: DialogPurpose,
    /// The path chosen (`None`: cancelled, or it never showed).
    pub path: Option<PathBuf>,
    /// It could not show: why (the in-window prompt takes over).
    pub unavailable: Option<String>,
}

/// Native dialogs that answer by message, so the UI never blocks on them.
pub struct Dialogs {
    tx: Sender<(DialogPurpose, Option<PathBuf>, Duration)>,
    rx: Receiver<(DialogPurpose, Option<PathBuf>, Duration)>,
    open: bool,
    unavailable: Option<String>,
}

impl Dialogs {
    /// Dialogs; with `unavailable` (the reason) none is ever shown natively.
    pub fn new(unavailable: Option<String>) -> Self {
        let (tx, rx) = channel();
        Self {
            tx,
            rx,
            open: false,
            unavailable,
        }
    }

    /// Whether a native dialog is showing.
    pub fn is_open(&self) -> bool {
        self.open
    }

    /// Why native dialogs cannot show, once that is known.
    pub fn unavailable(&self) -> Option<&str> {
        self.unavailable.as_deref()
    }

    /// Shows the dialog for `purpose` on its own thread, starting in
    /// `start`; the answer comes back through [`Dialogs::poll`]. `wake`
    /// repaints the window. At most one dialog shows at a time.
    pub fn show(
        &mut self,
        purpose: DialogPurpose,
        suggested_name: &str,
        start: Option<PathBuf>,
        wake: impl Fn() + Send + 'static,
    ) {
        if self.open {
            return;
        }
        self.open = true;
        let tx = self.tx.clone();
        let name = suggested_name.to_string();
        std::thread::spawn(move || {
            let t0 = Instant::now();
            let picked = pick(&purpose, &name, start.as_deref());
            let _ = tx.send((purpose, picked, t0.elapsed()));
            wake();
        });
    }

    /// The answer of the dialog, if it closed since the last call. A dialog
    /// that could not show marks native dialogs unavailable from then on.
    pub fn poll(&mut self) -> Option<DialogAnswer> {
        let (purpose, path, took) = self.rx.try_recv().ok()?;
        self.open = false;
        let unavailable = (path.is_none() && took < NEVER_SHOWN && !zenity_available()).then(|| {
            "no file dialog could be shown (no XDG desktop portal answered and zenity is not installed)"
                .to_string()
        });
        if unavailable.is_some() {
            self.unavailable = unavailable.clone();
        }
        Some(DialogAnswer {
            purpose,
            path,
            unavailable,
        })
    }
}

fn pick(purpose: &DialogPurpose, name: &str, start: Option<&Path>) -> Option<PathBuf> {
    let s = spec(purpose);
    let mut d = rfd::FileDialog::new().set_title(s.title);
    if let Some((filter, exts)) = s.filter {
        d = d.add_filter(filter, exts);
    }
    if let Some(dir) = start {
        d = d.set_directory(dir);
    }
    match s.pick {
        Pick::File => d.pick_file(),
        Pick::Folder => d.pick_folder(),
        Pick::Save => d.set_file_name(name).save_file(),
    }
}

/// The in-window stand-in for a native dialog: a path typed (or picked from
/// the folder listing), and why it is used.
#[derive(Debug, Clone, PartialEq)]
pub struct PathPrompt {
    /// What it is for.
    pub purpose: DialogPurpose,
    /// Title, file/folder/save and filter.
    pub spec: DialogSpec,
    /// The path typed so far.
    pub text: String,
    /// Why the native dialog is not used.
    pub reason: String,
}

impl PathPrompt {
    /// A prompt for `purpose` starting in `start` (with `suggested_name`
    /// for saves).
    pub fn new(
        purpose: DialogPurpose,
        suggested_name: &str,
        start: Option<&Path>,
        reason: &str,
    ) -> Self {
        let spec = spec(&purpose);
        let dir = start.map(Path::to_path_buf).unwrap_or_default();
        let text = if spec.pick == Pick::Save && !suggested_name.is_empty() {
            dir.join(suggested_name).display().to_string()
        } else if dir.as_os_str().is_empty() {
            String::new()
        } else {
            format!("{}{}", dir.display(), std::path::MAIN_SEPARATOR)
        };
        Self {
            purpose,
            spec,
            text,
            reason: reason.to_string(),
        }
    }

    /// The folder the typed path is in (or is), for the listing.
    pub fn folder(&self) -> PathBuf {
        let p = PathBuf::from(&self.text);
        if self.text.ends_with(std::path::MAIN_SEPARATOR) || p.is_dir() {
            p
        } else {
            p.parent().map(Path::to_path_buf).unwrap_or_default()
        }
    }

    /// The typed path, when it fits what is asked: an existing file, an
    /// existing folder, or a file in an existing folder; else why not.
    pub fn chosen(&self) -> Result<PathBuf, String> {
        let t = self.text.trim();
        if t.is_empty() {
            return Err("type a path".into());
        }
        let p = PathBuf::from(t);
        match self.spec.pick {
            Pick::File if p.is_file() => Ok(p),
            Pick::File => Err(format!("{}: no such file", p.display())),
            Pick::Folder if p.is_dir() => Ok(p),
            Pick::Folder => Err(format!("{}: no such folder", p.display())),
            Pick::Save if p.is_dir() => {
                Err(format!("{}: is a folder; add a file name", p.display()))
            }
            Pick::Save => match p.parent() {
                Some(d) if d.as_os_str().is_empty() || d.is_dir() => Ok(p),
                _ => Err(format!("{}: its folder does not exist", p.display())),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zenity_is_found_on_path_only_when_executable() {
        let dir = tempfile::tempdir().unwrap();
        let path = std::env::join_paths([dir.path()]).unwrap();
        assert!(!on_path("zenity", &path));
        let exe = dir.path().join("zenity");
        std::fs::write(&exe, "#!/bin/sh\n").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert!(!on_path("zenity", &path), "not executable");
            std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        assert!(on_path("zenity", &path));
    }

    #[test]
    fn the_prompt_checks_what_is_typed() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("m.safetensors"), b"x").unwrap();
        let mut p = PathPrompt::new(
            DialogPurpose::Open(FileKind::Checkpoint),
            "",
            Some(d),
            "why",
        );
        assert_eq!(p.folder(), d);
        assert!(p.chosen().unwrap_err().contains("no such file"));
        p.text = d.join("m.safetensors").display().to_string();
        assert_eq!(p.chosen().unwrap(), d.join("m.safetensors"));
        let save = PathPrompt::new(DialogPurpose::SaveConfig, "e.toml", Some(d), "why");
        assert_eq!(save.chosen().unwrap(), d.join("e.toml"));
        let mut save = save;
        save.text = d.join("missing/e.toml").display().to_string();
        assert!(save.chosen().unwrap_err().contains("does not exist"));
        let folder = PathPrompt::new(DialogPurpose::OutputFolder, "", Some(d), "why");
        assert_eq!(folder.chosen().unwrap(), d);
    }
}
