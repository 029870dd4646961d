//! `--charts DIR` and the chart choices of `shears compare` and `shears
//! report`: the Compare charts of the app, written as SVG and PNG.

use std::path::PathBuf;

use clap::builder::PossibleValue;
use clap::{Args, ValueEnum};

use crate::error::Result;
use crate::experiment::ComparisonResults;
use crate::report::chart::{compare_charts, percent, ChartOptions, ResultsSet};
use crate::report::export::write_charts;
use crate::report::{ComputeAxis, XAxis};

/// Chart export and its choices (defaults as in the app).
#[derive(Debug, Args, Default, Clone)]
pub struct ChartArgs {
    /// Write the Compare charts into this folder, each as SVG and PNG
    /// (accuracy-vs-sparsity, per-layer-sparsity, accuracy-vs-compute).
    #[arg(long, value_name = "DIR")]
    pub charts: Option<PathBuf>,
    /// x axis of the accuracy chart.
    #[arg(long, value_enum, default_value_t = XAxis::Sparsity)]
    pub x_axis: XAxis,
    /// Target sparsity of the per-layer and compute charts, e.g. 0.9
    /// (default: the highest with a completed run).
    #[arg(long, value_name = "SPARSITY")]
    pub target: Option<f32>,
    /// x axis of the compute chart.
    #[arg(long, value_enum, default_value_t = ComputeAxis::Epochs)]
    pub compute_axis: ComputeAxis,
    /// Leave out the band over seeds (mean ± std).
    #[arg(long)]
    pub no_band: bool,
    /// Leave out the dense baseline.
    #[arg(long)]
    pub no_baseline: bool,
}

impl ChartArgs {
    /// The chart options these flags choose.
    pub fn options(&self) -> ChartOptions {
        ChartOptions {
            target: self.target,
            x_axis: self.x_axis,
            compute_axis: self.compute_axis,
            show_band: !self.no_band,
            show_dense: !self.no_baseline,
            ..ChartOptions::default()
        }
    }

    /// With `--charts DIR`, writes the charts of `results` there and says
    /// so; without, does nothing.
    pub(super) fn write(&self, results: &ComparisonResults) -> Result<()> {
        let Some(dir) = &self.charts else {
            return Ok(());
        };
        let set = ResultsSet {
            name: &results.config.name,
            results,
        };
        let charts = compare_charts(&[set], &self.options());
        if let (Some(asked), Some(shown)) = (self.target, charts.target.target) {
            if (asked - shown).abs() > 1e-6 {
                eprintln!(
                    "warning: no runs at target {}: the charts show {}",
                    percent(asked),
                    percent(shown)
                );
            }
        }
        let files = write_charts(dir, &charts)?;
        println!("charts: {} files in {}", files.len(), dir.display());
        Ok(())
    }
}

impl ValueEnum for XAxis {
    fn value_variants<'a>() -> &'a [Self] {
        &XAxis::ALL
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(match self {
            XAxis::Sparsity => PossibleValue::new("sparsity"),
            XAxis::Compression => PossibleValue::new("compression"),
            XAxis::Speedup => PossibleValue::new("speedup").alias("speed-up"),
            XAxis::Latency => PossibleValue::new("latency"),
        })
    }
}

impl ValueEnum for ComputeAxis {
    fn value_variants<'a>() -> &'a [Self] {
        &[ComputeAxis::Epochs, ComputeAxis::Seconds]
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(PossibleValue::new(match self {
            ComputeAxis::Epochs => "epochs",
            ComputeAxis::Seconds => "seconds",
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Cli, Command};
    use super::*;
    use clap::Parser;

    #[test]
    fn chart_flags_choose_the_options() {
        let cli = Cli::try_parse_from([
            "shears",
            "report",
            "out",
            "--charts",
            "c",
            "--x-axis",
            "speed-up",
            "--target",
            "0.5",
            "--compute-axis",
            "seconds",
            "--no-band",
        ])
        .unwrap();
        let Some(Command::Report(a)) = cli.command else {
            panic!("not a report")
        };
        let o = a.chart.options();
        assert_eq!(o.x_axis, XAxis::Speedup);
        assert_eq!(o.compute_axis, ComputeAxis::Seconds);
        assert_eq!(o.target, Some(0.5));
        assert!(!o.show_band && o.show_dense);
        assert_eq!(a.chart.charts, Some(PathBuf::from("c")));
        // The defaults are the app's.
        let d = ChartArgs::default().options();
        assert_eq!(d, ChartOptions::default());
        assert!(Cli::try_parse_from(["shears", "report", "out", "--x-axis", "y"]).is_err());
    }
}
