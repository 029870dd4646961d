//! The interpreter against finite differences (every op, in `f64`) and
//! against the list-of-layers passes it replaces (every built-in family,
//! in `f32`), and random graphs from the op set.

use std::collections::BTreeMap;

use proptest::prelude::*;
use rand::{Rng, SeedableRng};

use super::run::{backward, forward, Buf};
use super::{candle, Dim, Graph, Op, Role, ValueId};
use crate::model::ops::{activation::Act, conv::Conv, elementwise::Binary, pool::Pool};

fn rng(seed: u64) -> rand::rngs::StdRng {
    rand::rngs::StdRng::seed_from_u64(seed)
}

fn randn(rng: &mut impl Rng, n: usize) -> Vec<f64> {
    (0..n).map(|_| rng.random_range(-1.0..1.0)).collect()
}

/// Random values for every parameter of `g` (variances positive).
fn random_params(g: &Graph, seed: u64) -> BTreeMap<String, Vec<f64>> {
    let mut r = rng(seed);
    g.params()
        .map(|p| {
            let n: usize = p.dims.iter().product();
            // Variances (and a written-out layer norm's epsilon) positive.
            let v = if p.name.ends_with("running_var") || p.name.ends_with(".eps") {
                (0..n).map(|_| r.random_range(0.5..1.5)).collect()
            } else {
                randn(&mut r, n)
            };
            (p.name.to_string(), v)
        })
        .collect()
}

/// `sum(output * weights)` of a training pass.
fn objective(g: &Graph, p: &BTreeMap<String, Vec<f64>>, x: &Buf<'_, f64>, weights: &[f64]) -> f64 {
    let out = forward(g, p, vec![x.clone()], Some(&mut rng(7))).unwrap();
    out.outputs[0]
        .data()
        .iter()
        .zip(weights)
        .map(|(a, b)| a * b)
        .sum()
}

/// Checks the backward pass of `g` (training mode, `f64`) against central
/// differences, for every trainable parameter and the input, at up to
/// `samples` entries each.
fn check_gradients(g: &Graph, x_dims: Vec<usize>, seed: u64) {
    g.lint().unwrap();
    let mut r = rng(seed);
    let n: usize = x_dims.iter().product();
    let x = Buf::new(randn(&mut r, n), x_dims);
    let mut p = random_params(g, seed + 1);
    let fwd = forward(g, &p, vec![x.clone()], Some(&mut rng(7))).unwrap();
    let out_len = fwd.outputs[0].data().len();
    let weights = randn(&mut r, out_len);
    let grads = backward(g, fwd.tape.unwrap(), vec![weights.clone()], true).unwrap();
    same_as_candle(g, &p, &x, fwd.outputs[0].data(), &weights, &grads);
    let h = 1e-6;
    let close = |analytic: f64, numeric: f64, what: &str| {
        let tol = 1e-6 * (1.0 + numeric.abs().max(analytic.abs()));
        assert!(
            (analytic - numeric).abs() <= tol,
            "{what}: analytic {analytic}, numeric {numeric}"
        );
    };
    for (name, analytic) in &grads.params {
        let len = analytic.len();
        for i in (0..len).step_by(len.div_ceil(12).max(1)) {
            let keep = p[name][i];
            p.get_mut(name).unwrap()[i] = keep + h;
            let up = objective(g, &p, &x, &weights);
            p.get_mut(name).unwrap()[i] = keep - h;
            let down = objective(g, &p, &x, &weights);
            p.get_mut(name).unwrap()[i] = keep;
            close(
                analytic[i],
                (up - down) / (2.0 * h),
                &format!("{name}[{i}]"),
            );
        }
    }
    let dx = grads.inputs[0].as_ref().expect("input gradient");
    for i in (0..n).step_by(n.div_ceil(16).max(1)) {
        let mut xs = x.data().to_vec();
        xs[i] += h;
        let up = objective(g, &p, &Buf::new(xs.clone(), x.dims.clone()), &weights);
        xs[i] -= 2.0 * h;
        let down = objective(g, &p, &Buf::new(xs, x.dims.clone()), &weights);
        close(dx[i], (up - down) / (2.0 * h), &format!("input[{i}]"));
    }
}

