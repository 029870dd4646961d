//! The IDX format of MNIST, Fashion-MNIST and KMNIST (raw or gzip).
//!
//! Layout (big-endian): images = `u32` magic 2051, `u32` count, `u32` rows,
//! `u32` cols, then `count * rows * cols` `u8` pixels; labels = `u32` magic
//! 2049, `u32` count, then `count` `u8` labels.

use std::path::{Path, PathBuf};

use super::{checked_product, read_maybe_gz, Dataset};
use crate::error::{Error, Result};

/// Magic number of an IDX file of unsigned bytes with 3 dimensions (images).
const IMAGES_MAGIC: u32 = 2051;
/// Magic number of an IDX file of unsigned bytes with 1 dimension (labels).
const LABELS_MAGIC: u32 = 2049;

/// The file names (without `.gz`) accepted for each of the four IDX files:
/// the official names first, then the dotted variant some mirrors use.
const TRAIN_IMAGES: &[&str] = &["train-images-idx3-ubyte", "train-images.idx3-ubyte"];
const TRAIN_LABELS: &[&str] = &["train-labels-idx1-ubyte", "train-labels.idx1-ubyte"];
const TEST_IMAGES: &[&str] = &["t10k-images-idx3-ubyte", "t10k-images.idx3-ubyte"];
const TEST_LABELS: &[&str] = &["t10k-labels-idx1-ubyte", "t10k-labels.idx1-ubyte"];

fn be_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

fn magic_hint(found: u32) -> &'static str {
    match found {
        IMAGES_MAGIC => " (this is an IDX image file)",
        LABELS_MAGIC => " (this is an IDX label file)",
        0x1f8b_0000..=0x1f8b_ffff => " (looks like gzip)",
        _ => "",
    }
}

/// Reads an IDX image file (magic 2051), raw or gzip-compressed (detected by
/// its first bytes, not its extension).
///
/// Returns `(count, rows, cols, pixels)` with `count * rows * cols` pixels,
/// row-major. Errors name the file and say what is wrong: bad magic (found vs
/// expected), truncated header or data (expected vs found bytes), trailing
/// bytes, or corrupt gzip.
pub fn read_idx_images(path: impl AsRef<Path>) -> Result<(usize, usize, usize, Vec<u8>)> {
    let path = path.as_ref();
    parse_idx_images(read_maybe_gz(path)?, path)
}

/// [`read_idx_images`] of bytes already read (and decompressed); errors name
/// `path`.
pub fn parse_idx_images(mut bytes: Vec<u8>, path: &Path) -> Result<(usize, usize, usize, Vec<u8>)> {
    if bytes.len() < 16 {
        return Err(Error::format(
            path,
            format!(
                "truncated IDX image header: expected 16 bytes, found {}",
                bytes.len()
            ),
        ));
    }
    let magic = be_u32(&bytes, 0);
    if magic != IMAGES_MAGIC {
        return Err(Error::format(
            path,
            format!(
                "bad magic number {magic} (0x{magic:08x}){}; expected {IMAGES_MAGIC} (0x{IMAGES_MAGIC:08x}) for an IDX image file",
                magic_hint(magic)
            ),
        ));
    }
    let n = be_u32(&bytes, 4) as usize;
    let rows = be_u32(&bytes, 8) as usize;
    let cols = be_u32(&bytes, 12) as usize;
    if rows == 0 || cols == 0 {
        return Err(Error::format(
            path,
            format!("IDX image file declares empty {rows}x{cols} images"),
        ));
    }
    let data_len = checked_product(&[n, rows, cols]).ok_or_else(|| {
        Error::format(
            path,
            format!("IDX header declares {n} images of {rows}x{cols}: too large"),
        )
    })?;
    let expected = 16 + data_len;
    if bytes.len() < expected {
        return Err(Error::format(
            path,
            format!(
                "truncated: header declares {n} images of {rows}x{cols}, which needs {expected} bytes, found {}",
                bytes.len()
            ),
        ));
    }
    if bytes.len() > expected {
        return Err(Error::format(
            path,
            format!(
                "{} unexpected trailing bytes: header declares {n} images of {rows}x{cols} ({expected} bytes), file has {}",
                bytes.len() - expected,
                bytes.len()
            ),
        ));
    }
    bytes.drain(..16);
    Ok((n, rows, cols, bytes))
}

