//! NumPy arrays: archives (`.npz`, written by `np.savez` or
//! `np.savez_compressed`) or a folder of `.npy` files (`np.save`, one array
//! per file, named by the file's stem): images and labels as arrays, either
//! `x_train` / `y_train` / `x_test` / `y_test` (the Keras layout) or `x` /
//! `y` (or other names given) split here. Images are
//! `[N, H, W]` (grey), `[N, C, H, W]` or `[N, H, W, C]` (C of 1, 3 or 4;
//! the last axis is the channels when it can be and the second is not 1 or
//! 3); integer images are bytes 0..=255 (kept as bytes, read as
//! `v / 255`), float images are values as they are. Labels are integers
//! from 0. Before any array is read, the arrays' headers say how much
//! memory they will take, and a dataset that would not fit is refused.

use std::path::Path;

use candle_core::{DType, Tensor};

use super::{split::stratified_indices, Dataset, Pixels};
use crate::error::{Error, Result};

/// Array names of an archive already split into train and test.
pub const SPLIT_NAMES: [&str; 4] = ["x_train", "y_train", "x_test", "y_test"];

/// What a `.npy` header declares: bytes per value and shape.
#[derive(Debug, PartialEq)]
struct Declared {
    item_bytes: u64,
    shape: Vec<u64>,
}

impl Declared {
    fn bytes(&self) -> u64 {
        self.shape
            .iter()
            .fold(self.item_bytes, |acc, &d| acc.saturating_mul(d))
    }
}

/// The header of a `.npy` stream: `None` when it is not one this can read
/// (the full reader then says what is wrong).
fn declared(mut r: impl std::io::Read) -> Option<Declared> {
    let mut head = [0u8; 10];
    r.read_exact(&mut head).ok()?;
    if &head[..6] != b"\x93NUMPY" {
        return None;
    }
    let len = match head[6] {
        1 => usize::from(u16::from_le_bytes([head[8], head[9]])),
        _ => {
            let mut more = [0u8; 2];
            r.read_exact(&mut more).ok()?;
            u32::from_le_bytes([head[8], head[9], more[0], more[1]]) as usize
        }
    };
    let mut dict = vec![0u8; len.min(1 << 16)];
    r.read_exact(&mut dict).ok()?;
    let dict = String::from_utf8_lossy(&dict);
    let field = |key: &str| {
        let at = dict.find(&format!("'{key}'"))? + key.len() + 2;
        Some(dict[at..].trim_start_matches([':', ' ']).to_string())
    };
    let descr = field("descr")?;
    let descr = descr.trim_start_matches('\'').split('\'').next()?;
    let item_bytes = descr
        .trim_start_matches(|c: char| !c.is_ascii_digit())
        .parse()
        .ok()?;
    let shape = field("shape")?;
    let shape = shape.strip_prefix('(')?.split(')').next()?;
    let shape = shape
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(|d| d.parse().ok())
        .collect::<Option<Vec<u64>>>()?;
    Some(Declared { item_bytes, shape })
}

/// The declared arrays of an archive or a folder of `.npy` files, read from
/// their headers only (an unreadable one is left out).
fn declared_arrays(path: &Path) -> Vec<Declared> {
    if path.is_dir() {
        return npy_files(path)
            .unwrap_or_default()
            .iter()
            .filter_map(|p| declared(std::fs::File::open(p).ok()?))
            .collect();
    }
    let Some(mut zip) = std::fs::File::open(path)
        .ok()
        .and_then(|f| zip::ZipArchive::new(f).ok())
    else {
        return Vec::new();
    };
    (0..zip.len())
        .filter_map(|i| declared(zip.by_index(i).ok()?))
        .collect()
}

/// Memory loading `path` takes at its peak: every array as read, plus the
/// images once more as kept (bytes stay bytes, others become `f32`) and
/// once more while they are split.
fn bytes_needed(path: &Path) -> u64 {
    declared_arrays(path)
        .iter()
        .map(|a| {
            let kept = if a.shape.len() >= 3 {
                let per_value = if a.item_bytes == 1 { 1 } else { 4 };
                (a.bytes() / a.item_bytes.max(1)).saturating_mul(per_value * 2)
            } else {
                0
            };
            a.bytes().saturating_add(kept)
        })
        .fold(0, u64::saturating_add)
}

