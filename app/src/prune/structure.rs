//! Structural dependencies between layers for channel pruning: which layers
//! can lose output channels, what goes with a removed channel (bias,
//! BatchNorm entries, the next layer's input slice), and physical compaction.

use std::collections::BTreeMap;

use candle_core::Tensor;

use crate::error::{Error, Result};
use crate::model::arch::{window_out, LayerKind};
use crate::model::{Architecture, Network, Node};

/// A layer whose output channels can be removed, with everything coupled to them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelGroup {
    /// The producing conv/linear layer.
    pub producer: String,
    /// Its kind.
    pub kind: LayerKind,
    /// Its number of output channels.
    pub channels: usize,
    /// Whether the producer has a bias.
    pub bias: bool,
    /// BatchNorm directly after it, if any.
    pub batch_norm: Option<String>,
    /// The layer consuming these channels and how many consecutive inputs each
    /// channel feeds (1 for a conv or after global pooling, `h*w` after a
    /// flatten).
    pub consumer: (String, usize),
}

/// Finds every layer whose output channels can be pruned structurally.
///
/// Excluded: the classifier (its outputs are the classes) and every layer
/// whose output joins a residual addition (the residual stream must keep
/// matching channels on both branches).
pub fn channel_groups(arch: &Architecture) -> Vec<ChannelGroup> {
    let mut groups = Vec::new();
    let (h, w) = (arch.input[1], arch.input[2]);
    scan(&arch.nodes, (h, w), &mut groups);
    groups
}

struct Pending {
    producer: String,
    kind: LayerKind,
    channels: usize,
    bias: bool,
    batch_norm: Option<String>,
    factor: usize,
}

fn scan(nodes: &[Node], mut hw: (usize, usize), groups: &mut Vec<ChannelGroup>) -> (usize, usize) {
    let mut pending: Option<Pending> = None;
    for n in nodes {
        match n {
            Node::Conv2d {
                name,
                out_c,
                k,
                stride,
                pad,
                bias,
                ..
            } => {
                if let Some(p) = pending.take() {
                    groups.push(finish(p, name));
                }
                let out = |n| window_out(n, *k, *stride, *pad).unwrap_or(0);
                hw = (out(hw.0), out(hw.1));
                pending = Some(Pending {
                    producer: name.clone(),
                    kind: LayerKind::Conv2d,
                    channels: *out_c,
                    bias: *bias,
                    batch_norm: None,
                    factor: 1,
                });
            }
            Node::Linear {
                name, out_f, bias, ..
            } => {
                if let Some(p) = pending.take() {
                    groups.push(finish(p, name));
                }
                hw = (1, 1);
                pending = Some(Pending {
                    producer: name.clone(),
                    kind: LayerKind::Linear,
                    channels: *out_f,
                    bias: *bias,
                    batch_norm: None,
                    factor: 1,
                });
            }
            Node::BatchNorm { name, .. } => {
                if let Some(p) = pending.as_mut() {
                    if p.batch_norm.is_none() {
                        p.batch_norm = Some(name.clone());
                    }
                }
            }
            Node::Relu | Node::Dropout { .. } => {}
            Node::MaxPool { k, stride, pad } => {
                let s = stride.unwrap_or(*k);
                let out = |n| window_out(n, *k, s, *pad).unwrap_or(0);
                hw = (out(hw.0), out(hw.1));
            }
            Node::AvgPool { k, stride, pad, .. } => {
                let out = |n| window_out(n, *k, *stride, *pad).unwrap_or(0);
                hw = (out(hw.0), out(hw.1));
            }
            Node::GlobalAvgPool => hw = (1, 1),
            Node::AdaptiveAvgPool { h, w } => hw = (*h, *w),
            Node::Flatten => {
                if let Some(p) = pending.as_mut() {
                    p.factor *= hw.0 * hw.1;
                }
                hw = (1, 1);
            }
            Node::Residual { body, shortcut } => {
                // The pending producer feeds the residual stream: not prunable.
                pending = None;
                let out = scan(body, hw, groups);
                scan(shortcut, hw, groups);
                hw = out;
            }
        }
    }
    hw
}

fn finish(p: Pending, consumer: &str) -> ChannelGroup {
    ChannelGroup {
        producer: p.producer,
        kind: p.kind,
        channels: p.channels,
        bias: p.bias,
        batch_norm: p.batch_norm,
        consumer: (consumer.to_string(), p.factor),
    }
}

/// Masks (parameter name -> 0/1 values, row-major) that remove the channels of
/// `group` where `keep[c]` is false.
pub fn channel_masks(
    group: &ChannelGroup,
    keep: &[bool],
    net: &Network,
) -> Result<BTreeMap<String, Vec<f32>>> {
    if keep.len() != group.channels {
        return Err(Error::Shape(format!(
            "layer `{}`: {} channel decisions for {} channels",
            group.producer,
            keep.len(),
            group.channels
        )));
    }
    let mut out = BTreeMap::new();
    let per_channel: Vec<f32> = keep.iter().map(|&k| if k { 1.0 } else { 0.0 }).collect();
    let w = net.weight(&group.producer)?;
    let fan_in: usize = w.dims()[1..].iter().product();
    out.insert(
        format!("{}.weight", group.producer),
        per_channel
            .iter()
            .flat_map(|&m| std::iter::repeat_n(m, fan_in))
            .collect(),
    );
    if group.bias {
        out.insert(format!("{}.bias", group.producer), per_channel.clone());
    }
    if let Some(bn) = &group.batch_norm {
        out.insert(format!("{bn}.weight"), per_channel.clone());
        out.insert(format!("{bn}.bias"), per_channel.clone());
    }
    let (consumer, factor) = &group.consumer;
    let cw = net.weight(consumer)?;
    let dims = cw.dims();
    let (rows, cols) = (dims[0], dims[1]);
    let inner: usize = dims[2..].iter().product();
    if cols != group.channels * factor {
        return Err(Error::Shape(format!(
            "layer `{consumer}` has {cols} inputs, expected {} x {factor} from `{}`",
            group.channels, group.producer
        )));
    }
    let mut m = Vec::with_capacity(rows * cols * inner);
    for _ in 0..rows {
        for c in 0..cols {
            m.extend(std::iter::repeat_n(per_channel[c / factor], inner));
        }
    }
    out.insert(format!("{consumer}.weight"), m);
    Ok(out)
}

