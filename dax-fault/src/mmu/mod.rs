//! Real mappings: a DAX file mapped into this process, its faults served by the
//! engine (Linux).
//!
//! [`MmuMapping::map`] reserves a 2 MiB-aligned range of address space with no access
//! and records it in a table the signal handler searches without locks. A load or
//! store there faults; the SIGSEGV handler (installed once, chaining to the previous
//! one for addresses that are not ours, so Rust's stack-overflow report keeps
//! working) runs the memory manager's dispatch — PMD fault first, PTE fault after a
//! fallback, mkwrite on read-only shared pages, private copy-on-write — which calls
//! the filesystem's [`VmOps`] and so [`dax_iomap_fault`](crate::dax_iomap_fault). Its
//! page-table calls become `mmap(MAP_FIXED | MAP_SHARED)` of the device's file
//! descriptor at the block's offset: read-only on read faults (holes get anonymous
//! zero pages), writable after a write fault, so dirty tracking and writeback work as
//! in the kernel. A fault the engine answers with SIGBUS raises SIGBUS in the faulting
//! thread with the address in `si_addr` (`BUS_MCEERR_AR`, with `si_addr_lsb`, for
//! poison).
//!
//! # Threads
//!
//! Any number of threads may load and store through a mapping at once, while others
//! call `write(2)`-style I/O, truncate, punch holes or fsync the file. Each 2 MiB
//! block of a mapping has a lock, the kernel's page-table lock: every change to what
//! the block maps checks the state and makes the system call that realises it in one
//! step under that lock, so a fault that loses a race to another finds the other's
//! mapping and leaves it alone (`VM_FAULT_NOPAGE`), as in the kernel.
//!
//! # Write tracking, and how many pages can be written
//!
//! A shared writable mapping of a memfd-backed device tracks 4 KiB stores with
//! userfaultfd write-protect: the first store to a clean page raises SIGBUS, which
//! the handler serves as the mkwrite fault, and writeback re-protects written pages,
//! all without changing the kernel's VMAs. So any number of pages can be written:
//! 100,000 scattered stored pages in one mapping cost a few hundred kernel VMAs
//! (`vm.max_map_count` is 65530). Where userfaultfd is not available (or
//! `DAX_MMU_NO_UFFD=1`), and for read-only and private mappings, protection changes
//! use `mprotect`, which costs a VMA per run of pages whose protection differs from
//! its neighbours'; [`MmuStats::write_tracking`] says which a mapping uses.
//!
//! Because write-tracking faults arrive as SIGBUS, the backend installs a SIGBUS
//! handler next to its SIGSEGV handler; it passes every SIGBUS that is not its own to
//! the handler installed before it. A program that installs its own SIGBUS handler
//! must do it before mapping the first DAX file, or write tracking stops working.
//!
//! # Page sizes
//!
//! A device whose memory maps 4 KiB pages (a memfd, a file; with shmem transparent
//! huge pages, 2 MiB ones too) serves PTE and PMD faults alike. A device that maps
//! only whole 2 MiB pages (hugetlb, 2 MiB-aligned device-dax) follows device-dax's
//! rules: it backs only shared mappings whose length and file offset are multiples of
//! 2 MiB, and `map` refuses anything else with `EINVAL`, so that no access gets a
//! surprise SIGBUS; a fault that would still need a 4 KiB page there (a file whose
//! extents are not whole 2 MiB units) is SIGBUS.
//!
//! # Fault-around (not in the kernel's DAX)
//!
//! A read fault maps the rest of its extent in its 2 MiB block with one `mmap`, and a
//! 2 MiB read fault up to 16 units of its extent, each page or unit with its own
//! clean entry: one signal and one kernel mapping per run instead of per page.
//!
//! # What differs from a kernel mapping
//!
//! Kernel accesses to a mapping (`read(2)` into it, `write(2)` from it) do not fault
//! into this process: call [`MmuMapping::populate`] on the range first. Unmapping part
//! of a mapping, `MADV_DONTNEED` and `mremap` are methods ([`MmuMapping::munmap`],
//! [`MmuMapping::madvise_dontneed`], [`MmuMapping::mremap`]); never call those system
//! calls on a DAX mapping's addresses yourself. A mapping is not inherited usefully
//! across `fork`.
//!
//! See `sys` for what runs in the signal handler and the one rule for users: never
//! touch a DAX mapping while holding a lock of the filesystem behind it.

