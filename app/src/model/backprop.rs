//! Forward and backward passes of a network on the CPU in `f32`, without
//! Candle's autograd.
//!
//! The forward pass runs the layers' kernels (the same ones the Candle
//! operations of `conv`, `linear`, `batchnorm`, `pool` and `relu` run) and
//! keeps, per layer, what its backward needs; the backward pass walks that
//! tape in reverse and writes each parameter's gradient once. Candle's
//! autograd accumulates every gradient that reaches a tensor as
//! `zeros_like` + `add` (two fresh buffers and two passes per activation per
//! step), and runs the residual adds and reshapes as graph nodes of their own;
//! here a gradient is one buffer handed from layer to layer, masked or
//! scattered in place where the layer allows.
//!
//! Evaluation runs the same forward pass and keeps nothing.
//!
//! The networks it runs are those whose layers all have kernels here
//! ([`supports`]); others (average pools of imported models), other devices
//! and other float types use Candle's autograd. Tests compare both on every
//! architecture.

use std::collections::BTreeMap;
use std::sync::Arc;

use candle_core::{DType, Device, Tensor, Var};

use super::arch::Node;
use super::batchnorm::BatchNormTrain;
use super::fused::Layer;
use super::{conv, dropout, linear, pool, relu};
use crate::error::{Error, Result};

/// What the passes read and update of a network.
pub(super) struct Ctx<'a> {
    /// Trainable parameters by name.
    pub params: &'a BTreeMap<String, Var>,
    /// BatchNorm running statistics (updated in training).
    pub buffers: &'a mut BTreeMap<String, Tensor>,
    /// Draws the dropout masks.
    pub rng: &'a mut rand::rngs::StdRng,
    /// BatchNorm momentum of the running statistics.
    pub momentum: f64,
    /// BatchNorm epsilon.
    pub eps: f64,
}

/// The loss, logits and parameter gradients of one training batch.
#[derive(Debug)]
pub struct TrainPass {
    /// Logits `[b, classes]`.
    pub logits: Tensor,
    /// Mean cross-entropy of the batch.
    pub loss: f32,
    /// Gradient of the loss per parameter name (every parameter has one).
    pub grads: BTreeMap<String, Tensor>,
}

/// Whether every layer of `nodes` runs here.
pub(super) fn supports(nodes: &[Node]) -> bool {
    nodes.iter().all(|n| match n {
        Node::AvgPool { .. } | Node::AdaptiveAvgPool { .. } => false,
        Node::Residual { body, shortcut } => supports(body) && supports(shortcut),
        _ => true,
    })
}

/// Whether the passes here can run a network of `nodes` whose tensors are
/// of `dtype` on `device`.
pub(super) fn runs(nodes: &[Node], device: &Device, dtype: DType) -> bool {
    device.is_cpu() && dtype == DType::F32 && supports(nodes)
}

/// Values of a batch and their dims (`[b, c, h, w]` or `[b, features]`).
#[derive(Debug, Clone)]
struct Maps {
    data: Arc<Vec<f32>>,
    dims: Vec<usize>,
}

impl Maps {
    fn new(data: Vec<f32>, dims: Vec<usize>) -> Self {
        Self {
            data: Arc::new(data),
            dims,
        }
    }

    /// The values, copied only if another layer still holds them.
    fn into_vec(self) -> Vec<f32> {
        Arc::try_unwrap(self.data).unwrap_or_else(|shared| (*shared).clone())
    }
}

