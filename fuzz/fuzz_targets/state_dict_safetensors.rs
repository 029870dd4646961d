//! Fuzzes the `state_dict_safetensors` loader through `shears::loaders::read`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = shears::loaders::read("state_dict_safetensors", data);
});
