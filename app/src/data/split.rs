//! Seeded stratified splits, per-channel normalisation, and the
//! train / validation / test preparation used by training.

use super::{mix_seed, Dataset, NormChoice, Normalization};
use crate::error::{Error, Result};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;

/// Stream tag mixed into the seed of stratified splits.
const SPLIT_STREAM: u64 = 0x0053_504c_4954;

/// Splits indices `0..labels.len()` into `(kept, held_out)` so that about
/// `fraction` of every class is held out (seeded, stratified).
///
/// Per class of `n` samples, `round(n * fraction)` are held out, but at least
/// one when `fraction > 0` and `n >= 2`, and never all of them when
/// `fraction < 1`. `fraction` is clamped to `[0, 1]`. Both index lists are
/// sorted ascending, so the original order is kept; the same
/// `(labels, fraction, seed)` always gives the same split.
pub fn stratified_indices(labels: &[u32], fraction: f64, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let fraction = if fraction.is_nan() {
        0.0
    } else {
        fraction.clamp(0.0, 1.0)
    };
    let classes = labels.iter().map(|&l| l as usize + 1).max().unwrap_or(0);
    let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); classes];
    for (i, &l) in labels.iter().enumerate() {
        by_class[l as usize].push(i);
    }
    let mut rng = StdRng::seed_from_u64(mix_seed(&[seed, SPLIT_STREAM]));
    let mut kept = Vec::with_capacity(labels.len());
    let mut held = Vec::new();
    for mut group in by_class {
        let n = group.len();
        if n == 0 {
            continue;
        }
        group.shuffle(&mut rng);
        let mut k = (n as f64 * fraction).round() as usize;
        if fraction > 0.0 && n >= 2 {
            k = k.max(1);
        }
        if fraction < 1.0 {
            k = k.min(n - 1);
        }
        held.extend_from_slice(&group[..k]);
        kept.extend_from_slice(&group[k..]);
    }
    kept.sort_unstable();
    held.sort_unstable();
    (kept, held)
}

/// Carves a validation set out of `train`: returns `(train_part, val)`, with
/// about `fraction` of every class in `val` (seeded, stratified; see
/// [`stratified_indices`]). The two parts are disjoint and together hold every
/// training image once.
pub fn split_validation(train: &Dataset, fraction: f64, seed: u64) -> (Dataset, Dataset) {
    let (kept, held) = stratified_indices(&train.labels, fraction, seed);
    (train.subset(&kept), train.subset(&held))
}

/// Training, validation and test data ready for training: each normalised
/// (as its batches are made) with statistics fitted on `train` only.
#[derive(Clone, Debug)]
pub struct DataSplits {
    /// Training part (the training set minus the validation part).
    pub train: Dataset,
    /// Validation part, carved from the training set (may be empty).
    pub val: Dataset,
    /// The test set.
    pub test: Dataset,
    /// The normalisation applied to all three (fitted on `train`, or the
    /// model's fixed one).
    pub norm: Normalization,
}

/// Splits a validation set off `train` (seeded, stratified), fits the
/// per-channel normalisation on the remaining training part only and applies
/// it to train, validation and test.
///
/// All three get the same `num_classes` (the larger of the two inputs').
/// Errors: `val_fraction` outside `[0, 1)` (config error on `val_fraction`),
/// an empty or inconsistent training set, or train and test images of
/// different shapes (naming both datasets and shapes).
pub fn prepare(train: Dataset, test: Dataset, val_fraction: f64, seed: u64) -> Result<DataSplits> {
    prepare_normalised(train, test, val_fraction, seed, &NormChoice::Fitted)
}