/// What one layer's backward needs from its forward pass.
enum Saved {
    Conv {
        name: String,
        g: conv::Geom,
        x: Arc<Vec<f32>>,
        bias: bool,
        /// Whether the input's gradient is needed (all but a first layer).
        input_grad: bool,
    },
    Linear {
        name: String,
        d: linear::Dims,
        x: Arc<Vec<f32>>,
        bias: bool,
    },
    BatchNorm {
        name: String,
        layer: BatchNormTrain,
        x: Arc<Vec<f32>>,
        /// Per-channel batch mean and biased variance.
        stats: Vec<(f64, f64)>,
    },
    /// The ReLU's output: the gradient passes where it is positive.
    Relu {
        y: Arc<Vec<f32>>,
    },
    MaxPool {
        g: pool::Geom,
        argmax: Vec<u32>,
        input: usize,
    },
    GlobalAvgPool {
        hw: usize,
    },
    Dropout {
        mask: Vec<f32>,
    },
    /// Flatten, and dropout in evaluation: the values pass unchanged.
    Same,
    Residual {
        body: Vec<Saved>,
        shortcut: Vec<Saved>,
    },
}

/// Parameter values copied out of the network's variables, by name.
struct Weights(BTreeMap<String, Vec<f32>>);

impl Weights {
    fn of(params: &BTreeMap<String, Var>) -> Result<Self> {
        params
            .iter()
            .map(|(k, v)| Ok((k.clone(), v.as_tensor().flatten_all()?.to_vec1::<f32>()?)))
            .collect::<Result<_>>()
            .map(Weights)
    }

    fn get(&self, name: &str) -> Result<&[f32]> {
        self.0
            .get(name)
            .map(Vec::as_slice)
            .ok_or_else(|| Error::Shape(format!("parameter `{name}` is missing")))
    }

    /// `{layer}.bias`, or zeros when the layer has none.
    fn bias(&self, layer: &str, has: bool, n: usize) -> Result<std::borrow::Cow<'_, [f32]>> {
        Ok(if has {
            std::borrow::Cow::Borrowed(self.get(&format!("{layer}.bias"))?)
        } else {
            std::borrow::Cow::Owned(vec![0.0; n])
        })
    }
}

/// One training step's forward and backward pass on the batch `x [b, ...]`
/// with class indices `labels [b]`: BatchNorm uses (and updates its running
/// statistics from) the batch statistics, dropout draws its masks.
pub(super) fn train_pass(
    nodes: &[Node],
    ctx: &mut Ctx<'_>,
    x: &Tensor,
    labels: &Tensor,
) -> Result<TrainPass> {
    let weights = Weights::of(ctx.params)?;
    let input = Maps::new(x.flatten_all()?.to_vec1::<f32>()?, x.dims().to_vec());
    let labels = labels.to_vec1::<u32>()?;
    let mut tape = Vec::new();
    let out = forward(nodes, input, &weights, ctx, Some(&mut tape))?;
    // Nothing uses the gradient of the batch itself.
    if let Some(Saved::Conv { input_grad, .. }) = tape.first_mut() {
        *input_grad = false;
    }
    let &[b, classes] = out.dims.as_slice() else {
        return Err(Error::Shape(format!(
            "the network outputs {:?}, not [batch, classes]",
            out.dims
        )));
    };
    let (loss, dlogits) = cross_entropy(&out.data, b, classes, &labels)?;
    let mut grads = BTreeMap::new();
    backward(tape, dlogits, &weights, &mut grads)?;
    let grads = ctx
        .params
        .iter()
        .map(|(name, var)| {
            let g = grads
                .remove(name)
                .unwrap_or_else(|| vec![0.0; var.elem_count()]);
            Ok((name.clone(), Tensor::from_vec(g, var.dims(), &Device::Cpu)?))
        })
        .collect::<Result<_>>()?;
    Ok(TrainPass {
        logits: Tensor::from_vec(out.into_vec(), (b, classes), &Device::Cpu)?,
        loss,
        grads,
    })
}

/// The evaluation-mode forward pass (BatchNorm with running statistics, no
/// dropout) of `x`, keeping nothing for a backward pass.
pub(super) fn infer(nodes: &[Node], ctx: &mut Ctx<'_>, x: &Tensor) -> Result<Tensor> {
    let weights = Weights::of(ctx.params)?;
    let input = Maps::new(x.flatten_all()?.to_vec1::<f32>()?, x.dims().to_vec());
    let out = forward(nodes, input, &weights, ctx, None)?;
    let dims = out.dims.clone();
    Ok(Tensor::from_vec(out.into_vec(), dims, &Device::Cpu)?)
}

