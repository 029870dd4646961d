//! The fully connected layer for training on the CPU as one fused
//! operation of `(x, w, bias)`: `y = x·Wᵀ + b` forward, and `dx = dY·W`,
//! `dW = dYᵀ·x`, `db = Σ dY` backward, each a matrix multiply (or a sum)
//! split over the threads, instead of Candle's chain of transpose, matmul,
//! broadcast and add with its reduction. Other devices use Candle's ops.

use candle_core::{Shape, Tensor};
use rayon::prelude::*;

use super::fused::{self, Layer};
use super::gemm::{matmul_into, Mat};
use super::kernel::{self, Float};

/// Rows of a batch per parallel task.
const ROWS: usize = 16;

/// Sizes of one layer: `b` rows of `input` features to `out` features.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Dims {
    /// Rows (samples).
    pub(super) b: usize,
    /// Input features.
    pub(super) input: usize,
    /// Output features.
    pub(super) out: usize,
}

/// `y [b, out]` from `x [b, in]`, `w [out, in]` and `bias [out]`.
fn forward<T: Float>(d: Dims, x: &[T], w: &[T], bias: &[T]) -> Vec<T> {
    let mut y = vec![T::zero(); d.b * d.out];
    if y.is_empty() {
        return y;
    }
    let weights = Mat::new(w, d.out, d.input).t();
    y.par_chunks_mut(ROWS * d.out)
        .enumerate()
        .for_each(|(i, yc)| {
            let rows = yc.len() / d.out;
            let xc = &x[i * ROWS * d.input..(i * ROWS + rows) * d.input];
            matmul_into(yc, Mat::new(xc, rows, d.input), weights, false);
            for row in yc.chunks_exact_mut(d.out) {
                for (v, &b) in row.iter_mut().zip(bias) {
                    *v += b;
                }
            }
        });
    y
}

/// `[dx, dw, db]` packed, from `x`, the output gradient `dy` and `w`.
fn backward<T: Float>(d: Dims, x: &[T], dy: &[T], w: &[T]) -> Vec<T> {
    let mut out = vec![T::zero(); d.b * d.input + d.out * d.input + d.out];
    let (dx, rest) = out.split_at_mut(d.b * d.input);
    let (dw, db) = rest.split_at_mut(d.out * d.input);
    if d.b == 0 || d.input == 0 || d.out == 0 {
        return out;
    }
    let grads = Mat::new(dy, d.b, d.out);
    let inputs = Mat::new(x, d.b, d.input);
    let weights = Mat::new(w, d.out, d.input);
    rayon::join(
        || {
            dx.par_chunks_mut(ROWS * d.input)
                .enumerate()
                .for_each(|(i, dxc)| {
                    let rows = dxc.len() / d.input;
                    let dyc = &dy[i * ROWS * d.out..(i * ROWS + rows) * d.out];
                    matmul_into(dxc, Mat::new(dyc, rows, d.out), weights, false);
                })
        },
        || {
            // dW rows `o..o + n` = dY[:, o..o + n]ᵀ · x.
            dw.par_chunks_mut(ROWS * d.input)
                .enumerate()
                .for_each(|(i, dwc)| {
                    let rows = dwc.len() / d.input;
                    let part = grads.columns(i * ROWS, rows);
                    matmul_into(dwc, part.t(), inputs, false);
                });
            for (j, v) in db.iter_mut().enumerate() {
                let s: f64 = (0..d.b).map(|r| dy[r * d.out + j].to_f64()).sum();
                *v = T::from_f64(s);
            }
        },
    );
    out
}

impl Layer for Dims {
    const NAME: &'static str = "shears-linear";
    const BACKWARD_NAME: &'static str = "shears-linear-backward";

    fn out_shape(&self) -> Shape {
        Shape::from((self.b, self.out))
    }

    fn outputs(&self) -> usize {
        self.out
    }

    fn forward<T: Float>(&self, x: &[T], w: &[T], bias: &[T]) -> Vec<T> {
        forward(*self, x, w, bias)
    }

    fn backward<T: Float>(&self, x: &[T], dy: &[T], w: &[T]) -> Vec<T> {
        backward(*self, x, dy, w)
    }
}

/// `x [b, in] · wᵀ (+ bias)` for `w [out, in]`, differentiable in all
/// three; the fused operation on the CPU, Candle's ops elsewhere.
pub fn linear(x: &Tensor, w: &Tensor, bias: Option<&Tensor>) -> candle_core::Result<Tensor> {
    let (out, input) = w.dims2()?;
    let fused = x.device().is_cpu() && kernel::supported(x.dtype()) && x.rank() == 2;
    if !fused {
        let y = x.matmul(&w.t()?)?;
        return match bias {
            Some(b) => y.broadcast_add(b),
            None => Ok(y),
        };
    }
    let (b, xin) = x.dims2()?;
    if xin != input || bias.is_some_and(|bias| bias.dims() != [out]) {
        candle_core::bail!(
            "linear: input {:?} does not fit weight {:?}",
            x.dims(),
            w.dims()
        );
    }
    fused::apply(Dims { b, input, out }, x, w, bias)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::testutil::{max_diff, projected_grads};
    use candle_core::{Device, Var};

    /// Forward and every gradient equal Candle's matmul + broadcast add, at
    /// batch sizes around the parallel split.
    #[test]
    fn matches_candle_forward_and_backward() {
        let d = Device::Cpu;
        for (b, input, out) in [(1, 5, 3), (16, 7, 4), (37, 9, 33), (3, 400, 120)] {
            let x = Var::randn(0f32, 1.0, (b, input), &d).unwrap();
            let w = Var::randn(0f32, 1.0, (out, input), &d).unwrap();
            let bias = Var::randn(0f32, 1.0, out, &d).unwrap();
            let ours = linear(x.as_tensor(), w.as_tensor(), Some(bias.as_tensor())).unwrap();
            let theirs = x
                .as_tensor()
                .matmul(&w.as_tensor().t().unwrap())
                .unwrap()
                .broadcast_add(bias.as_tensor())
                .unwrap();
            assert!(max_diff(&ours, &theirs) < 1e-4);
            let (g1, g2) = projected_grads(ours, theirs);
            for v in [&x, &w, &bias] {
                let a = g1.get(v.as_tensor()).unwrap();
                let c = g2.get(v.as_tensor()).unwrap();
                assert!(
                    max_diff(a, c) < 1e-3,
                    "gradient differs for {b}x{input}->{out}"
                );
            }
        }
    }
}
