//! Runs as jobs on one machine: up to `jobs` runs of a seed at once, each on
//! its own rayon pool of an equal share of the cores (no oversubscription),
//! reporting to the calling thread, which alone calls the sink and writes
//! the results. Every run's data order and randomness come from its seed
//! and its copy of the base model, and the numerics do not depend on the
//! number of threads, so a run gives the same results whatever runs beside
//! it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

use candle_core::Device;

use super::context::{Emit, Sink};
use super::results::{ComparisonResults, Event, RunResult};
use super::strategy_run::{PlannedRun, SeedRuns};
use crate::error::{Error, Result};

/// Multiply-accumulates per image below which a model's training gains
/// little from a second core (LeNet-5 takes 0.4 M, ResNet-20 41 M): such a
/// model gets one core per job.
const SMALL_MODEL_MACS: usize = 10_000_000;

/// Runs at once for `jobs` as configured (0: automatic) on `device`, for a
/// model of `macs` multiply-accumulates per image and `runs` runs per seed,
/// given `cores` threads: automatic is one job on a GPU, and on the CPU one
/// job per core for small models, per two cores for larger ones.
pub fn auto_jobs(jobs: u32, device: &Device, macs: usize, runs: usize, cores: usize) -> usize {
    let wanted = match jobs {
        0 if !device.is_cpu() => 1,
        0 if macs < SMALL_MODEL_MACS => cores,
        0 => cores / 2,
        n => n as usize,
    };
    wanted.clamp(1, runs.max(1))
}

/// What a worker tells the calling thread.
enum Message {
    /// An event of a run in flight.
    Event(Event),
    /// A run ended: its index in the plan, its result, whether it was
    /// cancelled.
    Finished(usize, RunResult, bool),
}

/// Runs `plan` with `jobs` runs at once; each finished run goes into
/// `results.runs` in plan order (as the runs one after another would put
/// them) and to the sink as [`Event::RunFinished`]. Returns
/// [`Error::Cancelled`] when the comparison was cancelled.
pub(super) fn run_parallel(
    seed_runs: &SeedRuns<'_>,
    plan: &[PlannedRun],
    jobs: usize,
    results: &mut ComparisonResults,
    sink: &mut Sink<'_>,
) -> Result<()> {
    let threads = (rayon::current_num_threads() / jobs).max(1);
    let pools = (0..jobs)
        .map(|_| rayon::ThreadPoolBuilder::new().num_threads(threads).build())
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::Other(format!("cannot start the threads of {jobs} jobs: {e}")))?;
    let next = AtomicUsize::new(0);
    let first = results.runs.len();
    let mut done: BTreeMap<usize, RunResult> = BTreeMap::new();
    let mut cancelled = false;
    let (tx, rx) = mpsc::channel();
    std::thread::scope(|scope| {
        for pool in &pools {
            let (tx, next) = (tx.clone(), &next);
            scope.spawn(move || {
                pool.install(|| {
                    while let Some(planned) = plan.get(next.fetch_add(1, Ordering::Relaxed)) {
                        if seed_runs.ctx.cancel.load(Ordering::Relaxed) {
                            break;
                        }
                        let mut emit = |e: &Event| {
                            let _ = tx.send(Message::Event(e.clone()));
                        };
                        let (run, was_cancelled) = seed_runs.run(planned, &mut emit as &mut Emit);
                        let _ = tx.send(Message::Finished(planned.index, run, was_cancelled));
                    }
                })
            });
        }
        drop(tx);
        for message in rx {
            match message {
                Message::Event(e) => sink(&e, results),
                Message::Finished(index, run, was_cancelled) => {
                    cancelled |= was_cancelled;
                    done.insert(index, run.clone());
                    results.runs.truncate(first);
                    results.runs.extend(done.values().cloned());
                    sink(&Event::RunFinished(run), results);
                }
            }
        }
    });
    let stopped = seed_runs.ctx.cancel.load(Ordering::Relaxed) && done.len() < plan.len();
    if cancelled || stopped {
        return Err(Error::Cancelled);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn automatic_jobs_follow_the_cores_the_model_and_the_device() {
        let cpu = Device::Cpu;
        assert_eq!(auto_jobs(0, &cpu, 400_000, 16, 2), 2, "LeNet-5 on 2 cores");
        assert_eq!(
            auto_jobs(0, &cpu, 41_000_000, 16, 2),
            1,
            "ResNet-20 on 2 cores"
        );
        assert_eq!(auto_jobs(0, &cpu, 41_000_000, 16, 8), 4);
        assert_eq!(
            auto_jobs(0, &cpu, 400_000, 3, 16),
            3,
            "no more jobs than runs"
        );
        assert_eq!(auto_jobs(5, &cpu, 400_000, 16, 2), 5, "as configured");
        assert_eq!(auto_jobs(5, &cpu, 400_000, 0, 2), 1);
    }
}
