//! Operations that move values without arithmetic: broadcasting's shape
//! rule, `Concat`, `Slice`, `Transpose`, `Reshape` and `Gather` of a
//! constant index. Each backward routes the gradient back to where the
//! value came from (summing where a value was read twice).

use serde::{Deserialize, Serialize};

use super::{around, check_axis, numel, strided_offsets};

use crate::model::kernel::Float;

/// The NumPy broadcast of two shapes, or why they do not broadcast.
pub fn broadcast(a: &[usize], b: &[usize]) -> Result<Vec<usize>, String> {
    let rank = a.len().max(b.len());
    let at = |d: &[usize], i: usize| (i + d.len()).checked_sub(rank).map_or(1, |j| d[j]);
    (0..rank)
        .map(|i| match (at(a, i), at(b, i)) {
            (x, y) if x == y => Ok(x),
            (1, y) => Ok(y),
            (x, 1) => Ok(x),
            _ => Err(format!("shapes {a:?} and {b:?} do not broadcast")),
        })
        .collect()
}

/// Concat's output: inputs of one rank, equal off `axis` (or 1 on the
/// batch axis, broadcast there, as a class token is).
pub fn concat_dims(axis: usize, dims: &[&[usize]]) -> Result<Vec<usize>, String> {
    let first = dims.first().ok_or("concat of nothing")?;
    check_axis(axis, first.len())?;
    let mut out = first.to_vec();
    out[axis] = 0;
    for d in dims {
        if d.len() != first.len() {
            return Err(format!("concat of ranks {} and {}", first.len(), d.len()));
        }
        for (i, (&o, &v)) in out.clone().iter().zip(d.iter()).enumerate() {
            if i == axis {
                out[i] += v;
            } else if i == 0 && (o == 1 || v == 1) {
                out[0] = o.max(v);
            } else if o != v {
                return Err(format!("concat along {axis} of {first:?} and {d:?}"));
            }
        }
    }
    Ok(out)
}

/// Concatenates `inputs` (with their dims) along `axis` into `out` dims;
/// an input of size 1 on axis 0 where the output is larger is repeated.
pub(crate) fn concat<T: Float>(axis: usize, inputs: &[(&[T], &[usize])], out: &[usize]) -> Vec<T> {
    let (outer, total, inner) = around(out, axis);
    let mut y = Vec::with_capacity(numel(out));
    for o in 0..outer {
        for (data, dims) in inputs {
            let (outer_in, size, _) = around(dims, axis);
            // Repeat along the batch: block `o` of the output reads block
            // `o % outer_in` of an input with fewer outer blocks.
            let ob = if outer_in == outer {
                o
            } else {
                o % outer_in.max(1)
            };
            let len = size * inner;
            y.extend_from_slice(&data[ob * len..(ob + 1) * len]);
        }
    }
    debug_assert_eq!(y.len(), outer * total * inner);
    y
}

/// The gradient of each input of [`concat`] (where `need`).
pub(crate) fn concat_backward<T: Float>(
    axis: usize,
    dims: &[&[usize]],
    dy: &[T],
    out: &[usize],
    need: &[bool],
) -> Vec<Option<Vec<T>>> {
    let (outer, _, inner) = around(out, axis);
    let mut grads: Vec<Option<Vec<T>>> = dims
        .iter()
        .zip(need)
        .map(|(d, &n)| n.then(|| vec![T::zero(); numel(d)]))
        .collect();
    let mut at = 0;
    for o in 0..outer {
        for (d, g) in dims.iter().zip(grads.iter_mut()) {
            let (outer_in, size, _) = around(d, axis);
            let len = size * inner;
            if let Some(g) = g {
                let ob = if outer_in == outer {
                    o
                } else {
                    o % outer_in.max(1)
                };
                for (a, &v) in g[ob * len..(ob + 1) * len]
                    .iter_mut()
                    .zip(&dy[at..at + len])
                {
                    *a += v;
                }
            }
            at += len;
        }
    }
    grads
}

/// Slice's output dims.
pub fn slice_dims(
    axis: usize,
    start: usize,
    end: usize,
    x: &[usize],
) -> Result<Vec<usize>, String> {
    check_axis(axis, x.len())?;
    if start >= end || end > x[axis] {
        return Err(format!("slice {start}..{end} of an axis of {}", x[axis]));
    }
    let mut out = x.to_vec();
    out[axis] = end - start;
    Ok(out)
}

/// `x[.., start..end, ..]` along `axis`.
pub(crate) fn slice<T: Float>(
    axis: usize,
    start: usize,
    end: usize,
    x: &[T],
    dims: &[usize],
) -> Vec<T> {
    let (outer, size, inner) = around(dims, axis);
    let mut y = Vec::with_capacity(outer * (end - start) * inner);
    for o in 0..outer {
        let base = o * size * inner;
        y.extend_from_slice(&x[base + start * inner..base + end * inner]);
    }
    y
}

/// The gradient of [`slice`]'s input: `dy` in place, zeros elsewhere.
pub(crate) fn slice_backward<T: Float>(
    axis: usize,
    start: usize,
    end: usize,
    dims: &[usize],
    dy: &[T],
) -> Vec<T> {
    let (outer, size, inner) = around(dims, axis);
    let mut dx = vec![T::zero(); numel(dims)];
    let len = (end - start) * inner;
    for o in 0..outer {
        let base = o * size * inner + start * inner;
        dx[base..base + len].copy_from_slice(&dy[o * len..(o + 1) * len]);
    }
    dx
}

