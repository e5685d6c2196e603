//! The memory behind a [`MemDriver`](crate::MemDriver): one mapping, 2 MiB aligned
//! (or more), and the bounds-checked raw copies every other module uses to reach it.
//!
//! With the `unsafe impl DaxOperations` in `driver.rs`, this is the only `unsafe`
//! code of the crate. Device memory is never exposed as a slice: other threads,
//! mappings of the same fd and other processes may write it at any time.
//!
//! The mapping is placed at a 2 MiB-aligned address (the device-dax alignment when
//! that is larger) so that pfns (address >> 12) of 2 MiB-aligned device offsets are
//! 512-aligned, as the PMD fault rules expect. It is made with rustix rather than
//! memmap2 because memmap2 cannot place a mapping at a chosen (aligned) address.
//!
//! A failed `MAP_FIXED` over the reservation can, on kernels before 6.12, leave a hole
//! in it for a moment, which another thread's `mmap` could take before the error path
//! unmaps the reservation; there is no cheap way to close that window from userspace.
//!
//! # Concurrent writers
//!
//! Device memory is written by other threads, other mappings and other processes at
//! any time, as in the kernel. The copies here, like `DirectAccess`'s, are plain or non-temporal copies
//! through raw pointers, never through references: a copy that races a writer gets
//! whatever bytes the hardware gives (torn at byte granularity at worst on x86-64 and
//! aarch64), as `read(2)` from shared memory does. Rust's abstract memory model calls
//! an unsynchronised access racing another a data race; dax-rs accepts that here, as
//! the kernel's `memcpy` and PMDK do, because volatile copies would cost the
//! non-temporal persistent copies their speed. The mmu backend's accessors
//! (`MmuMapping::load` and friends), which have no such requirement, are volatile.

use std::os::fd::{AsFd, OwnedFd};
use std::ptr::NonNull;

use dax_device::{DaxError, PAGE_SIZE, PMD_SIZE, persist};
use rustix::mm::{MapFlags, ProtFlags};

/// One mapping of device memory.
pub(crate) struct Region {
    ptr: NonNull<u8>,
    len: usize,
    fd: Option<OwnedFd>,
}

// SAFETY: the region is memory this object maps and unmaps; the pointer is only used
// for bounds-checked raw-pointer copies, never turned into a reference, so moving it to
// another thread adds nothing a second mapping of the same fd could not do (what
// racing copies see is in the module docs, "Concurrent writers").
unsafe impl Send for Region {}
// SAFETY: see `Send`: no method hands out references into the memory.
unsafe impl Sync for Region {}

fn os_err(what: &'static str, e: rustix::io::Errno) -> DaxError {
    DaxError::Os {
        errno: e.raw_os_error(),
        what,
    }
}

impl Region {
    /// Maps `len` bytes of `fd` (from offset 0), or anonymous memory when `fd` is
    /// `None`, read-write and shared, at an address aligned to `align` (a power of
    /// two; 2 MiB at least, whatever is asked). `populate` prefaults every page
    /// (`MAP_POPULATE`); `huge` asks for transparent huge pages (`MADV_HUGEPAGE`)
    /// before anything is touched, so that shmem allocates 2 MiB pages, which every
    /// later mapping of the same file can map whole.
    pub(crate) fn map(
        fd: Option<OwnedFd>,
        len: usize,
        align: usize,
        populate: bool,
        huge: bool,
    ) -> Result<Region, DaxError> {
        if len == 0 {
            return Err(DaxError::InvalidArgument {
                what: "device size is zero",
            });
        }
        // The reservation's tail is trimmed in whole pages: a length that is not one
        // would leave part of the reservation mapped for good.
        if !len.is_multiple_of(PAGE_SIZE) {
            return Err(DaxError::InvalidArgument {
                what: "device size is not a multiple of 4096",
            });
        }
        if !align.is_power_of_two() {
            return Err(DaxError::InvalidArgument {
                what: "mapping alignment is not a power of two",
            });
        }
        let align = align.max(PMD_SIZE);
        let reserve = len.checked_add(align).ok_or(DaxError::Overflow {
            what: "device size plus alignment slack",
        })?;
        // SAFETY: a fresh PROT_NONE reservation at an address the kernel chooses; it
        // overlaps nothing we own.
        let base = unsafe {
            rustix::mm::mmap_anonymous(
                std::ptr::null_mut(),
                reserve,
                ProtFlags::empty(),
                MapFlags::PRIVATE | MapFlags::NORESERVE,
            )
        }
        .map_err(|e| os_err("reserving device address space", e))? as usize;
        // Cannot overflow: the kernel placed `reserve = len + align` bytes at `base`.
        let aligned = (base + align - 1) & !(align - 1);
        let mut flags = MapFlags::SHARED | MapFlags::FIXED;
        if populate && !huge {
            flags |= MapFlags::POPULATE;
        }
        let prot = ProtFlags::READ | ProtFlags::WRITE;
        let target = aligned as *mut libc::c_void;
        let mapped = match &fd {
            // SAFETY: `aligned .. aligned + len` lies inside the reservation made above
            // (aligned - base < align and reserve = len + align), which nothing else
            // uses, so MAP_FIXED replaces only our own PROT_NONE pages.
            Some(fd) => unsafe { rustix::mm::mmap(target, len, prot, flags, fd.as_fd(), 0) },
            // SAFETY: as above.
            None => unsafe { rustix::mm::mmap_anonymous(target, len, prot, flags) },
        };
        let trim = |start: usize, end: usize| {
            if end > start {
                // SAFETY: `start .. end` is part of our reservation and not in use.
                let _ = unsafe { rustix::mm::munmap(start as *mut libc::c_void, end - start) };
            }
        };
        match mapped {
            Ok(_) => {
                trim(base, aligned);
                trim(aligned + len, base + reserve);
                if huge {
                    // SAFETY: advice on the mapping just made, which is ours alone.
                    let advised = unsafe {
                        rustix::mm::madvise(target, len, rustix::mm::Advice::LinuxHugepage)
                    }
                    .and_then(|()| {
                        if populate {
                            // SAFETY: as above; it only prefaults our own pages.
                            unsafe {
                                rustix::mm::madvise(
                                    target,
                                    len,
                                    rustix::mm::Advice::LinuxPopulateWrite,
                                )
                            }
                        } else {
                            Ok(())
                        }
                    });
                    if let Err(e) = advised {
                        trim(aligned, aligned + len);
                        return Err(os_err("asking for transparent huge pages", e));
                    }
                }
            }
            Err(e) => {
                trim(base, base + reserve);
                return Err(os_err("mapping device memory", e));
            }
        }
        Ok(Region {
            ptr: NonNull::new(aligned as *mut u8).expect("mmap does not return address 0"),
            len,
            fd,
        })
    }

