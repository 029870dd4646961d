//! A model's layers as a table, as Netron would show them: every node in
//! order with its kind, output shape, parameters, MACs and what pruning can
//! do to it; plus the preprocessing. What the app's Model view and
//! `shears inspect` show.

use std::collections::BTreeSet;

use crate::data::NormChoice;
use crate::model::arch::{visit, Architecture, Node};
use crate::model::graph::{Graph, Op};
use crate::prune::structure::channel_groups;

/// What pruning can remove from a layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prunable {
    /// Single weights and whole output channels (structured pruning).
    Channels,
    /// Single weights only: its output channels join a residual addition,
    /// whose two branches must keep the same channels.
    TiedByResidual,
    /// Single weights only: its outputs are the class scores.
    Classifier,
    /// Goes with the channels of the layer before it (BatchNorm).
    WithProducer,
    /// Single weights only: channel pruning does not follow a graph of
    /// operations yet.
    WeightsOnly,
    /// Nothing to prune.
    Nothing,
}

impl Prunable {
    /// What the table says.
    pub fn label(self) -> &'static str {
        match self {
            Prunable::Channels => "weights, channels",
            Prunable::TiedByResidual => "weights (channels tied by a residual add)",
            Prunable::Classifier => "weights (outputs are the classes)",
            Prunable::WithProducer => "with the layer before",
            Prunable::WeightsOnly => "weights (channels: not on graphs yet)",
            Prunable::Nothing => "",
        }
    }
}

/// One row of the table.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerRow {
    /// Nesting depth (inside residual blocks).
    pub depth: usize,
    /// The layer's name, or empty for unnamed operations.
    pub name: String,
    /// The operation with its settings: `conv 3x3 /2 p1`, `max pool 3 /2 p1`, ...
    pub kind: String,
    /// Output shape of one sample (`64x56x56`, `1000`).
    pub output: String,
    /// Trainable parameters.
    pub params: usize,
    /// Multiply-accumulates for one sample.
    pub macs: usize,
    /// What pruning can remove.
    pub prunable: Prunable,
}

/// The rows of `arch`, in order.
pub fn layer_rows(arch: &Architecture) -> Vec<LayerRow> {
    if let Some(g) = &arch.graph {
        return graph_rows(g);
    }
    let producers: BTreeSet<String> = channel_groups(arch)
        .into_iter()
        .map(|g| g.producer)
        .collect();
    let macs: std::collections::BTreeMap<String, usize> = arch
        .layers()
        .into_iter()
        .map(|l| (l.name, l.macs))
        .collect();
    let last_linear = arch.layers().last().map(|l| l.name.clone());
    let mut nodes = Vec::new();
    visit(&arch.nodes, &mut |n| nodes.push(n.clone()));
    let outputs = arch.node_outputs();
    let weighted = |name: &str| {
        if producers.contains(name) {
            Prunable::Channels
        } else if last_linear.as_deref() == Some(name) {
            Prunable::Classifier
        } else {
            Prunable::TiedByResidual
        }
    };
    nodes
        .iter()
        .zip(outputs)
        .map(|(n, (depth, out))| {
            let (name, kind, params, prunable) = match n {
                Node::Conv2d {
                    name,
                    in_c,
                    out_c,
                    k,
                    stride,
                    pad,
                    bias,
                } => (
                    name.clone(),
                    format!(
                        "conv {k}x{k} /{stride} p{pad}{}",
                        if *bias { "" } else { ", no bias" }
                    ),
                    out_c * in_c * k * k + if *bias { *out_c } else { 0 },
                    weighted(name),
                ),
                Node::Linear {
                    name,
                    in_f,
                    out_f,
                    bias,
                } => (
                    name.clone(),
                    format!("linear{}", if *bias { "" } else { ", no bias" }),
                    in_f * out_f + if *bias { *out_f } else { 0 },
                    weighted(name),
                ),
                Node::BatchNorm { name, c } => (
                    name.clone(),
                    "batch norm".into(),
                    2 * c,
                    Prunable::WithProducer,
                ),
                Node::Relu => (String::new(), "relu".into(), 0, Prunable::Nothing),
                Node::MaxPool { k, stride, pad } => (
                    String::new(),
                    format!("max pool {k} /{} p{pad}", stride.unwrap_or(*k)),
                    0,
                    Prunable::Nothing,
                ),
                Node::AvgPool {
                    k,
                    stride,
                    pad,
                    count_pad,
                } => (
                    String::new(),
                    format!(
                        "avg pool {k} /{stride} p{pad}{}",
                        if *count_pad {
                            ""
                        } else {
                            ", padding not counted"
                        }
                    ),
                    0,
                    Prunable::Nothing,
                ),
                Node::GlobalAvgPool => (
                    String::new(),
                    "global avg pool".into(),
                    0,
                    Prunable::Nothing,
                ),
                Node::AdaptiveAvgPool { h, w } => (
                    String::new(),
                    format!("adaptive avg pool {h}x{w}"),
                    0,
                    Prunable::Nothing,
                ),
                Node::Dropout { p } => {
                    (String::new(), format!("dropout {p}"), 0, Prunable::Nothing)
                }
                Node::Flatten => (String::new(), "flatten".into(), 0, Prunable::Nothing),
                Node::Residual { shortcut, .. } => (
                    String::new(),
                    if shortcut.is_empty() {
                        "residual block (identity shortcut)".into()
                    } else {
                        "residual block (projection shortcut)".into()
                    },
                    0,
                    Prunable::Nothing,
                ),
            };
            LayerRow {
                depth,
                macs: macs.get(&name).copied().unwrap_or(0),
                name,
                kind,
                output: out.to_string(),
                params,
                prunable,
            }
        })
        .collect()
}

