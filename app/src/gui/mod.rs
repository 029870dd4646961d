//! The desktop app (eframe/egui, behind the default `gui` feature). It drives
//! the same engine as the CLI: views draw plain state and send commands, a
//! worker thread owns the comparison ([`worker`]), settings persist between
//! sessions ([`state`]).

pub mod app;
pub mod command;
pub mod dialogs;
pub mod files;
pub mod job;
pub mod schema_form;
pub mod sensitivity_worker;
pub mod state;
pub mod views;
pub mod worker;

pub use app::{LaunchOptions, ShearsApp, SETTINGS_KEY};
pub use command::{Action, LoadedResults, Notice};
pub use state::{Settings, Tab};

use crate::error::{Error, Result};

/// Opens the window and runs until it is closed. Saved settings are
/// restored (unless `fresh`), then `launch` applies.
pub fn run(launch: LaunchOptions, fresh: bool) -> Result<()> {
    let options = eframe::NativeOptions {
        viewport: eframe::egui::ViewportBuilder::default()
            .with_title("Shears — compare pruning strategies")
            .with_inner_size([1280.0, 860.0])
            .with_min_inner_size([640.0, 420.0])
            .with_drag_and_drop(true),
        ..Default::default()
    };
    eframe::run_native(
        "shears",
        options,
        Box::new(move |cc| {
            let settings = if fresh {
                Settings::default()
            } else {
                cc.storage
                    .and_then(|s| eframe::get_value::<Settings>(s, SETTINGS_KEY))
                    .unwrap_or_default()
            };
            Ok(Box::new(ShearsApp::new(settings, launch)))
        }),
    )
    .map_err(|e| {
        Error::Other(format!(
            "cannot open the window: {e} (no display? `shears compare` runs in the terminal)"
        ))
    })
}
