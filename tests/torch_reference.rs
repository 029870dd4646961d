//! Shears against PyTorch, from the same weights and the same batch.
//!
//! For each built-in architecture `tests/fixtures/torch/` holds a Shears
//! checkpoint (`<arch>.model.safetensors`: weights with non-trivial BatchNorm
//! scales, shifts and running statistics, and a mask on one layer), a batch
//! (`<arch>.batch.safetensors`), and what PyTorch computed from them in
//! float64 (`<arch>.torch.safetensors`, written by `make_reference.py`): the
//! training-mode logits and loss, every parameter's gradient, the updated
//! BatchNorm running statistics, and the weights after two SGD steps
//! (momentum, Nesterov, weight decay) and after two AdamW steps, masks held.
//!
//! Regenerate (by hand, never in CI): `cargo test -p shears-tests --test
//! torch_reference -- --ignored write_inputs`, then
//! `python3 tests/fixtures/torch/make_reference.py` (needs `torch` and
//! `safetensors` from PyPI).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use shears::model::checkpoint::{self, Checkpoint};
use shears::model::{ModelSpec, Network};
use shears::train::{self, Optimizer, OptimizerSpec};

/// Relative tolerance (max difference over the tensor's max magnitude) for
/// logits, loss and running statistics computed in f32.
const F32_OUTPUT_TOL: f64 = 1e-5;
/// The same for gradients and updated weights computed in f32.
const F32_GRAD_TOL: f64 = 1e-4;
/// For everything computed in f64 (the reference is stored as f32, so this is
/// the reference's own rounding plus a margin).
const F64_TOL: f64 = 1e-6;

/// Optimisation steps the reference takes with each optimiser.
const STEPS: usize = 2;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/torch")
}

/// One built-in architecture at a small width, with its batch.
struct Case {
    name: &'static str,
    spec: ModelSpec,
    input: [usize; 3],
    /// Layer whose weight carries the mask.
    masked: &'static str,
    /// Inputs are `offset + spread * N(0, 1)`.
    offset: f32,
    spread: f32,
}

const CLASSES: usize = 10;
const BATCH: usize = 16;

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "mlp",
            spec: ModelSpec::Mlp {
                hidden: vec![32, 16],
            },
            input: [1, 8, 8],
            masked: "fc1",
            offset: 0.5,
            spread: 1.0,
        },
        Case {
            name: "lenet5",
            spec: ModelSpec::Lenet5,
            input: [1, 28, 28],
            masked: "conv2",
            offset: 0.3,
            spread: 0.5,
        },
        Case {
            name: "vgg",
            spec: ModelSpec::Vgg {
                channels: vec![8, 8, 0, 16, 0],
            },
            input: [3, 16, 16],
            masked: "conv2",
            offset: 0.5,
            spread: 1.0,
        },
        Case {
            // Inputs with a large mean next to their spread: where a one-pass
            // batch variance loses its digits.
            name: "resnet20",
            spec: ModelSpec::Resnet20 { width: 4 },
            input: [3, 16, 16],
            masked: "layer2.0.conv1",
            offset: 3.0,
            spread: 0.5,
        },
    ]
}

fn sgd() -> (OptimizerSpec, f64) {
    let spec = OptimizerSpec::Sgd {
        momentum: 0.9,
        nesterov: true,
        weight_decay: 5e-4,
    };
    (spec, 0.05)
}

fn adamw() -> (OptimizerSpec, f64) {
    let spec = OptimizerSpec::Adamw {
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 0.01,
    };
    (spec, 1e-3)
}