/// Reads an IDX label file (magic 2049), raw or gzip-compressed.
///
/// Errors name the file and say what is wrong, as for [`read_idx_images`].
pub fn read_idx_labels(path: impl AsRef<Path>) -> Result<Vec<u8>> {
    let path = path.as_ref();
    parse_idx_labels(read_maybe_gz(path)?, path)
}

/// [`read_idx_labels`] of bytes already read (and decompressed); errors name
/// `path`.
pub fn parse_idx_labels(mut bytes: Vec<u8>, path: &Path) -> Result<Vec<u8>> {
    if bytes.len() < 8 {
        return Err(Error::format(
            path,
            format!(
                "truncated IDX label header: expected 8 bytes, found {}",
                bytes.len()
            ),
        ));
    }
    let magic = be_u32(&bytes, 0);
    if magic != LABELS_MAGIC {
        return Err(Error::format(
            path,
            format!(
                "bad magic number {magic} (0x{magic:08x}){}; expected {LABELS_MAGIC} (0x{LABELS_MAGIC:08x}) for an IDX label file",
                magic_hint(magic)
            ),
        ));
    }
    let n = be_u32(&bytes, 4) as usize;
    let expected = 8 + n;
    if bytes.len() < expected {
        return Err(Error::format(
            path,
            format!(
                "truncated: header declares {n} labels, which needs {expected} bytes, found {}",
                bytes.len()
            ),
        ));
    }
    if bytes.len() > expected {
        return Err(Error::format(
            path,
            format!(
                "{} unexpected trailing bytes: header declares {n} labels ({expected} bytes), file has {}",
                bytes.len() - expected,
                bytes.len()
            ),
        ));
    }
    bytes.drain(..8);
    Ok(bytes)
}

/// All candidate file names for one IDX file, raw and `.gz`.
fn candidates(bases: &[&str]) -> Vec<String> {
    bases
        .iter()
        .flat_map(|b| [b.to_string(), format!("{b}.gz")])
        .collect()
}

/// Finds the first existing candidate in `dir`, or `None`.
fn find_in(dir: &Path, bases: &[&str]) -> Option<PathBuf> {
    candidates(bases)
        .into_iter()
        .map(|name| dir.join(name))
        .find(|p| p.is_file())
}

/// True when `dir` holds at least the IDX training images (used by format
/// detection).
pub(crate) fn looks_like_idx_dir(dir: &Path) -> bool {
    find_in(dir, TRAIN_IMAGES).is_some()
}

/// What IDX detection looks for, for error messages.
pub(crate) fn idx_expected_names() -> String {
    "train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz]".to_string()
}

/// True when `name` is one of the IDX file names (raw or `.gz`).
pub(crate) fn is_idx_file_name(name: &str) -> bool {
    [TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS]
        .iter()
        .any(|bases| candidates(bases).iter().any(|c| c == name))
}

fn load_pair(
    name: &str,
    images_path: &Path,
    labels_path: &Path,
) -> Result<(usize, usize, Vec<u8>, Vec<u8>)> {
    let (n, rows, cols, pixels) = read_idx_images(images_path)?;
    let labels = read_idx_labels(labels_path)?;
    if labels.len() != n {
        return Err(Error::format(
            labels_path,
            format!(
                "{name}: label count {} does not match image count {n} in {}",
                labels.len(),
                images_path.display()
            ),
        ));
    }
    Ok((rows, cols, pixels, labels))
}

