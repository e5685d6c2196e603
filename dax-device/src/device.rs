//! The DAX device: the driver contract [`DaxOperations`] and its safe wrapper
//! [`DaxDevice`] (drivers/dax/super.c, include/linux/dax.h).
//!
//! A driver (a pmem-like region, a `/dev/dax` character device, a test device)
//! implements the `unsafe trait` [`DaxOperations`]. Filesystems never call the driver
//! directly: they hold a [`DaxDevice`], which adds what the kernel's `struct
//! dax_device` adds on top of the driver:
//!
//! * the lifecycle: ALIVE until [`DaxDevice::kill`] (`kill_dax`); every access to
//!   device memory happens inside a read section ([`DaxDevice::read_lock`],
//!   `dax_read_lock`) and `kill` waits for the sections that began before it;
//! * flags: write cache (gates [`DirectAccess::flush`]), synchronous (MAP_SYNC allowed),
//!   NOCACHE (writes bypass the cache), NOMC (reads tolerate poison);
//! * at most one holder (the filesystem) told about media failures
//!   ([`DaxHolder::notify_failure`]) and, before removal, about the whole device going
//!   away;
//! * argument checks and error mapping of `dax_direct_access`,
//!   `dax_zero_page_range`, `dax_recovery_write`, `dax_copy_{from,to}_iter`.
//!
//! Addresses handed out by [`DaxReadGuard::direct_access`] borrow the read guard, so
//! the type system keeps every use of device memory inside its section: after `kill`
//! returns, no thread can still hold one.
//!
//! ```
//! use std::ptr::NonNull;
//! use dax_device::{DaxAccessMode, DaxDevice, DaxError, DaxOperations, Pfn, RawAccess, PAGE_SIZE};
//!
//! /// A toy driver over a leaked, page-aligned buffer of 16 pages at address `base`.
//! struct Toy { base: usize, pages: u64 }
//! // SAFETY: `base` is the address of `pages` pages that live (leaked) for the whole
//! // program; pfns are derived from the address, so they are stable and unique.
//! unsafe impl DaxOperations for Toy {
//!     fn nr_pages(&self) -> u64 { self.pages }
//!     fn direct_access(&self, pgoff: u64, _nr: u64, _mode: DaxAccessMode) -> Result<RawAccess, DaxError> {
//!         if pgoff >= self.pages { return Ok(RawAccess::none()); }
//!         let addr = self.base + pgoff as usize * PAGE_SIZE;
//!         let pfn = Pfn(addr as u64 >> 12);
//!         Ok(RawAccess { addr: NonNull::new(addr as *mut u8).unwrap(), pfn, pages: self.pages - pgoff })
//!     }
//!     fn zero_page_range(&self, _pgoff: u64, _nr: u64) -> Result<(), DaxError> { Ok(()) }
//! }
//!
//! let layout = std::alloc::Layout::from_size_align(16 * PAGE_SIZE, PAGE_SIZE).unwrap();
//! // SAFETY: non-zero size.
//! let base = unsafe { std::alloc::alloc_zeroed(layout) } as usize;
//! assert_ne!(base, 0);
//! let dev = DaxDevice::new(Toy { base, pages: 16 });
//! {
//!     let section = dev.read_lock();
//!     let da = section.direct_access(2, 4, DaxAccessMode::Access)?;
//!     assert_eq!(da.pages(), 4);
//!     assert_eq!(da.copy_from(0, b"hello"), 5);
//!     let mut back = [0u8; 5];
//!     assert_eq!(da.copy_to(0, &mut back), 5);
//!     assert_eq!(&back, b"hello");
//! }
//! dev.kill();
//! assert_eq!(dev.read_lock().direct_access(0, 1, DaxAccessMode::Access).unwrap_err(), DaxError::Dead);
//! # Ok::<(), DaxError>(())
//! ```

use std::fmt;
use std::os::fd::BorrowedFd;
use std::ptr::NonNull;
use std::sync::Arc;

