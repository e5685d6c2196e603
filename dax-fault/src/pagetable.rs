//! The page-table services the fault engine needs from a memory manager (the parts of
//! mm/memory.c and mm/huge_memory.c that fs/dax.c calls: `vmf_insert_page_mkwrite`,
//! `vmf_insert_folio_pmd`, the zero-page helpers, `split_huge_pmd`,
//! `unmap_mapping_pages`, `pfn_mkclean_range`), as a trait that a simulated page table
//! ([`SimPageTable`](crate::SimPageTable)) and a real one (`mmu`) implement.
//!
//! The trait holds only the primitive slot operations. The rules around them (what a
//! read fault does to an occupied slot, when a write fault may upgrade a read-only
//! mapping in place, when the slot must map the same page) are the engine's, so every
//! implementation behaves like the kernel without re-deriving them.

use dax_core::{DaxDevice, DaxError, PAGE_SIZE, Pfn};

/// The device page a mapping shows: its pfn, and where it is on the device (a real
/// backend maps by device offset; a simulated one records it for data access).
#[derive(Clone, Copy)]
pub struct MapTarget<'a> {
    /// The page frame (of the first page, for a PMD).
    pub pfn: Pfn,
    /// Device page offset of that page.
    pub pgoff: u64,
    /// The device.
    pub dev: &'a DaxDevice,
}

impl std::fmt::Debug for MapTarget<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MapTarget")
            .field("pfn", &self.pfn)
            .field("pgoff", &self.pgoff)
            .finish()
    }
}

/// What a 4 KiB slot (a PTE) holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pte {
    /// A device page.
    Page {
        /// Its pfn.
        pfn: Pfn,
        /// Stores allowed without a fault.
        writable: bool,
        /// Written since it was last cleaned (`pte_dirty`).
        dirty: bool,
    },
    /// The shared zero page, read-only (`my_zero_pfn`).
    Zero,
    /// A private anonymous page (a copy-on-write copy of a `MAP_PRIVATE` mapping).
    Private {
        /// Stores allowed without a fault.
        writable: bool,
    },
}

impl Pte {
    /// The device pfn, for [`Pte::Page`].
    pub fn pfn(&self) -> Option<Pfn> {
        match *self {
            Pte::Page { pfn, .. } => Some(pfn),
            _ => None,
        }
    }

    /// Whether stores go through without a fault.
    pub fn is_writable(&self) -> bool {
        match *self {
            Pte::Page { writable, .. } | Pte::Private { writable } => writable,
            Pte::Zero => false,
        }
    }
}

/// What a 2 MiB slot (a PMD) holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PmdSlot {
    /// Nothing (`pmd_none`).
    Empty,
    /// A table of 512 PTE slots (whether or not any is populated).
    Table,
    /// A huge mapping of 512 device pages.
    Huge {
        /// The first pfn (512-aligned).
        pfn: Pfn,
        /// Stores allowed without a fault.
        writable: bool,
        /// Written since it was last cleaned.
        dirty: bool,
    },
    /// The huge zero page, read-only.
    HugeZero,
}

impl PmdSlot {
    /// Whether the slot holds a huge mapping (device or zero page).
    pub fn is_huge(&self) -> bool {
        matches!(self, PmdSlot::Huge { .. } | PmdSlot::HugeZero)
    }
}

/// One address space's page tables, as the DAX fault engine drives them.
///
/// Addresses are virtual addresses: page aligned for PTE operations, 2 MiB aligned for
/// PMD operations (the engine guarantees both). Insertions are only called on slots
/// the engine has just seen empty (or, for the `mkwrite_*` upgrades, holding the same
/// page), under the fault's entry lock; implementations must still be safe to call
/// concurrently from several threads.
///
/// Errors: [`DaxError::Os`] with `ENOMEM` becomes `VM_FAULT_OOM`, any other error
/// `VM_FAULT_SIGBUS`.
pub trait PageTable: Send + Sync {
    /// The PTE at `addr`, if populated (under a huge mapping: `None`).
    fn pte(&self, addr: u64) -> Option<Pte>;

    /// The PMD slot holding `addr`.
    fn pmd(&self, addr: u64) -> PmdSlot;

