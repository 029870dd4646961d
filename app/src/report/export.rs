//! Writes the Compare charts into a folder, each as `<chart-id>.svg` and
//! `<chart-id>.png` (the SVG rasterised), for the command line.

use std::path::{Path, PathBuf};

use super::chart::Charts;
use super::raster::{rasterise, SCALE};
use super::svg;
use crate::error::{Error, Result};
use crate::fsutil::write_atomic;

/// Writes every chart of `charts` into `dir` (created if needed) and
/// returns the files written. Errors name the file or folder; files already
/// written stay.
pub fn write_charts(dir: &Path, charts: &Charts) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let mut written = Vec::new();
    for chart in &charts.charts {
        let text = svg::render(chart);
        let png = rasterise(&text, SCALE).map_err(|source| Error::Chart {
            chart: chart.id.to_string(),
            source,
        })?;
        for (ext, bytes) in [("svg", text.as_bytes()), ("png", &png[..])] {
            let path = dir.join(format!("{}.{ext}", chart.id));
            write_atomic(&path, bytes)?;
            written.push(path);
        }
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::chart::{compare_charts, ChartOptions, ResultsSet, CHARTS};
    use crate::report::sample::sample_results;
    use resvg::tiny_skia::Pixmap;

    fn charts() -> Charts {
        let r = sample_results(3, 3, 2, 5);
        let set = ResultsSet {
            name: "sample",
            results: &r,
        };
        compare_charts(&[set], &ChartOptions::default())
    }

    #[test]
    fn each_chart_is_written_as_svg_and_a_png_of_it() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("charts/new");
        let files = write_charts(&out, &charts()).unwrap();
        assert_eq!(files.len(), 6);
        for id in CHARTS {
            let svg = std::fs::read_to_string(out.join(format!("{id}.svg"))).unwrap();
            let tree =
                resvg::usvg::Tree::from_str(&svg, &crate::report::raster::options()).unwrap();
            let png = std::fs::read(out.join(format!("{id}.png"))).unwrap();
            let p = Pixmap::decode_png(&png).unwrap();
            let scale = f64::from(SCALE);
            assert_eq!(
                (f64::from(p.width()), f64::from(p.height())),
                (
                    (f64::from(tree.size().width()) * scale).round(),
                    (f64::from(tree.size().height()) * scale).round()
                )
            );
            // Not blank: white background, dark text, the strategies' colours.
            let px = p.pixels();
            let white = px
                .iter()
                .filter(|c| c.red() == 255 && c.green() == 255 && c.blue() == 255)
                .count();
            let dark = px
                .iter()
                .filter(|c| c.red() < 90 && c.green() < 90 && c.blue() < 90)
                .count();
            let first = crate::report::chart::color(0);
            let blue = px
                .iter()
                .filter(|c| (c.red(), c.green(), c.blue()) == (first.0, first.1, first.2))
                .count();
            assert!(white > px.len() / 2, "{id}: background");
            assert!(dark > 2000, "{id}: text and axes ({dark} dark pixels)");
            assert!(blue > 200, "{id}: the first strategy ({blue} pixels)");
        }
    }

    #[test]
    fn an_unwritable_folder_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a-file");
        std::fs::write(&file, b"x").unwrap();
        let e = write_charts(&file.join("charts"), &charts())
            .unwrap_err()
            .to_string();
        assert!(e.contains("a-file"), "{e}");
        let e = write_charts(&file, &charts()).unwrap_err().to_string();
        assert!(e.contains("a-file"), "{e}");
    }
}
