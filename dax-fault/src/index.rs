//! The per-file mapping index and its entry-lock protocol (fs/dax.c: the `i_pages`
//! entries of a DAX file, `get_next_unlocked_entry`, `grab_mapping_entry`,
//! `dax_insert_entry`, `dax_unlock_entry`, `put_unlocked_entry`,
//! `dax_delete_mapping_entry`, `dax_invalidate_mapping_entry_sync`).
//!
//! Every page of a DAX file that is mapped, or being faulted, has an entry: EMPTY (a
//! placeholder that only holds the lock while a fault decides what to map), ZERO (a
//! hole mapped with the shared zero page) or REAL (device storage). An entry covers one
//! page (PTE order 0) or 512 aligned pages (PMD order 9). Entries carry a lock bit and
//! the DIRTY and TOWRITE marks, and `nrpages` counts the pages of all entries.
//!
//! Locking follows the kernel: the index has one lock (the `xa_lock`) protecting the
//! structure; an entry's LOCKED bit is the long-lived lock a fault holds across
//! `iomap_begin` → page-table insertion → `iomap_end`. Threads that find an entry
//! locked sleep as *exclusive* waiters on that entry's queue (keyed by its first page,
//! so all 512 pages of a PMD share one). Unlocking wakes **one** waiter; deleting an
//! entry wakes **all** (none of them will get it). A waiter that was woken but then did
//! not lock the entry (it only looked) must pass the wake-up on to the next waiter
//! ("the baton"), or the others would sleep forever.
//!
//! ```
//! use dax_fault::index::{Entry, EntryKind, GrabError, MappingIndex};
//! use dax_device::Pfn;
//!
//! let index = MappingIndex::new();
//! let mut e = index.grab(3, 0, &mut |_, _| {}).unwrap();   // a locked EMPTY entry
//! assert_eq!(e.entry().kind, EntryKind::Empty);
//! e.insert(Entry::real(0, Pfn(0x1000)),0, true, false, false, &mut |_, _| {});
//! drop(e);                                                 // unlock, wake one waiter
//! assert_eq!(index.nrpages(), 1);
//! // A PMD fault over a range holding a PTE entry falls back to PTEs.
//! assert_eq!(index.grab(0, 9, &mut |_, _| {}).unwrap_err(), GrabError::Fallback);
//! ```

use std::collections::HashMap;
use std::fmt;

use dax_device::{PMD_ORDER, Pfn};

use crate::sync::{Arc, Condvar, Mutex, MutexGuard};

mod slots;
use slots::SparseMap;

/// What an entry maps (the EMPTY / ZERO_PAGE bits of the kernel's value).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntryKind {
    /// A placeholder holding the lock while a fault decides what to map (`DAX_EMPTY`).
    Empty,
    /// A hole mapped with the shared zero page or huge zero page (`DAX_ZERO_PAGE`).
    Zero,
    /// Device storage at `pfn`.
    Real,
}

/// An entry of the index (without its lock bit and marks).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Entry {
    /// What the entry maps.
    pub kind: EntryKind,
    /// 0 for a PTE entry (one page), 9 for a PMD entry (512 aligned pages).
    pub order: u32,
    /// The page frame: storage for REAL entries, the zero page's for ZERO, 0 for EMPTY.
    pub pfn: Pfn,
}

/// The kernel's value bits (`DAX_LOCKED`, `DAX_PMD`, `DAX_ZERO_PAGE`, `DAX_EMPTY`) and
/// the shift of the pfn (`DAX_SHIFT`).
pub mod bits {
    /// `DAX_LOCKED`.
    pub const LOCKED: u64 = 1 << 0;
    /// `DAX_PMD`.
    pub const PMD: u64 = 1 << 1;
    /// `DAX_ZERO_PAGE`.
    pub const ZERO_PAGE: u64 = 1 << 2;
    /// `DAX_EMPTY`.
    pub const EMPTY: u64 = 1 << 3;
    /// `DAX_SHIFT`: the pfn sits above the flag bits.
    pub const SHIFT: u32 = 4;
}

impl Entry {
    /// An EMPTY entry of `order` (`dax_make_entry(pfn 0, DAX_EMPTY)`).
    pub const fn empty(order: u32) -> Entry {
        Entry {
            kind: EntryKind::Empty,
            order,
            pfn: Pfn(0),
        }
    }

