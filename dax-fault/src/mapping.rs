//! [`DaxMapping`]: a DAX file's `struct address_space` — its index of mapping entries,
//! the user mappings of the file (`i_mmap`), its writeback error state and the
//! counters a test inspects — and [`MappedVma`], one user mapping of the file.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use dax_device::{DaxDevice, DaxError, PAGE_SIZE, Pfn};
use parking_lot::Mutex;

use crate::errseq;
use crate::index::{Entry, EntryKind, MappingIndex};
use crate::page_state;
use crate::pagetable::PageTable;
use crate::vm::{FaultFlags, VmFault, Vma};

const PAGE: u64 = PAGE_SIZE as u64;

fn disassociate_removed(e: &Entry) {
    if e.kind == EntryKind::Real {
        page_state::disassociate(e.pfn);
    }
}

/// Counters of what the engine did to one file (the kernel's vm events, per file).
#[derive(Debug, Default)]
pub struct FaultStats {
    pte_faults: AtomicU64,
    pmd_faults: AtomicU64,
    fallbacks: AtomicU64,
    major: AtomicU64,
}

impl FaultStats {
    /// PTE faults handled (`dax_iomap_pte_fault` calls).
    pub fn pte_faults(&self) -> u64 {
        self.pte_faults.load(Ordering::Relaxed)
    }

    /// PMD faults handled (`dax_iomap_pmd_fault` calls).
    pub fn pmd_faults(&self) -> u64 {
        self.pmd_faults.load(Ordering::Relaxed)
    }

    /// PMD faults that fell back to PTEs (`THP_FAULT_FALLBACK`).
    pub fn fallbacks(&self) -> u64 {
        self.fallbacks.load(Ordering::Relaxed)
    }

    /// Major faults (`PGMAJFAULT`: the fault allocated storage).
    pub fn major(&self) -> u64 {
        self.major.load(Ordering::Relaxed)
    }

    pub(crate) fn count_pte(&self) {
        self.pte_faults.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_pmd(&self) {
        self.pmd_faults.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_fallback(&self) {
        self.fallbacks.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_major(&self) {
        self.major.fetch_add(1, Ordering::Relaxed);
    }
}

/// A DAX file's mapping (`struct address_space` as fs/dax.c uses it): the
/// [`MappingIndex`] of its entries, the device they point into, the user mappings of
/// the file, and its writeback error sequence.
///
/// A filesystem keeps one per inode (in an `Arc`) and returns it from
/// [`DaxInode::mapping`](dax_iomap::DaxInode::mapping) so that reads, writes and
/// zeroing invalidate what they must; user mappings are added with
/// [`DaxMapping::mmap`].
///
/// # Writeback errors
///
/// The mapping's writeback error state is the kernel's `errseq_t` (lib/errseq.c), with
/// the same rules, so that a filesystem can give `fsync` the kernel's answers:
///
/// * [`set_wb_error`](Self::set_wb_error) (`errseq_set`) records an error. If the
///   previous one was already reported to someone, the error counter moves on, so
///   every cursor taken before now sees a change; if it was not, the new error
///   replaces it without moving the counter (two errors nobody saw yet are reported
///   once, as the latest).
/// * A file samples a cursor when it is opened ([`sample_wb_err`](Self::sample_wb_err),
///   `errseq_sample`): the current value if that error was already reported to
///   someone, else 0, so that an error nobody has seen is reported to the new opener
///   too.
/// * Its fsync calls [`check_and_advance_wb_err`](Self::check_and_advance_wb_err)
///   (`errseq_check_and_advance`, via `file_check_and_advance_wb_err`): an error
///   recorded since its cursor is reported once, the cursor moves to now and the error
///   is marked seen. The same file's next fsync does not report it again; another file
///   opened before the error still gets it at its own next fsync.
///
/// ```
/// use dax_device::DaxError;
/// use dax_fault::DaxMapping;
/// # let dev: std::sync::Arc<dax_device::DaxDevice> =
/// #     dax_testdev::MemDevice::builder().size(1 << 20).build().unwrap();
/// let m = DaxMapping::new(dev);
/// let (mut a, mut b) = (m.sample_wb_err(), m.sample_wb_err()); // two open files
/// m.set_wb_error(DaxError::Io { what: "writeback" });
/// assert_eq!(m.check_and_advance_wb_err(&mut a).unwrap_err().errno(), libc::EIO);
/// assert!(m.check_and_advance_wb_err(&mut a).is_ok()); // once per file
/// let mut c = m.sample_wb_err(); // opened after someone saw it: not reported
/// assert!(m.check_and_advance_wb_err(&mut c).is_ok());
/// assert!(m.check_and_advance_wb_err(&mut b).is_err()); // b had not seen it
/// ```
pub struct DaxMapping {
    index: MappingIndex,
    dev: Arc<DaxDevice>,
    block_size: u64,
    vmas: Mutex<Vec<Weak<MappedVma>>>,
    /// `I_DIRTY_PAGES`: set when an entry is dirtied (`__mark_inode_dirty`).
    dirty_pages: AtomicBool,
    /// Writeback errors (`mapping->wb_err`, an `errseq_t`: `crate::errseq`), and the
    /// last error recorded, with its data, for the callers that report it.
    wb_seq: AtomicU64,
    wb_err: Mutex<Option<DaxError>>,
    stats: FaultStats,
    this: Weak<DaxMapping>,
}

impl fmt::Debug for DaxMapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DaxMapping")
            .field("index", &self.index)
            .field("block_size", &self.block_size)
            .field("vmas", &self.vmas().len())
            .finish()
    }
}

impl DaxMapping {
    /// The mapping of a file on `dev` with 4 KiB blocks.
    pub fn new(dev: Arc<DaxDevice>) -> Arc<DaxMapping> {
        DaxMapping::with_block_size(dev, PAGE)
    }

