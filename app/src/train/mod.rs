//! Training and evaluation: optimisers that hold masks, LR schedules, the
//! epoch loop and accuracy/loss evaluation.

pub mod early_stop;
pub mod lr;
pub mod optim;

use std::sync::atomic::{AtomicBool, Ordering};

use candle_core::{Device, Tensor};
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use crate::data::{epoch_order, make_batch, Dataset};
use crate::error::{Error, Result};
use crate::model::Network;
pub use early_stop::{EarlyStopping, FinetunePolicy, StopMetric, Stopper};
pub use lr::LrSchedule;
pub use optim::{Optimizer, OptimizerSpec};

/// Samples per batch unless a config says otherwise.
pub const DEFAULT_BATCH_SIZE: usize = 128;

/// Settings of one training phase (base training or fine-tuning).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// Epochs (for fine-tuning: the default when a schedule does not say).
    pub epochs: u32,
    /// Samples per batch.
    pub batch_size: usize,
    /// Base learning rate.
    pub lr: f64,
    /// Optimiser and its hyper-parameters.
    pub optimizer: OptimizerSpec,
    /// Learning-rate schedule over the phase.
    pub lr_schedule: LrSchedule,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            epochs: 5,
            batch_size: DEFAULT_BATCH_SIZE,
            lr: 0.05,
            optimizer: OptimizerSpec::default(),
            lr_schedule: LrSchedule::Cosine,
        }
    }
}

impl TrainConfig {
    /// Checks values; errors name `field.key`.
    pub fn validate(&self, field: &str) -> Result<()> {
        if self.batch_size == 0 {
            return Err(Error::config(
                format!("{field}.batch_size"),
                "must be at least 1",
            ));
        }
        if !(self.lr > 0.0 && self.lr < 10.0) {
            return Err(Error::config(
                format!("{field}.lr"),
                format!("{} is out of range (0, 10)", self.lr),
            ));
        }
        if let LrSchedule::Step { every, gamma } = self.lr_schedule {
            if every == 0 || !(gamma > 0.0 && gamma <= 1.0) {
                return Err(Error::config(
                    format!("{field}.lr_schedule"),
                    "step needs every >= 1 and 0 < gamma <= 1",
                ));
            }
        }
        self.optimizer.validate(&format!("{field}.optimizer"))
    }
}

/// Loss and accuracy on a dataset.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub struct Metrics {
    /// Mean cross-entropy.
    pub loss: f32,
    /// Fraction of correct top-1 predictions.
    pub acc: f32,
}

/// Which batches an epoch trains on: the sample order
/// `epoch_order(len, seed, epoch)` cut into batches of `batch_size`, so every
/// strategy that trains with the same `(seed, epoch)` sees the same batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochData {
    /// Samples per batch.
    pub batch_size: usize,
    /// Seed of the data order (and of the augmentation).
    pub seed: u64,
    /// Epoch number in the data order.
    pub epoch: u32,
}

/// Trains `net` for one epoch over `data` with learning rate `lr`, in the
/// batches `order` gives.
///
/// Checks `cancel` after every batch and tells `on_batch` `(batches done,
/// batches in the epoch)`. A non-finite loss stops training with
/// [`Error::NonFinite`] naming the epoch and batch.
pub fn train_epoch(
    net: &mut Network,
    opt: &mut Optimizer,
    data: &Dataset,
    order: EpochData,
    lr: f64,
    cancel: &AtomicBool,
    on_batch: &mut dyn FnMut(usize, usize),
) -> Result<Metrics> {
    let EpochData {
        batch_size,
        seed,
        epoch,
    } = order;
    let device = net.device().clone();
    let order = epoch_order(data.len(), seed, epoch as usize);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ (u64::from(epoch) << 32) ^ 0x5eed);
    let (mut loss_sum, mut correct, mut seen) = (0f64, 0usize, 0usize);
    let batches = order.len().div_ceil(batch_size.max(1));
    for (b, idx) in order.chunks(batch_size).enumerate() {
        if cancel.load(Ordering::Relaxed) {
            return Err(Error::Cancelled);
        }
        if idx.len() == 1 && b > 0 {
            // A last batch of one sample gives BatchNorm no statistics: skip it
            // (the next epoch's order puts that sample elsewhere).
            continue;
        }
        let _shared = crate::model::latency::sharing_the_machine();
        let (x, y) = make_batch(data, idx, Some(&mut rng), &device)?;
        let (logits, l) = train_step(net, opt, &x, &y, lr).map_err(|e| match e {
            Error::NonFinite(what) => Error::NonFinite(format!(
                "{what} at epoch {}, batch {} (lower the learning rate?)",
                epoch + 1,
                b + 1
            )),
            e => e,
        })?;
        loss_sum += f64::from(l) * idx.len() as f64;
        correct += count_correct(&logits, &y)?;
        seen += idx.len();
        on_batch(b + 1, batches);
    }
    Ok(Metrics {
        loss: (loss_sum / seen.max(1) as f64) as f32,
        acc: correct as f32 / seen.max(1) as f32,
    })
}

