//! torchvision's MobileNetV2 and MobileNetV3 (small and large).

use super::Builder;
use crate::error::Result;
use crate::model::arch::{Architecture, Family};
use crate::model::ops::activation::Act;

use super::divisible;
use crate::model::graph::{Dim, Op};

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
    let x = b.dropout(x, 0.2)?;
    let y = b.linear("classifier.1", x, classes)?;
    Ok(b.finish(y, Family::MobilenetV2, input, classes))
}

/// What timm's MobileNetV3 has where torchvision's differs: the width of
/// its stem (not scaled below a multiplier of 0.75), of its `conv_head`
/// and each block's expanded width.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimmMobilenetV3 {
    /// Channels of the stem.
    pub stem: usize,
    /// Channels of `conv_head`.
    pub head: usize,
    /// Each block's expanded width, in order.
    pub expanded: Vec<usize>,
}

/// MobileNetV3's two sizes (torchvision's `mobilenet_v3_small` and
/// `mobilenet_v3_large`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MobilenetV3Size {
    /// 11 blocks, a 1024-wide head.
    Small,
    /// 15 blocks, a 1280-wide head.
    Large,
}

/// torchvision's MobileNetV3 (`width_mult` = `width` / 100): inverted
/// residual blocks with ReLU or hard swish, squeeze-excitation with a hard
/// sigmoid gate where the table has it, BatchNorm with epsilon 1e-3 and
/// momentum 0.01, dropout 0.2 in the classifier.
///
/// `timm`: timm's MobileNetV3 instead, whose head is a 1x1 convolution
/// `conv_head` (with bias, no BatchNorm) after the pooling, whose expanded
/// widths are its input's times a ratio (not the table's widths scaled),
/// and whose BatchNorm keeps PyTorch's defaults.
pub fn mobilenet_v3(
    input: [usize; 3],
    size: MobilenetV3Size,
    width: usize,
    classes: usize,
    timm: Option<&TimmMobilenetV3>,
) -> Result<Architecture> {
    let mult = width as f64 / 100.0;
    let ch = |c: usize| divisible(c as f64 * mult);
    // (kernel, expanded, out, squeeze-excitation, hard swish, stride),
    // torchvision's tables.
    let small: &[(usize, usize, usize, bool, bool, usize)] = &[
        (3, 16, 16, true, false, 2),
        (3, 72, 24, false, false, 2),
        (3, 88, 24, false, false, 1),
        (5, 96, 40, true, true, 2),
        (5, 240, 40, true, true, 1),
        (5, 240, 40, true, true, 1),
        (5, 120, 48, true, true, 1),
        (5, 144, 48, true, true, 1),
        (5, 288, 96, true, true, 2),
        (5, 576, 96, true, true, 1),
        (5, 576, 96, true, true, 1),
    ];
    let large: &[(usize, usize, usize, bool, bool, usize)] = &[
        (3, 16, 16, false, false, 1),
        (3, 64, 24, false, false, 2),
        (3, 72, 24, false, false, 1),
        (5, 72, 40, true, false, 2),
        (5, 120, 40, true, false, 1),
        (5, 120, 40, true, false, 1),
        (3, 240, 80, false, true, 2),
        (3, 200, 80, false, true, 1),
        (3, 184, 80, false, true, 1),
        (3, 184, 80, false, true, 1),
        (3, 480, 112, true, true, 1),
        (3, 672, 112, true, true, 1),
        (5, 672, 160, true, true, 2),
        (5, 960, 160, true, true, 1),
        (5, 960, 160, true, true, 1),
    ];
    let (table, head) = match size {
        MobilenetV3Size::Small => (small, 1024),
        MobilenetV3Size::Large => (large, 1280),
    };
    let hswish = Act::HardSwish;
    let hsigmoid = Act::HardSigmoid {
        alpha: 1.0 / 6.0,
        beta: 0.5,
    };
    let (mut b, x) = Builder::new(input);
    if timm.is_none() {
        b.bn_eps = 1e-3;
        b.bn_momentum = 0.01;
    }
    let stem = timm.map_or(ch(16), |t| t.stem);
    let mut x = b.conv_norm("features.0", x, stem, 3, 2, 1, Some(hswish))?;
    for (i, &(k, exp, out, se, hs, stride)) in table.iter().enumerate() {
        let p = format!("features.{}.block", i + 1);
        let act = if hs { hswish } else { Act::Relu };
        let exp = match timm {
            Some(t) => *t.expanded.get(i).ok_or_else(|| {
                crate::error::Error::config("model", format!("no expanded width for block {i}"))
            })?,
            None => ch(exp),
        };
        let (c_in, out) = (b.channels(x), ch(out));
        let mut y = x;
        let mut j = 0;
        if exp != c_in {
            y = b.conv_norm(&format!("{p}.0"), y, exp, 1, 1, 1, Some(act))?;
            j = 1;
        }
        y = b.conv_norm(&format!("{p}.{j}"), y, exp, k, stride, exp, Some(act))?;
        if se {
            j += 1;
            let squeeze = divisible((exp / 4) as f64);
            y = b.squeeze_excite(&format!("{p}.{j}"), y, squeeze, Act::Relu, hsigmoid)?;
        }
        y = b.conv_norm(&format!("{p}.{}", j + 1), y, out, 1, 1, 1, None)?;
        x = if stride == 1 && c_in == out {
            b.add(y, x)?
        } else {
            y
        };
    }
    let last = 6 * b.channels(x);
    let p = format!("features.{}", table.len() + 1);
    x = b.conv_norm(&p, x, last, 1, 1, 1, Some(hswish))?;
    let x = match timm.map(|t| t.head) {
        None => {
            let x = b.pool_flat(x)?;
            let x = b.linear("classifier.0", x, ch(head))?;
            b.act(x, hswish)?
        }
        Some(h) => {
            let m = b.op(
                "global_avg_pool",
                Op::ReduceMean {
                    axes: vec![2, 3],
                    keep: true,
                },
                &[x],
            )?;
            let m = b.conv("conv_head", m, h, 1, 1, 1, true)?;
            let m = b.act(m, hswish)?;
            b.reshape(m, vec![Dim::Batch(1), Dim::Fixed(h)])?
        }
    };
    let x = b.dropout(x, 0.2)?;
    let y = b.linear("classifier.3", x, classes)?;
    Ok(b.finish(y, Family::MobilenetV3, input, classes))
}
