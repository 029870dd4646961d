//! Replays the fuzz corpus (`fuzz/corpus/<format>/`) and every input a fuzz
//! run found to crash, hang or exhaust memory (`fuzz/regressions/<format>/`,
//! kept after the fix) through the loaders, on stable Rust: no input may
//! panic. The fuzz targets themselves run with `cargo fuzz` (see README).

use std::path::Path;

use shears::loaders::{read, FORMATS};

fn inputs(folder: &str, format: &str) -> Vec<std::path::PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz")
        .join(folder)
        .join(format);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return vec![];
    };
    let mut files: Vec<_> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

#[test]
fn every_corpus_and_regression_input_is_read_without_panicking() {
    let mut seen = 0;
    for format in FORMATS {
        let corpus = inputs("corpus", format);
        assert!(!corpus.is_empty(), "fuzz/corpus/{format} is empty");
        for file in corpus.iter().chain(&inputs("regressions", format)) {
            let data = std::fs::read(file).unwrap();
            // Ok or a clear error are both fine; a panic fails the test.
            let _ = read(format, &data);
            seen += 1;
        }
    }
    assert!(seen >= FORMATS.len());
}

#[test]
fn the_seed_inputs_are_valid() {
    // The hand-made seeds of each format load (so the fuzzer starts from
    // inputs that reach past the first check).
    for (format, file) in [
        ("idx_images", "two-3x3.idx.gz"),
        ("idx_labels", "three.idx"),
        ("cifar", "one-record-10.bin"),
        ("cifar", "one-record-100.bin"),
        ("digits_csv", "two-rows.csv"),
        ("checkpoint", "mlp.safetensors"),
        ("results_json", "tiny.json"),
        ("onnx", "squeezenet-ts"),
        ("onnx", "vit_timm-ts"),
        ("onnx_external", "densenet-dynamo"),
        ("onnx_external", "shufflenet_v2-dynamo"),
        ("state_dict_layout", "convnext"),
        ("state_dict_layout", "regnet_y"),
        ("state_dict_layout", "tv-efficientnet_v2_s"),
        ("state_dict_layout", "tv-mobilenet_v3_large"),
    ] {
        let p = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../fuzz/corpus")
            .join(format)
            .join(file);
        let data = std::fs::read(&p).unwrap();
        read(format, &data).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    }
}
