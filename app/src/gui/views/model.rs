//! Model: the layers of the model comparisons start from, as Netron would
//! show them (kind, output shape, parameters, MACs, what pruning can
//! remove), with its preprocessing and the assumptions made opening it.

use eframe::egui::{self, Color32, RichText, Ui};

use crate::gui::command::{Action, CheckpointInfo};
use crate::gui::files::DialogPurpose;
use crate::gui::state::{FileKind, Tab};
use crate::report::layers::Prunable;

/// Draws the Model view.
pub fn show(ui: &mut Ui, model: Option<&CheckpointInfo>, actions: &mut Vec<Action>) {
    let Some(m) = model else {
        ui.label("No model opened: comparisons train the architecture chosen in Setup.");
        if ui.button("Open a model…").clicked() {
            actions.push(Action::dialog(
                DialogPurpose::Open(FileKind::Checkpoint),
                "",
            ));
        }
        return;
    };
    ui.heading(m.path.display().to_string());
    // Setup's built-in architecture (no file opened): a file can be opened
    // instead.
    if m.format.is_none() && ui.button("Open a model instead…").clicked() {
        actions.push(Action::dialog(
            DialogPurpose::Open(FileKind::Checkpoint),
            "",
        ));
    }
    if let Some(p) = &m.problem {
        ui.colored_label(Color32::from_rgb(200, 60, 60), p);
        if ui.button("Fill in the import form in Setup").clicked() {
            actions.push(Action::SetTab(Tab::Setup));
        }
        return;
    }
    ui.label(&m.summary);
    ui.label(format!("Preprocessing: {}", m.preprocess));
    for n in &m.notes {
        ui.weak(format!("Assumed: {n}"));
    }
    ui.separator();
    egui::ScrollArea::both()
        .auto_shrink([false, false])
        .show(ui, |ui| {
            egui::Grid::new("model-layers")
                .striped(true)
                .num_columns(6)
                .show(ui, |ui| {
                    for h in ["layer", "kind", "output", "parameters", "MACs", "pruning"] {
                        ui.strong(h);
                    }
                    ui.end_row();
                    for r in &m.rows {
                        let indent = "    ".repeat(r.depth);
                        ui.monospace(format!("{indent}{}", r.name));
                        ui.label(&r.kind);
                        ui.monospace(&r.output);
                        ui.monospace(group_digits(r.params));
                        ui.monospace(group_digits(r.macs));
                        let text = RichText::new(r.prunable.label());
                        ui.label(match r.prunable {
                            Prunable::Channels => text.color(Color32::from_rgb(40, 150, 60)),
                            Prunable::TiedByResidual | Prunable::Classifier => {
                                text.color(Color32::from_rgb(190, 130, 30))
                            }
                            _ => text.weak(),
                        });
                        ui.end_row();
                    }
                });
        });
}

/// `1234567` as `1,234,567`.
fn group_digits(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
