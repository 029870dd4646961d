//! State dicts of the graph families recognised by their names and shapes:
//! torchvision's MobileNetV2 and V3, EfficientNet (B0–B7 and V2),
//! ConvNeXt, DenseNet, RegNet (X and Y), ShuffleNetV2 and SqueezeNet, the
//! Vision Transformers of timm and torchvision, and timm's EfficientNet
//! B0–B7, MobileNetV2 and RegNet (renamed onto torchvision's layout) and
//! ConvNeXt (built with timm's names). Each reader takes the
//! sizes the names and shapes give (blocks per stage, widths, kernels,
//! groups), fills in what they cannot give from torchvision's own
//! constructors (strides, activations, BatchNorm's epsilon), builds the
//! architecture (`arch::builtin`) and keeps it only if it has exactly the
//! state dict's names and shapes, so what opens is what the file holds.

mod convnext;
mod densenet;
mod efficientnet;
mod mobilenet;
mod regnet;
mod shufflenet;
mod squeezenet;
mod timm;
mod vit;

use super::state_dict::StateDict;
pub use super::torchvision::Recognised;
use crate::error::{Error, Result};
use crate::model::arch::Architecture;

/// One of the graph families, if the names look like one; `None` when they
/// look like none; an error when they look like one but do not fit.
/// `heads`: a ViT's number of attention heads (the names cannot tell;
/// by default width / 64, as timm's ViT-Ti/S/B have it).
pub fn recognise(
    sd: &StateDict,
    input: [usize; 3],
    heads: Option<usize>,
) -> Option<Result<Recognised>> {
    let has = |name: &str| sd.has(name);
    // The input channels are the first convolution's.
    let stem = [
        "features.0.0.weight",
        "features.conv0.weight",
        "stem.0.weight",
        "stem.conv.weight",
        "conv1.0.weight",
        "features.0.weight",
        "patch_embed.proj.weight",
        "conv_proj.weight",
    ]
    .into_iter()
    .find(|w| has(w))
    .unwrap_or("");
    let input = channels_of(sd, stem, input);
    let found = if has("features.1.conv.0.0.weight") && has("classifier.1.weight") {
        mobilenet::v2(sd, input)
    } else if has("features.1.block.0.0.weight") && has("classifier.3.weight") {
        mobilenet::v3(sd, input, None)
    } else if has("features.1.0.block.0.0.weight") && has("classifier.1.weight") {
        efficientnet::read(sd, input, false)
    } else if has("conv_stem.weight")
        && has("classifier.weight")
        && ["conv_dw", "conv", "conv_exp"]
            .iter()
            .any(|c| has(&format!("blocks.0.0.{c}.weight")))
    {
        timm::efficientnet_family(sd, input)
    } else if has("stem.conv.weight") && has("s1.b1.conv1.conv.weight") && has("head.fc.weight") {
        timm::regnet(sd, input)
    } else if has("features.1.0.block.0.weight") && has("features.1.0.layer_scale") {
        convnext::read(sd, input)
    } else if has("stem.0.weight")
        && has("stages.0.blocks.0.conv_dw.weight")
        && has("head.fc.weight")
    {
        convnext::read_timm(sd, input)
    } else if has("features.conv0.weight") && has("features.norm5.weight") {
        densenet::read(sd, input)
    } else if has("stem.0.weight") && has("trunk_output.block1.block1-0.f.a.0.weight") {
        regnet::read(sd, input)
    } else if has("conv1.0.weight") && has("stage2.0.branch2.0.weight") {
        shufflenet::read(sd, input)
    } else if has("features.0.weight")
        && has("classifier.1.weight")
        && has("features.3.squeeze.weight")
    {
        squeezenet::read(sd, input)
    } else if has("cls_token") && has("blocks.0.attn.qkv.weight") && has("head.weight") {
        // timm's ViT and DeiT.
        vit::timm(sd, input, heads)
    } else if has("class_token") && has("conv_proj.weight") && has("heads.head.weight") {
        vit::torchvision(sd, input, heads)
    } else {
        return None;
    };
    Some(found)
}