mod space;
#[allow(unsafe_code)]
mod sys;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use dax_device::{DaxError, PAGE_SIZE, PMD_SIZE};

use crate::mapping::{DaxMapping, MappedVma, VmOps};
use crate::mm::handle_mm_fault;
use crate::vm::{VmFault, Vma};
use crate::writeback::{WritebackControl, dax_writeback_mapping_range};
use space::{MmuPageTable, Shadow};

const PAGE: u64 = PAGE_SIZE as u64;
const PMD: u64 = PMD_SIZE as u64;
/// The largest user address space (`TASK_SIZE` with 4-level page tables on x86-64, a
/// bound for aarch64's 48-bit one too): no mapping can be longer.
const TASK_SIZE: u64 = (1 << 47) - PAGE;

/// How to map: shared or private, read-only or writable, MAP_SYNC, huge pages,
/// populated. [`MapOptions::from_mmap`] reads them from `mmap(2)`'s arguments; the
/// setters build them by hand:
///
/// ```
/// use dax_fault::mmu::MapOptions;
///
/// let opts = MapOptions::new().writable(true).populate(true);
/// assert!(opts.shared && opts.writable && opts.huge && !opts.sync);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct MapOptions {
    /// `MAP_SHARED` (true, the default) or `MAP_PRIVATE`.
    pub shared: bool,
    /// `PROT_WRITE` (default false).
    pub writable: bool,
    /// `MAP_SYNC` (default false): needs a synchronous device.
    pub sync: bool,
    /// Try 2 MiB faults (default true; ext4 and XFS mark DAX mappings `VM_HUGEPAGE`).
    pub huge: bool,
    /// `MAP_POPULATE` (default false): fault the whole mapping in when it is made (for
    /// loads; for stores too in a private writable mapping), as
    /// `populate_vma_page_range` does. A fault that fails there fails the mapping.
    pub populate: bool,
}

impl Default for MapOptions {
    fn default() -> Self {
        MapOptions {
            shared: true,
            writable: false,
            sync: false,
            huge: true,
            populate: false,
        }
    }
}

impl MapOptions {
    /// The defaults: shared, read-only, not MAP_SYNC, huge pages tried, not populated.
    pub fn new() -> Self {
        MapOptions::default()
    }

    /// `MAP_SHARED` (true) or `MAP_PRIVATE` (false).
    pub fn shared(mut self, shared: bool) -> Self {
        self.shared = shared;
        self
    }

    /// `PROT_WRITE`.
    pub fn writable(mut self, writable: bool) -> Self {
        self.writable = writable;
        self
    }

    /// `MAP_SYNC` (needs a synchronous device and a shared mapping).
    pub fn sync(mut self, sync: bool) -> Self {
        self.sync = sync;
        self
    }

    /// Whether to try 2 MiB faults.
    pub fn huge(mut self, huge: bool) -> Self {
        self.huge = huge;
        self
    }

    /// `MAP_POPULATE`: fault the whole mapping in when it is made.
    pub fn populate(mut self, populate: bool) -> Self {
        self.populate = populate;
        self
    }

