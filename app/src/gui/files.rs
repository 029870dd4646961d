//! Files in and out of the app: what a dropped or chosen path is, what a
//! file dialog is for, a new folder per comparison, and PNG export of a
//! screen region. The dialogs themselves are in [`dialogs`](super::dialogs).

use std::path::{Path, PathBuf};

use super::state::FileKind;
use crate::data::DatasetSpec;
use crate::error::{Error, Result};
use crate::experiment::output::RESULTS_JSON;
use crate::experiment::plan::PLAN_JSON;
use crate::model::export::ExportFormat;
use crate::plugins::LIBRARY_EXTENSION;

/// Decides what `path` is from its name and, for folders, its content.
/// A folder with `results.json` is a results folder, one with only
/// `plan.json` a plan folder not merged yet; a folder or file the dataset
/// detector recognises is a dataset.
pub fn classify(path: &Path) -> Result<FileKind> {
    if path.is_dir() {
        if path.join(RESULTS_JSON).is_file() {
            return Ok(FileKind::Results);
        }
        if path.join(PLAN_JSON).is_file() {
            return Ok(FileKind::Plan);
        }
        return DatasetSpec::detect(path)
            .map(|_| FileKind::Dataset)
            .map_err(|e| {
                Error::format(
                    path,
                    format!("neither a Shears results folder nor a dataset folder ({e})"),
                )
            });
    }
    if !path.exists() {
        return Err(Error::format(path, "no such file or folder"));
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    Ok(match ext.as_str() {
        e if crate::model::import::EXTENSIONS.contains(&e) => FileKind::Checkpoint,
        "toml" => FileKind::Config,
        "json" => FileKind::Results,
        e if e == LIBRARY_EXTENSION || ["so", "dylib", "dll"].contains(&e) => FileKind::Plugin,
        _ if name.contains(".so.") => FileKind::Plugin,
        _ => DatasetSpec::detect(path)
            .map(|_| FileKind::Dataset)
            .map_err(|_| {
                Error::format(
                    path,
                    "unknown kind of file: open a model (.safetensors, .pth, .pt, .onnx), a dataset (folder or digits .csv), a plugin library (.so/.dylib/.dll), a results folder or a config (.toml)",
                )
            })?,
    })
}

/// Claims a new folder for a comparison named `name` inside `parent`:
/// `<name>-001`, `<name>-002`, ... (the first that does not exist), so every
/// comparison started in the app keeps its results next to the earlier ones.
pub fn new_run_dir(parent: &Path, name: &str) -> Result<PathBuf> {
    let slug = crate::fsutil::slug(name);
    let slug = if slug.is_empty() {
        "comparison".to_string()
    } else {
        slug
    };
    std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    for n in 1..100_000 {
        let dir = parent.join(format!("{slug}-{n:03}"));
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(Error::io(&dir, e)),
        }
    }
    Err(Error::format(
        parent,
        "no free folder name left for a new comparison",
    ))
}

/// What a dialog was opened for; comes back with the chosen path.
#[derive(Debug, Clone, PartialEq)]
pub enum DialogPurpose {
    /// Open a file of this kind.
    Open(FileKind),
    /// Save the experiment config.
    SaveConfig,
    /// Export the results set with this id as CSV.
    ExportCsv(u64),
    /// Export the results set with this id as JSON.
    ExportJson(u64),
    /// Save this model (a Shears checkpoint) at the chosen place in a format.
    SaveModel(PathBuf, ExportFormat),
    /// Save the chart with this id as PNG.
    SavePlot(String),
    /// Save the Compare chart with this id as SVG.
    SaveSvg(String),
    /// Pick the output folder.
    OutputFolder,
    /// Add a folder to the run browser.
    RunsFolder,
}

