//! ONNX models in and out. In: any graph of the ops in
//! [`read::SUPPORTED_OPS`] becomes a Shears [`Graph`](crate::model::graph::Graph)
//! ([`read`]), with the exporters' shape arithmetic folded to constants
//! ([`fold`]) and initializers read inline or from external data files
//! beside the model ([`tensor`]). Out: Shears networks written as ONNX
//! ([`write`]). Pure Rust: the protobuf messages are in [`proto`].

pub mod fold;
pub mod proto;
mod read;
pub mod tensor;
mod write;

pub use read::{declared_input, read, Declared, OnnxModel, SUPPORTED_OPS};
pub use write::{save, to_bytes};
