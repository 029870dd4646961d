//! PyTorch state dicts read without Python: `torch.save` zip files (`.pth`,
//! `.pt`, also a training checkpoint dict holding the state dict under a
//! key) through Candle's pickle reader, and `safetensors.torch.save_file`
//! files.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use candle_core::{DType, Device, Tensor};

use crate::error::{Error, Result};

/// The keys a training checkpoint dict keeps its state dict under, tried in
/// order after the file itself.
pub const NESTED_KEYS: [&str; 4] = ["state_dict", "model_state_dict", "model", "net"];

/// A state dict: floating-point tensors (as `f32`, on the CPU) by name, and
/// the entries that are not parameters (`num_batches_tracked` and other
/// integer buffers), which a model understands but does not train.
#[derive(Debug, Default)]
pub struct StateDict {
    /// Parameters and float buffers by name.
    pub tensors: BTreeMap<String, Tensor>,
    /// Integer buffers by name (e.g. `bn1.num_batches_tracked`).
    pub extra: BTreeMap<String, Tensor>,
    /// Where the state dict was found: `None` for the file itself, or the key
    /// of the checkpoint dict holding it.
    pub nested_key: Option<String>,
}

impl StateDict {
    /// Reads a `.pth`/`.pt` or `.safetensors` file by its content (a zip
    /// archive is `torch.save`'s format, anything else is tried as
    /// safetensors); errors name `path`.
    pub fn read(path: &Path) -> Result<Self> {
        let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let mut magic = [0u8; 4];
        let n = f.read(&mut magic).map_err(|e| Error::io(path, e))?;
        let magic = &magic[..n];
        if magic == b"PK\x03\x04" {
            Self::read_pth(path)
        } else if magic.starts_with(b"\x80\x02") || magic.starts_with(b"\x80\x01") {
            Err(legacy_pickle(path))
        } else {
            Self::read_safetensors(path)
        }
    }

    /// A state dict from a safetensors file, read tensor by tensor: the
    /// file is never held whole in memory, so a model is held once. The
    /// header is checked before anything else is read (its size against
    /// the file's, every tensor's bytes against its shape and type and
    /// against the file's end).
    pub fn read_safetensors(path: &Path) -> Result<Self> {
        use std::io::{Seek, SeekFrom};
        let bad = |msg: String| {
            Error::format(
                path,
                format!("neither a torch.save zip nor safetensors ({msg})"),
            )
        };
        let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let len = f.metadata().map_err(|e| Error::io(path, e))?.len();
        let (start, header) = safetensors_header(&mut f, path)?.map_err(bad)?;
        let mut entries = Vec::new();
        for (name, info) in header {
            if name == "__metadata__" {
                continue;
            }
            let e = SafetensorsEntry::parse(&info).map_err(|m| bad(format!("`{name}`: {m}")))?;
            if start + e.end > len {
                return Err(bad(format!(
                    "`{name}` ends at byte {}, past the file's end ({len})",
                    start + e.end
                )));
            }
            entries.push((name, e));
        }
        entries.sort_by_key(|(_, e)| e.begin);
        let mut tensors = Vec::with_capacity(entries.len());
        for (name, e) in entries {
            let mut buf = vec![0u8; (e.end - e.begin) as usize];
            f.seek(SeekFrom::Start(start + e.begin))
                .and_then(|_| f.read_exact(&mut buf))
                .map_err(|err| Error::io(path, err))?;
            let t = e.tensor(&buf).map_err(|m| bad(format!("`{name}`: {m}")))?;
            tensors.push((name, t));
        }
        Self::from_tensors(tensors, None, path)
    }