    /// The options `mmap(2)` with `prot` and `flags` asks for on a DAX file, read as
    /// the kernel's `do_mmap` reads them:
    /// - the mapping type (`flags & 0xf`) is `MAP_SHARED`, `MAP_PRIVATE` or
    ///   `MAP_SHARED_VALIDATE`, anything else `EINVAL`;
    /// - with `MAP_SHARED`, flags the kernel does not know and `MAP_SYNC` are
    ///   ignored (the legacy flag mask); with `MAP_SHARED_VALIDATE`, an unknown flag
    ///   is `EOPNOTSUPP` and `MAP_SYNC` is honoured;
    /// - `MAP_POPULATE` populates; `MAP_STACK` turns huge pages off (`VM_NOHUGEPAGE`);
    ///   address placement (`MAP_FIXED` and friends) is ignored: a DAX mapping is
    ///   always placed by [`MmuMapping::map`], 2 MiB aligned;
    /// - `PROT_WRITE` makes it writable; `PROT_READ` is implied (x86); `PROT_NONE` alone
    ///   and `PROT_EXEC` are `EOPNOTSUPP` (these mappings are never executable);
    ///   `MAP_HUGETLB` is `EINVAL`, as for any file not on hugetlbfs.
    ///
    /// ```
    /// use dax_fault::mmu::MapOptions;
    /// let o = MapOptions::from_mmap(
    ///     libc::PROT_READ | libc::PROT_WRITE,
    ///     libc::MAP_SHARED_VALIDATE | libc::MAP_SYNC,
    /// )?;
    /// assert!(o.shared && o.writable && o.sync);
    /// // Plain MAP_SHARED drops MAP_SYNC, as the kernel does.
    /// assert!(!MapOptions::from_mmap(libc::PROT_READ, libc::MAP_SHARED | libc::MAP_SYNC)?.sync);
    /// // MAP_SHARED_VALIDATE refuses what it does not know.
    /// let e = MapOptions::from_mmap(libc::PROT_READ, libc::MAP_SHARED_VALIDATE | 0x0020_0000);
    /// assert_eq!(e.unwrap_err().errno(), libc::EOPNOTSUPP);
    /// # Ok::<(), dax_device::DaxError>(())
    /// ```
    pub fn from_mmap(prot: i32, flags: i32) -> Result<MapOptions, DaxError> {
        // `LEGACY_MAP_MASK` of include/linux/mman.h (x86-64 values).
        const LEGACY: i32 = libc::MAP_SHARED
            | libc::MAP_PRIVATE
            | libc::MAP_FIXED
            | libc::MAP_ANONYMOUS
            | libc::MAP_DENYWRITE
            | libc::MAP_EXECUTABLE
            | 0x0400_0000 // MAP_UNINITIALIZED
            | libc::MAP_GROWSDOWN
            | libc::MAP_LOCKED
            | libc::MAP_NORESERVE
            | libc::MAP_POPULATE
            | libc::MAP_NONBLOCK
            | libc::MAP_STACK
            | libc::MAP_HUGETLB
            | libc::MAP_32BIT
            | 0x80 // MAP_ABOVE4G
            | libc::MAP_HUGE_2MB
            | libc::MAP_HUGE_1GB;
        const MAP_TYPE: i32 = 0x0f;
        let (shared, flags) = match flags & MAP_TYPE {
            libc::MAP_SHARED => (true, flags & LEGACY),
            libc::MAP_PRIVATE => (false, flags),
            libc::MAP_SHARED_VALIDATE => {
                if flags & !(LEGACY | libc::MAP_SYNC | MAP_TYPE) != 0 {
                    return Err(DaxError::NotSupported {
                        what: "MAP_SHARED_VALIDATE with a flag the kernel does not know",
                    });
                }
                (true, flags)
            }
            _ => {
                return Err(DaxError::InvalidArgument {
                    what: "the mapping type must be MAP_SHARED, MAP_PRIVATE or MAP_SHARED_VALIDATE",
                });
            }
        };
        if prot & (libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC) == 0 {
            return Err(DaxError::NotSupported {
                what: "a PROT_NONE DAX mapping",
            });
        }
        if prot & libc::PROT_EXEC != 0 {
            return Err(DaxError::NotSupported {
                what: "an executable DAX mapping (these mappings are never executable)",
            });
        }
        if flags & libc::MAP_HUGETLB != 0 {
            // As for any file that is not on hugetlbfs.
            return Err(DaxError::InvalidArgument {
                what: "MAP_HUGETLB on a DAX file",
            });
        }
        Ok(MapOptions {
            shared,
            writable: prot & libc::PROT_WRITE != 0,
            sync: flags & libc::MAP_SYNC != 0,
            huge: flags & libc::MAP_STACK == 0,
            populate: flags & libc::MAP_POPULATE != 0,
        })
    }
}