use crate::srcu::Srcu;
use crate::sync::{AtomicU32, Mutex, Ordering};
use crate::{DaxError, PAGE_SIZE, Pfn, persist};

/// How the caller intends to use the pages asked of `direct_access`
/// (`enum dax_access_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DaxAccessMode {
    /// Ordinary access (`DAX_ACCESS`): known-poisoned pages make the call fail with
    /// [`DaxError::HwPoison`].
    Access,
    /// The caller will overwrite poisoned pages through `recovery_write`
    /// (`DAX_RECOVERY_WRITE`): the driver answers a usable page count instead of
    /// failing.
    RecoveryWrite,
}

/// What a driver's `direct_access` answers: the address and pfn of the first page and
/// how many physically contiguous, accessible pages start there.
///
/// Mirrors the `kaddr`/`pfn` out-parameters and the `long` result of
/// `dax_operations::direct_access`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawAccess {
    /// Process-virtual address of page `pgoff`.
    pub addr: NonNull<u8>,
    /// Page frame number of page `pgoff`.
    pub pfn: Pfn,
    /// Contiguous pages available from `pgoff`; 0 means "nothing here" and becomes
    /// [`DaxError::OutOfRange`] (`-ERANGE`) in [`DaxReadGuard::direct_access`].
    pub pages: u64,
}

impl RawAccess {
    /// The answer for an offset past the end of the device: 0 pages.
    pub const fn none() -> RawAccess {
        RawAccess {
            addr: NonNull::dangling(),
            pfn: Pfn(0),
            pages: 0,
        }
    }
}

/// How a driver's memory can be mapped into a process: a file descriptor, the offset
/// of device page 0 in it, and the smallest unit it can be mapped in.
///
/// Used by `dax-fault`'s `mmu` backend to `mmap(MAP_FIXED | MAP_SHARED)` device
/// pages. There is no kernel equivalent: in the kernel the pfn is enough.
#[derive(Debug, Clone, Copy)]
pub struct MapSource<'a> {
    /// The descriptor to map (a memfd, a hugetlb memfd, a regular file, `/dev/daxX.Y`).
    pub fd: BorrowedFd<'a>,
    /// Byte offset of device page 0 within `fd`.
    pub offset: u64,
    /// The smallest unit the backing memory can be mapped in: 4096 for ordinary
    /// memory and files (shmem with transparent huge pages included, which maps
    /// 2 MiB pages too), 2 MiB for hugetlb and a 2 MiB-aligned device-dax, which map
    /// only whole 2 MiB pages.
    pub page_size: usize,
}

/// The driver side of DAX (`struct dax_operations`).
///
/// Implemented by whatever owns the memory: [`DaxDevice`] wraps it and is what
/// filesystems use.
///
/// # Safety
///
/// An implementor promises, for every `Ok(RawAccess { addr, pfn, pages })` with
/// `pages > 0` returned by [`direct_access`](Self::direct_access):
///
/// * `addr .. addr + pages * PAGE_SIZE` is memory of this process, readable and
///   writable, page aligned, and stays mapped and valid until the implementor is
///   dropped (dax-device only uses it while it holds a read section of a live
///   [`DaxDevice`] that owns the implementor);
/// * the same `pgoff` always yields the same `addr` and `pfn`; the pfn of page
///   `pgoff + i` is `pfn + i`; distinct pages (of this and any other device in the
///   process) have distinct pfns;
/// * that memory is never handed to Rust code as `&[u8]`/`&mut [u8]` by the driver
///   while dax-device may access it (other threads, processes and mappings may change it
///   at any time: it is accessed only through raw-pointer copies).
///
/// dax-device in turn promises to call [`recovery_write`](Self::recovery_write) only with
/// an address range obtained from `direct_access` of this driver for `pgoff`.
pub unsafe trait DaxOperations: Send + Sync {
    /// Size of the device in pages (the pmem data area, the `/dev/dax` size).
    fn nr_pages(&self) -> u64;

