//! A comparison as a folder of tasks, for job arrays on one machine or many
//! (HyperQueue, Slurm, GNU parallel): one base-model task per seed, then
//! every run, each depending on its seed's base model, then (with dense
//! controls) one controls task per seed depending on that seed's runs.
//!
//! The folder holds `plan.json` (the config and the task list), the
//! models under `models/` as a single-process comparison names them, and
//! per task under `tasks/`: `NNNN.json` once it finished (written
//! atomically: a task that died half-way left none and runs again
//! cleanly), `NNNN.running` while it runs (host, process, start) and
//! `NNNN.failed` when it failed (the error). Every path in it is relative
//! to the folder, so it can live on a shared file system; the data path is
//! the one the plan was made with, or given again to each task.
//! [`merge`] writes `results.json` and `results.csv` as the same comparison
//! run in one process would.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use serde::{Deserialize, Serialize};

use super::config::ExperimentConfig;
use super::context::{Context, Emit};
use super::dense_control::Controls;
use super::output::{base_model_file, save_results, CONFIG_TOML};
use super::preview::expected_epochs;
use super::results::{Baseline, ComparisonResults, DataSummary, ModelSummary, RunResult, Status};
use super::runner::{base_template, data_summary, load_data, model_summary, seed_base};
use super::strategy_run::{plan_runs, PlannedRun, SeedRuns};
use crate::error::{Error, Result};
use crate::fsutil::write_atomic;
use crate::model::checkpoint;
use crate::plugins::Registry;

/// The plan's file in its folder.
pub const PLAN_JSON: &str = "plan.json";
/// The folder of the tasks' state and outputs.
pub const TASKS_DIR: &str = "tasks";
/// Format version of `plan.json`.
pub const PLAN_VERSION: u32 = 1;

/// One task of a plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Task {
    /// Trains the dense base model of `seed` (or evaluates the base
    /// checkpoint).
    Base {
        /// The seed.
        seed: u64,
    },
    /// One run from the seed's base model.
    Run {
        /// The seed.
        seed: u64,
        /// Index into the config's strategies.
        strategy: usize,
        /// Index into the config's sparsities.
        target: usize,
        /// Index among all runs (as a single-process comparison counts).
        run: usize,
    },
    /// The dense controls of `seed`, after all its runs.
    Controls {
        /// The seed.
        seed: u64,
    },
}

impl Task {
    /// `base`, `run` or `controls`.
    pub fn kind(&self) -> &'static str {
        match self {
            Task::Base { .. } => "base",
            Task::Run { .. } => "run",
            Task::Controls { .. } => "controls",
        }
    }
}

/// A comparison split into tasks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// Format version.
    pub version: u32,
    /// The comparison.
    pub config: ExperimentConfig,
    /// The tasks; a task's index is its place here.
    pub tasks: Vec<Task>,
}

/// Where a task stands.
#[derive(Debug, Clone, PartialEq)]
pub enum TaskState {
    /// Finished: its output is written.
    Done,
    /// Started and not finished (or died without a word): what its marker
    /// says (host, process and start).
    Running(String),
    /// Failed, with the error.
    Failed(String),
    /// Not started.
    Pending,
}

/// What a finished task wrote.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum TaskOutput {
    /// A seed's base model (saved under `models/` when trained).
    Base {
        /// Its record.
        baseline: Baseline,
        /// The data it trained on.
        data: DataSummary,
        /// The model.
        model: ModelSummary,
        /// The device it ran on.
        device: String,
    },
    /// A run (complete, or failed as a single-process run would be).
    Run {
        /// Its result.
        run: RunResult,
    },
    /// A seed's dense controls.
    Controls {
        /// One per target.
        controls: Vec<RunResult>,
    },
}

/// What [`run_task`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum TaskOutcome {
    /// It had finished before: nothing was done.
    AlreadyDone,
    /// It ran and its output is written.
    Done(Box<TaskOutput>),
}