/// The arrays of `path` by name: an archive's (uncompressed or
/// deflate-compressed), or a folder's `.npy` files; refused before reading
/// when they would not fit in memory.
fn arrays(path: &Path) -> Result<Vec<(String, Tensor)>> {
    super::memory::check_fits(path, bytes_needed(path))?;
    if path.is_dir() {
        let mut out = Vec::new();
        for p in npy_files(path)? {
            let name = p
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let t = Tensor::read_npy(&p).map_err(|e| {
                Error::format(
                    &p,
                    format!("not a NumPy .npy file this reader understands: {e}"),
                )
            })?;
            out.push((name, t));
        }
        if out.is_empty() {
            return Err(Error::format(path, "no .npy files in this folder"));
        }
        return Ok(out);
    }
    if !path.is_file() {
        return Err(Error::format(path, "no such file"));
    }
    Tensor::read_npz(path).map_err(|e| {
        Error::format(
            path,
            format!("not a NumPy .npz archive this reader understands: {e}"),
        )
    })
}

fn take(arrays: &[(String, Tensor)], name: &str) -> Option<Tensor> {
    arrays
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, t)| t.clone())
}

/// Images of shape `[N, H, W]`, `[N, C, H, W]` or `[N, H, W, C]` as NCHW
/// pixels and `(C, H, W)`.
fn images(x: &Tensor, name: &str, path: &Path) -> Result<(Pixels, [usize; 3])> {
    let bad = |msg: String| Error::format(path, format!("array `{name}`: {msg}"));
    let channels = |c: usize| matches!(c, 1 | 3 | 4);
    let x = match *x.dims() {
        [_, _, _] => x.unsqueeze(1)?,
        // Channels last where the last axis can be one and the second
        // cannot be 1 or 3 (a 4-row image is not RGBA).
        [_, a, _, c] if channels(c) && !matches!(a, 1 | 3) => {
            x.permute((0, 3, 1, 2))?.contiguous()?
        }
        [_, c, _, _] if channels(c) => x.clone(),
        _ => {
            return Err(bad(format!(
                "shape {:?} is not images: give [N, H, W], [N, C, H, W] or [N, H, W, C] with C of 1, 3 or 4",
                x.dims()
            )))
        }
    };
    let &[_, c, h, w] = x.dims() else {
        unreachable!("four dimensions from above")
    };
    let pixels = if x.dtype().is_float() {
        let values = x.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
        if let Some(v) = values.iter().find(|v| !v.is_finite()) {
            return Err(bad(format!("holds a non-finite value ({v})")));
        }
        Pixels::Floats(values)
    } else if x.dtype() == DType::U8 {
        Pixels::Bytes(x.flatten_all()?.to_vec1::<u8>()?)
    } else {
        // Wider integers hold bytes too, as the IDX and CIFAR loaders read them.
        let values = x.to_dtype(DType::I64)?.flatten_all()?.to_vec1::<i64>()?;
        let bytes = values
            .iter()
            .map(|&v| u8::try_from(v))
            .collect::<std::result::Result<Vec<u8>, _>>()
            .map_err(|_| {
                let v = values.iter().find(|v| !(0..=255).contains(*v));
                bad(format!(
                    "holds {}; integer images are pixel bytes 0..=255 (or give floats in [0, 1])",
                    v.copied().unwrap_or_default()
                ))
            })?;
        Pixels::Bytes(bytes)
    };
    Ok((pixels, [c, h, w]))
}

/// Labels of shape `[N]` (or `[N, 1]`) as class indices.
fn labels(y: &Tensor, name: &str, path: &Path) -> Result<Vec<u32>> {
    let bad = |msg: String| Error::format(path, format!("array `{name}`: {msg}"));
    let y = match y.dims() {
        [_] => y.clone(),
        [_, 1] => y.flatten_all()?,
        d => return Err(bad(format!("shape {d:?} is not one label per image"))),
    };
    if y.dtype().is_float() {
        return Err(bad(format!(
            "labels are {:?}; give integer class indices",
            y.dtype()
        )));
    }
    let v = y.to_dtype(DType::I64)?.to_vec1::<i64>()?;
    v.iter()
        .map(|&l| {
            u32::try_from(l).map_err(|_| bad(format!("label {l} is not a class index (0 or more)")))
        })
        .collect()
}

