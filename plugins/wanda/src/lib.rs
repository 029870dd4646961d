//! Built-in Shears criterion: Wanda, pruning by weights and activations.
//!
//! [`Wanda`] (`wanda`, no parameters) scores weight `w_ij` (output `i`, input
//! `j`) by `|w_ij| · ‖x_j‖`, where `‖x_j‖` is the L2 norm of input feature `j`
//! over a calibration set (Sun, Liu, Bair & Kolter 2023, "A Simple and
//! Effective Pruning Approach for Large Language Models"). For a convolution,
//! input channel `j`'s norm multiplies all `kh · kw` weights of that input
//! channel. Unstructured: one score per weight; structured: the sum over each
//! output channel. It asks the host for activation norms
//! ([`Criterion::needs`]) and fails, naming the layer, when they are missing
//! or not of length `shape[1]`.
//!
//! Use [`factories`] to get the descriptor the host registers.

use serde::Deserialize;
use shears_plugin_api::{
    check_score_len, parse_params, Criterion, CriterionFactory, Granularity, LayerView, Needs,
    PluginError, PluginKind, PluginMeta, PluginResult,
};

/// Plugin name of [`Wanda`].
pub const WANDA_NAME: &str = "wanda";

const SCHEMA: &str = r#"{
  "type": "object",
  "properties": {},
  "additionalProperties": false
}"#;

/// The criterion factories of this crate: `wanda`.
pub fn factories() -> Vec<CriterionFactory> {
    vec![CriterionFactory {
        meta: PluginMeta {
            kind: PluginKind::Criterion,
            name: WANDA_NAME,
            version: "1.0.0",
            description: "Activation-aware magnitude |w_ij|*||x_j|| (Wanda, Sun et al. 2023); needs input activation norms",
            params_schema: SCHEMA,
        },
        create: |params| Ok(Box::new(Wanda::from_json(params)?)),
    }]
}

/// Parameters of [`Wanda`]: none.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WandaParams {}

/// Wanda criterion (`wanda`): `|w_ij| · ‖x_j‖` per weight, summed over each
/// output channel for structured pruning.
#[derive(Debug, Clone, Copy, Default)]
pub struct Wanda;

impl Wanda {
    /// Creates the criterion from its JSON parameters (only `{}` is accepted).
    pub fn from_json(params_json: &str) -> PluginResult<Self> {
        let _: WandaParams = parse_params(params_json)?;
        Ok(Self)
    }
}

impl Criterion for Wanda {
    fn needs(&self) -> Needs {
        Needs {
            gradient: false,
            activations: true,
        }
    }

    fn score(&mut self, layer: &LayerView<'_>, out: &mut [f32]) -> PluginResult<()> {
        check_score_len(layer, out)?;
        let name = layer.name;
        if layer.shape.len() < 2 {
            return Err(PluginError::new(format!(
                "layer `{name}`: weight shape {:?} has no input dimension",
                layer.shape
            )));
        }
        let inputs = layer.shape[1];
        let act = layer.act_norms.ok_or_else(|| {
            PluginError::new(format!(
                "layer `{name}`: the wanda criterion needs input activation norms, but none were given"
            ))
        })?;
        if act.len() != inputs {
            return Err(PluginError::new(format!(
                "layer `{name}`: activation norms have {} values, expected {inputs} (one per input)",
                act.len()
            )));
        }
        if let Some(j) = act.iter().position(|a| !a.is_finite() || *a < 0.0) {
            return Err(PluginError::new(format!(
                "layer `{name}`: activation norm {j} is {}, expected a finite value >= 0",
                act[j]
            )));
        }
        if let Some(i) = layer.weight.iter().position(|w| !w.is_finite()) {
            return Err(PluginError::new(format!(
                "layer `{name}`: weight {i} is not finite ({})",
                layer.weight[i]
            )));
        }

        // Weights of one input channel are contiguous blocks of `kernel` values.
        let kernel: usize = layer.shape[2..].iter().product();
        let term = |i: usize| {
            let j = (i / kernel) % inputs;
            f64::from(layer.weight[i].abs()) * f64::from(act[j])
        };
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

/// Converts a non-negative `f64` score to a finite `f32`.
fn to_score(x: f64) -> f32 {
    x.min(f64::from(f32::MAX)) as f32
}

#[cfg(test)]
mod tests {
    use super::*;
    use shears_plugin_api::testing::{self, assert_close, score};

    const LIN_X: [f32; 3] = [1.0, 2.0, 0.5];
    const CONV_X: [f32; 2] = [2.0, 10.0];

    fn linear(granularity: Granularity) -> LayerView<'static> {
        LayerView {
            act_norms: Some(&LIN_X),
            ..testing::linear(granularity)
        }
    }

    fn conv(granularity: Granularity) -> LayerView<'static> {
        LayerView {
            act_norms: Some(&CONV_X),
            ..testing::conv(granularity)
        }
    }

