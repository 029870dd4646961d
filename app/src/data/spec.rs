//! Which dataset to use, as written in an experiment config, and guessing it
//! from a file or folder a user points at.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::cifar::{resolve_cifar_dir, CifarVariant};
use super::idx::{idx_expected_names, is_idx_file_name, looks_like_idx_dir};
use super::{embedded_glyphs, load_cifar_dir, load_digits_csv, load_idx_dir, Dataset, InputPrep};
use crate::error::{Error, Result};

fn default_train() -> usize {
    6000
}
fn default_test() -> usize {
    1000
}
fn default_test_fraction() -> f64 {
    0.2
}

/// A dataset source. In TOML / JSON it is a table with a `kind` key, e.g.
/// `{ kind = "idx", path = "data/mnist" }` or `{ kind = "embedded" }`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum DatasetSpec {
    /// The embedded procedurally generated glyphs (see
    /// [`embedded_glyphs`](super::embedded_glyphs)).
    Embedded {
        /// Training images (default 6000).
        #[serde(default = "default_train")]
        train: usize,
        /// Test images (default 1000).
        #[serde(default = "default_test")]
        test: usize,
        /// Generation seed (default 0).
        #[serde(default)]
        seed: u64,
    },
    /// An MNIST-style IDX folder (MNIST, Fashion-MNIST, KMNIST).
    Idx {
        /// The folder holding the four IDX files.
        path: PathBuf,
    },
    /// A CIFAR-10 binary folder.
    Cifar10 {
        /// The folder holding `data_batch_*.bin` (or its parent).
        path: PathBuf,
    },
    /// A CIFAR-100 binary folder.
    Cifar100 {
        /// The folder holding `train.bin` and `test.bin` (or its parent).
        path: PathBuf,
    },
    /// The UCI digits CSV, split into train and test here.
    DigitsCsv {
        /// The `.csv` or `.csv.gz` file.
        path: PathBuf,
        /// Fraction of each class held out for testing (default 0.2).
        #[serde(default = "default_test_fraction")]
        test_fraction: f64,
        /// Split seed (default 0).
        #[serde(default)]
        seed: u64,
    },
    /// An ImageFolder: class subfolders of PNG/JPEG images, under `train/`
    /// and `val/` (or `test/`) or split here (see
    /// [`load_image_folder`](super::load_image_folder)).
    Images {
        /// The folder.
        path: PathBuf,
        /// `[height, width]` every image is brought to (shorter side
        /// resized, then centre-cropped); absent: the first image's size.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        size: Option<[usize; 2]>,
        /// 1 (grey) or 3 (RGB); absent: grey when the first image is.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        channels: Option<usize>,
        /// Without `train/` and `val/`: fraction of each class held out
        /// for testing (default 0.2).
        #[serde(default = "default_test_fraction")]
        test_fraction: f64,
        /// Split seed (default 0).
        #[serde(default)]
        seed: u64,
    },
    /// NumPy arrays, a `.npz` or a folder of `.npy` files: `x_train`,
    /// `y_train`, `x_test`, `y_test`, or `x` and `y` (or the arrays named by
    /// `x` and `y`) split here (see [`load_npz`](super::npz::load_npz)).
    Npz {
        /// The `.npz` file or the folder of `.npy` files.
        path: PathBuf,
        /// The images' array in the split-here layout (default `x`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        x: Option<String>,
        /// The labels' array in the split-here layout (default `y`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        y: Option<String>,
        /// With `x` and `y` only: fraction of each class held out for
        /// testing (default 0.2).
        #[serde(default = "default_test_fraction")]
        test_fraction: f64,
        /// Split seed (default 0).
        #[serde(default)]
        seed: u64,
    },
}

impl Default for DatasetSpec {
    fn default() -> Self {
        DatasetSpec::Embedded {
            train: default_train(),
            test: default_test(),
            seed: 0,
        }
    }
}