/// The training loss: mean cross-entropy of `logits [b, classes]` against
/// class indices `labels [b]`.
pub fn loss(logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
    Ok(candle_nn::loss::cross_entropy(logits, labels)?)
}

/// One optimisation step on the batch `(x, labels)`: a training-mode forward
/// pass (BatchNorm updates its running statistics), the loss, its gradients
/// and `opt`'s update with learning rate `lr`. Returns the logits and the
/// loss; a non-finite loss is an [`Error::NonFinite`] and leaves the
/// parameters untouched.
pub fn train_step(
    net: &mut Network,
    opt: &mut Optimizer,
    x: &Tensor,
    labels: &Tensor,
    lr: f64,
) -> Result<(Tensor, f32)> {
    let finite = |l: f32| {
        if l.is_finite() {
            Ok(())
        } else {
            Err(Error::NonFinite(format!("loss is {l}")))
        }
    };
    if let Some(pass) = net.train_pass(x, labels)? {
        finite(pass.loss)?;
        opt.step_named(net, &pass.grads, lr)?;
        return Ok((pass.logits, pass.loss));
    }
    let logits = net.forward(x, true)?;
    let loss = loss(&logits, labels)?;
    let l = loss.to_dtype(candle_core::DType::F32)?.to_scalar::<f32>()?;
    finite(l)?;
    opt.step(net, &loss.backward()?, lr)?;
    Ok((logits, l))
}

fn count_correct(logits: &Tensor, y: &Tensor) -> Result<usize> {
    let pred = logits.argmax(1)?;
    Ok(pred
        .eq(y)?
        .to_dtype(candle_core::DType::F32)?
        .sum_all()?
        .to_scalar::<f32>()? as usize)
}

/// Loss and accuracy of `net` (evaluation mode) on `data`.
pub fn evaluate(net: &mut Network, data: &Dataset, batch_size: usize) -> Result<Metrics> {
    let device = net.device().clone();
    let idx: Vec<usize> = (0..data.len()).collect();
    let (mut loss_sum, mut correct) = (0f64, 0usize);
    for chunk in idx.chunks(batch_size.max(1)) {
        let _shared = crate::model::latency::sharing_the_machine();
        let (x, y) = make_batch(data, chunk, None, &device)?;
        let logits = net.forward(&x, false)?;
        let loss = loss(&logits, &y)?.to_scalar::<f32>()?;
        loss_sum += f64::from(loss) * chunk.len() as f64;
        correct += count_correct(&logits, &y)?;
    }
    let n = data.len().max(1) as f64;
    Ok(Metrics {
        loss: (loss_sum / n) as f32,
        acc: (correct as f64 / n) as f32,
    })
}

/// Sum of gradients of the training loss over the first `batches` batches of
/// `data` (fixed order), per parameter name. Used by gradient criteria.
pub fn accumulate_gradients(
    net: &mut Network,
    data: &Dataset,
    batch_size: usize,
    batches: usize,
) -> Result<std::collections::BTreeMap<String, Vec<f32>>> {
    let device = net.device().clone();
    let mut acc: std::collections::BTreeMap<String, Vec<f32>> = Default::default();
    let idx: Vec<usize> = (0..data.len()).collect();
    for chunk in idx.chunks(batch_size.max(1)).take(batches.max(1)) {
        let (x, y) = make_batch(data, chunk, None, &device)?;
        // Evaluation mode (running BatchNorm statistics), differentiated by
        // Candle's autograd: the network's own backward pass is training's.
        let loss = loss(&net.forward_with_autograd(&x, false)?, &y)?;
        let grads = loss.backward()?;
        for (name, var) in &net.params {
            if let Some(g) = grads.get(var.as_tensor()) {
                let g = g.flatten_all()?.to_vec1::<f32>()?;
                let e = acc
                    .entry(name.clone())
                    .or_insert_with(|| vec![0.0; g.len()]);
                for (a, b) in e.iter_mut().zip(g) {
                    *a += b;
                }
            }
        }
    }
    Ok(acc)
}

