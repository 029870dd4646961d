//! The rectified linear unit with PyTorch's gradient at zero.
//!
//! Works around candle-core 0.11.1, whose ReLU backward (`backprop.rs`,
//! `UnaryOp::Relu`) passes the gradient where the input is `>= 0`: at an
//! input of exactly zero it lets the gradient through, where PyTorch (and the
//! usual convention, `relu'(0) = 0`) stops it. Exact zeros are common in
//! pruned networks: a neuron or channel whose weights are all pruned outputs
//! exactly 0, and Candle's rule would keep training its bias (and the layers
//! below through it). Remove this module once Candle's backward uses `> 0`
//! (the test `candle_relu_backward_still_passes_zero` in `model::gradcheck`
//! says when).

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Shape, Tensor};
use rayon::prelude::*;

use super::kernel::{self, Float, FloatKernel};

/// Elements per parallel chunk.
const CHUNK: usize = 1 << 14;

/// `max(x, 0)` element-wise (NaN stays NaN); the gradient flows where `x > 0`.
pub fn relu(x: &Tensor) -> candle_core::Result<Tensor> {
    if x.device().is_cpu() && kernel::supported(x.dtype()) {
        x.contiguous()?.apply_op1(Relu)
    } else {
        relu_with_tensor_ops(x)
    }
}

/// [`relu`] from Candle ops on any device: `x * (x > 0)`, the mask taking no
/// gradient.
pub fn relu_with_tensor_ops(x: &Tensor) -> candle_core::Result<Tensor> {
    let positive = x.gt(0.0)?.to_dtype(x.dtype())?;
    // NaN > 0 is false and NaN * 0 is NaN: NaN stays NaN, as in PyTorch.
    x * positive
}

struct Relu;

impl FloatKernel<1> for Relu {
    fn run<T: Float>(&self, [x]: [&[T]; 1], _: [&Layout; 1]) -> candle_core::Result<Vec<T>> {
        let mut y = x.to_vec();
        relu_in_place(&mut y);
        Ok(y)
    }
}

/// `max(x, 0)` in place (NaN stays NaN).
pub(super) fn relu_in_place<T: Float>(x: &mut [T]) {
    // A select rather than a conditional store, so the loop vectorises.
    x.par_chunks_mut(CHUNK).for_each(|x| {
        for v in x {
            *v = if *v > T::zero() || v.is_nan() {
                *v
            } else {
                T::zero()
            };
        }
    });
}

/// The ReLU backward in place: `dy` kept where the layer's output `y` is
/// positive (where its input was), zero elsewhere.
pub(super) fn relu_backward_in_place<T: Float>(y: &[T], dy: &mut [T]) {
    dy.par_chunks_mut(CHUNK)
        .zip(y.par_chunks(CHUNK))
        .for_each(|(d, y)| {
            for (d, &v) in d.iter_mut().zip(y) {
                *d = if v > T::zero() { *d } else { T::zero() };
            }
        });
}

impl CustomOp1 for Relu {
    fn name(&self) -> &'static str {
        "shears-relu"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let y = kernel::run(self, self.name(), [s], [l])?;
        Ok((y, l.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, _y: &Tensor, dy: &Tensor) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(x.apply_op2_no_bwd(&dy.contiguous()?, &ReluBackward)?))
    }
}

/// `(x, dy) -> dy where x > 0, else 0`.
struct ReluBackward;

impl FloatKernel<2> for ReluBackward {
    fn run<T: Float>(&self, [x, dy]: [&[T]; 2], _: [&Layout; 2]) -> candle_core::Result<Vec<T>> {
        let mut dx = vec![T::zero(); x.len()];
        dx.par_chunks_mut(CHUNK)
            .zip(x.par_chunks(CHUNK).zip(dy.par_chunks(CHUNK)))
            .for_each(|(d, (x, g))| {
                for ((d, &v), &g) in d.iter_mut().zip(x).zip(g) {
                    if v > T::zero() {
                        *d = g;
                    }
                }
            });
        Ok(dx)
    }
}

impl CustomOp2 for ReluBackward {
    fn name(&self) -> &'static str {
        "shears-relu-backward"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let dx = kernel::run(self, self.name(), [s1, s2], [l1, l2])?;
        Ok((dx, l1.shape().clone()))
    }
}