/// [`prepare`] with the model's normalisation: fitted on the training part
/// ([`NormChoice::Fitted`]) or the fixed mean and std it was trained with
/// (one value stands for every channel).
pub fn prepare_normalised(
    train: Dataset,
    test: Dataset,
    val_fraction: f64,
    seed: u64,
    norm: &NormChoice,
) -> Result<DataSplits> {
    if !(0.0..1.0).contains(&val_fraction) {
        return Err(Error::config(
            "val_fraction",
            format!("must be at least 0 and below 1, got {val_fraction}"),
        ));
    }
    train.validate()?;
    test.validate()?;
    if train.is_empty() {
        return Err(Error::Shape(format!(
            "training set `{}` has no images",
            train.name
        )));
    }
    if train.image_shape() != test.image_shape() {
        let [c1, h1, w1] = train.image_shape();
        let [c2, h2, w2] = test.image_shape();
        return Err(Error::Shape(format!(
            "training set `{}` has {c1}x{h1}x{w1} images (CxHxW) but test set `{}` has {c2}x{h2}x{w2}",
            train.name, test.name
        )));
    }
    let num_classes = train.num_classes.max(test.num_classes);
    let (mut tr, mut val) = split_validation(&train, val_fraction, seed);
    drop(train);
    let mut test = test;
    for ds in [&mut tr, &mut val, &mut test] {
        ds.num_classes = num_classes;
    }
    let norm = match norm {
        NormChoice::Fitted => Normalization::fit(&tr.images, tr.channels, tr.height * tr.width),
        NormChoice::Fixed { mean, std } => {
            norm.check(tr.channels)?;
            let per_channel = |v: &[f32]| match v {
                [one] => vec![*one; tr.channels],
                v => v.to_vec(),
            };
            Normalization {
                mean: per_channel(mean),
                std: per_channel(std),
            }
        }
    };
    for ds in [&mut tr, &mut val, &mut test] {
        ds.norm = Some(norm.clone());
    }
    Ok(DataSplits {
        train: tr,
        val,
        test,
        norm,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn synthetic(n: usize, classes: u32, channels: usize) -> Dataset {
        let hw = 4;
        let mut images = Vec::new();
        let mut labels = Vec::new();
        for i in 0..n {
            labels.push(i as u32 % classes);
            for c in 0..channels {
                for p in 0..hw {
                    images.push(((i * 13 + p * 5 + c * 50) % 97) as f32 / 97.0 * (c + 1) as f32);
                }
            }
        }
        Dataset::new(
            "synthetic",
            images,
            labels,
            [channels, 2, 2],
            classes as usize,
        )
    }

    fn fit(ds: &Dataset) -> Normalization {
        Normalization::fit(&ds.images, ds.channels, ds.height * ds.width)
    }

    /// `ds` with the values its batches get stored as they are.
    fn as_seen(ds: &Dataset) -> Dataset {
        Dataset::new(
            ds.name.clone(),
            ds.values(),
            ds.labels.clone(),
            ds.image_shape(),
            ds.num_classes,
        )
    }

    #[test]
    fn stratified_and_disjoint() {
        let ds = synthetic(1000, 10, 1);
        let (tr, val) = split_validation(&ds, 0.1, 42);
        assert_eq!(tr.len() + val.len(), 1000);
        assert!(
            val.class_counts().iter().all(|&c| c == 10),
            "{:?}",
            val.class_counts()
        );
        let (kept, held) = stratified_indices(&ds.labels, 0.1, 42);
        let mut all: Vec<usize> = kept.iter().chain(&held).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..1000).collect::<Vec<_>>());
        assert!(kept.windows(2).all(|w| w[0] < w[1]));
        // Deterministic, seed-dependent.
        assert_eq!(stratified_indices(&ds.labels, 0.1, 42).1, held);
        assert_ne!(stratified_indices(&ds.labels, 0.1, 43).1, held);
    }

    #[test]
    fn edge_fractions() {
        let labels = [0, 0, 1, 2, 2, 2];
        let (kept, held) = stratified_indices(&labels, 0.0, 1);
        assert_eq!((kept.len(), held.len()), (6, 0));
        let (kept, held) = stratified_indices(&labels, 0.01, 1);
        // One of each class with >= 2 samples; the singleton stays in training.
        assert_eq!(held.len(), 2);
        assert!(kept.contains(&2));
        let (kept, held) = stratified_indices(&labels, 0.99, 1);
        assert_eq!(kept.len(), 3);
        assert_eq!(held.len(), 3);
        let (kept, _) = stratified_indices(&[], 0.5, 1);
        assert!(kept.is_empty());
    }

    #[test]
    fn normalisation_fits_train() {
        let ds = synthetic(500, 5, 3);
        let norm = fit(&ds);
        let mut d = ds.clone();
        d.norm = Some(norm.clone());
        let again = fit(&as_seen(&d));
        for c in 0..3 {
            assert!(again.mean[c].abs() < 1e-4, "{:?}", again.mean);
            assert!((again.std[c] - 1.0).abs() < 1e-3, "{:?}", again.std);
        }
        assert!(norm.mean[2] > norm.mean[0]);
    }

    #[test]
    fn prepare_splits_and_normalises() {
        let train = synthetic(400, 4, 3);
        let test = synthetic(100, 4, 3);
        let s = prepare(train.clone(), test.clone(), 0.25, 9).unwrap();
        assert_eq!(s.train.len(), 300);
        assert_eq!(s.val.len(), 100);
        assert_eq!(s.test.len(), 100);
        let fitted = fit(&as_seen(&s.train));
        for c in 0..3 {
            assert!(fitted.mean[c].abs() < 1e-4);
            assert!((fitted.std[c] - 1.0).abs() < 1e-3);
        }
        // The normalisation was fitted on the training part only.
        let (tr_part, _) = split_validation(&train, 0.25, 9);
        assert_eq!(s.norm, fit(&tr_part));
        for part in [&s.train, &s.val, &s.test] {
            assert_eq!(part.norm.as_ref(), Some(&s.norm));
        }
        assert_eq!(s.test.images, test.images, "the pixels stay as loaded");
    }

    #[test]
    fn prepare_errors() {
        let train = synthetic(40, 4, 3);
        let mut test = synthetic(10, 4, 1);
        test.name = "other".into();
        let err = prepare(train.clone(), test, 0.1, 0)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`synthetic` has 3x2x2") && err.contains("`other` has 1x2x2"),
            "{err}"
        );
        let err = prepare(train.clone(), train.clone(), 1.0, 0).unwrap_err();
        assert!(matches!(err, Error::Config { .. }));
        let empty = train.subset(&[]);
        assert!(prepare(empty, train, 0.1, 0).is_err());
    }
}
