//! [`SimPageTable`]: a simulated address space whose page tables record every slot
//! and count every call, for conformance tests and for measuring the engine without
//! the kernel.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use dax_core::{DaxError, PAGE_SIZE, PMD_PAGES, PMD_SIZE, Pfn};
use parking_lot::Mutex;

use crate::pagetable::{MapTarget, PageTable, PmdSlot, Pte};

const PAGE: u64 = PAGE_SIZE as u64;
const PMD: u64 = PMD_SIZE as u64;

/// How many times each [`PageTable`] method of a [`SimPageTable`] was called.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SimCalls {
    /// [`PageTable::map_pte`].
    pub map_pte: u64,
    /// [`PageTable::map_zero_pte`].
    pub map_zero_pte: u64,
    /// [`PageTable::mkwrite_pte`].
    pub mkwrite_pte: u64,
    /// [`PageTable::map_pmd`].
    pub map_pmd: u64,
    /// [`PageTable::map_huge_zero`].
    pub map_huge_zero: u64,
    /// [`PageTable::mkwrite_pmd`].
    pub mkwrite_pmd: u64,
    /// [`PageTable::map_private`].
    pub map_private: u64,
    /// [`PageTable::split_pmd`].
    pub split_pmd: u64,
    /// [`PageTable::unmap`].
    pub unmap: u64,
    /// [`PageTable::wrprotect`].
    pub wrprotect: u64,
}

#[derive(Clone, Copy)]
struct SimPte {
    pte: Pte,
    /// Device page offset for [`Pte::Page`].
    pgoff: u64,
}

#[derive(Clone, Copy)]
struct SimHuge {
    slot: PmdSlot,
    pgoff: u64,
}

#[derive(Default)]
struct State {
    ptes: BTreeMap<u64, SimPte>,
    huge: BTreeMap<u64, SimHuge>,
    tables: BTreeSet<u64>,
    private: BTreeMap<u64, Box<[u8; PAGE_SIZE]>>,
    calls: SimCalls,
    fail_next: Option<DaxError>,
}

impl State {
    fn take_failure(&mut self) -> Result<(), DaxError> {
        match self.fail_next.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// Where a simulated address leads, for data access ([`SimPageTable::resolve`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimTarget {
    /// Device page `pgoff` (pfn `pfn`).
    Device {
        /// Device page offset of the page holding the address.
        pgoff: u64,
        /// Its pfn.
        pfn: Pfn,
        /// Whether stores are allowed without a fault.
        writable: bool,
    },
    /// The zero page (or huge zero page).
    Zero,
    /// A private copy-on-write page.
    Private {
        /// Whether stores are allowed without a fault.
        writable: bool,
    },
}

/// A simulated address space: a map of PTE and PMD slots, each recording what it maps,
/// plus call counters.
///
/// A PTE table, once created for a 2 MiB block, stays until
/// [`free_tables`](Self::free_tables) (what `munmap` does), as in the kernel, so a
/// later PMD fault over that block finds a table. Insertions into an occupied slot are
/// refused with [`DaxError::Busy`], which catches an engine that maps over a mapping.
#[derive(Default)]
pub struct SimPageTable {
    state: Mutex<State>,
}

impl fmt::Debug for SimPageTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.state.lock();
        f.debug_struct("SimPageTable")
            .field("ptes", &s.ptes.len())
            .field("huge", &s.huge.len())
            .field("tables", &s.tables.len())
            .finish()
    }
}

fn occupied() -> DaxError {
    DaxError::Busy {
        what: "simulated page-table slot already populated",
    }
}

impl SimPageTable {
    /// An empty address space.
    pub fn new() -> Self {
        SimPageTable::default()
    }

    /// The calls made so far.
    pub fn calls(&self) -> SimCalls {
        self.state.lock().calls
    }

    /// Makes the next insertion (`map_*`, `mkwrite_*`) fail with `err` (e.g. `ENOMEM`
    /// for an out-of-memory page-table allocation).
    pub fn fail_next(&self, err: DaxError) {
        self.state.lock().fail_next = Some(err);
    }

