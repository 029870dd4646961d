//! Shears network -> ONNX (opset 13): one node per layer, the parameters as
//! initializers under their state-dict names, a residual block as its two
//! branches and an `Add`. Dropout is left out (an inference graph).

use std::path::Path;

use prost::Message;

use super::proto::{
    attr, dtype, AttributeProto, Dimension, GraphProto, ModelProto, NodeProto, OperatorSetIdProto,
    TensorProto, TensorShapeProto, TypeProto, TypeProtoTensor, ValueInfoProto,
};
use crate::error::{Error, Result};
use crate::model::arch::{window_out, Flow, Node};
use crate::model::network::Network;

/// The ONNX opset written.
pub const OPSET: i64 = 13;

/// Writes `net` as ONNX to `path` (atomically).
pub fn save(net: &Network, path: &Path) -> Result<()> {
    let bytes = to_bytes(net)?;
    crate::fsutil::write_atomic(path, &bytes)
}

/// The bytes of `net` as an ONNX model with input `input` (`[batch, c, h,
/// w]`, batch symbolic) and output `logits`.
pub fn to_bytes(net: &Network) -> Result<Vec<u8>> {
    let mut w = Writer {
        net,
        nodes: Vec::new(),
        init: Vec::new(),
        next: 0,
    };
    let [c, h, ww] = net.arch.input;
    let (out, _) = w.seq(&net.arch.nodes, "input".to_string(), Flow::Map(c, h, ww))?;
    // Name the last value `logits`.
    w.nodes.push(node("Identity", &[&out], "logits", vec![]));
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
    nodes: Vec<NodeProto>,
    init: Vec<TensorProto>,
    next: usize,
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

    /// Adds the network's tensor `key` as an initializer; its name.
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

    /// The inputs of a conv or linear layer `name`: the activation `x`, its
    /// weight and (with `bias`) its bias, added as initializers.
    fn layer_inputs(&mut self, x: &str, name: &str, bias: bool) -> Result<Vec<String>> {
        let mut inputs = vec![x.to_string(), self.param(&format!("{name}.weight"))?];
        if bias {
            inputs.push(self.param(&format!("{name}.bias"))?);
        }
        Ok(inputs)
    }

    /// Adds a constant initializer of `values` (as f32) and `dims`; its name.
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

    fn push(&mut self, op: &str, inputs: &[&str], attrs: Vec<AttributeProto>) -> String {
        let out = self.value();
        self.nodes.push(node(op, inputs, &out, attrs));
        out
    }

    /// Writes `nodes` from value `x` of shape `flow`; the output value and
    /// its shape.
    fn seq(&mut self, nodes: &[Node], mut x: String, mut flow: Flow) -> Result<(String, Flow)> {
        for n in nodes {
            (x, flow) = self.one(n, &x, flow)?;
        }
        Ok((x, flow))
    }

    fn one(&mut self, n: &Node, x: &str, flow: Flow) -> Result<(String, Flow)> {
        let window = |k: usize, s: usize, p: usize| {
            vec![
                ints("kernel_shape", &[k, k]),
                ints("strides", &[s, s]),
                ints("pads", &[p, p, p, p]),
            ]
        };
        // The graph was checked, so every window fits its map.
        let map_out = |k: usize, s: usize, p: usize, c: usize| match flow {
            Flow::Map(_, h, w) => Flow::Map(
                c,
                window_out(h, k, s, p).unwrap_or(0),
                window_out(w, k, s, p).unwrap_or(0),
            ),
            f => f,
        };
        Ok(match n {
            Node::Conv2d {
                name,
                out_c,
                k,
                stride,
                pad,
                bias,
                ..
            } => {
                let inputs = self.layer_inputs(x, name, *bias)?;
                let refs: Vec<&str> = inputs.iter().map(String::as_str).collect();
                let mut a = window(*k, *stride, *pad);
                a.push(ints("dilations", &[1, 1]));
                a.push(int("group", 1));
                (
                    self.push("Conv", &refs, a),
                    map_out(*k, *stride, *pad, *out_c),
                )
            }
            Node::BatchNorm { name, .. } => {
                let mut inputs = vec![x.to_string()];
                for s in ["weight", "bias", "running_mean", "running_var"] {
                    inputs.push(self.param(&format!("{name}.{s}"))?);
                }
                let refs: Vec<&str> = inputs.iter().map(String::as_str).collect();
                let eps = AttributeProto {
                    name: "epsilon".into(),
                    r#type: attr::FLOAT,
                    f: 1e-5,
                    ..Default::default()
                };
                (self.push("BatchNormalization", &refs, vec![eps]), flow)
            }
            Node::Relu => (self.push("Relu", &[x], vec![]), flow),
            Node::Dropout { .. } => (x.to_string(), flow),
            Node::MaxPool { k, stride, pad } => {
                let s = stride.unwrap_or(*k);
                let c = channels(flow);
                (
                    self.push("MaxPool", &[x], window(*k, s, *pad)),
                    map_out(*k, s, *pad, c),
                )
            }
            Node::AvgPool {
                k,
                stride,
                pad,
                count_pad,
            } => {
                let mut a = window(*k, *stride, *pad);
                a.push(int("count_include_pad", i64::from(*count_pad)));
                let c = channels(flow);
                (
                    self.push("AveragePool", &[x], a),
                    map_out(*k, *stride, *pad, c),
                )
            }
            Node::GlobalAvgPool => {
                let p = self.push("GlobalAveragePool", &[x], vec![]);
                let c = channels(flow);
                (
                    self.push("Flatten", &[&p], vec![int("axis", 1)]),
                    Flow::Vec(c),
                )
            }
            Node::AdaptiveAvgPool { h, w } => {
                let Flow::Map(c, ih, iw) = flow else {
                    return Err(Error::Shape("adaptive pool of a vector".into()));
                };
                if (*h, *w) == (ih, iw) {
                    (x.to_string(), flow)
                } else if (*h, *w) == (1, 1) {
                    (
                        self.push("GlobalAveragePool", &[x], vec![]),
                        Flow::Map(c, 1, 1),
                    )
                } else {
                    // Separable: x [n, c, ih, iw] @ Mw^T [iw, w], then
                    // Mh [h, ih] @ that (MatMul broadcasts over n and c).
                    use crate::model::pool::{adaptive_axis, axis_matrix};
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
                    (
                        self.push("MatMul", &[&rows, &y], vec![]),
                        Flow::Map(c, *h, *w),
                    )
                }
            }
            Node::Flatten => match flow {
                Flow::Map(c, h, w) => (
                    self.push("Flatten", &[x], vec![int("axis", 1)]),
                    Flow::Vec(c * h * w),
                ),
                f => (x.to_string(), f),
            },
            Node::Linear {
                name, out_f, bias, ..
            } => {
                let inputs = self.layer_inputs(x, name, *bias)?;
                let refs: Vec<&str> = inputs.iter().map(String::as_str).collect();
                (
                    self.push("Gemm", &refs, vec![int("transB", 1)]),
                    Flow::Vec(*out_f),
                )
            }
            Node::Residual { body, shortcut } => {
                let (a, f) = self.seq(body, x.to_string(), flow)?;
                let (b, _) = self.seq(shortcut, x.to_string(), flow)?;
                (self.push("Add", &[&a, &b], vec![]), f)
            }
        })
    }
}

fn channels(flow: Flow) -> usize {
    match flow {
        Flow::Map(c, _, _) => c,
        Flow::Vec(n) => n,
    }
}
