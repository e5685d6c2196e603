//! The locks and atomics dax-core uses, in one place so that a `cfg(loom)` build can
//! swap in loom's versions.

pub(crate) use parking_lot::Mutex;
pub(crate) use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering, fence};
