//! Built-in Shears pruning schedules.
//!
//! Every schedule here is a sequence of sparsities `s_1 < s_2 < … < s_k = s`
//! (`s` = the run's target sparsity), computed on the first call to
//! [`Schedule::decide`]. They all answer the same way:
//!
//! 1. target `<= 0` → [`Decision::Stop`] at once;
//! 2. the host just pruned ([`Phase::Pruned`]) → [`Decision::FineTune`];
//! 3. fewer than `k` prunes done → [`Decision::Prune`] to the next `s_i`;
//! 4. otherwise → [`Decision::Stop`].
//!
//! The final sparsity always equals the target exactly; the sequence is
//! strictly increasing and below 1 (steps that would not increase the
//! sparsity, e.g. collapsed by rounding, are dropped). A fine-tuning length of
//! 0 epochs means "no fine-tuning": the schedule then prunes again (or stops)
//! right after each prune.
//!
//! | name | struct | parameters (defaults) |
//! |---|---|---|
//! | `one-shot` | [`OneShot`] | `finetune_epochs` (2) |
//! | `iterative` | [`Iterative`] | `steps` (4), `finetune_epochs` (1) |
//! | `iterative-geometric` | [`IterativeGeometric`] | `steps` (0 = use `rate`), `rate` (0.5), `finetune_epochs` (1), `max_steps` (1000) |
//! | `patience` | [`Patience`] | `steps` (4), `patience` (2), `max_epochs` (20) |
//! | `hybrid` | [`Hybrid`] | `initial` (0.5), `steps` (3), `then` ("geometric"), `finetune_epochs` (1) |
//! | `gradual` | [`Gradual`] | `steps` (5), `initial_sparsity` (0.0), `finetune_epochs` (1) |
//! | `manual` | [`Manual`] | `fractions` ([0.5, 0.75, 1.0]), `finetune_epochs` (1) |
//!
//! Use [`factories`] to get the descriptors the host registers.

use serde::Deserialize;
use shears_plugin_api::{
    check_range, parse_params, Decision, Phase, PluginError, PluginKind, PluginMeta, PluginResult,
    Schedule, ScheduleFactory, ScheduleState,
};

const VERSION: &str = "1.0.0";
/// Largest number of prune steps any schedule here accepts (keeps the number
/// of decisions far below `MAX_SCHEDULE_DECISIONS`).
const MAX_STEPS: u32 = 1000;
/// Largest fine-tuning length, in epochs, accepted per phase.
const MAX_EPOCHS: u32 = 10_000;

// ---------------------------------------------------------------------------
// Shared machinery: a plan yields raw sparsities; `Runner` turns them into a
// validated `SparsitySequence` and answers `decide` for every schedule.
// ---------------------------------------------------------------------------

/// What distinguishes one schedule from another.
trait Plan {
    /// Checks the parameters, naming the offending one.
    fn validate(&self) -> PluginResult<()>;
    /// Candidate sparsities for `target` (in `(0, 1)`), in order. Entries that
    /// do not increase, are `<= 0` or `>= target` are dropped, and the target
    /// itself is always appended as the last step.
    fn sparsities(&self, target: f64) -> Vec<f64>;
    /// The fine-tuning phase after each prune: `(max_epochs, patience)`;
    /// `max_epochs == 0` means none.
    fn fine_tune(&self) -> (u32, u32);
}

/// The strictly increasing sparsities of one run, the last equal to its target.
#[derive(Debug, Clone, PartialEq)]
struct SparsitySequence {
    target: f32,
    steps: Vec<f32>,
}

impl SparsitySequence {
    /// Builds the sequence for `target` in `(0, 1)` from a plan's candidates.
    fn new(target: f32, candidates: &[f64]) -> Self {
        let mut steps: Vec<f32> = Vec::with_capacity(candidates.len() + 1);
        let mut prev = 0.0f32;
        for &c in candidates {
            let s = c as f32;
            if s.is_finite() && s > prev && s < target {
                steps.push(s);
                prev = s;
            }
        }
        steps.push(target);
        Self { target, steps }
    }
}

/// The decision logic every schedule here shares.
#[derive(Debug, Clone, Default)]
struct Runner {
    sequence: Option<SparsitySequence>,
}

impl Runner {
    fn decide(&mut self, plan: &dyn Plan, state: &ScheduleState<'_>) -> PluginResult<Decision> {
        let target = state.target_sparsity;
        if !target.is_finite() || target >= 1.0 {
            return Err(PluginError::new(format!(
                "target sparsity {target} is not in [0, 1)"
            )));
        }
        if target <= 0.0 {
            return Ok(Decision::Stop);
        }
        let (max_epochs, patience) = plan.fine_tune();
        if state.last == Phase::Pruned && max_epochs > 0 {
            return Ok(Decision::FineTune {
                max_epochs,
                patience,
            });
        }
        let sequence = match &mut self.sequence {
            Some(seq) if seq.target == target => seq,
            slot => slot.insert(SparsitySequence::new(
                target,
                &plan.sparsities(f64::from(target)),
            )),
        };
        Ok(match sequence.steps.get(state.prune_steps as usize) {
            Some(&sparsity) => Decision::Prune { sparsity },
            None => Decision::Stop,
        })
    }
}

/// `s * i / k` for `i = 1..=k`: `k` equal steps from 0 to `s`.
fn linear_steps(from: f64, to: f64, k: u32) -> impl Iterator<Item = f64> {
    (1..=k).map(move |i| from + (to - from) * f64::from(i) / f64::from(k))
}

/// `from + 1 - (1 - (to - from))^(i/k)` for `i = 1..=k`: `k` steps adding a
/// geometric series of fractions of the original weights that sums to
/// `to - from` (each step removes the same fraction of what the series has
/// left), the last exactly `to`.
fn geometric_steps(from: f64, to: f64, k: u32) -> impl Iterator<Item = f64> {
    let keep = 1.0 - (to - from);
    (1..=k).map(move |i| {
        if i == k {
            to
        } else {
            from + 1.0 - keep.powf(f64::from(i) / f64::from(k))
        }
    })
}

