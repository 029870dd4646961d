//! A chart description ([`Chart`]) as standalone SVG text, written directly:
//! title, axes with nice ticks and gridlines, bands, reference lines, bars,
//! dashed lines with markers, point labels, and the legend outside the plot
//! area (to its right). The output depends on the chart alone.

mod layout;
mod ticks;

use layout::{Frame, Layout};

use super::chart::{Chart, Dash, LegendEntry, Marker, Rgb, Sample, BAND_OPACITY};

/// Body text size (ticks, legend), in pixels.
const FONT: f64 = 12.0;
/// Tick label size.
const TICK_FONT: f64 = 11.0;
/// Title size.
const TITLE_FONT: f64 = 16.0;
/// Point label size.
const SMALL_FONT: f64 = 10.0;
/// Height of one legend row.
const LEGEND_ROW: f64 = 18.0;
/// Width of a legend sample.
const SAMPLE_W: f64 = 28.0;

/// `chart` as an SVG document.
pub fn render(chart: &Chart) -> String {
    let l = Layout::of(chart);
    let mut s = Svg(String::new());
    s.push(format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" font-family=\"sans-serif\" font-size=\"{FONT}\">",
        w = n(l.width),
        h = n(l.height)
    ));
    s.push(format!(
        "<rect width=\"{}\" height=\"{}\" fill=\"#ffffff\"/>",
        n(l.width),
        n(l.height)
    ));
    s.text(l.plot.x0, 26.0, TITLE_FONT, "#222222", "start", &l.title);
    if let Some(note) = &l.note {
        s.text(l.plot.x0, 46.0, FONT, "#b35900", "start", note);
    }
    axes(&mut s, chart, &l);
    s.push(format!(
        "<defs><clipPath id=\"plot-area\"><rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\"/></clipPath></defs>",
        n(l.plot.x0),
        n(l.plot.y0),
        n(l.plot.width()),
        n(l.plot.height())
    ));
    s.push("<g clip-path=\"url(#plot-area)\">".into());
    data(&mut s, chart, &l.plot);
    s.push("</g>".into());
    legend(&mut s, chart, &l);
    s.push("</svg>".into());
    s.0
}

/// Text being written, one element a line.
struct Svg(String);

impl Svg {
    fn push(&mut self, line: String) {
        self.0.push_str(&line);
        self.0.push('\n');
    }

    fn text(&mut self, x: f64, y: f64, size: f64, fill: &str, anchor: &str, text: &str) {
        self.push(format!(
            "<text x=\"{}\" y=\"{}\" font-size=\"{}\" fill=\"{fill}\" text-anchor=\"{anchor}\">{}</text>",
            n(x),
            n(y),
            n(size),
            escape(text)
        ));
    }

    fn line(&mut self, (x0, y0): (f64, f64), (x1, y1): (f64, f64), stroke: &str, width: f64) {
        self.push(format!(
            "<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"{stroke}\" stroke-width=\"{}\"/>",
            n(x0),
            n(y0),
            n(x1),
            n(y1),
            n(width)
        ));
    }

    fn polyline(&mut self, points: &[(f64, f64)], color: Rgb, width: f64, dash: Dash) {
        if points.len() < 2 {
            return;
        }
        self.push(format!(
            "<polyline points=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"{}\" stroke-linejoin=\"round\" stroke-linecap=\"{}\"{}/>",
            path(points),
            color.hex(),
            n(width),
            if dash == Dash::Dotted { "round" } else { "butt" },
            dasharray(dash)
        ));
    }

    fn marker(&mut self, m: Marker, (x, y): (f64, f64), r: f64, color: Rgb) {
        let fill = color.hex();
        self.push(match m {
            Marker::Circle => format!(
                "<circle cx=\"{}\" cy=\"{}\" r=\"{}\" fill=\"{fill}\"/>",
                n(x),
                n(y),
                n(r)
            ),
            Marker::Square => format!(
                "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{fill}\"/>",
                n(x - r),
                n(y - r),
                n(2.0 * r),
                n(2.0 * r)
            ),
            Marker::Diamond => {
                let d = r * 1.3;
                format!(
                    "<polygon points=\"{}\" fill=\"{fill}\"/>",
                    path(&[(x, y - d), (x + d, y), (x, y + d), (x - d, y)])
                )
            }
            Marker::Triangle => {
                let d = r * 1.3;
                format!(
                    "<polygon points=\"{}\" fill=\"{fill}\"/>",
                    path(&[(x, y - d), (x + d, y + d * 0.8), (x - d, y + d * 0.8)])
                )
            }
        });
    }
}

