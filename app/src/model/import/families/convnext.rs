//! ConvNeXt in torchvision's and timm's names: stem patch, stage widths,
//! blocks and downsamplings read from the names and shapes.

use super::{checked, classes, count, dim, Recognised, StateDict};
use crate::error::Result;
use crate::model::arch::builtin::{self, ConvnextNames, ConvnextStage};

/// timm's ConvNeXt (`stem.0`, `stages.S.blocks.I.conv_dw`, `gamma`,
/// `head.fc`).
pub fn read_timm(sd: &StateDict, input: [usize; 3]) -> Result<Recognised> {
    let c = classes(sd, "head.fc.weight")?;
    let patch = dim(sd, "stem.0.weight", 2)?;
    let n = count(sd, |s| format!("stages.{s}.blocks.0.conv_dw.weight"));
    let mut stages = Vec::new();
    for s in 0..n {
        let down_conv = format!("stages.{}.downsample.1.weight", s + 1);
        stages.push(ConvnextStage {
            dim: dim(sd, &format!("stages.{s}.blocks.0.conv_dw.weight"), 0)?,
            blocks: count(sd, |i| format!("stages.{s}.blocks.{i}.conv_dw.weight")),
            down: if sd.has(&down_conv) {
                Some(dim(sd, &down_conv, 0)?)
            } else {
                None
            },
        });
    }
    build(sd, input, patch, &stages, c, ConvnextNames::Timm)
}

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
    build(sd, input, patch, &stages, c, ConvnextNames::Torchvision)
}

/// The ConvNeXt of `stages`, named the library's way, with the named
/// variant's stochastic depth where the sizes are one.
fn build(
    sd: &StateDict,
    input: [usize; 3],
    patch: usize,
    stages: &[ConvnextStage],
    c: usize,
    names: ConvnextNames,
) -> Result<Recognised> {
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
    let arch = builtin::convnext(input, patch, stages, sd_prob, c, names)?;
    let whose = match names {
        ConvnextNames::Torchvision => "torchvision",
        ConvnextNames::Timm => "timm",
    };
    let notes = vec![
        format!(
            "recognised as {whose}'s {name}: widths {dims:?}, blocks {blocks:?}, a \
             {patch}x{patch} patch stem"
        ),
        format!("stochastic depth rising to {sd_prob} in training, as {whose}'s {name}"),
    ];
    checked(arch, sd, name, notes)
}
