//! The numbers behind each comparison chart, computed from results alone (no
//! GUI types), so the app, exports and tests share them.

use serde::{Deserialize, Serialize};

use crate::experiment::results::DENSE_CONTROL;
use crate::experiment::{ComparisonResults, RunResult, Status};

/// Mean and sample standard deviation (n - 1 in the denominator: seeds are
/// a sample) of `xs`; the deviation is 0 for fewer than two values.
pub fn mean_std(xs: &[f32]) -> (f32, f32) {
    if xs.is_empty() {
        return (0.0, 0.0);
    }
    let n = xs.len() as f32;
    let mean = xs.iter().sum::<f32>() / n;
    if xs.len() < 2 {
        return (mean, 0.0);
    }
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f32>() / (n - 1.0);
    (mean, var.sqrt())
}

/// Strategy labels in the order they first appear in the results.
pub fn strategies(r: &ComparisonResults) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for s in r
        .config
        .strategies
        .iter()
        .map(|s| s.label())
        .chain(r.runs.iter().map(|r| r.strategy.clone()))
        .chain(r.controls.iter().map(|r| r.strategy.clone()))
    {
        if !out.contains(&s) {
            out.push(s);
        }
    }
    out
}

/// Target sparsities that have at least one run, ascending.
pub fn targets(r: &ComparisonResults) -> Vec<f32> {
    let mut t: Vec<f32> = r.runs.iter().map(|r| r.target).collect();
    t.sort_by(f32::total_cmp);
    t.dedup_by(|a, b| (*a - *b).abs() < 1e-6);
    t
}

fn completed<'a>(
    r: &'a ComparisonResults,
    strategy: &'a str,
    target: f32,
) -> impl Iterator<Item = &'a RunResult> + 'a {
    r.runs.iter().chain(&r.controls).filter(move |run| {
        run.strategy == strategy
            && (run.target - target).abs() < 1e-6
            && run.status == Status::Complete
            && !run.steps.is_empty()
    })
}

/// One point of an accuracy-vs-sparsity curve: a strategy at one target,
/// over the seeds whose run completed.
#[derive(Debug, Clone, PartialEq)]
pub struct AccuracyPoint {
    /// Target sparsity of the runs.
    pub target: f32,
    /// Weight sparsity reached (mean over seeds).
    pub sparsity: f32,
    /// Final test accuracy, mean over seeds.
    pub acc: f32,
    /// Standard deviation of the final test accuracy over seeds.
    pub acc_std: f32,
    /// Fine-tuning epochs spent (mean over seeds).
    pub epochs: f32,
    /// Wall seconds spent (mean over seeds).
    pub seconds: f32,
    /// Seeds behind the point.
    pub seeds: usize,
    /// Test accuracy right after the last prune, before its fine-tuning
    /// (mean over seeds; `None` in results that did not record it).
    pub pruned_acc: Option<f32>,
    /// Compression ratio, all / non-zero parameters (mean over seeds).
    pub compression: Option<f32>,
    /// Theoretical speed-up, dense / remaining MACs (mean over seeds).
    pub speedup: Option<f32>,
    /// Measured latency of the final model at batch 1 and 64, in ms (the
    /// compacted model's for structured pruning; mean over seeds).
    pub latency_ms: Option<(f32, f32)>,
    /// Whether this is the dense control (unpruned, fine-tuned as long as
    /// the longest strategy at this target).
    pub control: bool,
}

/// What the x axis of the accuracy chart shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum XAxis {
    /// Weight sparsity reached (%); the dense control sits at its target.
    #[default]
    Sparsity,
    /// All / non-zero parameters.
    Compression,
    /// Dense / remaining MACs.
    Speedup,
    /// Measured latency at batch 64 (ms).
    Latency,
}

impl XAxis {
    /// Every choice, in menu order.
    pub const ALL: [XAxis; 4] = [
        XAxis::Sparsity,
        XAxis::Compression,
        XAxis::Speedup,
        XAxis::Latency,
    ];

