//! UI tests of the desktop app with egui_kittest: the real `ShearsApp`
//! driven through its accessibility tree (clicks, dropped files), no display
//! needed. Comparisons really run, on the tiny config.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use egui_kittest::kittest::Queryable;
use egui_kittest::Harness;
use shears::experiment::output::{save_results, RESULTS_JSON};
use shears::experiment::{load_results, ExperimentConfig, Status};
use shears::gui::files::DialogPurpose;
use shears::gui::{LaunchOptions, Settings, ShearsApp, Tab};
use shears::model::export::ExportFormat;
use shears::report::sample::sample_results;

fn tiny() -> ExperimentConfig {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/tiny.toml");
    ExperimentConfig::load(&path).unwrap()
}

fn harness(config: ExperimentConfig, out: &Path) -> Harness<'static, ShearsApp> {
    harness_with(config, out, LaunchOptions::default())
}

/// As the real app runs: new plugin libraries are probed in a child `shears`
/// process before they are loaded.
fn probing_harness(config: ExperimentConfig, out: &Path) -> Harness<'static, ShearsApp> {
    let launch = LaunchOptions {
        probe_exe: Some(shears_tests::shears_bin()),
        ..Default::default()
    };
    harness_with(config, out, launch)
}

fn harness_with(
    config: ExperimentConfig,
    out: &Path,
    launch: LaunchOptions,
) -> Harness<'static, ShearsApp> {
    harness_sized(config, out, launch, [1280.0, 900.0])
}

/// A tall harness (all of Setup in view, the import form included) for
/// `config`, writing under `out`.
fn tall_harness(config: ExperimentConfig, out: &Path) -> Harness<'static, ShearsApp> {
    harness_sized(config, out, LaunchOptions::default(), [1280.0, 2000.0])
}

/// A harness whose window is `size` (a tall one shows every strategy box of
/// Setup at once).
fn harness_sized(
    config: ExperimentConfig,
    out: &Path,
    launch: LaunchOptions,
    size: [f32; 2],
) -> Harness<'static, ShearsApp> {
    let settings = Settings {
        config,
        out_dir: out.to_path_buf(),
        ..Default::default()
    };
    harness_from(settings, launch, size)
}

/// The app started with `settings` (as saved by a session) in a window of `size`.
fn harness_from(
    settings: Settings,
    launch: LaunchOptions,
    size: [f32; 2],
) -> Harness<'static, ShearsApp> {
    let app = ShearsApp::new(settings, launch);
    Harness::builder()
        .with_size(size)
        .build_ui_state(|ui, app: &mut ShearsApp| app.show(ui), app)
}

/// Steps the UI until `done` holds (the worker runs meanwhile), failing after `limit`.
fn step_until(
    h: &mut Harness<'_, ShearsApp>,
    limit: Duration,
    what: &str,
    done: impl Fn(&ShearsApp) -> bool,
) {
    let t0 = Instant::now();
    while !done(h.state()) {
        assert!(t0.elapsed() < limit, "timed out waiting for: {what}");
        h.step();
        std::thread::sleep(Duration::from_millis(20));
    }
    h.step();
    h.step();
}

#[derive(Debug)]
struct Dropped(PathBuf);

impl eframe::egui::DroppedFile for Dropped {
    fn path(&self) -> &Path {
        &self.0
    }
    fn bytes(&self) -> Result<Vec<u8>, String> {
        std::fs::read(&self.0).map_err(|e| e.to_string())
    }
}

fn drop_file(h: &mut Harness<'_, ShearsApp>, path: &Path) {
    h.input_mut()
        .dropped_files
        .push(Arc::new(Dropped(path.to_path_buf())));
    h.step();
    h.step();
}

/// Clicks the widget labelled `label` and lets the app carry it out (its
/// action applies after the frame; the next frame shows the result).
fn click(h: &mut Harness<'_, ShearsApp>, label: &str) {
    h.get_by_label(label).click();
    h.step();
    h.step();
}

/// The folder the app gave the last comparison it started.
fn run_dir(h: &Harness<'_, ShearsApp>) -> PathBuf {
    h.state().results[0]
        .dir
        .clone()
        .expect("a comparison folder")
}

