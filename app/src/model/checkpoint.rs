//! Checkpoints in safetensors: parameters, BatchNorm buffers and masks as
//! tensors, the architecture as JSON in the file's metadata, so a checkpoint
//! opens without any other file.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use candle_core::safetensors::Load;
use candle_core::{Device, Tensor};
use safetensors::{Dtype, SafeTensors};

use super::arch::Architecture;
use super::network::Network;
use crate::error::{Error, Result};

/// Metadata key holding the architecture JSON.
pub const ARCH_KEY: &str = "shears.architecture";
/// Metadata key holding the checkpoint format version.
pub const FORMAT_KEY: &str = "shears.format";
/// Metadata key holding free-form JSON about how the model was made.
pub const INFO_KEY: &str = "shears.info";
/// Prefix of mask tensor names.
pub const MASK_PREFIX: &str = "mask/";
const FORMAT_VERSION: &str = "1";

/// Writes `net` to `path` (atomically: a temporary file renamed into place, so
/// a failed write never destroys an existing checkpoint). `info` is stored as
/// JSON metadata.
pub fn save(net: &Network, info: &serde_json::Value, path: &Path) -> Result<()> {
    let mut tensors: Vec<(String, Tensor)> = Vec::new();
    for (k, v) in &net.params {
        tensors.push((k.clone(), v.as_tensor().to_device(&Device::Cpu)?));
    }
    for (k, t) in &net.buffers {
        tensors.push((k.clone(), t.to_device(&Device::Cpu)?));
    }
    for (k, t) in &net.masks {
        tensors.push((format!("{MASK_PREFIX}{k}"), t.to_device(&Device::Cpu)?));
    }
    let arch = serde_json::to_string(&net.arch)?;
    let meta = HashMap::from([
        (ARCH_KEY.to_string(), arch),
        (FORMAT_KEY.to_string(), FORMAT_VERSION.to_string()),
        (INFO_KEY.to_string(), info.to_string()),
    ]);
    let bytes = safetensors::serialize(tensors.iter().map(|(k, t)| (k.as_str(), t)), Some(meta))
        .map_err(|e| Error::format(path, format!("cannot serialise checkpoint: {e}")))?;
    crate::fsutil::write_atomic(path, &bytes)
}

/// What a checkpoint holds, before it is turned into a [`Network`].
#[derive(Debug)]
pub struct Checkpoint {
    /// The architecture from the metadata.
    pub arch: Architecture,
    /// Parameters and buffers by name.
    pub tensors: BTreeMap<String, Tensor>,
    /// Masks by parameter name.
    pub masks: BTreeMap<String, Tensor>,
    /// The `shears.info` metadata (null when absent).
    pub info: serde_json::Value,
}

/// The architecture of the Shears checkpoint in `path`, read from the
/// file's header only (no tensors); `None` when it is not one.
pub fn read_arch(path: &Path) -> Option<Architecture> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).ok()?;
    let mut len = [0u8; 8];
    f.read_exact(&mut len).ok()?;
    let len = u64::from_le_bytes(len);
    if len > 100 << 20 {
        return None;
    }
    let mut header = vec![0u8; len as usize];
    f.read_exact(&mut header).ok()?;
    let header: serde_json::Value = serde_json::from_slice(&header).ok()?;
    let arch = header.get("__metadata__")?.get(ARCH_KEY)?.as_str()?;
    serde_json::from_str(arch).ok()
}

impl Checkpoint {
    /// Reads and validates a checkpoint file: it must be safetensors with the
    /// Shears metadata, and every tensor must have the name, dtype (f32) and
    /// shape the architecture requires; errors name the file and the tensor.
    pub fn read(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        Self::from_bytes(&bytes, path)
    }