/// Activation statistics of every prunable layer over the first `batches`
/// batches of `data` (evaluation mode). Used by activation-aware criteria.
pub fn collect_activations(
    net: &mut Network,
    data: &Dataset,
    batch_size: usize,
    batches: usize,
) -> Result<crate::model::ActivationStats> {
    let device: Device = net.device().clone();
    let mut stats = crate::model::ActivationStats::default();
    let idx: Vec<usize> = (0..data.len()).collect();
    for chunk in idx.chunks(batch_size.max(1)).take(batches.max(1)) {
        let (x, _) = make_batch(data, chunk, None, &device)?;
        net.forward_recording(&x, &mut stats)?;
    }
    Ok(stats)
}

/// What [`fit`] reports after each epoch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EpochReport {
    /// 1-based epoch within the phase.
    pub epoch: u32,
    /// Epoch limit of the phase.
    pub of: u32,
    /// Training metrics of the epoch.
    pub train: Metrics,
    /// Validation metrics after it.
    pub val: Metrics,
    /// Learning rate used.
    pub lr: f64,
}

/// Where [`fit_reporting`] is inside an epoch: after `batch` of `batches`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchReport {
    /// 1-based epoch within the phase.
    pub epoch: u32,
    /// Epoch limit of the phase.
    pub of: u32,
    /// Batches done in this epoch.
    pub batch: usize,
    /// Batches in the epoch.
    pub batches: usize,
}

/// One training phase: how long, with which settings, on which data order.
#[derive(Debug, Clone, Copy)]
pub struct TrainPhase<'a> {
    /// Optimiser (fresh state for the phase), batch size, learning rate and
    /// its schedule.
    pub tc: &'a TrainConfig,
    /// Epoch limit.
    pub max_epochs: u32,
    /// Early stopping, and the validation metrics of the model before the
    /// phase (the best to beat); `None` runs every epoch.
    pub stop: Option<(EarlyStopping, Metrics)>,
    /// Seed of the data order.
    pub seed: u64,
    /// Epoch `e` of the phase uses the data order of epoch `first_epoch + e`.
    pub first_epoch: u32,
}

/// What one [`fit`] did.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FitOutcome {
    /// Validation metrics after every epoch run.
    pub history: Vec<Metrics>,
    /// With early stopping that restores: the epoch (1-based) whose weights
    /// the network holds at the end, 0 for the weights before the phase.
    /// `None`: the last epoch's.
    pub kept_epoch: Option<u32>,
}

/// Trains `net` through `phase` on `train`, evaluating on `val` after each
/// epoch and reporting it to `on_epoch`. With early stopping the phase ends
/// after `patience` epochs without beating the best so far (which starts at
/// the model before the phase), and with `restore_best` the best weights are
/// put back (masks held).
pub fn fit(
    net: &mut Network,
    phase: &TrainPhase<'_>,
    train: &Dataset,
    val: &Dataset,
    cancel: &AtomicBool,
    on_epoch: &mut dyn FnMut(EpochReport),
) -> Result<FitOutcome> {
    fit_reporting(net, phase, (train, val), cancel, on_epoch, &mut |_| {})
}

/// [`fit`] that also tells `on_batch` after every training batch (for
/// progress displays; it is called often, keep it cheap).
pub fn fit_reporting(
    net: &mut Network,
    phase: &TrainPhase<'_>,
    (train, val): (&Dataset, &Dataset),
    cancel: &AtomicBool,
    on_epoch: &mut dyn FnMut(EpochReport),
    on_batch: &mut dyn FnMut(BatchReport),
) -> Result<FitOutcome> {
    let tc = phase.tc;
    let mut opt = Optimizer::new(tc.optimizer.clone());
    let mut history: Vec<Metrics> = Vec::new();
    let mut stopper = phase.stop.map(|(rule, start)| Stopper::new(rule, &start));
    let mut best = match &stopper {
        Some(s) if s.restores() => Some(net.snapshot()?),
        _ => None,
    };
    for e in 0..phase.max_epochs {
        let lr = tc.lr_schedule.lr(tc.lr, e, phase.max_epochs);
        let order = EpochData {
            batch_size: tc.batch_size,
            seed: phase.seed,
            epoch: phase.first_epoch + e,
        };
        let mut batch_done = |batch, batches| {
            on_batch(BatchReport {
                epoch: e + 1,
                of: phase.max_epochs,
                batch,
                batches,
            })
        };
        let t = train_epoch(net, &mut opt, train, order, lr, cancel, &mut batch_done)?;
        let v = evaluate(net, val, tc.batch_size)?;
        history.push(v);
        on_epoch(EpochReport {
            epoch: e + 1,
            of: phase.max_epochs,
            train: t,
            val: v,
            lr,
        });
        if let Some(s) = &mut stopper {
            if s.observe(e + 1, &v) && best.is_some() {
                best = Some(net.snapshot()?);
            }
            if s.should_stop() {
                break;
            }
        }
    }
    let kept_epoch = stopper.as_ref().and_then(Stopper::kept_epoch);
    if let (Some(snapshot), Some(k)) = (&best, kept_epoch) {
        if k as usize != history.len() {
            net.restore(snapshot)?;
        }
    }
    Ok(FitOutcome {
        history,
        kept_epoch,
    })
}

