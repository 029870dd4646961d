//! Every built-in schedule and criterion through the comparison runner on
//! small embedded data: runs complete, reach their targets, are repeatable,
//! and broken plugins or a cancel stop only what they must.

use std::sync::atomic::{AtomicBool, Ordering};

use shears::experiment::{
    run_comparison, ComparisonResults, Context, Event, ExperimentConfig, Status,
};
use shears::plugins::Registry;
use shears_plugin_api::{
    Criterion, CriterionFactory, Decision, LayerView, PluginKind, PluginMeta, PluginResult,
    Schedule, ScheduleFactory, ScheduleState,
};

fn run(cfg: &ExperimentConfig, registry: &Registry) -> (ComparisonResults, Vec<Event>) {
    shears_tests::run_collecting(cfg, registry)
}

fn config(strategies: &str) -> ExperimentConfig {
    let text = shears_tests::tiny_config(strategies);
    ExperimentConfig::from_toml(&text, std::path::Path::new("tiny.toml")).unwrap()
}

#[test]
fn every_schedule_and_criterion_runs_to_its_target() {
    let mut strategies = String::new();
    let builtin = Registry::builtin();
    let schedules = builtin.schedule_names();
    assert_eq!(schedules.len(), 7, "{schedules:?}");
    for s in schedules {
        strategies.push_str(&format!(
            "[[strategy]]\nschedule = \"{s}\"\ncriterion = \"magnitude\"\n"
        ));
    }
    for c in ["channel-norm", "random", "taylor", "wanda"] {
        strategies.push_str(&format!(
            "[[strategy]]\nschedule = \"one-shot\"\ncriterion = \"{c}\"\n"
        ));
    }
    strategies.push_str(
        "[[strategy]]\nname = \"structured\"\nschedule = \"iterative\"\ncriterion = \"channel-norm\"\ngranularity = \"structured\"\nscope = \"layer\"\nschedule_params = { steps = 2 }\n",
    );
    let cfg = config(&strategies);
    let (r, events) = run(&cfg, &builtin);
    assert_eq!(r.status, Some(Status::Complete));
    assert_eq!(r.runs.len(), 12 * 2);
    for run in &r.runs {
        shears_tests::assert_reached_target(run, run.strategy == "structured");
        let last = run.last().unwrap();
        // sparsity never decreases along a run
        assert!(run
            .steps
            .windows(2)
            .all(|w| w[1].sparsity.global >= w[0].sparsity.global));
        assert!(last.test.acc > 0.0 && last.seconds > 0.0);
    }
    let steps = |name: &str, t: f32| {
        r.runs
            .iter()
            .find(|x| x.strategy == name && x.target == t)
            .unwrap()
            .steps
            .iter()
            .map(|s| s.target_sparsity)
            .collect::<Vec<_>>()
    };
    assert_eq!(steps("one-shot/magnitude", 0.9), vec![0.9]);
    assert_eq!(steps("iterative/magnitude", 0.9).len(), 4);
    let geo = steps("iterative-geometric/magnitude", 0.9);
    assert_eq!(geo.len(), 4);
    assert!((geo[0] - 0.5).abs() < 1e-6 && (geo[3] - 0.9).abs() < 1e-6);
    // patience: at most max_epochs per step, at least one epoch each
    let p = r
        .runs
        .iter()
        .find(|x| x.strategy == "patience/magnitude")
        .unwrap();
    assert_eq!(p.steps.len(), 4);
    assert!(events.iter().any(|e| matches!(e, Event::Pruned { .. })));
    let epochs = events
        .iter()
        .filter(|e| matches!(e, Event::Epoch { .. }))
        .count();
    assert!(epochs > 30);
    // What progress displays expect: every run's epochs as its schedule
    // plays them (fewer only where early stopping ends phases sooner), and
    // the whole comparison's.
    let expected: Vec<u32> = events
        .iter()
        .filter_map(|e| match e {
            Event::RunStarted {
                expected_epochs, ..
            } => Some(*expected_epochs),
            _ => None,
        })
        .collect();
    assert_eq!(expected.len(), r.runs.len());
    for (run, &want) in r.runs.iter().zip(&expected) {
        let spent = run.last().unwrap().epochs;
        if run.schedule == "patience" {
            assert!(
                spent <= want && want > 0,
                "{}: {spent} > {want}",
                run.strategy
            );
        } else {
            assert_eq!(spent, want, "{} at {}", run.strategy, run.target);
        }
    }
    let Some(Event::Started {
        expected_epochs, ..
    }) = events.first()
    else {
        panic!("the first event is Started");
    };
    assert!(*expected_epochs >= epochs as u64 && *expected_epochs > 0);
}