fn notices(h: &Harness<'_, ShearsApp>) -> String {
    h.state()
        .notices()
        .iter()
        .map(|n| n.text.clone())
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn demo_comparison_runs_to_completion_from_the_run_button() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let mut h = harness(tiny(), &out);
    h.step();
    // Setup shows the three preselected strategies with their schedules' forms.
    assert!(h.query_by_label_contains("Ready: 3 strategies").is_some());
    h.get_by_label("Run comparison").click();
    h.step();
    assert!(h.state().is_running());
    assert_eq!(h.state().settings.tab, Tab::Run);
    // While it runs the window repaints only on the worker's messages (a few
    // a second) and a clock tick a second: between them it settles within a
    // few frames (more only when a message lands while it settles). A
    // spinner (a repaint every frame) took a core from training: it never
    // settles.
    let t0 = Instant::now();
    let (mut checks, mut slow) = (0, 0);
    while h.state().is_running() {
        assert!(t0.elapsed() < Duration::from_secs(600), "timed out");
        let frames = h
            .try_run()
            .unwrap_or_else(|e| panic!("the window keeps repainting during a run: {e}"));
        slow += usize::from(frames > 4);
        checks += 1;
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(checks > 10, "the run was checked while it ran");
    assert!(
        slow * 5 <= checks,
        "{slow} of {checks} checks took over 4 frames to settle"
    );
    h.step();
    h.step();
    let n = notices(&h);
    assert!(n.contains("comparison finished"), "{n}");
    let p = h.state().progress().unwrap();
    assert_eq!(p.ended, Some(Status::Complete));
    assert_eq!(p.overall.fraction(), 1.0);
    assert!(p.log.iter().any(|l| l.contains("base model (seed 0)")));
    // The Run view holds every training whole: the base, each run with all
    // its epochs and prunes, the dense controls; the list names them all.
    use shears::report::TraceKind;
    let kinds: Vec<TraceKind> = p.traces.all.iter().map(|t| t.kind).collect();
    assert_eq!(kinds.iter().filter(|k| **k == TraceKind::Run).count(), 6);
    assert_eq!(kinds[0], TraceKind::Base);
    assert!(kinds.contains(&TraceKind::Control));
    for t in p.traces.all.iter().filter(|t| t.kind == TraceKind::Run) {
        assert!(t.done() && !t.failed, "{t:?}");
        assert_eq!(t.test.len(), t.prunes.len(), "{}", t.title);
        assert!(t.epochs >= 1 && t.train.len() == t.epochs as usize);
    }
    let geo = p
        .traces
        .all
        .iter()
        .find(|t| t.title.starts_with("iterative geometric @ 90.0%"))
        .unwrap();
    assert!(geo.prunes.len() > 1, "iterative pruning prunes in steps");
    assert!(
        h.query_all_by_label_contains("iterative geometric @ 90.0% (seed 0)")
            .count()
            >= 1
    );
    // Everything is on disk, in a folder of its own under the output folder,
    // and the Compare view shows it.
    let run = run_dir(&h);
    assert_eq!(run.parent(), Some(out.as_path()));
    let saved = load_results(&run).unwrap();
    assert_eq!(saved.runs.len(), 6);
    // It is in Open recent and in the run browser.
    assert_eq!(h.state().settings.recent[0].path, run);
    click(&mut h, "Runs");
    assert!(h.query_by_label("tiny").is_some());
    click(&mut h, "Run");
    assert!(saved.runs.iter().all(|r| r.status == Status::Complete));
    assert!(saved
        .runs
        .iter()
        .all(|r| run.join(r.model_file.as_ref().unwrap()).is_file()));
    assert!(run
        .join(saved.baselines[0].model_file.as_ref().unwrap())
        .is_file());
    click(&mut h, "Show results");
    assert_eq!(h.state().settings.tab, Tab::Compare);
    assert!(h.query_all_by_label("dense baseline").count() >= 1);
    assert!(h.query_all_by_label("iterative geometric").count() >= 1);
    assert!(h.query_by_label_contains("Accuracy vs sparsity").is_some());
    assert!(h
        .query_by_label_contains("Per-layer sparsity at target 90.0%")
        .is_some());
}

/// With two runs at once the Run view shows both, and Cancel stops both:
/// each is kept as cancelled.
#[test]
fn parallel_runs_show_side_by_side_and_cancel_together() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let mut cfg = tiny();
    cfg.sparsities = vec![0.5];
    cfg.jobs = 2;
    cfg.strategies[0].schedule_params = serde_json::json!({ "finetune_epochs": 500 });
    cfg.strategies[1].schedule_params = serde_json::json!({ "rate": 0.5, "finetune_epochs": 500 });
    let mut h = harness(cfg, &out);
    h.step();
    h.get_by_label("Run comparison").click();
    h.step();
    step_until(&mut h, Duration::from_secs(300), "two runs at once", |a| {
        a.progress().is_some_and(|p| p.running.len() == 2)
    });
    let labels: Vec<String> = h
        .state()
        .progress()
        .unwrap()
        .running
        .iter()
        .map(|r| r.label.clone())
        .collect();
    for label in &labels {
        // The heading names every run in flight; each also has its own line.
        let shown = h.query_all_by_label_contains(label).count();
        assert!(shown >= 2, "{label} is shown {shown} times");
    }
    h.get_all_by_label("Cancel").next().unwrap().click();
    h.step();
    step_until(&mut h, Duration::from_secs(300), "the cancel", |a| {
        !a.is_running()
    });
    let saved = load_results(&run_dir(&h)).unwrap();
    assert_eq!(saved.status, Some(Status::Cancelled));
    assert_eq!(saved.runs.len(), 2, "both runs in flight are kept");
    assert!(saved.runs.iter().all(|r| r.status == Status::Cancelled));
}

#[test]
fn cancel_stops_the_run_and_keeps_finished_results() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let mut cfg = tiny();
    // The first run is short, the second long enough that cancel lands in it.
    cfg.sparsities = vec![0.5];
    cfg.jobs = 1;
    cfg.strategies[1].schedule_params = serde_json::json!({ "rate": 0.5, "finetune_epochs": 500 });
    cfg.strategies[2].schedule_params =
        serde_json::json!({ "steps": 2, "patience": 500, "max_epochs": 500 });
    let mut h = harness(cfg, &out);
    h.step();
    h.get_by_label("Run comparison").click();
    h.step();
    step_until(&mut h, Duration::from_secs(300), "the second run", |a| {
        a.progress()
            .is_some_and(|p| p.log.iter().any(|l| l.starts_with("run 2/")))
    });
    // The Cancel buttons of the top bar and of the Run view do the same.
    h.get_all_by_label("Cancel").next().unwrap().click();
    h.step();
    step_until(&mut h, Duration::from_secs(300), "the cancel", |a| {
        !a.is_running()
    });
    let n = notices(&h);
    assert!(n.contains("cancelled"), "{n}");
    let run = run_dir(&h);
    let saved = load_results(&run).unwrap();
    assert_eq!(saved.status, Some(Status::Cancelled));
    assert_eq!(saved.baselines.len(), 1, "the finished base model is kept");
    let log = h.state().progress().unwrap().log.join("\n");
    assert_eq!(
        saved.runs[0].status,
        Status::Complete,
        "the finished run is kept: {log}"
    );
    assert!(run
        .join(saved.runs[0].model_file.as_ref().unwrap())
        .is_file());
    let last = saved.runs.last().unwrap();
    assert_eq!(last.status, Status::Cancelled, "the run under way");
    let kept = saved
        .runs
        .iter()
        .filter(|r| r.status == Status::Complete)
        .count();
    assert!(
        n.contains(&format!("{kept} finished runs kept")),
        "{n} / {kept} / {:?}",
        saved
            .runs
            .iter()
            .map(|r| (&r.strategy, &r.status))
            .collect::<Vec<_>>()
    );
    // A cancel is what the user asked for: told, not shown as an error.
    let notice = h
        .state()
        .notices()
        .iter()
        .find(|x| x.text.contains("comparison cancelled"))
        .unwrap()
        .clone();
    assert!(!notice.error, "{}", notice.text);
    // ... and shown.
    assert_eq!(h.state().results[0].results, saved);
    // The window still works: the Setup view opens and the demo can be restored.
    h.get_by_label("Setup").click();
    h.step();
    assert_eq!(h.state().settings.tab, Tab::Setup);
}

#[test]
fn results_folders_open_by_drop_and_compare_side_by_side() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("first");
    let b = dir.path().join("second");
    for (d, n) in [(&a, 2), (&b, 3)] {
        std::fs::create_dir_all(d).unwrap();
        save_results(d, &sample_results(n, 4, 2, 6)).unwrap();
    }
    let mut h = harness(tiny(), &dir.path().join("out"));
    h.step();
    drop_file(&mut h, &a);
    assert_eq!(h.state().settings.tab, Tab::Compare);
    assert_eq!(h.state().results.len(), 1);
    assert!(h.query_all_by_label("strategy 1").count() >= 1);
    drop_file(&mut h, &b.join(RESULTS_JSON));
    assert_eq!(h.state().results.len(), 2);
    // With two sets shown, the legends beside the charts name each strategy
    // by itself and each set once (its line style tells the lines apart).
    assert!(h.query_all_by_label("strategy 2").count() >= 3);
    let second = h.state().results[1].name.clone();
    assert!(
        h.query_all_by_label(&second).count() >= 4,
        "the sets panel and three legends name `{second}`"
    );
    assert!(h.query_all_by_label("results sets").count() >= 3);
    // Opening the same folder again replaces it instead of adding a copy.
    drop_file(&mut h, &a);
    assert_eq!(h.state().results.len(), 2);
    assert!(h.state().settings.recent.iter().any(|r| r.path == a));
}

