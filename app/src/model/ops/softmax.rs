//! Softmax along one axis: `exp(x - max) / sum(exp(x - max))` forward,
//! `y * (dy - sum(dy * y))` backward.

use super::{around, check_axis};
use crate::model::kernel::Float;

/// Softmax's output dims (those of its input).
pub fn dims(axis: usize, x: &[usize]) -> Result<Vec<usize>, String> {
    check_axis(axis, x.len())?;
    Ok(x.to_vec())
}

/// Softmax of `x` (dims `dims`) along `axis`.
pub(crate) fn forward<T: Float>(axis: usize, x: &[T], dims: &[usize]) -> Vec<T> {
    let (outer, n, inner) = around(dims, axis);
    let mut y = vec![T::zero(); x.len()];
    for o in 0..outer {
        for i in 0..inner {
            let at = |j: usize| (o * n + j) * inner + i;
            let max = (0..n)
                .map(|j| x[at(j)])
                .fold(T::neg_infinity(), num_traits::Float::max);
            let mut sum = 0f64;
            for j in 0..n {
                let e = (x[at(j)] - max).exp();
                y[at(j)] = e;
                sum += e.to_f64();
            }
            let inv = T::from_f64(1.0 / sum);
            for j in 0..n {
                y[at(j)] = y[at(j)] * inv;
            }
        }
    }
    y
}

/// The gradient of softmax's input from its output `y` and `dy`.
pub(crate) fn backward<T: Float>(axis: usize, y: &[T], dy: &[T], dims: &[usize]) -> Vec<T> {
    let (outer, n, inner) = around(dims, axis);
    let mut dx = vec![T::zero(); y.len()];
    for o in 0..outer {
        for i in 0..inner {
            let at = |j: usize| (o * n + j) * inner + i;
            let dot: f64 = (0..n).map(|j| (dy[at(j)] * y[at(j)]).to_f64()).sum();
            let dot = T::from_f64(dot);
            for j in 0..n {
                dx[at(j)] = y[at(j)] * (dy[at(j)] - dot);
            }
        }
    }
    dx
}
