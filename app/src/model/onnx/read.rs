//! ONNX graph -> Shears architecture and tensors.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use candle_core::{Device, Tensor};
use prost::Message;

use super::proto::{attr, dtype, AttributeProto, ModelProto, NodeProto, TensorProto};
use crate::error::{Error, Result};
use crate::model::arch::{Architecture, Family, Node, Preprocess};

/// The operators [`read`] imports.
pub const SUPPORTED_OPS: [&str; 13] = [
    "Conv",
    "BatchNormalization",
    "Relu",
    "MaxPool",
    "AveragePool",
    "GlobalAveragePool",
    "Flatten",
    "Reshape",
    "Gemm",
    "MatMul",
    "Add",
    "Dropout",
    "Identity",
];

/// Prefix of layer names made up during the walk (see `Graph::renumber`).
const GENERATED: &str = "\u{1}";

/// How deep residual blocks may nest (ResNets nest none).
const MAX_NESTING: usize = 16;

/// BatchNorm epsilon Shears computes with.
const BN_EPS: f32 = 1e-5;

/// An imported ONNX model: its architecture, its tensors by Shears name,
/// and what the user should know.
#[derive(Debug)]
pub struct OnnxModel {
    /// The architecture (family [`Family::Onnx`]).
    pub arch: Architecture,
    /// Parameters and buffers by name (`{layer}.weight`, ...).
    pub tensors: BTreeMap<String, Tensor>,
    /// Notes (e.g. BatchNorm folded into the convolutions).
    pub notes: Vec<String>,
    /// The graph's name.
    pub name: String,
}

/// Reads an ONNX model for inputs of shape `input` (`[c, h, w]`); errors
/// name `path` and, for a node that cannot be imported, the node, its op
/// and what is supported.
pub fn read(bytes: &[u8], path: &Path, input: [usize; 3]) -> Result<OnnxModel> {
    let model = ModelProto::decode(bytes)
        .map_err(|e| Error::format(path, format!("not an ONNX model ({e})")))?;
    let graph = model
        .graph
        .ok_or_else(|| Error::format(path, "an ONNX model without a graph"))?;
    let mut g = Graph::new(&graph.initializer, &graph.node, path)?;
    let input_name = graph
        .input
        .iter()
        .map(|v| v.name.clone())
        .find(|n| !g.consts.contains_key(n))
        .ok_or_else(|| Error::format(path, "the graph has no input"))?;
    let output = graph
        .output
        .first()
        .map(|v| v.name.clone())
        .ok_or_else(|| Error::format(path, "the graph has no output"))?;
    let mut notes = Vec::new();
    if let Some(declared) = graph
        .input
        .iter()
        .find(|v| v.name == input_name)
        .and_then(declared_shape)
    {
        if declared != input {
            notes.push(format!(
                "the graph declares {declared:?} inputs; built for the data's {input:?}"
            ));
        }
    }
    let mut nodes = g.chain(&output, &input_name, 0)?;
    g.renumber(&mut nodes);
    if g.folded {
        notes.push(
            "BatchNorm was folded into the convolutions (an eval-mode export with constant \
             folding): the model prunes and fine-tunes without BatchNorm. To keep it, export with \
             torch.onnx.export(..., training=torch.onnx.TrainingMode.TRAINING) or \
             do_constant_folding=False"
                .into(),
        );
    }
    let num_classes = g.last_linear_out.unwrap_or(0);
    let arch = Architecture {
        family: Family::Onnx,
        input,
        num_classes,
        nodes,
        preprocess: Preprocess::default(),
    };
    arch.check().map_err(|e| {
        Error::format(
            path,
            format!("the imported graph does not fit a {input:?} input: {e}"),
        )
    })?;
    let tensors = g
        .params
        .into_iter()
        .map(|(k, (dims, v))| Ok((k, Tensor::from_vec(v, dims, &Device::Cpu)?)))
        .collect::<Result<_>>()?;
    Ok(OnnxModel {
        arch,
        tensors,
        notes,
        name: if graph.name.is_empty() {
            "onnx".into()
        } else {
            graph.name
        },
    })
}

/// The `[c, h, w]` input an ONNX model declares (static dimensions only);
/// `None` when it is not a model or declares none.
pub fn declared_input(bytes: &[u8]) -> Option<[usize; 3]> {
    let graph = ModelProto::decode(bytes).ok()?.graph?;
    let consts: BTreeSet<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
    graph
        .input
        .iter()
        .find(|v| !consts.contains(v.name.as_str()))
        .and_then(declared_shape)
}

