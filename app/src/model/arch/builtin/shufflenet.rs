//! torchvision's ShuffleNetV2 at any widths and depths.

use super::{bad, Builder};
use crate::error::Result;
use crate::model::arch::{Architecture, Family};
use crate::model::graph::{Dim, Op, ValueId};
use crate::model::ops::{activation::Act, pool::Pool};

/// A ShuffleNetV2's sizes (torchvision's `stages_repeats` and
/// `stages_out_channels`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShufflenetConfig {
    /// Blocks in stages 2, 3 and 4.
    pub repeats: [usize; 3],
    /// Channels of the stem, the three stages and `conv5`.
    pub channels: [usize; 5],
}

/// torchvision's ShuffleNetV2: stem `conv1` (3x3 stride 2) and a 3x3 max
/// pool; stages `stage2`..`stage4` of blocks that split the channels in
/// two (or, first in a stage, run both halves from the whole input at
/// stride 2), transform one half (`branch2`: 1x1, depthwise 3x3, 1x1) and
/// shuffle the two halves together; `conv5`, global average, `fc`.
pub fn shufflenet_v2(
    input: [usize; 3],
    cfg: &ShufflenetConfig,
    classes: usize,
) -> Result<Architecture> {
    if cfg.channels[1..4].iter().any(|c| c % 2 != 0) || cfg.repeats.contains(&0) {
        return bad(
            "model",
            format!("a ShuffleNetV2 with odd stage widths or empty stages: {cfg:?}"),
        );
    }
    let (mut b, x) = Builder::new(input);
    let x = b.conv_norm("conv1", x, cfg.channels[0], 3, 2, 1, Some(Act::Relu))?;
    let mut x = b.max_pool(x, Pool::square(3, 2, 1))?;
    for (s, &n) in cfg.repeats.iter().enumerate() {
        let out = cfg.channels[s + 1];
        for i in 0..n {
            let p = format!("stage{}.{i}", s + 2);
            x = shuffle_block(&mut b, &p, x, out, if i == 0 { 2 } else { 1 })?;
        }
    }
    let x = b.conv_norm("conv5", x, cfg.channels[4], 1, 1, 1, Some(Act::Relu))?;
    let x = b.pool_flat(x)?;
    let y = b.linear("fc", x, classes)?;
    Ok(b.finish(y, Family::ShufflenetV2, input, classes))
}

/// One block `p` to `out` channels.
fn shuffle_block(
    b: &mut Builder,
    p: &str,
    x: ValueId,
    out: usize,
    stride: usize,
) -> Result<ValueId> {
    let half = out / 2;
    let c = b.channels(x);
    let (kept, rest) = if stride == 1 {
        let slice = |b: &mut Builder, start, end| {
            b.op(
                "chunk",
                Op::Slice {
                    axis: 1,
                    start,
                    end,
                },
                &[x],
            )
        };
        (slice(b, 0, c / 2)?, slice(b, c / 2, c)?)
    } else {
        // branch1: depthwise 3x3 at the stride, 1x1.
        let y = b.conv(&format!("{p}.branch1.0"), x, c, 3, stride, c, false)?;
        let y = b.bn(&format!("{p}.branch1.1"), y)?;
        let y = b.conv(&format!("{p}.branch1.2"), y, half, 1, 1, 1, false)?;
        let y = b.bn(&format!("{p}.branch1.3"), y)?;
        (b.act(y, Act::Relu)?, x)
    };
    let y = b.conv(&format!("{p}.branch2.0"), rest, half, 1, 1, 1, false)?;
    let y = b.bn(&format!("{p}.branch2.1"), y)?;
    let y = b.act(y, Act::Relu)?;
    let y = b.conv(&format!("{p}.branch2.3"), y, half, 3, stride, half, false)?;
    let y = b.bn(&format!("{p}.branch2.4"), y)?;
    let y = b.conv(&format!("{p}.branch2.5"), y, half, 1, 1, 1, false)?;
    let y = b.bn(&format!("{p}.branch2.6"), y)?;
    let y = b.act(y, Act::Relu)?;
    let cat = b.concat(&[kept, y])?;
    // Channel shuffle in 2 groups: [b, 2, c/2, h, w] -> [b, c/2, 2, h, w].
    let [h, w] = {
        let d = &b.g.value(cat).dims;
        [d[2], d[3]]
    };
    let fixed = |v: &[usize]| v.iter().map(|&n| Dim::Fixed(n)).collect::<Vec<_>>();
    let mut shape = vec![Dim::Batch(1)];
    shape.extend(fixed(&[2, half, h, w]));
    let y = b.reshape(cat, shape)?;
    let y = b.transpose(y, &[0, 2, 1, 3, 4])?;
    let mut shape = vec![Dim::Batch(1)];
    shape.extend(fixed(&[out, h, w]));
    b.reshape(y, shape)
}