/// Runs `nodes` on `x`; with a `tape` (training) BatchNorm uses batch
/// statistics, dropout is drawn, and what the backward pass needs is pushed
/// onto the tape.
fn forward(
    nodes: &[Node],
    mut x: Maps,
    w: &Weights,
    ctx: &mut Ctx<'_>,
    mut tape: Option<&mut Vec<Saved>>,
) -> Result<Maps> {
    for n in nodes {
        let (y, saved) = layer_forward(n, x, w, ctx, tape.as_deref_mut())?;
        if let (Some(t), Some(s)) = (tape.as_deref_mut(), saved) {
            t.push(s);
        }
        x = y;
    }
    Ok(x)
}

/// One layer forward: its output and, in training, what its backward needs.
fn layer_forward(
    n: &Node,
    x: Maps,
    w: &Weights,
    ctx: &mut Ctx<'_>,
    tape: Option<&mut Vec<Saved>>,
) -> Result<(Maps, Option<Saved>)> {
    let train = tape.is_some();
    Ok(match n {
        Node::Conv2d {
            name,
            in_c,
            out_c,
            k,
            stride,
            pad,
            bias,
        } => {
            let g = conv::Geom::of(&x.dims, &[*out_c, *in_c, *k, *k], *stride, *pad)
                .map_err(|e| Error::Shape(format!("layer `{name}`: {e}")))?;
            let weight = w.get(&format!("{name}.weight"))?;
            let y = g.forward(&x.data, weight, &w.bias(name, *bias, *out_c)?);
            let saved = train.then(|| Saved::Conv {
                name: name.clone(),
                g,
                x: x.data,
                bias: *bias,
                input_grad: true,
            });
            (Maps::new(y, g.out_dims().to_vec()), saved)
        }
        Node::Linear {
            name,
            in_f,
            out_f,
            bias,
        } => {
            let b = match x.dims.as_slice() {
                &[b, f] if f == *in_f => b,
                dims => {
                    return Err(Error::Shape(format!(
                        "layer `{name}` takes [batch, {in_f}], gets {dims:?}"
                    )))
                }
            };
            let d = linear::Dims {
                b,
                input: *in_f,
                out: *out_f,
            };
            let weight = w.get(&format!("{name}.weight"))?;
            let y = d.forward(&x.data, weight, &w.bias(name, *bias, *out_f)?);
            let saved = train.then(|| Saved::Linear {
                name: name.clone(),
                d,
                x: x.data,
                bias: *bias,
            });
            (Maps::new(y, vec![b, *out_f]), saved)
        }
        Node::BatchNorm { name, c } => batch_norm(name, *c, x, w, ctx, train)?,
        Node::Relu => {
            let dims = x.dims.clone();
            let mut y = x.into_vec();
            relu::relu_in_place(&mut y);
            let y = Maps::new(y, dims);
            let saved = train.then(|| Saved::Relu { y: y.data.clone() });
            (y, saved)
        }
        Node::MaxPool { k, stride, pad } => {
            let g = pool::Geom::new(&x.dims, *k, stride.unwrap_or(*k), *pad)
                .map_err(|e| Error::Shape(e.to_string()))?;
            let (y, argmax) = pool::forward(g, &x.data);
            let dims = g.out_dims(x.dims[0]).to_vec();
            let saved = train.then(|| Saved::MaxPool {
                g,
                argmax,
                input: x.data.len(),
            });
            (Maps::new(y, dims), saved)
        }
        Node::GlobalAvgPool => {
            let &[b, c, h, wd] = x.dims.as_slice() else {
                return Err(Error::Shape(format!(
                    "global average pool takes [b, c, h, w], gets {:?}",
                    x.dims
                )));
            };
            let hw = h * wd;
            let scale = 1.0 / hw as f32;
            let y = x
                .data
                .chunks_exact(hw.max(1))
                .map(|plane| plane.iter().sum::<f32>() * scale)
                .collect();
            (
                Maps::new(y, vec![b, c]),
                train.then_some(Saved::GlobalAvgPool { hw }),
            )
        }
        Node::Dropout { p } if train && *p > 0.0 => {
            let mask = dropout::mask(ctx.rng, x.data.len(), *p);
            let dims = x.dims.clone();
            let mut y = x.into_vec();
            for (v, m) in y.iter_mut().zip(&mask) {
                *v *= m;
            }
            (Maps::new(y, dims), Some(Saved::Dropout { mask }))
        }
        Node::Dropout { .. } => (x, train.then_some(Saved::Same)),
        Node::Flatten => {
            let b = x.dims.first().copied().unwrap_or(0);
            let rest = x.dims.iter().skip(1).product();
            let y = Maps {
                data: x.data,
                dims: vec![b, rest],
            };
            (y, train.then_some(Saved::Same))
        }
        Node::Residual { body, shortcut } => {
            let (mut body_tape, mut short_tape) = (Vec::new(), Vec::new());
            let a = forward(body, x.clone(), w, ctx, train.then_some(&mut body_tape))?;
            let s = if shortcut.is_empty() {
                x
            } else {
                forward(shortcut, x, w, ctx, train.then_some(&mut short_tape))?
            };
            if a.dims != s.dims {
                return Err(Error::Shape(format!(
                    "residual block: the body outputs {:?}, the shortcut {:?}",
                    a.dims, s.dims
                )));
            }
            let dims = a.dims.clone();
            let mut y = a.into_vec();
            for (v, s) in y.iter_mut().zip(s.data.iter()) {
                *v += s;
            }
            let saved = train.then_some(Saved::Residual {
                body: body_tape,
                shortcut: short_tape,
            });
            (Maps::new(y, dims), saved)
        }
        Node::AvgPool { .. } | Node::AdaptiveAvgPool { .. } => {
            return Err(Error::Shape(
                "average pooling has no CPU pass here; Candle's autograd runs it".into(),
            ))
        }
    })
}

