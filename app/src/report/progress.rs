//! Progress of a running comparison, reduced from its events: bars (overall
//! in epochs, the current run, the current epoch's batches), the elapsed time
//! and an estimate of what is left from the measured time per epoch, every
//! training's whole curve ([`Traces`]) and the log. Pure state, drawn by
//! the app's Run view and the command line's progress bars alike.

use std::time::{Duration, Instant};

use super::text::{base_line, pruned_line, run_line, started_line};
use super::trace::Traces;
use crate::experiment::results::DENSE_CONTROL;
use crate::experiment::{Event, ExperimentConfig, Status};

/// `3m07s`, or `1h02m` from an hour on.
pub fn fmt_duration(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    } else {
        format!("{}m{:02}s", s / 60, s % 60)
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

/// One training in flight: a seed's base model, a run or a dense control.
#[derive(Debug, Clone, Default)]
pub struct Running {
    /// What it is: `one-shot @ 90.0% (seed 0)`, `base model, seed 0`.
    pub label: String,
    /// Epochs done out of those it is expected to take.
    pub run: Bar,
    /// Batches of its current epoch.
    pub epoch: Bar,
    /// Its current phase's epoch and the phase's epoch limit: `(epoch, of)`.
    pub phase_epoch: (u32, u32),
    /// Its latest news: the last epoch's loss and validation accuracy, or
    /// the last prune.
    pub note: String,
    /// Phase label, seed and target (as bits) its events carry.
    key: (String, u64, u32),
    /// Epochs it is expected to take.
    expected: u32,
    /// Epochs (and the fraction of the current one) trained in it.
    in_unit: f64,
    /// Epochs of its current phase reported so far (with a fraction).
    phase_done: f64,
    /// The last epoch its current phase finished.
    epoch_done: u32,
}

impl Running {
    /// Counts towards the overall bar: at most what it is expected to take.
    fn credited(&self) -> f64 {
        self.in_unit.min(f64::from(self.expected).max(1.0))
    }
}

/// What a progress display shows, built from a comparison's events.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    /// Training epochs done out of those the comparison is expected to take
    /// (a finished run counts all it was expected to take: early stopping
    /// and failures end runs sooner).
    pub overall: Bar,
    /// Epochs of the training reported last (a run or a base model) out of
    /// its expected epochs.
    pub run: Bar,
    /// Batches of its current epoch.
    pub epoch: Bar,
    /// Its current phase's epoch and epoch limit: `(epoch, of)`.
    pub phase_epoch: (u32, u32),
    /// What is running now (every training in flight, in the order they
    /// started).
    pub current: String,
    /// The trainings in flight, in the order they started (several when
    /// runs train at once).
    pub running: Vec<Running>,
    /// Every training so far, for the whole-run chart.
    pub traces: Traces,
    /// Human-readable log lines.
    pub log: Vec<String>,
    started: Option<Instant>,
    base_epochs: u32,
    /// Strategy runs in the comparison.
    pub runs_total: usize,
    /// Strategy runs finished.
    pub runs_done: usize,
    /// Epochs of finished trainings (each at its expected count).
    credited: f64,
    /// Epochs actually trained, with the fraction of the current ones.
    trained: f64,
    /// Time when `trained` was last updated.
    trained_at: Duration,
    /// Set when the comparison ended.
    pub ended: Option<Status>,
    /// How long it ran, once it ended (the clock stops there).
    ended_after: Option<Duration>,
}

/// The key events carry for a training: phase label, seed, target.
fn key(phase: &str, seed: u64, target: f32) -> (String, u64, u32) {
    (phase.to_string(), seed, target.to_bits())
}

impl Progress {
    /// Progress of a comparison of `cfg` that starts now. Until the first
    /// event says how many epochs to expect, a guess from the config.
    pub fn new(cfg: &ExperimentConfig) -> Self {
        let runs = cfg.seeds.len() * cfg.strategies.len() * cfg.sparsities.len();
        let base_epochs = if cfg.base_checkpoint.is_some() {
            0
        } else {
            cfg.train.epochs
        };
        Self {
            started: Some(Instant::now()),
            base_epochs,
            runs_total: runs,
            overall: Bar {
                done: 0.0,
                total: (cfg.seeds.len() * base_epochs as usize
                    + runs * cfg.finetune.epochs as usize) as f32,
            },
            current: "starting".into(),
            ..Default::default()
        }
    }

