//! Helpers shared by the workspace-level integration tests.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The shared datasets folder (`../shared/datasets` beside the repository).
pub fn shared_datasets() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/datasets")
}

/// Path of the `shears` binary of the current profile, (re)built once per
/// test process with `cargo build`, so the tests never run a stale binary.
pub fn shears_bin() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let exe = std::env::current_exe().expect("test executable path");
            // target/<profile>/deps/<test> -> target/<profile>/shears
            let profile_dir = exe
                .parent()
                .and_then(Path::parent)
                .expect("target/<profile>");
            let release = profile_dir.file_name().is_some_and(|n| n == "release");
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let mut cmd = Command::new(cargo);
            cmd.args(["build", "-q", "-p", "shears", "--bin", "shears"]);
            if release {
                cmd.arg("--release");
            }
            let status = cmd.status().expect("run cargo build");
            assert!(status.success(), "building the shears binary failed");
            // With a build folder of its own (CARGO_BUILD_BUILD_DIR) the test
            // executables live there, the binary in the target folder.
            let bin_dir = match std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from) {
                Some(t) if t.is_absolute() => t.join(profile_dir.file_name().expect("profile")),
                _ => profile_dir.to_path_buf(),
            };
            bin_dir.join(format!("shears{}", std::env::consts::EXE_SUFFIX))
        })
        .clone()
}

/// Runs `shears` with `args` in `dir`.
pub fn shears(dir: &Path, args: &[&str]) -> Output {
    Command::new(shears_bin())
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run shears")
}

/// stdout and stderr of `o`, for assertion messages.
pub fn text(o: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A small, fast experiment config on the embedded data (MLP, 1 epoch).
pub fn tiny_config(extra: &str) -> String {
    format!(
        r#"
name = "tiny"
seeds = [0]
sparsities = [0.5, 0.9]
[data]
kind = "embedded"
train = 600
test = 200
[model]
arch = "mlp"
hidden = [64]
[train]
epochs = 1
batch_size = 64
[finetune]
epochs = 1
batch_size = 64
{extra}
"#
    )
}

/// Runs a comparison in-process with the built-in plugins (or `registry`),
/// collecting every event.
pub fn run_collecting(
    cfg: &shears::experiment::ExperimentConfig,
    registry: &shears::plugins::Registry,
) -> (
    shears::experiment::ComparisonResults,
    Vec<shears::experiment::Event>,
) {
    let cancel = std::sync::atomic::AtomicBool::new(false);
    let ctx = shears::experiment::Context {
        registry,
        cancel: &cancel,
        out_dir: None,
    };
    let mut events = Vec::new();
    let r = shears::experiment::run_comparison(cfg, &ctx, &mut |e, _| events.push(e.clone()))
        .expect("comparison set-up");
    (r, events)
}

/// The built-in plugin crates and the misbehaving test plugin, built as
/// cdylibs with their C ABI exports (`--features export`) into a target
/// folder of their own, once per test process. Returns the folder holding
/// the libraries.
pub fn plugin_cdylibs() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let exe = std::env::current_exe().expect("test executable path");
            let target = exe
                .ancestors()
                .nth(3)
                .expect("target folder")
                .join("plugin-cdylibs");
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let run = |args: &[&str]| {
                let status = Command::new(&cargo)
                    .args(args)
                    .env("CARGO_TARGET_DIR", &target)
                    .status()
                    .expect("run cargo");
                assert!(
                    status.success(),
                    "building the plugin cdylibs failed: cargo {args:?}"
                );
            };
            run(&["build", "-q", "-p", "shears-misbehaving-plugin"]);
            // The built-in plugin crates are plain libraries; their loadable
            // form is built as README says.
            for c in ["magnitude", "random", "taylor", "wanda", "schedules"] {
                let package = format!("shears-{c}");
                run(&[
                    "rustc",
                    "-q",
                    "-p",
                    &package,
                    "--lib",
                    "--features",
                    "export",
                    "--crate-type",
                    "cdylib",
                ]);
            }
            target.join("debug")
        })
        .clone()
}

/// Path of the cdylib of crate `name` (e.g. `shears_magnitude`) built by
/// [`plugin_cdylibs`].
pub fn plugin_library(name: &str) -> PathBuf {
    plugin_cdylibs().join(format!(
        "{}{name}{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    ))
}

/// Asserts `run` completed and its last step reached its target: the
/// fraction of channels for structured runs, of weights otherwise.
pub fn assert_reached_target(run: &shears::experiment::RunResult, structured: bool) {
    use shears::experiment::Status;
    assert_eq!(
        run.status,
        Status::Complete,
        "{} @ {}",
        run.strategy,
        run.target
    );
    let last = run.last().expect("at least one step");
    if structured {
        assert!(
            (last.sparsity.channels - run.target).abs() < 0.05,
            "{} {:?}",
            run.strategy,
            last.sparsity
        );
    } else {
        assert!(
            (last.sparsity.global - run.target).abs() < 1e-3,
            "{} {:?}",
            run.strategy,
            last.sparsity
        );
    }
}

/// The `input` batch and PyTorch's `logits` stored in
/// `fixtures/torchvision/{file}` (made by `make_models.py` there).
pub fn torch_io(file: &str) -> (candle_core::Tensor, candle_core::Tensor) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/torchvision")
        .join(file);
    let t = candle_core::safetensors::load(&path, &candle_core::Device::Cpu)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (t["input"].clone(), t["logits"].clone())
}

/// A tensor's values, flattened.
pub fn flat(t: &candle_core::Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

/// Largest `|a - b|` relative to the largest `|b|`.
pub fn rel_err(a: &[f32], b: &[f32]) -> f32 {
    let scale = b.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-12);
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs())) / scale
}

/// `v` without what differs between two runs of the same comparison: the
/// timings (`seconds`, `latency`, `host_copy_ms`) and `jobs`, at any depth.
pub fn without_timings(mut v: serde_json::Value) -> serde_json::Value {
    match &mut v {
        serde_json::Value::Object(map) => {
            for k in ["seconds", "latency", "host_copy_ms", "jobs"] {
                map.remove(k);
            }
            for x in map.values_mut() {
                *x = without_timings(x.take());
            }
        }
        serde_json::Value::Array(items) => {
            for x in items.iter_mut() {
                *x = without_timings(x.take());
            }
        }
        _ => {}
    }
    v
}
