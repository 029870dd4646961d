//! A runnable network: an [`Architecture`] (and the [`Graph`] it compiles
//! to) plus its parameters, BatchNorm buffers and pruning masks. On the CPU
//! in `f32` the graph interpreter runs it ([`backprop`]); elsewhere Candle's
//! operations and autograd do.

use std::collections::BTreeMap;

use candle_core::{DType, Device, Tensor, Var, D};
use rand::{Rng, SeedableRng};

use super::arch::{Architecture, Node};
use super::backprop::{self, TrainPass};
use super::graph::{from_layers, Graph};
use super::{batchnorm, dropout, pool, relu};
use crate::error::{Error, Result};

/// BatchNorm momentum for running statistics (PyTorch convention).
const BN_MOMENTUM: f64 = 0.1;
/// BatchNorm epsilon.
const BN_EPS: f64 = 1e-5;

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
        let per_channel = match sq.rank() {
            4 => sq.sum((0, 2, 3))?,
            _ => sq.sum(0)?,
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
        for (name, shape, is_buffer) in arch.tensor_specs() {
            let n: usize = shape.iter().product();
            let data: Vec<f32> = if name.ends_with(".running_var") {
                vec![1.0; n]
            } else if name.ends_with(".weight") && shape.len() >= 2 {
                let fan_in: usize = shape[1..].iter().product();
                let bound = (6.0 / fan_in as f32).sqrt();
                (0..n).map(|_| rng.random_range(-bound..bound)).collect()
            } else if name.ends_with(".weight") {
                vec![1.0; n] // BatchNorm scale
            } else {
                vec![0.0; n]
            };
            let t = Tensor::from_vec(data, shape, device)?;
            if is_buffer {
                buffers.insert(name, t);
            } else {
                params.insert(name, Var::from_tensor(&t)?);
            }
        }
        Ok(Self {
            graph: from_layers::compile(&arch)?,
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
        for (name, shape, is_buffer) in arch.tensor_specs() {
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
            if is_buffer {
                buffers.insert(name, t);
            } else {
                params.insert(name, own_var(&t)?);
            }
        }
        if let Some(extra) = tensors.keys().next() {
            return Err(Error::Shape(format!(
                "tensor `{extra}` is not part of the architecture"
            )));
        }
        let mut net = Self {
            graph: from_layers::compile(&arch)?,
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
        let mut ctx = Ctx {
            params: &self.params,
            buffers: &mut self.buffers,
            train,
            stats: None,
            rng: &mut self.dropout_rng,
        };
        let nodes = self.arch.nodes.clone();
        run(&nodes, x.clone(), &mut ctx)
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
        let mut ctx = Ctx {
            params: &self.params,
            buffers: &mut self.buffers,
            train: false,
            stats: Some(stats),
            rng: &mut self.dropout_rng,
        };
        let nodes = self.arch.nodes.clone();
        run(&nodes, x.clone(), &mut ctx)
    }
}

/// A variable with storage of its own. `Var::from_tensor` of a tensor that
/// is already a variable shares its storage, and `to_dtype`/`to_device` to
/// the dtype/device a tensor already has return the same tensor: without
/// the copy, two networks would train the same weights.
fn own_var(t: &Tensor) -> Result<Var> {
    Ok(Var::from_tensor(&t.detach())?)
}

struct Ctx<'a> {
    params: &'a BTreeMap<String, Var>,
    buffers: &'a mut BTreeMap<String, Tensor>,
    train: bool,
    stats: Option<&'a mut ActivationStats>,
    rng: &'a mut rand::rngs::StdRng,
}

impl Ctx<'_> {
    fn p(&self, name: &str) -> Result<&Tensor> {
        self.params
            .get(name)
            .map(|v| v.as_tensor())
            .ok_or_else(|| Error::Shape(format!("parameter `{name}` is missing")))
    }
}

