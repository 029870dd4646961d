//! ONNX tensors as values: initializers and `Constant` attributes decoded
//! (inline data, or external data beside the model read with its path and
//! size checked), and the small arithmetic the importer folds on them.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Component, Path};
use std::rc::Rc;

use super::proto::{dtype, TensorProto};
use crate::error::{Error, Result};

/// A constant tensor's values: floating point (any float type, as `f32`)
/// or integer (any integer or bool type, as `i64`). Shared: the importer
/// passes a weight from the file to the graph without copying it, however
/// many ways it tries the graph.
#[derive(Debug, Clone, PartialEq)]
pub enum Values {
    /// Floats.
    F(Rc<Vec<f32>>),
    /// Integers and booleans.
    I(Rc<Vec<i64>>),
}

/// A constant tensor: dims, values and the initializer it comes from
/// (kept through the ops that only move values, so a weight stored
/// transposed still finds its name).
#[derive(Debug, Clone, PartialEq)]
pub struct Const {
    /// Dims (empty for a scalar).
    pub dims: Vec<usize>,
    /// Values, row-major.
    pub values: Values,
    /// The initializer's name, where it is one (or was moved from one).
    pub origin: Option<String>,
}

impl Const {
    /// A float constant.
    pub fn floats(dims: Vec<usize>, v: Vec<f32>) -> Self {
        Const {
            dims,
            values: Values::F(Rc::new(v)),
            origin: None,
        }
    }

    /// An integer constant.
    pub fn ints(dims: Vec<usize>, v: Vec<i64>) -> Self {
        Const {
            dims,
            values: Values::I(Rc::new(v)),
            origin: None,
        }
    }

    /// Whether it holds no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        match &self.values {
            Values::F(v) => v.len(),
            Values::I(v) => v.len(),
        }
    }

    /// The values as floats.
    pub fn as_f32(&self) -> Vec<f32> {
        match &self.values {
            Values::F(v) => v.to_vec(),
            Values::I(v) => v.iter().map(|&x| x as f32).collect(),
        }
    }

    /// The values as floats, without a copy where they are floats held
    /// nowhere else.
    pub fn into_f32(self) -> Vec<f32> {
        match self.values {
            Values::F(v) => Rc::try_unwrap(v).unwrap_or_else(|v| v.to_vec()),
            Values::I(v) => v.iter().map(|&x| x as f32).collect(),
        }
    }

    /// The values, where they are floats.
    pub fn f32s(&self) -> Option<&[f32]> {
        match &self.values {
            Values::F(v) => Some(v.as_slice()),
            Values::I(_) => None,
        }
    }

    /// The values as integers (floats truncated).
    pub fn as_i64(&self) -> Vec<i64> {
        match &self.values {
            Values::F(v) => v.iter().map(|&x| x as i64).collect(),
            Values::I(v) => v.to_vec(),
        }
    }

    /// The same values under `dims` (same count).
    pub fn with_dims(mut self, dims: Vec<usize>) -> Self {
        self.dims = dims;
        self
    }
}

/// Decodes `t`; external data is read from beside `model` (the `.onnx`
/// file). Errors name the tensor and the file.
pub fn decode(t: &TensorProto, model: &Path) -> Result<Const> {
    let bad = |msg: String| Error::format(model, format!("tensor `{}`: {msg}", t.name));
    let dims: Vec<usize> = t
        .dims
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| bad(format!("dimension {d}"))))
        .collect::<Result<_>>()?;
    let n = dims
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .filter(|&n| n <= MAX_VALUES)
        .ok_or_else(|| bad(format!("shape {dims:?} is too large")))?;
    let size = match t.data_type {
        dtype::FLOAT | dtype::INT32 => 4,
        dtype::DOUBLE | dtype::INT64 => 8,
        dtype::FLOAT16 => 2,
        dtype::UINT8 | dtype::INT8 | dtype::BOOL => 1,
        other => {
            return Err(bad(format!(
                "data type {other} (Shears reads float, double, float16 and integer tensors)"
            )))
        }
    };
    let external;
    let raw: &[u8] = if t.data_location == 1 {
        external = read_external(t, model, n * size).map_err(bad)?;
        &external
    } else {
        &t.raw_data
    };
    let values = if raw.is_empty() && n > 0 {
        typed_fields(t)
    } else {
        if raw.len() != n * size {
            return Err(bad(format!("{} bytes of data for {n} values", raw.len())));
        }
        from_bytes(t.data_type, raw)
    };
    if values_len(&values) != n {
        return Err(bad(format!(
            "{} values for shape {dims:?}",
            values_len(&values)
        )));
    }
    Ok(Const {
        dims,
        values,
        origin: Some(t.name.clone()),
    })
}

