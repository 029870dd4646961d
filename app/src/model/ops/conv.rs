//! 2-D convolution with groups (depthwise included), dilation, a stride and
//! a padding per side, forward and backward.
//!
//! Three kernels, chosen by the geometry: the plain convolution (one group,
//! no dilation, square kernel, even padding) runs `model::conv`'s fused
//! im2col + GEMM kernel; a depthwise convolution (one input channel per
//! group) runs a direct kernel over each plane, with no column matrix; any
//! other runs a per-group im2col + GEMM over the general geometry.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::model::conv as plain;
use crate::model::fused::Layer;
use crate::model::gemm::{matmul_into, Mat};
use crate::model::kernel::Float;

/// A convolution's attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conv {
    /// Stride along height and width.
    pub stride: [usize; 2],
    /// Zero padding: top, left, bottom, right.
    pub pad: [usize; 4],
    /// Dilation along height and width.
    #[serde(default = "ones")]
    pub dilation: [usize; 2],
    /// Groups: input and output channels split into this many independent
    /// convolutions (the input channels for a depthwise one).
    #[serde(default = "one")]
    pub groups: usize,
}

fn ones() -> [usize; 2] {
    [1, 1]
}
fn one() -> usize {
    1
}

impl Conv {
    /// A plain convolution: stride `s`, padding `p` on every side.
    pub fn plain(s: usize, p: usize) -> Self {
        Conv {
            stride: [s, s],
            pad: [p; 4],
            dilation: [1, 1],
            groups: 1,
        }
    }

    /// The output dims for `x [b, c, h, w]` and `w [out, c / groups, kh, kw]`.
    pub fn out_dims(&self, dims: &[&[usize]]) -> Result<Vec<usize>, String> {
        self.geom(dims[0], dims[1])
            .map(|g| vec![g.b, g.out, g.oh, g.ow])
            .and_then(|d| match dims.get(2) {
                Some(b) if *b != [d[1]] => Err(format!("bias of dims {b:?} for {} outputs", d[1])),
                _ => Ok(d),
            })
    }

    /// The geometry of this convolution on `x` with weight `w`.
    pub(crate) fn geom(&self, x: &[usize], w: &[usize]) -> Result<Geom, String> {
        let (&[b, c, h, wd], &[out, cg, kh, kw]) = (x, w) else {
            return Err(format!("convolution of {x:?} by a weight of dims {w:?}"));
        };
        let g = self.groups;
        if g == 0 || c % g != 0 || out % g != 0 || cg != c / g {
            return Err(format!(
                "{c} input channels in {g} groups do not fit a weight of dims {w:?}"
            ));
        }
        let len = |n: usize, k: usize, s: usize, d: usize, p0: usize, p1: usize| {
            let span = d * (k - 1) + 1;
            (k > 0 && s > 0 && d > 0 && n + p0 + p1 >= span).then(|| (n + p0 + p1 - span) / s + 1)
        };
        let [sh, sw] = self.stride;
        let [dh, dw] = self.dilation;
        let [pt, pl, pb, pr] = self.pad;
        match (len(h, kh, sh, dh, pt, pb), len(wd, kw, sw, dw, pl, pr)) {
            (Some(oh), Some(ow)) => Ok(Geom {
                b,
                c,
                h,
                w: wd,
                out,
                kh,
                kw,
                conv: *self,
                oh,
                ow,
            }),
            _ => Err(format!("a {kh}x{kw} kernel does not fit a {h}x{wd} input")),
        }
    }
}

/// A convolution's sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Geom {
    b: usize,
    c: usize,
    h: usize,
    w: usize,
    out: usize,
    kh: usize,
    kw: usize,
    conv: Conv,
    oh: usize,
    ow: usize,
}

/// Which kernel runs a geometry.
enum Kernel {
    Plain(plain::Geom),
    Depthwise,
    Grouped,
}

impl Geom {
    fn kernel(&self) -> Kernel {
        let Conv {
            stride,
            pad,
            dilation,
            groups,
        } = self.conv;
        let even = pad.iter().all(|&p| p == pad[0]) && stride[0] == stride[1];
        if groups == 1 && dilation == [1, 1] && self.kh == self.kw && even {
            if let Ok(g) = plain::Geom::of(
                &[self.b, self.c, self.h, self.w],
                &[self.out, self.c, self.kh, self.kw],
                stride[0],
                pad[0],
            ) {
                return Kernel::Plain(g);
            }
        }
        if groups == self.c && groups > 1 {
            Kernel::Depthwise
        } else {
            Kernel::Grouped
        }
    }