    /// Every populated PTE, by address.
    pub fn ptes(&self) -> Vec<(u64, Pte)> {
        let s = self.state.lock();
        s.ptes.iter().map(|(&a, p)| (a, p.pte)).collect()
    }

    /// Every huge mapping, by address.
    pub fn huge(&self) -> Vec<(u64, PmdSlot)> {
        let s = self.state.lock();
        s.huge.iter().map(|(&a, h)| (a, h.slot)).collect()
    }

    /// Whether anything (PTE or huge) is mapped in `addr .. addr + len`.
    pub fn any_mapped(&self, addr: u64, len: u64) -> bool {
        let s = self.state.lock();
        let end = addr.saturating_add(len);
        s.ptes.range(addr..end).next().is_some()
            || s.huge.range(addr & !(PMD - 1)..end).next().is_some()
    }

    /// What `addr` reaches now, without faulting.
    pub fn resolve(&self, addr: u64) -> Option<SimTarget> {
        let s = self.state.lock();
        let pmd = addr & !(PMD - 1);
        if let Some(h) = s.huge.get(&pmd) {
            let page = (addr - pmd) / PAGE;
            return Some(match h.slot {
                PmdSlot::Huge { pfn, writable, .. } => SimTarget::Device {
                    pgoff: h.pgoff + page,
                    pfn: pfn.add(page),
                    writable,
                },
                _ => SimTarget::Zero,
            });
        }
        let p = s.ptes.get(&(addr & !(PAGE - 1)))?;
        Some(match p.pte {
            Pte::Page { pfn, writable, .. } => SimTarget::Device {
                pgoff: p.pgoff,
                pfn,
                writable,
            },
            Pte::Zero => SimTarget::Zero,
            Pte::Private { writable } => SimTarget::Private { writable },
        })
    }

    /// Copies `buf.len()` bytes of the private page at page-aligned `addr` starting at
    /// byte `off` into `buf`; false if there is no private page there.
    pub fn read_private(&self, addr: u64, off: usize, buf: &mut [u8]) -> bool {
        let s = self.state.lock();
        match s.private.get(&addr) {
            Some(p) => {
                buf.copy_from_slice(&p[off..off + buf.len()]);
                true
            }
            None => false,
        }
    }

    /// Stores `data` into the private page at page-aligned `addr` from byte `off`;
    /// false if there is no private page there.
    pub fn write_private(&self, addr: u64, off: usize, data: &[u8]) -> bool {
        let mut s = self.state.lock();
        match s.private.get_mut(&addr) {
            Some(p) => {
                p[off..off + data.len()].copy_from_slice(data);
                true
            }
            None => false,
        }
    }

    /// Marks the device mapping at `addr` dirty, as the CPU does on a store (only when
    /// it is writable; returns whether it was).
    pub fn touch_write(&self, addr: u64) -> bool {
        let mut s = self.state.lock();
        let pmd = addr & !(PMD - 1);
        if let Some(h) = s.huge.get_mut(&pmd) {
            if let PmdSlot::Huge {
                writable: true,
                dirty,
                ..
            } = &mut h.slot
            {
                *dirty = true;
                return true;
            }
            return false;
        }
        match s.ptes.get_mut(&(addr & !(PAGE - 1))) {
            Some(SimPte {
                pte:
                    Pte::Page {
                        writable: true,
                        dirty,
                        ..
                    },
                ..
            }) => {
                *dirty = true;
                true
            }
            Some(SimPte {
                pte: Pte::Private { writable: true },
                ..
            }) => true,
            _ => false,
        }
    }

    /// Frees the PTE tables of every 2 MiB block inside `addr .. addr + len` after
    /// unmapping everything there (`munmap`'s `free_pgtables`).
    pub fn free_tables(&self, addr: u64, len: u64) {
        self.unmap(addr, len, true);
        let mut s = self.state.lock();
        let end = addr.saturating_add(len);
        let first = addr.next_multiple_of(PMD);
        let gone: Vec<u64> = s
            .tables
            .range(first..end)
            .copied()
            .filter(|&t| t + PMD <= end)
            .collect();
        for t in gone {
            s.tables.remove(&t);
        }
    }

