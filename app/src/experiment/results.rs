//! What a comparison produces: per-step records, per-run results, baselines,
//! the events streamed while it runs, and CSV export.

use serde::{Deserialize, Serialize};

use super::config::ExperimentConfig;
use crate::model::latency::Latency;
use crate::prune::{Cost, SparsityReport};
use crate::train::Metrics;

/// Validation and test metrics of one model.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub struct SplitMetrics {
    /// On the validation split.
    pub val: Metrics,
    /// On the test split.
    pub test: Metrics,
}

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
    /// Metrics right after the prune, before any fine-tuning (absent in
    /// results written before Shears recorded them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pruned: Option<SplitMetrics>,
    /// Fine-tuning epochs run in this step.
    #[serde(default)]
    pub finetune_epochs: u32,
    /// With early stopping that restores the best weights: the epoch of this
    /// step whose weights were kept (0 = the model right after the prune).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kept_epoch: Option<u32>,
    /// Parameters and MACs of the model after the step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<Cost>,
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
    /// Measured inference latency of the final model on the run's device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency: Option<Latency>,
}

pub use super::config::DENSE_CONTROL;

impl RunResult {
    /// A run of `strategy` (its schedule and criterion plugins) at `target`
    /// for `seed` with no step yet: complete until something fails.
    pub fn new(
        strategy: impl Into<String>,
        (schedule, criterion): (impl Into<String>, impl Into<String>),
        target: f32,
        seed: u64,
    ) -> Self {
        Self {
            strategy: strategy.into(),
            schedule: schedule.into(),
            criterion: criterion.into(),
            target,
            seed,
            steps: vec![],
            status: Status::Complete,
            model_file: None,
            latency: None,
        }
    }

    /// Whether this is a dense-control run, not a pruning strategy.
    pub fn is_dense_control(&self) -> bool {
        self.schedule == DENSE_CONTROL
    }

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
    /// Dense controls: per seed and target, the base fine-tuned unpruned for
    /// as many epochs as the longest strategy spent there (strategy
    /// [`DENSE_CONTROL`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub controls: Vec<RunResult>,
    /// How the whole comparison ended (`None` while running).
    pub status: Option<Status>,
}

impl ComparisonResults {
    /// The results of a comparison of `config` on `device` before anything
    /// ran (no data or model summary yet, no status).
    pub fn new(config: ExperimentConfig, device: impl Into<String>) -> Self {
        Self {
            version: 1,
            config,
            device: device.into(),
            data: DataSummary::default(),
            model: ModelSummary::default(),
            baselines: vec![],
            runs: vec![],
            controls: vec![],
            status: None,
        }
    }

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
        /// Training epochs the whole comparison is expected to take (base
        /// models, runs with their schedules played to their epoch limits,
        /// dense controls); 0 in results of older versions.
        #[serde(default)]
        expected_epochs: u64,
    },
    /// Training is inside an epoch: `batch` of `batches` done. Sent at most a
    /// few times a second, for progress displays; not written to events.jsonl.
    Batch {
        /// `base`, the strategy label or `dense control`.
        phase: String,
        /// Target sparsity of the run (0 for the base).
        target: f32,
        /// Seed.
        seed: u64,
        /// 1-based epoch within the phase.
        epoch: u32,
        /// Epoch limit of the phase.
        of: u32,
        /// Batches done in this epoch.
        batch: usize,
        /// Batches in the epoch.
        batches: usize,
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
        /// Fine-tuning epochs the run is expected to take (its schedule played
        /// with every phase run to its limit; early stopping may take fewer).
        #[serde(default)]
        expected_epochs: u32,
    },
    /// The network was pruned.
    Pruned {
        /// Strategy label.
        strategy: String,
        /// Seed of the run.
        #[serde(default)]
        seed: u64,
        /// Target sparsity of the run (`target` is this step's).
        #[serde(default)]
        run_target: f32,
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
        /// Seed of the run.
        #[serde(default)]
        seed: u64,
        /// Target sparsity of the run.
        #[serde(default)]
        run_target: f32,
        /// The step.
        record: StepRecord,
    },
    /// A run finished (or failed).
    RunFinished(RunResult),
    /// A dense control finished.
    ControlFinished(RunResult),
    /// The whole comparison ended.
    Finished {
        /// How it ended.
        status: Status,
    },
}

