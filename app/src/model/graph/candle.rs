//! The graph as Candle operations: every op of [`Op`] written with Candle's
//! tensor ops (and the fused CPU ops of `model::conv`, `model::linear`,
//! `model::batchnorm` and `model::pool` where they apply), so the same graph
//! runs on every device and dtype Candle has, with Candle's autograd for the
//! backward. The interpreter in [`super::run`] is the CPU `f32` pass; this
//! is the path for GPUs and `f64`, and the reference the interpreter is
//! tested against.

use std::collections::BTreeMap;

use candle_core::{Tensor, Var, D};
use rand::Rng;

use super::{node_error, Graph, Node, Op};
use crate::error::{Error, Result};
use crate::model::ops::activation::{exact, Act};
use crate::model::ops::{conv::Conv, elementwise::Binary, pool::Pool};
use crate::model::{batchnorm, conv, dropout, linear, pool};

/// Receives a prunable layer's name and its input (see [`Run::record`]).
pub type Recorder<'a> = &'a mut dyn FnMut(&str, &Tensor) -> Result<()>;

/// What a Candle pass of a graph reads and updates.
pub struct Run<'a> {
    /// Trainable parameters by name.
    pub params: &'a BTreeMap<String, Var>,
    /// Buffers (running statistics, constants) by name; training updates
    /// BatchNorm's running statistics here.
    pub buffers: &'a mut BTreeMap<String, Tensor>,
    /// Training mode: batch statistics, dropout on.
    pub train: bool,
    /// Draws dropout and stochastic-depth masks.
    pub rng: &'a mut rand::rngs::StdRng,
    /// Called with each prunable layer's name and its input, before the
    /// layer runs (activation statistics for Wanda).
    pub record: Option<Recorder<'a>>,
}

/// Runs `graph` on `x` (its one input, any batch); returns its first output.
pub fn forward(graph: &Graph, x: &Tensor, run: &mut Run<'_>) -> Result<Tensor> {
    let batch = x.dim(0)?;
    let last_use = graph.last_uses();
    let mut values: Vec<Option<Tensor>> = vec![None; graph.values.len()];
    let mut inputs = graph.inputs.iter();
    for (i, node) in graph.nodes.iter().enumerate() {
        let y = match &node.op {
            Op::Input => {
                if inputs.next().is_some_and(|&id| id != node.output) || graph.inputs.len() != 1 {
                    return Err(node_error(&node.name, "Shears runs graphs of one input"));
                }
                let want = &graph.value(node.output).dims;
                if x.rank() != want.len() || x.dims()[1..] != want[1..] {
                    return Err(node_error(
                        &node.name,
                        format!("takes {want:?} (any batch), gets {:?}", x.dims()),
                    ));
                }
                x.clone()
            }
            Op::Param { .. } => match run.params.get(&node.name) {
                Some(v) => v.as_tensor().clone(),
                None => run
                    .buffers
                    .get(&node.name)
                    .cloned()
                    .ok_or_else(|| node_error(&node.name, "the parameter is missing"))?,
            },
            op => {
                let ins: Vec<&Tensor> = node
                    .inputs
                    .iter()
                    .map(|&v| {
                        values[v.index()]
                            .as_ref()
                            .expect("read before its last use")
                    })
                    .collect();
                let dims: Vec<&[usize]> = ins.iter().map(|t| t.dims()).collect();
                let out = op
                    .out_dims(&dims, batch)
                    .map_err(|m| node_error(&node.name, m))?;
                if let (Some(rec), Op::Conv(_) | Op::Linear) = (run.record.as_deref_mut(), op) {
                    if let Some(layer) = graph.value(node.inputs[1]).name.strip_suffix(".weight") {
                        rec(layer, ins[0])?;
                    }
                }
                let y = apply(graph, node, op, &ins, &out, run)
                    .map_err(|e| node_error(&node.name, e.to_string()))?;
                if y.dims() != out.as_slice() {
                    return Err(node_error(
                        &node.name,
                        format!("gave {:?} where its rule says {out:?}", y.dims()),
                    ));
                }
                y
            }
        };
        values[node.output.index()] = Some(y);
        for &v in &node.inputs {
            if last_use[v.index()] == i {
                values[v.index()] = None;
            }
        }
    }
    let out = graph
        .outputs
        .first()
        .ok_or_else(|| Error::Shape("the graph has no output".into()))?;
    Ok(values[out.index()].take().expect("outputs are kept"))
}