    /// Axis label.
    pub fn label(self) -> &'static str {
        match self {
            XAxis::Sparsity => "weight sparsity (%)",
            XAxis::Compression => "compression ratio (all / non-zero parameters)",
            XAxis::Speedup => "theoretical speed-up (dense / remaining MACs)",
            XAxis::Latency => "latency at batch 64 (ms)",
        }
    }

    /// Short name for a menu.
    pub fn name(self) -> &'static str {
        match self {
            XAxis::Sparsity => "sparsity",
            XAxis::Compression => "compression",
            XAxis::Speedup => "speed-up",
            XAxis::Latency => "latency",
        }
    }

    /// Where `p` goes on this axis (`None` when its results lack the value).
    pub fn value(self, p: &AccuracyPoint) -> Option<f64> {
        match self {
            XAxis::Sparsity if p.control => Some(f64::from(p.target) * 100.0),
            XAxis::Sparsity => Some(f64::from(p.sparsity) * 100.0),
            XAxis::Compression => p.compression.map(f64::from),
            XAxis::Speedup => p.speedup.map(f64::from),
            XAxis::Latency => p.latency_ms.map(|l| f64::from(l.1)),
        }
    }
}

/// The mean of the values when every one is present.
fn mean_all(xs: impl Iterator<Item = Option<f32>>) -> Option<f32> {
    let v: Option<Vec<f32>> = xs.collect();
    v.filter(|v| !v.is_empty()).map(|v| mean_std(&v).0)
}

/// A strategy's curve: one point per target sparsity with a completed run.
#[derive(Debug, Clone, PartialEq)]
pub struct StrategyCurve {
    /// Strategy label.
    pub strategy: String,
    /// Points by ascending target.
    pub points: Vec<AccuracyPoint>,
}

/// The point of `strategy` at `target`, if any run completed there.
pub fn point(r: &ComparisonResults, strategy: &str, target: f32) -> Option<AccuracyPoint> {
    let runs: Vec<&RunResult> = completed(r, strategy, target).collect();
    let finals: Vec<_> = runs.iter().filter_map(|run| run.last()).collect();
    if finals.is_empty() {
        return None;
    }
    let col = |f: &dyn Fn(&crate::experiment::StepRecord) -> f32| -> Vec<f32> {
        finals.iter().map(|s| f(s)).collect()
    };
    let (acc, acc_std) = mean_std(&col(&|s| s.test.acc));
    let latency = |f: fn(&crate::model::latency::Latency) -> f64| {
        mean_all(
            runs.iter()
                .map(|run| run.latency.as_ref().map(|l| f(l) as f32)),
        )
    };
    let b1 = latency(|l| l.compacted_batch1_ms.unwrap_or(l.batch1_ms));
    let b64 = latency(|l| l.compacted_batch64_ms.unwrap_or(l.batch64_ms));
    Some(AccuracyPoint {
        target,
        sparsity: mean_std(&col(&|s| s.sparsity.global)).0,
        acc,
        acc_std,
        epochs: mean_std(&col(&|s| s.epochs as f32)).0,
        seconds: mean_std(&col(&|s| s.seconds as f32)).0,
        seeds: finals.len(),
        pruned_acc: mean_all(finals.iter().map(|s| s.pruned.map(|p| p.test.acc))),
        compression: mean_all(
            finals
                .iter()
                .map(|s| s.cost.map(|c| c.compression() as f32)),
        ),
        speedup: mean_all(finals.iter().map(|s| s.cost.map(|c| c.speedup() as f32))),
        latency_ms: b1.zip(b64),
        control: strategy == DENSE_CONTROL,
    })
}

/// Final test accuracy against sparsity, one curve per strategy.
pub fn accuracy_vs_sparsity(r: &ComparisonResults) -> Vec<StrategyCurve> {
    strategies(r).iter().map(|s| curve(r, s)).collect()
}

/// The accuracy-vs-sparsity curve of one strategy.
pub fn curve(r: &ComparisonResults, strategy: &str) -> StrategyCurve {
    StrategyCurve {
        strategy: strategy.to_string(),
        points: targets(r)
            .into_iter()
            .filter_map(|t| point(r, strategy, t))
            .collect(),
    }
}

/// Test accuracy of the dense base models: mean and standard deviation over
/// seeds (`None` before the first base model is ready).
pub fn dense_baseline(r: &ComparisonResults) -> Option<(f32, f32)> {
    if r.baselines.is_empty() {
        return None;
    }
    let accs: Vec<f32> = r.baselines.iter().map(|b| b.test.acc).collect();
    Some(mean_std(&accs))
}