#[test]
fn comparisons_are_repeatable() {
    let cfg = config("[[strategy]]\nschedule = \"iterative\"\ncriterion = \"taylor\"\nschedule_params = { steps = 2 }\n");
    let (a, _) = run(&cfg, &Registry::builtin());
    let (b, _) = run(&cfg, &Registry::builtin());
    assert_eq!(a.baselines[0].test, b.baselines[0].test);
    for (x, y) in a.runs.iter().zip(&b.runs) {
        for (s, t) in x.steps.iter().zip(&y.steps) {
            assert_eq!(s.test, t.test);
            assert_eq!(s.sparsity, t.sparsity);
        }
    }
}

struct NanScores;
impl Criterion for NanScores {
    fn score(&mut self, _: &LayerView<'_>, out: &mut [f32]) -> PluginResult<()> {
        out.fill(f32::NAN);
        Ok(())
    }
}

struct Forever;
impl Schedule for Forever {
    fn decide(&mut self, s: &ScheduleState<'_>) -> PluginResult<Decision> {
        Ok(Decision::Prune {
            sparsity: s.current_sparsity + 1e-4,
        })
    }
}

struct Backwards;
impl Schedule for Backwards {
    fn decide(&mut self, s: &ScheduleState<'_>) -> PluginResult<Decision> {
        Ok(Decision::Prune {
            sparsity: if s.prune_steps == 0 { 0.5 } else { 0.2 },
        })
    }
}

fn meta(kind: PluginKind, name: &'static str) -> PluginMeta {
    PluginMeta {
        kind,
        name,
        version: "0.0.1",
        description: "broken on purpose",
        params_schema: r#"{"type":"object","properties":{}}"#,
    }
}

#[test]
fn broken_plugins_fail_their_runs_only() {
    let mut reg = Registry::builtin();
    reg.add_criterion(CriterionFactory {
        meta: meta(PluginKind::Criterion, "nan-scores"),
        create: |_| Ok(Box::new(NanScores)),
    })
    .unwrap();
    reg.add_schedule(ScheduleFactory {
        meta: meta(PluginKind::Schedule, "forever"),
        create: |_| Ok(Box::new(Forever)),
    })
    .unwrap();
    reg.add_schedule(ScheduleFactory {
        meta: meta(PluginKind::Schedule, "backwards"),
        create: |_| Ok(Box::new(Backwards)),
    })
    .unwrap();
    assert!(reg
        .add_schedule(ScheduleFactory {
            meta: meta(PluginKind::Schedule, "one-shot"),
            create: |_| Ok(Box::new(Forever)),
        })
        .is_err());
    let mut cfg = config(
        "[[strategy]]\nschedule = \"one-shot\"\ncriterion = \"nan-scores\"\n\
         [[strategy]]\nschedule = \"forever\"\n\
         [[strategy]]\nschedule = \"backwards\"\n\
         [[strategy]]\nschedule = \"one-shot\"\n",
    );
    cfg.sparsities = vec![0.5];
    let (r, _) = run(&cfg, &reg);
    let status = |name: &str| {
        r.runs
            .iter()
            .find(|x| x.strategy.starts_with(name))
            .unwrap()
            .status
            .clone()
    };
    let msg = |name: &str| match status(name) {
        Status::Failed(m) => m,
        s => panic!("{name}: {s:?}"),
    };
    assert!(
        msg("one-shot/nan-scores").contains("nan-scores")
            && msg("one-shot/nan-scores").contains("NaN")
    );
    assert!(
        msg("forever").contains("did not stop within 1000"),
        "{}",
        msg("forever")
    );
    assert!(
        msg("backwards").contains("cannot decrease"),
        "{}",
        msg("backwards")
    );
    assert_eq!(status("one-shot/magnitude"), Status::Complete);
}

/// Runs `cfg`, cancelling as soon as the first run finishes; the results
/// and every event.
fn cancelled_at_the_first_finished_run(cfg: &ExperimentConfig) -> (ComparisonResults, Vec<Event>) {
    let registry = Registry::builtin();
    let cancel = AtomicBool::new(false);
    let ctx = Context {
        registry: &registry,
        cancel: &cancel,
        out_dir: None,
    };
    let mut events = vec![];
    let r = run_comparison(cfg, &ctx, &mut |e, _| {
        if matches!(e, Event::RunFinished(_)) {
            cancel.store(true, Ordering::SeqCst);
        }
        events.push(e.clone());
    })
    .unwrap();
    (r, events)
}

