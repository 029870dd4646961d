//! The strategy boxes of Setup: schedule and criterion with forms generated
//! from each plugin's parameter schema, granularity and scope, the
//! fine-tuning policy, and a preview of the sparsities the schedule takes.

use eframe::egui::{self, Ui};

use super::fields::plugin_combo;
use crate::experiment::preview::{plan_schedule, plan_summary};
use crate::experiment::{ExperimentConfig, StrategySpec};
use crate::gui::schema_form::schema_form;
use crate::plugins::Registry;
use crate::prune::{GranularityChoice, Scope};
use crate::train::{EarlyStopping, FinetunePolicy, StopMetric};

/// Draws every strategy of `cfg` with Add / Duplicate / Remove.
pub fn show(ui: &mut Ui, cfg: &mut ExperimentConfig, registry: &Registry) {
    let finetune_epochs = cfg.finetune.epochs;
    let previews: Vec<Vec<String>> = cfg
        .strategies
        .iter()
        .map(|s| previews(ui, cfg, s, registry))
        .collect();
    strategies(
        ui,
        &mut cfg.strategies,
        registry,
        finetune_epochs,
        &previews,
    );
}

/// One line per target: the sparsities the strategy's schedule takes there
/// (computed again only when the strategy or the targets change).
fn previews(ui: &Ui, cfg: &ExperimentConfig, s: &StrategySpec, registry: &Registry) -> Vec<String> {
    let id = ui.scope_id().with(("schedule-preview", s.label()));
    let params = cfg.schedule_params(s, registry);
    type Cached = (String, serde_json::Value, Vec<f32>, Vec<String>);
    let key = (s.schedule.clone(), params.clone(), cfg.sparsities.clone());
    if let Some((name, p, t, lines)) = ui.data(|d| d.get_temp::<Cached>(id)) {
        if (name, p, t) == key {
            return lines;
        }
    }
    let label = registry.label(shears_plugin_api::PluginKind::Schedule, &s.schedule);
    let lines = cfg
        .sparsities
        .iter()
        .map(|&t| {
            let plan = registry
                .schedule(&s.schedule, &params)
                .and_then(|mut sch| plan_schedule(sch.as_mut(), &label, t, cfg.max_epochs_per_run));
            match plan {
                Ok(steps) => format!("at {:.1}%: {}", t * 100.0, plan_summary(&steps)),
                Err(e) => format!("at {:.1}%: {e}", t * 100.0),
            }
        })
        .collect::<Vec<_>>();
    ui.data_mut(|d| d.insert_temp::<Cached>(id, (key.0, key.1, key.2, lines.clone())));
    lines
}

/// The fine-tuning policy of a strategy: as the schedule says, a fixed
/// number of epochs, or early stopping with patience.
fn policy(ui: &mut Ui, policy: &mut Option<FinetunePolicy>) {
    ui.horizontal_wrapped(|ui| {
        let l = ui.label("Fine-tuning");
        let mut kind = match policy {
            None => 0,
            Some(FinetunePolicy::Epochs(_)) => 1,
            Some(FinetunePolicy::Patience(_)) => 2,
        };
        let before = kind;
        ui.selectable_value(&mut kind, 0, "as the schedule says")
            .labelled_by(l.id);
        ui.selectable_value(&mut kind, 1, "fixed epochs");
        ui.selectable_value(&mut kind, 2, "patience");
        if kind != before {
            *policy = match kind {
                1 => Some(FinetunePolicy::Epochs(2)),
                2 => Some(FinetunePolicy::Patience(EarlyStopping::default())),
                _ => None,
            };
        }
        match policy {
            Some(FinetunePolicy::Epochs(n)) => {
                ui.add(egui::DragValue::new(n).suffix(" epochs"));
            }
            Some(FinetunePolicy::Patience(es)) => {
                let l = ui.label("patience");
                ui.add(egui::DragValue::new(&mut es.patience))
                    .labelled_by(l.id);
                let l = ui.label("max epochs");
                ui.add(egui::DragValue::new(&mut es.max_epochs))
                    .labelled_by(l.id);
                ui.selectable_value(&mut es.metric, StopMetric::ValAcc, "val-acc");
                ui.selectable_value(&mut es.metric, StopMetric::ValLoss, "val-loss");
                let l = ui.label("min delta");
                ui.add(egui::DragValue::new(&mut es.min_delta).speed(0.001))
                    .labelled_by(l.id);
                ui.checkbox(&mut es.restore_best, "restore best");
            }
            None => {}
        }
    });
}

