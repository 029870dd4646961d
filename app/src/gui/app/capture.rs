//! Pictures of the window: the scripted screenshot and chart export
//! (`shears gui --screenshot / --export-charts`) and **Save PNG…**, which
//! shows the chart, waits until it stops moving, and cuts it out of a
//! screenshot.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;

use eframe::egui::{self, ViewportCommand};

use super::ShearsApp;
use crate::error::Error;
use crate::fsutil::write_atomic;
use crate::gui::files;
use crate::gui::state::Tab;

/// What the window is asked to do once a comparison ends (scripted runs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Finale {
    /// Wait this many more frames, then take the screenshot.
    Screenshot(u32),
    /// Waiting for the screenshot to arrive.
    AwaitShot,
    /// Saving the charts (`--export-charts`).
    Charts,
    /// Close the window.
    Quit,
}

/// A chart to save as PNG: shown (Compare view, scrolled into view), then
/// cut out of a screenshot of the window.
#[derive(Debug, Clone)]
pub(super) struct PlotJob {
    /// Chart id (see `views::compare`).
    pub(super) id: String,
    /// Where the PNG goes.
    path: PathBuf,
    /// Frames left before the screenshot is asked for at the latest (the
    /// scroll animation usually settles much sooner).
    frames: u32,
    /// Where the chart was in the previous frame (it is captured once it
    /// stops moving).
    last_rect: Option<egui::Rect>,
    /// Whether the screenshot was asked for.
    requested: bool,
}

/// The capture sub-state of the app: charts waiting to be saved, where each
/// chart was drawn, the scripted finale, and the screenshot channel.
pub(super) struct Capture {
    /// Charts to save as PNG, in order; the first is being saved.
    pub(super) plot_jobs: VecDeque<PlotJob>,
    /// Where each chart was drawn in the last frame.
    pub(super) plot_rects: HashMap<String, egui::Rect>,
    /// What the window does once a scripted comparison ends.
    pub(super) finale: Option<Finale>,
    /// Screenshots arrive here from the viewport.
    pub(super) shots: (
        Sender<Arc<egui::ColorImage>>,
        Receiver<Arc<egui::ColorImage>>,
    ),
}

impl Default for Capture {
    fn default() -> Self {
        Self {
            plot_jobs: VecDeque::new(),
            plot_rects: HashMap::new(),
            finale: None,
            shots: channel(),
        }
    }
}

/// Most frames a chart is given to scroll into view before it is captured.
const SETTLE_FRAMES: u32 = 120;

impl ShearsApp {
    /// Saves the charts waiting for a screenshot, and the scripted window
    /// screenshot, when the screenshot arrives.
    pub(super) fn take_screenshots(&mut self, ctx: &egui::Context) {
        let Some(image) = self.capture.shots.1.try_iter().last() else {
            return;
        };
        let image = &image;
        let ppp = ctx.pixels_per_point();
        if let Some(job) = self
            .capture
            .plot_jobs
            .front()
            .filter(|j| j.requested)
            .cloned()
        {
            self.capture.plot_jobs.pop_front();
            let res = self
                .capture
                .plot_rects
                .get(&job.id)
                .ok_or_else(|| Error::Other(format!("chart `{}` is not on screen", job.id)))
                .and_then(|rect| files::crop_png(image, *rect, ppp))
                .and_then(|png| write_atomic(&job.path, &png));
            match res {
                Ok(()) => self.info(format!("chart saved to {}", job.path.display())),
                Err(e) => self.error(format!("{}: {e}", job.path.display())),
            }
        } else if self.capture.finale == Some(Finale::AwaitShot) {
            if let Some(path) = self.launch.screenshot.clone() {
                let full = egui::Rect::from_min_size(
                    egui::Pos2::ZERO,
                    egui::vec2(image.size[0] as f32, image.size[1] as f32) / ppp,
                );
                match files::crop_png(image, full, ppp).and_then(|png| write_atomic(&path, &png)) {
                    Ok(()) => eprintln!("screenshot saved to {}", path.display()),
                    Err(e) => eprintln!("error: screenshot {}: {e}", path.display()),
                }
            }
            self.capture.finale = if let Some(dir) = self.launch.export_charts.clone() {
                for id in crate::gui::command::CHARTS {
                    self.save_chart(id.to_string(), &dir.join(format!("{id}.png")));
                }
                Some(Finale::Charts)
            } else {
                self.launch.quit_after_run.then_some(Finale::Quit)
            };
        }
    }

    /// Queues the chart `id` to be saved as PNG at `path`.
    pub(super) fn save_chart(&mut self, id: String, path: &Path) {
        self.capture.plot_jobs.push_back(PlotJob {
            id,
            path: path.to_path_buf(),
            frames: SETTLE_FRAMES,
            last_rect: None,
            requested: false,
        });
    }

    /// Shows the next chart to save and asks for the screenshot once it is in view.
    pub(super) fn drive_chart_saving(&mut self, ctx: &egui::Context) {
        let Some(job) = self.capture.plot_jobs.front_mut() else {
            return;
        };
        self.settings.tab = Tab::Compare;
        if job.requested {
            return;
        }
        let rect = self.capture.plot_rects.get(&job.id).copied();
        let settled = rect.is_some() && rect == job.last_rect;
        if !settled && job.frames > 0 {
            job.frames -= 1;
            job.last_rect = rect;
            ctx.request_repaint();
            return;
        }
        job.requested = true;
        self.request_screenshot(ctx);
    }

    /// Asks the window for a screenshot; it arrives in a later frame.
    pub(super) fn request_screenshot(&self, ctx: &egui::Context) {
        let tx = self.capture.shots.0.clone();
        let wake = ctx.clone();
        ctx.request_screenshot(move |image| {
            let _ = tx.send(image);
            wake.request_repaint();
        });
    }

    pub(super) fn drive_finale(&mut self, ctx: &egui::Context) {
        match self.capture.finale {
            Some(Finale::Screenshot(0)) => {
                self.capture.finale = Some(Finale::AwaitShot);
                self.request_screenshot(ctx);
            }
            Some(Finale::Screenshot(n)) => {
                self.capture.finale = Some(Finale::Screenshot(n - 1));
                ctx.request_repaint();
            }
            Some(Finale::Charts) if self.capture.plot_jobs.is_empty() => {
                self.capture.finale = self.launch.quit_after_run.then_some(Finale::Quit);
                ctx.request_repaint();
            }
            Some(Finale::Quit) => {
                // Scripted runs report what the window cost (window_vs_cli.sh).
                eprintln!(
                    "shears: {} frames drawn in {:.1} s",
                    self.frames,
                    self.started.elapsed().as_secs_f64()
                );
                ctx.send_viewport_cmd(ViewportCommand::Close)
            }
            _ => {}
        }
    }
}
