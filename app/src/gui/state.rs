//! The app's persisted state: plain data that serde saves between sessions
//! (eframe persistence) — the experiment being edited, where results go,
//! recent files, plugin libraries and view choices.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::experiment::sensitivity::SensitivitySpec;
use crate::experiment::ExperimentConfig;
/// Chart choices in the Compare view (shared with the chart export).
pub use crate::report::chart::ChartOptions;

/// The app's views.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Tab {
    /// Configure the experiment.
    #[default]
    Setup,
    /// Progress of the running comparison.
    Run,
    /// Charts and table of results.
    Compare,
    /// Every saved comparison: the run browser.
    Runs,
    /// Loaded plugins.
    Plugins,
    /// Per-layer sensitivity of the experiment's model.
    Sensitivity,
    /// The layers of the experiment's model.
    Model,
}

impl Tab {
    /// Every tab, in display order.
    pub const ALL: [Tab; 7] = [
        Tab::Setup,
        Tab::Model,
        Tab::Run,
        Tab::Compare,
        Tab::Runs,
        Tab::Sensitivity,
        Tab::Plugins,
    ];

    /// Title shown on the tab.
    pub fn title(self) -> &'static str {
        match self {
            Tab::Setup => "Setup",
            Tab::Run => "Run",
            Tab::Compare => "Compare",
            Tab::Runs => "Runs",
            Tab::Plugins => "Plugins",
            Tab::Sensitivity => "Sensitivity",
            Tab::Model => "Model",
        }
    }
}

/// What kind of file a recent entry is (how to reopen it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FileKind {
    /// A model: a Shears checkpoint or a PyTorch state dict.
    Checkpoint,
    /// A dataset folder or file.
    Dataset,
    /// A plugin library.
    Plugin,
    /// A results folder.
    Results,
    /// An experiment config (.toml).
    Config,
    /// A plan folder (`shears plan`), not merged yet.
    Plan,
}

impl FileKind {
    /// A word for menus.
    pub fn word(self) -> &'static str {
        match self {
            FileKind::Checkpoint => "model",
            FileKind::Dataset => "dataset",
            FileKind::Plugin => "plugin",
            FileKind::Results => "results",
            FileKind::Config => "config",
            FileKind::Plan => "plan",
        }
    }
}

/// A recently opened file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecentFile {
    /// What it is.
    pub kind: FileKind,
    /// Where it is.
    pub path: PathBuf,
}

/// Most recent files remembered.
pub const MAX_RECENT: usize = 12;

/// Everything saved between sessions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// The experiment being edited.
    pub config: ExperimentConfig,
    /// Folder under which every comparison gets a folder of its own.
    pub out_dir: PathBuf,
    /// Recently opened files, newest first.
    pub recent: Vec<RecentFile>,
    /// Plugin libraries the user added.
    pub plugin_libraries: Vec<PathBuf>,
    /// Extra plugin folders (from `--plugins DIR`; for this session only).
    #[serde(skip)]
    pub plugin_dirs: Vec<PathBuf>,
    /// The view shown.
    pub tab: Tab,
    /// Chart choices.
    pub charts: ChartOptions,
    /// What the Sensitivity view analyses.
    pub sensitivity: SensitivitySpec,
    /// Folders the run browser lists besides `out_dir`.
    pub run_folders: Vec<PathBuf>,
    /// Results folders shown in Compare (reopened at start-up).
    pub shown_results: Vec<PathBuf>,
    /// The run browser's search text.
    pub runs_filter: String,
    /// The folder the last file dialog chose (the next one starts there).
    pub last_dir: Option<PathBuf>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            config: ExperimentConfig::demo(),
            out_dir: default_out_dir(),
            recent: vec![],
            plugin_libraries: vec![],
            plugin_dirs: vec![],
            tab: Tab::Setup,
            charts: ChartOptions::default(),
            sensitivity: SensitivitySpec::default(),
            run_folders: vec![],
            shown_results: vec![],
            runs_filter: String::new(),
            last_dir: None,
        }
    }
}

/// `shears/runs` in the user's data folder (`~/.local/share/shears/runs` on
/// Linux), or `shears-out` in the current folder where there is none.
pub fn default_out_dir() -> PathBuf {
    dirs::data_local_dir()
        .map(|d| d.join("shears").join("runs"))
        .unwrap_or_else(|| PathBuf::from("shears-out"))
}

impl Settings {
    /// The folders the run browser lists: the output folder, then the added ones.
    pub fn runs_roots(&self) -> Vec<PathBuf> {
        let mut roots = vec![self.out_dir.clone()];
        for f in &self.run_folders {
            if !roots.contains(f) {
                roots.push(f.clone());
            }
        }
        roots
    }

    /// Puts `path` first in the recent files (once).
    pub fn remember(&mut self, kind: FileKind, path: &Path) {
        self.recent.retain(|r| r.path != path);
        self.recent.insert(
            0,
            RecentFile {
                kind,
                path: path.to_path_buf(),
            },
        );
        self.recent.truncate(MAX_RECENT);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_files_are_unique_newest_first_and_bounded() {
        let mut s = Settings::default();
        for i in 0..20 {
            s.remember(FileKind::Dataset, Path::new(&format!("d{i}")));
        }
        s.remember(FileKind::Dataset, Path::new("d15"));
        assert_eq!(s.recent.len(), MAX_RECENT);
        assert_eq!(s.recent[0].path, Path::new("d15"));
        assert_eq!(
            s.recent
                .iter()
                .filter(|r| r.path == Path::new("d15"))
                .count(),
            1
        );
    }

    #[test]
    fn settings_round_trip_through_json() {
        let mut s = Settings {
            tab: Tab::Compare,
            ..Default::default()
        };
        s.remember(FileKind::Plugin, Path::new("/x/libp.so"));
        let text = serde_json::to_string(&s).unwrap();
        let back: Settings = serde_json::from_str(&text).unwrap();
        assert_eq!(back, s);
        // Settings saved by an older version (missing keys) still load.
        let old: Settings = serde_json::from_str(r#"{"tab": "Plugins"}"#).unwrap();
        assert_eq!(old.tab, Tab::Plugins);
        assert_eq!(old.config, ExperimentConfig::demo());
    }
}
