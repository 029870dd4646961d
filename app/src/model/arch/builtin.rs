//! The built-in architectures that are graphs: the CIFAR ResNets (18, 34,
//! 50: a 3x3 stride-1 stem and no max pool), MobileNetV2, EfficientNet-B0
//! and a ViT for small images. Parameters are named as torchvision (the
//! ResNets, MobileNetV2, EfficientNet) and timm (the ViT) name them, so a
//! state dict Shears writes loads into those models with `strict=True`,
//! and theirs load here.

use super::{Architecture, Family, Preprocess};
use crate::error::Result;
use crate::model::graph::{Dim, Graph, Op, Role, ValueId, BATCH_NORM_PARAMS};
use crate::model::ops::{activation::Act, conv::Conv, elementwise::Binary};

/// BatchNorm's epsilon and momentum (PyTorch's defaults).
const BN_EPS: f64 = 1e-5;
const BN_MOMENTUM: f64 = 0.1;

/// Builds a graph node by node, naming unnamed nodes by kind.
struct Builder {
    g: Graph,
    count: usize,
}

impl Builder {
    fn new(input: [usize; 3]) -> (Self, ValueId) {
        let mut g = Graph::new();
        let [c, h, w] = input;
        let x = g.input("input", vec![1, c, h, w]);
        (Builder { g, count: 0 }, x)
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

    /// Convolution `name` to `out` channels.
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
        let c = self.channels(x);
        let w = self.g.param(
            &format!("{name}.weight"),
            vec![out, c / groups, k, k],
            Role::Weight,
        );
        let mut ins = vec![x, w];
        if bias {
            ins.push(self.g.param(&format!("{name}.bias"), vec![out], Role::Bias));
        }
        let conv = Conv {
            stride: [stride; 2],
            pad: [(k - 1) / 2; 4],
            dilation: [1, 1],
            groups,
        };
        self.g.add(name, Op::Conv(conv), &ins)
    }

