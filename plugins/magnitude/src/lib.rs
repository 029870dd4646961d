//! Built-in Shears criteria based on weight magnitude.
//!
//! * [`Magnitude`] (`magnitude`): unstructured `|w|`; structured, the L1 norm of
//!   each output channel (sum of `|w|` over `in * kh * kw`).
//! * [`ChannelNorm`] (`channel-norm`, parameter `norm` = `"l1"` | `"l2"`):
//!   structured, the L1 or L2 norm of each output channel; unstructured, `|w|`
//!   (L1) or `w²` (L2).
//!
//! Both need neither gradients nor activations. Use [`factories`] to get the
//! descriptors the host registers.

use serde::Deserialize;
use shears_plugin_api::{
    check_score_len, parse_params, Criterion, CriterionFactory, Granularity, LayerView,
    PluginError, PluginKind, PluginMeta, PluginResult,
};

/// Plugin name of [`Magnitude`].
pub const MAGNITUDE_NAME: &str = "magnitude";
/// Plugin name of [`ChannelNorm`].
pub const CHANNEL_NORM_NAME: &str = "channel-norm";

const VERSION: &str = "1.0.0";

const MAGNITUDE_SCHEMA: &str = r#"{
  "type": "object",
  "properties": {},
  "additionalProperties": false
}"#;

const CHANNEL_NORM_SCHEMA: &str = r#"{
  "type": "object",
  "properties": {
    "norm": {
      "type": "string",
      "enum": ["l1", "l2"],
      "default": "l1",
      "description": "Norm of an output channel's weights: l1 (sum of |w|) or l2 (Euclidean); unstructured scores are |w| for l1 and w^2 for l2"
    }
  },
  "additionalProperties": false
}"#;

/// The criterion factories of this crate: `magnitude` and `channel-norm`.
pub fn factories() -> Vec<CriterionFactory> {
    vec![
        CriterionFactory {
            meta: PluginMeta {
                kind: PluginKind::Criterion,
                name: MAGNITUDE_NAME,
                version: VERSION,
                description: "Weight magnitude |w| (unstructured) or L1 norm of each output channel (structured)",
                params_schema: MAGNITUDE_SCHEMA,
            },
            create: |params| Ok(Box::new(Magnitude::from_json(params)?)),
        },
        CriterionFactory {
            meta: PluginMeta {
                kind: PluginKind::Criterion,
                name: CHANNEL_NORM_NAME,
                version: VERSION,
                description: "L1 or L2 norm of each output channel (structured); |w| or w^2 per weight (unstructured)",
                params_schema: CHANNEL_NORM_SCHEMA,
            },
            create: |params| Ok(Box::new(ChannelNorm::from_json(params)?)),
        },
    ]
}

/// Parameters of [`Magnitude`]: none.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MagnitudeParams {}

/// Magnitude criterion (`magnitude`): `|w|` per weight, or the L1 norm of each
/// output channel for structured pruning.
#[derive(Debug, Clone, Copy, Default)]
pub struct Magnitude;

impl Magnitude {
    /// Creates the criterion from its JSON parameters (only `{}` is accepted).
    pub fn from_json(params_json: &str) -> PluginResult<Self> {
        let _: MagnitudeParams = parse_params(params_json)?;
        Ok(Self)
    }
}

impl Criterion for Magnitude {
    fn score(&mut self, layer: &LayerView<'_>, out: &mut [f32]) -> PluginResult<()> {
        fill_scores(layer, out, |w| f64::from(w.abs()), |sum| sum)
    }
}

/// Which norm [`ChannelNorm`] uses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Norm {
    /// Sum of absolute values.
    #[default]
    L1,
    /// Euclidean norm.
    L2,
}

/// Parameters of [`ChannelNorm`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChannelNormParams {
    /// `"l1"` (default) or `"l2"`.
    pub norm: Norm,
}

/// Channel-norm criterion (`channel-norm`): L1 or L2 norm of each output
/// channel (structured); `|w|` (L1) or `w²` (L2) per weight (unstructured).
#[derive(Debug, Clone, Copy, Default)]
pub struct ChannelNorm {
    /// Parameters it was created with.
    pub params: ChannelNormParams,
}

impl ChannelNorm {
    /// Creates the criterion from its JSON parameters (`{"norm": "l1" | "l2"}`).
    pub fn from_json(params_json: &str) -> PluginResult<Self> {
        Ok(Self {
            params: parse_params(params_json)?,
        })
    }
}

impl Criterion for ChannelNorm {
    fn score(&mut self, layer: &LayerView<'_>, out: &mut [f32]) -> PluginResult<()> {
        match self.params.norm {
            Norm::L1 => fill_scores(layer, out, |w| f64::from(w.abs()), |sum| sum),
            Norm::L2 => fill_scores(layer, out, |w| f64::from(w) * f64::from(w), f64::sqrt),
        }
    }
}

