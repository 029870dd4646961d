//! Architectures as plain data, saved as JSON in a checkpoint's metadata,
//! counted (parameters, MACs) and pruned. An architecture is either a
//! [`Graph`] of operations (imported models and the newer built-in
//! families) or a list of layers with nested residual blocks (the first
//! four built-in families and every checkpoint of earlier versions), which
//! [`compile`] turns into a graph. Both count, check and list their layers
//! the same way.

pub mod builtin;
pub mod compile;

use serde::{Deserialize, Serialize};

pub use crate::data::{NormChoice, Preprocess};
use crate::error::{Error, Result};
use crate::model::graph::{Graph, Op, Role, BATCH_NORM_PARAMS};

/// One node of an architecture. Sequences of nodes run in order; a
/// [`Node::Residual`] adds the output of its `body` to that of its `shortcut`
/// (identity when empty).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Node {
    /// 2-D convolution, weight `[out_c, in_c, k, k]`.
    Conv2d {
        /// Layer name; parameters are `{name}.weight` and `{name}.bias`.
        name: String,
        /// Input channels.
        in_c: usize,
        /// Output channels.
        out_c: usize,
        /// Square kernel size.
        k: usize,
        /// Stride.
        stride: usize,
        /// Zero padding on each side.
        pad: usize,
        /// Whether the layer has a bias.
        bias: bool,
    },
    /// Batch normalisation over channels; parameters `{name}.weight`,
    /// `{name}.bias`, buffers `{name}.running_mean`, `{name}.running_var`.
    BatchNorm {
        /// Layer name.
        name: String,
        /// Channels.
        c: usize,
    },
    /// Rectified linear unit.
    Relu,
    /// Max pooling with a square window (PyTorch's `MaxPool2d` without
    /// `ceil_mode`: padding never wins, rows that do not fill a window are
    /// dropped).
    MaxPool {
        /// Window size.
        k: usize,
        /// Stride; absent means equal to the window.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stride: Option<usize>,
        /// Padding on each side.
        #[serde(default, skip_serializing_if = "is_zero")]
        pad: usize,
    },
    /// Average pooling with a square window (PyTorch's `AvgPool2d` without
    /// `ceil_mode`; ONNX's `AveragePool`).
    AvgPool {
        /// Window size.
        k: usize,
        /// Stride.
        stride: usize,
        /// Padding on each side.
        pad: usize,
        /// Whether padding counts in the divisor (PyTorch's default, true;
        /// ONNX's default, false).
        count_pad: bool,
    },
    /// Mean over the spatial dimensions: `[b, c, h, w] -> [b, c]`.
    GlobalAvgPool,
    /// PyTorch's `AdaptiveAvgPool2d((h, w))`: output cell `(i, j)` is the
    /// mean of input rows `floor(i*H/h)..ceil((i+1)*H/h)` and likewise columns.
    AdaptiveAvgPool {
        /// Output height.
        h: usize,
        /// Output width.
        w: usize,
    },
    /// Dropout: in training each activation is zeroed with probability `p`
    /// and the rest scaled by `1/(1-p)`; identity in evaluation.
    Dropout {
        /// Probability of zeroing, in `[0, 1)`.
        p: f32,
    },
    /// `[b, c, h, w] -> [b, c*h*w]`.
    Flatten,
    /// Fully connected layer, weight `[out_f, in_f]`, bias `[out_f]`.
    Linear {
        /// Layer name.
        name: String,
        /// Input features.
        in_f: usize,
        /// Output features.
        out_f: usize,
        /// Whether the layer has a bias (absent in older checkpoints: yes).
        #[serde(default = "yes", skip_serializing_if = "is_true")]
        bias: bool,
    },
    /// `body(x) + shortcut(x)`, then nothing else (add a `Relu` after it).
    Residual {
        /// Main branch.
        body: Vec<Node>,
        /// Projection branch; empty means identity.
        shortcut: Vec<Node>,
    },
}

fn yes() -> bool {
    true
}
fn is_true(b: &bool) -> bool {
    *b
}
fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl Node {
    /// A max pool of window `k`, stride `stride` and padding `pad` (stride
    /// equal to the window is stored as absent).
    pub fn max_pool(k: usize, stride: usize, pad: usize) -> Node {
        Node::MaxPool {
            k,
            stride: (stride != k).then_some(stride),
            pad,
        }
    }
}

pub use crate::model::ops::window_out;