/// Writes the checkpoint and batch of every case (run by hand; the outputs
/// are committed).
#[test]
#[ignore = "writes the fixtures; run by hand before make_reference.py"]
fn write_inputs() {
    let d = Device::Cpu;
    std::fs::create_dir_all(dir()).unwrap();
    for (i, case) in cases().into_iter().enumerate() {
        let arch = case.spec.build(case.input, CLASSES).unwrap();
        let mut net = Network::new(arch, 100 + i as u64, &d).unwrap();
        let uniform = |t: &Tensor, lo: f32, hi: f32| Tensor::rand(lo, hi, t.dims(), &d).unwrap();
        for (name, v) in &net.params {
            if v.rank() == 1 {
                let t = if name.ends_with(".weight") {
                    uniform(v.as_tensor(), 0.5, 1.5)
                } else {
                    uniform(v.as_tensor(), -0.2, 0.2)
                };
                v.set(&t).unwrap();
            }
        }
        for (name, t) in net.buffers.iter_mut() {
            *t = if name.ends_with(".running_var") {
                uniform(t, 0.5, 1.5)
            } else {
                uniform(t, -0.3, 0.3)
            };
        }
        let w = net.weight(case.masked).unwrap().as_tensor().clone();
        let mut mask = uniform(&w, 0.0, 1.0)
            .ge(0.5)
            .unwrap()
            .to_dtype(DType::F32)
            .unwrap();
        // The first unit of the masked layer entirely pruned, its bias 0: its
        // output is exactly 0 and ReLU must stop its gradient there.
        let bias = format!("{}.bias", case.masked);
        if let Some(b) = net.params.get(&bias) {
            let keep = Tensor::ones(w.dim(0).unwrap() - 1, DType::F32, &d).unwrap();
            let unit =
                Tensor::cat(&[&Tensor::zeros(1, DType::F32, &d).unwrap(), &keep], 0).unwrap();
            let unit_w = unit
                .reshape(
                    std::iter::once(w.dim(0).unwrap())
                        .chain(std::iter::repeat_n(1, w.rank() - 1))
                        .collect::<Vec<_>>(),
                )
                .unwrap();
            mask = mask.broadcast_mul(&unit_w).unwrap();
            b.set(&(b.as_tensor() * &unit).unwrap()).unwrap();
        }
        net.masks.insert(format!("{}.weight", case.masked), mask);
        net.apply_masks().unwrap();
        let info = serde_json::json!({
            "reference": {
                "steps": STEPS,
                "sgd": { "spec": sgd().0, "lr": sgd().1 },
                "adamw": { "spec": adamw().0, "lr": adamw().1 },
            }
        });
        let model = dir().join(format!("{}.model.safetensors", case.name));
        checkpoint::save(&net, &info, &model).unwrap();
        let [c, h, w] = case.input;
        let x = ((Tensor::randn(0f32, 1.0, (BATCH, c, h, w), &d).unwrap() * case.spread as f64)
            .unwrap()
            + case.offset as f64)
            .unwrap();
        let labels: Vec<i64> = (0..BATCH as i64)
            .map(|i| (i * 7 + 3) % CLASSES as i64)
            .collect();
        let labels = Tensor::new(labels.as_slice(), &d).unwrap();
        let batch = HashMap::from([("x".to_string(), x), ("labels".to_string(), labels)]);
        candle_core::safetensors::save(
            &batch,
            dir().join(format!("{}.batch.safetensors", case.name)),
        )
        .unwrap();
    }
}

/// `max |a - b| / max |b|` (`max |a - b|` where `b` is all zero).
fn rel_diff(a: &Tensor, b: &Tensor) -> f64 {
    let a = a.to_dtype(DType::F64).unwrap().flatten_all().unwrap();
    let b = b.to_dtype(DType::F64).unwrap().flatten_all().unwrap();
    let diff = (&a - &b).unwrap().abs().unwrap().max(0).unwrap();
    let scale = b.abs().unwrap().max(0).unwrap().to_scalar::<f64>().unwrap();
    diff.to_scalar::<f64>().unwrap() / if scale > 0.0 { scale } else { 1.0 }
}

/// Everything one case compares.
struct Fixture {
    net: Network,
    x: Tensor,
    labels: Tensor,
    torch: HashMap<String, Tensor>,
}

impl Fixture {
    fn load(name: &str) -> Self {
        let d = Device::Cpu;
        let ckpt = Checkpoint::read(&dir().join(format!("{name}.model.safetensors"))).unwrap();
        let net = ckpt.into_network(&d).unwrap();
        let batch =
            candle_core::safetensors::load(dir().join(format!("{name}.batch.safetensors")), &d)
                .unwrap();
        let torch =
            candle_core::safetensors::load(dir().join(format!("{name}.torch.safetensors")), &d)
                .unwrap();
        Self {
            net,
            x: batch["x"].clone(),
            labels: batch["labels"].to_dtype(DType::U32).unwrap(),
            torch,
        }
    }

