//! [`ShearsApp`]: the app's state and the commands the views send. Views only
//! draw state and push [`Action`]s; this module carries them out after the
//! frame is drawn, talks to the worker and to the dialogs.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc::Receiver;

mod capture;
mod opening;
mod plans;
mod runs;
mod sensitivity;

use eframe::egui::{self, Ui};

pub use super::command::{
    Action, CheckpointInfo, LoadedResults, Notice, RunsView, SensitivityView,
};
use super::dialogs::{native_unavailable, Dialogs, PathPrompt};
use super::files::new_run_dir;
use super::sensitivity_worker::SensitivityHandle;
use super::state::{Settings, Tab};
use super::views;
use super::worker::{Message, PluginSources, RunHandle};
use crate::error::Result;
use crate::experiment::output::RESULTS_JSON;
use crate::experiment::{ComparisonResults, ExperimentConfig, Status};
use crate::plugins::{LoadError, Registry};
use crate::report::Progress;

/// Least time between two repaints that progress messages ask for (they
/// come several times a second; each frame costs the training CPU time).
pub const PROGRESS_REPAINT: std::time::Duration = std::time::Duration::from_millis(500);

/// Repaints for a worker's message: the last one at once, progress at
/// most every [`PROGRESS_REPAINT`].
fn wake(ctx: &egui::Context, last: bool) {
    if last {
        ctx.request_repaint();
    } else {
        ctx.request_repaint_after(PROGRESS_REPAINT);
    }
}

/// Most notices shown at once; older ones go.
pub const MAX_NOTICES: usize = 5;

/// How the app was started (the `shears gui` options).
#[derive(Debug, Clone, Default)]
pub struct LaunchOptions {
    /// Open this config instead of the saved one.
    pub config: Option<PathBuf>,
    /// Write comparisons here instead of the saved folder.
    pub out_dir: Option<PathBuf>,
    /// Start the comparison at once.
    pub autorun: bool,
    /// After the comparison, show Compare, save a screenshot of the window here.
    pub screenshot: Option<PathBuf>,
    /// After the comparison (and screenshot), save every chart as
    /// `<id>.png` in this folder, the same way **Save PNG…** does.
    pub export_charts: Option<PathBuf>,
    /// Close the window once the comparison (and screenshot) is done.
    pub quit_after_run: bool,
    /// Extra plugin folders.
    pub plugin_dirs: Vec<PathBuf>,
    /// The `shears` executable used to probe new plugin libraries in a child
    /// process (`None`: load them in this process directly).
    pub probe_exe: Option<PathBuf>,
    /// Never show native file dialogs: the in-window path prompt instead.
    pub no_native_dialogs: bool,
}

/// What the experiment data's shape depends on: the dataset and how its
/// images are prepared.
type DataKey = (crate::data::DatasetSpec, crate::data::InputPrep);

/// The desktop app.
pub struct ShearsApp {
    /// Persisted state.
    pub settings: Settings,
    registry: Registry,
    load_errors: Vec<LoadError>,
    run: Option<RunHandle>,
    progress: Option<Progress>,
    /// Results sets in the Compare view.
    pub results: Vec<LoadedResults>,
    notices: Vec<Notice>,
    dialogs: Dialogs,
    checkpoint: Option<CheckpointInfo>,
    /// The experiment data's input shape, by dataset and preparation (see
    /// `data_input`).
    data_shape: Option<(DataKey, ([usize; 3], usize))>,
    /// The Model view of the architecture Setup names (when no model is
    /// opened), by what it was built from (see `builtin_view`).
    builtin: Option<(String, CheckpointInfo)>,
    launch: LaunchOptions,
    probes: Vec<Receiver<(PathBuf, Result<String>)>>,
    /// Screenshots and chart PNGs in progress.
    capture: Capture,
    last_id: u64,
    actions: Vec<Action>,
    sensitivity: SensitivityView,
    sensitivity_job: Option<SensitivityHandle>,
    /// The training the Run view shows (`None`: the one running).
    run_selected: Option<usize>,
    /// The run browser's list.
    runs_view: RunsView,
    /// The in-window path prompt, when no native dialog can show.
    prompt: Option<PathPrompt>,
    /// Plan folders shown in Compare and followed as their tasks finish.
    plans: Vec<plans::WatchedPlan>,
    /// Frames drawn since the start, and when it started.
    frames: u64,
    started: std::time::Instant,
}

