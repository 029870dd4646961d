//! Property tests of what Shears writes and reads back: results.json and
//! events.jsonl keep every value, and IDX (plain and gzip) and CIFAR files
//! written by the reference layouts read back to the same images and labels.

use std::io::Write;
use std::path::Path;

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use shears::data::{parse_cifar, read_idx_images, read_idx_labels, CifarVariant};
use shears::experiment::output::save_results;
use shears::experiment::results::{DataSummary, ModelSummary, SplitMetrics};
use shears::experiment::{
    load_results, Baseline, ComparisonResults, Event, ExperimentConfig, RunResult, Status,
    StepRecord,
};
use shears::model::latency::Latency;
use shears::prune::{Cost, LayerSparsity, SparsityReport};
use shears::train::Metrics;

fn config() -> ExperimentConfig {
    ExperimentConfig::from_toml(&shears_tests::tiny_config(""), Path::new("tiny.toml")).unwrap()
}

/// Any finite f32 and any f64 a run can record (all bit patterns but NaN and
/// infinities, which JSON cannot hold).
fn finite32() -> impl Strategy<Value = f32> {
    any::<f32>().prop_filter("finite", |v| v.is_finite())
}

fn finite64() -> impl Strategy<Value = f64> {
    any::<f64>().prop_filter("finite", |v| v.is_finite())
}

fn metrics() -> impl Strategy<Value = Metrics> {
    (finite32(), finite32()).prop_map(|(loss, acc)| Metrics { loss, acc })
}

fn step() -> impl Strategy<Value = StepRecord> {
    (
        1u32..1000,
        finite32(),
        (finite32(), finite32()),
        vec(("[a-z0-9._]{1,12}", 0usize..1 << 40, 0usize..1 << 40), 0..4),
        (metrics(), metrics()),
        any::<u32>(),
        finite64(),
        (
            proptest::option::of((metrics(), metrics())),
            any::<u32>(),
            proptest::option::of(any::<u32>()),
            proptest::option::of((
                any::<usize>(),
                any::<usize>(),
                any::<usize>(),
                any::<usize>(),
            )),
        ),
    )
        .prop_map(
            |(step, target, (global, channels), layers, (val, test), epochs, seconds, extra)| {
                StepRecord {
                    step,
                    target_sparsity: target,
                    sparsity: SparsityReport {
                        global,
                        channels,
                        layers: layers
                            .into_iter()
                            .map(|(name, total, pruned)| LayerSparsity {
                                name,
                                total,
                                pruned,
                            })
                            .collect(),
                    },
                    val,
                    test,
                    epochs,
                    seconds,
                    pruned: extra.0.map(|(val, test)| SplitMetrics { val, test }),
                    finetune_epochs: extra.1,
                    kept_epoch: extra.2,
                    cost: extra
                        .3
                        .map(|(params, nonzero_params, macs, nonzero_macs)| Cost {
                            params,
                            nonzero_params,
                            macs,
                            nonzero_macs,
                        }),
                }
            },
        )
}

fn latency() -> impl Strategy<Value = Latency> {
    (
        finite64(),
        finite64(),
        proptest::option::of((finite64(), finite64())),
    )
        .prop_map(|(batch1_ms, batch64_ms, compacted)| Latency {
            batch1_ms,
            batch64_ms,
            compacted_batch1_ms: compacted.map(|c| c.0),
            compacted_batch64_ms: compacted.map(|c| c.1),
        })
}

fn status() -> impl Strategy<Value = Status> {
    prop_oneof![
        Just(Status::Complete),
        Just(Status::Cancelled),
        ".{0,40}".prop_map(Status::Failed),
    ]
}

fn run() -> impl Strategy<Value = RunResult> {
    (
        ".{0,16}",
        "[a-z-]{1,12}",
        "[a-z-]{1,12}",
        finite32(),
        any::<u64>(),
        vec(step(), 0..4),
        status(),
        proptest::option::of("[a-z0-9/._-]{1,30}"),
        proptest::option::of(latency()),
    )
        .prop_map(
            |(strategy, schedule, criterion, target, seed, steps, status, model_file, latency)| {
                RunResult {
                    strategy,
                    schedule,
                    criterion,
                    target,
                    seed,
                    steps,
                    status,
                    model_file,
                    latency,
                }
            },
        )
}

