//! Batch normalisation: training mode (batch statistics, running-statistics
//! update) and evaluation mode (running statistics).
//!
//! On the CPU, training mode is one fused operation with a hand-written
//! backward pass: written with tensor ops it needs several reductions over
//! the batch and spatial axes forward and backward, and Candle's CPU
//! reductions over non-trailing axes dominate ResNet training. Other devices
//! use [`train_with_tensor_ops`], which the gradient checks run on the CPU too.
//!
//! The batch statistics are computed in two passes (the mean, then the mean
//! squared deviation from it) with `f64` sums, as PyTorch does: the one-pass
//! `E[x^2] - E[x]^2` in `f32` cancels badly when a channel's mean is large
//! next to its spread.

use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Tensor};
use rayon::prelude::*;

use super::fused::{self, Layer};
use super::kernel::{self, sum2_f64, sum_f64, Float, FloatKernel};

/// Output of a training-mode batch norm: the normalised output and the
/// batch statistics that update the running ones (no gradient).
pub(crate) struct TrainOutput {
    /// `gamma * (x - mean) / sqrt(var + eps) + beta`.
    pub y: Tensor,
    /// Per-channel batch mean `[c]`.
    pub mean: Tensor,
    /// Per-channel unbiased batch variance `[c]`.
    pub unbiased_var: Tensor,
}

/// Training-mode batch norm of `x [b, c, h, w]` (or `[b, c]`) with scale
/// `gamma [c]` and shift `beta [c]`, normalising with the biased batch
/// variance; fused on the CPU.
pub(crate) fn train(
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    eps: f64,
) -> candle_core::Result<TrainOutput> {
    if !(x.device().is_cpu() && kernel::supported(x.dtype())) {
        return train_with_tensor_ops(x, gamma, beta, eps);
    }
    let x4 = as_maps(x)?.contiguous()?;
    let stats = x4.apply_op1_no_bwd(&BatchStats)?;
    let y = fused::apply(BatchNormTrain::of(&x4, eps)?, &x4, gamma, Some(beta))?;
    Ok(TrainOutput {
        y: y.reshape(x.shape())?,
        mean: stats.get(0)?,
        unbiased_var: stats.get(1)?,
    })
}

/// [`train`] written with Candle tensor ops (any device, any float dtype).
pub(super) fn train_with_tensor_ops(
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    eps: f64,
) -> candle_core::Result<TrainOutput> {
    let x4 = as_maps(x)?;
    let c = x4.dim(1)?;
    let shape = (1, c, 1, 1);
    let mean = channel_mean(&x4)?;
    let centred = x4.broadcast_sub(&mean)?;
    let var = channel_mean(&centred.sqr()?)?;
    let n = (x4.elem_count() / c) as f64;
    let unbiased = (var.detach() * (n / (n - 1.0).max(1.0)))?.flatten_all()?;
    let y = centred.broadcast_div(&(var + eps)?.sqrt()?)?;
    let y = y
        .broadcast_mul(&gamma.reshape(shape)?)?
        .broadcast_add(&beta.reshape(shape)?)?;
    Ok(TrainOutput {
        y: y.reshape(x.shape())?,
        mean: mean.detach().flatten_all()?,
        unbiased_var: unbiased,
    })
}

/// Evaluation-mode batch norm with running statistics `mean [c]`, `var [c]`.
pub(crate) fn eval(
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    mean: &Tensor,
    var: &Tensor,
    eps: f64,
) -> candle_core::Result<Tensor> {
    let c = gamma.elem_count();
    let shape: Vec<usize> = (0..x.rank()).map(|d| if d == 1 { c } else { 1 }).collect();
    let shape = shape.as_slice();
    let scale = (gamma / (var + eps)?.sqrt()?)?;
    // (x - mean) * scale + beta, as PyTorch: folding the mean into the shift
    // (x * scale + (beta - mean * scale)) cancels when the mean is large.
    x.broadcast_sub(&mean.reshape(shape)?)?
        .broadcast_mul(&scale.reshape(shape)?)?
        .broadcast_add(&beta.reshape(shape)?)
}

/// `[b, c, ...]` as `[b, c, rest, 1]` (`[b, c]` as `[b, c, 1, 1]`); maps
/// unchanged.
fn as_maps(x: &Tensor) -> candle_core::Result<Tensor> {
    match x.rank() {
        4 => Ok(x.clone()),
        r if r >= 2 => {
            let (b, c) = (x.dim(0)?, x.dim(1)?);
            x.reshape((b, c, x.elem_count() / (b * c).max(1), 1))
        }
        r => candle_core::bail!("batch norm: input of rank {r}, expected 2 or more"),
    }
}

/// Per-channel mean of `[b, c, h, w]` as `[1, c, 1, 1]`, reducing over the
/// contiguous last axis first (Candle's CPU reduction over non-trailing axes
/// is several times slower).
fn channel_mean(x: &Tensor) -> candle_core::Result<Tensor> {
    let (b, c, h, w) = x.dims4()?;
    let per_image = x.reshape((b, c, h * w))?.sum(2)?; // [b, c]
    (per_image.sum_keepdim(0)? / (b * h * w) as f64)?.reshape((1, c, 1, 1))
}