fn declared_shape(v: &super::proto::ValueInfoProto) -> Option<[usize; 3]> {
    let dims = &v.r#type.as_ref()?.tensor_type.as_ref()?.shape.as_ref()?.dim;
    let d: Vec<usize> = dims
        .iter()
        .skip(1)
        .map(|d| d.dim_value.filter(|v| *v > 0).map(|v| v as usize))
        .collect::<Option<_>>()?;
    <[usize; 3]>::try_from(d).ok()
}

/// A constant: shape and values (floats; integers as floats too, exact up
/// to 2^24, which covers shapes).
type Const = (Vec<usize>, Vec<f32>);

struct Graph<'a> {
    consts: HashMap<String, Const>,
    /// Value name -> index of the node producing it.
    producer: HashMap<&'a str, usize>,
    nodes: &'a [NodeProto],
    path: &'a Path,
    /// Parameters of the layers built so far, by Shears name.
    params: BTreeMap<String, Const>,
    /// Layer names used (generated names count up).
    names: BTreeSet<String>,
    folded: bool,
    last_linear_out: Option<usize>,
}

impl<'a> Graph<'a> {
    fn new(init: &[TensorProto], nodes: &'a [NodeProto], path: &'a Path) -> Result<Self> {
        let mut consts = HashMap::new();
        for t in init {
            consts.insert(t.name.clone(), tensor(t, path)?);
        }
        let mut producer = HashMap::new();
        for (i, n) in nodes.iter().enumerate() {
            match n.op_type.as_str() {
                // Constants and aliases of constants are values, not layers.
                "Constant" => {
                    if let (Some(out), Some(t)) = (
                        n.output.first(),
                        n.attribute
                            .iter()
                            .find(|a| a.name == "value")
                            .and_then(|a| a.t.as_ref()),
                    ) {
                        consts.insert(out.clone(), tensor(t, path)?);
                    }
                }
                "Identity" if n.input.first().is_some_and(|x| consts.contains_key(x)) => {
                    let c = consts[&n.input[0]].clone();
                    if let Some(out) = n.output.first() {
                        consts.insert(out.clone(), c);
                    }
                }
                _ => {
                    for o in &n.output {
                        producer.insert(o.as_str(), i);
                    }
                }
            }
        }
        Ok(Self {
            consts,
            producer,
            nodes,
            path,
            params: BTreeMap::new(),
            names: BTreeSet::new(),
            folded: false,
            last_linear_out: None,
        })
    }

    fn unsupported(&self, n: &NodeProto, why: &str) -> Error {
        Error::format(
            self.path,
            format!(
                "node `{}` (op {}): {why}; Shears imports {}",
                node_name(n),
                n.op_type,
                SUPPORTED_OPS.join(", ")
            ),
        )
    }

    /// The node's inputs that are not constants (the activations).
    fn data_inputs(&self, n: &'a NodeProto) -> Vec<&'a str> {
        n.input
            .iter()
            .filter(|x| !x.is_empty() && !self.consts.contains_key(*x))
            .map(String::as_str)
            .collect()
    }

    fn constant(&self, n: &NodeProto, i: usize, what: &str) -> Result<&Const> {
        n.input
            .get(i)
            .and_then(|x| self.consts.get(x))
            .ok_or_else(|| self.unsupported(n, &format!("its {what} is not a constant")))
    }

    /// Every value `v` depends on (itself included).
    fn ancestors(&self, v: &str) -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut stack = vec![v.to_string()];
        while let Some(x) = stack.pop() {
            if !seen.insert(x.clone()) {
                continue;
            }
            if let Some(&i) = self.producer.get(x.as_str()) {
                stack.extend(
                    self.data_inputs(&self.nodes[i])
                        .into_iter()
                        .map(String::from),
                );
            }
        }
        seen
    }

    /// Position of `v` in the graph (the input is before every node).
    fn order(&self, v: &str) -> isize {
        self.producer.get(v).map_or(-1, |&i| i as isize)
    }

