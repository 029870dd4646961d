//! Max pooling with a square window, any stride and padding, differentiable;
//! adaptive average pooling.
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
//! order (a NaN counts as the maximum); padding never wins; rows and columns
//! that do not fill a window are dropped and get no gradient.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Shape, Tensor, D};
use std::sync::{Arc, Mutex};

use rayon::prelude::*;

use super::kernel::{self, Float, FloatKernel};

/// `x [b, c, h, w]` max-pooled with a `k x k` window and stride `k`:
/// `[b, c, h / k, w / k]`.
pub fn max_pool2d(x: &Tensor, k: usize) -> candle_core::Result<Tensor> {
    max_pool2d_strided(x, k, k, 0)
}

/// `x [b, c, h, w]` max-pooled with a `k x k` window, stride `s` and `pad`
/// rows and columns of padding on each side (PyTorch's `MaxPool2d(k, s, pad)`).
/// A fused operation on the CPU; [`max_pool2d_with_tensor_ops`] elsewhere.
pub fn max_pool2d_strided(
    x: &Tensor,
    k: usize,
    s: usize,
    pad: usize,
) -> candle_core::Result<Tensor> {
    let g = Geom::of(x.layout(), k, s, pad)?;
    if x.device().is_cpu() && kernel::supported(x.dtype()) {
        x.contiguous()?.apply_op1(MaxPool {
            g,
            argmax: Mutex::default(),
        })
    } else {
        max_pool2d_with_tensor_ops(x, k, s, pad)
    }
}

/// [`max_pool2d_strided`] from Candle ops whose backward passes are right on
/// every device: the windows gathered on a last axis (padding as a very
/// negative value), a one-hot of the (first) argmax, and the sum of the
/// window times that one-hot.
pub fn max_pool2d_with_tensor_ops(
    x: &Tensor,
    k: usize,
    s: usize,
    pad: usize,
) -> candle_core::Result<Tensor> {
    let g = Geom::of(x.layout(), k, s, pad)?;
    let (oh, ow) = g.out();
    max_pool_windows(x, [k, k], [s, s], [pad; 4], [oh, ow])
}

/// Max pooling of `x [b, c, h, w]` to `[b, c, out[0], out[1]]` with window
/// `k`, stride `s` and padding `pad` (top, left, bottom, right) from Candle
/// ops whose backward is right on every device: the windows gathered on a
/// last axis (padding, and what a `ceil_mode` window reaches past it, as a
/// very negative value), a one-hot of the first argmax, and the sum of the
/// window times that one-hot.
pub fn max_pool_windows(
    x: &Tensor,
    k: [usize; 2],
    s: [usize; 2],
    pad: [usize; 4],
    out: [usize; 2],
) -> candle_core::Result<Tensor> {
    let (b, c, h, w) = x.dims4()?;
    let [oh, ow] = out;
    // Rows and columns after padding: at least what the last window reaches.
    let ph = (h + pad[0] + pad[2]).max((oh.max(1) - 1) * s[0] + k[0]);
    let pw = (w + pad[1] + pad[3]).max((ow.max(1) - 1) * s[1] + k[1]);
    let padded = if (ph, pw) == (h, w) {
        x.clone()
    } else {
        // Zeros, then a large negative constant added on the border, so a
        // padded cell never wins and `0 * border` stays finite.
        let border: Vec<f32> = (0..ph * pw)
            .map(|i| {
                let (y, xx) = (i / pw, i % pw);
                let inside =
                    (pad[0]..pad[0] + h).contains(&y) && (pad[1]..pad[1] + w).contains(&xx);
                if inside {
                    0.0
                } else {
                    -1e30
                }
            })
            .collect();
        let border = Tensor::from_vec(border, (1, 1, ph, pw), x.device())?.to_dtype(x.dtype())?;
        x.pad_with_zeros(2, pad[0], ph - h - pad[0])?
            .pad_with_zeros(3, pad[1], pw - w - pad[1])?
            .broadcast_add(&border)?
    };
    let taps_per = k[0] * k[1];
    let mut taps = Vec::with_capacity(oh * ow * taps_per);
    for oy in 0..oh {
        for ox in 0..ow {
            for i in 0..k[0] {
                for j in 0..k[1] {
                    taps.push(((oy * s[0] + i) * pw + ox * s[1] + j) as u32);
                }
            }
        }
    }
    let idx = Tensor::from_vec(taps, oh * ow * taps_per, x.device())?;
    let windows = padded
        .reshape((b, c, ph * pw))?
        .contiguous()?
        .index_select(&idx, 2)?
        .reshape((b, c, oh, ow, taps_per))?;
    let first_max = windows.argmax_keepdim(D::Minus1)?;
    let taps =
        Tensor::arange(0u32, taps_per as u32, x.device())?.reshape((1, 1, 1, 1, taps_per))?;
    let one_hot = first_max.broadcast_eq(&taps)?.to_dtype(x.dtype())?;
    (windows * one_hot)?.sum(D::Minus1)
}

