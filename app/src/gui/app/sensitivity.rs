//! The app's side of a sensitivity analysis: starting the worker and taking
//! its messages into the state the Sensitivity view draws.

use eframe::egui;

use super::ShearsApp;
use crate::gui::files::new_run_dir;
use crate::gui::sensitivity_worker::{SensitivityHandle, SensitivityMessage};
use crate::gui::state::Tab;

impl ShearsApp {
    /// Starts the analysis of the experiment's model with the view's spec,
    /// in a new folder under the runs folder.
    pub(super) fn start_sensitivity(&mut self, ctx: &egui::Context) {
        if self.sensitivity_job.is_some() {
            self.error("a sensitivity analysis is already running: cancel it first");
            return;
        }
        self.settings.tab = Tab::Sensitivity;
        let cfg = self.settings.config.clone();
        let name = format!("{} sensitivity", cfg.name);
        let out = match new_run_dir(&self.settings.out_dir, &name) {
            Ok(d) => d,
            Err(e) => {
                self.error(format!("sensitivity analysis not started: {e}"));
                return;
            }
        };
        let ctx = ctx.clone();
        self.sensitivity.progress = Some(("starting".into(), 0.0));
        self.sensitivity.cancelling = false;
        self.sensitivity_job = Some(SensitivityHandle::start(
            cfg,
            self.settings.sensitivity.clone(),
            out,
            self.plugin_sources(),
            move |last| super::wake(&ctx, last),
        ));
    }

    /// Asks the running analysis to stop.
    pub(super) fn cancel_sensitivity(&mut self) {
        if let Some(job) = &self.sensitivity_job {
            job.cancel();
            self.sensitivity.cancelling = true;
        }
    }

    /// Takes the analysis's messages.
    pub(super) fn poll_sensitivity(&mut self) {
        let Some(job) = &mut self.sensitivity_job else {
            return;
        };
        for m in job.poll() {
            match m {
                SensitivityMessage::Progress(what, f) => {
                    self.sensitivity.progress = Some((what, f))
                }
                SensitivityMessage::Done(Ok((r, dir))) => {
                    self.info(format!("sensitivity analysis saved in {}", dir.display()));
                    self.sensitivity.results = Some((*r, dir));
                }
                SensitivityMessage::Done(Err(e)) => {
                    self.error(format!("sensitivity analysis stopped: {e}"))
                }
            }
        }
        if self.sensitivity_job.as_ref().is_some_and(|j| j.finished()) {
            self.sensitivity_job = None;
            self.sensitivity.progress = None;
            self.sensitivity.cancelling = false;
        }
    }
}
