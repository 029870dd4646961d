//! Text for people: the terminal summary table, and the one-line reports of
//! events shared by the CLI's progress output and the app's log.

use std::path::Path;

use super::series::{dense_baseline, point, strategies, AccuracyPoint};
use crate::experiment::results::{Baseline, DataSummary, ModelSummary};
use crate::experiment::{ComparisonResults, Event, RunResult, Status};

/// `lenet5 on cpu: glyphs (5400 train / 600 val / 1000 test), 61706 parameters`.
pub fn started_line(device: &str, data: &DataSummary, model: &ModelSummary) -> String {
    format!(
        "{} on {device}: {} ({} train / {} val / {} test), {} parameters",
        model.family, data.name, data.train, data.val, data.test, model.params
    )
}

/// How a base model turned out.
pub fn base_line(b: &Baseline) -> String {
    format!(
        "base model (seed {}): test acc {:.2}% after {} epochs, {:.1}s",
        b.seed,
        b.test.acc * 100.0,
        b.epochs,
        b.seconds
    )
}

/// What a prune step did (for [`Event::Pruned`]; `None` for other events).
pub fn pruned_line(e: &Event) -> Option<String> {
    let Event::Pruned {
        strategy,
        step,
        target,
        reached,
        host_copy_ms,
        ..
    } = e
    else {
        return None;
    };
    Some(format!(
        "{strategy}: step {step}: pruned to {:.2}% (asked {:.2}%), weights copied for scoring in {host_copy_ms:.1} ms",
        reached * 100.0,
        target * 100.0
    ))
}

/// How a run ended: its final accuracy and sparsity, or why it stopped.
pub fn run_line(r: &RunResult) -> String {
    let head = format!(
        "{} @ {:.1}% (seed {})",
        r.strategy,
        r.target * 100.0,
        r.seed
    );
    match (&r.status, r.last()) {
        (Status::Failed(e), _) => format!("{head}: FAILED: {e}"),
        (Status::Cancelled, _) => format!("{head}: cancelled"),
        (Status::Complete, Some(s)) => format!(
            "{head}: test acc {:.2}% at sparsity {:.2}% after {} epochs, {:.1}s",
            s.test.acc * 100.0,
            s.sparsity.global * 100.0,
            s.epochs,
            s.seconds
        ),
        (Status::Complete, None) => format!("{head}: no step finished"),
    }
}

/// Strategy x target sparsity tables, with the dense baseline on top: final
/// test accuracy (mean ± std over seeds, the dense control as its own row),
/// test accuracy right after the last prune (before fine-tuning), and
/// compression / theoretical speed-up / latency at batch 64.
pub fn summary_table(r: &ComparisonResults) -> String {
    let acc = |p: &AccuracyPoint| {
        Some(if p.seeds > 1 {
            format!("{:.2}±{:.2}", p.acc * 100.0, p.acc_std * 100.0)
        } else {
            format!("{:.2}", p.acc * 100.0)
        })
    };
    let mut out = grid(r, "test accuracy (%)", true, &acc);
    let pruned = |p: &AccuracyPoint| p.pruned_acc.map(|a| format!("{:.2}", a * 100.0));
    if has_any(r, &pruned) {
        out.push('\n');
        out.push_str(&grid(r, "right after prune (%)", false, &pruned));
    }
    let cost = |p: &AccuracyPoint| {
        let c = p.compression.zip(p.speedup)?;
        let lat = p
            .latency_ms
            .map(|l| format!(" {:.2}ms", l.1))
            .unwrap_or_default();
        Some(format!("{:.1}x {:.1}x{lat}", c.0, c.1))
    };
    if has_any(r, &cost) {
        out.push('\n');
        out.push_str(&grid(r, "compression speed-up latency@64", false, &cost));
    }
    out
}

type Cell<'a> = dyn Fn(&AccuracyPoint) -> Option<String> + 'a;

fn has_any(r: &ComparisonResults, cell: &Cell<'_>) -> bool {
    strategies(r).iter().any(|s| {
        r.config
            .sparsities
            .iter()
            .any(|&t| point(r, s, t).and_then(|p| cell(&p)).is_some())
    })
}

/// One strategy x target table of `cell`s titled `title`.
fn grid(r: &ComparisonResults, title: &str, with_dense: bool, cell: &Cell<'_>) -> String {
    let targets = &r.config.sparsities;
    let strategies = strategies(r);
    let w = strategies
        .iter()
        .map(|s| s.len())
        .max()
        .unwrap_or(5)
        .max(title.len())
        .max(22);
    let cw = 20;
    let mut out = format!("{title:<w$}");
    for t in targets {
        out.push_str(&format!(" | {:>cw$}", format!("{:.1}% sparse", t * 100.0)));
    }
    out.push('\n');
    out.push_str(&"-".repeat(w + targets.len() * (cw + 3)));
    out.push('\n');
    if let Some((mean, _)) = dense_baseline(r).filter(|_| with_dense) {
        out.push_str(&format!("{:<w$}", "dense baseline"));
        for _ in targets {
            out.push_str(&format!(" | {:>cw$.2}", mean * 100.0));
        }
        out.push('\n');
    }
    for s in &strategies {
        let cells: Vec<Option<String>> = targets
            .iter()
            .map(|&t| point(r, s, t).and_then(|p| cell(&p)))
            .collect();
        if !with_dense && cells.iter().all(Option::is_none) {
            continue;
        }
        out.push_str(&format!("{s:<w$}"));
        for c in cells {
            out.push_str(&format!(" | {:>cw$}", c.unwrap_or_else(|| "-".into())));
        }
        out.push('\n');
    }
    out
}

/// How a comparison ended, in one line for the user: whether it is an error
/// (failed, or some runs failed; a cancel is what the user asked for, not
/// an error) and the text, naming `dir` where its results are.
pub fn outcome_line(r: &ComparisonResults, dir: &Path) -> (bool, String) {
    match &r.status {
        Some(Status::Cancelled) => {
            let kept = r
                .runs
                .iter()
                .filter(|x| x.status == Status::Complete)
                .count();
            let text = format!(
                "comparison cancelled: {kept} finished runs kept in {}",
                dir.display()
            );
            (false, text)
        }
        Some(Status::Failed(e)) => (true, format!("comparison failed: {e}")),
        _ => match r.failed_runs() {
            0 => (
                false,
                format!("comparison finished: results in {}", dir.display()),
            ),
            failed => (
                true,
                format!(
                    "comparison finished; {failed} run(s) failed (see the table and {})",
                    dir.join(crate::experiment::output::EVENTS_JSONL).display()
                ),
            ),
        },
    }
}