/// PyTorch's `AdaptiveAvgPool2d((oh, ow))` of `x [b, c, h, w]`: output cell
/// `(i, j)` averages rows `floor(i*h/oh)..ceil((i+1)*h/oh)` and the columns
/// likewise.
pub fn adaptive_avg_pool2d(x: &Tensor, oh: usize, ow: usize) -> candle_core::Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    if (oh, ow) == (h, w) {
        return Ok(x.clone());
    }
    if (oh, ow) == (1, 1) {
        return x.mean_keepdim((2, 3));
    }
    separable(x, &adaptive_axis(h, oh), &adaptive_axis(w, ow))
}

/// The cells `floor(i*n/out)..ceil((i+1)*n/out)` that output `i` of
/// adaptive pooling along an axis of `n` cells averages (PyTorch's bins).
pub(crate) fn adaptive_bin(n: usize, out: usize, i: usize) -> (usize, usize) {
    (i * n / out, ((i + 1) * n).div_ceil(out))
}

/// The input cells and weights of each of the `out` outputs of adaptive
/// average pooling along an axis of `n` cells.
pub(crate) fn adaptive_axis(n: usize, out: usize) -> Vec<Vec<(usize, f64)>> {
    (0..out)
        .map(|i| {
            let (a, b) = adaptive_bin(n, out, i);
            (a..b).map(|j| (j, 1.0 / (b - a) as f64)).collect()
        })
        .collect()
}

/// The `[taps.len(), n]` matrix, row-major, of the weights `taps` (output
/// `i` takes input `j` with weight `w` for each `(j, w)` in `taps[i]`).
pub(crate) fn axis_matrix(taps: &[Vec<(usize, f64)>], n: usize) -> Vec<f64> {
    let mut m = vec![0f64; taps.len() * n];
    for (i, t) in taps.iter().enumerate() {
        for &(j, v) in t {
            m[i * n + j] += v;
        }
    }
    m
}

/// Average pooling of `x [b, c, h, w]` with a `k x k` window, stride `s`
/// and `pad` on each side (PyTorch's `AvgPool2d`, ONNX's `AveragePool`):
/// the divisor is `k * k` when `count_pad`, else the cells inside the map.
pub fn avg_pool2d(
    x: &Tensor,
    k: usize,
    s: usize,
    pad: usize,
    count_pad: bool,
) -> candle_core::Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    let axis = |n: usize| -> candle_core::Result<Vec<Vec<(usize, f64)>>> {
        let out = super::ops::window_out(n, k, s, pad)
            .filter(|_| 2 * pad <= k)
            .ok_or_else(|| {
                candle_core::Error::Msg(format!(
                    "average pool: window {k} (stride {s}, padding {pad}) does not fit {n}"
                ))
            })?;
        Ok((0..out)
            .map(|o| {
                let start = o * s;
                let cells: Vec<usize> = (start..start + k)
                    .filter(|&p| p >= pad && p < n + pad)
                    .map(|p| p - pad)
                    .collect();
                // Separable: the 2-D divisor is the product of the two axes'.
                let div = if count_pad { k } else { cells.len().max(1) } as f64;
                cells.into_iter().map(|c| (c, 1.0 / div)).collect()
            })
            .collect())
    };
    separable(x, &axis(h)?, &axis(w)?)
}

/// `x [b, c, h, w]` averaged along each axis by the weights `rows[i]` (the
/// input rows and weights of output row `i`) and `cols[j]`: two matrix
/// products with small constant matrices, so the backward is Candle's
/// matmul.
pub(crate) fn separable(
    x: &Tensor,
    rows: &[Vec<(usize, f64)>],
    cols: &[Vec<(usize, f64)>],
) -> candle_core::Result<Tensor> {
    let (b, c, h, w) = x.dims4()?;
    let matrix = |taps: &[Vec<(usize, f64)>], n: usize| -> candle_core::Result<Tensor> {
        Tensor::from_vec(axis_matrix(taps, n), (taps.len(), n), x.device())?.to_dtype(x.dtype())
    };
    let (oh, ow) = (rows.len(), cols.len());
    let mh = matrix(rows, h)?; // [oh, h]
    let mw = matrix(cols, w)?; // [ow, w]
    let y = x.reshape((b * c * h, w))?.matmul(&mw.t()?)?; // [b*c*h, ow]
    let y = y.reshape((b * c, h, ow))?.transpose(1, 2)?.contiguous()?; // [b*c, ow, h]
    let y = y.reshape((b * c * ow, h))?.matmul(&mh.t()?)?; // [b*c*ow, oh]
    y.reshape((b, c, ow, oh))?.transpose(2, 3)?.contiguous()
}

