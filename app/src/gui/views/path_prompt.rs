//! The in-window path prompt that stands in for a native file dialog where
//! none can show: says why, takes a typed or pasted path, and lists the
//! folder it is in (click a folder to go in, a file to pick it).

use std::path::{Path, PathBuf};

use eframe::egui::{self, Ui};

use crate::gui::command::Action;
use crate::gui::dialogs::{PathPrompt, Pick};

/// Most folder entries listed.
const MAX_ENTRIES: usize = 400;

fn entries(dir: &Path, filter: Option<&[&str]>) -> Vec<(String, bool)> {
    let Ok(read) = std::fs::read_dir(dir) else {
        return vec![];
    };
    let mut out: Vec<(String, bool)> = read
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let is_dir = e.path().is_dir();
            let ext = Path::new(&name)
                .extension()
                .map(|x| x.to_string_lossy().to_lowercase())
                .unwrap_or_default();
            let keep = !name.starts_with('.')
                && (is_dir || filter.is_none_or(|f| f.iter().any(|x| *x == ext)));
            keep.then_some((name, is_dir))
        })
        .collect();
    out.sort_by(|a, b| {
        b.1.cmp(&a.1)
            .then_with(|| a.0.to_lowercase().cmp(&b.0.to_lowercase()))
    });
    out.truncate(MAX_ENTRIES);
    out
}

/// Draws the prompt as a window over the app; its answer is pushed as
/// [`Action::PromptDone`].
pub fn show(ui: &mut Ui, prompt: &mut PathPrompt, actions: &mut Vec<Action>) {
    let mut open = true;
    egui::Window::new(prompt.spec.title)
        .collapsible(false)
        .resizable(true)
        .default_width(560.0)
        .open(&mut open)
        .show(ui.ctx(), |ui| {
            ui.weak(format!(
                "{}. Type or paste the path, or pick it below.",
                prompt.reason
            ));
            let what = match prompt.spec.pick {
                Pick::File => "File",
                Pick::Folder => "Folder",
                Pick::Save => "Save as",
            };
            let chosen = prompt.chosen();
            let mut submit = false;
            ui.horizontal(|ui| {
                let l = ui.label(what);
                let r = ui
                    .add(egui::TextEdit::singleline(&mut prompt.text).desired_width(440.0))
                    .labelled_by(l.id);
                submit = r.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
            });
            if let Err(why) = &chosen {
                ui.colored_label(ui.visuals().warn_fg_color, why);
            }
            let dir = prompt.folder();
            ui.separator();
            ui.weak(dir.display().to_string());
            let filter = prompt.spec.filter.map(|(_, exts)| exts);
            egui::ScrollArea::vertical()
                .max_height(240.0)
                .auto_shrink([false, true])
                .show(ui, |ui| {
                    if let Some(up) = dir.parent() {
                        if ui.selectable_label(false, ".. (up)").clicked() {
                            prompt.text = folder_text(up);
                        }
                    }
                    for (name, is_dir) in entries(&dir, filter) {
                        let label = if is_dir {
                            format!("{name}/")
                        } else {
                            name.clone()
                        };
                        if ui.selectable_label(false, label).clicked() {
                            let p = dir.join(&name);
                            prompt.text = if is_dir && prompt.spec.pick != Pick::Folder {
                                folder_text(&p)
                            } else {
                                p.display().to_string()
                            };
                        }
                    }
                });
            ui.separator();
            ui.horizontal(|ui| {
                let ok = ui.add_enabled(chosen.is_ok(), egui::Button::new("OK"));
                if ok.clicked() || (submit && chosen.is_ok()) {
                    actions.push(Action::PromptDone(chosen.ok()));
                }
                if ui.button("Cancel").clicked() {
                    actions.push(Action::PromptDone(None));
                }
            });
        });
    if !open {
        actions.push(Action::PromptDone(None));
    }
}

fn folder_text(dir: &Path) -> String {
    let mut s = PathBuf::from(dir).display().to_string();
    if !s.ends_with(std::path::MAIN_SEPARATOR) {
        s.push(std::path::MAIN_SEPARATOR);
    }
    s
}
