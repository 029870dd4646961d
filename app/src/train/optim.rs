//! Optimisers that respect pruning masks: after every step, pruned weights and
//! their optimiser state (momentum, Adam moments) are exactly zero.

use std::collections::BTreeMap;

use candle_core::backprop::GradStore;
use candle_core::Tensor;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::model::Network;

/// Which optimiser to use, with its hyper-parameters (learning rate excepted:
/// that comes from the LR schedule).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum OptimizerSpec {
    /// Stochastic gradient descent with (Nesterov) momentum and L2 weight decay.
    Sgd {
        /// Momentum factor (0 disables it).
        #[serde(default = "default_momentum")]
        momentum: f64,
        /// Nesterov momentum.
        #[serde(default = "yes")]
        nesterov: bool,
        /// L2 penalty added to the gradient.
        #[serde(default = "default_wd")]
        weight_decay: f64,
    },
    /// Adam with decoupled weight decay (Loshchilov & Hutter).
    Adamw {
        /// First-moment decay.
        #[serde(default = "default_beta1")]
        beta1: f64,
        /// Second-moment decay.
        #[serde(default = "default_beta2")]
        beta2: f64,
        /// Denominator epsilon.
        #[serde(default = "default_eps")]
        eps: f64,
        /// Decoupled weight decay.
        #[serde(default = "default_adamw_wd")]
        weight_decay: f64,
    },
}

fn default_momentum() -> f64 {
    0.9
}
fn yes() -> bool {
    true
}
fn default_wd() -> f64 {
    5e-4
}
fn default_beta1() -> f64 {
    0.9
}
fn default_beta2() -> f64 {
    0.999
}
fn default_eps() -> f64 {
    1e-8
}
fn default_adamw_wd() -> f64 {
    0.01
}

impl Default for OptimizerSpec {
    fn default() -> Self {
        OptimizerSpec::Sgd {
            momentum: default_momentum(),
            nesterov: true,
            weight_decay: default_wd(),
        }
    }
}

impl OptimizerSpec {
    /// Checks ranges; the error names the key.
    pub fn validate(&self, field: &str) -> Result<()> {
        let bad = |k: &str, v: f64| {
            crate::Error::config(format!("{field}.{k}"), format!("{v} is out of range"))
        };
        match *self {
            OptimizerSpec::Sgd {
                momentum,
                weight_decay,
                ..
            } => {
                if !(0.0..1.0).contains(&momentum) {
                    return Err(bad("momentum", momentum));
                }
                if !(0.0..1.0).contains(&weight_decay) {
                    return Err(bad("weight_decay", weight_decay));
                }
            }
            OptimizerSpec::Adamw {
                beta1,
                beta2,
                eps,
                weight_decay,
            } => {
                for (k, v) in [("beta1", beta1), ("beta2", beta2)] {
                    if !(0.0..1.0).contains(&v) {
                        return Err(bad(k, v));
                    }
                }
                if eps <= 0.0 {
                    return Err(bad("eps", eps));
                }
                if !(0.0..1.0).contains(&weight_decay) {
                    return Err(bad("weight_decay", weight_decay));
                }
            }
        }
        Ok(())
    }
}

/// Optimiser state for one network.
#[derive(Debug)]
pub struct Optimizer {
    spec: OptimizerSpec,
    /// Momentum buffer (SGD) or first moment (AdamW) per parameter.
    m: BTreeMap<String, Tensor>,
    /// Second moment per parameter (AdamW).
    v: BTreeMap<String, Tensor>,
    steps: u64,
    /// Whether `f32` parameters on the CPU are updated in one pass over
    /// slices (always, but in the test that holds it to the tensor ops).
    slices: bool,
}

impl Optimizer {
    /// A fresh optimiser (zero state).
    pub fn new(spec: OptimizerSpec) -> Self {
        Self {
            spec,
            m: BTreeMap::new(),
            v: BTreeMap::new(),
            steps: 0,
            slices: true,
        }
    }

    /// Applies one update with learning rate `lr` to every parameter of `net`
    /// that has a gradient, then re-applies the masks to the parameters and
    /// to the optimiser state.
    pub fn step(&mut self, net: &Network, grads: &GradStore, lr: f64) -> Result<()> {
        let named = net
            .params
            .iter()
            .filter_map(|(name, var)| Some((name.clone(), grads.get(var.as_tensor())?.clone())))
            .collect();
        self.step_named(net, &named, lr)
    }

