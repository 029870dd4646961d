//! The preprocessing that belongs to a model: how images reach its input and
//! how their values are normalised. Stored with the model (in a Shears
//! checkpoint's architecture), applied to the data before training.

use serde::{Deserialize, Serialize};

use super::Normalization;
use crate::error::{Error, Result};

/// The preprocessing that belongs to a model: how images of any size are
/// brought to its input size, and how their values are normalised.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Preprocess {
    /// The shorter side images are resized to before the centre crop to
    /// the model's input size, as torchvision's `Resize(s)` then
    /// `CenterCrop(h, w)`; absent: resized just enough to cover the input
    /// size, then centre-cropped. Applies to image folders (other data
    /// comes at its size).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resize: Option<usize>,
    /// Normalisation of pixel values in `[0, 1]`.
    #[serde(default)]
    pub norm: NormChoice,
}

impl Preprocess {
    /// Whether this is the default (no resize, fitted normalisation).
    pub fn is_default(&self) -> bool {
        *self == Preprocess::default()
    }

    /// What a model trained on data normalised by `norm` (and resized to
    /// `resize`) keeps, so that it is given its inputs the same way again.
    pub fn trained_with(norm: &Normalization, resize: Option<usize>) -> Preprocess {
        Preprocess {
            resize,
            norm: NormChoice::Fixed {
                mean: norm.mean.clone(),
                std: norm.std.clone(),
            },
        }
    }

    /// Checks the normalisation (see [`NormChoice::check`]) and that a
    /// resize is between 1 and 4096 pixels.
    pub fn check(&self, channels: usize) -> Result<()> {
        if let Some(s) = self.resize.filter(|s| !(1..=4096).contains(s)) {
            return Err(Error::config(
                "preprocess.resize",
                format!("{s} is outside 1..=4096"),
            ));
        }
        self.norm.check(channels)
    }
}

/// How image files are brought to one size as they are loaded: the model's
/// input size and resize, where the model tells them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct InputPrep {
    /// `[height, width]` to centre-crop to (a data spec's own `size` wins).
    pub size: Option<[usize; 2]>,
    /// 1 or 3 channels (a data spec's own `channels` wins).
    pub channels: Option<usize>,
    /// Shorter side to resize to before the crop ([`Preprocess::resize`]).
    pub resize: Option<usize>,
}

/// How a model's inputs are normalised.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum NormChoice {
    /// Mean and standard deviation per channel fitted on the training part
    /// of the data (what Shears does for models it builds).
    #[default]
    Fitted,
    /// Fixed per-channel mean and standard deviation, as a PyTorch
    /// `transforms.Normalize(mean, std)`; one value applies to every channel.
    Fixed {
        /// Mean per channel.
        mean: Vec<f32>,
        /// Standard deviation per channel (positive).
        std: Vec<f32>,
    },
}

impl NormChoice {
    /// Checks that a fixed normalisation has one value or one per channel
    /// and positive standard deviations.
    pub fn check(&self, channels: usize) -> Result<()> {
        if let NormChoice::Fixed { mean, std } = self {
            for (what, v) in [("mean", mean), ("std", std)] {
                if v.len() != 1 && v.len() != channels {
                    return Err(Error::config(
                        format!("preprocess.{what}"),
                        format!(
                            "{} values for {channels} channels (give 1 or {channels})",
                            v.len()
                        ),
                    ));
                }
            }
            if let Some(s) = std.iter().find(|s| !(**s > 0.0 && s.is_finite())) {
                return Err(Error::config(
                    "preprocess.std",
                    format!("{s} is not a positive number"),
                ));
            }
            if let Some(m) = mean.iter().find(|m| !m.is_finite()) {
                return Err(Error::config(
                    "preprocess.mean",
                    format!("{m} is not a number"),
                ));
            }
        }
        Ok(())
    }
}