use capture::{Capture, Finale};

impl ShearsApp {
    /// The app with `settings` (saved ones, or the defaults: the demo).
    pub fn new(mut settings: Settings, launch: LaunchOptions) -> Self {
        let mut notices = Vec::new();
        let mut launch = launch;
        if let Some(path) = &launch.config {
            match load_config(path) {
                Ok(cfg) => settings.config = cfg,
                Err(e) => {
                    // Never run another experiment than the one asked for.
                    launch.autorun = false;
                    notices.push(Notice {
                        error: true,
                        text: e.to_string(),
                    })
                }
            }
        }
        if let Some(dir) = &launch.out_dir {
            settings.out_dir = dir.clone();
        }
        if !launch.plugin_dirs.is_empty() {
            settings.plugin_dirs = launch.plugin_dirs.clone();
        }
        let mut app = Self {
            registry: Registry::builtin(),
            load_errors: vec![],
            settings,
            run: None,
            progress: None,
            results: vec![],
            notices,
            dialogs: Dialogs::new(if launch.no_native_dialogs {
                Some("native file dialogs are turned off (--no-native-dialogs)".into())
            } else {
                native_unavailable()
            }),
            checkpoint: None,
            data_shape: None,
            builtin: None,
            launch,
            probes: vec![],
            capture: Capture::default(),
            last_id: 0,
            actions: vec![],
            sensitivity: SensitivityView::default(),
            sensitivity_job: None,
            run_selected: None,
            runs_view: RunsView::default(),
            prompt: None,
            plans: Vec::new(),
            frames: 0,
            started: std::time::Instant::now(),
        };
        app.reopen_shown();
        app.refresh_runs();
        app.rescan_plugins();
        if let Some(path) = app.settings.config.base_checkpoint.clone() {
            if let Err(e) = app.open_checkpoint(&path) {
                app.error(e);
            }
        }
        if app.launch.autorun {
            app.actions.push(Action::StartRun);
        } else if app.launch.quit_after_run {
            // Scripted, but nothing to run (the config did not load): say why and close.
            for n in &app.notices {
                eprintln!("error: {}", n.text);
            }
            app.capture.finale = Some(Finale::Quit);
        }
        app
    }

    /// The plugin registry the Setup and Plugins views show.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Notices shown now, oldest first.
    pub fn notices(&self) -> &[Notice] {
        &self.notices
    }

    /// Progress of the current (or last) comparison.
    pub fn progress(&self) -> Option<&Progress> {
        self.progress.as_ref()
    }

    /// Whether the running comparison was asked to stop.
    pub fn cancelling(&self) -> bool {
        self.run.as_ref().is_some_and(|r| r.cancelling())
    }

    /// Whether a comparison is running.
    pub fn is_running(&self) -> bool {
        self.run.is_some()
    }

    /// Where each chart of the Compare view was drawn in the last frame
    /// (what **Save PNG…** cuts out of the window).
    pub fn chart_rects(&self) -> &HashMap<String, egui::Rect> {
        &self.capture.plot_rects
    }

    /// Libraries that failed to load or to pass the probe.
    pub fn load_errors(&self) -> Vec<LoadError> {
        let mut all = self.registry.errors().to_vec();
        all.extend(self.load_errors.iter().cloned());
        all
    }

    fn info(&mut self, text: impl Into<String>) {
        self.notice(Notice {
            error: false,
            text: text.into(),
        });
    }

    /// Shows `n`, dropping the oldest notices beyond [`MAX_NOTICES`] (and
    /// an identical one already shown) so they do not pile up.
    fn notice(&mut self, n: Notice) {
        self.notices.retain(|old| old != &n);
        self.notices.push(n);
        let extra = self.notices.len().saturating_sub(MAX_NOTICES);
        self.notices.drain(..extra);
    }

    fn error(&mut self, e: impl std::fmt::Display) {
        if self.launch.quit_after_run {
            // Scripted runs have no one reading the window.
            eprintln!("error: {e}");
        }
        self.notice(Notice {
            error: true,
            text: e.to_string(),
        });
    }

    fn plugin_sources(&self) -> PluginSources {
        PluginSources {
            dirs: self.settings.plugin_dirs.clone(),
            libraries: self.settings.plugin_libraries.clone(),
        }
    }

