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
//! * [`miri`]: loop counts and proptest settings for tests that also run under Miri.
//!
//! No `unsafe` here: a test double that needs it (a `DaxOperations` driver) stays in
//! the test file that uses it.
#![forbid(unsafe_code)]

pub mod child;
pub mod fault;
pub mod iomap;
pub mod miri;
pub mod sweep;

/// [`dax_device::PAGE_SIZE`] as a `u64`.
pub const PAGE: u64 = dax_device::PAGE_SIZE as u64;

/// A deterministic byte pattern of `len` bytes for `seed`.
pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(97).wrapping_add(seed) ^ (i >> 8) as u8)
        .collect()
}
