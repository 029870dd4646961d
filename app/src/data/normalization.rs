//! Per-channel normalisation `x' = (x - mean[c]) / std[c]`: fitted on a
//! dataset's pixels, applied as batches are made.

use serde::{Deserialize, Serialize};

use super::pixels::{byte_value, Pixels};

/// Per-channel normalisation `x' = (x - mean[c]) / std[c]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Normalization {
    /// Mean of each channel.
    pub mean: Vec<f32>,
    /// Standard deviation of each channel (never zero).
    pub std: Vec<f32>,
}

impl Normalization {
    /// The normalisation that changes nothing (mean 0, std 1).
    pub fn identity(channels: usize) -> Self {
        Normalization {
            mean: vec![0.0; channels],
            std: vec![1.0; channels],
        }
    }

    /// Mean and (population) standard deviation of every channel over all
    /// pixels of NCHW `pixels` with `channels` planes of `plane` values per
    /// image. A channel that is (nearly) constant gets std 1, so applying
    /// never divides by zero; no pixels give the identity.
    pub fn fit(pixels: &Pixels, channels: usize, plane: usize) -> Self {
        let image = channels * plane;
        let mut sum = vec![0f64; channels];
        let mut sum_sq = vec![0f64; channels];
        if image > 0 {
            match pixels {
                Pixels::Bytes(v) => {
                    // A histogram per channel: exact, and one pass of adds.
                    let mut counts = vec![[0u64; 256]; channels];
                    for img in v.chunks_exact(image) {
                        for (ch, values) in img.chunks_exact(plane).enumerate() {
                            for &b in values {
                                counts[ch][usize::from(b)] += 1;
                            }
                        }
                    }
                    for (ch, hist) in counts.iter().enumerate() {
                        for (b, &k) in hist.iter().enumerate() {
                            let x = f64::from(byte_value(b as u8));
                            sum[ch] += k as f64 * x;
                            sum_sq[ch] += k as f64 * x * x;
                        }
                    }
                }
                Pixels::Floats(v) => {
                    for img in v.chunks_exact(image) {
                        for (ch, values) in img.chunks_exact(plane).enumerate() {
                            let (mut s, mut s2) = (0f64, 0f64);
                            for &x in values {
                                let x = f64::from(x);
                                s += x;
                                s2 += x * x;
                            }
                            sum[ch] += s;
                            sum_sq[ch] += s2;
                        }
                    }
                }
            }
        }
        let count = (pixels.len().checked_div(image).unwrap_or(0) * plane) as f64;
        if count == 0.0 {
            return Normalization::identity(channels);
        }
        let mut mean = Vec::with_capacity(channels);
        let mut std = Vec::with_capacity(channels);
        for ch in 0..channels {
            let m = sum[ch] / count;
            let var = (sum_sq[ch] / count - m * m).max(0.0);
            let s = var.sqrt();
            mean.push(m as f32);
            std.push(if s < 1e-6 { 1.0 } else { s as f32 });
        }
        Normalization { mean, std }
    }

    /// Normalises CHW images (one or more, back to back) in place.
    ///
    /// # Panics
    /// If the length is not a whole number of `plane`-sized channel planes.
    pub fn apply_images(&self, images: &mut [f32], plane: usize) {
        let c = self.mean.len();
        assert!(
            plane > 0 && images.len().is_multiple_of(plane * c.max(1)),
            "normalisation for {c} channels applied to {} values in planes of {plane}",
            images.len()
        );
        for (k, values) in images.chunks_exact_mut(plane).enumerate() {
            let ch = k % c;
            let (m, inv) = (self.mean[ch], 1.0 / self.std[ch]);
            for v in values {
                *v = (*v - m) * inv;
            }
        }
    }

    /// For each channel, the normalised value of every byte: what
    /// [`Normalization::apply_images`] gives for `v / 255`, bit for bit.
    pub fn byte_tables(&self) -> Vec<[f32; 256]> {
        self.mean
            .iter()
            .zip(&self.std)
            .map(|(&m, &s)| {
                let inv = 1.0 / s;
                std::array::from_fn(|b| (byte_value(b as u8) - m) * inv)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_and_their_floats_fit_alike_and_tables_match_applying() {
        let bytes: Vec<u8> = (0..2 * 3 * 5).map(|i| (i * 37 % 256) as u8).collect();
        let floats = Pixels::from(bytes.iter().map(|&b| byte_value(b)).collect::<Vec<_>>());
        let a = Normalization::fit(&Pixels::from(bytes.clone()), 3, 5);
        let b = Normalization::fit(&floats, 3, 5);
        for c in 0..3 {
            assert!((a.mean[c] - b.mean[c]).abs() < 1e-7);
            assert!((a.std[c] - b.std[c]).abs() < 1e-7);
        }
        let mut applied = floats.to_f32();
        a.apply_images(&mut applied, 5);
        let tables = a.byte_tables();
        for (k, (&byte, &want)) in bytes.iter().zip(&applied).enumerate() {
            let ch = (k / 5) % 3;
            assert_eq!(tables[ch][usize::from(byte)].to_bits(), want.to_bits());
        }
    }

    #[test]
    fn constant_channels_get_unit_std_and_no_pixels_the_identity() {
        let n = Normalization::fit(&Pixels::from(vec![0.5f32; 12]), 1, 4);
        assert_eq!((n.mean, n.std), (vec![0.5], vec![1.0]));
        let n = Normalization::fit(&Pixels::from(Vec::<u8>::new()), 3, 4);
        assert_eq!(n, Normalization::identity(3));
    }
}
