//! Datasets: loaders for the formats users already have on disk (IDX for
//! MNIST / Fashion-MNIST / KMNIST, the CIFAR-10/100 binary format, the UCI
//! digits CSV), an embedded procedurally generated default dataset, seeded
//! stratified splits, per-channel normalisation and batching into Candle
//! tensors.
//!
//! Every loader returns images as values in `[0, 1]`, row-major NCHW, held
//! as bytes where the source is 8-bit ([`Pixels`]), and labels as `u32`;
//! normalisation is applied as batches are made. Everything random is driven by a seeded
//! [`rand::rngs::StdRng`], so the same seed always gives the same bytes.

mod batch;
mod cifar;
mod digits_csv;
mod glyphs;
mod idx;
mod image_folder;
pub mod memory;
mod normalization;
mod npy_export;
pub(crate) mod npz;
mod pixels;
mod preprocess;
mod spec;
mod split;

use std::io::Read;
use std::path::Path;

use crate::error::{Error, Result};

pub use batch::{epoch_order, make_batch};
pub use cifar::{load_cifar_dir, load_cifar_file, parse_cifar, CifarVariant};
pub use digits_csv::{load_digits_csv, parse_digits_csv, read_digits_csv};
pub use glyphs::{embedded_glyphs, GLYPH_CLASS_NAMES, GLYPH_SIZE};
pub use idx::{load_idx_dir, parse_idx_images, parse_idx_labels, read_idx_images, read_idx_labels};
pub use image_folder::{load_image_folder, looks_like_image_folder, ImageFolderOptions};
pub use normalization::Normalization;
pub use npy_export::export_npy;
pub use npz::load_npz;
pub use pixels::{byte_value, Pixels};
pub use preprocess::{InputPrep, NormChoice, Preprocess};
pub use spec::DatasetSpec;
pub use split::{prepare, prepare_normalised, split_validation, stratified_indices, DataSplits};

/// An in-memory labelled image dataset.
///
/// Images are stored contiguously, row-major NCHW: image `i` is values
/// `i * c*h*w .. (i + 1) * c*h*w`, laid out channel by channel, each channel
/// row by row. 8-bit sources keep their bytes; `norm`, when set, is applied
/// to each batch ([`make_batch`]).
#[derive(Clone, Debug)]
pub struct Dataset {
    /// Human-readable name, e.g. `mnist-10k` or `embedded-glyphs`.
    pub name: String,
    /// Pixel values in `[0, 1]`, `len() * channels * height * width` of them, NCHW.
    pub images: Pixels,
    /// One class index per image, each `< num_classes`.
    pub labels: Vec<u32>,
    /// Channels per image (1 for grey, 3 for RGB).
    pub channels: usize,
    /// Image height in pixels.
    pub height: usize,
    /// Image width in pixels.
    pub width: usize,
    /// Number of classes (labels are `0..num_classes`).
    pub num_classes: usize,
    /// The normalisation batches get (`None`: the values as stored).
    pub norm: Option<Normalization>,
}