    /// [`Optimizer::step`] with the gradients by parameter name (as
    /// [`Network::train_pass`] gives them).
    pub fn step_named(
        &mut self,
        net: &Network,
        grads: &BTreeMap<String, Tensor>,
        lr: f64,
    ) -> Result<()> {
        self.steps += 1;
        for (name, var) in &net.params {
            let Some(g) = grads.get(name) else {
                continue;
            };
            let w = var.as_tensor();
            let mask = net.masks.get(name);
            if self.slices && on_cpu_f32(&[Some(w), Some(g), mask]) {
                self.step_on_cpu(name, var, g, mask, lr)?;
                continue;
            }
            let masked = |t: Tensor| -> Result<Tensor> {
                Ok(match mask {
                    Some(m) => t.mul(m)?,
                    None => t,
                })
            };
            let new_w = match self.spec {
                OptimizerSpec::Sgd {
                    momentum,
                    nesterov,
                    weight_decay,
                } => {
                    let g = if weight_decay > 0.0 {
                        (g + (w * weight_decay)?)?
                    } else {
                        g.clone()
                    };
                    let d = if momentum > 0.0 {
                        let buf = match self.m.get(name) {
                            Some(b) => ((b * momentum)? + &g)?,
                            None => g.clone(),
                        };
                        // Detached: state built from the variables would
                        // otherwise keep every earlier step's tensors alive
                        // through the autograd graph (memory grew ~100 MB per
                        // LeNet-5 epoch).
                        let buf = masked(buf)?.detach();
                        let d = if nesterov {
                            (&g + (&buf * momentum)?)?
                        } else {
                            buf.clone()
                        };
                        self.m.insert(name.clone(), buf);
                        d
                    } else {
                        g
                    };
                    (w - (d * lr)?)?
                }
                OptimizerSpec::Adamw {
                    beta1,
                    beta2,
                    eps,
                    weight_decay,
                } => {
                    let t = self.steps as i32;
                    let m = match self.m.get(name) {
                        Some(m) => ((m * beta1)? + (g * (1.0 - beta1))?)?,
                        None => (g * (1.0 - beta1))?,
                    };
                    let g2 = g.sqr()?;
                    let v = match self.v.get(name) {
                        Some(v) => ((v * beta2)? + (g2 * (1.0 - beta2))?)?,
                        None => (g2 * (1.0 - beta2))?,
                    };
                    let m = masked(m)?.detach();
                    let v = masked(v)?.detach();
                    let m_hat = (&m / (1.0 - beta1.powi(t)))?;
                    let v_hat = (&v / (1.0 - beta2.powi(t)))?;
                    let upd = (m_hat / (v_hat.sqrt()? + eps)?)?;
                    self.m.insert(name.clone(), m);
                    self.v.insert(name.clone(), v);
                    let decayed = (w * (1.0 - lr * weight_decay))?;
                    (decayed - (upd * lr)?)?
                }
            };
            var.set(&masked(new_w)?)?;
        }
        Ok(())
    }
}