/// Geometry of one pooling: batch x channels planes of `h x w`, window `k`,
/// stride `s`, padding `pad`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Geom {
    planes: usize,
    h: usize,
    w: usize,
    k: usize,
    s: usize,
    pad: usize,
}

impl Geom {
    fn of(l: &Layout, k: usize, s: usize, pad: usize) -> candle_core::Result<Self> {
        Self::new(l.dims(), k, s, pad)
    }

    /// The pooling of maps of dims `[b, c, h, w]`, or why it does not fit.
    pub(super) fn new(dims: &[usize], k: usize, s: usize, pad: usize) -> candle_core::Result<Self> {
        let &[b, c, h, w] = dims else {
            candle_core::bail!("max pool: input {dims:?} is not 4-D");
        };
        let fits = super::ops::window_out(h, k, s, pad).is_some()
            && super::ops::window_out(w, k, s, pad).is_some();
        if !fits || 2 * pad > k {
            candle_core::bail!(
                "max pool: window {k} (stride {s}, padding {pad}) does not fit a {h}x{w} map"
            );
        }
        Ok(Self {
            planes: b * c,
            h,
            w,
            k,
            s,
            pad,
        })
    }

    fn out(&self) -> (usize, usize) {
        let o = |n| (n + 2 * self.pad - self.k) / self.s + 1;
        (o(self.h), o(self.w))
    }

    /// [`Geom::argmax`] of a 2x2 window with stride 2 and no padding (the
    /// common pool), its four candidates compared in the same order without
    /// the clipping and loops of the general window.
    #[inline]
    fn argmax_2x2<T: Float>(&self, plane: &[T], oy: usize, ox: usize) -> usize {
        let top = 2 * oy * self.w + 2 * ox;
        let bottom = top + self.w;
        let mut best = top;
        let mut max = plane[top];
        for i in [top + 1, bottom, bottom + 1] {
            let v = plane[i];
            if !max.is_nan() && (v > max || v.is_nan()) {
                (max, best) = (v, i);
            }
        }
        best
    }

    /// Offset within a plane of the first maximal element of window
    /// `(oy, ox)`, padding left out.
    #[inline]
    fn argmax<T: Float>(&self, plane: &[T], oy: usize, ox: usize) -> usize {
        let clip = |o: usize, n: usize| {
            let start = (o * self.s).saturating_sub(self.pad);
            let end = (o * self.s + self.k).saturating_sub(self.pad).min(n);
            (start, end)
        };
        let (y0, y1) = clip(oy, self.h);
        let (x0, x1) = clip(ox, self.w);
        let mut best = y0 * self.w + x0;
        let mut max = plane[best];
        for y in y0..y1 {
            let row = y * self.w;
            for (j, &v) in plane[row + x0..row + x1].iter().enumerate() {
                if !max.is_nan() && (v > max || v.is_nan()) {
                    (max, best) = (v, row + x0 + j);
                }
            }
        }
        best
    }
}

/// The maximum of each window of `x` and its offset within its plane.
pub(super) fn forward<T: Float>(g: Geom, x: &[T]) -> (Vec<T>, Vec<u32>) {
    let (oh, ow) = g.out();
    let mut y = vec![T::zero(); g.planes * oh * ow];
    let mut at = vec![0u32; y.len()];
    if !y.is_empty() {
        let halving = g.k == 2 && g.s == 2 && g.pad == 0;
        y.par_chunks_mut(oh * ow)
            .zip(at.par_chunks_mut(oh * ow))
            .zip(x.par_chunks(g.h * g.w))
            .for_each(|((out, at), plane)| {
                for oy in 0..oh {
                    for ox in 0..ow {
                        let i = if halving {
                            g.argmax_2x2(plane, oy, ox)
                        } else {
                            g.argmax(plane, oy, ox)
                        };
                        out[oy * ow + ox] = plane[i];
                        at[oy * ow + ox] = i as u32;
                    }
                }
            });
    }
    (y, at)
}

