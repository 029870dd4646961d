//! PyTorch -> Shears -> PyTorch on real data: a CNN trained by
//! `fixtures/torchvision/train_mnist_cnn.py` on mnist-10k with PyTorch's
//! `Normalize((0.1307,), (0.3081,))` evaluates in Shears to PyTorch's test
//! accuracy (at most one image of difference), prunes to 50% with
//! fine-tuning, and saves as state dicts with the original names and
//! shapes (what `load_state_dict(strict=True)` checks), pruned weights zero.

use std::path::{Path, PathBuf};

use shears::model::import::StateDict;
use shears_tests::{shears, text};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/torchvision")
}

fn mnist() -> PathBuf {
    shears_tests::shared_datasets().join("mnist-10k")
}

fn info() -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(fixtures().join("mnist_cnn.json")).unwrap())
        .unwrap()
}

/// The flags that open `model` on mnist-10k as its fixture's JSON says:
/// the normalisation, and the layer spec or attention heads where given.
fn model_flags(model: &Path, info: &serde_json::Value) -> Vec<String> {
    let mut v = vec![
        "--checkpoint".into(),
        model.display().to_string(),
        "--mean".into(),
        info["mean"][0].to_string(),
        "--std".into(),
        info["std"][0].to_string(),
        "--data".into(),
        mnist().display().to_string(),
    ];
    if let Some(l) = info.get("layers").and_then(|l| l.as_str()) {
        v.extend(["--layers".to_string(), l.to_string()]);
    }
    if let Some(h) = info.get("heads") {
        v.extend(["--heads".to_string(), h.to_string()]);
    }
    v
}

fn model_args(info: &serde_json::Value) -> Vec<String> {
    model_flags(&fixtures().join("mnist_cnn.pth"), info)
}

/// The accuracy `shears eval`/`prune` printed, as a fraction.
fn accuracy(out: &str) -> f64 {
    let at = out.rfind("test accuracy ").expect("an accuracy line") + "test accuracy ".len();
    let pct: String = out[at..].chars().take_while(|c| *c != '%').collect();
    pct.parse::<f64>().unwrap() / 100.0
}

/// A state dict's float tensors: names and shapes, in order.
fn shapes(sd: &StateDict) -> Vec<(String, Vec<usize>)> {
    sd.tensors
        .iter()
        .map(|(k, t)| (k.clone(), t.dims().to_vec()))
        .collect()
}

/// The share of zeros among the convolution and linear weights (the
/// `.weight`s of rank 2 and more: norms' scales are not pruned).
fn zero_share(sd: &StateDict) -> f64 {
    let (mut zeros, mut total) = (0usize, 0usize);
    for (k, t) in &sd.tensors {
        if k.ends_with(".weight") && t.rank() > 1 {
            let v = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            zeros += v.iter().filter(|x| **x == 0.0).count();
            total += v.len();
        }
    }
    zeros as f64 / total as f64
}

#[test]
fn a_pytorch_cnn_evaluates_to_pytorchs_accuracy_prunes_and_goes_back() {
    if !mnist().exists() {
        panic!("mnist-10k is missing at {}", mnist().display());
    }
    let info = info();
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec!["eval".to_string()];
    args.extend(model_args(&info));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = shears(dir.path(), &args);
    assert!(o.status.success(), "{}", text(&o));
    let n = info["test_images"].as_f64().unwrap();
    let got = accuracy(&text(&o));
    let want = info["accuracy"].as_f64().unwrap();
    assert!(
        (got - want).abs() * n <= 1.0 + 1e-6,
        "Shears {got}, PyTorch {want}: more than one image apart"
    );

    let original = StateDict::read(&fixtures().join("mnist_cnn.pth")).unwrap();
    for ext in ["pth", "safetensors"] {
        let out = dir.path().join(format!("pruned.{ext}"));
        let mut args = vec!["prune".to_string()];
        args.extend(model_args(&info));
        args.extend(
            ["--sparsity", "0.5", "--finetune-epochs", "1", "--out"]
                .map(String::from)
                .into_iter()
                .chain([out.display().to_string()]),
        );
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = shears(dir.path(), &args);
        assert!(o.status.success(), "{}", text(&o));
        assert!(text(&o).contains("PyTorch state dict"), "{}", text(&o));
        assert!(accuracy(&text(&o)) > 0.9, "{}", text(&o));
        let back = StateDict::read(&out).unwrap();
        assert_eq!(shapes(&back), shapes(&original), "{ext}: names and shapes");
        let share = zero_share(&back);
        assert!(
            (share - 0.5).abs() < 0.01,
            "{ext}: {share} of the weights are zero"
        );
    }
}

/// The same round trip for torchvision's MobileNetV2 and timm's ViT
/// (`fixtures/families/train_mnist_families.py`: one input channel, trained
/// on mnist-10k): opened from their state dicts by their names, they
/// evaluate to PyTorch's accuracy, prune to 50% with a fine-tuning epoch,
/// and go back as state dicts with the original names and shapes and half
/// their convolution and linear weights zero.
/// `roundtrip_in_pytorch.py` there loads them with `strict=True` and
/// measures the accuracy Shears printed (by hand: it needs Python).
#[test]
fn mobilenet_v2_and_a_vit_go_from_pytorch_through_pruning_back() {
    let dir_f = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/families");
    let tmp = tempfile::tempdir().unwrap();
    for name in ["mobilenet_v2", "vit"] {
        let info: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(dir_f.join(format!("mnist_{name}.json"))).unwrap(),
        )
        .unwrap();
        let model = dir_f.join(format!("mnist_{name}.pth"));
        let common = model_flags(&model, &info);
        let run = |cmd: &str, extra: &[String]| {
            let mut args = vec![cmd.to_string()];
            args.extend(common.iter().cloned());
            args.extend(extra.iter().cloned());
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let o = shears(tmp.path(), &args);
            assert!(o.status.success(), "{name}: {}", text(&o));
            text(&o)
        };
        let out = run("eval", &[]);
        let n = info["test_images"].as_f64().unwrap();
        let (got, want) = (accuracy(&out), info["accuracy"].as_f64().unwrap());
        assert!(
            (got - want).abs() * n <= 1.0 + 1e-6,
            "{name}: Shears {got}, PyTorch {want}"
        );
        let pruned = tmp.path().join(format!("{name}.pth"));
        let out = run(
            "prune",
            &[
                "--sparsity".into(),
                "0.5".into(),
                "--finetune-epochs".into(),
                "1".into(),
                "--out".into(),
                pruned.display().to_string(),
            ],
        );
        assert!(accuracy(&out) > 0.5, "{name}: {out}");
        let original = StateDict::read(&model).unwrap();
        let back = StateDict::read(&pruned).unwrap();
        assert_eq!(shapes(&back), shapes(&original), "{name}: names and shapes");
        let share = zero_share(&back);
        assert!((share - 0.5).abs() < 0.01, "{name}: {share} zero");
    }
}
