//! The closed set of operations a graph is made of, with their attributes;
//! each family's shape rule, kernels and backward live in its own file
//! under `model/ops/`, and this file only dispatches to them.

use serde::{Deserialize, Serialize};

use crate::model::ops::layout::Dim;
use crate::model::ops::{
    activation::Act, conv::Conv, elementwise::Binary, layout, matmul, norm, pool, pool::Pool,
    softmax,
};

/// What a parameter node holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The weight of a convolution, linear layer or attention projection:
    /// trainable, and what pruning removes.
    Weight,
    /// A bias: trainable, not pruned.
    Bias,
    /// A normalisation's scale or shift: trainable, not pruned.
    Norm,
    /// A learned tensor used directly (class token, position embedding,
    /// layer scale): trainable, not pruned unless asked.
    Embedding,
    /// A running statistic (BatchNorm mean and variance): updated by
    /// training, not by gradients.
    Buffer,
    /// A fixed tensor (an ONNX initializer no op trains): never updated.
    Constant,
}

impl Role {
    /// Whether gradients reach it and the optimiser updates it.
    pub fn trainable(self) -> bool {
        !matches!(self, Role::Buffer | Role::Constant)
    }
}

/// BatchNorm's parameter inputs after `x`, by the suffix PyTorch names them
/// with (`bn1.weight`, ...), and their roles.
pub const BATCH_NORM_PARAMS: [(&str, Role); 4] = [
    ("weight", Role::Norm),
    ("bias", Role::Norm),
    ("running_mean", Role::Buffer),
    ("running_var", Role::Buffer),
];

/// An operation with its attributes. Inputs are listed per variant, in
/// order; `?` marks an optional one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    /// A graph input (no inputs).
    Input,
    /// A parameter or buffer, named by its node (no inputs).
    Param {
        /// What it holds.
        role: Role,
    },
    /// 2-D convolution: `x [b, c, h, w]`, `w [out, c/groups, kh, kw]`, `bias? [out]`.
    Conv(Conv),
    /// `x W^T + bias` over the last axis: `x [..., in]`, `w [out, in]`, `bias? [out]`.
    Linear,
    /// Batched matrix product with broadcast leading axes: `a [..., m, k]`, `b [..., k, n]`.
    MatMul,
    /// Batch normalisation over axis 1: `x`, `gamma`, `beta`, `running_mean`, `running_var`.
    BatchNorm {
        /// Added to the variance.
        eps: f64,
        /// Weight of the new batch statistic in the running ones.
        momentum: f64,
    },
    /// Layer normalisation over the axes from `axis` on: `x`, `gamma`, `beta`.
    LayerNorm {
        /// First normalised axis.
        axis: usize,
        /// Added to the variance.
        eps: f64,
    },
    /// An elementwise activation: `x`.
    Act(Act),
    /// An elementwise binary op with broadcasting: `a`, `b`.
    Binary(Binary),
    /// Softmax along `axis`: `x`.
    Softmax {
        /// The axis.
        axis: usize,
    },
    /// Concatenation along `axis` (other axes equal, or 1 to broadcast): inputs.
    Concat {
        /// The axis.
        axis: usize,
    },
    /// `x[.., start..end, ..]` along `axis`: `x`.
    Slice {
        /// The axis.
        axis: usize,
        /// First index.
        start: usize,
        /// One past the last index.
        end: usize,
    },
    /// `x` padded along `axis` with `before` and `after` entries of
    /// `value` (ONNX `Pad` in constant mode, one axis per node): `x`.
    Pad {
        /// The axis.
        axis: usize,
        /// Entries added before.
        before: usize,
        /// Entries added after.
        after: usize,
        /// The value they hold.
        value: f32,
    },
    /// Axes permuted: output axis `i` is input axis `perm[i]`: `x`.
    Transpose {
        /// The permutation.
        perm: Vec<usize>,
    },
    /// The same values in another shape: `x`.
    Reshape {
        /// The target dims.
        shape: Vec<Dim>,
    },
    /// Mean over `axes`, kept as size 1 or removed: `x`.
    ReduceMean {
        /// The axes, ascending.
        axes: Vec<usize>,
        /// Whether the reduced axes stay (as 1).
        keep: bool,
    },
    /// Max pooling: `x [b, c, h, w]`.
    MaxPool(Pool),
    /// Average pooling: `x [b, c, h, w]`.
    AvgPool(Pool),
    /// PyTorch's `AdaptiveAvgPool2d`: `x [b, c, h, w] -> [b, c, oh, ow]`.
    AdaptiveAvgPool {
        /// Output height and width.
        out: [usize; 2],
    },
    /// The entries `index` along `axis` (a constant index): `x`.
    Gather {
        /// The axis.
        axis: usize,
        /// The indices taken, in order.
        index: Vec<usize>,
        /// Whether the axis stays (false: one index, the axis removed).
        keep_axis: bool,
    },
    /// Dropout: identity in evaluation; in training each value is kept
    /// with probability `1 - p` and scaled by `1 / (1 - p)`: `x`.
    Dropout {
        /// Drop probability.
        p: f32,
    },
    /// Stochastic depth (torchvision's `StochasticDepth(mode="row")`,
    /// timm's `DropPath`): in training each sample's values are dropped
    /// together with probability `p`, the rest scaled by `1 / (1 - p)`: `x`.
    DropPath {
        /// Drop probability.
        p: f32,
    },
}