    /// A state dict from a `torch.save` zip: the file's object itself when
    /// it is a state dict, else the first of [`NESTED_KEYS`] that holds one.
    /// Every tensor's declared size is checked against its record in the
    /// archive before anything is read.
    pub fn read_pth(path: &Path) -> Result<Self> {
        let mut last_err = None;
        for key in std::iter::once(None).chain(NESTED_KEYS.iter().map(Some)) {
            // Candle's pickle reader is not hardened against every malformed
            // file (it can panic): a panic in it is a format error, not a crash.
            let infos = std::panic::catch_unwind(|| {
                candle_core::pickle::read_pth_tensor_info(path, false, key.copied())
            });
            match infos {
                Ok(Ok(infos)) if !infos.is_empty() => {
                    check_records(path, &infos)?;
                    let read = std::panic::catch_unwind(|| {
                        candle_core::pickle::read_all_with_key(path, key.copied())
                    });
                    let tensors = match read {
                        Ok(Ok(t)) => t,
                        Ok(Err(e)) => {
                            return Err(Error::format(path, format!("cannot read a tensor ({e})")))
                        }
                        Err(_) => {
                            return Err(Error::format(
                                path,
                                "the pickle reader failed on this file",
                            ))
                        }
                    };
                    return Self::from_tensors(tensors, key.map(|k| k.to_string()), path);
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) => last_err = Some(e.to_string()),
                Err(_) => last_err = Some("the pickle reader failed on this file".into()),
            }
        }
        Err(Error::format(
            path,
            match last_err {
                Some(e) if !e.contains("not found") => {
                    format!("not a readable torch.save file ({e})")
                }
                _ => format!(
                    "holds no tensors: not a state dict, and no state dict under {}; \
                     a whole pickled model (torch.save(model)) cannot be read, save \
                     model.state_dict() instead",
                    NESTED_KEYS.map(|k| format!("`{k}`")).join(", ")
                ),
            },
        ))
    }

    fn from_tensors(
        tensors: impl IntoIterator<Item = (String, Tensor)>,
        nested_key: Option<String>,
        path: &Path,
    ) -> Result<Self> {
        let mut out = StateDict {
            nested_key,
            ..Default::default()
        };
        for (name, t) in tensors {
            // `nn.DataParallel` prefixes every name with `module.`.
            let name = name.strip_prefix("module.").unwrap_or(&name).to_string();
            let float = matches!(
                t.dtype(),
                DType::F32 | DType::F16 | DType::BF16 | DType::F64
            );
            if float && !name.ends_with("num_batches_tracked") {
                let t = t
                    .to_dtype(DType::F32)
                    .map_err(|e| Error::format(path, format!("tensor `{name}`: {e}")))?;
                let values = t.flatten_all()?.to_vec1::<f32>()?;
                if values.iter().any(|v| !v.is_finite()) {
                    return Err(Error::format(
                        path,
                        format!("tensor `{name}` holds NaN or infinite values"),
                    ));
                }
                out.tensors.insert(name, t);
            } else {
                out.extra.insert(name, t);
            }
        }
        if out.tensors.is_empty() {
            return Err(Error::format(path, "holds no floating-point tensors"));
        }
        Ok(out)
    }

    /// A state dict of these names and shapes that holds no data (each
    /// tensor a broadcast view of one zero): what the recognisers read,
    /// for checking layouts and for fuzzing them. `num_batches_tracked`
    /// goes to `extra`, as when read from a file.
    pub fn from_shapes<'a>(
        shapes: impl IntoIterator<Item = (&'a str, &'a [usize])>,
    ) -> Result<Self> {
        let zero = Tensor::zeros(1, DType::F32, &Device::Cpu)?;
        let mut sd = StateDict {
            tensors: BTreeMap::new(),
            extra: BTreeMap::new(),
            nested_key: None,
        };
        for (name, dims) in shapes {
            let t = zero.reshape(vec![1; dims.len()])?.broadcast_as(dims)?;
            if name.ends_with("num_batches_tracked") {
                sd.extra.insert(name.to_string(), t);
            } else {
                sd.tensors.insert(name.to_string(), t);
            }
        }
        Ok(sd)
    }

    /// Shape of tensor `name`, if present.
    pub fn shape(&self, name: &str) -> Option<&[usize]> {
        self.tensors.get(name).map(|t| t.dims())
    }

    /// Whether tensor `name` is present.
    pub fn has(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    /// The first few names with their shapes, for error messages.
    pub fn describe(&self) -> String {
        let mut s: Vec<String> = self
            .tensors
            .iter()
            .take(4)
            .map(|(k, t)| format!("`{k}` {:?}", t.dims()))
            .collect();
        if self.tensors.len() > 4 {
            s.push(format!("... ({} tensors)", self.tensors.len()));
        }
        s.join(", ")
    }
}