    fn rescan_plugins(&mut self) {
        self.registry = self.plugin_sources().registry();
        self.load_errors.clear();
    }

    /// Draws the whole window and carries out what the user asked for.
    pub fn show(&mut self, ui: &mut Ui) {
        self.frames += 1;
        self.poll();
        let dropped: Vec<PathBuf> = ui.ctx().input(|i| {
            i.raw
                .dropped_files
                .iter()
                .map(|f| f.path().to_path_buf())
                .filter(|p| !p.as_os_str().is_empty())
                .collect()
        });
        for p in dropped {
            self.actions.push(Action::OpenPath(p));
        }
        self.take_screenshots(ui.ctx());

        let mut actions = std::mem::take(&mut self.actions);
        // Chart rectangles of this frame only (a chart on another tab cannot be saved).
        self.capture.plot_rects.clear();
        egui::Panel::top("top").show(ui, |ui| {
            let running = self.run.as_ref().map(|r| r.cancelling());
            views::menu::show(
                ui,
                &self.settings.recent,
                self.settings.tab,
                running,
                &mut actions,
            );
        });
        egui::Panel::bottom("notices").show(ui, |ui| {
            views::notices::show(ui, &self.notices, self.dialogs.is_open(), &mut actions);
        });
        let builtin = (self.settings.tab == Tab::Model && self.checkpoint.is_none())
            .then(|| self.builtin_view())
            .flatten();
        egui::CentralPanel::default().show(ui, |ui| match self.settings.tab {
            Tab::Setup => views::setup::show(
                ui,
                &mut self.settings,
                &self.registry,
                self.checkpoint.as_mut(),
                self.run.is_some(),
                &mut actions,
            ),
            Tab::Run => views::run::show(
                ui,
                self.progress.as_ref(),
                self.run.as_ref().map(|r| r.cancelling()),
                &mut self.run_selected,
                &mut actions,
            ),
            Tab::Compare => views::compare::show(
                ui,
                &mut self.results,
                &mut self.settings.charts,
                &mut self.capture.plot_rects,
                self.capture.plot_jobs.front().map(|j| j.id.as_str()),
                &mut actions,
            ),
            Tab::Runs => {
                let roots = self.settings.runs_roots();
                // What Compare holds, the running comparison included.
                let in_compare: Vec<PathBuf> =
                    self.results.iter().filter_map(|l| l.dir.clone()).collect();
                views::runs::show(
                    ui,
                    &self.runs_view,
                    &mut self.settings.runs_filter,
                    (&roots, &self.settings.run_folders),
                    &in_compare,
                    self.run.as_ref().map(|r| r.out_dir.as_path()),
                    &mut actions,
                )
            }
            Tab::Sensitivity => views::sensitivity::show(
                ui,
                &mut self.settings.sensitivity,
                &self.sensitivity,
                &self.registry,
                &mut self.capture.plot_rects,
                &mut actions,
            ),
            Tab::Model => views::model::show(
                ui,
                self.checkpoint.as_ref().or(builtin.as_ref()),
                &mut actions,
            ),
            Tab::Plugins => views::plugins::show(
                ui,
                &self.registry,
                &self.load_errors,
                &self.settings.plugin_libraries,
                !self.probes.is_empty(),
                &mut actions,
            ),
        });
        if let Some(p) = &mut self.prompt {
            views::path_prompt::show(ui, p, &mut actions);
        }
        for a in actions {
            self.apply(a, ui.ctx());
        }
        self.drive_chart_saving(ui.ctx());
        self.drive_finale(ui.ctx());
        if self.run.is_some()
            || self.sensitivity_job.is_some()
            || !self.probes.is_empty()
            || self.dialogs.is_open()
            || !self.capture.plot_jobs.is_empty()
        {
            // Messages wake the window; this keeps the clock (ETA) moving in between.
            ui.ctx()
                .request_repaint_after(std::time::Duration::from_secs(1));
        } else if self.following_plans() {
            ui.ctx().request_repaint_after(plans::PLAN_POLL);
        }
    }

