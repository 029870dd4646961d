//! The comparison runner: trains (or opens) the base model once per seed,
//! then runs every strategy at every target sparsity from a copy of it, with
//! the same data order, streaming events as it goes.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Instant;

use candle_core::Device;

use super::config::ExperimentConfig;
use super::context::{base_phase, split_metrics, train_phase};
pub use super::context::{Context, Emit, Sink};
use super::dense_control::Controls;
use super::jobs::{auto_jobs, run_parallel};
use super::preview::expected_epochs;
use super::results::{Baseline, ComparisonResults, DataSummary, Event, ModelSummary, Status};
use super::strategy_run::{plan_runs, SeedRuns};
use crate::data::{prepare_normalised, DataSplits, NormChoice, Preprocess};
use crate::error::{Error, Result};
use crate::model::{checkpoint, import, Network};
use crate::train::{evaluate, Metrics};

/// Loads the data and prepares the splits described by `cfg`, normalised
/// as the base model requires; returns the opened base model too (`None`
/// when the comparison trains its own).
pub fn load_data(cfg: &ExperimentConfig, device: &Device) -> Result<(DataSplits, Option<Network>)> {
    // Image files are brought to the size and resize the model asks for.
    let prep = import::input_prep(cfg.base_checkpoint.as_deref(), &cfg.import);
    let (train, test) = cfg.data.load_for(&prep)?;
    // A Shears checkpoint or a PyTorch / ONNX model, built for the data's
    // input shape with the config's `[import]` options.
    let base = match &cfg.base_checkpoint {
        Some(path) => {
            let input = [train.channels, train.height, train.width];
            Some(import::open(path, &cfg.import, input, device)?.net)
        }
        None => None,
    };
    // The opened model's own; for a model trained here, the config's fixed
    // mean and std, else statistics fitted on the training part.
    let norm = match &base {
        Some(n) => n.arch.preprocess.norm.clone(),
        None => cfg.import.norm()?.unwrap_or(NormChoice::Fitted),
    };
    Ok((split(cfg, train, test, &norm)?, base))
}

fn split(
    cfg: &ExperimentConfig,
    train: crate::data::Dataset,
    test: crate::data::Dataset,
    norm: &NormChoice,
) -> Result<DataSplits> {
    let n = train.len();
    let seed = cfg.seeds.first().copied().unwrap_or(0);
    let splits = prepare_normalised(train, test, f64::from(cfg.val_fraction), seed, norm)?;
    if splits.val.is_empty() || splits.train.is_empty() || splits.test.is_empty() {
        return Err(Error::config(
            "val_fraction",
            format!(
                "the data ({n} training images) leaves an empty split: {} train / {} validation / {} test",
                splits.train.len(),
                splits.val.len(),
                splits.test.len()
            ),
        ));
    }
    Ok(splits)
}

/// Summary of the data for results and events.
pub fn data_summary(d: &DataSplits) -> DataSummary {
    DataSummary {
        name: d.train.name.clone(),
        train: d.train.len(),
        val: d.val.len(),
        test: d.test.len(),
        input: [d.train.channels, d.train.height, d.train.width],
        classes: d.train.num_classes,
    }
}

/// Summary of a model for results and events.
pub fn model_summary(net: &Network) -> ModelSummary {
    ModelSummary {
        family: net.arch.family.name().to_string(),
        params: net.arch.num_params(),
        macs: net.arch.macs(),
        layers: net
            .arch
            .layers()
            .into_iter()
            .map(|l| (l.name.clone(), l.weight_len(), l.macs))
            .collect(),
    }
}

/// Runs the whole comparison. Setup errors (config, data, model, device) are
/// returned as `Err`. An error inside a run (a failing plugin, a diverging
/// fine-tune) marks that run failed and the comparison goes on; an error while
/// training a seed's base model (or saving it) ends the comparison with
/// [`Status::Failed`]; cancellation ends it with [`Status::Cancelled`].
/// Finished runs are always in the result.
pub fn run_comparison(
    cfg: &ExperimentConfig,
    ctx: &Context<'_>,
    sink: &mut Sink<'_>,
) -> Result<ComparisonResults> {
    cfg.validate(ctx.registry)?;
    let (device, device_name) = crate::device::open(crate::device::parse(&cfg.device)?)?;
    let (data, base) = load_data(cfg, &device)?;
    let template = base_template(cfg, base, &data, &device)?;
    let mut results = ComparisonResults {
        data: data_summary(&data),
        model: model_summary(&template),
        ..ComparisonResults::new(cfg.clone(), device_name.clone())
    };
    let total = cfg.seeds.len() * cfg.strategies.len() * cfg.sparsities.len();
    // Every schedule played once: the progress displays' expectations.
    let expected = expected_epochs(cfg, ctx.registry);
    let started = Event::Started {
        runs: total,
        device: device_name,
        data: results.data.clone(),
        model: results.model.clone(),
        expected_epochs: expected.total,
    };
    sink(&started, &results);
    let status = match run_all(
        cfg,
        ctx,
        &data,
        template,
        &expected.runs,
        &mut results,
        sink,
    ) {
        Ok(()) => Status::Complete,
        Err(Error::Cancelled) => Status::Cancelled,
        Err(e) => Status::Failed(e.to_string()),
    };
    results.status = Some(status.clone());
    sink(&Event::Finished { status }, &results);
    Ok(results)
}