#[cfg(test)]
mod fit_tests {
    use super::*;
    use crate::data::{embedded_glyphs, prepare};
    use crate::model::ModelSpec;

    fn setup() -> (Network, crate::data::DataSplits) {
        let (train, test) = embedded_glyphs(600, 100, 0);
        let data = prepare(train, test, 0.2, 0).unwrap();
        let arch = ModelSpec::Mlp { hidden: vec![32] }
            .build([1, 28, 28], 10)
            .unwrap();
        (Network::new(arch, 0, &Device::Cpu).unwrap(), data)
    }

    fn flat(net: &Network) -> Vec<f32> {
        net.params
            .values()
            .flat_map(|v| {
                v.as_tensor()
                    .flatten_all()
                    .unwrap()
                    .to_vec1::<f32>()
                    .unwrap()
            })
            .collect()
    }

    fn run(
        net: &mut Network,
        data: &crate::data::DataSplits,
        lr: f64,
        rule: EarlyStopping,
    ) -> FitOutcome {
        let tc = TrainConfig {
            lr,
            batch_size: 64,
            lr_schedule: LrSchedule::Constant,
            ..TrainConfig::default()
        };
        let start = evaluate(net, &data.val, 64).unwrap();
        let phase = TrainPhase {
            tc: &tc,
            max_epochs: rule.max_epochs,
            stop: Some((rule, start)),
            seed: 0,
            first_epoch: 0,
        };
        fit(
            net,
            &phase,
            &data.train,
            &data.val,
            &AtomicBool::new(false),
            &mut |_| {},
        )
        .unwrap()
    }

    /// A learning rate of 9 wrecks the trained model at once: no epoch beats
    /// the model before the phase, so the phase stops after `patience`
    /// epochs and puts back exactly the weights it started with.
    #[test]
    fn patience_restores_the_pruned_model_when_nothing_beats_it() {
        let (mut net, data) = setup();
        let ok = EarlyStopping {
            patience: 1,
            max_epochs: 3,
            restore_best: false,
            ..EarlyStopping::default()
        };
        run(&mut net, &data, 0.05, ok);
        let before = flat(&net);
        let start = evaluate(&mut net, &data.val, 64).unwrap();
        let rule = EarlyStopping {
            patience: 2,
            max_epochs: 10,
            ..EarlyStopping::default()
        };
        let out = run(&mut net, &data, 9.0, rule);
        assert_eq!(out.history.len(), 2, "{:?}", out.history);
        assert!(out.history.iter().all(|m| m.acc <= start.acc));
        assert_eq!(out.kept_epoch, Some(0));
        assert_eq!(flat(&net), before, "the weights before the phase are back");
    }

    /// With a sound learning rate the phase keeps the best epoch: it stops
    /// `patience` epochs after it (or at the limit), and the network ends
    /// with that epoch's weights (its validation metrics are the best ones).
    #[test]
    fn patience_keeps_the_best_epoch() {
        let (mut net, data) = setup();
        let start = evaluate(&mut net, &data.val, 64).unwrap();
        let rule = EarlyStopping {
            patience: 2,
            max_epochs: 12,
            ..EarlyStopping::default()
        };
        let out = run(&mut net, &data, 0.3, rule);
        let h = &out.history;
        let (mut best, mut best_epoch) = (start.acc, 0usize);
        for (i, m) in h.iter().enumerate() {
            if m.acc > best {
                best = m.acc;
                best_epoch = i + 1;
            }
        }
        assert!(
            best_epoch > 0,
            "training improved on the random model: {h:?}"
        );
        assert_eq!(out.kept_epoch, Some(best_epoch as u32));
        assert!(h.len() == 12 || h.len() == best_epoch + 2, "{h:?}");
        assert_eq!(
            evaluate(&mut net, &data.val, 64).unwrap(),
            h[best_epoch - 1]
        );
        // Without restore_best the last epoch's weights stay.
        let (mut net, _) = setup();
        let keep_last = EarlyStopping {
            restore_best: false,
            ..rule
        };
        let out = run(&mut net, &data, 0.3, keep_last);
        assert_eq!(out.kept_epoch, None);
        assert_eq!(
            evaluate(&mut net, &data.val, 64).unwrap(),
            *out.history.last().unwrap()
        );
    }
}