/// Pad's output dims.
pub fn pad_dims(
    axis: usize,
    before: usize,
    after: usize,
    x: &[usize],
) -> Result<Vec<usize>, String> {
    check_axis(axis, x.len())?;
    let mut out = x.to_vec();
    out[axis] += before + after;
    Ok(out)
}

/// `x` with `before` and `after` entries of `value` along `axis`.
pub(crate) fn pad<T: Float>(
    axis: usize,
    before: usize,
    after: usize,
    value: T,
    x: &[T],
    dims: &[usize],
) -> Vec<T> {
    let (outer, size, inner) = around(dims, axis);
    let mut y = Vec::with_capacity(outer * (size + before + after) * inner);
    for o in 0..outer {
        y.extend(std::iter::repeat_n(value, before * inner));
        y.extend_from_slice(&x[o * size * inner..(o + 1) * size * inner]);
        y.extend(std::iter::repeat_n(value, after * inner));
    }
    y
}

/// Transpose's output dims; `perm` must be a permutation of the axes.
pub fn transpose_dims(perm: &[usize], x: &[usize]) -> Result<Vec<usize>, String> {
    let mut seen = vec![false; x.len()];
    if perm.len() != x.len()
        || perm
            .iter()
            .any(|&p| p >= x.len() || std::mem::replace(&mut seen[p], true))
    {
        return Err(format!("{perm:?} is not a permutation of {} axes", x.len()));
    }
    Ok(perm.iter().map(|&p| x[p]).collect())
}

/// For each output element of `x` (dims `dims`) transposed by `perm`, the
/// input element it reads.
fn transpose_index(perm: &[usize], dims: &[usize]) -> Vec<usize> {
    let mut in_strides = vec![1usize; dims.len()];
    for i in (0..dims.len().saturating_sub(1)).rev() {
        in_strides[i] = in_strides[i + 1] * dims[i + 1];
    }
    let out: Vec<usize> = perm.iter().map(|&p| dims[p]).collect();
    let strides: Vec<usize> = perm.iter().map(|&p| in_strides[p]).collect();
    strided_offsets(&out, &strides)
}

/// `x` (dims `dims`) with its axes permuted by `perm`.
pub(crate) fn transpose<T: Float>(perm: &[usize], x: &[T], dims: &[usize]) -> Vec<T> {
    transpose_index(perm, dims)
        .into_iter()
        .map(|i| x[i])
        .collect()
}

/// The gradient of [`transpose`]'s input.
pub(crate) fn transpose_backward<T: Float>(perm: &[usize], dims: &[usize], dy: &[T]) -> Vec<T> {
    let mut dx = vec![T::zero(); dy.len()];
    for (k, i) in transpose_index(perm, dims).into_iter().enumerate() {
        dx[i] = dy[k];
    }
    dx
}

/// One dimension of a reshape's target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Dim {
    /// A fixed size.
    Fixed(usize),
    /// The batch size times this factor.
    Batch(usize),
}

/// Reshape's output dims: the target with the batch filled in, holding as
/// many values as the input.
pub fn reshape_dims(shape: &[Dim], batch: usize, x: &[usize]) -> Result<Vec<usize>, String> {
    let out: Vec<usize> = shape
        .iter()
        .map(|d| match *d {
            Dim::Fixed(n) => n,
            Dim::Batch(k) => k * batch,
        })
        .collect();
    if numel(&out) != numel(x) {
        return Err(format!("cannot reshape {x:?} to {out:?}"));
    }
    Ok(out)
}

/// Gather's output dims.
pub fn gather_dims(
    axis: usize,
    index: &[usize],
    keep_axis: bool,
    x: &[usize],
) -> Result<Vec<usize>, String> {
    check_axis(axis, x.len())?;
    if let Some(bad) = index.iter().find(|&&i| i >= x[axis]) {
        return Err(format!(
            "index {bad} is out of range for an axis of {}",
            x[axis]
        ));
    }
    let mut out = x.to_vec();
    if keep_axis {
        out[axis] = index.len();
    } else if index.len() == 1 {
        out.remove(axis);
    } else {
        return Err("gather without the axis takes one index".into());
    }
    Ok(out)
}

/// The entries `index` of `x` along `axis`.
pub(crate) fn gather<T: Float>(axis: usize, index: &[usize], x: &[T], dims: &[usize]) -> Vec<T> {
    let (outer, size, inner) = around(dims, axis);
    let mut y = Vec::with_capacity(outer * index.len() * inner);
    for o in 0..outer {
        for &i in index {
            let base = (o * size + i) * inner;
            y.extend_from_slice(&x[base..base + inner]);
        }
    }
    y
}

/// The gradient of [`gather`]'s input (summed where an index repeats).
pub(crate) fn gather_backward<T: Float>(
    axis: usize,
    index: &[usize],
    dims: &[usize],
    dy: &[T],
) -> Vec<T> {
    let (outer, size, inner) = around(dims, axis);
    let mut dx = vec![T::zero(); numel(dims)];
    let mut at = 0;
    for o in 0..outer {
        for &i in index {
            let base = (o * size + i) * inner;
            for (d, &g) in dx[base..base + inner].iter_mut().zip(&dy[at..at + inner]) {
                *d += g;
            }
            at += inner;
        }
    }
    dx
}
