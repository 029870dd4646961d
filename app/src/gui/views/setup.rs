//! Setup: the experiment being configured — data, model, device, training,
//! target sparsities, seeds, and the strategies (schedule + criterion with
//! forms generated from each plugin's parameter schema).

use eframe::egui::{self, Ui};

use super::fields::{field_error, fraction, list_field, plain};
use crate::data::DatasetSpec;
use crate::experiment::ExperimentConfig;
use crate::gui::command::{Action, CheckpointInfo};
use crate::gui::files::DialogPurpose;
use crate::gui::state::{FileKind, Settings};
use crate::model::import::ModelFormat;
use crate::model::ModelSpec;
use crate::plugins::Registry;
use crate::train::{LrSchedule, OptimizerSpec, TrainConfig};

/// The Setup fields' form name (their parse errors go to its status line).
const FORM: &str = "setup";

/// Draws the Setup view; edits go straight into `settings.config`.
pub fn show(
    ui: &mut Ui,
    settings: &mut Settings,
    registry: &Registry,
    checkpoint: Option<&mut CheckpointInfo>,
    running: bool,
    actions: &mut Vec<Action>,
) {
    let verdict = match field_error(ui, FORM) {
        Some(e) => Err(e),
        None => validated(ui, &settings.config, registry),
    };
    ui.horizontal(|ui| {
        match &verdict {
            Ok(()) => {
                let cfg = &settings.config;
                ui.label(format!(
                    "Ready: {} strategies x {} sparsities x {} seeds = {} runs.",
                    cfg.strategies.len(),
                    cfg.sparsities.len(),
                    cfg.seeds.len(),
                    cfg.strategies.len() * cfg.sparsities.len() * cfg.seeds.len()
                ));
            }
            Err(e) => {
                ui.colored_label(ui.visuals().error_fg_color, format!("Not ready: {e}"));
            }
        }
        if running {
            ui.weak("(a comparison is running: changes apply to the next one)");
        }
    });
    ui.separator();
    egui::ScrollArea::vertical().id_salt("setup-scroll").auto_shrink(false).show(ui, |ui| {
        let cfg = &mut settings.config;
        egui::CollapsingHeader::new("Experiment")
            .default_open(true)
            .show(ui, |ui| experiment(ui, cfg, &mut settings.out_dir, actions));
        egui::CollapsingHeader::new("Data")
            .default_open(true)
            .show(ui, |ui| data(ui, &mut cfg.data, actions));
        egui::CollapsingHeader::new("Model")
            .default_open(true)
            .show(ui, |ui| model(ui, cfg, checkpoint, actions));
        egui::CollapsingHeader::new("Training")
            .default_open(false)
            .show(ui, |ui| {
                ui.label("Base model");
                let from_checkpoint = cfg.base_checkpoint.is_some();
                if from_checkpoint {
                    ui.weak("(not trained: the experiment starts from a checkpoint)");
                }
                ui.add_enabled_ui(!from_checkpoint, |ui| {
                    train_config(ui, "train", &mut cfg.train)
                });
                ui.separator();
                ui.label("Fine-tuning after each prune (epochs = default for schedules that take finetune_epochs)");
                train_config(ui, "finetune", &mut cfg.finetune);
            });
        egui::CollapsingHeader::new(format!("Strategies ({})", cfg.strategies.len()))
            .id_salt("strategies")
            .default_open(true)
            .show(ui, |ui| super::strategies::show(ui, cfg, registry));
    });
}

/// `config.validate`, computed again only when the config changed (it
/// creates every plugin, which is too much work for every frame).
fn validated(ui: &Ui, config: &ExperimentConfig, registry: &Registry) -> Result<(), String> {
    let id = ui.scope_id().with("setup-validation");
    type Cached = (ExperimentConfig, usize, Result<(), String>);
    let generation = registry.entries().len() + registry.errors().len();
    if let Some((cfg, gen, verdict)) = ui.data(|d| d.get_temp::<Cached>(id)) {
        if &cfg == config && gen == generation {
            return verdict;
        }
    }
    let verdict = config.validate(registry).map_err(|e| match e {
        crate::error::Error::Config { field, msg } => {
            format!("{}: {msg}", field_label(&field, config))
        }
        e => e.to_string(),
    });
    ui.data_mut(|d| d.insert_temp::<Cached>(id, (config.clone(), generation, verdict.clone())));
    verdict
}

