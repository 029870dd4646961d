use super::*;
use crate::model::testutil::max_diff;
use crate::model::ModelSpec;
use candle_core::{DType, Device};
use shears_plugin_api::{PluginError, PluginResult};

/// |w| per weight, L1 norm per channel: enough to test the host side.
struct Abs;
impl Criterion for Abs {
    fn score(&mut self, l: &LayerView<'_>, out: &mut [f32]) -> PluginResult<()> {
        match l.granularity {
            Granularity::Unstructured => {
                out.iter_mut().zip(l.weight).for_each(|(o, w)| *o = w.abs())
            }
            Granularity::StructuredChannel => {
                let f = l.fan_in();
                for (c, o) in out.iter_mut().enumerate() {
                    *o = l.weight[c * f..(c + 1) * f].iter().map(|w| w.abs()).sum();
                }
            }
        }
        Ok(())
    }
}

struct Garbage(f32);
impl Criterion for Garbage {
    fn score(&mut self, _: &LayerView<'_>, out: &mut [f32]) -> PluginResult<()> {
        out.fill(self.0);
        Ok(())
    }
}

struct Fails;
impl Criterion for Fails {
    fn score(&mut self, _: &LayerView<'_>, _: &mut [f32]) -> PluginResult<()> {
        Err(PluginError::new("boom"))
    }
}

/// Prunes `n` with the test criterion [`Abs`].
fn prune_abs(n: &mut Network, mode: PruneMode, target: f32) -> crate::Result<f32> {
    prune_to(n, &mut Abs, "abs", mode, target, Default::default()).map(|o| o.reached)
}

fn net(spec: ModelSpec, input: [usize; 3]) -> Network {
    Network::new(spec.build(input, 10).unwrap(), 3, &Device::Cpu).unwrap()
}

fn mode(g: GranularityChoice, s: Scope) -> PruneMode {
    PruneMode {
        granularity: g,
        scope: s,
    }
}

fn values(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

#[test]
fn global_unstructured_hits_target_and_zeroes_weights() {
    let mut n = net(ModelSpec::Lenet5, [1, 28, 28]);
    let s = prune_abs(&mut n, PruneMode::default(), 0.5).unwrap();
    assert!((s - 0.5).abs() < 1e-3, "{s}");
    for l in n.arch.layers() {
        let key = format!("{}.weight", l.name);
        let w = values(n.params[&key].as_tensor());
        let m = values(&n.masks[&key]);
        assert!(w.iter().zip(&m).all(|(w, m)| *m == 1.0 || *w == 0.0));
        assert!(m.contains(&1.0), "layer {} lost every weight", l.name);
    }
}

#[test]
fn masks_only_grow_across_steps() {
    let mut n = net(ModelSpec::Lenet5, [1, 28, 28]);
    prune_abs(&mut n, PruneMode::default(), 0.3).unwrap();
    let before = values(&n.masks["fc1.weight"]);
    // scramble the weights so a new ranking would differ
    let w = n.params["fc1.weight"].as_tensor();
    n.params["fc1.weight"]
        .set(&(w.neg().unwrap() + 0.01).unwrap())
        .unwrap();
    n.apply_masks().unwrap();
    prune_abs(&mut n, PruneMode::default(), 0.6).unwrap();
    let after = values(&n.masks["fc1.weight"]);
    assert!(before
        .iter()
        .zip(&after)
        .all(|(b, a)| *b == 1.0 || *a == 0.0));
    assert!((sparsity(&n).unwrap().global - 0.6).abs() < 1e-3);
    // asking for less never revives pruned weights
    prune_abs(&mut n, PruneMode::default(), 0.3).unwrap();
    assert!((sparsity(&n).unwrap().global - 0.6).abs() < 1e-3);
}

#[test]
fn per_layer_scope_prunes_every_layer_to_target() {
    let mut n = net(ModelSpec::Lenet5, [1, 28, 28]);
    prune_abs(
        &mut n,
        mode(GranularityChoice::Unstructured, Scope::Layer),
        0.8,
    )
    .unwrap();
    for l in sparsity(&n).unwrap().layers {
        assert!(
            (l.sparsity() - 0.8).abs() < 0.02,
            "{} {}",
            l.name,
            l.sparsity()
        );
    }
}

#[test]
fn bad_scores_are_rejected_and_leave_the_network_alone() {
    let mut n = net(ModelSpec::Lenet5, [1, 28, 28]);
    for c in [
        &mut Garbage(f32::NAN) as &mut dyn Criterion,
        &mut Garbage(f32::INFINITY),
        &mut Fails,
    ] {
        let e = prune_to(
            &mut n,
            c,
            "bad",
            PruneMode::default(),
            0.5,
            Default::default(),
        )
        .unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("bad") && msg.contains("conv1"), "{msg}");
    }
    assert!(n.masks.is_empty());
    assert!(prune_abs(&mut n, PruneMode::default(), 1.0).is_err());
}

