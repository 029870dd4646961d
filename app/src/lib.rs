//! Shears engine: datasets, models, training, pruning and strategy comparison
//! with Candle. Usable without the GUI; the `shears` binary's subcommands are
//! thin wrappers over this library.

pub mod cli;
pub mod data;
pub mod device;
pub mod error;
pub mod experiment;
pub mod fsutil;
pub mod model;
pub mod plugins;
pub mod prune;
pub mod train;

pub use error::{Error, Result};

/// Training allocates and frees many large tensors per batch; glibc's malloc
/// returns them to the OS each time and pays for page faults on every reuse.
/// mimalloc keeps them, which speeds up CPU training measurably (BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
