//! What the memory manager tells a fault handler and what it gets back: fault results
//! (`vm_fault_t`, `VM_FAULT_*`), fault flags (`FAULT_FLAG_*`), the description of a
//! user mapping (the parts of `struct vm_area_struct` DAX reads) and of one fault
//! (`struct vm_fault`).

use std::fmt;

use dax_device::{DaxError, PAGE_SIZE, PMD_SIZE};

bitflags::bitflags! {
    /// The result of a fault handler (`vm_fault_t`), with the kernel's bit values
    /// (include/linux/mm_types.h). An empty value is the PMD handler's "0: retry".
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct VmFault: u32 {
        /// `VM_FAULT_OOM`: out of memory (index or page-table allocation, `ENOMEM`).
        const OOM = 0x0001;
        /// `VM_FAULT_SIGBUS`: the access gets SIGBUS (beyond EOF, I/O error, dead
        /// device, a filesystem error).
        const SIGBUS = 0x0002;
        /// `VM_FAULT_MAJOR`: the fault had to allocate storage (IOMAP_F_NEW).
        const MAJOR = 0x0004;
        /// `VM_FAULT_HWPOISON`: the page is poisoned (SIGBUS with `BUS_MCEERR_AR`).
        const HWPOISON = 0x0010;
        /// `VM_FAULT_HWPOISON_LARGE`: a poisoned huge page.
        const HWPOISON_LARGE = 0x0020;
        /// `VM_FAULT_SIGSEGV`: the access gets SIGSEGV.
        const SIGSEGV = 0x0040;
        /// `VM_FAULT_NOPAGE`: the handler installed the mapping itself (or raced and
        /// left it); the access is retried.
        const NOPAGE = 0x0100;
        /// `VM_FAULT_LOCKED`: the handler returns a locked page (never from DAX).
        const LOCKED = 0x0200;
        /// `VM_FAULT_RETRY`: the mmap lock was dropped (never from DAX).
        const RETRY = 0x0400;
        /// `VM_FAULT_FALLBACK`: a huge mapping is not possible here; retry with
        /// smaller pages.
        const FALLBACK = 0x0800;
        /// `VM_FAULT_DONE_COW`: the private copy-on-write page was filled and mapped.
        const DONE_COW = 0x1000;
        /// `VM_FAULT_NEEDDSYNC`: a synchronous (MAP_SYNC) write fault needs
        /// [`dax_finish_sync_fault`](crate::dax_finish_sync_fault) before the page may
        /// be mapped writable.
        const NEEDDSYNC = 0x2000;
        /// `VM_FAULT_COMPLETED`: the fault completed with the mmap lock released
        /// (never from DAX).
        const COMPLETED = 0x4000;
    }
}

impl VmFault {
    /// `VM_FAULT_ERROR`: the bits that mean the fault failed.
    pub const ERROR: VmFault = VmFault::OOM
        .union(VmFault::SIGBUS)
        .union(VmFault::SIGSEGV)
        .union(VmFault::HWPOISON)
        .union(VmFault::HWPOISON_LARGE)
        .union(VmFault::FALLBACK);

    /// The fault result for an errno-style error (`vmf_error`, `dax_fault_return`):
    /// `ENOMEM` → OOM, `EHWPOISON` → HWPOISON, anything else → SIGBUS.
    pub fn from_error(err: &DaxError) -> VmFault {
        match err.errno() {
            libc::ENOMEM => VmFault::OOM,
            libc::EHWPOISON => VmFault::HWPOISON,
            _ => VmFault::SIGBUS,
        }
    }

    /// Whether any error bit is set (`ret & VM_FAULT_ERROR`).
    pub fn is_error(self) -> bool {
        self.intersects(VmFault::ERROR)
    }
}

bitflags::bitflags! {
    /// Why a fault happened (`enum fault_flag`, the kernel's bit values).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct FaultFlags: u32 {
        /// `FAULT_FLAG_WRITE`: the access was a store.
        const WRITE = 1 << 0;
        /// `FAULT_FLAG_MKWRITE`: a store to a page mapped read-only (the
        /// `pfn_mkwrite` / `page_mkwrite` path).
        const MKWRITE = 1 << 1;
        /// `FAULT_FLAG_USER`: the access came from user space.
        const USER = 1 << 6;
        /// `FAULT_FLAG_REMOTE`: the fault is on behalf of another process or a pin
        /// (`get_user_pages`).
        const REMOTE = 1 << 7;
    }
}