/// The model families Shears builds or opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Family {
    /// Multi-layer perceptron.
    Mlp,
    /// LeNet-5 (ReLU, max pooling).
    Lenet5,
    /// VGG-style CNN (3x3 convs with BatchNorm, max pooling, one linear head).
    Vgg,
    /// ResNet-20 for 32x32 inputs (He et al. 2016), projection shortcuts.
    Resnet20,
    /// torchvision's ResNet (18/34/50/101 or other depths and widths),
    /// opened from a PyTorch state dict.
    Resnet,
    /// torchvision's VGG (with or without BatchNorm), opened from a PyTorch
    /// state dict.
    TorchVgg,
    /// An `nn.Sequential` opened from a PyTorch state dict and a layer spec.
    Sequential,
    /// A graph imported from ONNX.
    Onnx,
    /// torchvision's ResNet with the CIFAR stem (built in: 18, 34, 50).
    ResnetCifar,
    /// torchvision's MobileNetV2 (built in).
    MobilenetV2,
    /// torchvision's EfficientNet-B0 (built in).
    EfficientnetB0,
    /// A Vision Transformer as timm builds it (built in).
    Vit,
    /// torchvision's MobileNetV3 (small or large), opened from a state dict.
    MobilenetV3,
    /// torchvision's EfficientNetV2 (fused MBConv stages first), opened
    /// from a state dict.
    EfficientnetV2,
    /// torchvision's ConvNeXt, opened from a state dict.
    Convnext,
    /// torchvision's DenseNet, opened from a state dict.
    Densenet,
    /// torchvision's RegNetX, opened from a state dict.
    RegnetX,
    /// torchvision's RegNetY (squeeze-excitation), opened from a state dict.
    RegnetY,
    /// torchvision's ShuffleNetV2, opened from a state dict.
    ShufflenetV2,
    /// torchvision's SqueezeNet, opened from a state dict.
    Squeezenet,
}

impl Family {
    /// The family's name as Shears prints it (`lenet5`, `resnet`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Family::Mlp => "mlp",
            Family::Lenet5 => "lenet5",
            Family::Vgg => "vgg",
            Family::Resnet20 => "resnet20",
            Family::Resnet => "resnet",
            Family::TorchVgg => "torchvision-vgg",
            Family::Sequential => "sequential",
            Family::Onnx => "onnx",
            Family::ResnetCifar => "resnet-cifar",
            Family::MobilenetV2 => "mobilenetv2",
            Family::EfficientnetB0 => "efficientnet-b0",
            Family::Vit => "vit",
            Family::MobilenetV3 => "mobilenetv3",
            Family::EfficientnetV2 => "efficientnet-v2",
            Family::Convnext => "convnext",
            Family::Densenet => "densenet",
            Family::RegnetX => "regnet-x",
            Family::RegnetY => "regnet-y",
            Family::ShufflenetV2 => "shufflenetv2",
            Family::Squeezenet => "squeezenet",
        }
    }
}

