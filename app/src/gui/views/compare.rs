//! Compare: the results sets side by side — accuracy vs sparsity (mean line
//! and a band over seeds, dense baseline), per-layer sparsity at a chosen
//! target (grouped bars), accuracy vs compute (epochs or seconds), and the
//! table of numbers. Hovering shows values; clicking a legend entry hides a
//! series.

use std::collections::HashMap;

use eframe::egui::{self, Color32, Ui};
use egui_plot::{
    Bar, BarChart, ColorConflictHandling, FilledArea, HLine, HoverPosition, Legend, Line, Plot,
    PlotPoints, Points,
};

use super::results_table;
use crate::experiment::results::DENSE_CONTROL;
use crate::gui::command::{Action, LoadedResults, CHART_COMPUTE, CHART_LAYERS, CHART_SPARSITY};
use crate::gui::files::DialogPurpose;
use crate::gui::state::ChartOptions;
use crate::report::{self, ComputeAxis, XAxis};

const PALETTE: [Color32; 10] = [
    Color32::from_rgb(31, 119, 180),
    Color32::from_rgb(255, 127, 14),
    Color32::from_rgb(44, 160, 44),
    Color32::from_rgb(214, 39, 40),
    Color32::from_rgb(148, 103, 189),
    Color32::from_rgb(140, 86, 75),
    Color32::from_rgb(227, 119, 194),
    Color32::from_rgb(127, 127, 127),
    Color32::from_rgb(188, 189, 34),
    Color32::from_rgb(23, 190, 207),
];

/// The colour of the `i`-th series.
pub fn color(i: usize) -> Color32 {
    PALETTE[i % PALETTE.len()]
}

/// A strategy of one results set, as drawn.
struct Series<'a> {
    label: String,
    strategy: String,
    set: &'a LoadedResults,
    /// One colour per strategy name, whatever set it is in.
    color: Color32,
    /// Which shown set it belongs to (0 = the first): its line style.
    set_index: usize,
}

impl Series<'_> {
    fn is_control(&self) -> bool {
        self.strategy == DENSE_CONTROL
    }

    /// Solid for the first set, then dashed and dotted; the dense control
    /// loosely dashed.
    fn line_style(&self) -> egui_plot::LineStyle {
        use egui_plot::LineStyle;
        if self.is_control() {
            return LineStyle::dashed_loose();
        }
        match self.set_index % 3 {
            0 => LineStyle::Solid,
            1 => LineStyle::dashed_dense(),
            _ => LineStyle::dotted_dense(),
        }
    }

    /// Circles for the first set, then squares, diamonds, triangles.
    fn marker(&self) -> egui_plot::MarkerShape {
        use egui_plot::MarkerShape;
        [
            MarkerShape::Circle,
            MarkerShape::Square,
            MarkerShape::Diamond,
            MarkerShape::Up,
        ][self.set_index % 4]
    }
}

fn series<'a>(sets: &'a [LoadedResults]) -> Vec<Series<'a>> {
    let shown: Vec<&LoadedResults> = sets.iter().filter(|s| s.shown).collect();
    let several = shown.len() > 1;
    let mut names: Vec<String> = Vec::new();
    let mut out = Vec::new();
    for (set_index, set) in shown.into_iter().enumerate() {
        for strategy in report::strategies(&set.results) {
            let label = if several {
                format!("{}: {strategy}", set.name)
            } else {
                strategy.clone()
            };
            let k = match names.iter().position(|n| n == &strategy) {
                Some(k) => k,
                None => {
                    names.push(strategy.clone());
                    names.len() - 1
                }
            };
            out.push(Series {
                color: color(k),
                label,
                strategy,
                set,
                set_index,
            });
        }
    }
    out
}