    /// Replaces the private page at `addr` (or maps a new one) with a writable copy of
    /// `data`: the memory manager's own copy-on-write of a read-only page in a
    /// `MAP_PRIVATE` mapping (`wp_page_copy`), which never reaches DAX.
    pub fn cow_in_place(&self, addr: u64, data: &[u8; PAGE_SIZE]) {
        let mut s = self.state.lock();
        let addr = addr & !(PAGE - 1);
        s.ptes.insert(
            addr,
            SimPte {
                pte: Pte::Private { writable: true },
                pgoff: 0,
            },
        );
        s.private.insert(addr, Box::new(*data));
        s.tables.insert(addr & !(PMD - 1));
    }
}

impl PageTable for SimPageTable {
    fn pte(&self, addr: u64) -> Option<Pte> {
        let s = self.state.lock();
        if s.huge.contains_key(&(addr & !(PMD - 1))) {
            return None;
        }
        s.ptes.get(&(addr & !(PAGE - 1))).map(|p| p.pte)
    }

    fn pmd(&self, addr: u64) -> PmdSlot {
        let s = self.state.lock();
        let pmd = addr & !(PMD - 1);
        if let Some(h) = s.huge.get(&pmd) {
            return h.slot;
        }
        if s.tables.contains(&pmd) {
            PmdSlot::Table
        } else {
            PmdSlot::Empty
        }
    }

    fn map_pte(&self, addr: u64, target: &MapTarget<'_>, writable: bool) -> Result<(), DaxError> {
        let mut s = self.state.lock();
        s.calls.map_pte += 1;
        s.take_failure()?;
        if s.ptes.contains_key(&addr) || s.huge.contains_key(&(addr & !(PMD - 1))) {
            return Err(occupied());
        }
        s.tables.insert(addr & !(PMD - 1));
        s.ptes.insert(
            addr,
            SimPte {
                pte: Pte::Page {
                    pfn: target.pfn,
                    writable,
                    dirty: writable,
                },
                pgoff: target.pgoff,
            },
        );
        Ok(())
    }

    fn map_zero_pte(&self, addr: u64) -> Result<(), DaxError> {
        let mut s = self.state.lock();
        s.calls.map_zero_pte += 1;
        s.take_failure()?;
        if s.ptes.contains_key(&addr) || s.huge.contains_key(&(addr & !(PMD - 1))) {
            return Err(occupied());
        }
        s.tables.insert(addr & !(PMD - 1));
        s.ptes.insert(
            addr,
            SimPte {
                pte: Pte::Zero,
                pgoff: 0,
            },
        );
        Ok(())
    }

    fn mkwrite_pte(&self, addr: u64) -> Result<(), DaxError> {
        let mut s = self.state.lock();
        s.calls.mkwrite_pte += 1;
        s.take_failure()?;
        match s.ptes.get_mut(&addr) {
            Some(SimPte {
                pte: Pte::Page {
                    writable, dirty, ..
                },
                ..
            }) => {
                *writable = true;
                *dirty = true;
                Ok(())
            }
            _ => Err(DaxError::Fault {
                what: "mkwrite of a slot that holds no device page",
            }),
        }
    }

    fn map_pmd(&self, addr: u64, target: &MapTarget<'_>, writable: bool) -> Result<(), DaxError> {
        let mut s = self.state.lock();
        s.calls.map_pmd += 1;
        s.take_failure()?;
        if s.huge.contains_key(&addr) || s.tables.contains(&addr) {
            return Err(occupied());
        }
        s.huge.insert(
            addr,
            SimHuge {
                slot: PmdSlot::Huge {
                    pfn: target.pfn,
                    writable,
                    dirty: writable,
                },
                pgoff: target.pgoff,
            },
        );
        Ok(())
    }