/// Gridlines, tick labels, the plot frame and the axis labels.
fn axes(s: &mut Svg, chart: &Chart, l: &Layout) {
    let p = &l.plot;
    for (y, label) in &l.y_ticks {
        let py = p.y(*y);
        s.line((p.x0, py), (p.x1, py), "#e6e6e6", 1.0);
        s.text(p.x0 - 6.0, py + 4.0, TICK_FONT, "#444444", "end", label);
    }
    for (x, label) in &l.x_ticks {
        let px = p.x(*x);
        if chart.bars.is_none() {
            s.line((px, p.y0), (px, p.y1), "#e6e6e6", 1.0);
        }
        if l.rotate_x_ticks {
            s.push(format!(
                "<text transform=\"translate({},{}) rotate(-45)\" font-size=\"{TICK_FONT}\" fill=\"#444444\" text-anchor=\"end\">{}</text>",
                n(px + 3.0),
                n(p.y1 + 12.0),
                escape(label)
            ));
        } else {
            s.text(px, p.y1 + 16.0, TICK_FONT, "#444444", "middle", label);
        }
    }
    s.push(format!(
        "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#999999\" stroke-width=\"1\"/>",
        n(p.x0),
        n(p.y0),
        n(p.width()),
        n(p.height())
    ));
    s.text(
        (p.x0 + p.x1) / 2.0,
        l.height - 12.0,
        FONT,
        "#222222",
        "middle",
        &chart.x_label,
    );
    s.push(format!(
        "<text transform=\"translate(18,{}) rotate(-90)\" font-size=\"{FONT}\" fill=\"#222222\" text-anchor=\"middle\">{}</text>",
        n((p.y0 + p.y1) / 2.0),
        escape(&chart.y_label)
    ));
}

/// Bands, reference lines, bars, lines, markers and point labels.
fn data(s: &mut Svg, chart: &Chart, p: &Frame) {
    for series in &chart.series {
        if let Some(band) = &series.band {
            let upper = series
                .points
                .iter()
                .zip(&band.hi)
                .map(|(q, hi)| (q[0], *hi));
            let lower = series
                .points
                .iter()
                .zip(&band.lo)
                .map(|(q, lo)| (q[0], *lo));
            let ring: Vec<(f64, f64)> = upper
                .chain(lower.rev())
                .map(|(x, y)| (p.x(x), p.y(y)))
                .collect();
            s.push(format!(
                "<polygon points=\"{}\" fill=\"{}\" fill-opacity=\"{BAND_OPACITY}\" stroke=\"none\"/>",
                path(&ring),
                series.style.color.hex()
            ));
        }
    }
    for h in &chart.hlines {
        let y = p.y(h.y);
        s.polyline(&[(p.x0, y), (p.x1, y)], h.color, 1.5, h.dash);
    }
    for b in chart.bars.iter().flat_map(|b| &b.series) {
        for bar in &b.bars {
            let (top, bottom) = (p.y(bar.value.max(0.0)), p.y(bar.value.min(0.0)));
            let (left, right) = (p.x(bar.x - bar.width / 2.0), p.x(bar.x + bar.width / 2.0));
            s.push(format!(
                "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{}\" fill-opacity=\"{}\"/>",
                n(left),
                n(top),
                n(right - left),
                n(bottom - top),
                b.style.color.hex(),
                b.style.fill
            ));
        }
    }
    for series in &chart.series {
        let pts: Vec<(f64, f64)> = series
            .points
            .iter()
            .map(|q| (p.x(q[0]), p.y(q[1])))
            .collect();
        let st = &series.style;
        s.polyline(&pts, st.color, f64::from(series.width), st.dash);
        for q in &pts {
            s.marker(st.marker, *q, f64::from(series.radius), st.color);
        }
        for (q, label) in pts.iter().zip(&series.point_labels) {
            if !label.is_empty() {
                s.text(
                    q.0 + 3.0,
                    q.1 - 4.0,
                    SMALL_FONT,
                    &st.color.hex(),
                    "start",
                    label,
                );
            }
        }
    }
}

/// The legend to the right of the plot: shown strategies, then the sets.
fn legend(s: &mut Svg, chart: &Chart, l: &Layout) {
    let x = l.legend_x;
    let mut y = l.plot.y0 + 4.0;
    let row = |s: &mut Svg, e: &LegendEntry, y: f64| {
        let cy = y + LEGEND_ROW / 2.0;
        match e.sample {
            Sample::Line {
                color,
                dash,
                marker,
            } => {
                s.polyline(&[(x, cy), (x + SAMPLE_W, cy)], color, 2.0, dash);
                if let Some(m) = marker {
                    s.marker(m, (x + SAMPLE_W / 2.0, cy), 3.5, color);
                }
            }
            Sample::Swatch { color, opacity } => s.push(format!(
                "<rect x=\"{}\" y=\"{}\" width=\"12\" height=\"12\" fill=\"{}\" fill-opacity=\"{opacity}\"/>",
                n(x + SAMPLE_W / 2.0 - 6.0),
                n(cy - 6.0),
                color.hex()
            )),
        }
        let text = layout::fit(&e.label, l.legend_text_w, FONT);
        s.text(
            x + SAMPLE_W + 6.0,
            cy + 4.0,
            FONT,
            "#222222",
            "start",
            &text,
        );
    };
    for e in chart.legend.strategies.iter().filter(|e| e.shown) {
        row(s, e, y);
        y += LEGEND_ROW;
    }
    if !chart.legend.sets.is_empty() {
        y += 6.0;
        s.text(x, y + 12.0, TICK_FONT, "#666666", "start", "results sets");
        y += LEGEND_ROW;
        for e in &chart.legend.sets {
            row(s, e, y);
            y += LEGEND_ROW;
        }
    }
}