/// What a mapping's faults did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MmuStats {
    /// 4 KiB mappings installed (device pages, zero pages, private copies).
    pub pte: u64,
    /// 2 MiB mappings installed (device or huge zero page).
    pub pmd: u64,
    /// PMD faults that fell back to 4 KiB (a mapping without huge pages has none).
    pub fallback: u64,
    /// Write faults that made a mapped page (or 2 MiB page) writable in place: the
    /// first store after a load, or after writeback (`msync`, fsync) cleaned it.
    pub mkwrite: u64,
    /// Whether 4 KiB stores are tracked with userfaultfd write-protect (no kernel VMA
    /// per written page) rather than `mprotect`.
    pub write_tracking: bool,
}

/// A DAX file mapped into this process (`mmap` of a file on a DAX filesystem); unmapped
/// when dropped.
pub struct MmuMapping {
    shadow: Box<Shadow>,
    slot: usize,
    vma: Arc<MappedVma>,
}

impl fmt::Debug for MmuMapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MmuMapping")
            .field("addr", &format_args!("{:#x}", self.shadow.base))
            .field("len", &self.shadow.len)
            .field("vma", self.vma.vma())
            .finish()
    }
}

impl MmuMapping {
    /// Maps `len` bytes of the file behind `mapping` from file page `pgoff` into this
    /// process, faults going to `ops` (the filesystem's fault handler).
    ///
    /// `len` is rounded up to whole pages, as `mmap(2)` does.
    ///
    /// Errors, in the kernel's order: `EINVAL` for a zero length; `ENOMEM` for a
    /// length that cannot be addressed; `EOVERFLOW` for a mapping that ends past the
    /// largest file offset; `EINVAL` on a device that maps only 2 MiB pages for a
    /// private mapping, one without huge pages, or a length or offset that is not a
    /// multiple of 2 MiB;
    /// `EOPNOTSUPP` for MAP_SYNC on a device that is not synchronous (or a private
    /// MAP_SYNC mapping), and for a device whose driver gives no map source;
    /// `ENOMEM` when address space or the mapping table (1024 live mappings) runs out,
    /// or a fault fails while populating (`populate`).
    pub fn map(
        mapping: &Arc<DaxMapping>,
        ops: Arc<dyn VmOps>,
        pgoff: u64,
        len: u64,
        opts: MapOptions,
    ) -> Result<MmuMapping, DaxError> {
        // do_mmap's order: a zero length is EINVAL; the length is rounded up to whole
        // pages, and one that wraps doing so (or cannot be addressed) is ENOMEM; a
        // mapping that ends past the largest file offset is EOVERFLOW (file_mmap_ok);
        // only then is address space looked for.
        if len == 0 {
            return Err(DaxError::InvalidArgument {
                what: "a mapping of zero bytes",
            });
        }
        let no_room = || DaxError::OutOfMemory {
            what: "a mapping longer than the address space",
        };
        let Some(len) = len.checked_next_multiple_of(PAGE) else {
            return Err(no_room());
        };
        if pgoff.checked_add(len / PAGE).is_none() {
            return Err(DaxError::Overflow {
                what: "the mapping's page offset wraps",
            });
        }
        // No room for it in a process's address space (47 bits on x86-64).
        if len > TASK_SIZE || usize::try_from(len).is_err() {
            return Err(no_room());
        }
        if pgoff
            .checked_mul(PAGE)
            .and_then(|o| o.checked_add(len))
            .is_none_or(|e| e > i64::MAX as u64)
        {
            return Err(DaxError::Overflow {
                what: "the mapping reaches past the largest file offset",
            });
        }
        let (small_pages, trackable) = {
            let src = mapping
                .device()
                .driver()
                .map_source()
                .ok_or(DaxError::NotSupported {
                    what: "the device cannot be mapped into a process (its driver has no map source)",
                })?;
            (src.page_size == PAGE_SIZE, sys::uffd::trackable(src.fd))
        };
        if !small_pages {
            // Device-dax rules: only whole, aligned 2 MiB pages, only shared.
            if !opts.shared {
                return Err(DaxError::InvalidArgument {
                    what: "a device that maps only 2 MiB pages (hugetlb, device-dax) cannot back a private mapping: copy-on-write needs 4 KiB pages",
                });
            }
            if !opts.huge || !len.is_multiple_of(PMD) || !pgoff.is_multiple_of(PMD / PAGE) {
                return Err(DaxError::InvalidArgument {
                    what: "a device that maps only 2 MiB pages (hugetlb, device-dax) needs a huge mapping whose length and file offset are multiples of 2 MiB",
                });
            }
        }
        sys::install(space::resolve)?;
        sys::server::start();
        sys::prepare_thread()?;
        let tracked =
            opts.shared && opts.writable && small_pages && trackable && sys::uffd::available();
        let base = sys::reserve(len as usize, PMD_SIZE)?;
        let made = (|| {
            let vma = Vma::new(base, len, pgoff)?
                .shared(opts.shared)
                .writable(opts.writable)
                .sync(opts.sync)
                .huge(opts.huge);
            mapping.mmap_with(vma, Arc::new(MmuPageTable), ops)
        })();
        let vma = match made {
            Ok(v) => v,
            Err(e) => {
                sys::release(base, len);
                return Err(e);
            }
        };
        let mut shadow = Box::new(Shadow::new(base, len, tracked, small_pages));
        shadow.vma = Some(vma.clone());
        // From here a drop of `vma` releases the reservation.
        let slot = match space::publish(&shadow) {
            Ok(s) => s,
            Err(e) => {
                shadow.vma = None;
                return Err(e);
            }
        };
        let m = MmuMapping { shadow, slot, vma };
        if opts.populate {
            // Private writable mappings are populated for stores (their copies made
            // now), shared ones for loads, as populate_vma_page_range does.
            let write = opts.writable && !opts.shared;
            m.populate(0, m.len(), write)
                .map_err(|_| DaxError::OutOfMemory {
                    what: "MAP_POPULATE: a fault failed while populating the mapping",
                })?;
        }
        Ok(m)
    }

