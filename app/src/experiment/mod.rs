//! Strategy comparison: configuration, the runner, events and results.

pub mod catalog;
pub mod config;
mod context;
mod dense_control;
pub mod jobs;
pub mod output;
pub mod plan;
pub mod preview;
pub mod results;
pub mod rules;
pub mod runner;
pub mod sensitivity;
mod strategy_run;

pub use config::{ExperimentConfig, StrategySpec};
pub use output::{load_results, OutputDir};
pub use results::{Baseline, ComparisonResults, Event, RunResult, Status, StepRecord};
pub use runner::{run_comparison, Context};