    /// A ZERO entry mapping the zero page `pfn`.
    pub const fn zero(order: u32, pfn: Pfn) -> Entry {
        Entry {
            kind: EntryKind::Zero,
            order,
            pfn,
        }
    }

    /// A REAL entry mapping storage at `pfn`.
    pub const fn real(order: u32, pfn: Pfn) -> Entry {
        Entry {
            kind: EntryKind::Real,
            order,
            pfn,
        }
    }

    /// Pages the entry covers (`1 << order`; an order of 64 or more, which no entry
    /// of the index has, saturates at `u64::MAX`).
    pub const fn pages(&self) -> u64 {
        if self.order >= 64 {
            u64::MAX
        } else {
            1 << self.order
        }
    }

    /// Whether it is a PMD entry.
    pub const fn is_pmd(&self) -> bool {
        self.order == PMD_ORDER
    }

    /// The kernel's encoded value: `(pfn << 4) | LOCKED | PMD | ZERO_PAGE |
    /// EMPTY`.
    pub const fn encode(&self, locked: bool) -> u64 {
        let mut v = self.pfn.0 << bits::SHIFT;
        if locked {
            v |= bits::LOCKED;
        }
        if self.is_pmd() {
            v |= bits::PMD;
        }
        match self.kind {
            EntryKind::Zero => v |= bits::ZERO_PAGE,
            EntryKind::Empty => v |= bits::EMPTY,
            EntryKind::Real => {}
        }
        v
    }
}

bitflags::bitflags! {
    /// Per-entry marks (`PAGECACHE_TAG_DIRTY`, `PAGECACHE_TAG_TOWRITE`).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct Marks: u8 {
        /// Written through a mapping and not yet flushed.
        const DIRTY = 1 << 0;
        /// Selected by the current data-integrity writeback.
        const TOWRITE = 1 << 1;
    }
}

/// A snapshot of one entry (for tests, writeback walks and inspection).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryInfo {
    /// First page index the entry covers.
    pub start: u64,
    /// The entry.
    pub entry: Entry,
    /// Whether its lock is held.
    pub locked: bool,
    /// Its marks.
    pub marks: Marks,
    /// Device page offset of a REAL entry's first page (0 otherwise). The kernel finds
    /// it from the pfn; dax-rs records it because pfns need not be device offsets.
    pub pgoff: u64,
}

/// Why [`MappingIndex::grab`] gave no entry (the internal `VM_FAULT_*` values
/// `grab_mapping_entry` encodes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrabError {
    /// A PMD was asked for but a PTE entry lies in its 2 MiB: use PTEs
    /// (`VM_FAULT_FALLBACK`).
    Fallback,
    /// The order is neither 0 nor 9 (`VM_FAULT_SIGBUS` for an unsupported order).
    BadOrder,
}

#[derive(Clone, Copy)]
struct EntrySlot {
    entry: Entry,
    locked: bool,
    marks: Marks,
    /// Device page offset of a REAL entry's first page (0 otherwise).
    pgoff: u64,
}

impl EntrySlot {
    fn info(&self, start: u64) -> EntryInfo {
        EntryInfo {
            start,
            entry: self.entry,
            locked: self.locked,
            marks: self.marks,
            pgoff: self.pgoff,
        }
    }
}

/// A wait queue of one entry key: exclusive waiters and the wake-ups owed to them.
struct Queue {
    cv: Arc<Condvar>,
    waiters: usize,
    wakes: usize,
}

#[derive(Default)]
struct Inner {
    slots: SparseMap<EntrySlot>,
    nrpages: u64,
    queues: HashMap<u64, Queue>,
}

enum Found {
    None,
    Conflict,
    /// An unlocked entry starting at this page index.
    At(u64),
}

impl Inner {
    /// The entry covering page `index`, if any: a PMD entry at the 512-aligned index
    /// or a PTE entry at `index`.
    fn covering(&self, index: u64) -> Option<u64> {
        let pmd = index & !((1u64 << PMD_ORDER) - 1);
        match self.slots.get(pmd) {
            Some(s) if s.entry.is_pmd() => Some(pmd),
            _ => self.slots.contains_key(index).then_some(index),
        }
    }