    /// Translates device page `pgoff` into an address and pfn, and reports how many
    /// contiguous accessible pages start there (`dax_operations::direct_access`).
    ///
    /// May answer more or fewer pages than `nr_pages` (the core clips to `nr_pages`);
    /// `pages == 0` means `pgoff` is outside the device. In
    /// [`DaxAccessMode::Access`] known poison in the range fails the call with
    /// [`DaxError::HwPoison`]; in [`DaxAccessMode::RecoveryWrite`] the driver answers
    /// a usable count instead.
    fn direct_access(
        &self,
        pgoff: u64,
        nr_pages: u64,
        mode: DaxAccessMode,
    ) -> Result<RawAccess, DaxError>;

    /// Zeroes `nr_pages` pages at `pgoff` through a path that clears poison
    /// (`dax_operations::zero_page_range`). The core only ever passes 1.
    fn zero_page_range(&self, pgoff: u64, nr_pages: u64) -> Result<(), DaxError>;

    /// Clears poison under `addr .. addr + src.len()` and writes `src` there,
    /// returning the bytes written, 0 on failure (`dax_operations::recovery_write`).
    /// `None` means the driver has no such operation (the default).
    ///
    /// # Safety
    ///
    /// `addr .. addr + src.len()` lies inside a range returned by
    /// [`direct_access`](Self::direct_access) of this driver for `pgoff`, and the
    /// caller holds a read section of the owning [`DaxDevice`].
    unsafe fn recovery_write(&self, pgoff: u64, addr: NonNull<u8>, src: &[u8]) -> Option<usize> {
        let _ = (pgoff, addr, src);
        None
    }

    /// Where, within `dev_offset .. dev_offset + len`, the first byte is that a
    /// machine-check-safe read would stop at (the model of `copy_mc_to_kernel` meeting
    /// hardware poison), as a count of readable bytes; `None` when all are readable.
    ///
    /// Real hardware reports this by machine check; a driver whose memory cannot be
    /// poisoned keeps the default.
    fn first_poisoned_byte(&self, dev_offset: u64, len: usize) -> Option<usize> {
        let _ = (dev_offset, len);
        None
    }

    /// Makes prior writes to the device durable (`nvdimm_flush`, what a
    /// `REQ_PREFLUSH` does on pmem). The default is a store fence.
    fn flush(&self) -> Result<(), DaxError> {
        persist::drain();
        Ok(())
    }

    /// How to map this device's memory into a process, if it can be.
    fn map_source(&self) -> Option<MapSource<'_>> {
        None
    }
}

bitflags::bitflags! {
    /// The state bits of a DAX device (`enum dax_device_flags`, same bit numbers).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct DaxFlags: u32 {
        /// `DAXDEV_ALIVE`: new operations and mappings are allowed.
        const ALIVE = 1 << 0;
        /// `DAXDEV_WRITE_CACHE`: the device sits behind a CPU cache that must be written
        /// back ([`DirectAccess::flush`] acts only when set).
        const WRITE_CACHE = 1 << 1;
        /// `DAXDEV_SYNC`: the device supports synchronous faults (MAP_SYNC).
        const SYNC = 1 << 2;
        /// `DAXDEV_NOCACHE`: writes through [`DirectAccess::copy_from`] bypass the
        /// cache.
        const NOCACHE = 1 << 3;
        /// `DAXDEV_NOMC`: reads through [`DirectAccess::copy_to`] stop at poison
        /// instead of consuming it.
        const NOMC = 1 << 4;
    }
}

bitflags::bitflags! {
    /// Memory-failure flags passed to [`DaxHolder::notify_failure`] (`MF_*` in
    /// include/linux/mm.h, same values).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct MfFlags: u32 {
        /// `MF_COUNT_INCREASED`.
        const COUNT_INCREASED = 1 << 0;
        /// `MF_ACTION_REQUIRED`: the failure was consumed synchronously.
        const ACTION_REQUIRED = 1 << 1;
        /// `MF_MUST_KILL`.
        const MUST_KILL = 1 << 2;
        /// `MF_SOFT_OFFLINE`.
        const SOFT_OFFLINE = 1 << 3;
        /// `MF_UNPOISON`.
        const UNPOISON = 1 << 4;
        /// `MF_SW_SIMULATED`: injected by software.
        const SW_SIMULATED = 1 << 5;
        /// `MF_NO_RETRY`.
        const NO_RETRY = 1 << 6;
        /// `MF_MEM_PRE_REMOVE`: the whole device is about to go away (sent by
        /// [`DaxDevice::kill`]), not a poison event.
        const MEM_PRE_REMOVE = 1 << 7;
    }
}

