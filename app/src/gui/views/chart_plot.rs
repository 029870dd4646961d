//! A chart description ([`Chart`]) drawn with egui_plot, without its legend
//! (drawn beside it by `chart_legend`): bands, baselines, bars, lines with
//! markers and point labels. Hovering shows values.

use eframe::egui::{self, Color32, Ui};
use egui_plot::{
    Bar, BarChart, FilledArea, HLine, HoverPosition, Line, LineStyle, MarkerShape, Plot, PlotPoint,
    PlotPoints, Points, Text,
};

use crate::report::chart::{Chart, Dash, Marker, Rgb, BAND_OPACITY};

/// `c` as egui's colour.
pub fn color(c: Rgb) -> Color32 {
    Color32::from_rgb(c.0, c.1, c.2)
}

/// The colour of the `i`-th series (the strategies' palette).
pub fn palette(i: usize) -> Color32 {
    color(crate::report::chart::color(i))
}

/// `d` as egui_plot's line style.
pub fn line_style(d: Dash) -> LineStyle {
    match d {
        Dash::Solid => LineStyle::Solid,
        Dash::Dense => LineStyle::dashed_dense(),
        Dash::Dotted => LineStyle::dotted_dense(),
        Dash::Loose => LineStyle::dashed_loose(),
    }
}

/// `m` as egui_plot's marker shape.
pub fn marker_shape(m: Marker) -> MarkerShape {
    match m {
        Marker::Circle => MarkerShape::Circle,
        Marker::Square => MarkerShape::Square,
        Marker::Diamond => MarkerShape::Diamond,
        Marker::Triangle => MarkerShape::Up,
    }
}

/// Draws `chart` in a `width` x `height` plot.
pub fn show(ui: &mut Ui, chart: &Chart, width: f32, height: f32) {
    let mut plot = Plot::new(chart.id)
        .width(width)
        .height(height)
        .allow_scroll(false)
        .x_axis_label(chart.x_label.clone())
        .y_axis_label(chart.y_label.clone());
    for y in &chart.include_y {
        plot = plot.include_y(*y);
    }
    if let Some(bars) = &chart.bars {
        let names = bars.categories.clone();
        plot = plot.x_axis_formatter(move |mark, _| {
            let i = mark.value.round();
            if (mark.value - i).abs() < 1e-6 && i >= 0.0 {
                names.get(i as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        });
    } else {
        plot = plot.label_formatter(|hover| match hover {
            HoverPosition::NearDataPoint {
                plot_name,
                position,
                ..
            } => Some(format!(
                "{plot_name}\nx = {:.2}\ny = {:.2}%",
                position.x, position.y
            )),
            HoverPosition::Elsewhere { position } => {
                Some(format!("x = {:.2}\ny = {:.2}", position.x, position.y))
            }
        });
    }
    plot.show(ui, |p| {
        for s in &chart.series {
            if let Some(band) = &s.band {
                let xs: Vec<f64> = s.points.iter().map(|q| q[0]).collect();
                p.add(
                    FilledArea::new(s.style.label.clone(), &xs, &band.lo, &band.hi)
                        .fill_color(color(s.style.color).gamma_multiply(BAND_OPACITY)),
                );
            }
        }
        for h in &chart.hlines {
            p.hline(
                HLine::new(h.label.clone(), h.y)
                    .color(color(h.color))
                    .style(line_style(h.dash)),
            );
        }
        for b in chart.bars.iter().flat_map(|b| &b.series) {
            let c = color(b.style.color);
            let names = chart.bars.as_ref().map(|b| &b.categories);
            let bars: Vec<Bar> = b
                .bars
                .iter()
                .map(|bar| {
                    let layer = names
                        .and_then(|n| n.get(bar.category))
                        .cloned()
                        .unwrap_or_default();
                    Bar::new(bar.x, bar.value)
                        .width(bar.width)
                        .fill(c.gamma_multiply(b.style.fill))
                        .stroke(egui::Stroke::new(1.0, c))
                        .name(format!("{layer}\n{}", b.style.label))
                })
                .collect();
            p.bar_chart(
                BarChart::new(b.style.label.clone(), bars)
                    .color(c)
                    .element_formatter(Box::new(|bar, _| {
                        format!("{}\n{:.2}% sparse", bar.name, bar.value)
                    })),
            );
        }
        for s in &chart.series {
            let st = &s.style;
            let c = color(st.color);
            p.line(
                Line::new(st.label.clone(), PlotPoints::from(s.points.clone()))
                    .color(c)
                    .width(s.width)
                    .style(line_style(st.dash))
                    // A run's path may have two points at one x: a path, never a band.
                    .allow_band(false),
            );
            for (q, label) in s.points.iter().zip(&s.point_labels) {
                if !label.is_empty() {
                    p.text(
                        Text::new(
                            st.label.clone(),
                            PlotPoint::new(q[0], q[1]),
                            egui::RichText::new(label).small(),
                        )
                        .color(c)
                        .anchor(egui::Align2::LEFT_BOTTOM),
                    );
                }
            }
            p.points(
                Points::new(st.label.clone(), PlotPoints::from(s.points.clone()))
                    .color(c)
                    .shape(marker_shape(st.marker))
                    .radius(s.radius),
            );
        }
    });
}
