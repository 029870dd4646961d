//! A runnable network: an [`Architecture`] (and the [`Graph`] it compiles
//! to) plus its parameters, BatchNorm buffers and pruning masks. On the CPU
//! in `f32` the graph interpreter runs it ([`backprop`]); elsewhere Candle's
//! operations and autograd do.

use std::collections::BTreeMap;

use candle_core::{DType, Device, Tensor, Var, D};
use rand::{Rng, SeedableRng};

use super::arch::compile;
use super::arch::Architecture;
use super::backprop::{self, TrainPass};
use super::graph::{candle, Graph, Role};
use crate::error::{Error, Result};

/// Per-input-channel sums of squared activations, gathered during a forward
/// pass for activation-aware criteria (Wanda). Keyed by layer name.
#[derive(Debug, Default, Clone)]
pub struct ActivationStats {
    /// Layer name -> sum over samples (and positions) of `x_j^2`, per input j.
    pub sum_sq: BTreeMap<String, Vec<f32>>,
}

impl ActivationStats {
    /// L2 norm per input channel of `layer` (`sqrt` of the sums).
    pub fn norms(&self, layer: &str) -> Option<Vec<f32>> {
        self.sum_sq
            .get(layer)
            .map(|v| v.iter().map(|s| s.sqrt()).collect())
    }

    fn add(&mut self, layer: &str, x: &Tensor) -> Result<()> {
        let sq = x.sqr()?;
        // Per input channel: axis 1 of a map, the last axis of features
        // or tokens.
        let per_channel = match sq.rank() {
            4 => sq.sum((0, 2, 3))?,
            _ => sq.flatten_to(sq.rank() - 2)?.sum(0)?,
        };
        let v = per_channel.to_vec1::<f32>()?;
        let e = self
            .sum_sq
            .entry(layer.to_string())
            .or_insert_with(|| vec![0.0; v.len()]);
        for (a, b) in e.iter_mut().zip(v) {
            *a += b;
        }
        Ok(())
    }
}

/// Parameters and buffers of a [`Network`] at one moment (see
/// [`Network::snapshot`]).
#[derive(Debug, Clone)]
pub struct Snapshot {
    params: BTreeMap<String, Tensor>,
    buffers: BTreeMap<String, Tensor>,
}

/// A network ready to train or evaluate.
#[derive(Debug)]
pub struct Network {
    /// The architecture this network was built from.
    pub arch: Architecture,
    /// The architecture as a graph of operations (what the CPU passes run).
    graph: Graph,
    /// Trainable parameters by name (`conv1.weight`, `bn1.bias`, ...).
    pub params: BTreeMap<String, Var>,
    /// Non-trainable buffers (BatchNorm running statistics).
    pub buffers: BTreeMap<String, Tensor>,
    /// Pruning masks by parameter name (1 kept, 0 pruned). A parameter with no
    /// entry is dense.
    pub masks: BTreeMap<String, Tensor>,
    device: Device,
    /// Draws dropout masks (seeded, so a training run repeats exactly).
    dropout_rng: rand::rngs::StdRng,
}

impl Network {
    /// Builds a freshly initialised network (He-uniform weights, zero biases,
    /// unit BatchNorm scale), deterministic for a given `seed`.
    pub fn new(arch: Architecture, seed: u64, device: &Device) -> Result<Self> {
        arch.check()?;
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut params = BTreeMap::new();
        let mut buffers = BTreeMap::new();
        for (name, shape, role) in arch.tensor_specs() {
            let t = Tensor::from_vec(initial(&name, &shape, role, &mut rng), shape, device)?;
            if role.trainable() {
                params.insert(name, Var::from_tensor(&t)?);
            } else {
                buffers.insert(name, t);
            }
        }
        Ok(Self {
            graph: compile::compile(&arch)?,
            arch,
            params,
            buffers,
            masks: BTreeMap::new(),
            device: device.clone(),
            dropout_rng: rand::rngs::StdRng::seed_from_u64(seed),
        })
    }

    /// Builds a network from named tensors (e.g. a checkpoint). Every tensor the
    /// architecture needs must be present with the right shape; masks are taken
    /// from `masks` when given.
    pub fn from_tensors(
        arch: Architecture,
        mut tensors: BTreeMap<String, Tensor>,
        masks: BTreeMap<String, Tensor>,
        device: &Device,
    ) -> Result<Self> {
        arch.check()?;
        let mut params = BTreeMap::new();
        let mut buffers = BTreeMap::new();
        for (name, shape, role) in arch.tensor_specs() {
            let t = tensors
                .remove(&name)
                .ok_or_else(|| Error::Shape(format!("tensor `{name}` is missing")))?;
            if t.dims() != shape.as_slice() {
                return Err(Error::Shape(format!(
                    "tensor `{name}` has shape {:?}, the architecture needs {shape:?}",
                    t.dims()
                )));
            }
            let t = t.to_dtype(DType::F32)?.to_device(device)?;
            if role.trainable() {
                params.insert(name, own_var(&t)?);
            } else {
                buffers.insert(name, t);
            }
        }
        if let Some(extra) = tensors.keys().next() {
            return Err(Error::Shape(format!(
                "tensor `{extra}` is not part of the architecture"
            )));
        }
        let mut net = Self {
            graph: compile::compile(&arch)?,
            arch,
            params,
            buffers,
            masks: BTreeMap::new(),
            device: device.clone(),
            dropout_rng: rand::rngs::StdRng::seed_from_u64(0),
        };
        for (name, m) in masks {
            let p = net
                .params
                .get(&name)
                .ok_or_else(|| Error::Shape(format!("mask `{name}` has no matching parameter")))?;
            if p.dims() != m.dims() {
                return Err(Error::Shape(format!(
                    "mask `{name}` has shape {:?}, its parameter has {:?}",
                    m.dims(),
                    p.dims()
                )));
            }
            net.masks
                .insert(name, m.to_dtype(DType::F32)?.to_device(device)?);
        }
        net.apply_masks()?;
        Ok(net)
    }

