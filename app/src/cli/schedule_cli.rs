//! `shears schedule NAME --target S [--params JSON]`.

use super::ScheduleArgs;
use crate::error::{Error, Result};
use crate::experiment::preview::{plan_schedule, plan_summary};
use crate::plugins::Registry;

/// Prints the plan of the schedule `a.name` at `a.target`.
pub(super) fn schedule(a: &ScheduleArgs, registry: &Registry) -> Result<i32> {
    let params: serde_json::Value = serde_json::from_str(&a.params).map_err(|e| {
        Error::config(
            "--params",
            format!("`{}` is not a JSON object: {e}", a.params),
        )
    })?;
    let mut s = registry.schedule(&a.name, &params)?;
    let label = registry.label(shears_plugin_api::PluginKind::Schedule, &a.name);
    let limit = crate::experiment::ExperimentConfig::default().max_epochs_per_run;
    let steps = plan_schedule(s.as_mut(), &label, a.target, limit)?;
    println!("{label} at target {} with {}:", a.target, params);
    println!("{:>5}  {:>9}  fine-tuning after it", "step", "sparsity");
    for (i, st) in steps.iter().enumerate() {
        let ft = match (st.finetune_epochs, st.patience) {
            (0, _) => "none".to_string(),
            (n, 0) => format!("{n} epoch{}", if n == 1 { "" } else { "s" }),
            (n, p) => format!("up to {n} epochs, patience {p}"),
        };
        println!("{:>5}  {:>9.6}  {ft}", i + 1, st.sparsity);
    }
    println!("{}", plan_summary(&steps));
    Ok(0)
}
