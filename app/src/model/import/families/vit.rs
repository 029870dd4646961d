//! Vision Transformers: timm's names (ViT and DeiT, with or without the
//! distillation token) and torchvision's.

use super::{checked, count, dim, Recognised, StateDict};
use crate::error::{Error, Result};
use crate::model::arch::builtin::{self, VitConfig, VitNames};

/// torchvision's `VisionTransformer`: width from the class token, patch
/// from the patch embedding, depth from the layers, the MLP's width from
/// its first layer.
pub fn torchvision(sd: &StateDict, input: [usize; 3], heads: Option<usize>) -> Result<Recognised> {
    let layer = |i: usize| format!("encoder.layers.encoder_layer_{i}");
    let cfg = VitConfig {
        patch: dim(sd, "conv_proj.weight", 2)?,
        dim: width(sd, "class_token")?,
        depth: count(sd, |i| format!("{}.ln_1.weight", layer(i))),
        heads: 0,
        mlp: dim(sd, &format!("{}.mlp.0.weight", layer(0)), 0)?,
        distilled: false,
        names: VitNames::Torchvision,
    };
    let pos = sd.shape("encoder.pos_embedding");
    build(
        sd,
        input,
        heads,
        cfg,
        pos,
        "heads.head.weight",
        "torchvision's ViT",
    )
}

/// timm's `VisionTransformer` and DeiT (`dist_token` and `head_dist`: the
/// distilled one, whose output is the mean of its two heads).
pub fn timm(sd: &StateDict, input: [usize; 3], heads: Option<usize>) -> Result<Recognised> {
    if sd.has("fc_norm.weight") {
        return Err(Error::Shape(
            "a ViT pooling its tokens by average (`fc_norm`): Shears builds the class-token \
             ViT"
            .into(),
        ));
    }
    let distilled = sd.has("dist_token");
    let cfg = VitConfig {
        patch: dim(sd, "patch_embed.proj.weight", 2)?,
        dim: width(sd, "cls_token")?,
        depth: count(sd, |i| format!("blocks.{i}.norm1.weight")),
        heads: 0,
        mlp: dim(sd, "blocks.0.mlp.fc1.weight", 0)?,
        distilled,
        names: VitNames::Timm,
    };
    let what = if distilled {
        "timm's distilled DeiT"
    } else {
        "timm's ViT"
    };
    build(
        sd,
        input,
        heads,
        cfg,
        sd.shape("pos_embed"),
        "head.weight",
        what,
    )
}

/// The width: the last dimension of the class token `name`.
fn width(sd: &StateDict, name: &str) -> Result<usize> {
    sd.shape(name)
        .and_then(|d| d.last().copied())
        .ok_or_else(|| Error::Shape(format!("`{name}` is missing or has no dimensions")))
}

/// The ViT of `cfg` with `heads` (given, or width / 64), its position
/// embedding `pos` checked against the input, kept if it has exactly the
/// state dict's tensors.
fn build(
    sd: &StateDict,
    input: [usize; 3],
    heads: Option<usize>,
    mut cfg: VitConfig,
    pos: Option<&[usize]>,
    head: &str,
    what: &str,
) -> Result<Recognised> {
    let (h, mut notes) = vit_heads(cfg.dim, heads);
    cfg.heads = h;
    check_tokens(pos, input, &cfg)?;
    let classes = dim(sd, head, 0)?;
    let arch = builtin::vit_named(input, &cfg, classes)?;
    notes.insert(
        0,
        format!(
            "recognised as {what}: width {}, {} blocks, patch {}, MLP {}",
            cfg.dim, cfg.depth, cfg.patch, cfg.mlp
        ),
    );
    checked(arch, sd, "vit", notes)
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
/// the patches of `cfg`.
fn check_tokens(dims: Option<&[usize]>, input: [usize; 3], cfg: &VitConfig) -> Result<()> {
    let Some(tokens) = dims.and_then(|d| d.get(1).copied()) else {
        return Ok(());
    };
    let [_, h, w] = input;
    let p = cfg.patch;
    let want = h
        .checked_div(p)
        .zip(w.checked_div(p))
        .map_or(0, |(a, b)| a * b + cfg.extra_tokens());
    if tokens != want {
        return Err(Error::Shape(format!(
            "the position embedding holds {tokens} tokens; a {h}x{w} input in {p}x{p} patches \
             gives {want} (resize the images to what the model was trained on)"
        )));
    }
    Ok(())
}
