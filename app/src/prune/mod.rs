//! Pruning: scoring layers with a criterion, turning scores into masks at a
//! target sparsity (per layer or globally), structured channel dependencies,
//! and sparsity accounting.

pub mod calibration;
pub mod cost;
pub mod structure;

use std::collections::BTreeMap;

use candle_core::Tensor;
use serde::{Deserialize, Serialize};
use shears_plugin_api::{Criterion, Granularity, LayerView};

use crate::error::{Error, Result};
use crate::model::{ActivationStats, Network};
pub use calibration::{
    criterion_inputs, Calibration, CalibrationSpec, DEFAULT_CALIBRATION_BATCHES,
};
pub use cost::{cost, dense_cost, Cost};
pub use structure::{channel_groups, compact, ChannelGroup};

/// What is removed: single weights or whole output channels / neurons.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum GranularityChoice {
    /// Individual weights of every conv and linear layer.
    #[default]
    Unstructured,
    /// Output channels of the layers whose channels can be removed (see
    /// [`channel_groups`]); the target is a fraction of those channels.
    Structured,
}

impl GranularityChoice {
    /// The name configs and the command line use (`unstructured`,
    /// `structured`).
    pub fn name(self) -> &'static str {
        match self {
            GranularityChoice::Unstructured => "unstructured",
            GranularityChoice::Structured => "structured",
        }
    }

    /// The plugin-contract granularity.
    pub fn api(self) -> Granularity {
        match self {
            GranularityChoice::Unstructured => Granularity::Unstructured,
            GranularityChoice::Structured => Granularity::StructuredChannel,
        }
    }
}

/// Where scores are ranked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Scope {
    /// One ranking over all layers (structured: scores are divided by their
    /// layer's mean first, so layers of different scale compete fairly).
    #[default]
    Global,
    /// Every layer is pruned to the target on its own.
    Layer,
}

/// Sparsity of one layer's weight.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerSparsity {
    /// Layer name.
    pub name: String,
    /// Weight entries.
    pub total: usize,
    /// Pruned entries.
    pub pruned: usize,
}

impl LayerSparsity {
    /// Fraction pruned.
    pub fn sparsity(&self) -> f32 {
        self.pruned as f32 / self.total.max(1) as f32
    }
}

/// Sparsity of a network: per prunable layer and over all of them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SparsityReport {
    /// Fraction of all conv/linear weights that are pruned.
    pub global: f32,
    /// Fraction of structurally prunable channels that are removed.
    pub channels: f32,
    /// Per layer, in forward order.
    pub layers: Vec<LayerSparsity>,
}

/// Counts pruned weights (mask zeros) per layer.
pub fn sparsity(net: &Network) -> Result<SparsityReport> {
    let mut layers = Vec::new();
    let (mut total, mut pruned) = (0usize, 0usize);
    for l in net.arch.layers() {
        let n = l.weight_len();
        let p = match net.masks.get(&format!("{}.weight", l.name)) {
            Some(m) => n - m.sum_all()?.to_scalar::<f32>()?.round() as usize,
            None => 0,
        };
        total += n;
        pruned += p;
        layers.push(LayerSparsity {
            name: l.name,
            total: n,
            pruned: p,
        });
    }
    let (mut ch_total, mut ch_removed) = (0usize, 0usize);
    for g in channel_groups(&net.arch) {
        ch_total += g.channels;
        ch_removed += removed_channels(net, &g)?.iter().filter(|&&r| r).count();
    }
    Ok(SparsityReport {
        global: pruned as f32 / total.max(1) as f32,
        channels: ch_removed as f32 / ch_total.max(1) as f32,
        layers,
    })
}

fn removed_channels(net: &Network, g: &ChannelGroup) -> Result<Vec<bool>> {
    Ok(
        match structure::rows_alive(net, &format!("{}.weight", g.producer))? {
            Some(alive) => alive.iter().map(|a| !a).collect(),
            None => vec![false; g.channels],
        },
    )
}