    /// The mapping of a file whose block size is `block_size` (`i_blocksize`); DAX
    /// writeback refuses anything but 4 KiB ([`dax_writeback_mapping_range`](crate::dax_writeback_mapping_range)).
    pub fn with_block_size(dev: Arc<DaxDevice>, block_size: u64) -> Arc<DaxMapping> {
        Arc::new_cyclic(|this| DaxMapping {
            index: MappingIndex::with_remove_hook(disassociate_removed),
            dev,
            block_size,
            vmas: Mutex::new(Vec::new()),
            dirty_pages: AtomicBool::new(false),
            wb_seq: AtomicU64::new(0),
            wb_err: Mutex::new(None),
            stats: FaultStats::default(),
            this: this.clone(),
        })
    }

    /// The index of entries (`mapping->i_pages`).
    pub fn index(&self) -> &MappingIndex {
        &self.index
    }

    /// The device the file's blocks live on.
    pub fn device(&self) -> &Arc<DaxDevice> {
        &self.dev
    }

    /// The file's block size (`i_blocksize`).
    pub fn block_size(&self) -> u64 {
        self.block_size
    }

    /// What the engine did to this file.
    pub fn stats(&self) -> &FaultStats {
        &self.stats
    }

    pub(crate) fn arc(&self) -> Arc<DaxMapping> {
        self.this.upgrade().expect("a DaxMapping lives in an Arc")
    }

    /// Adds a user mapping of the file (`mmap` of a DAX file): `vma` in the address
    /// space `pt`. The mapping lasts until the returned handle is dropped (`munmap`),
    /// which removes its page-table entries.
    ///
    /// [`DaxError::NotSupported`] (`EOPNOTSUPP`) for a `MAP_SYNC` mapping on a device
    /// that cannot honour it (`daxdev_mapping_supported`: the device must be
    /// synchronous, and MAP_SYNC needs `MAP_SHARED`).
    pub fn mmap(&self, vma: Vma, pt: Arc<dyn PageTable>) -> Result<Arc<MappedVma>, DaxError> {
        self.mmap_inner(vma, pt, None)
    }

    /// [`DaxMapping::mmap`] with the filesystem's fault handler attached (the VMA's
    /// `vm_ops`), which a memory manager ([`SimPageTable::access`](crate::sim::SimPageTable::access),
    /// the `mmu` backend) calls on faults.
    pub fn mmap_with(
        &self,
        vma: Vma,
        pt: Arc<dyn PageTable>,
        ops: Arc<dyn VmOps>,
    ) -> Result<Arc<MappedVma>, DaxError> {
        self.mmap_inner(vma, pt, Some(ops))
    }

    fn mmap_inner(
        &self,
        vma: Vma,
        pt: Arc<dyn PageTable>,
        ops: Option<Arc<dyn VmOps>>,
    ) -> Result<Arc<MappedVma>, DaxError> {
        if !self.dev.mapping_supported(vma.is_sync(), true) {
            return Err(DaxError::NotSupported {
                what: "MAP_SYNC needs a synchronous DAX device",
            });
        }
        if vma.is_sync() && !vma.is_shared() {
            return Err(DaxError::NotSupported {
                what: "MAP_SYNC needs a shared mapping",
            });
        }
        let m = Arc::new(MappedVma {
            vma,
            pt,
            mapping: self.arc(),
            ops,
            signals: Mutex::new(Vec::new()),
        });
        let mut v = self.vmas.lock();
        v.retain(|w| w.strong_count() > 0);
        v.push(Arc::downgrade(&m));
        Ok(m)
    }

    /// The live user mappings of the file (`i_mmap`).
    pub fn vmas(&self) -> Vec<Arc<MappedVma>> {
        self.vmas.lock().iter().filter_map(Weak::upgrade).collect()
    }

