//! The preprocessing that belongs to a model: how images reach its input and
//! how their values are normalised. Stored with the model (in a Shears
//! checkpoint's architecture), applied to the data before training.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The preprocessing that belongs to a model: how its inputs are
/// normalised (images reach it at its input size).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Preprocess {
    /// Normalisation of pixel values in `[0, 1]`.
    #[serde(default)]
    pub norm: NormChoice,
}

impl Preprocess {
    /// Whether this is the default (fitted normalisation).
    pub fn is_default(&self) -> bool {
        *self == Preprocess::default()
    }
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