    /// The layers from value `stop` to value `value`, in forward order;
    /// `depth` counts the residual blocks this one is inside.
    fn chain(&mut self, value: &str, stop: &str, depth: usize) -> Result<Vec<Node>> {
        if depth > MAX_NESTING {
            return Err(Error::format(
                self.path,
                format!("residual additions nested more than {MAX_NESTING} deep"),
            ));
        }
        let mut rev: Vec<Node> = Vec::new();
        let mut v = value.to_string();
        let mut bias: Option<String> = None;
        // ONNX nodes are in topological order: every step goes to an
        // earlier node, so a malformed graph with a cycle cannot loop.
        let mut last = isize::MAX;
        while v != stop {
            let Some(&i) = self.producer.get(v.as_str()) else {
                return Err(Error::format(
                    self.path,
                    format!("value `{v}` is not computed from the graph's input"),
                ));
            };
            if i as isize >= last {
                return Err(Error::format(
                    self.path,
                    format!("value `{v}` is used before it is computed: the nodes are not in topological order"),
                ));
            }
            last = i as isize;
            let n = &self.nodes[i];
            let data = self.data_inputs(n);
            if bias.is_some() && n.op_type != "MatMul" {
                return Err(self.unsupported(n, "a constant added to its output"));
            }
            let next = match n.op_type.as_str() {
                "Add" if data.len() == 1 => {
                    // x + constant: the bias of the MatMul before it.
                    let c = n
                        .input
                        .iter()
                        .find(|x| self.consts.contains_key(*x))
                        .cloned();
                    bias = c;
                    data[0].to_string()
                }
                "MatMul" if n.input.first().is_some_and(|a| self.consts.contains_key(a)) => {
                    let (node, x) = self.adaptive_pool(n)?;
                    rev.push(node);
                    x
                }
                "Add" if data.len() == 2 => {
                    let (a, b) = (data[0], data[1]);
                    let (ra, rb) = (self.ancestors(a), self.ancestors(b));
                    let fork = ra
                        .intersection(&rb)
                        .max_by_key(|x| self.order(x))
                        .cloned()
                        .ok_or_else(|| self.unsupported(n, "its inputs share no value"))?;
                    let mut one = self.chain(a, &fork, depth + 1)?;
                    let mut two = self.chain(b, &fork, depth + 1)?;
                    if one.len() < two.len() {
                        std::mem::swap(&mut one, &mut two);
                    }
                    rev.push(Node::Residual {
                        body: one,
                        shortcut: two,
                    });
                    fork
                }
                _ => {
                    let [x] = data[..] else {
                        return Err(self.unsupported(
                            n,
                            &format!("{} activation inputs, expected 1", data.len()),
                        ));
                    };
                    if let Some(node) = self.layer(n, bias.take())? {
                        rev.push(node);
                    }
                    x.to_string()
                }
            };
            v = next;
        }
        rev.reverse();
        Ok(rev)
    }

    /// `MatMul(Mh, MatMul(x, Mw^T))` with adaptive-average-pooling matrices
    /// (how Shears writes a pool with uneven windows): the pool, and `x`.
    fn adaptive_pool(&self, outer: &'a NodeProto) -> Result<(Node, String)> {
        let not_a_pool = || {
            self.unsupported(
                outer,
                "a constant matrix times an activation that is not an adaptive average pool",
            )
        };
        let rows = self.constant(outer, 0, "matrix")?;
        let inner = outer
            .input
            .get(1)
            .and_then(|v| self.producer.get(v.as_str()))
            .map(|&i| &self.nodes[i])
            .filter(|m| m.op_type == "MatMul")
            .ok_or_else(not_a_pool)?;
        let cols = self.constant(inner, 1, "matrix")?;
        let (&[h, ih], &[iw, w]) = (&rows.0[..], &cols.0[..]) else {
            return Err(not_a_pool());
        };
        let close = |a: &[f32], b: &[f64]| {
            a.len() == b.len()
                && a.iter()
                    .zip(b)
                    .all(|(x, y)| (f64::from(*x) - y).abs() < 1e-6)
        };
        use crate::model::pool::{adaptive_axis, axis_matrix};
        let mw = axis_matrix(&adaptive_axis(iw, w), iw);
        let mwt: Vec<f64> = (0..iw * w).map(|k| mw[(k % w) * iw + k / w]).collect();
        if !close(&rows.1, &axis_matrix(&adaptive_axis(ih, h), ih)) || !close(&cols.1, &mwt) {
            return Err(not_a_pool());
        }
        let x = self
            .data_inputs(inner)
            .first()
            .copied()
            .ok_or_else(not_a_pool)?;
        Ok((Node::AdaptiveAvgPool { h, w }, x.to_string()))
    }

