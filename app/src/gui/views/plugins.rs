//! Plugins: every loaded criterion and schedule with kind, version, ABI, file
//! and status; libraries that failed to load with their error; add, remove
//! and rescan.

use std::path::PathBuf;

use eframe::egui::{self, Ui};

use crate::gui::command::Action;
use crate::gui::files::DialogPurpose;
use crate::gui::state::FileKind;
use crate::plugins::{LoadError, Registry};

/// Draws the Plugins view. `failed` are libraries refused by the probe.
pub fn show(
    ui: &mut Ui,
    registry: &Registry,
    failed: &[LoadError],
    added: &[PathBuf],
    probing: bool,
    actions: &mut Vec<Action>,
) {
    ui.horizontal(|ui| {
        if ui.button("Add plugin library…").clicked() {
            actions.push(Action::dialog(
                DialogPurpose::Open(FileKind::Plugin),
                String::new(),
            ));
        }
        if ui
            .button("Rescan")
            .on_hover_text("load the plugin folders and added libraries again")
            .clicked()
        {
            actions.push(Action::RescanPlugins);
        }
        if probing {
            ui.spinner();
            ui.label("checking the library in a separate process…");
        }
    });
    ui.weak(format!(
        "Plugin folders: {}",
        crate::plugins::default_plugin_dirs()
            .iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    ));
    ui.separator();
    egui::ScrollArea::vertical()
        .id_salt("plugins-scroll")
        .auto_shrink(false)
        .show(ui, |ui| {
            egui::Grid::new("plugins")
                .striped(true)
                .num_columns(6)
                .show(ui, |ui| {
                    for h in ["kind", "name", "version", "ABI", "status", "file"] {
                        ui.strong(h);
                    }
                    ui.end_row();
                    for row in registry.rows() {
                        ui.label(&row.kind);
                        ui.label(&row.name);
                        ui.label(&row.version);
                        ui.label(row.abi.map_or("-".into(), |a| a.to_string()));
                        if row.status == "ok" {
                            ui.label("ok");
                        } else {
                            ui.colored_label(ui.visuals().error_fg_color, "ERROR");
                        }
                        ui.label(&row.file);
                        ui.end_row();
                        if row.status != "ok" {
                            ui.label("");
                            ui.colored_label(ui.visuals().error_fg_color, &row.status);
                            ui.end_row();
                            let path = std::path::PathBuf::from(&row.file);
                            if added.contains(&path) {
                                ui.label("");
                                if ui.small_button("Remove").clicked() {
                                    actions.push(Action::RemoveLibrary(path));
                                }
                                ui.end_row();
                            }
                        }
                    }
                    for e in failed {
                        ui.label("-");
                        ui.label(
                            e.path
                                .file_name()
                                .map(|n| n.to_string_lossy().into_owned())
                                .unwrap_or_default(),
                        );
                        ui.label("-");
                        ui.label("-");
                        ui.colored_label(ui.visuals().error_fg_color, "ERROR");
                        ui.label(e.path.display().to_string());
                        ui.end_row();
                        ui.label("");
                        ui.colored_label(ui.visuals().error_fg_color, &e.message);
                        ui.end_row();
                        if added.contains(&e.path) {
                            ui.label("");
                            if ui.small_button("Remove").clicked() {
                                actions.push(Action::RemoveLibrary(e.path.clone()));
                            }
                            ui.end_row();
                        }
                    }
                });
            if !added.is_empty() {
                ui.separator();
                ui.strong("Libraries you added");
                for p in added {
                    ui.horizontal(|ui| {
                        ui.label(p.display().to_string());
                        if ui.small_button("Remove").clicked() {
                            actions.push(Action::RemoveLibrary(p.clone()));
                        }
                    });
                }
            }
            ui.separator();
            ui.strong("Descriptions");
            for e in registry.entries() {
                ui.horizontal_wrapped(|ui| {
                    ui.label(format!("{}:", e.name));
                    ui.weak(&e.description);
                });
            }
        });
}
