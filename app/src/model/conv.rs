//! 2-D convolution for training on the CPU, forward and backward, one
//! fused operation: image by image, im2col into a small per-thread buffer
//! and one matrix multiply, with the bias added in place.
//!
//! Candle's CPU `conv2d` is fast forward but computes the kernel gradient as
//! a convolution with the whole feature map as kernel and the input gradient
//! with a direct transposed convolution, which makes training 10-20x slower
//! than the forward pass. Here, per image, the convolution is
//! `W[out, c*k*k] x cols[c*k*k, oh*ow]`, so both gradients are matrix
//! multiplies too (`dW += dY cols^T`, `dcols = W^T dY`, then col2im), and
//! the bias gradient is a sum per output plane. One operation instead of a
//! chain of im2col, matmul, transpose, copy and broadcast add means no
//! batch-sized column matrix, no layout copies and one autograd node. Images
//! are spread over the threads. Other devices use Candle's own `conv2d`.

use candle_core::{Shape, Tensor};
use rayon::iter::Either;
use rayon::prelude::*;

use super::fused::{self, Layer};
use super::gemm::{matmul_into, Mat};
use super::kernel::{self, Float};
use super::ops::window_out;

/// Geometry of one convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Geom {
    b: usize,
    c: usize,
    h: usize,
    w: usize,
    out: usize,
    k: usize,
    stride: usize,
    pad: usize,
    oh: usize,
    ow: usize,
}

impl Geom {
    /// The geometry of `x` (dims `[b, c, h, w]`) convolved with a weight of
    /// dims `[out, c, k, k]` (square kernel, equal stride and zero padding on
    /// both axes), or why they do not fit.
    pub(super) fn of(
        x: &[usize],
        w: &[usize],
        stride: usize,
        pad: usize,
    ) -> candle_core::Result<Self> {
        let (&[b, c, h, wd], &[out, cw, k, k2]) = (x, w) else {
            candle_core::bail!("conv2d: input {x:?} or kernel {w:?} is not 4-D");
        };
        let (true, Some(oh), Some(ow)) = (
            cw == c && k == k2,
            window_out(h, k, stride, pad),
            window_out(wd, k, stride, pad),
        ) else {
            candle_core::bail!("conv2d: input {x:?} does not fit kernel {w:?}");
        };
        Ok(Self {
            b,
            c,
            h,
            w: wd,
            out,
            k,
            stride,
            pad,
            oh,
            ow,
        })
    }

