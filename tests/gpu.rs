//! The `gpu` test group: CUDA training and pruning, checked against the CPU.
//! These tests need a build with `--features cuda` and an NVIDIA GPU; without
//! the feature they are ignored (CI has neither). On a GPU machine:
//! `cargo test -p shears-tests --features cuda --test gpu`, or the test
//! binary that `app/scripts/build-cuda.sh` builds (see README, GPU section).

use std::path::Path;

use shears::device::{open, parse};
use shears::experiment::{ComparisonResults, ExperimentConfig, Status, StrategySpec};
use shears::plugins::Registry;
use shears::prune::GranularityChoice;
use shears_tests::run_collecting;

const NEEDS_GPU: &str = "needs an NVIDIA GPU and --features cuda";

/// LeNet-5 on 1,200 embedded glyphs, 2 epochs, trained on the CPU and saved,
/// so the CPU and the GPU prune the very same weights.
fn base_checkpoint(dir: &Path) -> std::path::PathBuf {
    let mut cfg = config(None);
    cfg.strategies = vec![StrategySpec::default()];
    cfg.sparsities = vec![0.5];
    let ck = dir.join("base.safetensors");
    let cancel = std::sync::atomic::AtomicBool::new(false);
    let ctx = shears::experiment::Context {
        registry: &Registry::builtin(),
        cancel: &cancel,
        out_dir: Some(dir),
    };
    let r = shears::experiment::run_comparison(&cfg, &ctx, &mut |_, _| {}).unwrap();
    assert_eq!(r.status, Some(Status::Complete));
    std::fs::rename(dir.join("base-seed0.safetensors"), &ck).unwrap();
    ck
}

fn config(base: Option<&Path>) -> ExperimentConfig {
    let mut cfg = ExperimentConfig::from_toml(
        r#"
name = "gpu agreement"
seeds = [0]
sparsities = [0.5, 0.9]
[data]
kind = "embedded"
train = 1200
test = 400
[model]
arch = "lenet5"
[train]
epochs = 2
batch_size = 64
lr = 0.05
[finetune]
epochs = 1
batch_size = 64
lr = 0.01
"#,
        Path::new("gpu.rs"),
    )
    .unwrap();
    cfg.base_checkpoint = base.map(Path::to_path_buf);
    cfg
}

fn strategy(name: &str, schedule: &str, params: serde_json::Value) -> StrategySpec {
    StrategySpec {
        name: Some(name.into()),
        schedule: schedule.into(),
        schedule_params: params,
        ..Default::default()
    }
}

fn run_on(mut cfg: ExperimentConfig, device: &str) -> ComparisonResults {
    cfg.device = device.into();
    let (r, _) = run_collecting(&cfg, &Registry::builtin());
    assert_eq!(r.status, Some(Status::Complete), "{device}");
    assert!(
        r.device.starts_with(device.split(':').next().unwrap()),
        "{}",
        r.device
    );
    r
}

#[test]
#[cfg_attr(
    not(feature = "cuda"),
    ignore = "needs an NVIDIA GPU and --features cuda"
)]
fn auto_picks_the_gpu_and_says_so() {
    let (device, name) = open(parse("auto").unwrap()).expect(NEEDS_GPU);
    assert!(device.is_cuda(), "auto chose {name}");
    assert_eq!(name, "cuda:0");
}

/// Pruning without fine-tuning: the same weights on both devices give the
/// same masks (identical per-layer counts) and the same accuracy up to float
/// rounding in the forward pass.
#[test]
#[cfg_attr(
    not(feature = "cuda"),
    ignore = "needs an NVIDIA GPU and --features cuda"
)]
fn pruning_gives_the_same_masks_and_accuracy_on_gpu_and_cpu() {
    let dir = tempfile::tempdir().unwrap();
    let ck = base_checkpoint(dir.path());
    let mut cfg = config(Some(&ck));
    let none = serde_json::json!({ "finetune_epochs": 0 });
    cfg.strategies = vec![
        strategy("weights", "one-shot", none.clone()),
        StrategySpec {
            granularity: GranularityChoice::Structured,
            ..strategy("channels", "one-shot", none)
        },
    ];
    let cpu = run_on(cfg.clone(), "cpu");
    let gpu = run_on(cfg, "cuda:0");
    assert_eq!(cpu.runs.len(), gpu.runs.len());
    for (c, g) in cpu.runs.iter().zip(&gpu.runs) {
        let (cs, gs) = (c.last().unwrap(), g.last().unwrap());
        let counts = |s: &shears::experiment::StepRecord| {
            s.sparsity
                .layers
                .iter()
                .map(|l| (l.name.clone(), l.pruned))
                .collect::<Vec<_>>()
        };
        assert_eq!(counts(cs), counts(gs), "{} @ {}", c.strategy, c.target);
        // 400 test images: one image is 0.25 points.
        assert!(
            (cs.test.acc - gs.test.acc).abs() <= 0.0051,
            "{} @ {}: cpu {} vs gpu {}",
            c.strategy,
            c.target,
            cs.test.acc,
            gs.test.acc
        );
    }
}

/// Pruning with fine-tuning (one-shot, iterative): the same sparsity is
/// reached, and accuracies stay within a few points (training order is the
/// same; float results differ between devices and grow over epochs).
#[test]
#[cfg_attr(
    not(feature = "cuda"),
    ignore = "needs an NVIDIA GPU and --features cuda"
)]
fn a_small_comparison_agrees_between_gpu_and_cpu() {
    let dir = tempfile::tempdir().unwrap();
    let ck = base_checkpoint(dir.path());
    let mut cfg = config(Some(&ck));
    cfg.strategies = vec![
        strategy("one-shot", "one-shot", serde_json::json!({})),
        strategy(
            "iterative",
            "iterative-geometric",
            serde_json::json!({ "rate": 0.5, "finetune_epochs": 1 }),
        ),
    ];
    let cpu = run_on(cfg.clone(), "cpu");
    let gpu = run_on(cfg, "cuda:0");
    for (c, g) in cpu.runs.iter().zip(&gpu.runs) {
        assert_eq!(c.steps.len(), g.steps.len(), "{}", c.strategy);
        let (cs, gs) = (c.last().unwrap(), g.last().unwrap());
        assert!((cs.sparsity.global - gs.sparsity.global).abs() < 1e-6);
        assert!(
            (cs.test.acc - gs.test.acc).abs() <= 0.03,
            "{} @ {}: cpu {} vs gpu {}",
            c.strategy,
            c.target,
            cs.test.acc,
            gs.test.acc
        );
    }
}