/// Extra inputs some criteria need, computed by the caller on training data.
#[derive(Debug, Default, Clone, Copy)]
pub struct CriterionInputs<'a> {
    /// Accumulated gradients by parameter name.
    pub grads: Option<&'a BTreeMap<String, Vec<f32>>>,
    /// Activation statistics by layer name.
    pub acts: Option<&'a ActivationStats>,
}

/// How to prune: granularity and scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PruneMode {
    /// Weights or channels.
    pub granularity: GranularityChoice,
    /// Global or per-layer ranking.
    pub scope: Scope,
}

/// Prunes `net` to `target` (weights: fraction of all conv/linear weights;
/// channels: fraction of prunable channels), scoring with `criterion`.
/// Already-pruned weights stay pruned. Every layer keeps at least one weight
/// (channel). Returns the sparsity reached, in the granularity's unit.
///
/// Scores are validated: a wrong length or a NaN/infinite score is reported as
/// [`Error::Plugin`] naming `plugin` and the layer, and the network is left
/// unchanged.
pub fn prune_to(
    net: &mut Network,
    criterion: &mut dyn Criterion,
    plugin: &str,
    mode: PruneMode,
    target: f32,
    inputs: CriterionInputs<'_>,
) -> Result<PruneOutcome> {
    check_target(plugin, target)?;
    match mode.granularity {
        GranularityChoice::Unstructured => {
            prune_weights(net, criterion, plugin, mode.scope, target, inputs, None)
        }
        GranularityChoice::Structured => {
            prune_channels(net, criterion, plugin, mode.scope, target, inputs, None)
        }
    }
}

/// Prunes only layer `layer` of `net` to `target` (of its weights, or of its
/// output channels for structured pruning, together with what depends on
/// them), as a sensitivity analysis does. Errors as [`prune_to`]; a layer
/// that does not exist (or has no removable channels) is an error naming it.
pub fn prune_layer(
    net: &mut Network,
    criterion: &mut dyn Criterion,
    plugin: &str,
    granularity: GranularityChoice,
    layer: &str,
    target: f32,
    inputs: CriterionInputs<'_>,
) -> Result<PruneOutcome> {
    check_target(plugin, target)?;
    let only = Some(layer);
    match granularity {
        GranularityChoice::Unstructured => {
            prune_weights(net, criterion, plugin, Scope::Layer, target, inputs, only)
        }
        GranularityChoice::Structured => {
            prune_channels(net, criterion, plugin, Scope::Layer, target, inputs, only)
        }
    }
}

fn check_target(plugin: &str, target: f32) -> Result<()> {
    if !(0.0..1.0).contains(&target) {
        return Err(Error::Plugin {
            plugin: plugin.into(),
            msg: format!("target sparsity {target} is outside [0, 1)"),
        });
    }
    Ok(())
}

/// Layers `only` selects (all when `None`); an empty selection is an error.
fn selected<T>(items: Vec<T>, name: impl Fn(&T) -> &str, only: Option<&str>) -> Result<Vec<T>> {
    let Some(layer) = only else {
        return Ok(items);
    };
    let picked: Vec<T> = items.into_iter().filter(|i| name(i) == layer).collect();
    if picked.is_empty() {
        return Err(Error::Shape(format!(
            "no prunable layer `{layer}` (for this granularity)"
        )));
    }
    Ok(picked)
}

/// What a prune did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PruneOutcome {
    /// Sparsity reached, in the granularity's unit.
    pub reached: f32,
    /// Seconds spent copying weights and masks to host memory for the
    /// criterion (on a GPU: the device-to-host transfer scoring needs).
    pub host_copy_seconds: f64,
}

/// Host copies of one layer's data for a criterion call.
struct HostLayer {
    name: String,
    kind: shears_plugin_api::LayerKind,
    shape: Vec<usize>,
    weight: Vec<f32>,
    mask: Vec<f32>,
    grad: Option<Vec<f32>>,
    acts: Option<Vec<f32>>,
}