    /// The first entry overlapping `[aligned index, + 2^order)` (`xas_find_conflict`).
    fn overlapping(&self, index: u64, order: u32) -> Option<u64> {
        let start = index & !((1u64 << order) - 1);
        if let Some(k) = self.covering(start) {
            return Some(k);
        }
        // An inclusive end: the unit at the top of the index ends at u64::MAX.
        self.slots
            .range(start..=start | ((1u64 << order) - 1))
            .next()
            .map(|(k, _)| k)
    }

    fn wake_one(&mut self, key: u64) {
        if let Some(q) = self.queues.get_mut(&key)
            && q.waiters > q.wakes
        {
            q.wakes += 1;
            q.cv.notify_one();
        }
    }

    fn wake_all(&mut self, key: u64) {
        if let Some(q) = self.queues.get_mut(&key)
            && q.waiters > 0
        {
            q.wakes = q.waiters;
            q.cv.notify_all();
        }
    }

    fn remove(&mut self, key: u64) -> Option<EntrySlot> {
        let slot = self.slots.remove(key)?;
        self.nrpages -= slot.entry.pages();
        self.wake_all(key);
        Some(slot)
    }
}

/// The index of one file's DAX entries (the DAX use of `mapping->i_pages`).
#[derive(Default)]
pub struct MappingIndex {
    inner: Mutex<Inner>,
    /// Called under the index lock for every REAL entry that leaves the index (the
    /// owner of the index uses it to drop device-page ownership).
    on_remove: Option<fn(&Entry)>,
}

impl fmt::Debug for MappingIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let g = self.inner.lock();
        f.debug_struct("MappingIndex")
            .field("entries", &g.slots.len())
            .field("nrpages", &g.nrpages)
            .finish()
    }
}

impl MappingIndex {
    /// An empty index.
    pub fn new() -> Self {
        MappingIndex::default()
    }

    /// An empty index that calls `hook` for every REAL entry removed from it (under
    /// the index lock, like `dax_disassociate_entry`).
    pub fn with_remove_hook(hook: fn(&Entry)) -> Self {
        MappingIndex {
            inner: Mutex::default(),
            on_remove: Some(hook),
        }
    }

    /// Removes the entry at `key` (waking all its waiters) and reports it to the hook.
    fn remove_slot(&self, g: &mut Inner, key: u64) {
        if let Some(slot) = g.remove(key)
            && slot.entry.kind == EntryKind::Real
            && let Some(hook) = self.on_remove
        {
            hook(&slot.entry);
        }
    }

    /// Pages covered by all entries, of any kind (`mapping->nrpages`).
    pub fn nrpages(&self) -> u64 {
        self.inner.lock().nrpages
    }

    /// Whether the index holds no entry (`mapping_empty`).
    pub fn is_empty(&self) -> bool {
        self.inner.lock().slots.is_empty()
    }

    /// How many threads are asleep on the lock of the entry that starts at page
    /// `start` (a thread already woken but not yet running is not counted). No kernel
    /// equivalent (`waitqueue_active` on the entry's hashed queue comes closest): it
    /// lets a race test release an entry only once another thread is known to be
    /// blocked on it, instead of sleeping and hoping.
    pub fn waiters(&self, start: u64) -> usize {
        let g = self.inner.lock();
        g.queues.get(&start).map_or(0, |q| q.waiters - q.wakes)
    }

    /// A snapshot of every entry, in index order.
    pub fn entries(&self) -> Vec<EntryInfo> {
        let g = self.inner.lock();
        g.slots.iter().map(|(start, s)| s.info(start)).collect()
    }

    /// The entry covering page `index`, if any.
    pub fn lookup(&self, index: u64) -> Option<EntryInfo> {
        let g = self.inner.lock();
        g.covering(index).map(|start| g.slots[start].info(start))
    }

    /// The first entry of any kind overlapping page range `first ..= last`, as (first
    /// page, pages) — the DAX answer of `mapping_seek_hole_data`'s probe.
    pub fn next_entry(&self, first: u64, last: u64) -> Option<(u64, u64)> {
        if last < first {
            return None;
        }
        let g = self.inner.lock();
        if let Some(k) = g.covering(first) {
            return Some((k, g.slots[k].entry.pages()));
        }
        g.slots
            .range(first..=last)
            .next()
            .map(|(k, s)| (k, s.entry.pages()))
    }

