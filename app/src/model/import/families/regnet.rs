//! torchvision's RegNet X and Y: stage widths, blocks, bottleneck widths
//! and groups read from the names and shapes.

use super::{checked, classes, count, dim, Recognised, StateDict};
use crate::error::Result;
use crate::model::arch::builtin::{self, RegnetStage};

/// A RegNet read from the state dict.
pub fn read(sd: &StateDict, input: [usize; 3]) -> Result<Recognised> {
    let c = classes(sd, "fc.weight")?;
    let stem = dim(sd, "stem.0.weight", 0)?;
    let block = |s: usize, i: usize| format!("trunk_output.block{s}.block{s}-{i}");
    let n = count(sd, |s| format!("{}.f.a.0.weight", block(s + 1, 0)));
    let mut stages = Vec::new();
    for s in 1..=n {
        let p = block(s, 0);
        let bottleneck = dim(sd, &format!("{p}.f.a.0.weight"), 0)?;
        let per_group = dim(sd, &format!("{p}.f.b.0.weight"), 1)?.max(1);
        stages.push(RegnetStage {
            width: dim(sd, &format!("{p}.f.c.0.weight"), 0)?,
            blocks: count(sd, |i| format!("{}.f.a.0.weight", block(s, i))),
            bottleneck,
            groups: bottleneck / per_group,
        });
    }
    // torchvision's RegNetY all have squeeze-excitation to a quarter of
    // the block's input.
    let se = sd.has(&format!("{}.f.se.fc1.weight", block(1, 0)));
    let arch = builtin::regnet(input, stem, &stages, se.then_some(0.25), c)?;
    let name = if se { "regnet_y" } else { "regnet_x" };
    let widths: Vec<usize> = stages.iter().map(|s| s.width).collect();
    let blocks: Vec<usize> = stages.iter().map(|s| s.blocks).collect();
    let group = stages.first().map_or(0, |s| s.bottleneck / s.groups.max(1));
    let notes =
        vec![format!(
        "recognised as torchvision's {name}: widths {widths:?}, blocks {blocks:?}, group width \
         {group}{}",
        if se { ", squeeze-excitation ratio 0.25" } else { "" }
    )];
    checked(arch, sd, name, notes)
}