/// The label Setup shows for the config key `field` (`sparsities[1]` is
/// "Target sparsities, entry 2", `finetune.lr` "Fine-tuning: Learning
/// rate"), so messages name what the user sees.
pub fn field_label(field: &str, cfg: &ExperimentConfig) -> String {
    let (head, rest) = field.split_once('.').unwrap_or((field, ""));
    let (name, index) = match head.split_once('[') {
        Some((n, i)) => (n, i.trim_end_matches(']').parse::<usize>().ok()),
        None => (head, None),
    };
    fn key(k: &str) -> &str {
        match k {
            "epochs" => "Epochs",
            "batch_size" => "Batch size",
            "lr" => "Learning rate",
            "lr_schedule" => "LR schedule",
            "optimizer.momentum" => "momentum",
            "optimizer.weight_decay" => "weight decay",
            "train" => "training images",
            "test" => "test images",
            "hidden" => "hidden widths",
            "channels" => "conv widths",
            "width" => "base width",
            "finetune" => "fine-tuning",
            "schedule" => "schedule",
            "criterion" => "criterion",
            "name" => "name",
            other => other,
        }
    }
    let entry = |label: &str| match index {
        Some(i) => format!("{label}, entry {}", i + 1),
        None => label.to_string(),
    };
    match name {
        "sparsities" => entry("Target sparsities"),
        "seeds" => entry("Seeds"),
        "val_fraction" => "Validation fraction".into(),
        "calibration_batches" => "Calibration batches".into(),
        "max_epochs_per_run" => "Max fine-tuning epochs per run".into(),
        "finetune_budget" => "Equal fine-tuning budget".into(),
        "device" => "Device".into(),
        "train" => format!("Base model: {}", key(rest)),
        "finetune" => format!("Fine-tuning: {}", key(rest)),
        "data" => format!("Data: {}", key(rest)),
        "model" => format!("Model: {}", key(rest)),
        "import" | "preprocess" => match rest {
            "mean" => "Normalisation mean".into(),
            "std" => "Normalisation std".into(),
            "layers" => "Layers".into(),
            "resize" => "Resize shorter side".into(),
            r => format!("Model: {r}"),
        },
        "strategy" => {
            let label = index
                .and_then(|i| cfg.strategies.get(i))
                .map(|s| format!("Strategy `{}`", s.label()))
                .unwrap_or_else(|| "Strategies".into());
            if rest.is_empty() {
                label
            } else {
                format!("{label}: {}", key(rest))
            }
        }
        _ => field.to_string(),
    }
}

fn experiment(
    ui: &mut Ui,
    cfg: &mut ExperimentConfig,
    out_dir: &mut std::path::PathBuf,
    actions: &mut Vec<Action>,
) {
    egui::Grid::new("experiment").num_columns(2).show(ui, |ui| {
        let l = ui.label("Name");
        ui.text_edit_singleline(&mut cfg.name).labelled_by(l.id);
        ui.end_row();
        let l = ui.label("Target sparsities");
        list_field(
            ui,
            FORM,
            "Target sparsities",
            &mut cfg.sparsities,
            "0.5, 0.8, 90%, 95%",
            fraction,
        )
        .labelled_by(l.id);
        ui.end_row();
        let l = ui.label("Seeds");
        list_field(ui, FORM, "Seeds", &mut cfg.seeds, "0, 1, 2", plain).labelled_by(l.id);
        ui.end_row();
        let l = ui.label("Device");
        device(ui, &mut cfg.device).labelled_by(l.id);
        ui.end_row();
        let l = ui.label("Validation fraction");
        ui.add(egui::DragValue::new(&mut cfg.val_fraction).speed(0.01))
            .labelled_by(l.id);
        ui.end_row();
        let l = ui.label("Calibration batches");
        ui.add(egui::DragValue::new(&mut cfg.calibration_batches))
            .labelled_by(l.id)
            .on_hover_text("batches used to compute gradients / activations for taylor and wanda");
        ui.end_row();
        let l = ui.label("Max fine-tuning epochs per run");
        ui.add(egui::DragValue::new(&mut cfg.max_epochs_per_run))
            .labelled_by(l.id);
        ui.end_row();
        let l = ui.label("Dense control");
        ui.checkbox(
            &mut cfg.dense_control,
            "fine-tune the dense base as long as the longest strategy",
        )
        .labelled_by(l.id)
        .on_hover_text("so that accuracy gained by extra training is not credited to pruning");
        ui.end_row();
        let l = ui.label("Equal fine-tuning budget");
        ui.horizontal(|ui| {
            let mut on = cfg.finetune_budget.is_some();
            ui.checkbox(&mut on, "every strategy gets")
                .labelled_by(l.id)
                .on_hover_text(
                    "the same total fine-tuning epochs at each target, split over its prune steps",
                );
            let mut n = cfg.finetune_budget.unwrap_or(4);
            ui.add_enabled(
                on,
                egui::DragValue::new(&mut n)
                    .range(1..=100_000)
                    .suffix(" epochs"),
            );
            cfg.finetune_budget = on.then_some(n);
        });
        ui.end_row();
        let l = ui.label("Latency");
        ui.checkbox(&mut cfg.latency, "time every final model (batch 1 and 64)")
            .labelled_by(l.id);
        ui.end_row();
        let l = ui.label("Runs at once");
        ui.horizontal(|ui| {
            ui.add(
                egui::DragValue::new(&mut cfg.jobs)
                    .range(0..=crate::experiment::config::MAX_JOBS),
            )
            .labelled_by(l.id)
            .on_hover_text(
                "runs trained at the same time, the cores shared between them; 0: as many as the cores make worthwhile for the model",
            );
            if cfg.jobs == 0 {
                ui.weak("automatic");
            }
        });
        ui.end_row();
        let l = ui.label("Output folder");
        ui.horizontal(|ui| {
            let mut text = out_dir.display().to_string();
            if ui
                .text_edit_singleline(&mut text)
                .labelled_by(l.id)
                .changed()
            {
                *out_dir = text.into();
            }
            if ui.button("Choose…").clicked() {
                actions.push(Action::dialog(DialogPurpose::OutputFolder, String::new()));
            }
        });
        ui.end_row();
    });
}

