//! torchvision's EfficientNet, B0–B7 (MBConv blocks) and V2 (fused MBConv
//! blocks first), from one configuration of stages.

use super::{bad, divisible, Builder};
use crate::error::Result;
use crate::model::arch::{Architecture, Family};
use crate::model::graph::ValueId;
use crate::model::ops::activation::Act;

/// One stage: `blocks` blocks of one kind, the first with `stride`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EfficientnetStage {
    /// Fused MBConv (a full `kernel` convolution expands; no
    /// squeeze-excitation) rather than MBConv (1x1 expansion, depthwise
    /// convolution, squeeze-excitation).
    pub fused: bool,
    /// Expansion ratio: the hidden width is the input's times this,
    /// rounded to a multiple of 8.
    pub expand: usize,
    /// Kernel of the depthwise (or fused) convolution.
    pub kernel: usize,
    /// Stride of the stage's first block.
    pub stride: usize,
    /// Output channels.
    pub out: usize,
    /// Number of blocks.
    pub blocks: usize,
}

/// An EfficientNet: stem width, stages, head width and the settings the
/// state dict cannot tell.
#[derive(Debug, Clone, PartialEq)]
pub struct EfficientnetConfig {
    /// Channels of the stem convolution.
    pub stem: usize,
    /// The stages in order.
    pub stages: Vec<EfficientnetStage>,
    /// Channels of the last 1x1 convolution.
    pub last: usize,
    /// BatchNorm epsilon (1e-5 for B0–B4, 1e-3 for B5–B7 and V2).
    pub bn_eps: f64,
    /// BatchNorm momentum (0.1; 0.01 for B5–B7).
    pub bn_momentum: f64,
    /// Dropout before the classifier.
    pub dropout: f32,
    /// Stochastic depth of the last block (rising linearly from 0).
    pub stochastic_depth: f32,
}

/// The strides of torchvision's EfficientNet stages, B0–B7 and V2 alike.
pub const STAGE_STRIDES: [usize; 7] = [1, 2, 2, 2, 1, 2, 1];

/// torchvision's EfficientNet built from `cfg`: stem `features.0`, stage
/// `s` block `i` as `features.{s}.{i}.block`, head `features.{n+1}`, the
/// classifier `classifier.1`.
pub fn efficientnet(
    input: [usize; 3],
    cfg: &EfficientnetConfig,
    classes: usize,
    family: Family,
) -> Result<Architecture> {
    if cfg.stages.is_empty() || cfg.stages.iter().any(|s| s.blocks == 0 || s.expand == 0) {
        return bad(
            "model",
            format!("an EfficientNet needs stages of at least one block: {cfg:?}"),
        );
    }
    let total: usize = cfg.stages.iter().map(|s| s.blocks).sum();
    let (mut b, x) = Builder::new(input);
    b.bn_eps = cfg.bn_eps;
    b.bn_momentum = cfg.bn_momentum;
    let mut x = b.conv_norm("features.0", x, cfg.stem, 3, 2, 1, Some(Act::Silu))?;
    let mut block = 0usize;
    for (stage, st) in cfg.stages.iter().enumerate() {
        for i in 0..st.blocks {
            let p = format!("features.{}.{i}.block", stage + 1);
            let stride = if i == 0 { st.stride } else { 1 };
            let c_in = b.channels(x);
            let hidden = divisible((c_in * st.expand) as f64);
            let y = if st.fused {
                fused_mbconv(&mut b, &p, x, hidden, st, stride)?
            } else {
                mbconv(&mut b, &p, x, hidden, st, stride)?
            };
            x = if stride == 1 && c_in == st.out {
                let p = cfg.stochastic_depth * block as f32 / total as f32;
                let y = b.drop_path(y, p)?;
                b.add(y, x)?
            } else {
                y
            };
            block += 1;
        }
    }
    let head = cfg.stages.len() + 1;
    let p = format!("features.{head}");
    x = b.conv_norm(&p, x, cfg.last, 1, 1, 1, Some(Act::Silu))?;
    let x = b.pool_flat(x)?;
    let x = b.dropout(x, cfg.dropout)?;
    let y = b.linear("classifier.1", x, classes)?;
    Ok(b.finish(y, family, input, classes))
}

