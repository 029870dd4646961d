//! Finite-difference gradient checks of every operation the network
//! interpreter uses, and of each built-in architecture end to end.
//!
//! Everything runs in `f64` (the custom CPU operations are generic over
//! `f32`/`f64`), so a central difference with step `1e-6` is accurate to
//! about `1e-9` and the analytic gradient must agree with it to `1e-6`
//! relative to the tensor's largest gradient. A gradient scaled by 1/4 (the
//! max-pool bug of candle-core 0.11.1) or off by a few per cent fails by
//! orders of magnitude. The device-independent paths (the tensor-op batch
//! norm and max pool, Candle's own `conv2d`) are what CUDA runs; they are
//! checked here on the CPU.

use candle_core::{DType, Device, Tensor, Var};
use rand::{Rng, SeedableRng};

use super::arch::{Architecture, Family, ModelSpec, Node};
use super::{batchnorm, conv, pool, relu, Network};

const STEP: f64 = 1e-6;
const REL_TOL: f64 = 1e-6;

fn rng(seed: u64) -> rand::rngs::StdRng {
    rand::rngs::StdRng::seed_from_u64(seed)
}

/// A `f64` variable of `shape` with entries `offset + N(0, 1) * spread`.
fn var(shape: &[usize], offset: f64, spread: f64, seed: u64) -> Var {
    let mut r = rng(seed);
    let n: usize = shape.iter().product();
    let data: Vec<f64> = (0..n).map(|_| offset + spread * gaussian(&mut r)).collect();
    Var::from_tensor(&Tensor::from_vec(data, shape, &Device::Cpu).unwrap()).unwrap()
}