fn strategies(
    ui: &mut Ui,
    list: &mut Vec<StrategySpec>,
    registry: &Registry,
    finetune_epochs: u32,
    previews: &[Vec<String>],
) {
    // An unset `finetune_epochs` means the experiment's fine-tuning epochs.
    let schedule_defaults = serde_json::json!({ "finetune_epochs": finetune_epochs });
    let no_defaults = serde_json::json!({});
    let schedules = registry.schedule_names();
    let criteria = registry.criterion_names();
    let mut remove = None;
    let mut duplicate = None;
    for (i, s) in list.iter_mut().enumerate() {
        ui.push_id(i, |ui| {
            egui::Frame::group(ui.style()).show(ui, |ui| {
                ui.horizontal(|ui| {
                    let l = ui.label("Name");
                    let mut name = s.name.clone().unwrap_or_default();
                    if ui
                        .add(egui::TextEdit::singleline(&mut name).hint_text(s.label()))
                        .labelled_by(l.id)
                        .changed()
                    {
                        s.name = (!name.trim().is_empty()).then_some(name);
                    }
                    if ui.button("Duplicate").clicked() {
                        duplicate = Some(i);
                    }
                    if ui.button("Remove").clicked() {
                        remove = Some(i);
                    }
                });
                ui.horizontal(|ui| {
                    if plugin_combo(ui, "Schedule", &mut s.schedule, &schedules) {
                        s.schedule_params = serde_json::json!({});
                    }
                    if plugin_combo(ui, "Criterion", &mut s.criterion, &criteria) {
                        s.criterion_params = serde_json::json!({});
                    }
                    ui.label("Granularity");
                    ui.selectable_value(
                        &mut s.granularity,
                        GranularityChoice::Unstructured,
                        "weights",
                    );
                    ui.selectable_value(
                        &mut s.granularity,
                        GranularityChoice::Structured,
                        "channels",
                    );
                    ui.label("Scope");
                    ui.selectable_value(&mut s.scope, Scope::Global, "global");
                    ui.selectable_value(&mut s.scope, Scope::Layer, "per layer");
                });
                ui.columns(2, |cols| {
                    cols[0].label(format!("{} parameters", s.schedule));
                    match registry.schedule_schema(&s.schedule) {
                        Some(schema) => {
                            schema_form(
                                &mut cols[0],
                                "schedule",
                                schema,
                                &mut s.schedule_params,
                                &schedule_defaults,
                            );
                        }
                        None => {
                            cols[0].colored_label(
                                cols[0].visuals().error_fg_color,
                                "no such schedule plugin",
                            );
                        }
                    }
                    cols[1].label(format!("{} parameters", s.criterion));
                    match registry.criterion_schema(&s.criterion) {
                        Some(schema) => {
                            schema_form(
                                &mut cols[1],
                                "criterion",
                                schema,
                                &mut s.criterion_params,
                                &no_defaults,
                            );
                        }
                        None => {
                            cols[1].colored_label(
                                cols[1].visuals().error_fg_color,
                                "no such criterion plugin",
                            );
                        }
                    }
                });
                policy(ui, &mut s.finetune);
                for line in previews.get(i).into_iter().flatten() {
                    ui.weak(format!("Schedule {line}"));
                }
            });
        });
    }
    if let Some(i) = duplicate {
        let mut copy = list[i].clone();
        copy.name = Some(format!("{} (copy)", copy.label()));
        list.insert(i + 1, copy);
    }
    if let Some(i) = remove {
        list.remove(i);
    }
    if ui.button("Add strategy").clicked() {
        list.push(StrategySpec::default());
    }
}
