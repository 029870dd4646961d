//! Fixtures for testing plugins (behind the `testing` feature): two small
//! layers with known weights, helpers to score them and compare scores, and
//! the checks every plugin factory must pass.

use crate::{
    parse_params, Criterion, CriterionFactory, Granularity, LayerKind, LayerView, PluginKind,
    PluginMeta, PluginResult, ScheduleFactory,
};

/// Weights of [`linear`]: `[2, 3]`.
pub const LIN_W: [f32; 6] = [1.0, -2.0, 3.0, -4.0, 5.0, -6.0];
/// Weights of [`conv`]: `[2, 2, 1, 2]`.
pub const CONV_W: [f32; 8] = [0.5, -1.0, 2.0, 0.0, -3.0, 1.0, 0.0, -0.25];
/// An all-kept mask, long enough for either layer.
pub const ONES: [f32; 8] = [1.0; 8];

/// A linear layer `fc` of shape `[2, 3]` with weights [`LIN_W`], nothing
/// pruned, no gradient or activations (set them on the view as a test needs).
pub fn linear(granularity: Granularity) -> LayerView<'static> {
    LayerView {
        name: "fc",
        kind: LayerKind::Linear,
        shape: &[2, 3],
        weight: &LIN_W,
        mask: &ONES[..6],
        grad: None,
        act_norms: None,
        granularity,
    }
}

/// A convolution `conv` of shape `[2, 2, 1, 2]` with weights [`CONV_W`], as
/// [`linear`].
pub fn conv(granularity: Granularity) -> LayerView<'static> {
    LayerView {
        name: "conv",
        kind: LayerKind::Conv2d,
        shape: &[2, 2, 1, 2],
        weight: &CONV_W,
        mask: &ONES,
        grad: None,
        act_norms: None,
        granularity,
    }
}

/// The scores `c` gives `layer` (panics on an error).
pub fn score(c: &mut dyn Criterion, layer: &LayerView<'_>) -> Vec<f32> {
    let mut out = vec![f32::NAN; layer.score_len()];
    c.score(layer, &mut out).unwrap();
    out
}

/// Asserts `got` equals `want` within 1e-5 per entry.
pub fn assert_close(got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{got:?} vs {want:?}");
    for (g, w) in got.iter().zip(want) {
        assert!((g - w).abs() < 1e-5, "{got:?} vs {want:?}");
    }
}

/// Checks a criterion factory as [`check_meta`] does, with the criterion kind.
pub fn check_criterion_factory(f: &CriterionFactory) -> serde_json::Value {
    check_meta(&f.meta, PluginKind::Criterion, &|p| (f.create)(p).map(drop))
}

/// Checks a schedule factory as [`check_meta`] does, with the schedule kind.
pub fn check_schedule_factory(f: &ScheduleFactory) -> serde_json::Value {
    check_meta(&f.meta, PluginKind::Schedule, &|p| (f.create)(p).map(drop))
}

/// Checks what the host relies on in a plugin's metadata and constructor, and
/// returns the parsed parameter schema. It panics, naming the plugin, unless:
/// the kind is `kind`, the version is 1.0.0 and the description is not empty;
/// the schema is an object with `additionalProperties: false` whose every
/// property has a `type`, a `description` and a `default`; the defaults, `{}`
/// and `""` are accepted and an unknown key is refused by name; and every
/// `minimum`/`maximum` is accepted while one step outside it is refused.
pub fn check_meta(
    meta: &PluginMeta,
    kind: PluginKind,
    create: &dyn Fn(&str) -> PluginResult<()>,
) -> serde_json::Value {
    let name = meta.name;
    assert_eq!(meta.kind, kind, "{name}");
    assert_eq!(meta.version, "1.0.0", "{name}");
    assert!(!meta.description.is_empty(), "{name}");
    let schema: serde_json::Value = serde_json::from_str(meta.params_schema)
        .unwrap_or_else(|e| panic!("{name}: bad schema: {e}"));
    assert_eq!(schema["type"], "object", "{name}");
    assert_eq!(schema["additionalProperties"], false, "{name}");
    let props = schema["properties"]
        .as_object()
        .unwrap_or_else(|| panic!("{name}: schema without properties"));
    for (key, p) in props {
        assert!(p["type"].is_string(), "{name}.{key}: no type");
        assert!(p["description"].is_string(), "{name}.{key}: no description");
        assert!(!p["default"].is_null(), "{name}.{key}: no default");
    }
    let defaults = schema_defaults(meta.params_schema);
    assert!(create(&defaults).is_ok(), "{name}: defaults {defaults}");
    assert!(create("{}").is_ok(), "{name}");
    assert!(create("").is_ok(), "{name}");
    let e = create(r#"{"bogus": 1}"#).err().unwrap();
    assert!(e.0.contains("bogus"), "{name}: {e}");
    for (key, p) in props {
        for (bound, outside) in [("minimum", -1.0), ("maximum", 1.0)] {
            let Some(v) = p[bound].as_f64() else { continue };
            let ok = serde_json::json!({ key.as_str(): p[bound] }).to_string();
            assert!(create(&ok).is_ok(), "{name}: {ok}");
            // Integers step by one exactly (a bound may be u64::MAX).
            let out = match (p["type"].as_str(), integer(&p[bound])) {
                (Some("integer"), Some(n)) => format!("{{\"{key}\": {}}}", n + outside as i128),
                _ => serde_json::json!({ key.as_str(): v + outside * 1e-3 }).to_string(),
            };
            assert!(create(&out).is_err(), "{name}: {out}");
        }
    }
    schema
}

fn integer(v: &serde_json::Value) -> Option<i128> {
    v.as_u64()
        .map(i128::from)
        .or_else(|| v.as_i64().map(i128::from))
}

/// The JSON object of every property's `default` in a parameter schema.
pub fn schema_defaults(schema: &str) -> String {
    let schema: serde_json::Value = serde_json::from_str(schema).expect("schema is JSON");
    let obj: serde_json::Map<_, _> = schema["properties"]
        .as_object()
        .expect("schema has properties")
        .iter()
        .map(|(k, v)| (k.clone(), v["default"].clone()))
        .collect();
    serde_json::Value::Object(obj).to_string()
}

/// Parses a schema's defaults into the parameter struct `T`, so a test can
/// check they equal `T::default()`.
pub fn parse_schema_defaults<T: serde::de::DeserializeOwned>(schema: &str) -> T {
    parse_params(&schema_defaults(schema)).expect("schema defaults parse")
}
