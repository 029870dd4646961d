//! `torch.save`'s zip format written without Python: a protocol-2 pickle of
//! an `OrderedDict` of `torch._utils._rebuild_tensor_v2` calls (the globals
//! `torch.load(..., weights_only=True)` allows) and one uncompressed,
//! 64-byte aligned record per tensor.

use std::io::Write;

use candle_core::{DType, Tensor};

use crate::error::Result;

/// The folder every record of the archive lives in (torch uses the file
/// name; the loader accepts any).
const ROOT: &str = "archive";

/// Pickle opcodes (protocol 2) this writer uses.
mod op {
    pub const PROTO: u8 = 0x80;
    pub const GLOBAL: u8 = b'c';
    pub const EMPTY_TUPLE: u8 = b')';
    pub const REDUCE: u8 = b'R';
    pub const MARK: u8 = b'(';
    pub const TUPLE: u8 = b't';
    pub const SETITEMS: u8 = b'u';
    pub const BINUNICODE: u8 = b'X';
    pub const BININT: u8 = b'J';
    pub const LONG1: u8 = 0x8a;
    pub const BINPERSID: u8 = b'Q';
    pub const NEWFALSE: u8 = 0x89;
    pub const STOP: u8 = b'.';
}

struct Pickle(Vec<u8>);

impl Pickle {
    fn global(&mut self, module: &str, name: &str) {
        self.0.push(op::GLOBAL);
        self.0
            .extend_from_slice(format!("{module}\n{name}\n").as_bytes());
    }

    fn str(&mut self, s: &str) {
        self.0.push(op::BINUNICODE);
        self.0.extend_from_slice(&(s.len() as u32).to_le_bytes());
        self.0.extend_from_slice(s.as_bytes());
    }

    fn int(&mut self, v: usize) {
        if let Ok(v) = i32::try_from(v) {
            self.0.push(op::BININT);
            self.0.extend_from_slice(&v.to_le_bytes());
        } else {
            self.0.extend_from_slice(&[op::LONG1, 8]);
            self.0.extend_from_slice(&(v as u64).to_le_bytes());
        }
    }

    fn tuple(&mut self, items: &[usize]) {
        if items.is_empty() {
            self.0.push(op::EMPTY_TUPLE);
            return;
        }
        self.0.push(op::MARK);
        for &i in items {
            self.int(i);
        }
        self.0.push(op::TUPLE);
    }

    fn ordered_dict(&mut self) {
        self.global("collections", "OrderedDict");
        self.0.extend_from_slice(&[op::EMPTY_TUPLE, op::REDUCE]);
    }

    /// `_rebuild_tensor_v2(storage, 0, size, stride, False, OrderedDict())`
    /// with the storage as persistent id `('storage', Kind, key, 'cpu', n)`.
    fn tensor(&mut self, storage: &str, key: &str, dims: &[usize]) {
        let numel: usize = dims.iter().product();
        let mut stride = vec![1; dims.len()];
        for i in (0..dims.len().saturating_sub(1)).rev() {
            stride[i] = stride[i + 1] * dims[i + 1];
        }
        self.global("torch._utils", "_rebuild_tensor_v2");
        self.0.push(op::MARK);
        self.0.push(op::MARK);
        self.str("storage");
        self.global("torch", storage);
        self.str(key);
        self.str("cpu");
        self.int(numel);
        self.0.push(op::TUPLE);
        self.0.push(op::BINPERSID);
        self.int(0);
        self.tuple(dims);
        self.tuple(&stride);
        self.0.push(op::NEWFALSE);
        self.ordered_dict();
        self.0.push(op::TUPLE);
        self.0.push(op::REDUCE);
    }
}

/// The bytes of a `torch.save(state_dict)` file holding `tensors` (f32 or
/// i64) in order.
pub fn to_bytes(tensors: &[(String, Tensor)]) -> Result<Vec<u8>> {
    let mut p = Pickle(vec![op::PROTO, 2]);
    p.ordered_dict();
    p.0.push(op::MARK);
    let mut records = Vec::with_capacity(tensors.len());
    for (i, (name, t)) in tensors.iter().enumerate() {
        let key = i.to_string();
        let (storage, bytes) = match t.dtype() {
            DType::I64 => (
                "LongStorage",
                t.flatten_all()?
                    .to_vec1::<i64>()?
                    .iter()
                    .flat_map(|v| v.to_le_bytes())
                    .collect::<Vec<u8>>(),
            ),
            _ => (
                "FloatStorage",
                t.to_dtype(DType::F32)?
                    .flatten_all()?
                    .to_vec1::<f32>()?
                    .iter()
                    .flat_map(|v| v.to_le_bytes())
                    .collect(),
            ),
        };
        p.str(name);
        p.tensor(storage, &key, t.dims());
        records.push((key, bytes));
    }
    p.0.push(op::SETITEMS);
    p.0.push(op::STOP);

    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .with_alignment(64);
    let mut put = |name: String, data: &[u8]| -> std::io::Result<()> {
        zip.start_file(name, opts).map_err(std::io::Error::other)?;
        zip.write_all(data)
    };
    let io =
        |e: std::io::Error| crate::error::Error::Shape(format!("cannot build the archive: {e}"));
    put(format!("{ROOT}/data.pkl"), &p.0).map_err(io)?;
    put(format!("{ROOT}/byteorder"), b"little").map_err(io)?;
    for (key, bytes) in &records {
        put(format!("{ROOT}/data/{key}"), bytes).map_err(io)?;
    }
    put(format!("{ROOT}/version"), b"3\n").map_err(io)?;
    let out = zip
        .finish()
        .map_err(|e| io(std::io::Error::other(e)))?
        .into_inner();
    Ok(out)
}
