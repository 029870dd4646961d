//! Fuzzes the `results_json` loader through `shears::loaders::read`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = shears::loaders::read("results_json", data);
});
