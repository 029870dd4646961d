//! Runs: the run browser. Every comparison saved in the runs folder and the
//! folders the user added — name, date, data, model, status, runs — with a
//! search field, a tick to show it in Compare, and delete (asked twice).

use std::path::{Path, PathBuf};

use eframe::egui::{self, Ui};

use crate::experiment::catalog::SavedStatus;
use crate::gui::command::{Action, RunsView};
use crate::gui::files::DialogPurpose;

/// Draws the run browser. `roots` are the folders listed (the output folder
/// first), `added` those the user added, `shown` the results folders shown
/// in Compare, `running` the folder of the comparison running now.
pub fn show(
    ui: &mut Ui,
    view: &RunsView,
    filter: &mut String,
    (roots, added): (&[PathBuf], &[PathBuf]),
    shown: &[PathBuf],
    running: Option<&Path>,
    actions: &mut Vec<Action>,
) {
    ui.horizontal_wrapped(|ui| {
        let l = ui.label("Search");
        ui.add(
            egui::TextEdit::singleline(filter)
                .hint_text("name, data, model, status…")
                .desired_width(220.0),
        )
        .labelled_by(l.id);
        if ui.button("Refresh").clicked() {
            actions.push(Action::RefreshRuns);
        }
        if ui.button("Add folder…").clicked() {
            actions.push(Action::dialog(DialogPurpose::RunsFolder, String::new()));
        }
    });
    ui.horizontal_wrapped(|ui| {
        ui.weak("Listing:");
        for r in roots {
            ui.weak(r.display().to_string());
            if added.contains(r)
                && ui
                    .small_button("remove")
                    .on_hover_text("stop listing this folder (nothing is deleted)")
                    .clicked()
            {
                actions.push(Action::RemoveRunsFolder(r.clone()));
            }
        }
    });
    ui.separator();
    let list: Vec<_> = view.saved.iter().filter(|s| s.matches(filter)).collect();
    if view.saved.is_empty() {
        ui.label("No saved comparisons yet. Run one (Setup, then Run), or add a folder that holds results folders.");
        return;
    }
    if list.is_empty() {
        ui.label(format!("No saved comparison matches \"{filter}\"."));
        return;
    }
    ui.weak(format!(
        "{} of {} comparisons",
        list.len(),
        view.saved.len()
    ));
    egui::ScrollArea::both()
        .id_salt("runs-list")
        .auto_shrink(false)
        .show(ui, |ui| {
            egui::Grid::new("runs-grid")
                .striped(true)
                .num_columns(7)
                .show(ui, |ui| {
                    for h in ["show in Compare", "date (UTC)", "data", "model", "status", "runs", ""] {
                        ui.strong(h);
                    }
                    ui.end_row();
                    for s in list {
                        let is_running = running == Some(s.dir.as_path());
                        let mut on = shown.contains(&s.dir);
                        let readable = !matches!(s.status, SavedStatus::Unreadable(_));
                        // The running comparison is in Compare already, live.
                        let tick = ui
                            .add_enabled(readable && !is_running, egui::Checkbox::new(&mut on, &s.name))
                            .on_hover_text(s.dir.display().to_string());
                        if tick.changed() {
                            actions.push(Action::ShowSaved {
                                dir: s.dir.clone(),
                                shown: on,
                            });
                        }
                        ui.label(s.date());
                        ui.label(&s.data);
                        ui.label(&s.model);
                        let status = if is_running { "running" } else { s.status.word() };
                        let detail = match &s.status {
                            SavedStatus::Failed(e) | SavedStatus::Unreadable(e) => e.clone(),
                            SavedStatus::Unfinished if !is_running => {
                                "no end recorded: the app or process stopped during it; finished runs are saved".into()
                            }
                            _ => status.to_string(),
                        };
                        let colour = match s.status {
                            SavedStatus::Failed(_) | SavedStatus::Unreadable(_) => {
                                ui.visuals().error_fg_color
                            }
                            SavedStatus::Cancelled | SavedStatus::Unfinished => {
                                ui.visuals().warn_fg_color
                            }
                            SavedStatus::Complete => ui.visuals().text_color(),
                        };
                        ui.colored_label(colour, status).on_hover_text(detail);
                        ui.label(if s.failed_runs > 0 {
                            format!("{} ({} failed)", s.runs, s.failed_runs)
                        } else {
                            s.runs.to_string()
                        });
                        ui.horizontal(|ui| {
                            if view.confirm_delete.as_ref() == Some(&s.dir) {
                                ui.label("delete its folder?");
                                if ui.button("Yes, delete").clicked() {
                                    actions.push(Action::DeleteSaved(s.dir.clone()));
                                }
                                if ui.button("No").clicked() {
                                    actions.push(Action::AskDelete(None));
                                }
                            } else if ui
                                .add_enabled(!is_running, egui::Button::new("Delete…"))
                                .on_hover_text(format!("delete {} and everything in it", s.dir.display()))
                                .clicked()
                            {
                                actions.push(Action::AskDelete(Some(s.dir.clone())));
                            }
                        });
                        ui.end_row();
                    }
                });
        });
}
