//! Run: progress of the comparison (overall in epochs, the current run, the
//! current epoch's batches) with elapsed time and ETA; the whole life of a
//! training (every epoch's accuracy, each prune marked, the sparsity as a
//! stepped line) beside the list of every training of the comparison; the
//! log; and the cancel button.

use eframe::egui::{self, Color32, Ui};
use egui_plot::{AxisHints, HPlacement, Legend, Line, Plot, PlotPoints, Points, VLine};

use crate::gui::command::Action;
use crate::report::{fmt_duration, Bar, Progress, Trace};

/// Plot id of the whole-run chart.
pub const CHART_RUN: &str = "whole-run";

fn bar(ui: &mut Ui, label: &str, b: Bar, text: String) {
    ui.horizontal(|ui| {
        ui.add_sized([70.0, 18.0], egui::Label::new(label));
        ui.add(egui::ProgressBar::new(b.fraction()).text(text));
    });
}

/// Draws the Run view. `cancelling` is `Some` while a comparison runs;
/// `selected` is the training picked in the list (`None`: follow the one
/// running now).
pub fn show(
    ui: &mut Ui,
    progress: Option<&Progress>,
    cancelling: Option<bool>,
    selected: &mut Option<usize>,
    actions: &mut Vec<Action>,
) {
    let Some(p) = progress else {
        ui.label("No comparison has run yet in this session.");
        if ui.button("Run comparison").clicked() {
            actions.push(Action::StartRun);
        }
        return;
    };
    header(ui, p, cancelling, actions);
    bars(ui, p);
    ui.separator();
    egui::Panel::bottom("run-log")
        .resizable(true)
        .default_size(140.0)
        .show(ui, |ui| log(ui, p));
    egui::Panel::left("trainings")
        .resizable(true)
        .default_size(230.0)
        .show(ui, |ui| trainings(ui, p, selected));
    let shown = selected
        .and_then(|i| p.traces.all.get(i))
        .or_else(|| p.traces.all.last());
    match shown {
        Some(t) => whole_run(ui, t),
        None => {
            ui.label("Waiting for the first epoch…");
        }
    }
}

