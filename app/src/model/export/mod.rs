//! Models out: a network's state dict with the names its layers have (the
//! original PyTorch names for imported models), as safetensors or as a
//! `torch.save` file that `model.load_state_dict(..., strict=True)`
//! accepts. Masked weights are zeros; a compacted model has its new shapes,
//! with every layer's width in the safetensors metadata to rebuild it.

pub mod pth;

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};

use super::arch::compile::compile;
use super::graph::{Op, Role};
use super::network::Network;
use crate::error::{Error, Result};

/// Metadata key of the layer widths in an exported safetensors file.
pub const WIDTHS_KEY: &str = "shears.widths";

/// The formats a model can be saved in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ExportFormat {
    /// A Shears checkpoint (architecture, masks and preprocessing inside).
    Shears,
    /// A PyTorch state dict as safetensors.
    Safetensors,
    /// A PyTorch state dict as `torch.save` writes it.
    Pth,
    /// An ONNX model (opset 13).
    Onnx,
}

impl ExportFormat {
    /// Every format, as the app offers them.
    pub const ALL: [ExportFormat; 4] = [Self::Shears, Self::Safetensors, Self::Pth, Self::Onnx];

    /// The format a file name asks for: `.pth`/`.pt` is PyTorch's,
    /// `.safetensors` a Shears checkpoint unless `torch` is set.
    pub fn from_path(path: &Path, torch: bool) -> Result<Self> {
        match path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("pth" | "pt") => Ok(Self::Pth),
            Some("onnx") => Ok(Self::Onnx),
            Some("safetensors") if torch => Ok(Self::Safetensors),
            Some("safetensors") => Ok(Self::Shears),
            _ => Err(Error::config(
                "--out",
                format!(
                    "`{}`: use a .safetensors, .pth or .pt file name",
                    path.display()
                ),
            )),
        }
    }

    /// What the app's menu says.
    pub fn label(self) -> &'static str {
        match self {
            Self::Shears => "Shears checkpoint (.safetensors)",
            Self::Safetensors => "PyTorch state dict (.safetensors)",
            Self::Pth => "PyTorch state dict (.pth)",
            Self::Onnx => "ONNX (.onnx)",
        }
    }

    /// The file extension.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Pth => "pth",
            Self::Onnx => "onnx",
            _ => "safetensors",
        }
    }
}

/// The state dict of `net` in PyTorch's order (each layer's weight, bias,
/// then BatchNorm's running statistics and `num_batches_tracked`, 0), on
/// the CPU, masked weights as zeros.
pub fn state_dict(net: &Network) -> Result<Vec<(String, Tensor)>> {
    let mut out = Vec::new();
    let mut missing = None;
    let mut get = |key: String, out: &mut Vec<(String, Tensor)>| {
        let t = net
            .params
            .get(&key)
            .map(|v| v.as_tensor().clone())
            .or_else(|| net.buffers.get(&key).cloned());
        match t {
            Some(t) => out.push((key, t)),
            None => missing = Some(key),
        }
    };
    // Parameters and buffers in graph order (each layer's weight, bias,
    // then a BatchNorm's statistics), `num_batches_tracked` after each
    // BatchNorm's; constants the graph computes with are not state.
    let graph = compile(&net.arch)?;
    for n in &graph.nodes {
        match &n.op {
            Op::Param { role } if *role != Role::Constant => {
                get(n.name.clone(), &mut out);
                if let (Some(alias), Some(last)) = (graph.aliases.get(&n.name), out.last_mut()) {
                    last.0 = alias.clone();
                }
            }
            Op::BatchNorm { .. } => {
                let var = &graph.value(n.inputs[4]).name;
                let var = graph.aliases.get(var).unwrap_or(var);
                let prefix = var.strip_suffix(".running_var").unwrap_or(var);
                out.push((
                    format!("{prefix}.num_batches_tracked"),
                    Tensor::new(0i64, &Device::Cpu).expect("a scalar on the CPU"),
                ));
            }
            _ => {}
        }
    }
    if let Some(k) = missing {
        return Err(Error::Shape(format!("the network has no tensor `{k}`")));
    }
    out.into_iter()
        .map(|(k, t)| {
            let t = t.to_device(&Device::Cpu)?;
            let t = if t.dtype() == DType::I64 {
                t
            } else {
                t.to_dtype(DType::F32)?
            };
            Ok((k, t))
        })
        .collect()
}

/// Output width of every conv and linear layer (what rebuilding a compacted
/// model in PyTorch needs), by name.
pub fn widths(net: &Network) -> Vec<(String, usize)> {
    net.arch
        .layers()
        .into_iter()
        .map(|l| (l.name, l.weight_shape[0]))
        .collect()
}

/// Writes `net` as a PyTorch state dict to `path` (atomically), as
/// safetensors or `torch.save`'s format.
pub fn save_state_dict(net: &Network, format: ExportFormat, path: &Path) -> Result<()> {
    let tensors = state_dict(net)?;
    let bytes = match format {
        ExportFormat::Pth => pth::to_bytes(&tensors)?,
        ExportFormat::Safetensors => {
            let widths: serde_json::Map<String, serde_json::Value> = widths(net)
                .into_iter()
                .map(|(k, w)| (k, w.into()))
                .collect();
            let meta = HashMap::from([(
                WIDTHS_KEY.to_string(),
                serde_json::Value::Object(widths).to_string(),
            )]);
            safetensors::serialize(tensors.iter().map(|(k, t)| (k.as_str(), t)), Some(meta))
                .map_err(|e| Error::format(path, format!("cannot serialise: {e}")))?
        }
        ExportFormat::Shears | ExportFormat::Onnx => {
            return Err(Error::config(
                "format",
                format!("{} is not a state dict (use export::save)", format.label()),
            ))
        }
    };
    crate::fsutil::write_atomic(path, &bytes)
}

/// Saves `net` in `format`: a Shears checkpoint (with `info`) or a PyTorch
/// state dict.
pub fn save(
    net: &Network,
    format: ExportFormat,
    info: &serde_json::Value,
    path: &Path,
) -> Result<()> {
    match format {
        ExportFormat::Shears => super::checkpoint::save(net, info, path),
        ExportFormat::Onnx => super::onnx::save(net, path),
        f => save_state_dict(net, f, path),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::import::StateDict;
    use crate::model::testutil::values;
    use crate::model::ModelSpec;

    #[test]
    fn a_pth_written_here_reads_back_with_every_tensor() {
        let arch = ModelSpec::Resnet20 { width: 2 }
            .build([3, 8, 8], 3)
            .unwrap();
        let net = Network::new(arch, 1, &Device::Cpu).unwrap();
        let dir = tempfile::tempdir().unwrap();
        for format in [ExportFormat::Pth, ExportFormat::Safetensors] {
            let path = dir.path().join(format!("m.{}", format.extension()));
            save_state_dict(&net, format, &path).unwrap();
            let sd = StateDict::read(&path).unwrap();
            assert_eq!(
                sd.tensors.len(),
                net.params.len() + net.buffers.len(),
                "{format:?}"
            );
            assert!(sd.extra.contains_key("bn1.num_batches_tracked"));
            for (k, v) in &net.params {
                assert_eq!(
                    values(v.as_tensor()),
                    values(&sd.tensors[k]),
                    "{format:?} {k}"
                );
            }
        }
    }
}
