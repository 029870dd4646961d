//! torchvision's SqueezeNet: its `features` read index by index (a
//! convolution or Fire module where the names have one; a ReLU after a
//! convolution and a max pool at the other gaps, as in both of
//! torchvision's layouts).

use super::{checked, classes, dim, Recognised, StateDict};
use crate::error::Result;
use crate::model::arch::builtin::{self, SqueezenetStep};

/// A SqueezeNet read from the state dict.
pub fn read(sd: &StateDict, input: [usize; 3]) -> Result<Recognised> {
    let c = classes(sd, "classifier.1.weight")?;
    let last = (0..64)
        .filter(|i| {
            sd.has(&format!("features.{i}.weight"))
                || sd.has(&format!("features.{i}.squeeze.weight"))
        })
        .max()
        .unwrap_or(0);
    let mut steps = Vec::new();
    for i in 0..=last {
        let step = if sd.has(&format!("features.{i}.weight")) {
            let w = format!("features.{i}.weight");
            SqueezenetStep::Conv {
                out: dim(sd, &w, 0)?,
                kernel: dim(sd, &w, 2)?,
            }
        } else if sd.has(&format!("features.{i}.squeeze.weight")) {
            let p = format!("features.{i}");
            SqueezenetStep::Fire {
                squeeze: dim(sd, &format!("{p}.squeeze.weight"), 0)?,
                expand1: dim(sd, &format!("{p}.expand1x1.weight"), 0)?,
                expand3: dim(sd, &format!("{p}.expand3x3.weight"), 0)?,
            }
        } else if matches!(steps.last(), Some(SqueezenetStep::Conv { .. })) {
            SqueezenetStep::Relu
        } else {
            SqueezenetStep::MaxPool
        };
        steps.push(step);
    }
    let name = match steps.first() {
        Some(SqueezenetStep::Conv { kernel: 7, .. }) => "squeezenet1_0",
        _ => "squeezenet1_1",
    };
    let fires = steps
        .iter()
        .filter(|s| matches!(s, SqueezenetStep::Fire { .. }))
        .count();
    let arch = builtin::squeezenet(input, &steps, c)?;
    let notes = vec![format!(
        "recognised as torchvision's SqueezeNet in {name}'s layout: {fires} Fire modules, max \
         pools between them where the names have gaps"
    )];
    checked(arch, sd, name, notes)
}