/// Loads an MNIST-style IDX folder: `train-images-idx3-ubyte`,
/// `train-labels-idx1-ubyte`, `t10k-images-idx3-ubyte`,
/// `t10k-labels-idx1-ubyte`, each raw or with `.gz` (the dotted names
/// `train-images.idx3-ubyte` etc. are accepted too).
///
/// Returns `(train, test)` with pixels scaled to `[0, 1]`, one channel, and
/// `num_classes = max label + 1` (at least 2) over both sets. The dataset
/// name is the folder's name.
pub fn load_idx_dir(dir: impl AsRef<Path>) -> Result<(Dataset, Dataset)> {
    let dir = dir.as_ref();
    if !dir.is_dir() {
        return Err(if dir.exists() {
            Error::format(dir, "not a folder; expected a folder with IDX files")
        } else {
            Error::io(
                dir,
                std::io::Error::new(std::io::ErrorKind::NotFound, "folder not found"),
            )
        });
    }
    let find = |what: &str, bases: &[&str]| {
        find_in(dir, bases).ok_or_else(|| {
            Error::format(
                dir,
                format!(
                    "missing IDX {what} file: looked for {}",
                    candidates(bases).join(", ")
                ),
            )
        })
    };
    let train_images = find("training images", TRAIN_IMAGES)?;
    let train_labels = find("training labels", TRAIN_LABELS)?;
    let test_images = find("test images", TEST_IMAGES)?;
    let test_labels = find("test labels", TEST_LABELS)?;

    let (tr_rows, tr_cols, tr_px, tr_lab) =
        load_pair("training set", &train_images, &train_labels)?;
    let (te_rows, te_cols, te_px, te_lab) = load_pair("test set", &test_images, &test_labels)?;
    if (tr_rows, tr_cols) != (te_rows, te_cols) {
        return Err(Error::format(
            &test_images,
            format!(
                "test images are {te_rows}x{te_cols} but training images in {} are {tr_rows}x{tr_cols}",
                train_images.display()
            ),
        ));
    }
    super::memory::check_fits(dir, (tr_px.len() + te_px.len()) as u64)?;
    let max_label = tr_lab.iter().chain(&te_lab).copied().max().unwrap_or(0) as usize;
    let num_classes = (max_label + 1).max(2);
    let name = dir
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "idx".to_string());
    let make = |pixels: Vec<u8>, labels: Vec<u8>| {
        Dataset::new(
            name.clone(),
            pixels,
            labels.into_iter().map(u32::from).collect(),
            [1, tr_rows, tr_cols],
            num_classes,
        )
    };
    Ok((make(tr_px, tr_lab), make(te_px, te_lab)))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::data::Pixels;
    use std::io::Write;

    /// Serialises an IDX image file.
    pub(crate) fn idx_images_bytes(n: usize, rows: usize, cols: usize, px: &[u8]) -> Vec<u8> {
        let mut b = Vec::new();
        for v in [IMAGES_MAGIC, n as u32, rows as u32, cols as u32] {
            b.extend_from_slice(&v.to_be_bytes());
        }
        b.extend_from_slice(px);
        b
    }

    /// Serialises an IDX label file.
    pub(crate) fn idx_labels_bytes(labels: &[u8]) -> Vec<u8> {
        let mut b = Vec::new();
        for v in [LABELS_MAGIC, labels.len() as u32] {
            b.extend_from_slice(&v.to_be_bytes());
        }
        b.extend_from_slice(labels);
        b
    }

    pub(crate) fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(bytes).unwrap();
        enc.finish().unwrap()
    }

    /// Writes a tiny valid IDX folder (3 train, 2 test images of 2x3).
    pub(crate) fn write_tiny_idx(dir: &Path, gz: bool) {
        let files: [(&str, Vec<u8>); 4] = [
            (
                "train-images-idx3-ubyte",
                idx_images_bytes(3, 2, 3, &(0..18).map(|v| v * 10).collect::<Vec<u8>>()),
            ),
            ("train-labels-idx1-ubyte", idx_labels_bytes(&[0, 4, 2])),
            (
                "t10k-images-idx3-ubyte",
                idx_images_bytes(2, 2, 3, &[255; 12]),
            ),
            ("t10k-labels-idx1-ubyte", idx_labels_bytes(&[1, 1])),
        ];
        for (name, bytes) in files {
            if gz {
                std::fs::write(dir.join(format!("{name}.gz")), gzip(&bytes)).unwrap();
            } else {
                std::fs::write(dir.join(name), bytes).unwrap();
            }
        }
    }

    #[test]
    fn reads_tiny_raw_and_gz_identically() {
        let raw = tempfile::tempdir().unwrap();
        let gz = tempfile::tempdir().unwrap();
        write_tiny_idx(raw.path(), false);
        write_tiny_idx(gz.path(), true);
        let (a_tr, a_te) = load_idx_dir(raw.path()).unwrap();
        let (b_tr, b_te) = load_idx_dir(gz.path()).unwrap();
        assert_eq!(a_tr.images, b_tr.images);
        assert_eq!(a_te.labels, b_te.labels);
        assert_eq!(a_tr.len(), 3);
        assert_eq!(a_te.len(), 2);
        assert_eq!((a_tr.channels, a_tr.height, a_tr.width), (1, 2, 3));
        assert_eq!(a_tr.num_classes, 5);
        assert_eq!(a_tr.labels, vec![0, 4, 2]);
        assert_eq!(a_tr.image(0)[1], 10.0 / 255.0);
        assert_eq!(a_te.images, Pixels::from(vec![255u8; 12]));
        assert_eq!(a_te.images.to_f32(), vec![1.0; 12]);
        a_tr.validate().unwrap();
        a_te.validate().unwrap();
    }

    #[test]
    fn num_classes_at_least_two() {
        let dir = tempfile::tempdir().unwrap();
        write_tiny_idx(dir.path(), false);
        std::fs::write(
            dir.path().join("train-labels-idx1-ubyte"),
            idx_labels_bytes(&[0, 0, 0]),
        )
        .unwrap();
        std::fs::write(
            dir.path().join("t10k-labels-idx1-ubyte"),
            idx_labels_bytes(&[0, 0]),
        )
        .unwrap();
        assert_eq!(load_idx_dir(dir.path()).unwrap().0.num_classes, 2);
    }

    #[test]
    fn missing_file_lists_candidates() {
        let dir = tempfile::tempdir().unwrap();
        write_tiny_idx(dir.path(), false);
        std::fs::remove_file(dir.path().join("t10k-labels-idx1-ubyte")).unwrap();
        let err = load_idx_dir(dir.path()).unwrap_err().to_string();
        assert!(err.contains("missing IDX test labels"), "{err}");
        assert!(err.contains("t10k-labels-idx1-ubyte.gz"), "{err}");
    }

    #[test]
    fn bad_magic_says_found_and_expected() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("imgs");
        // A label file where an image file is expected.
        std::fs::write(&p, idx_labels_bytes(&[1; 20])).unwrap();
        let err = read_idx_images(&p).unwrap_err().to_string();
        assert!(err.contains("bad magic number 2049"), "{err}");
        assert!(err.contains("expected 2051"), "{err}");
        assert!(err.contains("imgs"), "{err}");
        let l = dir.path().join("labs");
        std::fs::write(&l, idx_images_bytes(1, 1, 1, &[0])).unwrap();
        let err = read_idx_labels(&l).unwrap_err().to_string();
        assert!(err.contains("bad magic number 2051") && err.contains("expected 2049"));
    }

    #[test]
    fn truncated_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("imgs.gz");
        let mut bytes = idx_images_bytes(4, 2, 2, &[7; 16]);
        bytes.truncate(16 + 10);
        std::fs::write(&p, gzip(&bytes)).unwrap();
        let err = read_idx_images(&p).unwrap_err().to_string();
        assert!(err.contains("truncated"), "{err}");
        assert!(err.contains("needs 32 bytes, found 26"), "{err}");
        assert!(err.contains("imgs.gz"), "{err}");

        let h = dir.path().join("short");
        std::fs::write(&h, [0u8, 0, 8]).unwrap();
        let err = read_idx_labels(&h).unwrap_err().to_string();
        assert!(err.contains("expected 8 bytes, found 3"), "{err}");

        let l = dir.path().join("labs");
        let mut bytes = idx_labels_bytes(&[1; 10]);
        bytes.truncate(12);
        std::fs::write(&l, bytes).unwrap();
        let err = read_idx_labels(&l).unwrap_err().to_string();
        assert!(err.contains("needs 18 bytes, found 12"), "{err}");
    }

    #[test]
    fn trailing_bytes_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("imgs");
        std::fs::write(&p, idx_images_bytes(1, 2, 2, &[1; 6])).unwrap();
        let err = read_idx_images(&p).unwrap_err().to_string();
        assert!(err.contains("2 unexpected trailing bytes"), "{err}");
    }

    #[test]
    fn count_mismatch() {
        let dir = tempfile::tempdir().unwrap();
        write_tiny_idx(dir.path(), false);
        std::fs::write(
            dir.path().join("train-labels-idx1-ubyte"),
            idx_labels_bytes(&[0, 1]),
        )
        .unwrap();
        let err = load_idx_dir(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("label count 2 does not match image count 3"),
            "{err}"
        );
        assert!(err.contains("train-labels-idx1-ubyte"), "{err}");
    }

    #[test]
    fn corrupt_gzip() {
        let dir = tempfile::tempdir().unwrap();
        write_tiny_idx(dir.path(), true);
        let p = dir.path().join("train-images-idx3-ubyte.gz");
        let mut bytes = std::fs::read(&p).unwrap();
        let keep = bytes.len() / 2;
        bytes.truncate(keep);
        std::fs::write(&p, bytes).unwrap();
        let err = load_idx_dir(dir.path()).unwrap_err().to_string();
        assert!(err.contains("corrupt gzip"), "{err}");
        assert!(err.contains("train-images-idx3-ubyte.gz"), "{err}");
    }

    #[test]
    fn missing_dir() {
        let err = load_idx_dir("/definitely/not/here")
            .unwrap_err()
            .to_string();
        assert!(err.contains("/definitely/not/here"), "{err}");
    }

    #[test]
    fn real_mnist_10k() {
        let dir = crate::data::shared_datasets_dir().join("mnist-10k");
        let (train, test) = load_idx_dir(&dir).unwrap();
        assert_eq!(train.len(), 8000);
        assert_eq!(test.len(), 2000);
        assert_eq!((train.channels, train.height, train.width), (1, 28, 28));
        assert_eq!(train.num_classes, 10);
        assert_eq!(train.name, "mnist-10k");
        assert!(train.images.to_f32().iter().any(|&p| p > 0.99));
        assert_eq!(train.bytes_in_memory(), 8000 * 784, "one byte a pixel");
        assert!(train.class_counts().iter().all(|&c| c > 600));
        train.validate().unwrap();
        test.validate().unwrap();
    }

    #[test]
    fn real_mnist_gz_equals_raw() {
        let src = crate::data::shared_datasets_dir().join("mnist-10k");
        let tmp = tempfile::tempdir().unwrap();
        for name in ["t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"] {
            let raw = read_maybe_gz(&src.join(format!("{name}.gz"))).unwrap();
            std::fs::write(tmp.path().join(name), raw).unwrap();
        }
        let gz = read_idx_images(src.join("t10k-images-idx3-ubyte.gz")).unwrap();
        let raw = read_idx_images(tmp.path().join("t10k-images-idx3-ubyte")).unwrap();
        assert_eq!(gz, raw);
        assert_eq!(gz.0, 2000);
        assert_eq!(
            read_idx_labels(src.join("t10k-labels-idx1-ubyte.gz")).unwrap(),
            read_idx_labels(tmp.path().join("t10k-labels-idx1-ubyte")).unwrap()
        );
    }
}