impl Dataset {
    /// A dataset of `images` (NCHW, `[channels, height, width]` each) and
    /// their `labels`, not normalised; the pixels hold no spare capacity.
    pub fn new(
        name: impl Into<String>,
        images: impl Into<Pixels>,
        labels: Vec<u32>,
        [channels, height, width]: [usize; 3],
        num_classes: usize,
    ) -> Dataset {
        let mut images = images.into();
        images.shrink_to_fit();
        Dataset {
            name: name.into(),
            images,
            labels,
            channels,
            height,
            width,
            num_classes,
            norm: None,
        }
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when the dataset holds no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Number of values in one image: `channels * height * width`.
    pub fn image_len(&self) -> usize {
        self.channels * self.height * self.width
    }

    /// The shape of one image as `[channels, height, width]`.
    pub fn image_shape(&self) -> [usize; 3] {
        [self.channels, self.height, self.width]
    }

    /// The pixels of image `i` (`image_len()` values, CHW) in `[0, 1]`, as
    /// stored (not normalised).
    ///
    /// # Panics
    /// If `i >= len()`.
    pub fn image(&self, i: usize) -> Vec<f32> {
        let n = self.image_len();
        let mut out = vec![0f32; n];
        self.images.read_into(i * n, &mut out);
        out
    }

    /// Every value as the model sees it: normalised when `norm` is set.
    pub fn values(&self) -> Vec<f32> {
        let mut v = self.images.to_f32();
        if let Some(norm) = &self.norm {
            if self.height * self.width > 0 {
                norm.apply_images(&mut v, self.height * self.width);
            }
        }
        v
    }

    /// Bytes of memory the pixels take.
    pub fn bytes_in_memory(&self) -> usize {
        self.images.bytes_in_memory()
    }

    /// A new dataset holding the images at `idx`, in that order (indices may
    /// repeat). Name, shape, `num_classes`, storage and normalisation are kept.
    ///
    /// # Panics
    /// If an index is `>= len()`.
    pub fn subset(&self, idx: &[usize]) -> Dataset {
        Dataset {
            name: self.name.clone(),
            images: self.images.gather(idx, self.image_len()),
            labels: idx.iter().map(|&i| self.labels[i]).collect(),
            channels: self.channels,
            height: self.height,
            width: self.width,
            num_classes: self.num_classes,
            norm: self.norm.clone(),
        }
    }

    /// How many images each class has; the vector has `num_classes` entries
    /// (more if some label is out of range).
    pub fn class_counts(&self) -> Vec<usize> {
        let max_label = self
            .labels
            .iter()
            .map(|&l| l as usize + 1)
            .max()
            .unwrap_or(0);
        let mut counts = vec![0usize; self.num_classes.max(max_label)];
        for &l in &self.labels {
            counts[l as usize] += 1;
        }
        counts
    }

    /// Checks the invariants: buffer length matches `len() * image_len()`,
    /// every label is `< num_classes`. The error names the dataset.
    pub fn validate(&self) -> Result<()> {
        let expected = self.len().checked_mul(self.image_len());
        if expected != Some(self.images.len()) {
            return Err(Error::Shape(format!(
                "dataset `{}`: {} labels of {}x{}x{} images need {} pixel values, found {}",
                self.name,
                self.len(),
                self.channels,
                self.height,
                self.width,
                expected.map_or_else(|| "too many".to_string(), |e| e.to_string()),
                self.images.len()
            )));
        }
        if let Some((i, &l)) = self
            .labels
            .iter()
            .enumerate()
            .find(|(_, &l)| l as usize >= self.num_classes)
        {
            return Err(Error::Shape(format!(
                "dataset `{}`: label {l} of image {i} is out of range 0..{}",
                self.name, self.num_classes
            )));
        }
        Ok(())
    }
}

/// Largest decompressed size of a gzip-compressed data file.
pub const MAX_DECOMPRESSED: u64 = 4 << 30;

/// Reads a whole file, transparently decompressing it when it starts with the
/// gzip magic bytes `1f 8b` (whatever its extension).
pub(crate) fn read_maybe_gz(path: &Path) -> Result<Vec<u8>> {
    let raw = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    gunzip_if_gz(&raw, path)
}

/// `raw` decompressed when it starts with the gzip magic bytes, else as is;
/// errors name `origin`. Refuses to decompress more than
/// [`MAX_DECOMPRESSED`] bytes (a corrupt or hostile file cannot make it
/// allocate without bound).
pub fn gunzip_if_gz(raw: &[u8], origin: &Path) -> Result<Vec<u8>> {
    if raw.len() < 2 || raw[0] != 0x1f || raw[1] != 0x8b {
        return Ok(raw.to_vec());
    }
    let mut out = Vec::with_capacity(raw.len().saturating_mul(4).min(1 << 26));
    flate2::read::MultiGzDecoder::new(raw)
        .take(MAX_DECOMPRESSED + 1)
        .read_to_end(&mut out)
        .map_err(|e| Error::format(origin, format!("corrupt gzip data: {e}")))?;
    if out.len() as u64 > MAX_DECOMPRESSED {
        return Err(Error::format(
            origin,
            format!("decompresses to more than {} GiB", MAX_DECOMPRESSED >> 30),
        ));
    }
    Ok(out)
}

/// `a * b * ...` without overflow, or `None`.
pub(crate) fn checked_product(factors: &[usize]) -> Option<usize> {
    factors
        .iter()
        .try_fold(1usize, |acc, &f| acc.checked_mul(f))
}

/// A 64-bit mixing function (SplitMix64 finaliser) used to derive independent
/// RNG seeds from `(seed, stream, index)` tuples.
pub(crate) fn mix_seed(parts: &[u64]) -> u64 {
    let mut h: u64 = 0x9E37_79B9_7F4A_7C15;
    for &p in parts {
        let mut z = h ^ p.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        h = z ^ (z >> 31);
    }
    h
}

/// Directory containing the shared real datasets, for tests.
#[cfg(test)]
pub(crate) fn shared_datasets_dir() -> std::path::PathBuf {
    std::path::PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/datasets"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn tiny() -> Dataset {
        Dataset::new(
            "tiny",
            (0..12).map(|v| v as f32).collect::<Vec<_>>(),
            vec![0, 1, 1],
            [1, 2, 2],
            3,
        )
    }

