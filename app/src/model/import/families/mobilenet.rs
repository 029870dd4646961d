//! torchvision's MobileNetV2 and MobileNetV3: the layout is the table,
//! the width multiplier is found from the shapes.

use super::{by_width, classes, count, Recognised, StateDict};
use crate::error::{Error, Result};
use crate::model::arch::builtin::{self, MobilenetV3Size};

/// MobileNetV2 at the width multiplier that fits.
pub fn v2(sd: &StateDict, input: [usize; 3]) -> Result<Recognised> {
    let c = classes(sd, "classifier.1.weight")?;
    by_width(sd, "mobilenet_v2", |w| builtin::mobilenet_v2(input, w, c))
}

/// MobileNetV3: small (11 blocks) or large (15), at the width multiplier
/// that fits (`timm`: timm's, as read from its names).
pub fn v3(
    sd: &StateDict,
    input: [usize; 3],
    timm: Option<&builtin::TimmMobilenetV3>,
) -> Result<Recognised> {
    let c = classes(sd, "classifier.3.weight")?;
    let blocks = count(sd, |i| format!("features.{}.block.0.0.weight", i + 1));
    let (size, name) = match blocks {
        11 => (MobilenetV3Size::Small, "mobilenet_v3_small"),
        15 => (MobilenetV3Size::Large, "mobilenet_v3_large"),
        n => {
            return Err(Error::Shape(format!(
                "the names are torchvision's MobileNetV3's, but it has {n} blocks (small has 11, \
                 large 15)"
            )))
        }
    };
    by_width(sd, name, |w| builtin::mobilenet_v3(input, size, w, c, timm))
}
