//! Memory mappings of TestFs files: `mmap` on an inode handle, the fault handler
//! (modelled on ext4's `ext4_dax_huge_fault` and XFS's `xfs_dax_fault`) and layout
//! breaking before block-map changes (`ext4_break_layouts`).
//! [`TestFs::mmap`](super::TestFs::mmap) is in `io.rs`; writeback of mapped data at
//! fsync in `checkpoint.rs`.
//!
//! Locks: the fault handler holds the invalidate lock shared for the whole fault,
//! including the fsync of a synchronous (MAP_SYNC) write fault, and stamps mtime on a
//! write fault under the timestamp lock alone; the engine takes the
//! mapping-entry locks and calls `iomap_begin`, which takes the metadata and extent
//! locks. [`break_layouts`] runs with the I/O and invalidate locks held exclusively
//! and drops and retakes the invalidate lock while it waits for pinned pages.
//! `mmap_real` takes the extent lock shared to check a file on a 2 MiB-page device.

use std::sync::Arc;

use dax_device::{DaxError, PAGE_SIZE, Pfn};
use dax_fault::mmu::{MapOptions, MmuMapping};
use dax_fault::{
    DaxMapping, MappedVma, PageTable, VmFault, VmOps, Vma, Vmf, dax_break_layout_relocking,
    dax_finish_sync_fault, dax_iomap_fault,
};
use parking_lot::RwLockWriteGuard;

use super::inode::TestInode;
use super::state::{InodeCore, enoent};

impl TestInode {
    /// [`TestFs::mmap_real`](super::TestFs::mmap_real) through an inode handle.
    ///
    /// On a device that maps only whole 2 MiB pages (hugetlb, device-dax) a file is
    /// mapped only if nothing in it needs a 4 KiB mapping: its size is a multiple of
    /// 2 MiB and each of its extents starts, on the device and in the file, and ends
    /// on a 2 MiB boundary; otherwise `EINVAL` up front, rather than SIGBUS at the first
    /// access. (Truncating such a file to a size that is not a multiple of 2 MiB later
    /// makes its last block unreachable through the mapping: SIGBUS there, as device
    /// DAX gives for a fault smaller than its alignment.)
    pub fn mmap_real(
        &self,
        pgoff: u64,
        len: u64,
        opts: MapOptions,
    ) -> Result<MmuMapping, DaxError> {
        self.state().check_mounted()?;
        if self.core().is_unlinked() {
            return Err(enoent());
        }
        let page_size = self
            .state()
            .dev
            .driver()
            .map_source()
            .map_or(PAGE_SIZE, |s| s.page_size);
        if page_size > PAGE_SIZE {
            let unit = (page_size / PAGE_SIZE) as u64;
            let whole = self.core().size().is_multiple_of(page_size as u64)
                && self
                    .core()
                    .blocks
                    .read()
                    .map
                    .iter()
                    .all(|(fb, e)| fb % unit == 0 && e.dev % unit == 0 && e.len % unit == 0);
            if !whole {
                return Err(DaxError::InvalidArgument {
                    what: "the device maps only 2 MiB pages (hugetlb, device-dax) and this file has parts smaller than 2 MiB (its size or an extent): it cannot be mapped without 4 KiB pages",
                });
            }
        }
        let ops: Arc<dyn VmOps> = Arc::new(self.clone());
        MmuMapping::map(&self.core().mapping, ops, pgoff, len, opts)
    }

    /// [`TestFs::mmap`](super::TestFs::mmap) through an inode handle.
    pub fn mmap(&self, vma: Vma, pt: Arc<dyn PageTable>) -> Result<Arc<MappedVma>, DaxError> {
        self.state().check_mounted()?;
        if self.core().is_unlinked() {
            return Err(enoent());
        }
        let ops: Arc<dyn VmOps> = Arc::new(self.clone());
        self.core().mapping.mmap_with(vma, pt, ops)
    }

    /// The file's DAX mapping: its index of entries and its user mappings.
    pub fn dax_mapping(&self) -> &Arc<DaxMapping> {
        &self.core().mapping
    }
}

impl VmOps for TestInode {
    /// The fault handler: the invalidate lock shared for the whole fault,
    /// [`dax_iomap_fault`], and for a synchronous write fault
    /// [`dax_finish_sync_fault`] with an fsync of the file (which checkpoints the
    /// metadata that makes the page reachable). A write fault on a shared mapping
    /// stamps mtime and ctime first (`file_update_time`). SIGBUS once the file is
    /// unlinked or the filesystem unmounted.
    fn fault(&self, vmf: &Vmf<'_>, order: u32) -> VmFault {
        if self.state().check_mounted().is_err() {
            return VmFault::SIGBUS;
        }
        let write = vmf.is_write() && vmf.vma().vma().is_shared();
        let _inval = self.core().invalidate.read();
        // Again under the lock: a device removal shuts the filesystem down, then takes
        // this lock exclusively to wait out faults that passed the check above, and
        // unmaps; a fault that gets the lock after that must not map anything.
        if self.core().is_unlinked() || self.state().check_mounted().is_err() {
            return VmFault::SIGBUS;
        }
        if write {
            // `ext4_dax_huge_fault`: `file_update_time` before a write fault.
            self.core().touch_mtime(self.state().now());
        }
        let mut pfn = Pfn(0);
        let mut err = Ok(());
        let ret = dax_iomap_fault(vmf, order, self, self, Some(&mut pfn), Some(&mut err));
        if write && ret.contains(VmFault::NEEDDSYNC) {
            return dax_finish_sync_fault(vmf, order, pfn, |_, _| {
                self.state().fsync_inode(self.core())
            });
        }
        ret
    }
}

/// Breaks the DAX layout of the whole file before its block map changes
/// (`ext4_break_layouts`): unmaps it everywhere, waits for pinned pages to be
/// released — dropping the invalidate lock `inval` while it sleeps and retaking it, as
/// `ext4_wait_dax_page` does, so a pinning thread that faults can finish — and deletes
/// every entry. The caller holds the I/O lock exclusively.
pub(crate) fn break_layouts<'a>(
    core: &'a InodeCore,
    inval: &mut Option<RwLockWriteGuard<'a, ()>>,
) -> Result<(), DaxError> {
    dax_break_layout_relocking(&core.mapping, .., inval, || core.invalidate.write(), None)
}
