//! The whole life of each training of a comparison, from its events: every
//! epoch's training and validation accuracy, the test accuracy at each step,
//! where each prune happened and the sparsity it reached (a stepped line:
//! the saw-tooth that iterative pruning draws). What the Run view plots.

use std::collections::HashMap;

use crate::experiment::results::DENSE_CONTROL;
use crate::experiment::{Event, RunResult, Status};
use crate::train::Metrics;

/// What a trace is the training of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TraceKind {
    /// A seed's dense base model.
    Base,
    /// A strategy at a target sparsity.
    Run,
    /// A dense control (the base fine-tuned without pruning).
    Control,
}

/// One training: accuracies in % over its epochs (x = epochs since it
/// started, 0 = the model it started from).
#[derive(Debug, Clone, PartialEq)]
pub struct Trace {
    /// What it is, e.g. `one-shot @ 90.0% (seed 0)`.
    pub title: String,
    /// Base, run or control.
    pub kind: TraceKind,
    /// Seed.
    pub seed: u64,
    /// Training accuracy after each epoch: `[x, %]`.
    pub train: Vec<[f64; 2]>,
    /// Validation accuracy: of the model it started from (x = 0), right
    /// after each prune, and after each epoch.
    pub val: Vec<[f64; 2]>,
    /// Test accuracy after each step (prune and its fine-tuning).
    pub test: Vec<[f64; 2]>,
    /// Sparsity in %, a stepped line: flat while training, a vertical step
    /// at each prune.
    pub sparsity: Vec<[f64; 2]>,
    /// x of each prune, in order.
    pub prunes: Vec<f64>,
    /// Epochs trained so far.
    pub epochs: u32,
    /// How it ended (`None` while it runs): the final line of its outcome.
    pub outcome: Option<String>,
    /// Whether it failed.
    pub failed: bool,
    /// A run's strategy label and target sparsity (as bits): which events
    /// are its when several runs train at once.
    run: Option<(String, u32)>,
}

impl Trace {
    fn new(title: String, kind: TraceKind, seed: u64) -> Self {
        Self {
            title,
            kind,
            seed,
            train: vec![],
            val: vec![],
            test: vec![],
            sparsity: vec![],
            prunes: vec![],
            epochs: 0,
            outcome: None,
            failed: false,
            run: None,
        }
    }

    /// Whether it has finished.
    pub fn done(&self) -> bool {
        self.outcome.is_some()
    }

    fn epoch(&mut self, train: &Metrics, val: &Metrics) {
        self.epochs += 1;
        let x = f64::from(self.epochs);
        self.train.push([x, pct(train.acc)]);
        self.val.push([x, pct(val.acc)]);
        if let Some(&[_, s]) = self.sparsity.last() {
            self.sparsity.push([x, s]);
        }
    }

    /// Starts the validation curve at the model the training starts from.
    fn start_from(&mut self, val: Option<f32>) {
        if let Some(v) = val {
            self.val.push([0.0, pct(v)]);
        }
    }

    fn pruned(&mut self, reached: f32) {
        let x = f64::from(self.epochs);
        if let Some(&[_, s]) = self.sparsity.last() {
            self.sparsity.push([x, s]);
        }
        self.sparsity.push([x, pct(reached)]);
        self.prunes.push(x);
    }
}

fn pct(v: f32) -> f64 {
    f64::from(v) * 100.0
}

/// Most traces kept (the oldest go first).
pub const MAX_TRACES: usize = 1000;

/// Every training of a comparison so far, oldest first.
#[derive(Debug, Clone, Default)]
pub struct Traces {
    /// The traces.
    pub all: Vec<Trace>,
    /// Validation accuracy of each seed's base model (where runs start).
    base_val: HashMap<u64, f32>,
}

impl Traces {
    /// The trace being trained now (the last one, while it runs).
    pub fn current(&self) -> Option<&Trace> {
        self.all.last().filter(|t| !t.done())
    }

    fn start(&mut self, t: Trace) {
        self.all.push(t);
        let extra = self.all.len().saturating_sub(MAX_TRACES);
        self.all.drain(..extra);
    }

    fn open(&mut self) -> Option<&mut Trace> {
        self.all.last_mut().filter(|t| !t.done())
    }

    /// The unfinished training of `kind` and `seed` (base or control).
    fn open_of(&mut self, kind: TraceKind, seed: u64) -> Option<&mut Trace> {
        self.all
            .iter_mut()
            .rev()
            .find(|t| !t.done() && t.kind == kind && t.seed == seed)
    }

