//! torchvision's DenseNet (DenseNet-BC) at any growth rate and depth.

use super::{bad, Builder};
use crate::error::Result;
use crate::model::arch::{Architecture, Family};
use crate::model::ops::{activation::Act, pool::Pool};

/// A DenseNet's sizes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DensenetConfig {
    /// Channels of the 7x7 stem convolution (`num_init_features`).
    pub init: usize,
    /// Channels each dense layer adds (`growth_rate`).
    pub growth: usize,
    /// Width of each dense layer's 1x1 bottleneck (`bn_size * growth_rate`).
    pub bottleneck: usize,
    /// Dense layers per block (`block_config`).
    pub blocks: Vec<usize>,
}

/// torchvision's DenseNet: stem `features.conv0`/`norm0` with a 3x3 max
/// pool, dense blocks `features.denseblock{i}.denselayer{j}` (BatchNorm,
/// ReLU, 1x1 convolution, BatchNorm, ReLU, 3x3 convolution, its output
/// concatenated to its input), transitions halving the channels with a 2x2
/// average pool, `features.norm5`, ReLU, global average, `classifier`.
pub fn densenet(input: [usize; 3], cfg: &DensenetConfig, classes: usize) -> Result<Architecture> {
    if cfg.blocks.is_empty() || cfg.growth == 0 || cfg.bottleneck == 0 {
        return bad(
            "model",
            format!("a DenseNet needs blocks and a growth rate: {cfg:?}"),
        );
    }
    let (mut b, x) = Builder::new(input);
    let x = b.conv_padded("features.conv0", x, cfg.init, 7, 2, 3, 1, false)?;
    let x = b.bn("features.norm0", x)?;
    let x = b.act(x, Act::Relu)?;
    let mut x = b.max_pool(x, Pool::square(3, 2, 1))?;
    for (i, &layers) in cfg.blocks.iter().enumerate() {
        for j in 0..layers {
            let p = format!("features.denseblock{}.denselayer{}", i + 1, j + 1);
            let y = b.bn(&format!("{p}.norm1"), x)?;
            let y = b.act(y, Act::Relu)?;
            let y = b.conv(&format!("{p}.conv1"), y, cfg.bottleneck, 1, 1, 1, false)?;
            let y = b.bn(&format!("{p}.norm2"), y)?;
            let y = b.act(y, Act::Relu)?;
            let y = b.conv(&format!("{p}.conv2"), y, cfg.growth, 3, 1, 1, false)?;
            x = b.concat(&[x, y])?;
        }
        if i + 1 < cfg.blocks.len() {
            let p = format!("features.transition{}", i + 1);
            let y = b.bn(&format!("{p}.norm"), x)?;
            let y = b.act(y, Act::Relu)?;
            let half = b.channels(y) / 2;
            let y = b.conv(&format!("{p}.conv"), y, half, 1, 1, 1, false)?;
            x = b.avg_pool(y, Pool::square(2, 2, 0))?;
        }
    }
    let x = b.bn("features.norm5", x)?;
    let x = b.act(x, Act::Relu)?;
    let x = b.pool_flat(x)?;
    let y = b.linear("classifier", x, classes)?;
    Ok(b.finish(y, Family::Densenet, input, classes))
}
