//! The Compare view's table of numbers: one row per strategy and target of
//! each shown results set (the dense baselines first), with cost, latency,
//! the saved models and the problems of its runs. Any column sorts (click
//! its header, again to reverse); the best value of each column at each
//! target is highlighted; long names and problems are cut with the whole
//! text on hover.

use std::path::PathBuf;

use eframe::egui::{self, Color32, Ui};

use crate::gui::command::{Action, LoadedResults};
use crate::gui::files::DialogPurpose;
use crate::model::export::ExportFormat;
use crate::report::{self, AccuracyPoint, TableRow, TableSort};

/// Which way a column is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Better {
    Higher,
    Lower,
    Neither,
}

/// The sortable columns: header and which way is better.
const COLUMNS: [(&str, Better); 11] = [
    ("strategy", Better::Neither),
    ("target", Better::Neither),
    ("sparsity", Better::Neither),
    ("test acc (%)", Better::Higher),
    ("after prune (%)", Better::Higher),
    ("compression", Better::Higher),
    ("speed-up", Better::Higher),
    ("latency b1 / b64 (ms)", Better::Lower),
    ("seeds", Better::Neither),
    ("epochs", Better::Lower),
    ("seconds", Better::Lower),
];

/// One cell: its text and the number it sorts and compares by.
#[derive(Debug, Clone, PartialEq)]
struct Cell {
    text: String,
    value: Option<f64>,
}

fn cell(text: impl Into<String>, value: Option<f64>) -> Cell {
    Cell {
        text: text.into(),
        value,
    }
}

fn dash() -> Cell {
    cell("-", None)
}

/// A row as drawn.
#[derive(Debug, Clone)]
struct Row {
    label: String,
    target: f32,
    /// A reference (dense baseline or control), never "best".
    reference: bool,
    cells: Vec<Cell>,
    files: Vec<(String, PathBuf)>,
    problems: Vec<String>,
}

fn point_cells(label: &str, target: f32, p: Option<&AccuracyPoint>) -> Vec<Cell> {
    let mut cells = vec![
        cell(label, None),
        cell(format!("{:.1}%", target * 100.0), Some(f64::from(target))),
    ];
    let Some(p) = p else {
        cells.extend(std::iter::repeat_n(dash(), COLUMNS.len() - 2));
        return cells;
    };
    let opt = |v: Option<f32>, f: &dyn Fn(f32) -> String| match v {
        Some(v) => cell(f(v), Some(f64::from(v))),
        None => dash(),
    };
    cells.extend([
        cell(
            format!("{:.2}%", p.sparsity * 100.0),
            Some(f64::from(p.sparsity)),
        ),
        cell(mean_pm(p.acc, p.acc_std, p.seeds), Some(f64::from(p.acc))),
        opt(p.pruned_acc, &|a| format!("{:.2}", a * 100.0)),
        opt(p.compression, &|c| format!("{c:.2}x")),
        opt(p.speedup, &|c| format!("{c:.2}x")),
        match p.latency_ms {
            Some((a, b)) => cell(format!("{a:.3} / {b:.3}"), Some(f64::from(a))),
            None => dash(),
        },
        cell(p.seeds.to_string(), Some(p.seeds as f64)),
        cell(format!("{:.1}", p.epochs), Some(f64::from(p.epochs))),
        cell(format!("{:.1}", p.seconds), Some(f64::from(p.seconds))),
    ]);
    cells
}

