//! How much memory a dataset will take, checked before it is loaded.

use std::path::Path;

use crate::error::{Error, Result};

/// Memory the system can give now, in bytes (Linux: `MemAvailable` of
/// `/proc/meminfo`; `None` where it cannot be read).
pub fn available() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Refuses to load `bytes` of images from `path` when the system has less
/// memory available; the error says how much it needs and has.
pub fn check_fits(path: &Path, bytes: u64) -> Result<()> {
    match available() {
        Some(free) if bytes > free => Err(Error::format(
            path,
            format!(
                "the images need {} in memory but only {} is available",
                human(bytes),
                human(free)
            ),
        )),
        _ => Ok(()),
    }
}

/// `1.5 GB`, `640 MB`.
pub fn human(bytes: u64) -> String {
    let mb = bytes as f64 / 1e6;
    if mb >= 1000.0 {
        format!("{:.1} GB", mb / 1000.0)
    } else {
        format!("{mb:.0} MB")
    }
}
