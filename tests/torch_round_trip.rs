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

fn model_args(info: &serde_json::Value) -> Vec<String> {
    let model = fixtures().join("mnist_cnn.pth");
    vec![
        "--checkpoint".into(),
        model.display().to_string(),
        "--layers".into(),
        info["layers"].as_str().unwrap().into(),
        "--mean".into(),
        info["mean"][0].to_string(),
        "--std".into(),
        info["std"][0].to_string(),
        "--data".into(),
        mnist().display().to_string(),
    ]
}

/// The accuracy `shears eval`/`prune` printed, as a fraction.
fn accuracy(out: &str) -> f64 {
    let at = out.rfind("test accuracy ").expect("an accuracy line") + "test accuracy ".len();
    let pct: String = out[at..].chars().take_while(|c| *c != '%').collect();
    pct.parse::<f64>().unwrap() / 100.0
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
        let shapes = |sd: &StateDict| -> Vec<(String, Vec<usize>)> {
            sd.tensors
                .iter()
                .map(|(k, t)| (k.clone(), t.dims().to_vec()))
                .collect()
        };
        assert_eq!(shapes(&back), shapes(&original), "{ext}: names and shapes");
        let (mut zeros, mut total) = (0usize, 0usize);
        for (k, t) in &back.tensors {
            if k.ends_with(".weight") {
                let v = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
                zeros += v.iter().filter(|x| **x == 0.0).count();
                total += v.len();
            }
        }
        let share = zeros as f64 / total as f64;
        assert!(
            (share - 0.5).abs() < 0.01,
            "{ext}: {share} of the weights are zero"
        );
    }
}
