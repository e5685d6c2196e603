//! [`DirectAccess`]: device pages made reachable by `dax_direct_access`, and every
//! raw access to them: the copies in and out (`dax_copy_from_iter`,
//! `dax_copy_to_iter`), the machine-check-safe copy between two device ranges, fill,
//! cache write-back (`dax_flush`) and `dax_recovery_write`.
//!
//! This is where dax-device dereferences device memory; each `unsafe` block relies on
//! the [`DaxOperations`] contract and on the read section the range borrows.
//!
//! # Concurrent writers
//!
//! Device memory is written by other threads, other mappings and other processes at
//! any time, as in the kernel. The copies here are plain or non-temporal copies
//! through raw pointers, never through references: a copy that races a writer gets
//! whatever bytes the hardware gives (torn at byte granularity at worst on x86-64 and
//! aarch64), as `read(2)` from shared memory does. Rust's abstract memory model calls
//! an unsynchronised access racing another a data race; dax-rs accepts that here, as
//! the kernel's `memcpy` and PMDK do, because volatile copies would cost the
//! non-temporal persistent copies their speed. The mmu backend's accessors
//! (`MmuMapping::load` and friends), which have no such requirement, are volatile.

use std::fmt;
use std::ptr::NonNull;

use super::{DaxAccessMode, DaxDevice, DaxFlags, DaxOperations, DaxReadGuard};
use crate::{DaxError, PAGE_SIZE, Pfn, persist};

/// Device pages `pgoff .. pgoff + pages()` made reachable by
/// [`DaxReadGuard::direct_access`](super::DaxReadGuard::direct_access), valid while
/// the section lasts.
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

impl<'g, D: ?Sized + DaxOperations> DirectAccess<'g, D> {
    /// The body of [`DaxReadGuard::direct_access`] (see there for the checks and
    /// their order). It asks the driver itself, inside `section`, which the result
    /// borrows: so every `DirectAccess` holds an address the driver answered for
    /// `pgoff` and at most the pages it answered, valid while the section lasts. The
    /// `unsafe` blocks below rely on exactly that, and no other constructor exists.
    pub(super) fn translate(
        section: &'g DaxReadGuard<'_, D>,
        pgoff: u64,
        nr_pages: u64,
        mode: DaxAccessMode,
    ) -> Result<Self, DaxError> {
        let dev = section.device();
        if !section.alive() {
            return Err(DaxError::Dead);
        }
        if nr_pages > i64::MAX as u64 {
            return Err(DaxError::InvalidArgument {
                what: "direct_access page count is negative as a long",
            });
        }
        let raw = dev.ops.direct_access(pgoff, nr_pages, mode)?;
        if raw.pages == 0 {
            return Err(DaxError::OutOfRange {
                pgoff,
                dev_pages: dev.ops.nr_pages(),
            });
        }
        Ok(DirectAccess {
            dev,
            addr: raw.addr,
            pfn: raw.pfn,
            pgoff,
            pages: raw.pages.min(nr_pages),
        })
    }

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
    /// is dead. The ranges may overlap; overlap is judged by address, so two ranges
    /// that reach the same memory through different mappings (two devices over one
    /// file) are copied as if they did not overlap.
    pub fn copy_mc_from<S: ?Sized + DaxOperations>(
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
        if n == 0 {
            // `offset` may lie past the range: no pointer may be formed there.
            return 0;
        }
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
