//! Frame time of the desktop app's Compare view with a large finished
//! comparison: 6 strategies x 8 sparsities x 3 seeds on a 60-layer model
//! (synthetic results of that size, see `shears::report::sample`).
//!
//! Measures what the CPU does per frame — the app's UI code, egui layout and
//! tessellation into triangles — with the pointer moving over the charts so
//! hover labels are computed too. GPU painting of the triangles is not
//! included (it depends on the driver; the triangle count is printed).
//!
//! `cargo bench -p shears --bench frame_time -- [--frames N]`

use std::time::Instant;

use eframe::egui;
use shears::gui::{LaunchOptions, LoadedResults, Settings, ShearsApp, Tab};
use shears::report::sample::sample_results;

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let frames = arg("--frames", 300);
    let (strategies, targets, seeds, layers) = (6, 8, 3, 60);
    let results = sample_results(strategies, targets, seeds, layers);
    let settings = Settings {
        tab: Tab::Compare,
        ..Default::default()
    };
    let mut app = ShearsApp::new(settings, LaunchOptions::default());
    app.results.push(LoadedResults {
        id: 1,
        name: "large".into(),
        dir: None,
        file: None,
        results,
        shown: true,
        live: false,
    });
    let ctx = egui::Context::default();
    let size = egui::vec2(1280.0, 900.0);
    let mut times = Vec::with_capacity(frames);
    let mut triangles = 0usize;
    for i in 0..frames + 20 {
        // Sweep the pointer over the window, so the charts compute hover labels.
        let t = (i % 100) as f32 / 100.0;
        let pos = egui::pos2(240.0 + t * 1000.0, 80.0 + t * 700.0);
        let input = egui::RawInput {
            screen_rect: Some(egui::Rect::from_min_size(egui::Pos2::ZERO, size)),
            time: Some(i as f64 / 60.0),
            events: vec![egui::Event::PointerMoved(pos)],
            ..Default::default()
        };
        let t0 = Instant::now();
        let out = ctx.run_ui(input, |ui| app.show(ui));
        let meshes = ctx.tessellate(out.shapes, out.pixels_per_point);
        let dt = t0.elapsed().as_secs_f64() * 1000.0;
        if i >= 20 {
            times.push(dt);
            triangles = meshes
                .iter()
                .map(|m| match &m.primitive {
                    egui::epaint::Primitive::Mesh(mesh) => mesh.indices.len() / 3,
                    _ => 0,
                })
                .sum();
        }
    }
    times.sort_by(f64::total_cmp);
    let mean = times.iter().sum::<f64>() / times.len() as f64;
    let pct = |p: f64| times[((times.len() - 1) as f64 * p) as usize];
    println!(
        "compare view, {strategies} strategies x {targets} sparsities x {seeds} seeds, {layers} layers, {frames} frames at 1280x900:"
    );
    println!(
        "  frame time (UI + layout + tessellation): mean {mean:.2} ms, median {:.2} ms, p95 {:.2} ms, max {:.2} ms; {triangles} triangles",
        pct(0.5),
        pct(0.95),
        times[times.len() - 1]
    );
    println!(
        "  ratio to the 16.7 ms budget of 60 Hz: p95 {:.2}x (below 1 = within budget)",
        pct(0.95) / (1000.0 / 60.0)
    );
}
