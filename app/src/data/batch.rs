//! Seeded epoch orders and assembling mini-batches into Candle tensors, with
//! the standard CIFAR augmentation (random crop with padding, horizontal
//! flip) done on the host on the stored pixels, then the dataset's
//! normalisation, in torchvision's order (`RandomCrop`, `ToTensor`,
//! `Normalize`: the padding is black).

use candle_core::{Device, Tensor};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use super::{byte_value, mix_seed, Dataset, Normalization, Pixels};
use crate::error::{Error, Result};

/// Stream tag mixed into the seed of epoch orders.
const ORDER_STREAM: u64 = 0x004f_5244_4552;
/// Zero padding of the random crop, in pixels.
const CROP_PAD: usize = 4;

/// The order in which to visit `n` samples in epoch `epoch`: a permutation of
/// `0..n` from a seeded shuffle. The same `(n, seed, epoch)` always gives the
/// same order; different epochs (or seeds) give different orders.
pub fn epoch_order(n: usize, seed: u64, epoch: usize) -> Vec<usize> {
    let mut rng = StdRng::seed_from_u64(mix_seed(&[seed, ORDER_STREAM, epoch as u64]));
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut rng);
    order
}

/// Largest shift, in pixels, of the greyscale shift augmentation.
const MAX_SHIFT: usize = 2;

/// Which augmentation a dataset's shape gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Augmentation {
    /// 3x32x32 (CIFAR-shaped): random crop with padding and horizontal flip.
    CropFlip,
    /// Single-channel images of at least 16x16 (digits, letters, glyphs):
    /// random shifts of up to 2 pixels, edges replicated; no flip, which
    /// would change what a digit means.
    Shift,
}

fn augmentation(ds: &Dataset) -> Option<Augmentation> {
    if ds.channels == 3 && ds.height == 32 && ds.width == 32 {
        Some(Augmentation::CropFlip)
    } else if ds.channels == 1 && ds.height >= 16 && ds.width >= 16 {
        Some(Augmentation::Shift)
    } else {
        None
    }
}

/// Copies one CHW image into `out` shifted by up to [`MAX_SHIFT`] pixels in
/// each direction, replicating the edge pixels into the uncovered border.
fn shift_into<T: Copy>(src: &[T], out: &mut [T], c: usize, h: usize, w: usize, rng: &mut StdRng) {
    let m = MAX_SHIFT as i64;
    let dy = rng.random_range(-m..=m) as isize;
    let dx = rng.random_range(-m..=m) as isize;
    let clamp = |v: isize, n: usize| v.clamp(0, n as isize - 1) as usize;
    for ch in 0..c {
        let plane = &src[ch * h * w..(ch + 1) * h * w];
        let dst = &mut out[ch * h * w..(ch + 1) * h * w];
        for y in 0..h {
            let sy = clamp(y as isize + dy, h);
            for x in 0..w {
                dst[y * w + x] = plane[sy * w + clamp(x as isize + dx, w)];
            }
        }
    }
}

/// Copies one CHW image into `out`, randomly cropped from the image padded
/// with `CROP_PAD` zero (black) pixels on every side, and flipped
/// horizontally with probability 0.5.
fn augment_into<T: Copy + Default>(
    src: &[T],
    out: &mut [T],
    c: usize,
    h: usize,
    w: usize,
    rng: &mut StdRng,
) {
    let dy = rng.random_range(0..=2 * CROP_PAD);
    let dx = rng.random_range(0..=2 * CROP_PAD);
    let flip = rng.random_bool(0.5);
    out.fill(T::default());
    for ch in 0..c {
        let plane = &src[ch * h * w..(ch + 1) * h * w];
        let dst = &mut out[ch * h * w..(ch + 1) * h * w];
        for y in 0..h {
            // Source row of output row y: y + dy - pad, if inside the image.
            let sy = y + dy;
            if sy < CROP_PAD || sy - CROP_PAD >= h {
                continue;
            }
            let srow = &plane[(sy - CROP_PAD) * w..(sy - CROP_PAD + 1) * w];
            let drow = &mut dst[y * w..(y + 1) * w];
            for (x, d) in drow.iter_mut().enumerate() {
                let xc = if flip { w - 1 - x } else { x };
                let sx = xc + dx;
                if sx >= CROP_PAD && sx - CROP_PAD < w {
                    *d = srow[sx - CROP_PAD];
                }
            }
        }
    }
}

