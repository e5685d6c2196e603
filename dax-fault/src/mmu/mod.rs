//! Real mappings: a DAX file mapped into this process, its faults served by the
//! engine (Linux).
//!
//! [`MmuMapping::map`] reserves a 2 MiB-aligned range of address space with no access
//! and records it in a table the SIGSEGV handler searches without locks. A load or
//! store there faults; the handler (installed once, chaining to the previous one for
//! addresses that are not ours, so Rust's stack-overflow report keeps working) runs
//! the memory manager's dispatch — PMD fault first, PTE fault after a fallback,
//! mkwrite on read-only shared pages, private copy-on-write — which calls the
//! filesystem's [`VmOps`] and so [`dax_iomap_fault`](crate::dax_iomap_fault). Its
//! page-table calls become `mmap(MAP_FIXED | MAP_SHARED)` of the device's file
//! descriptor at the block's offset: read-only on read faults (holes get anonymous
//! zero pages), writable after a write fault, so dirty tracking and writeback work as
//! in the kernel. A fault the engine answers with SIGBUS raises SIGBUS in the faulting
//! thread with the address in `si_addr` (`BUS_MCEERR_AR` for poison).
//!
//! Kernel accesses to a mapping (`read(2)` into it, `write(2)` from it) do not fault
//! into this process: call [`MmuMapping::populate`] on the range first.
//!
//! See `sys` for what runs in the signal handler and the one rule for users: never
//! touch a DAX mapping while holding a lock of the filesystem behind it.

mod space;
#[allow(unsafe_code)]
mod sys;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use dax_core::{DaxError, PAGE_SIZE, PMD_SIZE};

use crate::mapping::{DaxMapping, MappedVma, VmOps};
use crate::mm::{MmSpace, handle_mm_fault};
use crate::vm::{VmFault, Vma};
use crate::writeback::{WritebackControl, dax_writeback_mapping_range};
use space::{MmuSpace, Shadow};

const PAGE: u64 = PAGE_SIZE as u64;
const PMD: u64 = PMD_SIZE as u64;

/// How to map: shared or private, read-only or writable, MAP_SYNC, huge pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MapOptions {
    /// `MAP_SHARED` (true, the default) or `MAP_PRIVATE`.
    pub shared: bool,
    /// `PROT_WRITE` (default false).
    pub writable: bool,
    /// `MAP_SYNC` (default false): needs a synchronous device.
    pub sync: bool,
    /// Try 2 MiB faults (default true).
    pub huge: bool,
}

impl Default for MapOptions {
    fn default() -> Self {
        MapOptions {
            shared: true,
            writable: false,
            sync: false,
            huge: true,
        }
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
    /// Errors: `EINVAL` for a zero or unaligned length or a range past the largest file
    /// offset; `EOPNOTSUPP` for MAP_SYNC on a device that is not synchronous (or a
    /// private MAP_SYNC mapping); `ENOMEM` when address space or the mapping table
    /// (1024 live mappings) runs out.
    pub fn map(
        mapping: &Arc<DaxMapping>,
        ops: Arc<dyn VmOps>,
        pgoff: u64,
        len: u64,
        opts: MapOptions,
    ) -> Result<MmuMapping, DaxError> {
        if len == 0 || !len.is_multiple_of(PAGE) {
            return Err(DaxError::InvalidArgument {
                what: "a mapping needs a non-zero page-aligned length",
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
            mapping.mmap_with(vma, Arc::new(MmuSpace), ops)
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
        Ok(MmuMapping { shadow, slot, vma })
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
        let mut a = lo & !(PAGE - 1);
        while a < hi {
            if MmuSpace.present(a).is_none_or(|w| write && !w) {
                handle_mm_fault(&MmuSpace, &self.vma, a, write)?;
            }
            a = if crate::pagetable::PageTable::pmd(&MmuSpace, a).is_huge() {
                (a & !(PMD - 1)) + PMD
            } else {
                a + PAGE
            };
        }
        Ok(())
    }

    /// Copies `buf.len()` bytes from `offset` of the mapping, faulting pages in as a
    /// load would (through [`populate`](Self::populate), so no signal is involved).
    pub fn load(&self, offset: usize, buf: &mut [u8]) -> Result<(), VmFault> {
        self.populate(offset, buf.len(), false)?;
        sys::load(self.shadow.base + offset as u64, buf);
        Ok(())
    }

    /// Copies `data` to `offset` of the mapping, faulting pages in as stores would
    /// (through [`populate`](Self::populate)): SIGSEGV (as an error) on a read-only
    /// mapping.
    pub fn store(&self, offset: usize, data: &[u8]) -> Result<(), VmFault> {
        self.populate(offset, data.len(), true)?;
        sys::store(self.shadow.base + offset as u64, data);
        Ok(())
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
        dax_writeback_mapping_range(m, m.device(), &WritebackControl::sync_all(start, end))
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
