//! The embedded default dataset: ten classes of procedurally drawn 28x28 grey
//! glyphs ("embedded-glyphs"), generated in code so the app works without any
//! download.
//!
//! Each sample is its class's shape (ring, cross, triangle, square, diagonal
//! bar, T, L, zigzag, two dots, spiral) with a hand-drawn wobble on every
//! vertex, placed with a random affine map (rotation ±20°, scale 0.8–1.2 with
//! slight anisotropy, shear, shift ±3 px), rasterised with anti-aliased thick
//! strokes of random width and ink, then sometimes partly occluded or crossed
//! by a distracting stroke, over a faint random background gradient, plus
//! gaussian noise. Labels are never noisy: the difficulty comes from the
//! drawing alone.
//!
//! Every sample has its own RNG seeded from `(seed, split, index)`, so the
//! output is identical byte for byte for the same seed, whatever the thread
//! count, and generation runs in parallel.

use std::f32::consts::PI;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::{mix_seed, Dataset};

/// Side of a glyph image in pixels (images are 1 x 28 x 28).
pub const GLYPH_SIZE: usize = 28;

/// Names of the ten glyph classes, indexed by label.
pub const GLYPH_CLASS_NAMES: [&str; 10] = [
    "ring",
    "cross",
    "triangle",
    "square",
    "diagonal bar",
    "T",
    "L",
    "zigzag",
    "two dots",
    "spiral",
];

/// Stream tag mixed into per-sample seeds.
const GLYPH_STREAM: u64 = 0x0047_4c59_5048;
/// Pixels per unit of the template coordinate system (templates span about
/// [-0.8, 0.8]).
const UNIT_PX: f32 = 8.5;
/// Samples per thread below which generation stays on one thread.
const PAR_CHUNK: usize = 256;

/// One anti-aliased stroke segment in pixel coordinates.
#[derive(Clone, Copy, Debug)]
struct Seg {
    ax: f32,
    ay: f32,
    bx: f32,
    by: f32,
    /// Half the stroke width, in pixels.
    hw: f32,
    /// Ink intensity of the stroke's core.
    ink: f32,
}

/// Rasterises `seg` into `img` (28x28), keeping the maximum coverage.
fn draw_seg(img: &mut [f32], seg: Seg) {
    let s = GLYPH_SIZE as f32;
    let reach = seg.hw + 1.0;
    let x0 = (seg.ax.min(seg.bx) - reach).floor().max(0.0);
    let x1 = (seg.ax.max(seg.bx) + reach).ceil().min(s - 1.0);
    let y0 = (seg.ay.min(seg.by) - reach).floor().max(0.0);
    let y1 = (seg.ay.max(seg.by) + reach).ceil().min(s - 1.0);
    if x0 > x1 || y0 > y1 {
        return;
    }
    let (dx, dy) = (seg.bx - seg.ax, seg.by - seg.ay);
    let len2 = dx * dx + dy * dy;
    let inv = if len2 > 1e-12 { 1.0 / len2 } else { 0.0 };
    for y in y0 as usize..=y1 as usize {
        let py = y as f32 + 0.5;
        let row = &mut img[y * GLYPH_SIZE..(y + 1) * GLYPH_SIZE];
        for (x, px_val) in row
            .iter_mut()
            .enumerate()
            .take(x1 as usize + 1)
            .skip(x0 as usize)
        {
            let px = x as f32 + 0.5;
            let t = (((px - seg.ax) * dx + (py - seg.ay) * dy) * inv).clamp(0.0, 1.0);
            let ex = px - (seg.ax + t * dx);
            let ey = py - (seg.ay + t * dy);
            let d = (ex * ex + ey * ey).sqrt();
            let cov = (seg.hw + 0.5 - d).clamp(0.0, 1.0) * seg.ink;
            if cov > *px_val {
                *px_val = cov;
            }
        }
    }
}

/// A polyline of the template (unit coordinates) and its width multiplier.
type Stroke = (Vec<(f32, f32)>, f32);

fn arc(cx: f32, cy: f32, r0: f32, r1: f32, a0: f32, a1: f32, steps: usize) -> Vec<(f32, f32)> {
    (0..=steps)
        .map(|i| {
            let t = i as f32 / steps as f32;
            let a = a0 + (a1 - a0) * t;
            let r = r0 + (r1 - r0) * t;
            (cx + r * a.cos(), cy + r * a.sin())
        })
        .collect()
}