/// Refuses tensors whose declared shape needs more bytes than their record
/// in the archive holds (a hostile or damaged header would otherwise make
/// the reader allocate what it says).
fn check_records(path: &Path, infos: &[candle_core::pickle::TensorInfo]) -> Result<()> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut zip = zip::ZipArchive::new(std::io::BufReader::new(file))
        .map_err(|e| Error::format(path, format!("not a readable zip archive ({e})")))?;
    for info in infos {
        let need = info
            .layout
            .shape()
            .dims()
            .iter()
            .try_fold(info.dtype.size_in_bytes(), |n, d| n.checked_mul(*d))
            .and_then(|n| n.checked_add(info.layout.start_offset()));
        let have = zip.by_name(&info.path).map(|f| f.size()).ok();
        match (need, have) {
            (Some(need), Some(have)) if need as u64 <= have => {}
            (_, None) => {
                return Err(Error::format(
                    path,
                    format!(
                        "tensor `{}`: its record `{}` is missing",
                        info.name, info.path
                    ),
                ))
            }
            _ => {
                return Err(Error::format(
                    path,
                    format!(
                        "tensor `{}` declares shape {:?}, more than its record holds",
                        info.name,
                        info.layout.dims()
                    ),
                ))
            }
        }
    }
    Ok(())
}

/// The largest safetensors header read (the format's own limit).
const MAX_HEADER: u64 = 100 << 20;

/// A safetensors header: where the data starts and the entries by name.
pub(crate) type SafetensorsHeader = (u64, BTreeMap<String, serde_json::Value>);

/// The header of the safetensors file `f` (at `path`): where the data
/// starts and the header's entries, or why it is not one (a header longer
/// than the file or the format allows, or not JSON). Only the header is
/// read; its size is checked before it is.
pub(crate) fn safetensors_header(
    f: &mut std::fs::File,
    path: &Path,
) -> Result<std::result::Result<SafetensorsHeader, String>> {
    let len = f.metadata().map_err(|e| Error::io(path, e))?.len();
    let mut n8 = [0u8; 8];
    if f.read_exact(&mut n8).is_err() {
        return Ok(Err("shorter than a safetensors header".into()));
    }
    let n = u64::from_le_bytes(n8);
    if n > len.saturating_sub(8) || n > MAX_HEADER {
        return Ok(Err(format!("a header of {n} bytes in a file of {len}")));
    }
    let mut head = vec![0u8; n as usize];
    f.read_exact(&mut head).map_err(|e| Error::io(path, e))?;
    Ok(serde_json::from_slice(&head)
        .map(|h| (8 + n, h))
        .map_err(|e| e.to_string()))
}

/// The error for a pre-1.6 `torch.save` file.
fn legacy_pickle(path: &Path) -> Error {
    Error::format(
        path,
        "a legacy (pre-1.6) torch.save file; save it again with a current PyTorch \
         (torch.save(torch.load(f), f) keeps the content, written as a zip)",
    )
}

/// One tensor of a safetensors header: type, shape and where its bytes
/// are (after the header).
struct SafetensorsEntry {
    dtype: String,
    shape: Vec<usize>,
    begin: u64,
    end: u64,
}

