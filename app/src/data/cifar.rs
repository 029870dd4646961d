//! The CIFAR-10 / CIFAR-100 binary format.
//!
//! A file is a sequence of records: label byte(s) then 3072 pixel bytes
//! (32x32, red plane, green plane, blue plane, each row-major). CIFAR-10 has
//! one label byte (0..10); CIFAR-100 has a coarse label byte (0..20) then a
//! fine label byte (0..100), of which the fine label is used.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{read_maybe_gz, Dataset};
use crate::error::{Error, Result};

/// Pixel bytes per CIFAR image (3 x 32 x 32).
const PIXELS: usize = 3 * 32 * 32;

/// Which CIFAR binary variant a file or folder holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CifarVariant {
    /// CIFAR-10: 1 label byte per record, 10 classes.
    Cifar10,
    /// CIFAR-100: coarse then fine label byte per record; 100 fine classes.
    Cifar100,
}

impl CifarVariant {
    /// Bytes per record: label byte(s) plus 3072 pixel bytes.
    pub fn record_size(self) -> usize {
        self.label_bytes() + PIXELS
    }

    /// Label bytes at the start of each record.
    pub fn label_bytes(self) -> usize {
        match self {
            CifarVariant::Cifar10 => 1,
            CifarVariant::Cifar100 => 2,
        }
    }

    /// Number of classes of the label that is used.
    pub fn num_classes(self) -> usize {
        match self {
            CifarVariant::Cifar10 => 10,
            CifarVariant::Cifar100 => 100,
        }
    }

    /// The dataset name, `cifar-10` or `cifar-100`.
    pub fn name(self) -> &'static str {
        match self {
            CifarVariant::Cifar10 => "cifar-10",
            CifarVariant::Cifar100 => "cifar-100",
        }
    }

    /// The subfolder name of the official archive
    /// (`cifar-10-batches-bin` / `cifar-100-binary`).
    pub fn archive_folder(self) -> &'static str {
        match self {
            CifarVariant::Cifar10 => "cifar-10-batches-bin",
            CifarVariant::Cifar100 => "cifar-100-binary",
        }
    }

    /// Training and test file names of this variant.
    fn file_names(self) -> (Vec<String>, String) {
        match self {
            CifarVariant::Cifar10 => (
                (1..=5).map(|i| format!("data_batch_{i}.bin")).collect(),
                "test_batch.bin".to_string(),
            ),
            CifarVariant::Cifar100 => (vec!["train.bin".to_string()], "test.bin".to_string()),
        }
    }
}

/// Reads one CIFAR binary file (raw, or gzip detected by its first bytes).
///
/// Returns `(images, labels)`: the pixel bytes in CHW order
/// (`3 x 32 x 32` per image) and the class labels (the fine label for
/// CIFAR-100). Errors name the file: a size that is not a positive multiple of
/// the record size (with both sizes), or a label out of range (with the record
/// index).
pub fn load_cifar_file(
    path: impl AsRef<Path>,
    variant: CifarVariant,
) -> Result<(Vec<u8>, Vec<u32>)> {
    let path = path.as_ref();
    parse_cifar(&read_maybe_gz(path)?, variant, path)
}

/// [`load_cifar_file`] of bytes already read (and decompressed); errors name
/// `path`.
pub fn parse_cifar(
    bytes: &[u8],
    variant: CifarVariant,
    path: &Path,
) -> Result<(Vec<u8>, Vec<u32>)> {
    let rec = variant.record_size();
    if bytes.is_empty() || !bytes.len().is_multiple_of(rec) {
        return Err(Error::format(
            path,
            format!(
                "file size {} bytes is not a positive multiple of the {} record size {rec} bytes ({} label byte{} + {PIXELS} pixel bytes){}",
                bytes.len(),
                variant.name(),
                variant.label_bytes(),
                if variant.label_bytes() == 1 { "" } else { "s" },
                if bytes.len().is_multiple_of(CifarVariant::Cifar10.record_size())
                    && variant == CifarVariant::Cifar100
                    && !bytes.is_empty()
                {
                    "; it looks like CIFAR-10"
                } else if bytes.len().is_multiple_of(CifarVariant::Cifar100.record_size())
                    && variant == CifarVariant::Cifar10
                    && !bytes.is_empty()
                {
                    "; it looks like CIFAR-100"
                } else {
                    ""
                }
            ),
        ));
    }
    let n = bytes.len() / rec;
    super::memory::check_fits(path, (n * PIXELS) as u64)?;
    let mut images = Vec::with_capacity(n * PIXELS);
    let mut labels = Vec::with_capacity(n);
    for (i, record) in bytes.chunks_exact(rec).enumerate() {
        if variant == CifarVariant::Cifar100 && record[0] >= 20 {
            return Err(Error::format(
                path,
                format!(
                    "record {i} (byte offset {}): coarse label {} is out of range 0..20",
                    i * rec,
                    record[0]
                ),
            ));
        }
        let label = record[variant.label_bytes() - 1];
        if usize::from(label) >= variant.num_classes() {
            return Err(Error::format(
                path,
                format!(
                    "record {i} (byte offset {}): label {label} is out of range 0..{}",
                    i * rec + variant.label_bytes() - 1,
                    variant.num_classes()
                ),
            ));
        }
        labels.push(u32::from(label));
        images.extend_from_slice(&record[variant.label_bytes()..]);
    }
    Ok((images, labels))
}