impl Plan {
    /// The tasks of `cfg`: bases, runs, then controls (when `cfg` has them).
    pub fn new(cfg: ExperimentConfig) -> Self {
        let mut tasks: Vec<Task> = cfg.seeds.iter().map(|&seed| Task::Base { seed }).collect();
        let per_seed = cfg.strategies.len() * cfg.sparsities.len();
        for (k, &seed) in cfg.seeds.iter().enumerate() {
            tasks.extend(
                plan_runs(&cfg, k * per_seed)
                    .into_iter()
                    .map(|p| Task::Run {
                        seed,
                        strategy: p.strategy,
                        target: p.target,
                        run: p.index,
                    }),
            );
        }
        if cfg.dense_control {
            tasks.extend(cfg.seeds.iter().map(|&seed| Task::Controls { seed }));
        }
        Self {
            version: PLAN_VERSION,
            config: cfg,
            tasks,
        }
    }

    /// The tasks task `index` waits for.
    pub fn depends_on(&self, index: usize) -> Vec<usize> {
        let seed_of = |t: &Task| match t {
            Task::Base { seed } | Task::Run { seed, .. } | Task::Controls { seed } => *seed,
        };
        let Some(task) = self.tasks.get(index) else {
            return vec![];
        };
        let seed = seed_of(task);
        let wanted = |t: &Task| match task {
            Task::Base { .. } => false,
            Task::Run { .. } => matches!(t, Task::Base { .. }),
            Task::Controls { .. } => matches!(t, Task::Run { .. }),
        };
        (0..self.tasks.len())
            .filter(|&i| wanted(&self.tasks[i]) && seed_of(&self.tasks[i]) == seed)
            .collect()
    }

    /// Indices of the tasks of one kind (`base`, `run` or `controls`).
    pub fn indices(&self, kind: &str) -> Vec<usize> {
        (0..self.tasks.len())
            .filter(|&i| self.tasks[i].kind() == kind)
            .collect()
    }

    /// A line naming task `index` for people.
    pub fn describe(&self, index: usize) -> String {
        let cfg = &self.config;
        match self.tasks.get(index) {
            Some(Task::Base { seed }) => format!("base model, seed {seed}"),
            Some(Task::Run {
                seed,
                strategy,
                target,
                ..
            }) => format!(
                "{} @ {:.1}% (seed {seed})",
                cfg.strategies[*strategy].label(),
                cfg.sparsities[*target] * 100.0
            ),
            Some(Task::Controls { seed }) => format!("dense controls, seed {seed}"),
            None => format!("no task {index}"),
        }
    }

    /// Writes the plan into `dir` (created if missing) with its empty
    /// `tasks/` folder and the config as `config.toml`.
    pub fn write(&self, dir: &Path) -> Result<()> {
        let tasks = dir.join(TASKS_DIR);
        std::fs::create_dir_all(&tasks).map_err(|e| Error::io(&tasks, e))?;
        write_atomic(&dir.join(PLAN_JSON), &serde_json::to_vec_pretty(self)?)?;
        write_atomic(
            &dir.join(CONFIG_TOML),
            toml::to_string(&self.config)?.as_bytes(),
        )
    }

    /// Reads the plan of folder `dir`.
    pub fn load(dir: &Path) -> Result<Self> {
        let path = dir.join(PLAN_JSON);
        let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
        let plan: Plan =
            serde_json::from_slice(&bytes).map_err(|e| Error::format(&path, e.to_string()))?;
        if plan.version != PLAN_VERSION {
            return Err(Error::format(
                &path,
                format!(
                    "plan format {} (this shears reads {PLAN_VERSION})",
                    plan.version
                ),
            ));
        }
        Ok(plan)
    }
}

fn task_file(dir: &Path, index: usize, ext: &str) -> PathBuf {
    dir.join(TASKS_DIR).join(format!("{index:04}.{ext}"))
}

/// Where task `index` of the plan in `dir` stands.
pub fn task_state(dir: &Path, index: usize) -> TaskState {
    let read = |ext| std::fs::read_to_string(task_file(dir, index, ext)).ok();
    if task_file(dir, index, "json").is_file() {
        TaskState::Done
    } else if let Some(e) = read("failed") {
        TaskState::Failed(e.trim().to_string())
    } else if let Some(who) = read("running") {
        TaskState::Running(who.trim().to_string())
    } else {
        TaskState::Pending
    }
}

