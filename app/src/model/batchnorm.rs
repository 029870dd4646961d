//! Batch normalisation in training mode on the CPU as one fused operation
//! with a hand-written backward pass.
//!
//! Written with tensor ops, a training-mode BatchNorm needs several
//! reductions over the batch and spatial axes forward and backward (for the
//! mean, the variance and the broadcast gradients of scale and shift), and
//! Candle's CPU reductions over non-trailing axes dominate ResNet training.
//! Here forward is two passes over the input and backward two more.

use candle_core::{CpuStorage, CustomOp1, CustomOp3, Layout, Shape, Tensor};
use rayon::prelude::*;

use super::conv::contiguous_f32;

/// Per-channel mean and biased variance of `x` (`[b, c, hw]` flattened).
fn channel_stats(x: &[f32], b: usize, c: usize, hw: usize) -> Vec<(f32, f32)> {
    (0..c)
        .into_par_iter()
        .map(|ci| {
            let (mut s, mut s2) = (0f64, 0f64);
            for bi in 0..b {
                let plane = &x[(bi * c + ci) * hw..(bi * c + ci + 1) * hw];
                let (mut a, mut a2) = (0f32, 0f32);
                for &v in plane {
                    a += v;
                    a2 += v * v;
                }
                s += f64::from(a);
                s2 += f64::from(a2);
            }
            let n = (b * hw) as f64;
            let mean = s / n;
            ((mean) as f32, ((s2 / n) - mean * mean).max(0.0) as f32)
        })
        .collect()
}

fn dims(l: &Layout) -> candle_core::Result<(usize, usize, usize)> {
    let (b, c, h, w) = l.shape().dims4()?;
    Ok((b, c, h * w))
}

/// `(x, gamma, beta) -> y`, normalising with the batch statistics.
pub(super) struct BatchNormTrain {
    pub eps: f32,
}

impl CustomOp3 for BatchNormTrain {
    fn name(&self) -> &'static str {
        "shears-batchnorm-train"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = contiguous_f32(s1, l1, self.name())?;
        let gamma = contiguous_f32(s2, l2, self.name())?;
        let beta = contiguous_f32(s3, l3, self.name())?;
        let (b, c, hw) = dims(l1)?;
        let stats = channel_stats(x, b, c, hw);
        let mut y = vec![0f32; x.len()];
        y.par_chunks_mut(hw)
            .zip(x.par_chunks(hw))
            .enumerate()
            .for_each(|(p, (out, inp))| {
                let ci = p % c;
                let (mean, var) = stats[ci];
                let scale = gamma[ci] / (var + self.eps).sqrt();
                let shift = beta[ci] - mean * scale;
                for (o, &v) in out.iter_mut().zip(inp) {
                    *o = v * scale + shift;
                }
            });
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        _beta: &Tensor,
        _res: &Tensor,
        dy: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let n = x.elem_count();
        let c = gamma.elem_count();
        let packed = x.apply_op3_no_bwd(
            &dy.contiguous()?,
            gamma,
            &BatchNormBackward { eps: self.eps },
        )?;
        let dx = packed.narrow(0, 0, n)?.reshape(x.shape())?;
        let dgamma = packed.narrow(0, n, c)?;
        let dbeta = packed.narrow(0, n + c, c)?;
        Ok((Some(dx), Some(dgamma), Some(dbeta)))
    }
}

/// `(x, dy, gamma) -> [dx (flattened), dgamma, dbeta]`.
struct BatchNormBackward {
    eps: f32,
}

