//! Keeping tests that also run under Miri (`scripts/miri`) short there.
//!
//! Miri interprets every statement, 100 to 1000 times slower than a debug build, and
//! without isolation-breaking flags it has no file system (proptest's regression files
//! need the working directory). A test that also runs under Miri scales its loops with
//! [`scale`] and takes its proptest settings from [`proptest_config`]; a test Miri
//! cannot run at all is marked `#[cfg_attr(miri, ignore = "why")]`.

use proptest::test_runner::Config;

/// Proptest cases per property under Miri: enough to drive each property through a
/// few random paths, few enough to keep a property under a minute there.
pub const MIRI_CASES: u32 = 4;

/// `normal`, or `miri` when running under Miri.
pub const fn scale(normal: usize, miri: usize) -> usize {
    if cfg!(miri) { miri } else { normal }
}

/// `config` as is; under Miri with at most [`MIRI_CASES`] cases, no failure
/// persistence (no file access there) and a short shrink.
pub fn proptest_config(config: Config) -> Config {
    if cfg!(miri) {
        Config {
            cases: config.cases.min(MIRI_CASES),
            failure_persistence: None,
            max_shrink_iters: config.max_shrink_iters.min(64),
            ..config
        }
    } else {
        config
    }
}
