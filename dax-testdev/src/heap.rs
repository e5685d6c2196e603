//! [`HeapMemory`]: device memory from the Rust allocator, behind [`Backing::Heap`].
//!
//! No file descriptor, no `mmap`, no system call: the one backing that runs under
//! Miri, which interprets the pure parts of the workspace (badblocks, the iomap
//! iterator and `dax_iomap_rw`, the mapping index, the simulated page table) over it
//! and checks every raw copy into and out of it for bounds, provenance and data races.
//! `MemDeviceBuilder` makes it the default under `cfg(miri)`.
//!
//! The memory is one zeroed allocation aligned to 2 MiB, like `dax_drivers`' mappings,
//! so that the pfn (address >> 12) of every 2 MiB-aligned device offset is 512-aligned,
//! as PMD faults need. Addresses handed out keep the allocation's provenance (strict
//! provenance: the pfn is read with `addr()`, no integer ever becomes a pointer).
//!
//! Like a mapping, it is reached only through raw-pointer copies, never as a slice:
//! [`DaxOperations`](dax_device::DaxOperations)'s contract, which `MemDevice` passes on,
//! forbids forming `&[u8]` over device memory.
//!
//! [`Backing::Heap`]: crate::Backing::Heap

use std::alloc::Layout;
use std::ptr::NonNull;

use dax_device::{DaxError, PAGE_SHIFT, PAGE_SIZE, PMD_SIZE, Pfn, RawAccess, persist};

/// One heap allocation standing in for device memory.
pub(crate) struct HeapMemory {
    ptr: NonNull<u8>,
    layout: Layout,
}

// SAFETY: the allocation is owned by this object and freed only on drop; no method
// hands out a reference into it, only raw pointers for bounds-checked copies (as for
// `dax_drivers`' `Region`, a second thread copying through them adds nothing a second
// mapping of shared memory could not do).
unsafe impl Send for HeapMemory {}
// SAFETY: see `Send`: every access through `&self` is a raw-pointer copy.
unsafe impl Sync for HeapMemory {}

impl HeapMemory {
    /// `len` zeroed bytes, aligned to 2 MiB. `len` must be a non-zero multiple of 4096
    /// (`EINVAL` otherwise); `ENOMEM` if the allocator refuses.
    pub(crate) fn new(len: u64) -> Result<HeapMemory, DaxError> {
        let len = usize::try_from(len).map_err(|_| DaxError::Overflow {
            what: "device size does not fit the address space",
        })?;
        if len == 0 || !len.is_multiple_of(PAGE_SIZE) {
            return Err(DaxError::InvalidArgument {
                what: "device size is not a non-zero multiple of 4096",
            });
        }
        let layout = Layout::from_size_align(len, PMD_SIZE).map_err(|_| DaxError::Overflow {
            what: "device size plus alignment",
        })?;
        // SAFETY: `layout` has a non-zero size (checked above).
        let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
        let ptr = NonNull::new(ptr).ok_or(DaxError::Os {
            errno: libc::ENOMEM,
            what: "allocating heap device memory",
        })?;
        Ok(HeapMemory { ptr, layout })
    }

    /// Length in bytes.
    pub(crate) fn len(&self) -> usize {
        self.layout.size()
    }

    /// Device size in pages.
    pub(crate) fn nr_pages(&self) -> u64 {
        (self.len() / PAGE_SIZE) as u64
    }

    /// The pfn of device page 0: its address >> 12, 512-aligned (the allocation is
    /// 2 MiB aligned).
    pub(crate) fn base_pfn(&self) -> Pfn {
        Pfn(self.ptr.as_ptr().addr() as u64 >> PAGE_SHIFT)
    }

    /// The device offset of `addr`, if it lies in the allocation.
    pub(crate) fn offset_of(&self, addr: *const u8) -> Option<u64> {
        let off = addr.addr().checked_sub(self.ptr.as_ptr().addr())?;
        (off < self.len()).then_some(off as u64)
    }

    /// The byte range `offset .. offset + len` as a `usize` offset, if inside.
    fn check(&self, offset: u64, len: usize) -> Result<usize, DaxError> {
        match offset.checked_add(len as u64) {
            Some(end) if end <= self.len() as u64 => Ok(offset as usize),
            _ => Err(DaxError::InvalidArgument {
                what: "byte range runs past the end of the device",
            }),
        }
    }

    /// Address of byte `off`, which must be at most `len` (checked by the callers).
    fn at(&self, off: usize) -> *mut u8 {
        debug_assert!(off <= self.len());
        // `wrapping_add` keeps the provenance and needs no proof; `off <= len` keeps
        // the result inside the allocation or one past it.
        self.ptr.as_ptr().wrapping_add(off)
    }