/// Copies the stored images at `idx` into `out`, augmented as `kind` says
/// when an rng is given.
fn gather<T: Copy + Default>(
    src: &[T],
    ds: &Dataset,
    idx: &[usize],
    augment: Option<(&mut StdRng, Augmentation)>,
    out: &mut [T],
) {
    let n = ds.image_len().max(1);
    let (c, h, w) = (ds.channels, ds.height, ds.width);
    let image = |i: usize| &src[i * n..(i + 1) * n];
    match augment {
        Some((rng, kind)) => {
            for (o, &i) in out.chunks_exact_mut(n).zip(idx) {
                match kind {
                    Augmentation::CropFlip => augment_into(image(i), o, c, h, w, rng),
                    Augmentation::Shift => shift_into(image(i), o, c, h, w, rng),
                }
            }
        }
        None => {
            for (o, &i) in out.chunks_exact_mut(n).zip(idx) {
                o.copy_from_slice(image(i));
            }
        }
    }
}

/// Bytes as the values the model sees: `v / 255`, normalised per channel
/// when `norm` is given (planes of `plane` values).
fn decode_bytes(bytes: &[u8], norm: Option<&Normalization>, plane: usize) -> Vec<f32> {
    match norm {
        Some(norm) if plane > 0 => {
            let tables = norm.byte_tables();
            let mut out = Vec::with_capacity(bytes.len());
            for (k, values) in bytes.chunks_exact(plane).enumerate() {
                let table = &tables[k % tables.len()];
                out.extend(values.iter().map(|&b| table[usize::from(b)]));
            }
            out
        }
        _ => bytes.iter().map(|&b| byte_value(b)).collect(),
    }
}