/// Checks Candle's pass of `g` (training mode, `f64`, its autograd)
/// against the interpreter's: the output `y` and the gradients `grads` of
/// `sum(y * weights)` toward every trainable parameter and the input.
fn same_as_candle(
    g: &Graph,
    p: &BTreeMap<String, Vec<f64>>,
    x: &Buf<'_, f64>,
    y: &[f64],
    weights: &[f64],
    grads: &super::run::Grads<f64>,
) {
    use candle_core::{Device, Tensor, Var};
    let dev = Device::Cpu;
    let mut params = BTreeMap::new();
    let mut buffers = BTreeMap::new();
    for info in g.params() {
        let t = Tensor::from_vec(p[info.name].clone(), info.dims, &dev).unwrap();
        if info.role.trainable() {
            params.insert(info.name.to_string(), Var::from_tensor(&t).unwrap());
        } else {
            buffers.insert(info.name.to_string(), t);
        }
    }
    let xv = Var::from_tensor(&Tensor::from_vec(x.data().to_vec(), x.dims.clone(), &dev).unwrap())
        .unwrap();
    let mut r = rng(7);
    let mut run = candle::Run {
        params: &params,
        buffers: &mut buffers,
        train: true,
        rng: &mut r,
        record: None,
    };
    let out = candle::forward(g, xv.as_tensor(), &mut run).unwrap();
    let close = |a: f64, b: f64, what: &str| {
        assert!(
            (a - b).abs() <= 1e-9 * (1.0 + a.abs().max(b.abs())),
            "{what}: interpreter {a}, Candle {b} in {:?}",
            g.nodes.iter().map(|n| n.op.kind()).collect::<Vec<_>>()
        );
    };
    let ys = out.flatten_all().unwrap().to_vec1::<f64>().unwrap();
    assert_eq!(ys.len(), y.len());
    for (i, (a, b)) in y.iter().zip(&ys).enumerate() {
        close(*a, *b, &format!("output[{i}]"));
    }
    let wt = Tensor::from_vec(weights.to_vec(), out.dims(), &dev).unwrap();
    let cg = (out * wt).unwrap().sum_all().unwrap().backward().unwrap();
    for (name, ours) in &grads.params {
        let theirs = cg
            .get(params[name].as_tensor())
            .map(|t| t.flatten_all().unwrap().to_vec1::<f64>().unwrap())
            .unwrap_or_else(|| vec![0.0; ours.len()]);
        for (i, (a, b)) in ours.iter().zip(&theirs).enumerate() {
            close(*a, *b, &format!("{name}[{i}]"));
        }
    }
    let theirs = cg.get(xv.as_tensor()).unwrap().flatten_all().unwrap();
    let theirs = theirs.to_vec1::<f64>().unwrap();
    for (i, (a, b)) in grads.inputs[0]
        .as_ref()
        .unwrap()
        .iter()
        .zip(&theirs)
        .enumerate()
    {
        close(*a, *b, &format!("input[{i}]"));
    }
}

/// A graph of one op on an input of `dims` and parameters `params`.
fn one_op(dims: &[usize], op: Op, params: &[(&str, Vec<usize>, Role)]) -> Graph {
    let mut g = Graph::new();
    // Declared for a batch of one; the checks run a batch of dims[0].
    let mut declared = dims.to_vec();
    declared[0] = 1;
    let x = g.input("x", declared);
    let mut ins = vec![x];
    for (name, d, role) in params {
        ins.push(g.param(name, d.clone(), *role));
    }
    let y = g.add("op", op, &ins).unwrap();
    g.output(y);
    g
}

