//! A comparison's output folder: `config.toml`, `events.jsonl` (appended as
//! events happen), `results.json` and `results.csv` (rewritten after every
//! base model and run, so finished results survive a crash or a cancel), the
//! base checkpoints and the pruned models. Used by the CLI and the GUI alike.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use super::config::ExperimentConfig;
use super::results::{to_csv, ComparisonResults, Event, Status};
use crate::error::{Error, Result};
use crate::fsutil::{append_line, write_atomic};

/// File names inside an output folder.
pub const RESULTS_JSON: &str = "results.json";
/// CSV export of the results.
pub const RESULTS_CSV: &str = "results.csv";
/// Event log, one JSON object per line.
pub const EVENTS_JSONL: &str = "events.jsonl";
/// The configuration that ran.
pub const CONFIG_TOML: &str = "config.toml";
/// Folder of the pruned models, one per completed run.
pub const MODELS_DIR: &str = "models";

/// Where the base model of `seed` is saved, relative to the output folder.
pub fn base_model_file(seed: u64) -> String {
    format!("base-seed{seed}.safetensors")
}

/// Where a run's final model is saved, relative to the output folder:
/// `models/s<strategy index>-<strategy>-t<target index>-<target %>-seed<N>.safetensors`
/// (the indices make names unique; the rest makes them readable).
pub fn model_file_name(
    strategy_index: usize,
    strategy: &str,
    target_index: usize,
    target: f32,
    seed: u64,
) -> String {
    let slug = crate::fsutil::slug(strategy);
    format!(
        "{}/s{strategy_index}-{slug}-t{target_index}-{:.2}-seed{seed}.safetensors",
        MODELS_DIR,
        target * 100.0
    )
}

/// The output folder of a comparison. Nothing in it is touched until the
/// comparison has started (its set-up — config, data, model, device —
/// succeeded): a comparison that cannot start leaves an earlier one's results
/// in place.
#[derive(Debug, Clone)]
pub struct OutputDir {
    dir: PathBuf,
    config: String,
    prepared: bool,
}

impl OutputDir {
    /// The folder `dir` for a comparison of `cfg`; checks the folder can be
    /// created.
    pub fn new(dir: &Path, cfg: &ExperimentConfig) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        Ok(Self {
            dir: dir.to_path_buf(),
            config: toml::to_string(cfg)?,
            prepared: false,
        })
    }

    /// Removes the results and models of an earlier comparison in the folder
    /// (they must not pass for this one's), starts an empty event log and
    /// writes the config.
    fn prepare(&mut self) -> Result<()> {
        for old in [RESULTS_JSON, RESULTS_CSV] {
            let p = self.dir.join(old);
            if p.exists() {
                std::fs::remove_file(&p).map_err(|e| Error::io(&p, e))?;
            }
        }
        let models = self.dir.join(MODELS_DIR);
        if models.is_dir() {
            std::fs::remove_dir_all(&models).map_err(|e| Error::io(&models, e))?;
        }
        write_atomic(&self.dir.join(EVENTS_JSONL), b"")?;
        write_atomic(&self.dir.join(CONFIG_TOML), self.config.as_bytes())?;
        self.prepared = true;
        Ok(())
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Appends `event` to the log (preparing the folder at the first event);
    /// after a base model, a run or the end, rewrites the results files too.
    /// [`Event::Batch`]es are not logged.
    pub fn record(&mut self, event: &Event, results: &ComparisonResults) -> Result<()> {
        if matches!(event, Event::Batch { .. }) {
            // Progress within an epoch is for displays, not the record.
            return Ok(());
        }
        if !self.prepared {
            self.prepare()?;
        }
        let line = serde_json::to_string(event)?;
        append_line(&self.dir.join(EVENTS_JSONL), &line)?;
        if matches!(
            event,
            Event::BaseReady(_)
                | Event::RunFinished(_)
                | Event::ControlFinished(_)
                | Event::Finished { .. }
        ) {
            save_results(&self.dir, results)?;
        }
        Ok(())
    }
}