/// CPU, auto, and the CUDA devices when the binary is built with CUDA.
fn device(ui: &mut Ui, device: &mut String) -> egui::Response {
    let cuda = candle_core::utils::cuda_is_available();
    let mut choices = vec!["cpu".to_string(), "auto".to_string()];
    if cuda {
        choices.extend((0..4).map(|n| format!("cuda:{n}")));
    }
    let r = egui::ComboBox::from_id_salt("device")
        .selected_text(device.as_str())
        .show_ui(ui, |ui| {
            for d in choices {
                ui.selectable_value(device, d.clone(), d);
            }
        })
        .response;
    if !cuda {
        ui.weak("(this build has no CUDA: auto = cpu)");
    }
    r
}

fn data(ui: &mut Ui, spec: &mut DatasetSpec, actions: &mut Vec<Action>) {
    ui.label(spec.to_string());
    super::fields::path_entry(
        ui,
        "dataset",
        spec.path(),
        ("Browse…", DialogPurpose::Open(FileKind::Dataset)),
        actions,
    );
    if !matches!(spec, DatasetSpec::Embedded { .. })
        && ui.button("Use the embedded glyphs").clicked()
    {
        *spec = DatasetSpec::default();
    }
    if let DatasetSpec::Embedded { train, test, seed } = spec {
        ui.horizontal(|ui| {
            let l = ui.label("training images");
            ui.add(egui::DragValue::new(train)).labelled_by(l.id);
            let l = ui.label("test images");
            ui.add(egui::DragValue::new(test)).labelled_by(l.id);
            let l = ui.label("seed");
            ui.add(egui::DragValue::new(seed)).labelled_by(l.id);
        });
    }
}