/// Draws the Compare view; chart rectangles are recorded in `rects` (for PNG
/// export) and the chart `reveal` (being saved) is scrolled into view.
pub fn show(
    ui: &mut Ui,
    sets: &mut [LoadedResults],
    opts: &mut ChartOptions,
    rects: &mut HashMap<String, egui::Rect>,
    reveal: Option<&str>,
    actions: &mut Vec<Action>,
) {
    egui::Panel::left("results-sets")
        .resizable(true)
        .default_size(220.0)
        .show(ui, |ui| sets_panel(ui, sets, actions));
    if !sets.iter().any(|s| s.shown) {
        ui.label("No results shown. Run a comparison, or open a results folder (File > Open results folder…, or drop it here).");
        return;
    }
    if let Some(w) = mismatch(sets) {
        ui.colored_label(ui.visuals().warn_fg_color, w);
    }
    let all = series(sets);
    let targets: Vec<f32> = {
        let mut t: Vec<f32> = all
            .iter()
            .flat_map(|s| report::targets(&s.set.results))
            .collect();
        t.sort_by(f32::total_cmp);
        t.dedup_by(|a, b| (*a - *b).abs() < 1e-6);
        t
    };
    // The chosen target if these results have it, else the highest with a
    // completed run (after a cancel or failures the highest may have none).
    let has_data = |t: f32| {
        all.iter()
            .any(|s| !s.is_control() && report::point(&s.set.results, &s.strategy, t).is_some())
    };
    let target = opts
        .target
        .and_then(|t| targets.iter().copied().find(|x| (x - t).abs() < 1e-6))
        .or_else(|| targets.iter().rev().copied().find(|&t| has_data(t)))
        .or_else(|| targets.last().copied());
    let target_has_data = target.is_some_and(has_data);
    controls(ui, opts, target, &targets, &all);
    egui::ScrollArea::vertical()
        .id_salt("compare-scroll")
        .auto_shrink(false)
        .show(ui, |ui| {
            let h = 300.0;
            chart_header(ui, "Accuracy vs sparsity", CHART_SPARSITY, actions);
            let r = ui
                .scope(|ui| accuracy_chart(ui, &all, opts, h))
                .response
                .rect;
            record(ui, rects, CHART_SPARSITY, r, reveal);
            if let Some(t) = target {
                chart_header(
                    ui,
                    &format!("Per-layer sparsity at target {:.1}%", t * 100.0),
                    CHART_LAYERS,
                    actions,
                );
                if !target_has_data {
                    ui.colored_label(
                        ui.visuals().warn_fg_color,
                        "no completed runs at this target: choose another target sparsity above",
                    );
                }
                let r = ui
                    .scope(|ui| layer_chart(ui, &all, opts, t, h))
                    .response
                    .rect;
                record(ui, rects, CHART_LAYERS, r, reveal);
                chart_header(
                    ui,
                    &format!("Accuracy vs compute at target {:.1}%", t * 100.0),
                    CHART_COMPUTE,
                    actions,
                );
                let r = ui
                    .scope(|ui| compute_chart(ui, &all, opts.compute_axis, t, h))
                    .response
                    .rect;
                record(ui, rects, CHART_COMPUTE, r, reveal);
            }
            ui.separator();
            ui.heading("Numbers");
            results_table::show(ui, sets, &mut opts.table_sort, actions);
        });
}

/// Notes where chart `id` is visible; scrolls it into view when it is the one
/// being saved.
fn record(
    ui: &Ui,
    rects: &mut HashMap<String, egui::Rect>,
    id: &str,
    rect: egui::Rect,
    reveal: Option<&str>,
) {
    if reveal == Some(id) {
        ui.scroll_to_rect(rect, Some(egui::Align::Center));
    }
    rects.insert(id.into(), rect.intersect(ui.clip_rect()));
}

fn sets_panel(ui: &mut Ui, sets: &mut [LoadedResults], actions: &mut Vec<Action>) {
    ui.heading("Results");
    if ui.button("Open results folder…").clicked() {
        actions.push(Action::dialog(
            DialogPurpose::Open(crate::gui::state::FileKind::Results),
            String::new(),
        ));
    }
    ui.separator();
    for (i, s) in sets.iter_mut().enumerate() {
        ui.push_id(i, |ui| {
            ui.checkbox(&mut s.shown, &s.name);
            if let Some(d) = &s.dir {
                ui.weak(d.display().to_string());
            }
            let r = &s.results;
            ui.weak(format!(
                "{} runs, {} on {}",
                r.runs.len(),
                r.model.family,
                if r.data.name.is_empty() {
                    "…"
                } else {
                    &r.data.name
                }
            ));
            ui.horizontal(|ui| {
                let stem = r
                    .config
                    .name
                    .replace(|c: char| !c.is_ascii_alphanumeric(), "-");
                if ui.small_button("CSV…").clicked() {
                    actions.push(Action::dialog(
                        DialogPurpose::ExportCsv(s.id),
                        format!("{stem}.csv"),
                    ));
                }
                if ui.small_button("JSON…").clicked() {
                    actions.push(Action::dialog(
                        DialogPurpose::ExportJson(s.id),
                        format!("{stem}.json"),
                    ));
                }
                if !s.live && ui.small_button("Close").clicked() {
                    actions.push(Action::CloseResults(s.id));
                }
            });
            ui.separator();
        });
    }
}

