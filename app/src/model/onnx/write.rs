//! A Shears network -> ONNX (opset 17), from its graph: one ONNX node (or a
//! few) per graph node, every parameter an initializer under its
//! state-dict name. Dropout and stochastic depth are left out (an
//! inference graph); a reshape that keeps the batch free writes `-1` there;
//! a learned tensor concatenated with a batch (a class token) is expanded
//! to the batch first.

use std::path::Path;

use prost::Message;

use super::proto::{
    attr, dtype, AttributeProto, Dimension, GraphProto, ModelProto, NodeProto, OperatorSetIdProto,
    TensorProto, TensorShapeProto, TypeProto, TypeProtoTensor, ValueInfoProto,
};
use crate::error::{Error, Result};
use crate::model::arch::compile::compile;
use crate::model::graph::{Dim, Graph, Node, Op};
use crate::model::network::Network;
use crate::model::ops::activation::{exact, Act};
use crate::model::ops::elementwise::Binary;
use crate::model::pool::{adaptive_axis, axis_matrix};

/// The ONNX opset written.
pub const OPSET: i64 = 17;

/// Writes `net` as ONNX to `path` (atomically).
pub fn save(net: &Network, path: &Path) -> Result<()> {
    let bytes = to_bytes(net)?;
    crate::fsutil::write_atomic(path, &bytes)
}

/// The bytes of `net` as an ONNX model with input `input` (`[batch, c, h,
/// w]`, batch symbolic) and output `logits`.
pub fn to_bytes(net: &Network) -> Result<Vec<u8>> {
    let graph = compile(&net.arch)?;
    let mut w = Writer {
        net,
        graph: &graph,
        nodes: Vec::new(),
        init: Vec::new(),
        names: vec![String::new(); graph.values.len()],
        next: 0,
        batch: None,
    };
    for node in &graph.nodes {
        let out = w.node(node)?;
        w.names[node.output.index()] = out;
    }
    let out = graph
        .outputs
        .first()
        .ok_or_else(|| Error::Shape("the graph has no output".into()))?;
    let last = w.names[out.index()].clone();
    w.nodes.push(node("Identity", &[&last], "logits", vec![]));
    let [c, h, ww] = net.arch.input;
    let tensor_type = |dims: Vec<Dimension>| TypeProto {
        tensor_type: Some(TypeProtoTensor {
            elem_type: dtype::FLOAT,
            shape: Some(TensorShapeProto { dim: dims }),
        }),
    };
    let batch = || Dimension {
        dim_value: None,
        dim_param: Some("batch".into()),
    };
    let fixed = |v: usize| Dimension {
        dim_value: Some(v as i64),
        dim_param: None,
    };
    let graph = GraphProto {
        node: w.nodes,
        name: net.arch.family.name().into(),
        initializer: w.init,
        input: vec![ValueInfoProto {
            name: "input".into(),
            r#type: Some(tensor_type(vec![batch(), fixed(c), fixed(h), fixed(ww)])),
        }],
        output: vec![ValueInfoProto {
            name: "logits".into(),
            r#type: Some(tensor_type(vec![batch(), fixed(net.arch.num_classes)])),
        }],
        ..Default::default()
    };
    let model = ModelProto {
        ir_version: 8,
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: OPSET,
        }],
        producer_name: "shears".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        graph: Some(graph),
        ..Default::default()
    };
    Ok(model.encode_to_vec())
}

struct Writer<'a> {
    net: &'a Network,
    graph: &'a Graph,
    nodes: Vec<NodeProto>,
    init: Vec<TensorProto>,
    /// The ONNX name of each graph value.
    names: Vec<String>,
    next: usize,
    /// The batch size as a 1-element tensor (`Shape(input)[0:1]`), once
    /// made.
    batch: Option<String>,
}

fn ints(name: &str, v: &[usize]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: attr::INTS,
        ints: v.iter().map(|&x| x as i64).collect(),
        ..Default::default()
    }
}

fn int(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: attr::INT,
        i: v,
        ..Default::default()
    }
}

fn float(name: &str, v: f32) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: attr::FLOAT,
        f: v,
        ..Default::default()
    }
}

fn node(op: &str, inputs: &[&str], output: &str, attribute: Vec<AttributeProto>) -> NodeProto {
    NodeProto {
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![output.to_string()],
        name: format!("{op}_{output}"),
        op_type: op.into(),
        attribute,
        ..Default::default()
    }
}

