//! A chart's legend outside its plot: each strategy once by its colour, the
//! dense baseline, then (with several sets) each set's name once by its line
//! style and marker. Clicking a strategy or the baseline hides or shows it
//! in every chart.

use eframe::egui::{self, Painter, Rect, RichText, Sense, Shape, Stroke, Ui};

use super::chart_plot::color;
use crate::report::chart::{ChartOptions, LegendEntry, Marker, Sample, Toggle};
use crate::report::Chart;

/// Draws the legend of `chart` top to bottom (a wrapping `ui` lays it out
/// in rows); clicks change `opts`.
pub fn show(ui: &mut Ui, chart: &Chart, opts: &mut ChartOptions) {
    let legend = &chart.legend;
    for e in &legend.strategies {
        entry(ui, e, opts);
    }
    if !legend.sets.is_empty() {
        ui.weak("results sets");
        for e in &legend.sets {
            entry(ui, e, opts);
        }
    }
}

fn entry(ui: &mut Ui, e: &LegendEntry, opts: &mut ChartOptions) {
    ui.horizontal(|ui| {
        let (rect, _) = ui.allocate_exact_size(egui::vec2(28.0, 14.0), Sense::hover());
        paint_sample(ui.painter(), rect, e.sample, e.shown);
        let text = if e.shown {
            RichText::new(&e.label)
        } else {
            RichText::new(&e.label).weak().strikethrough()
        };
        // Long names (results sets) are cut to the legend's width, whole on hover.
        let Some(toggle) = &e.toggle else {
            ui.add(egui::Label::new(text).truncate())
                .on_hover_text(&e.label);
            return;
        };
        let r = ui
            .add(egui::Label::new(text).truncate().sense(Sense::click()))
            .on_hover_cursor(egui::CursorIcon::PointingHand)
            .on_hover_text(format!(
                "{}: click to {}",
                e.label,
                if e.shown { "hide" } else { "show" }
            ));
        if r.clicked() {
            flip(opts, toggle);
            ui.ctx().request_repaint();
        }
    });
}

/// Hides what `t` names if shown, else shows it.
fn flip(opts: &mut ChartOptions, t: &Toggle) {
    match t {
        Toggle::Strategy(name) => match opts.hidden.iter().position(|n| n == name) {
            Some(i) => {
                opts.hidden.remove(i);
            }
            None => opts.hidden.push(name.clone()),
        },
        Toggle::Dense => opts.show_dense = !opts.show_dense,
    }
}

fn paint_sample(p: &Painter, rect: Rect, sample: Sample, shown: bool) {
    let dim = |c| {
        let c = color(c);
        if shown {
            c
        } else {
            c.gamma_multiply(0.3)
        }
    };
    let (a, b) = (rect.left_center(), rect.right_center());
    match sample {
        Sample::Line {
            color: c,
            dash,
            marker,
        } => {
            let c = dim(c);
            match dash.pattern() {
                None => {
                    p.line_segment([a, b], Stroke::new(2.0, c));
                }
                Some([d, gap]) if d <= 0.0 => p.extend(Shape::dotted_line(&[a, b], c, gap, 1.5)),
                Some([d, gap]) => {
                    p.extend(Shape::dashed_line(&[a, b], Stroke::new(2.0, c), d, gap))
                }
            }
            if let Some(m) = marker {
                p.add(marker_shape_at(m, rect.center(), 3.5, c));
            }
        }
        Sample::Swatch { color: c, opacity } => {
            let c = dim(c);
            let r = Rect::from_center_size(rect.center(), egui::vec2(12.0, 12.0));
            p.rect_filled(r, 0.0, c.gamma_multiply(opacity));
            p.rect_stroke(r, 0.0, Stroke::new(1.0, c), egui::StrokeKind::Inside);
        }
    }
}

/// A marker of shape `m` at `c`, like egui_plot's.
fn marker_shape_at(m: Marker, c: egui::Pos2, r: f32, color: egui::Color32) -> Shape {
    match m {
        Marker::Circle => Shape::circle_filled(c, r, color),
        Marker::Square => Shape::rect_filled(
            Rect::from_center_size(c, egui::vec2(2.0 * r, 2.0 * r)),
            0.0,
            color,
        ),
        Marker::Diamond => Shape::convex_polygon(
            vec![
                c + egui::vec2(0.0, -r * 1.3),
                c + egui::vec2(r * 1.3, 0.0),
                c + egui::vec2(0.0, r * 1.3),
                c + egui::vec2(-r * 1.3, 0.0),
            ],
            color,
            Stroke::NONE,
        ),
        Marker::Triangle => Shape::convex_polygon(
            vec![
                c + egui::vec2(0.0, -r * 1.3),
                c + egui::vec2(r * 1.3, r),
                c + egui::vec2(-r * 1.3, r),
            ],
            color,
            Stroke::NONE,
        ),
    }
}