#[test]
fn cancelling_keeps_finished_runs() {
    let mut cfg =
        config("[[strategy]]\nschedule = \"one-shot\"\n[[strategy]]\nschedule = \"iterative\"\n");
    cfg.jobs = 1;
    let (r, _) = cancelled_at_the_first_finished_run(&cfg);
    assert_eq!(r.status, Some(Status::Cancelled));
    assert_eq!(
        r.runs.len(),
        1,
        "only the finished run; no run starts after the cancel"
    );
    assert_eq!(r.runs[0].status, Status::Complete);
}

/// With runs in parallel, a cancel stops every run in flight: each is kept
/// as cancelled beside the finished ones, and the rest never start.
#[test]
fn cancelling_parallel_runs_keeps_finished_ones() {
    let mut cfg = config(
        "[[strategy]]\nschedule = \"one-shot\"\n[[strategy]]\nschedule = \"iterative\"\n[[strategy]]\nname = \"geometric\"\nschedule = \"iterative-geometric\"\n",
    );
    cfg.jobs = 2;
    cfg.sparsities = vec![0.3, 0.5, 0.7, 0.9];
    let (r, events) = cancelled_at_the_first_finished_run(&cfg);
    assert_eq!(r.status, Some(Status::Cancelled));
    let complete = r
        .runs
        .iter()
        .filter(|x| x.status == Status::Complete)
        .count();
    assert!(complete >= 1, "the first finished run is kept");
    assert!(
        r.runs.len() < 12,
        "runs not started are not run: {}",
        r.runs.len()
    );
    assert!(r
        .runs
        .iter()
        .all(|x| x.status == Status::Complete || x.status == Status::Cancelled));
    let started = events
        .iter()
        .filter(|e| matches!(e, Event::RunStarted { .. }))
        .count();
    assert_eq!(
        started,
        r.runs.len(),
        "every run that started is in the results"
    );
}

/// The dense control of each seed and target trains as long as the longest
/// strategy spent there (one-shot 2 epochs, iterative 3 steps x 1 epoch ->
/// 3), records sparsity 0 and the dense cost, and is saved in results.
#[test]
fn dense_control_trains_as_long_as_the_longest_strategy() {
    let cfg = config(
        "[[strategy]]\nschedule = \"one-shot\"\nschedule_params = { finetune_epochs = 2 }\n\
         [[strategy]]\nschedule = \"iterative\"\nschedule_params = { steps = 3, finetune_epochs = 1 }\n",
    );
    let (r, events) = run(&cfg, &Registry::builtin());
    assert_eq!(r.status, Some(Status::Complete));
    assert_eq!(r.controls.len(), cfg.sparsities.len() * cfg.seeds.len());
    for c in &r.controls {
        assert!(c.is_dense_control());
        assert_eq!(c.status, Status::Complete);
        let s = c.last().unwrap();
        assert_eq!((s.epochs, s.finetune_epochs), (3, 3));
        assert_eq!(s.sparsity.global, 0.0);
        let cost = s.cost.unwrap();
        assert_eq!(cost.nonzero_params, cost.params);
    }
    // Both targets need 3 epochs: trained once, recorded twice, identical.
    assert_eq!(r.controls[0].steps[0].test, r.controls[1].steps[0].test);
    let control_epochs = events
        .iter()
        .filter(|e| matches!(e, Event::Epoch { phase, .. } if phase == "dense control"))
        .count();
    assert_eq!(control_epochs, 3);
    assert_eq!(
        events
            .iter()
            .filter(|e| matches!(e, Event::ControlFinished(_)))
            .count(),
        2
    );
    let mut off = cfg.clone();
    off.dense_control = false;
    let (r, _) = run(&off, &Registry::builtin());
    assert!(r.controls.is_empty());
}

