//! Every model family opens from both ONNX exporters and computes
//! PyTorch's function. The fixtures in `fixtures/families/` were made by
//! `make_families.py` there (torchvision and timm models at reduced widths,
//! random weights and norm statistics): an export by the TorchScript
//! exporter (opset 17, BatchNorm kept, a free batch), one by the dynamo
//! exporter (opset 20, BatchNorm folded, external data, the batch fixed at
//! 1), and PyTorch's float64 numbers on a batch of four.
//!
//! Checked: evaluation logits from both files; from the TorchScript file,
//! a training step's logits, loss and every parameter's gradient, by
//! Shears's own pass in `f32` and by Candle's in `f64`, with every
//! parameter named as in PyTorch's state dict.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use shears::model::import::{self, ImportOptions};
use shears_tests::{flat, rel_err};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/families")
}

fn families() -> Vec<String> {
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir().join("manifest.json")).unwrap())
            .unwrap();
    m.as_object().unwrap().keys().cloned().collect()
}

fn reference(name: &str) -> BTreeMap<String, Tensor> {
    let p = dir().join(format!("{name}.ref.safetensors"));
    candle_core::safetensors::load(&p, &Device::Cpu)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .into_iter()
        .collect()
}

fn open(file: &str) -> shears::model::import::Opened {
    let path = dir().join(file);
    import::open(&path, &ImportOptions::default(), [3, 32, 32], &Device::Cpu)
        .unwrap_or_else(|e| panic!("{file}: {e}"))
}