impl Optimizer {
    /// [`Optimizer::step_named`] for one parameter whose tensors are `f32`
    /// on the CPU: the same arithmetic in one pass over plain slices instead
    /// of a chain of tensor operations, each rounded to `f32` in the same
    /// order (the tests hold both paths to the same values).
    fn step_on_cpu(
        &mut self,
        name: &str,
        var: &candle_core::Var,
        g: &Tensor,
        mask: Option<&Tensor>,
        lr: f64,
    ) -> Result<()> {
        let values = |t: &Tensor| -> Result<Vec<f32>> { Ok(t.flatten_all()?.to_vec1::<f32>()?) };
        let (mut w, g) = (values(var.as_tensor())?, values(g)?);
        let mask = mask.map(values).transpose()?;
        let keep = |i: usize| mask.as_ref().map_or(1.0, |m| m[i]);
        let state = |map: &BTreeMap<String, Tensor>| -> Result<Option<Vec<f32>>> {
            map.get(name).map(values).transpose()
        };
        let dims = var.dims().to_vec();
        let tensor = |v: Vec<f32>| -> Result<Tensor> {
            Ok(Tensor::from_vec(
                v,
                dims.as_slice(),
                &candle_core::Device::Cpu,
            )?)
        };
        let lr32 = lr as f32;
        match self.spec {
            OptimizerSpec::Sgd {
                momentum,
                nesterov,
                weight_decay,
            } => {
                let (mu, wd) = (momentum as f32, weight_decay as f32);
                let mut buf = if momentum > 0.0 {
                    Some(state(&self.m)?.unwrap_or_default())
                } else {
                    None
                };
                let fresh = buf.as_ref().is_some_and(Vec::is_empty);
                if fresh {
                    buf = Some(vec![0.0; w.len()]);
                }
                for i in 0..w.len() {
                    let gi = if weight_decay > 0.0 {
                        g[i] + w[i] * wd
                    } else {
                        g[i]
                    };
                    let d = match buf.as_mut() {
                        Some(b) => {
                            let bi = if fresh { gi } else { b[i] * mu + gi } * keep(i);
                            b[i] = bi;
                            if nesterov {
                                gi + bi * mu
                            } else {
                                bi
                            }
                        }
                        None => gi,
                    };
                    w[i] = (w[i] - d * lr32) * keep(i);
                }
                if let Some(b) = buf {
                    self.m.insert(name.to_string(), tensor(b)?);
                }
            }
            OptimizerSpec::Adamw {
                beta1,
                beta2,
                eps,
                weight_decay,
            } => {
                let t = self.steps as i32;
                let (b1, b2) = (beta1 as f32, beta2 as f32);
                let (c1, c2) = ((1.0 - beta1) as f32, (1.0 - beta2) as f32);
                let (h1, h2) = (
                    (1.0 / (1.0 - beta1.powi(t))) as f32,
                    (1.0 / (1.0 - beta2.powi(t))) as f32,
                );
                let decay = (1.0 - lr * weight_decay) as f32;
                let m_old = state(&self.m)?;
                let v_old = state(&self.v)?;
                let mut m = vec![0f32; w.len()];
                let mut v = vec![0f32; w.len()];
                for i in 0..w.len() {
                    let mi = match &m_old {
                        Some(o) => o[i] * b1 + g[i] * c1,
                        None => g[i] * c1,
                    } * keep(i);
                    let g2 = g[i] * g[i];
                    let vi = match &v_old {
                        Some(o) => o[i] * b2 + g2 * c2,
                        None => g2 * c2,
                    } * keep(i);
                    let upd = (mi * h1) / ((vi * h2).sqrt() + eps as f32);
                    (m[i], v[i]) = (mi, vi);
                    w[i] = (w[i] * decay - upd * lr32) * keep(i);
                }
                self.m.insert(name.to_string(), tensor(m)?);
                self.v.insert(name.to_string(), tensor(v)?);
            }
        }
        var.set(&tensor(w)?)?;
        Ok(())
    }
}

