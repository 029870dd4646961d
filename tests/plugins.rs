//! Plugin libraries through the C ABI: the built-in plugins built as cdylibs
//! give the same scores and decisions as the statically linked ones, and
//! broken plugins (panics, NaN scores, bad schedules, duplicates, bad
//! parameters) fail with a message naming the plugin and file, never a crash.

use shears::experiment::{ExperimentConfig, Status};
use shears::plugins::Registry;
use shears_plugin_api::{Decision, Granularity, LayerKind, LayerView, Phase, ScheduleState};
use shears_tests::{plugin_library, run_collecting, tiny_config};

/// A registry holding only the plugins of `lib` (loaded from its cdylib).
fn loaded(lib: &str) -> Registry {
    let mut r = Registry::default();
    r.add_library(&plugin_library(lib)).unwrap();
    r
}

const NORMS: [f32; 3] = [0.5, 1.0, 2.0];

fn layer<'a>(shape: &'a [usize], w: &'a [f32], g: Granularity) -> LayerView<'a> {
    LayerView {
        name: "conv",
        kind: LayerKind::Conv2d,
        shape,
        weight: w,
        mask: w,
        grad: Some(w),
        act_norms: Some(&NORMS[..shape[1]]),
        granularity: g,
    }
}

#[test]
fn builtin_cdylibs_score_and_decide_like_the_linked_plugins() {
    let builtin = Registry::builtin();
    let w: Vec<f32> = (0..2 * 3 * 2 * 2)
        .map(|i| ((i * 37 % 11) as f32 - 5.0) / 3.0)
        .collect();
    let shape = [2, 3, 2, 2];
    for (lib, names) in [
        ("shears_magnitude", vec!["magnitude", "channel-norm"]),
        ("shears_random", vec!["random"]),
        ("shears_taylor", vec!["taylor"]),
        ("shears_wanda", vec!["wanda"]),
    ] {
        let dynamic = loaded(lib);
        for name in names {
            for g in [Granularity::Unstructured, Granularity::StructuredChannel] {
                let view = layer(&shape, &w, g);
                let params = serde_json::json!({});
                let mut a = vec![0.0; view.score_len()];
                let mut b = vec![0.0; view.score_len()];
                builtin
                    .criterion(name, &params)
                    .unwrap()
                    .score(&view, &mut a)
                    .unwrap();
                let mut c = dynamic.criterion(name, &params).unwrap();
                c.score(&view, &mut b).unwrap();
                assert_eq!(a, b, "{name} {g:?}");
                assert_eq!(c.needs(), builtin.criterion(name, &params).unwrap().needs());
            }
        }
    }
    let dynamic = loaded("shears_schedules");
    for name in builtin.schedule_names() {
        let params = serde_json::json!({});
        let mut a = builtin.schedule(name, &params).unwrap();
        let mut b = dynamic.schedule(name, &params).unwrap();
        let (mut steps, mut last, mut current, mut history) = (0, Phase::Start, 0.0, vec![]);
        for _ in 0..100 {
            let s = ScheduleState {
                prune_steps: steps,
                last,
                current_sparsity: current,
                target_sparsity: 0.9,
                epochs_spent: history.len() as u32,
                val_acc_history: &history,
            };
            let d = a.decide(&s).unwrap();
            assert_eq!(d, b.decide(&s).unwrap(), "{name}");
            match d {
                Decision::Prune { sparsity } => {
                    (steps, last, current) = (steps + 1, Phase::Pruned, sparsity)
                }
                Decision::FineTune { .. } => {
                    last = Phase::FineTuned;
                    history.push(0.5);
                }
                Decision::Stop => break,
            }
        }
        assert_eq!(current, 0.9, "{name} reached the target");
    }
}

#[test]
fn duplicate_names_are_refused_and_listed() {
    let mut r = Registry::builtin();
    let path = plugin_library("shears_magnitude");
    let e = r.add_library(&path).unwrap_err();
    assert!(
        matches!(e, shears::plugins::LibraryError::Duplicate { .. }),
        "{e:?}"
    );
    let e = e.to_string();
    assert!(
        e.contains("magnitude") && e.contains("libshears_magnitude"),
        "{e}"
    );
    assert_eq!(r.errors().len(), 1);
    assert!(r.rows().iter().any(|row| row.status.contains("duplicates")));
    // nothing of the refused library was added
    assert_eq!(
        r.criterion_names()
            .iter()
            .filter(|n| **n == "magnitude")
            .count(),
        1
    );
}

