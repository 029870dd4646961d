//! Built-in Shears baseline criterion: random scores.
//!
//! [`Random`] (`random`, parameter `seed`) writes uniform scores in `[0, 1)`,
//! one per weight (unstructured) or per output channel (structured). The
//! scores are a pure function of the seed, the layer name and how many times
//! this instance has already scored that layer, so a run is reproducible
//! whatever else happens. The generator is SplitMix64 (no external crates);
//! each layer gets its own stream, keyed by the FNV-1a hash of its name.
//!
//! Use [`factories`] to get the descriptor the host registers.

use std::collections::HashMap;

use serde::Deserialize;
use shears_plugin_api::{
    check_score_len, parse_params, Criterion, CriterionFactory, LayerView, PluginKind, PluginMeta,
    PluginResult,
};

/// Plugin name of [`Random`].
pub const RANDOM_NAME: &str = "random";

const SCHEMA: &str = r#"{
  "type": "object",
  "properties": {
    "seed": {
      "type": "integer",
      "default": 0,
      "minimum": 0,
      "maximum": 18446744073709551615,
      "description": "Seed of the random scores; with the layer name and the call number it fixes every score"
    }
  },
  "additionalProperties": false
}"#;

/// The criterion factories of this crate: `random`.
pub fn factories() -> Vec<CriterionFactory> {
    vec![CriterionFactory {
        meta: PluginMeta {
            kind: PluginKind::Criterion,
            name: RANDOM_NAME,
            version: "1.0.0",
            description:
                "Uniform random scores in [0, 1): the baseline every criterion should beat",
            params_schema: SCHEMA,
        },
        create: |params| Ok(Box::new(Random::from_json(params)?)),
    }]
}

/// Parameters of [`Random`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RandomParams {
    /// Seed of the score streams (default 0).
    pub seed: u64,
}

/// Random criterion (`random`): uniform scores in `[0, 1)`, deterministic given
/// the seed, the layer name and the number of earlier calls for that layer on
/// this instance.
#[derive(Debug, Clone, Default)]
pub struct Random {
    /// Parameters it was created with.
    pub params: RandomParams,
    /// How many times each layer has been scored so far.
    calls: HashMap<String, u64>,
}

impl Random {
    /// Creates the criterion from its JSON parameters (`{"seed": u64}`).
    pub fn from_json(params_json: &str) -> PluginResult<Self> {
        Ok(Self::new(parse_params::<RandomParams>(params_json)?.seed))
    }

    /// Creates the criterion with the given seed.
    pub fn new(seed: u64) -> Self {
        Self {
            params: RandomParams { seed },
            calls: HashMap::new(),
        }
    }
}

impl Criterion for Random {
    fn score(&mut self, layer: &LayerView<'_>, out: &mut [f32]) -> PluginResult<()> {
        check_score_len(layer, out)?;
        let call = self.calls.entry(layer.name.to_owned()).or_insert(0);
        let mut rng = SplitMix64::new(stream_seed(self.params.seed, layer.name, *call));
        *call += 1;
        for o in out.iter_mut() {
            *o = rng.next_unit();
        }
        Ok(())
    }
}

/// FNV-1a, 64-bit.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// SplitMix64's output function: a strong 64-bit mixer.
fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Starting state of the stream for (seed, layer, call).
fn stream_seed(seed: u64, layer: &str, call: u64) -> u64 {
    let s = mix64(seed ^ 0x5eed_5eed_5eed_5eed);
    let s = mix64(s ^ fnv1a(layer.as_bytes()));
    mix64(s ^ call.wrapping_mul(0x9e37_79b9_7f4a_7c15))
}

/// SplitMix64 generator (Steele, Lea & Flood 2014).
struct SplitMix64(u64);

impl SplitMix64 {
    fn new(state: u64) -> Self {
        Self(state)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix64(self.0)
    }

