//! Builds the three Compare charts from the shown results sets: accuracy vs
//! sparsity (or compression, speed-up, latency), per-layer sparsity at a
//! target, accuracy vs compute at a target; and picks that target.

use super::{
    percent, set_dash, set_fill, set_marker, styles, Band, Bar, BarSeries, Bars, Chart,
    ChartOptions, Charts, Dash, HLine, Legend, LegendEntry, ResultsSet, Sample, Series,
    SeriesStyle, Toggle, BASELINE_COLOR, CHART_COMPUTE, CHART_LAYERS, CHART_SPARSITY, NEUTRAL,
};
use crate::experiment::results::DENSE_CONTROL;
use crate::report::{self, ComputeAxis};

/// The target sparsity the per-layer and compute charts show.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetChoice {
    /// Every target of the shown sets, ascending.
    pub targets: Vec<f32>,
    /// The one shown (`None` without any run).
    pub target: Option<f32>,
    /// Whether a strategy completed a run at it.
    pub has_data: bool,
}

/// The `requested` target if the sets have it, else the highest with a
/// completed run (after a cancel or failures the highest may have none),
/// else the highest.
pub fn choose_target(sets: &[ResultsSet<'_>], requested: Option<f32>) -> TargetChoice {
    let mut targets: Vec<f32> = sets
        .iter()
        .flat_map(|s| report::targets(s.results))
        .collect();
    targets.sort_by(f32::total_cmp);
    targets.dedup_by(|a, b| (*a - *b).abs() < 1e-6);
    let has_data = |t: f32| {
        sets.iter().any(|s| {
            report::strategies(s.results)
                .iter()
                .filter(|n| n.as_str() != DENSE_CONTROL)
                .any(|n| report::point(s.results, n, t).is_some())
        })
    };
    let target = requested
        .and_then(|t| targets.iter().copied().find(|x| (x - t).abs() < 1e-6))
        .or_else(|| targets.iter().rev().copied().find(|&t| has_data(t)))
        .or_else(|| targets.last().copied());
    TargetChoice {
        has_data: target.is_some_and(has_data),
        target,
        targets,
    }
}

/// The Compare charts of `sets` (the shown ones, in order) with `opts`.
pub fn compare_charts(sets: &[ResultsSet<'_>], opts: &ChartOptions) -> Charts {
    let all = styles(sets);
    let target = choose_target(sets, opts.target);
    let mut charts = vec![accuracy_chart(sets, &all, opts)];
    if let Some(t) = target.target {
        let note = (!target.has_data).then(|| "no completed runs at this target".to_string());
        let mut layers = layer_chart(sets, &all, opts, t);
        layers.note = note;
        charts.push(layers);
        charts.push(compute_chart(sets, &all, opts, t));
    }
    Charts { target, charts }
}

fn hidden(opts: &ChartOptions, s: &SeriesStyle) -> bool {
    opts.hidden.contains(&s.strategy)
}

/// Whether legend samples are bars or lines.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Lines,
    Bars,
}

/// The legend of a chart listing `listed` (shown or hidden), with a dense
/// baseline entry when `dense` says whether one exists.
fn legend(
    sets: &[ResultsSet<'_>],
    listed: &[&SeriesStyle],
    opts: &ChartOptions,
    kind: Kind,
    dense: bool,
) -> Legend {
    let several = sets.len() > 1;
    let mut strategies: Vec<LegendEntry> = Vec::new();
    for s in listed {
        if strategies.iter().any(|e| e.label == s.strategy) {
            continue;
        }
        let sample = match kind {
            Kind::Bars => Sample::Swatch {
                color: s.color,
                opacity: 1.0,
            },
            Kind::Lines => Sample::Line {
                color: s.color,
                dash: if s.is_control() {
                    Dash::Loose
                } else {
                    Dash::Solid
                },
                marker: (!several).then(|| set_marker(0)),
            },
        };
        strategies.push(LegendEntry {
            label: s.strategy.clone(),
            sample,
            toggle: Some(Toggle::Strategy(s.strategy.clone())),
            shown: !hidden(opts, s),
        });
    }
    if dense {
        strategies.push(LegendEntry {
            label: "dense baseline".into(),
            sample: Sample::Line {
                color: BASELINE_COLOR,
                dash: Dash::Solid,
                marker: None,
            },
            toggle: Some(Toggle::Dense),
            shown: opts.show_dense,
        });
    }
    let sets = if several {
        sets.iter()
            .enumerate()
            .map(|(i, s)| LegendEntry {
                label: s.name.to_string(),
                sample: match kind {
                    Kind::Bars => Sample::Swatch {
                        color: NEUTRAL,
                        opacity: set_fill(i),
                    },
                    Kind::Lines => Sample::Line {
                        color: NEUTRAL,
                        dash: set_dash(i),
                        marker: Some(set_marker(i)),
                    },
                },
                toggle: None,
                shown: true,
            })
            .collect()
    } else {
        vec![]
    };
    Legend { strategies, sets }
}

fn accuracy_chart(sets: &[ResultsSet<'_>], all: &[SeriesStyle], opts: &ChartOptions) -> Chart {
    let axis = opts.x_axis;
    let series = all
        .iter()
        .filter(|s| !hidden(opts, s))
        .map(|s| {
            let curve = report::curve(sets[s.set].results, &s.strategy);
            // Points whose results lack this axis's value are left out.
            let on_axis: Vec<(f64, &report::AccuracyPoint)> = curve
                .points
                .iter()
                .filter_map(|q| axis.value(q).map(|x| (x, q)))
                .collect();
            let band = (opts.show_band && on_axis.iter().any(|(_, q)| q.seeds > 1)).then(|| {
                let at = |d: f32| {
                    on_axis
                        .iter()
                        .map(|(_, q)| f64::from(q.acc + d * q.acc_std) * 100.0)
                        .collect()
                };
                Band {
                    lo: at(-1.0),
                    hi: at(1.0),
                }
            });
            Series {
                style: s.clone(),
                points: on_axis
                    .iter()
                    .map(|(x, q)| [*x, f64::from(q.acc) * 100.0])
                    .collect(),
                band,
                point_labels: vec![],
                width: 2.0,
                radius: 3.0,
            }
        })
        .collect();
    let baselines: Vec<(usize, f32)> = sets
        .iter()
        .enumerate()
        .filter_map(|(i, s)| report::dense_baseline(s.results).map(|(m, _)| (i, m)))
        .collect();
    let hlines = baselines
        .iter()
        .filter(|_| opts.show_dense)
        .map(|&(i, m)| HLine {
            label: if sets.len() > 1 {
                format!("{}: dense baseline", sets[i].name)
            } else {
                "dense baseline".into()
            },
            y: f64::from(m) * 100.0,
            color: BASELINE_COLOR,
            dash: set_dash(i),
        })
        .collect();
    let listed: Vec<&SeriesStyle> = all.iter().collect();
    Chart {
        id: CHART_SPARSITY,
        title: format!("Accuracy vs {}", axis.name()),
        note: None,
        x_label: axis.label().into(),
        y_label: "test accuracy (%)".into(),
        include_y: vec![],
        series,
        hlines,
        bars: None,
        legend: legend(sets, &listed, opts, Kind::Lines, !baselines.is_empty()),
    }
}

fn layer_chart(
    sets: &[ResultsSet<'_>],
    all: &[SeriesStyle],
    opts: &ChartOptions,
    target: f32,
) -> Chart {
    // None of the shown series ticked (or ticks saved for other results): all.
    let any_ticked = all.iter().any(|s| opts.layer_strategies.contains(&s.label));
    let per: Vec<(&SeriesStyle, Vec<(String, f32)>)> = all
        .iter()
        .filter(|s| !any_ticked || opts.layer_strategies.contains(&s.label))
        .filter_map(|s| {
            report::layer_sparsity(sets[s.set].results, &s.strategy, target).map(|l| (s, l))
        })
        .collect();
    let listed: Vec<&SeriesStyle> = per.iter().map(|(s, _)| *s).collect();
    let drawn: Vec<&(&SeriesStyle, Vec<(String, f32)>)> =
        per.iter().filter(|(s, _)| !hidden(opts, s)).collect();
    // One group per layer name, in network order (results of different
    // models may be shown together: each bar goes to its layer's group).
    let mut categories: Vec<String> = Vec::new();
    for (_, layers) in &drawn {
        for (n, _) in layers {
            if !categories.contains(n) {
                categories.push(n.clone());
            }
        }
    }
    let n = drawn.len().max(1) as f64;
    let width = 0.8 / n;
    let series = drawn
        .iter()
        .enumerate()
        .map(|(k, (s, layers))| {
            let offset = (k as f64 - (n - 1.0) / 2.0) * width;
            let bars = layers
                .iter()
                .map(|(name, sp)| {
                    let category = categories.iter().position(|c| c == name).unwrap_or(0);
                    Bar {
                        x: category as f64 + offset,
                        value: f64::from(*sp) * 100.0,
                        width,
                        category,
                    }
                })
                .collect();
            BarSeries {
                style: (*s).clone(),
                bars,
            }
        })
        .collect();
    Chart {
        id: CHART_LAYERS,
        title: format!("Per-layer sparsity at target {}", percent(target)),
        note: None,
        x_label: "layer".into(),
        y_label: "sparsity (%)".into(),
        include_y: vec![0.0, 100.0],
        series: vec![],
        hlines: vec![],
        bars: Some(Bars { categories, series }),
        legend: legend(sets, &listed, opts, Kind::Bars, false),
    }
}

fn compute_chart(
    sets: &[ResultsSet<'_>],
    all: &[SeriesStyle],
    opts: &ChartOptions,
    target: f32,
) -> Chart {
    let axis = opts.compute_axis;
    let mut listed = Vec::new();
    let mut series = Vec::new();
    for s in all {
        let traces: Vec<report::ComputeTrace> =
            report::accuracy_vs_compute(sets[s.set].results, target, axis)
                .into_iter()
                .filter(|t| t.strategy == s.strategy)
                .collect();
        if traces.is_empty() {
            continue;
        }
        listed.push(s);
        if hidden(opts, s) {
            continue;
        }
        for trace in traces {
            series.push(Series {
                style: s.clone(),
                points: trace.points.iter().map(|q| [q[0], q[1] * 100.0]).collect(),
                band: None,
                // Each step labelled with the sparsity it reached: the path
                // passes through lower sparsities on its way to the target
                // (the dense start is not labelled).
                point_labels: trace
                    .sparsity
                    .iter()
                    .map(|&sp| {
                        if sp > 0.0 {
                            format!("{:.0}%", sp * 100.0)
                        } else {
                            String::new()
                        }
                    })
                    .collect(),
                width: 1.5,
                radius: 2.5,
            });
        }
    }
    Chart {
        id: CHART_COMPUTE,
        title: format!("Accuracy vs compute at target {}", percent(target)),
        note: None,
        x_label: match axis {
            ComputeAxis::Epochs => "fine-tuning epochs spent",
            ComputeAxis::Seconds => "seconds spent",
        }
        .into(),
        y_label: "test accuracy (%)".into(),
        include_y: vec![],
        series,
        hlines: vec![],
        bars: None,
        legend: legend(sets, &listed, opts, Kind::Lines, false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiment::{ComparisonResults, Status};
    use crate::report::chart::CHARTS;
    use crate::report::sample::sample_results;
    use crate::report::XAxis;

    fn set<'a>(name: &'a str, results: &'a ComparisonResults) -> ResultsSet<'a> {
        ResultsSet { name, results }
    }

    #[test]
    fn accuracy_chart_holds_the_curves_with_bands_and_baseline() {
        let r = sample_results(2, 3, 2, 4);
        let charts = compare_charts(&[set("a", &r)], &ChartOptions::default());
        assert_eq!(
            charts.charts.iter().map(|c| c.id).collect::<Vec<_>>(),
            CHARTS
        );
        let c = charts.get(CHART_SPARSITY).unwrap();
        assert_eq!(c.series.len(), 2);
        for s in &c.series {
            let curve = report::curve(&r, &s.style.strategy);
            let expect: Vec<[f64; 2]> = curve
                .points
                .iter()
                .map(|q| [f64::from(q.sparsity) * 100.0, f64::from(q.acc) * 100.0])
                .collect();
            assert_eq!(s.points, expect);
            let band = s.band.as_ref().expect("two seeds: a band");
            assert!(band.lo[0] < s.points[0][1] && s.points[0][1] < band.hi[0]);
        }
        assert_ne!(c.series[0].style.color, c.series[1].style.color);
        let (m, _) = report::dense_baseline(&r).unwrap();
        assert_eq!(c.hlines.len(), 1);
        assert_eq!(c.hlines[0].y, f64::from(m) * 100.0);
        let labels: Vec<&str> = c.legend.entries().map(|e| e.label.as_str()).collect();
        assert_eq!(labels, ["strategy 0", "strategy 1", "dense baseline"]);
        assert!(c.legend.sets.is_empty(), "one set: no set entries");
        // Options switch the band, the baseline and the axis.
        let opts = ChartOptions {
            show_band: false,
            show_dense: false,
            x_axis: XAxis::Compression,
            ..Default::default()
        };
        let c = compare_charts(&[set("a", &r)], &opts).charts.remove(0);
        assert!(c.hlines.is_empty() && c.series.iter().all(|s| s.band.is_none()));
        // The sample has no cost data: nothing on the compression axis.
        assert!(c.series.iter().all(|s| s.points.is_empty()));
        assert_eq!(c.x_label, XAxis::Compression.label());
        assert!(!c.legend.strategies.last().unwrap().shown);
    }

    #[test]
    fn several_sets_list_strategies_once_and_each_set_once() {
        let a = sample_results(2, 2, 1, 3);
        let b = sample_results(3, 2, 1, 3);
        let sets = [set("first (a)", &a), set("second (b)", &b)];
        let charts = compare_charts(&sets, &ChartOptions::default());
        let c = charts.get(CHART_SPARSITY).unwrap();
        assert_eq!(c.series.len(), 5);
        let labels: Vec<&str> = c.legend.strategies.iter().map(|e| &*e.label).collect();
        assert_eq!(
            labels,
            ["strategy 0", "strategy 1", "strategy 2", "dense baseline"]
        );
        let sets_listed: Vec<&str> = c.legend.sets.iter().map(|e| &*e.label).collect();
        assert_eq!(sets_listed, ["first (a)", "second (b)"]);
        assert_ne!(c.legend.sets[0].sample, c.legend.sets[1].sample);
        // One baseline per set, told apart by the set's dash.
        assert_eq!(c.hlines.len(), 2);
        assert_ne!(c.hlines[0].dash, c.hlines[1].dash);
        let bars = charts.get(CHART_LAYERS).unwrap();
        assert_eq!(bars.bars.as_ref().unwrap().series.len(), 5);
        assert_eq!(bars.legend.sets.len(), 2);
        assert!(matches!(bars.legend.sets[1].sample, Sample::Swatch { .. }));
    }

    #[test]
    fn hidden_strategies_leave_the_charts_but_stay_in_the_legend() {
        let r = sample_results(2, 2, 1, 3);
        let opts = ChartOptions {
            hidden: vec!["strategy 1".into()],
            ..Default::default()
        };
        let charts = compare_charts(&[set("a", &r)], &opts);
        for c in &charts.charts {
            let drawn: Vec<&str> = c
                .series
                .iter()
                .map(|s| &*s.style.strategy)
                .chain(
                    c.bars
                        .iter()
                        .flat_map(|b| b.series.iter().map(|s| &*s.style.strategy)),
                )
                .collect();
            assert!(
                !drawn.is_empty() && !drawn.contains(&"strategy 1"),
                "{}",
                c.id
            );
            let e = c
                .legend
                .strategies
                .iter()
                .find(|e| e.label == "strategy 1")
                .unwrap();
            assert!(!e.shown);
            assert_eq!(e.toggle, Some(Toggle::Strategy("strategy 1".into())));
        }
    }

    #[test]
    fn layer_and_compute_charts_at_the_chosen_target() {
        let r = sample_results(2, 3, 1, 4);
        let low = report::targets(&r)[0];
        let opts = ChartOptions {
            target: Some(low),
            ..Default::default()
        };
        let charts = compare_charts(&[set("a", &r)], &opts);
        assert_eq!(charts.target.target, Some(low));
        let c = charts.get(CHART_LAYERS).unwrap();
        assert!(c.title.ends_with(&percent(low)), "{}", c.title);
        let bars = c.bars.as_ref().unwrap();
        assert_eq!(bars.categories.len(), 4);
        let layers = report::layer_sparsity(&r, "strategy 0", low).unwrap();
        let values: Vec<f64> = bars.series[0].bars.iter().map(|b| b.value).collect();
        let expect: Vec<f64> = layers.iter().map(|(_, s)| f64::from(*s) * 100.0).collect();
        assert_eq!(values, expect);
        // Two strategies side by side in each group.
        assert!(bars.series[0].bars[0].x < bars.series[1].bars[0].x);
        let c = charts.get(CHART_COMPUTE).unwrap();
        // Strategy k takes k + 1 steps after the dense start.
        assert_eq!(c.series[1].points.len(), 3);
        assert_eq!(c.series[1].point_labels[0], "");
        assert_eq!(c.series[1].point_labels[2], format!("{:.0}%", low * 100.0));
    }

    #[test]
    fn the_target_falls_back_to_the_highest_with_data() {
        let mut r = sample_results(2, 2, 1, 3);
        let [low, top] = report::targets(&r)[..] else {
            panic!()
        };
        for run in r.runs.iter_mut().filter(|x| x.target == top) {
            run.status = Status::Cancelled;
        }
        let c = choose_target(&[set("a", &r)], None);
        assert_eq!((c.target, c.has_data), (Some(low), true));
        let c = choose_target(&[set("a", &r)], Some(top));
        assert_eq!((c.target, c.has_data), (Some(top), false));
        let charts = compare_charts(
            &[set("a", &r)],
            &ChartOptions {
                target: Some(top),
                ..Default::default()
            },
        );
        assert!(charts.get(CHART_LAYERS).unwrap().note.is_some());
        let empty = sample_results(1, 0, 1, 3);
        let charts = compare_charts(&[set("a", &empty)], &ChartOptions::default());
        assert_eq!(charts.charts.len(), 1, "no target: the accuracy chart only");
    }
}
