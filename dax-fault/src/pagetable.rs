//! The page-table services the fault engine needs from a memory manager (the parts of
//! mm/memory.c and mm/huge_memory.c that fs/dax.c calls: `vmf_insert_page_mkwrite`,
//! `vmf_insert_folio_pmd`, the zero-page helpers, `split_huge_pmd`,
//! `unmap_mapping_pages`, `pfn_mkclean_range`), as a trait that a simulated page table
//! ([`SimPageTable`](crate::SimPageTable)) and a real one (`mmu`) implement.
//!
//! Each insertion is the kernel's locked one: check the slot and fill it (or upgrade
//! it in place, or leave it) in one step under the lock of its 2 MiB block, and report
//! which it was ([`Inserted`]). What the engine does with the outcome (NOPAGE when
//! another fault got there first, SIGBUS for a write that finds another page) is the
//! engine's, so every implementation behaves like the kernel without re-deriving it.

use dax_device::{DaxDevice, DaxError, PAGE_SIZE, Pfn};

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

/// What an insertion did, decided under the page-table lock that covers the slot
/// (the outcomes of `insert_page_into_pte_locked` and `insert_pmd` in mm/memory.c and
/// mm/huge_memory.c).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    /// The slot was empty and now holds the new mapping.
    New,
    /// The slot already held the same page, and a write made it writable and dirty in
    /// place (the `mkwrite` upgrade).
    Upgraded,
    /// The slot was occupied and was left alone: a read found any mapping there, or
    /// a write found the same page already writable. Another fault got there first;
    /// the engine answers `VM_FAULT_NOPAGE`, as the kernel does.
    Present,
    /// A write found a different device page in the slot, which it may not replace:
    /// the kernel's `-EFAULT`, `VM_FAULT_SIGBUS` for a PTE.
    Mismatch,
    /// A write found the zero page in the slot and left it alone: a hole that a
    /// racing `write(2)` has just allocated, whose invalidation has deleted the ZERO
    /// entry but not yet unmapped the zero page. The engine answers NOPAGE and the
    /// access is retried once the unmap lands (the pre-folio kernel's `insert_pfn`
    /// skipped the update for the same race; 6.15's `insert_page_into_pte_locked`
    /// returns `-EFAULT`, a spurious SIGBUS, which dax-rs does not reproduce).
    ZeroPage,
}

/// What to put in a 4 KiB slot.
#[derive(Debug, Clone, Copy)]
pub enum PteValue<'a> {
    /// A device page (`vmf_insert_page_mkwrite`).
    Page(MapTarget<'a>),
    /// The shared zero page, read-only (`dax_load_hole`).
    Zero,
}

/// What to put in a 2 MiB slot.
#[derive(Debug, Clone, Copy)]
pub enum PmdValue<'a> {
    /// 512 device pages from a 512-aligned pfn (`vmf_insert_folio_pmd`).
    Page(MapTarget<'a>),
    /// The huge zero page, read-only (`dax_pmd_load_hole`).
    Zero,
}

/// The pages from `addr` to the end of its 2 MiB block.
fn block_pages_from(addr: u64) -> u64 {
    let pmd = dax_device::PMD_SIZE as u64;
    (pmd - addr % pmd) / PAGE_SIZE as u64
}

/// One address space's page tables, as the DAX fault engine drives them.
///
/// Addresses are virtual addresses: page aligned for PTE operations, 2 MiB aligned for
/// PMD operations (the engine guarantees both).
///
/// # The page-table lock
///
/// Every method that changes a slot does its check and its change as one step under a
/// lock that covers the slot's 2 MiB block (the kernel's PTE/PMD lock), so that no
/// other thread can see one without the other: an insertion inserts only into an
/// empty slot (or upgrades the same page in place on a write) and says which happened
/// ([`Inserted`]); zap ([`unmap`](Self::unmap), [`split_pmd`](Self::split_pmd)) and
/// mkclean ([`wrprotect`](Self::wrprotect)) take the same lock. A backend that
/// realises slots in a real address space (`mmap`, `mprotect`) makes that system call
/// inside the lock too. The read methods ([`pte`](Self::pte), [`pmd`](Self::pmd))
/// are unlocked snapshots: a hint the engine re-checks under the lock.
///
/// Errors: [`DaxError::Os`] with `ENOMEM` becomes `VM_FAULT_OOM`, any other error
/// `VM_FAULT_SIGBUS`.
pub trait PageTable: Send + Sync {
    /// The PTE at `addr`, if populated (under a huge mapping: `None`).
    fn pte(&self, addr: u64) -> Option<Pte>;

    /// The PMD slot holding `addr`.
    fn pmd(&self, addr: u64) -> PmdSlot;

    /// Puts `value` in the PTE slot at `addr` if it is empty (creating the PTE table
    /// when the PMD slot was empty): writable and dirty when `writable`. When the slot
    /// is occupied: a read (`write` false) leaves it alone ([`Inserted::Present`]); a
    /// write upgrades the same device page in place to writable and dirty
    /// ([`Inserted::Upgraded`], or `Present` if it already was), leaves the zero page
    /// ([`Inserted::ZeroPage`]) and refuses any other page ([`Inserted::Mismatch`]).
    /// Under a huge mapping: `Present`.
    fn insert_pte(
        &self,
        addr: u64,
        value: PteValue<'_>,
        write: bool,
        writable: bool,
    ) -> Result<Inserted, DaxError>;

