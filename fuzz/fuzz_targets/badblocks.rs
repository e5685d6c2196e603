//! Fuzz target `badblocks`: see `dax_testkit::fuzz::badblocks` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| dax_testkit::fuzz::badblocks::run(data));
