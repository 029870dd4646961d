//! Elementwise activations, forward and backward (the gradient from the
//! input `x` and the output `y`, whichever the function needs), as PyTorch
//! defines them.

use serde::{Deserialize, Serialize};

use crate::model::kernel::Float;

/// An elementwise activation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Act {
    /// `max(x, 0)`.
    Relu,
    /// `min(max(x, min), max)` (ReLU6 is `Clip { 0, 6 }`); the gradient
    /// passes strictly inside, as PyTorch's `hardtanh` backward.
    Clip {
        /// Lower bound.
        min: f32,
        /// Upper bound.
        max: f32,
    },
    /// `x` if positive, else `alpha * x`.
    LeakyRelu {
        /// Slope for negative inputs.
        alpha: f32,
    },
    /// `1 / (1 + exp(-x))`.
    Sigmoid,
    /// `x * sigmoid(x)` (Swish).
    Silu,
    /// `clamp(alpha * x + beta, 0, 1)` (PyTorch: alpha 1/6, beta 1/2; ONNX: 0.2, 0.5).
    HardSigmoid {
        /// Slope.
        alpha: f32,
        /// Offset.
        beta: f32,
    },
    /// `x * relu6(x + 3) / 6`.
    HardSwish,
    /// `x * Φ(x)`, exact (`erf`) or PyTorch's `tanh` approximation.
    Gelu {
        /// Whether the tanh approximation is used.
        tanh: bool,
    },
    /// `tanh(x)`.
    Tanh,
    /// The error function (what an ONNX export before opset 20 writes
    /// GELU with).
    Erf,
    /// `x * by` (attention's `1 / sqrt(head dim)`).
    Scale {
        /// The factor.
        by: f32,
    },
    /// `sqrt(x)` (NaN below zero; what an ONNX export before opset 17
    /// writes LayerNorm with).
    Sqrt,
    /// `x` to the power `exponent` (a whole exponent works on negative
    /// values too; another gives NaN there, as in PyTorch).
    Pow {
        /// The exponent.
        exponent: f32,
    },
}

impl Act {
    /// The activation's name.
    pub fn name(&self) -> &'static str {
        match self {
            Act::Relu => "relu",
            Act::Clip { .. } => "clip",
            Act::LeakyRelu { .. } => "leaky_relu",
            Act::Sigmoid => "sigmoid",
            Act::Silu => "silu",
            Act::HardSigmoid { .. } => "hard_sigmoid",
            Act::HardSwish => "hard_swish",
            Act::Gelu { .. } => "gelu",
            Act::Tanh => "tanh",
            Act::Erf => "erf",
            Act::Scale { .. } => "scale",
            Act::Sqrt => "sqrt",
            Act::Pow { .. } => "pow",
        }
    }

    /// Whether the backward reads the output (else the input).
    pub(crate) fn backward_reads_output(&self) -> bool {
        matches!(self, Act::Relu | Act::Sigmoid | Act::Tanh | Act::Sqrt)
    }

    /// `f(x)` for every value, in place.
    pub(crate) fn forward_in_place<T: Float>(&self, x: &mut [T]) {
        let c = |v: f64| T::from_f64(v);
        match *self {
            Act::Relu => crate::model::relu::relu_in_place(x),
            Act::Clip { min, max } => {
                let (lo, hi) = (c(exact(min)), c(exact(max)));
                for v in x {
                    // NaN stays NaN, as in PyTorch.
                    if *v < lo {
                        *v = lo;
                    } else if *v > hi {
                        *v = hi;
                    }
                }
            }
            Act::LeakyRelu { alpha } => {
                let a = c(exact(alpha));
                for v in x {
                    if *v < T::zero() {
                        *v *= a;
                    }
                }
            }
            Act::Sigmoid => x.iter_mut().for_each(|v| *v = sigmoid(*v)),
            Act::Silu => x.iter_mut().for_each(|v| *v = *v * sigmoid(*v)),
            Act::HardSigmoid { alpha, beta } => {
                let (a, b) = (c(exact(alpha)), c(exact(beta)));
                for v in x {
                    *v = clamp01(*v * a + b);
                }
            }
            Act::HardSwish => {
                let (three, six) = (c(3.0), c(6.0));
                for v in x {
                    let r =
                        num_traits::Float::min(num_traits::Float::max(*v + three, T::zero()), six);
                    *v = *v * r / six;
                }
            }
            Act::Gelu { tanh: false } => x.iter_mut().for_each(|v| *v = gelu_erf(*v)),
            Act::Gelu { tanh: true } => x.iter_mut().for_each(|v| *v = gelu_tanh(*v).0),
            Act::Tanh => x.iter_mut().for_each(|v| *v = v.tanh()),
            Act::Erf => x
                .iter_mut()
                .for_each(|v| *v = T::from_f64(libm::erf(v.to_f64()))),
            Act::Scale { by } => {
                let by = c(exact(by));
                x.iter_mut().for_each(|v| *v *= by);
            }
            Act::Sqrt => x.iter_mut().for_each(|v| *v = v.sqrt()),
            Act::Pow { exponent } => {
                let e = exact(exponent);
                x.iter_mut()
                    .for_each(|v| *v = T::from_f64(pow(v.to_f64(), e)));
            }
        }
    }

    /// `dy * f'(x)` in place in `dy`; `at` is the output `y` where
    /// [`Act::backward_reads_output`], else the input `x`.
    pub(crate) fn backward_in_place<T: Float>(&self, at: &[T], dy: &mut [T]) {
        let c = |v: f64| T::from_f64(v);
        let each = |dy: &mut [T], f: &dyn Fn(T) -> T| {
            for (d, &v) in dy.iter_mut().zip(at) {
                *d *= f(v);
            }
        };
        match *self {
            Act::Relu => crate::model::relu::relu_backward_in_place(at, dy),
            Act::Clip { min, max } => {
                let (lo, hi) = (c(exact(min)), c(exact(max)));
                each(dy, &|x| {
                    if x > lo && x < hi {
                        T::one()
                    } else {
                        T::zero()
                    }
                })
            }
            Act::LeakyRelu { alpha } => {
                let a = c(exact(alpha));
                each(dy, &|x| if x > T::zero() { T::one() } else { a })
            }
            Act::Sigmoid => each(dy, &|y| y * (T::one() - y)),
            Act::Silu => each(dy, &|x| {
                let s = sigmoid(x);
                s * (T::one() + x * (T::one() - s))
            }),
            Act::HardSigmoid { alpha, beta } => {
                let (a, b) = (c(exact(alpha)), c(exact(beta)));
                each(dy, &|x| {
                    let z = x * a + b;
                    if z > T::zero() && z < T::one() {
                        a
                    } else {
                        T::zero()
                    }
                })
            }
            // PyTorch: 0 below -3, 1 above 3, x / 3 + 1/2 between (both
            // ends belong to the middle piece).
            Act::HardSwish => each(dy, &|x| {
                if x < c(-3.0) {
                    T::zero()
                } else if x <= c(3.0) {
                    x / c(3.0) + c(0.5)
                } else {
                    T::one()
                }
            }),
            Act::Gelu { tanh: false } => each(dy, &|x| {
                let xf = x.to_f64();
                let cdf = 0.5 * (1.0 + libm::erf(xf * std::f64::consts::FRAC_1_SQRT_2));
                let pdf = (-0.5 * xf * xf).exp() / (2.0 * std::f64::consts::PI).sqrt();
                T::from_f64(cdf + xf * pdf)
            }),
            Act::Gelu { tanh: true } => each(dy, &|x| gelu_tanh(x).1),
            Act::Tanh => each(dy, &|y| T::one() - y * y),
            Act::Erf => each(dy, &|x| {
                let xf = x.to_f64();
                T::from_f64(2.0 / std::f64::consts::PI.sqrt() * (-xf * xf).exp())
            }),
            Act::Scale { by } => {
                let by = c(exact(by));
                dy.iter_mut().for_each(|d| *d *= by);
            }
            Act::Sqrt => each(dy, &|y| c(0.5) / y),
            Act::Pow { exponent } => {
                let e = exact(exponent);
                each(dy, &|x| T::from_f64(e * pow(x.to_f64(), e - 1.0)))
            }
        }
    }
}

