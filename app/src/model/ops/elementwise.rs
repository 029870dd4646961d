//! Elementwise binary operations with NumPy broadcasting (`Add`, `Sub`,
//! `Mul`, `Div`): a residual sum, a squeeze-excitation product, a layer
//! scale. The backward sums each input's gradient over the axes it was
//! broadcast along.

use serde::{Deserialize, Serialize};

use super::{numel, strided_offsets};
use crate::model::kernel::Float;

/// An elementwise binary operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Binary {
    /// `a + b`.
    Add,
    /// `a - b`.
    Sub,
    /// `a * b`.
    Mul,
    /// `a / b`.
    Div,
}

impl Binary {
    /// The op's name.
    pub fn name(&self) -> &'static str {
        match self {
            Binary::Add => "add",
            Binary::Sub => "sub",
            Binary::Mul => "mul",
            Binary::Div => "div",
        }
    }

    #[inline]
    fn apply<T: Float>(self, a: T, b: T) -> T {
        match self {
            Binary::Add => a + b,
            Binary::Sub => a - b,
            Binary::Mul => a * b,
            Binary::Div => a / b,
        }
    }

    /// `a op b` broadcast to `out` dims.
    pub(crate) fn forward<T: Float>(
        self,
        a: &[T],
        a_dims: &[usize],
        b: &[T],
        b_dims: &[usize],
        out: &[usize],
    ) -> Vec<T> {
        if a_dims == out {
            let mut y = a.to_vec();
            self.forward_in_place(&mut y, b, b_dims, out);
            return y;
        }
        let (ia, ib) = (source_index(out, a_dims), source_index(out, b_dims));
        ia.iter()
            .zip(&ib)
            .map(|(&i, &j)| self.apply(a[i], b[j]))
            .collect()
    }

    /// `a op b` written over `a`, which has the output's dims `out` (`b`
    /// broadcast to them).
    pub(crate) fn forward_in_place<T: Float>(
        self,
        a: &mut [T],
        b: &[T],
        b_dims: &[usize],
        out: &[usize],
    ) {
        if b_dims == out {
            a.iter_mut()
                .zip(b)
                .for_each(|(x, &y)| *x = self.apply(*x, y));
        } else {
            for (x, j) in a.iter_mut().zip(source_index(out, b_dims)) {
                *x = self.apply(*x, b[j]);
            }
        }
    }

    /// The gradients of `a` and `b` (where `need`) from the output's `dy`;
    /// `a`'s and `b`'s values are read only by `Mul` and `Div` (for `Add`
    /// and `Sub` they may be empty).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn backward<T: Float>(
        self,
        a: &[T],
        a_dims: &[usize],
        b: &[T],
        b_dims: &[usize],
        dy: &[T],
        out: &[usize],
        need: [bool; 2],
    ) -> [Option<Vec<T>>; 2] {
        if a_dims == b_dims {
            // No broadcasting (a residual sum): elementwise, no index maps.
            let zip = |f: &dyn Fn(T, T, T) -> T| {
                dy.iter()
                    .zip(a)
                    .zip(b)
                    .map(|((&g, &x), &y)| f(g, x, y))
                    .collect::<Vec<T>>()
            };
            return match self {
                Binary::Add => [need[0].then(|| dy.to_vec()), need[1].then(|| dy.to_vec())],
                Binary::Sub => [
                    need[0].then(|| dy.to_vec()),
                    need[1].then(|| dy.iter().map(|&g| -g).collect()),
                ],
                Binary::Mul => [
                    need[0].then(|| zip(&|g, _, y| g * y)),
                    need[1].then(|| zip(&|g, x, _| g * x)),
                ],
                Binary::Div => [
                    need[0].then(|| zip(&|g, _, y| g / y)),
                    need[1].then(|| zip(&|g, x, y| -g * x / (y * y))),
                ],
            };
        }
        let (ia, ib) = (source_index(out, a_dims), source_index(out, b_dims));
        let mut da = need[0].then(|| vec![T::zero(); numel(a_dims)]);
        let mut db = need[1].then(|| vec![T::zero(); numel(b_dims)]);
        for (k, &g) in dy.iter().enumerate() {
            let (i, j) = (ia[k], ib[k]);
            let (ga, gb) = match self {
                Binary::Add => (g, g),
                Binary::Sub => (g, -g),
                Binary::Mul => (g * b[j], g * a[i]),
                Binary::Div => (g / b[j], -g * a[i] / (b[j] * b[j])),
            };
            if let Some(d) = da.as_mut() {
                d[i] += ga;
            }
            if let Some(d) = db.as_mut() {
                d[j] += gb;
            }
        }
        [da, db]
    }
}

/// For every element of a tensor of `out` dims, the index of the element
/// of a tensor of `dims` (broadcast to `out`) it reads.
pub(crate) fn source_index(out: &[usize], dims: &[usize]) -> Vec<usize> {
    let n = numel(out);
    if out == dims {
        return (0..n).collect();
    }
    // Right-aligned strides of `dims`, 0 where it is broadcast.
    let lead = out.len() - dims.len();
    let mut strides = vec![0usize; out.len()];
    let mut s = 1;
    for i in (0..dims.len()).rev() {
        strides[lead + i] = if dims[i] == 1 { 0 } else { s };
        s *= dims[i];
    }
    strided_offsets(out, &strides)
}
