//! Fuzz target `testfs`: see `dax_testkit::fuzz::testfs` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| dax_testkit::fuzz::testfs::run(data));