    /// Takes the messages of the worker, the dialogs and the plugin probe.
    fn poll(&mut self) {
        self.poll_sensitivity();
        self.poll_plans();
        let (messages, dir) = match &mut self.run {
            Some(run) => (run.poll(), run.out_dir.clone()),
            None => (vec![], PathBuf::new()),
        };
        {
            for m in messages {
                match m {
                    Message::Event(e) => {
                        if let Some(p) = &mut self.progress {
                            p.on_event(&e);
                        }
                    }
                    Message::Results(r) => self.update_live(*r),
                    Message::Done(outcome) => match outcome {
                        Ok(r) => {
                            let (is_error, text) = crate::report::outcome_line(&r, &dir);
                            self.update_live(*r);
                            self.notice(Notice {
                                error: is_error,
                                text,
                            });
                        }
                        Err(e) => {
                            // Set-up failed: nothing ran, the placeholder goes.
                            self.results.retain(|l| !l.live);
                            if let Some(p) = &mut self.progress {
                                p.ended = Some(Status::Failed(e.clone()));
                                p.current = format!("could not start: {e}");
                            }
                            self.error(format!("comparison not started: {e}"));
                        }
                    },
                }
            }
        }
        if self.run.as_ref().is_some_and(|r| r.finished()) {
            self.run = None;
            self.refresh_runs();
            for r in self.results.iter_mut().filter(|r| r.live) {
                r.live = false;
                r.file = r.dir.as_ref().map(|d| {
                    let f = d.join(RESULTS_JSON);
                    f.canonicalize().unwrap_or(f)
                });
                r.name = r.results.config.name.clone();
                if let Some(d) = r.dir.as_ref().and_then(|d| d.file_name()) {
                    r.name = format!("{} ({})", r.name, d.to_string_lossy());
                }
            }
            let l = &self.launch;
            if l.screenshot.is_some() || l.export_charts.is_some() || l.quit_after_run {
                self.settings.tab = Tab::Compare;
                // The screenshot step also starts the chart export.
                self.capture.finale =
                    Some(if l.screenshot.is_some() || l.export_charts.is_some() {
                        Finale::Screenshot(10)
                    } else {
                        Finale::Quit
                    });
            }
        }
        while let Some(answer) = self.dialogs.poll() {
            if let Some(why) = &answer.unavailable {
                self.info(format!("{why}: type the path in the window instead"));
                let start = self.dialog_start(&answer.purpose);
                self.prompt = Some(PathPrompt::new(answer.purpose, "", start.as_deref(), why));
            } else if let Some(path) = answer.path {
                self.answer(answer.purpose, &path);
            }
        }
        let mut answers = Vec::new();
        self.probes.retain(|rx| match rx.try_recv() {
            Ok(answer) => {
                answers.push(answer);
                false
            }
            Err(std::sync::mpsc::TryRecvError::Empty) => true,
            Err(std::sync::mpsc::TryRecvError::Disconnected) => false,
        });
        for (path, outcome) in answers {
            {
                match outcome {
                    Ok(_) => self.add_library(&path),
                    Err(e) => {
                        self.load_errors.push(LoadError {
                            path: path.clone(),
                            message: e.to_string(),
                        });
                        self.error(format!("plugin not loaded: {e}"));
                        self.settings.tab = Tab::Plugins;
                    }
                }
            }
        }
    }

    fn update_live(&mut self, r: ComparisonResults) {
        if let Some(l) = self.results.iter_mut().find(|l| l.live) {
            l.results = r;
        }
    }