fn host_layer(
    net: &Network,
    name: &str,
    kind: shears_plugin_api::LayerKind,
    inputs: CriterionInputs<'_>,
) -> Result<HostLayer> {
    let key = format!("{name}.weight");
    let w = net.weight(name)?.as_tensor();
    let shape = w.dims().to_vec();
    let weight = w.flatten_all()?.to_vec1::<f32>()?;
    if let Some(v) = weight.iter().find(|v| !v.is_finite()) {
        return Err(Error::NonFinite(format!(
            "layer `{name}` has a weight equal to {v}; the model cannot be pruned"
        )));
    }
    let mask = match net.masks.get(&key) {
        Some(m) => m.flatten_all()?.to_vec1::<f32>()?,
        None => vec![1.0; weight.len()],
    };
    let grad = match inputs.grads.and_then(|g| g.get(&key)) {
        Some(g) if g.len() != weight.len() => {
            return Err(Error::Shape(format!(
                "gradient of `{key}` has {} values, the weight has {}",
                g.len(),
                weight.len()
            )))
        }
        g => g.cloned(),
    };
    // A grouped convolution's inputs are `groups` times its weight's
    // `shape[1]` (each group of outputs reads its own slice).
    let grouped = |a: &[f32]| {
        kind == shears_plugin_api::LayerKind::Conv2d
            && shape.len() == 4
            && shape[1] > 0
            && a.len().is_multiple_of(shape[1])
            && shape[0] % (a.len() / shape[1]).max(1) == 0
    };
    let acts = match inputs.acts.and_then(|a| a.norms(name)) {
        Some(a) if shape.get(1) != Some(&a.len()) && !grouped(&a) => {
            return Err(Error::Shape(format!(
                "activation norms of `{name}` have {} values, the layer has {:?} inputs",
                a.len(),
                shape.get(1)
            )))
        }
        a => a,
    };
    Ok(HostLayer {
        name: name.to_string(),
        kind,
        shape,
        weight,
        mask,
        grad,
        acts,
    })
}

/// Scores layers with one criterion and keeps the time spent copying them to
/// the host.
struct Scorer<'a> {
    criterion: &'a mut dyn Criterion,
    plugin: &'a str,
    inputs: CriterionInputs<'a>,
    copy: std::time::Duration,
}

impl<'a> Scorer<'a> {
    fn new(criterion: &'a mut dyn Criterion, plugin: &'a str, inputs: CriterionInputs<'a>) -> Self {
        Self {
            criterion,
            plugin,
            inputs,
            copy: std::time::Duration::ZERO,
        }
    }

    /// The host copy of layer `name` and the criterion's scores for it.
    fn score(
        &mut self,
        net: &Network,
        name: &str,
        kind: shears_plugin_api::LayerKind,
        granularity: Granularity,
    ) -> Result<(HostLayer, Vec<f32>)> {
        let t0 = std::time::Instant::now();
        let h = host_layer(net, name, kind, self.inputs)?;
        self.copy += t0.elapsed();
        let s = score_layer(self.criterion, self.plugin, &h, granularity)?;
        Ok((h, s))
    }
}

/// Gives entries already pruned the score `-inf`, so they stay pruned.
fn keep_pruned(scores: &mut [f32], pruned: impl Iterator<Item = bool>) {
    for (v, p) in scores.iter_mut().zip(pruned) {
        if p {
            *v = f32::NEG_INFINITY;
        }
    }
}

