//! Compiles an [`Architecture`] (the list of layers with nested residual
//! blocks that earlier versions saved, and the built-in families still
//! build) into a [`Graph`]: a residual block becomes its two chains and an
//! `Add`. Parameter names stay as they were (`layer1.0.conv1.weight`), so
//! checkpoints and state dicts load unchanged.

use super::{Architecture, Node};
use crate::error::Result;
use crate::model::graph::{Dim, Graph, Op, Role, ValueId, BATCH_NORM_PARAMS};
use crate::model::ops::{activation::Act, conv::Conv, elementwise::Binary, pool::Pool};

/// BatchNorm's epsilon and momentum in the layer list (PyTorch's defaults).
const BN_EPS: f64 = 1e-5;
const BN_MOMENTUM: f64 = 0.1;

/// The graph of `arch` (its own graph when it has one, else its layer
/// list compiled): one input `input` of `[1, c, h, w]`, one output of
/// class scores.
pub fn compile(arch: &Architecture) -> Result<Graph> {
    if let Some(g) = &arch.graph {
        return Ok(g.clone());
    }
    let mut b = Builder {
        g: Graph::new(),
        count: 0,
    };
    let [c, h, w] = arch.input;
    let x = b.g.input("input", vec![1, c, h, w]);
    let y = b.chain(&arch.nodes, x)?;
    b.g.output(y);
    Ok(b.g)
}

struct Builder {
    g: Graph,
    /// Unnamed nodes made so far (for their names).
    count: usize,
}

impl Builder {
    /// A fresh name for an unnamed node of kind `kind`.
    fn fresh(&mut self, kind: &str) -> String {
        self.count += 1;
        format!("{kind}_{}", self.count)
    }

    fn chain(&mut self, nodes: &[Node], mut x: ValueId) -> Result<ValueId> {
        for n in nodes {
            x = self.node(n, x)?;
        }
        Ok(x)
    }

    /// The inputs `(x, weight, bias?)` of a layer called `name`.
    fn weights(&mut self, name: &str, x: ValueId, dims: Vec<usize>, bias: bool) -> Vec<ValueId> {
        let out = dims[0];
        let mut ins = vec![
            x,
            self.g.param(&format!("{name}.weight"), dims, Role::Weight),
        ];
        if bias {
            ins.push(self.g.param(&format!("{name}.bias"), vec![out], Role::Bias));
        }
        ins
    }

    fn node(&mut self, n: &Node, x: ValueId) -> Result<ValueId> {
        let g = &mut self.g;
        match n {
            Node::Conv2d {
                name,
                in_c,
                out_c,
                k,
                stride,
                pad,
                bias,
            } => {
                let ins = self.weights(name, x, vec![*out_c, *in_c, *k, *k], *bias);
                self.g.add(name, Op::Conv(Conv::plain(*stride, *pad)), &ins)
            }
            Node::Linear {
                name,
                in_f,
                out_f,
                bias,
            } => {
                let ins = self.weights(name, x, vec![*out_f, *in_f], *bias);
                self.g.add(name, Op::Linear, &ins)
            }
            Node::BatchNorm { name, c } => {
                let mut ins = vec![x];
                for (part, role) in BATCH_NORM_PARAMS {
                    ins.push(g.param(&format!("{name}.{part}"), vec![*c], role));
                }
                g.add(
                    name,
                    Op::BatchNorm {
                        eps: BN_EPS,
                        momentum: BN_MOMENTUM,
                    },
                    &ins,
                )
            }
            Node::Relu => {
                let name = self.fresh("relu");
                self.g.add(&name, Op::Act(Act::Relu), &[x])
            }
            Node::MaxPool { k, stride, pad } => {
                let name = self.fresh("max_pool");
                let pool = Pool::square(*k, stride.unwrap_or(*k), *pad);
                self.g.add(&name, Op::MaxPool(pool), &[x])
            }
            Node::AvgPool {
                k,
                stride,
                pad,
                count_pad,
            } => {
                let name = self.fresh("avg_pool");
                let pool = Pool {
                    count_pad: *count_pad,
                    ..Pool::square(*k, *stride, *pad)
                };
                self.g.add(&name, Op::AvgPool(pool), &[x])
            }
            Node::GlobalAvgPool => {
                let name = self.fresh("global_avg_pool");
                let op = Op::ReduceMean {
                    axes: vec![2, 3],
                    keep: false,
                };
                self.g.add(&name, op, &[x])
            }
            Node::AdaptiveAvgPool { h, w } => {
                let name = self.fresh("adaptive_avg_pool");
                self.g
                    .add(&name, Op::AdaptiveAvgPool { out: [*h, *w] }, &[x])
            }
            Node::Dropout { p } => {
                let name = self.fresh("dropout");
                self.g.add(&name, Op::Dropout { p: *p }, &[x])
            }
            Node::Flatten => {
                let rest = self.g.value(x).dims[1..].iter().product();
                let name = self.fresh("flatten");
                let op = Op::Reshape {
                    shape: vec![Dim::Batch(1), Dim::Fixed(rest)],
                };
                self.g.add(&name, op, &[x])
            }
            Node::Residual { body, shortcut } => {
                let a = self.chain(body, x)?;
                let s = self.chain(shortcut, x)?;
                let name = self.fresh("add");
                self.g.add(&name, Op::Binary(Binary::Add), &[a, s])
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ModelSpec;

    /// Compiling keeps the layer list's parameters (names, dims, order) and
    /// counts the same multiply-accumulates; the network's passes on the graph
    /// are checked against Candle's autograd in `model::backprop`.
    #[test]
    fn layer_lists_compile_to_the_same_parameters() {
        let archs = [
            ModelSpec::Lenet5.build([1, 28, 28], 10).unwrap(),
            ModelSpec::Resnet20 { width: 4 }
                .build([3, 16, 16], 10)
                .unwrap(),
            ModelSpec::Vgg {
                channels: vec![8, 0, 16, 0],
            }
            .build([3, 12, 12], 5)
            .unwrap(),
            ModelSpec::Mlp {
                hidden: vec![20, 12],
            }
            .build([1, 6, 6], 4)
            .unwrap(),
        ];
        for arch in archs {
            let g = compile(&arch).unwrap();
            g.lint().unwrap();
            assert_eq!(g.macs(), arch.macs(), "{:?}", arch.family);
            let ours: Vec<(String, Vec<usize>, Role)> = g
                .params()
                .map(|p| (p.name.to_string(), p.dims.to_vec(), p.role))
                .collect();
            assert_eq!(ours, arch.tensor_specs(), "{:?}", arch.family);
            let out = &g.value(g.outputs[0]).dims;
            assert_eq!(out, &vec![1, arch.num_classes]);
        }
    }

    #[test]
    fn graphs_round_trip_through_json() {
        let arch = ModelSpec::Resnet20 { width: 4 }
            .build([3, 16, 16], 10)
            .unwrap();
        let g = compile(&arch).unwrap();
        let back: Graph = serde_json::from_str(&serde_json::to_string(&g).unwrap()).unwrap();
        assert_eq!(back, g);
        back.lint().unwrap();
    }
}
