//! Sensitivity analysis: prune one layer at a time to each sparsity with a
//! criterion, without fine-tuning, and record the test accuracy — which
//! layers tolerate pruning and which do not.

use std::sync::atomic::{AtomicBool, Ordering};

use serde::{Deserialize, Serialize};

use crate::data::DataSplits;
use crate::error::{Error, Result};
use crate::model::Network;
use crate::plugins::Registry;
use crate::prune::{
    channel_groups, criterion_inputs, prune_layer, CalibrationSpec, GranularityChoice,
};
use crate::train::evaluate;

/// File names of a sensitivity analysis in its output folder.
pub const SENSITIVITY_JSON: &str = "sensitivity.json";
/// CSV twin of [`SENSITIVITY_JSON`].
pub const SENSITIVITY_CSV: &str = "sensitivity.csv";

/// What to analyse.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SensitivitySpec {
    /// Sparsities each layer is pruned to, each in `[0, 1)`.
    pub sparsities: Vec<f32>,
    /// Criterion plugin.
    pub criterion: String,
    /// Its parameters.
    pub criterion_params: serde_json::Value,
    /// Weights or channels.
    pub granularity: GranularityChoice,
    /// Batch size of evaluation and calibration.
    pub batch_size: usize,
    /// Training batches the criterion's inputs are computed on.
    pub calibration_batches: usize,
}

impl Default for SensitivitySpec {
    fn default() -> Self {
        Self {
            sparsities: (1..=9).map(|i| i as f32 / 10.0).collect(),
            criterion: "magnitude".into(),
            criterion_params: serde_json::json!({}),
            granularity: GranularityChoice::Unstructured,
            batch_size: crate::train::DEFAULT_BATCH_SIZE,
            calibration_batches: crate::prune::DEFAULT_CALIBRATION_BATCHES,
        }
    }
}

/// One layer's curve.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerSensitivity {
    /// Layer name.
    pub layer: String,
    /// Its weights.
    pub weights: usize,
    /// Test accuracy with only this layer pruned to each of the spec's
    /// sparsities, in order.
    pub test_acc: Vec<f32>,
}

/// What a sensitivity analysis found (DIR/sensitivity.json).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SensitivityResults {
    /// Format version.
    pub version: u32,
    /// What was analysed.
    pub spec: SensitivitySpec,
    /// Dataset name.
    pub dataset: String,
    /// Model family.
    pub model: String,
    /// Test accuracy of the unpruned model.
    pub dense_acc: f32,
    /// One curve per prunable layer (per channel group for structured
    /// pruning), in network order.
    pub layers: Vec<LayerSensitivity>,
}

/// Runs the analysis on a copy of `base` for every layer and sparsity;
/// `on_progress(done, total)` after each evaluation. Stops with
/// [`Error::Cancelled`] when `cancel` is set.
pub fn run_sensitivity(
    base: &Network,
    data: &DataSplits,
    spec: &SensitivitySpec,
    registry: &Registry,
    cancel: &AtomicBool,
    on_progress: &mut dyn FnMut(usize, usize),
) -> Result<SensitivityResults> {
    if spec.sparsities.is_empty() {
        return Err(Error::config("sparsities", "give at least one sparsity"));
    }
    if let Some(s) = spec.sparsities.iter().find(|s| !(0.0..1.0).contains(*s)) {
        return Err(Error::config(
            "sparsities",
            format!("{s} is outside [0, 1)"),
        ));
    }
    let label = registry.label(shears_plugin_api::PluginKind::Criterion, &spec.criterion);
    let mut criterion = registry.criterion(&spec.criterion, &spec.criterion_params)?;
    let mut dense = base.try_clone()?;
    let dense_acc = evaluate(&mut dense, &data.test, spec.batch_size)?.acc;
    let calibration = CalibrationSpec {
        batch_size: spec.batch_size,
        batches: spec.calibration_batches,
    };
    let inputs = criterion_inputs(&mut dense, criterion.needs(), &data.train, calibration)?;
    let layers: Vec<(String, usize)> = match spec.granularity {
        GranularityChoice::Unstructured => base
            .arch
            .layers()
            .into_iter()
            .map(|l| (l.name.clone(), l.weight_len()))
            .collect(),
        GranularityChoice::Structured => {
            let sizes: std::collections::BTreeMap<String, usize> = base
                .arch
                .layers()
                .into_iter()
                .map(|l| (l.name.clone(), l.weight_len()))
                .collect();
            channel_groups(&base.arch)
                .into_iter()
                .map(|g| {
                    let n = sizes.get(&g.producer).copied().unwrap_or(0);
                    (g.producer, n)
                })
                .collect()
        }
    };
    let total = layers.len() * spec.sparsities.len();
    let mut done = 0;
    let mut out = Vec::with_capacity(layers.len());
    for (layer, weights) in layers {
        let mut test_acc = Vec::with_capacity(spec.sparsities.len());
        for &s in &spec.sparsities {
            if cancel.load(Ordering::Relaxed) {
                return Err(Error::Cancelled);
            }
            let mut net = base.try_clone()?;
            prune_layer(
                &mut net,
                criterion.as_mut(),
                &label,
                spec.granularity,
                &layer,
                s,
                inputs.as_inputs(),
            )?;
            test_acc.push(evaluate(&mut net, &data.test, spec.batch_size)?.acc);
            done += 1;
            on_progress(done, total);
        }
        out.push(LayerSensitivity {
            layer,
            weights,
            test_acc,
        });
    }
    Ok(SensitivityResults {
        version: 1,
        spec: spec.clone(),
        dataset: data.train.name.clone(),
        model: base.arch.family.name().to_string(),
        dense_acc,
        layers: out,
    })
}