/// A strategy's fine-tuning policy applies to every fine-tuning decision of
/// its schedule; each step records the epochs it used, the metrics right
/// after its prune, its cost, and the run its measured latency.
#[test]
fn finetune_policy_applies_to_every_schedule_step() {
    let cfg = config(
        "[[strategy]]\nname = \"fixed\"\nschedule = \"iterative\"\nschedule_params = { steps = 3, finetune_epochs = 1 }\nfinetune = { epochs = 2 }\n\
         [[strategy]]\nname = \"patient\"\nschedule = \"hybrid\"\nfinetune = { patience = 1, max_epochs = 4 }\n",
    );
    let (r, _) = run(&cfg, &Registry::builtin());
    assert_eq!(r.status, Some(Status::Complete));
    for run in &r.runs {
        assert_eq!(run.status, Status::Complete, "{run:?}");
        let lat = run.latency.expect("latency measured");
        assert!(lat.batch1_ms > 0.0 && lat.batch64_ms > 0.0);
        for s in &run.steps {
            assert!(s.pruned.is_some() && s.cost.is_some());
            let c = s.cost.unwrap();
            assert!(c.compression() >= 1.0 && c.speedup() >= 1.0);
            if run.strategy == "fixed" {
                assert_eq!(s.finetune_epochs, 2);
                assert_eq!(s.kept_epoch, None);
            } else {
                assert!((1..=4).contains(&s.finetune_epochs), "{s:?}");
                let kept = s.kept_epoch.expect("patience restores the best");
                assert!(kept <= s.finetune_epochs);
            }
        }
        let total: u32 = run.steps.iter().map(|s| s.finetune_epochs).sum();
        assert_eq!(run.last().unwrap().epochs, total);
    }
    let fixed = r.runs.iter().find(|x| x.strategy == "fixed").unwrap();
    assert_eq!(fixed.steps.len(), 3);
}

/// Equal budget: every strategy spends the same fine-tuning epochs at each
/// target, split over its steps (later steps take the remainder).
#[test]
fn equal_budget_gives_every_strategy_the_same_epochs() {
    let mut cfg = config(
        "[[strategy]]\nschedule = \"one-shot\"\n\
         [[strategy]]\nschedule = \"iterative\"\nschedule_params = { steps = 2 }\n\
         [[strategy]]\nschedule = \"hybrid\"\nschedule_params = { steps = 2 }\n",
    );
    cfg.finetune_budget = Some(5);
    let (r, _) = run(&cfg, &Registry::builtin());
    for run in &r.runs {
        assert_eq!(run.status, Status::Complete, "{run:?}");
        assert_eq!(run.last().unwrap().epochs, 5, "{}", run.strategy);
        let per_step: Vec<u32> = run.steps.iter().map(|s| s.finetune_epochs).collect();
        let want: &[u32] = match (run.schedule.as_str(), run.steps.len()) {
            ("one-shot", _) | (_, 1) => &[5],
            ("iterative", _) => &[2, 3],
            (_, 3) => &[1, 2, 2],
            (_, n) => panic!("hybrid took {n} steps"),
        };
        assert_eq!(per_step, want, "{} at {}", run.strategy, run.target);
    }
    cfg.strategies[0].finetune = Some(shears::train::FinetunePolicy::Patience(Default::default()));
    let e = cfg.validate(&Registry::builtin()).unwrap_err().to_string();
    assert!(
        e.contains("strategy[0].finetune") && e.contains("finetune_budget"),
        "{e}"
    );
}

/// A plugin schedule that prunes twice and asks for 1 epoch after each: a
/// strategy's policy decides how that fine-tuning runs.
struct TwoSteps;
impl Schedule for TwoSteps {
    fn decide(&mut self, s: &ScheduleState<'_>) -> PluginResult<Decision> {
        Ok(match (s.last, s.prune_steps) {
            (shears_plugin_api::Phase::Pruned, _) => Decision::FineTune {
                max_epochs: 1,
                patience: 0,
            },
            (_, n) if n < 2 => Decision::Prune {
                sparsity: s.target_sparsity * (n + 1) as f32 / 2.0,
            },
            _ => Decision::Stop,
        })
    }
}

#[test]
fn finetune_policy_applies_to_plugin_schedules() {
    let mut reg = Registry::builtin();
    reg.add_schedule(ScheduleFactory {
        meta: meta(PluginKind::Schedule, "two-steps"),
        create: |_| Ok(Box::new(TwoSteps)),
    })
    .unwrap();
    let cfg = config(
        "[[strategy]]\nname = \"as asked\"\nschedule = \"two-steps\"\n\
         [[strategy]]\nname = \"three each\"\nschedule = \"two-steps\"\nfinetune = { epochs = 3 }\n",
    );
    let (r, _) = run(&cfg, &reg);
    for run in &r.runs {
        assert_eq!(run.status, Status::Complete, "{run:?}");
        let per_step: Vec<u32> = run.steps.iter().map(|s| s.finetune_epochs).collect();
        let want = if run.strategy == "as asked" {
            [1, 1]
        } else {
            [3, 3]
        };
        assert_eq!(per_step, want, "{}", run.strategy);
    }
}

