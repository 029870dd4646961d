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
use crate::model::import::{ImportOptions, StateDict};
use crate::plugins::{schema, Registry};

/// The formats, by the names the fuzz targets carry.
pub const FORMATS: [&str; 14] = [
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
    "onnx_external",
    "state_dict_layout",
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
        // An ONNX model and the external data file beside it: a 4-byte
        // little-endian length of the model, the model, then the data
        // (written as `input.onnx` and `input.onnx.data` in a fresh folder).
        "onnx_external" => {
            let (model, weights) = split_model_and_data(data);
            with_folder(|dir| {
                let model_path = dir.join("input.onnx");
                std::fs::write(&model_path, model).map_err(|e| crate::Error::io(&model_path, e))?;
                let data_path = dir.join("input.onnx.data");
                std::fs::write(&data_path, weights).map_err(|e| crate::Error::io(&data_path, e))?;
                open_model(&model_path)
            })
        }
        // The state-dict recognisers alone: a text of `name d1 d2 ...`
        // lines, a state dict of those names and shapes holding no data.
        "state_dict_layout" => {
            let sd = state_dict_layout(data, origin)?;
            match crate::model::import::recognise(&sd, [3, 32, 32], None) {
                Some(r) => r.map(drop),
                None => Ok(()),
            }
        }
        other => Err(crate::Error::Other(format!(
            "unknown format `{other}` (known: {})",
            FORMATS.join(", ")
        ))),
    }
}

/// `state_dict_layout`'s text read: at most 100,000 lines of a name and
/// up to 8 dimensions of at most 2^20 each.
pub fn state_dict_layout(data: &[u8], origin: &Path) -> Result<StateDict> {
    let bad = |line: usize, what: &str| {
        crate::Error::format(origin, format!("line {}: {what}", line + 1))
    };
    let text = std::str::from_utf8(data).map_err(|_| bad(0, "not UTF-8"))?;
    let mut shapes = Vec::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        if shapes.len() >= 100_000 {
            return Err(bad(i, "more than 100,000 tensors"));
        }
        let mut words = line.split_whitespace();
        let name = words.next().unwrap_or_default();
        let dims = words
            .map(|w| w.parse::<usize>().ok().filter(|&d| d <= 1 << 20))
            .collect::<Option<Vec<usize>>>()
            .filter(|d| d.len() <= 8)
            .ok_or_else(|| bad(i, "dimensions must be at most 8 numbers up to 2^20"))?;
        shapes.push((name.to_string(), dims));
    }
    StateDict::from_shapes(shapes.iter().map(|(n, d)| (n.as_str(), d.as_slice())))
}

/// A model file opened as the app and the CLI open it (for 3x32x32 inputs).
fn open_model(path: &Path) -> Result<()> {
    let opts = ImportOptions::default();
    crate::model::import::open(path, &opts, [3, 32, 32], &candle_core::Device::Cpu).map(drop)
}

/// `onnx_external`'s input split into the model and its data file.
pub fn split_model_and_data(data: &[u8]) -> (&[u8], &[u8]) {
    let Some((len, rest)) = data.split_first_chunk::<4>() else {
        return (data, &[]);
    };
    let n = (u32::from_le_bytes(*len) as usize).min(rest.len());
    rest.split_at(n)
}

/// `onnx_external`'s input made from a model and its data file (the
/// inverse of [`split_model_and_data`], for seeds).
pub fn join_model_and_data(model: &[u8], weights: &[u8]) -> Vec<u8> {
    let mut v = (model.len() as u32).to_le_bytes().to_vec();
    v.extend_from_slice(model);
    v.extend_from_slice(weights);
    v
}

/// Runs `read` in a fresh temporary folder, removed afterwards.
fn with_folder(read: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("shears-fuzz-{}-dir-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| crate::Error::io(&dir, e))?;
    let out = read(&dir);
    let _ = std::fs::remove_dir_all(&dir);
    out
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
