//! What the views and the app share: the commands views send ([`Action`]),
//! the notices, results sets (and their charts) and checkpoint facts they
//! draw, and the chart ids. Below both, so views never import the app that calls them.

use std::path::PathBuf;

use super::files::DialogPurpose;
use super::state::Tab;
use crate::experiment::catalog::SavedComparison;
use crate::experiment::sensitivity::SensitivityResults;
use crate::experiment::ComparisonResults;
use crate::model::import::{ImportOptions, ModelFormat};
use crate::report::chart::ResultsSet;
use crate::report::layers::LayerRow;

pub use crate::report::chart::{CHARTS, CHART_COMPUTE, CHART_LAYERS, CHART_SPARSITY};
/// Sensitivity chart id (also the suggested PNG name).
pub const CHART_SENSITIVITY: &str = "layer-sensitivity";

/// A set of results shown in the Compare view.
#[derive(Debug, Clone)]
pub struct LoadedResults {
    /// Identifies the set while the app runs (exports refer to it).
    pub id: u64,
    /// Name in lists and legends.
    pub name: String,
    /// Its folder, when it has one.
    pub dir: Option<PathBuf>,
    /// The `results.json` it was read from (none for a running comparison).
    pub file: Option<PathBuf>,
    /// The results.
    pub results: ComparisonResults,
    /// Whether it is drawn.
    pub shown: bool,
    /// Whether it is the comparison running now (updated as it goes).
    pub live: bool,
}

impl LoadedResults {
    /// The set as the charts take it.
    pub fn as_set(&self) -> ResultsSet<'_> {
        ResultsSet {
            name: &self.name,
            results: &self.results,
        }
    }
}

/// The shown sets, as the charts take them (the Compare view draws them and
/// **Save SVG…** writes their charts).
pub fn shown_sets(sets: &[LoadedResults]) -> Vec<ResultsSet<'_>> {
    sets.iter()
        .filter(|s| s.shown)
        .map(LoadedResults::as_set)
        .collect()
}

/// A message shown in the window's notice strip.
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    /// An error (red) or information.
    pub error: bool,
    /// The text (what happened, and to which file).
    pub text: String,
}

/// What the user asked for; the app carries it out after drawing.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Start the comparison configured in Setup.
    StartRun,
    /// Stop the running comparison after the current batch.
    CancelRun,
    /// Show a native dialog.
    Dialog {
        /// What the dialog is for.
        purpose: DialogPurpose,
        /// File name to suggest (save dialogs; empty for none).
        suggested_name: String,
    },
    /// Open a file or folder (a dialog's answer, a drop, a recent file).
    OpenPath(PathBuf),
    /// Load the plugin folders and libraries again.
    RescanPlugins,
    /// Forget a plugin library the user added.
    RemoveLibrary(PathBuf),
    /// Remove a results set (by id) from the Compare view.
    CloseResults(u64),
    /// Put the demo experiment back in Setup.
    ResetToDemo,
    /// Stop starting from a checkpoint: train a base model again.
    ClearCheckpoint,
    /// Open the base model again with the import form's options.
    ApplyImport,
    /// Show a view.
    SetTab(Tab),
    /// Remove a notice.
    Dismiss(usize),
    /// Start a sensitivity analysis of the experiment's model.
    StartSensitivity,
    /// Stop the running sensitivity analysis.
    CancelSensitivity,
    /// Show a saved comparison in Compare (`true`) or take it out.
    ShowSaved {
        /// Its folder.
        dir: PathBuf,
        /// Shown or not.
        shown: bool,
    },
    /// Ask to confirm deleting a saved comparison (`None`: cancel the question).
    AskDelete(Option<PathBuf>),
    /// Delete a saved comparison's folder.
    DeleteSaved(PathBuf),
    /// List the runs folders again.
    RefreshRuns,
    /// Stop listing a folder the user added to the run browser.
    RemoveRunsFolder(PathBuf),
    /// The in-window path prompt closed: with the path chosen, or cancelled.
    PromptDone(Option<PathBuf>),
}

impl Action {
    /// A native dialog for `purpose`, suggesting `suggested_name` (save
    /// dialogs; empty for none).
    pub fn dialog(purpose: DialogPurpose, suggested_name: impl Into<String>) -> Self {
        Action::Dialog {
            purpose,
            suggested_name: suggested_name.into(),
        }
    }
}

