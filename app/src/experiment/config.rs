//! Experiment configuration (TOML): data, model, training, and the strategies
//! to compare at each target sparsity.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::data::DatasetSpec;
use crate::error::{Error, Result};
use crate::model::import::ImportOptions;
use crate::model::ModelSpec;
use crate::plugins::Registry;
use crate::prune::{GranularityChoice, PruneMode, Scope};
use crate::train::{FinetunePolicy, LrSchedule, OptimizerSpec, TrainConfig};

/// One strategy: a schedule plugin and a criterion plugin with their
/// parameters, a granularity and a scope.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StrategySpec {
    /// Label in tables and plots (default: `schedule/criterion`).
    #[serde(default)]
    pub name: Option<String>,
    /// Schedule plugin name, e.g. `one-shot`, `iterative-geometric`, `patience`.
    pub schedule: String,
    /// Schedule parameters (validated by the plugin).
    #[serde(default = "empty_object")]
    pub schedule_params: serde_json::Value,
    /// Criterion plugin name, e.g. `magnitude`, `taylor`, `wanda`.
    #[serde(default = "default_criterion")]
    pub criterion: String,
    /// Criterion parameters (validated by the plugin).
    #[serde(default = "empty_object")]
    pub criterion_params: serde_json::Value,
    /// Weights or channels.
    #[serde(default)]
    pub granularity: GranularityChoice,
    /// Global or per-layer ranking.
    #[serde(default)]
    pub scope: Scope,
    /// How every fine-tuning phase the schedule asks for runs: a fixed
    /// number of epochs or early stopping with patience (default: as the
    /// schedule says).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finetune: Option<FinetunePolicy>,
}

fn empty_object() -> serde_json::Value {
    serde_json::json!({})
}
fn default_criterion() -> String {
    "magnitude".into()
}

impl Default for StrategySpec {
    /// One-shot magnitude pruning of weights, ranked globally.
    fn default() -> Self {
        Self {
            name: None,
            schedule: "one-shot".into(),
            schedule_params: empty_object(),
            criterion: default_criterion(),
            criterion_params: empty_object(),
            granularity: GranularityChoice::Unstructured,
            scope: Scope::Global,
            finetune: None,
        }
    }
}

impl StrategySpec {
    /// The label used in results.
    pub fn label(&self) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| format!("{}/{}", self.schedule, self.criterion))
    }

    /// Granularity and scope together.
    pub fn mode(&self) -> PruneMode {
        PruneMode {
            granularity: self.granularity,
            scope: self.scope,
        }
    }
}

/// The label of the dense-control runs: the base model fine-tuned, unpruned
/// (no strategy may take it).
pub const DENSE_CONTROL: &str = "dense control";

/// Most runs at once a config may ask for (`jobs`).
pub const MAX_JOBS: u32 = 256;