#[test]
fn both_exports_of_every_family_give_pytorchs_logits() {
    let mut failures = Vec::new();
    for name in families() {
        let r = reference(&name);
        for kind in ["ts", "dynamo"] {
            let file = format!("{name}.{kind}.onnx");
            let path = dir().join(&file);
            let opened = import::open(&path, &ImportOptions::default(), [3, 32, 32], &Device::Cpu);
            let mut o = match opened {
                Ok(o) => o,
                Err(e) => {
                    failures.push(format!("{file}: {e}"));
                    continue;
                }
            };
            let got = match o.net.forward(&r["x"], false) {
                Ok(g) => g,
                Err(e) => {
                    failures.push(format!("{file}: forward: {e}"));
                    continue;
                }
            };
            let err = rel_err(&flat(&got), &flat(&r["eval.logits"]));
            if err.is_nan() || err >= 1e-4 {
                failures.push(format!("{file}: logits differ by {err} (relative)"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_training_step_on_every_family_gives_pytorchs_gradients() {
    let mut failures = Vec::new();
    for name in families() {
        let r = reference(&name);
        let mut o = open(&format!("{name}.ts.onnx"));
        let labels = r["labels"].to_dtype(DType::U32).unwrap();
        // Shears's own pass, f32.
        let pass = o.net.train_pass(&r["x"], &labels).unwrap().unwrap();
        // A fixed tolerance, or four times PyTorch's own f32 error where
        // that is larger (as tests/torch_reference.rs).
        let torch_err = |key: &str| {
            r.get(&format!("torch_f32_error.{key}"))
                .map_or(0.0, |t| flat(t)[0])
        };
        // Errors are relative to the largest value, or to a thousandth of
        // the largest gradient of the model where a parameter's gradient is
        // (mathematically) nearly zero: a BatchNorm shift followed by a
        // linear map and a training-mode BatchNorm has gradient zero, and
        // both sides compute rounding noise there.
        let floor = r
            .iter()
            .filter(|(k, _)| k.starts_with("grad."))
            .map(|(_, t)| flat(t).iter().fold(0f32, |m, v| m.max(v.abs())))
            .fold(0f32, f32::max)
            * 1e-3;
        let mut check = |what: &str, got: &[f32], want: &[f32], tol: f32| {
            let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
            let err = rel_err(got, want) * scale.max(1e-12) / scale.max(floor).max(1e-12);
            if err.is_nan() || err > tol {
                failures.push(format!("{name} {what}: differs by {err} (relative)"));
            }
        };
        let f32_tol = |key: &str, fixed: f32| fixed.max(4.0 * torch_err(key));
        check(
            "f32 logits",
            &flat(&pass.logits),
            &flat(&r["train.logits"]),
            f32_tol("train.logits", 1e-4),
        );
        check(
            "f32 loss",
            &[pass.loss],
            &flat(&r["train.loss"]),
            f32_tol("train.loss", 1e-5),
        );
        let aliases = o.net.graph().aliases.clone();
        let torch_name = |p: &str| aliases.get(p).cloned().unwrap_or_else(|| p.to_string());
        let mut unknown = Vec::new();
        for (p, g) in &pass.grads {
            let key = format!("grad.{}", torch_name(p));
            match r.get(&key) {
                Some(want) => check(
                    &format!("f32 {key}"),
                    &flat(g),
                    &flat(want),
                    f32_tol(&key, 2e-3),
                ),
                None => unknown.push(format!("{name}: PyTorch has no parameter `{p}`")),
            }
        }
        // Candle's pass, f64.
        let mut net = o.net.to_dtype(DType::F64).unwrap();
        let x = r["x"].to_dtype(DType::F64).unwrap();
        let logits = net.forward(&x, true).unwrap();
        let loss = candle_nn::loss::cross_entropy(&logits, &labels).unwrap();
        let grads = loss.backward().unwrap();
        let f = |t: &Tensor| flat(&t.to_dtype(DType::F32).unwrap());
        check("f64 logits", &f(&logits), &flat(&r["train.logits"]), 1e-6);
        for (p, v) in &net.params {
            // A name PyTorch lacks was reported above.
            let Some(want) = r.get(&format!("grad.{}", torch_name(p))) else {
                continue;
            };
            let got = grads.get(v.as_tensor()).map(f).unwrap_or_default();
            check(&format!("f64 grad {p}"), &got, &flat(want), 1e-5);
        }
        failures.extend(unknown);
        // Every PyTorch parameter is trained in Shears too.
        for k in r.keys().filter_map(|k| k.strip_prefix("grad.")) {
            if !pass.grads.keys().any(|p| torch_name(p) == k) {
                failures.push(format!("{name}: `{k}` gets no gradient in Shears"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// What Shears writes of a model opened from the TorchScript export: a
/// state dict with PyTorch's names and shapes (`load_state_dict(strict)`
/// needs exactly those), and an ONNX file that reads back to the same
/// logits.
#[test]
fn every_family_exports_its_state_dict_and_onnx_back() {
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir().join("manifest.json")).unwrap())
            .unwrap();
    let out = tempfile::tempdir().unwrap();
    for name in families() {
        let r = reference(&name);
        let mut o = open(&format!("{name}.ts.onnx"));
        let sd = shears::model::export::state_dict(&o.net).unwrap();
        let got: Vec<(String, Vec<usize>)> = sd
            .iter()
            .map(|(k, t)| (k.clone(), t.dims().to_vec()))
            .collect();
        let want: Vec<(String, Vec<usize>)> = manifest[&name]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                let dims = e[1].as_array().unwrap();
                (
                    e[0].as_str().unwrap().to_string(),
                    dims.iter().map(|d| d.as_u64().unwrap() as usize).collect(),
                )
            })
            .collect();
        let sorted = |mut v: Vec<(String, Vec<usize>)>| {
            v.sort();
            v
        };
        assert_eq!(sorted(got), sorted(want.clone()), "{name}: state dict");
        // The dynamo exporter stores some weights transposed under made-up
        // names (`val_12`); its FX node names them, and a model without
        // BatchNorm (folded there) writes back PyTorch's names too, but for
        // the class token: the exporter folds `class_token.expand(...)`
        // into a constant named `expand`, whose source no node names.
        if name.starts_with("vit") {
            let d = open(&format!("{name}.dynamo.onnx"));
            let sd = shears::model::export::state_dict(&d.net).unwrap();
            let token = |k: &str| k == "expand" || k.ends_with("class_token") || k == "cls_token";
            let got: Vec<(String, Vec<usize>)> = sd
                .iter()
                .map(|(k, t)| (k.clone(), t.dims().to_vec()))
                .filter(|(k, _)| !token(k))
                .collect();
            let want: Vec<_> = want.into_iter().filter(|(k, _)| !token(k)).collect();
            assert_eq!(sorted(got), sorted(want), "{name}: dynamo's state dict");
        }
        let path = out.path().join(format!("{name}.onnx"));
        shears::model::onnx::save(&o.net, &path).unwrap();
        let mut back = import::open(&path, &ImportOptions::default(), [3, 32, 32], &Device::Cpu)
            .unwrap_or_else(|e| panic!("{name}: the written ONNX: {e}"));
        let (a, b) = (
            o.net.forward(&r["x"], false).unwrap(),
            back.net.forward(&r["x"], false).unwrap(),
        );
        let err = rel_err(&flat(&b), &flat(&a));
        assert!(err < 1e-5, "{name}: written ONNX gives logits off by {err}");
    }
}

/// Writes Shears's ONNX export of every family to `$SHEARS_EXPORT_DIR`, for
/// `fixtures/families/check_onnxruntime.py` (run by hand: it needs Python):
///
/// ```sh
/// SHEARS_EXPORT_DIR=/tmp/exports cargo test -p shears-tests --test families -- --ignored write_exports
/// python3 tests/fixtures/families/check_onnxruntime.py /tmp/exports
/// ```
#[test]
#[ignore]
fn write_exports() {
    let out = PathBuf::from(std::env::var("SHEARS_EXPORT_DIR").expect("SHEARS_EXPORT_DIR"));
    std::fs::create_dir_all(&out).unwrap();
    for name in families() {
        for kind in ["ts", "dynamo"] {
            let o = open(&format!("{name}.{kind}.onnx"));
            shears::model::onnx::save(&o.net, &out.join(format!("{name}.{kind}.onnx"))).unwrap();
        }
    }
}

/// The built-in architectures are torchvision's and timm's models: each
/// fixture's state dict, loaded into the built-in of the same widths,
/// gives PyTorch's logits (names, shapes and function all agree).
#[test]
fn built_in_families_compute_torchvision_and_timms_function() {
    use shears::model::{ModelSpec, Network};
    let cases = [
        (
            "resnet18_cifar",
            ModelSpec::Resnet {
                depth: 18,
                width: 8,
            },
        ),
        ("mobilenet_v2", ModelSpec::Mobilenetv2 { width: 25 }),
        (
            "efficientnet_b0",
            ModelSpec::EfficientnetB0 {
                width: 25,
                depth: 25,
            },
        ),
        (
            "vit_timm",
            ModelSpec::Vit {
                patch: 8,
                dim: 32,
                depth: 2,
                heads: 2,
            },
        ),
    ];
    for (name, spec) in cases {
        let mut arch = spec.build([3, 32, 32], 10).unwrap();
        // Dropout and stochastic depth off, as in PyTorch's training step.
        for n in &mut arch.graph.as_mut().unwrap().nodes {
            if let shears::model::graph::Op::Dropout { p }
            | shears::model::graph::Op::DropPath { p } = &mut n.op
            {
                *p = 0.0;
            }
        }
        let path = dir().join(format!("{name}.safetensors"));
        let tensors: BTreeMap<String, Tensor> = candle_core::safetensors::load(&path, &Device::Cpu)
            .unwrap()
            .into_iter()
            .filter(|(k, _)| !k.ends_with("num_batches_tracked"))
            .collect();
        let mut net = Network::from_tensors(arch, tensors, BTreeMap::new(), &Device::Cpu)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let r = reference(name);
        let got = net.forward(&r["x"], false).unwrap();
        let err = rel_err(&flat(&got), &flat(&r["eval.logits"]));
        assert!(err < 1e-4, "{name}: built-in logits off by {err}");
        // And it trains: a training step's gradients are PyTorch's.
        let labels = r["labels"].to_dtype(DType::U32).unwrap();
        let pass = net.train_pass(&r["x"], &labels).unwrap().unwrap();
        for (p, g) in &pass.grads {
            let want = &r[&format!("grad.{p}")];
            let tol = 2e-3f32.max(4.0 * flat(&r[&format!("torch_f32_error.grad.{p}")])[0]);
            let scale = flat(want)
                .iter()
                .fold(0f32, |m, v| m.max(v.abs()))
                .max(1e-6);
            let err = rel_err(&flat(g), &flat(want))
                * flat(want).iter().fold(0f32, |m, v| m.max(v.abs()))
                / scale;
            assert!(err <= tol, "{name}: gradient of {p} off by {err}");
        }
    }
}

/// torchvision's MobileNetV2 and EfficientNet and timm's ViT open from
/// their state dicts (names and shapes recognised, multipliers found) and
/// compute PyTorch's function; the ResNets did before.
#[test]
fn state_dicts_of_the_graph_families_open_by_their_names() {
    for (name, says, heads) in [
        ("mobilenet_v2", "width multiplier 0.25", None),
        ("efficientnet_b0", "depth multiplier 0.25", None),
        ("vit_timm", "2 blocks", Some(2)),
        ("resnet18_cifar", "", None),
        ("vit_torchvision", "MLP 64", Some(2)),
    ] {
        let opts = ImportOptions {
            heads,
            ..Default::default()
        };
        let path = dir().join(format!("{name}.safetensors"));
        let o = import::open(&path, &opts, [3, 32, 32], &Device::Cpu).unwrap();
        assert!(
            o.notes.iter().any(|n| n.contains(says)),
            "{name}: {:?}",
            o.notes
        );
        let mut net = o.net;
        let r = reference(name);
        let got = net.forward(&r["x"], false).unwrap();
        let err = rel_err(&flat(&got), &flat(&r["eval.logits"]));
        assert!(err < 1e-4, "{name}: logits off by {err}");
        // Written back, the state dict has the file's names and shapes.
        let sd = shears::model::export::state_dict(&net).unwrap();
        let original = shears::model::import::StateDict::read(&path).unwrap();
        let mut got: Vec<(String, Vec<usize>)> = sd
            .iter()
            .filter(|(k, _)| !k.ends_with("num_batches_tracked"))
            .map(|(k, t)| (k.clone(), t.dims().to_vec()))
            .collect();
        let mut want: Vec<(String, Vec<usize>)> = original
            .tensors
            .iter()
            .map(|(k, t)| (k.clone(), t.dims().to_vec()))
            .collect();
        got.sort();
        want.sort();
        assert_eq!(got, want, "{name}: names and shapes written back");
    }
    // A ViT's heads are asked for where the names cannot tell them: by
    // default width / 64 (1 here), said in a note, and with the wrong
    // number the function differs.
    let mut o = open("vit_timm.safetensors");
    assert!(o
        .notes
        .iter()
        .any(|n| n.contains("1 attention heads assumed") && n.contains("--heads")));
    let r = reference("vit_timm");
    let got = o.net.forward(&r["x"], false).unwrap();
    assert!(rel_err(&flat(&got), &flat(&r["eval.logits"])) > 1e-3);
    // A layout none of them has is refused by name.
    let e = import::open(
        &dir().join("efficientnet_v2.safetensors"),
        &ImportOptions::default(),
        [3, 32, 32],
        &Device::Cpu,
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("EfficientNet") && e.contains("efficientnet_v2.safetensors"),
        "{e}"
    );
}
