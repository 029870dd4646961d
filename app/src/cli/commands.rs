//! `shears train`, `prune`, `eval` and `inspect`.

use std::path::Path;
use std::sync::atomic::AtomicBool;

use candle_core::Device;

use super::{DataArgs, EvalArgs, ExportDataArgs, ImportArgs, PruneArgs, TrainArgs};
use crate::data::{
    prepare, prepare_normalised, DataSplits, Dataset, DatasetSpec, InputPrep, Preprocess,
};
use crate::error::{Error, Result};
use crate::experiment::runner::check_fits;
use crate::model::checkpoint;
use crate::model::export::{self, ExportFormat};
use crate::model::import::{ModelFormat, Opened};
use crate::model::{ModelSpec, Network};
use crate::plugins::Registry;
use crate::prune::{
    compact, criterion_inputs, prune_to, sparsity, Calibration, CalibrationSpec, GranularityChoice,
    PruneMode, Scope,
};
use crate::train::{evaluate, fit, EpochReport, OptimizerSpec, TrainConfig, TrainPhase};

/// `--format`: shears, safetensors (a PyTorch state dict), pth or onnx.
fn parse_format(f: &str) -> Result<ExportFormat> {
    match f {
        "shears" => Ok(ExportFormat::Shears),
        "safetensors" | "state-dict" => Ok(ExportFormat::Safetensors),
        "pth" | "pt" => Ok(ExportFormat::Pth),
        "onnx" => Ok(ExportFormat::Onnx),
        f => Err(Error::config(
            "--format",
            format!("`{f}` (use shears, safetensors, pth or onnx)"),
        )),
    }
}

/// `--granularity`: unstructured or structured.
pub(super) fn parse_granularity(g: &str) -> Result<GranularityChoice> {
    match g {
        "unstructured" => Ok(GranularityChoice::Unstructured),
        "structured" => Ok(GranularityChoice::Structured),
        g => Err(Error::config(
            "--granularity",
            format!("`{g}` (use unstructured or structured)"),
        )),
    }
}

pub(super) fn open_device(a: &DataArgs) -> Result<Device> {
    let (d, name) =
        crate::device::open(crate::device::parse(a.device.as_deref().unwrap_or("cpu"))?)?;
    eprintln!("device: {name}");
    Ok(d)
}

pub(super) fn load_splits(a: &DataArgs, seed: u64) -> Result<(DatasetSpec, DataSplits)> {
    let (spec, train, test) = load_raw(a, &InputPrep::default())?;
    Ok((spec, prepare(train, test, 0.1, seed)?))
}

fn load_raw(a: &DataArgs, prep: &InputPrep) -> Result<(DatasetSpec, Dataset, Dataset)> {
    let spec = match &a.data {
        Some(p) => DatasetSpec::detect(p)?,
        None => DatasetSpec::default(),
    };
    let (train, test) = spec.load_for(prep)?;
    Ok((spec, train, test))
}

/// A model opened for `--data` (its inputs' shape from the data), with the
/// data normalised as the model requires.
pub(super) fn open_with_data(
    path: &Path,
    import: &ImportArgs,
    data: &DataArgs,
    device: &Device,
) -> Result<(Opened, DatasetSpec, DataSplits)> {
    let opts = import.options();
    let prep = crate::model::import::input_prep(Some(path), &opts);
    let (spec, train, test) = load_raw(data, &prep)?;
    let input = [train.channels, train.height, train.width];
    let opened =
        crate::model::import::open(path, &opts, input, device).map_err(|e| import.flag_names(e))?;
    print_notes(path, &opened.notes);
    let splits = prepare_normalised(train, test, 0.1, 0, &opened.net.arch.preprocess.norm)?;
    check_fits(&opened.net, &splits, path)?;
    Ok((opened, spec, splits))
}

/// A model opened without data: the input shape from `--input`, else
/// 3x224x224.
fn open_without_data(path: &Path, import: &ImportArgs, device: &Device) -> Result<Opened> {
    // `--input`, else what the file declares (an ONNX graph's input, a
    // checkpoint's), else 3x224x224.
    let prep = crate::model::import::input_prep(Some(path), &import.options());
    let declared = prep.size.zip(prep.channels).map(|([h, w], c)| [c, h, w]);
    let given = import.input_shape()?.or(declared);
    // Without one, 224x224 with the channels of the model's first
    // convolution (a state dict's).
    let input = given.unwrap_or_else(|| [first_conv_channels(path).unwrap_or(3), 224, 224]);
    let opened =
        crate::model::import::open(path, &import.options(), input, device).map_err(|e| {
            let e = import.flag_names(e);
            if given.is_some() {
                e
            } else {
                crate::error::Error::Other(format!(
                "{e} (no --input was given, so a {input:?} input was assumed: give the model's \
                 input as --input CxHxW)"
            ))
            }
        })?;
    print_notes(path, &opened.notes);
    Ok(opened)
}

