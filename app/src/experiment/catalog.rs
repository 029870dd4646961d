//! The comparisons saved under a runs folder: each results folder found
//! (the folder itself or its immediate subfolders holding `results.json`)
//! with what a browser lists — name, date, data, model, status, number of
//! runs — and the deletion of one.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::output::{load_results, CONFIG_TOML, EVENTS_JSONL, RESULTS_JSON};
use super::Status;
use crate::error::{Error, Result};

/// How a saved comparison ended, as far as its results file says.
#[derive(Debug, Clone, PartialEq)]
pub enum SavedStatus {
    /// Every run finished.
    Complete,
    /// Cancelled; the finished runs are saved.
    Cancelled,
    /// It stopped on an error.
    Failed(String),
    /// No end recorded: running now, or the process was killed.
    Unfinished,
    /// The results file could not be read.
    Unreadable(String),
}

impl SavedStatus {
    /// One word or phrase for a list.
    pub fn word(&self) -> &str {
        match self {
            SavedStatus::Complete => "complete",
            SavedStatus::Cancelled => "cancelled",
            SavedStatus::Failed(_) => "failed",
            SavedStatus::Unfinished => "unfinished",
            SavedStatus::Unreadable(_) => "unreadable",
        }
    }
}

/// One saved comparison.
#[derive(Debug, Clone, PartialEq)]
pub struct SavedComparison {
    /// Its folder.
    pub dir: PathBuf,
    /// The comparison's name (from its config), or the folder's.
    pub name: String,
    /// When its results were last written.
    pub modified: Option<SystemTime>,
    /// Dataset name.
    pub data: String,
    /// Model family.
    pub model: String,
    /// How it ended.
    pub status: SavedStatus,
    /// Strategy runs saved.
    pub runs: usize,
    /// Of which failed.
    pub failed_runs: usize,
}

impl SavedComparison {
    /// Whether `query` (lower-case words, all must match) is found in its
    /// name, folder, data, model or status.
    pub fn matches(&self, query: &str) -> bool {
        let hay = format!(
            "{} {} {} {} {}",
            self.name,
            self.dir.display(),
            self.data,
            self.model,
            self.status.word()
        )
        .to_lowercase();
        query
            .to_lowercase()
            .split_whitespace()
            .all(|w| hay.contains(w))
    }

    /// `2026-12-01 15:43` (UTC), or `-` when unknown.
    pub fn date(&self) -> String {
        match self.modified {
            Some(t) => {
                let s = humantime::format_rfc3339_seconds(t).to_string();
                s.get(..16).unwrap_or(&s).replace('T', " ")
            }
            None => "-".into(),
        }
    }
}

fn read_one(dir: &Path) -> SavedComparison {
    let file = dir.join(RESULTS_JSON);
    let modified = std::fs::metadata(&file).and_then(|m| m.modified()).ok();
    let folder_name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    match load_results(dir) {
        Ok(r) => SavedComparison {
            dir: dir.to_path_buf(),
            name: if r.config.name.is_empty() {
                folder_name
            } else {
                r.config.name.clone()
            },
            modified,
            data: r.data.name.clone(),
            model: r.model.family.clone(),
            status: match r.status {
                Some(Status::Complete) => SavedStatus::Complete,
                Some(Status::Cancelled) => SavedStatus::Cancelled,
                Some(Status::Failed(e)) => SavedStatus::Failed(e),
                None => SavedStatus::Unfinished,
            },
            runs: r.runs.len(),
            failed_runs: r
                .runs
                .iter()
                .filter(|x| matches!(x.status, Status::Failed(_)))
                .count(),
        },
        Err(e) => SavedComparison {
            dir: dir.to_path_buf(),
            name: folder_name,
            modified,
            data: String::new(),
            model: String::new(),
            status: SavedStatus::Unreadable(e.to_string()),
            runs: 0,
            failed_runs: 0,
        },
    }
}