/// One op on its inputs `ins`, to dims `out`.
fn apply(
    graph: &Graph,
    node: &Node,
    op: &Op,
    ins: &[&Tensor],
    out: &[usize],
    run: &mut Run<'_>,
) -> Result<Tensor> {
    let x = ins[0];
    Ok(match op {
        Op::Input | Op::Param { .. } => unreachable!("handled by the caller"),
        Op::Conv(c) => convolution(c, x, ins[1], ins.get(2).copied())?,
        Op::Linear => {
            let w = ins[1];
            let b = ins.get(2).copied();
            if x.rank() == 2 {
                linear::linear(x, w, b)?
            } else {
                let k = x.dim(D::Minus1)?;
                let flat = x.reshape(((), k))?;
                linear::linear(&flat, w, b)?.reshape(out)?
            }
        }
        Op::MatMul => x.contiguous()?.broadcast_matmul(&ins[1].contiguous()?)?,
        Op::BatchNorm { eps, momentum } => {
            let (gamma, beta) = (ins[1], ins[2]);
            if !run.train {
                batchnorm::eval(x, gamma, beta, ins[3], ins[4], *eps)?
            } else {
                if x.elem_count() == x.dim(1)? {
                    return Err(Error::Shape(
                        "batch norm gets one value per channel in training (batch of 1 on a 1x1 \
                         map); use a larger batch"
                            .into(),
                    ));
                }
                let o = batchnorm::train(x, gamma, beta, *eps)?;
                for (k, new) in [(3, &o.mean), (4, &o.unbiased_var)] {
                    let name = &graph.value(node.inputs[k]).name;
                    let v = ((ins[k] * (1.0 - momentum))? + (new * *momentum)?)?;
                    run.buffers.insert(name.clone(), v.detach());
                }
                o.y
            }
        }
        Op::LayerNorm { axis, eps } => {
            let n: usize = x.dims()[*axis..].iter().product();
            let flat = x.reshape(((), n))?;
            let mean = flat.mean_keepdim(1)?;
            let centred = flat.broadcast_sub(&mean)?;
            let var = centred.sqr()?.mean_keepdim(1)?;
            let y = centred.broadcast_div(&(var + *eps)?.sqrt()?)?;
            let y = y
                .broadcast_mul(&ins[1].reshape((1, n))?)?
                .broadcast_add(&ins[2].reshape((1, n))?)?;
            y.reshape(x.dims())?
        }
        Op::Act(a) => activation(a, x)?,
        Op::Binary(b) => {
            let (l, r) = (x, ins[1]);
            match b {
                Binary::Add => l.broadcast_add(r)?,
                Binary::Sub => l.broadcast_sub(r)?,
                Binary::Mul => l.broadcast_mul(r)?,
                Binary::Div => l.broadcast_div(r)?,
            }
        }
        Op::Softmax { axis } => {
            let max = x.max_keepdim(*axis)?.detach();
            let e = x.broadcast_sub(&max)?.exp()?;
            e.broadcast_div(&e.sum_keepdim(*axis)?)?
        }
        Op::Concat { axis } => {
            // A part of batch 1 beside a batch of b (a class token) is
            // broadcast along the batch.
            let b = out[0];
            let parts = ins
                .iter()
                .map(|t| {
                    let mut d = t.dims().to_vec();
                    if d[0] == b {
                        return Ok((*t).clone());
                    }
                    d[0] = b;
                    t.broadcast_as(d)?.contiguous()
                })
                .collect::<candle_core::Result<Vec<_>>>()?;
            Tensor::cat(&parts, *axis)?
        }
        Op::Slice { axis, start, end } => x.narrow(*axis, *start, end - start)?,
        Op::Pad {
            axis,
            before,
            after,
            value,
        } => {
            let fill = |n: usize| -> candle_core::Result<Tensor> {
                let mut dims = x.dims().to_vec();
                dims[*axis] = n;
                Tensor::full(exact(*value), dims, x.device())?.to_dtype(x.dtype())
            };
            let mut parts = Vec::new();
            if *before > 0 {
                parts.push(fill(*before)?);
            }
            parts.push(x.clone());
            if *after > 0 {
                parts.push(fill(*after)?);
            }
            Tensor::cat(&parts, *axis)?
        }
        Op::Transpose { perm } => x.permute(perm.as_slice())?.contiguous()?,
        Op::Reshape { .. } => x.contiguous()?.reshape(out)?,
        Op::ReduceMean { axes, keep } => {
            let mut y = x.clone();
            for &a in axes.iter().rev() {
                y = if *keep {
                    y.mean_keepdim(a)?
                } else {
                    y.mean(a)?
                };
            }
            y
        }
        Op::MaxPool(p) => max_pool(p, x, out)?,
        Op::AvgPool(p) => {
            let (h, w) = (x.dim(2)?, x.dim(3)?);
            pool::separable(x, &p.avg_taps(0, h, out[2]), &p.avg_taps(1, w, out[3]))?
        }
        Op::AdaptiveAvgPool { out: [oh, ow] } => pool::adaptive_avg_pool2d(x, *oh, *ow)?,
        Op::Gather { axis, index, .. } => {
            let idx: Vec<u32> = index.iter().map(|&i| i as u32).collect();
            let idx = Tensor::from_vec(idx, index.len(), x.device())?;
            x.contiguous()?.index_select(&idx, *axis)?.reshape(out)?
        }
        Op::Dropout { p } if run.train && *p > 0.0 => {
            let mask = dropout::mask(run.rng, x.elem_count(), *p);
            let mask = Tensor::from_vec(mask, x.dims(), x.device())?.to_dtype(x.dtype())?;
            (x * mask)?
        }
        Op::DropPath { p } if run.train && *p > 0.0 => {
            let b = x.dim(0)?;
            let scale = 1.0 / (1.0 - *p);
            let keep: Vec<f32> = (0..b)
                .map(|_| {
                    if run.rng.random::<f32>() < 1.0 - p {
                        scale
                    } else {
                        0.0
                    }
                })
                .collect();
            let mut shape = vec![1; x.rank()];
            shape[0] = b;
            let keep = Tensor::from_vec(keep, shape, x.device())?.to_dtype(x.dtype())?;
            x.broadcast_mul(&keep)?
        }
        Op::Dropout { .. } | Op::DropPath { .. } => x.clone(),
    })
}