impl SafetensorsEntry {
    /// The entry `info` of tensor `name`, its size checked against its
    /// shape and type.
    fn parse(info: &serde_json::Value) -> std::result::Result<Self, String> {
        let dtype = info["dtype"].as_str().ok_or("no dtype")?.to_string();
        let shape = info["shape"]
            .as_array()
            .ok_or("no shape")?
            .iter()
            .map(|d| {
                d.as_u64()
                    .map(|d| d as usize)
                    .ok_or("a dimension that is no number")
            })
            .collect::<std::result::Result<Vec<usize>, _>>()?;
        let offsets = info["data_offsets"].as_array().ok_or("no data_offsets")?;
        let [begin, end] = offsets.as_slice() else {
            return Err("data_offsets is not [begin, end]".into());
        };
        let (begin, end) = (
            begin.as_u64().ok_or("an offset that is no number")?,
            end.as_u64().ok_or("an offset that is no number")?,
        );
        let size = match dtype.as_str() {
            "F64" | "I64" => 8,
            "F32" | "I32" | "U32" => 4,
            "F16" | "BF16" | "I16" | "U16" => 2,
            "I8" | "U8" | "BOOL" => 1,
            other => return Err(format!("data type {other}")),
        };
        let bytes = shape
            .iter()
            .try_fold(size as u64, |a, &d| a.checked_mul(d as u64))
            .ok_or("a shape too large")?;
        if end < begin || end - begin != bytes {
            return Err(format!(
                "{} bytes for a {dtype} tensor of shape {shape:?} ({bytes} bytes)",
                end.saturating_sub(begin)
            ));
        }
        Ok(SafetensorsEntry {
            dtype,
            shape,
            begin,
            end,
        })
    }