    /// Input row (or column) of output `o` at kernel offset `k` along axis
    /// `a` (0 height, 1 width), if inside the input.
    #[inline]
    fn src(&self, a: usize, o: usize, k: usize) -> Option<usize> {
        let n = if a == 0 { self.h } else { self.w };
        (o * self.conv.stride[a] + k * self.conv.dilation[a])
            .checked_sub(self.conv.pad[a])
            .filter(|&i| i < n)
    }

    /// The output columns `lo..hi` whose tap at kernel column `kj` reads
    /// inside the input, and the input column `first` that output column
    /// `lo` reads (the next ones every stride); `None` when there are none.
    fn inside(&self, kj: usize) -> Option<(usize, usize, usize)> {
        let (s, off, pad) = (
            self.conv.stride[1],
            kj * self.conv.dilation[1],
            self.conv.pad[1],
        );
        let lo = pad.saturating_sub(off).div_ceil(s).min(self.ow);
        let hi = (self.w + pad).saturating_sub(off).div_ceil(s).min(self.ow);
        (lo < hi).then(|| (lo, hi, lo * s + off - pad))
    }

    fn image(&self) -> usize {
        self.c * self.h * self.w
    }
    fn ohw(&self) -> usize {
        self.oh * self.ow
    }
    /// Input channels per group.
    fn cg(&self) -> usize {
        self.c / self.conv.groups
    }
    /// Output channels per group.
    fn og(&self) -> usize {
        self.out / self.conv.groups
    }
    /// Rows of a group's column matrix.
    fn rows(&self) -> usize {
        self.cg() * self.kh * self.kw
    }
}

/// The convolution of `x` with `w`, plus `bias` if given.
pub(crate) fn forward<T: Float>(g: Geom, x: &[T], w: &[T], bias: Option<&[T]>) -> Vec<T> {
    let zeros;
    let bias = match bias {
        Some(b) => b,
        None => {
            zeros = vec![T::zero(); g.out];
            &zeros
        }
    };
    match g.kernel() {
        Kernel::Plain(p) => Layer::forward(&p, x, w, bias),
        Kernel::Depthwise => depthwise_forward(g, x, w, bias),
        Kernel::Grouped => grouped_forward(g, x, w, bias),
    }
}

/// `[dx, dw, db]`; `dx` is empty without `input_grad`.
pub(crate) fn backward<T: Float>(
    g: Geom,
    x: &[T],
    w: &[T],
    dy: &[T],
    input_grad: bool,
) -> [Vec<T>; 3] {
    match g.kernel() {
        Kernel::Plain(p) => {
            let mut dx = plain::backward(p, x, dy, w, input_grad);
            let mut dw = dx.split_off(if input_grad { x.len() } else { 0 });
            let db = dw.split_off(w.len());
            [dx, dw, db]
        }
        Kernel::Depthwise => depthwise_backward(g, x, w, dy, input_grad),
        Kernel::Grouped => grouped_backward(g, x, w, dy, input_grad),
    }
}

/// `acc[lo..hi] += wv * row[first + (i - lo) * step]`: one kernel tap
/// over one output row.
#[inline]
fn tap<T: Float>(acc: &mut [T], row: &[T], wv: T, first: usize, step: usize) {
    if step == 1 {
        for (a, &v) in acc.iter_mut().zip(&row[first..]) {
            *a += wv * v;
        }
    } else {
        for (a, &v) in acc.iter_mut().zip(row[first..].iter().step_by(step)) {
            *a += wv * v;
        }
    }
}

/// One kernel tap over one output row that reads inside the input.
struct Tap {
    /// The kernel offset `ki * kw + kj`.
    k: usize,
    /// The output positions it adds to (one row's columns `lo..hi`).
    out: std::ops::Range<usize>,
    /// The start of the input row it reads.
    row: usize,
    /// The input column the first of them reads (the next ones every stride).
    first: usize,
}

impl Geom {
    /// Calls `f` for every tap of the kernel over one plane that reads
    /// inside the input: kernel offsets in order, output rows within each.
    fn for_each_tap(&self, mut f: impl FnMut(Tap)) {
        for ki in 0..self.kh {
            for kj in 0..self.kw {
                let Some((lo, hi, first)) = self.inside(kj) else {
                    continue;
                };
                for oy in 0..self.oh {
                    if let Some(iy) = self.src(0, oy, ki) {
                        f(Tap {
                            k: ki * self.kw + kj,
                            out: oy * self.ow + lo..oy * self.ow + hi,
                            row: iy * self.w,
                            first,
                        });
                    }
                }
            }
        }
    }
}