/// Per-channel mean and biased variance of `x` (`[b, c, hw]` flattened), in
/// two passes with `f64` sums.
fn channel_stats<T: Float>(x: &[T], b: usize, c: usize, hw: usize) -> Vec<(f64, f64)> {
    let plane = |bi: usize, ci: usize| &x[(bi * c + ci) * hw..(bi * c + ci + 1) * hw];
    let n = (b * hw) as f64;
    (0..c)
        .into_par_iter()
        .map(|ci| {
            let mean = (0..b)
                .map(|bi| sum_f64(plane(bi, ci), |v| v.to_f64()))
                .sum::<f64>()
                / n;
            let var = (0..b)
                .map(|bi| {
                    sum_f64(plane(bi, ci), |v| {
                        let d = v.to_f64() - mean;
                        d * d
                    })
                })
                .sum::<f64>()
                / n;
            (mean, var)
        })
        .collect()
}

fn dims(l: &Layout) -> candle_core::Result<(usize, usize, usize)> {
    let (b, c, h, w) = l.shape().dims4()?;
    Ok((b, c, h * w))
}

/// Training-mode batch norm as a fused layer of `(x, gamma, beta)`:
/// normalising with the batch statistics forward; `[dx, dgamma, dbeta]`
/// backward.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BatchNormTrain {
    eps: f64,
    b: usize,
    c: usize,
    h: usize,
    w: usize,
}

impl BatchNormTrain {
    /// The layer for maps `x [b, c, h, w]`.
    fn of(x: &Tensor, eps: f64) -> candle_core::Result<Self> {
        let (b, c, h, w) = x.dims4()?;
        Ok(BatchNormTrain { eps, b, c, h, w })
    }

    /// The layer for `b` samples of `c` channels of `hw` values each.
    pub(super) fn new(eps: f64, b: usize, c: usize, hw: usize) -> Self {
        BatchNormTrain {
            eps,
            b,
            c,
            h: hw,
            w: 1,
        }
    }

    /// Per-channel batch mean and biased batch variance of `x`.
    pub(super) fn stats<T: Float>(&self, x: &[T]) -> Vec<(f64, f64)> {
        channel_stats(x, self.b, self.c, self.h * self.w)
    }

    /// The per-channel mean and unbiased variance that update the running
    /// statistics, from the batch statistics `stats` of [`Self::stats`].
    pub(super) fn running<T: Float>(&self, stats: &[(f64, f64)]) -> (Vec<T>, Vec<T>) {
        running(stats, (self.b * self.h * self.w) as f64)
    }

    /// `x` normalised with its batch statistics `stats`, scaled and shifted.
    pub(super) fn normalise<T: Float>(
        &self,
        x: &[T],
        gamma: &[T],
        beta: &[T],
        stats: &[(f64, f64)],
    ) -> Vec<T> {
        let (c, hw) = (self.c, self.h * self.w);
        let mut y = vec![T::zero(); x.len()];
        y.par_chunks_mut(hw)
            .zip(x.par_chunks(hw))
            .enumerate()
            .for_each(|(p, (out, inp))| {
                let ci = p % c;
                let (mean, var) = stats[ci];
                let scale = T::from_f64(gamma[ci].to_f64() / (var + self.eps).sqrt());
                let (mean, shift) = (T::from_f64(mean), beta[ci]);
                for (o, &v) in out.iter_mut().zip(inp) {
                    *o = (v - mean) * scale + shift;
                }
            });
        y
    }