    /// The Shears node for ONNX node `n` (`None` for nodes that compute
    /// nothing in inference: Identity).
    fn layer(&mut self, n: &NodeProto, bias: Option<String>) -> Result<Option<Node>> {
        let a = |name: &str| n.attribute.iter().find(|x| x.name == name);
        Ok(Some(match n.op_type.as_str() {
            "Relu" => Node::Relu,
            "Identity" => return Ok(None),
            "Dropout" => {
                let p = match a("ratio") {
                    Some(r) => r.f,
                    None => n
                        .input
                        .get(1)
                        .and_then(|x| self.consts.get(x))
                        .and_then(|(_, v)| v.first().copied())
                        .unwrap_or(0.5),
                };
                Node::Dropout { p }
            }
            "Flatten" => {
                let axis = a("axis").map_or(1, |x| x.i);
                if axis != 1 {
                    return Err(self.unsupported(n, &format!("axis {axis} (only 1)")));
                }
                Node::Flatten
            }
            "Reshape" => {
                let (_, shape) = self.constant(n, 1, "shape")?;
                let flat =
                    shape.len() == 2 && (shape[1] == -1.0 || shape[0] <= 1.0 || shape[0] == -1.0);
                if !flat {
                    return Err(
                        self.unsupported(n, &format!("reshape to {shape:?} (only to [batch, -1])"))
                    );
                }
                Node::Flatten
            }
            "GlobalAveragePool" => Node::GlobalAvgPool,
            "MaxPool" | "AveragePool" => {
                let (k, stride, pad) = self.window(n)?;
                if a("ceil_mode").is_some_and(|x| x.i != 0) {
                    return Err(self.unsupported(n, "ceil_mode"));
                }
                if n.op_type == "MaxPool" {
                    Node::max_pool(k, stride, pad)
                } else {
                    Node::AvgPool {
                        k,
                        stride,
                        pad,
                        count_pad: a("count_include_pad").is_some_and(|x| x.i != 0),
                    }
                }
            }
            "Conv" => {
                let (k, stride, pad) = self.window(n)?;
                if a("group").is_some_and(|g| g.i != 1) {
                    return Err(self.unsupported(n, "grouped convolution"));
                }
                let weight_name = n.input.get(1).cloned().unwrap_or_default();
                let (dims, w) = self.constant(n, 1, "weight")?.clone();
                let &[out_c, in_c, kh, kw] = &dims[..] else {
                    return Err(self.unsupported(n, &format!("weight of shape {dims:?}")));
                };
                if kh != k || kw != k {
                    return Err(self.unsupported(n, &format!("a {kh}x{kw} kernel")));
                }
                if weight_name.starts_with("onnx::") {
                    self.folded = true;
                }
                let name = self.layer_name(&weight_name, "conv");
                self.params.insert(format!("{name}.weight"), (dims, w));
                let has_bias = n.input.len() > 2 && !n.input[2].is_empty();
                if has_bias {
                    let b = self.constant(n, 2, "bias")?.clone();
                    self.params.insert(format!("{name}.bias"), b);
                }
                Node::Conv2d {
                    name,
                    in_c,
                    out_c,
                    k,
                    stride,
                    pad,
                    bias: has_bias,
                }
            }
            "BatchNormalization" => {
                let eps = a("epsilon").map_or(BN_EPS, |x| x.f);
                if (eps - BN_EPS).abs() > 1e-9 {
                    return Err(self.unsupported(n, &format!("epsilon {eps} (Shears uses 1e-5)")));
                }
                let scale_name = n.input.get(1).cloned().unwrap_or_default();
                let name = self.layer_name(&scale_name, "bn");
                let mut c = 0;
                for (i, what) in [
                    (1, "weight"),
                    (2, "bias"),
                    (3, "running_mean"),
                    (4, "running_var"),
                ] {
                    let t = self.constant(n, i, what)?.clone();
                    c = t.1.len();
                    self.params
                        .insert(format!("{name}.{what}"), (vec![t.1.len()], t.1));
                }
                Node::BatchNorm { name, c }
            }
            "Gemm" => {
                if a("transA").is_some_and(|x| x.i != 0) {
                    return Err(self.unsupported(n, "transA"));
                }
                for s in ["alpha", "beta"] {
                    if let Some(x) = a(s).filter(|x| (x.f - 1.0).abs() > 1e-6) {
                        return Err(self.unsupported(n, &format!("{s} = {}", x.f)));
                    }
                }
                let trans_b = a("transB").is_some_and(|x| x.i != 0);
                let weight_name = n.input.get(1).cloned().unwrap_or_default();
                let w = self.constant(n, 1, "weight")?.clone();
                let w = if trans_b { w } else { transpose(w) };
                let bias =
                    (n.input.len() > 2 && !n.input[2].is_empty()).then(|| n.input[2].clone());
                self.linear(n, &weight_name, w, bias)?
            }
            "MatMul" => {
                let weight_name = n.input.get(1).cloned().unwrap_or_default();
                let w = transpose(self.constant(n, 1, "weight")?.clone());
                self.linear(n, &weight_name, w, bias)?
            }
            "Add" => return Err(self.unsupported(n, "an addition Shears cannot place")),
            _ => return Err(self.unsupported(n, "not supported")),
        }))
    }

