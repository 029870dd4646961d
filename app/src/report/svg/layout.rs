//! Where everything of an SVG chart goes: the plot area, the legend beside
//! it, tick marks and their labels, and the picture's size. Text widths are
//! estimated from the font size (the export must not need a font to lay
//! out), generously, so text never runs into its neighbours.

use super::ticks::{self, Range};
use super::{FONT, LEGEND_ROW, SAMPLE_W, TICK_FONT, TITLE_FONT};
use crate::report::chart::Chart;

/// Picture width, in pixels.
pub const WIDTH: f64 = 900.0;
/// Least picture height.
const MIN_HEIGHT: f64 = 440.0;
/// Least plot height.
const MIN_PLOT_HEIGHT: f64 = 260.0;
/// Left of the plot: the y label and the tick labels.
const LEFT: f64 = 72.0;
/// Most room category labels take below the plot.
const MAX_CATEGORY_LABEL: f64 = 130.0;

/// The plot area and the map from chart values to pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Frame {
    /// Left edge.
    pub x0: f64,
    /// Top edge.
    pub y0: f64,
    /// Right edge.
    pub x1: f64,
    /// Bottom edge.
    pub y1: f64,
    /// x values shown.
    pub xr: Range,
    /// y values shown.
    pub yr: Range,
}

impl Frame {
    /// Width in pixels.
    pub fn width(&self) -> f64 {
        self.x1 - self.x0
    }

    /// Height in pixels.
    pub fn height(&self) -> f64 {
        self.y1 - self.y0
    }

    /// The pixel column of value `x`.
    pub fn x(&self, x: f64) -> f64 {
        self.x0 + self.xr.fraction(x) * self.width()
    }

    /// The pixel row of value `y` (up is larger).
    pub fn y(&self, y: f64) -> f64 {
        self.y1 - self.yr.fraction(y) * self.height()
    }
}

/// Everything placed.
#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    /// Picture width.
    pub width: f64,
    /// Picture height.
    pub height: f64,
    /// The plot area.
    pub plot: Frame,
    /// Title, shortened to fit.
    pub title: String,
    /// Note, shortened to fit.
    pub note: Option<String>,
    /// x ticks: value and label.
    pub x_ticks: Vec<(f64, String)>,
    /// y ticks: value and label.
    pub y_ticks: Vec<(f64, String)>,
    /// Whether x tick labels are turned (long category names).
    pub rotate_x_ticks: bool,
    /// Left edge of the legend.
    pub legend_x: f64,
    /// Room for a legend entry's text.
    pub legend_text_w: f64,
}

/// Estimated width of `text` at `size` pixels.
pub fn text_width(text: &str, size: f64) -> f64 {
    text.chars().count() as f64 * size * 0.58
}

/// `text`, cut with `…` to fit in `width` pixels at `size`.
pub fn fit(text: &str, width: f64, size: f64) -> String {
    if text_width(text, size) <= width {
        return text.to_string();
    }
    let keep = ((width / (size * 0.58)) as usize).saturating_sub(1);
    let mut out: String = text.chars().take(keep).collect();
    out.push('…');
    out
}