/// The input channels of the first convolution of the state dict at
/// `path` (by module order), if it is one and has a convolution.
fn first_conv_channels(path: &Path) -> Option<usize> {
    if crate::model::import::sniff(path).ok()? != crate::model::import::ModelFormat::StateDict {
        return None;
    }
    let sd = crate::model::import::StateDict::read(path).ok()?;
    let index = |name: &str| -> Vec<usize> {
        name.split('.')
            .map(|p| p.parse::<usize>().unwrap_or(usize::MAX))
            .collect()
    };
    sd.tensors
        .iter()
        .filter(|(k, t)| k.ends_with(".weight") && t.dims().len() == 4)
        .min_by_key(|(k, _)| index(k))
        .map(|(_, t)| t.dims()[1])
}

fn print_notes(path: &Path, notes: &[String]) {
    for n in notes {
        eprintln!("{}: {n}", path.display());
    }
}

fn print_epoch(r: EpochReport) {
    eprintln!(
        "epoch {}/{}: loss {:.4}, train acc {:.2}%, val acc {:.2}%, lr {:.4}",
        r.epoch,
        r.of,
        r.train.loss,
        r.train.acc * 100.0,
        r.val.acc * 100.0,
        r.lr
    );
}

pub(super) fn train(a: TrainArgs) -> Result<()> {
    let device = open_device(&a.data)?;
    let (spec, data) = load_splits(&a.data, a.seed)?;
    let arch = ModelSpec::from_name(&a.model)?.build(
        [data.train.channels, data.train.height, data.train.width],
        data.train.num_classes,
    )?;
    let optimizer = match a.optimizer.as_str() {
        "sgd" => OptimizerSpec::default(),
        "adamw" => OptimizerSpec::Adamw {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.01,
        },
        o => {
            return Err(Error::config(
                "--optimizer",
                format!("unknown optimiser `{o}` (use sgd or adamw)"),
            ))
        }
    };
    let tc = TrainConfig {
        epochs: a.epochs,
        batch_size: a.batch_size,
        lr: a.lr,
        optimizer,
        ..TrainConfig::default()
    };
    tc.validate("train")?;
    let mut arch = arch;
    arch.preprocess = Preprocess::trained_with(&data.norm, None);
    let mut net = Network::new(arch, a.seed, &device)?;
    let cancel = AtomicBool::new(false);
    let phase = TrainPhase {
        tc: &tc,
        max_epochs: a.epochs,
        stop: None,
        seed: a.seed,
        first_epoch: 0,
    };
    fit(
        &mut net,
        &phase,
        &data.train,
        &data.val,
        &cancel,
        &mut print_epoch,
    )?;
    let test = evaluate(&mut net, &data.test, a.batch_size)?;
    println!(
        "test accuracy {:.2}% (loss {:.4})",
        test.acc * 100.0,
        test.loss
    );
    let info = serde_json::json!({"dataset": spec.to_string(), "epochs": a.epochs, "seed": a.seed, "test_acc": test.acc});
    checkpoint::save(&net, &info, &a.out)?;
    println!("saved {}", a.out.display());
    Ok(())
}

