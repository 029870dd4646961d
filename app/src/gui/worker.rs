//! The worker that owns a running comparison: a thread running the engine's
//! [`run_comparison`] and writing the output folder, talking to the UI only
//! by messages. [`Progress`] turns its events into what the Run view shows.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::experiment::{
    output::Recorder, run_comparison, ComparisonResults, Context, Event, ExperimentConfig,
    OutputDir, Status,
};
use crate::plugins::Registry;
use crate::report::text::{base_line, pruned_line, run_line, started_line};

/// What the worker tells the UI.
#[derive(Debug)]
pub enum Message {
    /// Something happened (as in events.jsonl).
    Event(Event),
    /// The results so far (after a base model, a run, or the end).
    Results(Box<ComparisonResults>),
    /// The comparison ended: its final results, or the setup error that
    /// stopped it before it began (bad config, data, model or device).
    Done(Result<Box<ComparisonResults>, String>),
}

/// Where the worker finds plugins (it builds its own registry: loaded
/// libraries are not shared across threads).
#[derive(Debug, Clone, Default)]
pub struct PluginSources {
    /// Extra plugin folders.
    pub dirs: Vec<PathBuf>,
    /// Libraries added by the user.
    pub libraries: Vec<PathBuf>,
}

impl PluginSources {
    /// Built-ins, the default folders, `dirs` and `libraries`.
    pub fn registry(&self) -> Registry {
        let mut r = Registry::discover(&self.dirs);
        for lib in &self.libraries {
            let _ = r.add_library(lib);
        }
        r
    }
}

/// A comparison running on its own thread.
pub struct RunHandle {
    rx: Receiver<Message>,
    cancel: Arc<AtomicBool>,
    /// The output folder.
    pub out_dir: PathBuf,
    finished: bool,
}

impl RunHandle {
    /// Starts `cfg` writing to `out_dir`; `wake` is called after every
    /// message (the UI passes a repaint request).
    pub fn start(
        cfg: ExperimentConfig,
        out_dir: PathBuf,
        plugins: PluginSources,
        wake: impl Fn() + Send + 'static,
    ) -> Self {
        let (tx, rx) = channel();
        let cancel = Arc::new(AtomicBool::new(false));
        let stop = cancel.clone();
        let dir = out_dir.clone();
        std::thread::Builder::new()
            .name("shears-worker".into())
            .spawn(move || {
                let send = |m: Message| {
                    let _ = tx.send(m);
                    wake();
                };
                let outcome = (|| {
                    let registry = plugins.registry();
                    cfg.validate(&registry)?;
                    let output = OutputDir::new(&dir, &cfg)?;
                    let mut recorder = Recorder::new(output, &stop);
                    let mut sink = |e: &Event, r: &ComparisonResults| {
                        recorder.record(e, r);
                        send(Message::Event(e.clone()));
                        if matches!(
                            e,
                            Event::BaseReady(_) | Event::RunFinished(_) | Event::Finished { .. }
                        ) {
                            send(Message::Results(Box::new(r.clone())));
                        }
                    };
                    let ctx = Context {
                        registry: &registry,
                        cancel: &stop,
                        out_dir: Some(&dir),
                    };
                    let mut results = run_comparison(&cfg, &ctx, &mut sink)?;
                    recorder.finish(&mut results);
                    Ok::<_, crate::error::Error>(results)
                })();
                send(Message::Done(
                    outcome.map(Box::new).map_err(|e| e.to_string()),
                ));
            })
            .expect("the OS can start a thread");
        Self {
            rx,
            cancel,
            out_dir,
            finished: false,
        }
    }

    /// Asks the comparison to stop after the current batch; finished runs are kept.
    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::SeqCst);
    }

    /// Whether cancelling was asked for.
    pub fn cancelling(&self) -> bool {
        self.cancel.load(Ordering::SeqCst)
    }

    /// Whether the worker has sent its last message.
    pub fn finished(&self) -> bool {
        self.finished
    }

    /// The messages that arrived since the last call.
    pub fn poll(&mut self) -> Vec<Message> {
        let mut out = Vec::new();
        loop {
            match self.rx.try_recv() {
                Ok(m) => {
                    if matches!(m, Message::Done(_)) {
                        self.finished = true;
                    }
                    out.push(m);
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    if !self.finished {
                        self.finished = true;
                        out.push(Message::Done(Err(
                            "the worker thread stopped unexpectedly (a bug; runs finished before it are in the output folder)".into()
                        )));
                    }
                    break;
                }
            }
        }
        out
    }
}

