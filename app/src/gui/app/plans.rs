//! Plan folders (`shears plan`) open in Compare while their tasks run
//! anywhere: the finished bases, runs and controls are shown and the folder
//! is read again every [`PLAN_POLL`] until every task is done.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::{LoadedResults, ShearsApp};
use crate::error::Result;
use crate::experiment::plan::{self, PlanProgress};

/// How often an open plan folder is read again.
pub const PLAN_POLL: Duration = Duration::from_secs(2);

/// A plan folder shown in Compare, followed until it is done.
pub(super) struct WatchedPlan {
    dir: PathBuf,
    /// The results set that shows it.
    id: u64,
    read_at: Instant,
}

/// The set's name: the comparison, the folder and how far the plan is.
fn name(dir: &Path, p: &PlanProgress) -> String {
    let folder = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| dir.display().to_string());
    let mut state = format!("plan {folder}: {} of {} tasks done", p.done, p.total);
    if p.running > 0 {
        state.push_str(&format!(", {} running", p.running));
    }
    if p.failed > 0 {
        state.push_str(&format!(", {} failed", p.failed));
    }
    format!("{} ({state})", p.results.config.name)
}

impl ShearsApp {
    /// Opens the plan folder `dir` in Compare and follows it.
    pub(super) fn watch_plan(&mut self, dir: &Path) -> Result<()> {
        let p = plan::progress(dir)?;
        let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
        self.plans.retain(|w| w.dir != dir);
        let id = self.next_id();
        let name = name(&dir, &p);
        let finished = p.done == p.total;
        self.info(if finished {
            format!("{name}: every task is done (`shears merge` writes its results.json)")
        } else {
            format!("{name}: shown as its tasks finish")
        });
        self.results.push(LoadedResults {
            id,
            name,
            dir: Some(dir.clone()),
            file: None,
            results: p.results,
            shown: true,
            live: false,
        });
        if !finished {
            self.plans.push(WatchedPlan {
                dir,
                id,
                read_at: Instant::now(),
            });
        }
        Ok(())
    }

    /// Whether a plan is being followed (the window then wakes every
    /// [`PLAN_POLL`]).
    pub(super) fn following_plans(&self) -> bool {
        !self.plans.is_empty()
    }

    /// Reads the followed plans again when [`PLAN_POLL`] has passed;
    /// a finished plan is no longer followed.
    pub(super) fn poll_plans(&mut self) {
        let due: Vec<(PathBuf, u64)> = self
            .plans
            .iter()
            .filter(|w| w.read_at.elapsed() >= PLAN_POLL)
            .map(|w| (w.dir.clone(), w.id))
            .collect();
        for (dir, id) in due {
            let read = plan::progress(&dir);
            for w in self.plans.iter_mut().filter(|w| w.id == id) {
                w.read_at = Instant::now();
            }
            let p = match read {
                Ok(p) => p,
                Err(e) => {
                    // A task writing as we read: try again next time.
                    self.error(format!("plan {}: {e}", dir.display()));
                    continue;
                }
            };
            let done = p.done == p.total;
            let name = name(&dir, &p);
            let Some(set) = self.results.iter_mut().find(|l| l.id == id) else {
                // The set was closed: stop following.
                self.plans.retain(|w| w.id != id);
                continue;
            };
            (set.name, set.results) = (name.clone(), p.results);
            if done {
                self.plans.retain(|w| w.id != id);
                self.info(format!("{name}: every task is done"));
            }
        }
    }
}