impl std::fmt::Display for Family {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A complete architecture: input shape, classes and the node graph.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Architecture {
    /// Which family it was built as (informative).
    pub family: Family,
    /// Input shape `[channels, height, width]`.
    pub input: [usize; 3],
    /// Number of output classes.
    pub num_classes: usize,
    /// The layers, in order (empty for a graph architecture).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<Node>,
    /// The architecture as a graph of operations, where it is not a list
    /// of layers (absent in checkpoints of earlier versions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub graph: Option<Graph>,
    /// What inputs go through before the first layer (absent in older
    /// checkpoints: per-channel statistics fitted on the training data).
    #[serde(default, skip_serializing_if = "Preprocess::is_default")]
    pub preprocess: Preprocess,
}

/// Kind of a layer that holds prunable weights.
pub use shears_plugin_api::LayerKind;

/// A layer with a prunable weight, as found by [`Architecture::layers`].
#[derive(Debug, Clone, PartialEq)]
pub struct LayerInfo {
    /// Layer name.
    pub name: String,
    /// Linear or convolution.
    pub kind: LayerKind,
    /// Weight shape.
    pub weight_shape: Vec<usize>,
    /// Whether the layer has a bias.
    pub bias: bool,
    /// Output spatial size (1x1 for linear).
    pub out_hw: (usize, usize),
    /// Multiply-accumulates of one forward pass for one sample.
    pub macs: usize,
}

impl LayerInfo {
    /// Number of weight entries.
    pub fn weight_len(&self) -> usize {
        self.weight_shape.iter().product()
    }
}

/// Hyper-parameters of the model to build (the `[model]` table of a config).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(tag = "arch", rename_all = "kebab-case", deny_unknown_fields)]
pub enum ModelSpec {
    /// MLP with the given hidden widths.
    Mlp {
        /// Hidden layer widths.
        #[serde(default = "default_mlp_hidden")]
        hidden: Vec<usize>,
    },
    /// LeNet-5.
    #[default]
    Lenet5,
    /// VGG-style CNN; `channels` lists conv widths, 0 = max pool.
    Vgg {
        /// Conv widths and pools (0).
        #[serde(default = "default_vgg_channels")]
        channels: Vec<usize>,
    },
    /// ResNet-20 with base width `width` (16 in the paper).
    Resnet20 {
        /// Channels of the first stage.
        #[serde(default = "default_resnet_width")]
        width: usize,
    },
    /// ResNet-56: ResNet-20's design with nine blocks per stage.
    Resnet56 {
        /// Channels of the first stage.
        #[serde(default = "default_resnet_width")]
        width: usize,
    },
    /// torchvision's ResNet-18/34/50 with the CIFAR stem (3x3, stride 1,
    /// no max pool).
    Resnet {
        /// 18, 34 or 50.
        #[serde(default = "default_resnet_depth")]
        depth: usize,
        /// Channels of the first stage (64 in torchvision).
        #[serde(default = "default_resnet_cifar_width")]
        width: usize,
    },
    /// torchvision's MobileNetV2.
    Mobilenetv2 {
        /// Width multiplier in percent (100 = 1.0).
        #[serde(default = "default_percent")]
        width: usize,
    },
    /// torchvision's EfficientNet-B0.
    EfficientnetB0 {
        /// Width multiplier in percent.
        #[serde(default = "default_percent")]
        width: usize,
        /// Depth multiplier in percent.
        #[serde(default = "default_percent")]
        depth: usize,
    },
    /// A Vision Transformer for small images (timm's layout).
    Vit {
        /// Patch size.
        #[serde(default = "default_vit_patch")]
        patch: usize,
        /// Embedding width.
        #[serde(default = "default_vit_dim")]
        dim: usize,
        /// Number of blocks.
        #[serde(default = "default_vit_depth")]
        depth: usize,
        /// Attention heads.
        #[serde(default = "default_vit_heads")]
        heads: usize,
    },
}

fn default_resnet_depth() -> usize {
    18
}
fn default_resnet_cifar_width() -> usize {
    64
}
fn default_percent() -> usize {
    100
}
fn default_vit_patch() -> usize {
    4
}
fn default_vit_dim() -> usize {
    192
}
fn default_vit_depth() -> usize {
    6
}
fn default_vit_heads() -> usize {
    3
}

fn default_mlp_hidden() -> Vec<usize> {
    vec![300, 100]
}
fn default_vgg_channels() -> Vec<usize> {
    vec![32, 32, 0, 64, 64, 0, 128, 128, 0]
}
fn default_resnet_width() -> usize {
    16
}

impl ModelSpec {
    /// Checks the widths (1 to 4096 channels or units; a VGG's 0 is a pool
    /// and it needs one conv); errors name `model.<key>`.
    pub fn check(&self) -> crate::error::Result<()> {
        let bad =
            |key: &str, msg: String| Err(crate::error::Error::config(format!("model.{key}"), msg));
        let fits = |w: usize| (1..=4096).contains(&w);
        match self {
            ModelSpec::Mlp { hidden } => {
                if let Some(w) = hidden.iter().find(|w| !fits(**w)) {
                    return bad("hidden", format!("width {w} is outside 1..=4096"));
                }
            }
            ModelSpec::Vgg { channels } => {
                if let Some(w) = channels.iter().find(|w| **w != 0 && !fits(**w)) {
                    return bad("channels", format!("width {w} is outside 1..=4096"));
                }
                if channels.iter().all(|w| *w == 0) {
                    return bad("channels", "needs at least one conv width".into());
                }
            }
            ModelSpec::Resnet20 { width }
            | ModelSpec::Resnet56 { width }
            | ModelSpec::Resnet { width, .. }
            | ModelSpec::Vit { dim: width, .. }
                if !fits(*width) =>
            {
                return bad("width", format!("{width} is outside 1..=4096"));
            }
            ModelSpec::Resnet { depth, .. } if ![18, 34, 50].contains(depth) => {
                return bad("depth", format!("{depth}: use 18, 34 or 50"));
            }
            ModelSpec::Mobilenetv2 { width } | ModelSpec::EfficientnetB0 { width, .. }
                if !(5..=400).contains(width) =>
            {
                return bad("width", format!("{width}% is outside 5..=400"));
            }
            ModelSpec::EfficientnetB0 { depth, .. } if !(5..=400).contains(depth) => {
                return bad("depth", format!("{depth}% is outside 5..=400"));
            }
            ModelSpec::Vit {
                patch,
                depth,
                heads,
                ..
            } if *patch == 0 || *heads == 0 || !(1..=64).contains(depth) => {
                return bad(
                    "vit",
                    "patch and heads must be positive, depth 1..=64".into(),
                );
            }
            _ => {}
        }
        Ok(())
    }

    /// The names of the built-in architectures, as configs and the command
    /// line write them.
    pub const NAMES: [&'static str; 10] = [
        "mlp",
        "lenet5",
        "vgg",
        "resnet20",
        "resnet56",
        "resnet18",
        "resnet34",
        "resnet50",
        "mobilenetv2",
        "efficientnet-b0",
    ];

    /// [`ModelSpec::NAMES`] and the ViT: every built-in architecture.
    pub fn all_names() -> impl Iterator<Item = &'static str> {
        Self::NAMES.into_iter().chain(["vit"])
    }

