//! timm's EfficientNet B0–B7 (`efficientnet_b*`) and V2 (`efficientnetv2_*`), MobileNetV2
//! (`mobilenetv2_*`) and RegNet X/Y (`regnetx_*`, `regnety_*`): the same
//! networks as torchvision's under other names (`conv_stem`,
//! `blocks.S.I.conv_dw`, `conv_head`, `classifier`; `s1.b1.conv1.conv`,
//! `head.fc`). The state dict is renamed onto torchvision's layout, read by
//! torchvision's readers, and the graph keeps timm's names as aliases, so
//! what Shears writes back loads into the timm model. TensorFlow-ported
//! models (`tf_*`: "same" padding) have the same names but compute
//! differently: they open from ONNX.

use std::collections::BTreeMap;

use super::{efficientnet, mobilenet, regnet, Recognised, StateDict};
use crate::error::{Error, Result};

/// timm's EfficientNet or MobileNetV2 (with squeeze-excitation: the
/// former).
pub fn efficientnet_family(sd: &StateDict, input: [usize; 3]) -> Result<Recognised> {
    let se = sd.tensors.keys().any(|k| k.contains(".se.conv_reduce."));
    if sd.has("conv_head.bias") && !sd.has("bn2.weight") {
        return mobilenet_v3(sd, input);
    }
    if !sd.has("bn2.weight") {
        return Err(Error::Shape(
            "timm's names of a network other than EfficientNet B0–B7 and V2, MobileNetV2 or \
             MobileNetV3: Shears reads it from ONNX (torch.onnx.export)"
                .into(),
        ));
    }
    let mut r = via_torchvision(sd, renames(sd, se), |tv| {
        if se {
            efficientnet::read(tv, input, true)
        } else {
            mobilenet::v2(tv, input)
        }
    })?;
    r.notes.push(
        "timm's names; symmetric padding as timm's own models (a `tf_` model pads as \
         TensorFlow does: open its ONNX export instead)"
            .into(),
    );
    Ok(r)
}

/// timm's MobileNetV3 (small or large): blocks onto torchvision's
/// `features.K.block.J`, its last 1x1 convolution onto `features.N`, and
/// its head (`conv_head`, a convolution after the pooling) kept as timm has
/// it.
fn mobilenet_v3(sd: &StateDict, input: [usize; 3]) -> Result<Recognised> {
    let mut map = Renames::default();
    map.put("conv_stem", "features.0.0", &CONV);
    map.put("bn1", "features.0.1", &BN);
    let mut k = 1;
    let mut expanded = Vec::new();
    for s in (0..).take_while(|s| sd.has(&format!("blocks.{s}.0.bn1.weight"))) {
        for i in (0..).take_while(|i| sd.has(&format!("blocks.{s}.{i}.bn1.weight"))) {
            let t = format!("blocks.{s}.{i}");
            if let Some(&c) = sd
                .shape(&format!("{t}.conv_dw.weight"))
                .and_then(|d| d.first())
            {
                expanded.push(c);
            }
            if sd.has(&format!("{t}.conv.weight")) {
                // The last 1x1 convolution (timm's `cn` stage).
                map.put(&format!("{t}.conv"), &format!("features.{k}.0"), &CONV);
                map.put(&format!("{t}.bn1"), &format!("features.{k}.1"), &BN);
                k += 1;
                continue;
            }
            let o = |j: usize| format!("features.{k}.block.{j}");
            let se = sd.has(&format!("{t}.se.conv_reduce.weight"));
            let mut j = 0;
            let ir = sd.has(&format!("{t}.conv_pwl.weight"));
            if ir {
                map.conv_bn(&t, "conv_pw", "bn1", &o(j));
                j += 1;
                map.conv_bn(&t, "conv_dw", "bn2", &o(j));
                j += 1;
            } else {
                map.conv_bn(&t, "conv_dw", "bn1", &o(j));
                j += 1;
            }
            if se {
                map.put(
                    &format!("{t}.se.conv_reduce"),
                    &format!("{}.fc1", o(j)),
                    &BIASED,
                );
                map.put(
                    &format!("{t}.se.conv_expand"),
                    &format!("{}.fc2", o(j)),
                    &BIASED,
                );
                j += 1;
            }
            if ir {
                map.conv_bn(&t, "conv_pwl", "bn3", &o(j));
            } else {
                map.conv_bn(&t, "conv_pw", "bn2", &o(j));
            }
            k += 1;
        }
    }
    map.put("conv_head", "conv_head", &BIASED);
    map.put("classifier", "classifier.3", &BIASED);
    let timm = crate::model::arch::builtin::TimmMobilenetV3 {
        stem: super::dim(sd, "conv_stem.weight", 0)?,
        head: super::dim(sd, "conv_head.weight", 0)?,
        expanded,
    };
    let mut r = via_torchvision(sd, Ok(map.0), |tv| mobilenet::v3(tv, input, Some(&timm)))?;
    r.notes.push(
        "timm's names and BatchNorm defaults; symmetric padding as timm's own models (a `tf_` \
         model pads as TensorFlow does: open its ONNX export instead)"
            .into(),
    );
    Ok(r)
}