/// Gathers the samples at `idx` into an image tensor `[b, c, h, w]` (`f32`,
/// normalised by the dataset's `norm`) and a label tensor `[b]` (`u32`) on
/// `device`.
///
/// With `augment = Some(rng)` and 3x32x32 (CIFAR-shaped) data, each image is
/// randomly cropped from a copy padded with 4 black pixels per side and flipped
/// horizontally with probability 0.5; single-channel images of at least
/// 16x16 are shifted by up to 2 pixels (edges replicated). This happens on the
/// stored pixels, before normalisation and a single upload; other shapes are
/// never augmented. The same rng state gives the same batch. Errors if an
/// index is out of range (naming the dataset).
pub fn make_batch(
    ds: &Dataset,
    idx: &[usize],
    augment: Option<&mut StdRng>,
    device: &Device,
) -> Result<(Tensor, Tensor)> {
    if let Some(&bad) = idx.iter().find(|&&i| i >= ds.len()) {
        return Err(Error::Other(format!(
            "batch index {bad} out of range for dataset `{}` of {} images",
            ds.name,
            ds.len()
        )));
    }
    let (c, h, w) = (ds.channels, ds.height, ds.width);
    let values = idx.len() * ds.image_len();
    let augment = augment.and_then(|rng| augmentation(ds).map(|kind| (rng, kind)));
    let plane = h * w;
    let images = match &ds.images {
        Pixels::Bytes(src) => {
            let mut bytes = vec![0u8; values];
            gather(src, ds, idx, augment, &mut bytes);
            decode_bytes(&bytes, ds.norm.as_ref(), plane)
        }
        Pixels::Floats(src) => {
            let mut out = vec![0f32; values];
            gather(src, ds, idx, augment, &mut out);
            if let Some(norm) = ds.norm.as_ref().filter(|_| plane > 0) {
                norm.apply_images(&mut out, plane);
            }
            out
        }
    };
    let labels: Vec<u32> = idx.iter().map(|&i| ds.labels[i]).collect();
    let x = Tensor::from_vec(images, (idx.len(), c, h, w), device)?;
    let y = Tensor::from_vec(labels, idx.len(), device)?;
    Ok((x, y))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rgb(n: usize) -> Dataset {
        Dataset::new(
            "rgb",
            (0..n * 3072)
                .map(|v| (v % 251) as f32 / 251.0 + 0.01)
                .collect::<Vec<_>>(),
            (0..n as u32).map(|i| i % 10).collect(),
            [3, 32, 32],
            10,
        )
    }

    #[test]
    fn epoch_order_is_seeded_permutation() {
        let a = epoch_order(100, 5, 0);
        assert_eq!(a, epoch_order(100, 5, 0));
        assert_ne!(a, epoch_order(100, 5, 1));
        assert_ne!(a, epoch_order(100, 6, 0));
        let mut s = a.clone();
        s.sort_unstable();
        assert_eq!(s, (0..100).collect::<Vec<_>>());
        assert!(epoch_order(0, 1, 1).is_empty());
    }

    #[test]
    fn plain_batch_matches_data() {
        let ds = rgb(5);
        let (x, y) = make_batch(&ds, &[3, 1], None, &Device::Cpu).unwrap();
        assert_eq!(x.dims(), &[2, 3, 32, 32]);
        assert_eq!(y.to_vec1::<u32>().unwrap(), vec![3, 1]);
        let flat = x.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(&flat[..3072], ds.image(3));
        assert_eq!(&flat[3072..], ds.image(1));
        let err = make_batch(&ds, &[5], None, &Device::Cpu)
            .unwrap_err()
            .to_string();
        assert!(err.contains("index 5") && err.contains("`rgb`"), "{err}");
        let (x, y) = make_batch(&ds, &[], None, &Device::Cpu).unwrap();
        assert_eq!(x.dims(), &[0, 3, 32, 32]);
        assert_eq!(y.dims(), &[0]);
    }

    #[test]
    fn augmentation_deterministic_and_shaped() {
        let ds = rgb(8);
        let idx: Vec<usize> = (0..8).collect();
        let run = |seed| {
            let mut rng = StdRng::seed_from_u64(seed);
            let (x, _) = make_batch(&ds, &idx, Some(&mut rng), &Device::Cpu).unwrap();
            assert_eq!(x.dims(), &[8, 3, 32, 32]);
            x.flatten_all().unwrap().to_vec1::<f32>().unwrap()
        };
        let a = run(1);
        assert_eq!(a, run(1));
        assert_ne!(a, run(2));
        let plain = make_batch(&ds, &idx, None, &Device::Cpu).unwrap().0;
        assert_ne!(a, plain.flatten_all().unwrap().to_vec1::<f32>().unwrap());
        // Every output pixel is either zero padding or a pixel of the source
        // image's same channel.
        for (i, img) in a.chunks_exact(3072).enumerate() {
            for ch in 0..3 {
                let src = &ds.image(i)[ch * 1024..(ch + 1) * 1024];
                for &v in &img[ch * 1024..(ch + 1) * 1024] {
                    assert!(v == 0.0 || src.contains(&v));
                }
            }
        }
    }

    #[test]
    fn crop_and_flip_geometry() {
        // A single lit pixel at (y=10, x=5) in channel 1.
        let mut src = vec![0f32; 3072];
        src[1024 + 10 * 32 + 5] = 1.0;
        let mut seen_flip = false;
        let mut seen_plain = false;
        let mut rng = StdRng::seed_from_u64(0);
        for _ in 0..64 {
            let mut out = vec![0f32; 3072];
            augment_into(&src, &mut out, 3, 32, 32, &mut rng);
            let pos = out.iter().position(|&v| v == 1.0).unwrap();
            assert_eq!(pos / 1024, 1);
            let (y, x) = ((pos % 1024) / 32, pos % 32);
            assert!((6..=14).contains(&y), "{y}");
            if (1..=9).contains(&x) {
                seen_plain = true;
            } else {
                assert!((22..=30).contains(&x), "{x}");
                seen_flip = true;
            }
        }
        assert!(seen_flip && seen_plain);
    }

    #[test]
    fn small_images_are_not_augmented_and_greyscale_is_shifted() {
        let grey = |side: usize| {
            Dataset::new(
                "grey",
                (0..2 * side * side).map(|v| v as f32).collect::<Vec<_>>(),
                vec![0, 1],
                [1, side, side],
                2,
            )
        };
        let ds = grey(8);
        let mut rng = StdRng::seed_from_u64(3);
        let (x, _) = make_batch(&ds, &[1, 0], Some(&mut rng), &Device::Cpu).unwrap();
        let flat = x.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(&flat[..64], ds.image(1));

        // 28x28: a pure shift by (dy, dx) in [-2, 2] with replicated edges.
        let ds = grey(28);
        let mut shifted = false;
        for seed in 0..8 {
            let mut rng = StdRng::seed_from_u64(seed);
            let (x, _) = make_batch(&ds, &[0], Some(&mut rng), &Device::Cpu).unwrap();
            let img = x.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let src = ds.image(0);
            let found = (-2i32..=2)
                .flat_map(|dy| (-2i32..=2).map(move |dx| (dy, dx)))
                .any(|(dy, dx)| {
                    (0..28).all(|y| {
                        (0..28).all(|x| {
                            let sy = (y + dy).clamp(0, 27) as usize;
                            let sx = (x + dx).clamp(0, 27) as usize;
                            img[(y * 28 + x) as usize] == src[sy * 28 + sx]
                        })
                    })
                });
            assert!(found, "seed {seed}: not a shift of the source");
            shifted |= img != src;
        }
        assert!(shifted);
    }

    /// Bytes and the same values as floats give the same batches, bit for
    /// bit, normalised or not, augmented or not; the crop's padding is black
    /// before normalisation, as in torchvision.
    #[test]
    fn bytes_batch_like_their_floats_and_pad_black() {
        let bytes: Vec<u8> = (0..4 * 3072).map(|v| (v * 7 % 255 + 1) as u8).collect();
        let labels: Vec<u32> = vec![0, 1, 2, 3];
        let as_bytes = Dataset::new("b", bytes.clone(), labels.clone(), [3, 32, 32], 4);
        let floats: Vec<f32> = bytes.iter().map(|&b| byte_value(b)).collect();
        let as_floats = Dataset::new("f", floats, labels, [3, 32, 32], 4);
        let norm = Normalization {
            mean: vec![0.4914, 0.4822, 0.4465],
            std: vec![0.247, 0.243, 0.261],
        };
        let idx = [3, 0, 2, 1];
        for norm in [None, Some(norm.clone())] {
            for seed in [None, Some(5)] {
                let batch = |ds: &Dataset| {
                    let mut ds = ds.clone();
                    ds.norm = norm.clone();
                    let mut rng = seed.map(StdRng::seed_from_u64);
                    let (x, _) = make_batch(&ds, &idx, rng.as_mut(), &Device::Cpu).unwrap();
                    x.flatten_all().unwrap().to_vec1::<f32>().unwrap()
                };
                let (a, b) = (batch(&as_bytes), batch(&as_floats));
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&a), bits(&b), "norm {norm:?}, seed {seed:?}");
            }
        }
        // A crop that pads: some pixel of channel c is (0 - mean) / std.
        let mut ds = as_bytes.clone();
        ds.norm = Some(norm.clone());
        let black: Vec<f32> = (0..3).map(|c| (0.0 - norm.mean[c]) / norm.std[c]).collect();
        let mut padded = false;
        for seed in 0..8 {
            let mut rng = StdRng::seed_from_u64(seed);
            let (x, _) = make_batch(&ds, &[1], Some(&mut rng), &Device::Cpu).unwrap();
            let v = x.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            padded |= (0..3).all(|c| {
                v[c * 1024..(c + 1) * 1024]
                    .iter()
                    .any(|p| (p - black[c]).abs() < 1e-6)
            });
        }
        assert!(padded, "no black padding seen");
    }
}
