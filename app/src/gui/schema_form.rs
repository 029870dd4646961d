//! Parameter forms generated from a plugin's JSON Schema: one row per
//! property, with the widget its type calls for (integer and number fields
//! bounded by `minimum` / `maximum`, check boxes, choice boxes for `enum`,
//! comma-separated lists for arrays of numbers, JSON text otherwise). A key
//! that is not set shows the schema's default; "reset" removes it again.

use eframe::egui::{self, Ui};
use serde_json::{Map, Value};

use crate::plugins::schema;

/// Draws the form for `schema` editing `params` (a JSON object); `id`
/// keeps widget state apart between forms. A key that is not set shows its
/// value in `defaults` (what the host fills in), else the schema's default.
/// Returns whether anything changed.
pub fn schema_form(
    ui: &mut Ui,
    id: &str,
    schema: &Value,
    params: &mut Value,
    defaults: &Value,
) -> bool {
    if !schema.is_object() {
        ui.colored_label(
            ui.visuals().error_fg_color,
            "the plugin's parameter schema is not a valid JSON object",
        );
        return false;
    }
    if !params.is_object() {
        *params = Value::Object(Map::new());
    }
    let Some(props) = schema.get("properties").and_then(Value::as_object) else {
        ui.weak("no parameters");
        return false;
    };
    let mut changed = false;
    egui::Grid::new(("schema-form", id))
        .num_columns(3)
        .spacing([8.0, 4.0])
        .show(ui, |ui| {
            for (key, prop) in props {
                let obj = params.as_object_mut().expect("made an object above");
                let label = ui.label(key);
                let label_id = label.id;
                if let Some(d) = prop.get("description").and_then(Value::as_str) {
                    label.on_hover_text(d);
                }
                let default = defaults
                    .get(key)
                    .or_else(|| prop.get("default"))
                    .cloned()
                    .unwrap_or(Value::Null);
                let set = obj.contains_key(key);
                let mut value = obj.get(key).cloned().unwrap_or_else(|| default.clone());
                let edited = ui
                    .push_id(key, |ui| field(ui, prop, &mut value))
                    .inner
                    .labelled_by(label_id);
                if edited.changed() {
                    obj.insert(key.clone(), value);
                    changed = true;
                }
                if set {
                    if ui
                        .small_button("reset")
                        .on_hover_text("back to the default")
                        .clicked()
                    {
                        obj.remove(key);
                        changed = true;
                    }
                } else {
                    ui.weak("default");
                }
                ui.end_row();
            }
        });
    if let Err(e) = schema::validate(schema, params) {
        ui.colored_label(ui.visuals().error_fg_color, e);
    }
    changed
}

fn bounds(prop: &Value) -> (f64, f64) {
    let lo = prop
        .get("minimum")
        .and_then(Value::as_f64)
        .unwrap_or(f64::MIN);
    let hi = prop
        .get("maximum")
        .and_then(Value::as_f64)
        .unwrap_or(f64::MAX);
    (lo, hi)
}

fn field(ui: &mut Ui, prop: &Value, value: &mut Value) -> egui::Response {
    let ty = prop.get("type").and_then(Value::as_str).unwrap_or("");
    if let Some(options) = prop.get("enum").and_then(Value::as_array) {
        let mut changed = false;
        let shown = value.to_string();
        let mut r = egui::ComboBox::from_id_salt("enum")
            .selected_text(value.as_str().map(str::to_string).unwrap_or(shown))
            .show_ui(ui, |ui| {
                for o in options {
                    let text = o
                        .as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| o.to_string());
                    if ui.selectable_label(o == value, text).clicked() {
                        *value = o.clone();
                        changed = true;
                    }
                }
            })
            .response;
        if changed {
            r.mark_changed();
        }
        return r;
    }
    match ty {
        "integer" => {
            let (lo, hi) = bounds(prop);
            let mut v = value.as_i64().unwrap_or(0);
            let r = ui.add(
                egui::DragValue::new(&mut v)
                    .clamp_existing_to_range(false)
                    .range(lo.max(i64::MIN as f64) as i64..=hi.min(i64::MAX as f64) as i64),
            );
            if r.changed() {
                *value = Value::from(v);
            }
            r
        }
        "number" => {
            let (lo, hi) = bounds(prop);
            let mut v = value.as_f64().unwrap_or(0.0);
            let speed = if hi - lo <= 10.0 { 0.01 } else { 0.1 };
            let r = ui.add(
                egui::DragValue::new(&mut v)
                    .clamp_existing_to_range(false)
                    .range(lo..=hi)
                    .speed(speed)
                    .max_decimals(4),
            );
            if r.changed() {
                *value = Value::from(v);
            }
            r
        }
        "boolean" => {
            let mut v = value.as_bool().unwrap_or(false);
            let r = ui.checkbox(&mut v, "");
            if r.changed() {
                *value = Value::from(v);
            }
            r
        }
        "string" => {
            let mut v = value.as_str().unwrap_or("").to_string();
            let r = ui.text_edit_singleline(&mut v);
            if r.changed() {
                *value = Value::from(v);
            }
            r
        }
        "array" if prop.pointer("/items/type").and_then(Value::as_str) == Some("number") => {
            list_field(ui, value)
        }
        _ => json_field(ui, value),
    }
}

/// Numbers as `0.5, 0.75, 1`; text that does not parse keeps the old value
/// and is shown in the error colour.
fn list_field(ui: &mut Ui, value: &mut Value) -> egui::Response {
    let current = value
        .as_array()
        .map(|a| {
            a.iter()
                .map(|v| v.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default();
    text_buffer_field(ui, value, current, |text| {
        text.split(',')
            .map(|t| t.trim().parse::<f64>().ok().map(Value::from))
            .collect::<Option<Vec<_>>>()
            .map(Value::Array)
    })
}

fn json_field(ui: &mut Ui, value: &mut Value) -> egui::Response {
    let current = value.to_string();
    text_buffer_field(ui, value, current, |text| serde_json::from_str(text).ok())
}

/// A text field whose buffer lives in egui's memory while it is being edited,
/// committed to `value` whenever it parses.
fn text_buffer_field(
    ui: &mut Ui,
    value: &mut Value,
    current: String,
    parse: impl Fn(&str) -> Option<Value>,
) -> egui::Response {
    let id = ui.scope_id().with("text-buffer");
    let mut text: String = ui.data_mut(|d| d.get_temp::<String>(id)).unwrap_or(current);
    let parsed = parse(&text);
    let mut edit = egui::TextEdit::singleline(&mut text);
    if parsed.is_none() {
        edit = edit.text_color(ui.visuals().error_fg_color);
    }
    let mut r = ui.add(edit);
    let mut committed = false;
    if r.changed() {
        if let Some(v) = parse(&text) {
            *value = v;
            committed = true;
        }
    }
    if r.has_focus() {
        ui.data_mut(|d| d.insert_temp(id, text));
    } else {
        ui.data_mut(|d| d.remove::<String>(id));
    }
    if !committed {
        // Text that does not parse changes nothing.
        r.flags.remove(egui::response::Flags::CHANGED);
    }
    r
}