    /// The first byte of the mapping.
    pub fn as_ptr(&self) -> *mut u8 {
        self.shadow.base as *mut u8
    }

    /// Its length in bytes.
    pub fn len(&self) -> usize {
        self.shadow.len as usize
    }

    /// Never true (a mapping has at least one page).
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The engine's view of the mapping (its VMA, page table and file mapping).
    pub fn vma(&self) -> &Arc<MappedVma> {
        &self.vma
    }

    /// Faults served so far.
    pub fn stats(&self) -> MmuStats {
        MmuStats {
            pte: self.shadow.pte_maps.load(Ordering::Relaxed),
            pmd: self.shadow.pmd_maps.load(Ordering::Relaxed),
            fallback: self.shadow.fallbacks.load(Ordering::Relaxed),
            mkwrite: self.shadow.mkwrites.load(Ordering::Relaxed),
            write_tracking: self.shadow.tracked,
        }
    }

    fn range(&self, offset: usize, len: usize) -> Result<(u64, u64), DaxError> {
        let end = offset.checked_add(len).filter(|&e| e <= self.len());
        match end {
            Some(e) => Ok((
                self.shadow.base + offset as u64,
                self.shadow.base + e as u64,
            )),
            None => Err(DaxError::InvalidArgument {
                what: "range outside the mapping",
            }),
        }
    }