/// A progress bar's state.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Bar {
    /// Done so far.
    pub done: f32,
    /// Total.
    pub total: f32,
}

impl Bar {
    /// Fraction done in `[0, 1]`.
    pub fn fraction(self) -> f32 {
        if self.total > 0.0 {
            (self.done / self.total).clamp(0.0, 1.0)
        } else {
            0.0
        }
    }
}

/// Largest number of log lines kept.
pub const MAX_LOG: usize = 2000;

/// What the Run view shows, built from the worker's events.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    /// Runs (plus base models) done out of all.
    pub overall: Bar,
    /// Epochs of the current strategy run out of its expected epochs.
    pub strategy: Bar,
    /// Batches are not reported: the current phase's epoch out of its limit.
    pub epoch: Bar,
    /// What is running now.
    pub current: String,
    /// Validation accuracy after each epoch of the current phase: `(epoch, acc)`.
    pub live_val: Vec<[f64; 2]>,
    /// Training accuracy after each epoch of the current phase.
    pub live_train: Vec<[f64; 2]>,
    /// Human-readable log lines.
    pub log: Vec<String>,
    started: Option<Instant>,
    seeds: usize,
    runs_total: usize,
    runs_done: usize,
    bases_done: usize,
    epochs_per_run: u32,
    run_epochs: u32,
    /// Set when the comparison ended.
    pub ended: Option<Status>,
}

impl Progress {
    /// Progress of a comparison of `cfg` that starts now.
    pub fn new(cfg: &ExperimentConfig) -> Self {
        Self {
            started: Some(Instant::now()),
            seeds: cfg.seeds.len(),
            runs_total: cfg.seeds.len() * cfg.strategies.len() * cfg.sparsities.len(),
            epochs_per_run: cfg.finetune.epochs.max(1),
            overall: Bar {
                done: 0.0,
                total: (cfg.seeds.len() * (1 + cfg.strategies.len() * cfg.sparsities.len())) as f32,
            },
            current: "starting".into(),
            ..Default::default()
        }
    }

    /// Time since the start.
    pub fn elapsed(&self) -> Duration {
        self.started.map(|t| t.elapsed()).unwrap_or_default()
    }

    /// Estimated time left, from the pace so far (`None` until something finished).
    pub fn eta(&self) -> Option<Duration> {
        let f = self.overall.fraction();
        if self.ended.is_some() || f <= 0.0 {
            return None;
        }
        Some(self.elapsed().mul_f32((1.0 - f) / f))
    }

    fn push_log(&mut self, line: String) {
        self.log.push(line);
        if self.log.len() > MAX_LOG {
            let extra = self.log.len() - MAX_LOG;
            self.log.drain(..extra);
        }
    }

    fn update_overall(&mut self, within_phase: f32) {
        self.overall.done = (self.bases_done + self.runs_done) as f32 + within_phase;
    }

