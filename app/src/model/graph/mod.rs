//! The model as one graph of operations: named values, and nodes (each an
//! [`Op`] with its attributes) that read values and produce one value each.
//! Weights are values too, produced by [`Op::Param`] nodes, so a class token,
//! a position embedding or a layer scale needs no special case.
//!
//! Every source compiles into a [`Graph`] (the built-in architectures, the
//! list-of-layers architectures of earlier versions, state dicts, ONNX); one
//! interpreter ([`run`]) runs it forward and backward on the CPU. A graph is
//! built node by node with [`Graph::add`], which infers the new value's
//! shape at once, so a graph that exists is consistent; [`Graph::lint`]
//! checks one that was read from a file.
//!
//! Shapes are concrete: a value's `dims` are its dims for a batch of one.
//! The only free dimension is the batch, which the interpreter takes from
//! the input it is given (a reshape names it with [`Dim::Batch`]).

pub mod candle;
mod op;
pub mod run;
#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};

pub use crate::model::ops::layout::Dim;
pub use op::{Op, Role, BATCH_NORM_PARAMS};

use crate::error::{Error, Result};

/// Index of a value in [`Graph::values`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ValueId(pub u32);

impl ValueId {
    /// The index as a `usize`.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// A value flowing through the graph: an activation or a parameter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Value {
    /// The value's name (its producer's name).
    pub name: String,
    /// Dims for a batch of one (a parameter's dims as they are).
    pub dims: Vec<usize>,
}

/// One operation: reads `inputs`, produces `output`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Node {
    /// Unique name; a parameter node's name is the parameter's name
    /// (`conv1.weight`), the name state dicts use.
    pub name: String,
    /// What it computes.
    pub op: Op,
    /// The values it reads, in the op's order.
    pub inputs: Vec<ValueId>,
    /// The value it produces.
    pub output: ValueId,
}

/// A model: values, and the nodes that produce them in topological order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Graph {
    /// Every value; `values[i]` is produced by exactly one node.
    pub values: Vec<Value>,
    /// The nodes, each after the producers of its inputs.
    pub nodes: Vec<Node>,
    /// The graph's inputs (values of [`Op::Input`] nodes), in order.
    pub inputs: Vec<ValueId>,
    /// The graph's outputs, in order.
    pub outputs: Vec<ValueId>,
    /// Parameters whose name in the source model differs from Shears's:
    /// Shears's name -> the source's (torch's `attn.in_proj_weight` is
    /// Shears's `attn.in_proj.weight`, since a layer's weight is
    /// `{layer}.weight`). State dicts are written with the source's names.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub aliases: std::collections::BTreeMap<String, String>,
}

/// A parameter or buffer of a graph, as [`Graph::params`] lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamInfo<'a> {
    /// Its name (`layer1.0.conv1.weight`).
    pub name: &'a str,
    /// Its dims.
    pub dims: &'a [usize],
    /// What it is.
    pub role: Role,
}

impl Graph {
    /// An empty graph.
    pub fn new() -> Self {
        Self::default()
    }

    /// The value `id`.
    pub fn value(&self, id: ValueId) -> &Value {
        &self.values[id.index()]
    }

    /// Adds a graph input of dims `dims` (for a batch of one).
    pub fn input(&mut self, name: &str, dims: Vec<usize>) -> ValueId {
        let id = self.push(name, Op::Input, Vec::new(), dims);
        self.inputs.push(id);
        id
    }

    /// Adds a parameter (or buffer) called `name` of dims `dims`.
    pub fn param(&mut self, name: &str, dims: Vec<usize>, role: Role) -> ValueId {
        self.push(name, Op::Param { role }, Vec::new(), dims)
    }

    /// Adds a node `name` computing `op` of `inputs`; its output's dims are
    /// inferred now, and an error names the node when they cannot be.
    pub fn add(&mut self, name: &str, op: Op, inputs: &[ValueId]) -> Result<ValueId> {
        if matches!(op, Op::Input | Op::Param { .. }) {
            return Err(node_error(
                name,
                "inputs and parameters have their own constructors",
            ));
        }
        let dims: Vec<&[usize]> = inputs
            .iter()
            .map(|&i| self.value(i).dims.as_slice())
            .collect();
        let out = op.out_dims(&dims, 1).map_err(|msg| node_error(name, msg))?;
        Ok(self.push(name, op, inputs.to_vec(), out))
    }

    /// Marks `id` as an output of the graph.
    pub fn output(&mut self, id: ValueId) {
        self.outputs.push(id);
    }

