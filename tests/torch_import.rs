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
use shears_tests::{flat, rel_err, torch_io};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/torchvision")
}

fn manifest() -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir().join("manifest.json")).unwrap()).unwrap()
}

fn io(name: &str) -> (Tensor, Tensor) {
    torch_io(&format!("{name}.io.safetensors"))
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
        ..ImportOptions::default()
    }
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
        ..ImportOptions::default()
    };
    let e = import::open(&path, &opts, [1, 8, 8], &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(e.contains("import.std"), "{e}");
}

/// Structured pruning of torchvision models: channels inside residual
/// blocks and VGG's convs and hidden linears go; channels tied by a
/// residual addition stay. The compacted model computes what the masked one
/// does, and its state dict keeps torchvision's names with the new widths.
#[test]
fn torchvision_models_prune_channels_compact_and_export_their_new_shapes() {
    use shears::model::export::{self, ExportFormat};
    use shears::prune::{compact, prune_to, GranularityChoice, PruneMode, Scope};
    let registry = shears::plugins::Registry::builtin();
    let m = manifest();
    for name in ["resnet18", "resnet50", "vgg16_bn"] {
        let path = dir().join(format!("{name}.safetensors"));
        let mut net = import::open(&path, &options(&m[name]), [3, 32, 32], &Device::Cpu)
            .unwrap()
            .net;
        let mut criterion = registry
            .criterion("magnitude", &serde_json::json!({}))
            .unwrap();
        let mode = PruneMode {
            granularity: GranularityChoice::Structured,
            scope: Scope::Layer,
        };
        prune_to(
            &mut net,
            criterion.as_mut(),
            "magnitude",
            mode,
            0.5,
            Default::default(),
        )
        .unwrap();
        let (x, _) = io(name);
        let masked = net.forward(&x, false).unwrap();
        let mut small = compact(&net).unwrap();
        assert!(small.arch.num_params() < net.arch.num_params(), "{name}");
        let out = small.forward(&x, false).unwrap();
        let err = rel_err(&flat(&out), &flat(&masked));
        assert!(err < 1e-4, "{name}: compacted logits differ by {err}");
        let file = tempfile::tempdir().unwrap();
        let saved = file.path().join("small.safetensors");
        export::save_state_dict(&small, ExportFormat::Safetensors, &saved).unwrap();
        let back = shears::model::import::StateDict::read(&saved).unwrap();
        let original = shears::model::import::StateDict::read(&path).unwrap();
        assert_eq!(
            back.tensors.keys().collect::<Vec<_>>(),
            original.tensors.keys().collect::<Vec<_>>(),
            "{name}: the same names"
        );
        let shape = |sd: &shears::model::import::StateDict, k: &str| sd.shape(k).unwrap().to_vec();
        if name.starts_with("resnet") {
            // Inside a block: fewer channels. On the residual stream: all of them.
            assert!(
                shape(&back, "layer1.0.conv1.weight")[0]
                    < shape(&original, "layer1.0.conv1.weight")[0]
            );
            let last = if name == "resnet50" { "conv3" } else { "conv2" };
            let key = format!("layer1.0.{last}.weight");
            assert_eq!(
                shape(&back, &key)[0],
                shape(&original, &key)[0],
                "{name}: the outputs of {key} are tied"
            );
            assert_eq!(
                shape(&back, "conv1.weight"),
                shape(&original, "conv1.weight")
            );
        } else {
            assert!(
                shape(&back, "features.0.weight")[0] < shape(&original, "features.0.weight")[0]
            );
            assert!(
                shape(&back, "classifier.0.weight")[0] < shape(&original, "classifier.0.weight")[0]
            );
        }
        let bytes = std::fs::read(&saved).unwrap();
        let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
        let widths: serde_json::Value =
            serde_json::from_str(&meta.metadata().as_ref().unwrap()[export::WIDTHS_KEY]).unwrap();
        assert_eq!(
            widths["layer1.0.conv1"]
                .as_u64()
                .or(widths["features.0"].as_u64()),
            Some(
                shape(
                    &back,
                    if name.starts_with("resnet") {
                        "layer1.0.conv1.weight"
                    } else {
                        "features.0.weight"
                    }
                )[0] as u64
            )
        );
    }
}