/// The template strokes of class `class`, with per-sample shape variation.
/// Coordinates: x right, y down, glyph roughly within [-0.8, 0.8].
fn template(class: usize, rng: &mut StdRng) -> Vec<Stroke> {
    let mut u = |lo: f32, hi: f32| rng.random_range(lo..hi);
    match class {
        // Ring: a closed circle.
        0 => {
            let r = u(0.55, 0.75);
            let a0 = u(0.0, 2.0 * PI);
            vec![(arc(0.0, 0.0, r, r, a0, a0 + 2.0 * PI, 24), 1.0)]
        }
        // Cross: a plus sign.
        1 => {
            let (h, v) = (u(0.55, 0.8), u(0.55, 0.8));
            let (cx, cy) = (u(-0.12, 0.12), u(-0.12, 0.12));
            vec![
                (vec![(-h, cy), (h, cy)], 1.0),
                (vec![(cx, -v), (cx, v)], 1.0),
            ]
        }
        // Triangle, apex up.
        2 => {
            let r = u(0.65, 0.85);
            let pts: Vec<(f32, f32)> = [-90f32, 30.0, 150.0, -90.0]
                .iter()
                .map(|&d| {
                    let a = d.to_radians();
                    (r * a.cos(), r * a.sin() + 0.1)
                })
                .collect();
            vec![(pts, 1.0)]
        }
        // Square.
        3 => {
            let (w, h) = (u(0.5, 0.68), u(0.5, 0.68));
            vec![(vec![(-w, -h), (w, -h), (w, h), (-w, h), (-w, -h)], 1.0)]
        }
        // Diagonal bar, thicker than other strokes.
        4 => {
            let l = u(0.6, 0.8);
            vec![(vec![(-l, l), (l, -l)], u(1.2, 1.6))]
        }
        // T.
        5 => {
            let (w, top, bottom) = (u(0.5, 0.75), u(-0.75, -0.55), u(0.55, 0.8));
            vec![
                (vec![(-w, top), (w, top)], 1.0),
                (vec![(0.0, top), (0.0, bottom)], 1.0),
            ]
        }
        // L.
        6 => {
            let (left, top, bottom, right) =
                (u(-0.55, -0.35), u(-0.8, -0.6), u(0.55, 0.75), u(0.4, 0.65));
            vec![(vec![(left, top), (left, bottom), (right, bottom)], 1.0)]
        }
        // Zigzag: three strokes, like an N lying on its side.
        7 => {
            let (w, h) = (u(0.6, 0.8), u(0.4, 0.6));
            let pts = (0..4)
                .map(|i| {
                    let x = -w + 2.0 * w * i as f32 / 3.0;
                    (x, if i % 2 == 0 { h } else { -h })
                })
                .collect();
            vec![(pts, 1.0)]
        }
        // Two dots side by side.
        8 => {
            let gap = u(0.3, 0.5);
            let dy = u(-0.15, 0.15);
            let size = u(2.0, 2.6);
            vec![(vec![(-gap, -dy)], size), (vec![(gap, dy)], size)]
        }
        // Spiral: a little over one turn, radius shrinking inwards.
        _ => {
            let a0 = u(0.0, 2.0 * PI);
            let turns = u(1.05, 1.3);
            let (r0, r1) = (u(0.7, 0.82), u(0.12, 0.25));
            vec![(arc(0.0, 0.0, r0, r1, a0, a0 + turns * 2.0 * PI, 30), 1.0)]
        }
    }
}

/// A standard normal sample pair (Box–Muller).
fn normal_pair(rng: &mut StdRng) -> (f32, f32) {
    let u1: f32 = 1.0 - rng.random::<f32>();
    let u2: f32 = rng.random::<f32>();
    let r = (-2.0 * u1.ln()).sqrt();
    let (s, c) = (2.0 * PI * u2).sin_cos();
    (r * c, r * s)
}