    fn push(&mut self, name: &str, op: Op, inputs: Vec<ValueId>, dims: Vec<usize>) -> ValueId {
        let id = ValueId(self.values.len() as u32);
        self.values.push(Value {
            name: name.to_string(),
            dims,
        });
        self.nodes.push(Node {
            name: name.to_string(),
            op,
            inputs,
            output: id,
        });
        id
    }

    /// The node producing `id`.
    pub fn producer(&self, id: ValueId) -> Option<&Node> {
        // `push` keeps node i producing value i; a graph read from a file
        // that breaks this is still searched.
        self.nodes
            .get(id.index())
            .filter(|n| n.output == id)
            .or_else(|| self.nodes.iter().find(|n| n.output == id))
    }

    /// Every parameter and buffer, in node order.
    pub fn params(&self) -> impl Iterator<Item = ParamInfo<'_>> {
        self.nodes.iter().filter_map(|n| match n.op {
            Op::Param { role } => Some(ParamInfo {
                name: &n.name,
                dims: &self.value(n.output).dims,
                role,
            }),
            _ => None,
        })
    }

    /// Checks what [`Graph::add`] guarantees, for a graph read from a file:
    /// unique node names, one producer per value, every input produced
    /// before it is read, the inputs and outputs listed, and every value's
    /// dims equal to what its op infers.
    pub fn lint(&self) -> Result<()> {
        let mut produced = vec![false; self.values.len()];
        let mut names = std::collections::HashSet::new();
        for n in &self.nodes {
            if !names.insert(n.name.as_str()) {
                return Err(node_error(&n.name, "the name is used by two nodes"));
            }
            for &i in &n.inputs {
                if !produced.get(i.index()).copied().unwrap_or(false) {
                    return Err(node_error(
                        &n.name,
                        format!("reads value {} before it is produced", i.0),
                    ));
                }
            }
            let slot = produced
                .get_mut(n.output.index())
                .ok_or_else(|| node_error(&n.name, "produces a value that does not exist"))?;
            if std::mem::replace(slot, true) {
                return Err(node_error(
                    &n.name,
                    "produces a value another node produces",
                ));
            }
            if self.value(n.output).name != n.name {
                return Err(node_error(&n.name, "its value bears another name"));
            }
            let want = &self.value(n.output).dims;
            if let Op::Input | Op::Param { .. } = n.op {
                continue;
            }
            let dims: Vec<&[usize]> = n
                .inputs
                .iter()
                .map(|&i| self.value(i).dims.as_slice())
                .collect();
            let got =
                n.op.out_dims(&dims, 1)
                    .map_err(|msg| node_error(&n.name, msg))?;
            if &got != want {
                return Err(node_error(
                    &n.name,
                    format!("its value is recorded as {want:?}, the op gives {got:?}"),
                ));
            }
        }
        if let Some(v) = produced.iter().position(|p| !p) {
            return Err(Error::Shape(format!("value {v} has no producer")));
        }
        for &i in &self.inputs {
            if !matches!(self.producer(i).map(|n| &n.op), Some(Op::Input)) {
                return Err(Error::Shape(format!(
                    "graph input {} is not an input node",
                    i.0
                )));
            }
        }
        if self.outputs.is_empty() || self.outputs.iter().any(|o| o.index() >= self.values.len()) {
            return Err(Error::Shape("the graph has no valid output".into()));
        }
        Ok(())
    }

    /// For each value, the index of the last node reading it (`usize::MAX`
    /// for the graph's outputs, 0 for a value nothing reads).
    pub fn last_uses(&self) -> Vec<usize> {
        let mut last = vec![0usize; self.values.len()];
        for (i, n) in self.nodes.iter().enumerate() {
            for &v in &n.inputs {
                last[v.index()] = i;
            }
        }
        for &o in &self.outputs {
            last[o.index()] = usize::MAX;
        }
        last
    }

    /// Multiply-accumulates of one forward pass of one sample in the
    /// convolutions, linear layers and matrix products.
    pub fn macs(&self) -> usize {
        self.nodes
            .iter()
            .map(|n| {
                let dims: Vec<&[usize]> = n
                    .inputs
                    .iter()
                    .map(|&i| self.value(i).dims.as_slice())
                    .collect();
                n.op.macs(&dims, &self.value(n.output).dims)
            })
            .sum()
    }
}

/// An error about node `node`.
pub(crate) fn node_error(node: &str, msg: impl Into<String>) -> Error {
    Error::Node {
        node: node.to_string(),
        msg: msg.into(),
    }
}
