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
) -> Result<Architecture> {
    let Some(first) = stages.first() else {
        return bad("model", "a ConvNeXt needs at least one stage".into());
    };
    let total: usize = stages.iter().map(|s| s.blocks).sum();
    let (mut b, x) = Builder::new(input);
    let x = b.conv_padded("features.0.0", x, first.dim, patch, patch, 0, 1, true)?;
    let mut x = b.layer_norm_2d("features.0.1", x, LN_EPS)?;
    let mut index = 1;
    let mut block = 0usize;
    for st in stages {
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
            let p = format!("features.{index}.{j}");
            let p_drop = stochastic_depth * block as f32 / (total.max(2) - 1) as f32;
            x = convnext_block(&mut b, &p, x, p_drop)?;
            block += 1;
        }
        index += 1;
        if let Some(down) = st.down {
            let y = b.layer_norm_2d(&format!("features.{index}.0"), x, LN_EPS)?;
            x = b.conv_padded(&format!("features.{index}.1"), y, down, 2, 2, 0, 1, true)?;
            index += 1;
        }
    }
    let x = b.pool_flat(x)?;
    let x = b.layer_norm("classifier.0", x, LN_EPS)?;
    let y = b.linear("classifier.2", x, classes)?;
    Ok(b.finish(y, Family::Convnext, input, classes))
}

/// One block `p`: `x + drop_path(layer_scale * mlp(norm(dwconv(x))))`.
fn convnext_block(b: &mut Builder, p: &str, x: ValueId, p_drop: f32) -> Result<ValueId> {
    let dim = b.channels(x);
    let y = b.conv(&format!("{p}.block.0"), x, dim, 7, 1, dim, true)?;
    let y = b.transpose(y, &[0, 2, 3, 1])?;
    let y = b.layer_norm(&format!("{p}.block.2"), y, LN_EPS)?;
    let y = b.linear(&format!("{p}.block.3"), y, 4 * dim)?;
    let y = b.act(y, Act::Gelu { tanh: false })?;
    let y = b.linear(&format!("{p}.block.5"), y, dim)?;
    let y = b.transpose(y, &[0, 3, 1, 2])?;
    let scale = b.g.param(
        &format!("{p}.layer_scale"),
        vec![dim, 1, 1],
        Role::Embedding,
    );
    let y = b.mul(scale, y)?;
    let y = b.drop_path(y, p_drop)?;
    b.add(y, x)
}