fn rows(sets: &[LoadedResults]) -> (Vec<Row>, Vec<Row>) {
    let several = sets.iter().filter(|s| s.shown).count() > 1;
    let (mut baselines, mut rows) = (Vec::new(), Vec::new());
    for set in sets.iter().filter(|s| s.shown) {
        let prefix = if several {
            format!("{}: ", set.name)
        } else {
            String::new()
        };
        let r = &set.results;
        if let Some((m, sd)) = report::dense_baseline(r) {
            let n = r.baselines.len();
            let mut cells = vec![
                cell(format!("{prefix}dense baseline"), None),
                cell("0%", Some(0.0)),
                cell("0%", Some(0.0)),
                cell(mean_pm(m, sd, n), Some(f64::from(m))),
            ];
            cells.extend(std::iter::repeat_n(cell("", None), 4));
            cells.push(cell(n.to_string(), Some(n as f64)));
            let epochs = f64::from(r.baselines[0].epochs);
            cells.push(cell(format!("{epochs}"), Some(epochs)));
            let secs = r.baselines.iter().map(|b| b.seconds).sum::<f64>() / n as f64;
            cells.push(cell(format!("{secs:.1}"), Some(secs)));
            let files = set
                .dir
                .iter()
                .flat_map(|d| {
                    r.baselines.iter().filter_map(move |b| {
                        let file = b.model_file.as_ref()?;
                        Some((format!("seed {}", b.seed), d.join(file)))
                    })
                })
                .filter(|(_, p)| p.is_file())
                .collect();
            baselines.push(Row {
                label: format!("{prefix}dense baseline"),
                target: 0.0,
                reference: true,
                cells,
                files,
                problems: vec![],
            });
        }
        for TableRow {
            strategy,
            target,
            point,
            problems,
        } in report::table(r)
        {
            let label = format!("{prefix}{strategy}");
            let files = set
                .dir
                .iter()
                .flat_map(|d| {
                    r.runs
                        .iter()
                        .filter(|run| {
                            run.strategy == strategy && (run.target - target).abs() < 1e-6
                        })
                        .filter_map(move |run| {
                            run.model_file
                                .as_ref()
                                .map(|f| (format!("seed {}", run.seed), d.join(f)))
                        })
                })
                .filter(|(_, p)| p.is_file())
                .collect();
            rows.push(Row {
                cells: point_cells(&label, target, point.as_ref()),
                reference: point.as_ref().is_some_and(|p| p.control),
                label,
                target,
                files,
                problems,
            });
        }
    }
    (baselines, rows)
}

/// Sorts `rows` by `sort` (text by label, numbers by value, missing last).
fn sort_rows(rows: &mut [Row], sort: TableSort) {
    rows.sort_by(|a, b| {
        let o = if sort.column == 0 {
            a.label.to_lowercase().cmp(&b.label.to_lowercase())
        } else {
            match (a.cells[sort.column].value, b.cells[sort.column].value) {
                (Some(x), Some(y)) => x.total_cmp(&y),
                (Some(_), None) => return std::cmp::Ordering::Less,
                (None, Some(_)) => return std::cmp::Ordering::Greater,
                (None, None) => std::cmp::Ordering::Equal,
            }
        };
        if sort.ascending {
            o
        } else {
            o.reverse()
        }
    });
}

/// For each column, the rows (by index) holding the best value at their
/// target: highest or lowest among the pruned strategies' rows.
fn best_cells(rows: &[Row]) -> Vec<Vec<bool>> {
    let mut best = vec![vec![false; COLUMNS.len()]; rows.len()];
    for (c, (_, better)) in COLUMNS.iter().enumerate() {
        if *better == Better::Neither {
            continue;
        }
        // `a` is better than `b` in this column.
        let better = |a: f64, b: f64| match better {
            Better::Higher => a > b,
            _ => a < b,
        };
        for (i, row) in rows.iter().enumerate() {
            let Some(v) = row.cells[c].value.filter(|_| !row.reference) else {
                continue;
            };
            let rivals: Vec<f64> = rows
                .iter()
                .filter(|o| !o.reference && (o.target - row.target).abs() < 1e-6)
                .filter_map(|o| o.cells[c].value)
                .collect();
            // Ties with every rival mark nothing: there is no best.
            best[i][c] =
                !rivals.iter().any(|&w| better(w, v)) && rivals.iter().any(|&w| better(v, w));
        }
    }
    best
}

