//! Vision Transformers: timm's and torchvision's names.

use super::{fits, Recognised, StateDict};
use crate::error::{Error, Result};
use crate::model::arch::builtin;

/// torchvision's `VisionTransformer`: the same as timm's but for its names
/// and a free MLP width.
pub fn torchvision(sd: &StateDict, input: [usize; 3], heads: Option<usize>) -> Result<Recognised> {
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
        .and_then(|d| d.first().copied())
        .unwrap_or(0);
    let classes = sd
        .shape("heads.head.weight")
        .and_then(|d| d.first().copied())
        .unwrap_or(0);
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
pub fn timm(sd: &StateDict, input: [usize; 3], heads: Option<usize>) -> Result<Recognised> {
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
    let classes = sd
        .shape("head.weight")
        .and_then(|d| d.first().copied())
        .unwrap_or(0);
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
