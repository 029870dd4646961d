//! Vision Transformers as timm and torchvision build them.

use super::{bad, Builder};
use crate::error::Result;
use crate::model::arch::{Architecture, Family};
use crate::model::graph::{Dim, Op, Role};
use crate::model::ops::activation::Act;

/// Whose parameter names a ViT takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VitNames {
    /// timm's: `patch_embed.proj`, `cls_token`, `pos_embed`,
    /// `blocks.N.{norm1, attn.qkv, attn.proj, norm2, mlp.fc1, mlp.fc2}`,
    /// `norm`, `head`.
    Timm,
    /// torchvision's: `conv_proj`, `class_token`, `encoder.pos_embedding`,
    /// `encoder.layers.encoder_layer_N.{ln_1, self_attention.in_proj_weight,
    /// self_attention.out_proj, ln_2, mlp.0, mlp.3}`, `encoder.ln`,
    /// `heads.head`.
    Torchvision,
}

impl VitNames {
    /// The name of part `what` (timm's word for it) of block `i`.
    fn block(self, i: usize, what: &str) -> String {
        match self {
            VitNames::Timm => format!("blocks.{i}.{what}"),
            VitNames::Torchvision => {
                let part = match what {
                    "norm1" => "ln_1",
                    "attn.qkv" => "self_attention.in_proj",
                    "attn.proj" => "self_attention.out_proj",
                    "norm2" => "ln_2",
                    "mlp.fc1" => "mlp.0",
                    _ => "mlp.3",
                };
                format!("encoder.layers.encoder_layer_{i}.{part}")
            }
        }
    }

    /// The name of a part outside the blocks (timm's word for it).
    fn top(self, what: &'static str) -> &'static str {
        match (self, what) {
            (VitNames::Timm, w) => w,
            (VitNames::Torchvision, "patch_embed.proj") => "conv_proj",
            (VitNames::Torchvision, "cls_token") => "class_token",
            (VitNames::Torchvision, "pos_embed") => "encoder.pos_embedding",
            (VitNames::Torchvision, "norm") => "encoder.ln",
            (VitNames::Torchvision, _) => "heads.head",
        }
    }
}

/// A Vision Transformer's sizes and names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VitConfig {
    /// Side of the square patches.
    pub patch: usize,
    /// Width (embedding dimension).
    pub dim: usize,
    /// Number of blocks.
    pub depth: usize,
    /// Attention heads.
    pub heads: usize,
    /// Hidden units of each block's MLP.
    pub mlp: usize,
    /// DeiT's distillation token (`dist_token`) after the class token, with
    /// its own head (`head_dist`); the two heads' mean is the output.
    pub distilled: bool,
    /// Whose parameter names.
    pub names: VitNames,
}

impl VitConfig {
    /// timm's ViT: an MLP 4 times the width, no distillation token.
    pub fn timm(patch: usize, dim: usize, depth: usize, heads: usize) -> Self {
        VitConfig {
            patch,
            dim,
            depth,
            heads,
            mlp: 4 * dim,
            distilled: false,
            names: VitNames::Timm,
        }
    }

    /// Tokens before the patches: the class token, and the distillation
    /// token where there is one.
    pub fn extra_tokens(&self) -> usize {
        1 + usize::from(self.distilled)
    }
}

