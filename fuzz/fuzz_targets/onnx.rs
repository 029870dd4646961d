//! Fuzzes the `onnx` loader through `shears::loaders::read`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = shears::loaders::read("onnx", data);
});
