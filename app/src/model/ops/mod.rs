//! The graph's operations, one family per file: each holds its attributes,
//! its shape rule, and its CPU kernels forward and backward, written once
//! for `f32` (training) and `f64` (the gradient checks). The interpreter
//! (`model::graph::run`) dispatches to them.
//!
//! Kernels take contiguous row-major slices with their dims and return new
//! buffers; a backward returns the gradient of each input that needs one.

pub mod activation;
pub mod conv;
pub mod elementwise;
pub mod layout;
pub mod matmul;
pub mod norm;
pub mod pool;
pub mod softmax;

/// Number of elements of a tensor of `dims`.
pub(crate) fn numel(dims: &[usize]) -> usize {
    dims.iter().product()
}

/// `dims[..axis]`, `dims[axis]`, `dims[axis + 1..]` as element counts:
/// how many outer blocks, the axis's size, how many inner values.
pub(crate) fn around(dims: &[usize], axis: usize) -> (usize, usize, usize) {
    (numel(&dims[..axis]), dims[axis], numel(&dims[axis + 1..]))
}

/// An axis that must be below `rank`, or why not.
pub(crate) fn check_axis(axis: usize, rank: usize) -> Result<usize, String> {
    if axis < rank {
        Ok(axis)
    } else {
        Err(format!("axis {axis} is out of range for rank {rank}"))
    }
}

/// For every element of a tensor of `out` dims, in order, the offset
/// `sum(index[i] * strides[i])`: where it reads from a tensor laid out with
/// `strides` (0 along an axis that is broadcast).
pub(crate) fn strided_offsets(out: &[usize], strides: &[usize]) -> Vec<usize> {
    let n = numel(out);
    let mut idx = vec![0usize; out.len()];
    let mut src = 0usize;
    let mut result = Vec::with_capacity(n);
    for _ in 0..n {
        result.push(src);
        // Advance the odometer over `out`.
        for ax in (0..out.len()).rev() {
            idx[ax] += 1;
            src += strides[ax];
            if idx[ax] < out[ax] {
                break;
            }
            src -= strides[ax] * out[ax];
            idx[ax] = 0;
        }
    }
    result
}

/// Output size of a window `k`, stride `s`, padding `p` on each side over
/// `n` (PyTorch's floor rule); `None` when the window does not fit.
pub fn window_out(n: usize, k: usize, s: usize, p: usize) -> Option<usize> {
    (k > 0 && s > 0 && n + 2 * p >= k).then(|| (n + 2 * p - k) / s + 1)
}