/// Checks the buffer and the weights, then writes `per_weight(w)` for every
/// weight (unstructured) or `per_channel(sum of per_weight over the channel)`
/// for every output channel (structured). Sums are taken in `f64` and clamped
/// to the largest finite `f32`, so scores are always finite.
fn fill_scores(
    layer: &LayerView<'_>,
    out: &mut [f32],
    per_weight: impl Fn(f32) -> f64,
    per_channel: impl Fn(f64) -> f64,
) -> PluginResult<()> {
    check_score_len(layer, out)?;
    if let Some(i) = layer.weight.iter().position(|w| !w.is_finite()) {
        return Err(PluginError::new(format!(
            "layer `{}`: weight {i} is not finite ({})",
            layer.name, layer.weight[i]
        )));
    }
    match layer.granularity {
        Granularity::Unstructured => {
            for (o, &w) in out.iter_mut().zip(layer.weight) {
                *o = to_score(per_weight(w));
            }
        }
        Granularity::StructuredChannel => {
            let fan_in = layer.fan_in();
            for (c, o) in out.iter_mut().enumerate() {
                let channel = &layer.weight[c * fan_in..(c + 1) * fan_in];
                let sum: f64 = channel.iter().map(|&w| per_weight(w)).sum();
                *o = to_score(per_channel(sum));
            }
        }
    }
    Ok(())
}

/// Converts a non-negative `f64` score to a finite `f32`.
fn to_score(x: f64) -> f32 {
    x.min(f64::from(f32::MAX)) as f32
}

#[cfg(test)]
mod tests {
    use super::*;
    use shears_plugin_api::testing::{self, assert_close, conv, linear, score as run};

    fn create(name: &str, params: &str) -> Box<dyn Criterion> {
        let f = factories()
            .into_iter()
            .find(|f| f.meta.name == name)
            .unwrap();
        (f.create)(params).unwrap()
    }

    #[test]
    fn magnitude_linear_and_conv() {
        let mut c = create("magnitude", "{}");
        assert_eq!(c.needs(), Default::default());
        assert_close(
            &run(c.as_mut(), &linear(Granularity::Unstructured)),
            &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
        );
        assert_close(
            &run(c.as_mut(), &linear(Granularity::StructuredChannel)),
            &[6.0, 15.0],
        );
        assert_close(
            &run(c.as_mut(), &conv(Granularity::Unstructured)),
            &[0.5, 1.0, 2.0, 0.0, 3.0, 1.0, 0.0, 0.25],
        );
        assert_close(
            &run(c.as_mut(), &conv(Granularity::StructuredChannel)),
            &[3.5, 4.25],
        );
    }

    #[test]
    fn channel_norm_l1_and_l2() {
        let mut l1 = create("channel-norm", "{}");
        assert_close(
            &run(l1.as_mut(), &linear(Granularity::StructuredChannel)),
            &[6.0, 15.0],
        );
        assert_close(
            &run(l1.as_mut(), &conv(Granularity::StructuredChannel)),
            &[3.5, 4.25],
        );
        assert_close(
            &run(l1.as_mut(), &linear(Granularity::Unstructured)),
            &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
        );

        let mut l2 = create("channel-norm", r#"{"norm": "l2"}"#);
        assert_close(
            &run(l2.as_mut(), &linear(Granularity::StructuredChannel)),
            &[14f32.sqrt(), 77f32.sqrt()],
        );
        assert_close(
            &run(l2.as_mut(), &conv(Granularity::StructuredChannel)),
            &[5.25f32.sqrt(), 10.0625f32.sqrt()],
        );
        assert_close(
            &run(l2.as_mut(), &linear(Granularity::Unstructured)),
            &[1.0, 4.0, 9.0, 16.0, 25.0, 36.0],
        );
        assert_close(
            &run(l2.as_mut(), &conv(Granularity::Unstructured)),
            &[0.25, 1.0, 4.0, 0.0, 9.0, 1.0, 0.0, 0.0625],
        );
    }

    #[test]
    fn bad_norm_is_rejected() {
        let f = &factories()[1];
        let e = (f.create)(r#"{"norm": "l3"}"#).err().unwrap();
        assert!(e.0.contains("l3"), "{e}");
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        for f in factories() {
            let mut c = (f.create)("{}").unwrap();
            let mut short = [0.0f32; 5];
            let e = c
                .score(&linear(Granularity::Unstructured), &mut short)
                .unwrap_err();
            assert!(e.0.contains("fc"), "{e}");
            let mut three = [0.0f32; 3];
            assert!(c
                .score(&conv(Granularity::StructuredChannel), &mut three)
                .is_err());
            let mut view = linear(Granularity::Unstructured);
            view.shape = &[3, 3];
            assert!(c.score(&view, &mut [0.0; 9]).is_err());
            let nan = [1.0, f32::NAN, 0.0, 0.0, 0.0, 0.0];
            let mut view = linear(Granularity::StructuredChannel);
            view.weight = &nan;
            assert!(c.score(&view, &mut [0.0; 2]).is_err());
        }
    }

    #[test]
    fn huge_weights_give_finite_scores() {
        let big = [f32::MAX; 6];
        let mut view = linear(Granularity::StructuredChannel);
        view.weight = &big;
        for f in factories() {
            for params in ["{}", r#"{"norm":"l2"}"#] {
                let Ok(mut c) = (f.create)(params) else {
                    continue;
                };
                let out = run(c.as_mut(), &view);
                assert!(out.iter().all(|s| s.is_finite()), "{out:?}");
            }
        }
    }

    #[test]
    fn factories_are_well_formed() {
        let fs = factories();
        assert_eq!(
            fs.iter().map(|f| f.meta.name).collect::<Vec<_>>(),
            ["magnitude", "channel-norm"]
        );
        for f in &fs {
            testing::check_criterion_factory(f);
        }
        let p: ChannelNormParams = testing::parse_schema_defaults(CHANNEL_NORM_SCHEMA);
        assert_eq!(p, ChannelNormParams::default());
    }
}

#[cfg(feature = "export")]
shears_plugin_api::export_plugins!(criteria: factories(), schedules: vec![]);
