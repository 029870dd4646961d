//! The views: each draws plain state and pushes [`Action`](super::app::Action)s.

pub mod chart_legend;
pub mod chart_plot;
pub mod compare;
pub mod fields;
pub mod menu;
pub mod model;
pub mod notices;
pub mod path_prompt;
pub mod plugins;
pub mod results_table;
pub mod run;
pub mod runs;
pub mod sensitivity;
pub mod setup;
pub mod strategies;
