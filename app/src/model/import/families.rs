//! State dicts of the graph families recognised by their names and shapes:
//! torchvision's MobileNetV2 and EfficientNet (B0's layout at any width
//! and depth multiplier) and timm's Vision Transformer. Each is matched
//! against the built-in architecture of the same layout (`arch::builtin`):
//! the multipliers are found by building candidates until one has exactly
//! the state dict's names and shapes, so what opens is what the file holds.

use super::state_dict::StateDict;
use super::torchvision::Recognised;
use crate::error::{Error, Result};
use crate::model::arch::builtin;
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
    let classes = |name: &str| sd.shape(name).map(|d| d[0]);
    if sd.has("features.1.conv.0.0.weight") && sd.has("classifier.1.weight") {
        let c = classes("classifier.1.weight")?;
        return Some(by_width(sd, "mobilenet_v2", |w| {
            builtin::mobilenet_v2(input, w, c)
        }));
    }
    if sd.has("features.1.0.block.0.0.weight") && sd.has("classifier.1.weight") {
        let c = classes("classifier.1.weight")?;
        return Some(efficientnet(sd, input, c));
    }
    if sd.has("cls_token") && sd.has("blocks.0.attn.qkv.weight") && sd.has("head.weight") {
        return Some(vit(sd, input, heads));
    }
    if sd.has("class_token") && sd.has("conv_proj.weight") && sd.has("heads.head.weight") {
        return Some(torchvision_vit(sd, input, heads));
    }
    None
}