/// A Vision Transformer (pre-norm blocks, GELU, the class token's output
/// classified, or with DeiT's distillation token the mean of both heads).
pub fn vit_named(input: [usize; 3], cfg: &VitConfig, classes: usize) -> Result<Architecture> {
    let VitConfig {
        patch,
        dim,
        depth,
        heads,
        mlp,
        distilled,
        names,
    } = *cfg;
    let [_, h, w] = input;
    if patch == 0 || h % patch != 0 || w % patch != 0 {
        return bad(
            "model",
            format!("patch {patch} does not tile a {h}x{w} input"),
        );
    }
    if heads == 0 || !dim.is_multiple_of(heads) {
        return bad("model", format!("{heads} heads do not divide width {dim}"));
    }
    let tokens = (h / patch) * (w / patch);
    let hd = dim / heads;
    let (mut b, x) = Builder::new(input);
    let x = b.conv_padded(
        names.top("patch_embed.proj"),
        x,
        dim,
        patch,
        patch,
        0,
        1,
        true,
    )?;
    // [b, dim, gh, gw] -> [b, tokens, dim]
    let x = b.op(
        "flatten",
        Op::Reshape {
            shape: vec![Dim::Batch(1), Dim::Fixed(dim), Dim::Fixed(tokens)],
        },
        &[x],
    )?;
    let x = b.op(
        "transpose",
        Op::Transpose {
            perm: vec![0, 2, 1],
        },
        &[x],
    )?;
    let cls =
        b.g.param(names.top("cls_token"), vec![1, 1, dim], Role::Embedding);
    let mut first = vec![cls];
    if distilled {
        first.push(b.g.param("dist_token", vec![1, 1, dim], Role::Embedding));
    }
    first.push(x);
    let x = b.op("cat", Op::Concat { axis: 1 }, &first)?;
    let pos = b.g.param(
        names.top("pos_embed"),
        vec![1, tokens + cfg.extra_tokens(), dim],
        Role::Embedding,
    );
    let mut x = b.add(x, pos)?;
    let n = tokens + cfg.extra_tokens();
    let scale = Act::Scale {
        by: 1.0 / (hd as f32).sqrt(),
    };
    for i in 0..depth {
        let y = b.layer_norm(&names.block(i, "norm1"), x, 1e-6)?;
        let qkv_name = names.block(i, "attn.qkv");
        let qkv = b.linear(&qkv_name, y, 3 * dim)?;
        if names == VitNames::Torchvision {
            // torch's MultiheadAttention: `in_proj_weight`, `in_proj_bias`.
            for part in ["weight", "bias"] {
                let alias = format!("{}_{part}", qkv_name);
                b.g.aliases.insert(format!("{qkv_name}.{part}"), alias);
            }
        }
        let qkv = b.op(
            "reshape",
            Op::Reshape {
                shape: vec![
                    Dim::Batch(1),
                    Dim::Fixed(n),
                    Dim::Fixed(3),
                    Dim::Fixed(heads),
                    Dim::Fixed(hd),
                ],
            },
            &[qkv],
        )?;
        // [3, b, heads, n, hd]
        let qkv = b.op(
            "permute",
            Op::Transpose {
                perm: vec![2, 0, 3, 1, 4],
            },
            &[qkv],
        )?;
        let part = |b: &mut Builder, k: usize| {
            b.op(
                "take",
                Op::Gather {
                    axis: 0,
                    index: vec![k],
                    keep_axis: false,
                },
                &[qkv],
            )
        };
        let (q, k, v) = (part(&mut b, 0)?, part(&mut b, 1)?, part(&mut b, 2)?);
        let q = b.act(q, scale)?;
        let kt = b.op(
            "transpose",
            Op::Transpose {
                perm: vec![0, 1, 3, 2],
            },
            &[k],
        )?;
        let att = b.op("matmul", Op::MatMul, &[q, kt])?;
        let att = b.op("softmax", Op::Softmax { axis: 3 }, &[att])?;
        let o = b.op("matmul", Op::MatMul, &[att, v])?;
        let o = b.op(
            "transpose",
            Op::Transpose {
                perm: vec![0, 2, 1, 3],
            },
            &[o],
        )?;
        let o = b.op(
            "reshape",
            Op::Reshape {
                shape: vec![Dim::Batch(1), Dim::Fixed(n), Dim::Fixed(dim)],
            },
            &[o],
        )?;
        let o = b.linear(&names.block(i, "attn.proj"), o, dim)?;
        x = b.add(x, o)?;
        let y = b.layer_norm(&names.block(i, "norm2"), x, 1e-6)?;
        let y = b.linear(&names.block(i, "mlp.fc1"), y, mlp)?;
        let y = b.act(y, Act::Gelu { tanh: false })?;
        let y = b.linear(&names.block(i, "mlp.fc2"), y, dim)?;
        x = b.add(x, y)?;
    }
    let x = b.layer_norm(names.top("norm"), x, 1e-6)?;
    let token = |b: &mut Builder, k: usize| {
        let op = Op::Gather {
            axis: 1,
            index: vec![k],
            keep_axis: false,
        };
        b.op(if k == 0 { "class_token" } else { "dist_token" }, op, &[x])
    };
    let c = token(&mut b, 0)?;
    let mut y = b.linear(names.top("head"), c, classes)?;
    if distilled {
        let d = token(&mut b, 1)?;
        let yd = b.linear("head_dist", d, classes)?;
        let sum = b.add(y, yd)?;
        y = b.act(sum, Act::Scale { by: 0.5 })?;
    }
    Ok(b.finish(y, Family::Vit, input, classes))
}

/// timm's Vision Transformer (an MLP 4 times the width).
pub fn vit(
    input: [usize; 3],
    patch: usize,
    dim: usize,
    depth: usize,
    heads: usize,
    classes: usize,
) -> Result<Architecture> {
    vit_named(input, &VitConfig::timm(patch, dim, depth, heads), classes)
}
