//! ImageFolder datasets, torchvision's layout: one subfolder per class
//! holding PNG or JPEG files (extensions in any case), either under
//! `train/` and `val/` (or `test/`), or directly in the folder and split here
//! per class. Classes are the subfolder names in sorted order, as
//! torchvision numbers them. Images are decoded with the `image` crate,
//! converted to grey or RGB, and brought to one size: the shorter side
//! resized to the target (bilinear), then centre-cropped, as torchvision's
//! `Resize` + `CenterCrop` do.

use std::path::{Path, PathBuf};

use image::imageops::FilterType;
use rayon::prelude::*;

use super::split::stratified_indices;
use super::Dataset;
use crate::error::{Error, Result};

/// File extensions read as images.
pub const IMAGE_EXTENSIONS: [&str; 3] = ["png", "jpg", "jpeg"];

/// The subfolders holding the test part, tried in order.
const TEST_DIRS: [&str; 2] = ["val", "test"];

/// How an image folder is read.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageFolderOptions {
    /// Height and width every image is brought to; `None`: the first
    /// image's size.
    pub size: Option<[usize; 2]>,
    /// 1 (grey) or 3 (RGB); `None`: grey when the first image is.
    pub channels: Option<usize>,
    /// Shorter side to resize to before the centre crop to `size`; `None`:
    /// resized just enough to cover `size`.
    pub resize: Option<usize>,
    /// Without `train/` and `val/`: fraction of each class held out.
    pub test_fraction: f64,
    /// Split seed.
    pub seed: u64,
}

/// Whether `path` is a folder laid out as an image folder: class
/// subfolders with images, or `train/` holding them.
pub fn looks_like_image_folder(path: &Path) -> bool {
    let root = if path.join("train").is_dir() {
        path.join("train")
    } else {
        path.to_path_buf()
    };
    class_dirs(&root).is_ok_and(|c| c.iter().any(|(_, d)| first_image(d).is_some()))
}

/// Loads `(train, test)` from the image folder at `path`; errors name the
/// file or folder.
pub fn load_image_folder(path: &Path, opts: &ImageFolderOptions) -> Result<(Dataset, Dataset)> {
    if !(opts.test_fraction > 0.0 && opts.test_fraction < 1.0) {
        return Err(Error::config(
            "dataset.test_fraction",
            format!(
                "must be between 0 and 1 (exclusive), got {}",
                opts.test_fraction
            ),
        ));
    }
    let name = path
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "images".into());
    let train_dir = path.join("train");
    if train_dir.is_dir() {
        let test_dir = TEST_DIRS
            .iter()
            .map(|d| path.join(d))
            .find(|d| d.is_dir())
            .ok_or_else(|| {
                Error::format(path, "has train/ but no val/ or test/ folder beside it")
            })?;
        let classes = class_dirs(&train_dir)?;
        let names: Vec<String> = classes.iter().map(|(n, _)| n.clone()).collect();
        let test_classes = class_dirs(&test_dir)?;
        if let Some((extra, _)) = test_classes.iter().find(|(n, _)| !names.contains(n)) {
            return Err(Error::format(
                &test_dir,
                format!("class folder `{extra}` is not in {}", train_dir.display()),
            ));
        }
        let files = |classes: &[(String, PathBuf)]| -> Result<Vec<(PathBuf, u32)>> {
            let mut out = Vec::new();
            for (class, dir) in classes {
                let label = names
                    .iter()
                    .position(|n| n == class)
                    .expect("a known class") as u32;
                out.extend(images_in(dir)?.into_iter().map(|f| (f, label)));
            }
            Ok(out)
        };
        let (train_files, test_files) = (files(&classes)?, files(&test_classes)?);
        let shape = target_shape(&train_files, opts)?;
        let train = decode_all(&train_files, shape, opts.resize, names.len(), &name)?;
        let test = decode_all(&test_files, shape, opts.resize, names.len(), &name)?;
        return Ok((train, test));
    }
    let classes = class_dirs(path)?;
    let mut all = Vec::new();
    for (label, (_, dir)) in classes.iter().enumerate() {
        all.extend(images_in(dir)?.into_iter().map(|f| (f, label as u32)));
    }
    let shape = target_shape(&all, opts)?;
    let ds = decode_all(&all, shape, opts.resize, classes.len(), &name)?;
    let (train_idx, test_idx) = stratified_indices(&ds.labels, opts.test_fraction, opts.seed);
    Ok((ds.subset(&train_idx), ds.subset(&test_idx)))
}