/// Sparsity of every prunable layer after `strategy`'s runs at `target`
/// (mean over completed seeds), in network order; `None` without a
/// completed run, and for the dense control.
pub fn layer_sparsity(
    r: &ComparisonResults,
    strategy: &str,
    target: f32,
) -> Option<Vec<(String, f32)>> {
    if strategy == DENSE_CONTROL {
        // Nothing of it is pruned.
        return None;
    }
    let finals: Vec<_> = completed(r, strategy, target)
        .filter_map(|run| run.last())
        .collect();
    let first = finals.first()?;
    Some(
        first
            .sparsity
            .layers
            .iter()
            .enumerate()
            .map(|(i, l)| {
                let xs: Vec<f32> = finals
                    .iter()
                    .filter_map(|s| s.sparsity.layers.get(i).map(|l| l.sparsity()))
                    .collect();
                (l.name.clone(), mean_std(&xs).0)
            })
            .collect(),
    )
}

/// What the x axis of the compute chart counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, Default)]
pub enum ComputeAxis {
    /// Fine-tuning epochs spent.
    #[default]
    Epochs,
    /// Wall seconds spent.
    Seconds,
}

/// One run's path through compute: `(compute spent, test accuracy)` after
/// each step, starting from the dense model at zero cost.
#[derive(Debug, Clone, PartialEq)]
pub struct ComputeTrace {
    /// Strategy label.
    pub strategy: String,
    /// Seed of the run.
    pub seed: u64,
    /// Points in step order.
    pub points: Vec<[f64; 2]>,
    /// Weight sparsity reached at each point (0 for the dense start).
    pub sparsity: Vec<f32>,
}

/// Accuracy against compute spent for every run at `target` that took at
/// least one step (complete, cancelled or failed: the steps it finished).
pub fn accuracy_vs_compute(
    r: &ComparisonResults,
    target: f32,
    axis: ComputeAxis,
) -> Vec<ComputeTrace> {
    let base = |seed: u64| {
        r.baselines
            .iter()
            .find(|b| b.seed == seed)
            .map(|b| b.test.acc as f64)
    };
    r.runs
        .iter()
        .filter(|run| (run.target - target).abs() < 1e-6 && !run.steps.is_empty())
        .map(|run| {
            let mut points: Vec<[f64; 2]> = base(run.seed).map(|a| [0.0, a]).into_iter().collect();
            let mut sparsity = vec![0.0; points.len()];
            sparsity.extend(run.steps.iter().map(|s| s.sparsity.global));
            points.extend(run.steps.iter().map(|s| {
                let x = match axis {
                    ComputeAxis::Epochs => s.epochs as f64,
                    ComputeAxis::Seconds => s.seconds,
                };
                [x, s.test.acc as f64]
            }));
            ComputeTrace {
                strategy: run.strategy.clone(),
                seed: run.seed,
                points,
                sparsity,
            }
        })
        .collect()
}

/// One row of the numbers table.
#[derive(Debug, Clone, PartialEq)]
pub struct TableRow {
    /// Strategy label (`dense` for the baseline).
    pub strategy: String,
    /// Target sparsity (0 for the baseline).
    pub target: f32,
    /// The completed runs' point, if any.
    pub point: Option<AccuracyPoint>,
    /// Runs at this cell that failed or were cancelled, with their reasons.
    pub problems: Vec<String>,
}