/// Records a comparison's events into its [`OutputDir`] as they come. The
/// first write that fails (a full disk, a folder removed) is kept and stops
/// the comparison through `cancel`: results that cannot be saved are not
/// worth computing, and the finished ones stay saved.
pub struct Recorder<'a> {
    output: OutputDir,
    cancel: &'a AtomicBool,
    error: Option<Error>,
}

impl<'a> Recorder<'a> {
    /// Records into `output`; a write error sets `cancel`.
    pub fn new(output: OutputDir, cancel: &'a AtomicBool) -> Self {
        Self {
            output,
            cancel,
            error: None,
        }
    }

    /// [`OutputDir::record`], keeping the first error.
    pub fn record(&mut self, event: &Event, results: &ComparisonResults) {
        if let Err(e) = self.output.record(event, results) {
            if self.error.is_none() {
                self.error = Some(e);
            }
            self.cancel.store(true, Ordering::SeqCst);
        }
    }

    /// After the comparison: with a write error, marks `results` failed with
    /// it and returns it (the comparison was stopped because of it).
    pub fn finish(self, results: &mut ComparisonResults) -> Option<Error> {
        let e = self.error?;
        let e = Error::Other(format!(
            "could not save results: {e} (the comparison was stopped)"
        ));
        results.status = Some(Status::Failed(e.to_string()));
        Some(e)
    }
}

/// Writes `results.json` and `results.csv` into `dir`.
pub fn save_results(dir: &Path, r: &ComparisonResults) -> Result<()> {
    let json = serde_json::to_vec_pretty(r)?;
    write_atomic(&dir.join(RESULTS_JSON), &json)?;
    write_atomic(&dir.join(RESULTS_CSV), to_csv(r).as_bytes())
}

/// Reads the results of an earlier comparison: `path` is its folder or its
/// `results.json`. A folder whose comparison was stopped before the first
/// run finished (no `results.json`) is an error that says so.
pub fn load_results(path: &Path) -> Result<ComparisonResults> {
    let file = if path.is_dir() {
        path.join(RESULTS_JSON)
    } else {
        path.to_path_buf()
    };
    let bytes = std::fs::read(&file).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound && path.is_dir() {
            Error::format(
                path,
                "no results.json here (not a Shears results folder, or its comparison saved nothing yet)",
            )
        } else {
            Error::io(&file, e)
        }
    })?;
    results_from_bytes(&bytes, &file)
}

/// Parses the bytes of a `results.json`; errors name `file`.
pub fn results_from_bytes(bytes: &[u8], file: &Path) -> Result<ComparisonResults> {
    serde_json::from_slice(bytes)
        .map_err(|e| Error::format(file, format!("not a Shears results file: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiment::results::Status;

    #[test]
    fn prepare_record_and_load_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = ExperimentConfig::demo();
        std::fs::write(dir.path().join(RESULTS_JSON), b"old").unwrap();
        std::fs::create_dir(dir.path().join(MODELS_DIR)).unwrap();
        let mut out = OutputDir::new(dir.path(), &cfg).unwrap();
        assert!(
            dir.path().join(RESULTS_JSON).exists(),
            "nothing is touched before the comparison starts"
        );
        let results = ComparisonResults {
            status: Some(Status::Cancelled),
            ..ComparisonResults::new(cfg, "cpu")
        };
        let end = Event::Finished {
            status: Status::Cancelled,
        };
        out.record(&end, &results).unwrap();
        assert!(!dir.path().join(MODELS_DIR).exists(), "old models removed");
        let log = std::fs::read_to_string(dir.path().join(EVENTS_JSONL)).unwrap();
        assert!(log.contains("\"finished\""), "{log}");
        assert_eq!(load_results(dir.path()).unwrap(), results);
        assert_eq!(
            load_results(&dir.path().join(RESULTS_JSON)).unwrap(),
            results
        );
    }

    #[test]
    fn load_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let e = load_results(dir.path()).unwrap_err().to_string();
        assert!(e.contains("no results.json"), "{e}");
        let f = dir.path().join(RESULTS_JSON);
        std::fs::write(&f, b"{\"version\": 1").unwrap();
        let e = load_results(&f).unwrap_err().to_string();
        assert!(
            e.contains("results.json") && e.contains("not a Shears results file"),
            "{e}"
        );
    }
}