fn check_epochs(name: &str, epochs: u32, min: u32) -> PluginResult<()> {
    check_range(name, epochs, min, MAX_EPOCHS)
}

fn check_steps(name: &str, steps: u32) -> PluginResult<()> {
    check_range(name, steps, 1, MAX_STEPS)
}

/// Declares a public schedule struct around its parameter type and forwards
/// [`Schedule::decide`] to the shared [`Runner`].
macro_rules! schedule {
    ($(#[$doc:meta])* $name:ident, $params:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone)]
        pub struct $name {
            params: $params,
            runner: Runner,
        }

        impl $name {
            /// Creates the schedule from checked parameters.
            pub fn new(params: $params) -> PluginResult<Self> {
                params.validate()?;
                Ok(Self {
                    params,
                    runner: Runner::default(),
                })
            }

            /// Creates the schedule from its JSON parameters (`"{}"` = defaults).
            pub fn from_json(params_json: &str) -> PluginResult<Self> {
                Self::new(parse_params(params_json)?)
            }

            /// The parameters it was created with.
            pub fn params(&self) -> &$params {
                &self.params
            }
        }

        impl Schedule for $name {
            fn decide(&mut self, state: &ScheduleState<'_>) -> PluginResult<Decision> {
                self.runner.decide(&self.params, state)
            }
        }
    };
}

// ---------------------------------------------------------------------------
// one-shot
// ---------------------------------------------------------------------------

/// Parameters of [`OneShot`].
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OneShotParams {
    /// Fine-tuning epochs after the single prune (default 2; 0 = none).
    pub finetune_epochs: u32,
}

impl Default for OneShotParams {
    fn default() -> Self {
        Self { finetune_epochs: 2 }
    }
}

impl Plan for OneShotParams {
    fn validate(&self) -> PluginResult<()> {
        check_epochs("finetune_epochs", self.finetune_epochs, 0)
    }
    fn sparsities(&self, target: f64) -> Vec<f64> {
        vec![target]
    }
    fn fine_tune(&self) -> (u32, u32) {
        (self.finetune_epochs, 0)
    }
}

schedule!(
    /// One-shot schedule (`one-shot`): prune to the target once, then fine-tune.
    OneShot,
    OneShotParams
);

const ONE_SHOT_SCHEMA: &str = r#"{
  "type": "object",
  "properties": {
    "finetune_epochs": {"type": "integer", "default": 2, "minimum": 0, "maximum": 10000,
      "description": "Fine-tuning epochs after the prune (0 = none)"}
  },
  "additionalProperties": false
}"#;

// ---------------------------------------------------------------------------
// iterative (constant step)
// ---------------------------------------------------------------------------

/// Parameters of [`Iterative`].
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IterativeParams {
    /// Number of prune steps (default 4).
    pub steps: u32,
    /// Fine-tuning epochs after each prune (default 1; 0 = none).
    pub finetune_epochs: u32,
}

impl Default for IterativeParams {
    fn default() -> Self {
        Self {
            steps: 4,
            finetune_epochs: 1,
        }
    }
}

impl Plan for IterativeParams {
    fn validate(&self) -> PluginResult<()> {
        check_steps("steps", self.steps)?;
        check_epochs("finetune_epochs", self.finetune_epochs, 0)
    }
    fn sparsities(&self, target: f64) -> Vec<f64> {
        linear_steps(0.0, target, self.steps).collect()
    }
    fn fine_tune(&self) -> (u32, u32) {
        (self.finetune_epochs, 0)
    }
}

schedule!(
    /// Iterative constant-step schedule (`iterative`): `steps` prunes, each
    /// removing `target / steps` of the original weights, with fine-tuning
    /// after each.
    Iterative,
    IterativeParams
);

const ITERATIVE_SCHEMA: &str = r#"{
  "type": "object",
  "properties": {
    "steps": {"type": "integer", "default": 4, "minimum": 1, "maximum": 1000,
      "description": "Number of equal prune steps up to the target sparsity"},
    "finetune_epochs": {"type": "integer", "default": 1, "minimum": 0, "maximum": 10000,
      "description": "Fine-tuning epochs after each prune (0 = none)"}
  },
  "additionalProperties": false
}"#;

// ---------------------------------------------------------------------------
// iterative-geometric
// ---------------------------------------------------------------------------

/// Parameters of [`IterativeGeometric`].
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IterativeGeometricParams {
    /// Number of prune steps `n`; when at least 1 it fixes the rate at
    /// `r = 1 - (1 - s)^(1/n)` so step `n` lands exactly on the target `s`
    /// (default 0: use `rate`).
    pub steps: u32,
    /// Fraction of the remaining weights each step removes (default 0.5);
    /// used when `steps` is 0.
    pub rate: f64,
    /// Fine-tuning epochs after each prune (default 1; 0 = none).
    pub finetune_epochs: u32,
    /// With `rate`: most prune steps, the last one going straight to the
    /// target (default 1000).
    pub max_steps: u32,
}

impl Default for IterativeGeometricParams {
    fn default() -> Self {
        Self {
            steps: 0,
            rate: 0.5,
            finetune_epochs: 1,
            max_steps: MAX_STEPS,
        }
    }
}

