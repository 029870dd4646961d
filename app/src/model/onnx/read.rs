//! An ONNX graph read into Shears's [`Graph`], node by node.
//!
//! Values are either constants (initializers, `Constant` nodes and what is
//! computed from them alone, which [`super::fold`] evaluates at import) or
//! graph values. The shape arithmetic both exporters write (`Shape`,
//! `Gather`, `Concat`, `Unsqueeze`, ...) folds to constants, since the
//! input's shape is known; the batch size stays free: a `Shape` of a value
//! that carries the batch gives [`fold::BATCH`] times its size there, and a
//! `Reshape` or `Expand` target holding it keeps the batch free. A file
//! exported with a fixed batch (`[1, 3, 224, 224]`) has that batch in its
//! reshape targets, where it is found by position and freed the same way.
//!
//! Parameters keep their initializer's name where it is a state-dict name
//! (`layer1.0.conv1.weight`); otherwise (BatchNorm folded into a
//! convolution, a weight stored transposed, an initializer the exporter
//! shares between layers because their values are equal) they are named
//! after the module the node came from (the dynamo exporter's name scopes,
//! the TorchScript exporter's node names), so a layer is `{module}.weight`
//! either way.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::rc::Rc;

use prost::Message;

use super::fold::{self, BATCH};
use super::proto::{AttributeProto, GraphProto, ModelProto, NodeProto, ValueInfoProto};
use super::tensor::{self, Const, Values};
use crate::error::{Error, Result};
use crate::model::arch::{Architecture, Family, Preprocess};
use crate::model::graph::{Dim, Graph, Op, Role, ValueId, BATCH_NORM_PARAMS};
use crate::model::ops::activation::{exact, Act};
use crate::model::ops::{conv::Conv, elementwise::Binary, pool::Pool};

/// The operators [`read`] imports (beyond those it folds to constants).
pub const SUPPORTED_OPS: [&str; 41] = [
    "Conv",
    "BatchNormalization",
    "LayerNormalization",
    "Relu",
    "Clip",
    "LeakyRelu",
    "Sigmoid",
    "HardSigmoid",
    "HardSwish",
    "Gelu",
    "Tanh",
    "Erf",
    "Sqrt",
    "Pow",
    "Softmax",
    "Add",
    "Sub",
    "Mul",
    "Div",
    "Concat",
    "Split",
    "Slice",
    "Pad",
    "Transpose",
    "Reshape",
    "Flatten",
    "Squeeze",
    "Unsqueeze",
    "Gemm",
    "MatMul",
    "ReduceMean",
    "MaxPool",
    "AveragePool",
    "GlobalAveragePool",
    "Gather",
    "Expand",
    "Dropout",
    "Identity",
    "Cast",
    "Shape",
    "Constant",
];

/// An imported ONNX model: its architecture (a graph), its tensors by
/// name, and what the user should know.
#[derive(Debug)]
pub struct OnnxModel {
    /// The architecture (family [`Family::Onnx`], with its graph).
    pub arch: Architecture,
    /// Parameters and buffers by name.
    pub tensors: BTreeMap<String, candle_core::Tensor>,
    /// Notes (e.g. BatchNorm folded into the convolutions).
    pub notes: Vec<String>,
    /// The graph's name.
    pub name: String,
}

/// The input shape an ONNX model declares: `[c, h, w]` where all three are
/// fixed numbers, and the batch where it is fixed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Declared {
    /// `[c, h, w]`.
    pub input: [usize; 3],
    /// The batch size, where the file fixes one.
    pub batch: Option<usize>,
}

/// Reads an ONNX model. Its input is the shape the graph declares; where
/// the graph leaves it open, `input` (`[c, h, w]`, from the data). Errors
/// name `path` and, for a node that cannot be imported, the node, its op
/// and why. The file's bytes are dropped once decoded and each weight is
/// held once from then on (the decoded initializers are shared with every
/// try of the graph and become the tensors without a copy).
pub fn read(bytes: Vec<u8>, path: &Path, input: [usize; 3]) -> Result<OnnxModel> {
    let model = ModelProto::decode(bytes.as_slice())
        .map_err(|e| Error::format(path, format!("not an ONNX model ({e})")))?;
    drop(bytes);
    let mut graph = model
        .graph
        .ok_or_else(|| Error::format(path, "an ONNX model without a graph"))?;
    let mut notes = Vec::new();
    let initializers: HashSet<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
    let x = graph
        .input
        .iter()
        .find(|v| !initializers.contains(v.name.as_str()))
        .ok_or_else(|| Error::format(path, "the graph has no input"))?;
    let declared = declared_shape(x);
    let input = match declared {
        Some(d) => {
            if d.input != input {
                notes.push(format!(
                    "the graph declares {:?} inputs; the data's {input:?} are brought to it or refused",
                    d.input
                ));
            }
            d.input
        }
        None => input,
    };
    let mut inits = HashMap::new();
    for t in std::mem::take(&mut graph.initializer) {
        inits.insert(t.name.clone(), tensor::decode(&t, path)?);
    }
    let batch = declared.and_then(|d| d.batch).unwrap_or(1);
    // Where a reshape written for the file's fixed batch can place the
    // batch two ways, each combination is tried until one computes every
    // sample of a batch on its own (the first that does is the graph).
    let mut choices: HashMap<String, usize> = HashMap::new();
    let mut first_error = None;
    let mut tries = 0;
    let (im, num_classes) = loop {
        tries += 1;
        let built = build(&graph, path, &x.name, input, batch, &inits, &choices);
        let ambiguous = match &built {
            Ok((im, ..)) => im.ambiguous.clone(),
            Err(f) => f.1.clone(),
        };
        let failure = match built {
            Ok((im, classes)) => match samples_independent(&im, input) {
                Ok(()) => break (im, classes),
                Err(e) => e,
            },
            Err(f) => f.0,
        };
        first_error.get_or_insert(failure);
        // The next combination, counting through the choices met with the
        // latest one fastest: a wrong choice most often fails soon after.
        let mut advanced = false;
        for (key, k) in ambiguous.iter().rev() {
            let c = choices.entry(key.clone()).or_insert(0);
            if *c + 1 < *k {
                *c += 1;
                advanced = true;
                break;
            }
            *c = 0;
        }
        if !advanced || tries >= MAX_TRIES {
            return Err(first_error.expect("set above"));
        }
    };
    if im.folded_bn {
        notes.push(
            "BatchNorm was folded into the convolutions (an eval-mode export with constant \
             folding): the model prunes and fine-tunes without BatchNorm. To keep it, export with \
             torch.onnx.export(..., dynamo=False, training=torch.onnx.TrainingMode.TRAINING, \
             do_constant_folding=False)"
                .into(),
        );
    }
    // Only the graph's parameters hold the weights now.
    drop(inits);
    let Importer { g, params, .. } = im;
    let tensors = params
        .into_iter()
        .map(|(k, c)| {
            let dims = c.dims.clone();
            Ok((
                k,
                candle_core::Tensor::from_vec(c.into_f32(), dims, &candle_core::Device::Cpu)?,
            ))
        })
        .collect::<Result<_>>()?;
    let arch = Architecture {
        family: Family::Onnx,
        input,
        num_classes,
        nodes: Vec::new(),
        graph: Some(g),
        preprocess: Preprocess::default(),
    };
    arch.check()
        .map_err(|e| Error::format(path, format!("the imported graph: {e}")))?;
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

/// How many combinations of ambiguous reshapes [`read`] tries.
const MAX_TRIES: usize = 256;

type Built<'a> = (Importer<'a>, usize);

/// A failed import: why, and the ambiguous reshapes met before it.
type Failed = Box<(Error, Vec<(String, usize)>)>;

