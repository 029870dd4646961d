//! Opening models made elsewhere: PyTorch state dicts (torchvision ResNet
//! and VGG recognised by their names, `nn.Sequential` with a layer spec)
//! and ONNX graphs, next to Shears's own checkpoints, through one [`open`].

pub mod families;
pub mod sequential;
pub mod state_dict;
pub mod torchvision;

use std::path::Path;

use candle_core::Device;
use serde::{Deserialize, Serialize};

use super::arch::{Architecture, NormChoice};
use super::checkpoint::{self, Checkpoint};
use super::network::Network;
use crate::data::InputPrep;
use crate::error::{Error, Result};
pub use state_dict::StateDict;
pub use torchvision::Recognised;

/// What opening a model needs beyond the file: the part a PyTorch state
/// dict cannot tell (the `[import]` table of a config, the import form in
/// the app, `--layers`/`--mean`/`--std` on the command line). Its mean and
/// std also fix the normalisation of a model a comparison trains itself.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ImportOptions {
    /// The layers of an `nn.Sequential`, one per module index (see
    /// [`sequential`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layers: Option<String>,
    /// Fixed normalisation mean per channel (with `std`), as the model's
    /// `transforms.Normalize` had it; absent: fitted on the training data.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mean: Option<Vec<f32>>,
    /// Fixed normalisation standard deviation per channel.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub std: Option<Vec<f32>>,
    /// The shorter side image files are resized to before the centre crop
    /// to the model's input size (torchvision's `Resize`); absent: a
    /// checkpoint's own, else just enough to cover the input size.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resize: Option<usize>,
    /// A ViT state dict's attention heads (the names cannot tell; absent:
    /// width / 64).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub heads: Option<usize>,
}

impl ImportOptions {
    /// The normalisation these options fix, if they fix one; errors when
    /// only one of `mean` and `std` is given.
    pub fn norm(&self) -> Result<Option<NormChoice>> {
        match (&self.mean, &self.std) {
            (Some(mean), Some(std)) => Ok(Some(NormChoice::Fixed {
                mean: mean.clone(),
                std: std.clone(),
            })),
            (None, None) => Ok(None),
            (Some(_), None) => Err(Error::config("import.std", "`mean` is given without `std`")),
            (None, Some(_)) => Err(Error::config(
                "import.mean",
                "`std` is given without `mean`",
            )),
        }
    }

    /// Whether nothing is set.
    pub fn is_empty(&self) -> bool {
        *self == ImportOptions::default()
    }
}

/// The file formats [`open`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModelFormat {
    /// A Shears checkpoint (safetensors with Shears's metadata).
    Shears,
    /// A PyTorch state dict (`torch.save` zip or safetensors).
    StateDict,
    /// An ONNX model (`.onnx`).
    Onnx,
}

/// A model opened from a file, with what the user should know about it.
#[derive(Debug)]
pub struct Opened {
    /// The network.
    pub net: Network,
    /// What the file was read as.
    pub format: ModelFormat,
    /// What it was recognised as: `resnet18`, `vgg16_bn`, `sequential`,
    /// or the family of a Shears checkpoint.
    pub name: String,
    /// Assumptions made while opening it (layers the names do not show,
    /// the normalisation chosen).
    pub notes: Vec<String>,
    /// The checkpoint's `shears.info` (null for other files).
    pub info: serde_json::Value,
}

/// How image files should reach the model in `path`, as far as the file
/// says before it is opened: a Shears checkpoint's input shape and resize,
/// an ONNX graph's declared input shape; `opts`'s resize over the file's.
/// A state dict (or a file that cannot be read) tells nothing.
pub fn input_prep(path: Option<&Path>, opts: &ImportOptions) -> InputPrep {
    let (input, resize) = match path {
        Some(p) if is_onnx(p) => (
            std::fs::read(p)
                .ok()
                .and_then(|b| super::onnx::declared_input(&b))
                .map(|d| d.input),
            None,
        ),
        Some(p) => match checkpoint::read_arch(p) {
            Some(arch) => (Some(arch.input), arch.preprocess.resize),
            None => (None, None),
        },
        None => (None, None),
    };
    InputPrep {
        size: input.map(|[_, h, w]| [h, w]),
        channels: input.map(|[c, _, _]| c),
        resize: opts.resize.or(resize),
    }
}