impl Op {
    /// The output dims for inputs of `dims` and a batch of `batch`, or why
    /// they do not fit.
    pub fn out_dims(&self, dims: &[&[usize]], batch: usize) -> Result<Vec<usize>, String> {
        let arity = |n: std::ops::RangeInclusive<usize>| {
            if n.contains(&dims.len()) {
                Ok(())
            } else {
                Err(format!("takes {n:?} inputs, has {}", dims.len()))
            }
        };
        match self {
            Op::Input | Op::Param { .. } => Err("has no inputs to infer from".into()),
            Op::Conv(c) => arity(2..=3).and_then(|_| c.out_dims(dims)),
            Op::Linear => arity(2..=3).and_then(|_| matmul::linear_dims(dims)),
            Op::MatMul => arity(2..=2).and_then(|_| matmul::matmul_dims(dims[0], dims[1])),
            Op::BatchNorm { .. } => arity(5..=5).and_then(|_| norm::batch_norm_dims(dims)),
            Op::LayerNorm { axis, .. } => {
                arity(3..=3).and_then(|_| norm::layer_norm_dims(*axis, dims))
            }
            Op::Act(_) | Op::Dropout { .. } | Op::DropPath { .. } => {
                arity(1..=1).map(|_| dims[0].to_vec())
            }
            Op::Binary(_) => arity(2..=2).and_then(|_| layout::broadcast(dims[0], dims[1])),
            Op::Softmax { axis } => arity(1..=1).and_then(|_| softmax::dims(*axis, dims[0])),
            Op::Concat { axis } => layout::concat_dims(*axis, dims),
            Op::Slice { axis, start, end } => {
                arity(1..=1).and_then(|_| layout::slice_dims(*axis, *start, *end, dims[0]))
            }
            Op::Pad {
                axis,
                before,
                after,
                ..
            } => arity(1..=1).and_then(|_| layout::pad_dims(*axis, *before, *after, dims[0])),
            Op::Transpose { perm } => {
                arity(1..=1).and_then(|_| layout::transpose_dims(perm, dims[0]))
            }
            Op::Reshape { shape } => {
                arity(1..=1).and_then(|_| layout::reshape_dims(shape, batch, dims[0]))
            }
            Op::ReduceMean { axes, keep } => {
                arity(1..=1).and_then(|_| pool::reduce_dims(axes, *keep, dims[0]))
            }
            Op::MaxPool(p) | Op::AvgPool(p) => arity(1..=1).and_then(|_| p.out_dims(dims[0])),
            Op::AdaptiveAvgPool { out } => {
                arity(1..=1).and_then(|_| pool::adaptive_dims(*out, dims[0]))
            }
            Op::Gather {
                axis,
                index,
                keep_axis,
            } => arity(1..=1).and_then(|_| layout::gather_dims(*axis, index, *keep_axis, dims[0])),
        }
    }

    /// Multiply-accumulates of one evaluation of this node on inputs of
    /// `dims` giving `out` (0 for ops that multiply nothing out).
    pub fn macs(&self, dims: &[&[usize]], out: &[usize]) -> usize {
        let n: usize = out.iter().product();
        match self {
            // Each output takes (c / groups) * kh * kw products.
            Op::Conv(_) => n * dims[1][1..].iter().product::<usize>(),
            Op::Linear => n * dims[1][1],
            Op::MatMul => n * dims[0][dims[0].len() - 1],
            _ => 0,
        }
    }

    /// Whether this op's backward reads the values of its input `i` (the
    /// tape keeps every value's dims; its values only where a backward
    /// reads them). Must agree with what `graph::run` reads.
    pub(crate) fn backward_reads_input(&self, i: usize) -> bool {
        match self {
            Op::Conv(_) | Op::Linear | Op::MatMul | Op::LayerNorm { .. } => i < 2,
            Op::BatchNorm { .. } => matches!(i, 0 | 1 | 4),
            Op::Act(a) => i == 0 && !a.backward_reads_output(),
            Op::Binary(b) => matches!(b, Binary::Mul | Binary::Div),
            _ => false,
        }
    }

    /// Whether this op's backward reads its output's values.
    pub(crate) fn backward_reads_output(&self) -> bool {
        match self {
            Op::Act(a) => a.backward_reads_output(),
            Op::Softmax { .. } => true,
            _ => false,
        }
    }

    /// Whether the forward can write its output over its first input's
    /// values (an elementwise op whose first input has the output's dims;
    /// BatchNorm only in evaluation).
    pub(crate) fn in_place(&self, training: bool) -> bool {
        match self {
            Op::Act(_) | Op::Binary(_) | Op::Dropout { .. } | Op::DropPath { .. } => true,
            Op::BatchNorm { .. } => !training,
            _ => false,
        }
    }

    /// A short name of the op for tables (`conv`, `linear`, `relu`, ...).
    pub fn kind(&self) -> &'static str {
        match self {
            Op::Input => "input",
            Op::Param { .. } => "param",
            Op::Conv(_) => "conv",
            Op::Linear => "linear",
            Op::MatMul => "matmul",
            Op::BatchNorm { .. } => "batch_norm",
            Op::LayerNorm { .. } => "layer_norm",
            Op::Act(a) => a.name(),
            Op::Binary(b) => b.name(),
            Op::Softmax { .. } => "softmax",
            Op::Concat { .. } => "concat",
            Op::Slice { .. } => "slice",
            Op::Pad { .. } => "pad",
            Op::Transpose { .. } => "transpose",
            Op::Reshape { .. } => "reshape",
            Op::ReduceMean { .. } => "reduce_mean",
            Op::MaxPool(_) => "max_pool",
            Op::AvgPool(_) => "avg_pool",
            Op::AdaptiveAvgPool { .. } => "adaptive_avg_pool",
            Op::Gather { .. } => "gather",
            Op::Dropout { .. } => "dropout",
            Op::DropPath { .. } => "drop_path",
        }
    }
}