/// The events that belong to the run of `strategy` at `target` (seed 0),
/// timings aside, in order.
fn events_of(events: &[Event], strategy: &str, target: f32) -> Vec<serde_json::Value> {
    events
        .iter()
        .filter(|e| match e {
            Event::RunStarted {
                strategy: s,
                target: t,
                ..
            } => s == strategy && *t == target,
            Event::Epoch {
                phase, target: t, ..
            } => phase == strategy && *t == target,
            Event::Pruned {
                strategy: s,
                run_target,
                ..
            }
            | Event::Step {
                strategy: s,
                run_target,
                ..
            } => s == strategy && *run_target == target,
            Event::RunFinished(r) => r.strategy == strategy && r.target == target,
            _ => false,
        })
        .map(|e| shears_tests::without_timings(serde_json::to_value(e).unwrap()))
        .collect()
}

#[test]
fn runs_in_parallel_jobs_equal_runs_one_after_another() {
    let strategies = "[[strategy]]\nschedule = \"one-shot\"\ncriterion = \"magnitude\"\n\
        [[strategy]]\nname = \"taylor steps\"\nschedule = \"iterative\"\ncriterion = \"taylor\"\nschedule_params = { steps = 2 }\n\
        [[strategy]]\nname = \"patience\"\nschedule = \"one-shot\"\ncriterion = \"magnitude\"\nfinetune = { patience = 1, max_epochs = 3 }\n";
    let mut cfg = config(strategies);
    // A convolutional model: the convolution's weight gradient is the sum
    // that would depend on the threads if anything did.
    cfg.model = shears::model::ModelSpec::from_name("lenet5").unwrap();
    cfg.sparsities = vec![0.5, 0.8, 0.9];
    cfg.latency = false;
    cfg.jobs = 1;
    let (one, events_one) = run(&cfg, &Registry::builtin());
    cfg.jobs = 2;
    let (two, events_two) = run(&cfg, &Registry::builtin());
    assert_eq!(one.status, Some(Status::Complete));
    assert_eq!(two.status, Some(Status::Complete));
    assert_eq!(one.runs.len(), 9);
    let runs = |r: &ComparisonResults| -> Vec<serde_json::Value> {
        r.runs
            .iter()
            .chain(&r.controls)
            .map(|x| shears_tests::without_timings(serde_json::to_value(x).unwrap()))
            .collect()
    };
    // Same runs, same order, same numbers, bit for bit.
    assert_eq!(runs(&one), runs(&two));
    for run in &one.runs {
        let (a, b) = (
            events_of(&events_one, &run.strategy, run.target),
            events_of(&events_two, &run.strategy, run.target),
        );
        assert!(a.len() >= 4, "{} @ {}: {a:?}", run.strategy, run.target);
        assert_eq!(a, b, "{} @ {}", run.strategy, run.target);
    }
    // Two runs were in flight at once: a run started before the previous
    // one finished.
    let mut in_flight = 0usize;
    let mut most = 0;
    for e in &events_two {
        match e {
            Event::RunStarted { .. } => in_flight += 1,
            Event::RunFinished(_) => in_flight -= 1,
            _ => {}
        }
        most = most.max(in_flight);
    }
    assert_eq!(most, 2, "jobs = 2 runs two at once");
}

/// Every schedule (with magnitude) and every criterion (one-shot) reaches
/// its targets on graph models: a MobileNetV2 (depthwise convolutions,
/// residual sums) and a ViT (attention projections, a class token and a
/// position embedding, which are not pruned).
#[test]
fn every_schedule_and_criterion_runs_on_graph_models() {
    let builtin = Registry::builtin();
    let mut strategies = String::new();
    for s in builtin.schedule_names() {
        strategies.push_str(&format!(
            "[[strategy]]\nschedule = \"{s}\"\ncriterion = \"magnitude\"\n"
        ));
    }
    for c in ["channel-norm", "random", "taylor", "wanda"] {
        strategies.push_str(&format!(
            "[[strategy]]\nschedule = \"one-shot\"\ncriterion = \"{c}\"\n"
        ));
    }
    let models = [
        shears::model::ModelSpec::Mobilenetv2 { width: 25 },
        shears::model::ModelSpec::Vit {
            patch: 7,
            dim: 16,
            depth: 1,
            heads: 2,
        },
    ];
    for model in models {
        let mut cfg = config(&strategies);
        cfg.model = model.clone();
        cfg.dense_control = false;
        let (r, _) = run(&cfg, &builtin);
        assert_eq!(r.status, Some(Status::Complete), "{model:?}");
        assert_eq!(r.runs.len(), 11 * 2, "{model:?}");
        for run in &r.runs {
            shears_tests::assert_reached_target(run, false);
            assert!(
                run.last().unwrap().test.acc > 0.0,
                "{model:?} {}",
                run.strategy
            );
        }
    }
}
