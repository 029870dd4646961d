//! A comparison as a plan of tasks: run task by task (in-process, and by
//! GNU parallel, HyperQueue and Slurm through the `shears` binary) and
//! merged, it gives the
//! results of the same comparison run in one process, field for field
//! (timings aside); finished tasks do not run again, a task that died
//! half-way runs again cleanly, and a task whose base model is missing
//! says so.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::AtomicBool;

use shears::experiment::plan::{self, Plan, TaskOutcome, TaskState, TASKS_DIR};
use shears::experiment::{run_comparison, ComparisonResults, Context, ExperimentConfig};
use shears::plugins::Registry;

fn config() -> ExperimentConfig {
    let strategies = "[[strategy]]\nschedule = \"one-shot\"\ncriterion = \"magnitude\"\n\
        [[strategy]]\nname = \"taylor steps\"\nschedule = \"iterative\"\ncriterion = \"taylor\"\nschedule_params = { steps = 2 }\n";
    let text = shears_tests::tiny_config(strategies)
        .replace("seeds = [0]", "seeds = [0, 1]")
        .replace("arch = \"mlp\"\nhidden = [64]", "arch = \"lenet5\"");
    let mut cfg = ExperimentConfig::from_toml(&text, Path::new("plan.toml")).unwrap();
    cfg.latency = false;
    cfg.jobs = 1;
    cfg
}

fn single_process(cfg: &ExperimentConfig, out: &Path) -> ComparisonResults {
    let registry = Registry::builtin();
    let cancel = AtomicBool::new(false);
    let ctx = Context {
        registry: &registry,
        cancel: &cancel,
        out_dir: Some(out),
    };
    run_comparison(cfg, &ctx, &mut |_, _| {}).unwrap()
}

fn assert_same(a: &ComparisonResults, b: &ComparisonResults) {
    let (a, b) = (
        shears_tests::without_timings(serde_json::to_value(a).unwrap()),
        shears_tests::without_timings(serde_json::to_value(b).unwrap()),
    );
    for key in [
        "config",
        "device",
        "data",
        "model",
        "baselines",
        "runs",
        "controls",
        "status",
    ] {
        assert_eq!(a[key], b[key], "{key}");
    }
    assert_eq!(a, b);
}