#[test]
fn a_broken_plugin_is_listed_with_its_error_and_the_app_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let lib = dir
        .path()
        .join(format!("libbroken.{}", std::env::consts::DLL_EXTENSION));
    std::fs::write(&lib, b"this is not a shared library").unwrap();
    let mut h = harness(tiny(), &dir.path().join("out"));
    h.step();
    drop_file(&mut h, &lib);
    let n = notices(&h);
    assert!(
        n.contains("plugin not loaded") && n.contains("libbroken"),
        "{n}"
    );
    assert_eq!(h.state().settings.tab, Tab::Plugins);
    assert!(h.query_all_by_label("ERROR").count() >= 1);
    assert!(h.query_all_by_label_contains("libbroken").next().is_some());
    // Not remembered as a library to load next time; built-ins still listed.
    assert!(h.state().settings.plugin_libraries.is_empty());
    assert!(h.query_by_label("iterative-geometric").is_some());
    h.get_by_label("Rescan").click();
    h.step();
    assert!(notices(&h).contains("plugins rescanned"));
    // A library added in an earlier session that no longer loads is listed
    // with its error, without an ABI it may not have, and can be removed.
    h.state_mut().settings.plugin_libraries = vec![lib.clone()];
    click(&mut h, "Rescan");
    let row = h
        .state()
        .registry()
        .rows()
        .into_iter()
        .find(|r| r.status != "ok")
        .unwrap();
    assert_eq!(row.abi, None);
    let removes = h.query_all_by_label("Remove").count();
    assert!(
        removes >= 2,
        "a Remove beside the error and in the added list"
    );
    h.get_all_by_label("Remove").next().unwrap().click();
    h.step();
    h.step();
    assert!(h.state().settings.plugin_libraries.is_empty());

    // As the real app does it: probed in a child `shears` process first.
    let mut h = probing_harness(tiny(), &dir.path().join("out"));
    h.step();
    drop_file(&mut h, &lib);
    step_until(&mut h, Duration::from_secs(120), "the probe", |a| {
        a.load_errors().iter().any(|e| e.path == lib)
    });
    assert!(notices(&h).contains("libbroken"), "{}", notices(&h));
    assert!(h.state().settings.plugin_libraries.is_empty());
    assert!(h.query_all_by_label("ERROR").count() >= 1);
}

#[test]
fn bad_files_are_reported_by_name_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = harness(tiny(), &dir.path().join("out"));
    h.step();
    let before = h.state().settings.config.clone();
    let ck = dir.path().join("model.safetensors");
    std::fs::write(&ck, b"\x10\x00\x00\x00\x00\x00\x00\x00{\"a\":").unwrap();
    drop_file(&mut h, &ck);
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    drop_file(&mut h, &empty);
    let res = dir.path().join("old");
    std::fs::create_dir(&res).unwrap();
    std::fs::write(res.join(RESULTS_JSON), b"{\"version\": 1, \"runs\": [").unwrap();
    drop_file(&mut h, &res);
    let n = notices(&h);
    assert!(n.contains("model.safetensors"), "{n}");
    assert!(n.contains("empty") && n.contains("neither"), "{n}");
    assert!(
        n.contains("results.json") && n.contains("not a Shears results file"),
        "{n}"
    );
    assert_eq!(h.state().settings.config, before);
    assert!(h.state().results.is_empty());
    // The notices are on screen, and can be dismissed.
    assert!(h
        .query_by_label_contains("not a Shears results file")
        .is_some());
    let count = h.state().notices().len();
    h.get_all_by_label("x").next().unwrap().click();
    h.step();
    assert_eq!(h.state().notices().len(), count - 1);
}

#[test]
fn a_dataset_folder_and_a_checkpoint_configure_the_experiment() {
    let dir = tempfile::tempdir().unwrap();
    let mnist = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/datasets/mnist-10k");
    let mut h = harness(tiny(), &dir.path().join("out"));
    h.step();
    if mnist.is_dir() {
        drop_file(&mut h, &mnist);
        let n = notices(&h);
        assert!(n.contains("dataset: IDX folder"), "{n}");
        assert!(matches!(
            h.state().settings.config.data,
            shears::data::DatasetSpec::Idx { .. }
        ));
    }
    // A NumPy archive is a dataset too.
    let npz = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/numpy/split.npz");
    drop_file(&mut h, &npz);
    assert!(
        matches!(&h.state().settings.config.data, shears::data::DatasetSpec::Npz { path, .. } if *path == npz),
        "{}",
        notices(&h)
    );
    // A real checkpoint: train one with the engine and open it.
    let ck = dir.path().join("base.safetensors");
    let arch = shears::model::arch::lenet5([1, 28, 28], 10);
    let net = shears::model::Network::new(arch, 0, &candle_core::Device::Cpu).unwrap();
    shears::model::checkpoint::save(&net, &serde_json::json!({}), &ck).unwrap();
    drop_file(&mut h, &ck);
    assert_eq!(
        h.state().settings.config.base_checkpoint.as_deref(),
        Some(ck.as_path())
    );
    assert!(h
        .query_by_label_contains("Starting from the model")
        .is_some());
    h.get_by_label("Train a new base model instead").click();
    h.step();
    assert!(h.state().settings.config.base_checkpoint.is_none());
}