fn dataset(
    path: &Path,
    (x, xn): (&Tensor, &str),
    (y, yn): (&Tensor, &str),
    name: &str,
) -> Result<Dataset> {
    let (values, [channels, height, width]) = images(x, xn, path)?;
    let labels = labels(y, yn, path)?;
    if labels.len() != x.dims()[0] {
        return Err(Error::format(
            path,
            format!(
                "`{xn}` holds {} images but `{yn}` {} labels",
                x.dims()[0],
                labels.len()
            ),
        ));
    }
    let num_classes = labels.iter().max().map_or(0, |m| *m as usize + 1);
    Ok(Dataset::new(
        name,
        values,
        labels,
        [channels, height, width],
        num_classes,
    ))
}

/// The `.npy` files of a folder, sorted.
pub fn npy_files(dir: &Path) -> Result<Vec<std::path::PathBuf>> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e.eq_ignore_ascii_case("npy")))
        .collect();
    v.sort();
    Ok(v)
}

/// Loads `(train, test)` from a `.npz` or a folder of `.npy` files: its
/// `x_train` ... `y_test`, or its `x` and `y` with `test_fraction` of each
/// class held out (split by `seed`). Both splits get the larger class count.
/// Errors name the file and the array.
pub fn load_npz(
    path: impl AsRef<Path>,
    test_fraction: f64,
    seed: u64,
) -> Result<(Dataset, Dataset)> {
    load_arrays(path.as_ref(), ("x", "y"), test_fraction, seed)
}