#[test]
fn tasks_run_one_by_one_merge_into_the_single_process_results() {
    let cfg = config();
    let dir = tempfile::tempdir().unwrap();
    let one = single_process(&cfg, &dir.path().join("one"));
    let planned = dir.path().join("plan");
    let plan = Plan::new(cfg.clone());
    // 2 bases, 2 strategies x 2 targets x 2 seeds, 2 control tasks.
    assert_eq!(plan.tasks.len(), 2 + 8 + 2);
    assert_eq!(plan.depends_on(2), vec![0]);
    assert_eq!(plan.depends_on(11), vec![6, 7, 8, 9]);
    plan.write(&planned).unwrap();
    let registry = Registry::builtin();
    let cancel = AtomicBool::new(false);
    let run = |i: usize| plan::run_task(&planned, i, &registry, None, &cancel, &mut |_| {});

    // A run before its base model: refused, saying which task it waits for.
    let e = run(3).unwrap_err().to_string();
    assert!(
        e.contains("waits for task 0") && e.contains("base model, seed 0"),
        "{e}"
    );
    // Named as what was asked, not as a config key (issue 27, item 13).
    assert!(e.starts_with("task 3: ") && !e.contains("config"), "{e}");
    assert_eq!(plan::task_state(&planned, 3), TaskState::Pending);
    let e = plan::merge(&planned).unwrap_err().to_string();
    assert!(e.contains("12 of 12 tasks are not done"), "{e}");
    assert!(e.starts_with("merge: ") && !e.contains("config"), "{e}");

    // Bases, then the runs in reverse order, then the controls.
    for i in [1, 0] {
        assert!(matches!(run(i).unwrap(), TaskOutcome::Done(_)));
    }
    // A task that died half-way: its marker, no output; it shows as
    // running and runs again cleanly.
    let marker = planned.join(TASKS_DIR).join("0009.running");
    std::fs::write(&marker, "host-a, process 1, since then").unwrap();
    assert!(matches!(plan::task_state(&planned, 9), TaskState::Running(w) if w.contains("host-a")));
    for i in (2..10).rev() {
        assert!(matches!(run(i).unwrap(), TaskOutcome::Done(_)), "task {i}");
    }
    assert!(!marker.exists());
    for i in [10, 11] {
        run(i).unwrap();
    }
    // Done tasks do nothing when run again.
    assert_eq!(run(4).unwrap(), TaskOutcome::AlreadyDone);
    let (_, states) = plan::status(&planned).unwrap();
    assert!(states.iter().all(|s| *s == TaskState::Done));
    let merged = plan::merge(&planned).unwrap();
    assert_same(&one, &merged);
    // What merge wrote is what a single-process comparison writes.
    let saved = shears::experiment::load_results(&planned).unwrap();
    assert_same(&one, &saved);
    shears::experiment::output::save_results(&dir.path().join("one"), &one).unwrap();
    let csv = |d: &Path| {
        std::fs::read_to_string(d.join("results.csv"))
            .unwrap()
            .lines()
            .count()
    };
    assert_eq!(csv(&dir.path().join("one")), csv(&planned));
    // Nothing in the folder names the folder: it can move or be mounted
    // elsewhere.
    let own = planned.to_string_lossy().into_owned();
    for entry in std::fs::read_dir(planned.join(TASKS_DIR)).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        assert!(!text.contains(&own), "{text}");
    }
    for file in ["plan.json", "results.json"] {
        assert!(!std::fs::read_to_string(planned.join(file))
            .unwrap()
            .contains(&own));
    }
    // Every model file the results name is in the plan folder.
    for r in &merged.runs {
        assert!(planned.join(r.model_file.as_ref().unwrap()).is_file());
    }
}

/// Whether `program args` runs (GNU parallel, HyperQueue's Python package);
/// CI installs both and sets SHEARS_REQUIRE_ENGINES, so there a missing one
/// fails the test.
fn have(program: &str, args: &[&str]) -> bool {
    let found = Command::new(program)
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success());
    if !found && std::env::var_os("SHEARS_REQUIRE_ENGINES").is_some() {
        panic!(
            "`{program} {}` does not run: install it (.ci/run does)",
            args.join(" ")
        );
    }
    if !found {
        eprintln!("skipped: {program} is not installed");
    }
    found
}

/// A comparison run in one process beside its plan folder written by
/// `shears plan`.
struct Planned {
    /// Holds both (bind it: the folders go when it drops).
    _dir: tempfile::TempDir,
    /// The single-process results.
    one: ComparisonResults,
    /// The plan folder.
    planned: std::path::PathBuf,
    /// The `shears` binary.
    bin: std::path::PathBuf,
    /// What `shears plan` printed.
    printed: String,
}

/// The test config with `seeds`, run in one process and planned with
/// `shears plan` (from the config written as a file).
fn planned(seeds: &[u64]) -> Planned {
    let mut cfg = config();
    cfg.seeds = seeds.to_vec();
    let dir = tempfile::tempdir().unwrap();
    let one = single_process(&cfg, &dir.path().join("one"));
    let config_file = dir.path().join("plan.toml");
    std::fs::write(&config_file, toml::to_string(&cfg).unwrap()).unwrap();
    let planned = dir.path().join("plan");
    let bin = shears_tests::shears_bin();
    let out = Command::new(&bin)
        .args(["plan", "--config"])
        .arg(&config_file)
        .arg("--out")
        .arg(&planned)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Planned {
        _dir: dir,
        one,
        planned,
        bin,
        printed: String::from_utf8_lossy(&out.stdout).into_owned(),
    }
}

/// Runs an engine's script `run` (with SHEARS set to `bin`), which merges
/// `planned` at its end; the merged results must equal `one`'s.
fn run_script_and_compare(mut run: Command, bin: &Path, planned: &Path, one: &ComparisonResults) {
    let out = run.env("SHEARS", bin).output().unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let merged = shears::experiment::load_results(planned).unwrap();
    assert_same(one, &merged);
}