#[test]
fn exports_and_saves_write_what_they_say() {
    let dir = tempfile::tempdir().unwrap();
    let res = dir.path().join("res");
    std::fs::create_dir(&res).unwrap();
    let sample = sample_results(2, 3, 2, 4);
    save_results(&res, &sample).unwrap();
    let mut h = harness(tiny(), &dir.path().join("out"));
    h.step();
    drop_file(&mut h, &res);
    let app = h.state_mut();
    let id = app.results[0].id;
    let csv = dir.path().join("export/table.csv");
    app.answer_dialog(DialogPurpose::ExportCsv(id), &csv)
        .unwrap();
    let text = std::fs::read_to_string(&csv).unwrap();
    assert!(text.starts_with("strategy,schedule,criterion,target,seed,step"));
    assert_eq!(
        text.lines().count(),
        1 + 2 + 2 * 3 * 2 + 2 * 3,
        "header, 2 baselines, steps"
    );
    let json = dir.path().join("export/results.json");
    app.answer_dialog(DialogPurpose::ExportJson(id), &json)
        .unwrap();
    assert_eq!(load_results(&json).unwrap(), sample);
    let cfg = dir.path().join("experiment.toml");
    app.answer_dialog(DialogPurpose::SaveConfig, &cfg).unwrap();
    assert_eq!(ExperimentConfig::load(&cfg).unwrap(), app.settings.config);
    let src = dir.path().join("model.safetensors");
    std::fs::write(&src, b"model bytes").unwrap();
    let copy = dir.path().join("saved/copy.safetensors");
    app.answer_dialog(
        DialogPurpose::SaveModel(src.clone(), ExportFormat::Shears),
        &copy,
    )
    .unwrap();
    assert_eq!(std::fs::read(&copy).unwrap(), b"model bytes");
    // A real model saved for PyTorch: its state dict, names as the model has them.
    let arch = shears::model::arch::lenet5([1, 28, 28], 10);
    let net = shears::model::Network::new(arch, 0, &candle_core::Device::Cpu).unwrap();
    shears::model::checkpoint::save(&net, &serde_json::json!({}), &src).unwrap();
    for format in [ExportFormat::Pth, ExportFormat::Safetensors] {
        let out = dir
            .path()
            .join(format!("saved/torch.{}", format.extension()));
        app.answer_dialog(DialogPurpose::SaveModel(src.clone(), format), &out)
            .unwrap();
        let sd = shears::model::import::StateDict::read(&out).unwrap();
        let names: Vec<&String> = sd.tensors.keys().collect();
        assert_eq!(names.len(), 10, "{names:?}");
        assert!(sd.has("conv1.weight") && sd.has("fc3.bias"));
    }
    // A place that cannot be written: the error names it, nothing else changes.
    let file = dir.path().join("notadir");
    std::fs::write(&file, b"x").unwrap();
    let e = app
        .answer_dialog(DialogPurpose::ExportCsv(id), &file.join("x.csv"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("notadir"), "{e}");
    assert_eq!(app.results.len(), 1);
}

/// A legend entry hides its strategy from the charts, and Save SVG… writes
/// the chart as drawn (from the same description), not a screenshot.
#[test]
fn legend_clicks_hide_strategies_and_save_svg_writes_the_chart_shown() {
    let dir = tempfile::tempdir().unwrap();
    let res = dir.path().join("res");
    std::fs::create_dir(&res).unwrap();
    save_results(&res, &sample_results(2, 3, 2, 4)).unwrap();
    let mut h = harness(tiny(), &dir.path().join("out"));
    h.step();
    drop_file(&mut h, &res);
    let svg = dir.path().join("charts/accuracy.svg");
    h.state_mut()
        .answer_dialog(DialogPurpose::SaveSvg("accuracy-vs-sparsity".into()), &svg)
        .unwrap();
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.starts_with("<?xml") && text.contains("</svg>"));
    for label in ["strategy 0", "strategy 1", "dense baseline"] {
        assert!(text.contains(&format!(">{label}</text>")), "{label}");
    }
    assert!(notices(&h).contains("chart saved to"));
    h.get_all_by_label("strategy 1").next().unwrap().click();
    h.step();
    h.step();
    assert_eq!(h.state().settings.charts.hidden, ["strategy 1"]);
    let layers = dir.path().join("charts/layers.svg");
    h.state_mut()
        .answer_dialog(DialogPurpose::SaveSvg("per-layer-sparsity".into()), &layers)
        .unwrap();
    let text = std::fs::read_to_string(&layers).unwrap();
    assert!(text.contains(">strategy 0</text>") && !text.contains("strategy 1"));
    // Shown again by a second click.
    h.get_all_by_label("strategy 1").next().unwrap().click();
    h.step();
    assert!(h.state().settings.charts.hidden.is_empty());
    // A chart that is not shown: the error names the file, nothing is written.
    let none = dir.path().join("charts/none.svg");
    let e = h
        .state_mut()
        .answer_dialog(DialogPurpose::SaveSvg("no-such-chart".into()), &none)
        .unwrap_err()
        .to_string();
    assert!(e.contains("none.svg"), "{e}");
    assert!(!none.exists());
}

#[derive(Default)]
struct MemoryStorage(std::collections::HashMap<String, String>);

impl eframe::Storage for MemoryStorage {
    fn get_string(&self, key: &str) -> Option<String> {
        self.0.get(key).cloned()
    }
    fn set_string(&mut self, key: &str, value: String) {
        self.0.insert(key.into(), value);
    }
    fn remove_string(&mut self, key: &str) {
        self.0.remove(key);
    }
    fn flush(&mut self) {}
}

#[test]
fn settings_persist_between_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = harness(tiny(), &dir.path().join("out"));
    h.step();
    h.get_by_label("Compare").click();
    h.step();
    let res = dir.path().join("res");
    std::fs::create_dir(&res).unwrap();
    save_results(&res, &sample_results(1, 2, 1, 3)).unwrap();
    drop_file(&mut h, &res);
    h.state_mut().settings.config.name = "edited".into();
    let mut storage = MemoryStorage::default();
    eframe::App::save(h.state_mut(), &mut storage);
    let restored: Settings = eframe::get_value(&storage, shears::gui::SETTINGS_KEY).unwrap();
    assert_eq!(restored, h.state().settings);
    assert_eq!(restored.tab, Tab::Compare);
    assert_eq!(restored.config.name, "edited");
    assert_eq!(restored.recent[0].path, res);
    // A new session starts from them.
    let app = ShearsApp::new(restored, LaunchOptions::default());
    assert_eq!(app.settings.config.name, "edited");
    assert_eq!(app.settings.tab, Tab::Compare);
}

#[test]
fn setup_edits_the_experiment_and_says_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let mut h = harness_sized(tiny(), &out, LaunchOptions::default(), [1280.0, 3000.0]);
    h.step();
    assert!(h
        .query_by_label_contains("Ready: 3 strategies x 2 sparsities")
        .is_some());
    let forms = h.query_all_by_label("finetune_epochs").count();
    click(&mut h, "Add strategy");
    assert_eq!(h.state().settings.config.strategies.len(), 4);
    assert!(h.query_by_label_contains("Ready: 4 strategies").is_some());
    // The new (one-shot) strategy's form comes from the plugin's schema.
    assert_eq!(h.query_all_by_label("finetune_epochs").count(), forms + 1);
    // A bad value is refused with the reason, and the run does not start.
    h.state_mut().settings.config.sparsities = vec![0.5, 1.5];
    h.step();
    h.step();
    assert!(h
        .query_by_label_contains("Not ready: Target sparsities, entry 2: 1.5 is outside")
        .is_some());
    h.get_by_label("Run comparison").click();
    h.step();
    assert!(!h.state().is_running());
    assert!(notices(&h).contains("outside [0, 1)"), "{}", notices(&h));
    h.state_mut().settings.config.sparsities = vec![0.5, 0.9];
    h.get_all_by_label("Remove")
        .last()
        .unwrap()
        .click_accesskit();
    h.step();
    h.step();
    assert_eq!(h.state().settings.config.strategies.len(), 3);
    assert!(h.query_by_label_contains("Ready: 3 strategies").is_some());
}