/// The rows of a graph: every node but inputs and parameters, in order,
/// indented by how many earlier values wait to be read after it runs
/// (inside a residual branch 1, deeper where branches nest or a dense
/// block's earlier outputs wait for its concatenation).
fn graph_rows(g: &Graph) -> Vec<LayerRow> {
    let is_param = |v: crate::model::graph::ValueId| {
        matches!(
            g.producer(v).map(|n| &n.op),
            Some(Op::Param { .. }) | Some(Op::Input)
        )
    };
    let last_use = g.last_uses();
    let last_layer = g
        .nodes
        .iter()
        .rev()
        .find(|n| matches!(n.op, Op::Conv(_) | Op::Linear))
        .map(|n| n.name.clone());
    let mut rows = Vec::new();
    let mut live: Vec<crate::model::graph::ValueId> = Vec::new();
    for (i, n) in g.nodes.iter().enumerate() {
        if matches!(n.op, Op::Param { .. }) {
            continue;
        }
        live.retain(|v| last_use[v.index()] > i);
        let depth = live.len();
        if !matches!(n.op, Op::Input) {
            let dims: Vec<&[usize]> = n
                .inputs
                .iter()
                .map(|&v| g.value(v).dims.as_slice())
                .collect();
            let out = &g.value(n.output).dims;
            let params = n
                .inputs
                .iter()
                .filter(|&&v| {
                    g.producer(v)
                        .is_some_and(|p| matches!(p.op, Op::Param { role } if role.trainable()))
                })
                .map(|&v| g.value(v).dims.iter().product::<usize>())
                .sum();
            let weighted = matches!(n.op, Op::Conv(_) | Op::Linear)
                && n.inputs.get(1).is_some_and(|&w| is_param(w));
            rows.push(LayerRow {
                depth,
                name: if weighted {
                    g.value(n.inputs[1])
                        .name
                        .strip_suffix(".weight")
                        .unwrap_or(&n.name)
                        .to_string()
                } else {
                    n.name.clone()
                },
                kind: op_label(&n.op, &dims),
                output: out[1..]
                    .iter()
                    .map(|d| d.to_string())
                    .collect::<Vec<_>>()
                    .join("x"),
                params,
                macs: n.op.macs(&dims, out),
                prunable: if !weighted {
                    Prunable::Nothing
                } else if last_layer.as_deref() == Some(n.name.as_str()) {
                    Prunable::Classifier
                } else {
                    Prunable::WeightsOnly
                },
            });
        }
        if last_use[n.output.index()] > i {
            live.push(n.output);
        }
    }
    rows
}