    /// Takes one event into account.
    pub fn on_event(&mut self, e: &Event) {
        match e {
            Event::Started {
                runs,
                device,
                data,
                model,
            } => {
                self.runs_total = *runs;
                self.overall.total = (self.seeds + runs) as f32;
                self.push_log(started_line(device, data, model));
            }
            Event::Epoch {
                phase,
                target,
                seed,
                epoch,
                of,
                train,
                val,
                ..
            } => {
                if *epoch == 1 || self.live_val.is_empty() {
                    self.live_val.clear();
                    self.live_train.clear();
                }
                self.live_val.push([f64::from(*epoch), f64::from(val.acc)]);
                self.live_train
                    .push([f64::from(*epoch), f64::from(train.acc)]);
                self.epoch = Bar {
                    done: *epoch as f32,
                    total: *of as f32,
                };
                let within = self.epoch.fraction();
                if phase == "base" {
                    self.current = format!("base model, seed {seed}");
                    self.update_overall(within);
                } else {
                    self.run_epochs += 1;
                    self.strategy = Bar {
                        done: self.run_epochs as f32,
                        total: self.epochs_per_run.max(self.run_epochs) as f32,
                    };
                    self.current = format!("{phase} @ {:.1}% (seed {seed})", target * 100.0);
                    self.update_overall(self.strategy.fraction().min(0.99));
                }
                self.push_log(format!(
                    "{}: epoch {epoch}/{of}: train loss {:.4}, val acc {:.2}%",
                    self.current,
                    train.loss,
                    val.acc * 100.0
                ));
            }
            Event::BaseReady(b) => {
                self.bases_done += 1;
                self.update_overall(0.0);
                self.push_log(base_line(b));
            }
            Event::RunStarted {
                index,
                strategy,
                target,
                seed,
            } => {
                self.run_epochs = 0;
                self.live_val.clear();
                self.live_train.clear();
                self.strategy = Bar {
                    done: 0.0,
                    total: self.epochs_per_run as f32,
                };
                self.current = format!("{strategy} @ {:.1}% (seed {seed})", target * 100.0);
                self.push_log(format!(
                    "run {}/{}: {}",
                    index + 1,
                    self.runs_total,
                    self.current
                ));
            }
            e @ Event::Pruned { .. } => {
                if let Some(line) = pruned_line(e) {
                    self.push_log(line);
                }
            }
            Event::Step { strategy, record } => self.push_log(format!(
                "{strategy}: step {} done: sparsity {:.2}%, test acc {:.2}%, {} epochs",
                record.step,
                record.sparsity.global * 100.0,
                record.test.acc * 100.0,
                record.epochs
            )),
            Event::RunFinished(r) => {
                self.runs_done += 1;
                self.strategy.done = self.strategy.total;
                self.update_overall(0.0);
                self.push_log(run_line(r));
            }
            Event::Finished { status } => {
                self.ended = Some(status.clone());
                if *status == Status::Complete {
                    self.overall.done = self.overall.total;
                }
                self.current = match status {
                    Status::Complete => "finished".into(),
                    Status::Cancelled => "cancelled (finished runs kept)".into(),
                    Status::Failed(e) => format!("failed: {e}"),
                };
                let line = format!("comparison {}", self.current);
                self.push_log(line);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::Metrics;

    fn epoch(phase: &str, epoch: u32, of: u32) -> Event {
        Event::Epoch {
            phase: phase.into(),
            target: 0.5,
            seed: 0,
            epoch,
            of,
            train: Metrics::default(),
            val: Metrics {
                loss: 0.1,
                acc: 0.5,
            },
            lr: 0.1,
        }
    }

    #[test]
    fn progress_follows_events() {
        let mut cfg = ExperimentConfig::demo();
        cfg.sparsities = vec![0.5, 0.9];
        let mut p = Progress::new(&cfg);
        // 1 base + 3 strategies x 2 targets.
        assert_eq!(p.overall.total, 7.0);
        p.on_event(&epoch("base", 2, 4));
        assert!((p.overall.done - 0.5).abs() < 1e-6);
        assert_eq!(p.live_val.len(), 1);
        assert_eq!(p.epoch.fraction(), 0.5);
        p.on_event(&Event::RunStarted {
            index: 0,
            strategy: "one-shot".into(),
            target: 0.5,
            seed: 0,
        });
        assert!(p.current.contains("one-shot"));
        p.on_event(&epoch("one-shot", 1, 2));
        assert_eq!(p.live_val.len(), 1, "a new phase starts a new curve");
        assert!(p.eta().is_some());
        p.on_event(&Event::Finished {
            status: Status::Cancelled,
        });
        assert!(p.current.contains("cancelled"));
        assert!(p.eta().is_none());
        assert!(p.log.last().unwrap().contains("cancelled"));
    }
}