fn assert_compact_matches(mut n: Network, input: [usize; 3], target: f32, scope: Scope) {
    // update BatchNorm running statistics so eval mode is non-trivial
    let x = Tensor::randn(0f32, 1.0, (8, input[0], input[1], input[2]), &Device::Cpu).unwrap();
    n.forward(&x, true).unwrap();
    let got = prune_abs(&mut n, mode(GranularityChoice::Structured, scope), target).unwrap();
    assert!((got - target).abs() < 0.1, "channel sparsity {got}");
    let dense = n.forward(&x, false).unwrap();
    let mut small = compact(&n).unwrap();
    assert!(small.arch.num_params() < n.arch.num_params());
    let out = small.forward(&x, false).unwrap();
    let diff = max_diff(&dense, &out);
    assert!(diff < 1e-4, "compacted output differs by {diff}");
}

#[test]
fn structured_lenet_compacts_to_the_same_function() {
    let n = net(ModelSpec::Lenet5, [1, 28, 28]);
    assert_compact_matches(n, [1, 28, 28], 0.5, Scope::Global);
    let n = net(ModelSpec::Lenet5, [1, 28, 28]);
    assert_compact_matches(n, [1, 28, 28], 0.5, Scope::Layer);
}

#[test]
fn structured_resnet_respects_residuals_and_compacts() {
    let spec = ModelSpec::Resnet20 { width: 4 };
    let n = net(spec.clone(), [3, 16, 16]);
    let groups = channel_groups(&n.arch);
    // only the first conv of each of the 9 blocks is prunable
    assert_eq!(groups.len(), 9);
    assert!(groups
        .iter()
        .all(|g| g.producer.ends_with(".conv1") && g.batch_norm.is_some()));
    assert_compact_matches(n, [3, 16, 16], 0.5, Scope::Global);
}

#[test]
fn structured_vgg_and_mlp_compact() {
    let spec = ModelSpec::Vgg {
        channels: vec![8, 0, 16, 16],
    };
    assert_compact_matches(net(spec, [3, 8, 8]), [3, 8, 8], 0.5, Scope::Layer);
    let spec = ModelSpec::Mlp {
        hidden: vec![16, 8],
    };
    assert_compact_matches(net(spec, [1, 4, 4]), [1, 4, 4], 0.4, Scope::Global);
}

#[test]
fn structured_pruning_zeroes_coupled_tensors() {
    let mut n = net(ModelSpec::Lenet5, [1, 28, 28]);
    prune_abs(
        &mut n,
        mode(GranularityChoice::Structured, Scope::Layer),
        0.5,
    )
    .unwrap();
    let row = values(
        &n.masks["conv1.weight"]
            .flatten_from(1)
            .unwrap()
            .max(1)
            .unwrap(),
    );
    let removed: Vec<usize> = row
        .iter()
        .enumerate()
        .filter(|(_, &v)| v == 0.0)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(removed.len(), 3);
    let bias = values(n.params["conv1.bias"].as_tensor());
    let next = n.params["conv2.weight"]
        .as_tensor()
        .to_dtype(DType::F32)
        .unwrap();
    for &c in &removed {
        assert_eq!(bias[c], 0.0);
        let slice = next.narrow(1, c, 1).unwrap();
        assert!(values(&slice).iter().all(|&v| v == 0.0));
    }
}

#[test]
fn the_host_copy_for_scoring_is_measured() {
    let mut n = net(ModelSpec::Lenet5, [1, 28, 28]);
    for g in [
        GranularityChoice::Unstructured,
        GranularityChoice::Structured,
    ] {
        let o = prune_to(
            &mut n,
            &mut Abs,
            "abs",
            mode(g, Scope::Global),
            0.5,
            Default::default(),
        )
        .unwrap();
        assert!(
            o.host_copy_seconds > 0.0 && o.host_copy_seconds < 10.0,
            "{o:?}"
        );
    }
}

