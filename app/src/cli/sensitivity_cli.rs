//! `shears sensitivity --checkpoint C [--data D] [--sparsities ...]`.

use std::sync::atomic::AtomicBool;

use super::commands::{open_device, open_with_data, parse_granularity};
use super::SensitivityArgs;
use crate::error::{Error, Result};
use crate::experiment::sensitivity::{run_sensitivity, save, table, SensitivitySpec};
use crate::plugins::Registry;

/// Runs the analysis, prints its table and writes its files.
pub(super) fn sensitivity(a: &SensitivityArgs, registry: &Registry) -> Result<i32> {
    let criterion_params: serde_json::Value =
        serde_json::from_str(&a.criterion_params).map_err(|e| {
            Error::config(
                "--criterion-params",
                format!("`{}` is not a JSON object: {e}", a.criterion_params),
            )
        })?;
    let defaults = SensitivitySpec::default();
    let spec = SensitivitySpec {
        sparsities: a.sparsities.clone().unwrap_or(defaults.sparsities.clone()),
        criterion: a.criterion.clone(),
        criterion_params,
        granularity: parse_granularity(&a.granularity)?,
        ..defaults
    };
    let device = open_device(&a.data)?;
    let (opened, _, data) = open_with_data(&a.checkpoint, &a.import, &a.data, &device)?;
    let net = opened.net;
    let cancel = AtomicBool::new(false);
    let r = run_sensitivity(&net, &data, &spec, registry, &cancel, &mut |done, total| {
        eprint!("\r{done}/{total} evaluations");
    })?;
    eprintln!();
    print!("{}", table(&r));
    save(&a.out, &r)?;
    println!(
        "sensitivity: {}",
        a.out
            .join(crate::experiment::sensitivity::SENSITIVITY_JSON)
            .display()
    );
    Ok(0)
}