    /// Removes file pages `first .. first + count` from every user mapping
    /// (`unmap_mapping_pages`); private copy-on-write pages stay unless `even_cows`. A
    /// count that runs past `u64::MAX` means to the end of the file.
    pub fn unmap_mapping_pages(&self, first: u64, count: u64, even_cows: bool) {
        self.for_each_vma(|m| {
            if let Some((addr, len)) = m.vma.range_of(first, count) {
                m.pt.unmap(addr, len, even_cows);
            }
        });
    }

    /// Calls `f` on every live user mapping, under the `i_mmap` lock (`f` must not
    /// map or unmap files).
    fn for_each_vma(&self, mut f: impl FnMut(&MappedVma)) {
        let v = self.vmas.lock();
        for w in v.iter() {
            if let Some(m) = w.upgrade() {
                f(&m);
            }
        }
    }

    /// Write-protects and cleans, in every shared user mapping, file pages
    /// `index .. index + count` that map device pages from `pfn` (`dax_entry_mkclean`).
    pub(crate) fn mkclean(&self, index: u64, count: u64, pfn: Pfn) {
        self.for_each_vma(|m| {
            if m.vma.is_shared()
                && let Some((addr, len)) = m.vma.range_of(index, count)
            {
                m.pt.wrprotect(addr, len, pfn, count);
            }
        });
    }

    /// Whether an entry was dirtied since the flag was last taken (`I_DIRTY_PAGES`).
    pub fn inode_dirty(&self) -> bool {
        self.dirty_pages.load(Ordering::Acquire)
    }

    /// Takes the dirty-pages flag (what `sync` does before writing the inode back).
    pub fn take_inode_dirty(&self) -> bool {
        self.dirty_pages.swap(false, Ordering::AcqRel)
    }

    pub(crate) fn mark_inode_dirty(&self) {
        if !self.dirty_pages.load(Ordering::Relaxed) {
            self.dirty_pages.store(true, Ordering::Release);
        }
    }

    /// Records a writeback error (`mapping_set_error` → `errseq_set`): the error
    /// becomes the mapping's latest, and it is reported once to every cursor sampled
    /// before it (see ["Writeback errors"](DaxMapping#writeback-errors)).
    pub fn set_wb_error(&self, err: DaxError) {
        // The lock orders the stored error with the word, so a reporter never pairs a
        // new word with an older error than the one that set it.
        let mut last = self.wb_err.lock();
        errseq::set(&self.wb_seq, err.errno());
        *last = Some(err);
    }

    /// The writeback error cursor an opener takes (`filemap_sample_wb_err` →
    /// `errseq_sample`): the current value if its error has been reported to someone,
    /// else 0, so that an error nobody has seen yet is reported to this opener too.
    pub fn sample_wb_err(&self) -> u64 {
        errseq::sample(&self.wb_seq)
    }

    /// Whether a writeback error was recorded since cursor `since`, without reporting
    /// it (`filemap_check_wb_err` → `errseq_check`).
    pub fn check_wb_err(&self, since: u64) -> bool {
        errseq::check(&self.wb_seq, since)
    }

    /// Reports a writeback error recorded since `*since`, once, and moves the cursor
    /// to now (`file_check_and_advance_wb_err` → `errseq_check_and_advance`); marks
    /// the error seen, so later openers do not get it. The error returned is the
    /// latest one recorded (the kernel returns the errno of the latest too).
    pub fn check_and_advance_wb_err(&self, since: &mut u64) -> Result<(), DaxError> {
        match errseq::check_and_advance(&self.wb_seq, since) {
            0 => Ok(()),
            errno => Err(self.wb_err.lock().clone().unwrap_or(DaxError::Os {
                errno,
                what: "writeback error",
            })),
        }
    }
}

impl Drop for DaxMapping {
    /// The inode is gone (`dax_delete_mapping_range` at eviction): its entries no
    /// longer own device pages.
    fn drop(&mut self) {
        for e in self.index.entries() {
            disassociate_removed(&e.entry);
        }
    }
}

/// One user mapping of a file (a `vm_area_struct` in the file's `i_mmap`): the
/// [`Vma`], the address space it lives in, and the SIGBUS signals memory failure sent
/// to its users. From [`DaxMapping::mmap`]; dropping it unmaps it (`munmap`).
pub struct MappedVma {
    vma: Vma,
    pt: Arc<dyn PageTable>,
    mapping: Arc<DaxMapping>,
    ops: Option<Arc<dyn VmOps>>,
    signals: Mutex<Vec<u64>>,
}

/// A filesystem's fault handler for its DAX mappings (`vm_operations_struct`: for DAX
/// files `fault`, `huge_fault`, `page_mkwrite` and `pfn_mkwrite` all lead here, as in
/// ext4 and XFS). It takes its locks (the invalidate lock shared) and calls
/// [`dax_iomap_fault`](crate::dax_iomap_fault), then
/// [`dax_finish_sync_fault`](crate::dax_finish_sync_fault) on NEEDDSYNC.
pub trait VmOps: Send + Sync {
    /// Handles a fault of `order` 0 (PTE) or 9 (PMD).
    fn fault(&self, vmf: &Vmf<'_>, order: u32) -> VmFault;
}

impl fmt::Debug for MappedVma {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MappedVma").field("vma", &self.vma).finish()
    }
}

impl MappedVma {
    /// The mapping's geometry and flags.
    pub fn vma(&self) -> &Vma {
        &self.vma
    }