fn score_layer(
    criterion: &mut dyn Criterion,
    plugin: &str,
    l: &HostLayer,
    granularity: Granularity,
) -> Result<Vec<f32>> {
    // A grouped convolution with activation norms for all its inputs is
    // scored group by group: each group's output rows with the norms of
    // the inputs they read, the contract's `act_norms` of `shape[1]`.
    let groups = match &l.acts {
        Some(a) if l.shape.len() == 4 && l.shape[1] > 0 => a.len() / l.shape[1],
        _ => 1,
    };
    if groups > 1 && granularity == Granularity::Unstructured {
        let rows = l.shape[0] / groups;
        let per = l.weight.len() / groups;
        let mut out = Vec::with_capacity(l.weight.len());
        for g in 0..groups {
            let part = HostLayer {
                name: l.name.clone(),
                kind: l.kind,
                shape: [vec![rows], l.shape[1..].to_vec()].concat(),
                weight: l.weight[g * per..(g + 1) * per].to_vec(),
                mask: l.mask[g * per..(g + 1) * per].to_vec(),
                grad: l.grad.as_ref().map(|v| v[g * per..(g + 1) * per].to_vec()),
                acts: l
                    .acts
                    .as_ref()
                    .map(|v| v[g * l.shape[1]..(g + 1) * l.shape[1]].to_vec()),
            };
            out.extend(score_layer(criterion, plugin, &part, granularity)?);
        }
        return Ok(out);
    }
    let view = LayerView {
        name: &l.name,
        kind: l.kind,
        shape: &l.shape,
        weight: &l.weight,
        mask: &l.mask,
        grad: l.grad.as_deref(),
        act_norms: l.acts.as_deref(),
        granularity,
    };
    let mut out = vec![0f32; view.score_len()];
    criterion
        .score(&view, &mut out)
        .map_err(|e| Error::Plugin {
            plugin: plugin.into(),
            msg: format!("layer `{}`: {e}", l.name),
        })?;
    if let Some((i, v)) = out.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(Error::Plugin {
            plugin: plugin.into(),
            msg: format!(
                "layer `{}`: score {i} is {v} (scores must be finite)",
                l.name
            ),
        });
    }
    Ok(out)
}

/// Marks the `k` lowest entries of `scores` (ties broken by position) as
/// pruned; entries already pruned carry `-inf`, so they stay pruned.
fn lowest_k(scores: &[f32], k: usize) -> Vec<bool> {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    let k = k.min(scores.len());
    if k > 0 && k < idx.len() {
        idx.select_nth_unstable_by(k - 1, |&a, &b| {
            scores[a].total_cmp(&scores[b]).then(a.cmp(&b))
        });
    }
    let mut pruned = vec![false; scores.len()];
    for &i in &idx[..k] {
        pruned[i] = true;
    }
    pruned
}

/// Splits a flat decision vector over `sizes` and makes sure each part keeps
/// at least one entry (the best-scored pruned one is revived).
fn split_keep_one(flat: Vec<bool>, scores: &[f32], sizes: &[usize]) -> Vec<Vec<bool>> {
    let mut out = Vec::with_capacity(sizes.len());
    let mut off = 0;
    for &n in sizes {
        let mut part = flat[off..off + n].to_vec();
        if n > 0 && part.iter().all(|&p| p) {
            let s = &scores[off..off + n];
            let best = (0..n).max_by(|&a, &b| s[a].total_cmp(&s[b])).unwrap_or(0);
            part[best] = false;
        }
        out.push(part);
        off += n;
    }
    out
}

/// Which units to prune, per layer, given every layer's unit scores (already
/// pruned units at minus infinity): the lowest-scored `target` fraction of
/// each layer (`Scope::Layer`) or of all layers together (`Scope::Global`),
/// each layer keeping at least one unit.
fn choose(scores: &[Vec<f32>], scope: Scope, target: f32) -> Vec<Vec<bool>> {
    match scope {
        Scope::Layer => scores
            .iter()
            .flat_map(|s| split_keep_one(lowest_k(s, count(target, s.len())), s, &[s.len()]))
            .collect(),
        Scope::Global => {
            // Each layer's best-scored unit is set aside before the lowest
            // are taken, so a layer that would lose everything keeps it and
            // the target is still met with the next-lowest elsewhere.
            let mut all: Vec<f32> = scores.concat();
            let mut off = 0;
            for s in scores {
                if let Some(best) = (0..s.len()).max_by(|&a, &b| s[a].total_cmp(&s[b])) {
                    all[off + best] = f32::INFINITY;
                }
                off += s.len();
            }
            let sizes: Vec<usize> = scores.iter().map(Vec::len).collect();
            split_keep_one(lowest_k(&all, count(target, all.len())), &all, &sizes)
        }
    }
}

/// Sets the mask of parameter `key` to `mask` (1 kept, 0 pruned, in the
/// parameter's shape) times its old mask: pruned entries stay pruned even
/// when a later prune asks for less.
fn tighten_mask(net: &mut Network, key: &str, mask: Vec<f32>) -> Result<()> {
    let dims = net
        .params
        .get(key)
        .ok_or_else(|| Error::Shape(format!("no parameter `{key}` to mask")))?
        .dims()
        .to_vec();
    let mut t = Tensor::from_vec(mask, dims, net.device())?;
    if let Some(old) = net.masks.get(key) {
        t = t.mul(old)?;
    }
    net.masks.insert(key.to_string(), t);
    Ok(())
}

