//! The interpreter: runs a [`Graph`] forward on the CPU (evaluation, or
//! training with a tape) and backward through the tape, in `f32` for
//! training and `f64` for the gradient checks. Each op's kernels live in
//! its family's file under `model/ops/`; this file only moves values.
//!
//! The forward pass walks the nodes in order, keeping each value by id; in
//! evaluation a value is dropped after its last use, in training the tape
//! keeps what the backward pass reads (the values, argmaxes, batch
//! statistics, dropout masks). The backward pass walks the nodes in
//! reverse, computing a gradient only for inputs that lead to a trainable
//! parameter, and sums gradients where a value fans out. Parameters are
//! borrowed, never copied.

use std::collections::BTreeMap;
use std::sync::Arc;

use rand::Rng;

use super::{node_error, Graph, Op};
use crate::error::Result;
use crate::model::dropout;
use crate::model::kernel::Float;
use crate::model::ops::{conv, layout, matmul, norm, pool, softmax};

/// Where the interpreter reads parameters from, by name.
pub trait Params<T> {
    /// The values of parameter `name`, flattened.
    fn get(&self, name: &str) -> Option<&[T]>;
}

impl<T> Params<T> for BTreeMap<String, Vec<T>> {
    fn get(&self, name: &str) -> Option<&[T]> {
        BTreeMap::get(self, name).map(Vec::as_slice)
    }
}

impl<T> Params<T> for BTreeMap<&str, &[T]> {
    fn get(&self, name: &str) -> Option<&[T]> {
        BTreeMap::get(self, name).copied()
    }
}

/// A tensor during a pass: its values (owned, or a borrowed parameter) and dims.
#[derive(Debug, Clone)]
pub struct Buf<'a, T> {
    data: Data<'a, T>,
    /// Dims.
    pub dims: Vec<usize>,
}

#[derive(Debug, Clone)]
enum Data<'a, T> {
    Owned(Arc<Vec<T>>),
    Borrowed(&'a [T]),
}

impl<'a, T: Clone> Buf<'a, T> {
    /// A tensor of `dims` holding `data`.
    pub fn new(data: Vec<T>, dims: Vec<usize>) -> Self {
        Buf {
            data: Data::Owned(Arc::new(data)),
            dims,
        }
    }

    /// The values.
    pub fn data(&self) -> &[T] {
        match &self.data {
            Data::Owned(v) => v,
            Data::Borrowed(s) => s,
        }
    }

    /// The values, copied only if they are shared.
    pub fn into_vec(self) -> Vec<T> {
        match self.data {
            Data::Owned(v) => Arc::try_unwrap(v).unwrap_or_else(|shared| (*shared).clone()),
            Data::Borrowed(s) => s.to_vec(),
        }
    }
}

/// What a node's backward needs beyond its inputs and output.
enum Saved<T> {
    Nothing,
    Argmax(Vec<u32>),
    Stats(Vec<(f64, f64)>),
    Mask(Vec<T>),
}

/// What a training forward pass leaves for [`backward`]: every value's
/// dims, the values some backward reads, and what each node saved.
pub struct Tape<'a, T> {
    dims: Vec<Vec<usize>>,
    values: Vec<Option<Buf<'a, T>>>,
    saved: Vec<Saved<T>>,
}

/// A forward pass's result.
pub struct Forward<'a, T> {
    /// The graph's outputs, in order.
    pub outputs: Vec<Buf<'a, T>>,
    /// New values of buffers (BatchNorm running statistics) by name.
    pub updates: Vec<(String, Vec<T>)>,
    /// In training, what the backward pass reads.
    pub tape: Option<Tape<'a, T>>,
}

/// Gradients of a backward pass.
#[derive(Debug)]
pub struct Grads<T> {
    /// Per trainable parameter name (zeros for one no gradient reached).
    pub params: BTreeMap<String, Vec<T>>,
    /// Per graph input, where asked for.
    pub inputs: Vec<Option<Vec<T>>>,
}

