//! Every file format Shears reads, as one entry point over a byte slice per
//! format: what the fuzz targets (`fuzz/`) and their replay test
//! (`tests/fuzz_regressions.rs`) call. Each returns the loader's own result;
//! none may panic, hang or allocate without bound, whatever the bytes.

use std::path::Path;

use crate::data::{
    gunzip_if_gz, parse_cifar, parse_digits_csv, parse_idx_images, parse_idx_labels, CifarVariant,
};
use crate::error::Result;
use crate::experiment::{output, ExperimentConfig};
use crate::model::checkpoint::Checkpoint;
use crate::model::import::ImportOptions;
use crate::plugins::{schema, Registry};

/// The formats, by the names the fuzz targets carry.
pub const FORMATS: [&str; 12] = [
    "idx_images",
    "idx_labels",
    "cifar",
    "digits_csv",
    "checkpoint",
    "results_json",
    "config_toml",
    "plugin_schema",
    "npz",
    "state_dict_pth",
    "state_dict_safetensors",
    "onnx",
];

/// Reads `data` as `format` (one of [`FORMATS`]); the error names the
/// pretend file `input`. An unknown format is an error too.
pub fn read(format: &str, data: &[u8]) -> Result<()> {
    let origin = Path::new("input");
    match format {
        "idx_images" => parse_idx_images(gunzip_if_gz(data, origin)?, origin).map(drop),
        "idx_labels" => parse_idx_labels(gunzip_if_gz(data, origin)?, origin).map(drop),
        "cifar" => {
            // Either variant (the file name tells them apart on disk).
            let bytes = gunzip_if_gz(data, origin)?;
            let ten = parse_cifar(&bytes, CifarVariant::Cifar10, origin);
            let hundred = parse_cifar(&bytes, CifarVariant::Cifar100, origin);
            ten.or(hundred).map(drop)
        }
        "digits_csv" => parse_digits_csv(&gunzip_if_gz(data, origin)?, origin).map(drop),
        "checkpoint" => {
            let ckpt = Checkpoint::from_bytes(data, origin)?;
            ckpt.into_network(&candle_core::Device::Cpu).map(drop)
        }
        "results_json" => output::results_from_bytes(data, origin).map(drop),
        "config_toml" => {
            let text = String::from_utf8_lossy(data);
            ExperimentConfig::from_toml(&text, origin)?.validate(&Registry::builtin())
        }
        "plugin_schema" => {
            // A schema, a newline, then parameters to check against it.
            let text = String::from_utf8_lossy(data);
            let (schema_text, params_text) = text.split_once('\n').unwrap_or((&text, "{}"));
            let parse = |t: &str| serde_json::from_str::<serde_json::Value>(t);
            if let (Ok(s), Ok(p)) = (parse(schema_text), parse(params_text)) {
                let _ = schema::validate(&s, &p);
            }
            Ok(())
        }
        "npz" => with_file(data, "npz", |p| crate::data::load_npz(p, 0.2, 0).map(drop)),
        // Opening reads the file, recognises the layers from every name and
        // shape, and builds the network.
        "state_dict_pth" => with_file(data, "pth", open_model),
        "state_dict_safetensors" => with_file(data, "safetensors", open_model),
        "onnx" => with_file(data, "onnx", open_model),
        other => Err(crate::Error::Other(format!(
            "unknown format `{other}` (known: {})",
            FORMATS.join(", ")
        ))),
    }
}

/// A model file opened as the app and the CLI open it (for 3x32x32 inputs).
fn open_model(path: &Path) -> Result<()> {
    let opts = ImportOptions::default();
    crate::model::import::open(path, &opts, [3, 32, 32], &candle_core::Device::Cpu).map(drop)
}

/// Runs `read` on `data` written to a temporary file with extension `ext`
/// (for the loaders that read from a path), removed afterwards.
fn with_file(data: &[u8], ext: &str, read: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let path = std::env::temp_dir().join(format!("shears-fuzz-{}-{n}.{ext}", std::process::id()));
    std::fs::write(&path, data).map_err(|e| crate::Error::io(&path, e))?;
    let out = read(&path);
    let _ = std::fs::remove_file(&path);
    out
}