/// A convolution: the fused op for a plain one (square kernel, one stride
/// and padding), Candle's `conv2d` (after explicit zero padding where the
/// sides differ) otherwise.
fn convolution(c: &Conv, x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Result<Tensor> {
    let [t, l, bo, r] = c.pad;
    let same_pad = t == l && t == bo && t == r;
    let k = w.dims();
    if c.groups == 1
        && c.dilation == [1, 1]
        && c.stride[0] == c.stride[1]
        && same_pad
        && k[2] == k[3]
    {
        return Ok(conv::conv2d(x, w, b, c.stride[0], t)?);
    }
    // Candle's conv2d takes one stride and one dilation: a kernel dilated
    // differently per axis gets its zeros written in, and a stride that
    // differs per axis becomes stride 1 and every s-th row or column.
    let (w, dilation) = if c.dilation[0] == c.dilation[1] {
        (w.clone(), c.dilation[0])
    } else {
        (dilate(&dilate(w, 2, c.dilation[0])?, 3, c.dilation[1])?, 1)
    };
    let one_stride = c.stride[0] == c.stride[1];
    let stride = if one_stride { c.stride[0] } else { 1 };
    // The padding is written out, and what no window reaches is cut off:
    // Candle's backward rebuilds the input's size as if the last window
    // ended at its edge, and would fail on rows past it.
    let mut x = x.clone();
    for (axis, (begin, end)) in [(2, (t, bo)), (3, (l, r))] {
        let k_eff = (w.dim(axis)? - 1) * dilation + 1;
        let n = x.dim(axis)?;
        let s = if one_stride {
            stride
        } else {
            c.stride[axis - 2]
        };
        let outs = (n + begin + end - k_eff) / s + 1;
        let (outs, s) = if one_stride {
            (outs, s)
        } else {
            ((outs - 1) * s + 1, 1)
        };
        let len = (outs - 1) * s + k_eff;
        x = x.pad_with_zeros(axis, begin, len.saturating_sub(begin + n))?;
        if begin + n > len {
            x = x.narrow(axis, 0, len)?;
        }
        x = x.contiguous()?;
    }
    let p = 0;
    let mut y = x.conv2d(&w, p, stride, dilation, c.groups)?;
    if !one_stride {
        y = every(&every(&y, 2, c.stride[0])?, 3, c.stride[1])?;
    }
    Ok(match b {
        Some(b) => y.broadcast_add(&b.reshape((1, (), 1, 1))?)?,
        None => y,
    })
}

/// `w` with `d - 1` zeros between its taps along `axis`.
fn dilate(w: &Tensor, axis: usize, d: usize) -> candle_core::Result<Tensor> {
    let k = w.dim(axis)?;
    if d <= 1 || k <= 1 {
        return Ok(w.clone());
    }
    let mut zeros_shape = w.dims().to_vec();
    zeros_shape.insert(axis + 1, d - 1);
    let zeros = Tensor::zeros(zeros_shape, w.dtype(), w.device())?;
    let spread = Tensor::cat(&[&w.unsqueeze(axis + 1)?, &zeros], axis + 1)?;
    let mut flat = w.dims().to_vec();
    flat[axis] = k * d;
    spread.reshape(flat)?.narrow(axis, 0, (k - 1) * d + 1)
}

/// Every `s`-th entry of `y` along `axis`, from the first.
fn every(y: &Tensor, axis: usize, s: usize) -> candle_core::Result<Tensor> {
    if s <= 1 {
        return Ok(y.clone());
    }
    let n = y.dim(axis)?;
    let idx: Vec<u32> = (0..n).step_by(s).map(|i| i as u32).collect();
    let len = idx.len();
    y.contiguous()?
        .index_select(&Tensor::from_vec(idx, len, y.device())?, axis)
}

/// Max pooling: the fused op for a square, symmetric, floor-mode window,
/// the window gather of `model::pool` otherwise.
fn max_pool(p: &Pool, x: &Tensor, out: &[usize]) -> Result<Tensor> {
    let [k, kw] = p.kernel;
    let square = k == kw && p.stride[0] == p.stride[1] && p.pad.iter().all(|&v| v == p.pad[0]);
    if square && !p.ceil {
        return Ok(pool::max_pool2d_strided(x, k, p.stride[0], p.pad[0])?);
    }
    Ok(pool::max_pool_windows(
        x,
        p.kernel,
        p.stride,
        p.pad,
        [out[2], out[3]],
    )?)
}

/// `x` clamped to `[lo, hi]` with the gradient passing strictly inside
/// (PyTorch's `hardtanh`), where Candle's `clamp` would halve it at a tie.
fn clip(x: &Tensor, lo: f64, hi: f64) -> candle_core::Result<Tensor> {
    let inside = x.gt(lo)?.mul(&x.lt(hi)?)?;
    inside.where_cond(x, &x.clamp(lo, hi)?.detach())
}

/// An activation as Candle ops.
fn activation(a: &Act, x: &Tensor) -> candle_core::Result<Tensor> {
    match *a {
        Act::Relu => crate::model::relu::relu(x),
        Act::Clip { min, max } => clip(x, exact(min), exact(max)),
        Act::LeakyRelu { alpha } => x.ge(0.0)?.where_cond(x, &(x * exact(alpha))?),
        Act::Sigmoid => sigmoid(x),
        Act::Silu => x.silu(),
        Act::HardSigmoid { alpha, beta } => clip(&((x * exact(alpha))? + exact(beta))?, 0.0, 1.0),
        Act::HardSwish => x.mul(&(clip(&(x + 3.0)?, 0.0, 6.0)? / 6.0)?),
        // Written out: Candle's own GELU backward rounds its constants
        // to six digits.
        Act::Gelu { tanh: false } => {
            let cdf = ((x / std::f64::consts::SQRT_2)?.erf()? + 1.0)?;
            (x * 0.5)?.mul(&cdf)
        }
        Act::Gelu { tanh: true } => {
            let c = (2.0 / std::f64::consts::PI).sqrt();
            let inner = ((x + (x.sqr()?.mul(x)? * 0.044715)?)? * c)?;
            (x * 0.5)?.mul(&(inner.tanh()? + 1.0)?)
        }
        Act::Tanh => x.tanh(),
        Act::Erf => x.erf(),
        Act::Scale { by } => x * exact(by),
        Act::Sqrt => x.sqrt(),
        Act::Pow { exponent } => {
            let e = exact(exponent);
            if e.fract() == 0.0 && (1.0..=8.0).contains(&e) {
                // Repeated products: Candle's `powf` goes through `ln`,
                // NaN for negative values.
                let mut y = x.clone();
                for _ in 1..e as usize {
                    y = y.mul(x)?;
                }
                Ok(y)
            } else {
                x.powf(e)
            }
        }
    }
}

/// `1 / (1 + exp(-x))`.
fn sigmoid(x: &Tensor) -> candle_core::Result<Tensor> {
    (x.neg()?.exp()? + 1.0)?.recip()
}