/// Runs `graph` on `inputs`. With `train` (the dropout generator), the
/// pass is a training one: BatchNorm uses batch statistics and reports new
/// running statistics, dropout draws masks, and the tape is kept.
pub fn forward<'a, T: Float>(
    graph: &Graph,
    params: &'a impl Params<T>,
    inputs: Vec<Buf<'a, T>>,
    mut train: Option<&mut rand::rngs::StdRng>,
) -> Result<Forward<'a, T>> {
    if inputs.len() != graph.inputs.len() {
        return Err(crate::error::Error::Shape(format!(
            "the graph takes {} inputs, gets {}",
            graph.inputs.len(),
            inputs.len()
        )));
    }
    let batch = inputs
        .first()
        .and_then(|b| b.dims.first().copied())
        .unwrap_or(1);
    let last_use = graph.last_uses();
    let training = train.is_some();
    // In training, what a backward reads is kept; everything else is
    // dropped after its last use, as in evaluation.
    let keep = if training {
        kept_for_backward(graph)
    } else {
        vec![false; graph.values.len()]
    };
    let mut values: Vec<Option<Buf<'a, T>>> = vec![None; graph.values.len()];
    let mut all_dims: Vec<Vec<usize>> = vec![Vec::new(); graph.values.len()];
    for (&id, buf) in graph.inputs.iter().zip(inputs) {
        let want = &graph.value(id).dims;
        if buf.dims.len() != want.len() || buf.dims[1..] != want[1..] {
            return Err(crate::error::Error::Shape(format!(
                "input `{}` takes {:?} (any batch), gets {:?}",
                graph.value(id).name,
                want,
                buf.dims
            )));
        }
        values[id.index()] = Some(buf);
    }
    let mut saved = Vec::new();
    let mut updates = Vec::new();
    for (i, node) in graph.nodes.iter().enumerate() {
        let out = match &node.op {
            Op::Input => {
                saved.push(Saved::Nothing);
                all_dims[node.output.index()] = values[node.output.index()]
                    .as_ref()
                    .map(|b| b.dims.clone())
                    .unwrap_or_default();
                continue;
            }
            Op::Param { .. } => {
                let data = params
                    .get(&node.name)
                    .ok_or_else(|| node_error(&node.name, "the parameter is missing"))?;
                let dims = graph.value(node.output).dims.clone();
                if data.len() != crate::model::ops::numel(&dims) {
                    return Err(node_error(
                        &node.name,
                        format!(
                            "the parameter has {} values, its dims {dims:?} need more or fewer",
                            data.len()
                        ),
                    ));
                }
                saved.push(Saved::Nothing);
                Buf {
                    data: Data::Borrowed(data),
                    dims,
                }
            }
            op => {
                let out_dims = {
                    let ins = inputs_of(&values, &node.inputs);
                    let dims: Vec<&[usize]> = ins.iter().map(|b| b.dims.as_slice()).collect();
                    op.out_dims(&dims, batch)
                        .map_err(|m| node_error(&node.name, m))?
                };
                let x0 = node.inputs[0];
                // The first input's values, taken over when this node is
                // their last reader, no backward reads them and they have
                // the output's dims; their dims stay for the op's rule.
                let consume = op.in_place(training)
                    && last_use[x0.index()] == i
                    && !keep[x0.index()]
                    && !node.inputs[1..].contains(&x0)
                    && values[x0.index()]
                        .as_ref()
                        .is_some_and(|b| b.dims == out_dims);
                let owned = if consume {
                    let buf = values[x0.index()].take().expect("checked above");
                    values[x0.index()] = Some(Buf {
                        data: Data::Borrowed(&[]),
                        dims: buf.dims.clone(),
                    });
                    Some(buf.into_vec())
                } else {
                    None
                };
                let ins = inputs_of(&values, &node.inputs);
                if let Op::Reshape { .. } = op {
                    // The same values under new dims: nothing is copied.
                    saved.push(Saved::Nothing);
                    Buf {
                        data: ins[0].data.clone(),
                        dims: out_dims,
                    }
                } else {
                    let (y, s) = run_op(
                        op,
                        &ins,
                        owned,
                        &out_dims,
                        train.as_deref_mut(),
                        &node.name,
                        &mut |k, v| {
                            // A parameter's value bears the parameter's name.
                            let name = graph.value(node.inputs[k]).name.clone();
                            updates.push((name, v));
                        },
                    )?;
                    saved.push(s);
                    Buf::new(y, out_dims)
                }
            }
        };
        all_dims[node.output.index()] = out.dims.clone();
        values[node.output.index()] = Some(out);
        for &v in &node.inputs {
            if last_use[v.index()] == i && !keep[v.index()] {
                values[v.index()] = None;
            }
        }
    }
    let outputs = graph
        .outputs
        .iter()
        .map(|&o| values[o.index()].clone().expect("outputs are kept"))
        .collect();
    let tape = training.then_some(Tape {
        dims: all_dims,
        values,
        saved,
    });
    Ok(Forward {
        outputs,
        updates,
        tape,
    })
}