/// Builds a physically smaller network: every channel of a [`ChannelGroup`]
/// whose weights are all masked out is removed, together with its bias,
/// BatchNorm entries and the consumer's input slice. The result computes the
/// same function as the masked network.
pub fn compact(net: &Network) -> Result<Network> {
    let groups = channel_groups(&net.arch);
    let mut arch = net.arch.clone();
    let mut tensors: BTreeMap<String, Tensor> = net
        .params
        .iter()
        .map(|(k, v)| (k.clone(), v.as_tensor().clone()))
        .chain(net.buffers.iter().map(|(k, t)| (k.clone(), t.clone())))
        .collect();
    let mut masks: BTreeMap<String, Tensor> = net.masks.clone();
    let device = net.device().clone();
    for g in &groups {
        let wkey = format!("{}.weight", g.producer);
        let keep = removable_free_channels(net, g)?;
        if keep.len() == g.channels || keep.is_empty() {
            continue;
        }
        let idx = Tensor::from_vec(keep.clone(), keep.len(), &device)?;
        let mut select0 = |key: &str| -> Result<()> {
            for map in [&mut tensors, &mut masks] {
                if let Some(t) = map.get(key) {
                    let t = t.index_select(&idx, 0)?;
                    map.insert(key.to_string(), t);
                }
            }
            Ok(())
        };
        select0(&wkey)?;
        select0(&format!("{}.bias", g.producer))?;
        if let Some(bn) = &g.batch_norm {
            for s in ["weight", "bias", "running_mean", "running_var"] {
                select0(&format!("{bn}.{s}"))?;
            }
        }
        let (consumer, factor) = &g.consumer;
        let cols: Vec<u32> = keep
            .iter()
            .flat_map(|&c| (0..*factor as u32).map(move |j| c * *factor as u32 + j))
            .collect();
        let cidx = Tensor::from_vec(cols.clone(), cols.len(), &device)?;
        let ckey = format!("{consumer}.weight");
        for map in [&mut tensors, &mut masks] {
            if let Some(t) = map.get(&ckey) {
                let t = t.index_select(&cidx, 1)?;
                map.insert(ckey.clone(), t);
            }
        }
        resize(
            &mut arch.nodes,
            &g.producer,
            consumer,
            keep.len(),
            cols.len(),
        );
    }
    arch.check()?;
    Network::from_tensors(arch, tensors, masks, &device)
}

/// Sets the producer's output count, its BatchNorm's channels and the
/// consumer's input count.
fn resize(nodes: &mut [Node], producer: &str, consumer: &str, out: usize, consumer_in: usize) {
    let mut bn_follows = false;
    for n in nodes.iter_mut() {
        match n {
            Node::Conv2d {
                name, out_c, in_c, ..
            } => {
                bn_follows = name == producer;
                if name == producer {
                    *out_c = out;
                }
                if name == consumer {
                    *in_c = consumer_in;
                }
            }
            Node::Linear {
                name, out_f, in_f, ..
            } => {
                bn_follows = false;
                if name == producer {
                    *out_f = out;
                }
                if name == consumer {
                    *in_f = consumer_in;
                }
            }
            Node::BatchNorm { c, .. } if bn_follows => {
                *c = out;
                bn_follows = false;
            }
            Node::Residual { body, shortcut } => {
                resize(body, producer, consumer, out, consumer_in);
                resize(shortcut, producer, consumer, out, consumer_in);
                bn_follows = false;
            }
            _ => {}
        }
    }
}

/// Whether each row (output channel) of the mask of parameter `key` keeps
/// any entry; `None` when the parameter has no mask.
pub(crate) fn rows_alive(net: &Network, key: &str) -> Result<Option<Vec<bool>>> {
    let Some(m) = net.masks.get(key) else {
        return Ok(None);
    };
    let m = if m.rank() > 1 {
        m.flatten_from(1)?.max(1)?
    } else {
        m.clone()
    };
    Ok(Some(m.to_vec1::<f32>()?.iter().map(|&v| v > 0.0).collect()))
}

/// Indices of the channels of `g` that must stay: a channel goes only when
/// its weights, bias and BatchNorm shift are all masked out (so its output is
/// exactly zero), as structured pruning leaves them.
fn removable_free_channels(net: &Network, g: &ChannelGroup) -> Result<Vec<u32>> {
    let Some(weight) = rows_alive(net, &format!("{}.weight", g.producer))? else {
        return Ok((0..g.channels as u32).collect());
    };
    let mut alive = weight;
    let mut shifts = Vec::new();
    if g.bias {
        shifts.push(format!("{}.bias", g.producer));
    }
    if let Some(bn) = &g.batch_norm {
        shifts.push(format!("{bn}.bias"));
    }
    for key in shifts {
        match rows_alive(net, &key)? {
            Some(b) => alive.iter_mut().zip(b).for_each(|(a, b)| *a |= b),
            None => return Ok((0..g.channels as u32).collect()),
        }
    }
    Ok(alive
        .iter()
        .enumerate()
        .filter(|(_, &a)| a)
        .map(|(i, _)| i as u32)
        .collect())
}