/// Class subfolders of `dir` (name, path), sorted by name; an error when
/// there are none.
fn class_dirs(dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    let mut out: Vec<(String, PathBuf)> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .filter_map(|p| {
            let n = p.file_name()?.to_string_lossy().into_owned();
            (!n.starts_with('.')).then_some((n, p))
        })
        .collect();
    out.sort();
    if out.is_empty() {
        return Err(Error::format(
            dir,
            "no class subfolders (one folder of images per class)",
        ));
    }
    Ok(out)
}

fn is_image(p: &Path) -> bool {
    p.extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.as_str()))
}

fn first_image(dir: &Path) -> Option<PathBuf> {
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| p.is_file() && is_image(p))
}

/// The image files of a class folder, sorted by name.
fn images_in(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.is_file() && is_image(p))
        .collect();
    v.sort();
    Ok(v)
}

/// `[channels, height, width]` the images are brought to.
fn target_shape(files: &[(PathBuf, u32)], opts: &ImageFolderOptions) -> Result<[usize; 3]> {
    let (first, _) = files
        .first()
        .ok_or_else(|| Error::Other("the image folder holds no PNG or JPEG files".into()))?;
    let img = open(first)?;
    let channels = match opts.channels {
        Some(c @ (1 | 3)) => c,
        Some(c) => {
            return Err(Error::config(
                "dataset.channels",
                format!("{c} (use 1 for grey or 3 for RGB)"),
            ))
        }
        None if img.color().has_color() => 3,
        None => 1,
    };
    let [h, w] = opts
        .size
        .unwrap_or([img.height() as usize, img.width() as usize]);
    if h == 0 || w == 0 || h > 4096 || w > 4096 {
        return Err(Error::config(
            "dataset.size",
            format!("{h}x{w} is outside 1..=4096"),
        ));
    }
    let bytes = files.len() as u64 * (channels * h * w) as u64;
    super::memory::check_fits(first.parent().unwrap_or(first), bytes)?;
    Ok([channels, h, w])
}

fn open(path: &Path) -> Result<image::DynamicImage> {
    image::ImageReader::open(path)
        .map_err(|e| Error::io(path, e))?
        .with_guessed_format()
        .map_err(|e| Error::io(path, e))?
        .decode()
        .map_err(|e| Error::format(path, format!("not a readable image ({e})")))
}

/// Decodes every file in parallel into one dataset of `shape` images.
fn decode_all(
    files: &[(PathBuf, u32)],
    shape: [usize; 3],
    resize: Option<usize>,
    classes: usize,
    name: &str,
) -> Result<Dataset> {
    let [c, h, w] = shape;
    let n = c * h * w;
    let mut images = vec![0u8; files.len() * n];
    images
        .par_chunks_mut(n.max(1))
        .zip(files.par_iter())
        .try_for_each(|(out, (path, _))| {
            to_chw(&fit(open(path)?, h, w, resize), c, out);
            Ok::<_, Error>(())
        })?;
    let labels = files.iter().map(|(_, l)| *l).collect();
    Ok(Dataset::new(name, images, labels, shape, classes))
}

/// The size `[height, width]` an `ih x iw` image is resized to before the
/// centre crop to `h x w`: with a `resize` that covers the crop, the shorter
/// side becomes `resize` and the longer one `resize * long / short` rounded
/// down (torchvision's `Resize(resize)`); otherwise the image is scaled just
/// enough to cover the crop.
fn resized_size(ih: usize, iw: usize, [h, w]: [usize; 2], resize: Option<usize>) -> [usize; 2] {
    if let Some(s) = resize {
        let (short, long) = (ih.min(iw), ih.max(iw));
        let stretched = s * long / short;
        let [nh, nw] = if ih <= iw {
            [s, stretched]
        } else {
            [stretched, s]
        };
        if nh >= h && nw >= w {
            return [nh, nw];
        }
    }
    let scale = (h as f64 / ih as f64).max(w as f64 / iw as f64);
    [
        ((ih as f64 * scale).round() as usize).max(h),
        ((iw as f64 * scale).round() as usize).max(w),
    ]
}