/// Which values a training pass must keep for the backward: those some
/// node's backward reads (as an input or as its output).
fn kept_for_backward(graph: &Graph) -> Vec<bool> {
    let mut keep = vec![false; graph.values.len()];
    for n in &graph.nodes {
        for (i, &v) in n.inputs.iter().enumerate() {
            keep[v.index()] |= n.op.backward_reads_input(i);
        }
        keep[n.output.index()] |= n.op.backward_reads_output();
    }
    keep
}

/// The values `ids` (each produced before it is read, and kept while a
/// later node or the tape needs it).
fn inputs_of<'v, 'a, T>(
    values: &'v [Option<Buf<'a, T>>],
    ids: &[super::ValueId],
) -> Vec<&'v Buf<'a, T>> {
    ids.iter()
        .map(|&v| {
            values[v.index()]
                .as_ref()
                .expect("a value is kept while it is read")
        })
        .collect()
}

/// One op forward: its output and what its backward needs; `update`
/// receives new values of buffer inputs (by input position).
///
/// `owned` holds the first input's values where the caller handed them
/// over (then `ins[0]` has its dims and no values): an op that can
/// ([`Op::in_place`]) writes its output over them.
#[allow(clippy::too_many_arguments)]
fn run_op<T: Float>(
    op: &Op,
    ins: &[&Buf<'_, T>],
    owned: Option<Vec<T>>,
    out: &[usize],
    train: Option<&mut rand::rngs::StdRng>,
    name: &str,
    update: &mut dyn FnMut(usize, Vec<T>),
) -> Result<(Vec<T>, Saved<T>)> {
    let x = ins[0];
    let xd = x.data();
    // The first input's values to overwrite (a copy unless handed over).
    let into_output = move || owned.unwrap_or_else(|| xd.to_vec());
    let nothing = |y: Vec<T>| -> Result<(Vec<T>, Saved<T>)> { Ok((y, Saved::Nothing)) };
    match op {
        Op::Input | Op::Param { .. } => unreachable!("handled by the caller"),
        Op::Conv(c) => {
            let g = c
                .geom(&x.dims, &ins[1].dims)
                .map_err(|m| node_error(name, m))?;
            nothing(conv::forward(
                g,
                xd,
                ins[1].data(),
                ins.get(2).map(|b| b.data()),
            ))
        }
        Op::Linear => {
            let d = matmul::linear_layer(&x.dims, &ins[1].dims);
            nothing(matmul::linear_forward(
                d,
                xd,
                ins[1].data(),
                ins.get(2).map(|b| b.data()),
            ))
        }
        Op::MatMul => nothing(matmul::matmul(
            xd,
            &x.dims,
            ins[1].data(),
            &ins[1].dims,
            out,
        )),
        Op::BatchNorm { eps, momentum } => {
            let p = [ins[1].data(), ins[2].data(), ins[3].data(), ins[4].data()];
            if train.is_none() {
                return nothing(norm::batch_norm_eval(*eps, into_output(), &x.dims, p));
            }
            let (b, c, hw) = norm::bn_layout(&x.dims);
            if b * hw == 1 {
                return Err(node_error(
                    name,
                    "batch norm gets one value per channel in training (batch of 1 on a 1x1 map); use a larger batch",
                ));
            }
            let layer = norm::batch_norm_layer(*eps, &x.dims);
            let stats = layer.stats(xd);
            let y = layer.normalise(xd, p[0], p[1], &stats);
            let (mean, var) = layer.running::<T>(&stats);
            let (keep, take) = (T::from_f64(1.0 - momentum), T::from_f64(*momentum));
            for (k, new) in [(3, mean), (4, var)] {
                let old = ins[k].data();
                debug_assert_eq!(old.len(), c);
                update(
                    k,
                    old.iter()
                        .zip(&new)
                        .map(|(&o, &n)| o * keep + n * take)
                        .collect(),
                );
            }
            Ok((y, Saved::Stats(stats)))
        }
        Op::LayerNorm { axis, eps } => {
            let n = crate::model::ops::numel(&x.dims[*axis..]);
            let (y, stats) = norm::layer_norm(*eps, n, xd, ins[1].data(), ins[2].data());
            Ok((y, Saved::Stats(stats)))
        }
        Op::Act(a) => {
            let mut y = into_output();
            a.forward_in_place(&mut y);
            nothing(y)
        }
        Op::Binary(b) if x.dims == out => {
            let mut y = into_output();
            b.forward_in_place(&mut y, ins[1].data(), &ins[1].dims, out);
            nothing(y)
        }
        Op::Binary(b) => nothing(b.forward(xd, &x.dims, ins[1].data(), &ins[1].dims, out)),
        Op::Softmax { axis } => nothing(softmax::forward(*axis, xd, &x.dims)),
        Op::Concat { axis } => {
            let parts: Vec<(&[T], &[usize])> =
                ins.iter().map(|b| (b.data(), b.dims.as_slice())).collect();
            nothing(layout::concat(*axis, &parts, out))
        }
        Op::Slice { axis, start, end } => nothing(layout::slice(*axis, *start, *end, xd, &x.dims)),
        Op::Pad {
            axis,
            before,
            after,
            value,
        } => nothing(layout::pad(
            *axis,
            *before,
            *after,
            T::from_f64(crate::model::ops::activation::exact(*value)),
            xd,
            &x.dims,
        )),
        Op::Transpose { perm } => nothing(layout::transpose(perm, xd, &x.dims)),
        Op::Reshape { .. } => unreachable!("shares its input's values (the caller)"),
        Op::ReduceMean { axes, .. } => nothing(pool::reduce_mean(axes, xd, &x.dims)),
        Op::MaxPool(p) => {
            let (y, at) = p.max_forward(xd, &x.dims, out);
            Ok((y, Saved::Argmax(at)))
        }
        Op::AvgPool(p) => nothing(p.avg_forward(xd, &x.dims, out)),
        Op::AdaptiveAvgPool { .. } => nothing(pool::adaptive_forward(xd, &x.dims, out)),
        Op::Gather { axis, index, .. } => nothing(layout::gather(*axis, index, xd, &x.dims)),
        Op::Dropout { p } => match train {
            Some(rng) if *p > 0.0 => {
                let mut y = into_output();
                let mask: Vec<T> = dropout::mask(rng, y.len(), *p)
                    .into_iter()
                    .map(|m| T::from_f64(m as f64))
                    .collect();
                y.iter_mut().zip(&mask).for_each(|(v, &m)| *v *= m);
                Ok((y, Saved::Mask(mask)))
            }
            _ => nothing(into_output()),
        },
        Op::DropPath { p } => match train {
            Some(rng) if *p > 0.0 => {
                let mut y = into_output();
                let b = x.dims[0];
                let per = y.len() / b.max(1);
                let scale = T::from_f64(1.0 / (1.0 - *p as f64));
                let mask: Vec<T> = (0..b)
                    .flat_map(|_| {
                        let m = if rng.random::<f32>() < 1.0 - p {
                            scale
                        } else {
                            T::zero()
                        };
                        std::iter::repeat_n(m, per)
                    })
                    .collect();
                y.iter_mut().zip(&mask).for_each(|(v, &m)| *v *= m);
                Ok((y, Saved::Mask(mask)))
            }
            _ => nothing(into_output()),
        },
    }
}

/// Runs the tape of a training [`forward`] backward from the gradients of
/// the graph's outputs; `input_grads` asks for the inputs' gradients too.
pub fn backward<T: Float>(
    graph: &Graph,
    tape: Tape<'_, T>,
    output_grads: Vec<Vec<T>>,
    input_grads: bool,
) -> Result<Grads<T>> {
    let needs = requires_grad(graph, input_grads);
    let mut grads: Vec<Option<Vec<T>>> = vec![None; graph.values.len()];
    for (&o, g) in graph.outputs.iter().zip(output_grads) {
        accumulate(&mut grads[o.index()], g);
    }
    let Tape {
        dims,
        values,
        saved,
    } = tape;
    let slot = |v: super::ValueId| Slot {
        dims: &dims[v.index()],
        buf: values[v.index()].as_ref(),
    };
    for (node, saved) in graph.nodes.iter().zip(saved).rev() {
        if matches!(node.op, Op::Input | Op::Param { .. }) {
            continue;
        }
        let Some(dy) = grads[node.output.index()].take() else {
            continue;
        };
        let need: Vec<bool> = node.inputs.iter().map(|v| needs[v.index()]).collect();
        if !need.iter().any(|&n| n) {
            continue;
        }
        let ins: Vec<Slot<'_, '_, T>> = node.inputs.iter().map(|&v| slot(v)).collect();
        let dins = op_backward(
            &node.op,
            &ins,
            slot(node.output),
            saved,
            dy,
            &need,
            &node.name,
        )?;
        for ((&v, d), n) in node.inputs.iter().zip(dins).zip(need) {
            if let (Some(d), true) = (d, n) {
                accumulate(&mut grads[v.index()], d);
            }
        }
    }
    let mut params = BTreeMap::new();
    for n in &graph.nodes {
        if let Op::Param { role } = n.op {
            if role.trainable() {
                let len = crate::model::ops::numel(&graph.value(n.output).dims);
                let g = grads[n.output.index()]
                    .take()
                    .unwrap_or_else(|| vec![T::zero(); len]);
                params.insert(n.name.clone(), g);
            }
        }
    }
    let inputs = graph
        .inputs
        .iter()
        .map(|&i| {
            if input_grads {
                grads[i.index()].take()
            } else {
                None
            }
        })
        .collect();
    Ok(Grads { params, inputs })
}

/// Which values a gradient must reach: those that depend on a trainable
/// parameter (or on an input, when its gradient is asked for).
fn requires_grad(graph: &Graph, inputs: bool) -> Vec<bool> {
    let mut needs = vec![false; graph.values.len()];
    for n in &graph.nodes {
        needs[n.output.index()] = match n.op {
            Op::Input => inputs,
            Op::Param { role } => role.trainable(),
            _ => n.inputs.iter().any(|v| needs[v.index()]),
        };
    }
    needs
}

fn accumulate<T: Float>(slot: &mut Option<Vec<T>>, g: Vec<T>) {
    match slot {
        Some(acc) => acc.iter_mut().zip(&g).for_each(|(a, &b)| *a += b),
        None => *slot = Some(g),
    }
}

/// A value as the backward pass sees it: its dims, and its values where
/// the tape kept them ([`Op::backward_reads_input`]).
struct Slot<'s, 'a, T> {
    dims: &'s [usize],
    buf: Option<&'s Buf<'a, T>>,
}

impl<'s, T: Clone> Slot<'s, '_, T> {
    fn data(&self) -> &'s [T] {
        self.buf
            .expect("the tape keeps the values a backward reads")
            .data()
    }
}