/// Every saved comparison under `roots` (a root that is itself a results
/// folder counts, else its immediate subfolders with `results.json`),
/// newest first. Missing roots are skipped: a runs folder appears with the
/// first comparison.
pub fn scan(roots: &[PathBuf]) -> Vec<SavedComparison> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    for root in roots {
        if root.join(RESULTS_JSON).is_file() {
            dirs.push(root.clone());
            continue;
        }
        let Ok(read) = std::fs::read_dir(root) else {
            continue;
        };
        for entry in read.flatten() {
            let p = entry.path();
            if p.join(RESULTS_JSON).is_file() {
                dirs.push(p);
            }
        }
    }
    dirs.sort();
    dirs.dedup();
    let mut out: Vec<SavedComparison> = dirs.iter().map(|d| read_one(d)).collect();
    out.sort_by(|a, b| b.modified.cmp(&a.modified).then_with(|| a.dir.cmp(&b.dir)));
    out
}

/// Deletes the comparison folder `dir` with everything in it. Refuses a
/// folder that does not look like a Shears output folder (no results.json,
/// events.jsonl or config.toml in it), so a wrong path cannot wipe anything
/// else.
pub fn delete(dir: &Path) -> Result<()> {
    let ours = [RESULTS_JSON, EVENTS_JSONL, CONFIG_TOML]
        .iter()
        .any(|f| dir.join(f).is_file());
    if !ours {
        return Err(Error::format(
            dir,
            "not a Shears results folder (no results.json, events.jsonl or config.toml): not deleted",
        ));
    }
    std::fs::remove_dir_all(dir).map_err(|e| Error::io(dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiment::output::save_results;
    use crate::experiment::{ComparisonResults, ExperimentConfig, RunResult};

    /// Results with `runs` finished runs (no steps: the list does not read them).
    fn results(runs: usize) -> ComparisonResults {
        let run = RunResult::new("one-shot", ("one-shot", "magnitude"), 0.5, 0);
        ComparisonResults {
            runs: vec![run; runs],
            ..ComparisonResults::new(ExperimentConfig::demo(), "cpu")
        }
    }

    #[test]
    fn lists_filters_and_deletes_saved_comparisons() {
        let root = tempfile::tempdir().unwrap();
        let a = root.path().join("a-001");
        let b = root.path().join("b-001");
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        let mut r = results(4);
        r.config.name = "alpha".into();
        r.data.name = "mnist".into();
        r.status = Some(Status::Cancelled);
        save_results(&a, &r).unwrap();
        std::fs::write(b.join(RESULTS_JSON), b"{ torn").unwrap();
        std::fs::create_dir_all(root.path().join("not-results")).unwrap();
        let missing = root.path().join("missing");
        let list = scan(&[root.path().to_path_buf(), missing]);
        assert_eq!(list.len(), 2, "{list:?}");
        let alpha = list.iter().find(|s| s.dir == a).unwrap();
        assert_eq!(alpha.name, "alpha");
        assert_eq!(alpha.status, SavedStatus::Cancelled);
        assert_eq!(alpha.runs, r.runs.len());
        assert!(alpha.date().starts_with("20"), "{}", alpha.date());
        let torn = list.iter().find(|s| s.dir == b).unwrap();
        assert!(
            matches!(&torn.status, SavedStatus::Unreadable(e) if e.contains("results.json")),
            "{torn:?}"
        );
        assert!(alpha.matches("ALPHA mnist") && alpha.matches("cancelled"));
        assert!(!alpha.matches("alpha cifar"));
        // A results folder given itself is listed once.
        assert_eq!(scan(&[a.clone(), root.path().to_path_buf()]).len(), 2);
        let e = delete(&root.path().join("not-results")).unwrap_err();
        assert!(e.to_string().contains("not deleted"), "{e}");
        assert!(root.path().join("not-results").is_dir());
        delete(&a).unwrap();
        assert!(!a.exists());
        assert_eq!(scan(&[root.path().to_path_buf()]).len(), 1);
    }
}