    /// [`Checkpoint::read`] of a file's bytes; errors name `path`.
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Self> {
        let (_, header) = SafeTensors::read_metadata(bytes)
            .map_err(|e| Error::format(path, format!("not a valid safetensors file ({e})")))?;
        let st = SafeTensors::deserialize(bytes)
            .map_err(|e| Error::format(path, format!("not a valid safetensors file ({e})")))?;
        let meta = header.metadata().clone().unwrap_or_default();
        let arch_json = meta.get(ARCH_KEY).ok_or_else(|| {
            Error::format(
                path,
                format!(
                    "no `{ARCH_KEY}` metadata: not a Shears checkpoint ({} tensors inside)",
                    st.len()
                ),
            )
        })?;
        let arch: Architecture = serde_json::from_str(arch_json)
            .map_err(|e| Error::format(path, format!("architecture metadata is invalid: {e}")))?;
        arch.check()
            .map_err(|e| Error::format(path, e.to_string()))?;
        if let Some(v) = meta.get(FORMAT_KEY) {
            if v != FORMAT_VERSION {
                return Err(Error::format(
                    path,
                    format!("checkpoint format {v} is not supported (this build reads {FORMAT_VERSION})"),
                ));
            }
        }
        let info = meta
            .get(INFO_KEY)
            .and_then(|s| serde_json::from_str(s).ok())
            .unwrap_or(serde_json::Value::Null);
        let specs: BTreeMap<String, (Vec<usize>, bool)> = arch
            .tensor_specs()
            .into_iter()
            .map(|(n, s, role)| (n, (s, !role.trainable())))
            .collect();
        let mut tensors = BTreeMap::new();
        let mut masks = BTreeMap::new();
        for (name, view) in st.tensors() {
            let (target_name, is_mask) = match name.strip_prefix(MASK_PREFIX) {
                Some(p) => (p.to_string(), true),
                None => (name.clone(), false),
            };
            let Some((want, is_buffer)) = specs.get(&target_name) else {
                return Err(Error::format(
                    path,
                    format!(
                        "tensor `{name}` is not part of the {:?} architecture",
                        arch.family
                    ),
                ));
            };
            if view.dtype() != Dtype::F32 {
                return Err(Error::format(
                    path,
                    format!("tensor `{name}` has dtype {:?}, expected F32", view.dtype()),
                ));
            }
            if view.shape() != want.as_slice() {
                return Err(Error::format(
                    path,
                    format!(
                        "tensor `{name}` has shape {:?}, expected {want:?}",
                        view.shape()
                    ),
                ));
            }
            let t = view
                .load(&Device::Cpu)
                .map_err(|e| Error::format(path, format!("tensor `{name}`: {e}")))?;
            if is_mask {
                if *is_buffer {
                    return Err(Error::format(
                        path,
                        format!("mask `{name}` masks a buffer, not a parameter"),
                    ));
                }
                let values = t.flatten_all()?.to_vec1::<f32>()?;
                if let Some(v) = values.iter().find(|&&v| v != 0.0 && v != 1.0) {
                    return Err(Error::format(
                        path,
                        format!("mask `{name}` holds {v}; masks hold only 0 and 1"),
                    ));
                }
                masks.insert(target_name, t);
            } else {
                tensors.insert(name, t);
            }
        }
        if let Some(missing) = specs.keys().find(|k| !tensors.contains_key(*k)) {
            return Err(Error::format(
                path,
                format!("tensor `{missing}` is missing"),
            ));
        }
        Ok(Self {
            arch,
            tensors,
            masks,
            info,
        })
    }

    /// Builds the network on `device`.
    pub fn into_network(self, device: &Device) -> Result<Network> {
        Network::from_tensors(self.arch, self.tensors, self.masks, device)
    }
}