    /// This spec's architecture name (one of [`ModelSpec::NAMES`]).
    pub fn name(&self) -> &'static str {
        match self {
            ModelSpec::Mlp { .. } => Self::NAMES[0],
            ModelSpec::Lenet5 => Self::NAMES[1],
            ModelSpec::Vgg { .. } => Self::NAMES[2],
            ModelSpec::Resnet20 { .. } => Self::NAMES[3],
            ModelSpec::Resnet56 { .. } => Self::NAMES[4],
            ModelSpec::Resnet { depth: 34, .. } => Self::NAMES[6],
            ModelSpec::Resnet { depth: 50, .. } => Self::NAMES[7],
            ModelSpec::Resnet { .. } => Self::NAMES[5],
            ModelSpec::Mobilenetv2 { .. } => Self::NAMES[8],
            ModelSpec::EfficientnetB0 { .. } => Self::NAMES[9],
            ModelSpec::Vit { .. } => "vit",
        }
    }

    /// The default spec of the architecture called `name` (one of
    /// [`ModelSpec::NAMES`], or `lenet`, `lenet-5`, `resnet-20`).
    pub fn from_name(name: &str) -> Result<Self> {
        Ok(match name {
            "mlp" => ModelSpec::Mlp {
                hidden: default_mlp_hidden(),
            },
            "lenet5" | "lenet" | "lenet-5" => ModelSpec::Lenet5,
            "vgg" => ModelSpec::Vgg {
                channels: default_vgg_channels(),
            },
            "resnet20" | "resnet-20" => ModelSpec::Resnet20 {
                width: default_resnet_width(),
            },
            "resnet56" | "resnet-56" => ModelSpec::Resnet56 {
                width: default_resnet_width(),
            },
            "resnet18" | "resnet34" | "resnet50" | "resnet-18" | "resnet-34" | "resnet-50" => {
                ModelSpec::Resnet {
                    depth: name[name.len() - 2..].parse().expect("two digits"),
                    width: default_resnet_cifar_width(),
                }
            }
            "mobilenetv2" | "mobilenet-v2" | "mobilenet_v2" => ModelSpec::Mobilenetv2 {
                width: default_percent(),
            },
            "efficientnet-b0" | "efficientnet_b0" | "efficientnetb0" => ModelSpec::EfficientnetB0 {
                width: default_percent(),
                depth: default_percent(),
            },
            "vit" => ModelSpec::Vit {
                patch: default_vit_patch(),
                dim: default_vit_dim(),
                depth: default_vit_depth(),
                heads: default_vit_heads(),
            },
            other => {
                return Err(Error::config(
                    "model",
                    format!(
                        "unknown architecture `{other}` (use {})",
                        Self::all_names().collect::<Vec<_>>().join(", ")
                    ),
                ))
            }
        })
    }

    /// Builds the architecture for inputs of shape `[c, h, w]` and `classes`.
    pub fn build(&self, input: [usize; 3], classes: usize) -> Result<Architecture> {
        let arch = match self {
            ModelSpec::Mlp { hidden } => mlp(input, hidden, classes),
            ModelSpec::Lenet5 => lenet5(input, classes),
            ModelSpec::Vgg { channels } => vgg(input, channels, classes),
            ModelSpec::Resnet20 { width } => resnet20(input, 3, *width, classes),
            ModelSpec::Resnet56 { width } => resnet20(input, 9, *width, classes),
            ModelSpec::Resnet { depth, width } => {
                builtin::resnet_cifar(input, *depth, *width, classes)?
            }
            ModelSpec::Mobilenetv2 { width } => builtin::mobilenet_v2(input, *width, classes)?,
            ModelSpec::EfficientnetB0 { width, depth } => {
                builtin::efficientnet_b0(input, *width, *depth, classes)?
            }
            ModelSpec::Vit {
                patch,
                dim,
                depth,
                heads,
            } => builtin::vit(input, *patch, *dim, *depth, *heads, classes)?,
        };
        arch.check()?;
        Ok(arch)
    }
}

fn conv(
    name: &str,
    in_c: usize,
    out_c: usize,
    k: usize,
    stride: usize,
    pad: usize,
    bias: bool,
) -> Node {
    Node::Conv2d {
        name: name.into(),
        in_c,
        out_c,
        k,
        stride,
        pad,
        bias,
    }
}

fn bn(name: &str, c: usize) -> Node {
    Node::BatchNorm {
        name: name.into(),
        c,
    }
}

fn linear(name: &str, in_f: usize, out_f: usize) -> Node {
    Node::Linear {
        name: name.into(),
        in_f,
        out_f,
        bias: true,
    }
}