/// The folder that directly holds the variant's files: `dir` itself or its
/// archive subfolder, whichever contains the first training file.
pub(crate) fn resolve_cifar_dir(dir: &Path, variant: CifarVariant) -> Option<PathBuf> {
    let (train, test) = variant.file_names();
    let has = |d: &Path| match variant {
        CifarVariant::Cifar10 => d.join(&train[0]).is_file(),
        CifarVariant::Cifar100 => d.join(&train[0]).is_file() && d.join(&test).is_file(),
    };
    [dir.to_path_buf(), dir.join(variant.archive_folder())]
        .into_iter()
        .find(|d| has(d))
}

/// Loads a CIFAR folder as `(train, test)`.
///
/// CIFAR-10 reads `data_batch_1.bin` .. `data_batch_5.bin` and
/// `test_batch.bin`; CIFAR-100 reads `train.bin` and `test.bin`. The files may
/// sit in `dir` or in the official archive subfolder (`cifar-10-batches-bin`
/// / `cifar-100-binary`). Images are 3x32x32, kept as bytes (one per pixel value).
pub fn load_cifar_dir(dir: impl AsRef<Path>, variant: CifarVariant) -> Result<(Dataset, Dataset)> {
    let dir = dir.as_ref();
    if !dir.is_dir() {
        return Err(if dir.exists() {
            Error::format(
                dir,
                format!("not a folder; expected a {} folder", variant.name()),
            )
        } else {
            Error::io(
                dir,
                std::io::Error::new(std::io::ErrorKind::NotFound, "folder not found"),
            )
        });
    }
    let (train_names, test_name) = variant.file_names();
    let root = resolve_cifar_dir(dir, variant).unwrap_or_else(|| dir.to_path_buf());
    let missing: Vec<&str> = train_names
        .iter()
        .chain(std::iter::once(&test_name))
        .filter(|n| !root.join(n).is_file())
        .map(|s| s.as_str())
        .collect();
    if !missing.is_empty() {
        return Err(Error::format(
            dir,
            format!(
                "missing {} file(s) {} (looked in {} and {}/)",
                variant.name(),
                missing.join(", "),
                dir.display(),
                variant.archive_folder()
            ),
        ));
    }
    let make = |images: Vec<u8>, labels: Vec<u32>| {
        Dataset::new(
            variant.name(),
            images,
            labels,
            [3, 32, 32],
            variant.num_classes(),
        )
    };
    let mut images = Vec::new();
    let mut labels = Vec::new();
    for name in &train_names {
        let (im, lab) = load_cifar_file(root.join(name), variant)?;
        if images.is_empty() {
            // The batches are the same size: hold them without spare room.
            images.reserve_exact(im.len() * train_names.len());
        }
        images.extend(im);
        labels.extend(lab);
    }
    let train = make(images, labels);
    let (im, lab) = load_cifar_file(root.join(&test_name), variant)?;
    Ok((train, make(im, lab)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic pseudo-random record bytes.
    fn records(variant: CifarVariant, n: usize, salt: u8) -> Vec<u8> {
        let mut out = Vec::new();
        for i in 0..n {
            let fine = ((i * 7 + usize::from(salt)) % variant.num_classes()) as u8;
            if variant == CifarVariant::Cifar100 {
                out.push(fine / 5);
            }
            out.push(fine);
            out.extend((0..PIXELS).map(|p| ((p * 31 + i * 17 + usize::from(salt)) % 256) as u8));
        }
        out
    }

    fn write_cifar10(dir: &Path, per_file: usize) {
        for b in 1..=5u8 {
            std::fs::write(
                dir.join(format!("data_batch_{b}.bin")),
                records(CifarVariant::Cifar10, per_file, b),
            )
            .unwrap();
        }
        std::fs::write(
            dir.join("test_batch.bin"),
            records(CifarVariant::Cifar10, 3, 9),
        )
        .unwrap();
    }

    #[test]
    fn cifar10_round_trip() {
        let tmp = tempfile::tempdir().unwrap();
        write_cifar10(tmp.path(), 4);
        let (train, test) = load_cifar_dir(tmp.path(), CifarVariant::Cifar10).unwrap();
        assert_eq!(train.len(), 20);
        assert_eq!(test.len(), 3);
        assert_eq!(train.image_shape(), [3, 32, 32]);
        assert_eq!(train.num_classes, 10);
        train.validate().unwrap();
        assert_eq!(train.bytes_in_memory(), 20 * PIXELS, "one byte a value");
        // Byte-exact round trip of the first record of batch 2.
        let raw = records(CifarVariant::Cifar10, 4, 2);
        assert_eq!(train.labels[4], u32::from(raw[0]));
        let back: Vec<u8> = train
            .image(4)
            .iter()
            .map(|&p| (p * 255.0).round() as u8)
            .collect();
        assert_eq!(back, raw[1..1 + PIXELS]);
    }

    #[test]
    fn cifar10_in_archive_subfolder() {
        let tmp = tempfile::tempdir().unwrap();
        let sub = tmp.path().join("cifar-10-batches-bin");
        std::fs::create_dir(&sub).unwrap();
        write_cifar10(&sub, 1);
        let (train, _) = load_cifar_dir(tmp.path(), CifarVariant::Cifar10).unwrap();
        assert_eq!(train.len(), 5);
    }

    #[test]
    fn cifar100_round_trip_uses_fine_label() {
        let tmp = tempfile::tempdir().unwrap();
        let sub = tmp.path().join("cifar-100-binary");
        std::fs::create_dir(&sub).unwrap();
        let train_bytes = records(CifarVariant::Cifar100, 30, 1);
        std::fs::write(sub.join("train.bin"), &train_bytes).unwrap();
        std::fs::write(sub.join("test.bin"), records(CifarVariant::Cifar100, 2, 5)).unwrap();
        let (train, test) = load_cifar_dir(tmp.path(), CifarVariant::Cifar100).unwrap();
        assert_eq!((train.len(), test.len()), (30, 2));
        assert_eq!(train.num_classes, 100);
        assert_eq!(train.name, "cifar-100");
        for i in 0..30 {
            assert_eq!(train.labels[i], u32::from(train_bytes[i * 3074 + 1]));
        }
        assert!(train.labels.iter().any(|&l| l >= 20));
        let back: Vec<u8> = train
            .image(1)
            .iter()
            .map(|&p| (p * 255.0).round() as u8)
            .collect();
        assert_eq!(back, train_bytes[3074 + 2..2 * 3074]);
    }

    #[test]
    fn wrong_size_names_file_and_sizes() {
        let tmp = tempfile::tempdir().unwrap();
        write_cifar10(tmp.path(), 2);
        let p = tmp.path().join("data_batch_3.bin");
        let mut bytes = std::fs::read(&p).unwrap();
        bytes.truncate(bytes.len() - 100);
        std::fs::write(&p, bytes).unwrap();
        let err = load_cifar_dir(tmp.path(), CifarVariant::Cifar10)
            .unwrap_err()
            .to_string();
        assert!(err.contains("data_batch_3.bin"), "{err}");
        assert!(err.contains("file size 6046 bytes"), "{err}");
        assert!(err.contains("record size 3073"), "{err}");

        let p100 = tmp.path().join("c100.bin");
        std::fs::write(&p100, records(CifarVariant::Cifar10, 2, 0)).unwrap();
        let err = load_cifar_file(&p100, CifarVariant::Cifar100)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("record size 3074") && err.contains("looks like CIFAR-10"),
            "{err}"
        );

        let empty = tmp.path().join("empty.bin");
        std::fs::write(&empty, []).unwrap();
        assert!(load_cifar_file(&empty, CifarVariant::Cifar10).is_err());
    }

    #[test]
    fn label_out_of_range() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("test_batch.bin");
        let mut bytes = records(CifarVariant::Cifar10, 3, 0);
        bytes[3073 * 2] = 10;
        std::fs::write(&p, bytes).unwrap();
        let err = load_cifar_file(&p, CifarVariant::Cifar10)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("record 2") && err.contains("label 10 is out of range 0..10"),
            "{err}"
        );
        assert!(err.contains("test_batch.bin"), "{err}");

        let mut bytes = records(CifarVariant::Cifar100, 2, 0);
        bytes[3074 + 1] = 100;
        std::fs::write(&p, bytes).unwrap();
        let err = load_cifar_file(&p, CifarVariant::Cifar100)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("record 1") && err.contains("label 100"),
            "{err}"
        );
    }

    #[test]
    fn missing_files_listed() {
        let tmp = tempfile::tempdir().unwrap();
        write_cifar10(tmp.path(), 1);
        std::fs::remove_file(tmp.path().join("data_batch_4.bin")).unwrap();
        std::fs::remove_file(tmp.path().join("test_batch.bin")).unwrap();
        let err = load_cifar_dir(tmp.path(), CifarVariant::Cifar10)
            .unwrap_err()
            .to_string();
        assert!(err.contains("data_batch_4.bin, test_batch.bin"), "{err}");
        let err = load_cifar_dir(tmp.path(), CifarVariant::Cifar100)
            .unwrap_err()
            .to_string();
        assert!(err.contains("train.bin, test.bin"), "{err}");
    }
}
