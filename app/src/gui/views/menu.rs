//! The top bar: File menu (open, recent, save, export), the view tabs and
//! the run / cancel button.

use eframe::egui::{self, Ui};

use crate::gui::command::Action;
use crate::gui::files::DialogPurpose;
use crate::gui::state::{FileKind, RecentFile, Tab};

/// Draws the menu bar and the tab row: `recent` files, the `tab` shown, and
/// `running` (`Some(cancelling)` while a comparison runs).
pub fn show(
    ui: &mut Ui,
    recent: &[RecentFile],
    tab: Tab,
    running: Option<bool>,
    actions: &mut Vec<Action>,
) {
    egui::MenuBar::new().ui(ui, |ui| {
        ui.menu_button("File", |ui| {
            for (kind, text) in [
                (FileKind::Checkpoint, "Open model…"),
                (FileKind::Dataset, "Open dataset folder…"),
                (FileKind::Plugin, "Add plugin library…"),
                (FileKind::Results, "Open results folder…"),
                (FileKind::Plan, "Open plan folder…"),
                (FileKind::Config, "Open config…"),
            ] {
                if ui.button(text).clicked() {
                    actions.push(Action::dialog(DialogPurpose::Open(kind), String::new()));
                }
            }
            ui.menu_button("Open recent", |ui| {
                if recent.is_empty() {
                    ui.weak("nothing yet");
                }
                for r in recent {
                    if ui
                        .button(format!("{}: {}", r.kind.word(), r.path.display()))
                        .clicked()
                    {
                        actions.push(Action::OpenPath(r.path.clone()));
                    }
                }
            });
            ui.separator();
            if ui.button("Save config…").clicked() {
                actions.push(Action::dialog(DialogPurpose::SaveConfig, "experiment.toml"));
            }
            if ui.button("Reset to the demo").clicked() {
                actions.push(Action::ResetToDemo);
            }
        });
        ui.separator();
        for t in Tab::ALL {
            if ui.selectable_label(tab == t, t.title()).clicked() {
                actions.push(Action::SetTab(t));
            }
        }
        ui.separator();
        if let Some(cancelling) = running {
            if ui
                .add_enabled(!cancelling, egui::Button::new("Cancel"))
                .on_hover_text("stop after the current batch; finished runs are kept")
                .clicked()
            {
                actions.push(Action::CancelRun);
            }
            // Not a spinner: it would repaint every frame for the whole run
            // and take a core from training.
            ui.weak(if cancelling {
                "stopping…"
            } else {
                "running…"
            });
        } else if ui
            .button("Run comparison")
            .on_hover_text("train the base model and run every strategy at every target sparsity")
            .clicked()
        {
            actions.push(Action::StartRun);
        }
    });
}
