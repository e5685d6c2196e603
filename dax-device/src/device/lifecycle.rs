//! [`DaxDevice`] (`struct dax_device`): a driver plus the state bits ([`DaxFlags`],
//! `enum dax_device_flags`), the alive/kill lifecycle (`run_dax`, `kill_dax`, with the
//! SRCU grace period), the flag accessors, and the device-wide operations that open a
//! read section of their own (`dax_zero_page_range`, `nvdimm_flush`).

use std::fmt;
use std::sync::Arc;

use super::{DaxHolder, DaxOperations, DaxReadGuard, MfFlags};
use crate::DaxError;
use crate::srcu::Srcu;
use crate::sync::{AtomicU32, Mutex, Ordering};

bitflags::bitflags! {
    /// The state bits of a DAX device (`enum dax_device_flags`, same bit numbers).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct DaxFlags: u32 {
        /// `DAXDEV_ALIVE`: new operations and mappings are allowed.
        const ALIVE = 1 << 0;
        /// `DAXDEV_WRITE_CACHE`: the device sits behind a CPU cache that must be written
        /// back ([`DirectAccess::flush`](crate::DirectAccess::flush) acts only when
        /// set).
        const WRITE_CACHE = 1 << 1;
        /// `DAXDEV_SYNC`: the device supports synchronous faults (MAP_SYNC).
        const SYNC = 1 << 2;
        /// `DAXDEV_NOCACHE`: writes through
        /// [`DirectAccess::copy_from`](crate::DirectAccess::copy_from) bypass the cache.
        const NOCACHE = 1 << 3;
        /// `DAXDEV_NOMC`: reads through
        /// [`DirectAccess::copy_to`](crate::DirectAccess::copy_to) stop at poison
        /// instead of consuming it.
        const NOMC = 1 << 4;
    }
}

/// A DAX device: a driver plus lifecycle, flags and holder (`struct dax_device`).
///
/// Create one with [`DaxDevice::new`]; share it as `Arc<DaxDevice<D>>` or, type
/// erased, `Arc<DaxDevice>` (= `Arc<DaxDevice<dyn DaxOperations>>`; the coercion is
/// implicit).
pub struct DaxDevice<D: ?Sized + DaxOperations = dyn DaxOperations> {
    flags: AtomicU32,
    pub(super) srcu: Srcu,
    pub(super) holder: Mutex<Option<Arc<dyn DaxHolder>>>,
    pub(super) ops: D,
}

impl<D: ?Sized + DaxOperations> fmt::Debug for DaxDevice<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DaxDevice")
            .field("flags", &self.flags())
            .field("has_holder", &self.holder.lock().is_some())
            .finish_non_exhaustive()
    }
}

impl<D: DaxOperations> DaxDevice<D> {
    /// Creates a live device around `ops` with every other flag clear and no holder
    /// (`alloc_dax`).
    ///
    /// The kernel's `alloc_dax` fails with `EINVAL` for operations without
    /// `zero_page_range`; here the trait makes that operation mandatory, so creation
    /// cannot fail.
    pub fn new(ops: D) -> Arc<Self> {
        Arc::new(DaxDevice {
            flags: AtomicU32::new(DaxFlags::ALIVE.bits()),
            srcu: Srcu::default(),
            holder: Mutex::new(None),
            ops,
        })
    }

    /// Loom builds only: [`DaxDevice::new`] with the read sections' asymmetric fences,
    /// `membarrier` simulated (the flavour real Linux builds use; `new` takes the
    /// `fence(SeqCst)` fallback under loom).
    #[cfg(loom)]
    #[doc(hidden)]
    pub fn new_with_simulated_membarrier(ops: D) -> Arc<Self> {
        Arc::new(DaxDevice {
            flags: AtomicU32::new(DaxFlags::ALIVE.bits()),
            srcu: Srcu::asymmetric(),
            holder: Mutex::new(None),
            ops,
        })
    }

    /// Takes the driver back out of a device nobody else holds.
    pub fn into_driver(self) -> D {
        self.ops
    }
}

impl<D: ?Sized + DaxOperations> DaxDevice<D> {
    /// The driver, for driver-specific controls (test devices inject poison through
    /// it). Unlike [`DaxDevice::get_private`] it answers after `kill`.
    pub fn driver(&self) -> &D {
        &self.ops
    }

    /// The driver while the device is alive, `None` after [`DaxDevice::kill`]
    /// (`dax_get_private`).
    pub fn get_private(&self) -> Option<&D> {
        self.flags().contains(DaxFlags::ALIVE).then_some(&self.ops)
    }

    /// The current flags.
    pub fn flags(&self) -> DaxFlags {
        DaxFlags::from_bits_retain(self.flags.load(Ordering::SeqCst))
    }