/// timm's RegNet X or Y.
pub fn regnet(sd: &StateDict, input: [usize; 3]) -> Result<Recognised> {
    let mut map = Renames::default();
    map.put("stem.conv", "stem.0", &CONV);
    map.put("stem.bn", "stem.1", &BN);
    for s in (1..).take_while(|s| sd.has(&format!("s{s}.b1.conv1.conv.weight"))) {
        for i in (1..).take_while(|i| sd.has(&format!("s{s}.b{i}.conv1.conv.weight"))) {
            let (t, o) = (
                format!("s{s}.b{i}"),
                format!("trunk_output.block{s}.block{s}-{}", i - 1),
            );
            for (a, b) in [
                ("conv1", "f.a"),
                ("conv2", "f.b"),
                ("conv3", "f.c"),
                ("downsample", "proj"),
            ] {
                map.conv_bn(
                    &t,
                    &format!("{a}.conv"),
                    &format!("{a}.bn"),
                    &format!("{o}.{b}"),
                );
            }
            map.put(&format!("{t}.se.fc1"), &format!("{o}.f.se.fc1"), &BIASED);
            map.put(&format!("{t}.se.fc2"), &format!("{o}.f.se.fc2"), &BIASED);
        }
    }
    map.put("head.fc", "fc", &BIASED);
    via_torchvision(sd, Ok(map.0), |tv| regnet::read(tv, input))
}

/// timm's names to torchvision's, built up module by module.
#[derive(Default)]
struct Renames(BTreeMap<String, String>);

impl Renames {
    /// Module `timm`'s tensors `parts` are module `ours`'s.
    fn put(&mut self, timm: &str, ours: &str, parts: &[&str]) {
        for p in parts {
            self.0.insert(format!("{timm}.{p}"), format!("{ours}.{p}"));
        }
    }

    /// Block `t`'s convolution `conv` and BatchNorm `bn` are torchvision's
    /// `Conv2dNormActivation` `ours` (`ours.0`, `ours.1`).
    fn conv_bn(&mut self, t: &str, conv: &str, bn: &str, ours: &str) {
        self.put(&format!("{t}.{conv}"), &format!("{ours}.0"), &CONV);
        self.put(&format!("{t}.{bn}"), &format!("{ours}.1"), &BN);
    }
}

/// A convolution's tensors.
const CONV: [&str; 1] = ["weight"];
/// A BatchNorm's tensors.
const BN: [&str; 4] = ["weight", "bias", "running_mean", "running_var"];
/// A layer's weight and bias.
const BIASED: [&str; 2] = ["weight", "bias"];

/// The state dict renamed by `renames` (timm's name to torchvision's; a
/// name it lacks is an error), read by torchvision's `read`, with timm's
/// names kept as the graph's aliases.
fn via_torchvision(
    sd: &StateDict,
    renames: Result<BTreeMap<String, String>>,
    read: impl FnOnce(&StateDict) -> Result<Recognised>,
) -> Result<Recognised> {
    let renames = renames?;
    let mut tv = StateDict {
        tensors: BTreeMap::new(),
        extra: BTreeMap::new(),
        nested_key: sd.nested_key.clone(),
    };
    for (timm_name, t) in &sd.tensors {
        let ours = renames.get(timm_name).ok_or_else(|| {
            Error::Shape(format!("timm's `{timm_name}` has no place in the layout"))
        })?;
        tv.tensors.insert(ours.clone(), t.clone());
    }
    let mut r = read(&tv)?;
    if let Some(first) = r.notes.first_mut() {
        *first = first.replace("torchvision's", "timm's");
    }
    let g = r
        .arch
        .graph
        .as_mut()
        .expect("the family readers build graphs");
    for (timm_name, ours) in renames {
        // Only the names of tensors the graph has (a rename of a part the
        // layout lacks, e.g. squeeze-excitation in a RegNetX, is unused).
        if tv.tensors.contains_key(&ours) {
            g.aliases.insert(ours, timm_name);
        }
    }
    Ok(r)
}

