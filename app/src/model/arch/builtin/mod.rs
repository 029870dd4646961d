//! Architectures built as graphs from a configuration: Setup's built-ins
//! (the CIFAR ResNets 18, 34 and 50, MobileNetV2, EfficientNet-B0 and a
//! ViT for small images) and the layouts that recognised state dicts are
//! built as (torchvision's MobileNetV3, EfficientNet B0–B7 and V2,
//! ConvNeXt, DenseNet, RegNet, ShuffleNetV2 and SqueezeNet at any size).
//! Parameters are named as torchvision and timm name them, so a state dict
//! Shears writes loads into those models with `strict=True`, and theirs
//! load here. One family per file; `Builder` holds the steps they share.

mod convnext;
mod densenet;
mod efficientnet;
mod mobilenet;
mod regnet;
mod resnet;
mod shufflenet;
mod squeezenet;
mod vit;

pub use convnext::{convnext, ConvnextNames, ConvnextStage};
pub use densenet::{densenet, DensenetConfig};
pub use efficientnet::{
    b_layout, efficientnet, efficientnet_b0, EfficientnetConfig, EfficientnetStage, STAGE_STRIDES,
};
pub use mobilenet::{mobilenet_v2, mobilenet_v3, MobilenetV3Size, TimmMobilenetV3};
pub use regnet::{regnet, RegnetStage};
pub use resnet::resnet_cifar;
pub use shufflenet::{shufflenet_v2, ShufflenetConfig};
pub use squeezenet::{squeezenet, SqueezenetStep};
pub use vit::{vit, vit_named, VitConfig, VitNames};

use super::{Architecture, Family, Preprocess};
use crate::error::Result;
use crate::model::graph::{Dim, Graph, Op, Role, ValueId, BATCH_NORM_PARAMS};
use crate::model::ops::{activation::Act, conv::Conv, elementwise::Binary, pool::Pool};

/// Builds a graph node by node, naming unnamed nodes by kind.
struct Builder {
    g: Graph,
    count: usize,
    /// BatchNorm's epsilon (PyTorch's default 1e-5; some torchvision
    /// families use 1e-3).
    bn_eps: f64,
    /// BatchNorm's momentum (PyTorch's default 0.1).
    bn_momentum: f64,
}

impl Builder {
    fn new(input: [usize; 3]) -> (Self, ValueId) {
        let mut g = Graph::new();
        let [c, h, w] = input;
        let x = g.input("input", vec![1, c, h, w]);
        let b = Builder {
            g,
            count: 0,
            bn_eps: 1e-5,
            bn_momentum: 0.1,
        };
        (b, x)
    }

    fn fresh(&mut self, kind: &str) -> String {
        self.count += 1;
        format!("{kind}_{}", self.count)
    }

    fn channels(&self, x: ValueId) -> usize {
        self.g.value(x).dims[1]
    }

    fn op(&mut self, kind: &str, op: Op, ins: &[ValueId]) -> Result<ValueId> {
        let name = self.fresh(kind);
        self.g.add(&name, op, ins)
    }

    /// Convolution `name` to `out` channels, a `k`x`k` kernel padded by
    /// `pad` on every side.
    #[allow(clippy::too_many_arguments)]
    fn conv_padded(
        &mut self,
        name: &str,
        x: ValueId,
        out: usize,
        k: usize,
        stride: usize,
        pad: usize,
        groups: usize,
        bias: bool,
    ) -> Result<ValueId> {
        let c = self.channels(x);
        let w = self.g.param(
            &format!("{name}.weight"),
            vec![out, c / groups.max(1), k, k],
            Role::Weight,
        );
        let mut ins = vec![x, w];
        if bias {
            ins.push(self.g.param(&format!("{name}.bias"), vec![out], Role::Bias));
        }
        let conv = Conv {
            stride: [stride; 2],
            pad: [pad; 4],
            dilation: [1, 1],
            groups,
        };
        self.g.add(name, Op::Conv(conv), &ins)
    }

    /// Convolution `name` to `out` channels, padded to keep the size at
    /// stride 1 (PyTorch's `(k - 1) / 2`).
    #[allow(clippy::too_many_arguments)]
    fn conv(
        &mut self,
        name: &str,
        x: ValueId,
        out: usize,
        k: usize,
        stride: usize,
        groups: usize,
        bias: bool,
    ) -> Result<ValueId> {
        self.conv_padded(name, x, out, k, stride, (k - 1) / 2, groups, bias)
    }

    fn bn(&mut self, name: &str, x: ValueId) -> Result<ValueId> {
        let c = self.channels(x);
        let mut ins = vec![x];
        for (part, role) in BATCH_NORM_PARAMS {
            ins.push(self.g.param(&format!("{name}.{part}"), vec![c], role));
        }
        let op = Op::BatchNorm {
            eps: self.bn_eps,
            momentum: self.bn_momentum,
        };
        self.g.add(name, op, &ins)
    }

    /// torchvision's `Conv2dNormActivation` named `p`: convolution `{p}.0`
    /// (no bias), BatchNorm `{p}.1`, then `act` where given.
    #[allow(clippy::too_many_arguments)]
    fn conv_norm(
        &mut self,
        p: &str,
        x: ValueId,
        out: usize,
        k: usize,
        stride: usize,
        groups: usize,
        act: Option<Act>,
    ) -> Result<ValueId> {
        let y = self.conv(&format!("{p}.0"), x, out, k, stride, groups, false)?;
        let y = self.bn(&format!("{p}.1"), y)?;
        match act {
            Some(a) => self.act(y, a),
            None => Ok(y),
        }
    }