#[test]
fn convolutions_match_finite_differences() {
    let w = |d: [usize; 4]| ("w", d.to_vec(), Role::Weight);
    let b = |n: usize| ("b", vec![n], Role::Bias);
    // Plain (the fused kernel), grouped with dilation and uneven padding,
    // depthwise with a multiplier, depthwise strided.
    let cases = [
        (Conv::plain(1, 1), [4, 3, 3, 3], 3),
        (
            Conv {
                stride: [2, 1],
                pad: [1, 0, 2, 1],
                dilation: [2, 1],
                groups: 2,
            },
            [4, 2, 3, 2],
            4,
        ),
        (
            Conv {
                stride: [1, 1],
                pad: [1, 1, 1, 1],
                dilation: [1, 1],
                groups: 4,
            },
            [8, 1, 3, 3],
            4,
        ),
        (
            Conv {
                stride: [2, 2],
                pad: [2, 1, 1, 2],
                dilation: [1, 2],
                groups: 4,
            },
            [4, 1, 5, 3],
            4,
        ),
    ];
    for (i, (conv, wd, c)) in cases.into_iter().enumerate() {
        let g = one_op(&[2, c, 7, 6], Op::Conv(conv), &[w(wd), b(wd[0])]);
        check_gradients(&g, vec![2, c, 7, 6], 10 + i as u64);
    }
    // MobileNet's strided depthwise convolution (symmetric padding; an
    // input row no window reaches), batch 3.
    let dw = Conv {
        stride: [2, 2],
        pad: [1; 4],
        dilation: [1, 1],
        groups: 4,
    };
    let g = one_op(&[3, 4, 8, 8], Op::Conv(dw), &[w([4, 1, 3, 3]), b(4)]);
    check_gradients(&g, vec![3, 4, 8, 8], 20);
}

#[test]
fn activations_match_finite_differences() {
    let acts = [
        Act::Relu,
        Act::Clip {
            min: -0.5,
            max: 0.6,
        },
        Act::LeakyRelu { alpha: 0.1 },
        Act::Sigmoid,
        Act::Silu,
        Act::HardSigmoid {
            alpha: 0.4,
            beta: 0.5,
        },
        Act::HardSwish,
        Act::Gelu { tanh: false },
        Act::Gelu { tanh: true },
        Act::Tanh,
        Act::Erf,
        Act::Scale { by: 0.35 },
        Act::Pow { exponent: 2.0 },
        Act::Pow { exponent: 3.0 },
        Act::Pow { exponent: 0.5 },
        Act::Sqrt,
    ];
    for (i, a) in acts.into_iter().enumerate() {
        // A linear layer first, so parameters get gradients through it; the
        // input is scaled so HardSwish sees values beyond ±3.
        let mut g = Graph::new();
        let x = g.input("x", vec![1, 5]);
        let w = g.param("w", vec![6, 5], Role::Weight);
        let l = g.add("fc", Op::Linear, &[x, w]).unwrap();
        let l = if a == Act::HardSwish {
            let s = g.param("scale", vec![1], Role::Constant);
            g.add("scaled", Op::Binary(Binary::Mul), &[l, s]).unwrap()
        } else if matches!(a, Act::Sqrt | Act::Pow { exponent: 0.5 }) {
            // Positive inputs, away from zero.
            g.add("positive", Op::Act(Act::Sigmoid), &[l]).unwrap()
        } else {
            l
        };
        let y = g.add("act", Op::Act(a), &[l]).unwrap();
        g.output(y);
        check_gradients(&g, vec![3, 5], 20 + i as u64);
    }
}

#[test]
fn norms_and_softmax_match_finite_differences() {
    let c = |n: &str, role| (n.to_string(), vec![3usize], role);
    let bn: Vec<(String, Vec<usize>, Role)> = vec![
        c("g", Role::Norm),
        c("b", Role::Norm),
        c("running_mean", Role::Buffer),
        c("running_var", Role::Buffer),
    ];
    let bn: Vec<(&str, Vec<usize>, Role)> = bn
        .iter()
        .map(|(n, d, r)| (n.as_str(), d.clone(), *r))
        .collect();
    let op = Op::BatchNorm {
        eps: 1e-5,
        momentum: 0.1,
    };
    check_gradients(
        &one_op(&[4, 3, 2, 3], op.clone(), &bn),
        vec![4, 3, 2, 3],
        30,
    );
    check_gradients(&one_op(&[5, 3], op, &bn), vec![5, 3], 31);
    let ln = [("g", vec![2, 4], Role::Norm), ("b", vec![2, 4], Role::Norm)];
    let op = Op::LayerNorm { axis: 1, eps: 1e-6 };
    check_gradients(&one_op(&[3, 2, 4], op, &ln), vec![3, 2, 4], 32);
    check_gradients(
        &one_op(&[2, 3, 4], Op::Softmax { axis: 1 }, &[]),
        vec![2, 3, 4],
        33,
    );
    check_gradients(
        &one_op(&[2, 3, 4], Op::Softmax { axis: 2 }, &[]),
        vec![2, 3, 4],
        34,
    );
}