    fn run(layer: &LayerView<'_>) -> Vec<f32> {
        score((factories()[0].create)("{}").unwrap().as_mut(), layer)
    }

    #[test]
    fn needs_activations() {
        let c = (factories()[0].create)("{}").unwrap();
        assert!(c.needs().activations);
        assert!(!c.needs().gradient);
    }

    #[test]
    fn known_scores() {
        assert_close(
            &run(&linear(Granularity::Unstructured)),
            &[1.0, 4.0, 1.5, 4.0, 10.0, 3.0],
        );
        assert_close(&run(&linear(Granularity::StructuredChannel)), &[6.5, 17.0]);
        assert_close(
            &run(&conv(Granularity::Unstructured)),
            &[1.0, 2.0, 20.0, 0.0, 6.0, 2.0, 0.0, 2.5],
        );
        assert_close(&run(&conv(Granularity::StructuredChannel)), &[23.0, 10.5]);
    }

    #[test]
    fn conv_with_larger_kernel() {
        // [1 out, 2 in, 2, 2]: each input channel's norm covers 4 weights.
        let w = [1.0f32; 8];
        let mut v = conv(Granularity::Unstructured);
        v.shape = &[1, 2, 2, 2];
        v.weight = &w;
        assert_close(&run(&v), &[2.0, 2.0, 2.0, 2.0, 10.0, 10.0, 10.0, 10.0]);
    }

    #[test]
    fn missing_or_bad_activations_are_an_error() {
        let mut c = Wanda;
        let mut out = [0.0f32; 6];
        let mut v = linear(Granularity::Unstructured);
        v.act_norms = None;
        let e = c.score(&v, &mut out).unwrap_err();
        assert!(e.0.contains("`fc`") && e.0.contains("activation"), "{e}");
        v.act_norms = Some(&LIN_X[..2]);
        let e = c.score(&v, &mut out).unwrap_err();
        assert!(e.0.contains("`fc`") && e.0.contains("activation"), "{e}");
        v.act_norms = Some(&[1.0, f32::INFINITY, 1.0]);
        assert!(c.score(&v, &mut out).unwrap_err().0.contains("`fc`"));
        v.act_norms = Some(&[1.0, -1.0, 1.0]);
        assert!(c.score(&v, &mut out).unwrap_err().0.contains("`fc`"));
        let e = c
            .score(&conv(Granularity::StructuredChannel), &mut out)
            .unwrap_err();
        assert!(e.0.contains("`conv`"), "{e}");
        let mut v = linear(Granularity::StructuredChannel);
        v.shape = &[6];
        v.granularity = Granularity::Unstructured;
        assert!(c.score(&v, &mut out).is_err());
    }

    #[test]
    fn huge_values_give_finite_scores() {
        let big = [f32::MAX; 6];
        let mut v = linear(Granularity::StructuredChannel);
        v.weight = &big;
        v.act_norms = Some(&big[..3]);
        assert!(run(&v).iter().all(|s| s.is_finite()));
    }

    #[test]
    fn factories_are_well_formed() {
        let fs = factories();
        assert_eq!(fs.len(), 1);
        assert_eq!(fs[0].meta.name, "wanda");
        let schema = testing::check_criterion_factory(&fs[0]);
        assert!(schema["properties"].as_object().unwrap().is_empty());
    }
}

#[cfg(feature = "export")]
shears_plugin_api::export_plugins!(criteria: factories(), schedules: vec![]);
