//! Pooling and reductions: max and average pooling (kernel and stride per
//! axis, padding per side, PyTorch's `ceil_mode` and
//! `count_include_pad`), PyTorch's adaptive average pooling, and the mean
//! over any axes (global average pooling is the mean over axes 2 and 3).
//! The backward passes are written here on every device: Candle's pooling
//! backward is wrong where the kernel is not the stride.

use serde::{Deserialize, Serialize};

use super::elementwise::source_index;
use super::numel;
use crate::model::kernel::Float;
use crate::model::pool as legacy;

/// A pooling window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pool {
    /// Window height and width.
    pub kernel: [usize; 2],
    /// Stride along height and width.
    pub stride: [usize; 2],
    /// Padding: top, left, bottom, right.
    pub pad: [usize; 4],
    /// PyTorch's `ceil_mode`: a last window that starts inside the input
    /// (or its leading padding) is kept even if it does not fit.
    #[serde(default)]
    pub ceil: bool,
    /// Average pooling: whether padding counts in the divisor (PyTorch's
    /// default true, ONNX's false).
    #[serde(default)]
    pub count_pad: bool,
}

impl Pool {
    /// A square window `k`, stride `s`, padding `p` on every side.
    pub fn square(k: usize, s: usize, p: usize) -> Self {
        Pool {
            kernel: [k, k],
            stride: [s, s],
            pad: [p; 4],
            ceil: false,
            count_pad: true,
        }
    }

    /// Output size along axis `a` (0 height, 1 width) of an input of `n`.
    fn out_len(&self, a: usize, n: usize) -> Option<usize> {
        let (k, s, pb, pe) = (self.kernel[a], self.stride[a], self.pad[a], self.pad[a + 2]);
        if k == 0 || s == 0 || n + pb + pe < k {
            return None;
        }
        let span = n + pb + pe - k;
        let mut out = if self.ceil {
            span.div_ceil(s)
        } else {
            span / s
        } + 1;
        if self.ceil && (out - 1) * s >= n + pb {
            out -= 1;
        }
        Some(out)
    }

    /// The output dims for `x [b, c, h, w]`.
    pub fn out_dims(&self, x: &[usize]) -> Result<Vec<usize>, String> {
        let &[b, c, h, w] = x else {
            return Err(format!("pooling takes [b, c, h, w], gets {x:?}"));
        };
        match (self.out_len(0, h), self.out_len(1, w)) {
            (Some(oh), Some(ow))
                if self.pad[0].max(self.pad[2]) * 2 <= self.kernel[0]
                    && self.pad[1].max(self.pad[3]) * 2 <= self.kernel[1] =>
            {
                Ok(vec![b, c, oh, ow])
            }
            _ => Err(format!(
                "window {:?} (stride {:?}, padding {:?}) does not fit a {h}x{w} map",
                self.kernel, self.stride, self.pad
            )),
        }
    }

    /// The window of output `o` along axis `a` of an input of `n`: the
    /// clipped range, and its size counting padding (PyTorch's divisor).
    fn window(&self, a: usize, o: usize, n: usize) -> (usize, usize, usize) {
        let start = (o * self.stride[a]) as isize - self.pad[a] as isize;
        let end = (start + self.kernel[a] as isize).min((n + self.pad[a + 2]) as isize);
        let padded = (end - start) as usize;
        (
            start.max(0) as usize,
            end.min(n as isize).max(0) as usize,
            padded,
        )
    }

    /// The square, symmetric, floor-mode pool that `model::pool` runs (with
    /// its 2x2 shortcut), if this is one.
    fn legacy(&self, dims: &[usize]) -> Option<legacy::Geom> {
        let [k, _] = self.kernel;
        let same = self.kernel == [k, k]
            && self.stride[0] == self.stride[1]
            && self.pad.iter().all(|&p| p == self.pad[0]);
        (same && !self.ceil)
            .then(|| legacy::Geom::new(dims, k, self.stride[0], self.pad[0]).ok())
            .flatten()
    }

