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
    let mut map = BTreeMap::new();
    let mut put = |timm: &str, ours: &str, parts: &[&str]| {
        for p in parts {
            map.insert(format!("{timm}.{p}"), format!("{ours}.{p}"));
        }
    };
    put("conv_stem", "features.0.0", &CONV);
    put("bn1", "features.0.1", &BN);
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
                put(&format!("{t}.conv"), &format!("features.{k}.0"), &CONV);
                put(&format!("{t}.bn1"), &format!("features.{k}.1"), &BN);
                k += 1;
                continue;
            }
            let o = |j: usize| format!("features.{k}.block.{j}");
            let se = sd.has(&format!("{t}.se.conv_reduce.weight"));
            let mut j = 0;
            let conv_bn =
                |put: &mut dyn FnMut(&str, &str, &[&str]), conv: &str, bn: &str, j: &mut usize| {
                    put(&format!("{t}.{conv}"), &format!("{}.0", o(*j)), &CONV);
                    put(&format!("{t}.{bn}"), &format!("{}.1", o(*j)), &BN);
                    *j += 1;
                };
            let ir = sd.has(&format!("{t}.conv_pwl.weight"));
            if ir {
                conv_bn(&mut put, "conv_pw", "bn1", &mut j);
                conv_bn(&mut put, "conv_dw", "bn2", &mut j);
            } else {
                conv_bn(&mut put, "conv_dw", "bn1", &mut j);
            }
            if se {
                put(
                    &format!("{t}.se.conv_reduce"),
                    &format!("{}.fc1", o(j)),
                    &BIASED,
                );
                put(
                    &format!("{t}.se.conv_expand"),
                    &format!("{}.fc2", o(j)),
                    &BIASED,
                );
                j += 1;
            }
            if ir {
                conv_bn(&mut put, "conv_pwl", "bn3", &mut j);
            } else {
                conv_bn(&mut put, "conv_pw", "bn2", &mut j);
            }
            k += 1;
        }
    }
    put("conv_head", "conv_head", &BIASED);
    put("classifier", "classifier.3", &BIASED);
    let timm = crate::model::arch::builtin::TimmMobilenetV3 {
        stem: super::dim(sd, "conv_stem.weight", 0)?,
        head: super::dim(sd, "conv_head.weight", 0)?,
        expanded,
    };
    let mut r = via_torchvision(sd, Ok(map), |tv| mobilenet::v3(tv, input, Some(&timm)))?;
    r.notes.push(
        "timm's names and BatchNorm defaults; symmetric padding as timm's own models (a `tf_` \
         model pads as TensorFlow does: open its ONNX export instead)"
            .into(),
    );
    Ok(r)
}

/// timm's RegNet X or Y.
pub fn regnet(sd: &StateDict, input: [usize; 3]) -> Result<Recognised> {
    let mut map = BTreeMap::new();
    let mut put = |timm: &str, ours: &str, parts: &[&str]| {
        for p in parts {
            map.insert(format!("{timm}.{p}"), format!("{ours}.{p}"));
        }
    };
    put("stem.conv", "stem.0", &CONV);
    put("stem.bn", "stem.1", &BN);
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
                put(&format!("{t}.{a}.conv"), &format!("{o}.{b}.0"), &CONV);
                put(&format!("{t}.{a}.bn"), &format!("{o}.{b}.1"), &BN);
            }
            put(&format!("{t}.se.fc1"), &format!("{o}.f.se.fc1"), &BIASED);
            put(&format!("{t}.se.fc2"), &format!("{o}.f.se.fc2"), &BIASED);
        }
    }
    put("head.fc", "fc", &BIASED);
    via_torchvision(sd, Ok(map), |tv| regnet::read(tv, input))
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
    let mut map = BTreeMap::new();
    let mut put = |timm: &str, ours: &str, parts: &[&str]| {
        for p in parts {
            map.insert(format!("{timm}.{p}"), format!("{ours}.{p}"));
        }
    };
    const SE: [&str; 2] = BIASED;
    put("conv_stem", "features.0.0", &CONV);
    put("bn1", "features.0.1", &BN);
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
                put(&format!("{t}.conv"), &o("0.0"), &CONV);
                put(&format!("{t}.bn1"), &o("0.1"), &BN);
                k += 1;
                continue;
            }
            if sd.has(&format!("{t}.conv_exp.weight")) {
                put(&format!("{t}.conv_exp"), &o("0.0"), &CONV);
                put(&format!("{t}.bn1"), &o("0.1"), &BN);
                put(&format!("{t}.conv_pwl"), &o("1.0"), &CONV);
                put(&format!("{t}.bn2"), &o("1.1"), &BN);
                k += 1;
                continue;
            }
            // Depthwise-separable (no expansion) or inverted residual.
            let ds = !sd.has(&format!("{t}.conv_pwl.weight"));
            match (ds, se) {
                (true, true) => {
                    put(&format!("{t}.conv_dw"), &o("0.0"), &CONV);
                    put(&format!("{t}.bn1"), &o("0.1"), &BN);
                    put(&format!("{t}.se.conv_reduce"), &o("1.fc1"), &SE);
                    put(&format!("{t}.se.conv_expand"), &o("1.fc2"), &SE);
                    put(&format!("{t}.conv_pw"), &o("2.0"), &CONV);
                    put(&format!("{t}.bn2"), &o("2.1"), &BN);
                }
                (false, true) => {
                    put(&format!("{t}.conv_pw"), &o("0.0"), &CONV);
                    put(&format!("{t}.bn1"), &o("0.1"), &BN);
                    put(&format!("{t}.conv_dw"), &o("1.0"), &CONV);
                    put(&format!("{t}.bn2"), &o("1.1"), &BN);
                    put(&format!("{t}.se.conv_reduce"), &o("2.fc1"), &SE);
                    put(&format!("{t}.se.conv_expand"), &o("2.fc2"), &SE);
                    put(&format!("{t}.conv_pwl"), &o("3.0"), &CONV);
                    put(&format!("{t}.bn3"), &o("3.1"), &BN);
                }
                (true, false) => {
                    put(&format!("{t}.conv_dw"), &o("0.0"), &CONV);
                    put(&format!("{t}.bn1"), &o("0.1"), &BN);
                    put(&format!("{t}.conv_pw"), &o("1"), &CONV);
                    put(&format!("{t}.bn2"), &o("2"), &BN);
                }
                (false, false) => {
                    put(&format!("{t}.conv_pw"), &o("0.0"), &CONV);
                    put(&format!("{t}.bn1"), &o("0.1"), &BN);
                    put(&format!("{t}.conv_dw"), &o("1.0"), &CONV);
                    put(&format!("{t}.bn2"), &o("1.1"), &BN);
                    put(&format!("{t}.conv_pwl"), &o("2"), &CONV);
                    put(&format!("{t}.bn3"), &o("3"), &BN);
                }
            }
            k += 1;
        }
    }
    let head = if se { stages + 1 } else { k };
    put("conv_head", &format!("features.{head}.0"), &CONV);
    put("bn2", &format!("features.{head}.1"), &BN);
    put("classifier", "classifier.1", &SE);
    Ok(map)
}
