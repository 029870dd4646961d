//! Text tables for the terminal.

use crate::experiment::results::mean_final_acc;
use crate::experiment::ComparisonResults;

/// Strategy x target sparsity -> final test accuracy (mean ± std over seeds),
/// with the dense baseline on top.
pub fn summary_table(r: &ComparisonResults) -> String {
    let targets = &r.config.sparsities;
    let mut strategies: Vec<String> = Vec::new();
    for run in &r.runs {
        if !strategies.contains(&run.strategy) {
            strategies.push(run.strategy.clone());
        }
    }
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
    if !r.baselines.is_empty() {
        let n = r.baselines.len() as f32;
        let mean = r.baselines.iter().map(|b| b.test.acc).sum::<f32>() / n;
        out.push_str(&format!("{:<w$}", "dense baseline"));
        for _ in targets {
            out.push_str(&format!(" | {:>11.2}", mean * 100.0));
        }
        out.push('\n');
    }
    for s in &strategies {
        out.push_str(&format!("{s:<w$}"));
        for &t in targets {
            let cell = match mean_final_acc(r, s, t) {
                Some((m, sd, n)) if n > 1 => format!("{:.2}±{:.2}", m * 100.0, sd * 100.0),
                Some((m, _, _)) => format!("{:.2}", m * 100.0),
                None => "-".into(),
            };
            out.push_str(&format!(" | {cell:>11}"));
        }
        out.push('\n');
    }
    out
}
