//! Entry widgets the views share: comma-separated list fields that report
//! text that does not parse (per form, for a status line), their entry
//! parsers, and the plugin picker.

use std::collections::BTreeMap;

use eframe::egui::{self, Ui};

/// Parses one entry of a list field, or says why not.
pub type Parse<T> = fn(&str) -> Result<T, String>;

/// Any `FromStr` value.
pub fn plain<T: std::str::FromStr>(t: &str) -> Result<T, String> {
    t.parse().map_err(|_| format!("`{t}` is not a valid value"))
}

/// A sparsity: `0.5` or `50%`.
pub fn fraction(t: &str) -> Result<f32, String> {
    let (num, scale) = match t.strip_suffix('%') {
        Some(n) => (n.trim(), 100.0),
        None => (t, 1.0),
    };
    num.parse::<f32>()
        .map(|v| v / scale)
        .map_err(|_| format!("`{t}` is not a number (0.5 or 50%)"))
}

/// The temp-data key of a form's parse errors (label -> why).
fn errors_id(form: &str) -> egui::Id {
    egui::Id::unique(("field-errors", form))
}

/// Why a field of `form` does not parse, if one does not (its value keeps
/// the last good one meanwhile). The fields report again as they are drawn,
/// so the errors of fields no longer shown go: this reads the last frame's
/// and starts afresh.
pub fn field_error(ui: &Ui, form: &str) -> Option<String> {
    let errors: BTreeMap<String, String> = ui
        .data_mut(|d| d.remove_temp(errors_id(form)))
        .unwrap_or_default();
    errors
        .into_iter()
        .next()
        .map(|(label, why)| format!("{label}: {why}"))
}

/// A comma-separated list field of `form` labelled `label`; text that does
/// not parse is shown in red, reported to [`field_error`], and the old value
/// is kept until it parses.
pub fn list_field<T: ToString + Clone + Send + Sync + 'static>(
    ui: &mut Ui,
    form: &str,
    label: &str,
    values: &mut Vec<T>,
    hint: &str,
    parse: Parse<T>,
) -> egui::Response {
    let key = ui.scope_id().with(label);
    let current = values
        .iter()
        .map(T::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    let mut text = ui
        .data_mut(|d| d.get_temp::<String>(key))
        .unwrap_or(current);
    let parse_all = |text: &str| -> Result<Vec<T>, String> {
        text.split(',')
            .filter(|t| !t.trim().is_empty())
            .map(|t| parse(t.trim()))
            .collect()
    };
    let bad = parse_all(&text).is_err();
    let mut edit = egui::TextEdit::singleline(&mut text).hint_text(hint);
    if bad {
        edit = edit.text_color(ui.visuals().error_fg_color);
    }
    let r = ui.add(edit);
    let parsed = parse_all(&text);
    if r.changed() {
        if let Ok(v) = &parsed {
            *values = v.clone();
        }
    }
    ui.data_mut(|d| {
        let errors: &mut BTreeMap<String, String> = d.get_temp_mut_or_default(errors_id(form));
        match &parsed {
            Err(why) => {
                errors.insert(label.to_string(), why.clone());
            }
            Ok(_) => {
                errors.remove(label);
            }
        }
    });
    if r.has_focus() || parsed.is_err() {
        ui.data_mut(|d| d.insert_temp(key, text));
    } else {
        ui.data_mut(|d| d.remove::<String>(key));
    }
    r
}

/// A labelled combo box of plugin `names`; returns whether `value` changed.
pub fn plugin_combo(ui: &mut Ui, label: &str, value: &mut String, names: &[&str]) -> bool {
    let mut changed = false;
    let l = ui.label(label);
    egui::ComboBox::from_id_salt(label)
        .selected_text(value.as_str())
        .show_ui(ui, |ui| {
            for n in names {
                if ui.selectable_label(*n == value.as_str(), *n).clicked() && *n != value.as_str() {
                    *value = n.to_string();
                    changed = true;
                }
            }
        })
        .response
        .labelled_by(l.id);
    changed
}

/// A path field beside a dialog button: the path can be typed or pasted and
/// is opened (as a drop would) on Enter or with **Open**; `browse` is the
/// dialog button's text and purpose. Shows `current` until edited.
pub fn path_entry(
    ui: &mut Ui,
    label: &str,
    current: Option<&std::path::Path>,
    browse: (&str, crate::gui::files::DialogPurpose),
    actions: &mut Vec<crate::gui::command::Action>,
) {
    use crate::gui::command::Action;
    let current = current.map(|p| p.display().to_string()).unwrap_or_default();
    let current = current.as_str();
    let id = egui::Id::unique(("path-entry", label, current));
    let mut text: String = ui
        .data_mut(|d| d.get_temp(id))
        .unwrap_or_else(|| current.to_string());
    ui.horizontal(|ui| {
        let l = ui.label(label);
        let r = ui
            .add(
                egui::TextEdit::singleline(&mut text)
                    .hint_text("type or paste a path")
                    .desired_width(320.0),
            )
            .labelled_by(l.id);
        let enter = r.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
        let edited = text.trim() != current;
        if ui
            .add_enabled(
                edited && !text.trim().is_empty(),
                egui::Button::new(format!("Open {label}")),
            )
            .on_hover_text(format!("open the {label} typed here"))
            .clicked()
            || (enter && edited)
        {
            actions.push(Action::OpenPath(text.trim().into()));
        }
        if ui.button(browse.0).clicked() {
            actions.push(Action::dialog(browse.1, String::new()));
        }
    });
    ui.data_mut(|d| d.insert_temp(id, text));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparsities_are_fractions_or_percents() {
        assert_eq!(fraction("0.5"), Ok(0.5));
        assert_eq!(fraction("90%"), Ok(0.9));
        assert_eq!(fraction("95 %"), Ok(0.95));
        let e = fraction("abc").unwrap_err();
        assert!(e.contains("`abc`") && e.contains("50%"), "{e}");
        assert!(plain::<u64>("x").unwrap_err().contains("`x`"));
    }
}
