//! torchvision's DenseNet: stem width, growth rate, bottleneck width and
//! layers per block read from the names and shapes.

use super::{checked, classes, count, dim, Recognised, StateDict};
use crate::error::{Error, Result};
use crate::model::arch::builtin::{self, DensenetConfig};

/// A DenseNet read from the state dict.
pub fn read(sd: &StateDict, input: [usize; 3]) -> Result<Recognised> {
    let c = classes(sd, "classifier.weight")?;
    if sd.has("features.denseblock1.denselayer1.norm.1.weight") {
        return Err(Error::Shape(
            "a DenseNet state dict with the old names (`norm.1`, `conv.1`): load it into \
             torchvision's DenseNet and save `model.state_dict()` to get today's names"
                .into(),
        ));
    }
    let blocks: Vec<usize> = (1..)
        .map(|i| {
            count(sd, |j| {
                format!("features.denseblock{i}.denselayer{}.conv1.weight", j + 1)
            })
        })
        .take_while(|&n| n > 0)
        .collect();
    let first = "features.denseblock1.denselayer1";
    let cfg = DensenetConfig {
        init: dim(sd, "features.conv0.weight", 0)?,
        growth: dim(sd, &format!("{first}.conv2.weight"), 0)?,
        bottleneck: dim(sd, &format!("{first}.conv1.weight"), 0)?,
        blocks,
    };
    let name = match (cfg.init, cfg.growth, cfg.blocks.as_slice()) {
        (64, 32, [6, 12, 24, 16]) => "densenet121",
        (64, 32, [6, 12, 32, 32]) => "densenet169",
        (64, 32, [6, 12, 48, 32]) => "densenet201",
        (96, 48, [6, 12, 36, 24]) => "densenet161",
        _ => "densenet",
    };
    let arch = builtin::densenet(input, &cfg, c)?;
    let notes = vec![format!(
        "recognised as torchvision's {name}: growth rate {}, layers per block {:?}, {} stem \
         channels, bottleneck width {}",
        cfg.growth, cfg.blocks, cfg.init, cfg.bottleneck
    )];
    checked(arch, sd, name, notes)
}