/// The holder of a device (a filesystem or a stacking driver), told about media
/// failures (`struct dax_holder_operations`).
pub trait DaxHolder: Send + Sync {
    /// Device bytes `offset .. offset + len` failed (`notify_failure`). `len ==
    /// u64::MAX` with `offset == 0` means the whole device (sent with
    /// [`MfFlags::MEM_PRE_REMOVE`] before removal). Return
    /// [`DaxError::NotSupported`] to let the generic memory-failure path handle it.
    fn notify_failure(&self, offset: u64, len: u64, flags: MfFlags) -> Result<(), DaxError>;
}

/// A DAX device: a driver plus lifecycle, flags and holder (`struct dax_device`).
///
/// Create one with [`DaxDevice::new`]; share it as `Arc<DaxDevice<D>>` or, type
/// erased, `Arc<DaxDevice>` (= `Arc<DaxDevice<dyn DaxOperations>>`; the coercion is
/// implicit).
pub struct DaxDevice<D: ?Sized + DaxOperations = dyn DaxOperations> {
    flags: AtomicU32,
    srcu: Srcu,
    holder: Mutex<Option<Arc<dyn DaxHolder>>>,
    ops: D,
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
        DaxReadGuard {
            dev: self,
            idx: self.srcu.read_lock(),
        }
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
    pub fn set_nocache(&self) {
        self.set_flag(DaxFlags::NOCACHE, true);
    }

    /// Makes reads through [`DirectAccess::copy_to`] stop at poison
    /// (`set_dax_nomc`).
    pub fn set_nomc(&self) {
        self.set_flag(DaxFlags::NOMC, true);
    }

    /// Whether a mapping may be created (`daxdev_mapping_supported`): a mapping without
    /// MAP_SYNC always may; one with MAP_SYNC only on a DAX file of a synchronous
    /// device. A filesystem answers `EOPNOTSUPP` from mmap when this is false.
    pub fn mapping_supported(&self, map_sync: bool, inode_is_dax: bool) -> bool {
        !map_sync || (inode_is_dax && self.synchronous())
    }

    /// Registers `holder` if the device has none (the holder half of
    /// `fs_dax_get_by_bdev`). Fails with [`DaxError::Busy`] when another holder (even
    /// the same one) is registered, with [`DaxError::Dead`] when the device is dead.
    pub fn claim_holder(&self, holder: Arc<dyn DaxHolder>) -> Result<(), DaxError> {
        let section = self.read_lock();
        if !section.alive() {
            return Err(DaxError::Dead);
        }
        let mut slot = self.holder.lock();
        if slot.is_some() {
            return Err(DaxError::Busy {
                what: "the DAX device already has a holder",
            });
        }
        *slot = Some(holder);
        Ok(())
    }

    /// Releases the holder claim if `holder` is the registered holder (the holder half
    /// of `fs_put_dax`); returns whether it was.
    pub fn release_holder(&self, holder: &Arc<dyn DaxHolder>) -> bool {
        let mut slot = self.holder.lock();
        match &*slot {
            Some(h) if same_holder(h, holder) => {
                *slot = None;
                true
            }
            _ => false,
        }
    }

    /// The registered holder, if any (`dax_holder`).
    pub fn holder(&self) -> Option<Arc<dyn DaxHolder>> {
        self.holder.lock().clone()
    }