    /// The address space's page table.
    pub fn page_table(&self) -> &Arc<dyn PageTable> {
        &self.pt
    }

    /// The file mapping it shows.
    pub fn mapping(&self) -> &Arc<DaxMapping> {
        &self.mapping
    }

    /// The filesystem's fault handler, if one was attached ([`DaxMapping::mmap_with`]).
    pub fn ops(&self) -> Option<&Arc<dyn VmOps>> {
        self.ops.as_ref()
    }

    /// Records a SIGBUS (`BUS_MCEERR_AR`) for an access at `addr`
    /// (`kill_procs` of memory failure).
    pub(crate) fn signal(&self, addr: u64) {
        self.signals.lock().push(addr);
    }

    /// Takes the addresses memory failure sent SIGBUS for, oldest first.
    pub fn take_signals(&self) -> Vec<u64> {
        std::mem::take(&mut *self.signals.lock())
    }
}

impl Drop for MappedVma {
    fn drop(&mut self) {
        self.pt.release(self.vma.start(), self.vma.len());
    }
}

/// One fault (`struct vm_fault`): the mapping it hit, the address, the file page and
/// why it happened.
#[derive(Clone, Copy)]
pub struct Vmf<'a> {
    vma: &'a MappedVma,
    address: u64,
    pgoff: u64,
    flags: FaultFlags,
}

impl fmt::Debug for Vmf<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Vmf")
            .field("vma", self.vma.vma())
            .field("address", &format_args!("{:#x}", self.address))
            .field("pgoff", &self.pgoff)
            .field("flags", &self.flags)
            .finish()
    }
}

impl<'a> Vmf<'a> {
    /// A fault at `address` (any byte of the page) in `vma`.
    ///
    /// [`DaxError::InvalidArgument`] when the address is outside the mapping, a store
    /// hits a mapping without `PROT_WRITE` (the memory manager answers that with
    /// SIGSEGV before any handler runs), or a `MKWRITE` fault names a private mapping
    /// (the memory manager never sends one there: it copies the page itself).
    pub fn new(vma: &'a MappedVma, address: u64, flags: FaultFlags) -> Result<Vmf<'a>, DaxError> {
        let v = vma.vma();
        if !v.contains(address) {
            return Err(DaxError::InvalidArgument {
                what: "fault address outside the mapping",
            });
        }
        if flags.contains(FaultFlags::WRITE) && !v.is_writable() {
            return Err(DaxError::InvalidArgument {
                what: "write fault on a mapping without write permission",
            });
        }
        if flags.contains(FaultFlags::MKWRITE) && !v.is_shared() {
            // The memory manager copies a private page itself on a store to a
            // read-only one (`wp_page_copy`); `pfn_mkwrite` is only for shared ones.
            return Err(DaxError::InvalidArgument {
                what: "a mkwrite fault on a private mapping (a store there goes to a private copy)",
            });
        }
        let address = address & !(PAGE_SIZE as u64 - 1);
        Ok(Vmf {
            vma,
            address,
            pgoff: v.page_index(address),
            flags,
        })
    }

    /// The mapping the fault hit (`vmf->vma`).
    pub fn vma(&self) -> &'a MappedVma {
        self.vma
    }

    /// The page-aligned faulting address (`vmf->address`).
    pub fn address(&self) -> u64 {
        self.address
    }

    /// The file page (`vmf->pgoff`).
    pub fn pgoff(&self) -> u64 {
        self.pgoff
    }

    /// Why the fault happened (`vmf->flags`).
    pub fn flags(&self) -> FaultFlags {
        self.flags
    }

    /// Whether the fault is a store.
    pub fn is_write(&self) -> bool {
        self.flags.contains(FaultFlags::WRITE)
    }

    /// Whether the fault needs a private copy-on-write page (`vmf->cow_page` is set:
    /// a store to a `MAP_PRIVATE` mapping that was not yet mapped).
    pub fn is_cow(&self) -> bool {
        self.is_write() && !self.vma.vma().is_shared() && !self.flags.contains(FaultFlags::MKWRITE)
    }
}