    /// Length in bytes.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Address of byte 0, as a number (it is never dereferenced through this).
    pub(crate) fn base_addr(&self) -> usize {
        self.ptr.as_ptr() as usize
    }

    pub(crate) fn fd(&self) -> Option<&OwnedFd> {
        self.fd.as_ref()
    }

    /// Address of byte `offset`, if `offset <= len`.
    pub(crate) fn ptr_at(&self, offset: usize) -> Option<NonNull<u8>> {
        // SAFETY: offset <= len, so the result is inside the mapping or one past it.
        (offset <= self.len).then(|| unsafe { self.ptr.add(offset) })
    }

    /// The device offset of `addr`, if it lies in the region.
    pub(crate) fn offset_of(&self, addr: *const u8) -> Option<usize> {
        let off = (addr as usize).checked_sub(self.ptr.as_ptr() as usize)?;
        (off < self.len).then_some(off)
    }

    fn check(&self, offset: usize, len: usize) -> Result<(), DaxError> {
        match offset.checked_add(len) {
            Some(end) if end <= self.len => Ok(()),
            _ => Err(DaxError::InvalidArgument {
                what: "range runs past the end of the device",
            }),
        }
    }

    /// Copies device bytes at `offset` into `dst` with ordinary loads.
    pub(crate) fn read(&self, offset: usize, dst: &mut [u8]) -> Result<(), DaxError> {
        self.check(offset, dst.len())?;
        // SAFETY: bounds checked above; `dst` is an exclusive Rust buffer, which cannot
        // overlap the mapping because the mapping is never exposed as a slice.
        unsafe {
            std::ptr::copy_nonoverlapping(
                self.ptr.as_ptr().add(offset),
                dst.as_mut_ptr(),
                dst.len(),
            )
        };
        Ok(())
    }

    /// Copies `src` to device bytes at `offset` bypassing the cache
    /// (`memcpy_flushcache`), then fences.
    pub(crate) fn write_persist(&self, offset: usize, src: &[u8]) -> Result<(), DaxError> {
        self.check(offset, src.len())?;
        // SAFETY: bounds checked above; `src` cannot overlap the mapping (see `read`).
        unsafe { persist::copy_flushcache(self.ptr.as_ptr().add(offset), src.as_ptr(), src.len()) };
        persist::drain();
        Ok(())
    }

    /// Copies `src` to device bytes at `offset` with ordinary stores (no flush).
    pub(crate) fn write_plain(&self, offset: usize, src: &[u8]) -> Result<(), DaxError> {
        self.check(offset, src.len())?;
        // SAFETY: as in `write_persist`.
        unsafe {
            std::ptr::copy_nonoverlapping(src.as_ptr(), self.ptr.as_ptr().add(offset), src.len())
        };
        Ok(())
    }

    /// Sets `len` device bytes at `offset` to `byte` bypassing the cache, then fences.
    pub(crate) fn fill_persist(&self, offset: usize, byte: u8, len: usize) -> Result<(), DaxError> {
        self.check(offset, len)?;
        const CHUNK: usize = 4096;
        let buf = [byte; CHUNK];
        let mut done = 0;
        while done < len {
            let n = CHUNK.min(len - done);
            // SAFETY: offset + done + n <= offset + len, checked above.
            unsafe {
                persist::copy_flushcache(self.ptr.as_ptr().add(offset + done), buf.as_ptr(), n)
            };
            done += n;
        }
        persist::drain();
        Ok(())
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: we own this mapping; no pointer into it outlives the region (dax-device
        // only uses device memory inside read sections of the DaxDevice that owns us).
        let _ = unsafe { rustix::mm::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}