impl Writer<'_> {
    fn value(&mut self) -> String {
        self.next += 1;
        format!("v{}", self.next)
    }

    fn push(&mut self, op: &str, inputs: &[&str], attrs: Vec<AttributeProto>) -> String {
        let out = self.value();
        self.nodes.push(node(op, inputs, &out, attrs));
        out
    }

    /// The network's tensor `key` as an initializer; its name.
    fn param(&mut self, key: &str) -> Result<String> {
        let t = self
            .net
            .params
            .get(key)
            .map(|v| v.as_tensor().clone())
            .or_else(|| self.net.buffers.get(key).cloned())
            .ok_or_else(|| Error::Shape(format!("the network has no tensor `{key}`")))?;
        let t = t
            .to_device(&candle_core::Device::Cpu)?
            .to_dtype(candle_core::DType::F32)?;
        let values = t.flatten_all()?.to_vec1::<f32>()?;
        self.init.push(TensorProto {
            dims: t.dims().iter().map(|&d| d as i64).collect(),
            data_type: dtype::FLOAT,
            name: key.into(),
            raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ..Default::default()
        });
        Ok(key.into())
    }

    /// A float constant initializer; its name.
    fn constant(&mut self, values: &[f64], dims: &[usize]) -> String {
        let name = self.value();
        self.init.push(TensorProto {
            dims: dims.iter().map(|&d| d as i64).collect(),
            data_type: dtype::FLOAT,
            name: name.clone(),
            raw_data: values
                .iter()
                .flat_map(|v| (*v as f32).to_le_bytes())
                .collect(),
            ..Default::default()
        });
        name
    }

    /// An int64 constant initializer; its name.
    fn ints_const(&mut self, values: &[i64]) -> String {
        let name = self.value();
        self.init.push(TensorProto {
            dims: vec![values.len() as i64],
            data_type: dtype::INT64,
            name: name.clone(),
            raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ..Default::default()
        });
        name
    }

    /// `Shape(input)[0:1]`: the batch size, made once.
    fn batch(&mut self) -> String {
        if let Some(b) = &self.batch {
            return b.clone();
        }
        let shape = self.push("Shape", &["input"], vec![]);
        let (s, e, a) = (
            self.ints_const(&[0]),
            self.ints_const(&[1]),
            self.ints_const(&[0]),
        );
        let b = self.push("Slice", &[&shape, &s, &e, &a], vec![]);
        self.batch = Some(b.clone());
        b
    }

    fn name(&self, node: &Node, i: usize) -> String {
        self.names[node.inputs[i].index()].clone()
    }

    fn dims(&self, node: &Node, i: usize) -> Vec<usize> {
        self.graph.value(node.inputs[i]).dims.clone()
    }

    /// Writes one graph node; the ONNX name of its value.
    fn node(&mut self, n: &Node) -> Result<String> {
        let ins: Vec<String> = (0..n.inputs.len()).map(|i| self.name(n, i)).collect();
        let refs: Vec<&str> = ins.iter().map(String::as_str).collect();
        let x = refs.first().copied().unwrap_or("");
        Ok(match &n.op {
            Op::Input => "input".into(),
            Op::Param { .. } => self.param(&n.name)?,
            Op::Conv(c) => {
                let k = self.dims(n, 1);
                self.push(
                    "Conv",
                    &refs,
                    vec![
                        ints("kernel_shape", &k[2..]),
                        ints("strides", &c.stride),
                        ints("pads", &c.pad),
                        ints("dilations", &c.dilation),
                        int("group", c.groups as i64),
                    ],
                )
            }
            Op::Linear if self.dims(n, 0).len() == 2 => {
                self.push("Gemm", &refs, vec![int("transB", 1)])
            }
            Op::Linear => {
                let wt = self.push("Transpose", &[refs[1]], vec![ints("perm", &[1, 0])]);
                let y = self.push("MatMul", &[x, &wt], vec![]);
                match refs.get(2) {
                    Some(b) => self.push("Add", &[&y, b], vec![]),
                    None => y,
                }
            }
            Op::MatMul => self.push("MatMul", &refs, vec![]),
            Op::BatchNorm { eps, momentum } => self.push(
                "BatchNormalization",
                &refs,
                vec![
                    float("epsilon", *eps as f32),
                    float("momentum", (1.0 - momentum) as f32),
                ],
            ),
            Op::LayerNorm { axis, eps } => self.push(
                "LayerNormalization",
                &refs,
                vec![int("axis", *axis as i64), float("epsilon", *eps as f32)],
            ),
            Op::Act(a) => self.activation(a, x),
            Op::Binary(b) => {
                let op = match b {
                    Binary::Add => "Add",
                    Binary::Sub => "Sub",
                    Binary::Mul => "Mul",
                    Binary::Div => "Div",
                };
                self.push(op, &refs, vec![])
            }
            Op::Softmax { axis } => self.push("Softmax", &[x], vec![int("axis", *axis as i64)]),
            Op::Concat { axis } => {
                // A part without the batch (batch 1 beside a batch) is
                // expanded to it: ONNX's Concat does not broadcast.
                let has_batch = |w: &Self, i: usize| {
                    w.graph
                        .producer(n.inputs[i])
                        .is_some_and(|p| !matches!(p.op, Op::Param { .. }))
                };
                let any_batch = (0..n.inputs.len()).any(|i| has_batch(self, i));
                let mut parts = Vec::new();
                for (i, name) in ins.iter().enumerate() {
                    if any_batch && !has_batch(self, i) && *axis != 0 {
                        let d = self.dims(n, i);
                        let rest: Vec<i64> = d[1..].iter().map(|&v| v as i64).collect();
                        let b = self.batch();
                        let r = self.ints_const(&rest);
                        let shape = self.push("Concat", &[&b, &r], vec![int("axis", 0)]);
                        parts.push(self.push("Expand", &[name, &shape], vec![]));
                    } else {
                        parts.push(name.clone());
                    }
                }
                let prefs: Vec<&str> = parts.iter().map(String::as_str).collect();
                self.push("Concat", &prefs, vec![int("axis", *axis as i64)])
            }
            Op::Slice { axis, start, end } => {
                let s = self.ints_const(&[*start as i64]);
                let e = self.ints_const(&[*end as i64]);
                let a = self.ints_const(&[*axis as i64]);
                self.push("Slice", &[x, &s, &e, &a], vec![])
            }
            Op::Pad {
                axis,
                before,
                after,
                value,
            } => {
                // Opset 17's Pad takes the pads of every axis: all the
                // befores, then all the afters.
                let rank = self.dims(n, 0).len();
                let mut pads = vec![0i64; 2 * rank];
                pads[*axis] = *before as i64;
                pads[rank + axis] = *after as i64;
                let pads = self.ints_const(&pads);
                let v = self.constant(&[exact(*value)], &[]);
                self.push("Pad", &[x, &pads, &v], vec![])
            }
            Op::Transpose { perm } => self.push("Transpose", &[x], vec![ints("perm", perm)]),
            Op::Reshape { shape } => {
                let batch_axes = shape.iter().filter(|d| matches!(d, Dim::Batch(_))).count();
                if batch_axes > 1 {
                    return Err(Error::Shape(format!(
                        "reshape `{}` has the batch in two axes; ONNX cannot say so",
                        n.name
                    )));
                }
                let t: Vec<i64> = shape
                    .iter()
                    .map(|d| match d {
                        Dim::Fixed(v) => *v as i64,
                        Dim::Batch(_) => -1,
                    })
                    .collect();
                let t = self.ints_const(&t);
                self.push("Reshape", &[x, &t], vec![])
            }
            Op::ReduceMean { axes, keep } => self.push(
                "ReduceMean",
                &[x],
                vec![ints("axes", axes), int("keepdims", *keep as i64)],
            ),
            Op::MaxPool(p) | Op::AvgPool(p) => {
                let mut attrs = vec![
                    ints("kernel_shape", &p.kernel),
                    ints("strides", &p.stride),
                    ints("pads", &p.pad),
                    int("ceil_mode", p.ceil as i64),
                ];
                let op = if matches!(n.op, Op::MaxPool(_)) {
                    "MaxPool"
                } else {
                    attrs.push(int("count_include_pad", p.count_pad as i64));
                    "AveragePool"
                };
                self.push(op, &[x], attrs)
            }
            Op::AdaptiveAvgPool { out: [h, w] } => {
                let d = self.dims(n, 0);
                let (ih, iw) = (d[2], d[3]);
                if (*h, *w) == (1, 1) {
                    self.push("GlobalAveragePool", &[x], vec![])
                } else if ih % h == 0 && iw % w == 0 {
                    let (kh, kw) = (ih / h, iw / w);
                    self.push(
                        "AveragePool",
                        &[x],
                        vec![ints("kernel_shape", &[kh, kw]), ints("strides", &[kh, kw])],
                    )
                } else {
                    // Uneven windows: x [n, c, ih, iw] @ Mw^T [iw, w], then
                    // Mh [h, ih] @ that (MatMul broadcasts over n and c).
                    let mw = axis_matrix(&adaptive_axis(iw, *w), iw);
                    let mut mwt = vec![0f64; iw * w];
                    for i in 0..*w {
                        for j in 0..iw {
                            mwt[j * w + i] = mw[i * iw + j];
                        }
                    }
                    let mh = axis_matrix(&adaptive_axis(ih, *h), ih);
                    let cols = self.constant(&mwt, &[iw, *w]);
                    let rows = self.constant(&mh, &[*h, ih]);
                    let y = self.push("MatMul", &[x, &cols], vec![]);
                    self.push("MatMul", &[&rows, &y], vec![])
                }
            }
            Op::Gather {
                axis,
                index,
                keep_axis,
            } => {
                let idx: Vec<i64> = index.iter().map(|&i| i as i64).collect();
                let name = if *keep_axis {
                    self.ints_const(&idx)
                } else {
                    let name = self.value();
                    self.init.push(TensorProto {
                        dims: Vec::new(),
                        data_type: dtype::INT64,
                        name: name.clone(),
                        raw_data: idx[0].to_le_bytes().to_vec(),
                        ..Default::default()
                    });
                    name
                };
                self.push("Gather", &[x, &name], vec![int("axis", *axis as i64)])
            }
            Op::Dropout { .. } | Op::DropPath { .. } => x.to_string(),
        })
    }

    fn activation(&mut self, a: &Act, x: &str) -> String {
        match *a {
            Act::Relu => self.push("Relu", &[x], vec![]),
            Act::Clip { min, max } => {
                let lo = self.constant(&[exact(min)], &[]);
                let hi = self.constant(&[exact(max)], &[]);
                self.push("Clip", &[x, &lo, &hi], vec![])
            }
            Act::LeakyRelu { alpha } => self.push("LeakyRelu", &[x], vec![float("alpha", alpha)]),
            Act::Sigmoid => self.push("Sigmoid", &[x], vec![]),
            Act::Silu => {
                let s = self.push("Sigmoid", &[x], vec![]);
                self.push("Mul", &[x, &s], vec![])
            }
            Act::HardSigmoid { alpha, beta } => self.push(
                "HardSigmoid",
                &[x],
                vec![float("alpha", alpha), float("beta", beta)],
            ),
            Act::HardSwish => self.push("HardSwish", &[x], vec![]),
            Act::Gelu { tanh: false } => {
                // x * (erf(x / sqrt 2) + 1) / 2 (opset 17 has no Gelu).
                let r2 = self.constant(&[std::f64::consts::SQRT_2], &[]);
                let d = self.push("Div", &[x, &r2], vec![]);
                let e = self.push("Erf", &[&d], vec![]);
                let one = self.constant(&[1.0], &[]);
                let p = self.push("Add", &[&e, &one], vec![]);
                let m = self.push("Mul", &[x, &p], vec![]);
                let half = self.constant(&[0.5], &[]);
                self.push("Mul", &[&m, &half], vec![])
            }
            Act::Gelu { tanh: true } => {
                // x * (tanh(sqrt(2/pi) * (x + 0.044715 x^3)) + 1) / 2.
                let x3 = self.push("Mul", &[x, x], vec![]);
                let x3 = self.push("Mul", &[&x3, x], vec![]);
                let k = self.constant(&[0.044715], &[]);
                let kx3 = self.push("Mul", &[&x3, &k], vec![]);
                let inner = self.push("Add", &[x, &kx3], vec![]);
                let c = self.constant(&[(2.0 / std::f64::consts::PI).sqrt()], &[]);
                let inner = self.push("Mul", &[&inner, &c], vec![]);
                let t = self.push("Tanh", &[&inner], vec![]);
                let one = self.constant(&[1.0], &[]);
                let p = self.push("Add", &[&t, &one], vec![]);
                let m = self.push("Mul", &[x, &p], vec![]);
                let half = self.constant(&[0.5], &[]);
                self.push("Mul", &[&m, &half], vec![])
            }
            Act::Tanh => self.push("Tanh", &[x], vec![]),
            Act::Erf => self.push("Erf", &[x], vec![]),
            Act::Scale { by } => {
                let k = self.constant(&[exact(by)], &[]);
                self.push("Mul", &[x, &k], vec![])
            }
            Act::Sqrt => self.push("Sqrt", &[x], vec![]),
            Act::Pow { exponent } => {
                let e = self.constant(&[exact(exponent)], &[]);
                self.push("Pow", &[x, &e], vec![])
            }
        }
    }
}
