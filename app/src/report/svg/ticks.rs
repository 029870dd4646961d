//! Axis ranges and "nice" tick marks (1, 2 or 5 times a power of ten), and
//! how tick values are written.

/// A closed range of chart values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Range {
    /// Low end.
    pub min: f64,
    /// High end.
    pub max: f64,
}

impl Range {
    /// The smallest range holding every finite value of `values`; `None`
    /// without any.
    pub fn of(values: impl IntoIterator<Item = f64>) -> Option<Range> {
        values
            .into_iter()
            .filter(|v| v.is_finite())
            .fold(None, |r, v| match r {
                None => Some(Range { min: v, max: v }),
                Some(r) => Some(Range {
                    min: r.min.min(v),
                    max: r.max.max(v),
                }),
            })
    }

    /// The range widened by `fraction` of its span on each side (a single
    /// value gets a span of its own first, so it does not sit on an edge).
    pub fn padded(self, fraction: f64) -> Range {
        let span = self.max - self.min;
        let span = if span > 0.0 {
            span
        } else {
            self.max.abs().max(1.0) * 0.2
        };
        let (min, max) = if self.max > self.min {
            (self.min, self.max)
        } else {
            (self.min - span / 2.0, self.max + span / 2.0)
        };
        Range {
            min: min - span * fraction,
            max: max + span * fraction,
        }
    }

    /// Where `v` falls, from 0 (min) to 1 (max).
    pub fn fraction(self, v: f64) -> f64 {
        (v - self.min) / (self.max - self.min)
    }
}

/// The nice step for about `count` ticks over `span`.
pub fn step(span: f64, count: usize) -> f64 {
    let raw = span / count.max(1) as f64;
    if raw <= 0.0 || !raw.is_finite() {
        return 1.0;
    }
    let power = 10f64.powf(raw.log10().floor());
    let m = raw / power;
    let nice = if m <= 1.0 {
        1.0
    } else if m <= 2.0 {
        2.0
    } else if m <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * power
}

/// Tick values inside `r`, `step` apart, on multiples of `step`.
pub fn ticks(r: Range, step: f64) -> Vec<f64> {
    let first = (r.min / step).ceil() as i64;
    let last = (r.max / step).floor() as i64;
    (first..=last).map(|i| i as f64 * step).collect()
}

/// `v` with as many decimals as `step` needs (`-0` written `0`).
pub fn label(v: f64, step: f64) -> String {
    let decimals = (-step.log10().floor()).max(0.0) as usize;
    let s = format!("{v:.decimals$}");
    if s.trim_start_matches('-')
        .chars()
        .all(|c| c == '0' || c == '.')
    {
        s.trim_start_matches('-').to_string()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_one_two_or_five_times_a_power_of_ten() {
        assert_eq!(step(100.0, 5), 20.0);
        assert_eq!(step(7.0, 5), 2.0);
        assert_eq!(step(0.35, 6), 0.1);
        assert_eq!(step(0.0, 5), 1.0);
        let t = ticks(
            Range {
                min: 47.5,
                max: 101.0,
            },
            10.0,
        );
        assert_eq!(t, [50.0, 60.0, 70.0, 80.0, 90.0, 100.0]);
        assert_eq!(label(0.5, 0.1), "0.5");
        assert_eq!(label(-0.0, 1.0), "0");
        assert_eq!(label(-1e-12, 0.5), "0.0");
        assert_eq!(label(80.0, 20.0), "80");
    }

    #[test]
    fn ranges_hold_their_values_and_pad() {
        let r = Range::of([3.0, f64::NAN, 1.0, 2.0]).unwrap();
        assert_eq!(r, Range { min: 1.0, max: 3.0 });
        let p = r.padded(0.05);
        assert!((p.min - 0.9).abs() < 1e-9 && (p.max - 3.1).abs() < 1e-9);
        let one = Range::of([5.0]).unwrap().padded(0.0);
        assert!(one.min < 5.0 && one.max > 5.0);
        assert_eq!(r.fraction(2.0), 0.5);
        assert!(Range::of([]).is_none());
    }
}