    /// Faults in `offset .. offset + len` now, for loads or (with `write`) stores, as
    /// `MAP_POPULATE`/`madvise(MADV_POPULATE_WRITE)` do: needed before the kernel
    /// itself accesses the range (`read(2)` into it, `write(2)` from it), which would
    /// otherwise fail with `EFAULT`. Returns the fault result that stopped it.
    pub fn populate(&self, offset: usize, len: usize, write: bool) -> Result<(), VmFault> {
        let (lo, hi) = self.range(offset, len).map_err(|_| VmFault::SIGSEGV)?;
        let s = &self.shadow;
        // 4 KiB runs whose kernel page-table entries are still to be filled (2 MiB
        // mappings are filled when they are made).
        let mut small: Vec<(u64, u64)> = Vec::new();
        let mut a = lo & !(PAGE - 1);
        space::populating(|| {
            while a < hi {
                if s.gone(a) {
                    return Err(VmFault::SIGSEGV);
                }
                if s.present(a).is_none_or(|w| write && !w) {
                    handle_mm_fault(&MmuPageTable, &self.vma, a, write)?;
                }
                if s.is_huge(a) {
                    a = (a & !(PMD - 1)) + PMD;
                } else {
                    match small.last_mut() {
                        Some((_, end)) if *end == a => *end += PAGE,
                        _ => small.push((a, a + PAGE)),
                    }
                    a += PAGE;
                }
            }
            Ok(())
        })?;
        // Then the kernel's own entries, so that the range takes no fault at all
        // afterwards (best effort: a racing truncate may have unmapped a part).
        for (s, e) in small {
            sys::populate(s, e.min(hi.next_multiple_of(PAGE)), write);
        }
        Ok(())
    }

    /// Faults `offset .. offset + len` in (for stores with `write`), then runs
    /// `copy(addr, at, n)` over it, piece by piece with each 2 MiB block's
    /// page-table lock held, at addresses checked mapped under that lock, so the copy
    /// itself never faults; `at` is the piece's offset from `offset`. A piece found
    /// unmapped meanwhile (a racing truncate, hole punch, device removal) is faulted
    /// in again and the whole copy redone (loads and stores of the same bytes are
    /// idempotent); a fault that fails ends it with its result.
    fn copy_in(
        &self,
        offset: usize,
        len: usize,
        write: bool,
        mut copy: impl FnMut(u64, usize, usize),
    ) -> Result<(), VmFault> {
        loop {
            // `populate` checks the range first (SIGSEGV outside the mapping).
            self.populate(offset, len, write)?;
            let base = self.shadow.base + offset as u64;
            let left = self
                .shadow
                .copy_locked(base, base + len as u64, write, |lo, hi| {
                    copy(lo, (lo - base) as usize, (hi - lo) as usize)
                });
            if left.is_none() {
                return Ok(());
            }
        }
    }

    /// Copies `buf.len()` bytes from `offset` of the mapping into `buf`: the volatile
    /// read accessor. Pages are faulted in first as loads would fault them (through
    /// [`populate`](Self::populate), so no signal is involved), then read with
    /// volatile loads, never through a `&[u8]` over device memory (other threads,
    /// mappings and processes may write it at any time), with each 2 MiB block's
    /// page-table lock held so that nothing unmaps them meanwhile: a page that a
    /// racing truncate, hole punch or device removal unmaps is faulted again and gets
    /// what a fault there gets. So the accessors never raise a signal: a range
    /// outside the mapping or unmapped with [`munmap`](Self::munmap) is
    /// `VM_FAULT_SIGSEGV`; a fault the engine cannot serve (past the end of the file,
    /// poison, a removed device) is its `VM_FAULT_*` value. `buf` must not lie in a
    /// DAX mapping (it cannot, as a Rust slice).
    #[doc(alias = "read")]
    #[allow(unsafe_code)]
    pub fn load(&self, offset: usize, buf: &mut [u8]) -> Result<(), VmFault> {
        self.copy_in(offset, buf.len(), false, |addr, at, n| {
            // SAFETY: `copy_in` passes a piece of this mapping it checked mapped
            // under the page-table lock it holds (nothing can unmap it meanwhile);
            // `at + n <= buf.len()`.
            unsafe { sys::load(addr, &mut buf[at..at + n]) }
        })
    }