    /// Sleeps as an exclusive waiter on `key` until woken, giving the guard back
    /// (`wait_entry_unlocked_exclusive`'s sleep).
    fn wait_on<'a>(&self, mut g: MutexGuard<'a, Inner>, key: u64) -> MutexGuard<'a, Inner> {
        let cv = {
            let q = g.queues.entry(key).or_insert_with(|| Queue {
                cv: Arc::new(Condvar::new()),
                waiters: 0,
                wakes: 0,
            });
            q.waiters += 1;
            q.cv.clone()
        };
        loop {
            g = cv.wait(g);
            let q = g
                .queues
                .get_mut(&key)
                .expect("a queue lives while it has waiters");
            if q.wakes > 0 {
                q.wakes -= 1;
                q.waiters -= 1;
                if q.waiters == 0 {
                    g.queues.remove(&key);
                }
                return g;
            }
        }
    }

    /// Finds an unlocked entry overlapping `[aligned index, + 2^order)`, sleeping while
    /// the one found is locked (`get_next_unlocked_entry`). An entry of smaller order
    /// than asked is a conflict.
    fn next_unlocked<'a>(
        &self,
        mut g: MutexGuard<'a, Inner>,
        index: u64,
        order: u32,
    ) -> (MutexGuard<'a, Inner>, Found) {
        loop {
            let Some(key) = g.overlapping(index, order) else {
                return (g, Found::None);
            };
            let slot = g.slots[key];
            if slot.entry.order < order {
                return (g, Found::Conflict);
            }
            if !slot.locked {
                return (g, Found::At(key));
            }
            g = self.wait_on(g, key);
        }
    }

    /// After waiting on `key` without taking the entry: passes the wake-up on to the
    /// next waiter (`put_unlocked_entry` with `WAKE_NEXT`).
    fn put_unlocked(g: &mut Inner, key: u64) {
        g.wake_one(key);
    }

    /// Returns the entry for page `index` at `order`, locked (`grab_mapping_entry`).
    ///
    /// Waits while the covering entry is locked. A PMD request over a range holding a
    /// PTE entry is [`GrabError::Fallback`] (PTE entries are never evicted for a PMD). A
    /// PTE request inside a ZERO or EMPTY PMD entry downgrades it: the PMD entry is
    /// locked, `unmap(first page, pages)` removes its user mappings (for a ZERO entry),
    /// then it is deleted (waking all its waiters) and a PTE entry is created. A PTE
    /// request inside a REAL PMD entry returns the PMD entry (real PMDs are never
    /// split). Nothing there: a new EMPTY entry of `order`, locked, is inserted and
    /// `nrpages` grows by `2^order`.
    pub fn grab(
        &self,
        index: u64,
        order: u32,
        unmap: &mut dyn FnMut(u64, u64),
    ) -> Result<LockedEntry<'_>, GrabError> {
        if order != 0 && order != PMD_ORDER {
            return Err(GrabError::BadOrder);
        }
        let mut g = self.inner.lock();
        loop {
            let found;
            (g, found) = self.next_unlocked(g, index, order);
            match found {
                Found::Conflict => return Err(GrabError::Fallback),
                Found::At(key) => {
                    let slot = g.slots.get_mut(key).expect("found");
                    let downgrade = order == 0
                        && slot.entry.is_pmd()
                        && matches!(slot.entry.kind, EntryKind::Zero | EntryKind::Empty);
                    if !downgrade {
                        slot.locked = true;
                        return Ok(LockedEntry {
                            index: self,
                            start: key,
                            entry: slot.entry,
                            pgoff: slot.pgoff,
                        });
                    }
                    // Hold the PMD entry's lock while its mappings go, without the
                    // index lock.
                    slot.locked = true;
                    let zero = slot.entry.kind == EntryKind::Zero;
                    let pages = slot.entry.pages();
                    drop(g);
                    if zero {
                        unmap(key, pages);
                    }
                    g = self.inner.lock();
                    g.remove(key);
                    // Go round again: nothing covers `index` now.
                }
                Found::None => {
                    let start = index & !((1u64 << order) - 1);
                    let entry = Entry::empty(order);
                    g.slots.insert(
                        start,
                        EntrySlot {
                            entry,
                            locked: true,
                            marks: Marks::empty(),
                            pgoff: 0,
                        },
                    );
                    g.nrpages += entry.pages();
                    return Ok(LockedEntry {
                        index: self,
                        start,
                        entry,
                        pgoff: 0,
                    });
                }
            }
        }
    }

    /// Walks the entries overlapping page range `first ..= last`, waiting for each
    /// locked one, and lets `f` decide what to do with it under the index lock: keep
    /// it (`false`) or remove it (`true`). Entries kept are passed on to the next waiter.
    fn walk(&self, first: u64, last: u64, mut f: impl FnMut(u64, &mut EntrySlot) -> bool) {
        if last < first {
            return;
        }
        let mut g = self.inner.lock();
        let mut pos = first;
        loop {
            let key = match g.covering(pos) {
                Some(k) => Some(k),
                None => g.slots.range(pos..=last).next().map(|(k, _)| k),
            };
            let Some(key) = key else { return };
            let slot = g.slots[key];
            if slot.locked {
                g = self.wait_on(g, key);
                // Look again from the same position: the entry may be gone or changed.
                if g.slots.get(key).is_some_and(|s| !s.locked) {
                    continue;
                }
                Self::put_unlocked(&mut g, key);
                if !g.slots.contains_key(key) {
                    pos = key.max(pos);
                }
                continue;
            }
            // The entry at the top of the index ends the walk (no page after it).
            let next = key.checked_add(slot.entry.pages());
            let remove = f(key, g.slots.get_mut(key).expect("present"));
            if remove {
                self.remove_slot(&mut g, key);
            } else {
                Self::put_unlocked(&mut g, key);
            }
            match next {
                Some(n) if n <= last => pos = n,
                _ => return,
            }
        }
    }

    /// Clears the DIRTY and TOWRITE marks of every entry overlapping page range
    /// `first ..= last`, waiting for locked entries (`dax_clear_dirty_range`).
    pub fn clear_dirty_range(&self, first: u64, last: u64) {
        self.walk(first, last, |_, s| {
            s.marks = Marks::empty();
            false
        });
    }

    /// Removes every clean (neither DIRTY nor TOWRITE) entry overlapping page range
    /// `first ..= last`, waiting for locked ones (the DAX part of
    /// `invalidate_inode_pages2_range`); returns whether every entry went (false: some
    /// dirty entry stayed, `-EBUSY` in the kernel).
    pub fn invalidate_clean(&self, first: u64, last: u64) -> bool {
        let mut all = true;
        self.walk(first, last, |_, s| {
            let clean = s.marks.is_empty();
            all &= clean;
            clean
        });
        all
    }

    /// Removes every entry overlapping page range `first ..= last`, dirty or not,
    /// waiting for locked ones (truncation: `dax_delete_mapping_range`).
    pub fn delete_range(&self, first: u64, last: u64) {
        self.walk(first, last, |_, _| true);
    }

    /// Removes the entry covering page `index` whatever its marks, waiting for its lock
    /// (`dax_delete_mapping_entry`): false when there was none.
    pub fn delete_entry(&self, index: u64) -> bool {
        let mut removed = false;
        self.walk(index, index, |_, _| {
            removed = true;
            true
        });
        removed
    }

    /// Removes the entry covering page `index` only if it is clean, waiting for its
    /// lock (`dax_invalidate_mapping_entry_sync`): true when it was removed.
    pub fn invalidate_entry_sync(&self, index: u64) -> bool {
        let mut removed = false;
        self.walk(index, index, |_, s| {
            removed = s.marks.is_empty();
            removed
        });
        removed
    }

    /// Marks TOWRITE every DIRTY entry overlapping page range `first ..= last`
    /// (`tag_pages_for_writeback`), without waiting: returns how many were tagged.
    pub fn tag_towrite(&self, first: u64, last: u64) -> usize {
        if last < first {
            return 0;
        }
        let mut g = self.inner.lock();
        let from = g.covering(first).unwrap_or(first);
        let mut n = 0;
        for (_, s) in g.slots.range_mut(from..=last) {
            if s.marks.contains(Marks::DIRTY) {
                s.marks |= Marks::TOWRITE;
                n += 1;
            }
        }
        n
    }
}