/// An MLP: flatten, then `hidden` ReLU layers, then the classifier.
pub fn mlp(input: [usize; 3], hidden: &[usize], classes: usize) -> Architecture {
    let mut nodes = vec![Node::Flatten];
    let mut width = input.iter().product();
    for (i, &h) in hidden.iter().enumerate() {
        nodes.push(linear(&format!("fc{}", i + 1), width, h));
        nodes.push(Node::Relu);
        width = h;
    }
    nodes.push(linear(&format!("fc{}", hidden.len() + 1), width, classes));
    Architecture {
        family: Family::Mlp,
        input,
        num_classes: classes,
        graph: None,
        nodes,
        preprocess: Preprocess::default(),
    }
}

/// LeNet-5 with ReLU and max pooling; 28x28 inputs are padded by 2 in the
/// first convolution so that both 28x28 and 32x32 inputs reach 5x5 maps.
pub fn lenet5(input: [usize; 3], classes: usize) -> Architecture {
    let side = input[1].min(input[2]);
    let pad = if side < 32 {
        (32 - side).div_ceil(2)
    } else {
        0
    };
    // conv 5 -> pool 2 -> conv 5 -> pool 2; 0 when the input is too small
    // (`check` then names the layer that does not fit).
    let after = |s: usize| ((s + 2 * pad).saturating_sub(4) / 2).saturating_sub(4) / 2;
    let (h, w) = (after(input[1]), after(input[2]));
    Architecture {
        family: Family::Lenet5,
        input,
        num_classes: classes,
        graph: None,
        nodes: vec![
            conv("conv1", input[0], 6, 5, 1, pad, true),
            Node::Relu,
            Node::max_pool(2, 2, 0),
            conv("conv2", 6, 16, 5, 1, 0, true),
            Node::Relu,
            Node::max_pool(2, 2, 0),
            Node::Flatten,
            linear("fc1", 16 * h * w, 120),
            Node::Relu,
            linear("fc2", 120, 84),
            Node::Relu,
            linear("fc3", 84, classes),
        ],
        preprocess: Preprocess::default(),
    }
}

/// A VGG-style network: 3x3 conv + BatchNorm + ReLU per entry of `channels`,
/// 2x2 max pool for each 0, then global average pooling and a linear head.
pub fn vgg(input: [usize; 3], channels: &[usize], classes: usize) -> Architecture {
    let mut nodes = Vec::new();
    let mut c = input[0];
    let mut i = 0;
    for &ch in channels {
        if ch == 0 {
            nodes.push(Node::max_pool(2, 2, 0));
            continue;
        }
        i += 1;
        nodes.push(conv(&format!("conv{i}"), c, ch, 3, 1, 1, false));
        nodes.push(bn(&format!("bn{i}"), ch));
        nodes.push(Node::Relu);
        c = ch;
    }
    nodes.push(Node::GlobalAvgPool);
    nodes.push(linear("fc", c, classes));
    Architecture {
        family: Family::Vgg,
        input,
        num_classes: classes,
        graph: None,
        nodes,
        preprocess: Preprocess::default(),
    }
}

/// ResNet-20: a 3x3 stem, three stages of three basic blocks (widths `w`,
/// `2w`, `4w`, stride 2 at the start of stages 2 and 3, 1x1 projection
/// shortcuts where the shape changes), global average pooling, linear head.
pub fn resnet20(input: [usize; 3], blocks: usize, w: usize, classes: usize) -> Architecture {
    let mut nodes = vec![
        conv("conv1", input[0], w, 3, 1, 1, false),
        bn("bn1", w),
        Node::Relu,
    ];
    let mut c = w;
    for stage in 0..3 {
        let out = w << stage;
        for block in 0..blocks {
            let stride = if stage > 0 && block == 0 { 2 } else { 1 };
            let p = format!("layer{}.{}", stage + 1, block);
            let body = vec![
                conv(&format!("{p}.conv1"), c, out, 3, stride, 1, false),
                bn(&format!("{p}.bn1"), out),
                Node::Relu,
                conv(&format!("{p}.conv2"), out, out, 3, 1, 1, false),
                bn(&format!("{p}.bn2"), out),
            ];
            let shortcut = if stride != 1 || c != out {
                vec![
                    conv(&format!("{p}.shortcut.conv"), c, out, 1, stride, 0, false),
                    bn(&format!("{p}.shortcut.bn"), out),
                ]
            } else {
                vec![]
            };
            nodes.push(Node::Residual { body, shortcut });
            nodes.push(Node::Relu);
            c = out;
        }
    }
    nodes.push(Node::GlobalAvgPool);
    nodes.push(linear("fc", c, classes));
    Architecture {
        family: Family::Resnet20,
        input,
        num_classes: classes,
        graph: None,
        nodes,
        preprocess: Preprocess::default(),
    }
}

/// Activation shape flowing through the graph (one sample).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// A feature map: channels, height, width.
    Map(usize, usize, usize),
    /// A feature vector.
    Vec(usize),
}

impl std::fmt::Display for Flow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Flow::Map(c, h, w) => write!(f, "{c}x{h}x{w}"),
            Flow::Vec(n) => write!(f, "{n}"),
        }
    }
}