/// `x^e`, by repeated multiplication for a whole `e` (so negative `x`
/// works, as `torch.pow` with an integer exponent).
pub(crate) fn pow(x: f64, e: f64) -> f64 {
    if e.fract() == 0.0 && e.abs() <= 64.0 {
        x.powi(e as i32)
    } else {
        x.powf(e)
    }
}

/// The number an `f32` attribute stands for: the simplest fraction with a
/// denominator up to 12 that rounds to it (HardSigmoid's 1/6), else its
/// shortest decimal (LeakyReLU's 0.01). An ONNX file stores these in
/// `f32`; computing in `f64` with the rounded value would differ from
/// PyTorch's `f64` by that rounding.
pub(crate) fn exact(v: f32) -> f64 {
    if !v.is_finite() {
        return v as f64;
    }
    for d in 1..=12u32 {
        let n = (v as f64 * d as f64).round();
        if ((n / d as f64) as f32) == v {
            return n / d as f64;
        }
    }
    format!("{v}").parse().unwrap_or(v as f64)
}

fn sigmoid<T: Float>(x: T) -> T {
    T::one() / (T::one() + (-x).exp())
}

fn clamp01<T: Float>(x: T) -> T {
    num_traits::Float::min(num_traits::Float::max(x, T::zero()), T::one())
}

/// `x * Φ(x)` with `Φ` from `erf`, computed in `f64`.
fn gelu_erf<T: Float>(x: T) -> T {
    let xf = x.to_f64();
    T::from_f64(0.5 * xf * (1.0 + libm::erf(xf * std::f64::consts::FRAC_1_SQRT_2)))
}

/// PyTorch's `gelu(approximate="tanh")` and its derivative, in `f64`.
fn gelu_tanh<T: Float>(x: T) -> (T, T) {
    const K: f64 = 0.044715;
    let xf = x.to_f64();
    let s = (2.0 / std::f64::consts::PI).sqrt();
    let inner = s * (xf + K * xf * xf * xf);
    let t = inner.tanh();
    let y = 0.5 * xf * (1.0 + t);
    let d = 0.5 * (1.0 + t) + 0.5 * xf * (1.0 - t * t) * s * (1.0 + 3.0 * K * xf * xf);
    (T::from_f64(y), T::from_f64(d))
}