/// BatchNorm forward: batch statistics (and a running-statistics update) in
/// training, running statistics in evaluation.
fn batch_norm(
    name: &str,
    c: usize,
    x: Maps,
    w: &Weights,
    ctx: &mut Ctx<'_>,
    train: bool,
) -> Result<(Maps, Option<Saved>)> {
    let (b, channels) = (x.dims[0], x.dims.get(1).copied().unwrap_or(0));
    if channels != c || !matches!(x.dims.len(), 2 | 4) {
        return Err(Error::Shape(format!(
            "batch norm `{name}` takes [b, {c}] or [b, {c}, h, w], gets {:?}",
            x.dims
        )));
    }
    let hw = x.dims.iter().skip(2).product::<usize>();
    let gamma = w.get(&format!("{name}.weight"))?;
    let beta = w.get(&format!("{name}.bias"))?;
    let mean_key = format!("{name}.running_mean");
    let var_key = format!("{name}.running_var");
    let buffer = |ctx: &Ctx<'_>, key: &str| -> Result<Vec<f32>> {
        let t = ctx
            .buffers
            .get(key)
            .ok_or_else(|| Error::Shape(format!("buffer `{key}` is missing")))?;
        Ok(t.to_vec1::<f32>()?)
    };
    if !train {
        let (mean, var) = (buffer(ctx, &mean_key)?, buffer(ctx, &var_key)?);
        // As `batchnorm::eval`: (x - mean) * (gamma / sqrt(var + eps)) + beta.
        let eps = ctx.eps as f32;
        let scale: Vec<f32> = gamma
            .iter()
            .zip(&var)
            .map(|(g, v)| g / (v + eps).sqrt())
            .collect();
        let dims = x.dims.clone();
        let mut y = x.into_vec();
        for (p, plane) in y.chunks_exact_mut(hw.max(1)).enumerate() {
            let ci = p % c;
            for v in plane {
                *v = (*v - mean[ci]) * scale[ci] + beta[ci];
            }
        }
        return Ok((Maps::new(y, dims), None));
    }
    if b * hw == 1 {
        return Err(Error::Shape(format!(
            "batch norm `{name}` gets one value per channel in training (batch of 1 on a 1x1 map); use a larger batch"
        )));
    }
    let layer = BatchNormTrain::new(ctx.eps, b, c, hw);
    let stats = layer.stats(&x.data);
    let y = layer.normalise(&x.data, gamma, beta, &stats);
    let (batch_mean, batch_var) = layer.running::<f32>(&stats);
    // As the Candle path: old * (1 - momentum) + new * momentum, in f32.
    let (keep, take) = ((1.0 - ctx.momentum) as f32, ctx.momentum as f32);
    for (key, new) in [(mean_key, batch_mean), (var_key, batch_var)] {
        let old = buffer(ctx, &key)?;
        let updated: Vec<f32> = old
            .iter()
            .zip(&new)
            .map(|(o, n)| o * keep + n * take)
            .collect();
        let t = Tensor::from_vec(updated, c, &Device::Cpu)?;
        ctx.buffers.insert(key, t);
    }
    let saved = Saved::BatchNorm {
        name: name.to_string(),
        layer,
        x: x.data,
        stats,
    };
    Ok((Maps::new(y, x.dims), Some(saved)))
}

