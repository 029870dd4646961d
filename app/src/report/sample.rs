//! Synthetic results of any size, for UI tests and the frame-time benchmark
//! (a comparison of 6 strategies x 8 sparsities on a 60-layer model takes
//! hours to compute; drawing it must not). Never shown as real results.

use crate::experiment::{
    Baseline, ComparisonResults, ExperimentConfig, RunResult, Status, StepRecord,
};
use crate::prune::{LayerSparsity, SparsityReport};
use crate::train::Metrics;

/// Results of `strategies` x `targets` x `seeds` runs on a model with `layers`
/// prunable layers. Seed `s` of a run at target `t` ends at test accuracy
/// `0.9 - t / 2 + 0.01 s`; strategy `k` takes `k + 1` steps.
pub fn sample_results(
    strategies: usize,
    targets: usize,
    seeds: usize,
    layers: usize,
) -> ComparisonResults {
    let targets: Vec<f32> = (0..targets)
        .map(|i| 0.5 + 0.49 * i as f32 / targets.max(2).saturating_sub(1) as f32)
        .collect();
    let metrics = |acc: f32| Metrics {
        loss: 1.0 - acc,
        acc,
    };
    let mut config = ExperimentConfig::demo();
    config.sparsities = targets.clone();
    config.seeds = (0..seeds as u64).collect();
    let template = config.strategies[0].clone();
    config.strategies = (0..strategies)
        .map(|k| crate::experiment::StrategySpec {
            name: Some(format!("strategy {k}")),
            ..template.clone()
        })
        .collect();
    let baselines = (0..seeds as u64)
        .map(|seed| Baseline {
            seed,
            val: metrics(0.9 + 0.01 * seed as f32),
            test: metrics(0.9 + 0.01 * seed as f32),
            epochs: 4,
            seconds: 10.0,
            model_file: None,
        })
        .collect();
    let mut runs = Vec::new();
    for seed in 0..seeds as u64 {
        for k in 0..strategies {
            for &t in &targets {
                let steps = (1..=k as u32 + 1)
                    .map(|step| {
                        let s = t * step as f32 / (k as f32 + 1.0);
                        let layers = (0..layers)
                            .map(|l| {
                                let total = 1000 * (l + 1);
                                let skew = 0.6 + 0.8 * (l as f32 / layers.max(1) as f32);
                                let frac = (s * skew).min(0.999);
                                LayerSparsity {
                                    name: format!("layer{l}.weight"),
                                    total,
                                    pruned: (total as f32 * frac) as usize,
                                }
                            })
                            .collect();
                        let acc = 0.9 - s / 2.0 + 0.01 * seed as f32;
                        StepRecord {
                            step,
                            target_sparsity: s,
                            sparsity: SparsityReport {
                                global: s,
                                channels: 0.0,
                                layers,
                            },
                            val: metrics(acc),
                            test: metrics(acc),
                            epochs: 2 * step,
                            seconds: 3.0 * step as f64,
                            pruned: None,
                            finetune_epochs: 2,
                            kept_epoch: None,
                            cost: None,
                        }
                    })
                    .collect();
                runs.push(RunResult {
                    strategy: format!("strategy {k}"),
                    schedule: template.schedule.clone(),
                    criterion: template.criterion.clone(),
                    target: t,
                    seed,
                    steps,
                    status: Status::Complete,
                    model_file: None,
                    latency: None,
                });
            }
        }
    }
    ComparisonResults {
        baselines,
        runs,
        status: Some(Status::Complete),
        ..ComparisonResults::new(config, "cpu")
    }
}
