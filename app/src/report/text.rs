//! Text tables for the terminal (the CLI summary).

use super::series::{dense_baseline, point, strategies};
use crate::experiment::ComparisonResults;

/// Strategy x target sparsity -> final test accuracy (mean ± std over seeds),
/// with the dense baseline on top.
pub fn summary_table(r: &ComparisonResults) -> String {
    let targets = &r.config.sparsities;
    let strategies = strategies(r);
    let w = strategies
        .iter()
        .map(|s| s.len())
        .max()
        .unwrap_or(5)
        .max(22);
    let mut out = format!("{:<w$}", "test accuracy (%)");
    for t in targets {
        out.push_str(&format!(" | {:>11}", format!("{:.1}% sparse", t * 100.0)));
    }
    out.push('\n');
    out.push_str(&"-".repeat(w + targets.len() * 14));
    out.push('\n');
    if let Some((mean, _)) = dense_baseline(r) {
        out.push_str(&format!("{:<w$}", "dense baseline"));
        for _ in targets {
            out.push_str(&format!(" | {:>11.2}", mean * 100.0));
        }
        out.push('\n');
    }
    for s in &strategies {
        out.push_str(&format!("{s:<w$}"));
        for &t in targets {
            let cell = match point(r, s, t) {
                Some(p) if p.seeds > 1 => {
                    format!("{:.2}±{:.2}", p.acc * 100.0, p.acc_std * 100.0)
                }
                Some(p) => format!("{:.2}", p.acc * 100.0),
                None => "-".into(),
            };
            out.push_str(&format!(" | {cell:>11}"));
        }
        out.push('\n');
    }
    out
}
