#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| popsel::fuzz::client_answer(data));