impl Plan for IterativeGeometricParams {
    fn validate(&self) -> PluginResult<()> {
        check_range("steps", self.steps, 0, MAX_STEPS)?;
        check_range("rate", self.rate, 0.01, 0.99)?;
        check_epochs("finetune_epochs", self.finetune_epochs, 0)?;
        check_steps("max_steps", self.max_steps)
    }
    fn sparsities(&self, target: f64) -> Vec<f64> {
        if self.steps > 0 {
            // s_i = 1 - (1 - s)^(i/n), the paper's geometric schedule: every
            // step removes the same fraction r of the remaining weights.
            return geometric_steps(0.0, target, self.steps).collect();
        }
        // s_i = 1 - (1 - rate)^i while clearly below the target; the step that
        // would reach (within 1e-6) or pass it, or step `max_steps`, is the target.
        (1..self.max_steps)
            .map(|i| 1.0 - (1.0 - self.rate).powi(i as i32))
            .take_while(|&s| s < target - 1e-6)
            .chain([target])
            .collect()
    }
    fn fine_tune(&self) -> (u32, u32) {
        (self.finetune_epochs, 0)
    }
}

schedule!(
    /// Iterative geometric schedule (`iterative-geometric`): each prune removes
    /// the same fraction of the weights still remaining. With `steps = n` the
    /// fraction is `r = 1 - (1 - s)^(1/n)` and step `i` prunes to
    /// `1 - (1 - s)^(i/n)`, the last exactly `s` (the paper's
    /// GeometricPruningSchedule); with `rate` it is `s_i = 1 - (1 - rate)^i`,
    /// the last step clipped to the target.
    IterativeGeometric,
    IterativeGeometricParams
);

const ITERATIVE_GEOMETRIC_SCHEMA: &str = r#"{
  "type": "object",
  "properties": {
    "steps": {"type": "integer", "default": 0, "minimum": 0, "maximum": 1000,
      "description": "Number of prune steps n; the rate is then 1 - (1 - target)^(1/n), landing exactly on the target (0 = use rate)"},
    "rate": {"type": "number", "default": 0.5, "minimum": 0.01, "maximum": 0.99,
      "description": "Fraction of the remaining weights removed by each prune step (when steps is 0)"},
    "finetune_epochs": {"type": "integer", "default": 1, "minimum": 0, "maximum": 10000,
      "description": "Fine-tuning epochs after each prune (0 = none)"},
    "max_steps": {"type": "integer", "default": 1000, "minimum": 1, "maximum": 1000,
      "description": "With rate: most prune steps; the last one goes straight to the target sparsity"}
  },
  "additionalProperties": false
}"#;

// ---------------------------------------------------------------------------
// patience
// ---------------------------------------------------------------------------

/// Parameters of [`Patience`].
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PatienceParams {
    /// Number of equal prune steps (default 4).
    pub steps: u32,
    /// Stop fine-tuning after this many epochs without improvement (default 2).
    pub patience: u32,
    /// Upper bound on fine-tuning epochs after each prune (default 20).
    pub max_epochs: u32,
}

impl Default for PatienceParams {
    fn default() -> Self {
        Self {
            steps: 4,
            patience: 2,
            max_epochs: 20,
        }
    }
}

impl Plan for PatienceParams {
    fn validate(&self) -> PluginResult<()> {
        check_steps("steps", self.steps)?;
        check_range("patience", self.patience, 1, MAX_EPOCHS)?;
        check_epochs("max_epochs", self.max_epochs, 1)
    }
    fn sparsities(&self, target: f64) -> Vec<f64> {
        linear_steps(0.0, target, self.steps).collect()
    }
    fn fine_tune(&self) -> (u32, u32) {
        (self.max_epochs, self.patience)
    }
}

schedule!(
    /// Patience-based schedule (`patience`, Janusz et al. 2025): iterative
    /// constant steps like [`Iterative`] with a patience fine-tuning policy.
    /// Each fine-tuning phase runs until validation accuracy has not improved
    /// on the best so far (starting with the model right after the prune) for
    /// `patience` epochs, at most `max_epochs`; the host then restores the
    /// best epoch's weights. The same policy combines with any schedule
    /// through a strategy's `finetune` setting.
    Patience,
    PatienceParams
);

const PATIENCE_SCHEMA: &str = r#"{
  "type": "object",
  "properties": {
    "steps": {"type": "integer", "default": 4, "minimum": 1, "maximum": 1000,
      "description": "Number of equal prune steps up to the target sparsity"},
    "patience": {"type": "integer", "default": 2, "minimum": 1, "maximum": 10000,
      "description": "Stop fine-tuning once validation accuracy has not improved for this many epochs"},
    "max_epochs": {"type": "integer", "default": 20, "minimum": 1, "maximum": 10000,
      "description": "Upper bound on fine-tuning epochs after each prune"}
  },
  "additionalProperties": false
}"#;

// ---------------------------------------------------------------------------
// hybrid
// ---------------------------------------------------------------------------

/// How [`Hybrid`] goes from its one-shot step to the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HybridThen {
    /// Geometric increments of the original weights (the paper's
    /// FewShotPruningSchedule).
    #[default]
    Geometric,
    /// Equal increments.
    Constant,
}

/// Parameters of [`Hybrid`].
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HybridParams {
    /// Absolute sparsity of the first, one-shot step (default 0.5); at or
    /// above the target the schedule is one-shot to the target.
    pub initial: f64,
    /// Number of iterative steps after the first one (default 3).
    pub steps: u32,
    /// Shape of the iterative steps (default geometric).
    pub then: HybridThen,
    /// Fine-tuning epochs after each prune (default 1; 0 = none).
    pub finetune_epochs: u32,
}

impl Default for HybridParams {
    fn default() -> Self {
        Self {
            initial: 0.5,
            steps: 3,
            then: HybridThen::Geometric,
            finetune_epochs: 1,
        }
    }
}

impl Plan for HybridParams {
    fn validate(&self) -> PluginResult<()> {
        check_range("initial", self.initial, 0.0, 1.0)?;
        check_steps("steps", self.steps)?;
        check_epochs("finetune_epochs", self.finetune_epochs, 0)
    }
    fn sparsities(&self, target: f64) -> Vec<f64> {
        if self.initial >= target {
            return vec![target];
        }
        let rest: Vec<f64> = match self.then {
            HybridThen::Geometric => geometric_steps(self.initial, target, self.steps).collect(),
            HybridThen::Constant => linear_steps(self.initial, target, self.steps).collect(),
        };
        std::iter::once(self.initial).chain(rest).collect()
    }
    fn fine_tune(&self) -> (u32, u32) {
        (self.finetune_epochs, 0)
    }
}