/// Depthwise forward: output plane `o` of an image is input plane
/// `o / multiplier` convolved with its own kernel.
fn depthwise_forward<T: Float>(g: Geom, x: &[T], w: &[T], bias: &[T]) -> Vec<T> {
    let (ohw, plane, mult, kk) = (g.ohw(), g.h * g.w, g.og(), g.kh * g.kw);
    let mut y = vec![T::zero(); g.b * g.out * ohw];
    y.par_chunks_mut(ohw.max(1))
        .enumerate()
        .for_each(|(p, yp)| {
            let (bi, o) = (p / g.out, p % g.out);
            let xp = &x[(bi * g.c + o / mult) * plane..][..plane];
            yp.fill(bias[o]);
            g.for_each_tap(|t| {
                let row = &xp[t.row..t.row + g.w];
                tap(
                    &mut yp[t.out],
                    row,
                    w[o * kk + t.k],
                    t.first,
                    g.conv.stride[1],
                );
            });
        });
    y
}

/// Depthwise backward: `dx` per input plane, `dw` and `db` per output
/// channel summed over the batch in order.
fn depthwise_backward<T: Float>(
    g: Geom,
    x: &[T],
    w: &[T],
    dy: &[T],
    input_grad: bool,
) -> [Vec<T>; 3] {
    let (ohw, plane, mult, kk) = (g.ohw(), g.h * g.w, g.og(), g.kh * g.kw);
    let s = g.conv.stride[1];
    let mut dx = vec![T::zero(); if input_grad { x.len() } else { 0 }];
    dx.par_chunks_mut(plane.max(1))
        .enumerate()
        .for_each(|(p, dxp)| {
            let (bi, ci) = (p / g.c, p % g.c);
            for o in ci * mult..(ci + 1) * mult {
                let dyp = &dy[(bi * g.out + o) * ohw..][..ohw];
                g.for_each_tap(|t| {
                    let wv = w[o * kk + t.k];
                    let row = &mut dxp[t.row..t.row + g.w];
                    for (r, &d) in row[t.first..].iter_mut().step_by(s).zip(&dyp[t.out]) {
                        *r += wv * d;
                    }
                });
            }
        });
    let mut dw = vec![T::zero(); w.len()];
    let mut db = vec![T::zero(); g.out];
    dw.par_chunks_mut(kk.max(1))
        .zip(db.par_iter_mut())
        .enumerate()
        .for_each(|(o, (dwo, dbo))| {
            let mut bsum = 0f64;
            let mut acc = vec![T::zero(); kk];
            for bi in 0..g.b {
                let xp = &x[(bi * g.c + o / mult) * plane..][..plane];
                let dyp = &dy[(bi * g.out + o) * ohw..][..ohw];
                bsum += dyp.iter().map(|&v| v.to_f64()).sum::<f64>();
                // Per kernel offset, this image's sum, then added to `dw`.
                acc.fill(T::zero());
                g.for_each_tap(|t| {
                    let row = &xp[t.row..t.row + g.w];
                    for (&v, &d) in row[t.first..].iter().step_by(s).zip(&dyp[t.out]) {
                        acc[t.k] += v * d;
                    }
                });
                for (d, &a) in dwo.iter_mut().zip(&acc) {
                    *d += a;
                }
            }
            *dbo = T::from_f64(bsum);
        });
    [dx, dw, db]
}

/// The column matrix `[cg * kh * kw, oh * ow]` of group `gi` of one image.
fn im2col<T: Float>(g: Geom, x: &[T], gi: usize, cols: &mut [T]) {
    let (plane, ohw) = (g.h * g.w, g.ohw());
    let s = g.conv.stride[1];
    for (r, row) in cols.chunks_exact_mut(ohw.max(1)).enumerate() {
        let (ci, kk) = (gi * g.cg() + r / (g.kh * g.kw), r % (g.kh * g.kw));
        let (ki, kj) = (kk / g.kw, kk % g.kw);
        let src = &x[ci * plane..(ci + 1) * plane];
        let taps = g.inside(kj);
        for (oy, d) in row.chunks_exact_mut(g.ow).enumerate() {
            d.fill(T::zero());
            let (Some(iy), Some((lo, hi, first))) = (g.src(0, oy, ki), taps) else {
                continue;
            };
            let line = &src[iy * g.w..(iy + 1) * g.w];
            for (v, &p) in d[lo..hi].iter_mut().zip(line[first..].iter().step_by(s)) {
                *v = p;
            }
        }
    }
}

/// The adjoint of [`im2col`]: column entries added back into `dx`.
fn col2im<T: Float>(g: Geom, cols: &[T], gi: usize, dx: &mut [T]) {
    let (plane, ohw) = (g.h * g.w, g.ohw());
    let s = g.conv.stride[1];
    for (r, row) in cols.chunks_exact(ohw.max(1)).enumerate() {
        let (ci, kk) = (gi * g.cg() + r / (g.kh * g.kw), r % (g.kh * g.kw));
        let (ki, kj) = (kk / g.kw, kk % g.kw);
        let dst = &mut dx[ci * plane..(ci + 1) * plane];
        let Some((lo, hi, first)) = g.inside(kj) else {
            continue;
        };
        for (oy, d) in row.chunks_exact(g.ow).enumerate() {
            if let Some(iy) = g.src(0, oy, ki) {
                let line = &mut dst[iy * g.w..(iy + 1) * g.w];
                for (p, &v) in line[first..].iter_mut().step_by(s).zip(&d[lo..hi]) {
                    *p += v;
                }
            }
        }
    }
}