/// Whether `arch` has exactly the state dict's tensors (names, under the
/// source's names where the graph keeps an alias, and shapes).
fn fits(arch: &Architecture, sd: &StateDict) -> bool {
    let specs = arch.tensor_specs();
    let source = |name: &str| {
        arch.graph
            .as_ref()
            .and_then(|g| g.aliases.get(name))
            .cloned()
            .unwrap_or_else(|| name.to_string())
    };
    specs.len() == sd.tensors.len()
        && specs
            .iter()
            .all(|(name, dims, _)| sd.shape(&source(name)) == Some(dims.as_slice()))
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

/// EfficientNet: the depth multiplier from the number of blocks per stage,
/// then the width multiplier from the shapes.
fn efficientnet(sd: &StateDict, input: [usize; 3], classes: usize) -> Result<Recognised> {
    let blocks: Vec<usize> = (1..=7)
        .map(|s| {
            (0..)
                .take_while(|i| {
                    sd.has(&format!("features.{s}.{i}.block.1.0.weight"))
                        || sd.has(&format!("features.{s}.{i}.block.0.0.weight"))
                })
                .count()
        })
        .collect();
    let base = [1usize, 2, 2, 3, 3, 4, 1];
    // Round multipliers (B0 to B7's) first: others with the same block
    // counts build the same network.
    let preferred = [100, 110, 120, 140, 180, 220, 260, 310, 25, 50, 75];
    let depth = preferred.into_iter().chain(5..=400).find(|d| {
        base.iter()
            .zip(&blocks)
            .all(|(&n, &got)| (n as f64 * *d as f64 / 100.0).ceil() as usize == got)
    });
    let Some(depth) = depth else {
        return Err(Error::Shape(format!(
            "the names are torchvision's EfficientNet's, but its stages have {blocks:?} blocks, \
             which no depth multiplier of B0's layout gives"
        )));
    };
    let mut r = by_width(sd, "efficientnet", |w| {
        builtin::efficientnet_b0(input, w, depth, classes)
    })?;
    r.notes[0] = format!(
        "recognised as torchvision's EfficientNet (B0's layout) with depth multiplier {:.2}; {}",
        depth as f64 / 100.0,
        r.notes[0]
    );
    Ok(r)
}

/// torchvision's `VisionTransformer`: the same as timm's but for its names
/// and a free MLP width.
fn torchvision_vit(sd: &StateDict, input: [usize; 3], heads: Option<usize>) -> Result<Recognised> {
    let dim = sd
        .shape("class_token")
        .and_then(|d| d.last().copied())
        .unwrap_or(0);
    let patch = sd
        .shape("conv_proj.weight")
        .and_then(|d| d.get(2).copied())
        .unwrap_or(0);
    let layer = |i: usize| format!("encoder.layers.encoder_layer_{i}");
    let depth = (0..)
        .take_while(|&i| sd.has(&format!("{}.ln_1.weight", layer(i))))
        .count();
    let mlp = sd
        .shape(&format!("{}.mlp.0.weight", layer(0)))
        .map_or(0, |d| d[0]);
    let classes = sd.shape("heads.head.weight").map_or(0, |d| d[0]);
    let (heads, mut notes) = vit_heads(dim, heads);
    check_tokens(sd.shape("encoder.pos_embedding"), input, patch)?;
    let arch = builtin::vit_named(
        input,
        patch,
        dim,
        depth,
        heads,
        mlp,
        classes,
        builtin::VitNames::Torchvision,
    )?;
    if !fits(&arch, sd) {
        return Err(Error::Shape(format!(
            "the names are torchvision's ViT's, but the shapes are not those of a width-{dim}, \
             {depth}-block ViT with patch {patch} ({})",
            sd.describe()
        )));
    }
    notes.insert(
        0,
        format!("recognised as torchvision's ViT: width {dim}, {depth} blocks, patch {patch}, MLP {mlp}"),
    );
    Ok(Recognised {
        arch,
        name: "vit".into(),
        notes,
    })
}

/// A ViT's heads: given, or width / 64 with a note saying so.
fn vit_heads(dim: usize, heads: Option<usize>) -> (usize, Vec<String>) {
    match heads {
        Some(h) => (h, Vec::new()),
        None => {
            let h = (dim / 64).max(1);
            (
                h,
                vec![format!(
                    "{h} attention heads assumed (width {dim} / 64, as timm's ViT-Ti/S/B); the \
                     names cannot tell: give `--heads` or the import form's Attention heads if it \
                     has others"
                )],
            )
        }
    }
}

/// Refuses a position embedding of `dims` that does not fit `input` in
/// `patch`x`patch` patches.
fn check_tokens(dims: Option<&[usize]>, input: [usize; 3], patch: usize) -> Result<()> {
    let Some(tokens) = dims.and_then(|d| d.get(1).copied()) else {
        return Ok(());
    };
    let [_, h, w] = input;
    let want = h
        .checked_div(patch)
        .zip(w.checked_div(patch))
        .map_or(0, |(a, b)| a * b + 1);
    if tokens != want {
        return Err(Error::Shape(format!(
            "the position embedding holds {tokens} tokens; a {h}x{w} input in {patch}x{patch} \
             patches gives {want} (resize the images to what the model was trained on)"
        )));
    }
    Ok(())
}

/// timm's Vision Transformer: width from the class token, patch from the
/// patch embedding, depth from the blocks, heads given or width / 64.
fn vit(sd: &StateDict, input: [usize; 3], heads: Option<usize>) -> Result<Recognised> {
    let dim = sd
        .shape("cls_token")
        .and_then(|d| d.last().copied())
        .unwrap_or(0);
    let patch = sd
        .shape("patch_embed.proj.weight")
        .and_then(|d| d.get(2).copied())
        .unwrap_or(0);
    let depth = (0..)
        .take_while(|i| sd.has(&format!("blocks.{i}.norm1.weight")))
        .count();
    let classes = sd.shape("head.weight").map_or(0, |d| d[0]);
    let (heads, mut notes) = vit_heads(dim, heads);
    if sd.has("fc_norm.weight") {
        return Err(Error::Shape(
            "a ViT pooling its tokens by average (`fc_norm`): Shears builds the class-token \
             ViT"
            .into(),
        ));
    }
    check_tokens(sd.shape("pos_embed"), input, patch)?;
    let arch = builtin::vit(input, patch, dim, depth, heads, classes)?;
    if !fits(&arch, sd) {
        return Err(Error::Shape(format!(
            "the names are timm's ViT's, but the shapes are not those of a width-{dim}, \
             {depth}-block ViT with patch {patch} and an MLP of 4x the width ({})",
            sd.describe()
        )));
    }
    notes.insert(
        0,
        format!("recognised as timm's ViT: width {dim}, {depth} blocks, patch {patch}"),
    );
    Ok(Recognised {
        arch,
        name: "vit".into(),
        notes,
    })
}