/// A whole comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExperimentConfig {
    /// Name shown in reports.
    pub name: String,
    /// Seeds: each seed trains its own base model and repeats every run.
    pub seeds: Vec<u64>,
    /// Target sparsities to compare (each in `[0, 1)`).
    pub sparsities: Vec<f32>,
    /// `cpu`, `auto` or `cuda:N`.
    pub device: String,
    /// Fraction of the training data held out for validation (patience).
    pub val_fraction: f32,
    /// Batches used to compute gradients / activations for criteria that need them.
    pub calibration_batches: usize,
    /// Most fine-tuning epochs one run may spend; a schedule that asks for
    /// more (e.g. one that never stops) fails its run.
    pub max_epochs_per_run: u32,
    /// The dataset.
    pub data: DatasetSpec,
    /// The model to train (ignored when `base_checkpoint` is set).
    pub model: ModelSpec,
    /// Start from this model instead of training a base model: a Shears
    /// checkpoint or a PyTorch state dict (`.pth`, `.pt`, `.safetensors`).
    pub base_checkpoint: Option<PathBuf>,
    /// What a PyTorch state dict cannot tell: an `nn.Sequential`'s layers
    /// and the normalisation the model was trained with. Without a
    /// `base_checkpoint`, `mean` and `std` fix the normalisation of the
    /// model trained here (absent: fitted on the training data).
    #[serde(skip_serializing_if = "ImportOptions::is_empty")]
    pub import: ImportOptions,
    /// Base training.
    pub train: TrainConfig,
    /// Fine-tuning after each prune; `finetune.epochs` is given to schedules
    /// that take a `finetune_epochs` parameter and were not given one.
    pub finetune: TrainConfig,
    /// Fine-tune a copy of each seed's dense base, at each target, for as
    /// many epochs as the longest strategy spent there, so that accuracy
    /// gained by extra training is not credited to pruning (default true).
    pub dense_control: bool,
    /// Equal-budget mode: every strategy spends exactly this many
    /// fine-tuning epochs at each target, split evenly over its prune steps
    /// (later steps get the remainder). Excludes patience policies.
    pub finetune_budget: Option<u32>,
    /// Measure the inference latency of every final model (default true).
    pub latency: bool,
    /// Runs at once, the cores shared between them (each run's results
    /// are those it has alone); 0 (the default): as many as the machine's
    /// cores make worthwhile for the model (see the `jobs` module). At most
    /// [`MAX_JOBS`].
    pub jobs: u32,
    /// The strategies.
    #[serde(rename = "strategy")]
    pub strategies: Vec<StrategySpec>,
}

impl Default for ExperimentConfig {
    fn default() -> Self {
        Self {
            name: "comparison".into(),
            seeds: vec![0],
            sparsities: vec![0.5, 0.8, 0.9, 0.95],
            device: "cpu".into(),
            val_fraction: 0.1,
            calibration_batches: crate::prune::DEFAULT_CALIBRATION_BATCHES,
            max_epochs_per_run: 1000,
            data: DatasetSpec::default(),
            model: ModelSpec::default(),
            base_checkpoint: None,
            import: ImportOptions::default(),
            train: TrainConfig::default(),
            finetune: TrainConfig {
                epochs: 2,
                lr: 0.01,
                optimizer: OptimizerSpec::default(),
                lr_schedule: LrSchedule::Cosine,
                batch_size: 128,
            },
            dense_control: true,
            finetune_budget: None,
            latency: true,
            jobs: 0,
            strategies: vec![],
        }
    }
}

/// The demo experiment shipped in `assets/demo.toml` (embedded dataset).
pub const DEMO_TOML: &str = include_str!("../../../assets/demo.toml");

impl ExperimentConfig {
    /// Parses TOML text; `origin` names the source in errors.
    pub fn from_toml(text: &str, origin: &Path) -> Result<Self> {
        let cfg: Self = toml::from_str(text).map_err(|e| {
            let msg = e.message().to_string();
            let at = e
                .span()
                .map(|s| {
                    let line = text[..s.start.min(text.len())].lines().count().max(1);
                    format!(" (line {line})")
                })
                .unwrap_or_default();
            Error::format(origin, format!("{msg}{at}"))
        })?;
        Ok(cfg)
    }