/// One import of `graph` with the reshape `choices`; on failure, the error
/// and the ambiguous reshapes met before it.
fn build<'a>(
    graph: &GraphProto,
    path: &'a Path,
    input_name: &str,
    input: [usize; 3],
    batch: usize,
    inits: &HashMap<String, Const>,
    choices: &HashMap<String, usize>,
) -> std::result::Result<Built<'a>, Failed> {
    let mut im = Importer::new(path, batch);
    im.choices = choices.clone();
    for (name, c) in inits {
        im.env.insert(name.clone(), Val::C(c.clone()));
    }
    let [c, h, w] = input;
    let xid = im.g.input("input", vec![1, c, h, w]);
    im.dims2.push(vec![2, c, h, w]);
    im.outer.push(1);
    im.env.insert(input_name.to_string(), Val::V(xid));
    if let Err(e) = im.run(graph) {
        return Err(Box::new((e, im.ambiguous)));
    }
    let fail = |im: Importer<'a>, msg: String| -> std::result::Result<Built<'a>, Failed> {
        Err(Box::new((Error::format(path, msg), im.ambiguous)))
    };
    let Some(out_name) = graph.output.first().map(|o| o.name.clone()) else {
        return fail(im, "the graph has no output".into());
    };
    let out = match im.env.get(&out_name) {
        Some(Val::V(v)) => *v,
        _ => {
            return fail(
                im,
                format!("the output `{out_name}` does not depend on the input"),
            )
        }
    };
    im.g.output(out);
    let classes = match im.g.value(out).dims.as_slice() {
        [1, n] => *n,
        d => {
            let msg = format!("the output is {d:?} per sample; Shears needs [classes] scores");
            return fail(im, msg);
        }
    };
    Ok((im, classes))
}

/// Checks that the imported graph computes each sample of a batch on its
/// own (evaluation mode): a batch of two random inputs gives what each
/// gives alone. A graph that mixes samples has the batch in the wrong
/// place.
fn samples_independent(im: &Importer<'_>, input: [usize; 3]) -> Result<()> {
    use crate::model::graph::run::{forward, Buf};
    use rand::{Rng, SeedableRng};
    // Borrowed where they are floats (all of a model's weights): a try
    // copies no weight.
    let ints: BTreeMap<&str, Vec<f32>> = im
        .params
        .iter()
        .filter(|(_, c)| c.f32s().is_none())
        .map(|(k, c)| (k.as_str(), c.as_f32()))
        .collect();
    let params: BTreeMap<&str, &[f32]> = im
        .params
        .iter()
        .map(|(k, c)| (k.as_str(), c.f32s().unwrap_or_else(|| &ints[k.as_str()])))
        .collect();
    let n: usize = input.iter().product();
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    let x: Vec<f32> = (0..2 * n).map(|_| rng.random_range(-1.0..1.0)).collect();
    let [c, h, w] = input;
    let run = |data: &[f32], b: usize| -> Result<Vec<f32>> {
        let f = forward(
            &im.g,
            &params,
            vec![Buf::new(data.to_vec(), vec![b, c, h, w])],
            None,
        )?;
        Ok(f.outputs[0].data().to_vec())
    };
    let both = run(&x, 2)?;
    let one: Vec<f32> = [run(&x[..n], 1)?, run(&x[n..], 1)?].concat();
    let scale = one.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-12);
    let err = both
        .iter()
        .zip(&one)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()))
        / scale;
    if both.len() != one.len() || err.is_nan() || err >= 1e-3 {
        return Err(Error::format(
            im.path,
            format!(
                "the imported graph mixes the samples of a batch (relative difference {err}): \
                 the file fixes the batch at {}, and where a reshape puts it cannot be told; \
                 export with a free batch (dynamo: dynamic_shapes, TorchScript: dynamic_axes)",
                im.batch
            ),
        ));
    }
    Ok(())
}

/// The input shape an ONNX model declares, if it is a model and fixes
/// channels, height and width.
pub fn declared_input(bytes: &[u8]) -> Option<Declared> {
    let graph = ModelProto::decode(bytes).ok()?.graph?;
    let consts: HashSet<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
    graph
        .input
        .iter()
        .find(|v| !consts.contains(v.name.as_str()))
        .and_then(declared_shape)
}

fn declared_shape(v: &ValueInfoProto) -> Option<Declared> {
    let dims = &v.r#type.as_ref()?.tensor_type.as_ref()?.shape.as_ref()?.dim;
    let fixed = |d: &super::proto::Dimension| d.dim_value.filter(|v| *v > 0).map(|v| v as usize);
    let rest: Vec<usize> = dims.iter().skip(1).map(fixed).collect::<Option<_>>()?;
    Some(Declared {
        input: <[usize; 3]>::try_from(rest).ok()?,
        batch: dims.first().and_then(fixed),
    })
}

/// A value during import: a constant, or a value of the graph.
#[derive(Debug, Clone)]
enum Val {
    C(Const),
    V(ValueId),
}

struct Importer<'a> {
    g: Graph,
    /// Dims of every graph value for a batch of two (the graph holds them
    /// for one): where they differ is where the batch is.
    dims2: Vec<Vec<usize>>,
    /// Per graph value, the factor of its batch axis that comes before the
    /// batch (1 unless a reshape merged the batch into a larger axis).
    outer: Vec<usize>,
    /// Which candidate each ambiguous reshape takes (by its key).
    choices: HashMap<String, usize>,
    /// The ambiguous reshapes met, with their numbers of candidates.
    ambiguous: Vec<(String, usize)>,
    env: HashMap<String, Val>,
    path: &'a Path,
    /// The batch the file was exported with, where it fixes one.
    batch: usize,
    /// Parameter values by name.
    params: BTreeMap<String, Const>,
    /// Names given to nodes and parameters.
    used: HashSet<String>,
    /// Nodes already taken into another (a MatMul's bias `Add`).
    absorbed: HashSet<usize>,
    folded_bn: bool,
}

impl<'a> Importer<'a> {
    fn new(path: &'a Path, batch: usize) -> Self {
        Importer {
            g: Graph::new(),
            dims2: Vec::new(),
            outer: Vec::new(),
            choices: HashMap::new(),
            ambiguous: Vec::new(),
            env: HashMap::new(),
            path,
            batch,
            params: BTreeMap::new(),
            used: ["input".to_string()].into(),
            absorbed: HashSet::new(),
            folded_bn: false,
        }
    }

    fn run(&mut self, graph: &GraphProto) -> Result<()> {
        let mut readers: HashMap<&str, Vec<usize>> = HashMap::new();
        for (i, n) in graph.node.iter().enumerate() {
            for x in &n.input {
                readers.entry(x.as_str()).or_default().push(i);
            }
        }
        for o in &graph.output {
            readers.entry(o.name.as_str()).or_default().push(usize::MAX);
        }
        for (i, n) in graph.node.iter().enumerate() {
            if self.absorbed.contains(&i) {
                continue;
            }
            if !n.domain.is_empty() && n.domain != "ai.onnx" {
                return Err(
                    self.unsupported(n, &format!("its domain `{}` is not ONNX's", n.domain))
                );
            }
            // A MatMul of the data by a constant matrix whose only reader
            // adds a constant vector: that vector is its bias (a linear
            // layer).
            let by_matrix = n.op_type == "MatMul"
                && n.input.len() == 2
                && matches!(self.env.get(&n.input[0]), Some(Val::V(_)))
                && matches!(self.env.get(&n.input[1]), Some(Val::C(c)) if c.dims.len() == 2 && !averages(c));
            let out_features = match self.env.get(n.input.get(1).map_or("", String::as_str)) {
                Some(Val::C(c)) if c.dims.len() == 2 => c.dims[1],
                _ => 0,
            };
            let bias = by_matrix.then(|| n.output.first()).flatten().and_then(|o| {
                match readers.get(o.as_str()).map(Vec::as_slice) {
                    Some(&[j]) if j != usize::MAX && graph.node[j].op_type == "Add" => {
                        let add = &graph.node[j];
                        let other = add.input.iter().find(|x| *x != o)?;
                        match self.env.get(other) {
                            Some(Val::C(c)) if c.dims == [out_features] && add.input.len() == 2 => {
                                Some((j, c.clone()))
                            }
                            _ => None,
                        }
                    }
                    _ => None,
                }
            });
            let mut outs = self.node(n, bias.as_ref().map(|(_, c)| c))?;
            if let Some((j, _)) = bias {
                // The Add's output is the linear layer's.
                self.absorbed.insert(j);
                if let (Some(o), Some((_, v))) = (graph.node[j].output.first(), outs.first()) {
                    outs.push((o.clone(), v.clone()));
                }
            }
            for (name, v) in outs {
                self.env.insert(name, v);
            }
        }
        Ok(())
    }