    /// A linear layer with weight `w` (`[out, in]`) and bias constant `bias`.
    fn linear(
        &mut self,
        n: &NodeProto,
        weight_name: &str,
        w: Const,
        bias: Option<String>,
    ) -> Result<Node> {
        let &[out_f, in_f] = &w.0[..] else {
            return Err(self.unsupported(n, &format!("weight of shape {:?}", w.0)));
        };
        let name = self.layer_name(weight_name, "fc");
        self.params.insert(format!("{name}.weight"), w);
        if let Some(b) = &bias {
            let b = self
                .consts
                .get(b)
                .cloned()
                .ok_or_else(|| self.unsupported(n, "its bias is not a constant"))?;
            if b.1.len() != out_f {
                return Err(
                    self.unsupported(n, &format!("a bias of {} for {out_f} outputs", b.1.len()))
                );
            }
            self.params
                .insert(format!("{name}.bias"), (vec![out_f], b.1));
        }
        // The graph is walked backwards: the first linear met is the last.
        if self.last_linear_out.is_none() {
            self.last_linear_out = Some(out_f);
        }
        Ok(Node::Linear {
            name,
            in_f,
            out_f,
            bias: bias.is_some(),
        })
    }

    /// Square kernel, stride and symmetric padding of a Conv or pool.
    fn window(&self, n: &NodeProto) -> Result<(usize, usize, usize)> {
        let ints = |name: &str| n.attribute.iter().find(|x| x.name == name).map(ints_of);
        let same = |v: Option<Vec<i64>>, default: i64, what: &str| -> Result<usize> {
            let v = v.unwrap_or_default();
            match v.first() {
                None => Ok(default as usize),
                Some(&x) if v.iter().all(|y| *y == x) && x >= 0 => Ok(x as usize),
                _ => Err(self.unsupported(n, &format!("{what} {v:?} (only equal on every side)"))),
            }
        };
        if let Some(p) = n.attribute.iter().find(|x| x.name == "auto_pad") {
            let mode = String::from_utf8_lossy(&p.s);
            if !mode.is_empty() && mode != "NOTSET" && mode != "VALID" {
                return Err(self.unsupported(n, &format!("auto_pad {mode}")));
            }
        }
        if ints("dilations").is_some_and(|d| d.iter().any(|x| *x != 1)) {
            return Err(self.unsupported(n, "dilation"));
        }
        let k = match ints("kernel_shape") {
            Some(v) => same(Some(v), 1, "kernel")?,
            None => {
                // Conv may leave the kernel to the weight's shape.
                let d = n
                    .input
                    .get(1)
                    .and_then(|w| self.consts.get(w))
                    .map(|c| c.0.clone());
                match d.as_deref() {
                    Some([_, _, kh, kw]) if kh == kw => *kh,
                    _ => return Err(self.unsupported(n, "no kernel_shape")),
                }
            }
        };
        let stride = same(ints("strides"), 1, "strides")?;
        let pad = same(ints("pads"), 0, "pads")?;
        Ok((k, stride, pad))
    }

    /// A Shears layer name: the parameter's name without `.weight` (PyTorch
    /// exports keep the module names), else `{kind}{n}`.
    fn layer_name(&mut self, param: &str, kind: &str) -> String {
        let base = param
            .strip_suffix(".weight")
            .filter(|b| !b.is_empty() && !b.starts_with("onnx::"))
            .map(str::to_string);
        let name = match base {
            Some(b) if !self.names.contains(&b) => b,
            // Numbered in forward order once the walk (backwards) is done.
            _ => format!("{GENERATED}{kind}{}", self.names.len()),
        };
        self.names.insert(name.clone());
        name
    }

