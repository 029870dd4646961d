//! Strategy comparison: configuration, the runner, events and results.

pub mod config;
pub mod output;
pub mod results;
pub mod runner;

pub use config::{ExperimentConfig, StrategySpec};
pub use output::{load_results, OutputDir};
pub use results::{Baseline, ComparisonResults, Event, RunResult, Status, StepRecord};
pub use runner::{run_comparison, Context};