/// Shapes met while walking the graph: the layers with weights, and every
/// node's output with its nesting depth (in [`visit`] order).
#[derive(Default)]
struct Seen {
    layers: Vec<LayerInfo>,
    outputs: Vec<(usize, Flow)>,
}

impl Architecture {
    /// Checks that consecutive layers fit together and the output has
    /// `num_classes` features; the error names the first layer that does not fit.
    pub fn check(&self) -> Result<()> {
        self.preprocess.check(self.input[0])?;
        if let Some(g) = &self.graph {
            return self.check_graph(g);
        }
        let out = walk(&self.nodes, self.input_flow(), 0, &mut Seen::default())?;
        if out != Flow::Vec(self.num_classes) {
            return Err(Error::Shape(format!(
                "network output is {out:?}, expected {} class scores",
                self.num_classes
            )));
        }
        Ok(())
    }

    /// A graph architecture's checks: the graph is consistent, takes one
    /// `[1, c, h, w]` input of [`Architecture::input`] and gives
    /// `num_classes` scores.
    fn check_graph(&self, g: &Graph) -> Result<()> {
        g.lint()?;
        let [c, h, w] = self.input;
        let (&[x], &[y]) = (g.inputs.as_slice(), g.outputs.as_slice()) else {
            return Err(Error::Shape(format!(
                "the graph has {} inputs and {} outputs; Shears runs graphs of one image input and \
                 one output of class scores",
                g.inputs.len(),
                g.outputs.len()
            )));
        };
        if g.value(x).dims != [1, c, h, w] {
            return Err(Error::Shape(format!(
                "the graph's input is {:?} for one sample, the architecture says [1, {c}, {h}, {w}]",
                g.value(x).dims
            )));
        }
        if g.value(y).dims != [1, self.num_classes] {
            return Err(Error::Shape(format!(
                "the graph's output is {:?} for one sample, expected [1, {}] class scores",
                g.value(y).dims,
                self.num_classes
            )));
        }
        Ok(())
    }

    /// Every layer with a prunable weight, in forward order.
    pub fn layers(&self) -> Vec<LayerInfo> {
        if let Some(g) = &self.graph {
            return graph_layers(g);
        }
        let mut seen = Seen::default();
        // `check` is run when an architecture is built or loaded; a failure here
        // leaves the list short, never panics.
        let _ = walk(&self.nodes, self.input_flow(), 0, &mut seen);
        seen.layers
    }

    /// Every node's output shape and nesting depth (0 at the top, 1 inside
    /// a residual block, ...), in [`visit`] order: a residual block's row
    /// (its sum) comes before its branches' nodes.
    pub fn node_outputs(&self) -> Vec<(usize, Flow)> {
        let mut seen = Seen::default();
        let _ = walk(&self.nodes, self.input_flow(), 0, &mut seen);
        seen.outputs
    }

    fn input_flow(&self) -> Flow {
        Flow::Map(self.input[0], self.input[1], self.input[2])
    }

    /// Names, shapes and roles of every parameter and buffer, in order.
    pub fn tensor_specs(&self) -> Vec<(String, Vec<usize>, Role)> {
        if let Some(g) = &self.graph {
            return g
                .params()
                .map(|p| (p.name.to_string(), p.dims.to_vec(), p.role))
                .collect();
        }
        let mut out = Vec::new();
        let layer = |out: &mut Vec<_>, name: &str, w: Vec<usize>, bias: bool| {
            let o = w[0];
            out.push((format!("{name}.weight"), w, Role::Weight));
            if bias {
                out.push((format!("{name}.bias"), vec![o], Role::Bias));
            }
        };
        visit(&self.nodes, &mut |n| match n {
            Node::Conv2d {
                name,
                in_c,
                out_c,
                k,
                bias,
                ..
            } => layer(&mut out, name, vec![*out_c, *in_c, *k, *k], *bias),
            Node::Linear {
                name,
                in_f,
                out_f,
                bias,
            } => layer(&mut out, name, vec![*out_f, *in_f], *bias),
            Node::BatchNorm { name, c } => {
                for (part, role) in BATCH_NORM_PARAMS {
                    out.push((format!("{name}.{part}"), vec![*c], role));
                }
            }
            _ => {}
        });
        out
    }

    /// Total trainable parameters.
    pub fn num_params(&self) -> usize {
        self.tensor_specs()
            .iter()
            .filter(|(_, _, role)| role.trainable())
            .map(|(_, s, _)| s.iter().product::<usize>())
            .sum()
    }

    /// Total multiply-accumulates of one forward pass of one sample in the
    /// conv and linear layers (dense count).
    pub fn macs(&self) -> usize {
        self.layers().iter().map(|l| l.macs).sum()
    }
}