/// The most values one tensor may hold (4 G), so a corrupt shape is refused
/// before anything is allocated.
const MAX_VALUES: usize = 1 << 32;

fn values_len(v: &Values) -> usize {
    match v {
        Values::F(v) => v.len(),
        Values::I(v) => v.len(),
    }
}

/// Values stored in the typed fields (`float_data`, `int64_data`, ...).
fn typed_fields(t: &TensorProto) -> Values {
    match t.data_type {
        dtype::FLOAT => Values::F(Rc::new(t.float_data.clone())),
        dtype::DOUBLE => Values::F(Rc::new(t.double_data.iter().map(|&v| v as f32).collect())),
        // float16 values sit in int32_data, one per entry.
        dtype::FLOAT16 => Values::F(Rc::new(
            t.int32_data.iter().map(|&v| f16(v as u16)).collect(),
        )),
        dtype::INT64 => Values::I(Rc::new(t.int64_data.clone())),
        _ => Values::I(Rc::new(t.int32_data.iter().map(|&v| v as i64).collect())),
    }
}

/// Little-endian values of type `ty` (sizes already checked).
fn from_bytes(ty: i32, raw: &[u8]) -> Values {
    match ty {
        dtype::FLOAT => Values::F(Rc::new(
            raw.chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
        )),
        dtype::DOUBLE => Values::F(Rc::new(
            raw.chunks_exact(8)
                .map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")) as f32)
                .collect(),
        )),
        dtype::FLOAT16 => Values::F(Rc::new(
            raw.chunks_exact(2)
                .map(|b| f16(u16::from_le_bytes([b[0], b[1]])))
                .collect(),
        )),
        dtype::INT64 => Values::I(Rc::new(
            raw.chunks_exact(8)
                .map(|b| i64::from_le_bytes(b.try_into().expect("8 bytes")))
                .collect(),
        )),
        dtype::INT32 => Values::I(Rc::new(
            raw.chunks_exact(4)
                .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as i64)
                .collect(),
        )),
        dtype::INT8 => Values::I(Rc::new(raw.iter().map(|&b| b as i8 as i64).collect())),
        _ => Values::I(Rc::new(raw.iter().map(|&b| b as i64).collect())),
    }
}

/// An IEEE half-precision number.
fn f16(bits: u16) -> f32 {
    let sign = if bits >> 15 == 1 { -1.0 } else { 1.0 };
    let exp = ((bits >> 10) & 0x1f) as i32;
    let frac = (bits & 0x3ff) as f32;
    sign * match exp {
        0 => frac * 2f32.powi(-24),
        31 if frac == 0.0 => f32::INFINITY,
        31 => f32::NAN,
        e => (1.0 + frac / 1024.0) * 2f32.powi(e - 15),
    }
}