    /// The architecture as a graph of operations.
    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// The device the tensors live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// A deep copy (independent parameters, buffers and masks).
    pub fn try_clone(&self) -> Result<Self> {
        let params = self
            .params
            .iter()
            .map(|(k, v)| Ok((k.clone(), Var::from_tensor(&v.as_tensor().copy()?)?)))
            .collect::<Result<_>>()?;
        let copy = |m: &BTreeMap<String, Tensor>| -> Result<BTreeMap<String, Tensor>> {
            m.iter().map(|(k, t)| Ok((k.clone(), t.copy()?))).collect()
        };
        Ok(Self {
            arch: self.arch.clone(),
            graph: self.graph.clone(),
            params,
            buffers: copy(&self.buffers)?,
            masks: copy(&self.masks)?,
            device: self.device.clone(),
            dropout_rng: self.dropout_rng.clone(),
        })
    }

    /// Seeds the draws of dropout masks (a run's seed, so training repeats).
    pub fn seed_dropout(&mut self, seed: u64) {
        self.dropout_rng = rand::rngs::StdRng::seed_from_u64(seed);
    }

    /// A copy of the parameters and buffers (not the masks), to put back
    /// with [`Network::restore`].
    pub fn snapshot(&self) -> Result<Snapshot> {
        let copy =
            |m: &mut dyn Iterator<Item = (&String, &Tensor)>| -> Result<BTreeMap<String, Tensor>> {
                m.map(|(k, t)| Ok((k.clone(), t.copy()?))).collect()
            };
        Ok(Snapshot {
            params: copy(&mut self.params.iter().map(|(k, v)| (k, v.as_tensor())))?,
            buffers: copy(&mut self.buffers.iter())?,
        })
    }

    /// Puts back the parameters and buffers of `snapshot` (taken from this
    /// network); the masks stay as they are and are applied again.
    pub fn restore(&mut self, snapshot: &Snapshot) -> Result<()> {
        for (k, t) in &snapshot.params {
            let var = self.params.get(k).ok_or_else(|| {
                Error::Shape(format!(
                    "snapshot has parameter `{k}` that the network lacks"
                ))
            })?;
            var.set(t)?;
        }
        for (k, t) in &snapshot.buffers {
            self.buffers.insert(k.clone(), t.copy()?);
        }
        self.apply_masks()
    }

    /// Moves every tensor to `device`.
    pub fn to_device(&self, device: &Device) -> Result<Self> {
        let move_map = |m: &BTreeMap<String, Tensor>| -> Result<BTreeMap<String, Tensor>> {
            m.iter()
                .map(|(k, t)| Ok((k.clone(), t.to_device(device)?)))
                .collect()
        };
        let tensors = self
            .params
            .iter()
            .map(|(k, v)| (k.clone(), v.as_tensor().clone()))
            .chain(self.buffers.iter().map(|(k, t)| (k.clone(), t.clone())))
            .collect::<BTreeMap<_, _>>();
        Self::from_tensors(
            self.arch.clone(),
            move_map(&tensors)?,
            move_map(&self.masks)?,
            device,
        )
    }

    /// A copy with every parameter, buffer and mask converted to `dtype`
    /// (`F32` for training; `F64` for the gradient checks).
    pub fn to_dtype(&self, dtype: DType) -> Result<Self> {
        let convert = |m: &BTreeMap<String, Tensor>| -> Result<BTreeMap<String, Tensor>> {
            m.iter()
                .map(|(k, t)| Ok((k.clone(), t.to_dtype(dtype)?)))
                .collect()
        };
        let params = self
            .params
            .iter()
            .map(|(k, v)| Ok((k.clone(), own_var(&v.as_tensor().to_dtype(dtype)?)?)))
            .collect::<Result<_>>()?;
        Ok(Self {
            arch: self.arch.clone(),
            graph: self.graph.clone(),
            params,
            buffers: convert(&self.buffers)?,
            masks: convert(&self.masks)?,
            device: self.device.clone(),
            dropout_rng: self.dropout_rng.clone(),
        })
    }