pub(super) fn prune(a: PruneArgs, registry: &Registry) -> Result<()> {
    let device = open_device(&a.data)?;
    let granularity = parse_granularity(&a.granularity)?;
    let scope = match a.scope.as_str() {
        "global" => Scope::Global,
        "layer" => Scope::Layer,
        s => {
            return Err(Error::config(
                "--scope",
                format!("`{s}` (use global or layer)"),
            ))
        }
    };
    let mut criterion = registry.criterion(&a.criterion, &serde_json::json!({}))?;
    let needs = criterion.needs();
    let needs_data = needs.gradient || needs.activations || a.finetune_epochs > 0;
    if needs_data && a.data.data.is_none() {
        return Err(Error::config(
            "--data",
            format!(
                "required to fine-tune or to compute the inputs of `{}` (the model's own training data)",
                a.criterion
            ),
        ));
    }
    let with_data = needs_data || a.data.data.is_some();
    let (opened, data) = if with_data {
        let (opened, _, d) = open_with_data(&a.checkpoint, &a.import, &a.data, &device)?;
        (opened, Some(d))
    } else {
        (open_without_data(&a.checkpoint, &a.import, &device)?, None)
    };
    let format = match a.format.as_deref() {
        Some(f) => parse_format(f)?,
        None => ExportFormat::from_path(&a.out, opened.format != ModelFormat::Shears)?,
    };
    let mut net = opened.net;
    let calibration = match &data {
        Some(d) => {
            let spec = CalibrationSpec {
                batch_size: a.calibration_batch_size.max(1),
                batches: a.calibration_batches.max(1),
            };
            criterion_inputs(&mut net, needs, &d.train, spec)?
        }
        None => Calibration::default(),
    };
    let inputs = calibration.as_inputs();
    let reached = prune_to(
        &mut net,
        criterion.as_mut(),
        &a.criterion,
        PruneMode { granularity, scope },
        a.sparsity,
        inputs,
    )?
    .reached;
    println!("pruned to {:.2}% ({})", reached * 100.0, granularity.name());
    if let Some(d) = &data {
        if a.finetune_epochs > 0 {
            let tc = TrainConfig {
                lr: a.lr,
                ..TrainConfig::default()
            };
            tc.validate("--lr")?;
            let phase = TrainPhase {
                tc: &tc,
                max_epochs: a.finetune_epochs,
                stop: None,
                seed: 0,
                first_epoch: 0,
            };
            fit(
                &mut net,
                &phase,
                &d.train,
                &d.val,
                &AtomicBool::new(false),
                &mut print_epoch,
            )?;
        }
        let test = evaluate(&mut net, &d.test, 256)?;
        println!("test accuracy {:.2}%", test.acc * 100.0);
    }
    if a.compact {
        let before = net.arch.num_params();
        net = compact(&net)?;
        println!(
            "compacted: {before} -> {} parameters",
            net.arch.num_params()
        );
    }
    let info = serde_json::json!({"pruned_from": a.checkpoint.display().to_string(), "criterion": a.criterion, "sparsity": reached});
    export::save(&net, format, &info, &a.out)?;
    println!("saved {} ({})", a.out.display(), format.label());
    Ok(())
}

pub(super) fn export_data(a: &ExportDataArgs) -> Result<()> {
    let (spec, train, test) = load_raw(&a.data, &InputPrep::default())?;
    for file in crate::data::export_npy(&train, &test, &a.out)? {
        println!("wrote {}", file.display());
    }
    println!(
        "{spec}: {} train and {} test images",
        train.len(),
        test.len()
    );
    Ok(())
}

pub(super) fn eval(a: EvalArgs) -> Result<()> {
    let device = open_device(&a.data)?;
    let (opened, spec, data) = open_with_data(&a.checkpoint, &a.import, &a.data, &device)?;
    let mut net = opened.net;
    let test = evaluate(&mut net, &data.test, 256)?;
    println!(
        "{}: test accuracy {:.2}%, loss {:.4} on {} ({} images); sparsity {:.2}%",
        a.checkpoint.display(),
        test.acc * 100.0,
        test.loss,
        spec,
        data.test.len(),
        sparsity(&net)?.global * 100.0
    );
    Ok(())
}

pub(super) fn inspect(path: &Path, import: &ImportArgs) -> Result<()> {
    let opened = open_without_data(path, import, &Device::Cpu)?;
    let info = opened.info;
    let net = opened.net;
    let sp = sparsity(&net)?;
    let a = &net.arch;
    println!("{}", path.display());
    println!(
        "  {}, input {:?}, {} classes, {} parameters, {} MACs/sample",
        opened.name,
        a.input,
        a.num_classes,
        a.num_params(),
        a.macs()
    );
    println!(
        "  sparsity {:.2}% of conv/linear weights, {:.2}% of prunable channels",
        sp.global * 100.0,
        sp.channels * 100.0
    );
    if !info.is_null() {
        println!("  info: {info}");
    }
    println!(
        "  {:<28} {:<7} {:<18} {:>9} {:>12} {:>9}",
        "layer", "kind", "shape", "weights", "MACs", "sparsity"
    );
    for (l, s) in a.layers().iter().zip(&sp.layers) {
        println!(
            "  {:<28} {:<7} {:<18} {:>9} {:>12} {:>8.2}%",
            l.name,
            format!("{:?}", l.kind).to_lowercase(),
            format!("{:?}", l.weight_shape),
            l.weight_len(),
            l.macs,
            s.sparsity() * 100.0
        );
    }
    Ok(())
}
