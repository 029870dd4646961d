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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn more_than_the_machine_has_is_refused_with_both_sizes() {
        if available().is_none() {
            return; // no /proc/meminfo: nothing to check against
        }
        let e = check_fits(Path::new("big-data"), u64::MAX / 2)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("big-data") && e.contains("GB") && e.contains("available"),
            "{e}"
        );
        assert!(check_fits(Path::new("small"), 1024).is_ok());
        assert_eq!(human(640_000_000), "640 MB");
        assert_eq!(human(1_500_000_000), "1.5 GB");
    }
}