impl fmt::Display for DatasetSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DatasetSpec::Embedded { train, test, seed } => write!(
                f,
                "embedded glyphs ({train} train / {test} test, seed {seed})"
            ),
            DatasetSpec::Idx { path } => write!(f, "IDX folder {}", path.display()),
            DatasetSpec::Cifar10 { path } => write!(f, "CIFAR-10 folder {}", path.display()),
            DatasetSpec::Cifar100 { path } => write!(f, "CIFAR-100 folder {}", path.display()),
            DatasetSpec::DigitsCsv {
                path,
                test_fraction,
                seed,
            } => write!(
                f,
                "digits CSV {} (test fraction {test_fraction}, seed {seed})",
                path.display()
            ),
            DatasetSpec::Npz { path, .. } => write!(f, "NumPy archive {}", path.display()),
            DatasetSpec::Images { path, .. } => write!(f, "image folder {}", path.display()),
        }
    }
}

impl DatasetSpec {
    /// The path this spec reads, if any.
    pub fn path(&self) -> Option<&Path> {
        match self {
            DatasetSpec::Embedded { .. } => None,
            DatasetSpec::Idx { path }
            | DatasetSpec::Cifar10 { path }
            | DatasetSpec::Cifar100 { path }
            | DatasetSpec::DigitsCsv { path, .. }
            | DatasetSpec::Npz { path, .. }
            | DatasetSpec::Images { path, .. } => Some(path),
        }
    }

    /// The path this spec reads, to change it (`None`: the embedded set).
    fn path_mut(&mut self) -> Option<&mut PathBuf> {
        match self {
            DatasetSpec::Embedded { .. } => None,
            DatasetSpec::Idx { path }
            | DatasetSpec::Cifar10 { path }
            | DatasetSpec::Cifar100 { path }
            | DatasetSpec::DigitsCsv { path, .. }
            | DatasetSpec::Npz { path, .. }
            | DatasetSpec::Images { path, .. } => Some(path),
        }
    }

    /// The same spec reading `new` instead of its path (the same data at
    /// another place); the embedded dataset is unchanged.
    pub fn with_path(&self, new: &Path) -> DatasetSpec {
        let mut out = self.clone();
        if let Some(path) = out.path_mut() {
            *path = new.to_path_buf();
        }
        out
    }

    /// The same spec with a relative path resolved against `base` (e.g. the
    /// folder of the config file it was read from). Absolute paths and the
    /// embedded dataset are unchanged.
    pub fn resolve_relative_to(&self, base: &Path) -> DatasetSpec {
        let mut out = self.clone();
        if let Some(path) = out.path_mut().filter(|p| p.is_relative()) {
            *path = base.join(&*path);
        }
        out
    }

    /// Loads the dataset as `(train, test)`, pixels in `[0, 1]`.
    ///
    /// Errors: the loader's errors (naming the file), or a config error for
    /// an embedded set without training images or a test fraction outside
    /// `(0, 1)`.
    pub fn load(&self) -> Result<(Dataset, Dataset)> {
        self.load_for(&InputPrep::default())
    }

    /// [`DatasetSpec::load`] for a model that says how image files reach
    /// it: an image folder is brought to `prep`'s size, channels and
    /// resize, where the spec does not set its own. Other formats come at
    /// their size.
    pub fn load_for(&self, prep: &InputPrep) -> Result<(Dataset, Dataset)> {
        match self {
            DatasetSpec::Embedded { train, test, seed } => {
                if *train == 0 {
                    return Err(Error::config("dataset.train", "must be at least 1"));
                }
                Ok(embedded_glyphs(*train, *test, *seed))
            }
            DatasetSpec::Idx { path } => load_idx_dir(path),
            DatasetSpec::Cifar10 { path } => load_cifar_dir(path, CifarVariant::Cifar10),
            DatasetSpec::Cifar100 { path } => load_cifar_dir(path, CifarVariant::Cifar100),
            DatasetSpec::DigitsCsv {
                path,
                test_fraction,
                seed,
            } => {
                if !(*test_fraction > 0.0 && *test_fraction < 1.0) {
                    return Err(Error::config(
                        "dataset.test_fraction",
                        format!("must be between 0 and 1 (exclusive), got {test_fraction}"),
                    ));
                }
                load_digits_csv(path, *test_fraction, *seed)
            }
            DatasetSpec::Npz {
                path,
                x,
                y,
                test_fraction,
                seed,
            } => super::npz::load_arrays(
                path,
                (x.as_deref().unwrap_or("x"), y.as_deref().unwrap_or("y")),
                *test_fraction,
                *seed,
            ),
            DatasetSpec::Images {
                path,
                size,
                channels,
                test_fraction,
                seed,
            } => super::load_image_folder(
                path,
                &super::ImageFolderOptions {
                    size: size.or(prep.size),
                    channels: channels.or(prep.channels),
                    resize: prep.resize,
                    test_fraction: *test_fraction,
                    seed: *seed,
                },
            ),
        }
    }

