//! Test doubles and harnesses shared by the dax-rs crates' integration tests. Dev-only:
//! the crates take it as a path-only dev-dependency, and it is never published.
//!
//! * [`sweep`](mod@sweep): the harness of the edge-value sweeps
//!   (`*/tests/sweep_edges.rs`) and its [`sweep!`] macro;
//! * [`child`]: re-running one test of the current test binary in a watched child
//!   process.
//!
//! No `unsafe` here: a test double that needs it (a `DaxOperations` driver) stays in
//! the test file that uses it.
#![forbid(unsafe_code)]

pub mod child;
pub mod sweep;