    #[test]
    fn accessors_and_subset() {
        let ds = tiny();
        assert_eq!(ds.len(), 3);
        assert!(!ds.is_empty());
        assert_eq!(ds.image_len(), 4);
        assert_eq!(ds.image(1), &[4.0, 5.0, 6.0, 7.0]);
        assert_eq!(ds.class_counts(), vec![1, 2, 0]);
        let sub = ds.subset(&[2, 0]);
        assert_eq!(sub.labels, vec![1, 0]);
        assert_eq!(
            sub.images.to_f32(),
            vec![8.0, 9.0, 10.0, 11.0, 0.0, 1.0, 2.0, 3.0]
        );
        assert_eq!(sub.num_classes, 3);
        ds.validate().unwrap();
        let mut bad = ds.clone();
        bad.labels[0] = 7;
        assert!(bad.validate().unwrap_err().to_string().contains("label 7"));
        let mut bad = ds;
        bad.images = Pixels::from(vec![0f32; 11]);
        assert!(bad.validate().is_err());
    }

    #[test]
    fn gzip_detected_by_magic_not_extension() {
        let dir = tempfile::tempdir().unwrap();
        let payload = b"hello gzip world".repeat(10);
        let gz_no_ext = dir.path().join("plain.bin");
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(&payload).unwrap();
        std::fs::write(&gz_no_ext, enc.finish().unwrap()).unwrap();
        assert_eq!(read_maybe_gz(&gz_no_ext).unwrap(), payload);
        let raw_with_ext = dir.path().join("raw.gz");
        std::fs::write(&raw_with_ext, &payload).unwrap();
        assert_eq!(read_maybe_gz(&raw_with_ext).unwrap(), payload);
        let corrupt = dir.path().join("corrupt.gz");
        std::fs::write(&corrupt, [0x1f, 0x8b, 8, 0, 1, 2, 3, 4, 5, 6, 7]).unwrap();
        let err = read_maybe_gz(&corrupt).unwrap_err().to_string();
        assert!(
            err.contains("corrupt gzip") && err.contains("corrupt.gz"),
            "{err}"
        );
    }

    #[test]
    fn mix_seed_differs() {
        assert_ne!(mix_seed(&[0, 1]), mix_seed(&[1, 0]));
        assert_eq!(mix_seed(&[3, 4]), mix_seed(&[3, 4]));
    }
}