/// The prunable layers of a graph: its convolutions and linear layers whose
/// weight is a [`Role::Weight`] parameter named `{layer}.weight`, in node
/// order.
fn graph_layers(g: &Graph) -> Vec<LayerInfo> {
    let mut out = Vec::new();
    for n in &g.nodes {
        let kind = match n.op {
            Op::Conv(_) => LayerKind::Conv2d,
            Op::Linear => LayerKind::Linear,
            _ => continue,
        };
        let Some(w) = n.inputs.get(1).and_then(|&w| g.producer(w)) else {
            continue;
        };
        let (Op::Param { role: Role::Weight }, Some(name)) =
            (&w.op, w.name.strip_suffix(".weight"))
        else {
            continue;
        };
        let dims: Vec<&[usize]> = n
            .inputs
            .iter()
            .map(|&i| g.value(i).dims.as_slice())
            .collect();
        let y = &g.value(n.output).dims;
        out.push(LayerInfo {
            name: name.to_string(),
            kind,
            weight_shape: g.value(w.output).dims.clone(),
            bias: n.inputs.len() > 2,
            out_hw: match kind {
                LayerKind::Conv2d => (y[2], y[3]),
                LayerKind::Linear => (1, 1),
            },
            macs: n.op.macs(&dims, y),
        });
    }
    out
}

/// Calls `f` on every node, recursing into residual branches.
pub fn visit(nodes: &[Node], f: &mut impl FnMut(&Node)) {
    for n in nodes {
        f(n);
        if let Node::Residual { body, shortcut } = n {
            visit(body, f);
            visit(shortcut, f);
        }
    }
}

