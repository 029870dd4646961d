//! `shears report`: the tables `shears compare` prints at its end, for
//! saved results, and with `--charts DIR` the Compare charts.

use std::path::Path;

use super::compare::print_tables;
use super::ReportArgs;
use crate::error::Result;
use crate::experiment::load_results;
use crate::experiment::output::RESULTS_JSON;

pub(super) fn report(a: &ReportArgs) -> Result<i32> {
    let results = load_results(&a.results)?;
    let (file, dir) = if a.results.is_dir() {
        (a.results.join(RESULTS_JSON), a.results.as_path())
    } else {
        let dir = a.results.parent().unwrap_or(Path::new("."));
        (a.results.clone(), dir)
    };
    let (_, line) = print_tables(&results, &file, dir);
    println!("{line}");
    a.chart.write(&results)?;
    Ok(0)
}