#[test]
fn a_plugin_that_panics_fails_its_runs_and_the_rest_completes() {
    let dir = tempfile::tempdir().unwrap();
    let lib = shears_tests::plugin_library("shears_misbehaving_plugin");
    let out = dir.path().join("out");
    let mut cfg = tiny();
    cfg.sparsities = vec![0.5];
    cfg.strategies.truncate(1);
    cfg.strategies.push(shears::experiment::StrategySpec {
        name: Some("panicking".into()),
        criterion: "misbehave".into(),
        criterion_params: serde_json::json!({ "mode": "panic" }),
        ..Default::default()
    });
    let mut h = probing_harness(cfg, &out);
    h.step();
    drop_file(&mut h, &lib);
    step_until(&mut h, Duration::from_secs(120), "the probe", |a| {
        !a.settings.plugin_libraries.is_empty() || a.load_errors().iter().any(|e| e.path == lib)
    });
    assert_eq!(
        h.state().settings.plugin_libraries,
        vec![lib.clone()],
        "{}",
        notices(&h)
    );
    assert!(h.query_by_label("misbehave").is_some());
    h.get_by_label("Run comparison").click();
    h.step();
    step_until(&mut h, Duration::from_secs(300), "the comparison", |a| {
        !a.is_running()
    });
    let n = notices(&h);
    assert!(n.contains("1 run(s) failed"), "{n}");
    let saved = load_results(&run_dir(&h)).unwrap();
    assert_eq!(saved.runs[0].status, Status::Complete);
    match &saved.runs[1].status {
        Status::Failed(e) => assert!(e.contains("misbehave") && e.contains("panic"), "{e}"),
        s => panic!("expected a failed run, got {s:?}"),
    }
    click(&mut h, "Compare");
    assert!(h.query_by_label_contains("deliberate panic").is_some());
}

#[test]
fn a_comparison_that_cannot_start_says_why_and_keeps_what_is_open() {
    let dir = tempfile::tempdir().unwrap();
    let res = dir.path().join("earlier");
    std::fs::create_dir(&res).unwrap();
    save_results(&res, &sample_results(1, 2, 1, 3)).unwrap();
    let mut cfg = tiny();
    cfg.data = shears::data::DatasetSpec::Idx {
        path: dir.path().join("no-such-dataset"),
    };
    let mut h = harness(cfg, &dir.path().join("out"));
    h.step();
    drop_file(&mut h, &res);
    h.get_by_label("Run comparison").click();
    h.step();
    step_until(&mut h, Duration::from_secs(60), "the refusal", |a| {
        !a.is_running()
    });
    let n = notices(&h);
    assert!(
        n.contains("comparison not started") && n.contains("no-such-dataset"),
        "{n}"
    );
    // The earlier results are still open and untouched; no empty set was left behind.
    assert_eq!(h.state().results.len(), 1);
    assert_eq!(load_results(&res).unwrap(), sample_results(1, 2, 1, 3));
}

/// Setup's button runs a sensitivity analysis of the experiment's model (the
/// base it trains first): the Sensitivity view shows a line per layer, the
/// result is saved, and its chart can be saved as PNG.
#[test]
fn sensitivity_analysis_runs_from_setup() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let mut cfg = tiny();
    cfg.train.epochs = 1;
    let mut h = harness(cfg, &out);
    h.state_mut().settings.sensitivity.sparsities = vec![0.5, 0.9];
    h.step();
    h.get_by_label("Sensitivity analysis of this model…")
        .click();
    h.step();
    assert_eq!(h.state().settings.tab, Tab::Sensitivity);
    step_until(
        &mut h,
        Duration::from_secs(120),
        "the sensitivity analysis",
        |a| {
            a.notices()
                .iter()
                .any(|n| n.text.contains("sensitivity analysis"))
        },
    );
    let n = h.state().notices().last().unwrap().clone();
    assert!(!n.error, "{}", n.text);
    assert!(h
        .query_by_label_contains("Test accuracy with one layer pruned")
        .is_some());
    let saved: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path().join("sensitivity.json"))
        .filter(|p| p.is_file())
        .collect();
    assert_eq!(saved.len(), 1);
    let r: shears::experiment::sensitivity::SensitivityResults =
        serde_json::from_slice(&std::fs::read(&saved[0]).unwrap()).unwrap();
    assert!(r.layers.len() >= 2);
    assert!(r.layers.iter().all(|l| l.test_acc.len() == 2));
    assert!(h.state().chart_rects().contains_key("layer-sensitivity"));
}

/// Each strategy box previews the sparsities its schedule takes at every
/// target and sets the strategy's fine-tuning policy.
#[test]
fn strategy_boxes_preview_schedules_and_set_the_policy() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let mut h = harness_sized(tiny(), &out, LaunchOptions::default(), [1280.0, 3000.0]);
    h.step();
    h.step();
    // tiny: iterative geometric, rate 0.5, at 90%: 0.5, 0.75, 0.875, 0.9.
    assert!(h
        .query_by_label_contains(
            "at 90.0%: 0.5 -> 0.75 -> 0.875 -> 0.9 (4 steps, 4 fine-tuning epochs)"
        )
        .is_some());
    assert!(h.state().settings.config.strategies[0].finetune.is_none());
    h.get_all_by_label("fixed epochs").next().unwrap().click();
    h.step();
    assert_eq!(
        h.state().settings.config.strategies[0].finetune,
        Some(shears::train::FinetunePolicy::Epochs(2))
    );
}

/// After a cancel or failures the per-layer and compute charts show the
/// highest target that has a completed run, and say so where none has.
#[test]
fn charts_pick_a_target_with_data_and_say_when_there_is_none() {
    let dir = tempfile::tempdir().unwrap();
    let set = dir.path().join("cancelled");
    std::fs::create_dir_all(&set).unwrap();
    // sample: 2 strategies x targets 0.5, 0.8 (the highest) x 1 seed.
    let mut r = sample_results(2, 2, 1, 3);
    let top = shears::report::targets(&r).last().copied().unwrap();
    for run in r.runs.iter_mut().filter(|x| x.target == top) {
        run.status = Status::Cancelled;
    }
    save_results(&set, &r).unwrap();
    let mut h = harness(tiny(), &dir.path().join("out"));
    h.step();
    drop_file(&mut h, &set);
    let low = shears::report::targets(&r)[0];
    let title = format!("Per-layer sparsity at target {:.1}%", low * 100.0);
    assert!(h.query_by_label_contains(&title).is_some(), "{title}");
    assert!(h
        .query_by_label_contains("no completed runs at this target")
        .is_none());
    // Nothing completed anywhere: the charts say so.
    for run in r.runs.iter_mut() {
        run.status = Status::Failed("boom".into());
    }
    save_results(&set, &r).unwrap();
    drop_file(&mut h, &set);
    assert!(h
        .query_by_label_contains("no completed runs at this target")
        .is_some());
}