    fn unsupported(&self, n: &NodeProto, why: &str) -> Error {
        Error::format(
            self.path,
            format!("node `{}` (op {}): {why}", node_name(n), n.op_type),
        )
    }

    fn input(&self, n: &NodeProto, i: usize) -> Result<Val> {
        let name = n
            .input
            .get(i)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| self.unsupported(n, &format!("input {i} is missing")))?;
        self.env.get(name).cloned().ok_or_else(|| {
            self.unsupported(
                n,
                &format!("reads `{name}` before it is computed (nodes out of order?)"),
            )
        })
    }

    fn opt_const(&self, n: &NodeProto, i: usize) -> Result<Option<Const>> {
        match n.input.get(i).filter(|s| !s.is_empty()) {
            None => Ok(None),
            Some(_) => match self.input(n, i)? {
                Val::C(c) => Ok(Some(c)),
                Val::V(_) => Err(self.unsupported(
                    n,
                    &format!("input {i} is computed from the data; Shears needs a constant there"),
                )),
            },
        }
    }

    fn konst(&self, n: &NodeProto, i: usize) -> Result<Const> {
        self.opt_const(n, i)?
            .ok_or_else(|| self.unsupported(n, &format!("input {i} is missing")))
    }

    fn dims(&self, v: ValueId) -> &[usize] {
        &self.g.value(v).dims
    }

    /// The axis of `v` that holds the batch, if any.
    fn batch_axis(&self, v: ValueId) -> Option<usize> {
        let (a, b) = (self.dims(v), &self.dims2[v.index()]);
        (0..a.len()).find(|&i| a[i] != b[i])
    }

    /// A unique name from `want`.
    fn fresh(&mut self, want: &str) -> String {
        let mut name = want.to_string();
        let mut k = 1;
        while self.used.contains(&name) {
            k += 1;
            name = format!("{want}_{k}");
        }
        self.used.insert(name.clone());
        name
    }

    /// Adds a node computing `op` of `ins`.
    fn add(&mut self, n: &NodeProto, op: Op, ins: &[ValueId]) -> Result<ValueId> {
        let name = self.fresh(&node_name(n));
        self.add_named(&name, op, ins)
            .map_err(|e| self.unsupported(n, &e.to_string()))
    }

    fn add_named(&mut self, name: &str, op: Op, ins: &[ValueId]) -> Result<ValueId> {
        let d2: Vec<&[usize]> = ins
            .iter()
            .map(|&i| self.dims2[i.index()].as_slice())
            .collect();
        let out2 = op.out_dims(&d2, 2).map_err(Error::Shape)?;
        // The batch's outer factor carries over where the batch axis keeps
        // its size (a transpose moves it with its axis).
        let outer = match &op {
            Op::Transpose { perm } => ins
                .first()
                .and_then(|&x| {
                    let a = self.batch_axis(x)?;
                    perm.iter()
                        .position(|&p| p == a)
                        .map(|_| self.outer[x.index()])
                })
                .unwrap_or(1),
            _ => ins
                .iter()
                .find_map(|&x| self.batch_axis(x).map(|_| self.outer[x.index()]))
                .unwrap_or(1),
        };
        let id = self.g.add(name, op, ins)?;
        self.dims2.push(out2);
        self.outer.push(outer);
        Ok(id)
    }

    /// A parameter holding `c`: the initializer's own name where it is
    /// `{something}.{suffix}` and free, else `{module of n}.{suffix}`.
    fn param(&mut self, n: &NodeProto, c: Const, suffix: &str, role: Role) -> ValueId {
        // `attn.in_proj_weight` (torch's MultiheadAttention) is layer
        // `attn.in_proj`: a prunable layer's weight is `{layer}.weight`.
        // The source's name: the initializer's, else the parameter the
        // dynamo exporter's FX node names (`%p_blocks_0_attn_qkv_weight`:
        // module `blocks.0.attn.qkv` and what follows its mangled name).
        let origin = c
            .origin
            .clone()
            .filter(|o| o.ends_with(&format!(".{suffix}")) || o.ends_with(&format!("_{suffix}")))
            .or_else(|| fx_param(n, suffix));
        let own = origin
            .as_deref()
            .and_then(|o| {
                if o.ends_with(&format!(".{suffix}")) {
                    Some((o.to_string(), None))
                } else {
                    o.strip_suffix(&format!("_{suffix}"))
                        .map(|layer| (format!("{layer}.{suffix}"), Some(o.to_string())))
                }
            })
            .filter(|(o, _)| !self.used.contains(o));
        let name = match own {
            Some((o, alias)) => {
                self.used.insert(o.clone());
                if let Some(a) = alias {
                    self.g.aliases.insert(o.clone(), a);
                }
                o
            }
            None => {
                let module = module_of(n);
                self.fresh(&format!("{module}.{suffix}"))
            }
        };
        self.push_param(name, c, role)
    }

    /// Adds parameter `name` holding `c` (its name already unique).
    fn push_param(&mut self, name: String, c: Const, role: Role) -> ValueId {
        let id = self.g.param(&name, c.dims.clone(), role);
        self.dims2.push(c.dims.clone());
        self.outer.push(1);
        self.params.insert(name, c);
        id
    }

    /// A constant used as an operand of a data op: a learned tensor (class
    /// token, position embedding, layer scale) where it is an initializer
    /// with more than one value, a fixed constant otherwise.
    fn operand(&mut self, n: &NodeProto, c: Const) -> ValueId {
        let learned = c.origin.is_some() && c.len() > 1 && matches!(c.values, Values::F(_));
        let c = Const {
            values: Values::F(Rc::new(c.as_f32())),
            ..c
        };
        if learned {
            let suffix = c
                .origin
                .as_deref()
                .and_then(|o| o.rsplit('.').next())
                .unwrap_or("value")
                .to_string();
            let own = c.origin.clone().filter(|o| !self.used.contains(o));
            let name = match own {
                Some(o) => {
                    self.used.insert(o.clone());
                    o
                }
                None => self.fresh(&format!("{}.{suffix}", module_of(n))),
            };
            self.push_param(name, c, Role::Embedding)
        } else {
            let name = self.fresh(&format!("{}.const", node_name(n)));
            self.push_param(name, c, Role::Constant)
        }
    }

    /// A graph value for input `i` (a constant becomes an operand).
    fn value(&mut self, n: &NodeProto, i: usize) -> Result<ValueId> {
        match self.input(n, i)? {
            Val::V(v) => Ok(v),
            Val::C(c) => Ok(self.operand(n, c)),
        }
    }

    /// Imports one node; returns its outputs.
    fn node(&mut self, n: &NodeProto, bias: Option<&Const>) -> Result<Vec<(String, Val)>> {
        if n.op_type == "Constant" {
            let c = constant_attr(n, self.path)?;
            return Ok(out_val(n, Val::C(c)));
        }
        let ins: Vec<Option<Val>> = n
            .input
            .iter()
            .map(|x| (!x.is_empty()).then(|| self.env.get(x).cloned()).flatten())
            .collect();
        if ins
            .iter()
            .zip(&n.input)
            .any(|(v, x)| v.is_none() && !x.is_empty())
        {
            let missing = n
                .input
                .iter()
                .find(|x| !x.is_empty() && !self.env.contains_key(*x))
                .cloned()
                .unwrap_or_default();
            return Err(self.unsupported(n, &format!("reads `{missing}`, which no node computes")));
        }
        let all_const = ins.iter().all(|v| matches!(v, None | Some(Val::C(_))));
        // A constant expanded to the batch (a class token) is a value of
        // the graph, broadcast where it is used.
        let batch_expand = n.op_type == "Expand"
            && matches!(ins.get(1), Some(Some(Val::C(c))) if c.as_i64().iter().any(|&v| v >= BATCH));
        if all_const && !batch_expand {
            let cs: Vec<Option<Const>> = ins
                .into_iter()
                .map(|v| match v {
                    Some(Val::C(c)) => Some(c),
                    _ => None,
                })
                .collect();
            let outs = fold::eval(n, &cs).map_err(|m| self.unsupported(n, &m))?;
            return Ok(n
                .output
                .iter()
                .cloned()
                .zip(outs.into_iter().map(Val::C))
                .collect());
        }
        let a = |name: &str| attribute(n, name);
        let v = match n.op_type.as_str() {
            "Identity" | "Cast" => return Ok(out_val(n, self.input(n, 0)?)),
            "Dropout" => {
                let x = self.value(n, 0)?;
                let p = match self.opt_const(n, 1)? {
                    Some(c) => c.as_f32().first().copied().unwrap_or(0.5),
                    None => a("ratio").map_or(0.5, |a| a.f),
                };
                // An eval-mode export keeps the op with its ratio; it is
                // identity in evaluation and dropout in training, as in
                // PyTorch.
                self.add(n, Op::Dropout { p }, &[x])?
            }
            "Shape" => {
                let Val::V(x) = self.input(n, 0)? else {
                    unreachable!("constants fold above")
                };
                let vals = self.marked_dims(x);
                let r = vals.len() as i64;
                let clampi = |v: i64| (if v < 0 { v + r } else { v }).clamp(0, r) as usize;
                let start = a("start").map_or(0, |a| clampi(a.i));
                let end = a("end").map_or(r as usize, |a| clampi(a.i));
                let vals = vals[start..end.max(start)].to_vec();
                return Ok(out_val(n, Val::C(Const::ints(vec![vals.len()], vals))));
            }
            "Conv" => self.conv(n)?,
            "BatchNormalization" => self.batch_norm(n)?,
            "LayerNormalization" => {
                let x = self.value(n, 0)?;
                let rank = self.dims(x).len() as i64;
                let axis = a("axis").map_or(-1, |a| a.i);
                let axis = if axis < 0 { axis + rank } else { axis } as usize;
                // Stored as f32: the number it stands for (1e-5, not 9.99e-6).
                let eps = a("epsilon").map_or(1e-5, |a| exact(a.f));
                let norm_dims = self.dims(x)[axis.min(self.dims(x).len())..].to_vec();
                let gamma = self.konst(n, 1)?;
                let beta = match self.opt_const(n, 2)? {
                    Some(b) => b,
                    None => Const::floats(norm_dims.clone(), vec![0.0; gamma.len()]),
                };
                let gamma = gamma.clone().with_dims(norm_dims.clone());
                let beta = beta.with_dims(norm_dims);
                let gw = self.param(n, gamma, "weight", Role::Norm);
                let gb = self.param(n, beta, "bias", Role::Norm);
                self.add(n, Op::LayerNorm { axis, eps }, &[x, gw, gb])?
            }
            "Relu" => self.act(n, Act::Relu)?,
            "Clip" => {
                let bound = |i: usize, name: &str, dflt: f32| -> Result<f32> {
                    Ok(match self.opt_const(n, i)? {
                        Some(c) => c.as_f32().first().copied().unwrap_or(dflt),
                        None => a(name).map_or(dflt, |a| a.f),
                    })
                };
                let min = bound(1, "min", f32::NEG_INFINITY)?;
                let max = bound(2, "max", f32::INFINITY)?;
                self.act(n, Act::Clip { min, max })?
            }
            "LeakyRelu" => {
                let alpha = a("alpha").map_or(0.01, |a| a.f);
                self.act(n, Act::LeakyRelu { alpha })?
            }
            "Sigmoid" => self.act(n, Act::Sigmoid)?,
            "HardSigmoid" => {
                let alpha = a("alpha").map_or(0.2, |a| a.f);
                let beta = a("beta").map_or(0.5, |a| a.f);
                self.act(n, Act::HardSigmoid { alpha, beta })?
            }
            "HardSwish" => self.act(n, Act::HardSwish)?,
            "Gelu" => {
                let tanh = a("approximate").is_some_and(|a| a.s == b"tanh");
                self.act(n, Act::Gelu { tanh })?
            }
            "Tanh" => self.act(n, Act::Tanh)?,
            "Erf" => self.act(n, Act::Erf)?,
            "Sqrt" => self.act(n, Act::Sqrt)?,
            "Pow" => {
                let e = self.konst(n, 1)?.as_f32();
                let [exponent] = e[..] else {
                    return Err(self.unsupported(n, "the exponent must be one number"));
                };
                self.act(n, Act::Pow { exponent })?
            }
            "Softmax" => {
                let x = self.value(n, 0)?;
                let axis = self.axis(x, a("axis").map_or(-1, |a| a.i));
                self.add(n, Op::Softmax { axis }, &[x])?
            }
            "Add" | "Sub" | "Mul" | "Div" => {
                let op = match n.op_type.as_str() {
                    "Add" => Binary::Add,
                    "Sub" => Binary::Sub,
                    "Mul" => Binary::Mul,
                    _ => Binary::Div,
                };
                let l = self.value(n, 0)?;
                let r = self.value(n, 1)?;
                self.add(n, Op::Binary(op), &[l, r])?
            }
            "Concat" => {
                let ins = (0..n.input.len())
                    .map(|i| self.value(n, i))
                    .collect::<Result<Vec<_>>>()?;
                let axis = self.axis(ins[0], a("axis").map_or(0, |a| a.i));
                self.add(n, Op::Concat { axis }, &ins)?
            }
            "Split" => return self.split(n),
            "Slice" => self.slice(n)?,
            "Pad" => self.pad(n)?,
            "Transpose" => {
                let x = self.value(n, 0)?;
                let rank = self.dims(x).len();
                let perm: Vec<usize> = match a("perm") {
                    Some(p) => p.int_list().iter().map(|&v| v as usize).collect(),
                    None => (0..rank).rev().collect(),
                };
                self.add(n, Op::Transpose { perm }, &[x])?
            }
            "Reshape" => {
                let x = self.value(n, 0)?;
                let target = self.konst(n, 1)?.as_i64();
                let allow_zero = a("allowzero").is_some_and(|a| a.i == 1);
                self.reshape(n, x, &target, allow_zero)?
            }
            "Flatten" => {
                let x = self.value(n, 0)?;
                let d = self.dims(x).to_vec();
                let axis = self.axis_incl_end(x, a("axis").map_or(1, |a| a.i));
                let (pre, post): (usize, usize) =
                    (d[..axis].iter().product(), d[axis..].iter().product());
                let t = match self.batch_axis(x) {
                    Some(b) if b < axis => [BATCH * pre as i64, post as i64],
                    Some(_) => [pre as i64, BATCH * post as i64],
                    None => [pre as i64, post as i64],
                };
                self.reshape(n, x, &t, true)?
            }
            "Squeeze" | "Unsqueeze" => {
                let x = self.value(n, 0)?;
                let axes: Vec<i64> = match self.opt_const(n, 1)? {
                    Some(c) => c.as_i64(),
                    None => a("axes").map(AttributeProto::int_list).unwrap_or_default(),
                };
                let d = self.dims(x).to_vec();
                let b = self.batch_axis(x);
                // The new dims with the batch marked, then a reshape.
                let mut marked = self.marked_dims(x);
                if n.op_type == "Squeeze" {
                    let r = marked.len() as i64;
                    let mut drop: Vec<usize> = if axes.is_empty() {
                        (0..d.len())
                            .filter(|&i| d[i] == 1 && Some(i) != b)
                            .collect()
                    } else {
                        axes.iter()
                            .map(|&v| (if v < 0 { v + r } else { v }) as usize)
                            .collect()
                    };
                    drop.sort_unstable();
                    for &i in drop.iter().rev() {
                        if i >= marked.len() || marked[i] != 1 {
                            return Err(self.unsupported(n, &format!("axis {i} is not of size 1")));
                        }
                        marked.remove(i);
                    }
                } else {
                    let r = (marked.len() + axes.len()) as i64;
                    let mut ax: Vec<usize> = axes
                        .iter()
                        .map(|&v| (if v < 0 { v + r } else { v }) as usize)
                        .collect();
                    ax.sort_unstable();
                    for i in ax {
                        if i > marked.len() {
                            return Err(self.unsupported(n, &format!("axis {i} is out of range")));
                        }
                        marked.insert(i, 1);
                    }
                }
                self.reshape(n, x, &marked, true)?
            }
            "Gemm" => self.gemm(n)?,
            "MatMul" => self.matmul(n, bias)?,
            "ReduceMean" => {
                let x = self.value(n, 0)?;
                let rank = self.dims(x).len();
                let axes: Vec<i64> = match self.opt_const(n, 1)? {
                    Some(c) => c.as_i64(),
                    None => a("axes").map(AttributeProto::int_list).unwrap_or_default(),
                };
                let mut axes: Vec<usize> = if axes.is_empty() {
                    (0..rank).collect()
                } else {
                    axes.iter().map(|&v| self.axis(x, v)).collect()
                };
                axes.sort_unstable();
                axes.dedup();
                let keep = a("keepdims").is_none_or(|a| a.i != 0);
                self.add(n, Op::ReduceMean { axes, keep }, &[x])?
            }
            "GlobalAveragePool" => {
                let x = self.value(n, 0)?;
                let op = Op::ReduceMean {
                    axes: vec![2, 3],
                    keep: true,
                };
                self.add(n, op, &[x])?
            }
            "MaxPool" | "AveragePool" => self.pool(n)?,
            "Gather" => {
                let x = self.value(n, 0)?;
                let idx = self.konst(n, 1)?;
                let axis = self.axis(x, a("axis").map_or(0, |a| a.i));
                let size = self.dims(x)[axis] as i64;
                let index: Vec<usize> = idx
                    .as_i64()
                    .iter()
                    .map(|&i| (if i < 0 { i + size } else { i }) as usize)
                    .collect();
                if idx.dims.len() > 1 {
                    // Every entry of the axis in order, in a new shape: a
                    // reshape (what the dynamo exporter writes for a view
                    // through `as_strided`).
                    let d = self.dims(x).to_vec();
                    let identity = d.len() == 1
                        && index.len() == d[0]
                        && index.iter().enumerate().all(|(i, &j)| i == j);
                    if !identity {
                        return Err(self.unsupported(n, "indices of rank above 1"));
                    }
                    let t: Vec<i64> = idx.dims.iter().map(|&v| v as i64).collect();
                    let v = self.reshape(n, x, &t, true)?;
                    return Ok(out_val(n, Val::V(v)));
                }
                let keep_axis = !idx.dims.is_empty();
                self.add(
                    n,
                    Op::Gather {
                        axis,
                        index,
                        keep_axis,
                    },
                    &[x],
                )?
            }
            "Expand" => {
                let x = self.value(n, 0)?;
                let target = self.konst(n, 1)?.as_i64();
                // At a batch of one the batch's entries are 1; what remains
                // to expand is done by adding zeros of the target's shape.
                let t1: Vec<usize> = target
                    .iter()
                    .map(|&v| {
                        if v >= BATCH {
                            (v / BATCH) as usize
                        } else {
                            v.max(1) as usize
                        }
                    })
                    .collect();
                let d = self.dims(x).to_vec();
                let out = crate::model::ops::layout::broadcast(&d, &t1)
                    .map_err(|m| self.unsupported(n, &m))?;
                if out == d || (out[1..] == d[1..] && d.first() == Some(&1)) {
                    return Ok(out_val(n, Val::V(x)));
                }
                let mut zdims = out.clone();
                zdims[0] = 1;
                let count = zdims
                    .iter()
                    .try_fold(1usize, |a, &v| a.checked_mul(v))
                    .filter(|&c| c <= 1 << 26)
                    .ok_or_else(|| self.unsupported(n, &format!("an expansion to {out:?}")))?;
                let zeros = Const::floats(zdims.clone(), vec![0.0; count]);
                let z = self.operand(n, zeros);
                self.add(n, Op::Binary(Binary::Add), &[x, z])?
            }
            _ => {
                return Err(self.unsupported(
                    n,
                    &format!(
                        "the op is not supported on data; Shears imports {} (and folds shape \
                         arithmetic on constants)",
                        SUPPORTED_OPS.join(", ")
                    ),
                ))
            }
        };
        Ok(out_val(n, Val::V(v)))
    }

    fn act(&mut self, n: &NodeProto, a: Act) -> Result<ValueId> {
        let x = self.value(n, 0)?;
        self.add(n, Op::Act(a), &[x])
    }

    /// `axis` (negative from the end) of `x`.
    fn axis(&self, x: ValueId, axis: i64) -> usize {
        let r = self.dims(x).len() as i64;
        (if axis < 0 { axis + r } else { axis }).clamp(0, (r - 1).max(0)) as usize
    }

    /// Like [`Importer::axis`], allowing the rank itself.
    fn axis_incl_end(&self, x: ValueId, axis: i64) -> usize {
        let r = self.dims(x).len() as i64;
        (if axis < 0 { axis + r } else { axis }).clamp(0, r) as usize
    }

    /// `v`'s dims with the batch's axis marked ([`BATCH`] times its size).
    fn marked_dims(&self, v: ValueId) -> Vec<i64> {
        let b = self.batch_axis(v);
        self.dims(v)
            .iter()
            .enumerate()
            .map(|(i, &s)| {
                if Some(i) == b {
                    BATCH * s as i64
                } else {
                    s as i64
                }
            })
            .collect()
    }

    /// Where the batch sits in `v`'s row-major layout: `(blocks before it,
    /// values after it)` for a batch of one, or `None` when `v` has no
    /// batch.
    fn batch_slot(&self, v: ValueId) -> Option<(usize, usize)> {
        let a = self.batch_axis(v)?;
        let d = self.dims(v);
        let o = self.outer[v.index()];
        Some((
            d[..a].iter().product::<usize>() * o,
            d[a] / o * d[a + 1..].iter().product::<usize>(),
        ))
    }

    /// A reshape of `x` to `target` (ONNX's form: `0` copies, `-1` infers,
    /// [`BATCH`] marks) as [`Dim`]s, and the batch's outer factor in its
    /// axis. A target written for the file's fixed batch can put the batch
    /// at the end of one axis or the start of the next with the same
    /// layout; such a reshape is a choice point (see [`read`]).
    fn reshape_target(
        &mut self,
        x: ValueId,
        target: &[i64],
        allow_zero: bool,
    ) -> std::result::Result<(Vec<Dim>, usize), String> {
        let d = self.dims(x).to_vec();
        let numel: usize = d.iter().product();
        let slot = self.batch_slot(x);
        let marked = target.iter().position(|&v| v >= BATCH);
        // The target for a batch of one, the batch's axis divided out
        // (`div`, the file's batch, where the axis is not marked).
        let at1 = |axis: Option<usize>, div: usize| -> std::result::Result<Vec<usize>, String> {
            let mut e: Vec<Option<usize>> = Vec::with_capacity(target.len());
            for (i, &v) in target.iter().enumerate() {
                e.push(match v {
                    0 if !allow_zero => Some(*d.get(i).ok_or("a 0 beyond the input's rank")?),
                    -1 => None,
                    v if v >= BATCH => Some((v / BATCH) as usize),
                    v if v >= 0 && Some(i) == axis => {
                        let v = v as usize;
                        if !v.is_multiple_of(div) {
                            return Err(String::new());
                        }
                        Some(v / div)
                    }
                    v if v >= 0 => Some(v as usize),
                    v => return Err(format!("target size {v}")),
                });
            }
            let too_big = || format!("cannot reshape {d:?} to {target:?}");
            let known = e
                .iter()
                .flatten()
                .try_fold(1usize, |a, &v| a.checked_mul(v))
                .ok_or_else(too_big)?;
            if let Some(i) = e.iter().position(Option::is_none) {
                if known == 0 || !numel.is_multiple_of(known) {
                    return Err(format!("cannot reshape {d:?} to {target:?}"));
                }
                e[i] = Some(numel / known);
            }
            let e: Vec<usize> = e.into_iter().flatten().collect();
            if e.iter().try_fold(1usize, |a, &v| a.checked_mul(v)) != Some(numel) {
                return Err(format!("cannot reshape {d:?} to {target:?}"));
            }
            Ok(e)
        };
        let Some((before, after)) = slot else {
            let e = at1(None, 1)?;
            return Ok((e.into_iter().map(Dim::Fixed).collect(), 1));
        };
        // Every (axis, outer factor) that puts the batch where the input
        // has it.
        let mut candidates: Vec<(Vec<usize>, usize, usize)> = Vec::new();
        let axes: Vec<usize> = match marked {
            Some(t) => vec![t],
            None => (0..target.len()).collect(),
        };
        for t in axes {
            let div = if marked.is_some() || target[t] == 0 || target[t] == -1 {
                1
            } else {
                self.batch
            };
            let Ok(e) = at1(Some(t), div) else { continue };
            let pre: usize = e[..t].iter().product();
            if pre == 0 || before % pre != 0 {
                continue;
            }
            let o = before / pre;
            if o == 0 || e[t] % o != 0 {
                continue;
            }
            if e[t] / o * e[t + 1..].iter().product::<usize>() == after {
                candidates.push((e, t, o));
            }
        }
        // Most likely first: the batch as an axis of its own, then on the
        // axis it had; the others are tried when these fail (see [`read`]).
        let axis_in = self.batch_axis(x);
        candidates.sort_by_key(|(e, t, o)| (!(*o == 1 && e[*t] == 1), Some(*t) != axis_in));
        let pick = match candidates.len() {
            0 => {
                return Err(format!(
                    "cannot tell where the batch goes when {d:?} is reshaped to {target:?}"
                ))
            }
            1 => 0,
            k => {
                let key = format!("{d:?} {:?} {target:?}", (before, after));
                let c = self.choices.get(&key).copied().unwrap_or(0).min(k - 1);
                if !self.ambiguous.iter().any(|(q, _)| *q == key) {
                    self.ambiguous.push((key, k));
                }
                c
            }
        };
        let (e, t, o) = candidates.swap_remove(pick);
        let dims = e
            .into_iter()
            .enumerate()
            .map(|(i, s)| if i == t { Dim::Batch(s) } else { Dim::Fixed(s) })
            .collect();
        Ok((dims, o))
    }

    /// Adds a reshape of `x` to `target` (see [`Importer::reshape_target`]).
    fn reshape(
        &mut self,
        n: &NodeProto,
        x: ValueId,
        target: &[i64],
        allow_zero: bool,
    ) -> Result<ValueId> {
        let (shape, outer) = self
            .reshape_target(x, target, allow_zero)
            .map_err(|m| self.unsupported(n, &m))?;
        let v = self.add(n, Op::Reshape { shape }, &[x])?;
        self.outer[v.index()] = outer;
        Ok(v)
    }

    fn conv(&mut self, n: &NodeProto) -> Result<ValueId> {
        let x = self.value(n, 0)?;
        let w = self.konst(n, 1)?;
        if w.dims.len() != 4 {
            return Err(self.unsupported(n, "only 2-D convolutions are supported"));
        }
        let a = |name: &str| attribute(n, name).map(AttributeProto::int_list);
        if let Some(p) = attribute(n, "auto_pad") {
            if !(p.s.is_empty() || p.s == b"NOTSET" || p.s == b"VALID") {
                return Err(self.unsupported(n, "auto_pad SAME_* (export with explicit padding)"));
            }
        }
        let two = |v: Option<Vec<i64>>| -> [usize; 2] {
            match v.as_deref() {
                Some([a, b]) => [*a as usize, *b as usize],
                _ => [1, 1],
            }
        };
        let pads = match a("pads").as_deref() {
            Some([t, l, b, r]) => [*t as usize, *l as usize, *b as usize, *r as usize],
            _ => [0; 4],
        };
        let conv = Conv {
            stride: two(a("strides")),
            pad: pads,
            dilation: two(a("dilations")),
            groups: attribute(n, "group").map_or(1, |g| g.i.max(1) as usize),
        };
        let bias = self.opt_const(n, 2)?;
        if folded_from_bn(n) || w.origin.as_deref().is_some_and(|o| o.starts_with("onnx::")) {
            // The dynamo exporter says so; the TorchScript exporter names
            // the folded weights `onnx::Conv_N`.
            self.folded_bn = true;
        }
        let wid = self.param(n, w, "weight", Role::Weight);
        let mut ins = vec![x, wid];
        if let Some(b) = bias {
            ins.push(self.param(n, b, "bias", Role::Bias));
        }
        self.add(n, Op::Conv(conv), &ins)
    }

    fn batch_norm(&mut self, n: &NodeProto) -> Result<ValueId> {
        let x = self.value(n, 0)?;
        // Stored as f32: the numbers they stand for (1e-5, not 9.99e-6).
        let eps = attribute(n, "epsilon").map_or(1e-5, |a| exact(a.f));
        // ONNX's momentum weighs the running statistic; Shears's the new one.
        let momentum = 1.0 - attribute(n, "momentum").map_or(0.9, |a| exact(a.f));
        let mut ins = vec![x];
        for (i, (suffix, role)) in BATCH_NORM_PARAMS.into_iter().enumerate() {
            let c = self.konst(n, i + 1)?;
            ins.push(self.param(n, c, suffix, role));
        }
        self.add(n, Op::BatchNorm { eps, momentum }, &ins)
    }

    fn linear(&mut self, n: &NodeProto, x: ValueId, w: Const, b: Option<Const>) -> Result<ValueId> {
        let out = w.dims[0];
        let wid = self.param(n, w, "weight", Role::Weight);
        let mut ins = vec![x, wid];
        if let Some(b) = b {
            if b.len() != out {
                return Err(self.unsupported(
                    n,
                    &format!("a bias of {} values for {out} outputs", b.len()),
                ));
            }
            let b = b.with_dims(vec![out]);
            ins.push(self.param(n, b, "bias", Role::Bias));
        }
        self.add(n, Op::Linear, &ins)
    }

    fn gemm(&mut self, n: &NodeProto) -> Result<ValueId> {
        let a = |name: &str| attribute(n, name);
        if a("transA").is_some_and(|v| v.i != 0) {
            return Err(self.unsupported(n, "transA = 1"));
        }
        let x = self.value(n, 0)?;
        let mut w = self.konst(n, 1)?;
        if w.dims.len() != 2 {
            return Err(self.unsupported(n, "a weight that is not a matrix"));
        }
        if a("transB").is_none_or(|v| v.i == 0) {
            w = fold::transpose2(w);
        }
        let alpha = a("alpha").map_or(1.0, |v| v.f);
        let beta = a("beta").map_or(1.0, |v| v.f);
        if alpha != 1.0 {
            w = fold::scale(w, alpha);
        }
        let b = self
            .opt_const(n, 2)?
            .map(|c| if beta != 1.0 { fold::scale(c, beta) } else { c });
        let b = match b {
            Some(c) if c.len() == 1 && w.dims[0] != 1 => {
                let v = c.as_f32()[0];
                Some(Const::floats(vec![w.dims[0]], vec![v; w.dims[0]]))
            }
            b => b,
        };
        self.linear(n, x, w, b)
    }

    fn matmul(&mut self, n: &NodeProto, bias: Option<&Const>) -> Result<ValueId> {
        match (self.input(n, 0)?, self.input(n, 1)?) {
            // A value times a weight matrix: a linear layer (over the last
            // axis, whatever the rank).
            (Val::V(x), Val::C(w)) if w.dims.len() == 2 && !averages(&w) => {
                let w = fold::transpose2(w);
                self.linear(n, x, w, bias.cloned())
            }
            // A constant matrix in front, or one whose columns average
            // (Shears writes an adaptive pool with uneven windows as two
            // such products): a product with a constant, not trained.
            (a, b) => {
                let a = self.fixed(n, a);
                let b = self.fixed(n, b);
                self.add(n, Op::MatMul, &[a, b])
            }
        }
    }

    /// A graph value for `v`, a constant held fixed (not trained).
    fn fixed(&mut self, n: &NodeProto, v: Val) -> ValueId {
        match v {
            Val::V(v) => v,
            Val::C(c) => {
                let c = Const { origin: None, ..c };
                self.operand(n, c)
            }
        }
    }

    fn split(&mut self, n: &NodeProto) -> Result<Vec<(String, Val)>> {
        let x = self.value(n, 0)?;
        let axis = self.axis(x, attribute(n, "axis").map_or(0, |a| a.i));
        let size = self.dims(x)[axis];
        let parts = n.output.len();
        let sizes: Vec<usize> = match self.opt_const(n, 1)? {
            Some(c) => c.as_i64().iter().map(|&v| v as usize).collect(),
            None => match attribute(n, "split") {
                Some(s) => s.int_list().iter().map(|&v| v as usize).collect(),
                None => {
                    let each = size.div_ceil(parts.max(1));
                    (0..parts)
                        .map(|i| each.min(size.saturating_sub(i * each)))
                        .collect()
                }
            },
        };
        if sizes.len() != parts || sizes.iter().sum::<usize>() != size {
            return Err(self.unsupported(n, &format!("split sizes {sizes:?} of an axis of {size}")));
        }
        if Some(axis) == self.batch_axis(x) {
            return Err(self.unsupported(n, "a split along the batch"));
        }
        let mut start = 0;
        let mut outs = Vec::new();
        for (o, s) in n.output.iter().zip(sizes) {
            let name = self.fresh(o);
            let op = Op::Slice {
                axis,
                start,
                end: start + s,
            };
            let v = self
                .add_named(&name, op, &[x])
                .map_err(|e| self.unsupported(n, &e.to_string()))?;
            outs.push((o.clone(), Val::V(v)));
            start += s;
        }
        Ok(outs)
    }

    fn slice(&mut self, n: &NodeProto) -> Result<ValueId> {
        let mut x = self.value(n, 0)?;
        let starts = self.konst(n, 1)?.as_i64();
        let ends = self.konst(n, 2)?.as_i64();
        let axes: Vec<usize> = match self.opt_const(n, 3)? {
            Some(c) => c.as_i64().iter().map(|&v| self.axis(x, v)).collect(),
            None => (0..starts.len()).collect(),
        };
        if starts.len() < axes.len() || ends.len() < axes.len() {
            return Err(self.unsupported(n, "starts and ends shorter than its axes"));
        }
        let steps = match self.opt_const(n, 4)? {
            Some(c) => c.as_i64(),
            None => vec![1; axes.len()],
        };
        if steps.len() < axes.len() || steps.contains(&0) {
            return Err(self.unsupported(n, "steps shorter than its axes, or a step of 0"));
        }
        for (k, &axis) in axes.iter().enumerate() {
            let size = self.dims(x)[axis] as i64;
            let step = steps[k];
            let op = if step == 1 {
                let clampi = |v: i64| (if v < 0 { v + size } else { v }).clamp(0, size) as usize;
                let (start, end) = (clampi(starts[k]), clampi(ends[k]));
                if start == 0 && end == size as usize {
                    continue;
                }
                Op::Slice { axis, start, end }
            } else {
                // Another step takes the entries it lands on.
                let index = strided(starts[k], ends[k], step, size);
                if index.is_empty() {
                    return Err(self.unsupported(n, "a slice that takes nothing"));
                }
                Op::Gather {
                    axis,
                    index,
                    keep_axis: true,
                }
            };
            if Some(axis) == self.batch_axis(x) {
                return Err(self.unsupported(n, "a slice of the batch"));
            }
            let name = self.fresh(&node_name(n));
            x = self
                .add_named(&name, op, &[x])
                .map_err(|e| self.unsupported(n, &e.to_string()))?;
        }
        Ok(x)
    }

    /// ONNX `Pad` in constant mode, one axis at a time (negative pads crop).
    fn pad(&mut self, n: &NodeProto) -> Result<ValueId> {
        let mut x = self.value(n, 0)?;
        if let Some(m) = attribute(n, "mode") {
            if !(m.s.is_empty() || m.s == b"constant") {
                let mode = String::from_utf8_lossy(&m.s).into_owned();
                return Err(
                    self.unsupported(n, &format!("mode `{mode}` (Shears pads with a constant)"))
                );
            }
        }
        let rank = self.dims(x).len();
        let pads = match self.opt_const(n, 1)? {
            Some(c) => c.as_i64(),
            None => attribute(n, "pads")
                .map(AttributeProto::int_list)
                .unwrap_or_default(),
        };
        let value = match self.opt_const(n, 2)? {
            Some(c) => c.as_f32().first().copied().unwrap_or(0.0),
            None => attribute(n, "value").map_or(0.0, |a| a.f),
        };
        let axes: Vec<usize> = match self.opt_const(n, 3)? {
            Some(c) => c.as_i64().iter().map(|&v| self.axis(x, v)).collect(),
            None => (0..rank).collect(),
        };
        if pads.len() != 2 * axes.len() {
            return Err(
                self.unsupported(n, &format!("{} pads for {} axes", pads.len(), axes.len()))
            );
        }
        for (k, &axis) in axes.iter().enumerate() {
            let (before, after) = (pads[k], pads[k + axes.len()]);
            if before == 0 && after == 0 {
                continue;
            }
            if Some(axis) == self.batch_axis(x) {
                return Err(self.unsupported(n, "padding the batch"));
            }
            let size = self.dims(x)[axis] as i64;
            // Negative pads crop first.
            let (start, end) = ((-before).max(0), size - (-after).max(0));
            if start >= end {
                return Err(self.unsupported(n, "pads that crop away the whole axis"));
            }
            if start > 0 || end < size {
                let (start, end) = (start as usize, end as usize);
                let name = self.fresh(&node_name(n));
                x = self
                    .add_named(&name, Op::Slice { axis, start, end }, &[x])
                    .map_err(|e| self.unsupported(n, &e.to_string()))?;
            }
            let (before, after) = (before.max(0) as usize, after.max(0) as usize);
            if before + after > 0 {
                let op = Op::Pad {
                    axis,
                    before,
                    after,
                    value,
                };
                let name = self.fresh(&node_name(n));
                x = self
                    .add_named(&name, op, &[x])
                    .map_err(|e| self.unsupported(n, &e.to_string()))?;
            }
        }
        Ok(x)
    }

    fn pool(&mut self, n: &NodeProto) -> Result<ValueId> {
        let x = self.value(n, 0)?;
        let a = |name: &str| attribute(n, name).map(AttributeProto::int_list);
        if let Some(p) = attribute(n, "auto_pad") {
            if !(p.s.is_empty() || p.s == b"NOTSET" || p.s == b"VALID") {
                return Err(self.unsupported(n, "auto_pad SAME_*"));
            }
        }
        if a("dilations").is_some_and(|d| d.iter().any(|&v| v != 1)) {
            return Err(self.unsupported(n, "dilated pooling"));
        }
        if n.output.len() > 1 && !n.output[1].is_empty() {
            return Err(self.unsupported(n, "pooling indices as an output"));
        }
        let k = match a("kernel_shape").as_deref() {
            Some([h, w]) => [*h as usize, *w as usize],
            _ => return Err(self.unsupported(n, "a kernel that is not 2-D")),
        };
        let stride = match a("strides").as_deref() {
            Some([h, w]) => [*h as usize, *w as usize],
            _ => [1, 1],
        };
        let pad = match a("pads").as_deref() {
            Some([t, l, b, r]) => [*t as usize, *l as usize, *b as usize, *r as usize],
            _ => [0; 4],
        };
        let pool = Pool {
            kernel: k,
            stride,
            pad,
            ceil: attribute(n, "ceil_mode").is_some_and(|a| a.i != 0),
            count_pad: attribute(n, "count_include_pad").is_some_and(|a| a.i != 0),
        };
        let op = if n.op_type == "MaxPool" {
            Op::MaxPool(pool)
        } else {
            Op::AvgPool(pool)
        };
        self.add(n, op, &[x])
    }
}