    /// Max pooling: the output and, per output, the offset in its plane of
    /// the first maximum (a NaN wins, as in PyTorch).
    pub(crate) fn max_forward<T: Float>(
        &self,
        x: &[T],
        dims: &[usize],
        out: &[usize],
    ) -> (Vec<T>, Vec<u32>) {
        if let Some(g) = self.legacy(dims) {
            return legacy::forward(g, x);
        }
        let (h, w, oh, ow) = (dims[2], dims[3], out[2], out[3]);
        let mut y = Vec::with_capacity(numel(out));
        let mut at = Vec::with_capacity(numel(out));
        for plane in x.chunks_exact((h * w).max(1)).take(dims[0] * dims[1]) {
            for oy in 0..oh {
                let (y0, y1, _) = self.window(0, oy, h);
                for ox in 0..ow {
                    let (x0, x1, _) = self.window(1, ox, w);
                    let mut best = y0 * w + x0;
                    let mut max = T::neg_infinity();
                    let mut first = true;
                    for yy in y0..y1 {
                        for xx in x0..x1 {
                            let v = plane[yy * w + xx];
                            if first || (!max.is_nan() && (v > max || v.is_nan())) {
                                (max, best, first) = (v, yy * w + xx, false);
                            }
                        }
                    }
                    y.push(max);
                    at.push(best as u32);
                }
            }
        }
        (y, at)
    }

    /// The gradient of max pooling's input: each `dy` added at its argmax.
    pub(crate) fn max_backward<T: Float>(
        &self,
        dims: &[usize],
        out: &[usize],
        argmax: &[u32],
        dy: &[T],
    ) -> Vec<T> {
        let mut dx = vec![T::zero(); numel(dims)];
        let (hw, ohw) = (dims[2] * dims[3], out[2] * out[3]);
        for (p, (a, g)) in argmax
            .chunks_exact(ohw.max(1))
            .zip(dy.chunks_exact(ohw.max(1)))
            .enumerate()
        {
            let plane = &mut dx[p * hw..(p + 1) * hw];
            for (&i, &v) in a.iter().zip(g) {
                plane[i as usize] += v;
            }
        }
        dx
    }

    /// For each output of one plane, its window (`y0, y1, x0, x1`) and `1 / divisor`.
    fn avg_windows(&self, dims: &[usize], out: &[usize]) -> Vec<([usize; 4], f64)> {
        let (h, w) = (dims[2], dims[3]);
        let mut v = Vec::with_capacity(out[2] * out[3]);
        for oy in 0..out[2] {
            let (y0, y1, ph) = self.window(0, oy, h);
            for ox in 0..out[3] {
                let (x0, x1, pw) = self.window(1, ox, w);
                let div = if self.count_pad {
                    ph * pw
                } else {
                    (y1 - y0) * (x1 - x0)
                };
                v.push(([y0, y1, x0, x1], 1.0 / div.max(1) as f64));
            }
        }
        v
    }

    /// Average pooling along axis `a` (0 height, 1 width) of an input of
    /// `n` cells to `out` outputs: each output's input cells and weights.
    /// The divisor is separable (the product of the two axes'), so these
    /// give the 2-D average as two matrix products (Candle's form).
    pub(crate) fn avg_taps(&self, a: usize, n: usize, out: usize) -> Vec<Vec<(usize, f64)>> {
        (0..out)
            .map(|o| {
                let (c0, c1, padded) = self.window(a, o, n);
                let div = if self.count_pad { padded } else { c1 - c0 };
                (c0..c1).map(|c| (c, 1.0 / div.max(1) as f64)).collect()
            })
            .collect()
    }

    /// Average pooling.
    pub(crate) fn avg_forward<T: Float>(&self, x: &[T], dims: &[usize], out: &[usize]) -> Vec<T> {
        window_means(&self.avg_windows(dims, out), x, dims)
    }

    /// The gradient of average pooling's input.
    pub(crate) fn avg_backward<T: Float>(&self, dims: &[usize], out: &[usize], dy: &[T]) -> Vec<T> {
        window_means_backward(&self.avg_windows(dims, out), dims, dy)
    }
}

/// Each plane of `x` (dims `[b, c, h, w]`) reduced to one weighted sum per
/// window `([y0, y1, x0, x1], 1 / divisor)`.
fn window_means<T: Float>(windows: &[([usize; 4], f64)], x: &[T], dims: &[usize]) -> Vec<T> {
    let w = dims[3];
    let mut y = Vec::with_capacity(dims[0] * dims[1] * windows.len());
    for plane in x.chunks_exact((dims[2] * w).max(1)).take(dims[0] * dims[1]) {
        for &([y0, y1, x0, x1], inv) in windows {
            let mut s = 0f64;
            for yy in y0..y1 {
                s += plane[yy * w + x0..yy * w + x1]
                    .iter()
                    .map(|&v| v.to_f64())
                    .sum::<f64>();
            }
            y.push(T::from_f64(s * inv));
        }
    }
    y
}