fn baseline() -> impl Strategy<Value = Baseline> {
    (
        any::<u64>(),
        metrics(),
        metrics(),
        any::<u32>(),
        finite64(),
        proptest::option::of("[a-z0-9._-]{1,30}"),
    )
        .prop_map(|(seed, val, test, epochs, seconds, model_file)| Baseline {
            seed,
            val,
            test,
            epochs,
            seconds,
            model_file,
        })
}

fn results() -> impl Strategy<Value = ComparisonResults> {
    (
        vec(baseline(), 0..3),
        vec(run(), 0..5),
        vec(run(), 0..3),
        proptest::option::of(status()),
        ".{0,20}",
        (0usize..100_000, 0usize..1 << 40),
    )
        .prop_map(
            |(baselines, runs, controls, status, device, (train, macs))| ComparisonResults {
                version: 1,
                config: config(),
                device,
                data: DataSummary {
                    name: "embedded".into(),
                    train,
                    val: train / 10,
                    test: 7,
                    input: [1, 16, 16],
                    classes: 10,
                },
                model: ModelSummary {
                    family: "mlp".into(),
                    params: 1234,
                    macs,
                    layers: vec![("fc1".into(), 100, macs)],
                },
                baselines,
                runs,
                controls,
                status,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// results.json keeps every field, every float to the bit.
    #[test]
    fn results_file_round_trips(r in results()) {
        let dir = tempfile::tempdir().unwrap();
        save_results(dir.path(), &r).unwrap();
        let back = load_results(&dir.path().join("results.json")).unwrap();
        prop_assert_eq!(back, r);
    }

    /// Every event line of events.jsonl reads back as the event written.
    #[test]
    fn event_lines_round_trip(run in run(), step in step(), b in baseline(), host_copy_ms in finite64()) {
        let events = [
            Event::Pruned {
                strategy: run.strategy.clone(),
                seed: run.seed,
                run_target: run.target,
                step: step.step,
                target: step.target_sparsity,
                reached: step.sparsity.global,
                host_copy_ms,
            },
            Event::Step {
                strategy: run.strategy.clone(),
                seed: run.seed,
                run_target: run.target,
                record: step,
            },
            Event::BaseReady(b),
            Event::RunFinished(run),
        ];
        for e in events {
            let line = serde_json::to_string(&e).unwrap();
            prop_assert!(!line.contains('\n'));
            let back: Event = serde_json::from_str(&line).unwrap();
            prop_assert_eq!(back, e);
        }
    }

    /// IDX image and label files, as the MNIST layout defines them (big-endian
    /// magic 0x0803 / 0x0801 and dimensions, then the bytes), read back to the
    /// same pixels and labels, plain or gzip-compressed.
    #[test]
    fn idx_files_round_trip(
        (count, rows, cols, pixels) in (1usize..6, 1usize..9, 1usize..9)
            .prop_flat_map(|(n, r, c)| (Just(n), Just(r), Just(c), vec(any::<u8>(), n * r * c))),
        labels in vec(any::<u8>(), 1..40),
        gzip in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut images = Vec::new();
        images.extend(0x0803u32.to_be_bytes());
        for d in [count, rows, cols] {
            images.extend((d as u32).to_be_bytes());
        }
        images.extend(&pixels);
        let mut label_file = Vec::new();
        label_file.extend(0x0801u32.to_be_bytes());
        label_file.extend((labels.len() as u32).to_be_bytes());
        label_file.extend(&labels);
        let ext = if gzip { ".gz" } else { "" };
        let img_path = dir.path().join(format!("images-idx3-ubyte{ext}"));
        let lab_path = dir.path().join(format!("labels-idx1-ubyte{ext}"));
        write_file(&img_path, &images, gzip);
        write_file(&lab_path, &label_file, gzip);
        prop_assert_eq!(read_idx_images(&img_path).unwrap(), (count, rows, cols, pixels));
        prop_assert_eq!(read_idx_labels(&lab_path).unwrap(), labels);
    }

    /// CIFAR-10 (label, 3072 pixels) and CIFAR-100 (coarse, fine, 3072 pixels)
    /// records read back to pixels / 255 in CHW order and the (fine) label.
    #[test]
    fn cifar_records_round_trip(
        records in vec((any::<u8>(), any::<u8>(), vec(any::<u8>(), 3072)), 1..4),
        hundred in any::<bool>(),
    ) {
        let (variant, classes) = if hundred {
            (CifarVariant::Cifar100, 100)
        } else {
            (CifarVariant::Cifar10, 10)
        };
        let mut bytes = Vec::new();
        for (coarse, fine, pixels) in &records {
            if hundred {
                bytes.push(coarse % 20);
            }
            bytes.push(fine % classes);
            bytes.extend(pixels);
        }
        let (images, labels) = parse_cifar(&bytes, variant, Path::new("data_batch_1.bin")).unwrap();
        let want_labels: Vec<u32> = records.iter().map(|(_, f, _)| u32::from(f % classes)).collect();
        prop_assert_eq!(labels, want_labels);
        let want_images: Vec<u8> = records
            .iter()
            .flat_map(|(_, _, p)| p.iter().copied())
            .collect();
        prop_assert_eq!(images, want_images);
    }
}

fn write_file(path: &Path, bytes: &[u8], gzip: bool) {
    let mut f = std::fs::File::create(path).unwrap();
    if gzip {
        let mut gz = flate2::write::GzEncoder::new(f, flate2::Compression::fast());
        gz.write_all(bytes).unwrap();
        gz.finish().unwrap();
    } else {
        f.write_all(bytes).unwrap();
    }
}

/// A results file written before Shears recorded the metrics right after a
/// prune, the fine-tuning per step, costs, latency and dense controls still
/// opens, with those fields absent.
#[test]
fn results_without_the_newer_fields_open() {
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let r = results().new_tree(&mut runner).unwrap().current();
    let mut v = serde_json::to_value(&r).unwrap();
    v.as_object_mut().unwrap().remove("controls");
    for run in v["runs"].as_array_mut().unwrap() {
        run.as_object_mut().unwrap().remove("latency");
        for step in run["steps"].as_array_mut().unwrap() {
            let step = step.as_object_mut().unwrap();
            for k in ["pruned", "finetune_epochs", "kept_epoch", "cost"] {
                step.remove(k);
            }
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("results.json");
    std::fs::write(&path, serde_json::to_vec(&v).unwrap()).unwrap();
    let back = load_results(&path).unwrap();
    assert!(back.controls.is_empty());
    assert_eq!(back.runs.len(), r.runs.len());
    for (a, b) in back.runs.iter().zip(&r.runs) {
        assert_eq!(a.latency, None);
        assert_eq!(a.steps.len(), b.steps.len());
        for (x, y) in a.steps.iter().zip(&b.steps) {
            assert_eq!(
                (x.pruned, x.cost, x.kept_epoch, x.finetune_epochs),
                (None, None, None, 0)
            );
            assert_eq!(x.test, y.test);
        }
    }
}

proptest! {
    /// A config written as TOML reads back equal, its sparsities written as
    /// the short decimals they are (`0.8`, not `0.800000011920929`).
    #[test]
    fn config_toml_round_trips_without_float_noise(
        sparsities in vec(0.0f32..1.0, 1..6),
        val_fraction in 0.01f32..0.89,
    ) {
        let mut cfg = config();
        cfg.sparsities = sparsities;
        cfg.val_fraction = val_fraction;
        let text = toml::to_string(&cfg).unwrap();
        let back = ExperimentConfig::from_toml(&text, Path::new("c.toml")).unwrap();
        prop_assert_eq!(&back, &cfg);
        let written: toml::Value = toml::from_str(&text).unwrap();
        let written: Vec<f64> = written["sparsities"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_float().unwrap())
            .collect();
        let short: Vec<f64> = cfg.sparsities.iter().map(|s| s.to_string().parse().unwrap()).collect();
        prop_assert_eq!(written, short);
    }
}