/// Node `n`'s one output, named, holding `v`.
/// The indices ONNX `Slice` takes along an axis of `size` from `start`
/// towards `end` in steps of `step` (not 0), after its clamping rules.
fn strided(start: i64, end: i64, step: i64, size: i64) -> Vec<usize> {
    let wrap = |v: i64| if v < 0 { v + size } else { v };
    let (start, end) = if step > 0 {
        (wrap(start).clamp(0, size), wrap(end).clamp(0, size))
    } else {
        (
            wrap(start).clamp(-1, size - 1),
            wrap(end).clamp(-1, size - 1),
        )
    };
    let mut out = Vec::new();
    let mut i = start;
    while (step > 0 && i < end) || (step < 0 && i > end) {
        out.push(i as usize);
        i += step;
    }
    out
}

fn out_val(n: &NodeProto, v: Val) -> Vec<(String, Val)> {
    n.output
        .first()
        .map(|o| vec![(o.clone(), v)])
        .unwrap_or_default()
}

/// Whether matrix `c` `[k, n]` averages: entries non-negative, each
/// column summing to 1 (what an adaptive average pool is as a product).
fn averages(c: &Const) -> bool {
    let [k, n] = c.dims[..] else { return false };
    let v = c.as_f32();
    v.iter().all(|&x| x >= 0.0)
        && (0..n).all(|j| ((0..k).map(|i| v[i * n + j]).sum::<f32>() - 1.0).abs() < 1e-5)
}

