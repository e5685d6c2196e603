//! The locks TestFs uses, in one place (the workspace rule: locks go through a
//! crate-internal `sync` module so a `cfg(loom)` build could swap them).

pub(crate) use parking_lot::{Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
pub(crate) use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
