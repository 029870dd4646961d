//! `shears compare`: runs a comparison with progress on the terminal, events
//! appended to DIR/events.jsonl, results saved after every run.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::{CompareArgs, EXIT_CANCELLED};
use crate::data::DatasetSpec;
use crate::error::{Error, Result};
use crate::experiment::output::{OutputDir, Recorder, RESULTS_JSON};
use crate::experiment::{
    run_comparison, ComparisonResults, Context, Event, ExperimentConfig, Status,
};
use crate::model::ModelSpec;
use crate::plugins::Registry;
use crate::report::text::{base_line, run_line, started_line};
use crate::report::Progress;

/// Applies the command-line overrides to a config.
pub(super) fn apply_overrides(cfg: &mut ExperimentConfig, a: &CompareArgs) -> Result<()> {
    if let Some(path) = &a.data.data {
        cfg.data = DatasetSpec::detect(path)?;
    }
    if let Some(d) = &a.data.device {
        cfg.device = d.clone();
    }
    if let Some(m) = &a.model {
        cfg.model = ModelSpec::from_name(m)?;
    }
    if let Some(e) = a.epochs {
        cfg.train.epochs = e;
    }
    if let Some(e) = a.finetune_epochs {
        cfg.finetune.epochs = e;
    }
    if let Some(s) = &a.sparsities {
        cfg.sparsities = s.clone();
    }
    if let Some(s) = &a.seeds {
        cfg.seeds = s.clone();
    }
    if let Some(b) = &a.base {
        cfg.base_checkpoint = Some(b.clone());
    }
    let import = a.import.options();
    if import.layers.is_some() {
        cfg.import.layers = import.layers;
    }
    if import.mean.is_some() || import.std.is_some() {
        (cfg.import.mean, cfg.import.std) = (import.mean, import.std);
    }
    if import.resize.is_some() {
        cfg.import.resize = import.resize;
    }
    if let Some(n) = a.finetune_budget {
        cfg.finetune_budget = Some(n);
    }
    if a.no_dense_control {
        cfg.dense_control = false;
    }
    if let Some(n) = a.jobs {
        cfg.jobs = n;
    }
    if a.no_latency {
        cfg.latency = false;
    }
    if let Some(n) = a.train_samples {
        match &mut cfg.data {
            DatasetSpec::Embedded { train, .. } => *train = n,
            _ => {
                return Err(Error::config(
                    "--train-samples",
                    "only applies to the embedded dataset",
                ))
            }
        }
    }
    Ok(())
}

/// The terminal's progress bars, drawn from the shared progress reducer:
/// the whole comparison, then one line per training in flight.
struct TerminalBars {
    bars: MultiProgress,
    runs: ProgressBar,
    running: Vec<ProgressBar>,
    state: Progress,
}

impl TerminalBars {
    fn new(cfg: &ExperimentConfig, quiet: bool) -> Self {
        let bars = MultiProgress::new();
        if quiet {
            bars.set_draw_target(ProgressDrawTarget::hidden());
        }
        let runs = bars.add(ProgressBar::new(0));
        runs.set_style(
            ProgressStyle::with_template(
                "{prefix:>14} [{bar:30}] {percent:>3}%  {elapsed} elapsed  {msg}",
            )
            .expect("static template")
            .progress_chars("=> "),
        );
        runs.set_prefix("overall");
        runs.enable_steady_tick(Duration::from_millis(500));
        Self {
            bars,
            runs,
            running: Vec::new(),
            state: Progress::new(cfg),
        }
    }

    /// A bar for one training in flight.
    fn add_line(&mut self) {
        let bar = self.bars.add(ProgressBar::new(0));
        bar.set_style(
            ProgressStyle::with_template("{prefix:>14} [{bar:30}] {msg}")
                .expect("static template")
                .progress_chars("=> "),
        );
        self.running.push(bar);
    }

