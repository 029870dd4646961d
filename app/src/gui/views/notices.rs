//! The notice strip at the bottom of the window: errors (what, which file)
//! and information, each dismissable.

use eframe::egui::{self, Ui};

use crate::gui::command::{Action, Notice};

/// Most notices shown at once (the newest).
const SHOWN: usize = 4;

/// Draws the newest notices.
pub fn show(ui: &mut Ui, notices: &[Notice], dialog_open: bool, actions: &mut Vec<Action>) {
    if dialog_open {
        ui.weak("a file dialog is open…");
    }
    if notices.is_empty() {
        ui.weak("Drop a model (.safetensors, .pth, .pt, .onnx), dataset folder, plugin library, results folder or config onto the window to open it.");
        return;
    }
    let first = notices.len().saturating_sub(SHOWN);
    for (i, n) in notices.iter().enumerate().skip(first) {
        ui.horizontal(|ui| {
            if ui.small_button("x").on_hover_text("dismiss").clicked() {
                actions.push(Action::Dismiss(i));
            }
            let color = if n.error {
                ui.visuals().error_fg_color
            } else {
                ui.visuals().text_color()
            };
            ui.add(egui::Label::new(egui::RichText::new(&n.text).color(color)).wrap());
        });
    }
}