    /// Gives generated layer names their final form, `{kind}{n}` counted in
    /// forward order, in the nodes and the parameters.
    fn renumber(&mut self, nodes: &mut [Node]) {
        let mut count: BTreeMap<String, usize> = BTreeMap::new();
        let mut map = BTreeMap::new();
        crate::model::arch::visit(nodes, &mut |n| {
            if let Some(name) = layer_name_of(n).filter(|x| x.starts_with(GENERATED)) {
                let kind: String = name[GENERATED.len()..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphabetic())
                    .collect();
                let new = loop {
                    let i = count.entry(kind.clone()).or_insert(0);
                    *i += 1;
                    let c = format!("{kind}{i}");
                    if !self.names.contains(&c) {
                        break c;
                    }
                };
                map.insert(name.to_string(), new);
            }
        });
        rename(nodes, &map);
        let params = std::mem::take(&mut self.params);
        self.params = params
            .into_iter()
            .map(|(k, v)| {
                let (layer, what) = k.rsplit_once('.').unwrap_or((&k, ""));
                match map.get(layer) {
                    Some(new) => (format!("{new}.{what}"), v),
                    None => (k, v),
                }
            })
            .collect();
    }
}

fn layer_name_of(n: &Node) -> Option<&str> {
    match n {
        Node::Conv2d { name, .. } | Node::Linear { name, .. } | Node::BatchNorm { name, .. } => {
            Some(name)
        }
        _ => None,
    }
}

fn rename(nodes: &mut [Node], map: &BTreeMap<String, String>) {
    for n in nodes {
        match n {
            Node::Conv2d { name, .. }
            | Node::Linear { name, .. }
            | Node::BatchNorm { name, .. } => {
                if let Some(new) = map.get(name.as_str()) {
                    *name = new.clone();
                }
            }
            Node::Residual { body, shortcut } => {
                rename(body, map);
                rename(shortcut, map);
            }
            _ => {}
        }
    }
}

fn ints_of(a: &AttributeProto) -> Vec<i64> {
    if a.r#type == attr::INT || (a.ints.is_empty() && a.r#type != attr::INTS) {
        vec![a.i]
    } else {
        a.ints.clone()
    }
}

fn node_name(n: &NodeProto) -> String {
    if n.name.is_empty() {
        n.output.first().cloned().unwrap_or_default()
    } else {
        n.name.clone()
    }
}

fn transpose((dims, v): Const) -> Const {
    let &[r, c] = &dims[..] else {
        return (dims, v);
    };
    let mut t = vec![0f32; v.len()];
    for i in 0..r {
        for j in 0..c {
            t[j * r + i] = v[i * c + j];
        }
    }
    (vec![c, r], t)
}

/// A tensor's shape and values; external data and unsupported types are
/// errors naming the tensor.
fn tensor(t: &TensorProto, path: &Path) -> Result<Const> {
    let bad = |msg: String| Error::format(path, format!("tensor `{}`: {msg}", t.name));
    if t.data_location == 1 {
        return Err(bad(
            "its data is in an external file, which Shears does not read".into(),
        ));
    }
    let dims: Vec<usize> = t
        .dims
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| bad(format!("dimension {d}"))))
        .collect::<Result<_>>()?;
    let n = dims
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| bad(format!("shape {dims:?} is too large")))?;
    let raw = &t.raw_data;
    let values: Vec<f32> = match t.data_type {
        dtype::FLOAT if !raw.is_empty() => le(raw, 4, n, &bad)?
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        dtype::FLOAT => t.float_data.clone(),
        dtype::DOUBLE if !raw.is_empty() => le(raw, 8, n, &bad)?
            .map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")) as f32)
            .collect(),
        dtype::DOUBLE => t.double_data.iter().map(|&v| v as f32).collect(),
        dtype::INT64 if !raw.is_empty() => le(raw, 8, n, &bad)?
            .map(|b| i64::from_le_bytes(b.try_into().expect("8 bytes")) as f32)
            .collect(),
        dtype::INT64 => t.int64_data.iter().map(|&v| v as f32).collect(),
        other => {
            return Err(bad(format!(
                "data type {other} (Shears reads float, double and int64)"
            )))
        }
    };
    if values.len() != n {
        return Err(bad(format!("{} values for shape {dims:?}", values.len())));
    }
    Ok((dims, values))
}

fn le<'b>(
    raw: &'b [u8],
    size: usize,
    n: usize,
    bad: &dyn Fn(String) -> Error,
) -> Result<std::slice::ChunksExact<'b, u8>> {
    if n.checked_mul(size) != Some(raw.len()) {
        return Err(bad(format!("{} bytes of data for {n} values", raw.len())));
    }
    Ok(raw.chunks_exact(size))
}