    fn on(&mut self, e: &Event) {
        self.state.on_event(e);
        let p = &self.state;
        self.runs.set_length(1000);
        self.runs
            .set_position((p.overall.fraction() * 1000.0) as u64);
        let eta = p
            .eta()
            .map(|d| format!(", ETA {}", crate::report::fmt_duration(d)))
            .unwrap_or_default();
        let at_once = match p.running.len() {
            0 | 1 => String::new(),
            n => format!(", {n} at once"),
        };
        self.runs.set_message(format!(
            "{}/{} runs{at_once}{eta}",
            p.runs_done, p.runs_total
        ));
        let lines = p.running.len().max(1);
        while self.running.len() < lines {
            self.add_line();
        }
        while self.running.len() > lines {
            if let Some(bar) = self.running.pop() {
                bar.finish_and_clear();
                self.bars.remove(&bar);
            }
        }
        let p = &self.state;
        for (bar, r) in self.running.iter().zip(&p.running) {
            bar.set_length(r.epoch.total.max(1.0) as u64);
            bar.set_position(r.epoch.done as u64);
            let (epoch, of) = r.phase_epoch;
            bar.set_prefix(if of > 0 {
                format!("epoch {epoch}/{of}")
            } else {
                "phase".to_string()
            });
            bar.set_message(format!("{}  {}", r.label, r.note));
        }
        if p.running.is_empty() {
            if let Some(bar) = self.running.first() {
                bar.set_prefix("phase");
                bar.set_message(p.current.clone());
            }
        }
        match e {
            Event::Started {
                device,
                data,
                model,
                ..
            } => {
                let _ = self.bars.println(started_line(device, data, model));
            }
            Event::BaseReady(b) => {
                let _ = self.bars.println(base_line(b));
            }
            Event::RunFinished(r) | Event::ControlFinished(r) => {
                let _ = self.bars.println(run_line(r));
            }
            _ => {}
        }
    }

    fn finish(&self) {
        for bar in &self.running {
            bar.finish_and_clear();
        }
        self.runs.finish_and_clear();
    }
}

/// Prints the tables of `results` (saved in `file`) and returns how the
/// comparison ended (see [`outcome_line`](crate::report::outcome_line), for
/// results in `dir`).
pub(super) fn print_tables(results: &ComparisonResults, file: &Path, dir: &Path) -> (bool, String) {
    println!("{}", crate::report::summary_table(results));
    println!("results: {}", file.display());
    crate::report::outcome_line(results, dir)
}

pub(super) fn compare(a: CompareArgs, registry: &Registry) -> Result<i32> {
    let mut cfg = match &a.config {
        Some(p) => ExperimentConfig::load(p)?,
        None => ExperimentConfig::demo(),
    };
    apply_overrides(&mut cfg, &a)?;
    cfg.validate(registry)?;
    let out = a.out.as_path();
    let output = OutputDir::new(out, &cfg)?;
    let cancel = Arc::new(AtomicBool::new(false));
    {
        let cancel = cancel.clone();
        // A second handler cannot be installed in the same process (tests call
        // this repeatedly); Ctrl-C then falls back to the default behaviour.
        let _ = ctrlc::set_handler(move || {
            if cancel.swap(true, Ordering::SeqCst) {
                std::process::exit(EXIT_CANCELLED);
            }
            eprintln!("\nstopping after the current batch (Ctrl-C again to quit at once); finished runs are kept");
        });
    }
    let mut progress = TerminalBars::new(&cfg, a.quiet);
    let mut recorder = Recorder::new(output, &cancel);
    let mut sink = |e: &Event, r: &ComparisonResults| {
        progress.on(e);
        recorder.record(e, r);
    };
    let ctx = Context {
        registry,
        cancel: &cancel,
        out_dir: Some(out),
    };
    let result = run_comparison(&cfg, &ctx, &mut sink);
    progress.finish();
    let mut results = result?;
    if let Some(e) = recorder.finish(&mut results) {
        return Err(e);
    }
    let (is_error, line) = print_tables(&results, &out.join(RESULTS_JSON), out);
    let code = match results.status {
        Some(Status::Cancelled) => {
            eprintln!("{line}");
            EXIT_CANCELLED
        }
        _ if is_error => {
            eprintln!("error: {line}");
            1
        }
        _ => 0,
    };
    // The results are saved by now: charts that cannot be written are an
    // error of their own.
    a.chart.write(&results)?;
    Ok(code)
}