    /// Maps device page `target` at `addr` (`insert_page`), writable and dirty when
    /// `writable`; creates the PTE table if the PMD slot was empty.
    fn map_pte(&self, addr: u64, target: &MapTarget<'_>, writable: bool) -> Result<(), DaxError>;

    /// How many pages a read fault on a mapped extent may map at once (the faulting
    /// page and the ones after it in the same extent and 2 MiB block). 1, the default,
    /// is the kernel's DAX behaviour; a real backend raises it so that sparse and
    /// sequential access do not cost one fault and one kernel mapping per page.
    fn fault_around(&self) -> u64 {
        1
    }

    /// How many of the `max` PTE slots from `addr` on are empty before the first
    /// populated one (fault-around maps only into empty slots). The default asks
    /// [`pte`](Self::pte) page by page.
    fn empty_run(&self, addr: u64, max: u64) -> u64 {
        (0..max)
            .find(|&i| self.pte(addr + i * PAGE_SIZE as u64).is_some())
            .unwrap_or(max)
    }

    /// Maps `n` consecutive device pages from `target` at `addr` (each PTE slot empty),
    /// read-only or writable. The default calls [`map_pte`](Self::map_pte) per page.
    fn map_ptes(
        &self,
        addr: u64,
        target: &MapTarget<'_>,
        n: u64,
        writable: bool,
    ) -> Result<(), DaxError> {
        for i in 0..n {
            let t = MapTarget {
                pfn: target.pfn.add(i),
                pgoff: target.pgoff + i,
                dev: target.dev,
            };
            self.map_pte(addr + i * PAGE_SIZE as u64, &t, writable)?;
        }
        Ok(())
    }

    /// Maps the shared zero page read-only at `addr` (`dax_load_hole`).
    fn map_zero_pte(&self, addr: u64) -> Result<(), DaxError>;

    /// Makes the PTE at `addr` writable, young and dirty in place (the `mkwrite`
    /// upgrade of `insert_page_into_pte_locked`).
    fn mkwrite_pte(&self, addr: u64) -> Result<(), DaxError>;

    /// Maps the 512 device pages from `target` at 2 MiB-aligned `addr`
    /// (`vmf_insert_folio_pmd`), writable and dirty when `writable`.
    fn map_pmd(&self, addr: u64, target: &MapTarget<'_>, writable: bool) -> Result<(), DaxError>;

    /// Maps the huge zero page read-only at 2 MiB-aligned `addr`
    /// (`dax_pmd_load_hole`).
    fn map_huge_zero(&self, addr: u64) -> Result<(), DaxError>;

    /// Makes the huge mapping at `addr` writable and dirty in place.
    fn mkwrite_pmd(&self, addr: u64) -> Result<(), DaxError>;

    /// Maps a private anonymous page holding `data` (one page) at `addr`, writable
    /// (the memory manager's `finish_fault` of a copy-on-write page).
    fn map_private(&self, addr: u64, data: &[u8; PAGE_SIZE]) -> Result<(), DaxError>;

    /// Splits the huge mapping at 2 MiB-aligned `addr`, if any (`split_huge_pmd`).
    /// For a DAX mapping, which is not anonymous memory, that removes it, device
    /// mapping or huge zero page alike (`__split_huge_pmd_locked` zaps file
    /// mappings); the next access faults with PTEs. Only anonymous mappings turn a
    /// huge zero page into 512 zero-page PTEs, and doing so here would leave PTEs
    /// that no entry accounts for.
    fn split_pmd(&self, addr: u64);

    /// Removes every mapping of `addr .. addr + len` (`zap_page_range`), PTEs and
    /// huge ones, except private copy-on-write pages unless `even_cows`. A huge
    /// mapping partly inside the range goes whole.
    fn unmap(&self, addr: u64, len: u64, even_cows: bool);

    /// Makes every mapping in `addr .. addr + len` of device pages
    /// `first .. first + pages` read-only and clean (`pfn_mkclean_range`), so that the
    /// next store faults.
    fn wrprotect(&self, addr: u64, len: u64, first: Pfn, pages: u64);

    /// Removes everything in `addr .. addr + len` for good (`munmap`): mappings,
    /// private pages and page tables. The default unmaps, private pages included.
    fn release(&self, addr: u64, len: u64) {
        self.unmap(addr, len, true);
    }
}