fn count(target: f32, n: usize) -> usize {
    ((target as f64) * n as f64).round() as usize
}

fn prune_weights(
    net: &mut Network,
    criterion: &mut dyn Criterion,
    plugin: &str,
    scope: Scope,
    target: f32,
    inputs: CriterionInputs<'_>,
    only: Option<&str>,
) -> Result<PruneOutcome> {
    let mut scorer = Scorer::new(criterion, plugin, inputs);
    let layers = selected(net.arch.layers(), |l| l.name.as_str(), only)?;
    let mut scores = Vec::new();
    for l in &layers {
        let (h, mut s) = scorer.score(net, &l.name, l.kind, Granularity::Unstructured)?;
        keep_pruned(&mut s, h.mask.iter().map(|&m| m == 0.0));
        scores.push(s);
    }
    for (l, pruned) in layers.iter().zip(choose(&scores, scope, target)) {
        let mask = pruned.iter().map(|&p| if p { 0.0 } else { 1.0 }).collect();
        tighten_mask(net, &format!("{}.weight", l.name), mask)?;
    }
    net.apply_masks()?;
    Ok(PruneOutcome {
        reached: sparsity(net)?.global,
        host_copy_seconds: scorer.copy.as_secs_f64(),
    })
}

fn prune_channels(
    net: &mut Network,
    criterion: &mut dyn Criterion,
    plugin: &str,
    scope: Scope,
    target: f32,
    inputs: CriterionInputs<'_>,
    only: Option<&str>,
) -> Result<PruneOutcome> {
    let mut scorer = Scorer::new(criterion, plugin, inputs);
    let groups = channel_groups(&net.arch);
    if groups.is_empty() && net.arch.graph.is_some() {
        return Err(Error::Shape(format!(
            "channel pruning does not follow a graph of operations yet (this {} model's \
             channels are not grouped); prune it unstructured",
            net.arch.family
        )));
    }
    if groups.is_empty() {
        return Err(Error::Shape(format!(
            "the {:?} architecture has no layer whose channels can be removed",
            net.arch.family
        )));
    }
    let groups = selected(groups, |g| g.producer.as_str(), only)?;
    let mut scores = Vec::new();
    for g in &groups {
        let (_, mut s) = scorer.score(net, &g.producer, g.kind, Granularity::StructuredChannel)?;
        let removed = removed_channels(net, g)?;
        if scope == Scope::Global {
            // Normalise by the layer's mean alive score so layers compete fairly.
            let alive: Vec<f32> = s
                .iter()
                .zip(&removed)
                .filter(|(_, &r)| !r)
                .map(|(v, _)| *v)
                .collect();
            let mean = alive.iter().map(|v| v.abs()).sum::<f32>() / alive.len().max(1) as f32;
            if mean > 0.0 {
                s.iter_mut().for_each(|v| *v /= mean);
            }
        }
        keep_pruned(&mut s, removed.iter().copied());
        scores.push(s);
    }
    let decisions = choose(&scores, scope, target);
    // Combine every group's masks multiplicatively with the existing ones.
    let mut combined: BTreeMap<String, Vec<f32>> = BTreeMap::new();
    for (g, pruned) in groups.iter().zip(&decisions) {
        let keep: Vec<bool> = pruned.iter().map(|p| !p).collect();
        for (k, m) in structure::channel_masks(g, &keep, net)? {
            match combined.get_mut(&k) {
                Some(old) => old.iter_mut().zip(m).for_each(|(a, b)| *a *= b),
                None => {
                    combined.insert(k, m);
                }
            }
        }
    }
    for (k, m) in combined {
        tighten_mask(net, &k, m)?;
    }
    net.apply_masks()?;
    Ok(PruneOutcome {
        reached: sparsity(net)?.channels,
        host_copy_seconds: scorer.copy.as_secs_f64(),
    })
}

#[cfg(test)]
mod tests;
