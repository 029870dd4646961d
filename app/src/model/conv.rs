//! 2-D convolution for training on the CPU as im2col + one large matrix
//! multiply, forward and backward.
//!
//! Candle's CPU `conv2d` is fast forward but computes the kernel gradient as
//! a convolution with the whole feature map as kernel and the input gradient
//! with a direct transposed convolution, which makes training 10-20x slower
//! than the forward pass. Here the convolution is `W[out, c*k*k] x
//! cols[c*k*k, b*oh*ow]`, so both gradients are matrix multiplies too, and
//! the only custom code is the data movement (im2col and its adjoint
//! col2im). Other devices use Candle's own `conv2d`.

use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Tensor};
use rayon::prelude::*;

use super::kernel::{self, Float, FloatKernel};

/// Geometry of one convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Geom {
    b: usize,
    c: usize,
    h: usize,
    w: usize,
    k: usize,
    stride: usize,
    pad: usize,
    oh: usize,
    ow: usize,
}

impl Geom {
    fn rows(&self) -> usize {
        self.c * self.k * self.k
    }
    fn cols(&self) -> usize {
        self.b * self.oh * self.ow
    }
    /// Input coordinate for output coordinate `o` and kernel offset `ki`, if
    /// inside the (unpadded) input.
    #[inline]
    fn src(&self, o: usize, ki: usize, size: usize) -> Option<usize> {
        (o * self.stride + ki)
            .checked_sub(self.pad)
            .filter(|&i| i < size)
    }
}

/// `[b, c, h, w] -> [c*k*k, b*oh*ow]`.
struct Im2Col(Geom);

impl CustomOp1 for Im2Col {
    fn name(&self) -> &'static str {
        "shears-im2col"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let g = self.0;
        let out = kernel::run(self, self.name(), [s], [l])?;
        Ok((out, Shape::from((g.rows(), g.cols()))))
    }

    fn bwd(
        &self,
        _arg: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(grad.contiguous()?.apply_op1_no_bwd(&Col2Im(self.0))?))
    }
}

/// The adjoint of [`Im2Col`]: `[c*k*k, b*oh*ow] -> [b, c, h, w]`, summing
/// overlapping contributions.
struct Col2Im(Geom);

impl CustomOp1 for Col2Im {
    fn name(&self) -> &'static str {
        "shears-col2im"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let g = self.0;
        let out = kernel::run(self, self.name(), [s], [l])?;
        Ok((out, Shape::from((g.b, g.c, g.h, g.w))))
    }
}

impl FloatKernel<1> for Im2Col {
    fn run<T: Float>(&self, [x]: [&[T]; 1], _: [&Layout; 1]) -> candle_core::Result<Vec<T>> {
        Ok(im2col(self.0, x))
    }
}

impl FloatKernel<1> for Col2Im {
    fn run<T: Float>(&self, [cols]: [&[T]; 1], _: [&Layout; 1]) -> candle_core::Result<Vec<T>> {
        Ok(col2im(self.0, cols))
    }
}

/// `[b, c, h, w] -> [c*k*k, b*oh*ow]`: row `(ci, ki, kj)` holds, for every
/// output position, the input pixel under kernel tap `(ki, kj)` (0 in the padding).
fn im2col<T: Float>(g: Geom, x: &[T]) -> Vec<T> {
    let (ncols, plane, ohw) = (g.cols(), g.h * g.w, g.oh * g.ow);
    let mut out = vec![T::zero(); g.rows() * ncols];
    out.par_chunks_mut(ncols).enumerate().for_each(|(r, row)| {
        let (ci, kk) = (r / (g.k * g.k), r % (g.k * g.k));
        let (ki, kj) = (kk / g.k, kk % g.k);
        for bi in 0..g.b {
            let src = &x[(bi * g.c + ci) * plane..(bi * g.c + ci + 1) * plane];
            let dst = &mut row[bi * ohw..(bi + 1) * ohw];
            for oy in 0..g.oh {
                let Some(iy) = g.src(oy, ki, g.h) else {
                    continue;
                };
                let d = &mut dst[oy * g.ow..(oy + 1) * g.ow];
                let s = &src[iy * g.w..(iy + 1) * g.w];
                for (ox, v) in d.iter_mut().enumerate() {
                    if let Some(ix) = g.src(ox, kj, g.w) {
                        *v = s[ix];
                    }
                }
            }
        }
    });
    out
}

