//! torchvision's ConvNeXt at any widths and depths.

use super::{bad, Builder};
use crate::error::Result;
use crate::model::arch::{Architecture, Family};
use crate::model::graph::{Role, ValueId};
use crate::model::ops::activation::Act;

/// One ConvNeXt stage: `blocks` blocks of width `dim`, then (except
/// after the last) a downsampling to `down` channels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvnextStage {
    /// Width of the stage's blocks.
    pub dim: usize,
    /// Number of blocks.
    pub blocks: usize,
    /// Channels after the stage's downsampling (LayerNorm, 2x2 stride-2
    /// convolution), if it has one.
    pub down: Option<usize>,
}

/// LayerNorm's epsilon throughout ConvNeXt.
const LN_EPS: f64 = 1e-6;

/// Whose parameter names a ConvNeXt takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConvnextNames {
    /// torchvision's: `features.N`, `block.0/2/3/5`, a `layer_scale` of
    /// shape `[dim, 1, 1]` applied channels-first, `classifier.0/2`.
    Torchvision,
    /// timm's: `stem.0/1`, `stages.S.downsample.0/1` (before stage S),
    /// `stages.S.blocks.I.{conv_dw, norm, mlp.fc1, mlp.fc2}`, a `gamma` of
    /// shape `[dim]` applied channels-last, `head.norm`, `head.fc`.
    Timm,
}

impl ConvnextNames {
    fn stem(self, part: usize) -> String {
        match self {
            ConvnextNames::Torchvision => format!("features.0.{part}"),
            ConvnextNames::Timm => format!("stem.{part}"),
        }
    }

    /// Block `i` of stage `s` (its torchvision index `index`).
    fn block(self, s: usize, index: usize, i: usize) -> String {
        match self {
            ConvnextNames::Torchvision => format!("features.{index}.{i}"),
            ConvnextNames::Timm => format!("stages.{s}.blocks.{i}"),
        }
    }

    /// Part of a block: torchvision's `block.J` by timm's word for it.
    fn part(self, block: &str, what: &str) -> String {
        match self {
            ConvnextNames::Timm => format!("{block}.{what}"),
            ConvnextNames::Torchvision => {
                let j = match what {
                    "conv_dw" => "block.0",
                    "norm" => "block.2",
                    "mlp.fc1" => "block.3",
                    "mlp.fc2" => "block.5",
                    _ => "layer_scale",
                };
                format!("{block}.{j}")
            }
        }
    }

    /// The downsampling after stage `s` (torchvision's index `index`).
    fn down(self, s: usize, index: usize, part: usize) -> String {
        match self {
            ConvnextNames::Torchvision => format!("features.{index}.{part}"),
            ConvnextNames::Timm => format!("stages.{}.downsample.{part}", s + 1),
        }
    }

    fn head(self, what: &str) -> &'static str {
        match (self, what) {
            (ConvnextNames::Torchvision, "norm") => "classifier.0",
            (ConvnextNames::Torchvision, _) => "classifier.2",
            (ConvnextNames::Timm, "norm") => "head.norm",
            (ConvnextNames::Timm, _) => "head.fc",
        }
    }
}

/// torchvision's ConvNeXt: a `patch`x`patch` stride-`patch` stem with
/// LayerNorm (`features.0`), the stages (`features.1`, `.3`, ...: blocks of
/// a 7x7 depthwise convolution, LayerNorm, a 4x MLP with GELU and a layer
/// scale, residual, stochastic depth rising to `stochastic_depth`), the
/// downsamplings between them, LayerNorm and the classifier.
pub fn convnext(
    input: [usize; 3],
    patch: usize,
    stages: &[ConvnextStage],
    stochastic_depth: f32,
    classes: usize,
    names: ConvnextNames,
) -> Result<Architecture> {
    let Some(first) = stages.first() else {
        return bad("model", "a ConvNeXt needs at least one stage".into());
    };
    let total: usize = stages.iter().map(|s| s.blocks).sum();
    let (mut b, x) = Builder::new(input);
    let x = b.conv_padded(&names.stem(0), x, first.dim, patch, patch, 0, 1, true)?;
    let mut x = b.layer_norm_2d(&names.stem(1), x, LN_EPS)?;
    let mut index = 1;
    let mut block = 0usize;
    for (s, st) in stages.iter().enumerate() {
        if b.channels(x) != st.dim {
            return bad(
                "model",
                format!(
                    "a ConvNeXt stage of width {} after {} channels",
                    st.dim,
                    b.channels(x)
                ),
            );
        }
        for j in 0..st.blocks {
            let p = names.block(s, index, j);
            let p_drop = stochastic_depth * block as f32 / (total.max(2) - 1) as f32;
            x = convnext_block(&mut b, &p, x, p_drop, names)?;
            block += 1;
        }
        index += 1;
        if let Some(down) = st.down {
            let y = b.layer_norm_2d(&names.down(s, index, 0), x, LN_EPS)?;
            x = b.conv_padded(&names.down(s, index, 1), y, down, 2, 2, 0, 1, true)?;
            index += 1;
        }
    }
    let x = b.pool_flat(x)?;
    let x = b.layer_norm(names.head("norm"), x, LN_EPS)?;
    let y = b.linear(names.head("fc"), x, classes)?;
    Ok(b.finish(y, Family::Convnext, input, classes))
}

/// One block `p`: `x + drop_path(layer_scale * mlp(norm(dwconv(x))))`,
/// the layer scale applied channels-first (torchvision) or channels-last
/// (timm's `gamma`).
fn convnext_block(
    b: &mut Builder,
    p: &str,
    x: ValueId,
    p_drop: f32,
    names: ConvnextNames,
) -> Result<ValueId> {
    let dim = b.channels(x);
    let y = b.conv(&names.part(p, "conv_dw"), x, dim, 7, 1, dim, true)?;
    let y = b.transpose(y, &[0, 2, 3, 1])?;
    let y = b.layer_norm(&names.part(p, "norm"), y, LN_EPS)?;
    let y = b.linear(&names.part(p, "mlp.fc1"), y, 4 * dim)?;
    let y = b.act(y, Act::Gelu { tanh: false })?;
    let y = b.linear(&names.part(p, "mlp.fc2"), y, dim)?;
    let scale_name = names.part(p, "gamma");
    let y = if names == ConvnextNames::Timm {
        let gamma = b.g.param(&scale_name, vec![dim], Role::Embedding);
        let y = b.mul(y, gamma)?;
        b.transpose(y, &[0, 3, 1, 2])?
    } else {
        let y = b.transpose(y, &[0, 3, 1, 2])?;
        let scale = b.g.param(&scale_name, vec![dim, 1, 1], Role::Embedding);
        b.mul(scale, y)?
    };
    let y = b.drop_path(y, p_drop)?;
    b.add(y, x)
}