/// The columns of [`to_csv`], in order.
pub const CSV_COLUMNS: [&str; 30] = [
    "strategy",
    "schedule",
    "criterion",
    "target",
    "seed",
    "step",
    "target_sparsity",
    "sparsity",
    "channel_sparsity",
    "val_acc",
    "val_loss",
    "test_acc",
    "test_loss",
    "pruned_val_acc",
    "pruned_test_acc",
    "finetune_epochs",
    "kept_epoch",
    "epochs",
    "seconds",
    "params",
    "nonzero_params",
    "compression",
    "macs",
    "nonzero_macs",
    "speedup",
    "latency_b1_ms",
    "latency_b64_ms",
    "compacted_latency_b1_ms",
    "compacted_latency_b64_ms",
    "status",
];

/// One CSV row per step of every run (one row with empty metrics for a run
/// that ended before its first step), plus the baselines (strategy `dense`,
/// step 0). Columns: [`CSV_COLUMNS`]; the latency columns are filled on a
/// run's last step.
pub fn to_csv(results: &ComparisonResults) -> String {
    let mut out = CSV_COLUMNS.join(",");
    out.push('\n');
    let f6 = |v: f32| format!("{v:.6}");
    let opt = |v: Option<String>| v.unwrap_or_default();
    let mut push = |fields: Vec<String>| {
        debug_assert_eq!(fields.len(), CSV_COLUMNS.len());
        out.push_str(&fields.join(","));
        out.push('\n');
    };
    for b in &results.baselines {
        let mut row = vec![
            "dense".into(),
            String::new(),
            String::new(),
            "0".into(),
            b.seed.to_string(),
            "0".into(),
            "0".into(),
            "0".into(),
            "0".into(),
            f6(b.val.acc),
            f6(b.val.loss),
            f6(b.test.acc),
            f6(b.test.loss),
            String::new(),
            String::new(),
            "0".into(),
            String::new(),
            b.epochs.to_string(),
            format!("{:.3}", b.seconds),
        ];
        row.extend(std::iter::repeat_n(String::new(), 10));
        row.push("complete".into());
        push(row);
    }
    for r in results.runs.iter().chain(&results.controls) {
        let status = match &r.status {
            Status::Complete => "complete".to_string(),
            Status::Cancelled => "cancelled".to_string(),
            Status::Failed(e) => format!("failed: {}", e.replace([',', '\n'], ";")),
        };
        let head = [
            csv_field(&r.strategy),
            csv_field(&r.schedule),
            csv_field(&r.criterion),
            r.target.to_string(),
            r.seed.to_string(),
        ];
        if r.steps.is_empty() {
            let mut row = head.to_vec();
            row.push("0".into());
            row.extend(std::iter::repeat_n(String::new(), CSV_COLUMNS.len() - 7));
            row.push(status.clone());
            push(row);
        }
        for (i, s) in r.steps.iter().enumerate() {
            let last = i + 1 == r.steps.len();
            let lat = r.latency.filter(|_| last);
            let ms = |v: Option<f64>| opt(v.map(|v| format!("{v:.4}")));
            let mut row = head.to_vec();
            row.extend([
                s.step.to_string(),
                f6(s.target_sparsity),
                f6(s.sparsity.global),
                f6(s.sparsity.channels),
                f6(s.val.acc),
                f6(s.val.loss),
                f6(s.test.acc),
                f6(s.test.loss),
                opt(s.pruned.map(|p| f6(p.val.acc))),
                opt(s.pruned.map(|p| f6(p.test.acc))),
                s.finetune_epochs.to_string(),
                opt(s.kept_epoch.map(|k| k.to_string())),
                s.epochs.to_string(),
                format!("{:.3}", s.seconds),
                opt(s.cost.map(|c| c.params.to_string())),
                opt(s.cost.map(|c| c.nonzero_params.to_string())),
                opt(s.cost.map(|c| format!("{:.4}", c.compression()))),
                opt(s.cost.map(|c| c.macs.to_string())),
                opt(s.cost.map(|c| c.nonzero_macs.to_string())),
                opt(s.cost.map(|c| format!("{:.4}", c.speedup()))),
                ms(lat.map(|l| l.batch1_ms)),
                ms(lat.map(|l| l.batch64_ms)),
                ms(lat.and_then(|l| l.compacted_batch1_ms)),
                ms(lat.and_then(|l| l.compacted_batch64_ms)),
                status.clone(),
            ]);
            push(row);
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
