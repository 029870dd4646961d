//! LeNet-5 on real MNIST digits (../shared/datasets/mnist-10k): the dense
//! model reaches at least 97% test accuracy and a one-shot 50% unstructured
//! magnitude prune plus fine-tuning stays within one point of it.

use shears::experiment::{ExperimentConfig, Status};
use shears::plugins::Registry;

#[test]
fn lenet_on_mnist_reaches_97_and_one_shot_50_stays_within_a_point() {
    let data = shears_tests::shared_datasets().join("mnist-10k");
    let toml = format!(
        r#"
name = "mnist e2e"
seeds = [0]
sparsities = [0.5]
val_fraction = 0.1
[data]
kind = "idx"
path = "{}"
[model]
arch = "lenet5"
[train]
epochs = 20
batch_size = 64
lr = 0.01
[finetune]
epochs = 2
batch_size = 64
lr = 0.005
[[strategy]]
name = "one-shot"
schedule = "one-shot"
criterion = "magnitude"
"#,
        data.display()
    );
    let cfg = ExperimentConfig::from_toml(&toml, std::path::Path::new("e2e.toml")).unwrap();
    let (results, _) = shears_tests::run_collecting(&cfg, &Registry::builtin());
    assert_eq!(results.status, Some(Status::Complete));
    assert_eq!(results.data.train + results.data.val, 8000);
    assert_eq!(results.data.test, 2000);
    let dense = results.baselines[0].test.acc;
    eprintln!("dense test accuracy {:.2}%", dense * 100.0);
    assert!(
        dense >= 0.97,
        "dense LeNet-5 reached only {:.2}%",
        dense * 100.0
    );
    let run = &results.runs[0];
    let last = run.last().expect("one step");
    eprintln!(
        "one-shot 50%: test accuracy {:.2}% at sparsity {:.3}",
        last.test.acc * 100.0,
        last.sparsity.global
    );
    assert!((last.sparsity.global - 0.5).abs() < 1e-3);
    assert!(
        last.test.acc >= dense - 0.01,
        "pruned {:.2}% vs dense {:.2}%",
        last.test.acc * 100.0,
        dense * 100.0
    );
}