#[test]
fn gnu_parallel_runs_the_plan_script_and_merges_the_same_results() {
    if !have("parallel", &["--version"]) {
        return;
    }
    // `_dir` bound, so the folders live to the end of the test.
    let Planned {
        _dir,
        one,
        planned,
        bin,
        printed: text,
    } = planned(&[0, 1]);
    assert!(
        text.contains("12 tasks (2 base models, 8 runs, 2 dense-control tasks)"),
        "{text}"
    );
    let slurm = std::fs::read_to_string(planned.join("slurm.sh")).unwrap();
    assert!(
        slurm.contains("--array=0-1 ")
            && slurm.contains("--array=2-9 ")
            && slurm.contains("--array=10-11 "),
        "{slurm}"
    );
    assert!(
        slurm.contains("after=(--dependency=afterok:$bases)"),
        "{slurm}"
    );
    let hq = std::fs::read_to_string(planned.join("run-hyperqueue.py")).unwrap();
    assert!(hq.contains("DEPENDS_ON = [[], [], [0], [0], [0], [0], [1], [1], [1], [1], [2, 3, 4, 5], [6, 7, 8, 9]]"), "{hq}");
    let mut run = Command::new("bash");
    run.arg(planned.join("parallel.sh")).env("JOBS", "2");
    run_script_and_compare(run, &bin, &planned, &one);
    // The index from a job-array variable; a finished task does nothing.
    let again = Command::new(&bin)
        .arg("run-task")
        .arg(&planned)
        .env("SLURM_ARRAY_TASK_ID", "3")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&again.stdout);
    assert!(
        again.status.success() && text.contains("task 3 (") && text.contains("done before"),
        "{text}"
    );
    // The Slurm script is valid bash.
    let syntax = Command::new("bash")
        .arg("-n")
        .arg(planned.join("slurm.sh"))
        .status()
        .unwrap();
    assert!(syntax.success());
    let status = Command::new(&bin)
        .arg("status")
        .arg(&planned)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(
        text.contains("12 tasks: 12 done, 0 running, 0 failed, 0 pending"),
        "{text}"
    );
}

#[test]
fn hyperqueue_runs_the_plan_on_a_local_cluster_and_merges_the_same_results() {
    if !have("python3", &["-c", "import hyperqueue"]) {
        return;
    }
    let Planned {
        _dir,
        one,
        planned,
        bin,
        ..
    } = planned(&[3]);
    // A local server with two workers of one core each.
    let mut run = Command::new("python3");
    run.arg(planned.join("run-hyperqueue.py"))
        .env("WORKERS", "2");
    run_script_and_compare(run, &bin, &planned, &one);
}

#[test]
fn slurm_runs_the_plan_job_arrays_and_merges_the_same_results() {
    if std::env::var_os("SHEARS_NO_SLURM").is_some() {
        eprintln!("skipped: .ci/run could not start a single-node Slurm here");
        return;
    }
    if !have("sinfo", &[]) {
        return;
    }
    let Planned {
        _dir,
        one,
        planned,
        bin,
        ..
    } = planned(&[5]);
    // Submits the arrays and the merge, and returns at once.
    let submit = Command::new("bash")
        .arg(planned.join("slurm.sh"))
        .env("SHEARS", &bin)
        .output()
        .unwrap();
    assert!(
        submit.status.success(),
        "{}",
        String::from_utf8_lossy(&submit.stderr)
    );
    let results = planned.join("results.json");
    let t0 = std::time::Instant::now();
    while !results.is_file() {
        let status = Command::new(&bin)
            .arg("status")
            .arg(&planned)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&status.stdout);
        assert!(!text.contains("failed:"), "{text}");
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(900),
            "Slurm did not finish the plan: {text}"
        );
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
    // The merge job writes results.json atomically; read it once whole.
    let merged = shears::experiment::load_results(&planned).unwrap();
    assert_same(&one, &merged);
}
