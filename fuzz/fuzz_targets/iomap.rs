//! Fuzz target `iomap`: see `dax_testkit::fuzz::iomap` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| dax_testkit::fuzz::iomap::run(data));
