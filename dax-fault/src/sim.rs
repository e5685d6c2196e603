//! [`SimPageTable`]: a simulated address space whose page tables record every slot
//! and count every call, for conformance tests and for measuring the engine without
//! the kernel.

use std::collections::BTreeMap;
use std::fmt;

use crate::sync::Mutex;
use dax_device::{DaxAccessMode, DaxError, PAGE_SIZE, PMD_PAGES, PMD_SIZE, Pfn};

use crate::mapping::MappedVma;
use crate::mm::{FaultSpace, MAX_FAULTS_PER_ACCESS, handle_mm_fault};
use crate::pagetable::{Inserted, PageTable, PmdSlot, PmdValue, Pte, PteValue};
use crate::vm::VmFault;

const PAGE: u64 = PAGE_SIZE as u64;
const PMD: u64 = PMD_SIZE as u64;

/// How many times each kind of [`PageTable`] operation of a [`SimPageTable`] was
/// asked for. An insertion counts by what it was asked to do: a device page, the zero
/// page, or (a write onto an occupied slot) an upgrade in place, whatever the outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SimCalls {
    /// [`PageTable::insert_pte`] of a device page into a slot that was empty.
    pub map_pte: u64,
    /// [`PageTable::insert_pte`] of the zero page.
    pub map_zero_pte: u64,
    /// [`PageTable::insert_pte`] of a write onto an occupied slot (mkwrite).
    pub mkwrite_pte: u64,
    /// [`PageTable::insert_pmd`] of device pages into a slot that was not a huge
    /// mapping.
    pub map_pmd: u64,
    /// [`PageTable::insert_pmd`] of the huge zero page.
    pub map_huge_zero: u64,
    /// [`PageTable::insert_pmd`] of a write onto a huge mapping (mkwrite).
    pub mkwrite_pmd: u64,
    /// [`PageTable::insert_private`].
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

/// What one 2 MiB slot holds: a table of 512 PTE slots (kept once created, as the
/// kernel keeps page tables until munmap) or a huge mapping.
enum Dir {
    Table(Box<[Option<SimPte>; PMD_PAGES as usize]>),
    Huge(SimHuge),
}

fn pmd_of(addr: u64) -> u64 {
    addr & !(PMD - 1)
}

fn slot_of(addr: u64) -> usize {
    ((addr & (PMD - 1)) / PAGE) as usize
}

#[derive(Default)]
struct State {
    dirs: BTreeMap<u64, Dir>,
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

    fn pte(&self, addr: u64) -> Option<&SimPte> {
        match self.dirs.get(&pmd_of(addr)) {
            Some(Dir::Table(t)) => t[slot_of(addr)].as_ref(),
            _ => None,
        }
    }

    fn pte_mut(&mut self, addr: u64) -> Option<&mut SimPte> {
        match self.dirs.get_mut(&pmd_of(addr)) {
            Some(Dir::Table(t)) => t[slot_of(addr)].as_mut(),
            _ => None,
        }
    }

    fn huge_mut(&mut self, addr: u64) -> Option<&mut SimHuge> {
        match self.dirs.get_mut(&pmd_of(addr)) {
            Some(Dir::Huge(h)) => Some(h),
            _ => None,
        }
    }

    /// The empty PTE slot for `addr`, creating its table; `Busy` if the slot is
    /// populated or a huge mapping covers it.
    fn empty_slot(&mut self, addr: u64) -> Result<&mut Option<SimPte>, DaxError> {
        let dir = self
            .dirs
            .entry(pmd_of(addr))
            .or_insert_with(|| Dir::Table(Box::new([None; PMD_PAGES as usize])));
        match dir {
            Dir::Table(t) if t[slot_of(addr)].is_none() => Ok(&mut t[slot_of(addr)]),
            _ => Err(occupied()),
        }
    }

