//! `obd`: an Optimal Brain Damage style saliency (LeCun, Denker & Solla,
//! 1990) as an out-of-tree Shears plugin.
//!
//! OBD ranks a weight by the loss increase its removal causes under a
//! diagonal quadratic model: `s = 1/2 * h * w^2` with `h` the diagonal of the
//! Hessian. Like most practical variants, this one approximates `h` by the
//! empirical Fisher information, `g^2`, from the gradient the host
//! accumulates over a few training batches, plus a `damping` term so that
//! weights with a vanishing gradient still rank by magnitude:
//! `s = 1/2 * (g^2 + damping) * w^2`. Structured scores sum over the channel.

use serde::Deserialize;
use shears_plugin_api::{
    check_range, check_score_len, parse_params, Criterion, CriterionFactory, Granularity,
    LayerView, Needs, PluginError, PluginKind, PluginMeta, PluginResult,
};

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Params {
    damping: f32,
}

impl Default for Params {
    fn default() -> Self {
        Self { damping: 1e-8 }
    }
}

const SCHEMA: &str = r#"{
  "type": "object",
  "properties": {
    "damping": {"type": "number", "default": 1e-8, "minimum": 0, "maximum": 1,
                "description": "added to the Fisher diagonal g^2"}
  },
  "additionalProperties": false
}"#;

struct Obd {
    damping: f32,
}

impl Criterion for Obd {
    fn needs(&self) -> Needs {
        Needs {
            gradient: true,
            activations: false,
        }
    }

    fn score(&mut self, layer: &LayerView<'_>, out: &mut [f32]) -> PluginResult<()> {
        check_score_len(layer, out)?;
        let g = layer.grad.ok_or_else(|| {
            PluginError(format!("layer `{}`: obd needs the gradient", layer.name))
        })?;
        let saliency =
            |i: usize| 0.5 * (g[i] * g[i] + self.damping) * layer.weight[i] * layer.weight[i];
        match layer.granularity {
            Granularity::Unstructured => out
                .iter_mut()
                .enumerate()
                .for_each(|(i, o)| *o = saliency(i)),
            Granularity::StructuredChannel => {
                let f = layer.fan_in();
                for (c, o) in out.iter_mut().enumerate() {
                    *o = (c * f..(c + 1) * f).map(saliency).sum();
                }
            }
        }
        if out.iter().any(|v| !v.is_finite()) {
            return Err(PluginError(format!(
                "layer `{}`: saliency overflowed",
                layer.name
            )));
        }
        Ok(())
    }
}

fn create(params: &str) -> PluginResult<Box<dyn Criterion>> {
    let p: Params = parse_params(params)?;
    check_range("damping", p.damping, 0.0, 1.0)?;
    Ok(Box::new(Obd { damping: p.damping }))
}

shears_plugin_api::export_plugins!(
    criteria: vec![CriterionFactory {
        meta: PluginMeta {
            kind: PluginKind::Criterion,
            name: "obd",
            version: "0.1.0",
            description: "Optimal Brain Damage saliency 1/2 (g^2 + damping) w^2 (empirical Fisher diagonal)",
            params_schema: SCHEMA,
        },
        create,
    }],
    schedules: vec![],
);
