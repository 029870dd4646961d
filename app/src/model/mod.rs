//! Models: architectures as data, runnable networks, checkpoints.

pub mod arch;
pub mod backprop;
mod batchnorm;
pub mod checkpoint;
pub mod conv;
mod dropout;
pub mod export;
mod fused;
mod gemm;
#[cfg(test)]
mod gradcheck;
pub mod graph;
pub mod import;
mod kernel;
pub mod latency;
mod linear;
pub mod network;
pub mod onnx;
pub mod ops;
pub mod pool;
pub mod relu;
#[cfg(test)]
pub(crate) mod testutil;

pub use arch::{Architecture, Family, LayerInfo, ModelSpec, Node, NormChoice, Preprocess};
pub use backprop::TrainPass;
pub use network::{ActivationStats, Network};