/// The architecture a state dict's names and shapes describe, for inputs
/// of shape `input`: torchvision's ResNet or VGG (as layer lists) or one
/// of the graph families (`heads`: a ViT's attention heads, which the
/// names cannot tell). `None` when the names look like none of them.
pub fn recognise(
    sd: &StateDict,
    input: [usize; 3],
    heads: Option<usize>,
) -> Option<Result<Recognised>> {
    torchvision::recognise(sd, input).or_else(|| families::recognise(sd, input, heads))
}

/// The file extensions [`open`] accepts.
pub const EXTENSIONS: [&str; 4] = ["safetensors", "pth", "pt", "onnx"];

/// Opens the model in `path`: a Shears checkpoint, or a PyTorch state dict
/// built for inputs of shape `input` (`[c, h, w]`, from the data it will
/// see). `opts` fill in what the state dict cannot tell and override a
/// checkpoint's normalisation. Errors name the file.
pub fn open(
    path: &Path,
    opts: &ImportOptions,
    input: [usize; 3],
    device: &Device,
) -> Result<Opened> {
    let in_file = |e: Error| match e {
        e @ (Error::Format { .. } | Error::Io { .. } | Error::Config { .. }) => e,
        e => Error::format(path, e.to_string()),
    };
    let norm = opts.norm()?;
    let onnx = is_onnx(path);
    if !onnx && is_shears_checkpoint(path)? {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let mut ck = Checkpoint::from_bytes(&bytes, path)?;
        if let Some(n) = norm {
            ck.arch.preprocess.norm = n;
        }
        if opts.resize.is_some() {
            ck.arch.preprocess.resize = opts.resize;
        }
        ck.arch.check().map_err(in_file)?;
        let name = ck.arch.family.name().to_string();
        let info = ck.info.clone();
        return Ok(Opened {
            net: ck.into_network(device)?,
            format: ModelFormat::Shears,
            name,
            notes: Vec::new(),
            info,
        });
    }
    if onnx {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let m = super::onnx::read(bytes, path, input)?;
        let mut arch = m.arch;
        let mut notes = m.notes;
        set_preprocess(&mut arch, norm, opts.resize, &mut notes);
        arch.check().map_err(in_file)?;
        let mut net =
            Network::from_tensors(arch, m.tensors, Default::default(), device).map_err(in_file)?;
        mask_zeros(&mut net, &mut notes)?;
        return Ok(Opened {
            net,
            format: ModelFormat::Onnx,
            name: m.name,
            notes,
            info: serde_json::Value::Null,
        });
    }
    // Read tensor by tensor (a zip by its entries, safetensors from the
    // offsets in its header): the file is never held whole next to them.
    let sd = StateDict::read(path)?;
    let mut notes = Vec::new();
    if let Some(k) = &sd.nested_key {
        notes.push(format!("the state dict is the checkpoint's `{k}` entry"));
    }
    let recognised = recognise(&sd, input, opts.heads);
    let (mut arch, name) = match (recognised, &opts.layers) {
        (_, Some(spec)) => (
            sequential::build(&sd, spec, input)?,
            "sequential".to_string(),
        ),
        (Some(r), None) => {
            let r = r.map_err(in_file)?;
            notes.extend(r.notes);
            (r.arch, r.name)
        }
        (None, None) => {
            return Err(Error::format(
                path,
                format!(
                    "a state dict Shears does not recognise ({}): it reads torchvision's \
                     ResNet, VGG, MobileNetV2 and V3, EfficientNet (B0–B7, V2), ConvNeXt, \
                     DenseNet, RegNet, ShuffleNetV2, SqueezeNet and ViT and timm's ViT by their \
                     names, other models from ONNX; for an nn.Sequential give its layers (`--layers` \
                     or `import.layers`), e.g. `flatten, linear, relu, linear`",
                    sd.describe()
                ),
            ))
        }
    };
    set_preprocess(&mut arch, norm, opts.resize, &mut notes);
    arch.check().map_err(in_file)?;
    // Every tensor must be used; integer buffers such as
    // `num_batches_tracked` were set aside in `sd.extra`. A parameter the
    // graph names differently from the source (an alias) is renamed.
    let mut tensors = sd.tensors;
    if let Some(g) = &arch.graph {
        for (ours, source) in &g.aliases {
            if let Some(t) = tensors.remove(source) {
                tensors.insert(ours.clone(), t);
            }
        }
    }
    let mut net =
        Network::from_tensors(arch, tensors, Default::default(), device).map_err(in_file)?;
    mask_zeros(&mut net, &mut notes)?;
    Ok(Opened {
        net,
        format: ModelFormat::StateDict,
        name,
        notes,
        info: serde_json::Value::Null,
    })
}

