//! Fixtures for testing criteria (behind the `testing` feature): two small
//! layers with known weights, and helpers to score them and compare scores.

use crate::{Criterion, Granularity, LayerKind, LayerView};

/// Weights of [`linear`]: `[2, 3]`.
pub const LIN_W: [f32; 6] = [1.0, -2.0, 3.0, -4.0, 5.0, -6.0];
/// Weights of [`conv`]: `[2, 2, 1, 2]`.
pub const CONV_W: [f32; 8] = [0.5, -1.0, 2.0, 0.0, -3.0, 1.0, 0.0, -0.25];
/// An all-kept mask, long enough for either layer.
pub const ONES: [f32; 8] = [1.0; 8];

/// A linear layer `fc` of shape `[2, 3]` with weights [`LIN_W`], nothing
/// pruned, no gradient or activations (set them on the view as a test needs).
pub fn linear(granularity: Granularity) -> LayerView<'static> {
    LayerView {
        name: "fc",
        kind: LayerKind::Linear,
        shape: &[2, 3],
        weight: &LIN_W,
        mask: &ONES[..6],
        grad: None,
        act_norms: None,
        granularity,
    }
}

/// A convolution `conv` of shape `[2, 2, 1, 2]` with weights [`CONV_W`], as
/// [`linear`].
pub fn conv(granularity: Granularity) -> LayerView<'static> {
    LayerView {
        name: "conv",
        kind: LayerKind::Conv2d,
        shape: &[2, 2, 1, 2],
        weight: &CONV_W,
        mask: &ONES,
        grad: None,
        act_norms: None,
        granularity,
    }
}

/// The scores `c` gives `layer` (panics on an error).
pub fn score(c: &mut dyn Criterion, layer: &LayerView<'_>) -> Vec<f32> {
    let mut out = vec![f32::NAN; layer.score_len()];
    c.score(layer, &mut out).unwrap();
    out
}

/// Asserts `got` equals `want` within 1e-5 per entry.
pub fn assert_close(got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{got:?} vs {want:?}");
    for (g, w) in got.iter().zip(want) {
        assert!((g - w).abs() < 1e-5, "{got:?} vs {want:?}");
    }
}
