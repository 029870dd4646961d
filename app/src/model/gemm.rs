//! Matrix products on host slices through the `gemm` crate (the one
//! Candle's CPU matmul runs on), behind one safe function: the only
//! `unsafe` of the hand-written CPU operations.

use super::kernel::Float;

/// A matrix view of a slice: `rows x cols`, element `(r, c)` at
/// `data[r * rs + c * cs]`.
#[derive(Clone, Copy, Debug)]
pub(super) struct Mat<'a, T> {
    data: &'a [T],
    rows: usize,
    cols: usize,
    rs: usize,
    cs: usize,
}

impl<'a, T> Mat<'a, T> {
    /// The contiguous row-major `rows x cols` matrix at the start of `data`.
    pub(super) fn new(data: &'a [T], rows: usize, cols: usize) -> Self {
        Mat {
            data,
            rows,
            cols,
            rs: cols,
            cs: 1,
        }
    }

    /// The transpose (a view: nothing is copied).
    pub(super) fn t(self) -> Self {
        Mat {
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
            ..self
        }
    }

    /// Columns `start .. start + n` (a view).
    ///
    /// # Panics
    /// If they are not columns of this matrix.
    pub(super) fn columns(self, start: usize, n: usize) -> Self {
        assert!(
            start + n <= self.cols,
            "columns {start}..{} of {}",
            start + n,
            self.cols
        );
        let offset = if n == 0 { 0 } else { start * self.cs };
        Mat {
            data: &self.data[offset.min(self.data.len())..],
            cols: n,
            ..self
        }
    }

    /// Whether every element lies inside `data`.
    fn in_bounds(&self) -> bool {
        self.rows == 0
            || self.cols == 0
            || (self.rows - 1) * self.rs + (self.cols - 1) * self.cs < self.data.len()
    }
}

/// `dst = a · b` (`accumulate`: `dst += a · b`), `dst` the contiguous
/// row-major `a.rows x b.cols` matrix at its start; single-threaded (callers
/// parallelise over images).
///
/// # Panics
/// If the shapes do not chain or a matrix does not fit its slice.
pub(super) fn matmul_into<T: Float>(dst: &mut [T], a: Mat<'_, T>, b: Mat<'_, T>, accumulate: bool) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert_eq!(k, b.rows, "matmul: {m}x{k} times {}x{n}", b.rows);
    assert!(dst.len() >= m * n && a.in_bounds() && b.in_bounds());
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            dst[..m * n].fill(T::zero());
        }
        return;
    }
    // SAFETY: gemm reads `lhs[i * rs + p * cs]` for i < m, p < k and
    // `rhs[p * rs + j * cs]` for p < k, j < n, all inside their slices
    // (checked by `in_bounds`), and writes `dst[i * n + j]`, inside
    // `dst[..m * n]`; `dst` is exclusively borrowed and cannot alias the
    // shared inputs. `T` is f32 or f64, types gemm supports.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.data.as_ptr(),
            a.cs as isize,
            a.rs as isize,
            b.data.as_ptr(),
            b.cs as isize,
            b.rs as isize,
            T::one(),
            T::one(),
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: &[f64], b: &[f64], m: usize, k: usize, n: usize) -> Vec<f64> {
        let mut out = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                out[i * n + j] = (0..k).map(|p| a[i * k + p] * b[p * n + j]).sum();
            }
        }
        out
    }

    #[test]
    fn products_of_views_match_the_definition() {
        let (m, k, n) = (5, 7, 3);
        let a: Vec<f64> = (0..m * k).map(|v| (v as f64 * 0.37).sin()).collect();
        let b: Vec<f64> = (0..k * n).map(|v| (v as f64 * 0.11).cos()).collect();
        let want = naive(&a, &b, m, k, n);
        let mut got = vec![9.0; m * n];
        matmul_into(&mut got, Mat::new(&a, m, k), Mat::new(&b, k, n), false);
        let close = |x: &[f64], y: &[f64]| x.iter().zip(y).all(|(p, q)| (p - q).abs() < 1e-12);
        assert!(close(&got, &want));
        matmul_into(&mut got, Mat::new(&a, m, k), Mat::new(&b, k, n), true);
        assert!(close(
            &got,
            &want.iter().map(|v| 2.0 * v).collect::<Vec<_>>()
        ));
        // (b^T a^T)^T = a b: transposed views read the same numbers.
        let mut t = vec![0.0; n * m];
        matmul_into(
            &mut t,
            Mat::new(&b, k, n).t(),
            Mat::new(&a, m, k).t(),
            false,
        );
        let back: Vec<f64> = (0..m * n).map(|i| t[(i % n) * m + i / n]).collect();
        assert!(close(&back, &want));
    }
}