    fn expected(&self, key: &str) -> &Tensor {
        self.torch
            .get(key)
            .unwrap_or_else(|| panic!("the PyTorch fixture has no `{key}`"))
    }
}

/// The differences of one case in `dtype`, by quantity; each is checked
/// against its tolerance by the caller.
struct Report {
    diffs: BTreeMap<String, f64>,
    /// Per parameter: the norm of Shears's gradient over PyTorch's.
    grad_norm_ratios: BTreeMap<String, f64>,
    /// Per quantity: how far PyTorch's own f32 result is from its f64 one.
    torch_f32_error: BTreeMap<String, f64>,
}

/// How many times PyTorch's own f32 error Shears's f32 result may be off,
/// where that exceeds the fixed tolerance.
const TORCH_F32_ERROR_FACTOR: f64 = 4.0;

impl Report {
    /// Fails on any quantity off by more than its tolerance: `output_tol` for
    /// logits, loss and running statistics, `grad_tol` for gradients and
    /// updated weights, or with `as_torch_f32` at most
    /// [`TORCH_F32_ERROR_FACTOR`] times PyTorch's own f32 error where larger.
    fn check(&self, what: &str, output_tol: f64, grad_tol: f64, as_torch_f32: bool) {
        let mut failures = Vec::new();
        for (k, &d) in &self.diffs {
            let fixed =
                if k.starts_with("grad.") || k.starts_with("sgd.") || k.starts_with("adamw.") {
                    grad_tol
                } else {
                    output_tol
                };
            let torch = if as_torch_f32 {
                TORCH_F32_ERROR_FACTOR * self.torch_f32_error.get(k).copied().unwrap_or(0.0)
            } else {
                0.0
            };
            let tol = fixed.max(torch);
            if d.is_nan() || d > tol {
                failures.push(format!("{k}: {d:.3e} > {tol:.0e}"));
            }
        }
        assert!(
            failures.is_empty(),
            "{what} differs from PyTorch:\n  {}",
            failures.join("\n  ")
        );
    }
}

/// Which backward pass a comparison runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backward {
    /// The network's own (`Network::train_pass`, the CPU's `f32` training).
    Own,
    /// Candle's autograd (other devices, `f64`).
    Autograd,
}

/// The logits, loss and gradients by parameter of one training-mode pass.
fn training_pass(
    net: &mut shears::model::Network,
    x: &Tensor,
    labels: &Tensor,
    backward: Backward,
) -> (Tensor, Tensor, BTreeMap<String, Tensor>) {
    if backward == Backward::Own {
        let pass = net
            .train_pass(x, labels)
            .unwrap()
            .expect("the own pass runs f32 on the CPU");
        let loss = Tensor::new(&[pass.loss], x.device()).unwrap();
        return (pass.logits, loss, pass.grads);
    }
    let logits = net.forward(x, true).unwrap();
    let loss = train::loss(&logits, labels).unwrap();
    let grads = loss.backward().unwrap();
    let grads = net
        .params
        .iter()
        .map(|(k, v)| {
            let g = grads
                .get(v.as_tensor())
                .unwrap_or_else(|| panic!("no gradient for `{k}`"));
            (k.clone(), g.clone())
        })
        .collect();
    (logits, loss.reshape(1).unwrap(), grads)
}