    /// Uniform in `[0, 1)` with 24 random bits (exact in `f32`, never 1.0).
    fn next_unit(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 * (1.0 / (1u64 << 24) as f32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shears_plugin_api::{testing, Granularity, LayerKind};

    const W: [f32; 64] = [0.5; 64];

    fn view(name: &str, granularity: Granularity) -> LayerView<'_> {
        LayerView {
            name,
            kind: LayerKind::Linear,
            shape: &[8, 8],
            weight: &W,
            mask: &W,
            grad: None,
            act_norms: None,
            granularity,
        }
    }

    fn run(c: &mut dyn Criterion, layer: &LayerView<'_>) -> Vec<f32> {
        let mut out = vec![f32::NAN; layer.score_len()];
        c.score(layer, &mut out).unwrap();
        out
    }

    #[test]
    fn known_hashes() {
        // Reference values of FNV-1a 64 and SplitMix64 (seed 0 → first output).
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(SplitMix64::new(0).next_u64(), 0xe220_a839_7b1d_cdaf);
    }

    #[test]
    fn scores_are_uniform_in_unit_interval() {
        let mut c = Random::new(7);
        let big = [0.0f32; 4096];
        let mut v = view("fc", Granularity::Unstructured);
        v.shape = &[64, 64];
        v.weight = &big;
        v.mask = &big;
        let out = run(&mut c, &v);
        assert!(out.iter().all(|s| (0.0..1.0).contains(s)));
        let mean = out.iter().sum::<f32>() / out.len() as f32;
        assert!((mean - 0.5).abs() < 0.03, "{mean}");
        let below = out.iter().filter(|&&s| s < 0.25).count() as f32 / out.len() as f32;
        assert!((below - 0.25).abs() < 0.03, "{below}");
    }

    #[test]
    fn deterministic_per_seed_layer_and_call() {
        let mut a = Random::new(1);
        let mut b = (factories()[0].create)(r#"{"seed": 1}"#).unwrap();
        let fc = view("fc", Granularity::Unstructured);
        let conv = view("conv", Granularity::Unstructured);

        let a1 = run(&mut a, &fc);
        let a_conv = run(&mut a, &conv);
        let a2 = run(&mut a, &fc);
        // Same seed, other order of layers: the same scores per (layer, call).
        let b_conv = run(b.as_mut(), &conv);
        let b1 = run(b.as_mut(), &fc);
        let b2 = run(b.as_mut(), &fc);
        assert_eq!(a1, b1);
        assert_eq!(a2, b2);
        assert_eq!(a_conv, b_conv);
        // Different calls and different layers get different streams.
        assert_ne!(a1, a2);
        assert_ne!(a1, a_conv);
        // Different seeds differ.
        let mut c = Random::new(2);
        assert_ne!(run(&mut c, &fc), a1);
    }

    #[test]
    fn structured_gives_one_score_per_channel() {
        let mut c = Random::new(0);
        let out = run(&mut c, &view("fc", Granularity::StructuredChannel));
        assert_eq!(out.len(), 8);
        assert!(out.iter().all(|s| (0.0..1.0).contains(s)));
        let mut conv = view("conv", Granularity::StructuredChannel);
        conv.kind = LayerKind::Conv2d;
        conv.shape = &[2, 2, 1, 2];
        conv.weight = &W[..8];
        conv.mask = &W[..8];
        assert_eq!(run(&mut c, &conv).len(), 2);
        conv.granularity = Granularity::Unstructured;
        assert_eq!(run(&mut c, &conv).len(), 8);
    }

    #[test]
    fn bad_buffer_is_an_error() {
        let mut c = Random::new(0);
        let e = c
            .score(&view("fc", Granularity::StructuredChannel), &mut [0.0; 64])
            .unwrap_err();
        assert!(e.0.contains("fc"), "{e}");
        let mut v = view("fc", Granularity::Unstructured);
        v.shape = &[8, 9];
        assert!(c.score(&v, &mut [0.0; 72]).is_err());
    }

    #[test]
    fn factories_are_well_formed() {
        let fs = factories();
        assert_eq!(fs.len(), 1);
        assert_eq!(fs[0].meta.name, "random");
        let schema = testing::check_criterion_factory(&fs[0]);
        let props = schema["properties"].as_object().unwrap();
        assert_eq!(props.keys().collect::<Vec<_>>(), ["seed"]);
        let p: RandomParams = testing::parse_schema_defaults(SCHEMA);
        assert_eq!(p, RandomParams::default());
    }
}

#[cfg(feature = "export")]
shears_plugin_api::export_plugins!(criteria: factories(), schedules: vec![]);