/// Starting from a checkpoint, the base-training settings are shown but not
/// editable (nothing is trained).
#[test]
fn base_training_is_locked_when_starting_from_a_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = tiny();
    cfg.base_checkpoint = Some(dir.path().join("model.safetensors"));
    let mut h = harness_sized(
        cfg,
        &dir.path().join("out"),
        LaunchOptions::default(),
        [1280.0, 3000.0],
    );
    h.step();
    click(&mut h, "Training");
    assert!(h
        .query_by_label_contains("not trained: the experiment starts from a checkpoint")
        .is_some());
    h.state_mut().settings.config.base_checkpoint = None;
    h.step();
    h.step();
    assert!(h
        .query_by_label_contains("not trained: the experiment starts from a checkpoint")
        .is_none());
}

/// Notices do not pile up: at most a few, the newest, each once.
#[test]
fn notices_do_not_pile_up() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = harness(tiny(), &dir.path().join("out"));
    h.step();
    for i in 0..8 {
        drop_file(&mut h, &dir.path().join(format!("missing-{i}.toml")));
    }
    drop_file(&mut h, &dir.path().join("missing-7.toml"));
    let n = h.state().notices();
    assert_eq!(n.len(), shears::gui::app::MAX_NOTICES);
    assert!(n.last().unwrap().text.contains("missing-7"), "{n:?}");
    assert!(n.iter().all(|x| !x.text.contains("missing-0")));
    assert_eq!(n.iter().filter(|x| x.text.contains("missing-7")).count(), 1);
}

/// Target sparsities take `50%` as well as `0.5`; text that does not parse
/// makes the status line say what is wrong, naming the field.
#[test]
fn sparsity_field_takes_percents_and_reports_bad_text() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = harness(tiny(), &dir.path().join("out"));
    h.step();
    h.get_by_label("Target sparsities").focus();
    h.step();
    h.get_by_label("Target sparsities").type_text("x");
    h.step();
    h.step();
    h.step();
    assert!(
        h.query_by_label_contains("Not ready: Target sparsities:")
            .is_some(),
        "the status line names the field"
    );
    assert_eq!(
        h.state().settings.config.sparsities,
        tiny().sparsities,
        "the last good value is kept"
    );
}

/// A value out of range is kept as typed (not clamped) and refused with a
/// message that names the field by its label.
#[test]
fn out_of_range_values_are_refused_by_label() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = harness(tiny(), &dir.path().join("out"));
    h.step();
    h.get_by_label("Validation fraction").focus();
    h.step();
    h.step();
    h.get_by_label("Validation fraction").type_text("5");
    h.step();
    h.key_press(eframe::egui::Key::Enter);
    h.step();
    h.step();
    h.step();
    let v = h.state().settings.config.val_fraction;
    assert!(v > 1.0, "typed, not clamped: {v}");
    assert!(
        h.query_by_label_contains("Not ready: Validation fraction:")
            .is_some(),
        "the status line names the field by its label"
    );
    click(&mut h, "Run comparison");
    assert!(!h.state().is_running(), "refused");
    let mut cfg = tiny();
    cfg.sparsities = vec![0.5, 1.5];
    let label = |cfg: &ExperimentConfig| {
        let e = cfg
            .validate(&shears::plugins::Registry::builtin())
            .unwrap_err();
        match e {
            shears::Error::Config { field, msg } => {
                format!(
                    "{}: {msg}",
                    shears::gui::views::setup::field_label(&field, cfg)
                )
            }
            e => panic!("{e}"),
        }
    };
    assert_eq!(
        label(&cfg),
        "Target sparsities, entry 2: 1.5 is outside [0, 1)"
    );
    let mut cfg = tiny();
    cfg.finetune.batch_size = 0;
    assert_eq!(label(&cfg), "Fine-tuning: Batch size: must be at least 1");
    let mut cfg = tiny();
    cfg.strategies[1].finetune = Some(shears::train::FinetunePolicy::Epochs(0));
    assert_eq!(
        label(&cfg),
        "Strategy `iterative geometric`: fine-tuning: `epochs` must be at least 1"
    );
}

/// The run browser lists every saved comparison of the runs folder and the
/// added folders, filters them, shows one in Compare when ticked, keeps it
/// shown across a restart, and deletes a folder only after a yes.
#[test]
fn run_browser_lists_filters_shows_deletes_and_reopens() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("runs");
    let extra = dir.path().join("elsewhere");
    for (root, name, data) in [
        (&out, "alpha", "mnist"),
        (&out, "beta", "cifar10"),
        (&extra, "gamma", "mnist"),
    ] {
        let mut r = sample_results(2, 2, 1, 3);
        r.config.name = name.into();
        r.data.name = data.into();
        r.status = Some(Status::Complete);
        save_results(&root.join(format!("{name}-001")), &r).unwrap();
    }
    let settings = Settings {
        config: tiny(),
        out_dir: out.clone(),
        run_folders: vec![extra.clone()],
        tab: Tab::Runs,
        ..Default::default()
    };
    let mut h = harness_from(settings, LaunchOptions::default(), [1280.0, 900.0]);
    h.step();
    for name in ["alpha", "beta", "gamma"] {
        assert!(h.query_by_label(name).is_some(), "{name} listed");
    }
    h.get_by_label("Search").click();
    h.step();
    h.get_by_label("Search").type_text("cifar");
    h.step();
    h.step();
    assert!(h.query_by_label("alpha").is_none(), "filtered out");
    assert!(h.query_by_label("gamma").is_none(), "filtered out");
    click(&mut h, "beta");
    let shown: Vec<String> = h
        .state()
        .results
        .iter()
        .map(|l| l.results.config.name.clone())
        .collect();
    assert_eq!(shown, ["beta"]);
    // A restart shows it again (the settings as the window saves them).
    let mut storage = MemoryStorage::default();
    eframe::App::save(h.state_mut(), &mut storage);
    let saved: Settings = eframe::get_value(&storage, shears::gui::SETTINGS_KEY).unwrap();
    assert_eq!(saved.shown_results, [out.join("beta-001")]);
    let again = ShearsApp::new(saved, LaunchOptions::default());
    assert_eq!(again.results.len(), 1);
    assert_eq!(again.results[0].results.config.name, "beta");
    // Unticking takes it out of Compare.
    h.get_by_label("beta").click();
    h.step();
    assert!(h.state().results.is_empty());
    // Delete asks first; "No" keeps the folder, "Yes, delete" removes it.
    h.state_mut().settings.runs_filter = "alpha".into();
    h.step();
    click(&mut h, "Delete…");
    click(&mut h, "No");
    assert!(out.join("alpha-001").is_dir());
    click(&mut h, "Delete…");
    click(&mut h, "Yes, delete");
    assert!(!out.join("alpha-001").exists());
    assert!(notices(&h).contains("deleted"), "{}", notices(&h));
    h.state_mut().settings.runs_filter.clear();
    h.step();
    assert!(h.query_by_label("alpha").is_none());
    assert!(h.query_by_label("gamma").is_some());
}