/// Reads a checkpoint and builds its network: [`Checkpoint::read`] then
/// [`Checkpoint::into_network`].
pub fn load(path: &Path, device: &Device) -> Result<Network> {
    Checkpoint::read(path)?.into_network(device)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::testutil::values;
    use crate::model::ModelSpec;

    fn lenet() -> Network {
        let arch = ModelSpec::Lenet5.build([1, 28, 28], 10).unwrap();
        Network::new(arch, 7, &Device::Cpu).unwrap()
    }

    /// A graph architecture (the built-in MobileNetV2 and ViT) is stored as
    /// its graph and comes back the same: graph, every tensor, the output.
    #[test]
    fn graph_architectures_round_trip_as_graphs() {
        let dir = tempfile::tempdir().unwrap();
        for spec in [
            ModelSpec::Mobilenetv2 { width: 25 },
            ModelSpec::Vit {
                patch: 8,
                dim: 32,
                depth: 2,
                heads: 2,
            },
        ] {
            let arch = spec.build([3, 32, 32], 10).unwrap();
            assert!(arch.graph.is_some() && arch.nodes.is_empty());
            let mut net = Network::new(arch, 3, &Device::Cpu).unwrap();
            let path = dir.path().join(format!("{}.safetensors", spec.name()));
            save(&net, &serde_json::json!({}), &path).unwrap();
            let mut back = load(&path, &Device::Cpu).unwrap();
            assert_eq!(back.arch, net.arch, "{}", spec.name());
            for (k, v) in &net.params {
                assert_eq!(
                    values(v.as_tensor()),
                    values(back.params[k].as_tensor()),
                    "{k}"
                );
            }
            let x = candle_core::Tensor::randn(0f32, 1.0, (2, 3, 32, 32), &Device::Cpu).unwrap();
            let (a, b) = (
                net.forward(&x, false).unwrap(),
                back.forward(&x, false).unwrap(),
            );
            assert_eq!(values(&a), values(&b), "{}", spec.name());
        }
    }

    #[test]
    fn round_trip_keeps_weights_masks_and_arch() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.safetensors");
        let mut net = lenet();
        let w = net.params["fc1.weight"].as_tensor();
        let mask = w
            .abs()
            .unwrap()
            .ge(0.05)
            .unwrap()
            .to_dtype(candle_core::DType::F32)
            .unwrap();
        net.masks.insert("fc1.weight".into(), mask);
        net.apply_masks().unwrap();
        save(&net, &serde_json::json!({"note": "test"}), &path).unwrap();
        let ck = Checkpoint::read(&path).unwrap();
        assert_eq!(ck.info["note"], "test");
        let back = ck.into_network(&Device::Cpu).unwrap();
        assert_eq!(back.arch, net.arch);
        for (k, v) in &net.params {
            assert_eq!(
                values(v.as_tensor()),
                values(back.params[k].as_tensor()),
                "{k}"
            );
        }
        assert_eq!(back.masks.len(), 1);
    }

    #[test]
    fn masks_must_be_zero_or_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.safetensors");
        let mut net = lenet();
        let w = net.params["fc3.weight"].as_tensor();
        net.masks
            .insert("fc3.weight".into(), (w.ones_like().unwrap() * 2.0).unwrap());
        save(&net, &serde_json::Value::Null, &path).unwrap();
        let e = Checkpoint::read(&path).unwrap_err().to_string();
        assert!(
            e.contains("mask/fc3.weight") && e.contains("m.safetensors"),
            "{e}"
        );
    }

    #[test]
    fn wrong_shape_and_garbage_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let net = lenet();
        // a tensor with the wrong shape
        let path = dir.path().join("bad.safetensors");
        let mut tensors: Vec<(String, Tensor)> = net
            .params
            .iter()
            .map(|(k, v)| (k.clone(), v.as_tensor().clone()))
            .collect();
        tensors[0].1 = Tensor::zeros((3, 3), candle_core::DType::F32, &Device::Cpu).unwrap();
        let bad_name = tensors[0].0.clone();
        let meta = HashMap::from([(
            ARCH_KEY.to_string(),
            serde_json::to_string(&net.arch).unwrap(),
        )]);
        let bytes =
            safetensors::serialize(tensors.iter().map(|(k, t)| (k.as_str(), t)), Some(meta))
                .unwrap();
        std::fs::write(&path, bytes).unwrap();
        let e = Checkpoint::read(&path).unwrap_err().to_string();
        assert!(
            e.contains(&bad_name) && e.contains("[3, 3]") && e.contains("bad.safetensors"),
            "{e}"
        );

        let junk = dir.path().join("junk.safetensors");
        std::fs::write(&junk, b"hello, not a model").unwrap();
        let e = Checkpoint::read(&junk).unwrap_err().to_string();
        assert!(
            e.contains("junk.safetensors") && e.contains("safetensors"),
            "{e}"
        );

        // truncated copy of a good file
        let good = dir.path().join("good.safetensors");
        save(&net, &serde_json::Value::Null, &good).unwrap();
        let bytes = std::fs::read(&good).unwrap();
        let cut = dir.path().join("cut.safetensors");
        std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
        assert!(Checkpoint::read(&cut)
            .unwrap_err()
            .to_string()
            .contains("cut.safetensors"));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(16))]

        /// Any model of the built-in families, with masks on any of its
        /// layers, comes back from a checkpoint bit for bit.
        #[test]
        fn any_model_with_masks_round_trips(
            family in 0u8..4,
            seed in 0u64..10_000,
            masked in proptest::collection::vec(proptest::prelude::any::<bool>(), 8),
            keep in 0.0f64..1.0,
        ) {
            let (spec, input) = match family {
                0 => (ModelSpec::Mlp { hidden: vec![9, 4] }, [1, 4, 4]),
                1 => (ModelSpec::Lenet5, [1, 28, 28]),
                2 => (ModelSpec::Vgg { channels: vec![3, 0, 5] }, [3, 8, 8]),
                _ => (ModelSpec::Resnet20 { width: 2 }, [3, 8, 8]),
            };
            let mut net = Network::new(spec.build(input, 3).unwrap(), seed, &Device::Cpu).unwrap();
            for (layer, _) in net.arch.layers().iter().zip(&masked).filter(|(_, m)| **m) {
                let key = format!("{}.weight", layer.name);
                let w = net.params[&key].as_tensor();
                let r = Tensor::rand(0f32, 1.0, w.dims(), &Device::Cpu).unwrap();
                let mask = r.lt(keep).unwrap().to_dtype(candle_core::DType::F32).unwrap();
                net.masks.insert(key, mask);
            }
            net.apply_masks().unwrap();
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("m.safetensors");
            save(&net, &serde_json::json!({"seed": seed}), &path).unwrap();
            let back = load(&path, &Device::Cpu).unwrap();
            proptest::prop_assert_eq!(&back.arch, &net.arch);
            for (k, v) in &net.params {
                proptest::prop_assert_eq!(values(v.as_tensor()), values(back.params[k].as_tensor()), "{}", k);
            }
            for (k, t) in &net.buffers {
                proptest::prop_assert_eq!(values(t), values(&back.buffers[k]), "{}", k);
            }
            proptest::prop_assert_eq!(net.masks.len(), back.masks.len());
            for (k, m) in &net.masks {
                proptest::prop_assert_eq!(values(m), values(&back.masks[k]), "{}", k);
            }
        }
    }
}