    /// How many pages a fault at `addr` on a mapped extent may map at once (the
    /// faulting page and the ones after it in the same extent and 2 MiB block, those
    /// read-only). 1, the default, is the kernel's DAX behaviour; a real backend
    /// raises it so that sparse and sequential access do not cost one fault and one
    /// kernel mapping per page. For a `write` fault the pages after the faulting one
    /// are found with a separate read query, so nothing more is allocated.
    fn fault_around(&self, addr: u64, write: bool) -> u64 {
        let _ = (addr, write);
        1
    }

    /// How many of the `max` PTE slots from `addr` on, within `addr`'s 2 MiB block,
    /// are empty before the first populated one (an unlocked snapshot, a hint for
    /// fault-around, which never crosses a block). The default asks
    /// [`pte`](Self::pte) page by page.
    fn empty_run(&self, addr: u64, max: u64) -> u64 {
        let page = PAGE_SIZE as u64;
        let max = max.min(block_pages_from(addr));
        (0..max)
            .find(|&i| self.pte(addr + i * page).is_some())
            .unwrap_or(max)
    }

    /// Maps up to `n` consecutive device pages from `target` at `addr`, read-only,
    /// into the empty PTE slots from `addr` on, stopping at the first occupied one
    /// (all inside one 2 MiB block); returns how many it mapped, 0 when the slot at
    /// `addr` is occupied. The check and the mapping are one step under the lock.
    /// The default inserts page by page.
    fn insert_pte_run(&self, addr: u64, target: &MapTarget<'_>, n: u64) -> Result<u64, DaxError> {
        let n = n.min(block_pages_from(addr));
        for i in 0..n {
            let t = MapTarget {
                pfn: target.pfn.add(i),
                pgoff: target.pgoff.wrapping_add(i),
                dev: target.dev,
            };
            match self.insert_pte(addr + i * PAGE_SIZE as u64, PteValue::Page(t), false, false)? {
                Inserted::New => {}
                _ => return Ok(i),
            }
        }
        Ok(n)
    }

    /// Puts `value` in the 2 MiB slot at aligned `addr` if it is empty, writable and
    /// dirty when `writable`. An occupied slot (a huge mapping or a PTE table) is left
    /// alone, except that a write upgrades the same huge device mapping in place
    /// ([`Inserted::Upgraded`]); a write that finds other pages there gets
    /// [`Inserted::Mismatch`] (the kernel warns and returns NOPAGE).
    fn insert_pmd(
        &self,
        addr: u64,
        value: PmdValue<'_>,
        write: bool,
        writable: bool,
    ) -> Result<Inserted, DaxError>;

    /// How many 2 MiB units a read fault on a mapped extent may map at once (the
    /// faulting unit and the ones after it in the same extent). 1, the default, is the
    /// kernel's DAX behaviour; a real backend raises it so that one fault and one
    /// kernel mapping serve a run of 2 MiB pages.
    fn pmd_fault_around(&self, addr: u64) -> u64 {
        let _ = addr;
        1
    }

    /// Maps up to `n` consecutive 2 MiB units of device pages from `target` at
    /// 2 MiB-aligned `addr`, read-only, into the empty 2 MiB slots from `addr` on,
    /// stopping at the first occupied one; returns how many it mapped (0 when the slot
    /// at `addr` is occupied). The check and the mapping are one step under the locks
    /// of those slots. The default inserts unit by unit.
    fn insert_pmd_run(&self, addr: u64, target: &MapTarget<'_>, n: u64) -> Result<u64, DaxError> {
        const UNIT: u64 = dax_device::PMD_PAGES;
        for i in 0..n {
            let t = MapTarget {
                pfn: target.pfn.add(i.wrapping_mul(UNIT)),
                pgoff: target.pgoff.wrapping_add(i.wrapping_mul(UNIT)),
                dev: target.dev,
            };
            // The run ends at the top of the address space.
            let Some(a) = i
                .checked_mul(dax_device::PMD_SIZE as u64)
                .and_then(|o| addr.checked_add(o))
            else {
                return Ok(i);
            };
            if self.insert_pmd(a, PmdValue::Page(t), false, false)? != Inserted::New {
                return Ok(i);
            }
        }
        Ok(n)
    }

    /// Maps a private anonymous page holding `data` (one page) at `addr`, writable,
    /// if the slot is empty (the memory manager's `finish_fault` of a copy-on-write
    /// page: the copy appears whole, in one step); an occupied slot is left alone
    /// ([`Inserted::Present`]).
    fn insert_private(&self, addr: u64, data: &[u8; PAGE_SIZE]) -> Result<Inserted, DaxError>;

    /// Splits the huge mapping at 2 MiB-aligned `addr`, if any (`split_huge_pmd`).
    /// For a DAX mapping, which is not anonymous memory, the kernel removes it,
    /// device mapping or huge zero page alike (`__split_huge_pmd_locked` zaps file
    /// mappings); the next access faults with PTEs. A backend may instead leave a
    /// huge *device* mapping as 512 PTEs of the same pages with the same protection
    /// (the state splitting and then faulting every page back in would reach; the
    /// PMD entry still covers them). A huge zero page is always removed: only
    /// anonymous mappings turn it into 512 zero-page PTEs, which no entry would
    /// account for here.
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
