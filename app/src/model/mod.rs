//! Models: architectures as data, runnable networks, checkpoints.

pub mod arch;
mod batchnorm;
pub mod checkpoint;
pub mod conv;
#[cfg(test)]
mod gradcheck;
mod kernel;
pub mod latency;
pub mod network;
pub mod pool;
pub mod relu;
#[cfg(test)]
pub(crate) mod testutil;

pub use arch::{Architecture, Family, LayerInfo, ModelSpec, Node};
pub use network::{ActivationStats, Network};
