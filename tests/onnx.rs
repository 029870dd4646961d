//! ONNX in and out. The fixtures in `fixtures/torchvision/` were exported by
//! `make_models.py` with `torch.onnx.export` (ResNet-18 with BatchNorm kept
//! and folded, an nn.Sequential CNN, average pools both ways) or written with
//! `onnx.helper` (MatMul + Add), each with an input batch and PyTorch's
//! logits; Shears must compute them within 1e-4 relative.

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use shears::model::import::{self, ImportOptions, ModelFormat};
use shears_tests::{flat, rel_err, torch_io};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/torchvision")
}

fn io(name: &str) -> (Tensor, Tensor) {
    torch_io(&format!("{name}.onnx.io.safetensors"))
}

fn shape_of(x: &Tensor) -> [usize; 3] {
    let d = x.dims();
    [d[1], d[2], d[3]]
}

fn open(path: &Path, x: &Tensor) -> shears::model::import::Opened {
    import::open(path, &ImportOptions::default(), shape_of(x), &Device::Cpu)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn onnx_exports_of_pytorch_models_give_pytorchs_logits() {
    for name in ["resnet18", "resnet18_folded", "cnn", "pool", "matmul"] {
        let (x, want) = io(name);
        let mut o = open(&dir().join(format!("{name}.onnx")), &x);
        assert_eq!(o.format, ModelFormat::Onnx);
        let got = o.net.forward(&x, false).unwrap();
        assert_eq!(got.dims(), want.dims(), "{name}");
        let err = rel_err(&flat(&got), &flat(&want));
        assert!(err < 1e-4, "{name}: logits differ by {err} (relative)");
    }
}

#[test]
fn an_export_with_batchnorm_kept_keeps_pytorchs_names() {
    let (x, _) = io("resnet18");
    let o = open(&dir().join("resnet18.onnx"), &x);
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir().join("manifest.json")).unwrap())
            .unwrap();
    let mut want: Vec<String> = manifest["resnet18"]["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t[0].as_str().unwrap().to_string())
        .filter(|n| !n.ends_with("num_batches_tracked"))
        .collect();
    want.sort();
    let mut got: Vec<String> = o
        .net
        .params
        .keys()
        .chain(o.net.buffers.keys())
        .cloned()
        .collect();
    got.sort();
    assert_eq!(got, want);
    assert!(
        o.notes.iter().all(|n| !n.contains("folded")),
        "{:?}",
        o.notes
    );
    // The Model view's rows: the residual branches indented, their adds at
    // the top level, parameters and MACs adding up.
    let rows = shears::report::layers::layer_rows(&o.net.arch);
    let row = |name: &str| rows.iter().find(|r| r.name == name).unwrap();
    assert_eq!(row("layer1.0.conv1").depth, 1, "{rows:#?}");
    assert_eq!(row("layer2.0.downsample.0").depth, 1);
    assert_eq!(row("conv1").depth, 0);
    assert!(rows.iter().any(|r| r.kind == "add" && r.depth == 0));
    assert_eq!(
        row("fc").prunable,
        shears::report::layers::Prunable::Classifier
    );
    let params: usize = rows.iter().map(|r| r.params).sum();
    assert_eq!(params, o.net.arch.num_params());
    let macs: usize = rows.iter().map(|r| r.macs).sum();
    assert_eq!(macs, o.net.arch.macs());
}

#[test]
fn a_folded_batchnorm_export_says_so_and_how_to_keep_it() {
    let (x, _) = io("resnet18_folded");
    let o = open(&dir().join("resnet18_folded.onnx"), &x);
    let note = o
        .notes
        .iter()
        .find(|n| n.contains("folded"))
        .expect("a note");
    assert!(
        note.contains("TrainingMode.TRAINING") && note.contains("do_constant_folding=False"),
        "{note}"
    );
    assert!(
        o.net.arch.layers().iter().any(|l| l.name == "conv1"),
        "generated names count from the input"
    );
}