fn model(
    ui: &mut Ui,
    cfg: &mut ExperimentConfig,
    checkpoint: Option<&mut CheckpointInfo>,
    actions: &mut Vec<Action>,
) {
    if ui
        .button("Sensitivity analysis of this model…")
        .on_hover_text("prune one layer at a time, no fine-tuning: which layers tolerate pruning")
        .clicked()
    {
        actions.push(Action::StartSensitivity);
    }
    super::fields::path_entry(
        ui,
        "trained model",
        cfg.base_checkpoint.as_deref(),
        ("Browse…", DialogPurpose::Open(FileKind::Checkpoint)),
        actions,
    );
    if let Some(path) = &cfg.base_checkpoint {
        ui.label(format!("Starting from the model {}", path.display()));
        if let Some(c) = checkpoint {
            ui.weak(&c.summary);
            if c.format != Some(ModelFormat::Shears) {
                import_form(ui, c, actions);
            }
        }
        if ui.button("Train a new base model instead").clicked() {
            actions.push(Action::ClearCheckpoint);
        }
        return;
    }
    ui.horizontal(|ui| {
        let l = ui.label("Architecture");
        let name = cfg.model.name();
        egui::ComboBox::from_id_salt("arch")
            .selected_text(name)
            .show_ui(ui, |ui| {
                for n in ModelSpec::all_names() {
                    if ui.selectable_label(n == name, n).clicked() && n != name {
                        cfg.model = ModelSpec::from_name(n).expect("known architecture");
                    }
                }
            })
            .response
            .labelled_by(l.id);
        match &mut cfg.model {
            ModelSpec::Mlp { hidden } => {
                let l = ui.label("hidden widths");
                list_field(ui, FORM, "Hidden widths", hidden, "300, 100", plain).labelled_by(l.id);
            }
            ModelSpec::Vgg { channels } => {
                let l = ui.label("conv widths (0 = pool)");
                list_field(
                    ui,
                    FORM,
                    "VGG channels",
                    channels,
                    "32, 32, 0, 64, 64, 0",
                    plain,
                )
                .labelled_by(l.id);
            }
            ModelSpec::Resnet20 { width }
            | ModelSpec::Resnet56 { width }
            | ModelSpec::Resnet { width, .. } => {
                let l = ui.label("base width");
                ui.add(egui::DragValue::new(width).range(1..=4096))
                    .labelled_by(l.id);
            }
            ModelSpec::Mobilenetv2 { width } => {
                let l = ui.label("width %");
                ui.add(egui::DragValue::new(width).range(5..=400))
                    .labelled_by(l.id);
            }
            ModelSpec::EfficientnetB0 { width, depth } => {
                let l = ui.label("width %");
                ui.add(egui::DragValue::new(width).range(5..=400))
                    .labelled_by(l.id);
                let l = ui.label("depth %");
                ui.add(egui::DragValue::new(depth).range(5..=400))
                    .labelled_by(l.id);
            }
            ModelSpec::Vit {
                patch,
                dim,
                depth,
                heads,
            } => {
                for (label, v, max) in [
                    ("patch", patch, 64),
                    ("width", dim, 4096),
                    ("blocks", depth, 64),
                    ("heads", heads, 64),
                ] {
                    let l = ui.label(label);
                    ui.add(egui::DragValue::new(v).range(1..=max))
                        .labelled_by(l.id);
                }
            }
            ModelSpec::Lenet5 => {}
        }
        if ui
            .button("Open model…")
            .on_hover_text("start from a trained model (Shears, PyTorch or ONNX) instead")
            .clicked()
        {
            actions.push(Action::dialog(
                DialogPurpose::Open(FileKind::Checkpoint),
                String::new(),
            ));
        }
    });
    preprocessing(ui, &mut cfg.import);
}

/// The preprocessing of a model trained here, stored with the model and in
/// its exports: the normalisation, fitted on the training data (both fields
/// empty) or a fixed mean and std per channel, and the shorter side image
/// files are resized to before the centre crop.
fn preprocessing(ui: &mut Ui, import: &mut crate::model::import::ImportOptions) {
    egui::Grid::new("train-norm").num_columns(2).show(ui, |ui| {
        for (label, value, hint) in [
            (
                "Normalisation mean",
                &mut import.mean,
                "empty: fitted on the training data",
            ),
            (
                "Normalisation std",
                &mut import.std,
                "e.g. 0.3081 (one per channel, or one)",
            ),
        ] {
            let l = ui.label(label);
            let mut v = value.clone().unwrap_or_default();
            list_field(ui, FORM, label, &mut v, hint, plain).labelled_by(l.id);
            *value = (!v.is_empty()).then_some(v);
            ui.end_row();
        }
        let label = "Resize shorter side";
        let l = ui.label(label);
        let mut v: Vec<usize> = import.resize.into_iter().collect();
        let hint = "image folders: e.g. 256 before a 224 crop (empty: just cover)";
        list_field(ui, FORM, label, &mut v, hint, plain).labelled_by(l.id);
        import.resize = v.first().copied();
        ui.end_row();
    });
}

