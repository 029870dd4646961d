//! Run: progress of the comparison (overall, current strategy run, current
//! phase's epochs) with elapsed time and ETA, the live accuracy curve of the
//! phase being trained, the log, and the cancel button.

use eframe::egui::{self, Ui};
use egui_plot::{Legend, Line, Plot, PlotPoints};

use crate::gui::command::Action;
use crate::report::{Bar, Progress};

fn fmt_duration(d: std::time::Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    } else {
        format!("{}m{:02}s", s / 60, s % 60)
    }
}

fn bar(ui: &mut Ui, label: &str, b: Bar, text: String) {
    ui.horizontal(|ui| {
        ui.add_sized([70.0, 18.0], egui::Label::new(label));
        ui.add(egui::ProgressBar::new(b.fraction()).text(text));
    });
}

/// Draws the Run view. `cancelling` is `Some` while a comparison runs.
pub fn show(
    ui: &mut Ui,
    progress: Option<&Progress>,
    cancelling: Option<bool>,
    actions: &mut Vec<Action>,
) {
    let Some(p) = progress else {
        ui.label("No comparison has run yet in this session.");
        if ui.button("Run comparison").clicked() {
            actions.push(Action::StartRun);
        }
        return;
    };
    ui.horizontal(|ui| {
        ui.heading(&p.current);
        match cancelling {
            Some(false) => {
                if ui
                    .button("Cancel")
                    .on_hover_text("stop after the current batch; finished runs are kept")
                    .clicked()
                {
                    actions.push(Action::CancelRun);
                }
            }
            Some(true) => {
                ui.spinner();
                ui.label("cancelling after the current batch…");
            }
            None => {
                if ui.button("Run again").clicked() {
                    actions.push(Action::StartRun);
                }
                if ui.button("Show results").clicked() {
                    actions.push(Action::SetTab(crate::gui::state::Tab::Compare));
                }
            }
        }
    });
    let eta = p
        .eta()
        .map(|d| format!(", ETA {}", fmt_duration(d)))
        .unwrap_or_default();
    bar(
        ui,
        "overall",
        p.overall,
        format!(
            "{:.0}%  ({} elapsed{eta})",
            p.overall.fraction() * 100.0,
            fmt_duration(p.elapsed())
        ),
    );
    bar(
        ui,
        "strategy",
        p.strategy,
        format!("{:.0} / {:.0} epochs", p.strategy.done, p.strategy.total),
    );
    bar(
        ui,
        "epoch",
        p.epoch,
        format!("epoch {:.0} / {:.0}", p.epoch.done, p.epoch.total),
    );
    ui.separator();
    let half = (ui.available_height() * 0.55).max(120.0);
    Plot::new("live-accuracy")
        .allow_scroll(false)
        .height(half)
        .legend(Legend::default())
        .x_axis_label("epoch of the current phase")
        .y_axis_label("accuracy")
        .include_y(0.0)
        .include_y(1.0)
        .show(ui, |plot| {
            plot.line(Line::new(
                "validation",
                PlotPoints::from(p.live_val.clone()),
            ));
            plot.line(Line::new(
                "training",
                PlotPoints::from(p.live_train.clone()),
            ));
        });
    ui.separator();
    ui.label("Log");
    let row_height =
        ui.text_style_height(&egui::TextStyle::Monospace) + ui.spacing().item_spacing.y;
    egui::ScrollArea::both()
        .id_salt("run-log")
        .stick_to_bottom(true)
        .auto_shrink(false)
        .show_rows(ui, row_height, p.log.len(), |ui, rows| {
            for line in &p.log[rows] {
                ui.add(egui::Label::new(egui::RichText::new(line).monospace()).extend());
            }
        });
}