    /// Time since the start, or how long the comparison ran once it ended.
    pub fn elapsed(&self) -> Duration {
        self.ended_after
            .or_else(|| self.started.map(|t| t.elapsed()))
            .unwrap_or_default()
    }

    /// Estimated time left: the epochs still expected times the time per
    /// epoch measured so far (`None` before the first batch, and at the end).
    pub fn eta(&self) -> Option<Duration> {
        if self.ended.is_some() || self.trained <= 0.0 {
            return None;
        }
        let per_epoch = self.trained_at.as_secs_f64() / self.trained;
        let left = f64::from(self.overall.total - self.overall.done).max(0.0);
        Some(Duration::from_secs_f64(per_epoch * left))
    }

    fn push_log(&mut self, line: String) {
        self.log.push(line);
        if self.log.len() > MAX_LOG {
            let extra = self.log.len() - MAX_LOG;
            self.log.drain(..extra);
        }
    }

    /// Starts a training expected to take `expected` epochs.
    fn start_unit(&mut self, key: (String, u64, u32), label: String, expected: u32) {
        self.running.retain(|r| r.key != key);
        self.running.push(Running {
            label,
            run: Bar {
                done: 0.0,
                total: expected as f32,
            },
            key,
            expected,
            ..Running::default()
        });
        self.show(self.running.len() - 1);
        self.update_overall();
    }

    /// Ends the training of `key`, counting it as the epochs it was
    /// expected to take.
    fn end_unit(&mut self, key: &(String, u64, u32)) {
        if let Some(i) = self.find(key) {
            let r = self.running.remove(i);
            self.credited += f64::from(r.expected);
            self.run = Bar {
                done: r.run.total,
                total: r.run.total,
            };
            self.epoch = Bar::default();
            self.phase_epoch = (0, 0);
        }
        self.current = self.current_label();
        self.update_overall();
    }

    /// The training events of `key` go to; for events of older versions,
    /// which do not name their run, the one training in flight.
    fn find(&self, key: &(String, u64, u32)) -> Option<usize> {
        let exact = self.running.iter().position(|r| &r.key == key);
        exact.or((self.running.len() == 1).then_some(0))
    }