    /// Tells the holder that device bytes `offset .. offset + len` failed
    /// (`dax_holder_notify_failure`): [`DaxError::Dead`] if the device is dead,
    /// [`DaxError::NotSupported`] without a holder, else the holder's answer.
    pub fn holder_notify_failure(
        &self,
        offset: u64,
        len: u64,
        flags: MfFlags,
    ) -> Result<(), DaxError> {
        let section = self.read_lock();
        if !section.alive() {
            return Err(DaxError::Dead);
        }
        let holder = self.holder.lock().clone();
        match holder {
            None => Err(DaxError::NotSupported {
                what: "the DAX device has no holder",
            }),
            Some(h) => h.notify_failure(offset, len, flags),
        }
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

impl<D: ?Sized + DaxOperations> DaxDevice<D> {
    /// Opens the device for a filesystem on a partition that starts `part_start` bytes
    /// into it and is `part_len` bytes long, optionally claiming it for `holder`
    /// (`fs_dax_get_by_bdev`). Dropping the returned [`FsDax`] releases the claim
    /// (`fs_put_dax`).
    ///
    /// Fails with [`DaxError::InvalidArgument`] when the partition start or size is not
    /// a multiple of 4096 ("unaligned partition for dax") or runs past the device,
    /// [`DaxError::Dead`] when the device is dead, and [`DaxError::Busy`] when `holder`
    /// is given and the device already has one. (The kernel answers NULL for all of
    /// these, and leaks a reference on the holder failure; here nothing
    /// leaks.)
    pub fn fs_dax_get(
        self: &Arc<Self>,
        part_start: u64,
        part_len: u64,
        holder: Option<Arc<dyn DaxHolder>>,
    ) -> Result<FsDax<D>, DaxError> {
        let page = PAGE_SIZE as u64;
        if !part_start.is_multiple_of(page) || !part_len.is_multiple_of(page) {
            return Err(DaxError::InvalidArgument {
                what: "unaligned partition for dax",
            });
        }
        let end = part_start.checked_add(part_len);
        if end.is_none_or(|e| e > self.ops.nr_pages().saturating_mul(page)) {
            return Err(DaxError::InvalidArgument {
                what: "partition runs past the end of the DAX device",
            });
        }
        if !self.read_lock().alive() {
            return Err(DaxError::Dead);
        }
        if let Some(h) = &holder {
            self.claim_holder(h.clone())?;
        }
        Ok(FsDax {
            dev: self.clone(),
            start_off: part_start,
            holder,
        })
    }
}

/// A filesystem's handle on a DAX device, from [`DaxDevice::fs_dax_get`]: the
/// device, the partition's byte offset into it (added to every `iomap.addr`, as ext4
/// and XFS add `s_dax_part_off`/`bt_dax_part_off`), and the holder claim, released on
/// drop (`fs_put_dax`).
pub struct FsDax<D: ?Sized + DaxOperations = dyn DaxOperations> {
    dev: Arc<DaxDevice<D>>,
    start_off: u64,
    holder: Option<Arc<dyn DaxHolder>>,
}

impl<D: ?Sized + DaxOperations> FsDax<D> {
    /// The device.
    pub fn device(&self) -> &Arc<DaxDevice<D>> {
        &self.dev
    }

    /// Byte offset of the partition within the device.
    pub fn start_off(&self) -> u64 {
        self.start_off
    }
}

impl<D: ?Sized + DaxOperations> fmt::Debug for FsDax<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FsDax")
            .field("start_off", &self.start_off)
            .field("holds", &self.holder.is_some())
            .finish_non_exhaustive()
    }
}

impl<D: ?Sized + DaxOperations> Drop for FsDax<D> {
    fn drop(&mut self) {
        if let Some(h) = &self.holder {
            // Only releases the claim if it is still ours (a kill may have cleared it).
            self.dev.release_holder(h);
        }
    }
}

fn same_holder(a: &Arc<dyn DaxHolder>, b: &Arc<dyn DaxHolder>) -> bool {
    std::ptr::addr_eq(Arc::as_ptr(a), Arc::as_ptr(b))
}