    /// Sets the PTE at `addr` (overwriting), creating its table.
    fn set_pte(&mut self, addr: u64, pte: SimPte) {
        let dir = self
            .dirs
            .entry(pmd_of(addr))
            .or_insert_with(|| Dir::Table(Box::new([None; PMD_PAGES as usize])));
        if let Dir::Huge(_) = dir {
            *dir = Dir::Table(Box::new([None; PMD_PAGES as usize]));
        }
        if let Dir::Table(t) = dir {
            t[slot_of(addr)] = Some(pte);
        }
    }

    /// Calls `f` on every populated PTE slot in `addr .. end`.
    fn each_pte(&mut self, addr: u64, end: u64, mut f: impl FnMut(u64, &mut Option<SimPte>)) {
        for (&base, dir) in self.dirs.range_mut(pmd_of(addr)..end) {
            if let Dir::Table(t) = dir {
                for (i, slot) in t.iter_mut().enumerate() {
                    let a = base + i as u64 * PAGE;
                    if a >= addr && a < end && slot.is_some() {
                        f(a, slot);
                    }
                }
            }
        }
    }
}

fn occupied() -> DaxError {
    DaxError::Busy {
        what: "simulated page-table slot already populated",
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

/// A simulated address space: 2 MiB slots each holding a table of 512 PTE slots or a
/// huge mapping, each slot recording what it maps, plus call counters.
///
/// A PTE table, once created for a 2 MiB block, stays until
/// [`free_tables`](Self::free_tables) (what `munmap` does), as in the kernel, so a
/// later PMD fault over that block finds a table. One lock covers the whole table, so
/// every operation is one step, as the kernel's page-table lock makes it: an insertion
/// into an occupied slot never replaces what is there, it reports
/// [`Inserted::Present`] or [`Inserted::Mismatch`].
#[derive(Default)]
pub struct SimPageTable {
    state: Mutex<State>,
}

impl fmt::Debug for SimPageTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.state.lock();
        f.debug_struct("SimPageTable")
            .field("pmd_slots", &s.dirs.len())
            .field("private_pages", &s.private.len())
            .finish()
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

    /// Makes the next insertion (`insert_*`, upgrades included) fail with `err` (e.g.
    /// `ENOMEM` for an out-of-memory page-table allocation).
    pub fn fail_next(&self, err: DaxError) {
        self.state.lock().fail_next = Some(err);
    }

    /// Every populated PTE, by address.
    pub fn ptes(&self) -> Vec<(u64, Pte)> {
        let mut s = self.state.lock();
        let mut v = Vec::new();
        s.each_pte(0, u64::MAX, |a, p| v.push((a, p.expect("populated").pte)));
        v
    }

    /// Every huge mapping, by address.
    pub fn huge(&self) -> Vec<(u64, PmdSlot)> {
        let s = self.state.lock();
        s.dirs
            .iter()
            .filter_map(|(&a, d)| match d {
                Dir::Huge(h) => Some((a, h.slot)),
                Dir::Table(_) => None,
            })
            .collect()
    }

    /// Whether anything (PTE or huge) is mapped in `addr .. addr + len`.
    pub fn any_mapped(&self, addr: u64, len: u64) -> bool {
        let mut s = self.state.lock();
        let end = addr.saturating_add(len);
        if s.dirs
            .range(pmd_of(addr)..end)
            .any(|(_, d)| matches!(d, Dir::Huge(_)))
        {
            return true;
        }
        let mut any = false;
        s.each_pte(addr, end, |_, _| any = true);
        any
    }

    /// What `addr` reaches now, without faulting.
    pub fn resolve(&self, addr: u64) -> Option<SimTarget> {
        let s = self.state.lock();
        if let Some(Dir::Huge(h)) = s.dirs.get(&pmd_of(addr)) {
            let page = slot_of(addr) as u64;
            return Some(match h.slot {
                PmdSlot::Huge { pfn, writable, .. } => SimTarget::Device {
                    pgoff: h.pgoff + page,
                    pfn: pfn.add(page),
                    writable,
                },
                _ => SimTarget::Zero,
            });
        }
        let p = s.pte(addr)?;
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
        match (s.private.get(&addr), off.checked_add(buf.len())) {
            (Some(p), Some(end)) if end <= PAGE_SIZE => {
                buf.copy_from_slice(&p[off..end]);
                true
            }
            _ => false,
        }
    }

    /// Stores `data` into the private page at page-aligned `addr` from byte `off`;
    /// false if there is no private page there.
    pub fn write_private(&self, addr: u64, off: usize, data: &[u8]) -> bool {
        let mut s = self.state.lock();
        match (s.private.get_mut(&addr), off.checked_add(data.len())) {
            (Some(p), Some(end)) if end <= PAGE_SIZE => {
                p[off..end].copy_from_slice(data);
                true
            }
            _ => false,
        }
    }

    /// Marks the device mapping at `addr` dirty, as the CPU does on a store (only when
    /// it is writable; returns whether it was).
    pub fn touch_write(&self, addr: u64) -> bool {
        let mut s = self.state.lock();
        if let Some(h) = s.huge_mut(addr) {
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
        match s.pte_mut(addr) {
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
        // A range that holds no whole 2 MiB block frees no table (and the first block
        // boundary may lie past `end`, or past the top of the address space).
        let Some(first) = addr.checked_next_multiple_of(PMD) else {
            return;
        };
        let gone: Vec<u64> = s
            .dirs
            .range(first..end.max(first))
            .map(|(&t, _)| t)
            .filter(|&t| t.checked_add(PMD).is_some_and(|e| e <= end))
            .collect();
        for t in gone {
            s.dirs.remove(&t);
        }
    }

    /// Replaces the page at `addr` (or maps a new one) with a writable private copy of
    /// `data`: the memory manager's own copy-on-write of a read-only page in a
    /// `MAP_PRIVATE` mapping (`wp_page_copy`), which never reaches DAX.
    pub fn cow_in_place(&self, addr: u64, data: &[u8; PAGE_SIZE]) {
        let mut s = self.state.lock();
        let addr = addr & !(PAGE - 1);
        s.set_pte(
            addr,
            SimPte {
                pte: Pte::Private { writable: true },
                pgoff: 0,
            },
        );
        s.private.insert(addr, Box::new(*data));
    }
}

impl PageTable for SimPageTable {
    fn pte(&self, addr: u64) -> Option<Pte> {
        self.state.lock().pte(addr).map(|p| p.pte)
    }

    fn pmd(&self, addr: u64) -> PmdSlot {
        match self.state.lock().dirs.get(&pmd_of(addr)) {
            Some(Dir::Huge(h)) => h.slot,
            Some(Dir::Table(_)) => PmdSlot::Table,
            None => PmdSlot::Empty,
        }
    }

    fn insert_pte(
        &self,
        addr: u64,
        value: PteValue<'_>,
        write: bool,
        writable: bool,
    ) -> Result<Inserted, DaxError> {
        // One lock for the whole table: the check and the change are one step.
        let mut s = self.state.lock();
        let occupied = match s.dirs.get(&pmd_of(addr)) {
            Some(Dir::Huge(_)) => {
                // A huge mapping serves the address; the fault raced with a PMD fault.
                return Ok(Inserted::Present);
            }
            Some(Dir::Table(t)) => t[slot_of(addr)].is_some(),
            None => false,
        };
        let counter = match (occupied, value) {
            (true, _) if !write => return Ok(Inserted::Present),
            (true, _) => &mut s.calls.mkwrite_pte,
            (false, PteValue::Page(_)) => &mut s.calls.map_pte,
            (false, PteValue::Zero) => &mut s.calls.map_zero_pte,
        };
        *counter += 1;
        s.take_failure()?;
        if occupied {
            let want = match value {
                PteValue::Page(t) => Some(t.pfn),
                PteValue::Zero => None,
            };
            return Ok(match s.pte_mut(addr) {
                Some(SimPte {
                    pte:
                        Pte::Page {
                            pfn,
                            writable: w,
                            dirty,
                        },
                    ..
                }) if Some(*pfn) == want => {
                    if !writable || *w {
                        Inserted::Present
                    } else {
                        *w = true;
                        *dirty = true;
                        Inserted::Upgraded
                    }
                }
                Some(SimPte { pte: Pte::Zero, .. }) => Inserted::ZeroPage,
                _ => Inserted::Mismatch,
            });
        }
        let pte = match value {
            PteValue::Page(t) => SimPte {
                pte: Pte::Page {
                    pfn: t.pfn,
                    writable,
                    dirty: writable,
                },
                pgoff: t.pgoff,
            },
            PteValue::Zero => SimPte {
                pte: Pte::Zero,
                pgoff: 0,
            },
        };
        *s.empty_slot(addr)? = Some(pte);
        Ok(Inserted::New)
    }

    fn insert_pmd(
        &self,
        addr: u64,
        value: PmdValue<'_>,
        write: bool,
        writable: bool,
    ) -> Result<Inserted, DaxError> {
        let mut s = self.state.lock();
        let huge = matches!(s.dirs.get(&addr), Some(Dir::Huge(_)));
        let counter = match value {
            PmdValue::Zero => &mut s.calls.map_huge_zero,
            PmdValue::Page(_) if huge && write => &mut s.calls.mkwrite_pmd,
            PmdValue::Page(_) => &mut s.calls.map_pmd,
        };
        *counter += 1;
        s.take_failure()?;
        match s.dirs.get_mut(&addr) {
            None => {}
            Some(Dir::Huge(h)) if write => {
                return Ok(match (&mut h.slot, value) {
                    (
                        PmdSlot::Huge {
                            pfn,
                            writable: w,
                            dirty,
                        },
                        PmdValue::Page(t),
                    ) if *pfn == t.pfn => {
                        if !writable || *w {
                            Inserted::Present
                        } else {
                            *w = true;
                            *dirty = true;
                            Inserted::Upgraded
                        }
                    }
                    _ => Inserted::Mismatch,
                });
            }
            Some(Dir::Table(_)) if write => return Ok(Inserted::Mismatch),
            Some(_) => return Ok(Inserted::Present),
        }
        let (slot, pgoff) = match value {
            PmdValue::Page(t) => (
                PmdSlot::Huge {
                    pfn: t.pfn,
                    writable,
                    dirty: writable,
                },
                t.pgoff,
            ),
            PmdValue::Zero => (PmdSlot::HugeZero, 0),
        };
        s.dirs.insert(addr, Dir::Huge(SimHuge { slot, pgoff }));
        Ok(Inserted::New)
    }

    fn insert_private(&self, addr: u64, data: &[u8; PAGE_SIZE]) -> Result<Inserted, DaxError> {
        let mut s = self.state.lock();
        s.calls.map_private += 1;
        s.take_failure()?;
        match s.empty_slot(addr) {
            Ok(slot) => {
                *slot = Some(SimPte {
                    pte: Pte::Private { writable: true },
                    pgoff: 0,
                })
            }
            Err(_) => return Ok(Inserted::Present),
        }
        s.private.insert(addr, Box::new(*data));
        Ok(Inserted::New)
    }

    fn split_pmd(&self, addr: u64) {
        let mut s = self.state.lock();
        s.calls.split_pmd += 1;
        // A DAX mapping is not anonymous memory: splitting its huge mapping (device or
        // huge zero page) just removes it, and the next access faults with PTEs.
        if matches!(s.dirs.get(&addr), Some(Dir::Huge(_))) {
            s.dirs.remove(&addr);
        }
    }

    fn unmap(&self, addr: u64, len: u64, even_cows: bool) {
        let mut guard = self.state.lock();
        let s = &mut *guard;
        s.calls.unmap += 1;
        let end = addr.saturating_add(len);
        let huge: Vec<u64> = s
            .dirs
            .range(pmd_of(addr)..end)
            .filter(|(_, d)| matches!(d, Dir::Huge(_)))
            .map(|(&a, _)| a)
            .collect();
        for a in huge {
            s.dirs.remove(&a);
        }
        let private = &mut s.private;
        for (&base, dir) in s.dirs.range_mut(pmd_of(addr)..end) {
            if let Dir::Table(t) = dir {
                for (i, slot) in t.iter_mut().enumerate() {
                    let a = base + i as u64 * PAGE;
                    if a < addr || a >= end {
                        continue;
                    }
                    if let Some(p) = slot {
                        let is_private = matches!(p.pte, Pte::Private { .. });
                        if is_private && !even_cows {
                            continue;
                        }
                        if is_private {
                            private.remove(&a);
                        }
                        *slot = None;
                    }
                }
            }
        }
    }

    fn release(&self, addr: u64, len: u64) {
        self.free_tables(addr, len);
    }

    fn wrprotect(&self, addr: u64, len: u64, first: Pfn, pages: u64) {
        let mut s = self.state.lock();
        s.calls.wrprotect += 1;
        let end = addr.saturating_add(len);
        let in_range = |pfn: Pfn| pfn >= first && pfn.0 - first.0 < pages;
        for (_, d) in s.dirs.range_mut(pmd_of(addr)..end) {
            if let Dir::Huge(SimHuge {
                slot:
                    PmdSlot::Huge {
                        pfn,
                        writable,
                        dirty,
                    },
                ..
            }) = d
                && (in_range(*pfn) || (first >= *pfn && first.0 - pfn.0 < PMD_PAGES))
            {
                *writable = false;
                *dirty = false;
            }
        }
        s.each_pte(addr, end, |_, slot| {
            if let Some(SimPte {
                pte:
                    Pte::Page {
                        pfn,
                        writable,
                        dirty,
                    },
                ..
            }) = slot
                && in_range(*pfn)
            {
                *writable = false;
                *dirty = false;
            }
        });
    }
}

impl SimTarget {
    /// Whether a store reaches it without a fault.
    pub fn is_writable(&self) -> bool {
        match *self {
            SimTarget::Device { writable, .. } | SimTarget::Private { writable } => writable,
            SimTarget::Zero => false,
        }
    }
}

impl FaultSpace for SimPageTable {
    fn present(&self, addr: u64) -> Option<bool> {
        self.resolve(addr).map(|t| t.is_writable())
    }

    fn cow_private(&self, vma: &MappedVma, addr: u64) -> Result<(), VmFault> {
        let page = addr & !(PAGE - 1);
        let t = self.resolve(addr).ok_or(VmFault::SIGBUS)?;
        let mut data = Box::new([0u8; PAGE_SIZE]);
        self.read_target(vma, page, t, 0, &mut data[..])?;
        self.cow_in_place(page, &data);
        Ok(())
    }
}

impl SimPageTable {
    /// Makes one access to `addr` in `vma` possible, faulting as the kernel's memory
    /// manager does (`handle_mm_fault`, §2.7.1 of the reference): a PMD fault first
    /// when the mapping allows huge pages and the PMD slot is empty, PTE faults after a
    /// FALLBACK; a store to a read-only page of a shared mapping goes to the handler
    /// as a `MKWRITE` write fault, one to a private mapping is copied by the memory
    /// manager itself (`wp_page_copy`) without the handler. Retries after NOPAGE,
    /// DONE_COW and 0. `vma` must live in this page table and have a handler
    /// ([`DaxMapping::mmap_with`](crate::DaxMapping::mmap_with)).
    ///
    /// Returns what the address reaches, or the fault result that would kill the
    /// access: SIGSEGV for a store to a read-only mapping, the handler's error bits
    /// (SIGBUS, HWPOISON, OOM), SIGBUS for a NEEDDSYNC the handler did not finish, no
    /// handler, or an access that still faults after 32 tries.
    pub fn access(&self, vma: &MappedVma, addr: u64, write: bool) -> Result<SimTarget, VmFault> {
        for _ in 0..MAX_FAULTS_PER_ACCESS {
            handle_mm_fault(self, vma, addr, write)?;
            // Another thread may unmap the page between the fault and this look (a
            // write(2) invalidating new blocks, a truncate): the hardware would then
            // just fault again.
            if let Some(t) = self.resolve(addr)
                && (!write || t.is_writable())
            {
                if write {
                    self.touch_write(addr);
                }
                return Ok(t);
            }
        }
        Err(VmFault::SIGBUS)
    }

    fn read_target(
        &self,
        vma: &MappedVma,
        page: u64,
        t: SimTarget,
        off: usize,
        buf: &mut [u8],
    ) -> Result<(), VmFault> {
        match t {
            SimTarget::Zero => buf.fill(0),
            SimTarget::Private { .. } => {
                if !self.read_private(page, off, buf) {
                    return Err(VmFault::SIGBUS);
                }
            }
            SimTarget::Device { pgoff, .. } => {
                let dev = vma.mapping().device();
                let section = dev.read_lock();
                let da = section
                    .direct_access(pgoff, 1, DaxAccessMode::Access)
                    .map_err(|e| VmFault::from_error(&e))?;
                if da.copy_to(off, buf) != buf.len() {
                    // A short copy is poison, or a device killed after it answered
                    // (its copies move nothing then): the CPU would take SIGBUS on a
                    // removed device's page, not a memory-failure report.
                    return Err(if section.alive() {
                        VmFault::HWPOISON
                    } else {
                        VmFault::SIGBUS
                    });
                }
            }
        }
        Ok(())
    }

    /// Loads `buf.len()` bytes from `addr` through `vma`, faulting as needed (see
    /// [`access`](Self::access)); stops at the first page whose access fails.
    pub fn read(&self, vma: &MappedVma, addr: u64, buf: &mut [u8]) -> Result<(), VmFault> {
        let mut done = 0;
        while done < buf.len() {
            let a = addr + done as u64;
            let off = (a % PAGE) as usize;
            let n = (PAGE_SIZE - off).min(buf.len() - done);
            let t = self.access(vma, a, false)?;
            self.read_target(vma, a & !(PAGE - 1), t, off, &mut buf[done..done + n])?;
            done += n;
        }
        Ok(())
    }

    /// Stores `data` at `addr` through `vma`, faulting as needed (see
    /// [`access`](Self::access)); stops at the first page whose access fails.
    pub fn write(&self, vma: &MappedVma, addr: u64, data: &[u8]) -> Result<(), VmFault> {
        let mut done = 0;
        while done < data.len() {
            let a = addr + done as u64;
            let off = (a % PAGE) as usize;
            let n = (PAGE_SIZE - off).min(data.len() - done);
            match self.access(vma, a, true)? {
                SimTarget::Device { pgoff, .. } => {
                    let dev = vma.mapping().device();
                    let section = dev.read_lock();
                    let da = section
                        .direct_access(pgoff, 1, DaxAccessMode::Access)
                        .map_err(|e| VmFault::from_error(&e))?;
                    if da.copy_from(off, &data[done..done + n]) != n {
                        return Err(VmFault::SIGBUS);
                    }
                }
                SimTarget::Private { .. } => {
                    if !self.write_private(a & !(PAGE - 1), off, &data[done..done + n]) {
                        return Err(VmFault::SIGBUS);
                    }
                }
                SimTarget::Zero => return Err(VmFault::SIGBUS),
            }
            done += n;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releasing_a_range_inside_one_pmd_block_keeps_its_table() {
        let pt = SimPageTable::new();
        pt.insert_pte(PMD + PAGE, PteValue::Zero, false, false)
            .unwrap();
        // munmap of one page that holds no 2 MiB boundary: the PTE goes, the table stays.
        pt.release(PMD + PAGE, PAGE);
        assert!(pt.ptes().is_empty());
        assert_eq!(pt.pmd(PMD), PmdSlot::Table);
        pt.release(PMD, PMD);
        assert_eq!(pt.pmd(PMD), PmdSlot::Empty);
    }
}
