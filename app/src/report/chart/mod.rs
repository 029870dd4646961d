//! The Compare charts as plain data: title, axes, series (colour, line
//! style, marker, points, band, step labels), baselines, grouped bars and a
//! legend, built from the shown results sets and the chart options. The app
//! draws them with egui_plot and the export writes them as SVG and PNG, so
//! the two cannot disagree. No GUI types here.

mod build;
mod style;

use serde::{Deserialize, Serialize};

pub use build::{choose_target, compare_charts, TargetChoice};
pub use style::{
    color, set_dash, set_fill, set_marker, styles, Dash, Marker, Rgb, SeriesStyle, BAND_OPACITY,
    BASELINE_COLOR, NEUTRAL, PALETTE,
};

use crate::experiment::ComparisonResults;
use crate::report::{ComputeAxis, XAxis};

/// Accuracy chart id (also the name of its exported files).
pub const CHART_SPARSITY: &str = "accuracy-vs-sparsity";
/// Per-layer chart id.
pub const CHART_LAYERS: &str = "per-layer-sparsity";
/// Compute chart id.
pub const CHART_COMPUTE: &str = "accuracy-vs-compute";
/// Every chart of the Compare view, top to bottom.
pub const CHARTS: [&str; 3] = [CHART_SPARSITY, CHART_LAYERS, CHART_COMPUTE];

/// `0.9` as `90.0%`: target sparsities in titles and menus.
pub fn percent(fraction: f32) -> String {
    format!("{:.1}%", fraction * 100.0)
}

/// A results set to draw, with the name legends give it.
#[derive(Debug, Clone, Copy)]
pub struct ResultsSet<'a> {
    /// Name in legends.
    pub name: &'a str,
    /// Its results.
    pub results: &'a ComparisonResults,
}

/// Chart choices (the Compare view's controls; the CLI's flags).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ChartOptions {
    /// Target sparsity of the per-layer and compute charts (`None`: the
    /// highest of the results shown, where strategies differ most).
    pub target: Option<f32>,
    /// x axis of the accuracy chart.
    pub x_axis: XAxis,
    /// x axis of the compute chart.
    pub compute_axis: ComputeAxis,
    /// Strategies shown in the per-layer chart (empty = all).
    pub layer_strategies: Vec<String>,
    /// Show the mean ± std band over seeds.
    pub show_band: bool,
    /// Show the dense baseline line.
    pub show_dense: bool,
    /// Strategy names hidden from every chart (their legend entry stays, to
    /// show them again).
    pub hidden: Vec<String>,
    /// How the table of numbers is sorted (`None`: set, strategy, target order).
    pub table_sort: Option<TableSort>,
}

/// How the Compare table is sorted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableSort {
    /// Column index (0 = strategy).
    pub column: usize,
    /// Smallest first.
    pub ascending: bool,
}

impl Default for ChartOptions {
    fn default() -> Self {
        Self {
            target: None,
            x_axis: XAxis::Sparsity,
            compute_axis: ComputeAxis::Epochs,
            layer_strategies: vec![],
            show_band: true,
            show_dense: true,
            hidden: vec![],
            table_sort: None,
        }
    }
}

/// The band over seeds around a line: one low and one high value per point.
#[derive(Debug, Clone, PartialEq)]
pub struct Band {
    /// Mean - std, per point.
    pub lo: Vec<f64>,
    /// Mean + std, per point.
    pub hi: Vec<f64>,
}

/// A line with a marker at each point.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// How it is drawn, and what it stands for.
    pub style: SeriesStyle,
    /// `[x, y]` in chart units, in drawing order.
    pub points: Vec<[f64; 2]>,
    /// The band over seeds, if drawn.
    pub band: Option<Band>,
    /// A label beside each point (empty: none; an empty string: none there).
    pub point_labels: Vec<String>,
    /// Line width, in points.
    pub width: f32,
    /// Marker radius, in points.
    pub radius: f32,
}