impl CustomOp3 for BatchNormBackward {
    fn name(&self) -> &'static str {
        "shears-batchnorm-backward"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = contiguous_f32(s1, l1, self.name())?;
        let dy = contiguous_f32(s2, l2, self.name())?;
        let gamma = contiguous_f32(s3, l3, self.name())?;
        let (b, c, hw) = dims(l1)?;
        let stats = channel_stats(x, b, c, hw);
        // Per channel: sum(dy) and sum(dy * xhat).
        let sums: Vec<(f32, f32)> = (0..c)
            .into_par_iter()
            .map(|ci| {
                let (mean, var) = stats[ci];
                let inv = 1.0 / (var + self.eps).sqrt();
                let (mut sd, mut sdx) = (0f64, 0f64);
                for bi in 0..b {
                    let o = (bi * c + ci) * hw;
                    let (mut a, mut a2) = (0f32, 0f32);
                    for (&g, &v) in dy[o..o + hw].iter().zip(&x[o..o + hw]) {
                        a += g;
                        a2 += g * (v - mean) * inv;
                    }
                    sd += f64::from(a);
                    sdx += f64::from(a2);
                }
                (sd as f32, sdx as f32)
            })
            .collect();
        let m = (b * hw) as f32;
        let mut out = vec![0f32; x.len() + 2 * c];
        let (dx, rest) = out.split_at_mut(x.len());
        dx.par_chunks_mut(hw).enumerate().for_each(|(p, d)| {
            let ci = p % c;
            let (mean, var) = stats[ci];
            let inv = 1.0 / (var + self.eps).sqrt();
            let (sd, sdx) = sums[ci];
            let k = gamma[ci] * inv / m;
            let o = p * hw;
            for ((d, &g), &v) in d.iter_mut().zip(&dy[o..o + hw]).zip(&x[o..o + hw]) {
                let xhat = (v - mean) * inv;
                *d = k * (m * g - sd - xhat * sdx);
            }
        });
        for ci in 0..c {
            rest[ci] = sums[ci].1;
            rest[c + ci] = sums[ci].0;
        }
        Ok((CpuStorage::F32(out), Shape::from(x.len() + 2 * c)))
    }
}

/// Per-channel batch mean and unbiased variance of `x [b, c, h, w]`, as two
/// `[c]` vectors in one `[2, c]` tensor (no gradient).
pub(super) struct BatchStats;

impl CustomOp1 for BatchStats {
    fn name(&self) -> &'static str {
        "shears-batch-stats"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = contiguous_f32(s, l, self.name())?;
        let (b, c, hw) = dims(l)?;
        let n = (b * hw) as f32;
        let stats = channel_stats(x, b, c, hw);
        let mut out: Vec<f32> = stats.iter().map(|s| s.0).collect();
        out.extend(stats.iter().map(|s| s.1 * n / (n - 1.0).max(1.0)));
        Ok((CpuStorage::F32(out), Shape::from((2, c))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::testutil::{max_diff, projected_grads};
    use candle_core::{Device, Var};

    fn reference(x: &Tensor, g: &Tensor, b: &Tensor) -> Tensor {
        let c = g.elem_count();
        let mean = x.mean_keepdim((0, 2, 3)).unwrap();
        let xc = x.broadcast_sub(&mean).unwrap();
        let var = xc.sqr().unwrap().mean_keepdim((0, 2, 3)).unwrap();
        let y = xc
            .broadcast_div(&(var + 1e-5).unwrap().sqrt().unwrap())
            .unwrap();
        y.broadcast_mul(&g.reshape((1, c, 1, 1)).unwrap())
            .unwrap()
            .broadcast_add(&b.reshape((1, c, 1, 1)).unwrap())
            .unwrap()
    }

    #[test]
    fn fused_batchnorm_matches_tensor_ops_forward_and_backward() {
        let d = Device::Cpu;
        let x = Var::randn(1f32, 2.0, (4, 3, 5, 5), &d).unwrap();
        let g = Var::randn(1f32, 0.5, 3, &d).unwrap();
        let b = Var::randn(0f32, 0.5, 3, &d).unwrap();
        let ours = x
            .as_tensor()
            .apply_op3(g.as_tensor(), b.as_tensor(), BatchNormTrain { eps: 1e-5 })
            .unwrap();
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