    /// Reads and parses a TOML file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::from_toml(&text, path)
    }

    /// The built-in demo.
    pub fn demo() -> Self {
        Self::from_toml(DEMO_TOML, Path::new("assets/demo.toml"))
            .expect("the embedded demo config parses")
    }

    /// Checks every value and that every plugin exists and accepts its
    /// parameters; the error names the field.
    pub fn validate(&self, registry: &Registry) -> Result<()> {
        if self.seeds.is_empty() {
            return Err(Error::config("seeds", "give at least one seed"));
        }
        self.import.norm()?;
        if self.jobs > MAX_JOBS {
            return Err(Error::config(
                "jobs",
                format!("{} is more than {MAX_JOBS} runs at once", self.jobs),
            ));
        }
        if self.sparsities.is_empty() {
            return Err(Error::config(
                "sparsities",
                "give at least one target sparsity",
            ));
        }
        for (i, s) in self.sparsities.iter().enumerate() {
            if !(0.0..1.0).contains(s) {
                return Err(Error::config(
                    format!("sparsities[{i}]"),
                    format!("{s} is outside [0, 1)"),
                ));
            }
            if self.sparsities[..i].iter().any(|t| (t - s).abs() < 1e-4) {
                return Err(Error::config(
                    format!("sparsities[{i}]"),
                    format!("{s} is given twice"),
                ));
            }
        }
        for (i, s) in self.seeds.iter().enumerate() {
            if self.seeds[..i].contains(s) {
                return Err(Error::config(
                    format!("seeds[{i}]"),
                    format!("seed {s} is given twice"),
                ));
            }
        }
        if !(self.val_fraction > 0.0 && self.val_fraction < 0.9) {
            return Err(Error::config(
                "val_fraction",
                format!(
                    "{} is outside (0, 0.9): patience and the reports need a validation set",
                    self.val_fraction
                ),
            ));
        }
        if self.max_epochs_per_run == 0 {
            return Err(Error::config("max_epochs_per_run", "must be at least 1"));
        }
        if self.calibration_batches == 0 {
            return Err(Error::config("calibration_batches", "must be at least 1"));
        }
        crate::device::parse(&self.device).map_err(|e| Error::config("device", e.to_string()))?;
        if let DatasetSpec::Embedded { train, test, .. } = self.data {
            for (key, n, range) in [("train", train, 50..=60_000), ("test", test, 20..=20_000)] {
                if !range.contains(&n) {
                    return Err(Error::config(
                        format!("data.{key}"),
                        format!("{n} images is outside {}..={}", range.start(), range.end()),
                    ));
                }
            }
        }
        self.model.check()?;
        self.train.validate("train")?;
        self.finetune.validate("finetune")?;
        if self.strategies.is_empty() {
            return Err(Error::config("strategy", "give at least one [[strategy]]"));
        }
        for (i, s) in self.strategies.iter().enumerate() {
            let field = format!("strategy[{i}]");
            registry
                .schedule(&s.schedule, &self.schedule_params(s, registry))
                .map_err(|e| Error::config(format!("{field}.schedule"), e.to_string()))?;
            registry
                .criterion(&s.criterion, &s.criterion_params)
                .map_err(|e| Error::config(format!("{field}.criterion"), e.to_string()))?;
            if let Some(p) = &s.finetune {
                p.check()
                    .map_err(|e| Error::config(format!("{field}.finetune"), e))?;
            }
        }
        if let Some(budget) = self.finetune_budget {
            if budget == 0 || budget > self.max_epochs_per_run {
                return Err(Error::config(
                    "finetune_budget",
                    format!(
                        "{budget} is outside 1..={} (max_epochs_per_run)",
                        self.max_epochs_per_run
                    ),
                ));
            }
            if let Some((i, _)) = self
                .strategies
                .iter()
                .enumerate()
                .find(|(_, s)| matches!(s.finetune, Some(FinetunePolicy::Patience(_))))
            {
                return Err(Error::config(
                    format!("strategy[{i}].finetune"),
                    "a patience policy decides its own epochs; it cannot be combined with finetune_budget",
                ));
            }
        }
        let mut labels: Vec<String> = self.strategies.iter().map(|s| s.label()).collect();
        labels.sort();
        if let Some(w) = labels.windows(2).find(|w| w[0] == w[1]) {
            return Err(Error::config(
                "strategy",
                format!("two strategies are named `{}`", w[0]),
            ));
        }
        if let Some(i) = self
            .strategies
            .iter()
            .position(|s| s.label() == DENSE_CONTROL)
        {
            return Err(Error::config(
                format!("strategy[{i}].name"),
                "`dense control` is the name of the dense-control runs",
            ));
        }
        Ok(())
    }

    /// The schedule parameters of `s`, with `finetune_epochs` filled in from
    /// `finetune.epochs` when the schedule takes it and it was not given.
    pub fn schedule_params(&self, s: &StrategySpec, registry: &Registry) -> serde_json::Value {
        let mut params = s.schedule_params.clone();
        let takes_epochs = registry
            .schedule_schema(&s.schedule)
            .is_some_and(|schema| schema["properties"].get("finetune_epochs").is_some());
        if let Some(obj) = params.as_object_mut() {
            if takes_epochs && !obj.contains_key("finetune_epochs") {
                obj.insert("finetune_epochs".into(), self.finetune.epochs.into());
            }
        }
        params
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_seeds_and_sparsities_are_refused() {
        let reg = Registry::builtin();
        let mut cfg = ExperimentConfig::demo();
        cfg.seeds = vec![0, 1, 0];
        let e = cfg.validate(&reg).unwrap_err().to_string();
        assert!(e.contains("seeds[2]") && e.contains("twice"), "{e}");
        cfg.seeds = vec![0];
        cfg.sparsities = vec![0.5, 0.9, 0.5];
        let e = cfg.validate(&reg).unwrap_err().to_string();
        assert!(e.contains("sparsities[2]"), "{e}");
    }

    #[test]
    fn demo_config_is_valid() {
        let cfg = ExperimentConfig::demo();
        cfg.validate(&Registry::builtin()).unwrap();
        assert!(matches!(cfg.data, DatasetSpec::Embedded { .. }));
        assert_eq!(cfg.strategies.len(), 4);
    }

    #[test]
    fn bad_keys_and_values_are_named() {
        let p = Path::new("x.toml");
        let e = ExperimentConfig::from_toml("sparsitiez = [0.5]", p)
            .unwrap_err()
            .to_string();
        assert!(e.contains("sparsitiez") && e.contains("x.toml"), "{e}");
        let e = ExperimentConfig::from_toml("[train]\nlr = \"fast\"", p)
            .unwrap_err()
            .to_string();
        assert!(e.contains("lr") || e.contains("line 2"), "{e}");
        let reg = Registry::builtin();
        let mut cfg = ExperimentConfig::demo();
        cfg.sparsities = vec![0.5, 1.2];
        assert!(cfg
            .validate(&reg)
            .unwrap_err()
            .to_string()
            .contains("sparsities[1]"));
        let mut cfg = ExperimentConfig::demo();
        cfg.strategies[1].schedule = "nope".into();
        let e = cfg.validate(&reg).unwrap_err().to_string();
        assert!(
            e.contains("strategy[1].schedule") && e.contains("one-shot"),
            "{e}"
        );
        let mut cfg = ExperimentConfig::demo();
        cfg.strategies[0].schedule_params = serde_json::json!({"bogus": 1});
        let e = cfg.validate(&reg).unwrap_err().to_string();
        assert!(e.contains("strategy[0]") && e.contains("bogus"), "{e}");
        let mut cfg = ExperimentConfig::demo();
        cfg.train.lr = -1.0;
        assert!(cfg
            .validate(&reg)
            .unwrap_err()
            .to_string()
            .contains("train.lr"));
    }

    #[test]
    fn finetune_epochs_are_filled_in_only_where_taken() {
        let reg = Registry::builtin();
        let mut cfg = ExperimentConfig::demo();
        cfg.finetune.epochs = 3;
        let s = StrategySpec::default();
        assert_eq!(cfg.schedule_params(&s, &reg)["finetune_epochs"], 3);
        let p = StrategySpec {
            schedule: "patience".into(),
            ..s
        };
        assert!(cfg
            .schedule_params(&p, &reg)
            .get("finetune_epochs")
            .is_none());
    }
}