/// Mean cross-entropy of `logits [b, classes]` against `labels`, and its
/// gradient with respect to the logits, `(softmax - onehot) / b`.
pub(super) fn cross_entropy(
    logits: &[f32],
    b: usize,
    classes: usize,
    labels: &[u32],
) -> Result<(f32, Vec<f32>)> {
    if labels.len() != b {
        return Err(Error::Shape(format!(
            "{} labels for a batch of {b}",
            labels.len()
        )));
    }
    if let Some(&bad) = labels.iter().find(|&&l| l as usize >= classes) {
        return Err(Error::Shape(format!(
            "label {bad} is out of range for {classes} classes"
        )));
    }
    let mut grad = vec![0f32; b * classes];
    let mut total = 0f32;
    let inv_b = 1.0 / b.max(1) as f32;
    for ((row, g), &label) in logits
        .chunks_exact(classes.max(1))
        .zip(grad.chunks_exact_mut(classes.max(1)))
        .zip(labels)
    {
        // log_softmax as Candle's: x - max - ln(sum(exp(x - max))).
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let sum: f32 = row.iter().map(|v| (v - max).exp()).sum();
        let log_sum = sum.ln();
        total += (row[label as usize] - max) - log_sum;
        for (gj, &v) in g.iter_mut().zip(row) {
            *gj = ((v - max) - log_sum).exp() * inv_b;
        }
        g[label as usize] -= inv_b;
    }
    Ok((-(total * inv_b), grad))
}

/// Runs `tape` backward from the output gradient `dy`, adding each
/// parameter's gradient to `grads`; returns the gradient of the input.
fn backward(
    tape: Vec<Saved>,
    mut dy: Vec<f32>,
    w: &Weights,
    grads: &mut BTreeMap<String, Vec<f32>>,
) -> Result<Vec<f32>> {
    for saved in tape.into_iter().rev() {
        dy = layer_backward(saved, dy, w, grads)?;
    }
    Ok(dy)
}

/// Splits a packed `[dx, dw, db]` (`dx` of `nx` values, `dw` of `nw`) into
/// `dx`, storing `dw` and (if the layer has one) `db` under the layer's
/// parameter names.
fn split_packed(
    mut packed: Vec<f32>,
    (nx, nw): (usize, usize),
    name: &str,
    bias: bool,
    grads: &mut BTreeMap<String, Vec<f32>>,
) -> Vec<f32> {
    let mut dw = packed.split_off(nx);
    let db = dw.split_off(nw);
    grads.insert(format!("{name}.weight"), dw);
    if bias {
        grads.insert(format!("{name}.bias"), db);
    }
    packed
}