    /// Guesses the format of a folder or file a user points at:
    ///
    /// * a folder with IDX files (`train-images-idx3-ubyte[.gz]` ...) → `Idx`;
    /// * a folder with `data_batch_1.bin` (directly or in
    ///   `cifar-10-batches-bin/`) → `Cifar10`;
    /// * a folder with `train.bin` and `test.bin` (directly or in
    ///   `cifar-100-binary/`) → `Cifar100`;
    /// * a `*.csv` / `*.csv.gz` file, or a folder with exactly one → `DigitsCsv`
    ///   (default test fraction and seed);
    /// * one of the files above → the spec of its folder.
    ///
    /// Only names are inspected; [`load`](Self::load) checks the contents.
    /// The error lists everything that was looked for.
    pub fn detect(path: impl AsRef<Path>) -> Result<DatasetSpec> {
        let path = path.as_ref();
        if !path.exists() {
            return Err(Error::io(
                path,
                std::io::Error::new(std::io::ErrorKind::NotFound, "no such file or folder"),
            ));
        }
        let looked_for = || {
            format!(
                "looked for IDX files ({}), CIFAR-10 (data_batch_1.bin .. data_batch_5.bin + test_batch.bin, or a cifar-10-batches-bin/ subfolder), CIFAR-100 (train.bin + test.bin, or a cifar-100-binary/ subfolder) a digits CSV (*.csv or *.csv.gz), NumPy arrays (*.npz, or *.npy files) and an image folder (class subfolders of PNG/JPEG files, or train/ and val/ holding them)",
                idx_expected_names()
            )
        };
        if path.is_file() {
            let name = path
                .file_name()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let parent = match path.parent() {
                Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                _ => PathBuf::from("."),
            };
            if is_csv_name(&name) {
                return Ok(digits(path.to_path_buf()));
            }
            if name.to_ascii_lowercase().ends_with(".npz") {
                return Ok(npz(path.to_path_buf()));
            }
            if name.to_ascii_lowercase().ends_with(".npy") {
                return Ok(npz(parent));
            }
            if is_idx_file_name(&name) {
                return Ok(DatasetSpec::Idx { path: parent });
            }
            if name == "test_batch.bin"
                || (name.starts_with("data_batch_") && name.ends_with(".bin"))
            {
                return Ok(DatasetSpec::Cifar10 { path: parent });
            }
            if name == "train.bin" || name == "test.bin" {
                return Ok(DatasetSpec::Cifar100 { path: parent });
            }
            return Err(Error::format(
                path,
                format!(
                    "cannot tell the dataset format from the file name `{name}`; {}",
                    looked_for()
                ),
            ));
        }
        if looks_like_idx_dir(path) {
            return Ok(DatasetSpec::Idx {
                path: path.to_path_buf(),
            });
        }
        if resolve_cifar_dir(path, CifarVariant::Cifar10).is_some() {
            return Ok(DatasetSpec::Cifar10 {
                path: path.to_path_buf(),
            });
        }
        if resolve_cifar_dir(path, CifarVariant::Cifar100).is_some() {
            return Ok(DatasetSpec::Cifar100 {
                path: path.to_path_buf(),
            });
        }
        if !super::npz::npy_files(path)?.is_empty() {
            return Ok(npz(path.to_path_buf()));
        }
        if super::looks_like_image_folder(path) {
            return Ok(DatasetSpec::Images {
                path: path.to_path_buf(),
                size: None,
                channels: None,
                test_fraction: default_test_fraction(),
                seed: 0,
            });
        }
        let entries = std::fs::read_dir(path).map_err(|e| Error::io(path, e))?;
        let mut csvs: Vec<PathBuf> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| {
                p.is_file()
                    && p.file_name()
                        .is_some_and(|n| is_csv_name(&n.to_string_lossy()))
            })
            .collect();
        csvs.sort();
        match csvs.len() {
            1 => Ok(digits(csvs.remove(0))),
            0 => Err(Error::format(
                path,
                format!("no dataset found in this folder; {}", looked_for()),
            )),
            _ => Err(Error::format(
                path,
                format!(
                    "several CSV files, pick one: {}",
                    csvs.iter()
                        .filter_map(|p| p.file_name())
                        .map(|n| n.to_string_lossy().into_owned())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )),
        }
    }
}