/// The part of a user mapping (`struct vm_area_struct`) the DAX core reads: where it
/// sits, which file pages it shows, and how it was mapped.
///
/// Built with [`Vma::new`], which checks the geometry, then the `shared`, `writable`
/// and `sync` builders. A `MAP_PRIVATE` mapping (`shared(false)`) gets private
/// copy-on-write copies of the pages it writes; a `MAP_SYNC` mapping (`sync(true)`,
/// `VM_SYNC`) only ever maps pages writable once the metadata that reaches them is
/// durable.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Vma {
    start: u64,
    len: u64,
    pgoff: u64,
    shared: bool,
    writable: bool,
    sync: bool,
    huge: bool,
}

impl fmt::Debug for Vma {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Vma({:#x}..{:#x} @pgoff {}{}{}{}{})",
            self.start,
            self.start + self.len,
            self.pgoff,
            if self.shared { " shared" } else { " private" },
            if self.writable { " rw" } else { " ro" },
            if self.sync { " sync" } else { "" },
            if self.huge { " huge" } else { "" },
        )
    }
}

impl Vma {
    /// A shared, read-only, huge-page-capable mapping of `len` bytes at virtual
    /// address `start` showing the file from page `pgoff` on.
    ///
    /// [`DaxError::InvalidArgument`] when `start` or `len` is not page aligned, `len`
    /// is 0, or the range wraps past the end of the address space or of the largest
    /// file offset.
    pub fn new(start: u64, len: u64, pgoff: u64) -> Result<Vma, DaxError> {
        let page = PAGE_SIZE as u64;
        if !start.is_multiple_of(page) || !len.is_multiple_of(page) || len == 0 {
            return Err(DaxError::InvalidArgument {
                what: "a mapping needs a page-aligned start and a non-zero page-aligned length",
            });
        }
        if start.checked_add(len).is_none() {
            return Err(DaxError::InvalidArgument {
                what: "mapping wraps past the end of the address space",
            });
        }
        // `file_mmap_ok`: the mapping must end at or before the largest file size
        // (`MAX_LFS_FILESIZE`, `LLONG_MAX`), else EOVERFLOW, as for a page offset that
        // wraps.
        let end = pgoff.checked_mul(page).and_then(|o| o.checked_add(len));
        if end.is_none_or(|e| e > i64::MAX as u64) {
            return Err(DaxError::Overflow {
                what: "mapping reaches past the largest file offset",
            });
        }
        Ok(Vma {
            start,
            len,
            pgoff,
            shared: true,
            writable: false,
            sync: false,
            huge: true,
        })
    }

    /// `MAP_SHARED` (`VM_SHARED`, true) or `MAP_PRIVATE` (false).
    pub fn shared(mut self, shared: bool) -> Vma {
        self.shared = shared;
        self
    }

    /// `PROT_WRITE` (`VM_WRITE`).
    pub fn writable(mut self, writable: bool) -> Vma {
        self.writable = writable;
        self
    }

    /// `MAP_SYNC` (`VM_SYNC`).
    pub fn sync(mut self, sync: bool) -> Vma {
        self.sync = sync;
        self
    }

    /// Whether PMD (2 MiB) faults are tried (`VM_HUGEPAGE` and a PMD-capable
    /// mapping; true by default, as ext4 and XFS set it on DAX mappings).
    pub fn huge(mut self, huge: bool) -> Vma {
        self.huge = huge;
        self
    }

    /// First virtual address (`vm_start`).
    pub fn start(&self) -> u64 {
        self.start
    }

    /// One past the last virtual address (`vm_end`).
    pub fn end(&self) -> u64 {
        self.start + self.len
    }

    /// Length in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Never true: a mapping has at least one page (for clippy's `len` rule).
    pub fn is_empty(&self) -> bool {
        false
    }