#[test]
fn binary_ops_broadcast_and_match_finite_differences() {
    for (i, op) in [Binary::Add, Binary::Sub, Binary::Mul, Binary::Div]
        .into_iter()
        .enumerate()
    {
        // A per-channel parameter against maps, and a per-sample gate.
        let g = one_op(
            &[2, 3, 2, 2],
            Op::Binary(op),
            &[("p", vec![3, 1, 1], Role::Embedding)],
        );
        check_gradients(&g, vec![2, 3, 2, 2], 40 + i as u64);
        let mut g = Graph::new();
        let x = g.input("x", vec![1, 3, 4]);
        let w = g.param("w", vec![1, 4], Role::Weight);
        let gate = g
            .add(
                "gate",
                Op::ReduceMean {
                    axes: vec![2],
                    keep: true,
                },
                &[x],
            )
            .unwrap();
        let gate = g.add("gate_act", Op::Act(Act::Sigmoid), &[gate]).unwrap();
        let t = g.add("scaled", Op::Binary(Binary::Mul), &[x, w]).unwrap();
        let y = g.add("op", Op::Binary(op), &[t, gate]).unwrap();
        g.output(y);
        check_gradients(&g, vec![2, 3, 4], 50 + i as u64);
    }
}

#[test]
fn layout_ops_match_finite_differences() {
    let mut g = Graph::new();
    let x = g.input("x", vec![1, 4, 3]);
    // Class token concatenated in front (broadcast over the batch), then
    // transposed, sliced, gathered, reshaped and multiplied.
    let tok = g.param("cls", vec![1, 1, 3], Role::Embedding);
    let pos = g.param("pos", vec![1, 5, 3], Role::Embedding);
    let c = g.add("cat", Op::Concat { axis: 1 }, &[tok, x]).unwrap();
    let c = g
        .add("pos_add", Op::Binary(Binary::Add), &[c, pos])
        .unwrap();
    let t = g
        .add(
            "t",
            Op::Transpose {
                perm: vec![0, 2, 1],
            },
            &[c],
        )
        .unwrap();
    let s = g
        .add(
            "s",
            Op::Slice {
                axis: 2,
                start: 1,
                end: 4,
            },
            &[t],
        )
        .unwrap();
    // Padded with a constant, which the gather below takes too.
    let p = g
        .add(
            "p",
            Op::Pad {
                axis: 2,
                before: 1,
                after: 2,
                value: 0.5,
            },
            &[s],
        )
        .unwrap();
    let q = g
        .add(
            "q",
            Op::Gather {
                axis: 2,
                index: vec![2, 0, 1],
                keep_axis: true,
            },
            &[p],
        )
        .unwrap();
    let r = g
        .add(
            "r",
            Op::Reshape {
                shape: vec![Dim::Batch(1), Dim::Fixed(9)],
            },
            &[q],
        )
        .unwrap();
    let first = g
        .add(
            "first",
            Op::Gather {
                axis: 1,
                index: vec![0],
                keep_axis: false,
            },
            &[c],
        )
        .unwrap();
    let w = g.param("w", vec![9, 3], Role::Weight);
    let proj = g.add("proj", Op::Linear, &[first, w]).unwrap();
    let y = g.add("y", Op::Binary(Binary::Mul), &[r, proj]).unwrap();
    g.output(y);
    check_gradients(&g, vec![2, 4, 3], 60);
}

