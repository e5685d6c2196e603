//! The driver contract (`struct dax_operations`, `enum dax_access_mode`): the
//! `unsafe trait` [`DaxOperations`] a driver implements, what its `direct_access`
//! answers ([`RawAccess`]), and how its memory can be mapped ([`MapSource`]).
//!
//! `unsafe` here is declaration only: the trait and its `recovery_write` carry the
//! promises that make [`DirectAccess`](super::DirectAccess)'s raw copies sound.

use std::os::fd::BorrowedFd;
use std::ptr::NonNull;

use crate::{DaxError, Pfn, persist};

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
    /// [`DaxError::OutOfRange`] (`-ERANGE`) in
    /// [`DaxReadGuard::direct_access`](super::DaxReadGuard::direct_access).
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
///
/// [`DaxDevice`]: super::DaxDevice
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
    /// caller holds a read section of the owning [`DaxDevice`](super::DaxDevice).
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