    /// Copies `data` to `offset` of the mapping: the volatile write accessor, faulting
    /// pages in as stores would first. As [`load`](Self::load); a read-only mapping is
    /// `VM_FAULT_SIGSEGV`.
    #[doc(alias = "write")]
    #[allow(unsafe_code)]
    pub fn store(&self, offset: usize, data: &[u8]) -> Result<(), VmFault> {
        self.copy_in(offset, data.len(), true, |addr, at, n| {
            // SAFETY: as in `load`, the piece checked writable.
            unsafe { sys::store(addr, &data[at..at + n]) }
        })
    }

    /// Stores `byte` into `len` bytes from `offset` (volatile stores; `memset`). As
    /// [`store`](Self::store).
    #[allow(unsafe_code)]
    pub fn fill(&self, offset: usize, len: usize, byte: u8) -> Result<(), VmFault> {
        self.copy_in(offset, len, true, |addr, _, n| {
            // SAFETY: as in `store`.
            unsafe { sys::fill(addr, n, byte) }
        })
    }

    /// Copies `len` bytes from offset `src` to offset `dst` of the mapping (volatile;
    /// the ranges may overlap, as `memmove`). The source is faulted in for loads and
    /// the destination for stores first. Unlike [`store`](Self::store) it copies
    /// without the page-table locks (a partial overlapping copy could not be redone):
    /// a page a racing truncate or removal unmaps between the two steps faults again
    /// during the copy and gets what a store through [`as_ptr`](Self::as_ptr) would
    /// (SIGBUS past the end of the file).
    #[allow(unsafe_code)]
    pub fn copy_within(&self, src: usize, dst: usize, len: usize) -> Result<(), VmFault> {
        self.populate(src, len, false)?;
        self.populate(dst, len, true)?;
        // SAFETY: as in `load`, for both ranges.
        unsafe {
            sys::copy_within(
                self.shadow.base + src as u64,
                self.shadow.base + dst as u64,
                len,
            )
        };
        Ok(())
    }

    /// The unit the mapping's pages come in: 4 KiB, or 2 MiB on a device that maps
    /// only 2 MiB pages (as `munmap` of a hugetlb mapping works in huge pages).
    fn unit(&self) -> u64 {
        if self.shadow.small_pages { PAGE } else { PMD }
    }

    /// `offset .. offset + len` as the kernel's `munmap`/`madvise` take a span: the
    /// start aligned to the unit (else `EINVAL`), the length rounded up to it, inside
    /// the mapping (else `EINVAL`).
    fn span(&self, offset: usize, len: usize) -> Result<(u64, u64), DaxError> {
        let unit = self.unit();
        if !(offset as u64).is_multiple_of(unit) {
            return Err(DaxError::InvalidArgument {
                what: "the start of the span must be aligned to the mapping's page size",
            });
        }
        let len = (len as u64)
            .checked_next_multiple_of(unit)
            .and_then(|l| usize::try_from(l).ok())
            .ok_or(DaxError::InvalidArgument {
                what: "span length overflows",
            })?;
        self.range(offset, len)
    }