fn save_model_menu(
    ui: &mut Ui,
    label: &str,
    files: &[(String, PathBuf)],
    actions: &mut Vec<Action>,
) {
    if files.is_empty() {
        ui.weak("-");
        return;
    }
    ui.menu_button(label, |ui| {
        for (text, path) in files {
            ui.menu_button(text, |ui| {
                for format in ExportFormat::ALL {
                    if ui.button(format.label()).clicked() {
                        let stem = path
                            .file_stem()
                            .map(|n| n.to_string_lossy().into_owned())
                            .unwrap_or_else(|| "model".into());
                        let name = format!("{stem}.{}", format.extension());
                        actions.push(Action::dialog(
                            DialogPurpose::SaveModel(path.clone(), format),
                            name,
                        ));
                    }
                }
            });
        }
    });
}

/// A header that sorts by its column when clicked (again: the other way),
/// with a small triangle on the sorted one.
fn header(ui: &mut Ui, c: usize, sort: &mut Option<TableSort>) {
    let (text, _) = COLUMNS[c];
    let on = sort.filter(|s| s.column == c);
    let r = ui
        .horizontal(|ui| {
            let r = ui
                .add(egui::Button::new(egui::RichText::new(text).strong()).frame(false))
                .on_hover_text("sort by this column (click again to reverse)");
            let (mark, _) = ui.allocate_exact_size(egui::vec2(10.0, 10.0), egui::Sense::hover());
            if let Some(s) = on {
                let (x, y) = (mark.center().x, mark.center().y);
                let (tip, base) = if s.ascending {
                    (-3.0, 3.0)
                } else {
                    (3.0, -3.0)
                };
                ui.painter().add(egui::Shape::convex_polygon(
                    vec![
                        egui::pos2(x - 4.0, y + base),
                        egui::pos2(x + 4.0, y + base),
                        egui::pos2(x, y + tip),
                    ],
                    ui.visuals().strong_text_color(),
                    egui::Stroke::NONE,
                ));
            }
            r
        })
        .inner;
    if r.clicked() {
        *sort = Some(TableSort {
            column: c,
            // Better-is-higher columns start with the best on top.
            ascending: match on {
                Some(s) => !s.ascending,
                None => COLUMNS[c].1 != Better::Higher,
            },
        });
    }
}

/// Best values are drawn in this colour.
const BEST: Color32 = Color32::from_rgb(60, 170, 90);

/// Draws the table of numbers of the shown sets, sorted by `sort` (`None`:
/// set, strategy and target order).
pub fn show(
    ui: &mut Ui,
    sets: &[LoadedResults],
    sort: &mut Option<TableSort>,
    actions: &mut Vec<Action>,
) {
    let (baselines, mut rows) = rows(sets);
    if let Some(s) = *sort {
        sort_rows(&mut rows, s);
    }
    let best = best_cells(&rows);
    ui.horizontal(|ui| {
        ui.weak("Click a header to sort; the best value of each column at each target is green.");
        if sort.is_some() && ui.small_button("original order").clicked() {
            *sort = None;
        }
    });
    egui::Grid::new("numbers")
        .striped(true)
        .num_columns(COLUMNS.len() + 2)
        .show(ui, |ui| {
            for c in 0..COLUMNS.len() {
                header(ui, c, sort);
            }
            ui.strong("model");
            ui.strong("problems");
            ui.end_row();
            let all = baselines
                .iter()
                .map(|r| (r, None))
                .chain(rows.iter().zip(best.iter().map(Some)));
            for (row, best) in all {
                for (c, cell) in row.cells.iter().enumerate() {
                    let is_best = best.is_some_and(|b| b[c]);
                    let text = egui::RichText::new(&cell.text);
                    let text = if is_best {
                        text.color(BEST).strong()
                    } else {
                        text
                    };
                    if c == 0 {
                        ui.add_sized(
                            [200.0, ui.spacing().interact_size.y],
                            egui::Label::new(text).truncate(),
                        )
                        .on_hover_text(&row.label);
                    } else {
                        let r = ui.label(text);
                        if is_best {
                            r.on_hover_text("best at this target");
                        }
                    }
                }
                save_model_menu(ui, "Save…", &row.files, actions);
                problems(ui, &row.problems);
                ui.end_row();
            }
        });
}

