//! `shears plan`, `run-task`, `status` and `merge`: a comparison as a
//! folder of tasks for job arrays (see [`crate::experiment::plan`]), and the
//! scripts that run it with GNU parallel, Slurm and HyperQueue.

use std::path::Path;
use std::sync::atomic::AtomicBool;

use super::{PlanArgs, RunTaskArgs};
use crate::error::{Error, Result};
use crate::experiment::plan::{self, Plan, TaskOutcome, TaskState};
use crate::experiment::{Event, ExperimentConfig};
use crate::fsutil::write_atomic;
use crate::plugins::Registry;

/// Environment variables job-array engines set to a task's index: Slurm,
/// HyperQueue, Kubernetes indexed jobs.
pub const INDEX_VARIABLES: [&str; 3] =
    ["SLURM_ARRAY_TASK_ID", "HQ_TASK_ID", "JOB_COMPLETION_INDEX"];

/// `a..=b` of a contiguous range of task indices, as job arrays write it.
fn span(indices: &[usize]) -> Option<String> {
    Some(format!("{}-{}", indices.first()?, indices.last()?))
}

/// The GNU parallel script: the bases, then the runs, then the controls,
/// then the merge; `JOBS` tasks at once, on the hosts of `SSHLOGINFILE`
/// (the folder at the same path on each, a shared file system).
fn parallel_script(plan: &Plan) -> String {
    let mut s = String::from(
        "#!/usr/bin/env bash\n\
         # Runs this plan with GNU parallel, phase by phase (base models, runs, dense controls), then\n\
         # merges: JOBS=2 bash parallel.sh. With SSHLOGINFILE=hosts the tasks run on those hosts\n\
         # (the folder must be at the same path on each, on a shared file system). SHEARS names the\n\
         # shears binary (default: shears on the PATH).\n\
         set -euo pipefail\n\
         cd \"$(dirname \"$0\")\"\n\
         dir=\"$PWD\"\n\
         shears=\"${SHEARS:-shears}\"\n\
         remote=()\n\
         if [ -n \"${SSHLOGINFILE:-}\" ]; then remote=(--sshloginfile \"$SSHLOGINFILE\"); fi\n",
    );
    for kind in ["base", "run", "controls"] {
        let ids = plan.indices(kind);
        if ids.is_empty() {
            continue;
        }
        let list: Vec<String> = ids.iter().map(|i| i.to_string()).collect();
        s.push_str(&format!(
            "parallel -j \"${{JOBS:-2}}\" \"${{remote[@]}}\" --halt now,fail=1 \"$shears\" run-task \"$dir\" {{}} ::: {}\n",
            list.join(" ")
        ));
    }
    s.push_str("\"$shears\" merge \"$dir\"\n");
    s
}

/// The Slurm script: one job array per phase, each `afterok` on the one
/// before, then the merge.
fn slurm_script(plan: &Plan) -> String {
    let mut s = String::from(
        "#!/usr/bin/env bash\n\
         # Submits this plan to Slurm: bash slurm.sh. One job array per phase (base models, runs,\n\
         # dense controls), each starting when the one before succeeded (--dependency=afterok),\n\
         # then the merge. SBATCH_ARGS adds options (e.g. \"--partition=cpu --cpus-per-task=2\");\n\
         # SHEARS names the shears binary. The folder must be on a file system every node sees.\n\
         set -euo pipefail\n\
         cd \"$(dirname \"$0\")\"\n\
         dir=\"$PWD\"\n\
         shears=\"${SHEARS:-shears}\"\n\
         after=()\n",
    );
    for (kind, name) in [("base", "bases"), ("run", "runs"), ("controls", "controls")] {
        let Some(range) = span(&plan.indices(kind)) else {
            continue;
        };
        s.push_str(&format!(
            "{name}=$(sbatch --parsable --job-name=shears-{name} --array={range} \"${{after[@]}}\" ${{SBATCH_ARGS:-}} --wrap \"$shears run-task $dir\")\n\
             after=(--dependency=afterok:${name})\n"
        ));
    }
    s.push_str(
        "sbatch --parsable --job-name=shears-merge \"${after[@]}\" ${SBATCH_ARGS:-} --wrap \"$shears merge $dir\"\n",
    );
    s
}