/// Grouped (or dilated, or unevenly padded) forward: per image and group,
/// im2col and one matrix product.
fn grouped_forward<T: Float>(g: Geom, x: &[T], w: &[T], bias: &[T]) -> Vec<T> {
    let (rows, ohw, og) = (g.rows(), g.ohw(), g.og());
    let mut y = vec![T::zero(); g.b * g.out * ohw];
    if y.is_empty() {
        return y;
    }
    y.par_chunks_mut(g.out * ohw)
        .zip(x.par_chunks(g.image().max(1)))
        .for_each_init(
            || vec![T::zero(); rows * ohw],
            |cols, (yb, xb)| {
                for gi in 0..g.conv.groups {
                    im2col(g, xb, gi, cols);
                    let wg = Mat::new(&w[gi * og * rows..], og, rows);
                    matmul_into(
                        &mut yb[gi * og * ohw..],
                        wg,
                        Mat::new(cols, rows, ohw),
                        false,
                    );
                }
                for (plane, &b) in yb.chunks_exact_mut(ohw).zip(bias) {
                    plane.iter_mut().for_each(|v| *v += b);
                }
            },
        );
    y
}

/// Images per part of the weight gradient, summed in part order so the
/// result does not depend on the thread count.
const PARTS: usize = 16;

/// Grouped backward: `dW_g += dY_g cols^T`, `dcols = W_g^T dY_g` then col2im.
fn grouped_backward<T: Float>(
    g: Geom,
    x: &[T],
    w: &[T],
    dy: &[T],
    input_grad: bool,
) -> [Vec<T>; 3] {
    let (rows, ohw, og) = (g.rows(), g.ohw(), g.og());
    let mut dx = vec![T::zero(); if input_grad { x.len() } else { 0 }];
    let per = g.b.div_ceil(PARTS).max(1);
    let part = |xs: &[T], dys: &[T], mut dxs: Option<&mut [T]>| {
        let mut dw = vec![T::zero(); w.len()];
        let mut db = vec![0f64; g.out];
        let mut cols = vec![T::zero(); rows * ohw];
        let mut dcols = vec![T::zero(); rows * ohw];
        for (i, (xb, dyb)) in xs
            .chunks(g.image())
            .zip(dys.chunks(g.out * ohw))
            .enumerate()
        {
            for gi in 0..g.conv.groups {
                im2col(g, xb, gi, &mut cols);
                let grad = Mat::new(&dyb[gi * og * ohw..], og, ohw);
                matmul_into(
                    &mut dw[gi * og * rows..],
                    grad,
                    Mat::new(&cols, rows, ohw).t(),
                    true,
                );
                if let Some(dxs) = dxs.as_deref_mut() {
                    let wg = Mat::new(&w[gi * og * rows..], og, rows);
                    matmul_into(&mut dcols, wg.t(), grad, false);
                    col2im(g, &dcols, gi, &mut dxs[i * g.image()..(i + 1) * g.image()]);
                }
            }
            for (d, plane) in db.iter_mut().zip(dyb.chunks_exact(ohw.max(1))) {
                *d += plane.iter().map(|&v| v.to_f64()).sum::<f64>();
            }
        }
        (dw, db)
    };
    let chunk = per * g.image();
    let parts: Vec<(Vec<T>, Vec<f64>)> = if input_grad {
        dx.par_chunks_mut(chunk.max(1))
            .zip(x.par_chunks(chunk.max(1)))
            .zip(dy.par_chunks((per * g.out * ohw).max(1)))
            .map(|((dxs, xs), dys)| part(xs, dys, Some(dxs)))
            .collect()
    } else {
        x.par_chunks(chunk.max(1))
            .zip(dy.par_chunks((per * g.out * ohw).max(1)))
            .map(|(xs, dys)| part(xs, dys, None))
            .collect()
    };
    let mut dw = vec![T::zero(); w.len()];
    let mut db = vec![0f64; g.out];
    for (pw, pb) in parts {
        dw.iter_mut().zip(&pw).for_each(|(a, &b)| *a += b);
        db.iter_mut().zip(&pb).for_each(|(a, &b)| *a += b);
    }
    [dx, dw, db.into_iter().map(T::from_f64).collect()]
}
