//! How a dataset holds its pixels: as the bytes 8-bit image formats store
//! (one byte a value, read as `byte / 255`), or as `f32` values for sources
//! that are not 8-bit. Normalisation happens as batches are made, so 50,000
//! CIFAR images take 150 MB, not the 600 MB they would as `f32`.

/// The pixel values of a dataset, NCHW, image after image.
#[derive(Clone, Debug, PartialEq)]
pub enum Pixels {
    /// 8-bit values; byte `v` stands for `v / 255` (IDX, CIFAR, PNG/JPEG,
    /// `uint8` NumPy arrays).
    Bytes(Vec<u8>),
    /// Values as given (generated images, CSV digits, float NumPy arrays).
    Floats(Vec<f32>),
}

/// The `[0, 1]` value byte `v` stands for, as every loader reads it.
pub fn byte_value(v: u8) -> f32 {
    f32::from(v) / 255.0
}

impl Pixels {
    /// Number of values.
    pub fn len(&self) -> usize {
        match self {
            Pixels::Bytes(v) => v.len(),
            Pixels::Floats(v) => v.len(),
        }
    }

    /// Whether there are no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes of memory the values take.
    pub fn bytes_in_memory(&self) -> usize {
        match self {
            Pixels::Bytes(v) => v.capacity(),
            Pixels::Floats(v) => v.capacity() * std::mem::size_of::<f32>(),
        }
    }

    /// Gives back spare capacity, so the values take only what they need.
    pub fn shrink_to_fit(&mut self) {
        match self {
            Pixels::Bytes(v) => v.shrink_to_fit(),
            Pixels::Floats(v) => v.shrink_to_fit(),
        }
    }

    /// Writes the values `start .. start + out.len()` into `out` as `f32`
    /// (bytes read as `v / 255`).
    ///
    /// # Panics
    /// If the range is out of bounds.
    pub fn read_into(&self, start: usize, out: &mut [f32]) {
        let end = start + out.len();
        match self {
            Pixels::Bytes(v) => {
                for (o, &b) in out.iter_mut().zip(&v[start..end]) {
                    *o = byte_value(b);
                }
            }
            Pixels::Floats(v) => out.copy_from_slice(&v[start..end]),
        }
    }

    /// All values as `f32` (bytes read as `v / 255`).
    pub fn to_f32(&self) -> Vec<f32> {
        let mut out = vec![0f32; self.len()];
        self.read_into(0, &mut out);
        out
    }

    /// The blocks of `n` values at `idx`, in that order (indices may repeat),
    /// stored as these are.
    ///
    /// # Panics
    /// If a block is out of bounds.
    pub fn gather(&self, idx: &[usize], n: usize) -> Pixels {
        fn pick<T: Copy>(v: &[T], idx: &[usize], n: usize) -> Vec<T> {
            let mut out = Vec::with_capacity(idx.len() * n);
            for &i in idx {
                out.extend_from_slice(&v[i * n..(i + 1) * n]);
            }
            out
        }
        match self {
            Pixels::Bytes(v) => Pixels::Bytes(pick(v, idx, n)),
            Pixels::Floats(v) => Pixels::Floats(pick(v, idx, n)),
        }
    }
}

impl From<Vec<u8>> for Pixels {
    fn from(v: Vec<u8>) -> Self {
        Pixels::Bytes(v)
    }
}

impl From<Vec<f32>> for Pixels {
    fn from(v: Vec<f32>) -> Self {
        Pixels::Floats(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_read_as_fractions_of_255_and_take_one_byte_each() {
        let p = Pixels::from(vec![0u8, 51, 255, 128]);
        assert_eq!(p.to_f32(), vec![0.0, 0.2, 1.0, 128.0 / 255.0]);
        assert_eq!(p.bytes_in_memory(), 4);
        assert_eq!(Pixels::from(vec![0.5f32; 4]).bytes_in_memory(), 16);
        let mut out = [0f32; 2];
        p.read_into(1, &mut out);
        assert_eq!(out, [0.2, 1.0]);
    }

    #[test]
    fn gather_keeps_the_storage() {
        let p = Pixels::from(vec![1u8, 2, 3, 4, 5, 6]);
        assert_eq!(
            p.gather(&[2, 0, 2], 2),
            Pixels::from(vec![5u8, 6, 1, 2, 5, 6])
        );
        let f = Pixels::from(vec![0.5f32, 0.25]);
        assert_eq!(f.gather(&[1, 1], 1), Pixels::from(vec![0.25f32, 0.25]));
    }
}