fn controls(
    ui: &mut Ui,
    opts: &mut ChartOptions,
    target: Option<f32>,
    targets: &[f32],
    all: &[Series<'_>],
) {
    ui.horizontal_wrapped(|ui| {
        ui.checkbox(&mut opts.show_band, "band over seeds (± std)");
        ui.checkbox(&mut opts.show_dense, "dense baseline");
        ui.separator();
        ui.label("target sparsity");
        egui::ComboBox::from_id_salt("target")
            .selected_text(
                target
                    .map(|t| format!("{:.1}%", t * 100.0))
                    .unwrap_or_default(),
            )
            .show_ui(ui, |ui| {
                for t in targets {
                    if ui
                        .selectable_label(Some(*t) == target, format!("{:.1}%", t * 100.0))
                        .clicked()
                    {
                        opts.target = Some(*t);
                    }
                }
            });
        ui.separator();
        let l = ui.label("x axis");
        egui::ComboBox::from_id_salt("x-axis")
            .selected_text(opts.x_axis.name())
            .show_ui(ui, |ui| {
                for a in XAxis::ALL {
                    ui.selectable_value(&mut opts.x_axis, a, a.name());
                }
            })
            .response
            .labelled_by(l.id);
        ui.separator();
        ui.label("compute axis");
        ui.selectable_value(&mut opts.compute_axis, ComputeAxis::Epochs, "epochs");
        ui.selectable_value(&mut opts.compute_axis, ComputeAxis::Seconds, "seconds");
        ui.separator();
        // Stays open while strategies are ticked (a click outside closes it).
        let keep_open = egui::containers::menu::MenuConfig::new()
            .close_behavior(egui::PopupCloseBehavior::CloseOnClickOutside);
        egui::containers::menu::MenuButton::new("per-layer strategies")
            .config(keep_open)
            .ui(ui, |ui| {
                ui.weak("none ticked = all");
                for s in all {
                    let mut on = opts.layer_strategies.contains(&s.label);
                    if ui.checkbox(&mut on, &s.label).changed() {
                        if on {
                            opts.layer_strategies.push(s.label.clone());
                        } else {
                            opts.layer_strategies.retain(|x| x != &s.label);
                        }
                    }
                }
            });
    });
}

fn chart_header(ui: &mut Ui, title: &str, id: &str, actions: &mut Vec<Action>) {
    ui.horizontal(|ui| {
        ui.strong(title);
        if ui.small_button("Save PNG…").clicked() {
            actions.push(Action::dialog(
                DialogPurpose::SavePlot(id.to_string()),
                format!("{id}.png"),
            ));
        }
    });
}

fn percent_axes<'a>(plot: Plot<'a>, x: &str, y: &str) -> Plot<'a> {
    plot.legend(
        Legend::default()
            .follow_insertion_order(true)
            .color_conflict_handling(ColorConflictHandling::PickLast),
    )
    .x_axis_label(x.to_string())
    .y_axis_label(y.to_string())
    .label_formatter(|hover| match hover {
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
    })
}

