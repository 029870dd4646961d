//! torchvision's RegNet (X, and Y with squeeze-excitation) at any widths.

use super::{bad, Builder};
use crate::error::Result;
use crate::model::arch::{Architecture, Family};
use crate::model::ops::activation::Act;

/// One RegNet stage: `blocks` residual bottleneck blocks to `width`
/// channels, the first with stride 2.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RegnetStage {
    /// Output channels.
    pub width: usize,
    /// Number of blocks.
    pub blocks: usize,
    /// Width inside the bottleneck (`width * bottleneck_multiplier`).
    pub bottleneck: usize,
    /// Groups of the 3x3 convolution (`bottleneck / group_width`).
    pub groups: usize,
}

/// torchvision's RegNet: stem `stem` (3x3 stride 2, BatchNorm, ReLU),
/// stages `trunk_output.block{s}.block{s}-{i}` (1x1, grouped 3x3,
/// squeeze-excitation to `se_ratio` of the block's input where given, 1x1;
/// a projection shortcut where the shape changes; ReLU after the sum),
/// global average, `fc`.
pub fn regnet(
    input: [usize; 3],
    stem: usize,
    stages: &[RegnetStage],
    se_ratio: Option<f64>,
    classes: usize,
) -> Result<Architecture> {
    if stages
        .iter()
        .any(|s| s.groups == 0 || s.bottleneck % s.groups != 0)
    {
        return bad(
            "model",
            format!("RegNet groups do not divide the widths: {stages:?}"),
        );
    }
    let (mut b, x) = Builder::new(input);
    let mut x = b.conv_norm("stem", x, stem, 3, 2, 1, Some(Act::Relu))?;
    let family = if se_ratio.is_some() {
        Family::RegnetY
    } else {
        Family::RegnetX
    };
    for (s, st) in stages.iter().enumerate() {
        for i in 0..st.blocks {
            let p = format!("trunk_output.block{0}.block{0}-{i}", s + 1);
            let stride = if i == 0 { 2 } else { 1 };
            let c_in = b.channels(x);
            let relu = Some(Act::Relu);
            let y = b.conv_norm(&format!("{p}.f.a"), x, st.bottleneck, 1, 1, 1, relu)?;
            let mut y = b.conv_norm(
                &format!("{p}.f.b"),
                y,
                st.bottleneck,
                3,
                stride,
                st.groups,
                relu,
            )?;
            if let Some(r) = se_ratio {
                let squeeze = (r * c_in as f64).round() as usize;
                y = b.squeeze_excite(&format!("{p}.f.se"), y, squeeze, Act::Relu, Act::Sigmoid)?;
            }
            let y = b.conv_norm(&format!("{p}.f.c"), y, st.width, 1, 1, 1, None)?;
            let shortcut = if c_in != st.width || stride != 1 {
                b.conv_norm(&format!("{p}.proj"), x, st.width, 1, stride, 1, None)?
            } else {
                x
            };
            let y = b.add(shortcut, y)?;
            x = b.act(y, Act::Relu)?;
        }
    }
    let x = b.pool_flat(x)?;
    let y = b.linear("fc", x, classes)?;
    Ok(b.finish(y, family, input, classes))
}
