//! Matrix products: `Linear` (`x W^T + b` over the last axis, any leading
//! axes; the kernels of `model::linear`) and `MatMul` (batched, leading
//! axes broadcast, as attention's `q k^T` and `attn v`).

use super::elementwise::source_index;
use super::layout::broadcast;
use super::numel;
use crate::model::fused::Layer;
use crate::model::gemm::{matmul_into, Mat};
use crate::model::kernel::Float;
use crate::model::linear;

/// Linear's output dims: `x [..., in]`, `w [out, in]`, `bias? [out]`.
pub fn linear_dims(dims: &[&[usize]]) -> Result<Vec<usize>, String> {
    let (x, w) = (dims[0], dims[1]);
    let (&[out, input], Some(&last)) = (w, x.last()) else {
        return Err(format!("linear of {x:?} by a weight of dims {w:?}"));
    };
    if last != input {
        return Err(format!("linear layer takes {input} features, gets {x:?}"));
    }
    if let Some(b) = dims.get(2) {
        if *b != [out] {
            return Err(format!("bias of dims {b:?} for {out} outputs"));
        }
    }
    let mut y = x.to_vec();
    *y.last_mut().expect("rank checked") = out;
    Ok(y)
}

/// The kernel sizes of a linear layer on `x` of dims `x_dims`.
pub(crate) fn linear_layer(x_dims: &[usize], w_dims: &[usize]) -> linear::Dims {
    linear::Dims {
        b: numel(&x_dims[..x_dims.len() - 1]),
        input: w_dims[1],
        out: w_dims[0],
    }
}

/// `x W^T + bias` (zeros when there is none).
pub(crate) fn linear_forward<T: Float>(
    d: linear::Dims,
    x: &[T],
    w: &[T],
    bias: Option<&[T]>,
) -> Vec<T> {
    match bias {
        Some(b) => d.forward(x, w, b),
        None => d.forward(x, w, &vec![T::zero(); d.out]),
    }
}

/// `[dx, dw, db]` of a linear layer.
pub(crate) fn linear_backward<T: Float>(
    d: linear::Dims,
    x: &[T],
    w: &[T],
    dy: &[T],
) -> [Vec<T>; 3] {
    let mut dx = d.backward(x, dy, w);
    let mut dw = dx.split_off(x.len());
    let db = dw.split_off(w.len());
    [dx, dw, db]
}

/// MatMul's output dims: `a [..., m, k] · b [..., k, n]`.
pub fn matmul_dims(a: &[usize], b: &[usize]) -> Result<Vec<usize>, String> {
    let (ra, rb) = (a.len(), b.len());
    if ra < 2 || rb < 2 || a[ra - 1] != b[rb - 2] {
        return Err(format!("matrix product of {a:?} and {b:?}"));
    }
    let mut out = broadcast(&a[..ra - 2], &b[..rb - 2])?;
    out.extend([a[ra - 2], b[rb - 1]]);
    Ok(out)
}

/// For each matrix of the output, the index of the `a` and `b` matrices it
/// multiplies.
fn blocks(a: &[usize], b: &[usize], out: &[usize]) -> (Vec<usize>, Vec<usize>) {
    let lead = &out[..out.len() - 2];
    (
        source_index(lead, &a[..a.len() - 2]),
        source_index(lead, &b[..b.len() - 2]),
    )
}

/// `a · b` with broadcast leading axes.
pub(crate) fn matmul<T: Float>(
    a: &[T],
    ad: &[usize],
    b: &[T],
    bd: &[usize],
    out: &[usize],
) -> Vec<T> {
    let (m, k, n) = (ad[ad.len() - 2], ad[ad.len() - 1], bd[bd.len() - 1]);
    let mut y = vec![T::zero(); numel(out)];
    let (ia, ib) = blocks(ad, bd, out);
    for (o, yb) in y.chunks_exact_mut((m * n).max(1)).enumerate() {
        let am = Mat::new(&a[ia[o] * m * k..], m, k);
        let bm = Mat::new(&b[ib[o] * k * n..], k, n);
        matmul_into(yb, am, bm, false);
    }
    y
}

/// The gradients of `a` and `b` (where `need`) of [`matmul`].
#[allow(clippy::too_many_arguments)]
pub(crate) fn matmul_backward<T: Float>(
    a: &[T],
    ad: &[usize],
    b: &[T],
    bd: &[usize],
    dy: &[T],
    out: &[usize],
    need: [bool; 2],
) -> [Option<Vec<T>>; 2] {
    let (m, k, n) = (ad[ad.len() - 2], ad[ad.len() - 1], bd[bd.len() - 1]);
    let (ia, ib) = blocks(ad, bd, out);
    let mut da = need[0].then(|| vec![T::zero(); a.len()]);
    let mut db = need[1].then(|| vec![T::zero(); b.len()]);
    for (o, g) in dy.chunks_exact((m * n).max(1)).enumerate() {
        let gm = Mat::new(g, m, n);
        if let Some(da) = da.as_mut() {
            let bm = Mat::new(&b[ib[o] * k * n..], k, n);
            matmul_into(&mut da[ia[o] * m * k..], gm, bm.t(), true);
        }
        if let Some(db) = db.as_mut() {
            let am = Mat::new(&a[ia[o] * m * k..], m, k);
            matmul_into(&mut db[ib[o] * k * n..], am.t(), gm, true);
        }
    }
    [da, db]
}