/// The bytes of an external tensor: `location` must be a relative path
/// inside the model's folder that exists; `offset` and `length` must lie
/// inside that file, and the length must be what the tensor's shape needs.
/// Only those bytes are read.
fn read_external(
    t: &TensorProto,
    model: &Path,
    want: usize,
) -> std::result::Result<Vec<u8>, String> {
    let entry = |k: &str| {
        t.external_data
            .iter()
            .find(|e| e.key == k)
            .map(|e| e.value.as_str())
    };
    let location = entry("location").ok_or("its data is external but names no file")?;
    let rel = Path::new(location);
    if rel.is_absolute()
        || rel
            .components()
            .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(format!(
            "its data file `{location}` is not inside the model's folder (an absolute path or \
             one with `..`); Shears reads external data only from beside the model"
        ));
    }
    let dir = model.parent().unwrap_or(Path::new("."));
    let file = dir.join(rel);
    let number = |k: &str| -> std::result::Result<Option<u64>, String> {
        entry(k)
            .map(|v| {
                v.parse::<u64>()
                    .map_err(|_| format!("its `{k}` is `{v}`, not a number"))
            })
            .transpose()
    };
    let offset = number("offset")?.unwrap_or(0);
    let mut f = File::open(&file).map_err(|e| {
        format!(
            "its data file `{}` cannot be opened ({e}); it must be beside the model",
            file.display()
        )
    })?;
    let size = f
        .metadata()
        .map_err(|e| format!("{}: {e}", file.display()))?
        .len();
    let length = number("length")?.unwrap_or(size.saturating_sub(offset));
    if length != want as u64 {
        return Err(format!(
            "its external data is {length} bytes, its shape and type need {want}"
        ));
    }
    if offset.checked_add(length).is_none_or(|end| end > size) {
        return Err(format!(
            "its external data (bytes {offset}..{}) runs past the end of `{}` ({size} bytes)",
            offset.saturating_add(length),
            file.display()
        ));
    }
    let mut buf = vec![0u8; want];
    f.seek(SeekFrom::Start(offset))
        .and_then(|_| f.read_exact(&mut buf))
        .map_err(|e| format!("reading `{}`: {e}", file.display()))?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::onnx::proto::StringStringEntryProto;

    fn external(location: &str, offset: u64, length: u64) -> TensorProto {
        let kv = |k: &str, v: String| StringStringEntryProto {
            key: k.into(),
            value: v,
        };
        TensorProto {
            name: "w".into(),
            dims: vec![2, 2],
            data_type: dtype::FLOAT,
            data_location: 1,
            external_data: vec![
                kv("location", location.into()),
                kv("offset", offset.to_string()),
                kv("length", length.to_string()),
            ],
            ..Default::default()
        }
    }

    #[test]
    fn external_data_is_read_from_beside_the_model_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let model = dir.path().join("m.onnx");
        let data: Vec<u8> = [9f32, 1.0, 2.0, 3.0, 4.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        std::fs::write(dir.path().join("m.onnx.data"), &data).unwrap();
        let c = decode(&external("m.onnx.data", 4, 16), &model).unwrap();
        assert_eq!(c.values, Values::F(Rc::new(vec![1.0, 2.0, 3.0, 4.0])));
        assert_eq!(c.dims, vec![2, 2]);
        let err = |t: TensorProto| decode(&t, &model).unwrap_err().to_string();
        let e = err(external("../m.onnx.data", 0, 16));
        assert!(
            e.contains("not inside the model's folder") && e.contains("`w`"),
            "{e}"
        );
        let e = err(external("/etc/passwd", 0, 16));
        assert!(e.contains("not inside"), "{e}");
        let e = err(external("missing.data", 0, 16));
        assert!(e.contains("cannot be opened"), "{e}");
        let e = err(external("m.onnx.data", 8, 16));
        assert!(e.contains("runs past the end"), "{e}");
        let e = err(external("m.onnx.data", 0, 12));
        assert!(e.contains("need 16"), "{e}");
    }

    #[test]
    fn half_precision_decodes() {
        assert_eq!(f16(0x3c00), 1.0);
        assert_eq!(f16(0xc000), -2.0);
        assert_eq!(f16(0x3555), 0.333_251_95);
        assert!(f16(0x7e00).is_nan());
    }
}