schedule!(
    /// Hybrid schedule (`hybrid`): one-shot to the sparsity `initial` (`s_0`),
    /// then `steps` iterative steps to the target `s`. With `then =
    /// "geometric"` (the default, the paper's FewShotPruningSchedule) the
    /// increments are a geometric series of fractions of the original weights
    /// summing to `s - s_0`: step `i` prunes to `s_0 + 1 - (1 - (s - s_0))^(i/n)`.
    /// With `then = "constant"` the increments are equal.
    Hybrid,
    HybridParams
);

const HYBRID_SCHEMA: &str = r#"{
  "type": "object",
  "properties": {
    "initial": {"type": "number", "default": 0.5, "minimum": 0.0, "maximum": 1.0,
      "description": "Sparsity of the first, one-shot prune; at or above the target the schedule is one-shot"},
    "steps": {"type": "integer", "default": 3, "minimum": 1, "maximum": 1000,
      "description": "Number of iterative prune steps after the first one"},
    "then": {"type": "string", "enum": ["geometric", "constant"], "default": "geometric",
      "description": "Iterative steps after the first: geometric increments (the paper's few-shot schedule) or equal ones"},
    "finetune_epochs": {"type": "integer", "default": 1, "minimum": 0, "maximum": 10000,
      "description": "Fine-tuning epochs after each prune (0 = none)"}
  },
  "additionalProperties": false
}"#;

// ---------------------------------------------------------------------------
// gradual (Zhu & Gupta 2017)
// ---------------------------------------------------------------------------

/// Parameters of [`Gradual`].
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GradualParams {
    /// Number of prune steps `n` (default 5).
    pub steps: u32,
    /// Sparsity `s_i` the cubic starts from (default 0.0).
    pub initial_sparsity: f64,
    /// Fine-tuning epochs after each prune (default 1; 0 = none).
    pub finetune_epochs: u32,
}

impl Default for GradualParams {
    fn default() -> Self {
        Self {
            steps: 5,
            initial_sparsity: 0.0,
            finetune_epochs: 1,
        }
    }
}

impl Plan for GradualParams {
    fn validate(&self) -> PluginResult<()> {
        check_steps("steps", self.steps)?;
        check_range("initial_sparsity", self.initial_sparsity, 0.0, 1.0)?;
        check_epochs("finetune_epochs", self.finetune_epochs, 0)
    }
    fn sparsities(&self, target: f64) -> Vec<f64> {
        let n = f64::from(self.steps);
        (1..=self.steps)
            .map(|t| {
                let left = 1.0 - f64::from(t) / n;
                target + (self.initial_sparsity - target) * left * left * left
            })
            .collect()
    }
    fn fine_tune(&self) -> (u32, u32) {
        (self.finetune_epochs, 0)
    }
}

schedule!(
    /// Gradual cubic schedule (`gradual`, Zhu & Gupta 2017):
    /// `s_t = s_f + (s_i - s_f)(1 - t/n)^3` for `t = 1..=n`, `s_f` being the
    /// target; large steps first, smaller ones near the target.
    Gradual,
    GradualParams
);

const GRADUAL_SCHEMA: &str = r#"{
  "type": "object",
  "properties": {
    "steps": {"type": "integer", "default": 5, "minimum": 1, "maximum": 1000,
      "description": "Number of prune steps n of the cubic schedule"},
    "initial_sparsity": {"type": "number", "default": 0.0, "minimum": 0.0, "maximum": 1.0,
      "description": "Sparsity s_i the cubic starts from"},
    "finetune_epochs": {"type": "integer", "default": 1, "minimum": 0, "maximum": 10000,
      "description": "Fine-tuning epochs after each prune (0 = none)"}
  },
  "additionalProperties": false
}"#;

// ---------------------------------------------------------------------------
// manual
// ---------------------------------------------------------------------------

/// Parameters of [`Manual`].
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ManualParams {
    /// Fractions of the target per step: strictly increasing, in `(0, 1]`,
    /// the last exactly 1.0 (default `[0.5, 0.75, 1.0]`).
    pub fractions: Vec<f64>,
    /// Fine-tuning epochs after each prune (default 1; 0 = none).
    pub finetune_epochs: u32,
}

impl Default for ManualParams {
    fn default() -> Self {
        Self {
            fractions: vec![0.5, 0.75, 1.0],
            finetune_epochs: 1,
        }
    }
}

impl Plan for ManualParams {
    fn validate(&self) -> PluginResult<()> {
        let f = &self.fractions;
        let bad = |why: &str| Err(PluginError::new(format!("parameter `fractions` {why}")));
        if f.is_empty() {
            return bad("must not be empty");
        }
        if f.len() > MAX_STEPS as usize {
            return bad(&format!(
                "has {} entries, at most {MAX_STEPS} allowed",
                f.len()
            ));
        }
        if let Some(x) = f.iter().find(|x| !(**x > 0.0 && **x <= 1.0)) {
            return bad(&format!("entry {x} is not in (0, 1]"));
        }
        if let Some(w) = f.windows(2).find(|w| w[1] <= w[0]) {
            return bad(&format!(
                "must be strictly increasing, but {} follows {}",
                w[1], w[0]
            ));
        }
        if f[f.len() - 1] != 1.0 {
            return bad(&format!("must end with 1.0, not {}", f[f.len() - 1]));
        }
        check_epochs("finetune_epochs", self.finetune_epochs, 0)
    }
    fn sparsities(&self, target: f64) -> Vec<f64> {
        self.fractions.iter().map(|f| f * target).collect()
    }
    fn fine_tune(&self) -> (u32, u32) {
        (self.finetune_epochs, 0)
    }
}