    /// File page shown at [`start`](Self::start) (`vm_pgoff`).
    pub fn pgoff(&self) -> u64 {
        self.pgoff
    }

    /// Whether the mapping is `MAP_SHARED`.
    pub fn is_shared(&self) -> bool {
        self.shared
    }

    /// Whether the mapping allows stores.
    pub fn is_writable(&self) -> bool {
        self.writable
    }

    /// Whether the mapping is `MAP_SYNC`.
    pub fn is_sync(&self) -> bool {
        self.sync
    }

    /// Whether PMD faults are tried.
    pub fn is_huge(&self) -> bool {
        self.huge
    }

    /// Whether `addr` lies inside the mapping.
    pub fn contains(&self, addr: u64) -> bool {
        addr >= self.start && addr < self.end()
    }

    /// Number of pages mapped.
    pub fn pages(&self) -> u64 {
        self.len / PAGE_SIZE as u64
    }

    /// File page shown at `addr` (`linear_page_index`). For an address outside the
    /// mapping the answer means nothing (below it: the mapping's first page), but it
    /// never panics.
    pub fn page_index(&self, addr: u64) -> u64 {
        self.pgoff
            .wrapping_add(addr.saturating_sub(self.start) / PAGE_SIZE as u64)
    }

    /// The part of file pages `first .. first + count` this mapping shows, as a
    /// virtual address range `(addr, len)`; `None` when they do not overlap.
    pub fn range_of(&self, first: u64, count: u64) -> Option<(u64, u64)> {
        let lo = first.max(self.pgoff);
        let hi = first.saturating_add(count).min(self.pgoff + self.pages());
        (lo < hi).then(|| {
            (
                self.start + (lo - self.pgoff) * PAGE_SIZE as u64,
                (hi - lo) * PAGE_SIZE as u64,
            )
        })
    }

    /// Whether the 2 MiB-aligned block of virtual addresses holding `addr` lies
    /// inside the mapping (the VMA test of `dax_fault_check_fallback`).
    pub fn holds_pmd(&self, addr: u64) -> bool {
        let pmd = addr & !(PMD_SIZE as u64 - 1);
        pmd >= self.start
            && pmd
                .checked_add(PMD_SIZE as u64)
                .is_some_and(|e| e <= self.end())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_match_linux() {
        assert_eq!(
            VmFault::ERROR.bits(),
            0x0001 | 0x0002 | 0x0040 | 0x0010 | 0x0020 | 0x0800
        );
        assert_eq!(VmFault::NOPAGE.bits(), 0x100);
        assert_eq!(VmFault::NEEDDSYNC.bits(), 0x2000);
        assert_eq!(FaultFlags::MKWRITE.bits(), 2);
    }

    #[test]
    fn errno_to_fault() {
        let os = |errno| DaxError::Os { errno, what: "" };
        assert_eq!(VmFault::from_error(&os(libc::ENOMEM)), VmFault::OOM);
        assert_eq!(
            VmFault::from_error(&DaxError::HwPoison {
                pgoff: 0,
                nr_pages: 1
            }),
            VmFault::HWPOISON
        );
        assert_eq!(VmFault::from_error(&DaxError::Dead), VmFault::SIGBUS);
        assert_eq!(
            VmFault::from_error(&DaxError::NoSpace { what: "" }),
            VmFault::SIGBUS
        );
    }

    #[test]
    fn vma_geometry() {
        assert!(Vma::new(4096, 0, 0).is_err());
        assert!(Vma::new(100, 4096, 0).is_err());
        assert!(Vma::new(u64::MAX - 4095, 8192, 0).is_err());
        assert!(Vma::new(0, 4096, u64::MAX / 4096).is_err());
        let v = Vma::new(0x20_0000, 0x40_0000, 16).unwrap();
        assert_eq!(v.page_index(0x20_1000), 17);
        assert_eq!(v.range_of(0, 17), Some((0x20_0000, 4096)));
        assert_eq!(v.range_of(0, 16), None);
        assert!(v.holds_pmd(0x3f_f000));
        assert!(!v.holds_pmd(0x60_0000));
    }
}