/// The problems of a row: how many and the first, cut to fit, all on hover.
fn problems(ui: &mut Ui, problems: &[String]) {
    let Some(first) = problems.first() else {
        ui.label("");
        return;
    };
    let text = if problems.len() == 1 {
        first.clone()
    } else {
        format!("{} problems: {first}", problems.len())
    };
    ui.add_sized(
        [260.0, ui.spacing().interact_size.y],
        egui::Label::new(egui::RichText::new(text).color(ui.visuals().error_fg_color)).truncate(),
    )
    .on_hover_text(problems.join("\n"));
}

/// `91.20 ± 0.35` (in %) over several seeds, `91.20` for one (its deviation
/// is not 0, it is unknown).
fn mean_pm(mean: f32, std: f32, seeds: usize) -> String {
    if seeds > 1 {
        format!("{:.2} ± {:.2}", mean * 100.0, std * 100.0)
    } else {
        format!("{:.2}", mean * 100.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::sample::sample_results;

    #[test]
    fn one_seed_has_no_deviation() {
        assert_eq!(mean_pm(0.912, 0.0, 1), "91.20");
        assert_eq!(mean_pm(0.912, 0.0035, 3), "91.20 ± 0.35");
    }

    fn set() -> LoadedResults {
        let mut results = sample_results(3, 2, 2, 3);
        // Strategies differ: the second is best everywhere.
        for run in &mut results.runs {
            let bonus = if run.strategy == "strategy 1" {
                0.05
            } else {
                0.0
            };
            for step in &mut run.steps {
                step.test.acc += bonus;
            }
        }
        LoadedResults {
            id: 1,
            name: "set".into(),
            dir: None,
            file: None,
            results,
            shown: true,
            live: false,
        }
    }

    /// Rows sort by any column either way (missing values last), and the
    /// best value at each target is marked once per column, never on a
    /// reference row.
    #[test]
    fn rows_sort_and_the_best_per_target_is_marked() {
        let (baselines, mut rows) = rows(&[set()]);
        assert_eq!(baselines.len(), 1);
        assert_eq!(rows.len(), 3 * 2);
        let acc = 3;
        sort_rows(
            &mut rows,
            TableSort {
                column: acc,
                ascending: false,
            },
        );
        let vals: Vec<f64> = rows.iter().filter_map(|r| r.cells[acc].value).collect();
        assert!(vals.windows(2).all(|w| w[0] >= w[1]), "{vals:?}");
        sort_rows(
            &mut rows,
            TableSort {
                column: 0,
                ascending: true,
            },
        );
        assert!(rows.windows(2).all(|w| w[0].label <= w[1].label));
        let best = best_cells(&rows);
        for target in [
            rows[0].target,
            rows.iter().map(|r| r.target).fold(0.0, f32::max),
        ] {
            let at: Vec<usize> = (0..rows.len())
                .filter(|&i| (rows[i].target - target).abs() < 1e-6)
                .collect();
            let marked: Vec<usize> = at.iter().copied().filter(|&i| best[i][acc]).collect();
            assert_eq!(marked.len(), 1, "one best test accuracy at {target}");
            let top = at
                .iter()
                .map(|&i| rows[i].cells[acc].value.unwrap())
                .fold(f64::MIN, f64::max);
            assert_eq!(rows[marked[0]].cells[acc].value, Some(top));
            assert!(rows[marked[0]].label.contains("strategy 1"));
        }
        assert!(
            best.iter().all(|b| !b[0] && !b[1]),
            "text columns have no best"
        );
    }
}
