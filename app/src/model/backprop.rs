//! The network's own training and evaluation passes on the CPU in `f32`:
//! the graph interpreter ([`super::graph::run`]) with the parameters and
//! buffers borrowed from the network's tensors (not copied), and the
//! cross-entropy loss with its gradient.
//!
//! Candle's autograd accumulates every gradient that reaches a tensor as
//! `zeros_like` + `add` and runs residual adds and reshapes as graph nodes
//! of their own; here a gradient is one buffer handed from node to node,
//! and each parameter's gradient is written once. Other devices and other
//! float types use Candle's autograd; tests compare both on every
//! architecture.

use std::collections::BTreeMap;

use candle_core::{DType, Device, Layout, Storage, Tensor, Var};

use super::graph::run::{self, Buf};
use super::graph::Graph;
use crate::error::{Error, Result};

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

/// Whether the passes here run tensors of `dtype` on `device`.
pub(super) fn runs(device: &Device, dtype: DType) -> bool {
    device.is_cpu() && dtype == DType::F32
}

/// Read locks on the storage of a network's parameters and buffers, held
/// for one pass so the interpreter can borrow their values.
struct Held<'a> {
    tensors: Vec<(&'a str, candle_core::StorageRef<'a>, &'a Layout)>,
}

impl<'a> Held<'a> {
    fn of(params: &'a BTreeMap<String, Var>, buffers: &'a BTreeMap<String, Tensor>) -> Self {
        let tensors = params
            .iter()
            .map(|(k, v)| (k, v.as_tensor()))
            .chain(buffers.iter())
            .map(|(k, t)| {
                let (s, l) = t.storage_and_layout();
                (k.as_str(), s, l)
            })
            .collect();
        Held { tensors }
    }

    /// The values of every tensor by name.
    fn view(&self) -> Result<BTreeMap<&str, &[f32]>> {
        self.tensors
            .iter()
            .map(|(name, storage, layout)| {
                let Storage::Cpu(cpu) = &**storage else {
                    return Err(Error::Shape(format!("tensor `{name}` is not on the CPU")));
                };
                if !layout.is_contiguous() {
                    return Err(Error::Shape(format!("tensor `{name}` is not contiguous")));
                }
                let all = cpu.as_slice::<f32>()?;
                let start = layout.start_offset();
                let n = layout.shape().elem_count();
                Ok((*name, &all[start..start + n]))
            })
            .collect()
    }
}

/// One training step's forward and backward pass on the batch `x [b, ...]`
/// with class indices `labels [b]`: BatchNorm uses (and updates its running
/// statistics from) the batch statistics, dropout draws its masks from `rng`.
pub(super) fn train_pass(
    graph: &Graph,
    params: &BTreeMap<String, Var>,
    buffers: &mut BTreeMap<String, Tensor>,
    rng: &mut rand::rngs::StdRng,
    x: &Tensor,
    labels: &Tensor,
) -> Result<TrainPass> {
    let input = Buf::new(x.flatten_all()?.to_vec1::<f32>()?, x.dims().to_vec());
    let labels = labels.to_vec1::<u32>()?;
    let (logits, b, classes, loss, grads, updates) = {
        let held = Held::of(params, buffers);
        let view = held.view()?;
        let fwd = run::forward(graph, &view, vec![input], Some(rng))?;
        let out = &fwd.outputs[0];
        let &[b, classes] = out.dims.as_slice() else {
            return Err(Error::Shape(format!(
                "the network outputs {:?}, not [batch, classes]",
                out.dims
            )));
        };
        let logits = out.data().to_vec();
        let (loss, dlogits) = cross_entropy(&logits, b, classes, &labels)?;
        let tape = fwd.tape.expect("a training pass keeps its tape");
        let grads = run::backward(graph, tape, vec![dlogits], false)?;
        (logits, b, classes, loss, grads.params, fwd.updates)
    };
    for (name, values) in updates {
        let n = values.len();
        buffers.insert(name, Tensor::from_vec(values, n, &Device::Cpu)?);
    }
    let grads = grads
        .into_iter()
        .map(|(name, g)| {
            let dims = params
                .get(&name)
                .ok_or_else(|| {
                    Error::Shape(format!("gradient of `{name}`, which is not a parameter"))
                })?
                .dims();
            Ok((name, Tensor::from_vec(g, dims, &Device::Cpu)?))
        })
        .collect::<Result<_>>()?;
    Ok(TrainPass {
        logits: Tensor::from_vec(logits, (b, classes), &Device::Cpu)?,
        loss,
        grads,
    })
}

/// The evaluation-mode forward pass (BatchNorm with running statistics, no
/// dropout) of `x`, keeping nothing for a backward pass.
pub(super) fn infer(
    graph: &Graph,
    params: &BTreeMap<String, Var>,
    buffers: &BTreeMap<String, Tensor>,
    x: &Tensor,
) -> Result<Tensor> {
    let input = Buf::new(x.flatten_all()?.to_vec1::<f32>()?, x.dims().to_vec());
    let held = Held::of(params, buffers);
    let view = held.view()?;
    let mut fwd = run::forward(graph, &view, vec![input], None)?;
    let out = fwd.outputs.swap_remove(0);
    let dims = out.dims.clone();
    Ok(Tensor::from_vec(out.into_vec(), dims, &Device::Cpu)?)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::testutil::values;
    use crate::model::{Architecture, Family, ModelSpec, Network, Node, Preprocess};

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
            graph: None,
            nodes,
            preprocess: Preprocess::default(),
        };
        agrees_with_autograd(arch, 7, 5);
    }

    /// Average and adaptive pools (ONNX and torchvision models) run on
    /// the own pass too.
    #[test]
    fn average_pools_match_candle_autograd() {
        let nodes = vec![
            Node::Conv2d {
                name: "c1".into(),
                in_c: 2,
                out_c: 4,
                k: 3,
                stride: 1,
                pad: 1,
                bias: true,
            },
            Node::AvgPool {
                k: 3,
                stride: 2,
                pad: 1,
                count_pad: false,
            },
            Node::Relu,
            Node::AdaptiveAvgPool { h: 2, w: 3 },
            Node::Flatten,
            Node::Linear {
                name: "fc".into(),
                in_f: 24,
                out_f: 3,
                bias: true,
            },
        ];
        let arch = Architecture {
            family: Family::Onnx,
            input: [2, 9, 7],
            num_classes: 3,
            graph: None,
            nodes,
            preprocess: Preprocess::default(),
        };
        agrees_with_autograd(arch, 5, 6);
        assert!(!runs(&Device::Cpu, DType::F64));
        assert!(runs(&Device::Cpu, DType::F32));
    }

    #[test]
    fn labels_out_of_range_are_an_error() {
        let err = cross_entropy(&[0.0; 6], 2, 3, &[0, 3]).unwrap_err();
        assert!(err.to_string().contains("label 3"), "{err}");
    }
}
