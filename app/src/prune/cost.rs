//! What a (pruned) model costs, as ShrinkBench reports it: parameters and
//! multiply-accumulates, all and non-zero, and the ratios they give.

use serde::{Deserialize, Serialize};

use super::structure::compact;
use crate::error::Result;
use crate::model::Network;

/// Parameter and compute counts of one model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Cost {
    /// Every trainable parameter of the dense model (weights, biases,
    /// BatchNorm scales and shifts).
    pub params: usize,
    /// Parameters that no mask removes (of the compacted model, for
    /// structured pruning).
    pub nonzero_params: usize,
    /// Multiply-accumulates of conv and linear layers per sample, dense.
    pub macs: usize,
    /// Multiply-accumulates left: for each layer its MACs times its fraction
    /// of kept (unmasked) weights, on the compacted model for structured pruning
    /// (where removed channels also shrink the next layer's input).
    pub nonzero_macs: usize,
}

impl Cost {
    /// All parameters over non-zero ones (1 = dense).
    pub fn compression(&self) -> f64 {
        self.params as f64 / self.nonzero_params.max(1) as f64
    }

    /// Dense MACs over remaining MACs: the theoretical speed-up.
    pub fn speedup(&self) -> f64 {
        self.macs as f64 / self.nonzero_macs.max(1) as f64
    }
}

/// The cost of `net`; `structured` counts it on the compacted model. `dense`
/// is the cost of the unpruned model of the same architecture (its `params`
/// and `macs` are kept).
pub fn cost(net: &Network, structured: bool, dense: &Cost) -> Result<Cost> {
    let compacted;
    let model = if structured {
        compacted = compact(net)?;
        &compacted
    } else {
        net
    };
    // A parameter entry is kept unless its mask removes it (a weight that
    // merely is zero, like a fresh bias, still counts).
    let kept = |key: &str, len: usize| -> Result<usize> {
        match model.masks.get(key) {
            Some(m) => count_nonzero(m),
            None => Ok(len),
        }
    };
    let mut nonzero_params = 0usize;
    for (k, v) in &model.params {
        nonzero_params += kept(k, v.as_tensor().elem_count())?;
    }
    let mut nonzero_macs = 0f64;
    for l in model.arch.layers() {
        let nz = kept(&format!("{}.weight", l.name), l.weight_len())?;
        nonzero_macs += l.macs as f64 * nz as f64 / l.weight_len().max(1) as f64;
    }
    Ok(Cost {
        params: dense.params,
        nonzero_params,
        macs: dense.macs,
        nonzero_macs: nonzero_macs.round() as usize,
    })
}

/// The cost of the dense model `net` (every parameter counted as non-zero).
pub fn dense_cost(net: &Network) -> Cost {
    let macs = net.arch.macs();
    let params = net.arch.num_params();
    Cost {
        params,
        nonzero_params: params,
        macs,
        nonzero_macs: macs,
    }
}

fn count_nonzero(t: &candle_core::Tensor) -> Result<usize> {
    Ok(t.flatten_all()?
        .to_vec1::<f32>()?
        .iter()
        .filter(|v| **v != 0.0)
        .count())
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor};

    use super::*;
    use crate::model::ModelSpec;
    use crate::prune::{prune_to, CriterionInputs, GranularityChoice, PruneMode, Scope};

    /// An MLP 16 -> 8 -> 4 (input 1x4x4): params 16*8 + 8 + 8*4 + 4 = 172,
    /// MACs 16*8 + 8*4 = 160.
    fn mlp() -> Network {
        let arch = ModelSpec::Mlp { hidden: vec![8] }
            .build([1, 4, 4], 4)
            .unwrap();
        Network::new(arch, 0, &Device::Cpu).unwrap()
    }

    #[test]
    fn dense_counts_by_hand() {
        let net = mlp();
        let d = dense_cost(&net);
        assert_eq!((d.params, d.macs), (172, 160));
        assert_eq!(cost(&net, false, &d).unwrap(), d);
        assert_eq!((d.compression(), d.speedup()), (1.0, 1.0));
    }

    #[test]
    fn unstructured_masks_scale_each_layer() {
        let mut net = mlp();
        let d = dense_cost(&net);
        // Zero half of fc1 (64 of 128) and all but 8 of fc2's 32 weights.
        let names: Vec<String> = net.arch.layers().iter().map(|l| l.name.clone()).collect();
        let m1: Vec<f32> = (0..128).map(|i| (i % 2) as f32).collect();
        let m2: Vec<f32> = (0..32).map(|i| if i < 8 { 1.0 } else { 0.0 }).collect();
        for (name, m, dims) in [(&names[0], m1, [8, 16]), (&names[1], m2, [4, 8])] {
            let key = format!("{name}.weight");
            net.masks
                .insert(key, Tensor::from_vec(m, &dims, &Device::Cpu).unwrap());
        }
        net.apply_masks().unwrap();
        let c = cost(&net, false, &d).unwrap();
        // Biases are not pruned: 64 + 8 + 8 + 4 = 84 non-zero.
        assert_eq!(c.nonzero_params, 84);
        // MACs: 128 * 64/128 + 32 * 8/32 = 64 + 8 = 72.
        assert_eq!(c.nonzero_macs, 72);
        assert!((c.compression() - 172.0 / 84.0).abs() < 1e-12);
        assert!((c.speedup() - 160.0 / 72.0).abs() < 1e-12);
    }

    #[test]
    fn structured_counts_the_compacted_model() {
        let mut net = mlp();
        let d = dense_cost(&net);
        let mut c = crate::plugins::Registry::builtin()
            .criterion("channel-norm", &serde_json::json!({}))
            .unwrap();
        let mode = PruneMode {
            granularity: GranularityChoice::Structured,
            scope: Scope::Layer,
        };
        prune_to(
            &mut net,
            c.as_mut(),
            "channel-norm",
            mode,
            0.5,
            CriterionInputs::default(),
        )
        .unwrap();
        // 4 of the 8 hidden neurons go: fc1 4x16 + 4, fc2 4x4 + 4 = 88 params,
        // MACs 64 + 16 = 80.
        let got = cost(&net, true, &d).unwrap();
        assert_eq!(got.nonzero_params, 88);
        assert_eq!(got.nonzero_macs, 80);
        assert!((got.speedup() - 2.0).abs() < 1e-12);
    }
}
