//! torchvision's ResNets with the CIFAR stem.

use super::Builder;
use crate::error::Result;
use crate::model::arch::{Architecture, Family};
use crate::model::ops::activation::Act;

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