/// A read section of a [`DaxDevice`] (`dax_read_lock` .. `dax_read_unlock`).
///
/// Everything that reaches device memory goes through a guard; [`DaxDevice::kill`]
/// waits until the guards that existed when it cleared ALIVE are dropped.
#[must_use = "the section ends when the guard is dropped"]
pub struct DaxReadGuard<'a, D: ?Sized + DaxOperations = dyn DaxOperations> {
    dev: &'a DaxDevice<D>,
    idx: usize,
}

impl<D: ?Sized + DaxOperations> Drop for DaxReadGuard<'_, D> {
    fn drop(&mut self) {
        self.dev.srcu.read_unlock(self.idx);
    }
}

impl<D: ?Sized + DaxOperations> fmt::Debug for DaxReadGuard<'_, D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DaxReadGuard")
            .field("alive", &self.alive())
            .finish()
    }
}

impl<'a, D: ?Sized + DaxOperations> DaxReadGuard<'a, D> {
    /// The device this section belongs to.
    pub fn device(&self) -> &'a DaxDevice<D> {
        self.dev
    }

    /// Whether the device is alive (`dax_alive`; the kernel allows it only inside a
    /// section, which the guard enforces).
    pub fn alive(&self) -> bool {
        self.dev.flags().contains(DaxFlags::ALIVE)
    }

    /// Translates device page `pgoff` for up to `nr_pages` pages (`dax_direct_access`).
    ///
    /// Checks in the kernel's order: dead → [`DaxError::Dead`]; `nr_pages >
    /// i64::MAX` (a negative `long` in the kernel) → [`DaxError::InvalidArgument`];
    /// then the driver, whose errors pass through unchanged (e.g.
    /// [`DaxError::HwPoison`]); a driver answer of 0 pages → [`DaxError::OutOfRange`]
    /// (`ERANGE`); otherwise `min(answer, nr_pages)` pages, so `nr_pages == 0` gives an
    /// empty [`DirectAccess`] rather than an error.
    ///
    /// Deliberate difference: on failure the kernel still fills `kaddr`/`pfn`; here an
    /// error carries no address (fs/dax.c never uses it: it asks again in
    /// [`DaxAccessMode::RecoveryWrite`]).
    pub fn direct_access(
        &self,
        pgoff: u64,
        nr_pages: u64,
        mode: DaxAccessMode,
    ) -> Result<DirectAccess<'_, D>, DaxError> {
        if !self.alive() {
            return Err(DaxError::Dead);
        }
        if nr_pages > i64::MAX as u64 {
            return Err(DaxError::InvalidArgument {
                what: "direct_access page count is negative as a long",
            });
        }
        let raw = self.dev.ops.direct_access(pgoff, nr_pages, mode)?;
        if raw.pages == 0 {
            return Err(DaxError::OutOfRange {
                pgoff,
                dev_pages: self.dev.ops.nr_pages(),
            });
        }
        Ok(DirectAccess {
            dev: self.dev,
            addr: raw.addr,
            pfn: raw.pfn,
            pgoff,
            pages: raw.pages.min(nr_pages),
        })
    }

    /// [`DaxDevice::zero_page_range`] inside this section.
    pub fn zero_page_range(&self, pgoff: u64, nr_pages: u64) -> Result<(), DaxError> {
        if !self.alive() {
            return Err(DaxError::Dead);
        }
        if nr_pages != 1 {
            return Err(DaxError::Io {
                what: "dax_zero_page_range supports exactly one page",
            });
        }
        self.dev
            .ops
            .zero_page_range(pgoff, nr_pages)
            .map_err(DaxError::mem2blk)
    }
}

/// Device pages `pgoff .. pgoff + pages()` made reachable by
/// [`DaxReadGuard::direct_access`], valid while the section lasts.
///
/// All access is through bounds-checked raw copies: dax-rs never forms `&[u8]` over
/// device memory, because other threads, processes and mappings may change it at any
/// time. Offsets are bytes from the start of page `pgoff`; a range that runs past the
/// end is cut short and the methods report how many bytes they moved, as the kernel's
/// copy helpers do.
pub struct DirectAccess<'g, D: ?Sized + DaxOperations = dyn DaxOperations> {
    dev: &'g DaxDevice<D>,
    addr: NonNull<u8>,
    pfn: Pfn,
    pgoff: u64,
    pages: u64,
}

