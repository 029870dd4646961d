//! ONNX models in and out: graphs of Conv, BatchNormalization, Relu,
//! MaxPool, AveragePool, GlobalAveragePool, Flatten, Reshape, Gemm, MatMul,
//! Add, Dropout and Identity read into Shears's architecture graph (residual
//! additions become residual blocks), and Shears networks written as ONNX.
//! Pure Rust: the protobuf messages are in [`proto`].

pub mod proto;
mod read;
mod write;

pub use read::{declared_input, read, OnnxModel, SUPPORTED_OPS};
pub use write::{save, to_bytes};
