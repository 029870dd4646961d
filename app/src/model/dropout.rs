//! Dropout masks: which activations one training step keeps.

use rand::Rng;

/// A mask of `n` values for dropout with drop probability `p`: each value is
/// kept (`1 / (1 - p)`, the inverted-dropout scale) with probability `1 - p`,
/// else 0. Drawn in order from `rng`, so both training passes (Candle's and
/// the network's own) see the same mask for the same seed.
pub(crate) fn mask(rng: &mut impl Rng, n: usize, p: f32) -> Vec<f32> {
    let keep = 1.0 - p;
    let scale = 1.0 / keep;
    (0..n)
        .map(|_| {
            if rng.random::<f32>() < keep {
                scale
            } else {
                0.0
            }
        })
        .collect()
}
