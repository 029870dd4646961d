//! What a comparison produces: per-step records, per-run results, baselines,
//! the events streamed while it runs, and CSV export.

use serde::{Deserialize, Serialize};

use super::config::ExperimentConfig;
use crate::prune::SparsityReport;
use crate::train::Metrics;

/// State after one step of a strategy (a prune and the fine-tuning after it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    /// 1-based step index.
    pub step: u32,
    /// Sparsity the schedule asked for.
    pub target_sparsity: f32,
    /// Sparsity reached, per layer and global.
    pub sparsity: SparsityReport,
    /// Validation metrics after the step.
    pub val: Metrics,
    /// Test metrics after the step.
    pub test: Metrics,
    /// Fine-tuning epochs spent in this run so far.
    pub epochs: u32,
    /// Wall seconds spent in this run so far.
    pub seconds: f64,
}

/// How a run (or the whole comparison) ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", content = "error", rename_all = "kebab-case")]
pub enum Status {
    /// Ran to the end.
    Complete,
    /// Stopped by the user.
    Cancelled,
    /// Stopped by an error (the message).
    Failed(String),
}

/// One strategy at one target sparsity and one seed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    /// Strategy label.
    pub strategy: String,
    /// Schedule plugin.
    pub schedule: String,
    /// Criterion plugin.
    pub criterion: String,
    /// Final target sparsity.
    pub target: f32,
    /// Seed.
    pub seed: u64,
    /// Every step, in order.
    pub steps: Vec<StepRecord>,
    /// How it ended.
    pub status: Status,
    /// The final pruned model, relative to the output folder (when the
    /// comparison had one and the run completed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_file: Option<String>,
}

impl RunResult {
    /// The last step (the run's final state), if any.
    pub fn last(&self) -> Option<&StepRecord> {
        self.steps.last()
    }
}

/// The dense base model of one seed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Baseline {
    /// Seed.
    pub seed: u64,
    /// Validation metrics.
    pub val: Metrics,
    /// Test metrics.
    pub test: Metrics,
    /// Training epochs (0 when loaded from a checkpoint).
    pub epochs: u32,
    /// Training wall seconds.
    pub seconds: f64,
    /// The trained base model, relative to the output folder (when the
    /// comparison trained it and had an output folder).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_file: Option<String>,
}

/// Sizes of the data the comparison used.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct DataSummary {
    /// Dataset name.
    pub name: String,
    /// Samples in each split.
    pub train: usize,
    /// Validation samples.
    pub val: usize,
    /// Test samples.
    pub test: usize,
    /// Input shape `[c, h, w]`.
    pub input: [usize; 3],
    /// Classes.
    pub classes: usize,
}

/// Size of the model the comparison used.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ModelSummary {
    /// Family name.
    pub family: String,
    /// Trainable parameters.
    pub params: usize,
    /// Multiply-accumulates per sample.
    pub macs: usize,
    /// Per prunable layer: name, weights, MACs.
    pub layers: Vec<(String, usize, usize)>,
}

/// Everything a comparison produced (DIR/results.json).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComparisonResults {
    /// Format version of this file.
    pub version: u32,
    /// The configuration that ran.
    pub config: ExperimentConfig,
    /// Device used.
    pub device: String,
    /// Data summary.
    pub data: DataSummary,
    /// Model summary.
    pub model: ModelSummary,
    /// Dense base models, one per seed.
    pub baselines: Vec<Baseline>,
    /// Finished (or failed) runs.
    pub runs: Vec<RunResult>,
    /// How the whole comparison ended (`None` while running).
    pub status: Option<Status>,
}

impl ComparisonResults {
    /// Runs that ended with an error.
    pub fn failed_runs(&self) -> usize {
        self.runs
            .iter()
            .filter(|r| matches!(r.status, Status::Failed(_)))
            .count()
    }
}

/// Something that happened during a comparison (one line of DIR/events.jsonl).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum Event {
    /// The comparison started: how many runs and epochs to expect.
    Started {
        /// Runs (strategies x sparsities x seeds).
        runs: usize,
        /// Device used.
        device: String,
        /// Data summary.
        data: DataSummary,
        /// Model summary.
        model: ModelSummary,
    },
    /// One training epoch finished.
    Epoch {
        /// `base` or the strategy label.
        phase: String,
        /// Target sparsity of the run (0 for the base).
        target: f32,
        /// Seed.
        seed: u64,
        /// 1-based epoch within the phase.
        epoch: u32,
        /// Epoch limit of the phase.
        of: u32,
        /// Training metrics.
        train: Metrics,
        /// Validation metrics.
        val: Metrics,
        /// Learning rate used.
        lr: f64,
    },
    /// A base model is ready.
    BaseReady(Baseline),
    /// A run started.
    RunStarted {
        /// Index among all runs.
        index: usize,
        /// Strategy label.
        strategy: String,
        /// Target sparsity.
        target: f32,
        /// Seed.
        seed: u64,
    },
    /// The network was pruned.
    Pruned {
        /// Strategy label.
        strategy: String,
        /// 1-based prune step within the run.
        step: u32,
        /// Sparsity asked for.
        target: f32,
        /// Sparsity reached (in the granularity's unit).
        reached: f32,
        /// Milliseconds spent copying weights and masks to host memory for
        /// the criterion (the only weight transfer off a GPU).
        #[serde(default)]
        host_copy_ms: f64,
    },
    /// A step finished.
    Step {
        /// Strategy label.
        strategy: String,
        /// The step.
        record: StepRecord,
    },
    /// A run finished (or failed).
    RunFinished(RunResult),
    /// The whole comparison ended.
    Finished {
        /// How it ended.
        status: Status,
    },
}

/// One CSV row per step of every run (one empty row for a run that ended
/// before its first step), plus the baselines (step 0).
pub fn to_csv(results: &ComparisonResults) -> String {
    let mut out = String::from(
        "strategy,schedule,criterion,target,seed,step,target_sparsity,sparsity,channel_sparsity,val_acc,val_loss,test_acc,test_loss,epochs,seconds,status\n",
    );
    for b in &results.baselines {
        out.push_str(&format!(
            "dense,,,0,{},0,0,0,0,{:.6},{:.6},{:.6},{:.6},{},{:.3},complete\n",
            b.seed, b.val.acc, b.val.loss, b.test.acc, b.test.loss, b.epochs, b.seconds
        ));
    }
    for r in &results.runs {
        let status = match &r.status {
            Status::Complete => "complete".to_string(),
            Status::Cancelled => "cancelled".to_string(),
            Status::Failed(e) => format!("failed: {}", e.replace([',', '\n'], ";")),
        };
        let head = format!(
            "{},{},{},{},{}",
            csv_field(&r.strategy),
            r.schedule,
            r.criterion,
            r.target,
            r.seed
        );
        if r.steps.is_empty() {
            out.push_str(&format!("{head},0,,,,,,,,0,0,{status}\n"));
        }
        for s in &r.steps {
            out.push_str(&format!(
                "{head},{},{:.6},{:.6},{:.6},{:.6},{:.6},{:.6},{:.6},{},{:.3},{}\n",
                s.step,
                s.target_sparsity,
                s.sparsity.global,
                s.sparsity.channels,
                s.val.acc,
                s.val.loss,
                s.test.acc,
                s.test.loss,
                s.epochs,
                s.seconds,
                status
            ));
        }
    }
    out
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}