/// The adjoint of [`im2col`]: every column entry added back to the input
/// pixel it was read from.
fn col2im<T: Float>(g: Geom, cols: &[T]) -> Vec<T> {
    let (ncols, plane, ohw) = (g.cols(), g.h * g.w, g.oh * g.ow);
    let mut out = vec![T::zero(); g.b * g.c * plane];
    out.par_chunks_mut(g.c * plane)
        .enumerate()
        .for_each(|(bi, img)| {
            for r in 0..g.rows() {
                let (ci, kk) = (r / (g.k * g.k), r % (g.k * g.k));
                let (ki, kj) = (kk / g.k, kk % g.k);
                let src = &cols[r * ncols + bi * ohw..r * ncols + (bi + 1) * ohw];
                let dst = &mut img[ci * plane..(ci + 1) * plane];
                for oy in 0..g.oh {
                    let Some(iy) = g.src(oy, ki, g.h) else {
                        continue;
                    };
                    let s = &src[oy * g.ow..(oy + 1) * g.ow];
                    let d = &mut dst[iy * g.w..(iy + 1) * g.w];
                    for (ox, &v) in s.iter().enumerate() {
                        if let Some(ix) = g.src(ox, kj, g.w) {
                            d[ix] += v;
                        }
                    }
                }
            }
        });
    out
}

/// `x [b, c, h, w]` convolved with `w [out, c, k, k]` (square kernel, equal
/// stride and zero padding on both axes), differentiable in both arguments.
pub fn conv2d(x: &Tensor, w: &Tensor, stride: usize, pad: usize) -> candle_core::Result<Tensor> {
    if !x.device().is_cpu() || !kernel::supported(x.dtype()) {
        return x.conv2d(w, pad, stride, 1, 1);
    }
    let (b, c, h, wd) = x.dims4()?;
    let (out, cw, k, k2) = w.dims4()?;
    if cw != c || k != k2 || stride == 0 || h + 2 * pad < k || wd + 2 * pad < k {
        candle_core::bail!(
            "conv2d: input {:?} does not fit kernel {:?}",
            x.dims(),
            w.dims()
        );
    }
    let oh = (h + 2 * pad - k) / stride + 1;
    let ow = (wd + 2 * pad - k) / stride + 1;
    let g = Geom {
        b,
        c,
        h,
        w: wd,
        k,
        stride,
        pad,
        oh,
        ow,
    };
    let cols = x.contiguous()?.apply_op1(Im2Col(g))?;
    let y = w.reshape((out, c * k * k))?.matmul(&cols)?;
    y.reshape((out, b, oh, ow))?.transpose(0, 1)?.contiguous()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::testutil::{max_diff, projected_grads};
    use candle_core::{Device, Var};

    #[test]
    fn matches_candle_forward_and_backward() {
        let d = Device::Cpu;
        for (c, h, k, stride, pad) in [
            (3, 9, 3, 1, 1),
            (2, 8, 3, 2, 1),
            (4, 7, 1, 2, 0),
            (1, 12, 5, 1, 2),
        ] {
            let x = Var::randn(0f32, 1.0, (2, c, h, h), &d).unwrap();
            let w = Var::randn(0f32, 1.0, (5, c, k, k), &d).unwrap();
            let ours = conv2d(x.as_tensor(), w.as_tensor(), stride, pad).unwrap();
            let theirs = x
                .as_tensor()
                .conv2d(w.as_tensor(), pad, stride, 1, 1)
                .unwrap();
            assert_eq!(ours.dims(), theirs.dims());
            assert!(max_diff(&ours, &theirs) < 1e-4);
            let (g1, g2) = projected_grads(ours, theirs);
            for v in [&x, &w] {
                let a = g1.get(v.as_tensor()).unwrap();
                let b = g2.get(v.as_tensor()).unwrap();
                assert!(
                    max_diff(a, b) < 1e-3,
                    "gradient differs for c={c} k={k} s={stride}"
                );
            }
        }
    }
}