/// One op backward: the gradient of each input that `need`s one.
fn op_backward<T: Float>(
    op: &Op,
    ins: &[Slot<'_, '_, T>],
    y: Slot<'_, '_, T>,
    saved: Saved<T>,
    mut dy: Vec<T>,
    need: &[bool],
    name: &str,
) -> Result<Vec<Option<Vec<T>>>> {
    let x = &ins[0];
    let only_x = |d: Vec<T>| -> Result<Vec<Option<Vec<T>>>> { Ok(vec![Some(d)]) };
    match (op, saved) {
        (Op::Conv(c), _) => {
            let g = c
                .geom(x.dims, ins[1].dims)
                .map_err(|m| node_error(name, m))?;
            let [dx, dw, db] = conv::backward(g, x.data(), ins[1].data(), &dy, need[0]);
            Ok(vec![need[0].then_some(dx), Some(dw), Some(db)])
        }
        (Op::Linear, _) => {
            let d = matmul::linear_layer(x.dims, ins[1].dims);
            let [dx, dw, db] = matmul::linear_backward(d, x.data(), ins[1].data(), &dy);
            Ok(vec![Some(dx), Some(dw), Some(db)])
        }
        (Op::MatMul, _) => {
            let [da, db] = matmul::matmul_backward(
                x.data(),
                x.dims,
                ins[1].data(),
                ins[1].dims,
                &dy,
                y.dims,
                [need[0], need[1]],
            );
            Ok(vec![da, db])
        }
        (Op::BatchNorm { eps, .. }, Saved::Stats(stats)) => {
            let layer = norm::batch_norm_layer(*eps, x.dims);
            let mut dx = layer.backward_with(x.data(), &dy, ins[1].data(), &stats);
            let c = x.dims[1];
            let mut dgamma = dx.split_off(x.data().len());
            let dbeta = dgamma.split_off(c);
            Ok(vec![Some(dx), Some(dgamma), Some(dbeta), None, None])
        }
        (Op::BatchNorm { eps, .. }, _) => {
            let dx =
                norm::batch_norm_eval_backward(*eps, x.dims, ins[1].data(), ins[4].data(), &dy);
            Ok(vec![Some(dx), None, None, None, None])
        }
        (Op::LayerNorm { axis, .. }, Saved::Stats(stats)) => {
            let n = crate::model::ops::numel(&x.dims[*axis..]);
            let [dx, dg, db] = norm::layer_norm_backward(n, x.data(), ins[1].data(), &stats, &dy);
            Ok(vec![Some(dx), Some(dg), Some(db)])
        }
        (Op::Act(a), _) => {
            let at = if a.backward_reads_output() {
                y.data()
            } else {
                x.data()
            };
            a.backward_in_place(at, &mut dy);
            only_x(dy)
        }
        (Op::Binary(b), _) => {
            // The operands' values where the op reads them (the tape keeps
            // no others).
            let values = |k: usize| -> &[T] {
                if op.backward_reads_input(k) {
                    ins[k].data()
                } else {
                    &[]
                }
            };
            let [da, db] = b.backward(
                values(0),
                x.dims,
                values(1),
                ins[1].dims,
                &dy,
                y.dims,
                [need[0], need[1]],
            );
            Ok(vec![da, db])
        }
        (Op::Softmax { axis }, _) => only_x(softmax::backward(*axis, y.data(), &dy, x.dims)),
        (Op::Concat { axis }, _) => {
            let dims: Vec<&[usize]> = ins.iter().map(|b| b.dims).collect();
            Ok(layout::concat_backward(*axis, &dims, &dy, y.dims, need))
        }
        (Op::Slice { axis, start, end }, _) => {
            only_x(layout::slice_backward(*axis, *start, *end, x.dims, &dy))
        }
        // The gradient of a pad is the slice of `dy` the input became.
        (Op::Pad { axis, before, .. }, _) => {
            let end = before + x.dims[*axis];
            only_x(layout::slice(*axis, *before, end, &dy, y.dims))
        }
        (Op::Transpose { perm }, _) => only_x(layout::transpose_backward(perm, x.dims, &dy)),
        (Op::Reshape { .. }, _) => only_x(dy),
        (Op::ReduceMean { axes, .. }, _) => only_x(pool::reduce_mean_backward(axes, x.dims, &dy)),
        (Op::MaxPool(p), Saved::Argmax(at)) => only_x(p.max_backward(x.dims, y.dims, &at, &dy)),
        (Op::AvgPool(p), _) => only_x(p.avg_backward(x.dims, y.dims, &dy)),
        (Op::AdaptiveAvgPool { .. }, _) => only_x(pool::adaptive_backward(x.dims, y.dims, &dy)),
        (Op::Gather { axis, index, .. }, _) => {
            only_x(layout::gather_backward(*axis, index, x.dims, &dy))
        }
        (Op::Dropout { .. } | Op::DropPath { .. }, Saved::Mask(mask)) => {
            dy.iter_mut().zip(&mask).for_each(|(d, &m)| *d *= m);
            only_x(dy)
        }
        (Op::Dropout { .. } | Op::DropPath { .. }, _) => only_x(dy),
        (op, _) => Err(node_error(
            name,
            format!("{} has no record of its forward pass", op.kind()),
        )),
    }
}