    /// The unfinished run of `strategy` at `target` with `seed`; for events
    /// of older versions, which do not name their run, the one unfinished
    /// run if there is one.
    fn open_run(&mut self, strategy: &str, seed: u64, target: f32) -> Option<&mut Trace> {
        let key = (strategy.to_string(), target.to_bits());
        let exact = self
            .all
            .iter()
            .rposition(|t| !t.done() && t.seed == seed && t.run.as_ref() == Some(&key));
        let open: Vec<usize> = (0..self.all.len())
            .filter(|&i| !self.all[i].done() && self.all[i].kind == TraceKind::Run)
            .collect();
        let at = exact.or(if open.len() == 1 { Some(open[0]) } else { None })?;
        self.all.get_mut(at)
    }

    /// Takes one event into account.
    pub fn on_event(&mut self, e: &Event) {
        match e {
            Event::Epoch {
                phase,
                seed,
                target,
                epoch,
                train,
                val,
                ..
            } => {
                if *epoch == 1 && (phase == "base" || phase == DENSE_CONTROL) {
                    // A control training ends where the next one starts.
                    self.close_control();
                    let (title, kind) = if phase == "base" {
                        (format!("base model (seed {seed})"), TraceKind::Base)
                    } else {
                        (format!("dense control (seed {seed})"), TraceKind::Control)
                    };
                    let mut t = Trace::new(title, kind, *seed);
                    if kind == TraceKind::Control {
                        t.start_from(self.base_val.get(seed).copied());
                    }
                    self.start(t);
                }
                let open = match phase.as_str() {
                    "base" => self.open_of(TraceKind::Base, *seed),
                    DENSE_CONTROL => self.open_of(TraceKind::Control, *seed),
                    strategy => self.open_run(strategy, *seed, *target),
                };
                if let Some(t) = open {
                    t.epoch(train, val);
                }
            }
            Event::BaseReady(b) => {
                self.base_val.insert(b.seed, b.val.acc);
                if let Some(t) = self.open_of(TraceKind::Base, b.seed) {
                    t.outcome = Some(format!("test {:.2}%", pct(b.test.acc)));
                }
            }
            Event::RunStarted {
                strategy,
                target,
                seed,
                ..
            } => {
                self.close_control();
                let mut t = Trace::new(
                    format!("{strategy} @ {:.1}% (seed {seed})", pct(*target)),
                    TraceKind::Run,
                    *seed,
                );
                t.run = Some((strategy.clone(), target.to_bits()));
                t.start_from(self.base_val.get(seed).copied());
                self.start(t);
            }
            Event::Pruned {
                strategy,
                seed,
                run_target,
                reached,
                ..
            } => {
                if let Some(t) = self.open_run(strategy, *seed, *run_target) {
                    t.pruned(*reached);
                }
            }
            Event::Step {
                strategy,
                seed,
                run_target,
                record,
            } => {
                if let Some(t) = self.open_run(strategy, *seed, *run_target) {
                    let step = record.step as usize;
                    let x = t.prunes.get(step.wrapping_sub(1)).copied();
                    if let (Some(x), Some(p)) = (x, record.pruned) {
                        // Right after the prune, before fine-tuning: the drop.
                        let at = t.val.partition_point(|q| q[0] <= x);
                        t.val.insert(at, [x, pct(p.val.acc)]);
                    }
                    t.test.push([f64::from(t.epochs), pct(record.test.acc)]);
                }
            }
            Event::RunFinished(r) => {
                if let Some(t) = self.open_run(&r.strategy, r.seed, r.target) {
                    finish(t, r);
                }
            }
            Event::ControlFinished(r) => {
                if let Some(t) = self.open().filter(|t| t.kind == TraceKind::Control) {
                    if let Some(s) = r.last() {
                        if t.test.is_empty() {
                            t.test.push([f64::from(t.epochs), pct(s.test.acc)]);
                        }
                    }
                }
            }
            Event::Finished { .. } => {
                self.close_control();
                for t in self.all.iter_mut().filter(|t| !t.done()) {
                    t.outcome = Some("stopped".into());
                    t.failed = true;
                }
            }
            Event::Started { .. } | Event::Batch { .. } => {}
        }
    }

    fn close_control(&mut self) {
        if let Some(t) = self.open().filter(|t| t.kind == TraceKind::Control) {
            t.outcome = Some(match t.test.last() {
                Some(&[_, acc]) => format!("test {acc:.2}%"),
                None => format!("{} epochs", t.epochs),
            });
        }
    }
}

fn finish(t: &mut Trace, r: &RunResult) {
    match &r.status {
        Status::Complete => {
            t.outcome = Some(match r.last() {
                Some(s) => format!("test {:.2}%", pct(s.test.acc)),
                None => "no step".into(),
            })
        }
        Status::Cancelled => {
            t.outcome = Some("cancelled".into());
            t.failed = true;
        }
        Status::Failed(e) => {
            t.outcome = Some(format!("failed: {e}"));
            t.failed = true;
        }
    }
}
