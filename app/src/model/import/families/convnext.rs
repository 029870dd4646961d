//! torchvision's ConvNeXt: stem patch, stage widths, blocks and
//! downsamplings read from the names and shapes.

use super::{checked, classes, count, dim, Recognised, StateDict};
use crate::error::Result;
use crate::model::arch::builtin::{self, ConvnextStage};

/// A ConvNeXt read from the state dict.
pub fn read(sd: &StateDict, input: [usize; 3]) -> Result<Recognised> {
    let c = classes(sd, "classifier.2.weight")?;
    let patch = dim(sd, "features.0.0.weight", 2)?;
    let mut stages = Vec::new();
    let mut index = 1;
    while sd.has(&format!("features.{index}.0.block.0.weight")) {
        let dim_ = dim(sd, &format!("features.{index}.0.block.0.weight"), 0)?;
        let blocks = count(sd, |j| format!("features.{index}.{j}.block.0.weight"));
        index += 1;
        let down_conv = format!("features.{index}.1.weight");
        let down = if sd.has(&down_conv) {
            index += 1;
            Some(dim(sd, &down_conv, 0)?)
        } else {
            None
        };
        stages.push(ConvnextStage {
            dim: dim_,
            blocks,
            down,
        });
    }
    // torchvision's stochastic depth: 0.1 (tiny), 0.4 (small), 0.5 (base
    // and large); only training sees it.
    let blocks: Vec<usize> = stages.iter().map(|s| s.blocks).collect();
    let dims: Vec<usize> = stages.iter().map(|s| s.dim).collect();
    let (name, sd_prob) = match (dims.as_slice(), blocks.as_slice()) {
        ([96, 192, 384, 768], [3, 3, 9, 3]) => ("convnext_tiny", 0.1),
        ([96, 192, 384, 768], [3, 3, 27, 3]) => ("convnext_small", 0.4),
        ([128, 256, 512, 1024], [3, 3, 27, 3]) => ("convnext_base", 0.5),
        ([192, 384, 768, 1536], [3, 3, 27, 3]) => ("convnext_large", 0.5),
        _ => ("convnext", 0.1),
    };
    let arch = builtin::convnext(input, patch, &stages, sd_prob, c)?;
    let notes = vec![
        format!(
            "recognised as torchvision's {name}: widths {dims:?}, blocks {blocks:?}, a \
             {patch}x{patch} patch stem"
        ),
        format!("stochastic depth rising to {sd_prob} in training, as torchvision's {name}"),
    ];
    checked(arch, sd, name, notes)
}
