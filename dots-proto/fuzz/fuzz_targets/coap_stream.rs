#![no_main]
use libfuzzer_sys::fuzz_target;

// Placeholder: filled in with the decoder it exercises.
fuzz_target!(|_data: &[u8]| {});
