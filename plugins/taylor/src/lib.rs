//! Built-in Shears criterion: first-order Taylor expansion.
//!
//! [`Taylor`] (`taylor`, no parameters) estimates how much the loss changes
//! when a weight is removed by `|w · g|`, `g` being the gradient of the loss
//! (Molchanov et al. 2017/2019). Unstructured: one score per weight;
//! structured: the sum of `|w · g|` over each output channel. It asks the host
//! for gradients ([`Criterion::needs`]) and fails, naming the layer, when they
//! are missing or of the wrong length.
//!
//! Use [`factories`] to get the descriptor the host registers.

use serde::Deserialize;
use shears_plugin_api::{
    check_score_len, parse_params, Criterion, CriterionFactory, Granularity, LayerView, Needs,
    PluginError, PluginKind, PluginMeta, PluginResult,
};

/// Plugin name of [`Taylor`].
pub const TAYLOR_NAME: &str = "taylor";

const SCHEMA: &str = r#"{
  "type": "object",
  "properties": {},
  "additionalProperties": false
}"#;

/// The criterion factories of this crate: `taylor`.
pub fn factories() -> Vec<CriterionFactory> {
    vec![CriterionFactory {
        meta: PluginMeta {
            kind: PluginKind::Criterion,
            name: TAYLOR_NAME,
            version: "1.0.0",
            description: "First-order Taylor importance |w*g| (structured: summed over each output channel); needs gradients",
            params_schema: SCHEMA,
        },
        create: |params| Ok(Box::new(Taylor::from_json(params)?)),
    }]
}

/// Parameters of [`Taylor`]: none.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TaylorParams {}

/// First-order Taylor criterion (`taylor`): `|w · g|` per weight, summed over
/// each output channel for structured pruning.
#[derive(Debug, Clone, Copy, Default)]
pub struct Taylor;

impl Taylor {
    /// Creates the criterion from its JSON parameters (only `{}` is accepted).
    pub fn from_json(params_json: &str) -> PluginResult<Self> {
        let _: TaylorParams = parse_params(params_json)?;
        Ok(Self)
    }
}

impl Criterion for Taylor {
    fn needs(&self) -> Needs {
        Needs {
            gradient: true,
            activations: false,
        }
    }

    fn score(&mut self, layer: &LayerView<'_>, out: &mut [f32]) -> PluginResult<()> {
        check_score_len(layer, out)?;
        let name = layer.name;
        let grad = layer.grad.ok_or_else(|| {
            PluginError::new(format!(
                "layer `{name}`: the taylor criterion needs the gradient, but none was given"
            ))
        })?;
        if grad.len() != layer.weight.len() {
            return Err(PluginError::new(format!(
                "layer `{name}`: gradient has {} values, expected {} (one per weight)",
                grad.len(),
                layer.weight.len()
            )));
        }
        check_finite(name, "weight", layer.weight)?;
        check_finite(name, "gradient", grad)?;

        let term = |i: usize| (f64::from(layer.weight[i]) * f64::from(grad[i])).abs();
        match layer.granularity {
            Granularity::Unstructured => {
                for (i, o) in out.iter_mut().enumerate() {
                    *o = to_score(term(i));
                }
            }
            Granularity::StructuredChannel => {
                let fan_in = layer.fan_in();
                for (c, o) in out.iter_mut().enumerate() {
                    *o = to_score((c * fan_in..(c + 1) * fan_in).map(term).sum());
                }
            }
        }
        Ok(())
    }
}

/// Errors, naming the layer and the input, if `values` holds a NaN or infinity.
fn check_finite(layer: &str, what: &str, values: &[f32]) -> PluginResult<()> {
    match values.iter().position(|v| !v.is_finite()) {
        None => Ok(()),
        Some(i) => Err(PluginError::new(format!(
            "layer `{layer}`: {what} {i} is not finite ({})",
            values[i]
        ))),
    }
}

/// Converts a non-negative `f64` score to a finite `f32`.
fn to_score(x: f64) -> f32 {
    x.min(f64::from(f32::MAX)) as f32
}

#[cfg(test)]
mod tests {
    use super::*;
    use shears_plugin_api::testing::{self, assert_close, score};

    const LIN_G: [f32; 6] = [0.5, 0.5, -1.0, 0.0, 2.0, 1.0];
    const CONV_G: [f32; 8] = [2.0, 1.0, -1.0, 3.0, 1.0, 4.0, 2.0, 2.0];

    fn linear(granularity: Granularity) -> LayerView<'static> {
        LayerView {
            grad: Some(&LIN_G),
            ..testing::linear(granularity)
        }
    }

    fn conv(granularity: Granularity) -> LayerView<'static> {
        LayerView {
            grad: Some(&CONV_G),
            ..testing::conv(granularity)
        }
    }

    fn run(layer: &LayerView<'_>) -> Vec<f32> {
        score((factories()[0].create)("{}").unwrap().as_mut(), layer)
    }

    #[test]
    fn needs_gradient() {
        let c = (factories()[0].create)("{}").unwrap();
        assert!(c.needs().gradient);
        assert!(!c.needs().activations);
    }

    #[test]
    fn known_scores() {
        assert_close(
            &run(&linear(Granularity::Unstructured)),
            &[0.5, 1.0, 3.0, 0.0, 10.0, 6.0],
        );
        assert_close(&run(&linear(Granularity::StructuredChannel)), &[4.5, 16.0]);
        assert_close(
            &run(&conv(Granularity::Unstructured)),
            &[1.0, 1.0, 2.0, 0.0, 3.0, 4.0, 0.0, 0.5],
        );
        assert_close(&run(&conv(Granularity::StructuredChannel)), &[4.0, 7.5]);
    }

    #[test]
    fn missing_or_bad_gradient_is_an_error() {
        let mut c = Taylor;
        let mut out = [0.0f32; 6];
        let mut v = linear(Granularity::Unstructured);
        v.grad = None;
        let e = c.score(&v, &mut out).unwrap_err();
        assert!(e.0.contains("`fc`") && e.0.contains("gradient"), "{e}");
        v.grad = Some(&LIN_G[..5]);
        let e = c.score(&v, &mut out).unwrap_err();
        assert!(e.0.contains("`fc`") && e.0.contains("gradient"), "{e}");
        let nan = [0.0, f32::NAN, 0.0, 0.0, 0.0, 0.0];
        v.grad = Some(&nan);
        assert!(c.score(&v, &mut out).unwrap_err().0.contains("`fc`"));
        // Wrong buffer length.
        let e = c
            .score(&conv(Granularity::StructuredChannel), &mut out)
            .unwrap_err();
        assert!(e.0.contains("`conv`"), "{e}");
    }

    #[test]
    fn huge_values_give_finite_scores() {
        let big = [f32::MAX; 6];
        let mut v = linear(Granularity::StructuredChannel);
        v.weight = &big;
        v.grad = Some(&big);
        assert!(run(&v).iter().all(|s| s.is_finite()));
    }

    #[test]
    fn factories_are_well_formed() {
        let fs = factories();
        assert_eq!(fs.len(), 1);
        assert_eq!(fs[0].meta.name, "taylor");
        let schema = testing::check_criterion_factory(&fs[0]);
        assert!(schema["properties"].as_object().unwrap().is_empty());
    }
}

#[cfg(feature = "export")]
shears_plugin_api::export_plugins!(criteria: factories(), schedules: vec![]);
