//! Files coming in and going out: opening models, datasets, plugin
//! libraries (probed in a child process first), results folders and
//! configs, and carrying out what a save or export dialog was opened for.

use std::path::{Path, PathBuf};
use std::sync::mpsc::channel;

use super::{load_config, CheckpointInfo, LoadedResults, ShearsApp};
use crate::error::{Error, Result};
use crate::experiment::load_results;
use crate::experiment::output::RESULTS_JSON;
use crate::fsutil::write_atomic;
use crate::gui::command::shown_sets;
use crate::gui::command::{FormAsks, ImportForm};
use crate::gui::files::{classify, DialogPurpose};
use crate::gui::state::{FileKind, Tab};
use crate::model::export::ExportFormat;
use crate::model::import::{self, ModelFormat};
use crate::report::chart::compare_charts;
use crate::report::layers::{layer_rows, preprocess_text};

impl ShearsApp {
    /// Opens a file or folder: a model, a dataset, a plugin library, a results
    /// folder or a config. Errors name the file; nothing loaded is lost.
    pub fn open_path(&mut self, path: &Path) -> Result<()> {
        let kind = classify(path)?;
        match kind {
            FileKind::Checkpoint => {
                self.open_checkpoint(path)?;
                self.settings.config.base_checkpoint = Some(path.to_path_buf());
                self.settings.tab = Tab::Setup;
                let (summary, problem) = self
                    .checkpoint
                    .as_ref()
                    .map(|c| (c.summary.clone(), c.problem.clone()))
                    .unwrap_or_default();
                match problem {
                    None => self.info(format!(
                        "model opened: {} ({summary}); comparisons start from it",
                        path.display()
                    )),
                    Some(p) => self.info(format!(
                        "{p}. Say what the file cannot tell in Setup's import form."
                    )),
                }
            }
            FileKind::Dataset => {
                let spec = crate::data::DatasetSpec::detect(path)?;
                self.info(format!("dataset: {spec}"));
                self.settings.config.data = spec;
                self.settings.tab = Tab::Setup;
            }
            FileKind::Plugin => self.start_probe(path),
            FileKind::Results => {
                self.add_results(path)?;
                self.settings.tab = Tab::Compare;
            }
            FileKind::Plan => {
                self.watch_plan(path)?;
                self.settings.tab = Tab::Compare;
            }
            FileKind::Config => {
                let cfg = load_config(path)?;
                // Everything the config refers to is checked before it replaces
                // the one being edited.
                match &cfg.base_checkpoint {
                    Some(c) => self.open_checkpoint(c)?,
                    None => self.checkpoint = None,
                }
                self.settings.config = cfg;
                self.settings.tab = Tab::Setup;
            }
        }
        self.settings.remember(kind, path);
        Ok(())
    }

