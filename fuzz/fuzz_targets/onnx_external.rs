//! Fuzzes the `onnx_external` loader (an ONNX model and the external data
//! file beside it) through `shears::loaders::read`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = shears::loaders::read("onnx_external", data);
});
