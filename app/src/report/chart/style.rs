//! How each strategy of each shown results set is drawn: one colour per
//! strategy name (whatever set it is in), and per set a line style, a marker
//! and a bar fill, so sets stay apart without longer legend entries.

use super::ResultsSet;
use crate::experiment::results::DENSE_CONTROL;
use crate::report;

/// A colour, 8 bits a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rgb(pub u8, pub u8, pub u8);

impl Rgb {
    /// `#rrggbb`, as SVG writes it.
    pub fn hex(self) -> String {
        format!("#{:02x}{:02x}{:02x}", self.0, self.1, self.2)
    }
}

/// The strategy colours, in the order strategy names first appear.
pub const PALETTE: [Rgb; 10] = [
    Rgb(31, 119, 180),
    Rgb(255, 127, 14),
    Rgb(44, 160, 44),
    Rgb(214, 39, 40),
    Rgb(148, 103, 189),
    Rgb(140, 86, 75),
    Rgb(227, 119, 194),
    Rgb(127, 127, 127),
    Rgb(188, 189, 34),
    Rgb(23, 190, 207),
];

/// The dense baseline's colour.
pub const BASELINE_COLOR: Rgb = Rgb(160, 160, 160);

/// The colour of legend samples that stand for a results set, not a strategy.
pub const NEUTRAL: Rgb = Rgb(90, 90, 90);

/// How opaque the band over seeds is drawn.
pub const BAND_OPACITY: f32 = 0.25;

/// The colour of the `i`-th strategy name.
pub fn color(i: usize) -> Rgb {
    PALETTE[i % PALETTE.len()]
}

/// A line's dash pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dash {
    /// Unbroken.
    Solid,
    /// Short dashes.
    Dense,
    /// Dots.
    Dotted,
    /// Long dashes with long gaps (the dense control).
    Loose,
}

impl Dash {
    /// Dash and gap lengths in points, as egui_plot draws them (a dash of
    /// 0 is a dot; `None`: solid).
    pub fn pattern(self) -> Option<[f32; 2]> {
        const GOLDEN: f32 = 0.618_034;
        match self {
            Dash::Solid => None,
            Dash::Dense => Some([5.0, 5.0 * GOLDEN]),
            Dash::Dotted => Some([0.0, 5.0]),
            Dash::Loose => Some([10.0, 10.0 * GOLDEN]),
        }
    }
}

/// A point marker's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Marker {
    /// A disc.
    Circle,
    /// A square.
    Square,
    /// A square on its corner.
    Diamond,
    /// A triangle pointing up.
    Triangle,
}

/// The line style of the `set`-th shown set: solid, then dashed, dotted.
pub fn set_dash(set: usize) -> Dash {
    [Dash::Solid, Dash::Dense, Dash::Dotted][set % 3]
}

/// The marker of the `set`-th shown set: circles, then squares, diamonds,
/// triangles.
pub fn set_marker(set: usize) -> Marker {
    [
        Marker::Circle,
        Marker::Square,
        Marker::Diamond,
        Marker::Triangle,
    ][set % 4]
}

/// How opaque the bars of the `set`-th shown set are filled (their outline
/// is the full colour).
pub fn set_fill(set: usize) -> f32 {
    [0.8, 0.45, 0.15][set % 3]
}

/// A strategy of one shown results set, as every chart draws it.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesStyle {
    /// Full name, for hover text: `set: strategy` when several sets are
    /// shown, else the strategy.
    pub label: String,
    /// Strategy label.
    pub strategy: String,
    /// Which shown set it belongs to (0 = the first).
    pub set: usize,
    /// One colour per strategy name, whatever set it is in.
    pub color: Rgb,
    /// The set's line style (loosely dashed for the dense control).
    pub dash: Dash,
    /// The set's marker.
    pub marker: Marker,
    /// The set's bar fill opacity.
    pub fill: f32,
}

impl SeriesStyle {
    /// Whether this is the dense control.
    pub fn is_control(&self) -> bool {
        self.strategy == DENSE_CONTROL
    }
}

/// Every strategy of every set, in set order then strategy order.
pub fn styles(sets: &[ResultsSet<'_>]) -> Vec<SeriesStyle> {
    let several = sets.len() > 1;
    let mut names: Vec<String> = Vec::new();
    let mut out = Vec::new();
    for (set, s) in sets.iter().enumerate() {
        for strategy in report::strategies(s.results) {
            let k = names
                .iter()
                .position(|n| n == &strategy)
                .unwrap_or_else(|| {
                    names.push(strategy.clone());
                    names.len() - 1
                });
            let control = strategy == DENSE_CONTROL;
            out.push(SeriesStyle {
                label: if several {
                    format!("{}: {strategy}", s.name)
                } else {
                    strategy.clone()
                },
                color: color(k),
                dash: if control { Dash::Loose } else { set_dash(set) },
                marker: set_marker(set),
                fill: set_fill(set),
                strategy,
                set,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::sample::sample_results;

    /// A strategy keeps its colour when another set is shown beside it; sets
    /// differ by line style, marker and bar fill.
    #[test]
    fn colours_follow_strategy_names_and_styles_follow_sets() {
        let a = sample_results(2, 2, 1, 3);
        let b = sample_results(3, 2, 1, 3);
        let set = |name, results| ResultsSet { name, results };
        let before: Vec<(String, Rgb)> = styles(&[set("a", &a)])
            .into_iter()
            .map(|s| (s.strategy, s.color))
            .collect();
        let after = styles(&[set("a", &a), set("b", &b)]);
        assert_eq!(after.len(), 5);
        for (name, c) in &before {
            assert!(after
                .iter()
                .filter(|s| &s.strategy == name)
                .all(|s| s.color == *c));
        }
        let first = after.iter().find(|s| s.set == 0).unwrap();
        let second = after.iter().find(|s| s.set == 1).unwrap();
        assert_ne!(first.marker, second.marker);
        assert_ne!(first.dash, second.dash);
        assert_ne!(first.fill, second.fill);
        assert_eq!(second.label, "b: strategy 0");
        // The third strategy, only in the second set, takes a new colour.
        let third = after.iter().find(|s| s.strategy == "strategy 2").unwrap();
        assert!(before.iter().all(|(_, c)| *c != third.color));
        assert_eq!(Rgb(31, 119, 180).hex(), "#1f77b4");
    }
}
