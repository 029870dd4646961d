//! Sensitivity: prune one layer at a time of the experiment's model (its
//! checkpoint, or the base a comparison would train) and see which layers
//! lose accuracy first — one line per layer, with the dense accuracy.

use std::collections::HashMap;

use eframe::egui::{self, Ui};
use egui_plot::{HLine, Legend, Line, Plot, PlotPoints, Points};

use super::chart_plot::palette as color;
use super::fields::{field_error, fraction, list_field, plugin_combo};
use crate::experiment::sensitivity::SensitivitySpec;
use crate::gui::command::{Action, SensitivityView, CHART_SENSITIVITY};
use crate::gui::files::DialogPurpose;
use crate::plugins::Registry;
use crate::prune::GranularityChoice;

/// The form name of the view's fields.
const FORM: &str = "sensitivity";

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
    let bad_field = field_error(ui, FORM);
    ui.horizontal_wrapped(|ui| {
        let names = registry.criterion_names();
        if plugin_combo(ui, "Criterion", &mut spec.criterion, &names) {
            spec.criterion_params = serde_json::json!({});
        }
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
        list_field(
            ui,
            FORM,
            "Sparsities",
            &mut spec.sparsities,
            "0.5, 90%",
            fraction,
        )
        .labelled_by(l.id);
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
    if let Some(e) = &bad_field {
        ui.colored_label(ui.visuals().error_fg_color, e);
    }
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
