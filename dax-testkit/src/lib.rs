//! Test doubles and harnesses shared by the dax-rs crates' integration tests. Dev-only:
//! the crates take it as a path-only dev-dependency, and it is never published.
//!
//! * [`iomap`]: [`IomapMock`](iomap::IomapMock), the scripted `IomapOps`/`DaxInode`
//!   of the dax-iomap tests, and [`RecordingMapping`](iomap::RecordingMapping);
//! * [`fault`]: [`ScriptedFs`](fault::ScriptedFs), the scripted one-file filesystem
//!   of the dax-fault tests, with its simulated address space
//!   [`Space`](fault::Space), gates and fault helpers;
//! * [`sweep`](mod@sweep): the harness of the edge-value sweeps
//!   (`*/tests/sweep_edges.rs`) and its [`sweep!`] macro;
//! * [`child`]: re-running one test of the current test binary in a watched child
//!   process;
//! * [`fuzz`]: the fuzz targets' harnesses, shared by `fuzz/` (cargo-fuzz, nightly)
//!   and the corpus replay test (`tests/fuzz_corpus.rs`, stable).
//! * [`miri`]: loop counts and proptest settings for tests that also run under Miri.
//!
//! No `unsafe` here: a test double that needs it (a `DaxOperations` driver) stays in
//! the test file that uses it.
#![forbid(unsafe_code)]

pub mod child;
pub mod fault;
pub mod fuzz;
pub mod iomap;
pub mod miri;
pub mod sweep;

/// [`dax_device::PAGE_SIZE`] as a `u64`.
pub const PAGE: u64 = dax_device::PAGE_SIZE as u64;

/// A deterministic byte pattern of `len` bytes for `seed`.
///
/// It repeats every 64 KiB (byte `i` depends on `i mod 65536`), so only the first
/// period is computed byte by byte and the rest is copied: a 2 MiB pattern costs
/// Miri seconds instead of minutes.
pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    const PERIOD: usize = 1 << 16;
    let mut v: Vec<u8> = (0..len.min(PERIOD))
        .map(|i| (i as u8).wrapping_mul(97).wrapping_add(seed) ^ (i >> 8) as u8)
        .collect();
    v.reserve(len - v.len());
    while v.len() < len {
        let n = (len - v.len()).min(v.len());
        v.extend_from_within(..n);
    }
    v
}

#[cfg(test)]
mod tests {
    #[test]
    fn pattern_is_the_formula_at_every_length() {
        for len in [0, 1, 255, 65535, 65536, 65537, 200_000] {
            let want: Vec<u8> = (0..len)
                .map(|i| (i as u8).wrapping_mul(97).wrapping_add(7) ^ (i >> 8) as u8)
                .collect();
            assert_eq!(super::pattern(len, 7), want, "len {len}");
        }
    }
}