/// Sets the resize and the normalisation the options fix, or says the
/// normalisation will be fitted.
fn set_preprocess(
    arch: &mut Architecture,
    norm: Option<NormChoice>,
    resize: Option<usize>,
    notes: &mut Vec<String>,
) {
    arch.preprocess.resize = resize;
    match norm {
        Some(n) => arch.preprocess.norm = n,
        None => notes.push(
            "inputs normalised with statistics fitted on the training data; give the mean \
             and std the model was trained with (transforms.Normalize) for PyTorch's accuracy"
                .into(),
        ),
    }
}

/// Takes the weights of conv and linear layers that are exactly zero as
/// pruned: they get masks (so sparsity counts them and fine-tuning keeps
/// them zero), and a note says how many. A model pruned elsewhere, or by
/// Shears and exported, comes back as pruned as it left.
fn mask_zeros(net: &mut Network, notes: &mut Vec<String>) -> Result<()> {
    let (mut zeros, mut total) = (0usize, 0usize);
    for layer in net.arch.layers() {
        let key = format!("{}.weight", layer.name);
        let w = net.params[&key].as_tensor();
        let mask = w.ne(0f32)?.to_dtype(candle_core::DType::F32)?;
        let kept = mask.sum_all()?.to_scalar::<f32>()? as usize;
        let n = w.elem_count();
        total += n;
        if kept < n {
            zeros += n - kept;
            net.masks.insert(key, mask);
        }
    }
    if zeros > 0 {
        notes.push(format!(
            "{zeros} of {total} conv/linear weights ({:.1}%) are exactly zero: taken as pruned",
            100.0 * zeros as f64 / total.max(1) as f64
        ));
    }
    Ok(())
}

/// Whether `path` names an ONNX file (protobuf has no magic number).
fn is_onnx(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("onnx"))
}

/// What the model file at `path` is, from its content: a Shears checkpoint
/// or (anything else) a PyTorch state dict for [`open`] to read.
pub fn sniff(path: &Path) -> Result<ModelFormat> {
    Ok(if is_onnx(path) {
        ModelFormat::Onnx
    } else if is_shears_checkpoint(path)? {
        ModelFormat::Shears
    } else {
        ModelFormat::StateDict
    })
}

/// Whether the file at `path` is a safetensors file with Shears's metadata
/// (its header alone is read).
fn is_shears_checkpoint(path: &Path) -> Result<bool> {
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    Ok(match state_dict::safetensors_header(&mut f, path)? {
        Ok((_, header)) => header
            .get("__metadata__")
            .is_some_and(|m| m.get(checkpoint::ARCH_KEY).is_some()),
        Err(_) => false,
    })
}
