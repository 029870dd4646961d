//! PyTorch models opened in Shears compute PyTorch's logits.
//!
//! `tests/fixtures/torchvision/` holds, for torchvision ResNet-18/34/50 and
//! VGG-11 / VGG-16-BN at reduced widths and two `nn.Sequential` models, the
//! state dict as `torch.save` and as safetensors, an input batch and the
//! logits PyTorch's `model.eval()` gave on it (made by `make_models.py` there).
//! Each must come out of `shears::model::import::open` within 1e-4 relative.

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use serde_json::Value;
use shears::model::import::{self, ImportOptions};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/torchvision")
}

fn manifest() -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir().join("manifest.json")).unwrap()).unwrap()
}

fn io(name: &str) -> (Tensor, Tensor) {
    let t =
        candle_core::safetensors::load(dir().join(format!("{name}.io.safetensors")), &Device::Cpu)
            .unwrap();
    (t["input"].clone(), t["logits"].clone())
}

fn flat(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

fn input_of(m: &Value) -> [usize; 3] {
    let v: Vec<usize> = serde_json::from_value(m["input"].clone()).unwrap();
    [v[0], v[1], v[2]]
}

fn options(m: &Value) -> ImportOptions {
    ImportOptions {
        layers: m["spec"].as_str().map(str::to_string),
        mean: Some(vec![0.0]),
        std: Some(vec![1.0]),
    }
}

/// Largest |a - b| relative to the largest |b|.
fn rel_err(a: &[f32], b: &[f32]) -> f32 {
    let scale = b.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-12);
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs())) / scale
}

#[test]
fn every_family_and_format_gives_pytorchs_logits() {
    let manifest = manifest();
    let models = manifest.as_object().unwrap();
    assert!(models.len() >= 7);
    for (name, m) in models {
        let (x, want) = io(name);
        for ext in ["pth", "safetensors"] {
            let path = dir().join(format!("{name}.{ext}"));
            let mut opened = import::open(&path, &options(m), input_of(m), &Device::Cpu)
                .unwrap_or_else(|e| panic!("{name}.{ext}: {e}"));
            let got = opened.net.forward(&x, false).unwrap();
            assert_eq!(got.dims(), want.dims(), "{name}.{ext}");
            let err = rel_err(&flat(&got), &flat(&want));
            assert!(
                err < 1e-4,
                "{name}.{ext}: logits differ by {err} (relative)"
            );
        }
    }
}

#[test]
fn recognised_names_say_the_depth() {
    let m = manifest();
    for (name, want) in [
        ("resnet18", "resnet18"),
        ("resnet34", "resnet34"),
        ("resnet50", "resnet50"),
        ("vgg11", "vgg11"),
        ("vgg16_bn", "vgg16_bn"),
    ] {
        let path = dir().join(format!("{name}.safetensors"));
        let o = import::open(
            &path,
            &ImportOptions::default(),
            input_of(&m[name]),
            &Device::Cpu,
        )
        .unwrap();
        assert_eq!(o.name, want);
        assert!(
            o.notes.iter().any(|n| n.contains("fitted")),
            "{:?}",
            o.notes
        );
    }
}

#[test]
fn a_training_checkpoint_opens_through_its_state_dict_entry() {
    let m = manifest();
    let path = dir().join("resnet18.ckpt.pth");
    let mut o = import::open(&path, &options(&m["resnet18"]), [3, 32, 32], &Device::Cpu).unwrap();
    assert!(
        o.notes.iter().any(|n| n.contains("state_dict")),
        "{:?}",
        o.notes
    );
    let (x, want) = io("resnet18");
    let got = o.net.forward(&x, false).unwrap();
    assert!(rel_err(&flat(&got), &flat(&want)) < 1e-4);
}

#[test]
fn a_sequential_without_or_with_a_wrong_spec_is_told_what_to_give() {
    let path = dir().join("cnn.pth");
    let e = import::open(&path, &ImportOptions::default(), [1, 12, 12], &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(e.contains("cnn.pth") && e.contains("--layers"), "{e}");
    for (spec, says) in [
        // BatchNorm missing: item 1 holds tensors
        (
            "conv(p=1), relu, relu, maxpool(2), conv, relu, maxpool(2), flatten, linear",
            "item 1",
        ),
        // a pool too many: the linear no longer fits
        (
            "conv(p=1), bn, relu, maxpool(2), conv, relu, maxpool(2), flatten, linear, maxpool(2)",
            "do not fit",
        ),
        // no padding: the linear gets the wrong number of features
        (
            "conv, bn, relu, maxpool(2), conv, relu, maxpool(2), flatten, linear",
            "do not fit",
        ),
        ("conv(p=1), bn, relu, pool, conv", "item 3"),
    ] {
        let opts = ImportOptions {
            layers: Some(spec.into()),
            ..Default::default()
        };
        let e = import::open(&path, &opts, [1, 12, 12], &Device::Cpu)
            .unwrap_err()
            .to_string();
        assert!(e.contains(says), "{spec}: {e}");
    }
}

#[test]
fn half_a_normalisation_is_refused() {
    let path = dir().join("mlp.pth");
    let opts = ImportOptions {
        layers: Some("flatten, linear, relu, linear".into()),
        mean: Some(vec![0.5]),
        std: None,
    };
    let e = import::open(&path, &opts, [1, 8, 8], &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(e.contains("import.std"), "{e}");
}