schedule!(
    /// Manual schedule (`manual`): step `i` prunes to `fractions[i] * target`.
    Manual,
    ManualParams
);

const MANUAL_SCHEMA: &str = r#"{
  "type": "object",
  "properties": {
    "fractions": {"type": "array", "items": {"type": "number", "minimum": 0.0, "maximum": 1.0},
      "default": [0.5, 0.75, 1.0],
      "description": "Per-step sparsity as a fraction of the target: strictly increasing, each in (0, 1], the last 1.0"},
    "finetune_epochs": {"type": "integer", "default": 1, "minimum": 0, "maximum": 10000,
      "description": "Fine-tuning epochs after each prune (0 = none)"}
  },
  "additionalProperties": false
}"#;

// ---------------------------------------------------------------------------
// factories
// ---------------------------------------------------------------------------

fn meta(name: &'static str, description: &'static str, schema: &'static str) -> PluginMeta {
    PluginMeta {
        kind: PluginKind::Schedule,
        name,
        version: VERSION,
        description,
        params_schema: schema,
    }
}

/// The schedule factories of this crate: `one-shot`, `iterative`,
/// `iterative-geometric`, `patience`, `hybrid`, `gradual` and `manual`.
pub fn factories() -> Vec<ScheduleFactory> {
    vec![
        ScheduleFactory {
            meta: meta(
                "one-shot",
                "Prune to the target sparsity once, then fine-tune",
                ONE_SHOT_SCHEMA,
            ),
            create: |p| Ok(Box::new(OneShot::from_json(p)?)),
        },
        ScheduleFactory {
            meta: meta(
                "iterative",
                "Prune in equal steps to the target sparsity, fine-tuning after each",
                ITERATIVE_SCHEMA,
            ),
            create: |p| Ok(Box::new(Iterative::from_json(p)?)),
        },
        ScheduleFactory {
            meta: meta(
                "iterative-geometric",
                "Each step prunes a fixed fraction of the remaining weights until the target sparsity",
                ITERATIVE_GEOMETRIC_SCHEMA,
            ),
            create: |p| Ok(Box::new(IterativeGeometric::from_json(p)?)),
        },
        ScheduleFactory {
            meta: meta(
                "patience",
                "Equal prune steps, each followed by fine-tuning until validation accuracy stops improving",
                PATIENCE_SCHEMA,
            ),
            create: |p| Ok(Box::new(Patience::from_json(p)?)),
        },
        ScheduleFactory {
            meta: meta(
                "hybrid",
                "One-shot to an initial sparsity, then geometric (or equal) iterative steps to the target",
                HYBRID_SCHEMA,
            ),
            create: |p| Ok(Box::new(Hybrid::from_json(p)?)),
        },
        ScheduleFactory {
            meta: meta(
                "gradual",
                "Cubic gradual pruning schedule of Zhu & Gupta (2017)",
                GRADUAL_SCHEMA,
            ),
            create: |p| Ok(Box::new(Gradual::from_json(p)?)),
        },
        ScheduleFactory {
            meta: meta(
                "manual",
                "Prune to user-given fractions of the target sparsity, one step each",
                MANUAL_SCHEMA,
            ),
            create: |p| Ok(Box::new(Manual::from_json(p)?)),
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use shears_plugin_api::{testing, MAX_SCHEDULE_DECISIONS};

    /// Simulated host: carries out every decision and collects them.
    fn drive(s: &mut dyn Schedule, target: f32) -> PluginResult<Vec<Decision>> {
        let mut decisions = Vec::new();
        let mut prune_steps = 0;
        let mut last = Phase::Start;
        let mut current = 0.0;
        let mut epochs = 0;
        let mut history = Vec::new();
        for _ in 0..MAX_SCHEDULE_DECISIONS {
            let state = ScheduleState {
                prune_steps,
                last,
                current_sparsity: current,
                target_sparsity: target,
                epochs_spent: epochs,
                val_acc_history: &history,
            };
            let d = s.decide(&state)?;
            decisions.push(d);
            match d {
                Decision::Prune { sparsity } => {
                    current = sparsity;
                    prune_steps += 1;
                    last = Phase::Pruned;
                }
                Decision::FineTune { max_epochs, .. } => {
                    history.resize(history.len() + max_epochs as usize, 0.5);
                    epochs += max_epochs;
                    last = Phase::FineTuned;
                }
                Decision::Stop => return Ok(decisions),
            }
        }
        panic!("schedule did not stop: {decisions:?}");
    }

    fn create(name: &str, params: &str) -> PluginResult<Box<dyn Schedule>> {
        let f = factories()
            .into_iter()
            .find(|f| f.meta.name == name)
            .unwrap_or_else(|| panic!("no schedule {name}"));
        (f.create)(params)
    }

    fn run(name: &str, params: &str, target: f32) -> Vec<Decision> {
        drive(create(name, params).unwrap().as_mut(), target).unwrap()
    }

    fn prune(sparsity: f32) -> Decision {
        Decision::Prune { sparsity }
    }

    fn ft(max_epochs: u32, patience: u32) -> Decision {
        Decision::FineTune {
            max_epochs,
            patience,
        }
    }

    /// Prunes to each sparsity, each followed by `after`, then Stop.
    fn expect(sparsities: &[f32], after: Option<Decision>) -> Vec<Decision> {
        let mut v = Vec::new();
        for &s in sparsities {
            v.push(prune(s));
            v.extend(after);
        }
        v.push(Decision::Stop);
        v
    }

    fn assert_decisions(got: &[Decision], want: &[Decision]) {
        let same = got.len() == want.len()
            && got.iter().zip(want).all(|pair| match pair {
                (Decision::Prune { sparsity: a }, Decision::Prune { sparsity: b }) => {
                    (a - b).abs() < 1e-6
                }
                (a, b) => a == b,
            });
        assert!(same, "\n got: {got:?}\nwant: {want:?}");
    }

    #[test]
    fn one_shot() {
        let d = run("one-shot", "{}", 0.9);
        assert_decisions(&d, &[prune(0.9), ft(2, 0), Decision::Stop]);
        let d = run("one-shot", r#"{"finetune_epochs": 5}"#, 0.5);
        assert_decisions(&d, &[prune(0.5), ft(5, 0), Decision::Stop]);
        let d = run("one-shot", r#"{"finetune_epochs": 0}"#, 0.5);
        assert_decisions(&d, &[prune(0.5), Decision::Stop]);
    }

    #[test]
    fn iterative() {
        let d = run("iterative", "{}", 0.8);
        assert_decisions(&d, &expect(&[0.2, 0.4, 0.6, 0.8], Some(ft(1, 0))));
        let d = run("iterative", r#"{"steps": 2, "finetune_epochs": 3}"#, 0.9);
        assert_decisions(&d, &expect(&[0.45, 0.9], Some(ft(3, 0))));
        let d = run("iterative", r#"{"steps": 1, "finetune_epochs": 0}"#, 0.9);
        assert_decisions(&d, &expect(&[0.9], None));
    }

    #[test]
    fn iterative_geometric() {
        let d = run("iterative-geometric", "{}", 0.9);
        assert_decisions(&d, &expect(&[0.5, 0.75, 0.875, 0.9], Some(ft(1, 0))));
        // A step landing within 1e-6 of the target is the target.
        let d = run("iterative-geometric", "{}", 0.875);
        assert_decisions(&d, &expect(&[0.5, 0.75, 0.875], Some(ft(1, 0))));
        let d = run("iterative-geometric", r#"{"rate": 0.2}"#, 0.5);
        assert_decisions(&d, &expect(&[0.2, 0.36, 0.488, 0.5], Some(ft(1, 0))));
        // max_steps caps the count; the last step goes straight to the target.
        let d = run("iterative-geometric", r#"{"max_steps": 2}"#, 0.9);
        assert_decisions(&d, &expect(&[0.5, 0.9], Some(ft(1, 0))));
        let d = run("iterative-geometric", r#"{"max_steps": 1}"#, 0.9);
        assert_decisions(&d, &expect(&[0.9], Some(ft(1, 0))));
        // A first step beyond the target: one prune to the target.
        let d = run("iterative-geometric", "{}", 0.3);
        assert_decisions(&d, &expect(&[0.3], Some(ft(1, 0))));
        // The paper's rates are not truncated: rate 0.02 to 0.9 takes
        // ceil(ln(0.1) / ln(0.98)) = 114 steps (s_113 = 1 - 0.98^113 = 0.898013 < 0.9).
        let d = run(
            "iterative-geometric",
            r#"{"rate": 0.02, "finetune_epochs": 0}"#,
            0.9,
        );
        assert_eq!(d.len(), 114 + 1);
        assert_decisions(&d[112..], &[prune(0.898_013), prune(0.9), Decision::Stop]);
    }

    #[test]
    fn iterative_geometric_with_steps_lands_on_the_target() {
        // steps = n: r = 1 - (1 - s)^(1/n), s_i = 1 - (1 - s)^(i/n).
        // s = 0.9, n = 3: r = 1 - 0.1^(1/3) = 0.535841; s_1 = 0.535841,
        // s_2 = 1 - 0.1^(2/3) = 0.784557, s_3 = 0.9.
        let d = run("iterative-geometric", r#"{"steps": 3}"#, 0.9);
        assert_decisions(&d, &expect(&[0.535_841, 0.784_557, 0.9], Some(ft(1, 0))));
        // s = 0.75, n = 2: s_1 = 1 - 0.25^(1/2) = 0.5, s_2 = 0.75.
        let d = run("iterative-geometric", r#"{"steps": 2, "rate": 0.9}"#, 0.75);
        assert_decisions(&d, &expect(&[0.5, 0.75], Some(ft(1, 0))));
        // n = 1 is one-shot.
        let d = run("iterative-geometric", r#"{"steps": 1}"#, 0.6);
        assert_decisions(&d, &expect(&[0.6], Some(ft(1, 0))));
        // Every step removes the same fraction r of what remains.
        let d = run(
            "iterative-geometric",
            r#"{"steps": 7, "finetune_epochs": 0}"#,
            0.95,
        );
        let s: Vec<f64> = d
            .iter()
            .filter_map(|d| match d {
                Decision::Prune { sparsity } => Some(f64::from(*sparsity)),
                _ => None,
            })
            .collect();
        assert_eq!(s.len(), 7);
        let r = 1.0 - 0.05f64.powf(1.0 / 7.0);
        let mut prev = 0.0;
        for si in s {
            assert!(((si - prev) / (1.0 - prev) - r).abs() < 1e-5, "{si}");
            prev = si;
        }
        assert!((prev - 0.95).abs() < 1e-7);
    }

    #[test]
    fn patience() {
        let d = run("patience", "{}", 0.8);
        assert_decisions(&d, &expect(&[0.2, 0.4, 0.6, 0.8], Some(ft(20, 2))));
        let d = run(
            "patience",
            r#"{"steps": 2, "patience": 3, "max_epochs": 7}"#,
            0.6,
        );
        assert_decisions(&d, &expect(&[0.3, 0.6], Some(ft(7, 3))));
    }

    #[test]
    fn hybrid() {
        // Default then = "geometric": s_i = s_0 + 1 - (1 - (s - s_0))^(i/n).
        // s_0 = 0.5, n = 3, s = 0.95: 1 - 0.55^(1/3) = 0.180679 and
        // 1 - 0.55^(2/3) = 0.328713, so 0.5, 0.680679, 0.828713, 0.95.
        let d = run("hybrid", r#"{"initial": 0.5, "steps": 3}"#, 0.95);
        assert_decisions(
            &d,
            &expect(&[0.5, 0.680_679, 0.828_713, 0.95], Some(ft(1, 0))),
        );
        // s_0 = 0.5, n = 3, s = 0.9: 1 - 0.6^(1/3) = 0.156567,
        // 1 - 0.6^(2/3) = 0.288621.
        let d = run("hybrid", "{}", 0.9);
        assert_decisions(
            &d,
            &expect(&[0.5, 0.656_567, 0.788_621, 0.9], Some(ft(1, 0))),
        );
        // then = "constant": equal steps of (s - s_0) / n.
        let d = run("hybrid", r#"{"then": "constant"}"#, 0.9);
        let third = 0.4 / 3.0;
        assert_decisions(
            &d,
            &expect(&[0.5, 0.5 + third, 0.5 + 2.0 * third, 0.9], Some(ft(1, 0))),
        );
        // initial >= target: one-shot to the target.
        let d = run("hybrid", "{}", 0.4);
        assert_decisions(&d, &expect(&[0.4], Some(ft(1, 0))));
        let d = run("hybrid", "{}", 0.5);
        assert_decisions(&d, &expect(&[0.5], Some(ft(1, 0))));
        let d = run("hybrid", r#"{"initial": 0.6, "steps": 1}"#, 0.95);
        assert_decisions(&d, &expect(&[0.6, 0.95], Some(ft(1, 0))));
        // initial 0: plain iterative (the zero step is dropped); geometric
        // from 0 is the iterative-geometric schedule with steps = n.
        let d = run(
            "hybrid",
            r#"{"initial": 0.0, "steps": 2, "then": "constant"}"#,
            0.8,
        );
        assert_decisions(&d, &expect(&[0.4, 0.8], Some(ft(1, 0))));
        let d = run("hybrid", r#"{"initial": 0.0, "steps": 2}"#, 0.75);
        assert_decisions(&d, &expect(&[0.5, 0.75], Some(ft(1, 0))));
        assert!(create("hybrid", r#"{"then": "cubic"}"#).is_err());
    }

    #[test]
    fn gradual() {
        let d = run("gradual", "{}", 0.9);
        assert_decisions(
            &d,
            &expect(&[0.4392, 0.7056, 0.8424, 0.8928, 0.9], Some(ft(1, 0))),
        );
        let d = run(
            "gradual",
            r#"{"steps": 2, "initial_sparsity": 0.5, "finetune_epochs": 2}"#,
            0.9,
        );
        // t=1: 0.9 + (0.5 - 0.9) * 0.125 = 0.85
        assert_decisions(&d, &expect(&[0.85, 0.9], Some(ft(2, 0))));
        // Starting above the target: only the target is left.
        let d = run("gradual", r#"{"initial_sparsity": 0.95}"#, 0.9);
        assert_decisions(&d, &expect(&[0.9], Some(ft(1, 0))));
    }

    #[test]
    fn manual() {
        let d = run("manual", "{}", 0.8);
        assert_decisions(&d, &expect(&[0.4, 0.6, 0.8], Some(ft(1, 0))));
        let d = run(
            "manual",
            r#"{"fractions": [1.0], "finetune_epochs": 4}"#,
            0.7,
        );
        assert_decisions(&d, &expect(&[0.7], Some(ft(4, 0))));
        let d = run("manual", r#"{"fractions": [0.1, 0.9, 1.0]}"#, 0.5);
        assert_decisions(&d, &expect(&[0.05, 0.45, 0.5], Some(ft(1, 0))));
    }

    #[test]
    fn zero_or_negative_target_stops_at_once() {
        for f in factories() {
            for target in [0.0, -0.5] {
                let d = drive((f.create)("{}").unwrap().as_mut(), target).unwrap();
                assert_eq!(d, [Decision::Stop], "{}", f.meta.name);
            }
        }
    }

    #[test]
    fn invalid_target_is_an_error() {
        for f in factories() {
            for target in [1.0, 1.5, f32::NAN, f32::INFINITY] {
                let mut s = (f.create)("{}").unwrap();
                let e = drive(s.as_mut(), target).unwrap_err();
                assert!(e.0.contains("target sparsity"), "{e}");
            }
        }
    }

    /// Every schedule, for many targets and parameters: strictly increasing
    /// prunes below 1 ending exactly at the target, a fine-tune after each.
    #[test]
    fn sequences_are_valid_for_many_targets() {
        let cases: &[(&str, &str)] = &[
            ("one-shot", "{}"),
            ("iterative", "{}"),
            ("iterative", r#"{"steps": 1000}"#),
            ("iterative-geometric", "{}"),
            (
                "iterative-geometric",
                r#"{"rate": 0.01, "max_steps": 1000}"#,
            ),
            ("iterative-geometric", r#"{"rate": 0.99}"#),
            ("patience", "{}"),
            ("hybrid", "{}"),
            ("hybrid", r#"{"initial": 0.0, "steps": 1000}"#),
            ("gradual", "{}"),
            ("gradual", r#"{"steps": 1000, "initial_sparsity": 0.3}"#),
            ("manual", "{}"),
            ("manual", r#"{"fractions": [0.999999, 1.0]}"#),
        ];
        let targets = [
            1e-7, 0.001, 0.1, 0.3, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 0.999_999,
        ];
        for &(name, params) in cases {
            for &target in &targets {
                let d = run(name, params, target);
                let prunes: Vec<f32> = d
                    .iter()
                    .filter_map(|d| match d {
                        Decision::Prune { sparsity } => Some(*sparsity),
                        _ => None,
                    })
                    .collect();
                let ctx = format!("{name} {params} at {target}: {prunes:?}");
                assert!(!prunes.is_empty(), "{ctx}");
                assert_eq!(*prunes.last().unwrap(), target, "{ctx}");
                assert!(prunes.windows(2).all(|w| w[0] < w[1]), "{ctx}");
                assert!(prunes.iter().all(|&s| s > 0.0 && s < 1.0), "{ctx}");
                assert_eq!(d.len(), 2 * prunes.len() + 1, "{ctx}");
                assert_eq!(d.last(), Some(&Decision::Stop), "{ctx}");
                for pair in d.chunks(2).filter(|c| c.len() == 2) {
                    assert!(matches!(pair[0], Decision::Prune { .. }), "{ctx}");
                    assert!(matches!(pair[1], Decision::FineTune { .. }), "{ctx}");
                }
            }
        }
    }

    #[test]
    fn instance_can_be_reused_for_another_target() {
        let mut s = create("iterative", r#"{"steps": 2}"#).unwrap();
        assert_decisions(
            &drive(s.as_mut(), 0.8).unwrap(),
            &expect(&[0.4, 0.8], Some(ft(1, 0))),
        );
        assert_decisions(
            &drive(s.as_mut(), 0.6).unwrap(),
            &expect(&[0.3, 0.6], Some(ft(1, 0))),
        );
    }

    #[test]
    fn invalid_params_are_rejected() {
        let cases: &[(&str, &str, &str)] = &[
            // serde's type errors quote the value, not the key.
            ("one-shot", r#"{"finetune_epochs": -1}"#, "-1"),
            (
                "one-shot",
                r#"{"finetune_epochs": 10001}"#,
                "finetune_epochs",
            ),
            ("one-shot", r#"{"steps": 3}"#, "steps"),
            ("iterative", r#"{"steps": 0}"#, "steps"),
            ("iterative", r#"{"steps": 1001}"#, "steps"),
            ("iterative", r#"{"steps": 2.5}"#, "2.5"),
            ("iterative-geometric", r#"{"rate": 0.0}"#, "rate"),
            ("iterative-geometric", r#"{"rate": 1.0}"#, "rate"),
            ("iterative-geometric", r#"{"max_steps": 0}"#, "max_steps"),
            ("patience", r#"{"patience": 0}"#, "patience"),
            ("patience", r#"{"max_epochs": 0}"#, "max_epochs"),
            ("patience", r#"{"steps": 0}"#, "steps"),
            ("hybrid", r#"{"initial": -0.1}"#, "initial"),
            ("hybrid", r#"{"initial": 1.5}"#, "initial"),
            ("hybrid", r#"{"steps": 0}"#, "steps"),
            ("gradual", r#"{"steps": 0}"#, "steps"),
            (
                "gradual",
                r#"{"initial_sparsity": 1.1}"#,
                "initial_sparsity",
            ),
            ("manual", r#"{"fractions": []}"#, "fractions"),
            ("manual", r#"{"fractions": [0.5, 0.4, 1.0]}"#, "fractions"),
            ("manual", r#"{"fractions": [0.5, 0.5, 1.0]}"#, "fractions"),
            ("manual", r#"{"fractions": [0.5, 0.9]}"#, "fractions"),
            ("manual", r#"{"fractions": [0.0, 1.0]}"#, "fractions"),
            ("manual", r#"{"fractions": [-0.5, 1.0]}"#, "fractions"),
            ("manual", r#"{"fractions": [0.5, 1.5]}"#, "fractions"),
            ("manual", r#"{"fractions": 0.5}"#, "sequence"),
            ("manual", r#"{"finetune_epochs": 20000}"#, "finetune_epochs"),
        ];
        for &(name, params, needle) in cases {
            match create(name, params) {
                Ok(_) => panic!("{name} accepted {params}"),
                Err(e) => assert!(e.0.contains(needle), "{name} {params}: {e}"),
            }
        }
    }

    #[test]
    fn structs_are_usable_directly() {
        let mut s = Manual::new(ManualParams::default()).unwrap();
        assert_eq!(s.params().fractions, [0.5, 0.75, 1.0]);
        assert_decisions(
            &drive(&mut s, 0.8).unwrap(),
            &expect(&[0.4, 0.6, 0.8], Some(ft(1, 0))),
        );
        assert!(Iterative::new(IterativeParams {
            steps: 0,
            finetune_epochs: 1
        })
        .is_err());
        assert_eq!(OneShot::from_json("").unwrap().params().finetune_epochs, 2);
    }

    #[test]
    fn factories_are_well_formed() {
        let fs = factories();
        let names: Vec<_> = fs.iter().map(|f| f.meta.name).collect();
        assert_eq!(
            names,
            [
                "one-shot",
                "iterative",
                "iterative-geometric",
                "patience",
                "hybrid",
                "gradual",
                "manual"
            ]
        );
        for f in &fs {
            testing::check_schedule_factory(f);
        }
        // The schema defaults are exactly the structs' defaults.
        use testing::parse_schema_defaults as defaults;
        assert_eq!(
            defaults::<OneShotParams>(ONE_SHOT_SCHEMA),
            OneShotParams::default()
        );
        assert_eq!(
            defaults::<IterativeParams>(ITERATIVE_SCHEMA),
            IterativeParams::default()
        );
        assert_eq!(
            defaults::<IterativeGeometricParams>(ITERATIVE_GEOMETRIC_SCHEMA),
            IterativeGeometricParams::default()
        );
        assert_eq!(
            defaults::<PatienceParams>(PATIENCE_SCHEMA),
            PatienceParams::default()
        );
        assert_eq!(
            defaults::<HybridParams>(HYBRID_SCHEMA),
            HybridParams::default()
        );
        assert_eq!(
            defaults::<GradualParams>(GRADUAL_SCHEMA),
            GradualParams::default()
        );
        assert_eq!(
            defaults::<ManualParams>(MANUAL_SCHEMA),
            ManualParams::default()
        );
    }
}

#[cfg(feature = "export")]
shears_plugin_api::export_plugins!(criteria: vec![], schedules: factories());