/// Where a centre crop of `crop` starts in `full`: half the difference,
/// rounded half to even as torchvision's `CenterCrop` (Python's `round`).
fn crop_start(full: usize, crop: usize) -> usize {
    let d = full - crop;
    let k = d / 2;
    if d % 2 == 1 && k % 2 == 1 {
        k + 1
    } else {
        k
    }
}

/// The image resized ([`resized_size`], bilinear) and its centre `h x w`
/// cut out; an image already of the size it would be resized to keeps its
/// pixels.
fn fit(img: image::DynamicImage, h: usize, w: usize, resize: Option<usize>) -> image::DynamicImage {
    let (ih, iw) = (img.height() as usize, img.width() as usize);
    let [nh, nw] = resized_size(ih, iw, [h, w], resize);
    let resized = if (nh, nw) == (ih, iw) {
        img
    } else {
        img.resize_exact(nw as u32, nh as u32, FilterType::Triangle)
    };
    if (nh, nw) == (h, w) {
        return resized;
    }
    let (top, left) = (crop_start(nh, h), crop_start(nw, w));
    resized.crop_imm(left as u32, top as u32, w as u32, h as u32)
}

/// Writes the image's CHW bytes into `out`, grey (`c` 1) or RGB (`c` 3).
fn to_chw(img: &image::DynamicImage, c: usize, out: &mut [u8]) {
    let (w, h) = (img.width() as usize, img.height() as usize);
    if c == 1 {
        for (i, p) in img.to_luma8().pixels().enumerate() {
            out[i] = p.0[0];
        }
    } else {
        for (i, p) in img.to_rgb8().pixels().enumerate() {
            for ch in 0..3 {
                out[ch * h * w + i] = p.0[ch];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Pixels;

    /// Writes `n` images of class `class` (a bright square whose place
    /// depends on the class) of `w x h` pixels as `ext` into `dir/class/`.
    fn write_class(dir: &Path, class: &str, n: usize, (w, h): (u32, u32), ext: &str, rgb: bool) {
        let d = dir.join(class);
        std::fs::create_dir_all(&d).unwrap();
        let at = class.len() as u32 % 3;
        for i in 0..n {
            let px = |x: u32, y: u32| {
                let on = x / (w / 3).max(1) == at && y > h / 3 && y < 2 * h / 3;
                if on {
                    200 + (i as u8 % 50)
                } else {
                    10
                }
            };
            let path = d.join(format!("{i:03}.{ext}"));
            let format = if ext.eq_ignore_ascii_case("png") {
                image::ImageFormat::Png
            } else {
                image::ImageFormat::Jpeg
            };
            let img: image::DynamicImage = if rgb {
                image::RgbImage::from_fn(w, h, |x, y| image::Rgb([px(x, y), 0, 255 - px(x, y)]))
                    .into()
            } else {
                image::GrayImage::from_fn(w, h, |x, y| image::Luma([px(x, y)])).into()
            };
            img.save_with_format(&path, format).unwrap();
        }
    }

    fn opts() -> ImageFolderOptions {
        ImageFolderOptions {
            size: None,
            channels: None,
            resize: None,
            test_fraction: 0.25,
            seed: 0,
        }
    }

    #[test]
    fn train_and_val_folders_keep_sorted_class_numbers() {
        let dir = tempfile::tempdir().unwrap();
        for (split, n) in [("train", 6), ("val", 2)] {
            write_class(&dir.path().join(split), "b", n, (12, 10), "PNG", false);
            write_class(&dir.path().join(split), "a", n, (12, 10), "png", false);
        }
        assert!(looks_like_image_folder(dir.path()));
        let (train, test) = load_image_folder(dir.path(), &opts()).unwrap();
        assert_eq!((train.len(), test.len()), (12, 4));
        assert_eq!([train.channels, train.height, train.width], [1, 10, 12]);
        assert_eq!(train.num_classes, 2);
        // `a` is class 0 (sorted), its files first.
        assert_eq!(&train.labels[..6], &[0; 6]);
        let Pixels::Bytes(bytes) = &train.images else {
            panic!("images are kept as bytes");
        };
        assert_eq!(bytes.iter().max(), Some(&205));
    }

    #[test]
    fn one_folder_is_split_and_sizes_are_brought_to_one() {
        let dir = tempfile::tempdir().unwrap();
        write_class(dir.path(), "cat", 8, (16, 16), "jpg", true);
        write_class(dir.path(), "dog", 8, (20, 12), "JPEG", true);
        let mut o = opts();
        o.size = Some([8, 8]);
        let (train, test) = load_image_folder(dir.path(), &o).unwrap();
        assert_eq!((train.len(), test.len()), (12, 4));
        assert_eq!([train.channels, train.height, train.width], [3, 8, 8]);
        assert_eq!(test.class_counts(), vec![2, 2]);
        o.channels = Some(1);
        let (grey, _) = load_image_folder(dir.path(), &o).unwrap();
        assert_eq!(grey.channels, 1);
    }

    #[test]
    fn a_broken_image_or_an_empty_folder_is_named() {
        let dir = tempfile::tempdir().unwrap();
        write_class(dir.path(), "a", 3, (8, 8), "png", false);
        std::fs::write(dir.path().join("a/zz-broken.png"), b"not a png").unwrap();
        let e = load_image_folder(dir.path(), &opts())
            .unwrap_err()
            .to_string();
        assert!(e.contains("zz-broken.png") && e.contains("image"), "{e}");
        let empty = tempfile::tempdir().unwrap();
        let e = load_image_folder(empty.path(), &opts())
            .unwrap_err()
            .to_string();
        assert!(e.contains("class subfolders"), "{e}");
        assert!(!looks_like_image_folder(empty.path()));
        let both = tempfile::tempdir().unwrap();
        write_class(&both.path().join("train"), "a", 2, (8, 8), "png", false);
        write_class(&both.path().join("val"), "zebra", 2, (8, 8), "png", false);
        let e = load_image_folder(both.path(), &opts())
            .unwrap_err()
            .to_string();
        assert!(e.contains("zebra"), "{e}");
    }

    /// torchvision's `Resize(s)` then `CenterCrop`: the shorter side to `s`,
    /// the longer rounded down, the crop at half the difference rounded half
    /// to even; without a resize, just enough to cover the crop.
    #[test]
    fn resize_then_centre_crop_follows_torchvision() {
        assert_eq!(resized_size(375, 500, [224, 224], Some(256)), [256, 341]);
        assert_eq!(resized_size(500, 375, [224, 224], Some(256)), [341, 256]);
        assert_eq!(resized_size(375, 500, [224, 224], None), [224, 299]);
        // A resize smaller than the crop cannot cover it: cover instead.
        assert_eq!(resized_size(100, 100, [64, 64], Some(32)), [64, 64]);
        assert_eq!(crop_start(256, 224), 16);
        assert_eq!(crop_start(341, 224), 58); // 58.5 rounds to 58
        assert_eq!(crop_start(259, 224), 18); // 17.5 rounds to 18
                                              // A 12x10 image with resize 20 and an 8x8 crop: 24x20 resized, the
                                              // crop from (6, 8); the bright square moves as that says.
        let dir = tempfile::tempdir().unwrap();
        write_class(dir.path(), "a", 2, (12, 10), "png", false);
        write_class(dir.path(), "b", 2, (12, 10), "png", false);
        let mut o = opts();
        o.size = Some([8, 8]);
        o.test_fraction = 0.5;
        let (plain, _) = load_image_folder(dir.path(), &o).unwrap();
        o.resize = Some(20);
        let (resized, _) = load_image_folder(dir.path(), &o).unwrap();
        assert_eq!(resized.image_shape(), [1, 8, 8]);
        assert_ne!(plain.images, resized.images, "the resize changes the crop");
        let img = image::DynamicImage::ImageLuma8(image::GrayImage::from_fn(12, 10, |x, y| {
            image::Luma([(y * 12 + x) as u8])
        }));
        let out = fit(img.clone(), 8, 8, Some(20));
        let want = img
            .resize_exact(24, 20, FilterType::Triangle)
            .crop_imm(8, 6, 8, 8);
        assert_eq!(out.to_luma8(), want.to_luma8());
    }
}