/// Whether `arch` has exactly the state dict's tensors (names, under the
/// source's names where the graph keeps an alias, and shapes).
fn fits(arch: &Architecture, sd: &StateDict) -> bool {
    difference(arch, sd).is_none()
}

/// The first way `arch`'s tensors differ from the state dict's, if any: a
/// tensor the file lacks, one of another shape, or one too many.
fn difference(arch: &Architecture, sd: &StateDict) -> Option<String> {
    let specs = arch.tensor_specs();
    let source = |name: &str| {
        arch.graph
            .as_ref()
            .and_then(|g| g.aliases.get(name))
            .cloned()
            .unwrap_or_else(|| name.to_string())
    };
    for (name, dims, _) in &specs {
        let name = source(name);
        match sd.shape(&name) {
            None => return Some(format!("the file has no `{name}`")),
            Some(d) if d != dims.as_slice() => {
                return Some(format!(
                    "`{name}` is {d:?} in the file, the network needs {dims:?}"
                ))
            }
            Some(_) => {}
        }
    }
    if specs.len() != sd.tensors.len() {
        let ours: std::collections::HashSet<String> =
            specs.iter().map(|(n, ..)| source(n)).collect();
        let extra = sd.tensors.keys().find(|k| !ours.contains(k.as_str()));
        return Some(format!(
            "the file has `{}`, which the network does not use",
            extra.map_or("?", String::as_str)
        ));
    }
    None
}

/// `input` with the channels the model's first convolution `weight` takes
/// (the model decides them, not the data).
fn channels_of(sd: &StateDict, weight: &str, input: [usize; 3]) -> [usize; 3] {
    let [c, h, w] = input;
    [
        sd.shape(weight)
            .and_then(|d| d.get(1).copied())
            .unwrap_or(c),
        h,
        w,
    ]
}

/// `arch`, read from the state dict as torchvision's `name`, if it has
/// exactly the state dict's names and shapes; `notes` say what was read
/// and assumed.
fn checked(
    arch: Architecture,
    sd: &StateDict,
    name: &str,
    notes: Vec<String>,
) -> Result<Recognised> {
    if let Some(diff) = difference(&arch, sd) {
        return Err(Error::Shape(format!(
            "the names look like {name}'s, but the network they describe ({}) does not have \
             these tensors: {diff}",
            notes.first().map_or("", String::as_str),
        )));
    }
    Ok(Recognised {
        arch,
        name: name.to_string(),
        notes,
    })
}

/// Dimension `axis` of tensor `name`, or an error naming it.
fn dim(sd: &StateDict, name: &str, axis: usize) -> Result<usize> {
    sd.shape(name)
        .and_then(|d| d.get(axis).copied())
        .ok_or_else(|| {
            Error::Shape(format!(
                "tensor `{name}` is missing or has no dimension {axis}"
            ))
        })
}

/// How many of `name(0)`, `name(1)`, ... the state dict has in a row.
fn count(sd: &StateDict, name: impl Fn(usize) -> String) -> usize {
    (0..).take_while(|&i| sd.has(&name(i))).count()
}

/// The classes: the rows of the classifier `name`.
fn classes(sd: &StateDict, name: &str) -> Result<usize> {
    dim(sd, name, 0)
}

/// The first width multiplier (in percent, round ones first) whose build
/// fits the state dict.
fn by_width(
    sd: &StateDict,
    name: &str,
    build: impl Fn(usize) -> Result<Architecture>,
) -> Result<Recognised> {
    let preferred = [100, 75, 50, 25, 35, 130, 140, 150, 200];
    for w in preferred.into_iter().chain(5..=400) {
        if let Ok(arch) = build(w) {
            if fits(&arch, sd) {
                return Ok(Recognised {
                    arch,
                    name: name.to_string(),
                    notes: vec![format!(
                        "recognised as torchvision's {name} with width multiplier {:.2}",
                        w as f64 / 100.0
                    )],
                });
            }
        }
    }
    Err(Error::Shape(format!(
        "the names are torchvision's {name}'s, but no width multiplier gives these shapes ({})",
        sd.describe()
    )))
}