/// Cuts `rect` (in points) out of a screenshot taken at `pixels_per_point`
/// and encodes it as PNG.
pub fn crop_png(
    image: &eframe::egui::ColorImage,
    rect: eframe::egui::Rect,
    pixels_per_point: f32,
) -> Result<Vec<u8>> {
    let [w, h] = image.size;
    let x0 = ((rect.min.x * pixels_per_point).round().max(0.0) as usize).min(w);
    let y0 = ((rect.min.y * pixels_per_point).round().max(0.0) as usize).min(h);
    let x1 = ((rect.max.x * pixels_per_point).round().max(0.0) as usize).min(w);
    let y1 = ((rect.max.y * pixels_per_point).round().max(0.0) as usize).min(h);
    if x1 <= x0 || y1 <= y0 {
        return Err(Error::Other(
            "the chart is not on screen: nothing to save".into(),
        ));
    }
    let mut rgba = Vec::with_capacity((x1 - x0) * (y1 - y0) * 4);
    for y in y0..y1 {
        for p in &image.pixels[y * w + x0..y * w + x1] {
            rgba.extend_from_slice(&p.to_srgba_unmultiplied());
        }
    }
    encode_png(&rgba, (x1 - x0) as u32, (y1 - y0) as u32)
}

/// Encodes RGBA8 pixels as PNG.
pub fn encode_png(rgba: &[u8], width: u32, height: u32) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, width, height);
    enc.set_color(png::ColorType::Rgba);
    enc.set_depth(png::BitDepth::Eight);
    let mut writer = enc
        .write_header()
        .map_err(|e| Error::Other(format!("PNG encoding: {e}")))?;
    writer
        .write_image_data(rgba)
        .map_err(|e| Error::Other(format!("PNG encoding: {e}")))?;
    writer
        .finish()
        .map_err(|e| Error::Other(format!("PNG encoding: {e}")))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use eframe::egui::{Color32, ColorImage, Rect};

    #[test]
    fn classifies_by_name_and_content() {
        let dir = tempfile::tempdir().unwrap();
        let p = |n: &str| dir.path().join(n);
        for (name, kind) in [
            ("m.safetensors", FileKind::Checkpoint),
            ("e.toml", FileKind::Config),
            (crate::experiment::output::RESULTS_JSON, FileKind::Results),
            ("libx.so", FileKind::Plugin),
        ] {
            std::fs::write(p(name), b"x").unwrap();
            assert_eq!(classify(&p(name)).unwrap(), kind, "{name}");
        }
        std::fs::write(p("notes.txt"), b"x").unwrap();
        let e = classify(&p("notes.txt")).unwrap_err().to_string();
        assert!(e.contains("notes.txt") && e.contains("unknown kind"), "{e}");
        let e = classify(&p("missing")).unwrap_err().to_string();
        assert!(e.contains("no such file"), "{e}");
        // A folder with results.json is a results folder; an empty one is nothing.
        std::fs::create_dir(p("run")).unwrap();
        let e = classify(&p("run")).unwrap_err().to_string();
        assert!(e.contains("neither"), "{e}");
        std::fs::write(
            p("run").join(crate::experiment::output::RESULTS_JSON),
            b"{}",
        )
        .unwrap();
        assert_eq!(classify(&p("run")).unwrap(), FileKind::Results);
    }

    #[test]
    fn every_comparison_gets_a_new_folder() {
        let dir = tempfile::tempdir().unwrap();
        let a = new_run_dir(dir.path(), "demo: one-shot vs iterative").unwrap();
        let b = new_run_dir(dir.path(), "demo: one-shot vs iterative").unwrap();
        assert_eq!(a.file_name().unwrap(), "demo-one-shot-vs-iterative-001");
        assert_eq!(b.file_name().unwrap(), "demo-one-shot-vs-iterative-002");
        assert!(a.is_dir() && b.is_dir());
        let c = new_run_dir(&dir.path().join("new/parent"), "").unwrap();
        assert_eq!(c.file_name().unwrap(), "comparison-001");
    }

    #[test]
    fn crops_and_encodes_png() {
        let mut img = ColorImage::filled([8, 6], Color32::WHITE);
        img.pixels[8 * 2 + 3] = Color32::RED;
        let bytes = crop_png(
            &img,
            Rect::from_min_max([1.0, 1.0].into(), [3.0, 2.5].into()),
            2.0,
        )
        .unwrap();
        let dec = png::Decoder::new(std::io::Cursor::new(bytes));
        let mut reader = dec.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!((info.width, info.height), (4, 3));
        // Pixel (3, 2) of the image is (1, 0) of the crop.
        assert_eq!(&buf[4..8], &[255, 0, 0, 255]);
        assert!(crop_png(
            &img,
            Rect::from_min_max([9.0, 9.0].into(), [10.0, 10.0].into()),
            1.0
        )
        .is_err());
    }
}