/// Where no native dialog can show, the file buttons open a path prompt in
/// the window (saying why) that lists the folder and opens what is picked;
/// Setup's path fields take a typed path.
#[test]
fn without_native_dialogs_paths_are_asked_in_the_window() {
    let dir = tempfile::tempdir().unwrap();
    let ck = dir.path().join("models/base.safetensors");
    std::fs::create_dir_all(ck.parent().unwrap()).unwrap();
    let arch = shears::model::arch::lenet5([1, 28, 28], 10);
    let net = shears::model::Network::new(arch, 0, &candle_core::Device::Cpu).unwrap();
    shears::model::checkpoint::save(&net, &serde_json::json!({}), &ck).unwrap();
    let launch = LaunchOptions {
        no_native_dialogs: true,
        ..Default::default()
    };
    let mut settings = Settings {
        config: tiny(),
        out_dir: dir.path().join("out"),
        ..Default::default()
    };
    settings.last_dir = Some(dir.path().to_path_buf());
    let mut h = harness_from(settings, launch, [1280.0, 900.0]);
    h.step();
    h.get_by_label("File").click();
    h.step();
    h.get_by_label("Open model…").click();
    for _ in 0..4 {
        h.step();
    }
    // The prompt says why, starts in the last folder used and lists it.
    assert!(h
        .query_by_label_contains("native file dialogs are turned off")
        .is_some());
    click(&mut h, "models/");
    click(&mut h, "base.safetensors");
    click(&mut h, "OK");
    assert_eq!(
        h.state().settings.config.base_checkpoint.as_deref(),
        Some(ck.as_path())
    );
    assert!(h.query_by_label("OK").is_none(), "the prompt closed");
    assert_eq!(h.state().settings.last_dir.as_deref(), ck.parent());
    // A typed path that does not exist cannot be confirmed.
    click(&mut h, "File");
    click(&mut h, "Open config…");
    h.get_by_label("File").type_text("nope.toml");
    h.step();
    h.step();
    assert!(h.query_by_label_contains("no such file").is_some());
    click(&mut h, "Cancel");
    assert!(h.query_by_label("OK").is_none());
    // Setup's path field: typed, then Open.
    click(&mut h, "Train a new base model instead");
    h.get_by_label("trained model").click();
    h.step();
    h.get_by_label("trained model")
        .type_text(&ck.display().to_string());
    h.step();
    click(&mut h, "Open trained model");
    assert_eq!(
        h.state().settings.config.base_checkpoint.as_deref(),
        Some(ck.as_path())
    );
}

/// The table of numbers sorts by a clicked header (again: the other way)
/// and marks the best value at each target.
#[test]
fn the_table_sorts_by_a_header_and_marks_the_best() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("set");
    std::fs::create_dir_all(&a).unwrap();
    let mut r = sample_results(3, 2, 2, 3);
    for run in &mut r.runs {
        if run.strategy == "strategy 2" {
            for s in &mut run.steps {
                s.test.acc += 0.05;
            }
        }
    }
    save_results(&a, &r).unwrap();
    let mut h = harness_sized(
        tiny(),
        &dir.path().join("out"),
        LaunchOptions::default(),
        [1280.0, 3000.0],
    );
    h.step();
    drop_file(&mut h, &a);
    click(&mut h, "test acc (%)");
    let sort = h.state().settings.charts.table_sort.unwrap();
    assert_eq!((sort.column, sort.ascending), (3, false), "best first");
    // The table's first row (below its header) is now the best strategy.
    let first_row = |h: &Harness<'_, ShearsApp>| {
        let header = h.get_by_label("test acc (%)").rect().max.y;
        ["strategy 0", "strategy 1", "strategy 2"]
            .into_iter()
            .flat_map(|n| {
                h.query_all_by_label(n)
                    .map(|node| (node.rect().min.y, n))
                    .collect::<Vec<_>>()
            })
            .filter(|(y, _)| *y > header)
            .min_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(_, n)| n)
    };
    assert_eq!(first_row(&h), Some("strategy 2"));
    click(&mut h, "test acc (%)");
    assert!(h.state().settings.charts.table_sort.unwrap().ascending);
    assert_ne!(first_row(&h), Some("strategy 2"));
    h.get_by_label("original order").click();
    h.step();
    assert!(h.state().settings.charts.table_sort.is_none());
}

/// A PyTorch nn.Sequential state dict cannot say its layers: opening it
/// keeps it and asks in Setup's import form; once applied, the Model view
/// lists its layers and comparisons start from it.
#[test]
fn a_pytorch_state_dict_is_completed_in_the_import_form_and_shown_in_model() {
    let dir = tempfile::tempdir().unwrap();
    let digits = shears_tests::shared_datasets().join("uci-digits/digits.csv.gz");
    let mut cfg = tiny();
    cfg.data = shears::data::DatasetSpec::detect(&digits).unwrap();
    let mut h = tall_harness(cfg, &dir.path().join("out"));
    h.step();
    let mlp = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/torchvision/mlp.pth");
    drop_file(&mut h, &mlp);
    assert_eq!(
        h.state().settings.config.base_checkpoint.as_deref(),
        Some(mlp.as_path())
    );
    assert!(notices(&h).contains("import form"), "{}", notices(&h));
    assert!(
        h.query_all_by_label_contains("--layers").count() >= 2,
        "the problem is in the notices and in the form"
    );
    h.get_by_label("Layers (an nn.Sequential only; one per module index)")
        .focus();
    h.step();
    h.get_by_label("Layers (an nn.Sequential only; one per module index)")
        .type_text("flatten, linear, relu, linear");
    h.step();
    h.get_by_label("Normalisation mean").focus();
    h.step();
    h.get_by_label("Normalisation mean").type_text("0.5");
    h.step();
    h.get_by_label("Normalisation std").focus();
    h.step();
    h.get_by_label("Normalisation std").type_text("0.25");
    h.step();
    h.get_by_label("Resize shorter side").focus();
    h.step();
    h.get_by_label("Resize shorter side").type_text("10");
    h.step();
    click(&mut h, "Apply");
    assert!(notices(&h).contains("model opened"), "{}", notices(&h));
    let import = &h.state().settings.config.import;
    assert_eq!(
        import.layers.as_deref(),
        Some("flatten, linear, relu, linear")
    );
    assert_eq!(
        (import.mean.clone(), import.std.clone()),
        (Some(vec![0.5]), Some(vec![0.25]))
    );
    assert_eq!(import.resize, Some(10));
    // The tab (first in the tree; Setup has a "Model" section too).
    h.query_all_by_label("Model").next().unwrap().click();
    h.step();
    h.step();
    assert_eq!(h.state().settings.tab, Tab::Model);
    assert!(h
        .query_by_label_contains("sequential, input [1, 8, 8], 10 classes")
        .is_some());
    assert!(
        h.query_by_label("weights, channels").is_some(),
        "the hidden layer can lose channels"
    );
    assert!(h
        .query_by_label("weights (outputs are the classes)")
        .is_some());
    assert!(h
        .query_by_label_contains("mean [0.5] and std [0.25]")
        .is_some());
    assert!(h
        .query_by_label_contains("1x8x8 inputs (image files: shorter side resized to 10")
        .is_some());
}

