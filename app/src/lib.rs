//! Shears engine: datasets, models, training, pruning and strategy comparison
//! with Candle. Usable without the GUI; the `shears` binary's subcommands are
//! thin wrappers over this library.

#![warn(missing_docs)]

pub mod alloc;
pub mod cli;
pub mod data;
pub mod device;
pub mod error;
pub mod experiment;
pub mod fsutil;
#[cfg(feature = "gui")]
pub mod gui;
pub mod loaders;
pub mod model;
pub mod plugins;
pub mod prune;
pub mod report;
pub mod train;

pub use error::{Error, Result};