/// The HyperQueue script: every task with its dependencies as one job
/// (the Python API of the `hyperqueue` package), on a local server with
/// workers of its own or on a running server, then the merge.
fn hyperqueue_script(plan: &Plan) -> String {
    let deps: Vec<String> = (0..plan.tasks.len())
        .map(|i| {
            let d: Vec<String> = plan.depends_on(i).iter().map(|d| d.to_string()).collect();
            format!("[{}]", d.join(", "))
        })
        .collect();
    format!(
        r#"#!/usr/bin/env python3
"""Runs this plan on HyperQueue (pip install hyperqueue), then merges it.

    python3 run-hyperqueue.py                   # a local server and WORKERS workers (default 2) of one core each
    python3 run-hyperqueue.py --server-dir DIR  # a running server (`hq server start --server-dir DIR`),
                                            # its workers anywhere that sees this folder

Each task waits for the tasks it depends on (a run for its seed's base model,
the dense controls for the seed's runs). SHEARS names the shears binary
(default: shears on the PATH); THREADS the threads of each task (default 1 on
the local cluster, all of the worker's cores otherwise). Written by `shears plan`.
"""
import os
import subprocess
import sys
from pathlib import Path

from hyperqueue import Job, LocalCluster
from hyperqueue.client import Client
from hyperqueue.cluster import WorkerConfig

HERE = Path(__file__).resolve().parent
# DEPENDS_ON[i]: the tasks task i waits for (from plan.json).
DEPENDS_ON = [{deps}]


def run(client, threads):
    job = Job(name="shears plan")
    env = {{"RAYON_NUM_THREADS": threads}} if threads else {{}}
    shears = os.environ.get("SHEARS", "shears")
    tasks = []
    for i, deps in enumerate(DEPENDS_ON):
        log = HERE / "tasks" / f"{{i:04}}.log"
        tasks.append(
            job.program(
                [shears, "run-task", str(HERE), str(i)],
                deps=[tasks[d] for d in deps],
                env=env,
                stdout=str(log),
                stderr=str(log.with_suffix(".err")),
            )
        )
    client.wait_for_jobs([client.submit(job)])
    subprocess.run([shears, "merge", str(HERE)], check=True)


def main():
    threads = os.environ.get("THREADS")
    if "--server-dir" in sys.argv:
        run(Client(sys.argv[sys.argv.index("--server-dir") + 1]), threads)
        return
    with LocalCluster() as cluster:
        for _ in range(int(os.environ.get("WORKERS", "2"))):
            cluster.start_worker(WorkerConfig(cores=1))
        run(cluster.client(), threads or "1")


if __name__ == "__main__":
    main()
"#,
        deps = deps.join(", ")
    )
}

