//! The comparison runner: trains (or opens) the base model once per seed,
//! then runs every strategy at every target sparsity from a copy of it, with
//! the same data order, streaming events as it goes.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use candle_core::Device;
use shears_plugin_api::{
    Decision, Phase, PluginKind, ScheduleState, MAX_PRUNE_STEPS, MAX_SCHEDULE_DECISIONS,
};

use super::config::{ExperimentConfig, StrategySpec};
use super::results::{
    Baseline, ComparisonResults, DataSummary, Event, ModelSummary, RunResult, Status, StepRecord,
};
use crate::data::{prepare, DataSplits};
use crate::error::{Error, Result};
use crate::model::{checkpoint, Network};
use crate::plugins::Registry;
use crate::prune::{prune_to, sparsity, CriterionInputs, GranularityChoice};
use crate::train::{
    accumulate_gradients, collect_activations, evaluate, fit, EpochReport, Metrics, TrainConfig,
};

/// Largest fine-tuning phase the host accepts from a schedule, in epochs.
pub const MAX_PHASE_EPOCHS: u32 = 10_000;

/// Receives every event with the results so far (to save them as they grow).
pub type Sink<'a> = dyn FnMut(&Event, &ComparisonResults) + 'a;

/// Everything a run needs besides the config.
pub struct Context<'a> {
    /// Plugins.
    pub registry: &'a Registry,
    /// Set to stop the comparison at the next batch.
    pub cancel: &'a AtomicBool,
    /// Where to save the base checkpoints (`base-seed{N}.safetensors`), if anywhere.
    pub out_dir: Option<&'a Path>,
}