    fn set_flag(&self, flag: DaxFlags, on: bool) {
        if on {
            self.flags.fetch_or(flag.bits(), Ordering::SeqCst);
        } else {
            self.flags.fetch_and(!flag.bits(), Ordering::SeqCst);
        }
    }

    /// Begins a read section (`dax_read_lock`); it ends when the guard drops
    /// (`dax_read_unlock`). Sections nest. Device memory is only reachable through a
    /// guard, and [`DaxDevice::kill`] waits for every section begun before it.
    pub fn read_lock(&self) -> DaxReadGuard<'_, D> {
        DaxReadGuard::begin(self)
    }

    /// Kills the device (`kill_dax`): tells the holder, if any, that the whole device
    /// is going away (`notify_failure(0, u64::MAX, MEM_PRE_REMOVE)`, while the device
    /// is still alive so the holder can still reach it); clears ALIVE; waits for every
    /// read section begun before that; then forgets the holder.
    ///
    /// Afterwards `direct_access` and `zero_page_range` fail with
    /// [`DaxError::Dead`] (`ENXIO`), copies move 0 bytes, `notify_failure` fails with
    /// `ENXIO` and [`DaxDevice::get_private`] answers `None`.
    pub fn kill(&self) {
        let holder = self.holder.lock().clone();
        if let Some(holder) = holder {
            let _section = self.read_lock();
            // The result is ignored, as in the kernel: removal goes ahead regardless.
            let _ = holder.notify_failure(0, u64::MAX, MfFlags::MEM_PRE_REMOVE);
        }
        self.set_flag(DaxFlags::ALIVE, false);
        self.srcu.synchronize();
        *self.holder.lock() = None;
    }

    /// Makes the device alive again (`run_dax`).
    pub fn run(&self) {
        self.set_flag(DaxFlags::ALIVE, true);
    }

    /// Sets or clears the write-cache flag (`dax_write_cache`).
    pub fn set_write_cache(&self, on: bool) {
        self.set_flag(DaxFlags::WRITE_CACHE, on);
    }

    /// Whether writes must be written back from the CPU cache
    /// (`dax_write_cache_enabled`).
    pub fn write_cache_enabled(&self) -> bool {
        self.flags().contains(DaxFlags::WRITE_CACHE)
    }

    /// Marks the device as supporting synchronous faults (`set_dax_synchronous`).
    pub fn set_synchronous(&self) {
        self.set_flag(DaxFlags::SYNC, true);
    }

    /// Whether the device supports synchronous faults, i.e. MAP_SYNC
    /// (`dax_synchronous`).
    pub fn synchronous(&self) -> bool {
        self.flags().contains(DaxFlags::SYNC)
    }

    /// Makes writes through [`DirectAccess::copy_from`] bypass the cache
    /// (`set_dax_nocache`).
    ///
    /// [`DirectAccess::copy_from`]: super::DirectAccess::copy_from
    pub fn set_nocache(&self) {
        self.set_flag(DaxFlags::NOCACHE, true);
    }

    /// Makes reads through [`DirectAccess::copy_to`] stop at poison
    /// (`set_dax_nomc`).
    ///
    /// [`DirectAccess::copy_to`]: super::DirectAccess::copy_to
    pub fn set_nomc(&self) {
        self.set_flag(DaxFlags::NOMC, true);
    }

    /// Whether a mapping may be created (`daxdev_mapping_supported`): a mapping without
    /// MAP_SYNC always may; one with MAP_SYNC only on a DAX file of a synchronous
    /// device. A filesystem answers `EOPNOTSUPP` from mmap when this is false.
    pub fn mapping_supported(&self, map_sync: bool, inode_is_dax: bool) -> bool {
        !map_sync || (inode_is_dax && self.synchronous())
    }

    /// Zeroes device page `pgoff` through the driver, clearing poison
    /// (`dax_zero_page_range`), in a read section of its own.
    ///
    /// Errors in the kernel's order: [`DaxError::Dead`]; `nr_pages != 1` →
    /// [`DaxError::Io`] (`EIO`; only single pages are supported); the driver's error,
    /// with [`DaxError::HwPoison`] turned into `EIO` ([`DaxError::mem2blk`]).
    pub fn zero_page_range(&self, pgoff: u64, nr_pages: u64) -> Result<(), DaxError> {
        self.read_lock().zero_page_range(pgoff, nr_pages)
    }

    /// Makes prior writes durable through the driver (`nvdimm_flush`, the effect of a
    /// `REQ_PREFLUSH` on pmem). [`DaxError::Dead`] after `kill`.
    pub fn flush(&self) -> Result<(), DaxError> {
        let section = self.read_lock();
        if !section.alive() {
            return Err(DaxError::Dead);
        }
        self.ops.flush()
    }
}
