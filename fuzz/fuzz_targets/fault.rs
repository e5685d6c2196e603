//! Fuzz target `fault`: see `dax_testkit::fuzz::fault` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| dax_testkit::fuzz::fault::run(data));