/// MBConv: 1x1 expansion (where the width changes), depthwise `kernel`
/// convolution, squeeze-excitation to a quarter of the block's input,
/// 1x1 projection; SiLU throughout.
fn mbconv(
    b: &mut Builder,
    p: &str,
    x: ValueId,
    hidden: usize,
    st: &EfficientnetStage,
    stride: usize,
) -> Result<ValueId> {
    let c_in = b.channels(x);
    let mut y = x;
    let mut j = 0;
    if hidden != c_in {
        y = b.conv_norm(&format!("{p}.0"), y, hidden, 1, 1, 1, Some(Act::Silu))?;
        j = 1;
    }
    let dw = format!("{p}.{j}");
    y = b.conv_norm(&dw, y, hidden, st.kernel, stride, hidden, Some(Act::Silu))?;
    let se = format!("{p}.{}", j + 1);
    y = b.squeeze_excite(&se, y, (c_in / 4).max(1), Act::Silu, Act::Sigmoid)?;
    b.conv_norm(&format!("{p}.{}", j + 2), y, st.out, 1, 1, 1, None)
}

/// Fused MBConv: a `kernel` convolution to the hidden width and a 1x1
/// projection, or (no expansion) one `kernel` convolution with SiLU.
fn fused_mbconv(
    b: &mut Builder,
    p: &str,
    x: ValueId,
    hidden: usize,
    st: &EfficientnetStage,
    stride: usize,
) -> Result<ValueId> {
    let (k, silu) = (st.kernel, Some(Act::Silu));
    if hidden != b.channels(x) {
        let y = b.conv_norm(&format!("{p}.0"), x, hidden, k, stride, 1, silu)?;
        b.conv_norm(&format!("{p}.1"), y, st.out, 1, 1, 1, None)
    } else {
        b.conv_norm(&format!("{p}.0"), x, st.out, k, stride, 1, silu)
    }
}

/// torchvision's EfficientNet-B0 layout at `width` and `depth` percent
/// (B0 is 100/100, B7 200/310): MBConv blocks with squeeze-excitation,
/// stochastic depth rising to 0.2, dropout 0.2 before the head.
pub fn efficientnet_b0(
    input: [usize; 3],
    width: usize,
    depth: usize,
    classes: usize,
) -> Result<Architecture> {
    let cfg = b_layout(width, depth, 1e-5, 0.2);
    efficientnet(input, &cfg, classes, Family::EfficientnetB0)
}

/// The B0 table scaled by `width` and `depth` percent (torchvision's
/// `_efficientnet_conf("efficientnet_b*")`).
pub fn b_layout(width: usize, depth: usize, bn_eps: f64, dropout: f32) -> EfficientnetConfig {
    let mult = width as f64 / 100.0;
    let layers = |n: usize| (n as f64 * depth as f64 / 100.0).ceil() as usize;
    // (expansion, kernel, out, layers), torchvision's B0 table.
    let table = [
        (1, 3, 16, 1),
        (6, 3, 24, 2),
        (6, 5, 40, 2),
        (6, 3, 80, 3),
        (6, 5, 112, 3),
        (6, 5, 192, 4),
        (6, 3, 320, 1),
    ];
    let stages = table
        .iter()
        .zip(STAGE_STRIDES)
        .map(|(&(expand, kernel, out, n), stride)| EfficientnetStage {
            fused: false,
            expand,
            kernel,
            stride,
            out: divisible(out as f64 * mult),
            blocks: layers(n),
        })
        .collect();
    EfficientnetConfig {
        stem: divisible(32.0 * mult),
        stages,
        last: 4 * divisible(320.0 * mult),
        bn_eps,
        bn_momentum: 0.1,
        dropout,
        stochastic_depth: 0.2,
    }
}