fn header(ui: &mut Ui, p: &Progress, cancelling: Option<bool>, actions: &mut Vec<Action>) {
    ui.horizontal_wrapped(|ui| {
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
}

fn bars(ui: &mut Ui, p: &Progress) {
    let eta = p
        .eta()
        .map(|d| format!(", ETA {}", fmt_duration(d)))
        .unwrap_or_default();
    bar(
        ui,
        "overall",
        p.overall,
        format!(
            "{:.0}%  ({}/{} runs, {} elapsed{eta})",
            p.overall.fraction() * 100.0,
            p.runs_done,
            p.runs_total,
            fmt_duration(p.elapsed())
        ),
    );
    if p.running.len() > 1 {
        // Several runs at once: a line of each.
        for r in &p.running {
            ui.label(format!("{}  {}", r.label, r.note));
            training_bars(ui, (r.run, r.epoch, r.phase_epoch));
        }
    } else {
        training_bars(ui, (p.run, p.epoch, p.phase_epoch));
    }
}

/// The bars of one training: its epochs, and its current epoch's batches.
fn training_bars(ui: &mut Ui, (run, epoch_bar, (epoch, of)): (Bar, Bar, (u32, u32))) {
    bar(
        ui,
        "this run",
        run,
        format!("{:.1} / {:.0} epochs", run.done, run.total),
    );
    let text = if of > 0 {
        format!(
            "epoch {epoch} / {of}: batch {:.0} / {:.0}",
            epoch_bar.done, epoch_bar.total
        )
    } else {
        String::new()
    };
    bar(ui, "epoch", epoch_bar, text);
}

fn trainings(ui: &mut Ui, p: &Progress, selected: &mut Option<usize>) {
    ui.strong("Trainings");
    if ui
        .selectable_label(selected.is_none(), "follow the running one")
        .clicked()
    {
        *selected = None;
    }
    ui.separator();
    let live = p.traces.all.len().checked_sub(1);
    egui::ScrollArea::vertical()
        .id_salt("trainings-list")
        .auto_shrink(false)
        .stick_to_bottom(true)
        .show(ui, |ui| {
            for (i, t) in p.traces.all.iter().enumerate() {
                let shown = selected.or(live) == Some(i);
                let status = t.outcome.clone().unwrap_or_else(|| "running…".into());
                let text = egui::RichText::new(format!("{}\n{status}", t.title));
                let text = if t.failed {
                    text.color(ui.visuals().error_fg_color)
                } else {
                    text
                };
                let r = ui
                    .add(egui::Button::selectable(shown, text).wrap())
                    .on_hover_text(&status);
                if r.clicked() {
                    *selected = Some(i);
                }
            }
        });
}

const TRAIN: Color32 = Color32::from_rgb(31, 119, 180);
const VAL: Color32 = Color32::from_rgb(255, 127, 14);
const TEST: Color32 = Color32::from_rgb(44, 160, 44);
const SPARSITY: Color32 = Color32::from_rgb(127, 127, 127);

/// One training's whole curve: accuracies over all its epochs (x = 0 is the
/// model it started from), the prunes as vertical lines, the test accuracy
/// at each step, and the sparsity as a stepped line read on the right axis
/// (both axes are in %).
fn whole_run(ui: &mut Ui, t: &Trace) {
    ui.horizontal_wrapped(|ui| {
        ui.strong(&t.title);
        if let Some(o) = &t.outcome {
            ui.label(format!("— {o}"));
        }
        ui.weak(format!(
            "{} epochs, {} prune step{}",
            t.epochs,
            t.prunes.len(),
            if t.prunes.len() == 1 { "" } else { "s" }
        ));
    });
    Plot::new(CHART_RUN)
        .allow_scroll(false)
        .legend(Legend::default().position(egui_plot::Corner::LeftBottom))
        .x_axis_label("epoch of this training (0 = the model it started from)")
        .custom_y_axes(vec![
            AxisHints::new_y().label("accuracy (%)"),
            AxisHints::new_y()
                .label("sparsity (%)")
                .placement(HPlacement::Right),
        ])
        .include_x(0.0)
        .include_x(f64::from(t.epochs.max(1)))
        .include_y(0.0)
        .include_y(100.0)
        .show(ui, |plot| {
            for x in &t.prunes {
                plot.vline(
                    VLine::new("prune steps", *x)
                        .color(SPARSITY.gamma_multiply(0.5))
                        .style(egui_plot::LineStyle::dashed_dense()),
                );
            }
            if !t.sparsity.is_empty() {
                plot.line(
                    Line::new(
                        "sparsity (right axis)",
                        PlotPoints::from(t.sparsity.clone()),
                    )
                    .color(SPARSITY)
                    .width(2.0)
                    .allow_band(false),
                );
            }
            plot.line(
                Line::new("training accuracy", PlotPoints::from(t.train.clone()))
                    .color(TRAIN)
                    .allow_band(false),
            );
            plot.line(
                Line::new("validation accuracy", PlotPoints::from(t.val.clone()))
                    .color(VAL)
                    .width(2.0)
                    // Points share an x (before and after a prune): draw them
                    // as a path, not as egui_plot's min/max band per x.
                    .allow_band(false),
            );
            plot.points(
                Points::new(
                    "test accuracy at each step",
                    PlotPoints::from(t.test.clone()),
                )
                .color(TEST)
                .radius(4.0)
                .shape(egui_plot::MarkerShape::Diamond),
            );
        });
}

fn log(ui: &mut Ui, p: &Progress) {
    ui.strong("Log");
    egui::ScrollArea::vertical()
        .id_salt("run-log")
        .stick_to_bottom(true)
        .auto_shrink(false)
        .show(ui, |ui| {
            // Only the last lines are laid out (they wrap to the width).
            let from = p.log.len().saturating_sub(300);
            for line in &p.log[from..] {
                ui.add(egui::Label::new(egui::RichText::new(line).monospace()).wrap());
            }
        });
}