    fn current_label(&self) -> String {
        match self.running.as_slice() {
            [] if self.ended.is_none() => "between runs".into(),
            [] => self.current.clone(),
            [one] => one.label.clone(),
            many => format!(
                "{} runs at once: {}",
                many.len(),
                many.iter()
                    .map(|r| r.label.as_str())
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        }
    }

    /// Mirrors the training at `i` in the single-training fields.
    fn show(&mut self, i: usize) {
        let r = &self.running[i];
        (self.run, self.epoch, self.phase_epoch) = (r.run, r.epoch, r.phase_epoch);
        self.current = self.current_label();
    }

    /// The overall bar: finished trainings at their expected epochs plus
    /// those in flight; the total never less than that plus the rest of
    /// the trainings in flight (dense controls, which the plan can only
    /// estimate, may take more than expected), so it does not read 100%
    /// while training.
    fn update_overall(&mut self) {
        let in_flight: f64 = self.running.iter().map(Running::credited).sum();
        let rest: f64 = self
            .running
            .iter()
            .map(|r| f64::from(r.expected).max(r.in_unit))
            .sum();
        self.overall.done = (self.credited + in_flight) as f32;
        self.overall.total = self.overall.total.max((self.credited + rest) as f32);
    }

    /// Takes one event into account.
    pub fn on_event(&mut self, e: &Event) {
        let at = self.elapsed();
        self.on_event_at(e, at);
    }

    /// [`Progress::on_event`] for an event that came `at` after the start.
    pub fn on_event_at(&mut self, e: &Event, at: Duration) {
        self.traces.on_event(e);
        match e {
            Event::Started {
                runs,
                device,
                data,
                model,
                expected_epochs,
            } => {
                self.runs_total = *runs;
                if *expected_epochs > 0 {
                    self.overall.total = *expected_epochs as f32;
                }
                self.push_log(started_line(device, data, model));
            }
            Event::Batch {
                phase,
                seed,
                target,
                epoch,
                of,
                batch,
                batches,
            } => {
                let batches = Bar {
                    done: *batch as f32,
                    total: *batches as f32,
                };
                self.report((phase, *seed, *target), (*epoch, *of), batches, at);
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
                let all = Bar {
                    done: 1.0,
                    total: 1.0,
                };
                let i = self.report((phase, *seed, *target), (*epoch, *of), all, at);
                let r = &mut self.running[i];
                r.epoch_done = *epoch;
                if *epoch == *of {
                    // The phase ran to its limit; the next one starts afresh.
                    r.phase_epoch = (0, 0);
                }
                r.note = format!("loss {:.3}, val acc {:.2}%", train.loss, val.acc * 100.0);
                let line = format!(
                    "{}: epoch {epoch}/{of}: train loss {:.4}, val acc {:.2}%",
                    r.label,
                    train.loss,
                    val.acc * 100.0
                );
                self.show(i);
                self.push_log(line);
            }
            Event::BaseReady(b) => {
                self.end_unit(&key("base", b.seed, 0.0));
                self.push_log(base_line(b));
            }
            Event::RunStarted {
                index,
                strategy,
                target,
                seed,
                expected_epochs,
            } => {
                let label = format!("{strategy} @ {:.1}% (seed {seed})", target * 100.0);
                self.push_log(format!("run {}/{}: {label}", index + 1, self.runs_total));
                self.start_unit(key(strategy, *seed, *target), label, *expected_epochs);
            }
            e @ Event::Pruned {
                strategy,
                seed,
                run_target,
                ..
            } => {
                // A prune ends the fine-tuning phase before it (early stopping
                // may have ended it before its limit).
                let line = pruned_line(e);
                if let Some(i) = self.find(&key(strategy, *seed, *run_target)) {
                    let r = &mut self.running[i];
                    r.phase_epoch = (0, 0);
                    r.epoch = Bar::default();
                    r.note = line.clone().unwrap_or_default();
                    self.show(i);
                }
                if let Some(line) = line {
                    self.push_log(line);
                }
            }
            Event::Step {
                strategy,
                seed,
                run_target,
                record,
            } => {
                if let Some(i) = self.find(&key(strategy, *seed, *run_target)) {
                    self.running[i].phase_epoch = (0, 0);
                    self.show(i);
                }
                self.push_log(format!(
                    "{strategy}: step {} done: sparsity {:.2}%, test acc {:.2}%, {} epochs",
                    record.step,
                    record.sparsity.global * 100.0,
                    record.test.acc * 100.0,
                    record.epochs
                ))
            }
            Event::RunFinished(r) => {
                self.runs_done += 1;
                self.end_unit(&key(&r.strategy, r.seed, r.target));
                self.push_log(run_line(r));
            }
            Event::ControlFinished(r) => {
                self.end_unit(&key(DENSE_CONTROL, r.seed, r.target));
                self.push_log(run_line(r))
            }
            Event::Finished { status } => {
                self.ended = Some(status.clone());
                self.ended_after = Some(at);
                self.running.clear();
                self.phase_epoch = (0, 0);
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

    /// A report from inside a phase of the training of `(phase, seed,
    /// target)`, `at` since the start: epoch `epoch` of `of`, `batches` of
    /// it done. Returns the training's index in `running`.
    fn report(
        &mut self,
        (phase, seed, target): (&str, u64, f32),
        (epoch, of): (u32, u32),
        batches: Bar,
        at: Duration,
    ) -> usize {
        let mut found = self.find(&key(phase, seed, target));
        if let Some(r) = found.map(|i| &self.running[i]) {
            // A dense control trains one phase: a new one is the next control.
            let new_phase = r.phase_epoch.0 == 0 || epoch <= r.epoch_done;
            if r.key.0 == DENSE_CONTROL && new_phase && r.in_unit > 0.0 {
                let k = r.key.clone();
                self.end_unit(&k);
                found = None;
            }
        }
        let i = match found {
            Some(i) => i,
            None => self.start_training(phase, seed, target, of),
        };
        let r = &mut self.running[i];
        // A new phase: nothing running, or an epoch number not past the last
        // one finished (the phase before stopped early and another began).
        if r.phase_epoch.0 == 0 || epoch <= r.epoch_done {
            r.phase_done = 0.0;
            r.epoch_done = 0;
        }
        r.phase_epoch = (epoch, of);
        r.epoch = batches;
        let epochs = f64::from(epoch - 1) + f64::from(batches.fraction());
        let step = (epochs - r.phase_done).max(0.0);
        r.phase_done = epochs;
        r.in_unit += step;
        r.run.done = r.in_unit as f32;
        r.run.total = r.run.total.max(r.run.done);
        self.trained += step;
        self.trained_at = at;
        self.show(i);
        self.update_overall();
        i
    }

    /// The first report of a training without a start event: a base model,
    /// or a dense control (a training of its `of` epochs; the control
    /// before it ends here).
    fn start_training(&mut self, phase: &str, seed: u64, target: f32, of: u32) -> usize {
        let (label, expected) = if phase == "base" {
            (format!("base model, seed {seed}"), self.base_epochs)
        } else if phase == DENSE_CONTROL {
            let controls: Vec<_> = self
                .running
                .iter()
                .filter(|r| r.key.0 == DENSE_CONTROL)
                .map(|r| r.key.clone())
                .collect();
            for k in controls {
                self.end_unit(&k);
            }
            (format!("dense control, seed {seed}"), of)
        } else {
            (
                format!("{phase} @ {:.1}% (seed {seed})", target * 100.0),
                of,
            )
        };
        self.start_unit(key(phase, seed, target), label, expected);
        self.running.len() - 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiment::results::{RunResult, SplitMetrics, StepRecord};
    use crate::prune::SparsityReport;
    use crate::train::Metrics;

    fn acc(a: f32) -> Metrics {
        Metrics { loss: 0.1, acc: a }
    }

    fn epoch(phase: &str, epoch: u32, of: u32) -> Event {
        Event::Epoch {
            phase: phase.into(),
            target: 0.5,
            seed: 0,
            epoch,
            of,
            train: acc(0.6),
            val: acc(0.5),
            lr: 0.1,
        }
    }

    fn batch(phase: &str, epoch: u32, batch: usize, batches: usize) -> Event {
        Event::Batch {
            phase: phase.into(),
            target: 0.5,
            seed: 0,
            epoch,
            of: 4,
            batch,
            batches,
        }
    }

    fn started(expected_epochs: u64) -> Event {
        Event::Started {
            runs: 2,
            device: "cpu".into(),
            data: Default::default(),
            model: Default::default(),
            expected_epochs,
        }
    }

    fn run_started(strategy: &str, expected_epochs: u32) -> Event {
        Event::RunStarted {
            index: 0,
            strategy: strategy.into(),
            target: 0.5,
            seed: 0,
            expected_epochs,
        }
    }

    fn base_ready() -> Event {
        Event::BaseReady(crate::experiment::results::Baseline {
            seed: 0,
            val: acc(0.9),
            test: acc(0.9),
            epochs: 4,
            seconds: 1.0,
            model_file: None,
        })
    }

    fn step(n: u32, sparsity: f32, pruned_val: f32) -> Event {
        Event::Step {
            strategy: "iterative".into(),
            seed: 0,
            run_target: 0.5,
            record: StepRecord {
                step: n,
                target_sparsity: sparsity,
                sparsity: SparsityReport {
                    global: sparsity,
                    channels: 0.0,
                    layers: vec![],
                },
                val: acc(0.85),
                test: acc(0.8),
                epochs: 2 * n,
                seconds: 1.0,
                pruned: Some(SplitMetrics {
                    val: acc(pruned_val),
                    test: acc(pruned_val),
                }),
                finetune_epochs: 2,
                kept_epoch: None,
                cost: None,
            },
        }
    }

    fn pruned(step: u32, reached: f32) -> Event {
        Event::Pruned {
            strategy: "iterative".into(),
            seed: 0,
            run_target: 0.5,
            step,
            target: reached,
            reached,
            host_copy_ms: 0.0,
        }
    }

    fn finished(strategy: &str) -> Event {
        Event::RunFinished(RunResult::new(strategy, ("s", "c"), 0.5, 0))
    }

    /// The bars count epochs: the base's, then each run's out of what its
    /// schedule is expected to take (not N/N), the epoch bar counts batches
    /// and starts afresh with every run.
    #[test]
    fn bars_count_epochs_and_batches() {
        let mut cfg = ExperimentConfig::demo();
        cfg.seeds = vec![0];
        cfg.train.epochs = 4;
        let mut p = Progress::new(&cfg);
        let s = Duration::from_secs;
        // 4 base epochs + runs of 6 and 2 epochs.
        p.on_event_at(&started(12), s(0));
        assert_eq!(p.overall.total, 12.0);
        assert!(p.eta().is_none(), "nothing measured yet");
        p.on_event_at(&batch("base", 1, 5, 10), s(1));
        assert!((p.overall.done - 0.5).abs() < 1e-6, "{:?}", p.overall);
        assert_eq!(p.epoch.fraction(), 0.5);
        assert!(p.current.contains("base model"));
        // Half an epoch in a second: 11.5 epochs left take 23 s.
        assert_eq!(p.eta(), Some(s(23)));
        for e in 1..=4 {
            p.on_event_at(&epoch("base", e, 4), s(2 * u64::from(e)));
        }
        p.on_event_at(&base_ready(), s(8));
        assert_eq!(p.overall.done, 4.0);
        p.on_event_at(&run_started("iterative", 6), s(8));
        assert_eq!((p.run.done, p.run.total), (0.0, 6.0));
        assert_eq!(p.epoch.fraction(), 0.0, "the epoch bar starts afresh");
        p.on_event_at(&pruned(1, 0.3), s(8));
        p.on_event_at(&epoch("iterative", 1, 2), s(10));
        p.on_event_at(&epoch("iterative", 2, 2), s(12));
        p.on_event_at(&step(1, 0.3, 0.4), s(12));
        assert_eq!((p.run.done, p.run.total), (2.0, 6.0));
        assert_eq!(p.overall.done, 6.0);
        // 6 epochs in 12 s: 6 left take 12 s.
        assert_eq!(p.eta(), Some(s(12)));
        p.on_event_at(&pruned(2, 0.5), s(12));
        // Early stopping ended the second phase after one epoch of two.
        p.on_event_at(&epoch("iterative", 1, 2), s(14));
        p.on_event_at(&step(2, 0.5, 0.3), s(14));
        p.on_event_at(&finished("iterative"), s(14));
        assert_eq!(p.run.fraction(), 1.0);
        assert_eq!(
            p.overall.done, 10.0,
            "a finished run counts what it was expected to take"
        );
        p.on_event_at(&run_started("one-shot", 2), s(14));
        assert_eq!((p.run.done, p.run.total), (0.0, 2.0));
        p.on_event_at(&batch("one-shot", 1, 2, 4), s(15));
        assert!((p.overall.done - 10.5).abs() < 1e-6);
        p.on_event_at(&epoch("one-shot", 1, 1), s(15));
        p.on_event_at(&finished("one-shot"), s(15));
        assert_eq!(p.overall.done, 12.0);
        // Dense controls: each training is a unit of its own epochs; the plan
        // expected none here, and the bar does not read 100% while they train.
        let control = |e, of| epoch(DENSE_CONTROL, e, of);
        p.on_event_at(&control(1, 3), s(16));
        assert_eq!((p.run.done, p.run.total), (1.0, 3.0));
        assert!(p.overall.fraction() < 1.0 && p.eta().is_some_and(|d| d > s(0)));
        p.on_event_at(&control(2, 3), s(17));
        p.on_event_at(&control(3, 3), s(18));
        p.on_event_at(&control(1, 2), s(19));
        assert_eq!((p.run.done, p.run.total), (1.0, 2.0));
        assert_eq!(p.overall.done, 16.0);
        assert!(p.overall.fraction() < 1.0);
        p.on_event_at(
            &Event::Finished {
                status: Status::Cancelled,
            },
            s(15),
        );
        assert!(p.current.contains("cancelled"));
        assert!(p.eta().is_none());
        assert!(p.log.last().unwrap().contains("cancelled"));
        // The clock stops when the comparison ends (issue 27, item 6).
        assert_eq!(p.elapsed(), s(15));
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert_eq!(p.elapsed(), s(15));
    }

    /// Two fine-tuning phases back to back (no prune between), the first
    /// stopped early: the second's epochs count from its own start.
    #[test]
    fn back_to_back_phases_both_count() {
        let mut p = Progress::new(&ExperimentConfig::demo());
        p.on_event(&run_started("patience", 6));
        p.on_event(&pruned(1, 0.5));
        p.on_event(&epoch("patience", 1, 3));
        // Stopped early; the next phase begins at its epoch 1 again.
        p.on_event(&batch("patience", 1, 5, 10));
        assert!((p.run.done - 1.5).abs() < 1e-6, "{:?}", p.run);
        p.on_event(&epoch("patience", 1, 3));
        p.on_event(&epoch("patience", 2, 3));
        assert_eq!(p.run.done, 3.0);
    }

    /// Two runs at once: each has its own bars, lines and trace; the
    /// overall bar counts both; one finishing leaves the other.
    #[test]
    fn runs_in_flight_at_once_are_followed_each() {
        let mut p = Progress::new(&ExperimentConfig::demo());
        p.on_event(&started(10));
        p.on_event(&run_started("one-shot", 2));
        p.on_event(&run_started("iterative", 4));
        assert_eq!(p.running.len(), 2);
        assert!(p.current.starts_with("2 runs at once"), "{}", p.current);
        p.on_event(&pruned(1, 0.3)); // the iterative run's
        p.on_event(&epoch("one-shot", 1, 2));
        p.on_event(&batch("iterative", 1, 5, 10));
        p.on_event(&epoch("one-shot", 2, 2));
        let (a, b) = (&p.running[0], &p.running[1]);
        assert!(a.label.starts_with("one-shot") && b.label.starts_with("iterative"));
        assert_eq!((a.run.done, a.run.total), (2.0, 2.0));
        assert!((b.run.done - 0.5).abs() < 1e-6, "{:?}", b.run);
        assert_eq!(b.epoch.fraction(), 0.5);
        assert!(b.note.contains("pruned"), "{}", b.note);
        assert!(a.note.contains("val acc"), "{}", a.note);
        assert!((p.overall.done - 2.5).abs() < 1e-6, "{:?}", p.overall);
        p.on_event(&finished("one-shot"));
        assert_eq!(p.running.len(), 1);
        assert!(p.current.starts_with("iterative"), "{}", p.current);
        assert_eq!(p.runs_done, 1);
        // Each trace has only its own run's epochs.
        let trace = |name: &str| {
            p.traces
                .all
                .iter()
                .find(|t| t.title.starts_with(name))
                .unwrap()
        };
        assert_eq!(trace("one-shot").epochs, 2);
        assert_eq!(trace("iterative").epochs, 0);
        assert_eq!(trace("iterative").prunes, [0.0]);
        assert!(trace("one-shot").done() && !trace("iterative").done());
    }

    /// A run's trace holds all its epochs over every phase, the drop right
    /// after each prune, the test accuracy at each step and the sparsity
    /// as a stepped line.
    #[test]
    fn traces_hold_whole_runs() {
        let mut p = Progress::new(&ExperimentConfig::demo());
        for e in [
            epoch("base", 1, 2),
            epoch("base", 2, 2),
            base_ready(),
            run_started("iterative", 4),
            pruned(1, 0.3),
            epoch("iterative", 1, 2),
            epoch("iterative", 2, 2),
            step(1, 0.3, 0.4),
            pruned(2, 0.5),
            epoch("iterative", 1, 2),
            epoch("iterative", 2, 2),
            step(2, 0.5, 0.3),
        ] {
            p.on_event(&e);
        }
        let t = p.traces.current().unwrap();
        assert!(t.title.starts_with("iterative @ 50.0%"), "{}", t.title);
        assert_eq!(t.epochs, 4);
        let xs = |v: &[[f64; 2]]| v.iter().map(|q| q[0]).collect::<Vec<_>>();
        assert_eq!(xs(&t.train), [1.0, 2.0, 3.0, 4.0]);
        // Base (x = 0), after prune 1 (x = 0), epochs 1-2, after prune 2 (x = 2), epochs 3-4.
        assert_eq!(xs(&t.val), [0.0, 0.0, 1.0, 2.0, 2.0, 3.0, 4.0]);
        assert!((t.val[0][1] - 90.0).abs() < 1e-4 && (t.val[1][1] - 40.0).abs() < 1e-4);
        assert!((t.val[4][1] - 30.0).abs() < 1e-4);
        assert_eq!(t.prunes, [0.0, 2.0]);
        assert_eq!(xs(&t.test), [2.0, 4.0]);
        let steps: Vec<(f64, f64)> = t
            .sparsity
            .iter()
            .map(|q| (q[0], (q[1] * 10.0).round() / 10.0))
            .collect();
        assert_eq!(
            steps,
            [
                (0.0, 30.0),
                (1.0, 30.0),
                (2.0, 30.0),
                (2.0, 30.0),
                (2.0, 50.0),
                (3.0, 50.0),
                (4.0, 50.0)
            ]
        );
        p.on_event(&finished("iterative"));
        assert!(p.traces.current().is_none());
        let kinds: Vec<_> = p.traces.all.iter().map(|t| t.kind).collect();
        use crate::report::trace::TraceKind;
        assert_eq!(kinds, [TraceKind::Base, TraceKind::Run]);
        assert_eq!(p.traces.all[0].epochs, 2);
        assert_eq!(p.traces.all[1].outcome.as_deref(), Some("no step"));
        assert!(!p.traces.all[1].failed);
    }
}
