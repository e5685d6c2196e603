//! The Linux DAX device layer as a userspace library.
//!
//! `dax-device` is the driver side of DAX (direct access), written anew from the
//! behaviour of `drivers/dax/super.c`, `include/linux/dax.h`, `block/badblocks.c` and
//! the pmem driver:
//!
//! * [`DaxOperations`]: the `unsafe trait` a driver implements (`struct
//!   dax_operations`): `direct_access`, `zero_page_range`, `recovery_write`.
//! * [`DaxDevice`]: the safe wrapper every filesystem uses (`struct dax_device`):
//!   alive/kill lifecycle with SRCU-like read sections, flags, the holder and its
//!   failure notifications, `dax_direct_access`, `dax_copy_{from,to}_iter`,
//!   `dax_flush`, `dax_zero_page_range`, `dax_recovery_write`.
//! * [`Badblocks`]: the media-error table (`struct badblocks`).
//! * [`persist`]: cache write-back and non-temporal copies (the kernel's
//!   `arch_wb_cache_pmem`, `memcpy_flushcache`, and libpmem2's flag set).
//! * [`DaxError`]: every failure, with the Linux errno it stands for ([`errno_name`]
//!   names it).
//!
//! Each item's docs name the kernel function or structure it mirrors.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod badblocks;
mod device;
mod error;
#[cfg(loom)]
#[doc(hidden)]
pub mod loom_membarrier;
#[allow(unsafe_code)]
pub mod persist;
pub mod seqcount;
#[allow(unsafe_code)]
mod srcu;
mod sync;
mod types;

pub use badblocks::{BadRange, Badblocks, BadblocksCheck};
pub use device::{
    DaxAccessMode, DaxDevice, DaxFlags, DaxHolder, DaxOperations, DaxReadGuard, DirectAccess,
    FsDax, MapSource, MfFlags, RawAccess,
};
pub use error::{DaxError, errno_name};
pub use seqcount::{SeqCount, SeqToken};
pub use types::*;