impl Layout {
    /// The layout of `chart`.
    pub fn of(chart: &Chart) -> Layout {
        let shown: Vec<&str> = chart
            .legend
            .strategies
            .iter()
            .filter(|e| e.shown)
            .chain(&chart.legend.sets)
            .map(|e| e.label.as_str())
            .collect();
        let widest = shown
            .iter()
            .map(|t| text_width(t, FONT))
            .fold(0.0, f64::max);
        let legend_w = (widest + SAMPLE_W + 14.0).clamp(110.0, WIDTH * 0.3);
        let legend_text_w = legend_w - SAMPLE_W - 10.0;
        let rows = chart.legend.strategies.iter().filter(|e| e.shown).count() as f64
            + if chart.legend.sets.is_empty() {
                0.0
            } else {
                chart.legend.sets.len() as f64 + 1.4
            };
        let legend_h = rows * LEGEND_ROW + 8.0;
        let top = if chart.note.is_some() { 62.0 } else { 46.0 };
        let x1 = WIDTH - legend_w - 24.0;
        let (x_ticks, rotate, label_room) = x_ticks(chart, x1 - LEFT);
        let bottom = 46.0 + label_room;
        let plot_h = legend_h.max(MIN_PLOT_HEIGHT);
        let height = (top + plot_h + bottom).max(MIN_HEIGHT);
        let (xr, yr) = ranges(chart);
        let plot = Frame {
            x0: LEFT,
            y0: top,
            x1,
            y1: height - bottom,
            xr,
            yr,
        };
        let y_step = ticks::step(yr.max - yr.min, 6);
        let y_ticks = ticks::ticks(yr, y_step)
            .into_iter()
            .map(|v| (v, ticks::label(v, y_step)))
            .collect();
        Layout {
            width: WIDTH,
            height,
            plot,
            title: fit(&chart.title, WIDTH - LEFT - 10.0, TITLE_FONT),
            note: chart
                .note
                .as_ref()
                .map(|t| fit(t, WIDTH - LEFT - 10.0, FONT)),
            x_ticks: x_ticks.unwrap_or_else(|| {
                let step = ticks::step(xr.max - xr.min, 8);
                ticks::ticks(xr, step)
                    .into_iter()
                    .map(|v| (v, ticks::label(v, step)))
                    .collect()
            }),
            y_ticks,
            rotate_x_ticks: rotate,
            legend_x: x1 + 16.0,
            legend_text_w,
        }
    }
}

/// Category ticks of a bar chart over `plot_w` pixels: the ticks (`None`
/// for a numeric axis), whether they are turned, and the room their labels
/// take below the plot.
fn x_ticks(chart: &Chart, plot_w: f64) -> (Option<Vec<(f64, String)>>, bool, f64) {
    let Some(bars) = &chart.bars else {
        return (None, false, 0.0);
    };
    let n = bars.categories.len().max(1);
    let per = plot_w / n as f64;
    let widest = bars
        .categories
        .iter()
        .map(|c| text_width(c, TICK_FONT))
        .fold(0.0, f64::max);
    let rotate = widest + 8.0 > per;
    // Turned labels need about a line's height each; label every k-th.
    let every = if rotate {
        (TICK_FONT * 1.6 / per).ceil().max(1.0) as usize
    } else {
        1
    };
    let room = if rotate {
        widest.min(MAX_CATEGORY_LABEL) * std::f64::consts::FRAC_1_SQRT_2 + 8.0
    } else {
        0.0
    };
    let ticks = bars
        .categories
        .iter()
        .enumerate()
        .filter(|(i, _)| i % every == 0)
        .map(|(i, c)| {
            let label = if rotate {
                fit(c, MAX_CATEGORY_LABEL, TICK_FONT)
            } else {
                c.clone()
            };
            (i as f64, label)
        })
        .collect();
    (Some(ticks), rotate, room)
}

/// The x and y values shown: everything drawn, padded a little; bars' x
/// range is their groups.
fn ranges(chart: &Chart) -> (Range, Range) {
    let unit = Range { min: 0.0, max: 1.0 };
    let xr = match &chart.bars {
        Some(b) => Range {
            min: -0.5,
            max: b.categories.len().max(1) as f64 - 0.5,
        },
        None => Range::of(
            chart
                .series
                .iter()
                .flat_map(|s| s.points.iter().map(|q| q[0])),
        )
        .map_or(unit, |r| r.padded(0.05)),
    };
    let ys = chart
        .series
        .iter()
        .flat_map(|s| {
            let band = s.band.iter().flat_map(|b| b.lo.iter().chain(&b.hi));
            s.points.iter().map(|q| q[1]).chain(band.copied())
        })
        .chain(chart.hlines.iter().map(|h| h.y))
        .chain(chart.include_y.iter().copied())
        .chain(
            chart
                .bars
                .iter()
                .flat_map(|b| b.series.iter().flat_map(|s| &s.bars))
                .flat_map(|b| [b.value, 0.0]),
        );
    let yr = Range::of(ys).map_or(unit, |r| r.padded(0.05));
    (xr, yr)
}