/// An op with its settings, as the table says it.
fn op_label(op: &Op, dims: &[&[usize]]) -> String {
    match op {
        Op::Conv(c) => {
            let k = dims.get(1).map_or(&[][..], |d| &d[2..]);
            let mut s = format!("conv {}x{} /{}", k[0], k[1], c.stride[0]);
            if c.stride[0] != c.stride[1] {
                s += &format!(",{}", c.stride[1]);
            }
            if c.pad.iter().any(|&p| p != c.pad[0]) {
                s += &format!(" p{:?}", c.pad);
            } else {
                s += &format!(" p{}", c.pad[0]);
            }
            if c.groups > 1 && dims[0].get(1) == Some(&c.groups) {
                s += ", depthwise";
            } else if c.groups > 1 {
                s += &format!(", {} groups", c.groups);
            }
            if c.dilation != [1, 1] {
                s += &format!(", dilation {:?}", c.dilation);
            }
            if dims.len() < 3 {
                s += ", no bias";
            }
            s
        }
        Op::Linear if dims.len() < 3 => "linear, no bias".into(),
        Op::Linear => "linear".into(),
        Op::MatMul => "matmul".into(),
        Op::BatchNorm { .. } => "batch norm".into(),
        Op::LayerNorm { .. } => "layer norm".into(),
        Op::Act(a) => a.name().replace('_', " "),
        Op::Binary(b) => b.name().into(),
        Op::Softmax { axis } => format!("softmax (axis {axis})"),
        Op::Concat { axis } => format!("concat (axis {axis})"),
        Op::Slice { axis, start, end } => format!("slice {start}..{end} (axis {axis})"),
        Op::Pad {
            axis,
            before,
            after,
            value,
        } => format!("pad {before}+{after} of {value} (axis {axis})"),
        Op::Transpose { perm } => format!("transpose {perm:?}"),
        Op::Reshape { .. } => "reshape".into(),
        Op::ReduceMean { axes, .. } if axes == &[2, 3] => "global avg pool".into(),
        Op::ReduceMean { axes, .. } => format!("mean over {axes:?}"),
        Op::MaxPool(p) => format!("max pool {}x{} /{}", p.kernel[0], p.kernel[1], p.stride[0]),
        Op::AvgPool(p) => format!("avg pool {}x{} /{}", p.kernel[0], p.kernel[1], p.stride[0]),
        Op::AdaptiveAvgPool { out } => format!("adaptive avg pool {}x{}", out[0], out[1]),
        Op::Gather { axis, index, .. } => format!("take {index:?} (axis {axis})"),
        Op::Dropout { p } => format!("dropout {p}"),
        Op::DropPath { p } => format!("drop path {p}"),
        Op::Input | Op::Param { .. } => String::new(),
    }
}

/// The preprocessing in words: `3x224x224 inputs (image files: shorter side
/// resized to 256, then the centre crop); pixels in [0, 1], normalised with
/// mean [0.485, ...] and std [...] (fixed)`.
pub fn preprocess_text(arch: &Architecture) -> String {
    let [c, h, w] = arch.input;
    let size = match arch.preprocess.resize {
        Some(s) => format!(
            "{c}x{h}x{w} inputs (image files: shorter side resized to {s}, then the centre crop)"
        ),
        None => format!("{c}x{h}x{w} inputs (image files: resized to cover, then the centre crop)"),
    };
    let norm = match &arch.preprocess.norm {
        NormChoice::Fitted => {
            "pixels in [0, 1], normalised with mean and std fitted on the training data".into()
        }
        NormChoice::Fixed { mean, std } => {
            format!("pixels in [0, 1], normalised with mean {mean:?} and std {std:?} (fixed)")
        }
    };
    format!("{size}; {norm}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ModelSpec;

    #[test]
    fn resnet_rows_say_what_is_tied_and_what_is_prunable() {
        let arch = ModelSpec::Resnet20 { width: 4 }
            .build([3, 32, 32], 10)
            .unwrap();
        let rows = layer_rows(&arch);
        let row = |name: &str| rows.iter().find(|r| r.name == name).unwrap();
        // Inside a block the first conv's channels can go; the second feeds the add.
        assert_eq!(row("layer1.0.conv1").prunable, Prunable::Channels);
        assert_eq!(row("layer1.0.conv2").prunable, Prunable::TiedByResidual);
        assert_eq!(row("fc").prunable, Prunable::Classifier);
        assert_eq!(row("layer1.0.conv1").depth, 1);
        assert_eq!(row("layer2.0.conv1").output, "8x16x16");
        assert_eq!(row("fc").output, "10");
        let params: usize = rows.iter().map(|r| r.params).sum();
        assert_eq!(params, arch.num_params());
        let macs: usize = rows.iter().map(|r| r.macs).sum();
        assert_eq!(macs, arch.macs());
        assert!(rows
            .iter()
            .any(|r| r.kind == "residual block (projection shortcut)"));
    }
}