impl MappingIndex {
    fn locked_at(&self, g: &mut Inner, key: u64) -> LockedEntry<'_> {
        let slot = g.slots.get_mut(key).expect("present");
        slot.locked = true;
        LockedEntry {
            index: self,
            start: key,
            entry: slot.entry,
            pgoff: slot.pgoff,
        }
    }

    /// Locks the existing entry for page `index` at `order`, waiting while it is
    /// locked; `None` (after passing the wake-up on) when there is none, a smaller one
    /// conflicts, or a PTE was asked for and a PMD entry is found (the lookup of
    /// `dax_insert_pfn_mkwrite`).
    pub fn lock_existing(&self, index: u64, order: u32) -> Option<LockedEntry<'_>> {
        if order != 0 && order != PMD_ORDER {
            return None;
        }
        let g = self.inner.lock();
        let (mut g, found) = self.next_unlocked(g, index, order);
        match found {
            Found::At(key) if order == 0 && g.slots[key].entry.is_pmd() => {
                Self::put_unlocked(&mut g, key);
                None
            }
            Found::At(key) => Some(self.locked_at(&mut g, key)),
            Found::None | Found::Conflict => None,
        }
    }

    /// Prepares pages `first, first + 1, ...` (at most `max`) backed by consecutive
    /// device pages from `pfn` / `pgoff` to be mapped together with a faulting page
    /// (fault-around, a dax-rs extension): a page without an entry gets an unlocked,
    /// clean REAL PTE entry; a page whose unlocked REAL PTE entry already has the
    /// expected pfn is kept; anything else (a locked, ZERO, EMPTY or PMD entry, another
    /// pfn) ends the run. Returns the run's length and the offsets (from `first`) of
    /// the entries created. The caller holds the faulting page's entry lock and the
    /// filesystem lock that keeps the block map stable. A run is at most 512 pages
    /// (fault-around never maps more than a 2 MiB block at once) and ends at the top
    /// of the index.
    pub fn prepare_run(&self, first: u64, max: u64, pfn: Pfn, pgoff: u64) -> (u64, Vec<u64>) {
        let max = max
            .min(1 << PMD_ORDER)
            .min((u64::MAX - first).saturating_add(1));
        let mut g = self.inner.lock();
        if max == 0 || g.covering(first).is_some_and(|k| k != first) {
            return (0, Vec::new());
        }
        // One scan of the pages in range: a page without an entry is a gap (a new
        // entry); the run ends at the first entry that is not the expected unlocked
        // REAL PTE entry.
        let mut created = Vec::with_capacity(max as usize);
        let n = g.slots.visit_run(first, max, |k, s| {
            let at = k - first;
            match s {
                None => {
                    created.push(at);
                    true
                }
                Some(s) => {
                    !s.locked
                        && s.entry == Entry::real(0, pfn.add(at))
                        && s.pgoff == pgoff.wrapping_add(at)
                }
            }
        });
        g.slots.insert_sorted(created.iter().map(|&c| {
            let slot = EntrySlot {
                entry: Entry::real(0, pfn.add(c)),
                locked: false,
                marks: Marks::empty(),
                pgoff: pgoff.wrapping_add(c),
            };
            (first + c, slot)
        }));
        g.nrpages += created.len() as u64;
        (n, created)
    }

    /// [`prepare_run`](Self::prepare_run) for 2 MiB units: the units at page indices
    /// `first, first + 512, ...` (at most `max`; `first` 512-aligned) backed by
    /// consecutive 2 MiB device units from `pfn` / `pgoff`, to be mapped with a
    /// faulting PMD (PMD fault-around, a dax-rs extension). A unit with no entry at
    /// all gets an unlocked, clean REAL PMD entry; one whose unlocked REAL PMD entry
    /// already has the expected pfn is kept; anything else (a PTE entry anywhere in
    /// the unit, a locked, ZERO or EMPTY entry, another pfn) ends the run. Returns the
    /// run's length in units and the offsets (in units, from `first`) of the entries
    /// created.
    pub fn prepare_pmd_run(&self, first: u64, max: u64, pfn: Pfn, pgoff: u64) -> (u64, Vec<u64>) {
        const UNIT: u64 = 1 << PMD_ORDER;
        // Never past the top of the index, and at most 1 GiB of units at once (the
        // populate path's largest run): each unit costs an entry.
        let max = max.min((u64::MAX - first) / UNIT + 1).min(UNIT);
        let mut g = self.inner.lock();
        let mut created = Vec::new();
        let mut n = 0;
        while n < max {
            let idx = first + n * UNIT;
            let want = Entry::real(PMD_ORDER, pfn.add(n * UNIT));
            match g.overlapping(idx, PMD_ORDER) {
                None => {
                    g.slots.insert(
                        idx,
                        EntrySlot {
                            entry: want,
                            locked: false,
                            marks: Marks::empty(),
                            pgoff: pgoff.wrapping_add(n * UNIT),
                        },
                    );
                    g.nrpages += UNIT;
                    created.push(n);
                }
                Some(k)
                    if k == idx
                        && !g.slots[k].locked
                        && g.slots[k].entry == want
                        && g.slots[k].pgoff == pgoff.wrapping_add(n * UNIT) => {}
                Some(_) => break,
            }
            n += 1;
        }
        (n, created)
    }

    /// The first page of every entry overlapping `first ..= last` that carries
    /// TOWRITE, with its pfn (the writeback walk's snapshot).
    pub fn towrite_entries(&self, first: u64, last: u64) -> Vec<(u64, Pfn)> {
        if last < first {
            return Vec::new();
        }
        let g = self.inner.lock();
        let from = g.covering(first).unwrap_or(first);
        g.slots
            .range(from..=last)
            .filter(|(_, s)| s.marks.contains(Marks::TOWRITE))
            .map(|(k, s)| (k, s.entry.pfn))
            .collect()
    }

    /// Locks the entry at `start` for writing back, clearing its TOWRITE mark (the
    /// first half of `dax_writeback_one`). If it is locked, waits, then skips it
    /// (`Ok(None)`, passing the wake-up on) when it is gone, its pfn is no longer
    /// `pfn` (the blocks were reallocated) or its TOWRITE mark was cleared by another
    /// writeback; an EMPTY or ZERO entry found then is [`DaxError::Io`](dax_device::DaxError::Io).
    pub fn lock_for_writeback(
        &self,
        start: u64,
        pfn: Pfn,
    ) -> Result<Option<LockedEntry<'_>>, dax_device::DaxError> {
        let mut g = self.inner.lock();
        let mut waited = false;
        loop {
            let Some(key) = g.covering(start) else {
                if waited {
                    Self::put_unlocked(&mut g, start);
                }
                return Ok(None);
            };
            let slot = g.slots[key];
            if slot.locked {
                g = self.wait_on(g, key);
                waited = true;
                continue;
            }
            if waited {
                let skip = if slot.entry.pfn != pfn {
                    Some(Ok(None))
                } else if slot.entry.kind != EntryKind::Real {
                    Some(Err(dax_device::DaxError::Io {
                        what: "writeback found an empty or zero entry marked TOWRITE",
                    }))
                } else if !slot.marks.contains(Marks::TOWRITE) {
                    Some(Ok(None))
                } else {
                    None
                };
                if let Some(r) = skip {
                    Self::put_unlocked(&mut g, key);
                    return r;
                }
            }
            let e = self.locked_at(&mut g, key);
            g.slots
                .get_mut(key)
                .expect("present")
                .marks
                .remove(Marks::TOWRITE);
            return Ok(Some(e));
        }
    }

    /// Locks the entry covering page `index` if it is REAL, waiting while it is
    /// locked; `None` for no entry, or an EMPTY or ZERO one (the lookup of
    /// `dax_lock_mapping_entry`).
    pub fn lock_real(&self, index: u64) -> Option<LockedEntry<'_>> {
        let mut g = self.inner.lock();
        loop {
            let key = g.covering(index)?;
            let slot = g.slots[key];
            if slot.locked {
                g = self.wait_on(g, key);
                Self::put_unlocked(&mut g, key);
                continue;
            }
            if slot.entry.kind != EntryKind::Real {
                return None;
            }
            return Some(self.locked_at(&mut g, key));
        }
    }

    /// Visits every entry overlapping page range `first ..= last` once, waiting for
    /// each locked one, without changing any (the walk of
    /// `dax_layout_busy_page_range`).
    pub fn for_each(&self, first: u64, last: u64, mut f: impl FnMut(&EntryInfo)) {
        self.walk(first, last, |key, s| {
            f(&s.info(key));
            false
        });
    }
}