/// The preprocessing of a model trained here is set in Setup: half a
/// normalisation is refused by its label, both halves and the resize go
/// into the experiment.
#[test]
fn setup_fixes_the_normalisation_of_the_model_it_trains() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = tall_harness(tiny(), &dir.path().join("out"));
    h.step();
    h.get_by_label("Normalisation mean").focus();
    h.step();
    h.get_by_label("Normalisation mean").type_text("0.5");
    h.step();
    h.step();
    assert!(
        h.query_by_label_contains("Not ready: Normalisation std")
            .is_some(),
        "half a normalisation is refused by its label"
    );
    h.get_by_label("Normalisation std").focus();
    h.step();
    h.get_by_label("Normalisation std").type_text("0.25");
    h.step();
    h.step();
    h.get_by_label("Resize shorter side").focus();
    h.step();
    h.get_by_label("Resize shorter side").type_text("36");
    h.step();
    h.step();
    let import = &h.state().settings.config.import;
    assert_eq!(
        (import.mean.clone(), import.std.clone()),
        (Some(vec![0.5]), Some(vec![0.25]))
    );
    assert_eq!(import.resize, Some(36), "the resize before the crop too");
    assert!(h.query_by_label_contains("Ready:").is_some());
}

/// A plan folder (`shears plan`) opens in Compare with the tasks done so
/// far and follows the plan as more finish, until every task is done.
#[test]
fn a_plan_folder_shows_its_tasks_as_they_finish() {
    use shears::experiment::plan::{self, Plan};
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = tiny();
    cfg.sparsities = vec![0.5];
    cfg.strategies.truncate(1);
    cfg.dense_control = false;
    cfg.latency = false;
    let planned = dir.path().join("plan");
    Plan::new(cfg.clone()).write(&planned).unwrap();
    let registry = shears::plugins::Registry::builtin();
    let cancel = std::sync::atomic::AtomicBool::new(false);
    plan::run_task(&planned, 0, &registry, None, &cancel, &mut |_| {}).unwrap();
    let mut h = harness(cfg, &dir.path().join("out"));
    h.step();
    h.state_mut().open_path(&planned).unwrap();
    h.step();
    assert_eq!(h.state().settings.tab, Tab::Compare);
    let set = |h: &Harness<'static, ShearsApp>| {
        let r = h.state().results.last().unwrap();
        (
            r.name.clone(),
            r.results.baselines.len(),
            r.results.runs.len(),
        )
    };
    let (name, bases, runs) = set(&h);
    assert!(name.contains("1 of 2 tasks done"), "{name}");
    assert_eq!((bases, runs), (1, 0));
    assert!(h.query_all_by_label_contains("1 of 2 tasks done").count() >= 1);
    // The run finishes elsewhere; the window reads the folder again.
    plan::run_task(&planned, 1, &registry, None, &cancel, &mut |_| {}).unwrap();
    step_until(
        &mut h,
        Duration::from_secs(30),
        "the plan's second task",
        |a| a.results.last().is_some_and(|r| r.results.runs.len() == 1),
    );
    let (name, _, _) = set(&h);
    assert!(name.contains("2 of 2 tasks done"), "{name}");
    assert!(
        notices(&h).contains("every task is done"),
        "{}",
        notices(&h)
    );
}

#[test]
fn an_onnx_graph_opens_and_the_model_view_shows_its_branches() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = harness(tiny(), &dir.path().join("out"));
    h.step();
    // The dynamo exporter's EfficientNet-B0 (weights in `.onnx.data`
    // beside it, BatchNorm folded), on 32x32 RGB data.
    let model =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/families/efficientnet_b0.dynamo.onnx");
    drop_file(&mut h, &model);
    assert_eq!(
        h.state().settings.config.base_checkpoint.as_deref(),
        Some(model.as_path()),
        "{}",
        notices(&h)
    );
    // The Model tab (Setup has a "Model" section too).
    h.query_all_by_label("Model").next().unwrap().click();
    h.step();
    h.step();
    assert_eq!(h.state().settings.tab, Tab::Model);
    // Depthwise convolutions, the squeeze-excitation gate and the
    // BatchNorm-folded note are all there.
    assert!(
        h.query_all_by_label_contains("depthwise").count() > 0,
        "depthwise"
    );
    assert!(
        h.query_all_by_label_contains("sigmoid").count() > 0,
        "sigmoid"
    );
    assert!(
        h.query_all_by_label_contains("features.1.0.block.0.0")
            .count()
            > 0,
        "features.1.0.block.0.0"
    );
    assert!(
        h.query_all_by_label_contains("folded").count() > 0,
        "folded"
    );
}

#[test]
fn the_model_view_shows_setups_architecture_before_a_model_is_opened() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = harness(tiny(), &dir.path().join("out"));
    h.state_mut().settings.config.model = shears::model::ModelSpec::Mobilenetv2 { width: 25 };
    h.state_mut().settings.tab = Tab::Model;
    h.step();
    h.step();
    assert!(
        h.query_all_by_label_contains("built-in mobilenetv2")
            .count()
            > 0
    );
    assert!(h.query_all_by_label_contains("depthwise").count() > 0);
    assert!(h.query_all_by_label_contains("features.1.conv.0.0").count() > 0);
    // Another architecture, another table.
    h.state_mut().settings.config.model = shears::model::ModelSpec::Lenet5;
    h.step();
    h.step();
    assert!(h.query_all_by_label_contains("built-in lenet5").count() > 0);
    assert_eq!(h.query_all_by_label_contains("depthwise").count(), 0);
}

/// The import form asks only what the file cannot tell: a RegNet state
/// dict (recognised by its names) gets no layer spec and no attention
/// heads, a ViT state dict gets the heads, an nn.Sequential the layers.
#[test]
fn the_import_form_asks_only_what_the_file_cannot_tell() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = tall_harness(tiny(), &dir.path().join("out"));
    h.step();
    let families = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/families");
    let layers = "Layers (an nn.Sequential only; one per module index)";
    drop_file(&mut h, &families.join("regnet_y.safetensors"));
    h.step();
    assert!(
        h.query_by_label("Normalisation mean").is_some(),
        "{}",
        notices(&h)
    );
    assert!(h.query_by_label(layers).is_none());
    assert!(h.query_by_label("Attention heads").is_none());
    // A ViT for 32x32 inputs on 28x28 glyphs: refused, and its heads asked.
    drop_file(&mut h, &families.join("vit_timm.safetensors"));
    h.step();
    assert!(
        h.query_by_label("Attention heads").is_some(),
        "{}",
        notices(&h)
    );
    assert!(h.query_by_label(layers).is_none());
    let mlp = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/torchvision/mlp.pth");
    drop_file(&mut h, &mlp);
    h.step();
    assert!(h.query_by_label(layers).is_some(), "{}", notices(&h));
    assert!(h.query_by_label("Attention heads").is_none());
}
