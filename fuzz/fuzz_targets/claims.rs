//! libFuzzer's entry for `warden_fuzz::targets::claims` (what it fuzzes is documented there).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| warden_fuzz::targets::claims::run(data));
