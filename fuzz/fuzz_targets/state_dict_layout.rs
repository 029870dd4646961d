//! Fuzzes the `state_dict_layout` loader (the state-dict recognisers)
//! through `shears::loaders::read`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = shears::loaders::read("state_dict_layout", data);
});
