#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| popsel::fuzz::vici_frame(data));