#[test]
fn panics_and_errors_inside_calls_become_messages() {
    let r = loaded("shears_misbehaving_plugin");
    let w = [1.0f32; 4];
    let view = layer(&[2, 2], &w, Granularity::Unstructured);
    let mut out = [0.0; 4];
    let mut c = r
        .criterion("misbehave", &serde_json::json!({"mode": "panic"}))
        .unwrap();
    let e = c.score(&view, &mut out).unwrap_err().to_string();
    assert!(
        e.contains("panicked") && e.contains("deliberate panic"),
        "{e}"
    );
    let mut c = r
        .criterion("misbehave", &serde_json::json!({"mode": "error"}))
        .unwrap();
    assert_eq!(
        c.score(&view, &mut out).unwrap_err().to_string(),
        "deliberate error"
    );
    let e = r
        .criterion("misbehave", &serde_json::json!({"mood": "ok"}))
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("misbehave") && e.contains("mood") && e.contains("libshears_misbehaving"),
        "{e}"
    );
    let mut s = r
        .schedule("misbehave-schedule", &serde_json::json!({"mode": "panic"}))
        .unwrap();
    let state = ScheduleState::start(0.5);
    assert!(s
        .decide(&state)
        .unwrap_err()
        .to_string()
        .contains("deliberate panic"));
}

#[test]
fn broken_plugins_fail_their_runs_and_the_rest_completes() {
    let mut registry = Registry::builtin();
    registry
        .add_library(&plugin_library("shears_misbehaving_plugin"))
        .unwrap();
    let mut strategies = String::new();
    for (name, extra) in [
        (
            "panic",
            "criterion = \"misbehave\"\ncriterion_params = { mode = \"panic\" }",
        ),
        (
            "nan",
            "criterion = \"misbehave\"\ncriterion_params = { mode = \"nan\" }",
        ),
        (
            "inf",
            "criterion = \"misbehave\"\ncriterion_params = { mode = \"inf\" }",
        ),
        ("decrease", "schedule_params = { mode = \"decrease\" }"),
        ("one", "schedule_params = { mode = \"one\" }"),
        ("forever", "schedule_params = { mode = \"forever\" }"),
        ("fine", "criterion = \"misbehave\""),
    ] {
        strategies.push_str(&format!(
            "[[strategy]]\nname = \"{name}\"\nschedule = \"misbehave-schedule\"\n{extra}\n"
        ));
    }
    let text = tiny_config(&strategies).replace(
        "sparsities = [0.5, 0.9]",
        "sparsities = [0.5]\nmax_epochs_per_run = 5",
    );
    let cfg = ExperimentConfig::from_toml(&text, std::path::Path::new("p.toml")).unwrap();
    let (r, _) = run_collecting(&cfg, &registry);
    assert_eq!(r.status, Some(Status::Complete));
    let msg = |name: &str| match &r.runs.iter().find(|x| x.strategy == name).unwrap().status {
        Status::Failed(m) => m.clone(),
        s => panic!("{name}: {s:?}"),
    };
    assert!(
        msg("panic").contains("panicked") && msg("panic").contains("misbehave"),
        "{}",
        msg("panic")
    );
    assert!(msg("nan").contains("NaN"), "{}", msg("nan"));
    assert!(msg("inf").contains("inf"), "{}", msg("inf"));
    assert!(
        msg("decrease").contains("cannot decrease"),
        "{}",
        msg("decrease")
    );
    assert!(msg("one").contains("outside [0, 1)"), "{}", msg("one"));
    assert!(
        msg("forever").contains("did not stop within 5"),
        "{}",
        msg("forever")
    );
    let fine = r.runs.iter().find(|x| x.strategy == "fine").unwrap();
    assert_eq!(fine.status, Status::Complete);
}

#[test]
fn out_of_tree_example_plugin_builds_loads_and_prunes() {
    let manifest =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/examples/obd/Cargo.toml");
    let target = shears_tests::plugin_cdylibs().join("../../plugin-examples");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = std::process::Command::new(cargo)
        .args(["build", "-q", "--manifest-path"])
        .arg(&manifest)
        .env("CARGO_TARGET_DIR", &target)
        .status()
        .unwrap();
    assert!(status.success(), "building the example plugin failed");
    let lib = target.join("debug").join(format!(
        "{}shears_obd_example{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    ));
    let mut registry = Registry::builtin();
    assert_eq!(registry.add_library(&lib).unwrap(), 1);
    // 1/2 (g^2 + damping) w^2 with g = w
    let w = [2.0f32, -1.0, 0.5, 0.0];
    let view = LayerView {
        name: "fc",
        kind: LayerKind::Linear,
        shape: &[2, 2],
        weight: &w,
        mask: &[1.0; 4],
        grad: Some(&w),
        act_norms: None,
        granularity: Granularity::Unstructured,
    };
    let mut out = [0.0; 4];
    let mut c = registry
        .criterion("obd", &serde_json::json!({"damping": 0.0}))
        .unwrap();
    assert!(c.needs().gradient);
    c.score(&view, &mut out).unwrap();
    assert_eq!(out, [8.0, 0.5, 0.03125, 0.0]);
    let text = tiny_config("[[strategy]]\nschedule = \"iterative\"\ncriterion = \"obd\"\nschedule_params = { steps = 2 }\n");
    let cfg = ExperimentConfig::from_toml(&text, std::path::Path::new("obd.toml")).unwrap();
    let (r, _) = run_collecting(&cfg, &registry);
    assert!(
        r.runs.iter().all(|x| x.status == Status::Complete),
        "{:?}",
        r.runs[0].status
    );
}