/// Facts about the model the experiment starts from (opened, or waiting
/// for what the import form asks).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CheckpointInfo {
    /// The file.
    pub path: PathBuf,
    /// What it was read as (`None`: not readable at all).
    pub format: Option<ModelFormat>,
    /// One line: architecture, input, classes, parameters, sparsity.
    pub summary: String,
    /// Why it could not be opened with the import options as they are (the
    /// import form shows it; `None` once it opened).
    pub problem: Option<String>,
    /// Assumptions made while opening it.
    pub notes: Vec<String>,
    /// Its layers, for the Model view.
    pub rows: Vec<LayerRow>,
    /// Its preprocessing in words.
    pub preprocess: String,
    /// The import form's text fields.
    pub form: ImportForm,
    /// Which of the form's questions this file leaves open.
    pub asks: FormAsks,
}

/// The import form's questions that only some files leave open (the
/// normalisation and resize are asked of every file).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FormAsks {
    /// An `nn.Sequential`'s layers: a state dict whose names no family has.
    pub layers: bool,
    /// A ViT's attention heads: a ViT state dict.
    pub heads: bool,
}

/// The import form's fields as typed (parsed when applied).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ImportForm {
    /// An nn.Sequential's layers.
    pub layers: String,
    /// Mean per channel, comma-separated (empty: fitted on the data).
    pub mean: String,
    /// Standard deviation per channel, comma-separated.
    pub std: String,
    /// Shorter side image files are resized to before the centre crop
    /// (empty: just enough to cover the input size).
    pub resize: String,
    /// A ViT state dict's attention heads (empty: width / 64).
    pub heads: String,
}

impl ImportForm {
    /// The form showing `opts`.
    pub fn from_options(opts: &ImportOptions) -> Self {
        let join = |v: &Option<Vec<f32>>| {
            v.as_ref()
                .map(|v| v.iter().map(f32::to_string).collect::<Vec<_>>().join(", "))
                .unwrap_or_default()
        };
        ImportForm {
            layers: opts.layers.clone().unwrap_or_default(),
            mean: join(&opts.mean),
            std: join(&opts.std),
            resize: opts.resize.map(|r| r.to_string()).unwrap_or_default(),
            heads: opts.heads.map(|h| h.to_string()).unwrap_or_default(),
        }
    }

    /// The options the form says; errors name the field.
    pub fn options(&self) -> crate::error::Result<ImportOptions> {
        let numbers = |field: &str, text: &str| -> crate::error::Result<Option<Vec<f32>>> {
            let text = text.trim();
            if text.is_empty() {
                return Ok(None);
            }
            text.split([',', ' '])
                .filter(|p| !p.is_empty())
                .map(|p| {
                    p.parse::<f32>().map_err(|_| {
                        crate::error::Error::config(
                            field,
                            format!(
                                "`{p}` is not a number (give one per channel, comma-separated)"
                            ),
                        )
                    })
                })
                .collect::<crate::error::Result<Vec<f32>>>()
                .map(Some)
        };
        let whole = |field: &str, text: &str, what: &str| -> crate::error::Result<Option<usize>> {
            match text.trim() {
                "" => Ok(None),
                r => r.parse().map(Some).map_err(|_| {
                    crate::error::Error::config(
                        field,
                        format!("`{r}` is not a whole number of {what}"),
                    )
                }),
            }
        };
        let opts = ImportOptions {
            layers: Some(self.layers.trim().to_string()).filter(|l| !l.is_empty()),
            mean: numbers("import.mean", &self.mean)?,
            std: numbers("import.std", &self.std)?,
            resize: whole("import.resize", &self.resize, "pixels")?,
            heads: whole("import.heads", &self.heads, "heads")?,
        };
        opts.norm()?;
        Ok(opts)
    }
}

/// What the Sensitivity view shows: the analysis running or its result.
#[derive(Debug, Clone, Default)]
pub struct SensitivityView {
    /// While running: what it does and how far it is (0..1).
    pub progress: Option<(String, f32)>,
    /// Whether it was asked to stop.
    pub cancelling: bool,
    /// The last result and the folder it was saved in.
    pub results: Option<(SensitivityResults, PathBuf)>,
}

/// What the run browser shows: the saved comparisons found and the one
/// waiting for a delete confirmation.
#[derive(Debug, Clone, Default)]
pub struct RunsView {
    /// Saved comparisons, newest first.
    pub saved: Vec<SavedComparison>,
    /// Folder whose deletion awaits a yes.
    pub confirm_delete: Option<PathBuf>,
}