#[test]
fn attention_matches_finite_differences() {
    // One head of self-attention: softmax(q k^T / 2) v, projections as
    // linear layers over [b, tokens, dim].
    let mut g = Graph::new();
    let x = g.input("x", vec![1, 3, 4]);
    let proj = |g: &mut Graph, n: &str| {
        let w = g.param(&format!("{n}.weight"), vec![4, 4], Role::Weight);
        let b = g.param(&format!("{n}.bias"), vec![4], Role::Bias);
        g.add(n, Op::Linear, &[x, w, b]).unwrap()
    };
    let (q, k, v) = (proj(&mut g, "q"), proj(&mut g, "k"), proj(&mut g, "v"));
    let kt = g
        .add(
            "kt",
            Op::Transpose {
                perm: vec![0, 2, 1],
            },
            &[k],
        )
        .unwrap();
    let s = g.add("scores", Op::MatMul, &[q, kt]).unwrap();
    let half = g.param("half", vec![1], Role::Constant);
    let s = g
        .add("scaled", Op::Binary(Binary::Mul), &[s, half])
        .unwrap();
    let a = g.add("attn", Op::Softmax { axis: 2 }, &[s]).unwrap();
    let y = g.add("out", Op::MatMul, &[a, v]).unwrap();
    g.output(y);
    check_gradients(&g, vec![2, 3, 4], 70);
}

#[test]
fn pools_and_means_match_finite_differences() {
    let pools = [
        Op::MaxPool(Pool::square(3, 2, 1)),
        Op::MaxPool(Pool {
            kernel: [2, 3],
            stride: [2, 2],
            pad: [0, 1, 1, 1],
            ceil: true,
            count_pad: false,
        }),
        Op::AvgPool(Pool::square(3, 2, 1)),
        Op::AvgPool(Pool {
            ceil: true,
            count_pad: false,
            ..Pool::square(3, 2, 1)
        }),
        Op::AdaptiveAvgPool { out: [3, 2] },
        Op::ReduceMean {
            axes: vec![2, 3],
            keep: false,
        },
        Op::ReduceMean {
            axes: vec![1, 3],
            keep: true,
        },
    ];
    for (i, op) in pools.into_iter().enumerate() {
        check_gradients(
            &one_op(&[2, 2, 7, 5], op, &[]),
            vec![2, 2, 7, 5],
            80 + i as u64,
        );
    }
}

#[test]
fn ceil_mode_keeps_a_last_window_that_starts_inside() {
    // PyTorch: MaxPool2d(3, 2, ceil_mode=True) on 8x8 gives 4x4 (floor: 3x3).
    let p = Pool {
        ceil: true,
        ..Pool::square(3, 2, 0)
    };
    assert_eq!(p.out_dims(&[1, 1, 8, 8]).unwrap(), vec![1, 1, 4, 4]);
    assert_eq!(
        Pool::square(3, 2, 0).out_dims(&[1, 1, 8, 8]).unwrap(),
        vec![1, 1, 3, 3]
    );
    // With padding 1 on 7: floor gives 4, ceil too (the fifth window
    // would start in the padding).
    let p = Pool {
        ceil: true,
        ..Pool::square(3, 2, 1)
    };
    assert_eq!(p.out_dims(&[1, 1, 7, 7]).unwrap(), vec![1, 1, 4, 4]);
}

#[test]
fn bad_graphs_are_refused_with_the_node_named() {
    let mut g = Graph::new();
    let x = g.input("x", vec![1, 3, 8, 8]);
    let w = g.param("conv.weight", vec![4, 2, 3, 3], Role::Weight);
    let e = g
        .add("conv", Op::Conv(Conv::plain(1, 1)), &[x, w])
        .unwrap_err()
        .to_string();
    assert!(e.contains("conv") && e.contains("groups"), "{e}");
    let e = g
        .add(
            "t",
            Op::Transpose {
                perm: vec![0, 1, 1, 2],
            },
            &[x],
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("node `t`") && e.contains("permutation"), "{e}");
    // A graph read from a file whose recorded dims are wrong.
    let y = g.add("relu", Op::Act(Act::Relu), &[x]).unwrap();
    g.output(y);
    g.lint().unwrap();
    let mut bad = g.clone();
    bad.values[y.index()].dims = vec![1, 3, 8, 7];
    assert!(bad.lint().unwrap_err().to_string().contains("relu"));
    let mut bad = g.clone();
    bad.nodes.swap(0, 2);
    assert!(bad
        .lint()
        .unwrap_err()
        .to_string()
        .contains("before it is produced"));
    let mut bad = g;
    bad.nodes[2].output = ValueId(0);
    assert!(bad.lint().is_err());
}

