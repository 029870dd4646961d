//! The run browser's commands: listing the runs folders, showing a saved
//! comparison in Compare or taking it out, deleting one, and reopening at
//! start-up the results that were shown when the app closed.

use std::path::Path;

use super::ShearsApp;
use crate::experiment::catalog;
use crate::experiment::output::RESULTS_JSON;

impl ShearsApp {
    /// Lists the runs folders again.
    pub(super) fn refresh_runs(&mut self) {
        self.runs_view.saved = catalog::scan(&self.settings.runs_roots());
    }

    /// Shows the saved comparison in `dir` in Compare, or takes it out.
    pub(super) fn show_saved(&mut self, dir: &Path, shown: bool) {
        if shown {
            if let Err(e) = self.add_results(dir) {
                self.error(e);
            }
        } else {
            self.results
                .retain(|l| l.live || l.dir.as_deref() != Some(dir));
        }
    }

    /// Deletes the saved comparison in `dir` (never the running one).
    pub(super) fn delete_saved(&mut self, dir: &Path) {
        self.runs_view.confirm_delete = None;
        if self.run.as_ref().is_some_and(|r| r.out_dir == dir) {
            self.error(format!(
                "{} is the running comparison's folder: cancel it first",
                dir.display()
            ));
            return;
        }
        match catalog::delete(dir) {
            Ok(()) => {
                self.results
                    .retain(|l| l.live || l.dir.as_deref() != Some(dir));
                self.settings.recent.retain(|r| r.path != dir);
                self.info(format!("deleted {}", dir.display()));
            }
            Err(e) => self.error(e),
        }
        self.refresh_runs();
    }

    /// Opens again the results that were shown in Compare when the app
    /// closed (those whose folder is gone are dropped with a notice).
    pub(super) fn reopen_shown(&mut self) {
        for dir in self.settings.shown_results.clone() {
            if !dir.join(RESULTS_JSON).is_file() {
                self.info(format!(
                    "results shown last time are gone: {}",
                    dir.display()
                ));
                continue;
            }
            if let Err(e) = self.add_results(&dir) {
                self.error(e);
            }
        }
    }

    /// Puts the results folders shown in Compare into the settings (called
    /// when they are saved; the next start reopens them).
    pub(super) fn sync_shown_results(&mut self) {
        self.settings.shown_results = self
            .results
            .iter()
            .filter(|l| !l.live)
            .filter_map(|l| l.dir.clone())
            .collect();
    }
}