/// The output of finished task `index`.
pub fn task_output(dir: &Path, index: usize) -> Result<TaskOutput> {
    let path = task_file(dir, index, "json");
    let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
    serde_json::from_slice(&bytes).map_err(|e| Error::format(&path, e.to_string()))
}

fn remove_if_there(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(path, e)),
        _ => Ok(()),
    }
}

/// Runs task `index` of the plan in `dir` (a finished one again does
/// nothing): checks that the tasks it waits for are done, marks it running,
/// runs it and writes its output atomically; an error is written as its
/// `failed` marker and returned. `data` replaces the plan's data path (the
/// same data on another host). Events go to `emit`.
pub fn run_task(
    dir: &Path,
    index: usize,
    registry: &Registry,
    data: Option<&Path>,
    cancel: &AtomicBool,
    emit: &mut Emit<'_>,
) -> Result<TaskOutcome> {
    let mut plan = Plan::load(dir)?;
    if index >= plan.tasks.len() {
        return Err(Error::Plan {
            what: format!("task {index}"),
            msg: format!(
                "past the plan's {} tasks (0..{})",
                plan.tasks.len(),
                plan.tasks.len()
            ),
        });
    }
    if task_state(dir, index) == TaskState::Done {
        return Ok(TaskOutcome::AlreadyDone);
    }
    if let Some(wait) = plan
        .depends_on(index)
        .into_iter()
        .find(|&d| task_state(dir, d) != TaskState::Done)
    {
        return Err(Error::Plan {
            what: format!("task {index}"),
            msg: format!(
                "it waits for task {wait} ({}), which is not done",
                plan.describe(wait)
            ),
        });
    }
    if let Some(path) = data {
        plan.config.data = plan.config.data.with_path(path);
    }
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "this host".into());
    let marker = format!(
        "{host}, process {}, since {}",
        std::process::id(),
        humantime::format_rfc3339_seconds(std::time::SystemTime::now())
    );
    write_atomic(&task_file(dir, index, "running"), marker.as_bytes())?;
    remove_if_there(&task_file(dir, index, "failed"))?;
    let outcome = execute(&plan, dir, index, registry, cancel, emit);
    remove_if_there(&task_file(dir, index, "running"))?;
    match outcome {
        Ok(out) => {
            write_atomic(
                &task_file(dir, index, "json"),
                &serde_json::to_vec_pretty(&out)?,
            )?;
            Ok(TaskOutcome::Done(Box::new(out)))
        }
        Err(e) => {
            write_atomic(&task_file(dir, index, "failed"), e.to_string().as_bytes())?;
            Err(e)
        }
    }
}

fn execute(
    plan: &Plan,
    dir: &Path,
    index: usize,
    registry: &Registry,
    cancel: &AtomicBool,
    emit: &mut Emit<'_>,
) -> Result<TaskOutput> {
    let cfg = &plan.config;
    cfg.validate(registry)?;
    let (device, device_name) = crate::device::open(crate::device::parse(&cfg.device)?)?;
    let (data, base) = load_data(cfg, &device)?;
    let template = base_template(cfg, base, &data, &device)?;
    let ctx = Context {
        registry,
        cancel,
        out_dir: Some(dir),
    };
    let base_of = |seed: u64| match &cfg.base_checkpoint {
        Some(_) => template.try_clone(),
        None => checkpoint::load(&dir.join(base_model_file(seed)), &device),
    };
    match plan.tasks[index] {
        Task::Base { seed } => {
            let (_, baseline) = seed_base(cfg, &ctx, &data, &template, seed, emit)?;
            Ok(TaskOutput::Base {
                baseline,
                data: data_summary(&data),
                model: model_summary(&template),
                device: device_name,
            })
        }
        Task::Run {
            seed,
            strategy,
            target,
            run,
        } => {
            let base = base_of(seed)?;
            let expected = expected_epochs(cfg, registry);
            let seed_runs = SeedRuns {
                cfg,
                ctx: &ctx,
                data: &data,
                base: &base,
                seed,
                expected: &expected.runs,
            };
            let planned = PlannedRun {
                index: run,
                strategy,
                target,
            };
            let (run, cancelled) = seed_runs.run(&planned, emit);
            if cancelled {
                return Err(Error::Cancelled);
            }
            Ok(TaskOutput::Run { run })
        }
        Task::Controls { seed } => {
            let base = base_of(seed)?;
            let mut results = ComparisonResults::new(cfg.clone(), device_name);
            for d in plan.depends_on(index) {
                if let TaskOutput::Run { run } = task_output(dir, d)? {
                    results.runs.push(run);
                }
            }
            let controls = Controls {
                cfg,
                ctx: &ctx,
                data: &data,
                base: &base,
                seed,
            };
            controls.run(&mut results, &mut |e, _| emit(e))?;
            Ok(TaskOutput::Controls {
                controls: results.controls,
            })
        }
    }
}