    /// The answer of `direct_access` for `pgoff`: its address and pfn and every page
    /// from there to the end; 0 pages past the end.
    pub(crate) fn direct_access(&self, pgoff: u64) -> RawAccess {
        let pages = self.nr_pages();
        if pgoff >= pages {
            return RawAccess::none();
        }
        // pgoff < nr_pages, so pgoff * PAGE_SIZE < len: fits usize, inside.
        let off = pgoff as usize * PAGE_SIZE;
        let Some(addr) = NonNull::new(self.at(off)) else {
            return RawAccess::none();
        };
        RawAccess {
            addr,
            pfn: Pfn(self.base_pfn().0 + pgoff),
            pages: pages - pgoff,
        }
    }

    /// Copies device bytes at `offset` into `buf` with ordinary loads.
    pub(crate) fn read(&self, offset: u64, buf: &mut [u8]) -> Result<(), DaxError> {
        let off = self.check(offset, buf.len())?;
        // SAFETY: `off .. off + buf.len()` lies inside the allocation (checked above);
        // `buf` is an exclusive Rust buffer, which cannot overlap the allocation since
        // no slice over it is ever formed.
        unsafe { std::ptr::copy_nonoverlapping(self.at(off), buf.as_mut_ptr(), buf.len()) };
        Ok(())
    }

    /// Copies `buf` to device bytes at `offset` bypassing the cache, then fences (the
    /// block path's `memcpy_flushcache` write, as `MemDriver::write`).
    pub(crate) fn write(&self, offset: u64, buf: &[u8]) -> Result<(), DaxError> {
        let off = self.check(offset, buf.len())?;
        // SAFETY: as in `read`, with the roles swapped.
        unsafe { persist::copy_flushcache(self.at(off), buf.as_ptr(), buf.len()) };
        persist::drain();
        Ok(())
    }

    /// Copies `buf` to device bytes at `offset` with ordinary stores (no flush).
    pub(crate) fn write_cached(&self, offset: u64, buf: &[u8]) -> Result<(), DaxError> {
        let off = self.check(offset, buf.len())?;
        // SAFETY: as in `read`, with the roles swapped.
        unsafe { std::ptr::copy_nonoverlapping(buf.as_ptr(), self.at(off), buf.len()) };
        Ok(())
    }

    /// Sets `len` device bytes at `offset` to zero bypassing the cache, then fences.
    pub(crate) fn zero(&self, offset: u64, len: u64) -> Result<(), DaxError> {
        let len = usize::try_from(len).map_err(|_| DaxError::Overflow {
            what: "zeroing length does not fit the address space",
        })?;
        let off = self.check(offset, len)?;
        // SAFETY: `off .. off + len` lies inside the allocation (checked above).
        unsafe { persist::memset_persist(self.at(off), 0, len, persist::PersistFlags::NODRAIN) };
        persist::drain();
        Ok(())
    }
}

impl Drop for HeapMemory {
    fn drop(&mut self) {
        // SAFETY: `ptr` came from `alloc_zeroed(layout)` in `new` and is freed only here;
        // no pointer into it outlives the device (dax-device uses device memory only
        // inside read sections of the DaxDevice that owns this memory).
        unsafe { std::alloc::dealloc(self.ptr.as_ptr(), self.layout) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heap_memory_is_2m_aligned_zeroed_and_bounds_checked() {
        let m = HeapMemory::new(3 * PAGE_SIZE as u64).unwrap();
        assert_eq!(m.nr_pages(), 3);
        assert!(m.base_pfn().0.is_multiple_of(512));
        let mut buf = [1u8; 8];
        m.read(3 * PAGE_SIZE as u64 - 8, &mut buf).unwrap();
        assert_eq!(buf, [0; 8]);
        m.write(100, b"heap").unwrap();
        m.write_cached(104, b"dev").unwrap();
        let mut back = [0u8; 7];
        m.read(100, &mut back).unwrap();
        assert_eq!(&back, b"heapdev");
        m.zero(0, PAGE_SIZE as u64).unwrap();
        m.read(100, &mut back).unwrap();
        assert_eq!(back, [0; 7]);
        assert!(m.read(3 * PAGE_SIZE as u64 - 7, &mut buf).is_err());
        assert!(m.write(u64::MAX, b"x").is_err());
        let da = m.direct_access(2);
        assert_eq!((da.pfn.0 - m.base_pfn().0, da.pages), (2, 1));
        assert_eq!(m.offset_of(da.addr.as_ptr()), Some(2 * PAGE_SIZE as u64));
        assert_eq!(m.direct_access(3).pages, 0);
        assert!(HeapMemory::new(0).is_err());
        assert!(HeapMemory::new(100).is_err());
    }
}