    /// torchvision's `SqueezeExcitation` named `p`: the mean over the
    /// image, 1x1 convolutions `{p}.fc1` (to `squeeze`, then `act`) and
    /// `{p}.fc2` (back), `gate`, times `x`.
    fn squeeze_excite(
        &mut self,
        p: &str,
        x: ValueId,
        squeeze: usize,
        act: Act,
        gate: Act,
    ) -> Result<ValueId> {
        let c = self.channels(x);
        let m = self.op(
            "mean",
            Op::ReduceMean {
                axes: vec![2, 3],
                keep: true,
            },
            &[x],
        )?;
        let m = self.conv(&format!("{p}.fc1"), m, squeeze, 1, 1, 1, true)?;
        let m = self.act(m, act)?;
        let m = self.conv(&format!("{p}.fc2"), m, c, 1, 1, 1, true)?;
        let m = self.act(m, gate)?;
        self.mul(x, m)
    }

    fn act(&mut self, x: ValueId, a: Act) -> Result<ValueId> {
        self.op(a.name(), Op::Act(a), &[x])
    }

    fn add(&mut self, a: ValueId, b: ValueId) -> Result<ValueId> {
        self.op("add", Op::Binary(Binary::Add), &[a, b])
    }

    fn mul(&mut self, a: ValueId, b: ValueId) -> Result<ValueId> {
        self.op("mul", Op::Binary(Binary::Mul), &[a, b])
    }

    fn concat(&mut self, ins: &[ValueId]) -> Result<ValueId> {
        self.op("cat", Op::Concat { axis: 1 }, ins)
    }

    fn transpose(&mut self, x: ValueId, perm: &[usize]) -> Result<ValueId> {
        let perm = perm.to_vec();
        self.op("transpose", Op::Transpose { perm }, &[x])
    }

    fn reshape(&mut self, x: ValueId, shape: Vec<Dim>) -> Result<ValueId> {
        self.op("reshape", Op::Reshape { shape }, &[x])
    }

    fn max_pool(&mut self, x: ValueId, pool: Pool) -> Result<ValueId> {
        self.op("max_pool", Op::MaxPool(pool), &[x])
    }

    fn avg_pool(&mut self, x: ValueId, pool: Pool) -> Result<ValueId> {
        self.op("avg_pool", Op::AvgPool(pool), &[x])
    }

    /// Dropout (identity in evaluation).
    fn dropout(&mut self, x: ValueId, p: f32) -> Result<ValueId> {
        self.op("dropout", Op::Dropout { p }, &[x])
    }

    /// Stochastic depth (identity in evaluation).
    fn drop_path(&mut self, x: ValueId, p: f32) -> Result<ValueId> {
        self.op("drop_path", Op::DropPath { p }, &[x])
    }

    fn linear(&mut self, name: &str, x: ValueId, out: usize) -> Result<ValueId> {
        let d = *self.g.value(x).dims.last().expect("a value has dims");
        let w = self
            .g
            .param(&format!("{name}.weight"), vec![out, d], Role::Weight);
        let b = self.g.param(&format!("{name}.bias"), vec![out], Role::Bias);
        self.g.add(name, Op::Linear, &[x, w, b])
    }

    /// Layer normalisation `name` over the last axis.
    fn layer_norm(&mut self, name: &str, x: ValueId, eps: f64) -> Result<ValueId> {
        let dims = self.g.value(x).dims.clone();
        let d = *dims.last().expect("a value has dims");
        let gamma = self.g.param(&format!("{name}.weight"), vec![d], Role::Norm);
        let beta = self.g.param(&format!("{name}.bias"), vec![d], Role::Norm);
        let op = Op::LayerNorm {
            axis: dims.len() - 1,
            eps,
        };
        self.g.add(name, op, &[x, gamma, beta])
    }

    /// Layer normalisation `name` over the channels of `[b, c, h, w]`
    /// (torchvision's `LayerNorm2d`: to channels-last and back).
    fn layer_norm_2d(&mut self, name: &str, x: ValueId, eps: f64) -> Result<ValueId> {
        let y = self.transpose(x, &[0, 2, 3, 1])?;
        let y = self.layer_norm(name, y, eps)?;
        self.transpose(y, &[0, 3, 1, 2])
    }

    /// Global average pooling and flattening: `[b, c, h, w] -> [b, c]`.
    fn pool_flat(&mut self, x: ValueId) -> Result<ValueId> {
        let op = Op::ReduceMean {
            axes: vec![2, 3],
            keep: false,
        };
        self.op("global_avg_pool", op, &[x])
    }

    fn finish(
        mut self,
        y: ValueId,
        family: Family,
        input: [usize; 3],
        classes: usize,
    ) -> Architecture {
        self.g.output(y);
        Architecture {
            family,
            input,
            num_classes: classes,
            nodes: Vec::new(),
            graph: Some(self.g),
            preprocess: Preprocess::default(),
        }
    }
}

/// A configuration error on `what`.
fn bad<T>(what: &str, msg: String) -> Result<T> {
    Err(crate::error::Error::config(what, msg))
}

/// `v` rounded to a multiple of 8, never more than 10% below (torchvision's
/// `_make_divisible`).
pub fn divisible(v: f64) -> usize {
    let d = 8.0;
    let mut r = ((v + d / 2.0) / d).floor() * d;
    r = r.max(d);
    if r < 0.9 * v {
        r += d;
    }
    r as usize
}
