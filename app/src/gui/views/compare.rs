//! Compare: the results sets side by side — accuracy vs sparsity (mean line
//! and a band over seeds, dense baseline), per-layer sparsity at a chosen
//! target (grouped bars), accuracy vs compute (epochs or seconds), and the
//! table of numbers. The charts are drawn from their description
//! (`report::chart`, which Save SVG… and the CLI export write too), each
//! with its legend beside it. Hovering shows values; clicking a legend entry
//! hides a strategy.

use std::collections::HashMap;

use eframe::egui::{self, Ui};

use super::{chart_legend, chart_plot, results_table};
use crate::gui::command::{shown_sets, Action, LoadedResults};
use crate::gui::files::DialogPurpose;
use crate::gui::state::ChartOptions;
use crate::report::chart::{compare_charts, percent, styles, Chart, SeriesStyle, TargetChoice};
use crate::report::{ComputeAxis, XAxis};

/// Width of the legend beside a chart.
const LEGEND_W: f32 = 200.0;
/// Narrower than this, a chart's legend goes below it.
const WIDE: f32 = 640.0;

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
    let shown = shown_sets(sets);
    let all = styles(&shown);
    let charts = compare_charts(&shown, opts);
    controls(ui, opts, &charts.target, &all);
    egui::ScrollArea::vertical()
        .id_salt("compare-scroll")
        .auto_shrink(false)
        .show(ui, |ui| {
            for chart in &charts.charts {
                chart_header(ui, chart, actions);
                if let Some(note) = &chart.note {
                    ui.colored_label(
                        ui.visuals().warn_fg_color,
                        format!("{note}: choose another target sparsity above"),
                    );
                }
                let r = chart_block(ui, chart, opts, 300.0);
                record(ui, rects, chart.id, r, reveal);
            }
            ui.separator();
            ui.heading("Numbers");
            results_table::show(ui, sets, &mut opts.table_sort, actions);
        });
}

/// The plot of `chart` with its legend to the right (below when narrow);
/// returns where both were drawn.
fn chart_block(ui: &mut Ui, chart: &Chart, opts: &mut ChartOptions, h: f32) -> egui::Rect {
    ui.scope(|ui| {
        if ui.available_width() >= WIDE {
            ui.horizontal_top(|ui| {
                let w = ui.available_width() - LEGEND_W - ui.spacing().item_spacing.x;
                chart_plot::show(ui, chart, w, h);
                ui.vertical(|ui| {
                    ui.set_width(LEGEND_W);
                    ui.set_max_width(LEGEND_W);
                    chart_legend::show(ui, chart, opts);
                });
            });
        } else {
            chart_plot::show(ui, chart, ui.available_width(), h);
            ui.horizontal_wrapped(|ui| chart_legend::show(ui, chart, opts));
        }
    })
    .response
    .rect
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

fn controls(ui: &mut Ui, opts: &mut ChartOptions, target: &TargetChoice, all: &[SeriesStyle]) {
    ui.horizontal_wrapped(|ui| {
        ui.checkbox(&mut opts.show_band, "band over seeds (± std)");
        ui.checkbox(&mut opts.show_dense, "dense baseline");
        ui.separator();
        ui.label("target sparsity");
        egui::ComboBox::from_id_salt("target")
            .selected_text(target.target.map(percent).unwrap_or_default())
            .show_ui(ui, |ui| {
                for t in &target.targets {
                    if ui
                        .selectable_label(Some(*t) == target.target, percent(*t))
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

fn chart_header(ui: &mut Ui, chart: &Chart, actions: &mut Vec<Action>) {
    let id = chart.id;
    ui.horizontal(|ui| {
        ui.strong(&chart.title);
        if ui.small_button("Save PNG…").clicked() {
            actions.push(Action::dialog(
                DialogPurpose::SavePlot(id.to_string()),
                format!("{id}.png"),
            ));
        }
        if ui.small_button("Save SVG…").clicked() {
            actions.push(Action::dialog(
                DialogPurpose::SaveSvg(id.to_string()),
                format!("{id}.svg"),
            ));
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
    use crate::report::chart::{Dash, Marker};
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

    #[test]
    fn sets_on_other_data_are_flagged() {
        assert!(mismatch(&[set(1, 2), set(2, 3)]).is_none());
        let mut other = set(3, 2);
        other.results.data.name = "cifar10".into();
        let e = mismatch(&[set(1, 2), other]).unwrap();
        assert!(e.contains("cifar10") && e.contains("set 3"), "{e}");
    }

    /// Sets told apart in the description stay apart on screen.
    #[test]
    fn styles_map_to_distinct_plot_styles() {
        let dashes =
            [Dash::Solid, Dash::Dense, Dash::Dotted, Dash::Loose].map(chart_plot::line_style);
        for (i, a) in dashes.iter().enumerate() {
            assert!(dashes[i + 1..].iter().all(|b| a != b));
        }
        let markers = [
            Marker::Circle,
            Marker::Square,
            Marker::Diamond,
            Marker::Triangle,
        ]
        .map(chart_plot::marker_shape);
        for (i, a) in markers.iter().enumerate() {
            assert!(markers[i + 1..].iter().all(|b| a != b));
        }
    }
}
