//! What the hand-written CPU operations share: the float types they run in
//! (`f32` for training, `f64` for the finite-difference gradient checks), typed
//! access to Candle's CPU storage, and sums accumulated in `f64`.

use candle_core::{CpuStorage, DType, Layout, WithDType};

/// A float type the custom CPU operations are written for (`f32`, `f64`).
pub trait Float: WithDType + num_traits::Float {}

impl Float for f32 {}
impl Float for f64 {}

/// Whether the custom CPU operations handle tensors of `dtype`.
pub(super) fn supported(dtype: DType) -> bool {
    matches!(dtype, DType::F32 | DType::F64)
}

/// The contiguous data of `s` under layout `l` as `T`; the error names `op`.
fn slice<'a, T: Float>(s: &'a CpuStorage, l: &Layout, op: &str) -> candle_core::Result<&'a [T]> {
    let data = T::cpu_storage_as_slice(s)
        .map_err(|_| candle_core::Error::Msg(format!("{op}: only f32 and f64 are supported")))?;
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&data[a..b]),
        None => candle_core::bail!("{op}: input must be contiguous"),
    }
}

/// A CPU kernel written once for every [`Float`] type: from the contiguous
/// data of its `N` inputs (and their layouts) to the output's data.
pub(super) trait FloatKernel<const N: usize> {
    /// Computes the output.
    fn run<T: Float>(&self, data: [&[T]; N], layouts: [&Layout; N]) -> candle_core::Result<Vec<T>>;
}

/// Runs `kernel` on the storages `s` (laid out as `l`) in their float type;
/// the error names `op` when the type is not `f32`/`f64` or an input is not
/// contiguous.
pub(super) fn run<K: FloatKernel<N>, const N: usize>(
    kernel: &K,
    op: &str,
    s: [&CpuStorage; N],
    l: [&Layout; N],
) -> candle_core::Result<CpuStorage> {
    fn typed<T: Float, K: FloatKernel<N>, const N: usize>(
        kernel: &K,
        op: &str,
        s: [&CpuStorage; N],
        l: [&Layout; N],
    ) -> candle_core::Result<CpuStorage> {
        let mut data: [&[T]; N] = [&[]; N];
        for i in 0..N {
            data[i] = slice::<T>(s[i], l[i], op)?;
        }
        Ok(storage(kernel.run(data, l)?))
    }
    match s[0] {
        CpuStorage::F32(_) => typed::<f32, K, N>(kernel, op, s, l),
        CpuStorage::F64(_) => typed::<f64, K, N>(kernel, op, s, l),
        _ => candle_core::bail!("{op}: only f32 and f64 are supported"),
    }
}

/// `data` as CPU storage.
fn storage<T: Float>(data: Vec<T>) -> CpuStorage {
    T::to_cpu_storage_owned(data)
}

/// `sum(f(x_i))` in `f64`, over four interleaved partial sums (fewer rounding
/// steps in a row than one running sum, and the loop vectorises).
#[inline]
pub(super) fn sum_f64<T: Float>(xs: &[T], f: impl Fn(T) -> f64) -> f64 {
    let mut acc = [0f64; 4];
    let chunks = xs.chunks_exact(4);
    let rest = chunks.remainder();
    for ch in chunks {
        for (a, &v) in acc.iter_mut().zip(ch) {
            *a += f(v);
        }
    }
    let tail: f64 = rest.iter().map(|&v| f(v)).sum();
    acc.iter().sum::<f64>() + tail
}

/// `sum(f(a_i, b_i))` in `f64` over two slices of equal length, as [`sum_f64`].
#[inline]
pub(super) fn sum2_f64<T: Float>(a: &[T], b: &[T], f: impl Fn(T, T) -> f64) -> f64 {
    let mut acc = [0f64; 4];
    let (ca, cb) = (a.chunks_exact(4), b.chunks_exact(4));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..4 {
            acc[i] += f(x[i], y[i]);
        }
    }
    let tail: f64 = ra.iter().zip(rb).map(|(&x, &y)| f(x, y)).sum();
    acc.iter().sum::<f64>() + tail
}
