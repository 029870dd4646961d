//! Progress of a running comparison, reduced from its events: bars (overall,
//! current strategy run, current phase), the elapsed time and an estimate of
//! what is left, the live accuracy curve and the log. Pure state, drawn by
//! the app's Run view and the command line's progress bars alike.

use std::time::{Duration, Instant};

use super::text::{base_line, pruned_line, run_line, started_line};
use crate::experiment::{Event, ExperimentConfig, Status};

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

/// What a progress display shows, built from a comparison's events.
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
    /// Strategy runs in the comparison.
    pub runs_total: usize,
    /// Strategy runs finished.
    pub runs_done: usize,
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
                if phase == crate::experiment::results::DENSE_CONTROL {
                    // Controls follow a seed's runs; the overall bar waits for the next seed.
                    self.current = format!("dense control, seed {seed}");
                } else if phase == "base" {
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
            Event::ControlFinished(r) => self.push_log(run_line(r)),
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
        cfg.strategies.truncate(3);
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
