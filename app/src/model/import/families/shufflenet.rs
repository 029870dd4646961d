//! torchvision's ShuffleNetV2: stage widths and repeats read from the
//! names and shapes.

use super::{checked, classes, count, dim, Recognised, StateDict};
use crate::error::Result;
use crate::model::arch::builtin::{self, ShufflenetConfig};

/// A ShuffleNetV2 read from the state dict.
pub fn read(sd: &StateDict, input: [usize; 3]) -> Result<Recognised> {
    let c = classes(sd, "fc.weight")?;
    let mut cfg = ShufflenetConfig {
        repeats: [0; 3],
        channels: [0; 5],
    };
    cfg.channels[0] = dim(sd, "conv1.0.weight", 0)?;
    cfg.channels[4] = dim(sd, "conv5.0.weight", 0)?;
    for s in 0..3 {
        let stage = s + 2;
        cfg.repeats[s] = count(sd, |i| format!("stage{stage}.{i}.branch2.0.weight"));
        cfg.channels[s + 1] = 2 * dim(sd, &format!("stage{stage}.0.branch2.5.weight"), 0)?;
    }
    let name = match cfg.channels {
        [24, 48, 96, 192, 1024] => "shufflenet_v2_x0_5",
        [24, 116, 232, 464, 1024] => "shufflenet_v2_x1_0",
        [24, 176, 352, 704, 1024] => "shufflenet_v2_x1_5",
        [24, 244, 488, 976, 2048] => "shufflenet_v2_x2_0",
        _ => "shufflenet_v2",
    };
    let arch = builtin::shufflenet_v2(input, &cfg, c)?;
    let notes = vec![format!(
        "recognised as torchvision's {name}: channels {:?}, repeats {:?}",
        cfg.channels, cfg.repeats
    )];
    checked(arch, sd, name, notes)
}