fn run(nodes: &[Node], mut x: Tensor, ctx: &mut Ctx<'_>) -> Result<Tensor> {
    for n in nodes {
        x = match n {
            Node::Conv2d {
                name,
                stride,
                pad,
                bias,
                ..
            } => {
                if let Some(s) = ctx.stats.as_deref_mut() {
                    s.add(name, &x)?;
                }
                let w = ctx.p(&format!("{name}.weight"))?;
                let b = if *bias {
                    Some(ctx.p(&format!("{name}.bias"))?)
                } else {
                    None
                };
                super::conv::conv2d(&x, w, b, *stride, *pad)?
            }
            Node::Linear { name, bias, .. } => {
                if let Some(s) = ctx.stats.as_deref_mut() {
                    s.add(name, &x)?;
                }
                let w = ctx.p(&format!("{name}.weight"))?;
                let b = if *bias {
                    Some(ctx.p(&format!("{name}.bias"))?)
                } else {
                    None
                };
                super::linear::linear(&x, w, b)?
            }
            Node::BatchNorm { name, c } => batch_norm(&x, name, *c, ctx)?,
            Node::Relu => relu::relu(&x)?,
            Node::MaxPool { k, stride, pad } => {
                pool::max_pool2d_strided(&x, *k, stride.unwrap_or(*k), *pad)?
            }
            Node::GlobalAvgPool => x.mean((2, 3))?,
            Node::AdaptiveAvgPool { h, w } => pool::adaptive_avg_pool2d(&x, *h, *w)?,
            Node::AvgPool {
                k,
                stride,
                pad,
                count_pad,
            } => pool::avg_pool2d(&x, *k, *stride, *pad, *count_pad)?,
            Node::Dropout { p } if ctx.train && *p > 0.0 => {
                let mask = dropout::mask(ctx.rng, x.elem_count(), *p);
                let mask = Tensor::from_vec(mask, x.dims(), x.device())?.to_dtype(x.dtype())?;
                (x * mask)?
            }
            Node::Dropout { .. } => x,
            Node::Flatten => x.flatten_from(1)?,
            Node::Residual { body, shortcut } => {
                let a = run(body, x.clone(), ctx)?;
                let b = if shortcut.is_empty() {
                    x
                } else {
                    run(shortcut, x, ctx)?
                };
                (a + b)?
            }
        };
    }
    Ok(x)
}

fn batch_norm(x: &Tensor, name: &str, c: usize, ctx: &mut Ctx<'_>) -> Result<Tensor> {
    let gamma = ctx.p(&format!("{name}.weight"))?;
    let beta = ctx.p(&format!("{name}.bias"))?;
    let mean_key = format!("{name}.running_mean");
    let var_key = format!("{name}.running_var");
    if !ctx.train {
        let (mean, var) = (&ctx.buffers[&mean_key], &ctx.buffers[&var_key]);
        return Ok(batchnorm::eval(x, gamma, beta, mean, var, BN_EPS)?);
    }
    if x.elem_count() == c {
        return Err(Error::Shape(format!(
            "batch norm `{name}` gets one value per channel in training (batch of 1 on a 1x1 map); use a larger batch"
        )));
    }
    let out = batchnorm::train(x, gamma, beta, BN_EPS)?;
    let update = |old: &Tensor, new: &Tensor| -> Result<Tensor> {
        Ok(((old * (1.0 - BN_MOMENTUM))? + (new * BN_MOMENTUM)?)?)
    };
    let rm = update(&ctx.buffers[&mean_key], &out.mean)?;
    let rv = update(&ctx.buffers[&var_key], &out.unbiased_var)?;
    ctx.buffers.insert(mean_key, rm);
    ctx.buffers.insert(var_key, rv);
    Ok(out.y)
}

/// Index of the largest logit per row: `[b, classes] -> Vec<u32>`.
pub fn argmax(logits: &Tensor) -> Result<Vec<u32>> {
    Ok(logits.argmax(D::Minus1)?.to_vec1::<u32>()?)
}
