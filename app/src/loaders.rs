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
use crate::plugins::{schema, Registry};

/// The formats, by the names the fuzz targets carry.
pub const FORMATS: [&str; 8] = [
    "idx_images",
    "idx_labels",
    "cifar",
    "digits_csv",
    "checkpoint",
    "results_json",
    "config_toml",
    "plugin_schema",
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
        other => Err(crate::Error::Other(format!(
            "unknown format `{other}` (known: {})",
            FORMATS.join(", ")
        ))),
    }
}