    /// Rows of one image's column matrix: `c * k * k`.
    fn rows(&self) -> usize {
        self.c * self.k * self.k
    }
    /// Output positions of one image.
    fn ohw(&self) -> usize {
        self.oh * self.ow
    }
    /// Values of one input image.
    fn image(&self) -> usize {
        self.c * self.h * self.w
    }
    /// A 1x1 convolution with stride 1 and no padding: the image is its own
    /// column matrix.
    fn pointwise(&self) -> bool {
        self.k == 1 && self.stride == 1 && self.pad == 0
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

/// The output columns `lo..hi` whose tap at kernel offset `kj` reads
/// inside a row of `n` input pixels (the others read padding).
#[inline]
fn inside(g: &Geom, kj: usize, n: usize, outs: usize) -> (usize, usize) {
    let lo = g.pad.saturating_sub(kj).div_ceil(g.stride).min(outs);
    let hi = (n + g.pad).saturating_sub(kj).div_ceil(g.stride).min(outs);
    (lo, hi.max(lo))
}

/// One image `[c, h, w]` as its column matrix `[c*k*k, oh*ow]` in `cols`:
/// row `(ci, ki, kj)` holds, for every output position, the input pixel
/// under kernel tap `(ki, kj)` (0 in the padding). Every entry is written.
fn im2col_image<T: Float>(g: Geom, x: &[T], cols: &mut [T]) {
    let (plane, ohw) = (g.h * g.w, g.ohw());
    for (r, row) in cols.chunks_exact_mut(ohw).enumerate() {
        let (ci, kk) = (r / (g.k * g.k), r % (g.k * g.k));
        let (ki, kj) = (kk / g.k, kk % g.k);
        let src = &x[ci * plane..(ci + 1) * plane];
        let (lo, hi) = inside(&g, kj, g.w, g.ow);
        for (oy, d) in row.chunks_exact_mut(g.ow).enumerate() {
            let Some(iy) = g.src(oy, ki, g.h) else {
                d.fill(T::zero());
                continue;
            };
            let s = &src[iy * g.w..(iy + 1) * g.w];
            d[..lo].fill(T::zero());
            d[hi..].fill(T::zero());
            // Input column of output column `lo`: lo * stride + kj - pad.
            let first = lo * g.stride + kj - g.pad;
            if g.stride == 1 {
                d[lo..hi].copy_from_slice(&s[first..first + hi - lo]);
            } else {
                for (v, &p) in d[lo..hi]
                    .iter_mut()
                    .zip(s[first..].iter().step_by(g.stride))
                {
                    *v = p;
                }
            }
        }
    }
}

/// The adjoint of [`im2col_image`]: every column entry added to the input
/// pixel it was read from, in `dx` (`[c, h, w]`, zero on entry).
fn col2im_image<T: Float>(g: Geom, cols: &[T], dx: &mut [T]) {
    let (plane, ohw) = (g.h * g.w, g.ohw());
    for (r, row) in cols.chunks_exact(ohw).enumerate() {
        let (ci, kk) = (r / (g.k * g.k), r % (g.k * g.k));
        let (ki, kj) = (kk / g.k, kk % g.k);
        let dst = &mut dx[ci * plane..(ci + 1) * plane];
        let (lo, hi) = inside(&g, kj, g.w, g.ow);
        if lo == hi {
            continue;
        }
        let first = lo * g.stride + kj - g.pad;
        for (oy, s) in row.chunks_exact(g.ow).enumerate() {
            let Some(iy) = g.src(oy, ki, g.h) else {
                continue;
            };
            let d = &mut dst[iy * g.w..(iy + 1) * g.w];
            if g.stride == 1 {
                for (p, &v) in d[first..first + hi - lo].iter_mut().zip(&s[lo..hi]) {
                    *p += v;
                }
            } else {
                for (p, &v) in d[first..].iter_mut().step_by(g.stride).zip(&s[lo..hi]) {
                    *p += v;
                }
            }
        }
    }
}

/// `y [b, out, oh, ow]` from `x`, `w [out, c*k*k]` and `bias [out]`.
fn forward<T: Float>(g: Geom, x: &[T], w: &[T], bias: &[T]) -> Vec<T> {
    let (rows, ohw) = (g.rows(), g.ohw());
    let mut y = vec![T::zero(); g.b * g.out * ohw];
    if y.is_empty() || g.image() == 0 {
        return y;
    }
    let weights = Mat::new(w, g.out, rows);
    y.par_chunks_mut(g.out * ohw)
        .zip(x.par_chunks(g.image()))
        .for_each_init(
            || vec![T::zero(); if g.pointwise() { 0 } else { rows * ohw }],
            |cols, (yb, xb)| {
                let cols: &[T] = if g.pointwise() {
                    xb
                } else {
                    im2col_image(g, xb, cols);
                    cols
                };
                matmul_into(yb, weights, Mat::new(cols, rows, ohw), false);
                for (plane, &b) in yb.chunks_exact_mut(ohw).zip(bias) {
                    for v in plane {
                        *v += b;
                    }
                }
            },
        );
    y
}

/// Number of image groups the weight gradient is accumulated over, each
/// into its own partial sum, the partials then added in group order: the
/// sum is the same, bit for bit, whatever the number of threads and however
/// rayon schedules the groups (runs in parallel jobs give the results of
/// runs one after another).
const GRADIENT_GROUPS: usize = 16;

/// Gradients of one group of images: `dw` and `db` (in `f64`).
struct Partial<T> {
    dw: Vec<T>,
    db: Vec<f64>,
}

impl<T: Float> Partial<T> {
    /// Zero gradients of `nw` weights and `out` biases.
    fn zeros(nw: usize, out: usize) -> Self {
        Self {
            dw: vec![T::zero(); nw],
            db: vec![0.0; out],
        }
    }
}

/// `[dx, dw, db]` packed, from `x`, the output gradient `dy` and `w`;
/// without `input_grad`, `dx` is left out (`[dw, db]`: the network's first
/// layer, whose input gradient nothing uses).
pub(super) fn backward<T: Float>(g: Geom, x: &[T], dy: &[T], w: &[T], input_grad: bool) -> Vec<T> {
    let (rows, ohw) = (g.rows(), g.ohw());
    let nw = g.out * rows;
    let mut dx = vec![T::zero(); if input_grad { x.len() } else { 0 }];
    let weights = Mat::new(w, g.out, rows);
    let buffer = if g.pointwise() { 0 } else { rows * ohw };
    let per_group = g.b.div_ceil(GRADIENT_GROUPS).max(1);
    let group = |dx: Option<&mut [T]>, x: &[T], dy: &[T]| {
        let mut p = Partial::zeros(nw, g.out);
        let mut cols = vec![T::zero(); buffer];
        let mut dcols = vec![T::zero(); if dx.is_some() { buffer } else { 0 }];
        let mut dx_images = dx.map(|d| d.chunks_mut(g.image()));
        for (xb, dyb) in x.chunks(g.image()).zip(dy.chunks(g.out * ohw)) {
            let dxb = dx_images.as_mut().and_then(|d| d.next());
            let grad = Mat::new(dyb, g.out, ohw);
            if g.pointwise() {
                matmul_into(&mut p.dw, grad, Mat::new(xb, rows, ohw).t(), true);
                if let Some(dxb) = dxb {
                    matmul_into(dxb, weights.t(), grad, false);
                }
            } else {
                im2col_image(g, xb, &mut cols);
                matmul_into(&mut p.dw, grad, Mat::new(&cols, rows, ohw).t(), true);
                if let Some(dxb) = dxb {
                    matmul_into(&mut dcols, weights.t(), grad, false);
                    col2im_image(g, &dcols, dxb);
                }
            }
            for (db, plane) in p.db.iter_mut().zip(dyb.chunks_exact(ohw)) {
                *db += kernel::sum_f64(plane, |v| v.to_f64());
            }
        }
        p
    };
    let mut total = Partial::zeros(nw, g.out);
    if !(x.is_empty() || dy.is_empty()) {
        let dx_parts = if input_grad {
            Either::Left(dx.par_chunks_mut(per_group * g.image()).map(Some))
        } else {
            Either::Right((0..g.b.div_ceil(per_group)).into_par_iter().map(|_| None))
        };
        let partials: Vec<Partial<T>> = dx_parts
            .zip(x.par_chunks(per_group * g.image()))
            .zip(dy.par_chunks(per_group * g.out * ohw))
            .map(|((dxb, xb), dyb)| group(dxb, xb, dyb))
            .collect();
        for p in partials {
            for (x, y) in total.dw.iter_mut().zip(&p.dw) {
                *x += *y;
            }
            for (x, y) in total.db.iter_mut().zip(&p.db) {
                *x += y;
            }
        }
    }
    let mut out = dx;
    out.reserve_exact(nw + g.out);
    out.extend_from_slice(&total.dw);
    out.extend(total.db.iter().map(|&v| T::from_f64(v)));
    out
}

impl Layer for Geom {
    const NAME: &'static str = "shears-conv2d";
    const BACKWARD_NAME: &'static str = "shears-conv2d-backward";

    fn out_shape(&self) -> Shape {
        Shape::from((self.b, self.out, self.oh, self.ow))
    }

    fn outputs(&self) -> usize {
        self.out
    }

    fn forward<T: Float>(&self, x: &[T], w: &[T], bias: &[T]) -> Vec<T> {
        forward(*self, x, w, bias)
    }

    fn backward<T: Float>(&self, x: &[T], dy: &[T], w: &[T]) -> Vec<T> {
        backward(*self, x, dy, w, true)
    }
}

/// `x [b, c, h, w]` convolved with `w [out, c, k, k]` (square kernel, equal
/// stride and zero padding on both axes) plus `bias [out]` if given,
/// differentiable in all three.
pub fn conv2d(
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    stride: usize,
    pad: usize,
) -> candle_core::Result<Tensor> {
    let g = Geom::of(x.dims(), w.dims(), stride, pad)?;
    let out = g.out;
    if let Some(bias) = bias {
        if bias.dims() != [out] {
            candle_core::bail!("conv2d: bias {:?} for {out} outputs", bias.dims());
        }
    }
    if !x.device().is_cpu() || !kernel::supported(x.dtype()) {
        let y = x.conv2d(w, pad, stride, 1, 1)?;
        return match bias {
            Some(bias) => y.broadcast_add(&bias.reshape((1, out, 1, 1))?),
            None => Ok(y),
        };
    }
    fused::apply(g, x, w, bias)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::testutil::{max_diff, projected_grads};
    use candle_core::{Device, Var};

    /// Against Candle's convolution, for kernels, strides and paddings the
    /// models use, and batches of one, two and five images.
    #[test]
    fn matches_candle_forward_and_backward() {
        let d = Device::Cpu;
        for (b, c, h, k, stride, pad) in [
            (2, 3, 9, 1, 1, 0),
            (2, 3, 9, 3, 1, 1),
            (2, 2, 8, 3, 2, 1),
            (2, 4, 7, 1, 2, 0),
            (2, 1, 12, 5, 1, 2),
            (1, 2, 20, 3, 1, 1),
            (5, 2, 20, 3, 1, 1),
            (5, 3, 40, 1, 2, 0),
        ] {
            let x = Var::randn(0f32, 1.0, (b, c, h, h), &d).unwrap();
            let w = Var::randn(0f32, 1.0, (5, c, k, k), &d).unwrap();
            let bias = Var::randn(0f32, 1.0, 5, &d).unwrap();
            let ours = conv2d(
                x.as_tensor(),
                w.as_tensor(),
                Some(bias.as_tensor()),
                stride,
                pad,
            )
            .unwrap();
            let theirs = x
                .as_tensor()
                .conv2d(w.as_tensor(), pad, stride, 1, 1)
                .unwrap()
                .broadcast_add(&bias.as_tensor().reshape((1, 5, 1, 1)).unwrap())
                .unwrap();
            assert_eq!(ours.dims(), theirs.dims());
            assert!(max_diff(&ours, &theirs) < 1e-4);
            let (g1, g2) = projected_grads(ours, theirs);
            for v in [&x, &w, &bias] {
                let a = g1.get(v.as_tensor()).unwrap();
                let b = g2.get(v.as_tensor()).unwrap();
                assert!(
                    max_diff(a, b) < 1e-3,
                    "gradient differs for b={b} c={c} h={h} k={k} s={stride}"
                );
            }
        }
    }

    /// The range-based im2col and col2im equal the definition, pixel by
    /// pixel, for strides, paddings and kernels the models use.
    #[test]
    fn im2col_and_col2im_follow_the_definition() {
        for (c, h, w, k, stride, pad) in [
            (2, 7, 6, 3, 1, 1),
            (2, 7, 6, 3, 2, 1),
            (1, 9, 9, 5, 1, 2),
            (3, 5, 8, 1, 2, 0),
            (1, 4, 4, 3, 3, 2),
        ] {
            let oh = (h + 2 * pad - k) / stride + 1;
            let ow = (w + 2 * pad - k) / stride + 1;
            let g = Geom {
                b: 1,
                c,
                h,
                w,
                out: 1,
                k,
                stride,
                pad,
                oh,
                ow,
            };
            let x: Vec<f64> = (0..c * h * w).map(|v| v as f64 + 1.0).collect();
            let mut cols = vec![-1.0; g.rows() * g.ohw()];
            im2col_image(g, &x, &mut cols);
            let mut back = vec![0.0; x.len()];
            col2im_image(g, &cols, &mut back);
            let mut want_back = vec![0.0; x.len()];
            for r in 0..g.rows() {
                let (ci, ki, kj) = (r / (k * k), (r % (k * k)) / k, r % k);
                for oy in 0..oh {
                    for ox in 0..ow {
                        let (iy, ix) = (
                            (oy * stride + ki) as isize - pad as isize,
                            (ox * stride + kj) as isize - pad as isize,
                        );
                        let inside = (0..h as isize).contains(&iy) && (0..w as isize).contains(&ix);
                        let at = ci * h * w + (iy.max(0) as usize) * w + ix.max(0) as usize;
                        let want = if inside { x[at] } else { 0.0 };
                        assert_eq!(
                            cols[r * g.ohw() + oy * ow + ox],
                            want,
                            "{g:?} row {r} ({oy}, {ox})"
                        );
                        if inside {
                            want_back[at] += want;
                        }
                    }
                }
            }
            assert_eq!(back, want_back, "{g:?}");
        }
    }
}