/// Adds each output gradient of `dy` to `dx` at its window's maximum, as
/// [`forward`] found it (`argmax`).
pub(super) fn scatter<T: Float>(g: Geom, argmax: &[u32], dy: &[T], dx: &mut [T]) {
    let (oh, ow) = g.out();
    if dx.is_empty() || dy.is_empty() {
        return;
    }
    dx.par_chunks_mut(g.h * g.w)
        .zip(argmax.par_chunks(oh * ow))
        .zip(dy.par_chunks(oh * ow))
        .for_each(|((d, at), grad)| {
            for (&i, &v) in at.iter().zip(grad) {
                d[i as usize] += v;
            }
        });
}

/// `x -> max over each window`, backward by [`MaxPoolBackward`]. The
/// forward pass keeps where each maximum was, so the backward pass only
/// scatters.
struct MaxPool {
    g: Geom,
    /// Offset within its plane of each output's maximum, from the last
    /// forward pass.
    argmax: Mutex<Option<Arc<Vec<u32>>>>,
}

impl FloatKernel<1> for MaxPool {
    fn run<T: Float>(&self, [x]: [&[T]; 1], [l]: [&Layout; 1]) -> candle_core::Result<Vec<T>> {
        let g = Geom::of(l, self.g.k, self.g.s, self.g.pad)?;
        let (y, at) = forward(g, x);
        if let Ok(mut slot) = self.argmax.lock() {
            *slot = Some(Arc::new(at));
        }
        Ok(y)
    }
}

impl CustomOp1 for MaxPool {
    fn name(&self) -> &'static str {
        "shears-max-pool2d"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let g = self.g;
        let y = kernel::run(self, self.name(), [s], [l])?;
        let (b, c, _, _) = l.shape().dims4()?;
        let (oh, ow) = g.out();
        Ok((y, Shape::from((b, c, oh, ow))))
    }

    fn bwd(&self, x: &Tensor, _y: &Tensor, dy: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let argmax = self.argmax.lock().ok().and_then(|a| a.clone());
        let dx = x.apply_op2_no_bwd(&dy.contiguous()?, &MaxPoolBackward { g: self.g, argmax })?;
        Ok(Some(dx))
    }
}

/// `(x, dy) -> dx`: each output gradient added to its window's first
/// maximum (where the forward pass found it, else found again from `x`).
struct MaxPoolBackward {
    g: Geom,
    argmax: Option<Arc<Vec<u32>>>,
}

impl FloatKernel<2> for MaxPoolBackward {
    fn run<T: Float>(
        &self,
        [x, dy]: [&[T]; 2],
        [l, _]: [&Layout; 2],
    ) -> candle_core::Result<Vec<T>> {
        let g = Geom::of(l, self.g.k, self.g.s, self.g.pad)?;
        let (oh, ow) = g.out();
        let mut dx = vec![T::zero(); x.len()];
        if dx.is_empty() || dy.is_empty() {
            return Ok(dx);
        }
        match self.argmax.as_deref().filter(|a| a.len() == dy.len()) {
            Some(argmax) => scatter(g, argmax, dy, &mut dx),
            None => dx
                .par_chunks_mut(g.h * g.w)
                .zip(x.par_chunks(g.h * g.w))
                .zip(dy.par_chunks(oh * ow))
                .for_each(|((d, plane), grad)| {
                    for oy in 0..oh {
                        for ox in 0..ow {
                            d[g.argmax(plane, oy, ox)] += grad[oy * ow + ox];
                        }
                    }
                }),
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The 2x2 shortcut picks the window's first maximum exactly as the
    /// general search does, with ties, NaNs and odd sizes (the last row and
    /// column dropped).
    #[test]
    fn the_2x2_shortcut_finds_what_the_general_search_finds() {
        let (h, w) = (7, 9);
        let g = Geom::new(&[1, 1, h, w], 2, 2, 0).unwrap();
        let mut plane: Vec<f32> = (0..h * w).map(|i| ((i * 37) % 11) as f32 - 5.0).collect();
        plane[3] = f32::NAN;
        plane[w + 8] = f32::NAN;
        plane[2 * w] = plane[2 * w + 1]; // a tie
        let (oh, ow) = g.out();
        for oy in 0..oh {
            for ox in 0..ow {
                assert_eq!(
                    g.argmax_2x2(&plane, oy, ox),
                    g.argmax(&plane, oy, ox),
                    "window ({oy}, {ox})"
                );
            }
        }
    }
}
