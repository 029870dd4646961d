//! Max pooling with a square window and an equal stride, differentiable.
//!
//! Works around candle-core 0.11.1, whose `max_pool2d` backward
//! (`backprop.rs`, `Op::MaxPool2D`) multiplies the upstream gradient by
//! `avg_pool(mask)`, i.e. by (number of maxima) / (k * k), where it should pass
//! it through unchanged: every 2x2 max pool scales the gradients of all
//! layers below it by 1/4 (LeNet-5's first convolution got 1/16 of its
//! gradient). It also misplaces gradients when the input size is not a
//! multiple of the window. Remove this module once Candle's backward is fixed
//! (the gradient checks in `model::gradcheck` say when).
//!
//! Semantics are PyTorch's: the output is the window maximum, and its whole
//! gradient goes to the first maximal element of the window in row-major
//! order (a NaN counts as the maximum); rows and columns that do not fill a
//! window are dropped and get no gradient.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Shape, Tensor, D};
use rayon::prelude::*;

use super::kernel::{self, Float, FloatKernel};

/// `x [b, c, h, w]` max-pooled with a `k x k` window and stride `k`:
/// `[b, c, h / k, w / k]`. A fused operation on the CPU;
/// [`max_pool2d_with_tensor_ops`] elsewhere.
pub fn max_pool2d(x: &Tensor, k: usize) -> candle_core::Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    if k == 0 || h < k || w < k {
        candle_core::bail!("max pool: window {k} does not fit a {h}x{w} map");
    }
    if x.device().is_cpu() && kernel::supported(x.dtype()) {
        x.contiguous()?.apply_op1(MaxPool { k })
    } else {
        max_pool2d_with_tensor_ops(x, k)
    }
}

/// [`max_pool2d`] from Candle ops whose backward passes are right on every
/// device: the windows laid out on a last axis, a one-hot of the (first)
/// argmax, and the sum of the window times that one-hot.
pub fn max_pool2d_with_tensor_ops(x: &Tensor, k: usize) -> candle_core::Result<Tensor> {
    let (b, c, h, w) = x.dims4()?;
    let (oh, ow) = (h / k, w / k);
    let windows = x
        .narrow(2, 0, oh * k)?
        .narrow(3, 0, ow * k)?
        .reshape((b, c, oh, k, ow, k))?
        .permute((0, 1, 2, 4, 3, 5))?
        .reshape((b, c, oh, ow, k * k))?;
    let first_max = windows.argmax_keepdim(D::Minus1)?;
    let taps = Tensor::arange(0u32, (k * k) as u32, x.device())?.reshape((1, 1, 1, 1, k * k))?;
    let one_hot = first_max.broadcast_eq(&taps)?.to_dtype(x.dtype())?;
    (windows * one_hot)?.sum(D::Minus1)
}

/// Geometry of one pooling: batch x channels planes of `h x w`, window `k`.
#[derive(Debug, Clone, Copy)]
struct Geom {
    planes: usize,
    h: usize,
    w: usize,
    k: usize,
}

impl Geom {
    fn of(l: &Layout, k: usize) -> candle_core::Result<Self> {
        let (b, c, h, w) = l.shape().dims4()?;
        Ok(Self {
            planes: b * c,
            h,
            w,
            k,
        })
    }

    fn out(&self) -> (usize, usize) {
        (self.h / self.k, self.w / self.k)
    }

    /// Offset within a plane of the first maximal element of window `(oy, ox)`.
    #[inline]
    fn argmax<T: Float>(&self, plane: &[T], oy: usize, ox: usize) -> usize {
        let mut best = (oy * self.k) * self.w + ox * self.k;
        let mut max = plane[best];
        for i in 0..self.k {
            let row = (oy * self.k + i) * self.w + ox * self.k;
            for (j, &v) in plane[row..row + self.k].iter().enumerate() {
                if !max.is_nan() && (v > max || v.is_nan()) {
                    (max, best) = (v, row + j);
                }
            }
        }
        best
    }
}

/// `x -> max over each window`, backward by [`MaxPoolBackward`].
struct MaxPool {
    k: usize,
}

impl FloatKernel<1> for MaxPool {
    fn run<T: Float>(&self, [x]: [&[T]; 1], [l]: [&Layout; 1]) -> candle_core::Result<Vec<T>> {
        let g = Geom::of(l, self.k)?;
        let (oh, ow) = g.out();
        let mut y = vec![T::zero(); g.planes * oh * ow];
        y.par_chunks_mut(oh * ow)
            .zip(x.par_chunks(g.h * g.w))
            .for_each(|(out, plane)| {
                for oy in 0..oh {
                    for ox in 0..ow {
                        out[oy * ow + ox] = plane[g.argmax(plane, oy, ox)];
                    }
                }
            });
        Ok(y)
    }
}

impl CustomOp1 for MaxPool {
    fn name(&self) -> &'static str {
        "shears-max-pool2d"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let g = Geom::of(l, self.k)?;
        let y = kernel::run(self, self.name(), [s], [l])?;
        let (b, c, _, _) = l.shape().dims4()?;
        let (oh, ow) = g.out();
        Ok((y, Shape::from((b, c, oh, ow))))
    }

    fn bwd(&self, x: &Tensor, _y: &Tensor, dy: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let dx = x.apply_op2_no_bwd(&dy.contiguous()?, &MaxPoolBackward { k: self.k })?;
        Ok(Some(dx))
    }
}

/// `(x, dy) -> dx`: each output gradient added to its window's first maximum
/// (found again from `x`, which costs one pass and keeps no state).
struct MaxPoolBackward {
    k: usize,
}

impl FloatKernel<2> for MaxPoolBackward {
    fn run<T: Float>(
        &self,
        [x, dy]: [&[T]; 2],
        [l, _]: [&Layout; 2],
    ) -> candle_core::Result<Vec<T>> {
        let g = Geom::of(l, self.k)?;
        let (oh, ow) = g.out();
        let mut dx = vec![T::zero(); x.len()];
        dx.par_chunks_mut(g.h * g.w)
            .zip(x.par_chunks(g.h * g.w))
            .zip(dy.par_chunks(oh * ow))
            .for_each(|((d, plane), grad)| {
                for oy in 0..oh {
                    for ox in 0..ow {
                        d[g.argmax(plane, oy, ox)] += grad[oy * ow + ox];
                    }
                }
            });
        Ok(dx)
    }
}

impl CustomOp2 for MaxPoolBackward {
    fn name(&self) -> &'static str {
        "shears-max-pool2d-backward"
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