fn train_config(ui: &mut Ui, id: &str, tc: &mut TrainConfig) {
    egui::Grid::new(id).num_columns(2).show(ui, |ui| {
        let l = ui.label("Epochs");
        ui.add(egui::DragValue::new(&mut tc.epochs))
            .labelled_by(l.id);
        ui.end_row();
        let l = ui.label("Batch size");
        ui.add(egui::DragValue::new(&mut tc.batch_size))
            .labelled_by(l.id);
        ui.end_row();
        let l = ui.label("Learning rate");
        ui.add(
            egui::DragValue::new(&mut tc.lr)
                .speed(0.001)
                .max_decimals(6),
        )
        .labelled_by(l.id);
        ui.end_row();
        ui.label("Optimiser");
        ui.horizontal(|ui| {
            let sgd = matches!(tc.optimizer, OptimizerSpec::Sgd { .. });
            if ui.selectable_label(sgd, "SGD").clicked() && !sgd {
                tc.optimizer = OptimizerSpec::default();
            }
            if ui.selectable_label(!sgd, "AdamW").clicked() && sgd {
                tc.optimizer = serde_json::from_str(r#"{"kind":"adamw"}"#)
                    .expect("adamw with defaults parses");
            }
            match &mut tc.optimizer {
                OptimizerSpec::Sgd {
                    momentum,
                    nesterov,
                    weight_decay,
                } => {
                    let l = ui.label("momentum");
                    ui.add(egui::DragValue::new(momentum).speed(0.01))
                        .labelled_by(l.id);
                    ui.checkbox(nesterov, "Nesterov");
                    let l = ui.label("weight decay");
                    ui.add(
                        egui::DragValue::new(weight_decay)
                            .speed(1e-4)
                            .max_decimals(6),
                    )
                    .labelled_by(l.id);
                }
                OptimizerSpec::Adamw { weight_decay, .. } => {
                    let l = ui.label("weight decay");
                    ui.add(
                        egui::DragValue::new(weight_decay)
                            .speed(1e-3)
                            .max_decimals(6),
                    )
                    .labelled_by(l.id);
                }
            }
        });
        ui.end_row();
        ui.label("LR schedule");
        ui.horizontal(|ui| {
            let kinds = ["constant", "cosine", "step"];
            let now = match tc.lr_schedule {
                LrSchedule::Constant => 0,
                LrSchedule::Cosine => 1,
                LrSchedule::Step { .. } => 2,
            };
            for (i, k) in kinds.iter().enumerate() {
                if ui.selectable_label(i == now, *k).clicked() && i != now {
                    tc.lr_schedule = match i {
                        0 => LrSchedule::Constant,
                        1 => LrSchedule::Cosine,
                        _ => LrSchedule::Step {
                            every: 10,
                            gamma: 0.1,
                        },
                    };
                }
            }
            if let LrSchedule::Step { every, gamma } = &mut tc.lr_schedule {
                let l = ui.label("every");
                ui.add(egui::DragValue::new(every)).labelled_by(l.id);
                let l = ui.label("gamma");
                ui.add(egui::DragValue::new(gamma).speed(0.01))
                    .labelled_by(l.id);
            }
        });
        ui.end_row();
    });
}

/// What a PyTorch state dict or an ONNX file cannot tell: the
/// normalisation the model was trained with and the resize before its
/// centre crop, and only where the file leaves them open an nn.Sequential's
/// layers and a ViT's attention heads; **Apply** opens the model again.
fn import_form(ui: &mut Ui, c: &mut CheckpointInfo, actions: &mut Vec<Action>) {
    let state_dict = c.format == Some(ModelFormat::StateDict);
    ui.group(|ui| {
        ui.strong(if state_dict {
            "PyTorch state dict: what the file cannot tell"
        } else {
            "ONNX model: what the file cannot tell"
        });
        // An ONNX graph has its layers, a recognised state dict its family.
        if c.asks.layers {
            let l = ui.label("Layers (an nn.Sequential only; one per module index)");
            ui.add(
                egui::TextEdit::multiline(&mut c.form.layers)
                    .desired_rows(2)
                    .desired_width(f32::INFINITY)
                    .hint_text("e.g. conv(p=1), bn, relu, maxpool(2), flatten, linear"),
            )
            .labelled_by(l.id);
        }
        egui::Grid::new("import-norm")
            .num_columns(2)
            .show(ui, |ui| {
                for (label, text, hint) in [
                    (
                        "Normalisation mean",
                        &mut c.form.mean,
                        "e.g. 0.1307 (empty: fitted on the training data)",
                    ),
                    ("Normalisation std", &mut c.form.std, "e.g. 0.3081"),
                    (
                        "Resize shorter side",
                        &mut c.form.resize,
                        "image folders: e.g. 256 for a 224x224 model (empty: just cover)",
                    ),
                    (
                        "Attention heads",
                        &mut c.form.heads,
                        "a ViT state dict (empty: width / 64)",
                    ),
                ] {
                    // Heads: only a ViT state dict's names cannot tell them.
                    if label == "Attention heads" && !c.asks.heads {
                        continue;
                    }
                    let l = ui.label(label);
                    ui.add(egui::TextEdit::singleline(text).hint_text(hint))
                        .labelled_by(l.id);
                    ui.end_row();
                }
            });
        if let Some(p) = &c.problem {
            ui.colored_label(egui::Color32::from_rgb(200, 60, 60), p);
        }
        if ui.button("Apply").clicked() {
            actions.push(Action::ApplyImport);
        }
    });
}