    fn bn(&mut self, name: &str, x: ValueId) -> Result<ValueId> {
        let c = self.channels(x);
        let mut ins = vec![x];
        for (part, role) in BATCH_NORM_PARAMS {
            ins.push(self.g.param(&format!("{name}.{part}"), vec![c], role));
        }
        let op = Op::BatchNorm {
            eps: BN_EPS,
            momentum: BN_MOMENTUM,
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

    fn act(&mut self, x: ValueId, a: Act) -> Result<ValueId> {
        self.op(a.name(), Op::Act(a), &[x])
    }

    fn add(&mut self, a: ValueId, b: ValueId) -> Result<ValueId> {
        self.op("add", Op::Binary(Binary::Add), &[a, b])
    }

    fn linear(&mut self, name: &str, x: ValueId, out: usize) -> Result<ValueId> {
        let d = *self.g.value(x).dims.last().expect("a value has dims");
        let w = self
            .g
            .param(&format!("{name}.weight"), vec![out, d], Role::Weight);
        let b = self.g.param(&format!("{name}.bias"), vec![out], Role::Bias);
        self.g.add(name, Op::Linear, &[x, w, b])
    }

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

/// torchvision's ResNet with the CIFAR stem (a 3x3 stride-1 `conv1`, no
/// max pool): `depth` 18 or 34 (basic blocks) or 50 (bottlenecks), stage
/// widths `width`, 2, 4 and 8 times `width` (64 in torchvision).
pub fn resnet_cifar(
    input: [usize; 3],
    depth: usize,
    width: usize,
    classes: usize,
) -> Result<Architecture> {
    let (blocks, bottleneck): ([usize; 4], bool) = match depth {
        18 => ([2, 2, 2, 2], false),
        34 => ([3, 4, 6, 3], false),
        50 => ([3, 4, 6, 3], true),
        d => {
            return Err(crate::error::Error::config(
                "model.depth",
                format!("a CIFAR ResNet of depth {d} (use 18, 34 or 50)"),
            ))
        }
    };
    let expansion = if bottleneck { 4 } else { 1 };
    let (mut b, x) = Builder::new(input);
    let mut x = b.conv("conv1", x, width, 3, 1, 1, false)?;
    x = b.bn("bn1", x)?;
    x = b.act(x, Act::Relu)?;
    for (stage, &n) in blocks.iter().enumerate() {
        let planes = width << stage;
        for i in 0..n {
            let p = format!("layer{}.{i}", stage + 1);
            let stride = if stage > 0 && i == 0 { 2 } else { 1 };
            let c_in = b.channels(x);
            let out = planes * expansion;
            let mut y = if bottleneck {
                let y = b.conv(&format!("{p}.conv1"), x, planes, 1, 1, 1, false)?;
                let y = b.bn(&format!("{p}.bn1"), y)?;
                let y = b.act(y, Act::Relu)?;
                let y = b.conv(&format!("{p}.conv2"), y, planes, 3, stride, 1, false)?;
                let y = b.bn(&format!("{p}.bn2"), y)?;
                let y = b.act(y, Act::Relu)?;
                let y = b.conv(&format!("{p}.conv3"), y, out, 1, 1, 1, false)?;
                b.bn(&format!("{p}.bn3"), y)?
            } else {
                let y = b.conv(&format!("{p}.conv1"), x, planes, 3, stride, 1, false)?;
                let y = b.bn(&format!("{p}.bn1"), y)?;
                let y = b.act(y, Act::Relu)?;
                let y = b.conv(&format!("{p}.conv2"), y, planes, 3, 1, 1, false)?;
                b.bn(&format!("{p}.bn2"), y)?
            };
            let shortcut = if stride != 1 || c_in != out {
                let s = b.conv(&format!("{p}.downsample.0"), x, out, 1, stride, 1, false)?;
                b.bn(&format!("{p}.downsample.1"), s)?
            } else {
                x
            };
            y = b.add(y, shortcut)?;
            x = b.act(y, Act::Relu)?;
        }
    }
    let x = b.pool_flat(x)?;
    let y = b.linear("fc", x, classes)?;
    Ok(b.finish(y, Family::ResnetCifar, input, classes))
}

/// `v` rounded to a multiple of 8, never more than 10% below (torchvision's
/// `_make_divisible`).
fn divisible(v: f64) -> usize {
    let d = 8.0;
    let mut r = ((v + d / 2.0) / d).floor() * d;
    r = r.max(d);
    if r < 0.9 * v {
        r += d;
    }
    r as usize
}

/// torchvision's MobileNetV2 (`width_mult` = `width` / 100): inverted
/// residual blocks of a 1x1 expansion, a 3x3 depthwise convolution and a
/// 1x1 projection, ReLU6, the residual where shapes allow.
pub fn mobilenet_v2(input: [usize; 3], width: usize, classes: usize) -> Result<Architecture> {
    let mult = width as f64 / 100.0;
    // (expansion, channels, repeats, stride), torchvision's table.
    let table = [
        (1, 16, 1, 1),
        (6, 24, 2, 2),
        (6, 32, 3, 2),
        (6, 64, 4, 2),
        (6, 96, 3, 1),
        (6, 160, 3, 2),
        (6, 320, 1, 1),
    ];
    let relu6 = Act::Clip { min: 0.0, max: 6.0 };
    let (mut b, x) = Builder::new(input);
    let stem = divisible(32.0 * mult);
    let mut x = b.conv_norm("features.0", x, stem, 3, 2, 1, Some(relu6))?;
    let mut index = 1;
    for (t, c, n, s) in table {
        let out = divisible(c as f64 * mult);
        for i in 0..n {
            let stride = if i == 0 { s } else { 1 };
            let p = format!("features.{index}.conv");
            let c_in = b.channels(x);
            let hidden = (c_in as f64 * t as f64).round() as usize;
            let mut y = x;
            let mut k = 0;
            if t != 1 {
                y = b.conv_norm(&format!("{p}.0"), y, hidden, 1, 1, 1, Some(relu6))?;
                k = 1;
            }
            y = b.conv_norm(
                &format!("{p}.{k}"),
                y,
                hidden,
                3,
                stride,
                hidden,
                Some(relu6),
            )?;
            y = b.conv(&format!("{p}.{}", k + 1), y, out, 1, 1, 1, false)?;
            y = b.bn(&format!("{p}.{}", k + 2), y)?;
            x = if stride == 1 && c_in == out {
                b.add(x, y)?
            } else {
                y
            };
            index += 1;
        }
    }
    let last = divisible(1280.0 * mult.max(1.0));
    x = b.conv_norm(&format!("features.{index}"), x, last, 1, 1, 1, Some(relu6))?;
    let x = b.pool_flat(x)?;
    let x = b.op("dropout", Op::Dropout { p: 0.2 }, &[x])?;
    let y = b.linear("classifier.1", x, classes)?;
    Ok(b.finish(y, Family::MobilenetV2, input, classes))
}

/// torchvision's EfficientNet-B0 (`width_mult` = `width` / 100,
/// `depth_mult` = `depth` / 100): MBConv blocks with squeeze-excitation (SiLU, a sigmoid
/// gate), stochastic depth rising to 0.2, dropout 0.2 before the head.
pub fn efficientnet_b0(
    input: [usize; 3],
    width: usize,
    depth: usize,
    classes: usize,
) -> Result<Architecture> {
    let mult = width as f64 / 100.0;
    let layers = |n: usize| (n as f64 * depth as f64 / 100.0).ceil() as usize;
    // (expansion, kernel, stride, in, out, layers), torchvision's B0 table.
    let table = [
        (1, 3, 1, 32, 16, 1),
        (6, 3, 2, 16, 24, 2),
        (6, 5, 2, 24, 40, 2),
        (6, 3, 2, 40, 80, 3),
        (6, 5, 1, 80, 112, 3),
        (6, 5, 2, 112, 192, 4),
        (6, 3, 1, 192, 320, 1),
    ];
    let total: usize = table.iter().map(|r| layers(r.5)).sum();
    let (mut b, x) = Builder::new(input);
    let stem = divisible(32.0 * mult);
    let mut x = b.conv_norm("features.0", x, stem, 3, 2, 1, Some(Act::Silu))?;
    let mut block = 0usize;
    for (stage, &(e, k, s, _, c, n)) in table.iter().enumerate() {
        let out = divisible(c as f64 * mult);
        for i in 0..layers(n) {
            let p = format!("features.{}.{i}.block", stage + 1);
            let stride = if i == 0 { s } else { 1 };
            let c_in = b.channels(x);
            let hidden = divisible(c_in as f64 * e as f64);
            let mut y = x;
            let mut j = 0;
            if e != 1 {
                y = b.conv_norm(&format!("{p}.0"), y, hidden, 1, 1, 1, Some(Act::Silu))?;
                j = 1;
            }
            y = b.conv_norm(
                &format!("{p}.{j}"),
                y,
                hidden,
                k,
                stride,
                hidden,
                Some(Act::Silu),
            )?;
            // Squeeze-excitation: mean, 1x1 down (SiLU), 1x1 up, sigmoid gate.
            let squeeze = (c_in / 4).max(1);
            let se = format!("{p}.{}", j + 1);
            let m = b.op(
                "mean",
                Op::ReduceMean {
                    axes: vec![2, 3],
                    keep: true,
                },
                &[y],
            )?;
            let m = b.conv(&format!("{se}.fc1"), m, squeeze, 1, 1, 1, true)?;
            let m = b.act(m, Act::Silu)?;
            let m = b.conv(&format!("{se}.fc2"), m, hidden, 1, 1, 1, true)?;
            let m = b.act(m, Act::Sigmoid)?;
            y = b.op("mul", Op::Binary(Binary::Mul), &[y, m])?;
            y = b.conv_norm(&format!("{p}.{}", j + 2), y, out, 1, 1, 1, None)?;
            x = if stride == 1 && c_in == out {
                let p = 0.2 * block as f32 / total as f32;
                let y = b.op("drop_path", Op::DropPath { p }, &[y])?;
                b.add(y, x)?
            } else {
                y
            };
            block += 1;
        }
    }
    let last = 4 * divisible(320.0 * mult);
    let head = table.len() + 1;
    x = b.conv_norm(
        &format!("features.{head}"),
        x,
        last,
        1,
        1,
        1,
        Some(Act::Silu),
    )?;
    let x = b.pool_flat(x)?;
    let x = b.op("dropout", Op::Dropout { p: 0.2 }, &[x])?;
    let y = b.linear("classifier.1", x, classes)?;
    Ok(b.finish(y, Family::EfficientnetB0, input, classes))
}

/// Whose parameter names a ViT takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VitNames {
    /// timm's: `patch_embed.proj`, `cls_token`, `pos_embed`,
    /// `blocks.N.{norm1, attn.qkv, attn.proj, norm2, mlp.fc1, mlp.fc2}`,
    /// `norm`, `head`.
    Timm,
    /// torchvision's: `conv_proj`, `class_token`, `encoder.pos_embedding`,
    /// `encoder.layers.encoder_layer_N.{ln_1, self_attention.in_proj_weight,
    /// self_attention.out_proj, ln_2, mlp.0, mlp.3}`, `encoder.ln`,
    /// `heads.head`.
    Torchvision,
}

impl VitNames {
    /// The name of part `what` (timm's word for it) of block `i`.
    fn block(self, i: usize, what: &str) -> String {
        match self {
            VitNames::Timm => format!("blocks.{i}.{what}"),
            VitNames::Torchvision => {
                let part = match what {
                    "norm1" => "ln_1",
                    "attn.qkv" => "self_attention.in_proj",
                    "attn.proj" => "self_attention.out_proj",
                    "norm2" => "ln_2",
                    "mlp.fc1" => "mlp.0",
                    _ => "mlp.3",
                };
                format!("encoder.layers.encoder_layer_{i}.{part}")
            }
        }
    }

    /// The name of a part outside the blocks (timm's word for it).
    fn top(self, what: &'static str) -> &'static str {
        match (self, what) {
            (VitNames::Timm, w) => w,
            (VitNames::Torchvision, "patch_embed.proj") => "conv_proj",
            (VitNames::Torchvision, "cls_token") => "class_token",
            (VitNames::Torchvision, "pos_embed") => "encoder.pos_embedding",
            (VitNames::Torchvision, "norm") => "encoder.ln",
            (VitNames::Torchvision, _) => "heads.head",
        }
    }
}

/// A Vision Transformer (pre-norm blocks, GELU, the class token's output
/// classified), named as `names` says; an MLP of `mlp` hidden units.
#[allow(clippy::too_many_arguments)]
pub fn vit_named(
    input: [usize; 3],
    patch: usize,
    dim: usize,
    depth: usize,
    heads: usize,
    mlp: usize,
    classes: usize,
    names: VitNames,
) -> Result<Architecture> {
    let bad = |msg: String| Err(crate::error::Error::config("model", msg));
    let [_, h, w] = input;
    if patch == 0 || h % patch != 0 || w % patch != 0 {
        return bad(format!("patch {patch} does not tile a {h}x{w} input"));
    }
    if heads == 0 || !dim.is_multiple_of(heads) {
        return bad(format!("{heads} heads do not divide width {dim}"));
    }
    let tokens = (h / patch) * (w / patch);
    let hd = dim / heads;
    let (mut b, x) = Builder::new(input);
    let x = b.conv_patch(names.top("patch_embed.proj"), x, dim, patch)?;
    // [b, dim, gh, gw] -> [b, tokens, dim]
    let x = b.op(
        "flatten",
        Op::Reshape {
            shape: vec![Dim::Batch(1), Dim::Fixed(dim), Dim::Fixed(tokens)],
        },
        &[x],
    )?;
    let x = b.op(
        "transpose",
        Op::Transpose {
            perm: vec![0, 2, 1],
        },
        &[x],
    )?;
    let cls =
        b.g.param(names.top("cls_token"), vec![1, 1, dim], Role::Embedding);
    let x = b.op("cat", Op::Concat { axis: 1 }, &[cls, x])?;
    let pos = b.g.param(
        names.top("pos_embed"),
        vec![1, tokens + 1, dim],
        Role::Embedding,
    );
    let mut x = b.add(x, pos)?;
    let n = tokens + 1;
    let scale = Act::Scale {
        by: 1.0 / (hd as f32).sqrt(),
    };
    for i in 0..depth {
        let y = b.layer_norm(&names.block(i, "norm1"), x, 1e-6)?;
        let qkv_name = names.block(i, "attn.qkv");
        let qkv = b.linear(&qkv_name, y, 3 * dim)?;
        if names == VitNames::Torchvision {
            // torch's MultiheadAttention: `in_proj_weight`, `in_proj_bias`.
            for part in ["weight", "bias"] {
                let alias = format!("{}_{part}", qkv_name);
                b.g.aliases.insert(format!("{qkv_name}.{part}"), alias);
            }
        }
        let qkv = b.op(
            "reshape",
            Op::Reshape {
                shape: vec![
                    Dim::Batch(1),
                    Dim::Fixed(n),
                    Dim::Fixed(3),
                    Dim::Fixed(heads),
                    Dim::Fixed(hd),
                ],
            },
            &[qkv],
        )?;
        // [3, b, heads, n, hd]
        let qkv = b.op(
            "permute",
            Op::Transpose {
                perm: vec![2, 0, 3, 1, 4],
            },
            &[qkv],
        )?;
        let part = |b: &mut Builder, k: usize| {
            b.op(
                "take",
                Op::Gather {
                    axis: 0,
                    index: vec![k],
                    keep_axis: false,
                },
                &[qkv],
            )
        };
        let (q, k, v) = (part(&mut b, 0)?, part(&mut b, 1)?, part(&mut b, 2)?);
        let q = b.act(q, scale)?;
        let kt = b.op(
            "transpose",
            Op::Transpose {
                perm: vec![0, 1, 3, 2],
            },
            &[k],
        )?;
        let att = b.op("matmul", Op::MatMul, &[q, kt])?;
        let att = b.op("softmax", Op::Softmax { axis: 3 }, &[att])?;
        let o = b.op("matmul", Op::MatMul, &[att, v])?;
        let o = b.op(
            "transpose",
            Op::Transpose {
                perm: vec![0, 2, 1, 3],
            },
            &[o],
        )?;
        let o = b.op(
            "reshape",
            Op::Reshape {
                shape: vec![Dim::Batch(1), Dim::Fixed(n), Dim::Fixed(dim)],
            },
            &[o],
        )?;
        let o = b.linear(&names.block(i, "attn.proj"), o, dim)?;
        x = b.add(x, o)?;
        let y = b.layer_norm(&names.block(i, "norm2"), x, 1e-6)?;
        let y = b.linear(&names.block(i, "mlp.fc1"), y, mlp)?;
        let y = b.act(y, Act::Gelu { tanh: false })?;
        let y = b.linear(&names.block(i, "mlp.fc2"), y, dim)?;
        x = b.add(x, y)?;
    }
    let x = b.layer_norm(names.top("norm"), x, 1e-6)?;
    let x = b.op(
        "class_token",
        Op::Gather {
            axis: 1,
            index: vec![0],
            keep_axis: false,
        },
        &[x],
    )?;
    let y = b.linear(names.top("head"), x, classes)?;
    Ok(b.finish(y, Family::Vit, input, classes))
}

/// timm's Vision Transformer (an MLP 4 times the width).
pub fn vit(
    input: [usize; 3],
    patch: usize,
    dim: usize,
    depth: usize,
    heads: usize,
    classes: usize,
) -> Result<Architecture> {
    vit_named(
        input,
        patch,
        dim,
        depth,
        heads,
        4 * dim,
        classes,
        VitNames::Timm,
    )
}

impl Builder {
    /// The patch embedding `name`: a `patch`x`patch` convolution of stride
    /// `patch`.
    fn conv_patch(&mut self, name: &str, x: ValueId, dim: usize, patch: usize) -> Result<ValueId> {
        let c = self.channels(x);
        let w = self.g.param(
            &format!("{name}.weight"),
            vec![dim, c, patch, patch],
            Role::Weight,
        );
        let bias = self.g.param(&format!("{name}.bias"), vec![dim], Role::Bias);
        let conv = Conv {
            stride: [patch; 2],
            pad: [0; 4],
            dilation: [1, 1],
            groups: 1,
        };
        self.g.add(name, Op::Conv(conv), &[x, w, bias])
    }
}