    fn apply(&mut self, a: Action, ctx: &egui::Context) {
        match a {
            Action::StartRun => self.start_run(ctx),
            Action::CancelRun => {
                if let Some(r) = &self.run {
                    r.cancel();
                }
            }
            Action::Dialog {
                purpose,
                suggested_name: name,
            } => {
                let start = self.dialog_start(&purpose);
                match self.dialogs.unavailable() {
                    Some(why) => {
                        self.prompt = Some(PathPrompt::new(purpose, &name, start.as_deref(), why))
                    }
                    None => {
                        let ctx = ctx.clone();
                        self.dialogs
                            .show(purpose, &name, start, move || ctx.request_repaint());
                    }
                }
            }
            Action::PromptDone(path) => {
                if let (Some(prompt), Some(path)) = (self.prompt.take(), path) {
                    self.answer(prompt.purpose, &path);
                }
            }
            Action::OpenPath(p) => {
                if let Err(e) = self.open_path(&p) {
                    self.error(e);
                }
            }
            Action::RescanPlugins => {
                self.rescan_plugins();
                let n = self.registry.entries().len();
                let bad = self.registry.errors().len();
                self.info(format!("plugins rescanned: {n} loaded, {bad} failed"));
            }
            Action::RemoveLibrary(p) => {
                self.settings.plugin_libraries.retain(|l| l != &p);
                self.rescan_plugins();
            }
            Action::CloseResults(id) => self.results.retain(|l| l.live || l.id != id),
            Action::ResetToDemo => {
                self.settings.config = ExperimentConfig::demo();
                self.checkpoint = None;
            }
            Action::ClearCheckpoint => {
                self.settings.config.base_checkpoint = None;
                self.settings.config.import = Default::default();
                self.checkpoint = None;
            }
            Action::ApplyImport => {
                if let Err(e) = self.apply_import() {
                    self.error(e);
                }
            }
            Action::SetTab(t) => self.settings.tab = t,
            Action::Dismiss(i) => {
                if i < self.notices.len() {
                    self.notices.remove(i);
                }
            }
            Action::StartSensitivity => self.start_sensitivity(ctx),
            Action::CancelSensitivity => self.cancel_sensitivity(),
            Action::ShowSaved { dir, shown } => self.show_saved(&dir, shown),
            Action::AskDelete(dir) => self.runs_view.confirm_delete = dir,
            Action::DeleteSaved(dir) => self.delete_saved(&dir),
            Action::RefreshRuns => self.refresh_runs(),
            Action::RemoveRunsFolder(dir) => {
                self.settings.run_folders.retain(|f| f != &dir);
                self.refresh_runs();
            }
        }
    }

    /// Starts the configured comparison on the worker (refused while one runs
    /// or when the config is invalid; the notice says why).
    fn start_run(&mut self, ctx: &egui::Context) {
        if self.run.is_some() {
            self.error("a comparison is already running: cancel it first");
            return;
        }
        if self.launch.quit_after_run {
            // A scripted run closes the window whether or not the start succeeds.
            self.capture.finale = Some(Finale::Quit);
        }
        let cfg = self.settings.config.clone();
        if let Err(e) = cfg.validate(&self.registry) {
            self.error(format!("cannot start: {e}"));
            self.settings.tab = Tab::Setup;
            return;
        }
        let out = match new_run_dir(&self.settings.out_dir, &cfg.name) {
            Ok(d) => d,
            Err(e) => {
                self.error(format!("cannot start: {e}"));
                return;
            }
        };
        self.progress = Some(Progress::new(&cfg));
        self.run_selected = None;
        self.settings
            .remember(super::state::FileKind::Results, &out);
        let id = self.next_id();
        self.results.insert(
            0,
            LoadedResults {
                id,
                name: format!("{} (running)", cfg.name),
                dir: Some(out.clone()),
                file: None,
                results: ComparisonResults::new(cfg.clone(), ""),
                shown: true,
                live: true,
            },
        );
        let ctx = ctx.clone();
        self.run = Some(RunHandle::start(
            cfg,
            out,
            self.plugin_sources(),
            move |last| wake(&ctx, last),
        ));
        self.settings.tab = Tab::Run;
        self.capture.finale = None;
    }

    fn next_id(&mut self) -> u64 {
        self.last_id += 1;
        self.last_id
    }

    /// Called when the window closes: a running comparison is cancelled and
    /// given a few seconds to save its final state (finished runs are saved
    /// after each run anyway).
    pub fn on_close(&mut self) {
        let Some(run) = &mut self.run else { return };
        run.cancel();
        let t0 = std::time::Instant::now();
        while !run.finished() && t0.elapsed() < std::time::Duration::from_secs(5) {
            let _ = run.poll();
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

/// Reads a config; a relative dataset path is taken relative to the file.
fn load_config(path: &Path) -> Result<ExperimentConfig> {
    let mut cfg = ExperimentConfig::load(path)?;
    if let Some(dir) = path.parent() {
        cfg.data = cfg.data.resolve_relative_to(dir);
    }
    Ok(cfg)
}

/// Key of the settings in eframe's storage.
pub const SETTINGS_KEY: &str = "shears-settings";

impl eframe::App for ShearsApp {
    fn ui(&mut self, ui: &mut Ui, _frame: &mut eframe::Frame) {
        self.show(ui);
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        self.sync_shown_results();
        eframe::set_value(storage, SETTINGS_KEY, &self.settings);
    }

    fn on_exit(&mut self, _gl: Option<&eframe::glow::Context>) {
        self.on_close();
    }
}