/// Every timm name of the state dict (and its BatchNorm statistics) to
/// torchvision's: EfficientNet's `features.{s+1}.{i}.block.{j}` (`se`) or
/// MobileNetV2's `features.{k}.conv.{j}`.
fn renames(sd: &StateDict, se: bool) -> Result<BTreeMap<String, String>> {
    let mut map = Renames::default();
    const SE: [&str; 2] = BIASED;
    map.put("conv_stem", "features.0.0", &CONV);
    map.put("bn1", "features.0.1", &BN);
    let stages = (0..)
        .take_while(|s| sd.has(&format!("blocks.{s}.0.bn1.weight")))
        .count();
    let mut k = 1; // MobileNetV2's running block index
    for s in 0..stages {
        let blocks = (0..)
            .take_while(|i| sd.has(&format!("blocks.{s}.{i}.bn1.weight")))
            .count();
        for i in 0..blocks {
            let t = format!("blocks.{s}.{i}");
            let ours = if se {
                format!("features.{}.{i}.block", s + 1)
            } else {
                format!("features.{k}.conv")
            };
            let o = |j: &str| format!("{ours}.{j}");
            // EfficientNetV2's fused blocks: one convolution (ConvBnAct)
            // or an expanding one and a projection (EdgeResidual).
            if sd.has(&format!("{t}.conv.weight")) {
                map.conv_bn(&t, "conv", "bn1", &o("0"));
                k += 1;
                continue;
            }
            if sd.has(&format!("{t}.conv_exp.weight")) {
                map.conv_bn(&t, "conv_exp", "bn1", &o("0"));
                map.conv_bn(&t, "conv_pwl", "bn2", &o("1"));
                k += 1;
                continue;
            }
            // Depthwise-separable (no expansion) or inverted residual.
            let ds = !sd.has(&format!("{t}.conv_pwl.weight"));
            match (ds, se) {
                (true, true) => {
                    map.conv_bn(&t, "conv_dw", "bn1", &o("0"));
                    map.put(&format!("{t}.se.conv_reduce"), &o("1.fc1"), &SE);
                    map.put(&format!("{t}.se.conv_expand"), &o("1.fc2"), &SE);
                    map.conv_bn(&t, "conv_pw", "bn2", &o("2"));
                }
                (false, true) => {
                    map.conv_bn(&t, "conv_pw", "bn1", &o("0"));
                    map.conv_bn(&t, "conv_dw", "bn2", &o("1"));
                    map.put(&format!("{t}.se.conv_reduce"), &o("2.fc1"), &SE);
                    map.put(&format!("{t}.se.conv_expand"), &o("2.fc2"), &SE);
                    map.conv_bn(&t, "conv_pwl", "bn3", &o("3"));
                }
                (true, false) => {
                    map.conv_bn(&t, "conv_dw", "bn1", &o("0"));
                    map.put(&format!("{t}.conv_pw"), &o("1"), &CONV);
                    map.put(&format!("{t}.bn2"), &o("2"), &BN);
                }
                (false, false) => {
                    map.conv_bn(&t, "conv_pw", "bn1", &o("0"));
                    map.conv_bn(&t, "conv_dw", "bn2", &o("1"));
                    map.put(&format!("{t}.conv_pwl"), &o("2"), &CONV);
                    map.put(&format!("{t}.bn3"), &o("3"), &BN);
                }
            }
            k += 1;
        }
    }
    let head = if se { stages + 1 } else { k };
    map.put("conv_head", &format!("features.{head}.0"), &CONV);
    map.put("bn2", &format!("features.{head}.1"), &BN);
    map.put("classifier", "classifier.1", &SE);
    Ok(map.0)
}