    /// `[dx, dgamma, dbeta]` packed, with the batch statistics `stats` of
    /// the forward pass:
    /// `dx = gamma / std * (dy - mean(dy) - xhat * mean(dy * xhat))`,
    /// `dgamma = sum(dy * xhat)`, `dbeta = sum(dy)`.
    pub(super) fn backward_with<T: Float>(
        &self,
        x: &[T],
        dy: &[T],
        gamma: &[T],
        stats: &[(f64, f64)],
    ) -> Vec<T> {
        let (b, c, hw) = (self.b, self.c, self.h * self.w);
        let m = (b * hw) as f64;
        // Per channel: sum(dy) and sum(dy * xhat).
        let sums: Vec<(f64, f64)> = (0..c)
            .into_par_iter()
            .map(|ci| {
                let (mean, var) = stats[ci];
                let inv = 1.0 / (var + self.eps).sqrt();
                let (mut sd, mut sdx) = (0f64, 0f64);
                for bi in 0..b {
                    let o = (bi * c + ci) * hw;
                    let (g, v) = (&dy[o..o + hw], &x[o..o + hw]);
                    sd += sum_f64(g, |g| g.to_f64());
                    sdx += sum2_f64(g, v, |g, v| g.to_f64() * (v.to_f64() - mean) * inv);
                }
                (sd, sdx)
            })
            .collect();
        let mut out = vec![T::zero(); x.len() + 2 * c];
        let (dx, rest) = out.split_at_mut(x.len());
        dx.par_chunks_mut(hw).enumerate().for_each(|(p, d)| {
            let ci = p % c;
            let (mean, var) = stats[ci];
            let inv = 1.0 / (var + self.eps).sqrt();
            let (sd, sdx) = sums[ci];
            let scale = T::from_f64(gamma[ci].to_f64() * inv);
            let (mean_dy, mean_dyx) = (T::from_f64(sd / m), T::from_f64(sdx / m));
            let (mean, inv) = (T::from_f64(mean), T::from_f64(inv));
            let o = p * hw;
            for ((d, &g), &v) in d.iter_mut().zip(&dy[o..o + hw]).zip(&x[o..o + hw]) {
                let xhat = (v - mean) * inv;
                *d = scale * (g - mean_dy - xhat * mean_dyx);
            }
        });
        for ci in 0..c {
            rest[ci] = T::from_f64(sums[ci].1);
            rest[c + ci] = T::from_f64(sums[ci].0);
        }
        out
    }
}

/// The mean and unbiased variance per channel from batch statistics
/// `(mean, biased variance)` over `n` values each.
fn running<T: Float>(stats: &[(f64, f64)], n: f64) -> (Vec<T>, Vec<T>) {
    let mean = stats.iter().map(|s| T::from_f64(s.0)).collect();
    let unbiased = stats
        .iter()
        .map(|s| T::from_f64(s.1 * n / (n - 1.0).max(1.0)))
        .collect();
    (mean, unbiased)
}

impl Layer for BatchNormTrain {
    const NAME: &'static str = "shears-batchnorm-train";
    const BACKWARD_NAME: &'static str = "shears-batchnorm-backward";

    fn out_shape(&self) -> Shape {
        Shape::from((self.b, self.c, self.h, self.w))
    }

    fn outputs(&self) -> usize {
        self.c
    }

    fn forward<T: Float>(&self, x: &[T], gamma: &[T], beta: &[T]) -> Vec<T> {
        self.normalise(x, gamma, beta, &self.stats(x))
    }

    fn backward<T: Float>(&self, x: &[T], dy: &[T], gamma: &[T]) -> Vec<T> {
        self.backward_with(x, dy, gamma, &self.stats(x))
    }
}

/// Per-channel batch mean and unbiased variance of `x [b, c, h, w]`, as two
/// `[c]` vectors in one `[2, c]` tensor (no gradient).
struct BatchStats;

impl FloatKernel<1> for BatchStats {
    fn run<T: Float>(&self, [x]: [&[T]; 1], [l]: [&Layout; 1]) -> candle_core::Result<Vec<T>> {
        let (b, c, hw) = dims(l)?;
        let (mut out, unbiased) = running(&channel_stats(x, b, c, hw), (b * hw) as f64);
        out.extend(unbiased);
        Ok(out)
    }
}

impl CustomOp1 for BatchStats {
    fn name(&self) -> &'static str {
        "shears-batch-stats"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let out = kernel::run(self, self.name(), [s], [l])?;
        let (_, c, _) = dims(l)?;
        Ok((out, Shape::from((2, c))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::testutil::{max_diff, projected_grads};
    use candle_core::{Device, Var};

    fn reference(x: &Tensor, g: &Tensor, b: &Tensor) -> Tensor {
        train_with_tensor_ops(x, g, b, 1e-5).unwrap().y
    }

    #[test]
    fn fused_batchnorm_matches_tensor_ops_forward_and_backward() {
        let d = Device::Cpu;
        let x = Var::randn(1f32, 2.0, (4, 3, 5, 5), &d).unwrap();
        let g = Var::randn(1f32, 0.5, 3, &d).unwrap();
        let b = Var::randn(0f32, 0.5, 3, &d).unwrap();
        let layer = BatchNormTrain::of(x.as_tensor(), 1e-5).unwrap();
        let ours = fused::apply(layer, x.as_tensor(), g.as_tensor(), Some(b.as_tensor())).unwrap();
        let theirs = reference(x.as_tensor(), g.as_tensor(), b.as_tensor());
        assert!(max_diff(&ours, &theirs) < 1e-4);
        let (g1, g2) = projected_grads(ours, theirs);
        for v in [&x, &g, &b] {
            assert!(
                max_diff(
                    g1.get(v.as_tensor()).unwrap(),
                    g2.get(v.as_tensor()).unwrap()
                ) < 1e-3
            );
        }
        let stats = x
            .as_tensor()
            .apply_op1_no_bwd(&BatchStats)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        let mean = x
            .as_tensor()
            .mean((0, 2, 3))
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        for (a, b) in stats[0].iter().zip(mean) {
            assert!((a - b).abs() < 1e-5);
        }
    }
}