    /// Loads the results folder (or results.json) at `path` into Compare,
    /// shown, replacing the same results if they were open.
    pub(super) fn add_results(&mut self, path: &Path) -> Result<()> {
        let r = load_results(path)?;
        let dir = if path.is_dir() {
            path.to_path_buf()
        } else {
            path.parent().map(Path::to_path_buf).unwrap_or_default()
        };
        let name = format!(
            "{} ({})",
            r.config.name,
            dir.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| dir.display().to_string())
        );
        let file = if path.is_dir() {
            path.join(RESULTS_JSON)
        } else {
            path.to_path_buf()
        };
        // Every set's file is kept canonical, so paths compare as they are.
        let file = file.canonicalize().unwrap_or(file);
        self.results
            .retain(|l| l.live || l.file.as_ref() != Some(&file));
        let id = self.next_id();
        self.results.push(LoadedResults {
            id,
            name,
            dir: Some(dir),
            file: Some(file),
            results: r,
            shown: true,
            live: false,
        });
        Ok(())
    }

    /// Opens the model comparisons start from. A PyTorch state dict that
    /// cannot be built with the import options as they are is kept, with
    /// the problem, for the import form to fix; any other error is returned.
    pub(super) fn open_checkpoint(&mut self, path: &Path) -> Result<()> {
        let format = import::sniff(path)?;
        let opts = self.settings.config.import.clone();
        let form = ImportForm::from_options(&opts);
        let input = match format {
            ModelFormat::Shears => [1, 1, 1], // the checkpoint says its input
            ModelFormat::StateDict | ModelFormat::Onnx => self.data_input(path)?,
        };
        let opened = match import::open(path, &opts, input, &candle_core::Device::Cpu) {
            Ok(o) => o,
            Err(e) if format == ModelFormat::StateDict => {
                // A file that is no state dict at all is refused; one whose
                // layers cannot be built yet goes to the import form, which
                // asks for layers only where no family has these names.
                let sd = import::StateDict::read(path)?;
                let asks = FormAsks {
                    layers: opts.layers.is_some()
                        || import::recognise(&sd, input, opts.heads).is_none(),
                    heads: sd.has("cls_token") || sd.has("class_token"),
                };
                self.checkpoint = Some(CheckpointInfo {
                    path: path.to_path_buf(),
                    format: Some(format),
                    summary: "not opened yet".into(),
                    problem: Some(e.to_string()),
                    form,
                    asks,
                    ..Default::default()
                });
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let asks = FormAsks {
            layers: opened.name == "sequential",
            heads: format == ModelFormat::StateDict && opened.name == "vit",
        };
        let net = &opened.net;
        let sp = crate::prune::sparsity(net)?;
        self.checkpoint = Some(CheckpointInfo {
            path: path.to_path_buf(),
            format: Some(format),
            summary: format!(
                "{}, input {:?}, {} classes, {} parameters, {:.1}% sparse",
                opened.name,
                net.arch.input,
                net.arch.num_classes,
                net.arch.num_params(),
                sp.global * 100.0
            ),
            problem: None,
            notes: opened.notes.clone(),
            rows: layer_rows(&net.arch),
            preprocess: preprocess_text(&net.arch),
            form,
            asks,
        });
        Ok(())
    }

    /// Opens the base model again with what the import form says.
    pub(super) fn apply_import(&mut self) -> Result<()> {
        let Some(info) = &self.checkpoint else {
            return Ok(());
        };
        let (path, opts) = (info.path.clone(), info.form.options()?);
        self.settings.config.import = opts;
        self.open_checkpoint(&path)?;
        match self.checkpoint.as_ref().and_then(|c| c.problem.clone()) {
            Some(p) => Err(Error::Other(p)),
            None => {
                self.info(format!("model opened: {}", path.display()));
                Ok(())
            }
        }
    }

    /// Input shape `[c, h, w]` of the experiment's data as it will reach the
    /// model in `path` (loaded once per dataset and preparation, to build a
    /// state dict's layers for it).
    pub(super) fn data_input(&mut self, path: &Path) -> Result<[usize; 3]> {
        self.data_input_and_classes(Some(path))
            .map(|(shape, _)| shape)
    }

    /// The experiment data's input shape and number of classes, as the
    /// model in `path` (or a built-in one, `None`) would see them; the data
    /// is loaded once per dataset and preparation.
    fn data_input_and_classes(&mut self, path: Option<&Path>) -> Result<([usize; 3], usize)> {
        let cfg = &self.settings.config;
        let prep = crate::model::import::input_prep(path, &cfg.import);
        let key = (cfg.data.clone(), prep);
        if let Some((k, found)) = &self.data_shape {
            if *k == key {
                return Ok(*found);
            }
        }
        let (train, _) = cfg.data.load_for(&prep)?;
        let found = (
            [train.channels, train.height, train.width],
            train.num_classes,
        );
        self.data_shape = Some((key, found));
        Ok(found)
    }

    /// The Model view of the architecture Setup names, built for the
    /// experiment's data (rebuilt when either changes); `None` where it
    /// cannot be built (the line on top of Setup says why).
    pub(super) fn builtin_view(&mut self) -> Option<CheckpointInfo> {
        let cfg = &self.settings.config;
        let key = serde_json::to_string(&(&cfg.model, &cfg.data, &cfg.import)).ok()?;
        if let Some((k, info)) = &self.builtin {
            if *k == key {
                return Some(info.clone());
            }
        }
        let (input, classes) = self.data_input_and_classes(None).ok()?;
        let spec = self.settings.config.model.clone();
        let arch = spec.build(input, classes).ok()?;
        let info = CheckpointInfo {
            path: format!("built-in {} (Setup's architecture)", spec.name()).into(),
            format: None,
            summary: format!(
                "{}, input {input:?}, {classes} classes, {} parameters, {} MACs per sample; \
                 trained from scratch by the comparison",
                spec.name(),
                arch.num_params(),
                arch.macs()
            ),
            problem: None,
            notes: Vec::new(),
            rows: layer_rows(&arch),
            preprocess: preprocess_text(&arch),
            form: ImportForm::default(),
            asks: FormAsks::default(),
        };
        self.builtin = Some((key, info.clone()));
        Some(info)
    }

    /// Probes a new plugin library in a child process (when the app has a
    /// `shears` executable to run), then loads it.
    pub(super) fn start_probe(&mut self, path: &Path) {
        match self.launch.probe_exe.clone() {
            Some(exe) => {
                let (tx, rx) = channel();
                let path = path.to_path_buf();
                std::thread::spawn(move || {
                    let out = crate::plugins::probe::check_in_child(&exe, &path);
                    let _ = tx.send((path, out));
                });
                self.probes.push(rx);
                self.settings.tab = Tab::Plugins;
            }
            None => self.add_library(path),
        }
    }

    pub(super) fn add_library(&mut self, path: &Path) {
        self.settings.tab = Tab::Plugins;
        if self.settings.plugin_libraries.iter().any(|l| l == path) {
            self.info(format!("{} is already loaded", path.display()));
            return;
        }
        match self.registry.add_library(path) {
            Ok(n) => {
                self.settings.plugin_libraries.push(path.to_path_buf());
                self.info(format!("{}: {n} plugin(s) loaded", path.display()));
            }
            Err(e) => self.error(format!("plugin not loaded: {e}")),
        }
    }

    /// The folder a dialog for `purpose` starts in: the runs folder for
    /// results and exports, else the last folder a dialog chose (the home
    /// folder at first), never "Recent".
    pub(super) fn dialog_start(&self, purpose: &DialogPurpose) -> Option<PathBuf> {
        let runs = matches!(
            purpose,
            DialogPurpose::Open(FileKind::Results)
                | DialogPurpose::RunsFolder
                | DialogPurpose::OutputFolder
        );
        let out = Some(self.settings.out_dir.clone()).filter(|d| runs && d.is_dir());
        out.or_else(|| self.settings.last_dir.clone().filter(|d| d.is_dir()))
            .or_else(dirs::home_dir)
    }

    /// Carries out a dialog's answer; the folder is remembered for the next
    /// dialog, an error goes to the notices.
    pub(super) fn answer(&mut self, purpose: DialogPurpose, path: &Path) {
        let folder = if path.is_dir() {
            Some(path.to_path_buf())
        } else {
            path.parent().map(Path::to_path_buf)
        };
        self.settings.last_dir = folder.filter(|f| !f.as_os_str().is_empty());
        if let Err(e) = self.answer_dialog(purpose, path) {
            self.error(e);
        }
    }

    /// Carries out what a native dialog was opened for, with the path the
    /// user chose (open, save config, export CSV / JSON, save a model or a
    /// chart as PNG or SVG, choose the output folder).
    pub fn answer_dialog(&mut self, purpose: DialogPurpose, path: &Path) -> Result<()> {
        match purpose {
            DialogPurpose::Open(_) => self.open_path(path)?,
            DialogPurpose::OutputFolder => {
                self.settings.out_dir = path.to_path_buf();
                self.refresh_runs();
            }
            DialogPurpose::RunsFolder => {
                if !self.settings.run_folders.iter().any(|f| f == path) {
                    self.settings.run_folders.push(path.to_path_buf());
                }
                self.refresh_runs();
            }
            DialogPurpose::SaveConfig => {
                let text = toml::to_string(&self.settings.config)?;
                write_atomic(path, text.as_bytes())?;
                self.settings.remember(FileKind::Config, path);
                self.info(format!("config saved to {}", path.display()));
            }
            DialogPurpose::ExportCsv(id) | DialogPurpose::ExportJson(id) => {
                let r = &self
                    .results
                    .iter()
                    .find(|l| l.id == id)
                    .ok_or_else(|| {
                        Error::Other(format!(
                            "{}: not exported, those results were closed",
                            path.display()
                        ))
                    })?
                    .results;
                let bytes = if matches!(purpose, DialogPurpose::ExportCsv(_)) {
                    crate::experiment::results::to_csv(r).into_bytes()
                } else {
                    serde_json::to_vec_pretty(r)?
                };
                write_atomic(path, &bytes)?;
                self.info(format!("exported {}", path.display()));
            }
            DialogPurpose::SaveModel(src, ExportFormat::Shears) => {
                let bytes = std::fs::read(&src).map_err(|e| Error::io(&src, e))?;
                write_atomic(path, &bytes)?;
                self.info(format!("model saved to {}", path.display()));
            }
            DialogPurpose::SaveModel(src, format) => {
                let net = crate::model::checkpoint::load(&src, &candle_core::Device::Cpu)?;
                crate::model::export::save(&net, format, &serde_json::Value::Null, path)?;
                self.info(format!(
                    "model saved to {} ({})",
                    path.display(),
                    format.label()
                ));
            }
            DialogPurpose::SavePlot(id) => self.save_chart(id, path),
            DialogPurpose::SaveSvg(id) => {
                let charts = compare_charts(&shown_sets(&self.results), &self.settings.charts);
                let chart = charts.get(&id).ok_or_else(|| {
                    Error::Other(format!(
                        "{}: not saved, the chart `{id}` is not shown",
                        path.display()
                    ))
                })?;
                write_atomic(path, crate::report::svg::render(chart).as_bytes())?;
                self.info(format!("chart saved to {}", path.display()));
            }
        }
        Ok(())
    }
}