#[test]
fn an_unsupported_op_is_named_with_what_is_supported() {
    // `sigmoid.onnx` with its Sigmoid renamed to an op Shears lacks.
    use prost::Message;
    use shears::model::onnx::proto::ModelProto;
    let mut m =
        ModelProto::decode(&std::fs::read(dir().join("sigmoid.onnx")).unwrap()[..]).unwrap();
    let g = m.graph.as_mut().unwrap();
    let node = g.node.iter_mut().find(|n| n.op_type == "Sigmoid").unwrap();
    node.op_type = "Softplus".into();
    let junk = tempfile::tempdir().unwrap();
    let path = junk.path().join("softplus.onnx");
    std::fs::write(&path, m.encode_to_vec()).unwrap();
    let e = import::open(&path, &ImportOptions::default(), [1, 2, 2], &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("softplus.onnx")
            && e.contains("op Softplus")
            && e.contains("Shears imports Conv"),
        "{e}"
    );
    // The op itself imports now.
    import::open(
        &dir().join("sigmoid.onnx"),
        &ImportOptions::default(),
        [1, 2, 2],
        &Device::Cpu,
    )
    .unwrap();
    let bad = junk.path().join("bad.onnx");
    std::fs::write(&bad, b"\xff\xff\xff not protobuf").unwrap();
    let e = import::open(&bad, &ImportOptions::default(), [1, 2, 2], &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(e.contains("bad.onnx") && e.contains("ONNX"), "{e}");
}

/// Shears writes ONNX that reads back to the same function, with the
/// parameters under their state-dict names.
#[test]
fn models_written_as_onnx_read_back_to_the_same_logits() {
    let dir_out = tempfile::tempdir().unwrap();
    for (file, io_name) in [
        ("resnet18.pth", "resnet18"),
        ("vgg16_bn.pth", "vgg16_bn"),
        ("pool.onnx", "pool"),
        ("cnn.onnx", "cnn"),
    ] {
        // VGG's 1x1 -> 7x7 adaptive pool is written as two MatMuls.
        let (x, _) = if io_name == "vgg16_bn" {
            torch_io("vgg16_bn.io.safetensors")
        } else {
            io(io_name)
        };
        let mut a = import::open(
            &dir().join(file),
            &ImportOptions {
                mean: Some(vec![0.0]),
                std: Some(vec![1.0]),
                ..Default::default()
            },
            shape_of(&x),
            &Device::Cpu,
        )
        .unwrap();
        let out = dir_out.path().join(format!("{io_name}.onnx"));
        shears::model::onnx::save(&a.net, &out).unwrap();
        let mut b = open(&out, &x);
        let (ya, yb) = (
            a.net.forward(&x, false).unwrap(),
            b.net.forward(&x, false).unwrap(),
        );
        assert!(rel_err(&flat(&yb), &flat(&ya)) < 1e-5, "{file}");
        // The state-dict tensors (not the constants a graph computes with).
        let names = |n: &shears::model::Network| -> Vec<String> {
            let state: std::collections::BTreeSet<String> = n
                .arch
                .tensor_specs()
                .into_iter()
                .filter(|(_, _, role)| *role != shears::model::graph::Role::Constant)
                .map(|(name, _, _)| name)
                .collect();
            n.params
                .keys()
                .chain(n.buffers.keys())
                .filter(|k| state.contains(*k))
                .cloned()
                .collect()
        };
        assert_eq!(names(&b.net), names(&a.net), "{file}");
    }
}

/// What a model file says about its inputs before it is opened: an ONNX
/// graph its declared shape, a Shears checkpoint its shape and resize, a
/// state dict nothing; a given resize wins over the file's.
#[test]
fn model_files_say_how_image_files_reach_them() {
    use shears::data::InputPrep;
    let none = ImportOptions::default();
    let p = import::input_prep(Some(&dir().join("resnet18.onnx")), &none);
    assert_eq!(
        p,
        InputPrep {
            size: Some([32, 32]),
            channels: Some(3),
            resize: None
        }
    );
    let sd = import::input_prep(Some(&dir().join("resnet18.pth")), &none);
    assert_eq!(sd, InputPrep::default());
    let resize = ImportOptions {
        resize: Some(40),
        ..ImportOptions::default()
    };
    assert_eq!(
        import::input_prep(Some(&dir().join("resnet18.pth")), &resize).resize,
        Some(40)
    );
    // A checkpoint keeps the resize it was opened with.
    let (x, _) = io("resnet18");
    let opened = import::open(
        &dir().join("resnet18.onnx"),
        &resize,
        shape_of(&x),
        &Device::Cpu,
    )
    .unwrap();
    assert_eq!(opened.net.arch.preprocess.resize, Some(40));
    let tmp = tempfile::tempdir().unwrap();
    let ck = tmp.path().join("r18.safetensors");
    shears::model::checkpoint::save(&opened.net, &serde_json::Value::Null, &ck).unwrap();
    let p = import::input_prep(Some(&ck), &none);
    assert_eq!(
        p,
        InputPrep {
            size: Some([32, 32]),
            channels: Some(3),
            resize: Some(40)
        }
    );
    let over = ImportOptions {
        resize: Some(36),
        ..ImportOptions::default()
    };
    assert_eq!(import::input_prep(Some(&ck), &over).resize, Some(36));
    let reopened = import::open(&ck, &over, [3, 32, 32], &Device::Cpu).unwrap();
    assert_eq!(reopened.net.arch.preprocess.resize, Some(36));
}