/// The state of every task of the plan in `dir`, in order.
pub fn status(dir: &Path) -> Result<(Plan, Vec<TaskState>)> {
    let plan = Plan::load(dir)?;
    let states = (0..plan.tasks.len()).map(|i| task_state(dir, i)).collect();
    Ok((plan, states))
}

/// Where a plan stands: the results of its finished tasks and how many
/// tasks are in each state.
#[derive(Debug, Clone)]
pub struct PlanProgress {
    /// The finished bases, runs and controls, in plan order; `status` is
    /// `Complete` once every task is done, else `None`.
    pub results: ComparisonResults,
    /// Tasks done.
    pub done: usize,
    /// Tasks running (or died without a word).
    pub running: usize,
    /// Tasks failed.
    pub failed: usize,
    /// Tasks in the plan.
    pub total: usize,
}

/// The results of the tasks done so far, as the comparison run in one
/// process would have them once all are.
fn collect(plan: &Plan, dir: &Path, states: &[TaskState]) -> Result<ComparisonResults> {
    let mut results = ComparisonResults::new(plan.config.clone(), "");
    for (i, state) in states.iter().enumerate() {
        if *state != TaskState::Done {
            continue;
        }
        match task_output(dir, i)? {
            TaskOutput::Base {
                baseline,
                data,
                model,
                device,
            } => {
                if results.baselines.is_empty() {
                    (results.data, results.model, results.device) = (data, model, device);
                }
                results.baselines.push(baseline);
            }
            TaskOutput::Run { run } => results.runs.push(run),
            TaskOutput::Controls { controls } => results.controls.extend(controls),
        }
    }
    if states.iter().all(|s| *s == TaskState::Done) {
        results.status = Some(Status::Complete);
    }
    Ok(results)
}

/// The plan in `dir` as it stands (what the app shows while tasks run).
pub fn progress(dir: &Path) -> Result<PlanProgress> {
    let (plan, states) = status(dir)?;
    let count = |f: fn(&TaskState) -> bool| states.iter().filter(|s| f(s)).count();
    Ok(PlanProgress {
        results: collect(&plan, dir, &states)?,
        done: count(|s| *s == TaskState::Done),
        running: count(|s| matches!(s, TaskState::Running(_))),
        failed: count(|s| matches!(s, TaskState::Failed(_))),
        total: states.len(),
    })
}

/// The results of the finished plan in `dir`, as the comparison run in one
/// process would have them, written as `results.json` and `results.csv`
/// in `dir`. Errors name the tasks not done.
pub fn merge(dir: &Path) -> Result<ComparisonResults> {
    let (plan, states) = status(dir)?;
    let open: Vec<String> = states
        .iter()
        .enumerate()
        .filter(|(_, s)| **s != TaskState::Done)
        .map(|(i, _)| format!("{i} ({})", plan.describe(i)))
        .collect();
    if !open.is_empty() {
        return Err(Error::Plan {
            what: "merge".into(),
            msg: format!(
                "{} of {} tasks are not done: {}",
                open.len(),
                plan.tasks.len(),
                open.join(", ")
            ),
        });
    }
    let results = collect(&plan, dir, &states)?;
    save_results(dir, &results)?;
    Ok(results)
}