fn walk(nodes: &[Node], mut x: Flow, depth: usize, seen: &mut Seen) -> Result<Flow> {
    for n in nodes {
        let row = seen.outputs.len();
        seen.outputs.push((depth, x));
        let layers = &mut seen.layers;
        x = match (n, x) {
            (
                Node::Conv2d {
                    name,
                    in_c,
                    out_c,
                    k,
                    stride,
                    pad,
                    bias,
                },
                Flow::Map(c, h, w),
            ) => {
                if c != *in_c {
                    return Err(Error::Shape(format!(
                        "layer `{name}` expects {in_c} input channels, gets {c}"
                    )));
                }
                let (Some(oh), Some(ow)) = (
                    window_out(h, *k, *stride, *pad),
                    window_out(w, *k, *stride, *pad),
                ) else {
                    return Err(Error::Shape(format!(
                        "layer `{name}`: kernel {k} does not fit a {h}x{w} input"
                    )));
                };
                layers.push(LayerInfo {
                    name: name.clone(),
                    kind: LayerKind::Conv2d,
                    weight_shape: vec![*out_c, *in_c, *k, *k],
                    bias: *bias,
                    out_hw: (oh, ow),
                    macs: out_c * in_c * k * k * oh * ow,
                });
                Flow::Map(*out_c, oh, ow)
            }
            (Node::BatchNorm { name, c: bc }, Flow::Map(c, h, w)) => {
                if c != *bc {
                    return Err(Error::Shape(format!(
                        "layer `{name}` expects {bc} channels, gets {c}"
                    )));
                }
                Flow::Map(c, h, w)
            }
            (Node::Relu, x) => x,
            (Node::MaxPool { k, stride, pad }, Flow::Map(c, h, w)) => {
                let s = stride.unwrap_or(*k);
                match (window_out(h, *k, s, *pad), window_out(w, *k, s, *pad)) {
                    (Some(oh), Some(ow)) if 2 * pad <= *k => Flow::Map(c, oh, ow),
                    _ => {
                        return Err(Error::Shape(format!(
                            "max pool {k} (stride {s}, padding {pad}) does not fit a {h}x{w} map"
                        )))
                    }
                }
            }
            (Node::AvgPool { k, stride, pad, .. }, Flow::Map(c, h, w)) => match (
                window_out(h, *k, *stride, *pad),
                window_out(w, *k, *stride, *pad),
            ) {
                (Some(oh), Some(ow)) if 2 * pad <= *k => Flow::Map(c, oh, ow),
                _ => {
                    return Err(Error::Shape(format!(
                    "average pool {k} (stride {stride}, padding {pad}) does not fit a {h}x{w} map"
                )))
                }
            },
            (Node::GlobalAvgPool, Flow::Map(c, _, _)) => Flow::Vec(c),
            (Node::AdaptiveAvgPool { h: oh, w: ow }, Flow::Map(c, _, _)) => {
                if *oh == 0 || *ow == 0 {
                    return Err(Error::Shape(format!(
                        "adaptive average pool to {oh}x{ow} has no output"
                    )));
                }
                Flow::Map(c, *oh, *ow)
            }
            (Node::Dropout { p }, x) => {
                if !(0.0..1.0).contains(p) {
                    return Err(Error::Shape(format!(
                        "dropout probability {p} is outside [0, 1)"
                    )));
                }
                x
            }
            (Node::Flatten, Flow::Map(c, h, w)) => Flow::Vec(c * h * w),
            (Node::Flatten, Flow::Vec(n)) => Flow::Vec(n),
            (
                Node::Linear {
                    name,
                    in_f,
                    out_f,
                    bias,
                },
                Flow::Vec(n),
            ) => {
                if n != *in_f {
                    return Err(Error::Shape(format!(
                        "layer `{name}` expects {in_f} input features, gets {n}"
                    )));
                }
                layers.push(LayerInfo {
                    name: name.clone(),
                    kind: LayerKind::Linear,
                    weight_shape: vec![*out_f, *in_f],
                    bias: *bias,
                    out_hw: (1, 1),
                    macs: in_f * out_f,
                });
                Flow::Vec(*out_f)
            }
            (Node::Residual { body, shortcut }, x) => {
                let a = walk(body, x, depth + 1, seen)?;
                let b = walk(shortcut, x, depth + 1, seen)?;
                if a != b {
                    return Err(Error::Shape(format!(
                        "residual branches disagree: body gives {a:?}, shortcut gives {b:?}"
                    )));
                }
                a
            }
            (n, x) => return Err(Error::Shape(format!("{n:?} cannot take input {x:?}"))),
        };
        seen.outputs[row].1 = x;
    }
    Ok(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lenet5_counts_match_the_paper() {
        let a = ModelSpec::Lenet5.build([1, 28, 28], 10).unwrap();
        // 156 + 2416 + 48120 + 10164 + 850
        assert_eq!(a.num_params(), 61_706);
        let l = a.layers();
        assert_eq!(l.len(), 5);
        assert_eq!(l[2].weight_shape, vec![120, 400]);
        let a32 = ModelSpec::Lenet5.build([3, 32, 32], 10).unwrap();
        assert_eq!(a32.layers()[2].weight_shape, vec![120, 400]);
    }

    #[test]
    fn resnet20_has_about_270k_params() {
        let a = ModelSpec::Resnet20 { width: 16 }
            .build([3, 32, 32], 10)
            .unwrap();
        let convs = a.layers().len();
        assert_eq!(convs, 19 + 2 + 1); // 19 convs, 2 projections, 1 fc
        let p = a.num_params();
        assert!((270_000..=280_000).contains(&p), "{p}");
        // ~41M MACs for the standard ResNet-20
        assert!(
            (40_000_000..=43_000_000).contains(&a.macs()),
            "{}",
            a.macs()
        );
    }

    #[test]
    fn every_built_in_builds_at_its_defaults_and_trains_a_step() {
        use crate::model::Network;
        use candle_core::{Device, Tensor};
        for name in ModelSpec::all_names() {
            let spec = ModelSpec::from_name(name).unwrap();
            spec.check().unwrap();
            let arch = spec.build([3, 32, 32], 10).unwrap();
            assert_eq!(spec.name(), name);
            let mut net = Network::new(arch, 0, &Device::Cpu).unwrap();
            let x = Tensor::randn(0f32, 1.0, (2, 3, 32, 32), &Device::Cpu).unwrap();
            let labels = Tensor::new(&[1u32, 7], &Device::Cpu).unwrap();
            let pass = net.train_pass(&x, &labels).unwrap().unwrap();
            assert!(pass.loss.is_finite(), "{name}");
            assert_eq!(pass.grads.len(), net.params.len(), "{name}");
        }
        // Parameter counts as the papers and torchvision give them (10 classes).
        let count = |s: &str| {
            ModelSpec::from_name(s)
                .unwrap()
                .build([3, 32, 32], 10)
                .unwrap()
                .num_params()
        };
        assert_eq!(count("resnet56"), 855_770);
        assert_eq!(count("resnet18"), 11_173_962);
        assert_eq!(count("mobilenetv2"), 2_236_682);
        assert_eq!(count("efficientnet-b0"), 4_020_358);
    }

    #[test]
    fn mismatched_layers_are_named() {
        let mut a = lenet5([1, 28, 28], 10);
        if let Node::Linear { in_f, .. } = &mut a.nodes[7] {
            *in_f = 399;
        }
        let e = a.check().unwrap_err().to_string();
        assert!(e.contains("fc1") && e.contains("399"), "{e}");
    }

    #[test]
    fn architecture_round_trips_through_json() {
        let a = ModelSpec::Resnet20 { width: 8 }
            .build([3, 32, 32], 100)
            .unwrap();
        let j = serde_json::to_string(&a).unwrap();
        let b: Architecture = serde_json::from_str(&j).unwrap();
        assert_eq!(a, b);
        let v = ModelSpec::Vgg {
            channels: vec![8, 0, 16],
        }
        .build([1, 28, 28], 10)
        .unwrap();
        assert_eq!(v.layers().len(), 3);
        assert_eq!(
            ModelSpec::Mlp { hidden: vec![32] }
                .build([1, 8, 8], 10)
                .unwrap()
                .num_params(),
            64 * 32 + 32 + 330
        );
    }
}