/// One row per layer and sparsity: `layer,weights,sparsity,test_acc`.
pub fn to_csv(r: &SensitivityResults) -> String {
    let mut out = String::from("layer,weights,sparsity,test_acc\n");
    for l in &r.layers {
        for (s, a) in r.spec.sparsities.iter().zip(&l.test_acc) {
            out.push_str(&format!("{},{},{s},{a:.6}\n", l.layer, l.weights));
        }
    }
    out
}

/// A terminal table: one row per layer, one column per sparsity (%).
pub fn table(r: &SensitivityResults) -> String {
    let w = r
        .layers
        .iter()
        .map(|l| l.layer.len())
        .max()
        .unwrap_or(5)
        .max(12);
    let mut out = format!("{:<w$} {:>9}", "layer", "weights");
    for s in &r.spec.sparsities {
        out.push_str(&format!(" {:>6}", format!("{:.0}%", s * 100.0)));
    }
    out.push_str(&format!(
        "\n(dense test accuracy {:.2}%)\n",
        r.dense_acc * 100.0
    ));
    for l in &r.layers {
        out.push_str(&format!("{:<w$} {:>9}", l.layer, l.weights));
        for a in &l.test_acc {
            out.push_str(&format!(" {:>6.2}", a * 100.0));
        }
        out.push('\n');
    }
    out
}

/// Writes [`SENSITIVITY_JSON`] and [`SENSITIVITY_CSV`] into `dir`.
pub fn save(dir: &std::path::Path, r: &SensitivityResults) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let json = serde_json::to_vec_pretty(r)?;
    crate::fsutil::write_atomic(&dir.join(SENSITIVITY_JSON), &json)?;
    crate::fsutil::write_atomic(&dir.join(SENSITIVITY_CSV), to_csv(r).as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{embedded_glyphs, prepare};
    use crate::model::ModelSpec;
    use crate::train::{fit, TrainConfig, TrainPhase};

    #[test]
    fn one_layer_at_a_time_without_fine_tuning() {
        let (train, test) = embedded_glyphs(800, 200, 0);
        let data = prepare(train, test, 0.1, 0).unwrap();
        let arch = ModelSpec::Mlp { hidden: vec![32] }
            .build([1, 28, 28], 10)
            .unwrap();
        let mut net = Network::new(arch, 0, &candle_core::Device::Cpu).unwrap();
        let tc = TrainConfig {
            epochs: 3,
            lr: 0.1,
            ..TrainConfig::default()
        };
        let phase = TrainPhase {
            tc: &tc,
            max_epochs: 3,
            stop: None,
            seed: 0,
            first_epoch: 0,
        };
        fit(
            &mut net,
            &phase,
            &data.train,
            &data.val,
            &AtomicBool::new(false),
            &mut |_| {},
        )
        .unwrap();
        let spec = SensitivitySpec {
            sparsities: vec![0.0, 0.5, 0.99],
            ..SensitivitySpec::default()
        };
        let mut calls = 0;
        let r = run_sensitivity(
            &net,
            &data,
            &spec,
            &Registry::builtin(),
            &AtomicBool::new(false),
            &mut |d, t| {
                calls += 1;
                assert!(d <= t);
            },
        )
        .unwrap();
        assert_eq!(calls, 2 * 3);
        assert_eq!(r.layers.len(), 2);
        assert_eq!(r.layers[0].weights, 784 * 32);
        for l in &r.layers {
            // Sparsity 0 is the dense model; the base itself is untouched.
            assert_eq!(l.test_acc[0], r.dense_acc);
            assert!(l.test_acc[2] < r.dense_acc, "{l:?}");
        }
        let csv = to_csv(&r);
        assert_eq!(csv.lines().count(), 1 + 2 * 3);
        let back: SensitivityResults =
            serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
        assert_eq!(back, r);
        // Structured: one curve per channel group (the hidden layer).
        let spec = SensitivitySpec {
            granularity: GranularityChoice::Structured,
            criterion: "channel-norm".into(),
            sparsities: vec![0.5],
            ..SensitivitySpec::default()
        };
        let quiet = |cancel: bool| {
            let stop = AtomicBool::new(cancel);
            run_sensitivity(
                &net,
                &data,
                &spec,
                &Registry::builtin(),
                &stop,
                &mut |_, _| {},
            )
        };
        assert_eq!(quiet(false).unwrap().layers.len(), 1);
        let e = quiet(true);
        assert!(matches!(e, Err(Error::Cancelled)));
    }
}
