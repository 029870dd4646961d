//! Writes a dataset as a folder of NumPy `.npy` files in the layout
//! [`super::load_npz`] reads back (`x_train`, `y_train`, `x_test`,
//! `y_test`): images `[N, C, H, W]` as `uint8` where they are bytes and
//! `float32` where they are values, labels `int64`. Other tools (a PyTorch
//! script, NumPy) then see exactly the pixels Shears trains on, the
//! embedded glyphs included.

use std::path::{Path, PathBuf};

use super::{Dataset, Pixels};
use crate::error::{Error, Result};
use crate::fsutil::write_atomic;

/// The bytes of a version-1.0 `.npy` file of `descr` values with `shape`,
/// holding `data` (already in that type's little-endian bytes).
fn npy_bytes(descr: &str, shape: &[usize], data: &[u8]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    // Magic (6) + version (2) + length (2) + header + '\n', padded to 64.
    let unpadded = 10 + header.len() + 1;
    header.push_str(&" ".repeat(unpadded.next_multiple_of(64) - unpadded));
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + data.len());
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out
}

/// Writes `set`'s images as `x_{split}.npy` and labels as `y_{split}.npy`
/// under `dir`; returns the two paths.
fn write_split(dir: &Path, split: &str, set: &Dataset) -> Result<[PathBuf; 2]> {
    let shape = [set.len(), set.channels, set.height, set.width];
    let images = match &set.images {
        Pixels::Bytes(v) => npy_bytes("|u1", &shape, v),
        Pixels::Floats(v) => {
            let raw: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
            npy_bytes("<f4", &shape, &raw)
        }
    };
    let raw: Vec<u8> = set
        .labels
        .iter()
        .flat_map(|&l| i64::from(l).to_le_bytes())
        .collect();
    let labels = npy_bytes("<i8", &[set.len()], &raw);
    let x = dir.join(format!("x_{split}.npy"));
    let y = dir.join(format!("y_{split}.npy"));
    write_atomic(&x, &images)?;
    write_atomic(&y, &labels)?;
    Ok([x, y])
}

/// Writes `train` and `test` under `dir` (created if missing) as
/// `x_train.npy`, `y_train.npy`, `x_test.npy` and `y_test.npy`; returns
/// the files written. Loading `dir` as `kind = "npz"` gives the same
/// pixels and labels back.
pub fn export_npy(train: &Dataset, test: &Dataset, dir: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let mut files = write_split(dir, "train", train)?.to_vec();
    files.extend(write_split(dir, "test", test)?);
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{embedded_glyphs, load_npz};

    #[test]
    fn headers_are_what_numpy_writes() {
        let b = npy_bytes("<i8", &[3], &[0; 24]);
        let len = u16::from_le_bytes([b[8], b[9]]) as usize;
        assert_eq!((10 + len) % 64, 0, "header padded to 64 bytes");
        let header = std::str::from_utf8(&b[10..10 + len]).unwrap();
        assert!(header.starts_with("{'descr': '<i8', 'fortran_order': False, 'shape': (3,), }"));
        assert!(header.ends_with('\n'));
        assert_eq!(b.len(), 10 + len + 24);
    }

    #[test]
    fn glyphs_and_bytes_come_back_as_they_were_written() {
        let dir = tempfile::tempdir().unwrap();
        let (train, test) = embedded_glyphs(50, 20, 3);
        export_npy(&train, &test, dir.path()).unwrap();
        let (tr, te) = load_npz(dir.path(), 0.2, 0).unwrap();
        for (a, b) in [(&train, &tr), (&test, &te)] {
            assert_eq!(a.labels, b.labels);
            assert_eq!(
                [a.channels, a.height, a.width],
                [b.channels, b.height, b.width]
            );
            assert_eq!(a.images, b.images, "float pixels bit for bit");
        }
        let bytes = Dataset::new(
            "b",
            vec![0u8, 7, 255, 128, 1, 2],
            vec![1, 0, 1],
            [1, 1, 2],
            2,
        );
        let sub = tempfile::tempdir().unwrap();
        export_npy(&bytes, &bytes, sub.path()).unwrap();
        let (tr, _) = load_npz(sub.path(), 0.2, 0).unwrap();
        assert_eq!(tr.images, bytes.images, "bytes stay bytes");
        assert_eq!(tr.labels, bytes.labels);
    }
}