    /// Unmaps `offset .. offset + len` for good (`munmap(2)` of part of the mapping):
    /// its pages are zapped through the same lock as any other change, and from then
    /// on an access there is a SIGSEGV, as after the kernel's `munmap`; the rest of the
    /// mapping keeps working. The addresses stay reserved (no access) until the
    /// mapping is dropped, so nothing else is placed there meanwhile. The file's
    /// entries stay (the kernel's `munmap` does not touch the page cache). As the
    /// kernel's: `offset` must be page aligned (2 MiB aligned on a device that maps
    /// only 2 MiB pages) and `len` is rounded up to that; a zero `len` or a span past
    /// the mapping is `EINVAL`.
    pub fn munmap(&self, offset: usize, len: usize) -> Result<(), DaxError> {
        if len == 0 {
            return Err(DaxError::InvalidArgument {
                what: "munmap of zero bytes",
            });
        }
        let (lo, hi) = self.span(offset, len)?;
        self.shadow.retire(lo, hi);
        Ok(())
    }

    /// `madvise(MADV_DONTNEED)` of `offset .. offset + len`: zaps the span's mappings,
    /// private copies included (`zap_page_range_single`), so the next access faults
    /// again and, in a private mapping, sees the file anew. Alignment and rounding as
    /// [`munmap`](Self::munmap); a zero `len` does nothing.
    pub fn madvise_dontneed(&self, offset: usize, len: usize) -> Result<(), DaxError> {
        let (lo, hi) = self.span(offset, len)?;
        if lo < hi {
            crate::pagetable::PageTable::unmap(&MmuPageTable, lo, hi - lo, true);
        }
        Ok(())
    }

    /// `mremap(2)`: shrinking unmaps the tail as [`munmap`](Self::munmap) does
    /// (`new_len` rounded up to the page size); the same length does nothing. A DAX
    /// mapping cannot grow or move here (its address range is reserved when it is
    /// made): `EOPNOTSUPP`; make a new mapping instead. A zero `new_len` is `EINVAL`.
    /// Never call the system call itself on a DAX mapping's addresses: the handler
    /// would no longer know them.
    pub fn mremap(&self, new_len: usize) -> Result<(), DaxError> {
        let unit = self.unit();
        let new_len = (new_len as u64).checked_next_multiple_of(unit);
        let new_len = match new_len {
            Some(l) if l > 0 => l,
            _ => {
                return Err(DaxError::InvalidArgument {
                    what: "a mapping's new length must be more than zero",
                });
            }
        };
        match new_len.cmp(&(self.len() as u64)) {
            std::cmp::Ordering::Greater => Err(DaxError::NotSupported {
                what: "a DAX mapping cannot grow or move: map the file again",
            }),
            std::cmp::Ordering::Equal => Ok(()),
            std::cmp::Ordering::Less => {
                self.munmap(new_len as usize, self.len() - new_len as usize)
            }
        }
    }

    /// Writes dirty data of `offset .. offset + len` back from the CPU cache and
    /// write-protects it again (`msync(MS_SYNC)`: `dax_writeback_mapping_range` over
    /// the file range it shows). Metadata is the filesystem's: use its fsync for that.
    pub fn msync(&self, offset: usize, len: usize) -> Result<(), DaxError> {
        let (lo, hi) = self.range(offset, len)?;
        if lo == hi {
            return Ok(());
        }
        let v = self.vma.vma();
        let start = v.page_index(lo) * PAGE + (lo % PAGE);
        let end = v.page_index(hi - 1) * PAGE + ((hi - 1) % PAGE);
        let m = self.vma.mapping();
        dax_writeback_mapping_range(m, m.device(), &WritebackControl::sync_all(start..=end))
    }
}

/// Gives the calling thread a large alternate signal stack, so its faults on DAX
/// mappings are served in its own signal handler (fast) rather than handed to the
/// fault-server thread (two context switches). [`MmuMapping::map`] does it for the
/// thread that maps; call it in other threads that touch mappings often. Without it
/// everything still works, only slower.
pub fn prepare_thread() -> Result<(), DaxError> {
    sys::prepare_thread()
}

impl Drop for MmuMapping {
    fn drop(&mut self) {
        // No handler or page-table call can reach the shadow after this; then the
        // VMA goes (its release unmaps the range) once its last user drops it.
        space::unpublish(self.slot);
        self.shadow.vma = None;
    }
}