/// Loads the data and prepares the splits described by `cfg`.
pub fn load_data(cfg: &ExperimentConfig) -> Result<DataSplits> {
    let (train, test) = cfg.data.load()?;
    let n = train.len();
    let seed = cfg.seeds.first().copied().unwrap_or(0);
    let splits = prepare(train, test, f64::from(cfg.val_fraction), seed)?;
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
        family: format!("{:?}", net.arch.family).to_lowercase(),
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
    let data = load_data(cfg)?;
    let template = base_template(cfg, &data, &device)?;
    let mut results = ComparisonResults {
        version: 1,
        config: cfg.clone(),
        device: device_name.clone(),
        data: data_summary(&data),
        model: model_summary(&template),
        baselines: vec![],
        runs: vec![],
        status: None,
    };
    let total = cfg.seeds.len() * cfg.strategies.len() * cfg.sparsities.len();
    let started = Event::Started {
        runs: total,
        device: device_name,
        data: results.data.clone(),
        model: results.model.clone(),
    };
    sink(&started, &results);
    let status = match run_all(cfg, ctx, &data, template, &mut results, sink) {
        Ok(()) => Status::Complete,
        Err(Error::Cancelled) => Status::Cancelled,
        Err(e) => Status::Failed(e.to_string()),
    };
    results.status = Some(status.clone());
    sink(&Event::Finished { status }, &results);
    Ok(results)
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

/// The base network before training: opened from `base_checkpoint` or freshly
/// built; checks it fits the data.
fn base_template(cfg: &ExperimentConfig, data: &DataSplits, device: &Device) -> Result<Network> {
    let input = [data.train.channels, data.train.height, data.train.width];
    let classes = data.train.num_classes;
    match &cfg.base_checkpoint {
        Some(path) => {
            let net = checkpoint::load(path, device)?;
            check_fits(&net, data, path)?;
            Ok(net)
        }
        None => Network::new(cfg.model.build(input, classes)?, cfg.seeds[0], device),
    }
}

fn run_all(
    cfg: &ExperimentConfig,
    ctx: &Context<'_>,
    data: &DataSplits,
    template: Network,
    results: &mut ComparisonResults,
    sink: &mut Sink<'_>,
) -> Result<()> {
    let mut index = 0;
    for &seed in &cfg.seeds {
        let (base, baseline) = if cfg.base_checkpoint.is_some() {
            let mut net = template.try_clone()?;
            let val = evaluate(&mut net, &data.val, cfg.train.batch_size)?;
            let test = evaluate(&mut net, &data.test, cfg.train.batch_size)?;
            let b = Baseline {
                seed,
                val,
                test,
                epochs: 0,
                seconds: 0.0,
                model_file: None,
            };
            (net, b)
        } else {
            let arch = template.arch.clone();
            let mut net = Network::new(arch, seed, template.device())?;
            let t0 = Instant::now();
            let val = train_phase(
                &mut net,
                &cfg.train,
                cfg.train.epochs,
                0,
                data,
                seed,
                0,
                "base",
                0.0,
                ctx,
                sink,
                results,
            )?;
            let test = evaluate(&mut net, &data.test, cfg.train.batch_size)?;
            let mut b = Baseline {
                seed,
                val: *val.last().unwrap_or(&Metrics::default()),
                test,
                epochs: cfg.train.epochs,
                seconds: t0.elapsed().as_secs_f64(),
                model_file: None,
            };
            if let Some(dir) = ctx.out_dir {
                let info = serde_json::json!({"seed": seed, "test_acc": test.acc, "dataset": data.train.name});
                let rel = format!("base-seed{seed}.safetensors");
                checkpoint::save(&net, &info, &dir.join(&rel))?;
                b.model_file = Some(rel);
            }
            (net, b)
        };
        results.baselines.push(baseline.clone());
        sink(&Event::BaseReady(baseline), results);
        for (strategy_index, strategy) in cfg.strategies.iter().enumerate() {
            for (target_index, &target) in cfg.sparsities.iter().enumerate() {
                if ctx.cancel.load(Ordering::Relaxed) {
                    return Err(Error::Cancelled);
                }
                sink(
                    &Event::RunStarted {
                        index,
                        strategy: strategy.label(),
                        target,
                        seed,
                    },
                    results,
                );
                index += 1;
                let mut run = RunResult {
                    strategy: strategy.label(),
                    schedule: strategy.schedule.clone(),
                    criterion: strategy.criterion.clone(),
                    target,
                    seed,
                    steps: vec![],
                    status: Status::Complete,
                    model_file: None,
                };
                let save_as = ctx.out_dir.map(|_| {
                    model_file_name(strategy_index, &run.strategy, target_index, target, seed)
                });
                let outcome = run_strategy(
                    cfg,
                    ctx,
                    data,
                    &base,
                    strategy,
                    (target, seed),
                    save_as,
                    &mut run,
                    sink,
                    results,
                );
                let cancelled = matches!(outcome, Err(Error::Cancelled));
                run.status = match outcome {
                    Ok(()) => Status::Complete,
                    Err(Error::Cancelled) => Status::Cancelled,
                    Err(e) => Status::Failed(e.to_string()),
                };
                results.runs.push(run.clone());
                sink(&Event::RunFinished(run), results);
                if cancelled {
                    return Err(Error::Cancelled);
                }
            }
        }
    }
    Ok(())
}

/// [`fit`] with an [`Event::Epoch`] per epoch.
#[allow(clippy::too_many_arguments)]
fn train_phase(
    net: &mut Network,
    tc: &TrainConfig,
    max_epochs: u32,
    patience: u32,
    data: &DataSplits,
    seed: u64,
    first_epoch: u32,
    phase: &str,
    target: f32,
    ctx: &Context<'_>,
    sink: &mut Sink<'_>,
    results: &ComparisonResults,
) -> Result<Vec<Metrics>> {
    let mut on_epoch = |r: EpochReport| {
        let e = Event::Epoch {
            phase: phase.into(),
            target,
            seed,
            epoch: r.epoch,
            of: r.of,
            train: r.train,
            val: r.val,
            lr: r.lr,
        };
        sink(&e, results);
    };
    fit(
        net,
        tc,
        max_epochs,
        patience,
        &data.train,
        &data.val,
        seed,
        first_epoch,
        ctx.cancel,
        &mut on_epoch,
    )
}

/// Where a run's final model is saved, relative to the output folder:
/// `models/s<strategy index>-<strategy>-t<target index>-<target %>-seed<N>.safetensors`
/// (the indices make names unique; the rest makes them readable).
pub fn model_file_name(
    strategy_index: usize,
    strategy: &str,
    target_index: usize,
    target: f32,
    seed: u64,
) -> String {
    let slug = crate::fsutil::slug(strategy);
    format!(
        "{}/s{strategy_index}-{slug}-t{target_index}-{:.2}-seed{seed}.safetensors",
        super::output::MODELS_DIR,
        target * 100.0
    )
}

/// Runs one strategy at one target from a copy of `base`, filling `run.steps`.
#[allow(clippy::too_many_arguments)]
fn run_strategy(
    cfg: &ExperimentConfig,
    ctx: &Context<'_>,
    data: &DataSplits,
    base: &Network,
    strategy: &StrategySpec,
    (target, seed): (f32, u64),
    save_as: Option<String>,
    run: &mut RunResult,
    sink: &mut Sink<'_>,
    results: &ComparisonResults,
) -> Result<()> {
    let t0 = Instant::now();
    let label = strategy.label();
    let mut net = base.try_clone()?;
    let mut schedule = ctx.registry.schedule(
        &strategy.schedule,
        &cfg.schedule_params(strategy, ctx.registry),
    )?;
    let mut criterion = ctx
        .registry
        .criterion(&strategy.criterion, &strategy.criterion_params)?;
    let needs = criterion.needs();
    let criterion_label = ctx
        .registry
        .label(PluginKind::Criterion, &strategy.criterion);
    let schedule_label = ctx.registry.label(PluginKind::Schedule, &strategy.schedule);
    let bad = |msg: String| Error::Plugin {
        plugin: schedule_label.clone(),
        msg,
    };
    // The schedule sees sparsity in the unit of the granularity; a base
    // checkpoint may already be pruned.
    let start = sparsity(&net)?;
    let mut current = match strategy.granularity {
        GranularityChoice::Unstructured => start.global,
        GranularityChoice::Structured => start.channels,
    };
    let (mut prune_steps, mut last, mut epochs) = (0u32, Phase::Start, 0u32);
    let mut history: Vec<f32> = Vec::new();
    let mut pending: Option<f32> = None;
    let record = |net: &mut Network,
                  asked: f32,
                  epochs: u32,
                  run: &mut RunResult,
                  sink: &mut Sink<'_>|
     -> Result<()> {
        let rec = StepRecord {
            step: run.steps.len() as u32 + 1,
            target_sparsity: asked,
            sparsity: sparsity(net)?,
            val: evaluate(net, &data.val, cfg.finetune.batch_size)?,
            test: evaluate(net, &data.test, cfg.finetune.batch_size)?,
            epochs,
            seconds: t0.elapsed().as_secs_f64(),
        };
        run.steps.push(rec.clone());
        sink(
            &Event::Step {
                strategy: label.clone(),
                record: rec,
            },
            results,
        );
        Ok(())
    };
    for _ in 0..MAX_SCHEDULE_DECISIONS {
        if ctx.cancel.load(Ordering::Relaxed) {
            return Err(Error::Cancelled);
        }
        let state = ScheduleState {
            prune_steps,
            last,
            current_sparsity: current,
            target_sparsity: target,
            epochs_spent: epochs,
            val_acc_history: &history,
        };
        let decision = schedule.decide(&state).map_err(|e| bad(e.to_string()))?;
        match decision {
            Decision::Prune { sparsity: s } => {
                if !s.is_finite() || !(0.0..1.0).contains(&s) {
                    return Err(bad(format!("asked to prune to {s}, outside [0, 1)")));
                }
                if s + 1e-6 < current {
                    return Err(bad(format!(
                        "asked to prune to {s}, below the current {current} (sparsity cannot decrease)"
                    )));
                }
                if prune_steps > 0 && s <= current {
                    return Err(bad(format!(
                        "asked to prune to {s} again (every prune must raise the sparsity)"
                    )));
                }
                if prune_steps >= MAX_PRUNE_STEPS {
                    return Err(bad(format!(
                        "did not stop within {MAX_PRUNE_STEPS} prune steps"
                    )));
                }
                if let Some(asked) = pending.take() {
                    record(&mut net, asked, epochs, run, sink)?;
                }
                let grads = if needs.gradient {
                    Some(accumulate_gradients(
                        &mut net,
                        &data.train,
                        cfg.finetune.batch_size,
                        cfg.calibration_batches,
                    )?)
                } else {
                    None
                };
                let acts = if needs.activations {
                    Some(collect_activations(
                        &mut net,
                        &data.train,
                        cfg.finetune.batch_size,
                        cfg.calibration_batches,
                    )?)
                } else {
                    None
                };
                let inputs = CriterionInputs {
                    grads: grads.as_ref(),
                    acts: acts.as_ref(),
                };
                let outcome = prune_to(
                    &mut net,
                    criterion.as_mut(),
                    &criterion_label,
                    strategy.mode(),
                    s,
                    inputs,
                )?;
                sink(
                    &Event::Pruned {
                        strategy: label.clone(),
                        step: prune_steps + 1,
                        target: s,
                        reached: outcome.reached,
                        host_copy_ms: outcome.host_copy_seconds * 1000.0,
                    },
                    results,
                );
                current = s;
                prune_steps += 1;
                last = Phase::Pruned;
                pending = Some(s);
            }
            Decision::FineTune {
                max_epochs,
                patience,
            } => {
                if max_epochs == 0 || max_epochs > MAX_PHASE_EPOCHS {
                    return Err(bad(format!(
                        "asked to fine-tune {max_epochs} epochs (allowed 1..={MAX_PHASE_EPOCHS})"
                    )));
                }
                if epochs + max_epochs > cfg.max_epochs_per_run {
                    return Err(bad(format!(
                        "did not stop within {} fine-tuning epochs (max_epochs_per_run)",
                        cfg.max_epochs_per_run
                    )));
                }
                let h = train_phase(
                    &mut net,
                    &cfg.finetune,
                    max_epochs,
                    patience,
                    data,
                    seed,
                    cfg.train.epochs + epochs,
                    &label,
                    target,
                    ctx,
                    sink,
                    results,
                )?;
                epochs += h.len() as u32;
                history.extend(h.iter().map(|m| m.acc));
                last = Phase::FineTuned;
                if let Some(asked) = pending.take() {
                    record(&mut net, asked, epochs, run, sink)?;
                } else if let Some(prev) = run.steps.pop() {
                    // More fine-tuning of the same step: its record is replaced.
                    record(&mut net, prev.target_sparsity, epochs, run, sink)?;
                }
            }
            Decision::Stop => {
                if let Some(asked) = pending.take() {
                    record(&mut net, asked, epochs, run, sink)?;
                }
                if let (Some(dir), Some(rel)) = (ctx.out_dir, save_as.clone()) {
                    let info = serde_json::json!({
                        "seed": seed, "strategy": label, "target": target,
                        "dataset": data.train.name,
                        "test_acc": run.last().map(|s| s.test.acc),
                    });
                    checkpoint::save(&net, &info, &dir.join(&rel))?;
                    run.model_file = Some(rel);
                }
                return Ok(());
            }
        }
    }
    Err(bad(format!(
        "did not stop within {MAX_SCHEDULE_DECISIONS} decisions"
    )))
}