/// [`load_npz`] with the images and labels of the split-here layout in the
/// arrays named `xy` (`("x", "y")` by default).
pub fn load_arrays(
    path: &Path,
    (x_name, y_name): (&str, &str),
    test_fraction: f64,
    seed: u64,
) -> Result<(Dataset, Dataset)> {
    let arrays = arrays(path)?;
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "npz".into());
    let names: Vec<&str> = arrays.iter().map(|(n, _)| n.as_str()).collect();
    let got = |n: &str| take(&arrays, n);
    let (mut train, mut test) = match SPLIT_NAMES.map(got) {
        [Some(xt), Some(yt), Some(xs), Some(ys)] => {
            let train = dataset(path, (&xt, "x_train"), (&yt, "y_train"), &name)?;
            let test = dataset(path, (&xs, "x_test"), (&ys, "y_test"), &name)?;
            if (train.channels, train.height, train.width)
                != (test.channels, test.height, test.width)
            {
                return Err(Error::format(
                    path,
                    format!(
                        "train images are {}x{}x{} but test images {}x{}x{}",
                        train.channels,
                        train.height,
                        train.width,
                        test.channels,
                        test.height,
                        test.width
                    ),
                ));
            }
            (train, test)
        }
        _ => match (got(x_name), got(y_name)) {
            (Some(x), Some(y)) => {
                if !(test_fraction > 0.0 && test_fraction < 1.0) {
                    return Err(Error::config(
                        "dataset.test_fraction",
                        format!("must be between 0 and 1 (exclusive), got {test_fraction}"),
                    ));
                }
                let all = dataset(path, (&x, x_name), (&y, y_name), &name)?;
                let (tr, te) = stratified_indices(&all.labels, test_fraction, seed);
                (all.subset(&tr), all.subset(&te))
            }
            _ => {
                return Err(Error::format(
                    path,
                    format!(
                        "needs arrays x_train, y_train, x_test, y_test (or {x_name} and {y_name}); it holds: {}",
                        names.join(", ")
                    ),
                ))
            }
        },
    };
    let classes = train.num_classes.max(test.num_classes);
    train.num_classes = classes;
    test.num_classes = classes;
    Ok((train, test))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/numpy")
            .join(name)
    }

    /// The Keras layout with uint8 NHWC images: values scaled by 1/255 and
    /// moved to NCHW pixel for pixel (tests/fixtures/numpy/make_npz.py).
    #[test]
    fn split_archives_load_nhwc_as_nchw() {
        let (train, test) = load_npz(fixture("split.npz"), 0.2, 0).unwrap();
        assert_eq!((train.len(), test.len()), (6, 4));
        assert_eq!((train.channels, train.height, train.width), (3, 4, 5));
        assert_eq!(train.labels, [0, 1, 2, 0, 1, 2]);
        assert_eq!(test.labels, [2, 1, 0, 3]);
        assert_eq!((train.num_classes, test.num_classes), (4, 4));
        for (n, y, x, c) in [(0, 0, 0, 0), (1, 2, 3, 1), (5, 3, 4, 2), (4, 1, 0, 2)] {
            let want = ((n * 60 + y * 15 + x * 3 + c) % 256) as f32 / 255.0;
            let at = ((n * 3 + c) * 4 + y) * 5 + x;
            assert_eq!(train.images.to_f32()[at], want, "pixel {n},{y},{x},{c}");
        }
        assert!(
            matches!(train.images, Pixels::Bytes(_)),
            "uint8 stays bytes"
        );
    }

    /// `x` and `y` in a compressed archive: float grey images as they are,
    /// split by class.
    #[test]
    fn xy_archives_are_split_here() {
        let (train, test) = load_npz(fixture("xy.npz"), 0.2, 0).unwrap();
        assert_eq!(train.len() + test.len(), 10);
        assert_eq!(test.len(), 2, "one of each class");
        assert_eq!((train.channels, train.height, train.width), (1, 2, 3));
        // Every image n holds n + (y * 3 + x) / 10: its first pixel is n, an
        // integer, and its last n + 0.5.
        for d in [&train, &test] {
            for i in 0..d.len() {
                let px = d.image(i);
                let n = px[0];
                assert_eq!(n.fract(), 0.0);
                assert!((px[5] - (n + 0.5)).abs() < 1e-6);
                assert_eq!(d.labels[i], n as u32 % 2);
            }
        }
        let e = load_npz(fixture("xy.npz"), 1.5, 0).unwrap_err().to_string();
        assert!(e.contains("test_fraction"), "{e}");
    }

    #[test]
    fn wrong_archives_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bad.npz");
        std::fs::write(&p, b"not a zip").unwrap();
        let e = load_npz(&p, 0.2, 0).unwrap_err().to_string();
        assert!(e.contains("bad.npz") && e.contains("not a NumPy"), "{e}");
        let e = load_npz(dir.path().join("missing.npz"), 0.2, 0)
            .unwrap_err()
            .to_string();
        assert!(e.contains("no such file"), "{e}");
        // An archive without the arrays lists what it holds.
        let other = dir.path().join("other.npz");
        Tensor::write_npz(
            &[(
                "weights",
                &Tensor::zeros(3, DType::F32, &candle_core::Device::Cpu).unwrap(),
            )],
            &other,
        )
        .unwrap();
        let e = load_npz(&other, 0.2, 0).unwrap_err().to_string();
        assert!(e.contains("x_train") && e.contains("weights"), "{e}");
        // Images and labels that do not match in count.
        let cpu = candle_core::Device::Cpu;
        let x = Tensor::zeros((4, 2, 2), DType::U8, &cpu).unwrap();
        let y = Tensor::zeros(3, DType::I64, &cpu).unwrap();
        let mismatched = dir.path().join("mismatch.npz");
        Tensor::write_npz(&[("x", &x), ("y", &y)], &mismatched).unwrap();
        let e = load_npz(&mismatched, 0.2, 0).unwrap_err().to_string();
        assert!(e.contains("4 images") && e.contains("3 labels"), "{e}");
        let yf = Tensor::zeros(4, DType::F32, &cpu).unwrap();
        let float_labels = dir.path().join("float.npz");
        Tensor::write_npz(&[("x", &x), ("y", &yf)], &float_labels).unwrap();
        let e = load_npz(&float_labels, 0.2, 0).unwrap_err().to_string();
        assert!(e.contains("integer class indices"), "{e}");
    }

    /// A folder of `.npy` files with the images and labels under names of
    /// its own, given in the spec; detected from the folder or one file.
    #[test]
    fn npy_folders_load_with_named_arrays() {
        let dir = tempfile::tempdir().unwrap();
        let (train, _) = crate::data::embedded_glyphs(60, 10, 0);
        let x = Tensor::from_vec(
            train
                .images
                .to_f32()
                .iter()
                .map(|v| (v * 255.0).round() as u8)
                .collect::<Vec<_>>(),
            (train.len(), train.height, train.width),
            &candle_core::Device::Cpu,
        )
        .unwrap();
        let y = Tensor::from_vec(
            train
                .labels
                .iter()
                .map(|&l| i64::from(l))
                .collect::<Vec<_>>(),
            train.len(),
            &candle_core::Device::Cpu,
        )
        .unwrap();
        x.write_npy(dir.path().join("images.npy")).unwrap();
        y.write_npy(dir.path().join("labels.npy")).unwrap();
        let spec = crate::data::DatasetSpec::detect(dir.path().join("images.npy")).unwrap();
        let e = spec.load().unwrap_err().to_string();
        assert!(
            e.contains("or x and y") && e.contains("images, labels"),
            "{e}"
        );
        let crate::data::DatasetSpec::Npz { path, .. } = spec else {
            panic!("{spec:?}")
        };
        assert_eq!(path, dir.path());
        let (tr, te) = load_arrays(dir.path(), ("images", "labels"), 0.25, 0).unwrap();
        assert_eq!(tr.len() + te.len(), 60);
        assert_eq!(tr.image_shape(), [1, train.height, train.width]);
        let toml = format!(
            "kind = \"npz\"\npath = {:?}\nx = \"images\"\ny = \"labels\"\ntest_fraction = 0.25\n",
            dir.path()
        );
        let spec: crate::data::DatasetSpec = toml::from_str(&toml).unwrap();
        assert_eq!(spec.load().unwrap().0.len(), tr.len());
    }

    /// Headers are read without the arrays: plain, compressed and `.npy`.
    #[test]
    fn headers_declare_the_memory_before_loading() {
        let split = declared_arrays(&fixture("split.npz"));
        assert!(
            split.contains(&Declared {
                item_bytes: 1,
                shape: vec![6, 4, 5, 3]
            }),
            "{split:?}"
        );
        let xy = declared_arrays(&fixture("xy.npz"));
        assert!(xy.iter().any(|a| a.shape == [10, 2, 3]), "{xy:?}");
        // 10 float images of 6 values: 240 bytes read, twice 240 as kept,
        // plus the labels.
        let labels: u64 = xy
            .iter()
            .filter(|a| a.shape.len() == 1)
            .map(Declared::bytes)
            .sum();
        assert_eq!(bytes_needed(&fixture("xy.npz")), 3 * 10 * 6 * 4 + labels);
        let dir = tempfile::tempdir().unwrap();
        let cpu = candle_core::Device::Cpu;
        Tensor::zeros((7, 2, 3), DType::U8, &cpu)
            .unwrap()
            .write_npy(dir.path().join("x.npy"))
            .unwrap();
        assert_eq!(
            declared_arrays(dir.path()),
            [Declared {
                item_bytes: 1,
                shape: vec![7, 2, 3]
            }]
        );
        assert_eq!(declared(&b"not npy at all"[..]), None);
    }

    /// Integer images wider than a byte are bytes when they fit, refused
    /// with the value when not.
    #[test]
    fn wide_integer_images_are_bytes_or_refused() {
        let dir = tempfile::tempdir().unwrap();
        let cpu = candle_core::Device::Cpu;
        let y = Tensor::from_vec(vec![0i64, 1, 0, 1], 4, &cpu).unwrap();
        let write = |name: &str, values: Vec<i64>| {
            let x = Tensor::from_vec(values, (4, 1, 2), &cpu).unwrap();
            let p = dir.path().join(name);
            Tensor::write_npz(&[("x", &x), ("y", &y)], &p).unwrap();
            p
        };
        let ok = write("ok.npz", vec![0, 255, 3, 4, 5, 6, 7, 8]);
        let (tr, te) = load_npz(&ok, 0.5, 0).unwrap();
        assert!(matches!(tr.images, Pixels::Bytes(_)));
        assert_eq!(tr.len() + te.len(), 4);
        let bad = write("bad.npz", vec![0, 300, 3, 4, 5, 6, 7, 8]);
        let e = load_npz(&bad, 0.5, 0).unwrap_err().to_string();
        assert!(e.contains("holds 300") && e.contains("0..=255"), "{e}");
    }
}