    /// Multiplies every masked parameter by its mask, so pruned weights are
    /// exactly zero.
    pub fn apply_masks(&self) -> Result<()> {
        for (name, m) in &self.masks {
            if let Some(p) = self.params.get(name) {
                p.set(&p.as_tensor().mul(m)?)?;
            }
        }
        Ok(())
    }

    /// The weight tensor of a prunable layer.
    pub fn weight(&self, layer: &str) -> Result<&Var> {
        self.params
            .get(&format!("{layer}.weight"))
            .ok_or_else(|| Error::Shape(format!("no layer `{layer}`")))
    }

    /// Runs the network on a batch `[b, c, h, w]`, returning logits `[b, classes]`.
    /// In training mode BatchNorm uses batch statistics and updates its running
    /// statistics; in evaluation mode it uses the running statistics.
    ///
    /// On the CPU in `f32`, evaluation runs [`backprop`]'s forward pass,
    /// which keeps no autograd graph.
    pub fn forward(&mut self, x: &Tensor, train: bool) -> Result<Tensor> {
        if !train && self.runs_own_passes() {
            return backprop::infer(&self.graph, &self.params, &self.buffers, x);
        }
        self.forward_with_autograd(x, train)
    }

    /// [`Network::forward`] as Candle operations (their autograd graph kept
    /// for `backward`), on every device.
    pub fn forward_with_autograd(&mut self, x: &Tensor, train: bool) -> Result<Tensor> {
        self.candle_pass(x, train, None)
    }

    /// The graph as Candle operations on `x`, `record` seeing each prunable
    /// layer's input.
    fn candle_pass<'r>(
        &'r mut self,
        x: &Tensor,
        train: bool,
        record: Option<candle::Recorder<'r>>,
    ) -> Result<Tensor> {
        let mut run = candle::Run {
            params: &self.params,
            buffers: &mut self.buffers,
            train,
            rng: &mut self.dropout_rng,
            record,
        };
        candle::forward(&self.graph, x, &mut run)
    }

    /// Whether [`Network::train_pass`] runs for this network: on the CPU, in
    /// `f32`.
    pub fn runs_own_passes(&self) -> bool {
        let dtype = self
            .params
            .values()
            .next()
            .map_or(DType::F32, |v| v.dtype());
        backprop::runs(&self.device, dtype)
    }

    /// A training step's forward and backward pass without Candle's
    /// autograd (see [`backprop`]): the logits, the mean cross-entropy
    /// against `labels` and every parameter's gradient. BatchNorm updates its
    /// running statistics as in [`Network::forward`] in training mode.
    /// `None` where it does not run ([`Network::runs_own_passes`]); then
    /// use `forward` and Candle's `backward`.
    pub fn train_pass(&mut self, x: &Tensor, labels: &Tensor) -> Result<Option<TrainPass>> {
        if !self.runs_own_passes() {
            return Ok(None);
        }
        backprop::train_pass(
            &self.graph,
            &self.params,
            &mut self.buffers,
            &mut self.dropout_rng,
            x,
            labels,
        )
        .map(Some)
    }

    /// Like [`Network::forward`] in evaluation mode, also accumulating
    /// per-input activation statistics into `stats`.
    pub fn forward_recording(&mut self, x: &Tensor, stats: &mut ActivationStats) -> Result<Tensor> {
        let mut record = |layer: &str, x: &Tensor| stats.add(layer, x);
        self.candle_pass(x, false, Some(&mut record))
    }
}

/// A fresh tensor's values: weights He-uniform over their fan-in, learned
/// embeddings (class token, position embedding) small and random
/// (standard deviation 0.02, as ViTs start), norm scales and running
/// variances one, everything else zero.
fn initial(name: &str, shape: &[usize], role: Role, rng: &mut impl Rng) -> Vec<f32> {
    let n: usize = shape.iter().product();
    match role {
        Role::Weight => {
            let fan_in: usize = shape[1..].iter().product::<usize>().max(1);
            let bound = (6.0 / fan_in as f32).sqrt();
            (0..n).map(|_| rng.random_range(-bound..bound)).collect()
        }
        Role::Embedding => {
            // Uniform on [-a, a] has standard deviation a / sqrt(3).
            let a = 0.02 * 3f32.sqrt();
            (0..n).map(|_| rng.random_range(-a..a)).collect()
        }
        Role::Norm if name.ends_with(".weight") => vec![1.0; n],
        Role::Buffer if name.ends_with(".running_var") => vec![1.0; n],
        _ => vec![0.0; n],
    }
}

/// A variable with storage of its own. `Var::from_tensor` of a tensor that
/// is already a variable shares its storage, and `to_dtype`/`to_device` to
/// the dtype/device a tensor already has return the same tensor: without
/// the copy, two networks would train the same weights.
fn own_var(t: &Tensor) -> Result<Var> {
    Ok(Var::from_tensor(&t.detach())?)
}

/// Index of the largest logit per row: `[b, classes] -> Vec<u32>`.
pub fn argmax(logits: &Tensor) -> Result<Vec<u32>> {
    Ok(logits.argmax(D::Minus1)?.to_vec1::<u32>()?)
}