/// Draws one glyph of class `class` into `img` (28x28 values in [0, 1]).
fn render(class: usize, img: &mut [f32], rng: &mut StdRng) {
    let s = GLYPH_SIZE as f32;
    // Background: a faint random gradient.
    let bg = rng.random_range(0.0f32..0.12);
    let (gx, gy) = (
        rng.random_range(-0.08f32..0.08),
        rng.random_range(-0.08f32..0.08),
    );
    for y in 0..GLYPH_SIZE {
        for x in 0..GLYPH_SIZE {
            let v = bg + gx * (x as f32 / s - 0.5) + gy * (y as f32 / s - 0.5);
            img[y * GLYPH_SIZE + x] = v.max(0.0);
        }
    }

    // Affine placement: rotation, shear, (anisotropic) scale, shift.
    let theta = rng.random_range(-20f32..20.0).to_radians();
    let scale = rng.random_range(0.8f32..1.2) * UNIT_PX;
    let aniso = rng.random_range(-0.1f32..0.1);
    let shear = rng.random_range(-0.25f32..0.25);
    let (sx, sy) = (scale * (1.0 + aniso), scale * (1.0 - aniso));
    let (sin, cos) = theta.sin_cos();
    // M = R * [[1, shear], [0, 1]] * diag(sx, sy)
    let m = [
        cos * sx,
        (cos * shear - sin) * sy,
        sin * sx,
        (sin * shear + cos) * sy,
    ];
    let tx = s / 2.0 + rng.random_range(-3f32..3.0);
    let ty = s / 2.0 + rng.random_range(-3f32..3.0);
    let wobble = 0.06;

    let hw = rng.random_range(0.8f32..1.7);
    let ink = rng.random_range(0.7f32..1.0);
    for (pts, width_mul) in template(class, rng) {
        let placed: Vec<(f32, f32)> = pts
            .iter()
            .map(|&(x, y)| {
                let x = x + rng.random_range(-wobble..wobble);
                let y = y + rng.random_range(-wobble..wobble);
                (m[0] * x + m[1] * y + tx, m[2] * x + m[3] * y + ty)
            })
            .collect();
        let seg_hw = hw * width_mul;
        if placed.len() == 1 {
            let (x, y) = placed[0];
            draw_seg(
                img,
                Seg {
                    ax: x,
                    ay: y,
                    bx: x,
                    by: y,
                    hw: seg_hw,
                    ink,
                },
            );
        }
        for w in placed.windows(2) {
            draw_seg(
                img,
                Seg {
                    ax: w[0].0,
                    ay: w[0].1,
                    bx: w[1].0,
                    by: w[1].1,
                    hw: seg_hw,
                    ink,
                },
            );
        }
    }

    // Sometimes a distracting stroke, sometimes an occluding patch.
    let extra: f32 = rng.random();
    if extra < 0.3 {
        let (x, y) = (rng.random_range(3f32..25.0), rng.random_range(3f32..25.0));
        let len = rng.random_range(5f32..12.0);
        let a = rng.random_range(0f32..2.0 * PI);
        draw_seg(
            img,
            Seg {
                ax: x,
                ay: y,
                bx: x + len * a.cos(),
                by: y + len * a.sin(),
                hw: rng.random_range(0.6f32..1.2),
                ink: rng.random_range(0.4f32..0.9),
            },
        );
    } else if extra < 0.55 {
        let (w, h) = (rng.random_range(5usize..11), rng.random_range(5usize..11));
        let cx = rng.random_range(8usize..20);
        let cy = rng.random_range(8usize..20);
        let (x0, y0) = (cx.saturating_sub(w / 2), cy.saturating_sub(h / 2));
        let fill = rng.random_range(0.0f32..0.1);
        for y in y0..(y0 + h).min(GLYPH_SIZE) {
            for x in x0..(x0 + w).min(GLYPH_SIZE) {
                img[y * GLYPH_SIZE + x] = fill;
            }
        }
    }

    // Gaussian pixel noise of a random strength.
    let sigma = rng.random_range(0.03f32..0.22);
    for pair in img.chunks_mut(2) {
        let (n0, n1) = normal_pair(rng);
        pair[0] = (pair[0] + sigma * n0).clamp(0.0, 1.0);
        if let Some(p) = pair.get_mut(1) {
            *p = (*p + sigma * n1).clamp(0.0, 1.0);
        }
    }
}

/// Generates `n` glyphs of split `split` into one buffer, in parallel.
fn generate(n: usize, seed: u64, split: u64) -> (Vec<f32>, Vec<u32>) {
    let px = GLYPH_SIZE * GLYPH_SIZE;
    let mut images = vec![0f32; n * px];
    let labels: Vec<u32> = (0..n)
        .map(|i| (i % GLYPH_CLASS_NAMES.len()) as u32)
        .collect();
    let fill = |start: usize, chunk: &mut [f32]| {
        for (k, img) in chunk.chunks_exact_mut(px).enumerate() {
            let i = start + k;
            let mut rng = StdRng::seed_from_u64(mix_seed(&[seed, GLYPH_STREAM, split, i as u64]));
            render(labels[i] as usize, img, &mut rng);
        }
    };
    let threads = std::thread::available_parallelism()
        .map(|t| t.get())
        .unwrap_or(1)
        .min(n.div_ceil(PAR_CHUNK))
        .max(1);
    if threads == 1 {
        fill(0, &mut images);
    } else {
        let per = n.div_ceil(threads);
        std::thread::scope(|scope| {
            for (t, chunk) in images.chunks_mut(per * px).enumerate() {
                let fill = &fill;
                scope.spawn(move || fill(t * per, chunk));
            }
        });
    }
    (images, labels)
}