impl<D: ?Sized + DaxOperations> fmt::Debug for DirectAccess<'_, D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DirectAccess")
            .field("addr", &self.addr)
            .field("pfn", &self.pfn)
            .field("pgoff", &self.pgoff)
            .field("pages", &self.pages)
            .finish()
    }
}

impl<D: ?Sized + DaxOperations> DirectAccess<'_, D> {
    /// Address of page `pgoff` (the kernel's `kaddr`). Valid for
    /// [`len`](Self::len) bytes while the read section lasts; dereferencing it is the
    /// caller's `unsafe` business.
    pub fn as_ptr(&self) -> *mut u8 {
        self.addr.as_ptr()
    }

    /// Page frame number of page `pgoff`.
    pub fn pfn(&self) -> Pfn {
        self.pfn
    }

    /// The first device page.
    pub fn pgoff(&self) -> u64 {
        self.pgoff
    }

    /// Number of pages reachable (never more than asked for).
    pub fn pages(&self) -> u64 {
        self.pages
    }

    /// Number of bytes reachable.
    pub fn len(&self) -> usize {
        usize::try_from(self.pages)
            .unwrap_or(usize::MAX)
            .saturating_mul(PAGE_SIZE)
    }

    /// Whether no page is reachable (a request for 0 pages).
    pub fn is_empty(&self) -> bool {
        self.pages == 0
    }

    /// Device byte offset of `offset` within this range (saturating).
    pub fn device_offset(&self, offset: usize) -> u64 {
        self.pgoff
            .saturating_mul(PAGE_SIZE as u64)
            .saturating_add(offset as u64)
    }

    /// How many of `want` bytes at `offset` are in range.
    fn clamp(&self, offset: usize, want: usize) -> usize {
        self.len().saturating_sub(offset).min(want)
    }

    fn alive(&self) -> bool {
        self.dev.flags().contains(DaxFlags::ALIVE)
    }

    /// Copies `src` to device bytes at `offset` (`dax_copy_from_iter`); returns bytes
    /// copied: 0 if the device is dead, fewer than `src.len()` if the range ends first.
    /// With NOCACHE set the copy bypasses the CPU cache (`memcpy_flushcache`: on
    /// return the bytes have left the cache); otherwise it is an ordinary copy.
    pub fn copy_from(&self, offset: usize, src: &[u8]) -> usize {
        if !self.alive() {
            return 0;
        }
        let n = self.clamp(offset, src.len());
        if n == 0 {
            return 0;
        }
        let nocache = self.dev.flags().contains(DaxFlags::NOCACHE);
        // SAFETY: `offset + n <= self.len()` (clamp), so the destination lies in the
        // pages the driver vouched for, which stay valid while this section (borrowed
        // by `self`) lasts. `src` is a Rust slice of at least `n` bytes and cannot
        // overlap device memory, which is never exposed as a slice.
        unsafe {
            let dst = self.addr.as_ptr().add(offset);
            if nocache {
                persist::copy_flushcache(dst, src.as_ptr(), n);
            } else {
                std::ptr::copy_nonoverlapping(src.as_ptr(), dst, n);
            }
        }
        n
    }

    /// Copies device bytes at `offset` into `dst` (`dax_copy_to_iter`); returns bytes
    /// copied: 0 if the device is dead, fewer than `dst.len()` if the range ends first
    /// or, with NOMC set, if the read reaches poison (the copy stops before it, as the
    /// kernel's machine-check-safe copy does).
    pub fn copy_to(&self, offset: usize, dst: &mut [u8]) -> usize {
        if !self.alive() {
            return 0;
        }
        let mut n = self.clamp(offset, dst.len());
        if n == 0 {
            return 0;
        }
        if self.dev.flags().contains(DaxFlags::NOMC)
            && let Some(good) = self
                .dev
                .ops
                .first_poisoned_byte(self.device_offset(offset), n)
        {
            n = good.min(n);
        }
        // SAFETY: as in `copy_from`: `offset + n <= self.len()`, the source pages are
        // valid for the section, and `dst` is an exclusive Rust slice of >= n bytes.
        unsafe {
            std::ptr::copy_nonoverlapping(self.addr.as_ptr().add(offset), dst.as_mut_ptr(), n);
        }
        n
    }

    /// Copies `len` bytes from `src` at `src_offset` into this range at `offset` with a
    /// machine-check-safe read (`copy_mc_to_kernel` between two device ranges, as
    /// copy-on-write and unshare use it); returns bytes copied: short where the source
    /// has poison (when its device has NOMC) or either range ends, 0 if either device
    /// is dead. The ranges may overlap.
    pub fn copy_from_device<S: ?Sized + DaxOperations>(
        &self,
        offset: usize,
        src: &DirectAccess<'_, S>,
        src_offset: usize,
        len: usize,
    ) -> usize {
        if !self.alive() || !src.alive() {
            return 0;
        }
        let mut n = self.clamp(offset, len).min(src.clamp(src_offset, len));
        if n == 0 {
            return 0;
        }
        if src.dev.flags().contains(DaxFlags::NOMC)
            && let Some(good) = src
                .dev
                .ops
                .first_poisoned_byte(src.device_offset(src_offset), n)
        {
            n = good.min(n);
        }
        // SAFETY: `offset + n <= self.len()` and `src_offset + n <= src.len()` (clamp),
        // so both ranges lie in pages their drivers vouched for, valid while both
        // sections (borrowed by `self` and `src`) last. `ptr::copy` allows overlap.
        unsafe {
            std::ptr::copy(
                src.addr.as_ptr().add(src_offset),
                self.addr.as_ptr().add(offset),
                n,
            );
        }
        n
    }

    /// Sets `len` device bytes at `offset` to `byte` with ordinary stores (the
    /// `memset` fs/dax.c does before `dax_flush` when zeroing part of a page); returns
    /// bytes set (0 if dead, cut at the end of the range).
    pub fn fill(&self, offset: usize, byte: u8, len: usize) -> usize {
        if !self.alive() {
            return 0;
        }
        let n = self.clamp(offset, len);
        // SAFETY: `offset + n <= self.len()`, valid for the section as in `copy_from`.
        unsafe { std::ptr::write_bytes(self.addr.as_ptr().add(offset), byte, n) };
        n
    }

    /// Writes back the CPU cache lines overlapping `offset .. offset + len`
    /// (`dax_flush`), including partly covered first and last lines, but only when
    /// the device has the write-cache flag; otherwise does nothing. No fence: see
    /// [`DaxDevice::flush`].
    pub fn flush(&self, offset: usize, len: usize) {
        if !self.dev.write_cache_enabled() {
            return;
        }
        let n = self.clamp(offset, len);
        if n == 0 {
            return;
        }
        // SAFETY: `offset + n <= self.len()`: cache write-back of mapped memory we
        // may access.
        unsafe { persist::flush_range(self.addr.as_ptr().add(offset), n) };
    }

    /// Clears poison and writes `src` at `offset` through the driver
    /// (`dax_recovery_write`): bytes written, 0 when the driver has no recovery write
    /// or it failed. Like the kernel it does not re-check liveness (it follows a
    /// successful `direct_access` in the same section). A range running past the end
    /// is cut short.
    pub fn recovery_write(&self, offset: usize, src: &[u8]) -> usize {
        let n = self.clamp(offset, src.len());
        if n == 0 {
            return 0;
        }
        // SAFETY: `offset + n <= self.len()`, so the pointer is inside the range the
        // driver returned for `self.pgoff`, and the section borrowed by `self` is held.
        let addr = unsafe { self.addr.add(offset) };
        // SAFETY: the driver's contract: the range comes from its own direct_access for
        // `self.pgoff` and we hold a read section.
        unsafe { self.dev.ops.recovery_write(self.pgoff, addr, &src[..n]) }.unwrap_or(0)
    }
}
