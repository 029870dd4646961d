//! Helpers for the unit tests that check a hand-written tensor operation
//! against a reference built from Candle's own operations.

use candle_core::backprop::GradStore;
use candle_core::Tensor;

/// A tensor's values, flattened (f32).
pub fn values(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

/// Largest absolute difference between two tensors of the same shape.
pub fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

/// Gradients of `sum(ours * r)` and `sum(theirs * r)` for one random `r`:
/// a non-trivial loss whose gradients, compared per input, check two
/// implementations' backward passes against each other.
pub fn projected_grads(ours: Tensor, theirs: Tensor) -> (GradStore, GradStore) {
    let r = Tensor::randn(0f32, 1.0, ours.dims(), ours.device()).unwrap();
    let g1 = (ours * &r).unwrap().sum_all().unwrap().backward().unwrap();
    let g2 = (theirs * &r)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    (g1, g2)
}
