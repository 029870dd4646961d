//! The Compare view's table of numbers: one row per strategy and target of
//! each shown results set, with the dense baseline, cost, latency, the saved
//! models and the problems of its runs.

use std::path::PathBuf;

use eframe::egui::{self, Ui};

use crate::gui::command::{Action, LoadedResults};
use crate::gui::files::DialogPurpose;
use crate::report;

fn save_model_menu(
    ui: &mut Ui,
    label: &str,
    files: Vec<(String, PathBuf)>,
    actions: &mut Vec<Action>,
) {
    if files.is_empty() {
        ui.weak("-");
        return;
    }
    ui.menu_button(label, |ui| {
        for (text, path) in files {
            if ui.button(&text).clicked() {
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "model.safetensors".into());
                actions.push(Action::dialog(DialogPurpose::SaveModel(path), name));
            }
        }
    });
}

/// Draws the table of numbers of the shown sets.
pub fn show(ui: &mut Ui, sets: &[LoadedResults], actions: &mut Vec<Action>) {
    let several = sets.iter().filter(|s| s.shown).count() > 1;
    egui::Grid::new("numbers")
        .striped(true)
        .num_columns(13)
        .show(ui, |ui| {
            for h in [
                "strategy",
                "target",
                "sparsity",
                "test acc (%)",
                "after prune (%)",
                "compression",
                "speed-up",
                "latency b1 / b64 (ms)",
                "seeds",
                "epochs",
                "seconds",
                "model",
                "problems",
            ] {
                ui.strong(h);
            }
            ui.end_row();
            for set in sets.iter().filter(|s| s.shown) {
                let prefix = if several {
                    format!("{}: ", set.name)
                } else {
                    String::new()
                };
                let r = &set.results;
                if let Some((m, sd)) = report::dense_baseline(r) {
                    ui.label(format!("{prefix}dense baseline"));
                    ui.label("0%");
                    ui.label("0%");
                    ui.label(mean_pm(m, sd, r.baselines.len()));
                    for _ in 0..4 {
                        ui.label("");
                    }
                    ui.label(r.baselines.len().to_string());
                    ui.label(format!("{}", r.baselines[0].epochs));
                    ui.label(format!(
                        "{:.1}",
                        r.baselines.iter().map(|b| b.seconds).sum::<f64>()
                            / r.baselines.len() as f64
                    ));
                    let files = set
                        .dir
                        .iter()
                        .flat_map(|d| {
                            r.baselines.iter().filter_map(move |b| {
                                let file = b.model_file.as_ref()?;
                                Some((format!("seed {}", b.seed), d.join(file)))
                            })
                        })
                        .filter(|(_, p)| p.is_file())
                        .collect();
                    save_model_menu(ui, "Save…", files, actions);
                    ui.label("");
                    ui.end_row();
                }
                for row in report::table(r) {
                    ui.label(format!("{prefix}{}", row.strategy));
                    ui.label(format!("{:.1}%", row.target * 100.0));
                    match &row.point {
                        Some(p) => {
                            ui.label(format!("{:.2}%", p.sparsity * 100.0));
                            ui.label(mean_pm(p.acc, p.acc_std, p.seeds));
                            let or_dash = |v: Option<String>| v.unwrap_or_else(|| "-".into());
                            ui.label(or_dash(p.pruned_acc.map(|a| format!("{:.2}", a * 100.0))));
                            ui.label(or_dash(p.compression.map(|c| format!("{c:.2}x"))));
                            ui.label(or_dash(p.speedup.map(|c| format!("{c:.2}x"))));
                            ui.label(or_dash(
                                p.latency_ms.map(|(a, b)| format!("{a:.3} / {b:.3}")),
                            ));
                            ui.label(p.seeds.to_string());
                            ui.label(format!("{:.1}", p.epochs));
                            ui.label(format!("{:.1}", p.seconds));
                        }
                        None => {
                            for _ in 0..9 {
                                ui.label("-");
                            }
                        }
                    }
                    let files = set
                        .dir
                        .iter()
                        .flat_map(|d| {
                            r.runs
                                .iter()
                                .filter(|run| {
                                    run.strategy == row.strategy
                                        && (run.target - row.target).abs() < 1e-6
                                })
                                .filter_map(move |run| {
                                    run.model_file
                                        .as_ref()
                                        .map(|f| (format!("seed {}", run.seed), d.join(f)))
                                })
                        })
                        .filter(|(_, p)| p.is_file())
                        .collect();
                    save_model_menu(ui, "Save…", files, actions);
                    if row.problems.is_empty() {
                        ui.label("");
                    } else {
                        ui.colored_label(ui.visuals().error_fg_color, row.problems.join("; "));
                    }
                    ui.end_row();
                }
            }
        });
}

/// `91.20 ± 0.35` (in %) over several seeds, `91.20` for one (its deviation
/// is not 0, it is unknown).
fn mean_pm(mean: f32, std: f32, seeds: usize) -> String {
    if seeds > 1 {
        format!("{:.2} ± {:.2}", mean * 100.0, std * 100.0)
    } else {
        format!("{:.2}", mean * 100.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_seed_has_no_deviation() {
        assert_eq!(mean_pm(0.912, 0.0, 1), "91.20");
        assert_eq!(mean_pm(0.912, 0.0035, 3), "91.20 ± 0.35");
    }
}
