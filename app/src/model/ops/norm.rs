//! Normalisations: BatchNorm over axis 1 (the kernels of
//! `model::batchnorm`, any rank from 2 on) and LayerNorm over the last
//! axes (ConvNeXt's channels-first form is a transpose around it).

use super::numel;
use crate::model::batchnorm::BatchNormTrain;
use crate::model::kernel::Float;

/// BatchNorm's output dims: `x [b, c, ...]` with five `[c]` tensors.
pub fn batch_norm_dims(dims: &[&[usize]]) -> Result<Vec<usize>, String> {
    let x = dims[0];
    let c = *x
        .get(1)
        .ok_or_else(|| format!("batch norm of a tensor of rank {}", x.len()))?;
    if let Some(bad) = dims[1..].iter().find(|d| **d != [c]) {
        return Err(format!(
            "batch norm of {c} channels has a parameter of dims {bad:?}"
        ));
    }
    Ok(x.to_vec())
}

/// `(batch, channels, values per channel and sample)` of `x`.
pub(crate) fn bn_layout(x: &[usize]) -> (usize, usize, usize) {
    (x[0], x[1], numel(&x[2..]))
}

/// The BatchNorm kernels for `x` of dims `dims`.
pub(crate) fn batch_norm_layer(eps: f64, dims: &[usize]) -> BatchNormTrain {
    let (b, c, hw) = bn_layout(dims);
    BatchNormTrain::new(eps, b, c, hw)
}

/// Evaluation-mode BatchNorm, over `x`'s values:
/// `(x - mean) * gamma / sqrt(var + eps) + beta`.
pub(crate) fn batch_norm_eval<T: Float>(
    eps: f64,
    mut y: Vec<T>,
    dims: &[usize],
    [gamma, beta, mean, var]: [&[T]; 4],
) -> Vec<T> {
    let (_, c, hw) = bn_layout(dims);
    let eps = T::from_f64(eps);
    let scale: Vec<T> = gamma
        .iter()
        .zip(var)
        .map(|(&g, &v)| g / (v + eps).sqrt())
        .collect();
    for (p, plane) in y.chunks_exact_mut(hw.max(1)).enumerate() {
        let ci = p % c;
        for v in plane {
            *v = (*v - mean[ci]) * scale[ci] + beta[ci];
        }
    }
    y
}

/// The gradient of evaluation-mode BatchNorm's input (a fixed affine map).
pub(crate) fn batch_norm_eval_backward<T: Float>(
    eps: f64,
    dims: &[usize],
    gamma: &[T],
    var: &[T],
    dy: &[T],
) -> Vec<T> {
    let (_, c, hw) = bn_layout(dims);
    let eps = T::from_f64(eps);
    let mut dx = dy.to_vec();
    for (p, plane) in dx.chunks_exact_mut(hw.max(1)).enumerate() {
        let ci = p % c;
        let s = gamma[ci] / (var[ci] + eps).sqrt();
        for v in plane {
            *v *= s;
        }
    }
    dx
}

/// LayerNorm's output dims: `x`, and `gamma`, `beta` of dims `x[axis..]`.
pub fn layer_norm_dims(axis: usize, dims: &[&[usize]]) -> Result<Vec<usize>, String> {
    let x = dims[0];
    if axis >= x.len() {
        return Err(format!(
            "layer norm from axis {axis} of a tensor of rank {}",
            x.len()
        ));
    }
    let n = numel(&x[axis..]);
    if let Some(bad) = dims[1..].iter().find(|d| numel(d) != n) {
        return Err(format!(
            "layer norm over {:?} has a parameter of dims {bad:?}",
            &x[axis..]
        ));
    }
    Ok(x.to_vec())
}

/// LayerNorm of `x` over its last values in groups of `n`: the output and
/// each row's `(mean, 1 / std)`.
pub(crate) fn layer_norm<T: Float>(
    eps: f64,
    n: usize,
    x: &[T],
    gamma: &[T],
    beta: &[T],
) -> (Vec<T>, Vec<(f64, f64)>) {
    let mut y = vec![T::zero(); x.len()];
    let mut stats = Vec::with_capacity(x.len() / n.max(1));
    for (row, out) in x.chunks_exact(n).zip(y.chunks_exact_mut(n)) {
        let mean = row.iter().map(|&v| v.to_f64()).sum::<f64>() / n as f64;
        let var = row
            .iter()
            .map(|&v| (v.to_f64() - mean).powi(2))
            .sum::<f64>()
            / n as f64;
        let inv = 1.0 / (var + eps).sqrt();
        for (((o, &v), &g), &b) in out.iter_mut().zip(row).zip(gamma).zip(beta) {
            *o = T::from_f64((v.to_f64() - mean) * inv) * g + b;
        }
        stats.push((mean, inv));
    }
    (y, stats)
}

/// LayerNorm's gradients `[dx, dgamma, dbeta]` from `x`, `gamma`, the
/// forward's row statistics and `dy`.
pub(crate) fn layer_norm_backward<T: Float>(
    n: usize,
    x: &[T],
    gamma: &[T],
    stats: &[(f64, f64)],
    dy: &[T],
) -> [Vec<T>; 3] {
    let mut dx = vec![T::zero(); x.len()];
    let mut dgamma = vec![0f64; n];
    let mut dbeta = vec![0f64; n];
    for (((row, g), d), &(mean, inv)) in x
        .chunks_exact(n)
        .zip(dy.chunks_exact(n))
        .zip(dx.chunks_exact_mut(n))
        .zip(stats)
    {
        let (mut s1, mut s2) = (0f64, 0f64);
        for j in 0..n {
            let xhat = (row[j].to_f64() - mean) * inv;
            let gx = g[j].to_f64() * gamma[j].to_f64();
            s1 += gx;
            s2 += gx * xhat;
            dgamma[j] += g[j].to_f64() * xhat;
            dbeta[j] += g[j].to_f64();
        }
        for j in 0..n {
            let xhat = (row[j].to_f64() - mean) * inv;
            let gx = g[j].to_f64() * gamma[j].to_f64();
            d[j] = T::from_f64(inv / n as f64 * (n as f64 * gx - s1 - xhat * s2));
        }
    }
    let cast = |v: Vec<f64>| v.into_iter().map(T::from_f64).collect();
    [dx, cast(dgamma), cast(dbeta)]
}
