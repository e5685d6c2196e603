//! Shared helpers for the dax-rs benchmarks.