/// One layer backward: the gradient of its input from that of its output.
fn layer_backward(
    saved: Saved,
    mut dy: Vec<f32>,
    w: &Weights,
    grads: &mut BTreeMap<String, Vec<f32>>,
) -> Result<Vec<f32>> {
    Ok(match saved {
        Saved::Conv {
            name,
            g,
            x,
            bias,
            input_grad,
        } => {
            let weight = w.get(&format!("{name}.weight"))?;
            let packed = conv::backward(g, &x, &dy, weight, input_grad);
            let nx = if input_grad { x.len() } else { 0 };
            split_packed(packed, (nx, weight.len()), &name, bias, grads)
        }
        Saved::Linear { name, d, x, bias } => {
            let weight = w.get(&format!("{name}.weight"))?;
            let packed = d.backward(&x, &dy, weight);
            split_packed(packed, (x.len(), weight.len()), &name, bias, grads)
        }
        Saved::BatchNorm {
            name,
            layer,
            x,
            stats,
        } => {
            let gamma = w.get(&format!("{name}.weight"))?;
            let packed = layer.backward_with(&x, &dy, gamma, &stats);
            split_packed(packed, (x.len(), gamma.len()), &name, true, grads)
        }
        Saved::Relu { y } => {
            relu::relu_backward_in_place(&y, &mut dy);
            dy
        }
        Saved::MaxPool { g, argmax, input } => {
            let mut dx = vec![0.0; input];
            pool::scatter(g, &argmax, &dy, &mut dx);
            dx
        }
        Saved::GlobalAvgPool { hw } => {
            let scale = 1.0 / hw as f32;
            dy.iter()
                .flat_map(|&g| std::iter::repeat_n(g * scale, hw))
                .collect()
        }
        Saved::Dropout { mask } => {
            for (d, m) in dy.iter_mut().zip(&mask) {
                *d *= m;
            }
            dy
        }
        Saved::Same => dy,
        Saved::Residual { body, shortcut } => {
            let through_shortcut = if shortcut.is_empty() {
                dy.clone()
            } else {
                backward(shortcut, dy.clone(), w, grads)?
            };
            let mut dx = backward(body, dy, w, grads)?;
            for (d, s) in dx.iter_mut().zip(&through_shortcut) {
                *d += s;
            }
            dx
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::testutil::values;
    use crate::model::{Architecture, Family, ModelSpec, Network, Preprocess};

    /// Largest difference between `ours` and `reference`, relative to the
    /// reference's largest magnitude.
    fn rel_diff(ours: &[f32], reference: &[f32]) -> f32 {
        assert_eq!(ours.len(), reference.len());
        let scale = reference.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
        let diff = ours
            .iter()
            .zip(reference)
            .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        diff / scale
    }

    /// Runs one training pass here and one through Candle's autograd on
    /// copies of the same network and batch, and compares the loss, logits,
    /// every gradient and the running statistics; then the evaluation passes.
    fn agrees_with_autograd(arch: Architecture, batch: usize, seed: u64) {
        let [c, h, w] = arch.input;
        let classes = arch.num_classes;
        let mut ours = Network::new(arch, seed, &Device::Cpu).unwrap();
        ours.seed_dropout(seed);
        let mut theirs = ours.try_clone().unwrap();
        let x = Tensor::randn(0f32, 1.0, (batch, c, h, w), &Device::Cpu).unwrap();
        let labels: Vec<u32> = (0..batch as u32)
            .map(|i| (i * 7 + 3) % classes as u32)
            .collect();
        let y = Tensor::from_vec(labels, batch, &Device::Cpu).unwrap();

        let pass = ours.train_pass(&x, &y).unwrap().expect("runs on the CPU");
        let logits = theirs.forward_with_autograd(&x, true).unwrap();
        let loss = crate::train::loss(&logits, &y).unwrap();
        let grads = loss.backward().unwrap();

        let l = loss.to_scalar::<f32>().unwrap();
        assert!(
            (pass.loss - l).abs() <= 1e-5 * l.abs().max(1.0),
            "loss {} vs {l}",
            pass.loss
        );
        assert!(rel_diff(&values(&pass.logits), &values(&logits)) < 1e-5);
        for (name, var) in &theirs.params {
            let reference = values(grads.get(var.as_tensor()).expect("autograd gradient"));
            let got = values(&pass.grads[name]);
            let d = rel_diff(&got, &reference);
            assert!(d < 1e-5, "gradient of {name} differs by {d} (relative)");
        }
        for (name, t) in &theirs.buffers {
            let d = rel_diff(&values(&ours.buffers[name]), &values(t));
            assert!(d < 1e-6, "buffer {name} differs by {d}");
        }
        let eval_ours = ours.forward(&x, false).unwrap();
        let eval_theirs = theirs.forward_with_autograd(&x, false).unwrap();
        assert!(rel_diff(&values(&eval_ours), &values(&eval_theirs)) < 1e-5);
    }

    #[test]
    fn lenet5_matches_candle_autograd() {
        agrees_with_autograd(ModelSpec::Lenet5.build([1, 28, 28], 10).unwrap(), 16, 1);
    }

    #[test]
    fn resnet_with_projection_shortcuts_matches_candle_autograd() {
        let arch = ModelSpec::Resnet20 { width: 4 }
            .build([3, 16, 16], 10)
            .unwrap();
        agrees_with_autograd(arch, 8, 2);
    }

    #[test]
    fn vgg_and_mlp_match_candle_autograd() {
        let vgg = ModelSpec::Vgg {
            channels: vec![8, 0, 16, 0],
        };
        agrees_with_autograd(vgg.build([3, 12, 12], 5).unwrap(), 6, 3);
        let mlp = ModelSpec::Mlp {
            hidden: vec![20, 12],
        };
        agrees_with_autograd(mlp.build([1, 6, 6], 4).unwrap(), 9, 4);
    }

    /// Layers the built-in families do not combine: dropout, a padded and
    /// strided max pool, a convolution without bias, an identity shortcut
    /// and the global average pool.
    #[test]
    fn other_layers_match_candle_autograd() {
        let conv = |name: &str, in_c, out_c, k, stride, pad, bias| Node::Conv2d {
            name: name.into(),
            in_c,
            out_c,
            k,
            stride,
            pad,
            bias,
        };
        let nodes = vec![
            conv("c1", 2, 6, 3, 1, 1, false),
            Node::BatchNorm {
                name: "bn1".into(),
                c: 6,
            },
            Node::Relu,
            Node::MaxPool {
                k: 3,
                stride: Some(2),
                pad: 1,
            },
            Node::Residual {
                body: vec![conv("c2", 6, 6, 3, 1, 1, true), Node::Relu],
                shortcut: vec![],
            },
            Node::Dropout { p: 0.3 },
            Node::GlobalAvgPool,
            Node::Linear {
                name: "fc".into(),
                in_f: 6,
                out_f: 3,
                bias: true,
            },
        ];
        let arch = Architecture {
            family: Family::Vgg,
            input: [2, 9, 9],
            num_classes: 3,
            nodes,
            preprocess: Preprocess::default(),
        };
        agrees_with_autograd(arch, 7, 5);
    }

    #[test]
    fn average_pools_are_left_to_candle() {
        let nodes = [Node::AvgPool {
            k: 2,
            stride: 2,
            pad: 0,
            count_pad: true,
        }];
        assert!(!supports(&nodes));
        assert!(!runs(&[Node::Relu], &Device::Cpu, DType::F64));
        assert!(runs(&[Node::Relu], &Device::Cpu, DType::F32));
    }

    #[test]
    fn labels_out_of_range_are_an_error() {
        let err = cross_entropy(&[0.0; 6], 2, 3, &[0, 3]).unwrap_err();
        assert!(err.to_string().contains("label 3"), "{err}");
    }
}