/// The embedded default dataset: `(train, test)` with `n_train` and `n_test`
/// procedurally drawn 1x28x28 grey glyphs in `[0, 1]`, ten balanced classes
/// (label `i % 10` for sample `i`; see [`GLYPH_CLASS_NAMES`]), named
/// `embedded-glyphs`.
///
/// Fully deterministic: the same arguments give identical bytes. Train and
/// test samples come from independent random streams. A small CNN such as
/// LeNet-5 reaches high but not perfect accuracy on it, so pruning shows a
/// visible accuracy trade-off.
pub fn embedded_glyphs(n_train: usize, n_test: usize, seed: u64) -> (Dataset, Dataset) {
    let make = |n, split| {
        let (images, labels) = generate(n, seed, split);
        Dataset::new(
            "embedded-glyphs",
            images,
            labels,
            [1, GLYPH_SIZE, GLYPH_SIZE],
            GLYPH_CLASS_NAMES.len(),
        )
    };
    (make(n_train, 0), make(n_test, 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_seeded() {
        let (a_tr, a_te) = embedded_glyphs(600, 100, 7);
        let (b_tr, b_te) = embedded_glyphs(600, 100, 7);
        let bits = |d: &Dataset| {
            d.images
                .to_f32()
                .iter()
                .map(|v| v.to_bits())
                .collect::<Vec<_>>()
        };
        assert_eq!(bits(&a_tr), bits(&b_tr));
        assert_eq!(bits(&a_te), bits(&b_te));
        assert_eq!(a_tr.labels, b_tr.labels);
        let (c_tr, _) = embedded_glyphs(600, 100, 8);
        assert_ne!(a_tr.images, c_tr.images);
        // Train and test are different samples.
        assert_ne!(a_tr.image(0), a_te.image(0));
        // A prefix of a larger set is the smaller set (per-sample seeding).
        let (small, _) = embedded_glyphs(50, 0, 7);
        assert_eq!(small.images.to_f32()[..], a_tr.images.to_f32()[..50 * 784]);
    }

    #[test]
    fn shape_range_and_balance() {
        let (tr, te) = embedded_glyphs(1000, 205, 0);
        assert_eq!(tr.name, "embedded-glyphs");
        assert_eq!(tr.image_shape(), [1, 28, 28]);
        assert_eq!(tr.num_classes, 10);
        assert_eq!(tr.class_counts(), vec![100; 10]);
        let te_counts = te.class_counts();
        assert!(
            te_counts.iter().all(|&c| c == 20 || c == 21),
            "{te_counts:?}"
        );
        assert!(tr.images.to_f32().iter().all(|v| (0.0..=1.0).contains(v)));
        tr.validate().unwrap();
        te.validate().unwrap();
        // Every image has clear ink on a darker background.
        for i in 0..tr.len() {
            let img = tr.image(i);
            let bright = img.iter().filter(|&&v| v > 0.5).count();
            assert!(
                bright >= 8,
                "image {i} (class {}) has {bright} bright pixels",
                tr.labels[i]
            );
            assert!(bright < 400, "image {i} has {bright} bright pixels");
        }
    }

    #[test]
    fn classes_differ_on_average() {
        // Mean images of different classes should be clearly distinct.
        let (tr, _) = embedded_glyphs(2000, 0, 1);
        let mut means = vec![vec![0f32; 784]; 10];
        for i in 0..tr.len() {
            for (m, v) in means[tr.labels[i] as usize].iter_mut().zip(tr.image(i)) {
                *m += v / 200.0;
            }
        }
        for a in 0..10 {
            for b in a + 1..10 {
                let d: f32 = means[a]
                    .iter()
                    .zip(&means[b])
                    .map(|(x, y)| (x - y).abs())
                    .sum();
                assert!(d > 10.0, "classes {a} and {b} look alike on average ({d})");
            }
        }
    }

    #[test]
    fn empty_sets() {
        let (tr, te) = embedded_glyphs(0, 0, 0);
        assert!(tr.is_empty() && te.is_empty());
    }
}