fn accuracy_chart(ui: &mut Ui, all: &[Series<'_>], opts: &ChartOptions, h: f32) {
    let axis = opts.x_axis;
    let plot = percent_axes(
        Plot::new(CHART_SPARSITY).height(h).allow_scroll(false),
        axis.label(),
        "test accuracy (%)",
    );
    plot.show(ui, |p| {
        let mut dense_drawn = Vec::new();
        for s in all {
            let mut curve = report::curve(&s.set.results, &s.strategy);
            // Points whose results lack this axis's value are left out.
            curve.points.retain(|q| axis.value(q).is_some());
            let xs: Vec<f64> = curve.points.iter().filter_map(|q| axis.value(q)).collect();
            let ys: Vec<f64> = curve
                .points
                .iter()
                .map(|q| f64::from(q.acc) * 100.0)
                .collect();
            if opts.show_band && curve.points.iter().any(|q| q.seeds > 1) {
                let lo: Vec<f64> = curve
                    .points
                    .iter()
                    .map(|q| f64::from(q.acc - q.acc_std) * 100.0)
                    .collect();
                let hi: Vec<f64> = curve
                    .points
                    .iter()
                    .map(|q| f64::from(q.acc + q.acc_std) * 100.0)
                    .collect();
                p.add(
                    FilledArea::new(s.label.clone(), &xs, &lo, &hi)
                        .fill_color(s.color.gamma_multiply(0.25)),
                );
            }
            let pts: Vec<[f64; 2]> = xs.iter().zip(&ys).map(|(x, y)| [*x, *y]).collect();
            p.line(
                Line::new(s.label.clone(), PlotPoints::from(pts.clone()))
                    .color(s.color)
                    .width(2.0)
                    .style(s.line_style()),
            );
            p.points(
                Points::new(s.label.clone(), PlotPoints::from(pts))
                    .color(s.color)
                    .shape(s.marker())
                    .radius(3.0),
            );
            let set_ptr = s.set as *const LoadedResults;
            if opts.show_dense && !dense_drawn.contains(&set_ptr) {
                dense_drawn.push(set_ptr);
                if let Some((m, _)) = report::dense_baseline(&s.set.results) {
                    let name = if all.iter().any(|o| !std::ptr::eq(o.set, s.set)) {
                        format!("{}: dense baseline", s.set.name)
                    } else {
                        "dense baseline".to_string()
                    };
                    p.hline(HLine::new(name, f64::from(m) * 100.0).color(Color32::GRAY));
                }
            }
        }
    });
}

fn layer_chart(ui: &mut Ui, all: &[Series<'_>], opts: &ChartOptions, target: f32, h: f32) {
    // None of the shown series ticked (or ticks saved for other results): all.
    let any_ticked = all.iter().any(|s| opts.layer_strategies.contains(&s.label));
    let chosen: Vec<&Series<'_>> = all
        .iter()
        .filter(|s| !any_ticked || opts.layer_strategies.contains(&s.label))
        .collect();
    let per: Vec<(&Series<'_>, Vec<(String, f32)>)> = chosen
        .into_iter()
        .filter_map(|s| report::layer_sparsity(&s.set.results, &s.strategy, target).map(|l| (s, l)))
        .collect();
    // One group per layer name, in network order (results of different
    // models may be shown together: each bar goes to its layer's group).
    let mut names: Vec<String> = Vec::new();
    for (_, layers) in &per {
        for (n, _) in layers {
            if !names.contains(n) {
                names.push(n.clone());
            }
        }
    }
    let n = per.len().max(1) as f64;
    let w = 0.8 / n;
    let axis_names = names.clone();
    let plot = Plot::new(CHART_LAYERS)
        .height(h)
        .allow_scroll(false)
        .legend(
            Legend::default()
                .follow_insertion_order(true)
                .color_conflict_handling(ColorConflictHandling::PickLast),
        )
        .x_axis_label("layer")
        .y_axis_label("sparsity (%)")
        .include_y(0.0)
        .include_y(100.0)
        .x_axis_formatter(move |mark, _| {
            let i = mark.value.round();
            if (mark.value - i).abs() < 1e-6 && i >= 0.0 {
                axis_names.get(i as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        });
    plot.show(ui, |p| {
        for (k, (s, layers)) in per.iter().enumerate() {
            let offset = (k as f64 - (n - 1.0) / 2.0) * w;
            let bars: Vec<Bar> = layers
                .iter()
                .map(|(name, sp)| {
                    let i = names.iter().position(|n| n == name).unwrap_or(0);
                    Bar::new(i as f64 + offset, f64::from(*sp) * 100.0)
                        .width(w)
                        .name(format!("{name}\n{}", s.label))
                })
                .collect();
            p.bar_chart(
                BarChart::new(s.label.clone(), bars)
                    .color(s.color)
                    .element_formatter(Box::new(|bar, _| {
                        format!("{}\n{:.2}% sparse", bar.name, bar.value)
                    })),
            );
        }
    });
}

fn compute_chart(ui: &mut Ui, all: &[Series<'_>], axis: ComputeAxis, target: f32, h: f32) {
    let x = match axis {
        ComputeAxis::Epochs => "fine-tuning epochs spent",
        ComputeAxis::Seconds => "seconds spent",
    };
    let plot = percent_axes(
        Plot::new(CHART_COMPUTE).height(h).allow_scroll(false),
        x,
        "test accuracy (%)",
    );
    plot.show(ui, |p| {
        for s in all {
            for trace in report::accuracy_vs_compute(&s.set.results, target, axis)
                .into_iter()
                .filter(|t| t.strategy == s.strategy)
            {
                let pts: Vec<[f64; 2]> =
                    trace.points.iter().map(|q| [q[0], q[1] * 100.0]).collect();
                p.line(
                    Line::new(s.label.clone(), PlotPoints::from(pts.clone()))
                        .color(s.color)
                        .style(s.line_style()),
                );
                // Each step labelled with the sparsity it reached: the path
                // passes through lower sparsities on its way to the target.
                for (q, sp) in pts.iter().zip(&trace.sparsity).skip(1) {
                    p.text(
                        egui_plot::Text::new(
                            s.label.clone(),
                            egui_plot::PlotPoint::new(q[0], q[1]),
                            egui::RichText::new(format!("{:.0}%", sp * 100.0)).small(),
                        )
                        .color(s.color)
                        .anchor(egui::Align2::LEFT_BOTTOM),
                    );
                }
                p.points(
                    Points::new(s.label.clone(), PlotPoints::from(pts))
                        .color(s.color)
                        .shape(s.marker())
                        .radius(2.5),
                );
            }
        }
    });
}

/// A warning when the shown sets were run on different data or models
/// (their numbers are then not comparable side by side).
fn mismatch(sets: &[LoadedResults]) -> Option<String> {
    let shown: Vec<&LoadedResults> = sets.iter().filter(|s| s.shown).collect();
    let first = shown.first()?;
    let what = |l: &LoadedResults| {
        let r = &l.results;
        format!("{} on {}", r.model.family, r.data.name)
    };
    let differ = shown.iter().find(|s| what(s) != what(first))?;
    Some(format!(
        "These results differ in data or model ({}: {}; {}: {}): compare with care.",
        first.name,
        what(first),
        differ.name,
        what(differ)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::sample::sample_results;

    fn set(id: u64, strategies: usize) -> LoadedResults {
        LoadedResults {
            id,
            name: format!("set {id}"),
            dir: None,
            file: None,
            results: sample_results(strategies, 2, 1, 3),
            shown: true,
            live: false,
        }
    }

    /// A strategy keeps its colour when another set is shown beside it; sets
    /// differ by line style and marker.
    #[test]
    fn colours_follow_strategy_names_and_styles_follow_sets() {
        let one = [set(1, 2)];
        let before: Vec<(String, Color32)> = series(&one)
            .iter()
            .map(|s| (s.strategy.clone(), s.color))
            .collect();
        let two = [set(1, 2), set(2, 3)];
        let after = series(&two);
        for (name, c) in &before {
            assert!(after
                .iter()
                .filter(|s| &s.strategy == name)
                .all(|s| s.color == *c));
        }
        let first = after.iter().find(|s| s.set_index == 0).unwrap();
        let second = after.iter().find(|s| s.set_index == 1).unwrap();
        assert_ne!(first.marker(), second.marker());
        assert_ne!(first.line_style(), second.line_style());
        assert!(mismatch(&two).is_none());
        let mut other = set(3, 2);
        other.results.data.name = "cifar10".into();
        let e = mismatch(&[set(1, 2), other]).unwrap();
        assert!(e.contains("cifar10") && e.contains("set 3"), "{e}");
        // The third strategy, only in the second set, takes a new colour.
        let third = after.iter().find(|s| s.strategy == "strategy 2").unwrap();
        assert!(before.iter().all(|(_, c)| *c != third.color));
    }
}
