//! Checking a plugin's parameters against the JSON Schema it declares, so a
//! bad key or value is reported by name before the plugin sees it.
//!
//! The subset every Shears plugin schema uses: an object with `properties`,
//! `additionalProperties: false`, and per property `type` (`integer`,
//! `number`, `string`, `boolean`, `array`, `object`), `minimum`, `maximum`,
//! `enum`, and `items` for arrays. Other keywords are ignored.

use serde_json::Value;

/// Checks `params` against `schema`; the error names the offending key.
pub fn validate(schema: &Value, params: &Value) -> Result<(), String> {
    check(schema, params, "")
}

fn type_ok(ty: &str, v: &Value) -> bool {
    match ty {
        "integer" => v.is_i64() || v.is_u64() || v.as_f64().is_some_and(|f| f.fract() == 0.0),
        "number" => v.is_number(),
        "string" => v.is_string(),
        "boolean" => v.is_boolean(),
        "array" => v.is_array(),
        "object" => v.is_object(),
        "null" => v.is_null(),
        _ => true,
    }
}

fn check(schema: &Value, v: &Value, at: &str) -> Result<(), String> {
    let name = if at.is_empty() {
        "parameters".to_string()
    } else {
        format!("parameter `{at}`")
    };
    if let Some(ty) = schema.get("type") {
        let ok = match ty {
            Value::String(t) => type_ok(t, v),
            Value::Array(ts) => ts.iter().filter_map(Value::as_str).any(|t| type_ok(t, v)),
            _ => true,
        };
        if !ok {
            return Err(format!("{name} must be of type {ty}, got {v}"));
        }
    }
    if let Some(options) = schema.get("enum").and_then(Value::as_array) {
        if !options.contains(v) {
            return Err(format!(
                "{name} is {v}, expected one of {}",
                Value::Array(options.clone())
            ));
        }
    }
    if let Some(x) = v.as_f64() {
        if let Some(min) = schema.get("minimum").and_then(Value::as_f64) {
            if x < min {
                return Err(format!("{name} is {v}, below the minimum {min}"));
            }
        }
        if let Some(max) = schema.get("maximum").and_then(Value::as_f64) {
            if x > max {
                return Err(format!("{name} is {v}, above the maximum {max}"));
            }
        }
    }
    if let (Some(items), Some(arr)) = (schema.get("items"), v.as_array()) {
        for (i, item) in arr.iter().enumerate() {
            check(items, item, &format!("{at}[{i}]"))?;
        }
    }
    if let Some(obj) = v.as_object() {
        let props = schema.get("properties").and_then(Value::as_object);
        for (k, val) in obj {
            let path = if at.is_empty() {
                k.clone()
            } else {
                format!("{at}.{k}")
            };
            match props.and_then(|p| p.get(k)) {
                Some(sub) => check(sub, val, &path)?,
                None if schema.get("additionalProperties") == Some(&Value::Bool(false)) => {
                    let known: Vec<&str> = props
                        .map(|p| p.keys().map(String::as_str).collect())
                        .unwrap_or_default();
                    return Err(format!(
                        "unknown parameter `{path}` (known: {})",
                        known.join(", ")
                    ));
                }
                None => {}
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_the_offending_key() {
        let schema = json!({
            "type": "object",
            "properties": {
                "steps": {"type": "integer", "minimum": 1, "maximum": 1000},
                "norm": {"type": "string", "enum": ["l1", "l2"]},
                "fractions": {"type": "array", "items": {"type": "number", "minimum": 0, "maximum": 1}}
            },
            "additionalProperties": false
        });
        assert!(validate(&schema, &json!({})).is_ok());
        assert!(validate(
            &schema,
            &json!({"steps": 3, "norm": "l2", "fractions": [0.5, 1.0]})
        )
        .is_ok());
        let e = validate(&schema, &json!({"steps": -1})).unwrap_err();
        assert!(e.contains("`steps`") && e.contains("minimum"), "{e}");
        let e = validate(&schema, &json!({"steps": 1.5})).unwrap_err();
        assert!(e.contains("`steps`") && e.contains("integer"), "{e}");
        let e = validate(&schema, &json!({"norm": "l3"})).unwrap_err();
        assert!(e.contains("`norm`") && e.contains("l1"), "{e}");
        let e = validate(&schema, &json!({"fractions": [0.5, 2.0]})).unwrap_err();
        assert!(e.contains("`fractions[1]`"), "{e}");
        let e = validate(&schema, &json!({"stepz": 1})).unwrap_err();
        assert!(e.contains("`stepz`") && e.contains("steps"), "{e}");
        assert!(validate(&schema, &json!([1]))
            .unwrap_err()
            .contains("object"));
    }
}
