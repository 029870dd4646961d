//! What a comparison's results look like to a reader: chart series and
//! their description, the numbers table, the terminal summary, and the
//! charts as SVG and PNG. Pure functions of
//! [`ComparisonResults`](crate::experiment::ComparisonResults), shared by the
//! CLI and the GUI.

pub mod chart;
pub mod export;
pub mod layers;
pub mod progress;
pub mod raster;
pub mod sample;
pub mod series;
pub mod svg;
pub mod text;
pub mod trace;

pub use chart::{compare_charts, Chart, ChartOptions, Charts, ResultsSet, TableSort, CHARTS};
pub use progress::{fmt_duration, Bar, Progress};
pub use series::{
    accuracy_vs_compute, accuracy_vs_sparsity, curve, dense_baseline, layer_sparsity, point,
    strategies, table, targets, AccuracyPoint, ComputeAxis, ComputeTrace, StrategyCurve, TableRow,
    XAxis,
};
pub use text::{outcome_line, summary_table};
pub use trace::{Trace, TraceKind, Traces};