/// Whether every given tensor is `f32` on the CPU.
fn on_cpu_f32(tensors: &[Option<&Tensor>]) -> bool {
    tensors
        .iter()
        .flatten()
        .all(|t| t.device().is_cpu() && t.dtype() == candle_core::DType::F32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ModelSpec;
    use candle_core::{DType, Device};

    fn tiny() -> Network {
        let arch = ModelSpec::Mlp { hidden: vec![8] }
            .build([1, 2, 2], 3)
            .unwrap();
        Network::new(arch, 1, &Device::Cpu).unwrap()
    }

    fn one_step(spec: OptimizerSpec) -> (Network, Optimizer) {
        one_step_with(Optimizer::new(spec))
    }

    fn one_step_with(mut opt: Optimizer) -> (Network, Optimizer) {
        let mut net = tiny();
        let w = net.params["fc1.weight"].as_tensor().clone();
        // prune every other weight of fc1
        let mask: Vec<f32> = (0..w.elem_count()).map(|i| (i % 2) as f32).collect();
        let mask = Tensor::from_vec(mask, w.dims(), &Device::Cpu).unwrap();
        net.masks.insert("fc1.weight".into(), mask);
        net.apply_masks().unwrap();
        for _ in 0..3 {
            let x = Tensor::ones((4, 1, 2, 2), DType::F32, &Device::Cpu).unwrap();
            let y = Tensor::new(&[0u32, 1, 2, 0], &Device::Cpu).unwrap();
            let loss = crate::train::loss(&net.forward(&x, true).unwrap(), &y).unwrap();
            let grads = loss.backward().unwrap();
            opt.step(&net, &grads, 0.1).unwrap();
        }
        (net, opt)
    }

    /// The optimiser's state holds values, not graphs: a buffer that tracked
    /// its ops would keep every earlier step's tensors alive (a leak that
    /// grew with every batch).
    #[test]
    fn state_does_not_keep_the_autograd_graph() {
        for spec in [
            OptimizerSpec::default(),
            OptimizerSpec::Adamw {
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
                weight_decay: 0.01,
            },
        ] {
            let (_, opt) = one_step(spec);
            assert!(!opt.m.is_empty());
            for t in opt.m.values().chain(opt.v.values()) {
                assert!(!t.track_op(), "optimiser state tracks its ops");
            }
        }
    }

    fn zeros_where_pruned(t: &Tensor) -> bool {
        let v = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        v.iter().step_by(2).all(|&x| x == 0.0) && v.iter().skip(1).step_by(2).any(|&x| x != 0.0)
    }

    #[test]
    fn sgd_keeps_pruned_weights_and_momentum_zero() {
        let (net, opt) = one_step(OptimizerSpec::default());
        assert!(zeros_where_pruned(net.params["fc1.weight"].as_tensor()));
        assert!(zeros_where_pruned(&opt.m["fc1.weight"]));
    }

    #[test]
    fn adamw_keeps_pruned_weights_and_moments_zero() {
        let spec = OptimizerSpec::Adamw {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.01,
        };
        let (net, opt) = one_step(spec);
        assert!(zeros_where_pruned(net.params["fc1.weight"].as_tensor()));
        assert!(zeros_where_pruned(&opt.m["fc1.weight"]));
        assert!(zeros_where_pruned(&opt.v["fc1.weight"]));
    }

    #[test]
    fn plain_sgd_matches_hand_computation() {
        let net = tiny();
        let var = &net.params["fc2.bias"];
        let before = var.as_tensor().to_vec1::<f32>().unwrap();
        let loss = var.as_tensor().sum_all().unwrap(); // d/db = 1
        let grads = loss.backward().unwrap();
        let mut opt = Optimizer::new(OptimizerSpec::Sgd {
            momentum: 0.0,
            nesterov: false,
            weight_decay: 0.0,
        });
        opt.step(&net, &grads, 0.5).unwrap();
        let after = var.as_tensor().to_vec1::<f32>().unwrap();
        for (a, b) in before.iter().zip(after) {
            assert!((a - 0.5 - b).abs() < 1e-6);
        }
    }

    /// The update in one pass over slices gives the values of the chain of
    /// tensor ops (the path of other devices), state included, for every
    /// optimiser setting, with a mask.
    #[test]
    fn slices_and_tensor_ops_agree() {
        let specs = [
            OptimizerSpec::default(),
            OptimizerSpec::Sgd {
                momentum: 0.9,
                nesterov: false,
                weight_decay: 0.0,
            },
            OptimizerSpec::Sgd {
                momentum: 0.0,
                nesterov: false,
                weight_decay: 1e-3,
            },
            OptimizerSpec::Adamw {
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
                weight_decay: 0.01,
            },
        ];
        for spec in specs {
            let (net_a, opt_a) = one_step(spec.clone());
            let mut slow = Optimizer::new(spec.clone());
            slow.slices = false;
            let (net_b, opt_b) = one_step_with(slow);
            for (name, var) in &net_a.params {
                let (a, b) = (
                    values(var.as_tensor()),
                    values(net_b.params[name].as_tensor()),
                );
                assert_eq!(a, b, "{spec:?}: {name}");
            }
            for (state_a, state_b) in [(&opt_a.m, &opt_b.m), (&opt_a.v, &opt_b.v)] {
                assert_eq!(state_a.len(), state_b.len(), "{spec:?}");
                for (name, t) in state_a {
                    assert_eq!(
                        values(t),
                        values(&state_b[name]),
                        "{spec:?}: state of {name}"
                    );
                }
            }
        }
    }

    fn values(t: &Tensor) -> Vec<f32> {
        t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
    }
}