fn npz(path: PathBuf) -> DatasetSpec {
    DatasetSpec::Npz {
        path,
        x: None,
        y: None,
        test_fraction: default_test_fraction(),
        seed: 0,
    }
}

fn is_csv_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.ends_with(".csv") || lower.ends_with(".csv.gz")
}

fn digits(path: PathBuf) -> DatasetSpec {
    DatasetSpec::DigitsCsv {
        path,
        test_fraction: default_test_fraction(),
        seed: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::shared_datasets_dir;

    #[test]
    fn paths_are_replaced_or_resolved_and_the_embedded_set_has_none() {
        let idx = DatasetSpec::Idx {
            path: "data/mnist".into(),
        };
        let moved = idx.with_path(Path::new("/mnt/shared/mnist"));
        assert_eq!(moved.path(), Some(Path::new("/mnt/shared/mnist")));
        let resolved = idx.resolve_relative_to(Path::new("/home/u"));
        assert_eq!(resolved.path(), Some(Path::new("/home/u/data/mnist")));
        assert_eq!(
            moved.resolve_relative_to(Path::new("/x")),
            moved,
            "absolute stays"
        );
        let embedded = DatasetSpec::default();
        assert_eq!(embedded.with_path(Path::new("/y")), embedded);
        assert_eq!(embedded.resolve_relative_to(Path::new("/y")), embedded);
    }

    #[test]
    fn serde_defaults_and_tags() {
        let s: DatasetSpec = serde_json::from_str(r#"{"kind":"embedded"}"#).unwrap();
        assert_eq!(s, DatasetSpec::default());
        let s: DatasetSpec =
            serde_json::from_str(r#"{"kind":"embedded","train":100,"seed":3}"#).unwrap();
        assert_eq!(
            s,
            DatasetSpec::Embedded {
                train: 100,
                test: 1000,
                seed: 3
            }
        );
        let s: DatasetSpec =
            serde_json::from_str(r#"{"kind":"digits-csv","path":"d.csv"}"#).unwrap();
        assert_eq!(s, digits("d.csv".into()));
        for kind in ["idx", "cifar10", "cifar100"] {
            let json = format!(r#"{{"kind":"{kind}","path":"x"}}"#);
            let s: DatasetSpec = serde_json::from_str(&json).unwrap();
            assert_eq!(s.path(), Some(Path::new("x")));
            let back = serde_json::to_string(&s).unwrap();
            assert_eq!(serde_json::from_str::<DatasetSpec>(&back).unwrap(), s);
        }
        let err = serde_json::from_str::<DatasetSpec>(r#"{"kind":"idx","path":"x","oops":1}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("oops"), "{err}");
        assert!(serde_json::from_str::<DatasetSpec>(r#"{"kind":"mnist"}"#).is_err());
    }

    #[test]
    fn resolve_relative() {
        let s = DatasetSpec::Idx {
            path: "mnist".into(),
        };
        assert_eq!(
            s.resolve_relative_to(Path::new("/cfg")).path(),
            Some(Path::new("/cfg/mnist"))
        );
        let s = DatasetSpec::Idx {
            path: "/abs".into(),
        };
        assert_eq!(s.resolve_relative_to(Path::new("/cfg")), s);
        assert!(DatasetSpec::default().to_string().contains("embedded"));
    }

    #[test]
    fn load_embedded_and_real() {
        let s = DatasetSpec::Embedded {
            train: 30,
            test: 10,
            seed: 1,
        };
        let (tr, te) = s.load().unwrap();
        assert_eq!((tr.len(), te.len()), (30, 10));
        let zero = DatasetSpec::Embedded {
            train: 0,
            test: 1,
            seed: 0,
        };
        assert!(matches!(zero.load().unwrap_err(), Error::Config { .. }));

        let mnist = DatasetSpec::detect(shared_datasets_dir().join("mnist-10k")).unwrap();
        assert!(matches!(mnist, DatasetSpec::Idx { .. }));
        let digits_dir = shared_datasets_dir().join("uci-digits");
        let d = DatasetSpec::detect(&digits_dir).unwrap();
        assert_eq!(d, digits(digits_dir.join("digits.csv.gz")));
        assert_eq!(
            DatasetSpec::detect(digits_dir.join("digits.csv.gz")).unwrap(),
            d
        );
        let (tr, te) = d.load().unwrap();
        assert_eq!(tr.len() + te.len(), 1797);
        let bad = DatasetSpec::DigitsCsv {
            path: digits_dir.join("digits.csv.gz"),
            test_fraction: 0.0,
            seed: 0,
        };
        assert!(matches!(bad.load().unwrap_err(), Error::Config { .. }));
    }

    #[test]
    fn detect_cifar_and_files() {
        let tmp = tempfile::tempdir().unwrap();
        let c10 = tmp.path().join("c10");
        std::fs::create_dir_all(c10.join("cifar-10-batches-bin")).unwrap();
        std::fs::write(
            c10.join("cifar-10-batches-bin/data_batch_1.bin"),
            [0u8; 3073],
        )
        .unwrap();
        assert_eq!(
            DatasetSpec::detect(&c10).unwrap(),
            DatasetSpec::Cifar10 { path: c10.clone() }
        );
        assert_eq!(
            DatasetSpec::detect(c10.join("cifar-10-batches-bin/data_batch_1.bin")).unwrap(),
            DatasetSpec::Cifar10 {
                path: c10.join("cifar-10-batches-bin")
            }
        );
        let c100 = tmp.path().join("c100");
        std::fs::create_dir_all(&c100).unwrap();
        std::fs::write(c100.join("train.bin"), [0u8; 3074]).unwrap();
        std::fs::write(c100.join("test.bin"), [0u8; 3074]).unwrap();
        assert_eq!(
            DatasetSpec::detect(&c100).unwrap(),
            DatasetSpec::Cifar100 { path: c100.clone() }
        );
        let (tr, _) = DatasetSpec::detect(&c100).unwrap().load().unwrap();
        assert_eq!(tr.image_shape(), [3, 32, 32]);

        let idx = tmp.path().join("idx");
        std::fs::create_dir_all(&idx).unwrap();
        crate::data::idx::tests::write_tiny_idx(&idx, true);
        let spec = DatasetSpec::detect(idx.join("t10k-labels-idx1-ubyte.gz")).unwrap();
        assert_eq!(spec, DatasetSpec::Idx { path: idx.clone() });
        assert_eq!(spec.load().unwrap().0.len(), 3);
    }

    #[test]
    fn detect_errors() {
        let tmp = tempfile::tempdir().unwrap();
        let err = DatasetSpec::detect(tmp.path()).unwrap_err().to_string();
        assert!(err.contains("no dataset found"), "{err}");
        assert!(err.contains("train-images-idx3-ubyte"), "{err}");
        assert!(
            err.contains("data_batch_1.bin") && err.contains("train.bin"),
            "{err}"
        );
        assert!(err.contains("*.csv"), "{err}");
        std::fs::write(tmp.path().join("a.csv"), "").unwrap();
        std::fs::write(tmp.path().join("b.CSV.gz"), "").unwrap();
        let err = DatasetSpec::detect(tmp.path()).unwrap_err().to_string();
        assert!(err.contains("a.csv, b.CSV.gz"), "{err}");
        let other = tmp.path().join("notes.txt");
        std::fs::write(&other, "hi").unwrap();
        let err = DatasetSpec::detect(&other).unwrap_err().to_string();
        assert!(
            err.contains("notes.txt") && err.contains("looked for"),
            "{err}"
        );
        assert!(DatasetSpec::detect(tmp.path().join("nope")).is_err());
    }
}
