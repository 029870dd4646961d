//! `shears plugins list | check | probe`.

use std::path::Path;

use crate::error::{Error, Result};
use crate::plugins::probe::{check_in_child, probe_library};
use crate::plugins::Registry;

pub(super) fn list(r: &Registry) {
    println!(
        "{:<10} {:<22} {:<8} {:<4} {:<8} file",
        "kind", "name", "version", "abi", "status"
    );
    for row in r.rows() {
        let status = if row.status == "ok" { "ok" } else { "ERROR" };
        println!(
            "{:<10} {:<22} {:<8} {:<4} {:<8} {}",
            row.kind,
            row.name,
            row.version,
            row.abi.map_or("-".into(), |a| a.to_string()),
            status,
            row.file
        );
        if status != "ok" {
            println!("           {}", row.status);
        }
    }
}

/// Runs `probe` in a child process and reports how it ended.
pub(super) fn check(file: &Path) -> Result<i32> {
    let exe = std::env::current_exe()
        .map_err(|e| Error::Other(format!("cannot find the shears executable: {e}")))?;
    print!("{}", check_in_child(&exe, file)?);
    println!("{}: ok", file.display());
    Ok(0)
}

/// Loads `file` in this process, calls each plugin once and prints the report.
pub(super) fn probe(file: &Path) -> Result<i32> {
    print!("{}", probe_library(file)?);
    Ok(0)
}
