//! torchvision's EfficientNet, B0–B7 and V2: stages, blocks, widths,
//! kernels and expansions read from the names and shapes; strides from
//! torchvision's tables (the same for every variant); BatchNorm's epsilon
//! and the dropout from the variant's constructor where the layout is one
//! of torchvision's, else the class defaults, said in a note.

use super::{checked, classes, count, dim, Recognised, StateDict};
use crate::error::{Error, Result};
use crate::model::arch::builtin::{
    self, b_layout, EfficientnetConfig, EfficientnetStage, STAGE_STRIDES,
};
use crate::model::arch::Family;

/// torchvision's named variants: (name, width %, depth %, dropout); B5 to
/// B7 also use BatchNorm epsilon 1e-3 and momentum 0.01.
const B_VARIANTS: [(&str, usize, usize, f32); 8] = [
    ("efficientnet_b0", 100, 100, 0.2),
    ("efficientnet_b1", 100, 110, 0.2),
    ("efficientnet_b2", 110, 120, 0.3),
    ("efficientnet_b3", 120, 140, 0.3),
    ("efficientnet_b4", 140, 180, 0.4),
    ("efficientnet_b5", 160, 220, 0.4),
    ("efficientnet_b6", 180, 260, 0.5),
    ("efficientnet_b7", 200, 310, 0.5),
];

/// An EfficientNet read from the state dict (torchvision's names; `timm`:
/// renamed from timm's, whose B0–B7 keep PyTorch's BatchNorm defaults).
pub fn read(sd: &StateDict, input: [usize; 3], timm: bool) -> Result<Recognised> {
    let c = classes(sd, "classifier.1.weight")?;
    let mut cfg = layout(sd)?;
    let fused = cfg.stages.iter().any(|s| s.fused);
    let described = describe(&cfg);
    let whose = if timm { "timm" } else { "torchvision" };
    let (name, family, assumed) = if fused {
        // timm's own (not TensorFlow-ported) V2 keep PyTorch's default.
        cfg.bn_eps = if timm { 1e-5 } else { 1e-3 };
        // V2-S, -M and -L by their last stage; stochastic depth 0.2 in all.
        let (variant, dropout) = match (cfg.stages.len(), cfg.stages.last().map(|s| s.out)) {
            (6, Some(256)) => ("efficientnet_v2_s", 0.2),
            (7, Some(512)) => ("efficientnet_v2_m", 0.3),
            (7, Some(640)) => ("efficientnet_v2_l", 0.4),
            _ => ("efficientnet_v2", 0.2),
        };
        cfg.dropout = dropout;
        let note = format!(
            "BatchNorm epsilon 1e-3 and dropout {dropout} as torchvision's {}",
            if variant == "efficientnet_v2" {
                "EfficientNetV2 constructors"
            } else {
                variant
            }
        );
        (variant, Family::EfficientnetV2, note)
    } else {
        let variant = B_VARIANTS.iter().find(|&&(_, w, d, _)| {
            let b = b_layout(w, d, 0.0, 0.0);
            b.stem == cfg.stem && b.stages == cfg.stages && b.last == cfg.last
        });
        match variant {
            Some(&(name, w, _, dropout)) => {
                cfg.dropout = dropout;
                if w >= 160 && !timm {
                    cfg.bn_eps = 1e-3;
                    cfg.bn_momentum = 0.01;
                }
                let note = format!(
                    "BatchNorm epsilon {} and dropout {dropout} as {whose}'s {name}",
                    cfg.bn_eps
                );
                (name, Family::EfficientnetB0, note)
            }
            None => (
                "efficientnet",
                Family::EfficientnetB0,
                "BatchNorm epsilon 1e-5 and dropout 0.2 assumed (torchvision's EfficientNet \
                 class defaults; B5–B7 use 1e-3)"
                    .to_string(),
            ),
        }
    };
    let arch = builtin::efficientnet(input, &cfg, c, family)?;
    let whose = if timm { "timm" } else { "torchvision" };
    let notes = vec![
        format!("recognised as {whose}'s {name}: {described}"),
        assumed,
    ];
    checked(arch, sd, name, notes)
}

/// "N stages: F fused, M MBConv; blocks [...]; widths [...]".
fn describe(cfg: &EfficientnetConfig) -> String {
    let fused = cfg.stages.iter().filter(|s| s.fused).count();
    let blocks: Vec<usize> = cfg.stages.iter().map(|s| s.blocks).collect();
    let widths: Vec<usize> = cfg.stages.iter().map(|s| s.out).collect();
    format!(
        "{} stages ({fused} of fused MBConv blocks), blocks {blocks:?}, widths {widths:?}",
        cfg.stages.len()
    )
}

/// The stages as the names and shapes give them.
fn layout(sd: &StateDict) -> Result<EfficientnetConfig> {
    let stem = dim(sd, "features.0.0.weight", 0)?;
    let n = count(sd, |s| format!("features.{}.0.block.0.0.weight", s + 1));
    if n > STAGE_STRIDES.len() {
        return Err(Error::Shape(format!(
            "an EfficientNet of {n} stages: torchvision's have at most 7"
        )));
    }
    let mut c_in = stem;
    let mut stages = Vec::new();
    for s in 1..=n {
        let p = |j: usize| format!("features.{s}.0.block.{j}");
        let w = |j: usize| format!("{}.0.weight", p(j));
        let blocks = count(sd, |i| format!("features.{s}.{i}.block.0.0.weight"));
        let fused = !(1..=2).any(|j| sd.has(&format!("{}.fc1.weight", p(j))));
        // (kernel and hidden width from, output from).
        let (conv, out_conv) = if fused {
            (w(0), if sd.has(&w(1)) { w(1) } else { w(0) })
        } else {
            let j = usize::from(sd.has(&w(3)));
            (w(j), w(j + 2))
        };
        let (kernel, out) = (dim(sd, &conv, 2)?, dim(sd, &out_conv, 0)?);
        // A fused block without expansion has one convolution, to `out`.
        let hidden = if conv == out_conv {
            c_in
        } else {
            dim(sd, &conv, 0)?
        };
        let expand = (1..=16)
            .find(|&r| builtin::divisible((c_in * r) as f64) == hidden)
            .ok_or_else(|| {
                Error::Shape(format!(
                    "`{conv}` widens {c_in} channels to {hidden}, which no expansion ratio gives"
                ))
            })?;
        stages.push(EfficientnetStage {
            fused,
            expand,
            kernel,
            stride: STAGE_STRIDES[s - 1],
            out,
            blocks,
        });
        c_in = out;
    }
    Ok(EfficientnetConfig {
        stem,
        stages,
        last: dim(sd, &format!("features.{}.0.weight", n + 1), 0)?,
        bn_eps: 1e-5,
        bn_momentum: 0.1,
        dropout: 0.2,
        stochastic_depth: 0.2,
    })
}