    /// The tensor from its bytes (integers Candle has no type for become
    /// `i64`).
    fn tensor(&self, bytes: &[u8]) -> std::result::Result<Tensor, String> {
        let d = &Device::Cpu;
        let raw = |dt: DType| Tensor::from_raw_buffer(bytes, dt, &self.shape, d);
        let ints = |v: Vec<i64>| Tensor::from_vec(v, self.shape.as_slice(), d);
        let t = match self.dtype.as_str() {
            "F64" => raw(DType::F64),
            "F32" => raw(DType::F32),
            "F16" => raw(DType::F16),
            "BF16" => raw(DType::BF16),
            "I64" => raw(DType::I64),
            "U32" => raw(DType::U32),
            "U8" => raw(DType::U8),
            "I32" => ints(
                bytes
                    .chunks_exact(4)
                    .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as i64)
                    .collect(),
            ),
            "I16" => ints(
                bytes
                    .chunks_exact(2)
                    .map(|b| i16::from_le_bytes([b[0], b[1]]) as i64)
                    .collect(),
            ),
            "U16" => ints(
                bytes
                    .chunks_exact(2)
                    .map(|b| u16::from_le_bytes([b[0], b[1]]) as i64)
                    .collect(),
            ),
            "I8" => ints(bytes.iter().map(|&b| b as i8 as i64).collect()),
            "BOOL" => ints(bytes.iter().map(|&b| (b != 0) as i64).collect()),
            other => return Err(format!("data type {other}")),
        };
        t.map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/torchvision")
            .join(name)
    }

    #[test]
    fn pth_and_safetensors_hold_the_same_tensors() {
        let a = StateDict::read(&fixture("resnet18.pth")).unwrap();
        let b = StateDict::read(&fixture("resnet18.safetensors")).unwrap();
        assert_eq!(
            a.tensors.keys().collect::<Vec<_>>(),
            b.tensors.keys().collect::<Vec<_>>()
        );
        assert!(a.extra.contains_key("bn1.num_batches_tracked"));
        assert!(!a.tensors.contains_key("bn1.num_batches_tracked"));
        for (k, t) in &a.tensors {
            let x = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let y = b.tensors[k]
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap();
            assert_eq!(x, y, "{k}");
        }
    }

    #[test]
    fn a_tensor_declaring_more_than_its_record_is_refused_before_reading() {
        use std::io::{Read, Write};
        let t = Tensor::zeros((2, 2), DType::F32, &Device::Cpu).unwrap();
        let good = crate::model::export::pth::to_bytes(&[("w".into(), t)]).unwrap();
        // Rewrite the archive with the shape (2, 2) claimed as (2^30, 2^30).
        let mut src = zip::ZipArchive::new(std::io::Cursor::new(good)).unwrap();
        let mut out = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        for i in 0..src.len() {
            let mut f = src.by_index(i).unwrap();
            let name = f.name().unwrap().to_string();
            let mut data = Vec::new();
            f.read_to_end(&mut data).unwrap();
            if name.ends_with("data.pkl") {
                let from = b"(J\x02\x00\x00\x00J\x02\x00\x00\x00t";
                let to = b"(J\x00\x00\x00\x40J\x00\x00\x00\x40t";
                let at = data.windows(from.len()).position(|w| w == from).unwrap();
                data[at..at + from.len()].copy_from_slice(to);
            }
            out.start_file(name, opts).unwrap();
            out.write_all(&data).unwrap();
        }
        let bytes = out.finish().unwrap().into_inner();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("huge.pth");
        std::fs::write(&path, bytes).unwrap();
        let e = StateDict::read(&path).unwrap_err().to_string();
        assert!(
            e.contains("huge.pth") && e.contains("more than its record holds"),
            "{e}"
        );
    }

    #[test]
    fn a_training_checkpoint_dict_gives_its_state_dict() {
        let a = StateDict::read(&fixture("resnet18.ckpt.pth")).unwrap();
        assert_eq!(a.nested_key.as_deref(), Some("state_dict"));
        assert_eq!(a.shape("conv1.weight"), Some(&[8, 3, 7, 7][..]));
    }

    #[test]
    fn safetensors_are_read_tensor_by_tensor_and_checked_first() {
        // The same tensors as the whole-buffer reader.
        let path = fixture("resnet18.safetensors");
        let a = StateDict::read(&path).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let all = candle_core::safetensors::load_buffer(&bytes, &Device::Cpu).unwrap();
        let b = StateDict::from_tensors(all, None, &path).unwrap();
        assert_eq!(a.tensors.len(), b.tensors.len());
        for (k, t) in &a.tensors {
            let u = &b.tensors[k];
            assert_eq!(t.dims(), u.dims(), "{k}");
            let diff = (t - u).unwrap().abs().unwrap().max_all().unwrap();
            assert_eq!(diff.to_scalar::<f32>().unwrap(), 0.0, "{k}");
        }
        assert_eq!(a.extra.len(), b.extra.len());
        // Cut short: refused by the header's check, naming the file.
        let dir = tempfile::tempdir().unwrap();
        let cut = dir.path().join("cut.safetensors");
        std::fs::write(&cut, &bytes[..bytes.len() - 100]).unwrap();
        let e = StateDict::read(&cut).unwrap_err().to_string();
        assert!(
            e.contains("cut.safetensors") && e.contains("past the file's end"),
            "{e}"
        );
        // A header longer than the file.
        let mut huge = bytes.clone();
        huge[..8].copy_from_slice(&(1u64 << 40).to_le_bytes());
        let h = dir.path().join("huge.safetensors");
        std::fs::write(&h, &huge).unwrap();
        let e = StateDict::read(&h).unwrap_err().to_string();
        assert!(e.contains("header of"), "{e}");
    }

    #[test]
    fn garbage_and_truncated_files_are_format_errors() {
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("junk.pth");
        std::fs::write(&junk, b"not a model at all").unwrap();
        let e = StateDict::read(&junk).unwrap_err().to_string();
        assert!(e.contains("junk.pth"), "{e}");
        let bytes = std::fs::read(fixture("resnet18.pth")).unwrap();
        let cut = dir.path().join("cut.pth");
        std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
        let e = StateDict::read(&cut).unwrap_err().to_string();
        assert!(e.contains("cut.pth"), "{e}");
    }
}
