//! What the fused layers of `(x, w, bias)` (convolution, linear) share:
//! one Candle operation whose backward runs one kernel that returns
//! `[dx, dw, db]` packed, split into the three gradients.

use candle_core::{CpuStorage, CustomOp3, Layout, Shape, Tensor};

use super::kernel::{self, Float, FloatKernel};

/// The forward and backward kernels of a layer of `(x, w, bias)`.
pub(super) trait Layer: Copy + Send + Sync + 'static {
    /// Name of the forward operation.
    const NAME: &'static str;
    /// Name of the backward operation.
    const BACKWARD_NAME: &'static str;
    /// Shape of the output.
    fn out_shape(&self) -> Shape;
    /// Number of outputs (the bias length).
    fn outputs(&self) -> usize;
    /// The output from `x`, `w` and `bias`.
    fn forward<T: Float>(&self, x: &[T], w: &[T], bias: &[T]) -> Vec<T>;
    /// `[dx, dw, db]` packed, from `x`, the output gradient `dy` and `w`.
    fn backward<T: Float>(&self, x: &[T], dy: &[T], w: &[T]) -> Vec<T>;
}

/// `layer` applied to `x`, `w` and `bias` (zeros when absent), as one
/// differentiable operation.
pub(super) fn apply<L: Layer>(
    layer: L,
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
) -> candle_core::Result<Tensor> {
    let bias = match bias {
        Some(bias) => bias.contiguous()?,
        None => Tensor::zeros(layer.outputs(), x.dtype(), x.device())?,
    };
    x.contiguous()?
        .apply_op3(&w.contiguous()?, &bias, Forward(layer))
}

struct Forward<L>(L);

impl<L: Layer> FloatKernel<3> for Forward<L> {
    fn run<T: Float>(&self, [x, w, b]: [&[T]; 3], _: [&Layout; 3]) -> candle_core::Result<Vec<T>> {
        Ok(self.0.forward(x, w, b))
    }
}

impl<L: Layer> CustomOp3 for Forward<L> {
    fn name(&self) -> &'static str {
        L::NAME
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let y = kernel::run(self, L::NAME, [s1, s2, s3], [l1, l2, l3])?;
        Ok((y, self.0.out_shape()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _bias: &Tensor,
        _res: &Tensor,
        dy: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (nx, nw) = (x.elem_count(), w.elem_count());
        let packed = x.apply_op3_no_bwd(&dy.contiguous()?, w, &Backward(self.0))?;
        let dx = packed.narrow(0, 0, nx)?.reshape(x.shape())?;
        let dw = packed.narrow(0, nx, nw)?.reshape(w.shape())?;
        let db = packed.narrow(0, nx + nw, self.0.outputs())?;
        Ok((Some(dx), Some(dw), Some(db)))
    }
}

/// `(x, dy, w) -> [dx, dw, db]` (flattened, concatenated).
struct Backward<L>(L);

impl<L: Layer> FloatKernel<3> for Backward<L> {
    fn run<T: Float>(&self, [x, dy, w]: [&[T]; 3], _: [&Layout; 3]) -> candle_core::Result<Vec<T>> {
        Ok(self.0.backward(x, dy, w))
    }
}

impl<L: Layer> CustomOp3 for Backward<L> {
    fn name(&self) -> &'static str {
        L::BACKWARD_NAME
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let out = kernel::run(self, L::BACKWARD_NAME, [s1, s2, s3], [l1, l2, l3])?;
        let n = l1.shape().elem_count() + l3.shape().elem_count() + self.0.outputs();
        Ok((out, Shape::from(n)))
    }
}