/// A locked entry, from [`MappingIndex::grab`]: unlocked when dropped
/// (`dax_unlock_entry`: clear LOCKED, wake one waiter).
#[must_use = "the entry is unlocked when this is dropped"]
pub struct LockedEntry<'a> {
    index: &'a MappingIndex,
    start: u64,
    entry: Entry,
    pgoff: u64,
}

impl fmt::Debug for LockedEntry<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockedEntry")
            .field("start", &self.start)
            .field("entry", &self.entry)
            .finish()
    }
}

impl LockedEntry<'_> {
    /// The entry as it stands.
    pub fn entry(&self) -> Entry {
        self.entry
    }

    /// First page index it covers.
    pub fn start(&self) -> u64 {
        self.start
    }

    /// Device page offset of a REAL entry's first page (0 otherwise).
    pub fn pgoff(&self) -> u64 {
        self.pgoff
    }

    /// Sets the DIRTY mark (`dax_insert_pfn_mkwrite`'s `xas_set_mark`).
    pub fn mark_dirty(&self) {
        let mut g = self.index.inner.lock();
        if let Some(slot) = g.slots.get_mut(self.start) {
            slot.marks |= Marks::DIRTY;
        }
    }

    /// Unlocks the entry after clearing its DIRTY mark, waking one waiter (the end of
    /// `dax_writeback_one`: DIRTY goes only once the flush is done).
    pub fn unlock_clean(self) {
        let mut g = self.index.inner.lock();
        if let Some(slot) = g.slots.get_mut(self.start) {
            slot.marks.remove(Marks::DIRTY);
        }
        drop(g);
        // Drop unlocks and wakes one.
    }

    /// Puts a ZERO or REAL entry (at device page `pgoff`, 0 for ZERO) in place of this
    /// one (the index part of `dax_insert_entry`): with `shared`, or over a ZERO entry replaced by a non-zero
    /// one, `unmap(first page, pages)` first removes the old entry's user mappings; then
    /// the new value replaces an EMPTY or ZERO entry (or any, with `shared`), while an
    /// existing REAL entry is kept (a PTE fault inside a REAL PMD, a refault). Sets
    /// DIRTY when `dirty`, and TOWRITE when `towrite` (a write to shared blocks). The
    /// new entry must have this entry's order.
    pub fn insert(
        &mut self,
        new: Entry,
        pgoff: u64,
        dirty: bool,
        towrite: bool,
        shared: bool,
        unmap: &mut dyn FnMut(u64, u64),
    ) -> Entry {
        let old = self.entry;
        if shared || (old.kind == EntryKind::Zero && new.kind != EntryKind::Zero) {
            unmap(self.start, old.pages());
        }
        let mut g = self.index.inner.lock();
        let slot = g.slots.get_mut(self.start).expect("a locked entry stays");
        if (shared || matches!(old.kind, EntryKind::Zero | EntryKind::Empty))
            && new.order == old.order
        {
            slot.entry = new;
            slot.pgoff = pgoff;
            self.entry = new;
            self.pgoff = pgoff;
        }
        if dirty {
            slot.marks |= Marks::DIRTY;
        }
        if towrite {
            slot.marks |= Marks::TOWRITE;
        }
        self.entry
    }

    /// Removes the entry while holding its lock, waking every waiter
    /// (the delete-and-wake-all half of `dax_delete_mapping_entry`).
    pub fn delete(self) {
        let mut g = self.index.inner.lock();
        self.index.remove_slot(&mut g, self.start);
        drop(g);
        std::mem::forget(self);
    }
}

impl Drop for LockedEntry<'_> {
    fn drop(&mut self) {
        let mut g = self.index.inner.lock();
        if let Some(slot) = g.slots.get_mut(self.start) {
            slot.locked = false;
            g.wake_one(self.start);
        }
    }
}
