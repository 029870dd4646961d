//! torchvision's SqueezeNet (1.0 and 1.1 layouts, any widths).

use super::{bad, Builder};
use crate::error::Result;
use crate::model::arch::{Architecture, Family};
use crate::model::ops::{activation::Act, pool::Pool};

/// One entry of SqueezeNet's `features`, in order (each takes an index).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqueezenetStep {
    /// A convolution with bias, stride 2, no padding (the stem).
    Conv {
        /// Output channels.
        out: usize,
        /// Kernel (7 in SqueezeNet 1.0, 3 in 1.1).
        kernel: usize,
    },
    /// ReLU.
    Relu,
    /// 3x3 stride-2 max pooling with `ceil_mode`.
    MaxPool,
    /// A Fire module: 1x1 `squeeze` (ReLU), then 1x1 and 3x3 expansions
    /// (ReLU each) concatenated.
    Fire {
        /// Channels of the squeeze.
        squeeze: usize,
        /// Channels of the 1x1 expansion.
        expand1: usize,
        /// Channels of the 3x3 expansion.
        expand3: usize,
    },
}

/// torchvision's SqueezeNet: `features.{i}` for each step, then dropout,
/// `classifier.1` (a 1x1 convolution to the classes), ReLU and the global
/// average.
pub fn squeezenet(
    input: [usize; 3],
    steps: &[SqueezenetStep],
    classes: usize,
) -> Result<Architecture> {
    if steps.is_empty() {
        return bad("model", "a SqueezeNet needs features".into());
    }
    let (mut b, mut x) = Builder::new(input);
    let relu = Act::Relu;
    for (i, step) in steps.iter().enumerate() {
        let p = format!("features.{i}");
        x = match *step {
            SqueezenetStep::Conv { out, kernel } => {
                b.conv_padded(&p, x, out, kernel, 2, 0, 1, true)?
            }
            SqueezenetStep::Relu => b.act(x, relu)?,
            SqueezenetStep::MaxPool => {
                let pool = Pool {
                    ceil: true,
                    ..Pool::square(3, 2, 0)
                };
                b.max_pool(x, pool)?
            }
            SqueezenetStep::Fire {
                squeeze,
                expand1,
                expand3,
            } => {
                let s = b.conv(&format!("{p}.squeeze"), x, squeeze, 1, 1, 1, true)?;
                let s = b.act(s, relu)?;
                let e1 = b.conv(&format!("{p}.expand1x1"), s, expand1, 1, 1, 1, true)?;
                let e1 = b.act(e1, relu)?;
                let e3 = b.conv(&format!("{p}.expand3x3"), s, expand3, 3, 1, 1, true)?;
                let e3 = b.act(e3, relu)?;
                b.concat(&[e1, e3])?
            }
        };
    }
    let x = b.dropout(x, 0.5)?;
    let x = b.conv("classifier.1", x, classes, 1, 1, 1, true)?;
    let x = b.act(x, relu)?;
    let y = b.pool_flat(x)?;
    Ok(b.finish(y, Family::Squeezenet, input, classes))
}