    fn map_huge_zero(&self, addr: u64) -> Result<(), DaxError> {
        let mut s = self.state.lock();
        s.calls.map_huge_zero += 1;
        s.take_failure()?;
        if s.huge.contains_key(&addr) || s.tables.contains(&addr) {
            return Err(occupied());
        }
        s.huge.insert(
            addr,
            SimHuge {
                slot: PmdSlot::HugeZero,
                pgoff: 0,
            },
        );
        Ok(())
    }

    fn mkwrite_pmd(&self, addr: u64) -> Result<(), DaxError> {
        let mut s = self.state.lock();
        s.calls.mkwrite_pmd += 1;
        s.take_failure()?;
        match s.huge.get_mut(&addr) {
            Some(SimHuge {
                slot: PmdSlot::Huge {
                    writable, dirty, ..
                },
                ..
            }) => {
                *writable = true;
                *dirty = true;
                Ok(())
            }
            _ => Err(DaxError::Fault {
                what: "mkwrite of a PMD slot that holds no device mapping",
            }),
        }
    }

    fn map_private(&self, addr: u64, data: &[u8; PAGE_SIZE]) -> Result<(), DaxError> {
        let mut s = self.state.lock();
        s.calls.map_private += 1;
        s.take_failure()?;
        if s.ptes.contains_key(&addr) || s.huge.contains_key(&(addr & !(PMD - 1))) {
            return Err(occupied());
        }
        s.tables.insert(addr & !(PMD - 1));
        s.ptes.insert(
            addr,
            SimPte {
                pte: Pte::Private { writable: true },
                pgoff: 0,
            },
        );
        s.private.insert(addr, Box::new(*data));
        Ok(())
    }

    fn split_pmd(&self, addr: u64) {
        let mut s = self.state.lock();
        s.calls.split_pmd += 1;
        if let Some(SimHuge {
            slot: PmdSlot::HugeZero,
            ..
        }) = s.huge.remove(&addr)
        {
            {
                s.tables.insert(addr);
                for i in 0..PMD_PAGES {
                    s.ptes.insert(
                        addr + i * PAGE,
                        SimPte {
                            pte: Pte::Zero,
                            pgoff: 0,
                        },
                    );
                }
            }
        }
    }

    fn unmap(&self, addr: u64, len: u64, even_cows: bool) {
        let mut s = self.state.lock();
        s.calls.unmap += 1;
        let end = addr.saturating_add(len);
        let huge: Vec<u64> = s
            .huge
            .range(addr & !(PMD - 1)..end)
            .map(|(&a, _)| a)
            .collect();
        for a in huge {
            s.huge.remove(&a);
        }
        let ptes: Vec<(u64, bool)> = s
            .ptes
            .range(addr..end)
            .map(|(&a, p)| (a, matches!(p.pte, Pte::Private { .. })))
            .collect();
        for (a, private) in ptes {
            if private && !even_cows {
                continue;
            }
            s.ptes.remove(&a);
            s.private.remove(&a);
        }
    }

    fn release(&self, addr: u64, len: u64) {
        self.free_tables(addr, len);
    }

    fn wrprotect(&self, addr: u64, len: u64, first: Pfn, pages: u64) {
        let mut s = self.state.lock();
        s.calls.wrprotect += 1;
        let end = addr.saturating_add(len);
        let in_range = |pfn: Pfn| pfn >= first && pfn.0 < first.0 + pages;
        for (_, h) in s.huge.range_mut(addr & !(PMD - 1)..end) {
            if let PmdSlot::Huge {
                pfn,
                writable,
                dirty,
            } = &mut h.slot
                && (in_range(*pfn) || (first >= *pfn && first.0 < pfn.0 + PMD_PAGES))
            {
                *writable = false;
                *dirty = false;
            }
        }
        for (_, p) in s.ptes.range_mut(addr..end) {
            if let Pte::Page {
                pfn,
                writable,
                dirty,
            } = &mut p.pte
                && in_range(*pfn)
            {
                *writable = false;
                *dirty = false;
            }
        }
    }
}