/// One random op appended to `g` after value `x` (of rank 4 maps), or
/// `None` where the op does not fit.
fn random_step(g: &mut Graph, x: ValueId, choice: u8, k: usize) -> Option<ValueId> {
    let dims = g.value(x).dims.clone();
    let c = dims[1];
    let name = format!("n{k}");
    let op = match choice % 10 {
        0 => {
            let w = g.param(&format!("{name}.weight"), vec![c, 1, 3, 3], Role::Weight);
            let conv = Conv {
                stride: [1, 1],
                pad: [1; 4],
                dilation: [1, 1],
                groups: c,
            };
            return g.add(&name, Op::Conv(conv), &[x, w]).ok();
        }
        1 => {
            let w = g.param(
                &format!("{name}.weight"),
                vec![c + 1, c, 1, 3],
                Role::Weight,
            );
            let b = g.param(&format!("{name}.bias"), vec![c + 1], Role::Bias);
            let conv = Conv {
                stride: [1, 1],
                pad: [0, 1, 0, 1],
                dilation: [1, 1],
                groups: 1,
            };
            return g.add(&name, Op::Conv(conv), &[x, w, b]).ok();
        }
        2 => Op::Act(Act::Silu),
        3 => Op::Act(Act::Gelu { tanh: false }),
        4 => {
            let s = g.param(&format!("{name}.scale"), vec![c, 1, 1], Role::Embedding);
            return g.add(&name, Op::Binary(Binary::Mul), &[x, s]).ok();
        }
        5 => {
            let a = g.add(&format!("{name}.a"), Op::Act(Act::Tanh), &[x]).ok()?;
            return g.add(&name, Op::Binary(Binary::Add), &[a, x]).ok();
        }
        6 => {
            let a = g
                .add(&format!("{name}.a"), Op::Act(Act::Sigmoid), &[x])
                .ok()?;
            return g.add(&name, Op::Concat { axis: 1 }, &[x, a]).ok();
        }
        7 => Op::Pad {
            axis: 3,
            before: 1,
            after: 0,
            value: 0.25,
        },
        8 => {
            // The layer norm before opset 17: written out.
            let m = g
                .add(
                    &format!("{name}.mean"),
                    Op::ReduceMean {
                        axes: vec![1],
                        keep: true,
                    },
                    &[x],
                )
                .ok()?;
            let d = g
                .add(&format!("{name}.d"), Op::Binary(Binary::Sub), &[x, m])
                .ok()?;
            let sq = g
                .add(
                    &format!("{name}.sq"),
                    Op::Act(Act::Pow { exponent: 2.0 }),
                    &[d],
                )
                .ok()?;
            let v = g
                .add(
                    &format!("{name}.var"),
                    Op::ReduceMean {
                        axes: vec![1],
                        keep: true,
                    },
                    &[sq],
                )
                .ok()?;
            let e = g.param(&format!("{name}.eps"), vec![1], Role::Constant);
            let v = g
                .add(&format!("{name}.v"), Op::Binary(Binary::Add), &[v, e])
                .ok()?;
            let r = g
                .add(&format!("{name}.sqrt"), Op::Act(Act::Sqrt), &[v])
                .ok()?;
            return g.add(&name, Op::Binary(Binary::Div), &[d, r]).ok();
        }
        _ => Op::AvgPool(Pool::square(3, 1, 1)),
    };
    g.add(&name, op, &[x]).ok()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    /// Random small graphs of the op set: the backward pass equals finite
    /// differences.
    #[test]
    fn random_graphs_match_finite_differences(steps in proptest::collection::vec(0u8..10, 1..5), seed in 0u64..1000) {
        let mut g = Graph::new();
        let mut x = g.input("x", vec![1, 2, 4, 4]);
        for (k, &s) in steps.iter().enumerate() {
            if let Some(y) = random_step(&mut g, x, s, k) {
                x = y;
            }
        }
        let c = g.value(x).dims[1];
        let pooled = g.add("pool", Op::ReduceMean { axes: vec![2, 3], keep: false }, &[x]).unwrap();
        let w = g.param("fc.weight", vec![3, c], Role::Weight);
        let y = g.add("fc", Op::Linear, &[pooled, w]).unwrap();
        g.output(y);
        check_gradients(&g, vec![2, 2, 4, 4], seed);
    }
}