/// The adjoint of [`window_means`]: each `dy` shared over its window.
fn window_means_backward<T: Float>(
    windows: &[([usize; 4], f64)],
    dims: &[usize],
    dy: &[T],
) -> Vec<T> {
    let (hw, w) = (dims[2] * dims[3], dims[3]);
    let mut dx = vec![T::zero(); numel(dims)];
    for (p, g) in dy.chunks_exact(windows.len().max(1)).enumerate() {
        let plane = &mut dx[p * hw..(p + 1) * hw];
        for (&([y0, y1, x0, x1], inv), &v) in windows.iter().zip(g) {
            let share = T::from_f64(v.to_f64() * inv);
            for yy in y0..y1 {
                for d in &mut plane[yy * w + x0..yy * w + x1] {
                    *d += share;
                }
            }
        }
    }
    dx
}

/// Adaptive average pooling's output dims.
pub fn adaptive_dims(out: [usize; 2], x: &[usize]) -> Result<Vec<usize>, String> {
    match x {
        &[b, c, h, w] if out[0] > 0 && out[1] > 0 && h > 0 && w > 0 => {
            Ok(vec![b, c, out[0], out[1]])
        }
        _ => Err(format!("adaptive average pool of {x:?} to {out:?}")),
    }
}

/// Adaptive average pooling as an average pool with one window per bin.
fn adaptive_windows(dims: &[usize], out: &[usize]) -> Vec<([usize; 4], f64)> {
    let mut v = Vec::new();
    for i in 0..out[2] {
        let (y0, y1) = legacy::adaptive_bin(dims[2], out[2], i);
        for j in 0..out[3] {
            let (x0, x1) = legacy::adaptive_bin(dims[3], out[3], j);
            v.push(([y0, y1, x0, x1], 1.0 / ((y1 - y0) * (x1 - x0)) as f64));
        }
    }
    v
}

/// Adaptive average pooling forward.
pub(crate) fn adaptive_forward<T: Float>(x: &[T], dims: &[usize], out: &[usize]) -> Vec<T> {
    window_means(&adaptive_windows(dims, out), x, dims)
}

/// Adaptive average pooling backward.
pub(crate) fn adaptive_backward<T: Float>(dims: &[usize], out: &[usize], dy: &[T]) -> Vec<T> {
    window_means_backward(&adaptive_windows(dims, out), dims, dy)
}

/// ReduceMean's output dims.
pub fn reduce_dims(axes: &[usize], keep: bool, x: &[usize]) -> Result<Vec<usize>, String> {
    if axes.is_empty()
        || axes.windows(2).any(|w| w[0] >= w[1])
        || axes.iter().any(|&a| a >= x.len())
    {
        return Err(format!(
            "mean over axes {axes:?} of a tensor of rank {}",
            x.len()
        ));
    }
    Ok(x.iter()
        .enumerate()
        .filter_map(|(i, &d)| match (axes.contains(&i), keep) {
            (false, _) => Some(d),
            (true, true) => Some(1),
            (true, false) => None,
        })
        .collect())
}

/// `dims` with the reduced axes set to 1, and how many values each mean takes.
fn kept(axes: &[usize], dims: &[usize]) -> (Vec<usize>, usize) {
    let k: Vec<usize> = dims
        .iter()
        .enumerate()
        .map(|(i, &d)| if axes.contains(&i) { 1 } else { d })
        .collect();
    let count = axes.iter().map(|&a| dims[a]).product();
    (k, count)
}

/// The mean of `x` over `axes`.
pub(crate) fn reduce_mean<T: Float>(axes: &[usize], x: &[T], dims: &[usize]) -> Vec<T> {
    let (k, count) = kept(axes, dims);
    let scale = T::one() / T::from_f64(count.max(1) as f64);
    let inner: usize = dims[axes[0]..].iter().product();
    if axes.iter().enumerate().all(|(i, &a)| a == axes[0] + i)
        && axes.last() == Some(&(dims.len() - 1))
    {
        // Trailing axes: each mean is one contiguous run (global pooling).
        return x
            .chunks_exact(inner.max(1))
            .map(|run| run.iter().copied().fold(T::zero(), |a, b| a + b) * scale)
            .collect();
    }
    let mut y = vec![T::zero(); numel(&k)];
    for (&v, i) in x.iter().zip(source_index(dims, &k)) {
        y[i] += v;
    }
    y.iter_mut().for_each(|v| *v *= scale);
    y
}

/// The gradient of [`reduce_mean`]'s input.
pub(crate) fn reduce_mean_backward<T: Float>(axes: &[usize], dims: &[usize], dy: &[T]) -> Vec<T> {
    let (k, count) = kept(axes, dims);
    let scale = T::one() / T::from_f64(count.max(1) as f64);
    source_index(dims, &k)
        .into_iter()
        .map(|i| dy[i] * scale)
        .collect()
}