/// The attribute `name` of `n`.
fn attribute<'n>(n: &'n NodeProto, name: &str) -> Option<&'n AttributeProto> {
    n.attribute.iter().find(|a| a.name == name)
}

/// A `Constant` node's value.
fn constant_attr(n: &NodeProto, path: &Path) -> Result<Const> {
    let a = n
        .attribute
        .first()
        .ok_or_else(|| Error::format(path, format!("constant `{}` has no value", node_name(n))))?;
    let mut c = match a.name.as_str() {
        "value" => {
            let t = a.t.as_ref().ok_or_else(|| {
                Error::format(path, format!("constant `{}` has no tensor", node_name(n)))
            })?;
            tensor::decode(t, path)?
        }
        "value_float" => Const::floats(Vec::new(), vec![a.f]),
        "value_floats" => Const::floats(vec![a.floats.len()], a.floats.clone()),
        "value_int" => Const::ints(Vec::new(), vec![a.i]),
        "value_ints" => Const::ints(vec![a.ints.len()], a.ints.clone()),
        other => {
            return Err(Error::format(
                path,
                format!("constant `{}`: a `{other}` value", node_name(n)),
            ))
        }
    };
    // A constant node is not an initializer: it names no parameter.
    c.origin = None;
    Ok(c)
}