fn compare(name: &str, dtype: DType, backward: Backward) -> Report {
    let fx = Fixture::load(name);
    let x = fx.x.to_dtype(dtype).unwrap();
    let mut diffs = BTreeMap::new();

    let mut net = fx.net.to_dtype(dtype).unwrap();
    let (logits, loss, grads) = training_pass(&mut net, &x, &fx.labels, backward);
    diffs.insert("logits".into(), rel_diff(&logits, fx.expected("logits")));
    diffs.insert("loss".into(), rel_diff(&loss, fx.expected("loss")));
    let mut grad_norm_ratios = BTreeMap::new();
    let norm = |t: &Tensor| {
        let t = t.to_dtype(DType::F64).unwrap();
        t.sqr()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f64>()
            .unwrap()
            .sqrt()
    };
    for (k, g) in &grads {
        let expected = fx.expected(&format!("grad.{k}"));
        diffs.insert(format!("grad.{k}"), rel_diff(g, expected));
        grad_norm_ratios.insert(k.clone(), norm(g) / norm(expected));
    }
    for (k, t) in &net.buffers {
        diffs.insert(
            format!("running.{k}"),
            rel_diff(t, fx.expected(&format!("running.{k}"))),
        );
    }

    // Training steps take the own pass in f32 on the CPU, autograd in f64.
    let steps = match backward {
        Backward::Own => dtype == DType::F32,
        Backward::Autograd => dtype != DType::F32,
    };
    let optimisers = if steps {
        vec![("sgd", sgd()), ("adamw", adamw())]
    } else {
        Vec::new()
    };
    for (tag, (spec, lr)) in optimisers {
        let mut net = fx.net.to_dtype(dtype).unwrap();
        let mut opt = Optimizer::new(spec);
        for _ in 0..STEPS {
            train::train_step(&mut net, &mut opt, &x, &fx.labels, lr).unwrap();
        }
        for (k, v) in &net.params {
            let expected = fx.expected(&format!("{tag}.{k}"));
            diffs.insert(format!("{tag}.{k}"), rel_diff(v.as_tensor(), expected));
        }
    }
    let torch_f32_error = fx
        .torch
        .iter()
        .filter_map(|(k, t)| {
            let key = k.strip_prefix("torch_f32_error.")?;
            Some((key.to_string(), t.to_vec1::<f32>().unwrap()[0] as f64))
        })
        .collect();
    Report {
        diffs,
        grad_norm_ratios,
        torch_f32_error,
    }
}

fn check_case(name: &str) {
    compare(name, DType::F32, Backward::Own).check(
        &format!("{name} (f32, own backward pass)"),
        F32_OUTPUT_TOL,
        F32_GRAD_TOL,
        true,
    );
    compare(name, DType::F32, Backward::Autograd).check(
        &format!("{name} (f32, Candle's autograd)"),
        F32_OUTPUT_TOL,
        F32_GRAD_TOL,
        true,
    );
    compare(name, DType::F64, Backward::Autograd).check(
        &format!("{name} (f64)"),
        F64_TOL,
        F64_TOL,
        false,
    );
}

#[test]
fn mlp_matches_pytorch() {
    check_case("mlp");
}

#[test]
fn lenet5_matches_pytorch() {
    check_case("lenet5");
}

#[test]
fn vgg_matches_pytorch() {
    check_case("vgg");
}

#[test]
fn resnet20_matches_pytorch() {
    check_case("resnet20");
}

#[test]
fn every_case_has_committed_fixtures() {
    for case in cases() {
        for kind in ["model", "batch", "torch"] {
            let p = dir().join(format!("{}.{kind}.safetensors", case.name));
            assert!(p.is_file(), "{} is missing", p.display());
        }
    }
}

/// Prints the per-tensor differences (`-- --ignored --nocapture print_differences`),
/// as the note on the correctness fix quotes them.
#[test]
#[ignore = "prints a report"]
fn print_differences() {
    for case in cases() {
        for (dtype, backward) in [
            (DType::F32, Backward::Own),
            (DType::F32, Backward::Autograd),
            (DType::F64, Backward::Autograd),
        ] {
            let report = compare(case.name, dtype, backward);
            for (k, d) in &report.diffs {
                let torch = report.torch_f32_error.get(k).copied().unwrap_or(f64::NAN);
                println!(
                    "{} {dtype:?} {backward:?} {k} {d:.3e} (torch f32 {torch:.3e})",
                    case.name
                );
            }
            for (k, r) in report.grad_norm_ratios {
                println!("{} {dtype:?} {backward:?} norm-ratio.{k} {r:.4}", case.name);
            }
        }
    }
}