fn gaussian(r: &mut impl Rng) -> f64 {
    // Box-Muller; rand's normal distribution lives in another crate.
    let (u, v): (f64, f64) = (r.random_range(1e-12..1.0), r.random());
    (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
}

fn values(t: &Tensor) -> Vec<f64> {
    t.flatten_all().unwrap().to_vec1::<f64>().unwrap()
}

fn set(v: &Var, data: &[f64]) {
    v.set(&Tensor::from_slice(data, v.dims(), v.device()).unwrap())
        .unwrap();
}

/// `sum(y * r)` for a fixed random `r`: a scalar that depends on every
/// output with a different weight.
fn projection(y: &Tensor, seed: u64) -> Tensor {
    let r = var(y.dims(), 0.0, 1.0, seed);
    (y * r.as_tensor()).unwrap().sum_all().unwrap()
}

/// Asserts that [`mismatch`] finds none.
fn check(what: &str, vars: &[(&str, &Var)], entries: usize, loss: &mut dyn FnMut() -> Tensor) {
    if let Err(e) = mismatch(what, vars, entries, loss) {
        panic!("{e}");
    }
}

/// Compares the autograd gradient of the scalar `loss()` with respect to
/// each of `vars` with central differences: on every entry of tensors of up
/// to `entries` elements, else on `entries` of them (the largest gradient
/// among them), and along one random direction through the whole tensor.
/// The error describes the first disagreement.
fn mismatch(
    what: &str,
    vars: &[(&str, &Var)],
    entries: usize,
    loss: &mut dyn FnMut() -> Tensor,
) -> Result<(), String> {
    let f0 = loss();
    let grads = f0.backward().unwrap();
    let f0 = f0.to_scalar::<f64>().unwrap();
    let abs_tol = 1e-8 * (1.0 + f0.abs());
    let mut eval = |v: &Var, data: &[f64]| {
        set(v, data);
        loss().to_scalar::<f64>().unwrap()
    };
    for (i, &(name, v)) in vars.iter().enumerate() {
        let g = values(
            grads
                .get(v.as_tensor())
                .ok_or_else(|| format!("{what}: no gradient for `{name}`"))?,
        );
        let x0 = values(v.as_tensor());
        let scale = g.iter().fold(0f64, |m, x| m.max(x.abs()));
        if !scale.is_finite() {
            return Err(format!("{what}: `{name}` has a non-finite gradient"));
        }
        let picked: Vec<usize> = if x0.len() <= entries {
            (0..x0.len()).collect()
        } else {
            let mut r = rng(i as u64);
            let largest = (0..g.len())
                .max_by(|&a, &b| g[a].abs().total_cmp(&g[b].abs()))
                .unwrap();
            std::iter::once(largest)
                .chain((1..entries).map(|_| r.random_range(0..x0.len())))
                .collect()
        };
        for j in picked {
            let mut x = x0.clone();
            x[j] = x0[j] + STEP;
            let up = eval(v, &x);
            x[j] = x0[j] - STEP;
            let down = eval(v, &x);
            let fd = (up - down) / (2.0 * STEP);
            if (fd - g[j]).abs() > REL_TOL * scale + abs_tol {
                set(v, &x0);
                return Err(format!(
                    "{what}: d/d {name}[{j}] is {} by backprop, {fd} by finite differences (largest gradient {scale})",
                    g[j]
                ));
            }
        }
        let mut r = rng(1000 + i as u64);
        let dir: Vec<f64> = (0..x0.len()).map(|_| gaussian(&mut r)).collect();
        let along = |s: f64| -> Vec<f64> { x0.iter().zip(&dir).map(|(x, d)| x + s * d).collect() };
        let fd = (eval(v, &along(STEP)) - eval(v, &along(-STEP))) / (2.0 * STEP);
        let an: f64 = g.iter().zip(&dir).map(|(g, d)| g * d).sum();
        let norm = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().sqrt();
        set(v, &x0);
        if (fd - an).abs() > REL_TOL * norm(&g) * norm(&dir) + abs_tol {
            return Err(format!(
                "{what}: directional derivative along a random direction of `{name}` is {an} by backprop, {fd} by finite differences"
            ));
        }
    }
    Ok(())
}

/// The convolutions the built-in models use: `(in_c, size, k, stride, pad)`.
const CONV_GEOMETRIES: [(usize, usize, usize, usize, usize); 6] = [
    (1, 12, 5, 1, 2), // LeNet-5 conv1 (28x28 inputs are padded by 2)
    (3, 10, 5, 1, 0), // LeNet-5 conv2
    (3, 6, 3, 1, 1),  // VGG, ResNet-20 3x3
    (3, 7, 3, 2, 1),  // ResNet-20 stage entry, odd size
    (2, 8, 3, 2, 1),  // ResNet-20 stage entry
    (3, 8, 1, 2, 0),  // ResNet-20 projection shortcut
];

#[test]
fn conv2d_im2col_gradients_match_finite_differences() {
    for (n, &(c, s, k, stride, pad)) in CONV_GEOMETRIES.iter().enumerate() {
        let x = var(&[2, c, s, s], 0.3, 1.0, 10 + n as u64);
        let w = var(&[4, c, k, k], 0.0, 0.5, 20 + n as u64);
        let b = var(&[4], 0.0, 0.5, 50 + n as u64);
        let what = format!("conv2d k={k} stride={stride} pad={pad}");
        check(&what, &[("x", &x), ("w", &w), ("b", &b)], 40, &mut || {
            projection(&conv::conv2d(&x, &w, Some(&b), stride, pad).unwrap(), 7)
        });
    }
}

#[test]
fn fused_linear_gradients_match_finite_differences() {
    for (n, &(b, input, out)) in [(3usize, 7usize, 4usize), (20, 5, 18)].iter().enumerate() {
        let x = var(&[b, input], 0.1, 1.0, 60 + n as u64);
        let w = var(&[out, input], 0.0, 0.5, 70 + n as u64);
        let bias = var(&[out], 0.0, 0.5, 80 + n as u64);
        let what = format!("linear {b}x{input}->{out}");
        check(
            &what,
            &[("x", &x), ("w", &w), ("b", &bias)],
            40,
            &mut || projection(&super::linear::linear(&x, &w, Some(&bias)).unwrap(), 9),
        );
    }
}

#[test]
fn candle_conv2d_gradients_match_finite_differences() {
    // The path other devices (CUDA) take.
    for (n, &(c, s, k, stride, pad)) in CONV_GEOMETRIES.iter().enumerate() {
        let x = var(&[2, c, s, s], 0.3, 1.0, 30 + n as u64);
        let w = var(&[3, c, k, k], 0.0, 0.5, 40 + n as u64);
        let what = format!("candle conv2d k={k} stride={stride} pad={pad}");
        check(&what, &[("x", &x), ("w", &w)], 40, &mut || {
            projection(&x.conv2d(&w, pad, stride, 1, 1).unwrap(), 8)
        });
    }
}

#[test]
fn im2col_conv2d_equals_candle_conv2d() {
    for (n, &(c, s, k, stride, pad)) in CONV_GEOMETRIES.iter().enumerate() {
        let x = var(&[2, c, s, s], 0.0, 1.0, 50 + n as u64);
        let w = var(&[4, c, k, k], 0.0, 1.0, 60 + n as u64);
        let ours = values(&conv::conv2d(&x, &w, None, stride, pad).unwrap());
        let theirs = values(&x.conv2d(&w, pad, stride, 1, 1).unwrap());
        let diff = ours.iter().zip(&theirs).map(|(a, b)| (a - b).abs());
        assert!(
            diff.fold(0f64, f64::max) < 1e-12,
            "k={k} stride={stride} pad={pad}"
        );
    }
}

#[test]
fn batch_norm_training_gradients_match_finite_differences() {
    // A large mean next to a small spread: where a one-pass variance cancels.
    let x = var(&[3, 4, 5, 5], 3.0, 0.5, 70);
    let gamma = var(&[4], 1.0, 0.3, 71);
    let beta = var(&[4], 0.0, 0.3, 72);
    let vars = [("x", &x), ("gamma", &gamma), ("beta", &beta)];
    check("fused batch norm (training)", &vars, 40, &mut || {
        projection(&batchnorm::train(&x, &gamma, &beta, 1e-5).unwrap().y, 9)
    });
    check("tensor-op batch norm (training)", &vars, 40, &mut || {
        let out = batchnorm::train_with_tensor_ops(&x, &gamma, &beta, 1e-5).unwrap();
        projection(&out.y, 9)
    });
}

#[test]
fn batch_norm_training_statistics_are_the_batch_mean_and_unbiased_variance() {
    let x = var(&[3, 2, 4, 4], 2.0, 0.7, 73);
    let gamma = var(&[2], 1.0, 0.0, 74);
    let beta = var(&[2], 0.0, 0.0, 75);
    let data = values(&x);
    for out in [
        batchnorm::train(&x, &gamma, &beta, 1e-5).unwrap(),
        batchnorm::train_with_tensor_ops(&x, &gamma, &beta, 1e-5).unwrap(),
    ] {
        let (mean, var) = (values(&out.mean), values(&out.unbiased_var));
        for c in 0..2 {
            let xs: Vec<f64> = (0..3)
                .flat_map(|b| data[(b * 2 + c) * 16..(b * 2 + c + 1) * 16].to_vec())
                .collect();
            let m = xs.iter().sum::<f64>() / 48.0;
            let v = xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / 47.0;
            assert!((mean[c] - m).abs() < 1e-12 && (var[c] - v).abs() < 1e-12);
        }
    }
}

#[test]
fn batch_norm_eval_gradients_match_finite_differences() {
    let x = var(&[3, 4, 3, 3], 1.0, 1.0, 76);
    let gamma = var(&[4], 1.0, 0.3, 77);
    let beta = var(&[4], 0.0, 0.3, 78);
    let mean = var(&[4], 0.5, 0.5, 79);
    let rv = var(&[4], 2.0, 0.5, 80);
    let vars = [("x", &x), ("gamma", &gamma), ("beta", &beta)];
    check("batch norm (eval)", &vars, 40, &mut || {
        projection(
            &batchnorm::eval(&x, &gamma, &beta, &mean, &rv, 1e-5).unwrap(),
            10,
        )
    });
}

/// Entries apart by at least 0.05 and from 0 (no ties, no ReLU kinks within
/// the finite-difference step).
fn distinct(shape: &[usize], seed: u64) -> Var {
    let n: usize = shape.iter().product();
    let mut order: Vec<usize> = (0..n).collect();
    let mut r = rng(seed);
    for i in (1..n).rev() {
        order.swap(i, r.random_range(0..=i));
    }
    let data: Vec<f64> = order
        .iter()
        .map(|&i| (i as f64 - n as f64 / 2.0 + 0.5) * 0.05)
        .collect();
    Var::from_tensor(&Tensor::from_vec(data, shape, &Device::Cpu).unwrap()).unwrap()
}

#[test]
fn max_pool_gradients_match_finite_differences() {
    // 6x6 fills the windows; 5x7 leaves a row and a column out.
    for (h, w) in [(6, 6), (5, 7)] {
        let x = distinct(&[2, 3, h, w], 81);
        check(
            &format!("fused max pool {h}x{w}"),
            &[("x", &x)],
            500,
            &mut || projection(&pool::max_pool2d(&x, 2).unwrap(), 11),
        );
        check(
            &format!("tensor-op max pool {h}x{w}"),
            &[("x", &x)],
            500,
            &mut || projection(&pool::max_pool2d_with_tensor_ops(&x, 2, 2, 0).unwrap(), 11),
        );
    }
}

#[test]
fn strided_padded_max_pool_gradients_match_finite_differences() {
    // ResNet's stem pool (3, stride 2, padding 1) and an overlapping 3/1.
    for (k, s, pad, h, w) in [(3, 2, 1, 7, 8), (3, 1, 0, 5, 5), (2, 2, 1, 5, 4)] {
        let x = distinct(&[2, 2, h, w], 86);
        for (name, fused) in [("fused", true), ("tensor-op", false)] {
            check(
                &format!("{name} max pool {k}/{s}/{pad} on {h}x{w}"),
                &[("x", &x)],
                500,
                &mut || {
                    let y = if fused {
                        pool::max_pool2d_strided(&x, k, s, pad)
                    } else {
                        pool::max_pool2d_with_tensor_ops(&x, k, s, pad)
                    };
                    projection(&y.unwrap(), 12)
                },
            );
        }
    }
}

#[test]
fn adaptive_average_pool_gradients_match_finite_differences() {
    // Shrinking with uneven windows, and growing (1x1 -> 7x7 as VGG does on
    // a small input).
    for (h, w, oh, ow) in [(5, 7, 3, 2), (1, 1, 7, 7), (4, 4, 1, 1)] {
        let x = var(&[2, 3, h, w], 0.0, 1.0, 87);
        check(
            &format!("adaptive pool {h}x{w} -> {oh}x{ow}"),
            &[("x", &x)],
            500,
            &mut || projection(&pool::adaptive_avg_pool2d(&x, oh, ow).unwrap(), 13),
        );
    }
}

#[test]
fn average_pool_gradients_match_finite_differences() {
    for (k, s, pad, count_pad) in [
        (2, 2, 0, true),
        (3, 2, 1, true),
        (3, 2, 1, false),
        (3, 1, 1, false),
    ] {
        let x = var(&[2, 2, 7, 6], 0.0, 1.0, 88);
        check(
            &format!("avg pool {k}/{s}/{pad} count_pad {count_pad}"),
            &[("x", &x)],
            500,
            &mut || projection(&pool::avg_pool2d(&x, k, s, pad, count_pad).unwrap(), 14),
        );
    }
}

#[test]
fn average_pools_divide_as_pytorch_does() {
    // 3x3 window, stride 2, padding 1 on a 3x3 map of ones: the corner
    // window covers 4 cells. PyTorch's count_include_pad divides by 9,
    // ONNX's default by 4.
    let x = Tensor::ones((1, 1, 3, 3), DType::F64, &Device::Cpu).unwrap();
    let with = values(&pool::avg_pool2d(&x, 3, 2, 1, true).unwrap());
    let without = values(&pool::avg_pool2d(&x, 3, 2, 1, false).unwrap());
    assert!((with[0] - 4.0 / 9.0).abs() < 1e-12, "{with:?}");
    assert!(
        without.iter().all(|v| (v - 1.0).abs() < 1e-12),
        "{without:?}"
    );
    // Adaptive pooling of 5 rows to 3: rows 0-1, 1-3, 3-4.
    let x = Tensor::from_vec(
        (0..5).map(f64::from).collect::<Vec<_>>(),
        (1, 1, 5, 1),
        &Device::Cpu,
    )
    .unwrap();
    let y = values(&pool::adaptive_avg_pool2d(&x, 3, 1).unwrap());
    assert_eq!(y, vec![0.5, 2.0, 3.5]);
}

#[test]
fn max_pool_gives_a_tied_window_gradient_to_its_first_maximum() {
    // PyTorch's rule: the first maximal element in row-major order takes the
    // whole gradient (candle-core 0.11.1 gave each tied element 1/4 of it).
    #[rustfmt::skip]
    let x: Vec<f64> = vec![
        1.0, 1.0, 0.0, 2.0,
        1.0, 0.5, 2.0, 2.0,
        0.0, 0.0, 3.0, 1.0,
        0.0, 0.0, 1.0, 3.0,
    ];
    #[rustfmt::skip]
    let expected: Vec<f64> = vec![
        1.0, 0.0, 0.0, 2.0,
        0.0, 0.0, 0.0, 0.0,
        3.0, 0.0, 4.0, 0.0,
        0.0, 0.0, 0.0, 0.0,
    ];
    let x = Var::from_tensor(&Tensor::from_vec(x, (1, 1, 4, 4), &Device::Cpu).unwrap()).unwrap();
    let dy = Tensor::from_vec(vec![1.0f64, 2.0, 3.0, 4.0], (1, 1, 2, 2), &Device::Cpu).unwrap();
    for (name, y) in [
        ("fused", pool::max_pool2d(&x, 2).unwrap()),
        (
            "tensor-op",
            pool::max_pool2d_with_tensor_ops(&x, 2, 2, 0).unwrap(),
        ),
    ] {
        assert_eq!(values(&y), vec![1.0, 2.0, 0.0, 3.0], "{name} forward");
        let g = (y * &dy).unwrap().sum_all().unwrap().backward().unwrap();
        assert_eq!(values(g.get(&x).unwrap()), expected, "{name} backward");
    }
}

#[test]
fn candle_max_pool_backward_is_still_wrong() {
    // Documents the workaround in `pool`: when this fails, Candle's own
    // max-pool backward passes gradients through and `pool` can go.
    let x = distinct(&[1, 1, 4, 4], 82);
    let g = x
        .max_pool2d(2)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    let total: f64 = values(g.get(&x).unwrap()).iter().sum();
    assert!(
        (total - 1.0).abs() < 1e-12,
        "candle's max-pool backward now sums to {total} (it gave 1; right is 4): remove the workaround in model::pool"
    );
}

#[test]
fn relu_global_average_pool_and_flatten_gradients_match_finite_differences() {
    let x = distinct(&[2, 3, 4, 4], 83);
    check("relu", &[("x", &x)], 100, &mut || {
        projection(&relu::relu(&x).unwrap(), 12)
    });
    check("tensor-op relu", &[("x", &x)], 100, &mut || {
        projection(&relu::relu_with_tensor_ops(&x).unwrap(), 12)
    });
    check("global average pool", &[("x", &x)], 100, &mut || {
        projection(&x.mean((2, 3)).unwrap(), 13)
    });
    check("flatten", &[("x", &x)], 100, &mut || {
        projection(&x.flatten_from(1).unwrap(), 14)
    });
}

/// The gradient of `sum(f(x) * dy)` at `x = [-1, 0, 2]` for `dy = [1, 2, 3]`.
fn relu_gradient(f: impl Fn(&Tensor) -> Tensor) -> Vec<f64> {
    let x = Var::from_tensor(&Tensor::new(&[-1.0f64, 0.0, 2.0], &Device::Cpu).unwrap()).unwrap();
    let dy = Tensor::new(&[1.0f64, 2.0, 3.0], &Device::Cpu).unwrap();
    let y = f(x.as_tensor());
    assert_eq!(values(&y), vec![0.0, 0.0, 2.0]);
    let g = (y * dy).unwrap().sum_all().unwrap().backward().unwrap();
    values(g.get(&x).unwrap())
}

#[test]
fn relu_stops_the_gradient_at_zero() {
    // PyTorch's rule: an input of exactly 0 (a fully pruned unit) gets none.
    assert_eq!(
        relu_gradient(|x| relu::relu(x).unwrap()),
        vec![0.0, 0.0, 3.0]
    );
    assert_eq!(
        relu_gradient(|x| relu::relu_with_tensor_ops(x).unwrap()),
        vec![0.0, 0.0, 3.0]
    );
}

#[test]
fn candle_relu_backward_still_passes_zero() {
    // Documents the workaround in `relu`: when this fails, Candle's own ReLU
    // backward stops the gradient at 0 and `relu` can go.
    assert_eq!(
        relu_gradient(|x| x.relu().unwrap()),
        vec![0.0, 2.0, 3.0],
        "candle's ReLU backward now stops the gradient at 0: remove the workaround in model::relu"
    );
}

#[test]
fn cross_entropy_value_and_gradient_are_right() {
    let logits = var(&[5, 4], 0.0, 2.0, 84);
    let labels = Tensor::new(&[0u32, 3, 1, 1, 2], &Device::Cpu).unwrap();
    let loss = candle_nn::loss::cross_entropy(&logits, &labels).unwrap();
    let z = logits.as_tensor().to_vec2::<f64>().unwrap();
    let expected: f64 = z
        .iter()
        .zip([0usize, 3, 1, 1, 2])
        .map(|(row, y)| {
            let m = row.iter().cloned().fold(f64::MIN, f64::max);
            m + row.iter().map(|v| (v - m).exp()).sum::<f64>().ln() - row[y]
        })
        .sum::<f64>()
        / 5.0;
    assert!((loss.to_scalar::<f64>().unwrap() - expected).abs() < 1e-12);
    check("cross entropy", &[("logits", &logits)], 100, &mut || {
        candle_nn::loss::cross_entropy(&logits, &labels).unwrap()
    });
}

/// Checks every parameter and the input of `net` through a training-mode
/// forward pass and the cross-entropy loss, in `f64`.
fn check_network(what: &str, net: Network, batch: usize, seed: u64) {
    let mut net = net.to_dtype(DType::F64).unwrap();
    // Non-trivial BatchNorm scales and shifts and biases: the fresh ones
    // (1 and 0) would hide mistakes that multiply or add them.
    for (i, (name, v)) in net.params.iter().enumerate() {
        if v.rank() == 1 {
            let base = if name.ends_with(".weight") { 1.0 } else { 0.0 };
            set(
                v,
                &values(var(v.dims(), base, 0.3, seed + i as u64).as_tensor()),
            );
        }
    }
    let [c, h, w] = net.arch.input;
    let x = var(&[batch, c, h, w], 0.5, 1.0, seed);
    let labels: Vec<u32> = (0..batch as u32)
        .map(|i| i % net.arch.num_classes as u32)
        .collect();
    let labels = Tensor::new(labels.as_slice(), &Device::Cpu).unwrap();
    let params: Vec<(String, Var)> = net
        .params
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let mut vars: Vec<(&str, &Var)> = params.iter().map(|(k, v)| (k.as_str(), v)).collect();
    vars.push(("input", &x));
    check(what, &vars, 6, &mut || {
        let logits = net.forward(&x, true).unwrap();
        candle_nn::loss::cross_entropy(&logits, &labels).unwrap()
    });
}

fn build(spec: ModelSpec, input: [usize; 3], classes: usize) -> Network {
    Network::new(spec.build(input, classes).unwrap(), 3, &Device::Cpu).unwrap()
}

#[test]
fn mlp_gradients_match_finite_differences() {
    let net = build(ModelSpec::Mlp { hidden: vec![7, 5] }, [1, 4, 4], 3);
    check_network("mlp", net, 4, 90);
}

#[test]
fn lenet5_gradients_match_finite_differences() {
    // 28x28 inputs, as MNIST: conv1 pads by 2.
    let net = build(ModelSpec::Lenet5, [1, 28, 28], 10);
    check_network("lenet5", net, 3, 91);
}

#[test]
fn vgg_gradients_match_finite_differences() {
    let spec = ModelSpec::Vgg {
        channels: vec![4, 0, 6, 6, 0],
    };
    check_network("vgg", build(spec, [3, 8, 8], 4), 3, 92);
}

#[test]
fn resnet20_gradients_match_finite_differences() {
    let net = build(ModelSpec::Resnet20 { width: 2 }, [3, 8, 8], 3);
    check_network("resnet20", net, 3, 93);
}

fn conv_node(name: &str, in_c: usize, out_c: usize, stride: usize) -> Node {
    Node::Conv2d {
        name: name.into(),
        in_c,
        out_c,
        k: 3,
        stride,
        pad: 1,
        bias: true,
    }
}

#[test]
fn residual_blocks_with_and_without_projection_match_finite_differences() {
    for shortcut in [vec![], vec![conv_node("proj", 2, 3, 2)]] {
        let projected = !shortcut.is_empty();
        let out_c = if projected { 3 } else { 2 };
        let stride = if projected { 2 } else { 1 };
        let arch = Architecture {
            family: Family::Resnet20,
            input: [2, 6, 6],
            num_classes: 3,
            graph: None,
            nodes: vec![
                Node::Residual {
                    body: vec![conv_node("body", 2, out_c, stride), Node::Relu],
                    shortcut,
                },
                Node::Relu,
                Node::GlobalAvgPool,
                Node::Linear {
                    name: "fc".into(),
                    in_f: out_c,
                    out_f: 3,
                    bias: true,
                },
            ],
            preprocess: Default::default(),
        };
        let net = Network::new(arch, 4, &Device::Cpu).unwrap();
        check_network(&format!("residual (projection: {projected})"), net, 2, 94);
    }
}

#[test]
fn finite_differences_catch_a_gradient_a_quarter_too_small() {
    // The check itself can fail: a max pool whose gradient is scaled by 1/4.
    let x = distinct(&[1, 2, 4, 4], 85);
    let result = mismatch("scaled max pool", &[("x", &x)], 100, &mut || {
        let y = pool::max_pool2d(&x, 2).unwrap();
        let scaled = ((&y * 0.25).unwrap() + (y.detach() * 0.75).unwrap()).unwrap();
        projection(&scaled, 15)
    });
    assert!(result.is_err());
}