/// `shears plan`: writes the plan and its scripts.
pub(super) fn plan(a: &PlanArgs, registry: &Registry) -> Result<i32> {
    let mut cfg = match &a.config {
        Some(p) => ExperimentConfig::load(p)?,
        None => ExperimentConfig::demo(),
    };
    cfg.validate(registry)?;
    // The data as every task will find it: an absolute path, not one
    // relative to where the plan was made.
    let here = std::env::current_dir().map_err(|e| Error::io(Path::new("."), e))?;
    cfg.data = cfg.data.resolve_relative_to(&here);
    cfg.base_checkpoint = cfg.base_checkpoint.map(|p| here.join(p));
    let plan = Plan::new(cfg);
    plan.write(&a.out)?;
    let dir = std::fs::canonicalize(&a.out).map_err(|e| Error::io(&a.out, e))?;
    write_atomic(&dir.join("parallel.sh"), parallel_script(&plan).as_bytes())?;
    write_atomic(&dir.join("slurm.sh"), slurm_script(&plan).as_bytes())?;
    write_atomic(
        &dir.join("run-hyperqueue.py"),
        hyperqueue_script(&plan).as_bytes(),
    )?;
    let count = |k| plan.indices(k).len();
    println!(
        "plan: {} tasks ({} base models, {} runs, {} dense-control tasks) in {}",
        plan.tasks.len(),
        count("base"),
        count("run"),
        count("controls"),
        dir.display()
    );
    println!(
        "run them with `shears run-task {0} INDEX` (INDEX 0..={1}) and then `shears merge {0}`, or all with \
         bash {0}/parallel.sh, bash {0}/slurm.sh or python3 {0}/run-hyperqueue.py",
        dir.display(),
        plan.tasks.len() - 1
    );
    Ok(0)
}

/// The task index: the argument, else the first job-array variable set.
fn task_index(a: &RunTaskArgs) -> Result<usize> {
    if let Some(i) = a.index {
        return Ok(i);
    }
    for var in INDEX_VARIABLES {
        if let Ok(v) = std::env::var(var) {
            return v
                .trim()
                .parse()
                .map_err(|_| Error::config(var, format!("`{v}` is not a task index")));
        }
    }
    Err(Error::config(
        "run-task",
        format!("give INDEX, or set one of {}", INDEX_VARIABLES.join(", ")),
    ))
}

/// `shears run-task`.
pub(super) fn run_task(a: &RunTaskArgs, registry: &Registry) -> Result<i32> {
    let index = task_index(a)?;
    let cancel = AtomicBool::new(false);
    let mut lines = |e: &Event| {
        if let Event::RunFinished(r) | Event::ControlFinished(r) = e {
            eprintln!("{}", crate::report::text::run_line(r));
        }
        if let Event::Epoch {
            phase,
            epoch,
            of,
            val,
            ..
        } = e
        {
            eprintln!(
                "{phase}: epoch {epoch}/{of}, val acc {:.2}%",
                val.acc * 100.0
            );
        }
    };
    let label = Plan::load(&a.dir)?.describe(index);
    match plan::run_task(
        &a.dir,
        index,
        registry,
        a.data.as_deref(),
        &cancel,
        &mut lines,
    )? {
        TaskOutcome::AlreadyDone => println!("task {index} ({label}): done before, nothing to do"),
        TaskOutcome::Done(_) => println!("task {index} ({label}): done"),
    }
    Ok(0)
}

/// `shears status`: a line per task and the counts.
pub(super) fn status(dir: &Path) -> Result<i32> {
    let (plan, states) = plan::status(dir)?;
    let mut counts = [0usize; 4];
    for (i, s) in states.iter().enumerate() {
        let (k, word) = match s {
            TaskState::Done => (0, "done".to_string()),
            TaskState::Running(who) => (1, format!("running ({who})")),
            TaskState::Failed(e) => (2, format!("failed: {e}")),
            TaskState::Pending => (3, "pending".to_string()),
        };
        counts[k] += 1;
        println!("{i:>5}  {:<40}  {word}", plan.describe(i));
    }
    println!(
        "{} tasks: {} done, {} running, {} failed, {} pending",
        states.len(),
        counts[0],
        counts[1],
        counts[2],
        counts[3]
    );
    Ok(if counts[2] > 0 { 1 } else { 0 })
}

/// `shears merge`: results.json and results.csv of the finished plan.
pub(super) fn merge(dir: &Path) -> Result<i32> {
    let results = plan::merge(dir)?;
    println!("{}", crate::report::summary_table(&results));
    println!(
        "results: {}",
        dir.join(crate::experiment::output::RESULTS_JSON).display()
    );
    Ok(0)
}