/// The data and the base model of `cfg`'s first seed, as a comparison
/// starts from: the base checkpoint, or a model trained for `train.epochs`
/// (each epoch reported to `on_epoch`). What a sensitivity analysis of the
/// experiment's model runs on.
pub fn first_base(
    cfg: &ExperimentConfig,
    cancel: &std::sync::atomic::AtomicBool,
    on_epoch: &mut dyn FnMut(crate::train::EpochReport),
) -> Result<(Network, DataSplits)> {
    let (device, _) = crate::device::open(crate::device::parse(&cfg.device)?)?;
    let (data, base) = load_data(cfg, &device)?;
    let mut net = base_template(cfg, base, &data, &device)?;
    if cfg.base_checkpoint.is_none() {
        let phase = base_phase(cfg, cfg.seeds.first().copied().unwrap_or(0));
        crate::train::fit(&mut net, &phase, &data.train, &data.val, cancel, on_epoch)?;
    }
    Ok((net, data))
}

/// Checks that `net` (read from `path`) takes the data's input shape and
/// has at least as many outputs as the data has classes; the error names `path`.
pub fn check_fits(net: &Network, data: &DataSplits, path: &Path) -> Result<()> {
    let input = [data.train.channels, data.train.height, data.train.width];
    if net.arch.input != input || net.arch.num_classes < data.train.num_classes {
        return Err(Error::format(
            path,
            format!(
                "model takes {:?} inputs and {} classes, the dataset has {input:?} and {}",
                net.arch.input, net.arch.num_classes, data.train.num_classes
            ),
        ));
    }
    Ok(())
}

/// The base network before training: the opened `base` (checked to fit the
/// data) or freshly built, carrying the normalisation the data got (fitted
/// or fixed) so that its checkpoints normalise as it was trained.
pub(super) fn base_template(
    cfg: &ExperimentConfig,
    base: Option<Network>,
    data: &DataSplits,
    device: &Device,
) -> Result<Network> {
    let input = [data.train.channels, data.train.height, data.train.width];
    let classes = data.train.num_classes;
    match (base, &cfg.base_checkpoint) {
        (Some(net), Some(path)) => {
            check_fits(&net, data, path)?;
            Ok(net)
        }
        _ => {
            let mut arch = cfg.model.build(input, classes)?;
            arch.preprocess = Preprocess::trained_with(&data.norm, cfg.import.resize);
            Network::new(arch, cfg.seeds[0], device)
        }
    }
}

/// The dense base model of `seed` and its record: the base checkpoint
/// (evaluated), or a model built from `template`'s architecture and trained
/// for `train.epochs` (saved under the output folder, if any).
pub(super) fn seed_base(
    cfg: &ExperimentConfig,
    ctx: &Context<'_>,
    data: &DataSplits,
    template: &Network,
    seed: u64,
    emit: &mut Emit<'_>,
) -> Result<(Network, Baseline)> {
    if cfg.base_checkpoint.is_some() {
        let mut net = template.try_clone()?;
        let now = split_metrics(&mut net, data, cfg.train.batch_size)?;
        let b = Baseline {
            seed,
            val: now.val,
            test: now.test,
            epochs: 0,
            seconds: 0.0,
            model_file: None,
        };
        return Ok((net, b));
    }
    let arch = template.arch.clone();
    let mut net = Network::new(arch, seed, template.device())?;
    let t0 = Instant::now();
    let phase = base_phase(cfg, seed);
    let val = train_phase(&mut net, &phase, ("base", 0.0), data, ctx, emit)?;
    let test = evaluate(&mut net, &data.test, cfg.train.batch_size)?;
    let mut b = Baseline {
        seed,
        val: *val.history.last().unwrap_or(&Metrics::default()),
        test,
        epochs: cfg.train.epochs,
        seconds: t0.elapsed().as_secs_f64(),
        model_file: None,
    };
    if let Some(dir) = ctx.out_dir {
        let info =
            serde_json::json!({"seed": seed, "test_acc": test.acc, "dataset": data.train.name});
        let rel = super::output::base_model_file(seed);
        checkpoint::save(&net, &info, &dir.join(&rel))?;
        b.model_file = Some(rel);
    }
    Ok((net, b))
}

fn run_all(
    cfg: &ExperimentConfig,
    ctx: &Context<'_>,
    data: &DataSplits,
    template: Network,
    expected: &[Vec<u32>],
    results: &mut ComparisonResults,
    sink: &mut Sink<'_>,
) -> Result<()> {
    let mut index = 0;
    for &seed in &cfg.seeds {
        let (base, baseline) =
            seed_base(cfg, ctx, data, &template, seed, &mut |e| sink(e, results))?;
        results.baselines.push(baseline.clone());
        sink(&Event::BaseReady(baseline), results);
        let seed_runs = SeedRuns {
            cfg,
            ctx,
            data,
            base: &base,
            seed,
            expected,
        };
        let plan = plan_runs(cfg, index);
        index += plan.len();
        let cores = rayon::current_num_threads();
        let jobs = auto_jobs(cfg.jobs, base.device(), base.arch.macs(), plan.len(), cores);
        if jobs > 1 {
            run_parallel(&seed_runs, &plan, jobs, results, sink)?;
        } else {
            for planned in &plan {
                if ctx.cancel.load(Ordering::Relaxed) {
                    return Err(Error::Cancelled);
                }
                let (run, cancelled) = seed_runs.run(planned, &mut |e| sink(e, results));
                results.runs.push(run.clone());
                sink(&Event::RunFinished(run), results);
                if cancelled {
                    return Err(Error::Cancelled);
                }
            }
        }
        if cfg.dense_control {
            let controls = Controls {
                cfg,
                ctx,
                data,
                base: &base,
                seed,
            };
            controls.run(results, sink)?;
        }
    }
    Ok(())
}