/// Strategy x target rows, in strategy order then ascending target.
pub fn table(r: &ComparisonResults) -> Vec<TableRow> {
    let mut rows = Vec::new();
    for s in strategies(r) {
        for t in targets(r) {
            let problems: Vec<String> = r
                .runs
                .iter()
                .filter(|run| run.strategy == s && (run.target - t).abs() < 1e-6)
                .filter_map(|run| match &run.status {
                    Status::Complete => None,
                    Status::Cancelled => Some(format!("seed {}: cancelled", run.seed)),
                    Status::Failed(e) => Some(format!("seed {}: failed: {e}", run.seed)),
                })
                .collect();
            let point = point(r, &s, t);
            if point.is_some() || !problems.is_empty() {
                rows.push(TableRow {
                    strategy: s.clone(),
                    target: t,
                    point,
                    problems,
                });
            }
        }
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::sample::sample_results;

    #[test]
    fn curves_average_over_seeds() {
        let r = sample_results(2, 3, 2, 4);
        let curves = accuracy_vs_sparsity(&r);
        assert_eq!(curves.len(), 2);
        assert_eq!(curves[0].points.len(), 3);
        let p = &curves[0].points[0];
        assert_eq!(p.seeds, 2);
        // The sample gives seed s accuracy base - target/2 + 0.01 * s.
        let expect = [0, 1]
            .iter()
            .map(|&s| 0.9 - p.target / 2.0 + 0.01 * s as f32)
            .sum::<f32>()
            / 2.0;
        assert!((p.acc - expect).abs() < 1e-5, "{} vs {expect}", p.acc);
        // Two seeds 0.01 apart: sample std 0.01 / sqrt(2).
        assert!((p.acc_std - 0.007_071).abs() < 1e-5, "{}", p.acc_std);
        let (m, _) = dense_baseline(&r).unwrap();
        assert!((m - 0.905).abs() < 1e-5);
    }

    #[test]
    fn dense_controls_are_a_series_at_their_targets() {
        let mut r = sample_results(1, 2, 1, 3);
        let mut control = r.runs[0].clone();
        control.strategy = DENSE_CONTROL.into();
        control.schedule = DENSE_CONTROL.into();
        let mut step = control.steps.last().unwrap().clone();
        step.sparsity.global = 0.0;
        step.cost = Some(crate::prune::Cost {
            params: 10,
            nonzero_params: 10,
            macs: 20,
            nonzero_macs: 20,
        });
        control.steps = vec![step];
        r.controls.push(control.clone());
        assert_eq!(strategies(&r).last().unwrap(), DENSE_CONTROL);
        let p = point(&r, DENSE_CONTROL, control.target).unwrap();
        assert!(p.control);
        assert_eq!(p.sparsity, 0.0);
        assert_eq!(
            XAxis::Sparsity.value(&p),
            Some(f64::from(control.target) * 100.0)
        );
        assert_eq!(XAxis::Compression.value(&p), Some(1.0));
        assert_eq!(XAxis::Latency.value(&p), None);
        assert!(layer_sparsity(&r, DENSE_CONTROL, control.target).is_none());
        // A strategy point without cost data has no place on the cost axes.
        let q = point(&r, "strategy 0", control.target).unwrap();
        assert!(!q.control && q.compression.is_none());
        assert_eq!(
            XAxis::Sparsity.value(&q),
            Some(f64::from(q.sparsity) * 100.0)
        );
    }

    #[test]
    fn failed_runs_are_left_out_of_curves_but_listed() {
        let mut r = sample_results(1, 2, 1, 3);
        r.runs[0].status = Status::Failed("plugin `x`: boom".into());
        let curves = accuracy_vs_sparsity(&r);
        assert_eq!(curves[0].points.len(), 1);
        let rows = table(&r);
        assert_eq!(rows.len(), 2);
        assert!(rows[0].point.is_none());
        assert!(rows[0].problems[0].contains("boom"));
    }

    #[test]
    fn layer_sparsity_and_compute() {
        let r = sample_results(2, 2, 1, 5);
        let t = targets(&r)[1];
        let layers = layer_sparsity(&r, "strategy 0", t).unwrap();
        assert_eq!(layers.len(), 5);
        assert!(layers.iter().all(|(_, s)| (0.0..=1.0).contains(s)));
        assert!(layer_sparsity(&r, "nope", t).is_none());
        let traces = accuracy_vs_compute(&r, t, ComputeAxis::Epochs);
        assert_eq!(traces.len(), 2);
        assert_eq!(traces[0].points[0][0], 0.0, "starts at the dense model");
        assert!(traces[0].points.windows(2).all(|w| w[1][0] >= w[0][0]));
        assert_eq!(traces[0].sparsity.len(), traces[0].points.len());
        assert_eq!(traces[0].sparsity[0], 0.0);
        assert!(traces[0].sparsity.windows(2).all(|w| w[1] >= w[0]));
    }
}