/// Invariants over random models, weights and targets (proptest).
/// Global pruning meets its target exactly even when one layer's scores
/// are all below the others' (Wanda on a ViT: the inner layers' inputs
/// are small): that layer keeps its best unit and the shortfall is taken
/// from the next-lowest elsewhere, not left unpruned.
#[test]
fn global_pruning_keeps_one_per_layer_and_still_meets_the_target() {
    let low: Vec<f32> = (0..10).map(|i| i as f32 * 0.001).collect();
    let high: Vec<f32> = (0..10).map(|i| 10.0 + i as f32).collect();
    let chosen = choose(&[low, high], Scope::Global, 0.9);
    let pruned: Vec<usize> = chosen
        .iter()
        .map(|l| l.iter().filter(|&&p| p).count())
        .collect();
    assert_eq!(pruned, vec![9, 9], "18 of 20, each layer keeping one");
    // The first layer keeps its best unit, the second its best too.
    assert!(!chosen[0][9] && !chosen[1][9]);
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    /// A small network of family `arch % 3` (MLP, LeNet-5, VGG) with weights
    /// from `seed`, and its input shape.
    fn small(arch: u8, seed: u64) -> (Network, [usize; 3]) {
        let (spec, input) = match arch % 3 {
            0 => (
                ModelSpec::Mlp {
                    hidden: vec![12, 8],
                },
                [1, 6, 6],
            ),
            1 => (ModelSpec::Lenet5, [1, 28, 28]),
            _ => (
                ModelSpec::Vgg {
                    channels: vec![4, 0, 6, 0],
                },
                [3, 8, 8],
            ),
        };
        let arch = spec.build(input, 5).unwrap();
        (Network::new(arch, seed, &Device::Cpu).unwrap(), input)
    }

    fn masks(n: &Network) -> BTreeMap<String, Vec<f32>> {
        n.masks
            .iter()
            .map(|(k, m)| (k.clone(), values(m)))
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        #[test]
        fn masks_only_shrink_and_global_targets_are_reached(
            arch in 0u8..3,
            seed in 0u64..10_000,
            first in 0.05f32..0.6,
            more in 0.05f32..0.3,
        ) {
            let (mut n, _) = small(arch, seed);
            let reached = prune_abs(&mut n, PruneMode::default(), first).unwrap();
            // Every layer keeps a weight: on the tiny MLP that can cost a little.
            prop_assert!((reached - first).abs() < 0.01, "asked {first}, reached {reached}");
            let before = masks(&n);
            let second = first + more;
            let reached2 = prune_abs(&mut n, PruneMode::default(), second).unwrap();
            prop_assert!((reached2 - second).abs() < 0.01, "asked {second}, reached {reached2}");
            for (k, after) in masks(&n) {
                let b = &before[&k];
                prop_assert!(b.iter().zip(&after).all(|(b, a)| *b == 1.0 || *a == 0.0), "{k} revived a weight");
            }
            // Asking for less keeps what is pruned.
            let again = prune_abs(&mut n, PruneMode::default(), first).unwrap();
            prop_assert!((again - reached2).abs() < 1e-6);
        }

        #[test]
        fn structured_pruning_then_compaction_computes_the_same_function(
            arch in 0u8..3,
            seed in 0u64..10_000,
            target in 0.1f32..0.7,
            per_layer in any::<bool>(),
        ) {
            let (mut n, input) = small(arch, seed);
            let x = Tensor::randn(0f32, 1.0, (4, input[0], input[1], input[2]), &Device::Cpu).unwrap();
            n.forward(&x, true).unwrap(); // non-trivial BatchNorm statistics
            let scope = if per_layer { Scope::Layer } else { Scope::Global };
            prune_abs(&mut n, mode(GranularityChoice::Structured, scope), target).unwrap();
            let pruned = n.forward(&x, false).unwrap();
            let mut small = compact(&n).unwrap();
            prop_assert!(small.arch.num_params() <= n.arch.num_params());
            let out = small.forward(&x, false).unwrap();
            let diff = max_diff(&pruned, &out);
            prop_assert!(diff < 1e-4, "compacted output differs by {diff}");
        }
    }
}

/// |w| times the norm of the input it reads (Wanda's score), checking the
/// norms are one per weight input.
struct WandaLike;
impl Criterion for WandaLike {
    fn score(&mut self, l: &LayerView<'_>, out: &mut [f32]) -> PluginResult<()> {
        let norms = l
            .act_norms
            .ok_or_else(|| PluginError::new("needs activations"))?;
        if norms.len() != l.shape[1] {
            return Err(PluginError::new("norms are not one per input"));
        }
        let per_in: usize = l.shape[2..].iter().product();
        for (i, (o, w)) in out.iter_mut().zip(l.weight).enumerate() {
            *o = w.abs() * norms[(i / per_in) % l.shape[1]];
        }
        Ok(())
    }
}

/// A depthwise convolution (MobileNetV2's) is scored group by group: each
/// output channel's weights with the norm of the one input channel it
/// reads, as Wanda defines it.
#[test]
fn grouped_convolutions_get_each_groups_activation_norms() {
    let mut n = net(ModelSpec::Mobilenetv2 { width: 25 }, [3, 32, 32]);
    let x = Tensor::randn(0f32, 1.0, (4, 3, 32, 32), &Device::Cpu).unwrap();
    let mut stats = crate::model::ActivationStats::default();
    n.forward_recording(&x, &mut stats).unwrap();
    let inputs = CriterionInputs {
        acts: Some(&stats),
        ..Default::default()
    };
    let dw = "features.2.conv.1.0";
    let (h, scores) = Scorer::new(&mut WandaLike, "wanda-like", inputs)
        .score(
            &n,
            dw,
            shears_plugin_api::LayerKind::Conv2d,
            Granularity::Unstructured,
        )
        .unwrap();
    let norms = stats.norms(dw).unwrap();
    assert_eq!(h.shape[1], 1);
    assert_eq!(norms.len(), h.shape[0]);
    for (i, (s, w)) in scores.iter().zip(&h.weight).enumerate() {
        let want = w.abs() * norms[i / 9];
        assert!(
            (s - want).abs() <= 1e-6 * want.abs().max(1.0),
            "{i}: {s} vs {want}"
        );
    }
    // And a whole prune with it reaches its target on every layer.
    let mode = PruneMode::default();
    let out = prune_to(&mut n, &mut WandaLike, "wanda-like", mode, 0.5, inputs).unwrap();
    assert!((out.reached - 0.5).abs() < 1e-2, "{}", out.reached);
}