/// A horizontal reference line across the chart.
#[derive(Debug, Clone, PartialEq)]
pub struct HLine {
    /// Hover name.
    pub label: String,
    /// Where it is.
    pub y: f64,
    /// Its colour.
    pub color: Rgb,
    /// Its dash (its set's).
    pub dash: Dash,
}

/// One bar of a grouped bar chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    /// Centre.
    pub x: f64,
    /// Height.
    pub value: f64,
    /// Width, in x units.
    pub width: f64,
    /// Index of its category.
    pub category: usize,
}

/// The bars of one strategy of one set.
#[derive(Debug, Clone, PartialEq)]
pub struct BarSeries {
    /// How they are drawn, and what they stand for.
    pub style: SeriesStyle,
    /// The bars.
    pub bars: Vec<Bar>,
}

/// Grouped bars: one group per category at x = 0, 1, 2, ...
#[derive(Debug, Clone, PartialEq)]
pub struct Bars {
    /// Category names (the x tick labels).
    pub categories: Vec<String>,
    /// One series per strategy and set.
    pub series: Vec<BarSeries>,
}

/// What a legend entry shows beside its text.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sample {
    /// A short line, with a marker in its middle if any.
    Line {
        /// Line colour.
        color: Rgb,
        /// Dash pattern.
        dash: Dash,
        /// Marker.
        marker: Option<Marker>,
    },
    /// A filled square.
    Swatch {
        /// Fill colour.
        color: Rgb,
        /// Fill opacity.
        opacity: f32,
    },
}

/// What clicking a legend entry switches.
#[derive(Debug, Clone, PartialEq)]
pub enum Toggle {
    /// This strategy, in every chart (see [`ChartOptions::hidden`]).
    Strategy(String),
    /// The dense baseline ([`ChartOptions::show_dense`]).
    Dense,
}

/// One legend entry.
#[derive(Debug, Clone, PartialEq)]
pub struct LegendEntry {
    /// Its text: a strategy name, a set name, `dense baseline`.
    pub label: String,
    /// The sample drawn beside it.
    pub sample: Sample,
    /// What clicking it switches (none for set entries).
    pub toggle: Option<Toggle>,
    /// Whether what it stands for is drawn (hidden entries are listed, dim,
    /// in the app, and left out of exports).
    pub shown: bool,
}

/// A chart's legend, drawn outside the plot area: the strategies by colour,
/// then (with several sets) each set's name once, by its line style and
/// marker or bar fill.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Legend {
    /// Strategies (and the dense baseline).
    pub strategies: Vec<LegendEntry>,
    /// Results sets, with several shown; empty with one.
    pub sets: Vec<LegendEntry>,
}

impl Legend {
    /// Every entry, strategies first.
    pub fn entries(&self) -> impl Iterator<Item = &LegendEntry> {
        self.strategies.iter().chain(&self.sets)
    }
}

/// One Compare chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Chart {
    /// Its id ([`CHARTS`]): the name of its exported files.
    pub id: &'static str,
    /// Title.
    pub title: String,
    /// A warning under the title (e.g. no completed runs at the target).
    pub note: Option<String>,
    /// x axis label.
    pub x_label: String,
    /// y axis label.
    pub y_label: String,
    /// y values the axis always shows (e.g. 0 and 100 for sparsities).
    pub include_y: Vec<f64>,
    /// Lines with markers.
    pub series: Vec<Series>,
    /// Reference lines.
    pub hlines: Vec<HLine>,
    /// Grouped bars (the per-layer chart).
    pub bars: Option<Bars>,
    /// The legend.
    pub legend: Legend,
}

/// The Compare view's charts and the target they were drawn at.
#[derive(Debug, Clone, PartialEq)]
pub struct Charts {
    /// Which target the per-layer and compute charts show, and the choices.
    pub target: TargetChoice,
    /// The charts, top to bottom (the per-layer and compute charts only
    /// when there is a target).
    pub charts: Vec<Chart>,
}

impl Charts {
    /// The chart with id `id`, if drawn.
    pub fn get(&self, id: &str) -> Option<&Chart> {
        self.charts.iter().find(|c| c.id == id)
    }
}