/// The node's name (its first output where it has none).
fn node_name(n: &NodeProto) -> String {
    if n.name.is_empty() {
        n.output.first().cloned().unwrap_or_default()
    } else {
        n.name.clone()
    }
}

/// Whether the exporter folded a BatchNorm into convolution `n`.
fn folded_from_bn(n: &NodeProto) -> bool {
    n.metadata_props
        .iter()
        .any(|p| p.value.contains("FuseBatchNormIntoConv"))
        || n.name.contains("BatchNorm")
}

/// The parameter of node `n` ending in `suffix` as the dynamo exporter's FX
/// node names it (`%p_encoder_layers_encoder_layer_0_self_attention_in_proj_weight`),
/// turned back into its dotted name by the node's module
/// (`encoder.layers.encoder_layer_0.self_attention` + `.in_proj_weight`).
fn fx_param(n: &NodeProto, suffix: &str) -> Option<String> {
    let fx = &n
        .metadata_props
        .iter()
        .find(|p| p.key == "pkg.torch.onnx.fx_node")?
        .value;
    let module = module_of(n);
    let prefix = format!("%p_{}_", module.replace('.', "_"));
    fx.match_indices(&prefix).find_map(|(at, _)| {
        let rest: String = fx[at + prefix.len()..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        (rest == suffix || rest.ends_with(&format!("_{suffix}")))
            .then(|| format!("{module}.{rest}"))
    })
}

/// `a.b`, or `b` where `a` is empty.
fn join(a: &str, b: &str) -> String {
    if a.is_empty() {
        b.to_string()
    } else {
        format!("{a}.{b}")
    }
}

/// The PyTorch module node `n` came from (`layer1.0.conv1`): the dynamo
/// exporter's name scopes, the TorchScript exporter's node name
/// (`/layer1/layer1.0/conv1/Conv`), else the node's name.
fn module_of(n: &NodeProto) -> String {
    if let Some(p) = n
        .metadata_props
        .iter()
        .find(|p| p.key == "pkg.torch.onnx.name_scopes")
    {
        // "['', 'blocks', 'blocks.0', 'blocks.0.attn', 'linear']": the
        // last scope is the op, the one before it the module.
        let scopes: Vec<&str> = p
            .value
            .trim_matches(|c| c == '[' || c == ']')
            .split(',')
            .map(|s| s.trim().trim_matches('\''))
            .collect();
        if let [.., module, _op] = scopes.as_slice() {
            if !module.is_empty() {
                return module.to_string();
            }
        }
    }
    // TorchScript names a node by its module scopes, each relative to the
    // last one that is not a refinement of it:
    // `/features/features.17/conv/conv.1/conv.1.0/Conv` is in module
    // `features.17.conv.1.0`.
    let name = node_name(n);
    let parts: Vec<&str> = name.trim_start_matches('/').split('/').collect();
    if name.starts_with('/') && parts.len() >= 2 {
        let (mut base, mut full, mut last) = (String::new(), String::new(), "");
        for c in &parts[..parts.len() - 1] {
            if !last.is_empty() && c.starts_with(&format!("{last}.")) {
                full = join(&base, c);
            } else {
                base = full.clone();
                full = join(&base, c);
            }
            last = c;
        }
        if !full.is_empty() {
            return full;
        }
    }
    name.replace(['/', ':'], "_")
}
