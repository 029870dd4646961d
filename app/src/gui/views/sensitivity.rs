//! Sensitivity: prune one layer at a time of the experiment's model (its
//! checkpoint, or the base a comparison would train) and see which layers
//! lose accuracy first — one line per layer, with the dense accuracy.

use std::collections::HashMap;

use eframe::egui::{self, Ui};
use egui_plot::{HLine, Legend, Line, Plot, PlotPoints, Points};

use super::compare::color;
use crate::experiment::sensitivity::SensitivitySpec;
use crate::gui::command::{Action, SensitivityView, CHART_SENSITIVITY};
use crate::gui::files::DialogPurpose;
use crate::plugins::Registry;
use crate::prune::GranularityChoice;

/// Draws the Sensitivity view: the settings, progress, and the chart.
pub fn show(
    ui: &mut Ui,
    spec: &mut SensitivitySpec,
    view: &SensitivityView,
    registry: &Registry,
    rects: &mut HashMap<String, egui::Rect>,
    actions: &mut Vec<Action>,
) {
    ui.label("Prunes one layer at a time to each sparsity with the criterion, without fine-tuning, and records the test accuracy. It runs on the experiment's model: its checkpoint, or the base model a comparison trains first.");
    ui.horizontal_wrapped(|ui| {
        let l = ui.label("Criterion");
        egui::ComboBox::from_id_salt("sens-criterion")
            .selected_text(spec.criterion.as_str())
            .show_ui(ui, |ui| {
                for n in registry.criterion_names() {
                    if ui.selectable_label(n == spec.criterion, n).clicked() {
                        spec.criterion = n.to_string();
                        spec.criterion_params = serde_json::json!({});
                    }
                }
            })
            .response
            .labelled_by(l.id);
        ui.label("Granularity");
        ui.selectable_value(
            &mut spec.granularity,
            GranularityChoice::Unstructured,
            "weights",
        );
        ui.selectable_value(
            &mut spec.granularity,
            GranularityChoice::Structured,
            "channels",
        );
        let l = ui.label("Sparsities");
        let id = ui.make_persistent_id("sens-sparsities");
        let mut text = ui.data(|d| d.get_temp::<String>(id)).unwrap_or_else(|| {
            let v: Vec<String> = spec.sparsities.iter().map(|s| s.to_string()).collect();
            v.join(", ")
        });
        if ui
            .text_edit_singleline(&mut text)
            .labelled_by(l.id)
            .changed()
        {
            let parsed: Result<Vec<f32>, _> = text
                .split(',')
                .filter(|t| !t.trim().is_empty())
                .map(|t| t.trim().parse::<f32>())
                .collect();
            if let Ok(v) = parsed {
                spec.sparsities = v;
            }
        }
        ui.data_mut(|d| d.insert_temp(id, text));
        match &view.progress {
            Some(_) => {
                let label = if view.cancelling {
                    "Stopping…"
                } else {
                    "Cancel"
                };
                if ui
                    .add_enabled(!view.cancelling, egui::Button::new(label))
                    .clicked()
                {
                    actions.push(Action::CancelSensitivity);
                }
            }
            None => {
                if ui.button("Run sensitivity analysis").clicked() {
                    actions.push(Action::StartSensitivity);
                }
            }
        }
    });
    if let Some((what, f)) = &view.progress {
        ui.add(egui::ProgressBar::new(*f).text(what.as_str()));
    }
    let Some((r, dir)) = &view.results else {
        ui.weak("No analysis yet.");
        return;
    };
    ui.separator();
    ui.horizontal(|ui| {
        ui.strong(format!(
            "Test accuracy with one layer pruned ({}, {}, {}; dense {:.2}%)",
            r.model,
            r.dataset,
            r.spec.criterion,
            r.dense_acc * 100.0
        ));
        if ui.small_button("Save PNG…").clicked() {
            actions.push(Action::dialog(
                DialogPurpose::SavePlot(CHART_SENSITIVITY.into()),
                format!("{CHART_SENSITIVITY}.png"),
            ));
        }
    });
    ui.weak(format!("saved in {}", dir.display()));
    let plot = Plot::new(CHART_SENSITIVITY)
        .height(360.0)
        .allow_scroll(false)
        .legend(Legend::default().follow_insertion_order(true))
        .x_axis_label("sparsity of the layer (%)")
        .y_axis_label("test accuracy (%)");
    let resp = plot.show(ui, |p| {
        p.hline(HLine::new("dense", f64::from(r.dense_acc) * 100.0).color(egui::Color32::GRAY));
        for (i, l) in r.layers.iter().enumerate() {
            let pts: Vec<[f64; 2]> = r
                .spec
                .sparsities
                .iter()
                .zip(&l.test_acc)
                .map(|(s, a)| [f64::from(*s) * 100.0, f64::from(*a) * 100.0])
                .collect();
            let name = format!("{} ({} weights)", l.layer, l.weights);
            p.line(
                Line::new(name.clone(), PlotPoints::from(pts.clone()))
                    .color(color(i))
                    .width(2.0),
            );
            p.points(
                Points::new(name, PlotPoints::from(pts))
                    .color(color(i))
                    .radius(3.0),
            );
        }
    });
    rects.insert(
        CHART_SENSITIVITY.into(),
        resp.response.rect.intersect(ui.clip_rect()),
    );
}