/// SVG's `stroke-dasharray` attribute for `dash` (none for solid lines).
fn dasharray(dash: Dash) -> String {
    match dash.pattern() {
        None => String::new(),
        // A dot: a dash of (almost) no length with round caps.
        Some([d, gap]) => format!(" stroke-dasharray=\"{} {}\"", d.max(0.01), gap),
    }
}

/// Points as `x,y x,y ...`.
fn path(points: &[(f64, f64)]) -> String {
    points
        .iter()
        .map(|(x, y)| format!("{},{}", n(*x), n(*y)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A coordinate with two decimals (the same text for the same chart).
fn n(v: f64) -> String {
    format!("{v:.2}")
}

/// `text` with XML's special characters escaped.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::chart::{compare_charts, ChartOptions, ResultsSet};
    use crate::report::raster;
    use crate::report::sample::sample_results;

    fn texts(svg: &str) -> Vec<String> {
        let doc = resvg::usvg::roxmltree::Document::parse(svg).unwrap();
        doc.descendants()
            .filter(|n| n.has_tag_name("text"))
            .map(|n| n.text().unwrap_or_default().to_string())
            .collect()
    }

    #[test]
    fn every_chart_parses_and_names_every_legend_entry() {
        let a = sample_results(3, 4, 2, 6);
        let mut b = sample_results(2, 4, 2, 6);
        b.config.strategies[1].name = Some("<wanda> & \"friends\"".into());
        for run in b.runs.iter_mut().filter(|r| r.strategy == "strategy 1") {
            run.strategy = "<wanda> & \"friends\"".into();
        }
        let sets = [
            ResultsSet {
                name: "first",
                results: &a,
            },
            ResultsSet {
                name: "second",
                results: &b,
            },
        ];
        let charts = compare_charts(&sets, &ChartOptions::default());
        assert_eq!(charts.charts.len(), 3);
        for chart in &charts.charts {
            let svg = render(chart);
            assert_eq!(svg, render(chart), "the same chart, the same text");
            let tree = resvg::usvg::Tree::from_str(&svg, &raster::options())
                .unwrap_or_else(|e| panic!("{}: {e}\n{svg}", chart.id));
            assert_eq!(tree.size().width(), 900.0);
            let t = texts(&svg);
            for e in chart.legend.entries() {
                assert!(
                    t.contains(&e.label),
                    "{}: no `{}` in {t:?}",
                    chart.id,
                    e.label
                );
            }
            assert!(t.contains(&chart.title) && t.contains(&chart.x_label));
            assert!(svg.contains("&lt;wanda&gt; &amp; &quot;friends&quot;"));
            // The legend is outside the plot area.
            let l = Layout::of(chart);
            assert!(l.legend_x > l.plot.x1);
        }
        let acc = &charts.charts[0];
        let svg = render(acc);
        // Two sets: solid and dashed lines, circles and squares, bands.
        assert!(svg.contains("stroke-dasharray=\"5 3.09017\""), "{svg}");
        assert!(svg.contains("<circle") && svg.contains("fill-opacity=\"0.25\""));
        assert_eq!(acc.legend.entries().count(), 4 + 1 + 2);
        assert_eq!(
            svg.matches("<polyline").count(),
            acc.series.len() + acc.hlines.len() + acc.legend.entries().count(),
            "a line per series and baseline, a legend sample per entry"
        );
    }

    #[test]
    fn hidden_strategies_and_long_names_stay_out_of_the_way() {
        let mut r = sample_results(2, 2, 1, 40);
        let long = "a strategy with a very long name that would cover the plot";
        r.config.strategies[0].name = Some(long.into());
        for run in r.runs.iter_mut().filter(|x| x.strategy == "strategy 0") {
            run.strategy = long.into();
        }
        let opts = ChartOptions {
            hidden: vec!["strategy 1".into()],
            ..Default::default()
        };
        let set = ResultsSet {
            name: "one",
            results: &r,
        };
        let charts = compare_charts(&[set], &opts);
        for chart in &charts.charts {
            let svg = render(chart);
            let t = texts(&svg);
            assert!(!t.iter().any(|x| x == "strategy 1"), "{}", chart.id);
            assert!(t
                .iter()
                .any(|x| x.starts_with("a strategy with") && x.ends_with('…')));
            let l = Layout::of(chart);
            assert!(l.plot.width() > 500.0, "{}: {}", chart.id, l.plot.width());
        }
        // 40 layers: turned labels, every one at this width.
        let layers = Layout::of(charts.get(crate::report::chart::CHART_LAYERS).unwrap());
        assert!(layers.rotate_x_ticks);
        assert!(layers.x_ticks.len() >= 20, "{}", layers.x_ticks.len());
    }

    #[test]
    fn special_characters_are_escaped() {
        assert_eq!(
            escape("a<b & 'c' \"d\">"),
            "a&lt;b &amp; &apos;c&apos; &quot;d&quot;&gt;"
        );
        assert_eq!(escape("bell\u{7}"), "bell");
    }
}
