//! Per-device-page metadata (the `struct page` fields fs/dax.c keeps for DAX pages):
//! which file page owns a device page or how many files share it
//! (`dax_associate_entry` / `dax_disassociate_entry`), HWPoison, and references other
//! than page-table mappings: pins, standing in for `get_user_pages` and DMA, which make
//! a page "busy" for layout breaking (`dax_layout_busy_page`).
//!
//! Pfns are unique per process (see [`Pfn`]), so one table serves every device.

use std::any::Any;
use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock, Weak};
use std::time::Duration;

use dax_device::{PMD_PAGES, Pfn};
use parking_lot::{Condvar, Mutex};

/// The file a device page belongs to, as this table sees it: any mapping type, so the
/// table depends on nothing above it (the memory-failure path downcasts it back to
/// a `DaxMapping`).
pub(crate) type OwnerRef = Weak<dyn Any + Send + Sync>;

/// Who a device page belongs to.
#[derive(Clone)]
pub(crate) enum Owner {
    /// One file page: the mapping and the file page index of the entry's start.
    File(OwnerRef, u64),
    /// Reflinked blocks mapped by this many entries (the owner is unknown).
    Shared(u32),
}

#[derive(Clone)]
struct PageMeta {
    /// 0 or 9: a PMD entry makes its 512 pages one unit.
    order: u32,
    owner: Owner,
}

#[derive(Default)]
struct Table {
    /// By head pfn.
    meta: BTreeMap<u64, PageMeta>,
    /// Extra references by pfn (pins).
    pins: BTreeMap<u64, u32>,
    /// Poisoned pfns (`PageHWPoison`).
    poison: BTreeMap<u64, ()>,
}

struct Pages {
    table: Mutex<Table>,
    idle: Condvar,
}

static PAGES: LazyLock<Pages> = LazyLock::new(|| Pages {
    table: Mutex::new(Table::default()),
    idle: Condvar::new(),
});

/// Records that `pages` device pages from `pfn` now back file page `index` of
/// `mapping` (or, with `shared`, one more file: `dax_associate_entry`).
pub(crate) fn associate<M: Any + Send + Sync>(
    pfn: Pfn,
    order: u32,
    mapping: &Arc<M>,
    index: u64,
    shared: bool,
) {
    let mut t = PAGES.table.lock();
    match t.meta.get_mut(&pfn.0) {
        Some(m) if shared => {
            m.owner = match &m.owner {
                Owner::Shared(n) => Owner::Shared(n + 1),
                Owner::File(..) => Owner::Shared(2),
            };
        }
        _ => {
            t.meta.insert(
                pfn.0,
                PageMeta {
                    order,
                    owner: Owner::File(Arc::downgrade(mapping) as OwnerRef, index),
                },
            );
        }
    }
}

/// [`associate`] for units of `2^order` pages, `pfn + o * 2^order` backing file pages
/// from `index + o * 2^order`, for each offset `o` in `offsets`, under one lock (the
/// units fault-around created entries for).
pub(crate) fn associate_units<M: Any + Send + Sync>(
    pfn: Pfn,
    order: u32,
    index: u64,
    offsets: &[u64],
    mapping: &Arc<M>,
) {
    let mut t = PAGES.table.lock();
    let weak = Arc::downgrade(mapping) as OwnerRef;
    for &o in offsets {
        let o = o << order;
        t.meta.insert(
            pfn.0 + o,
            PageMeta {
                order,
                owner: Owner::File(weak.clone(), index + o),
            },
        );
    }
}

/// Drops one association of the unit at `pfn` (`dax_disassociate_entry`).
pub(crate) fn disassociate(pfn: Pfn) {
    let mut t = PAGES.table.lock();
    let gone = match t.meta.get_mut(&pfn.0) {
        Some(PageMeta {
            owner: Owner::Shared(n),
            ..
        }) if *n > 1 => {
            *n -= 1;
            false
        }
        Some(_) => true,
        None => false,
    };
    if gone {
        t.meta.remove(&pfn.0);
    }
}

/// The owner of the device page `pfn` (looking through a PMD unit to its head).
pub(crate) fn owner(pfn: Pfn) -> Option<(Owner, Pfn, u32)> {
    let t = PAGES.table.lock();
    let head = pfn.0 & !(PMD_PAGES - 1);
    if let Some(m) = t.meta.get(&head)
        && m.order > 0
    {
        return Some((m.owner.clone(), Pfn(head), m.order));
    }
    t.meta.get(&pfn.0).map(|m| (m.owner.clone(), pfn, m.order))
}

/// Sets `PageHWPoison` on `pfn`.
pub(crate) fn set_hwpoison(pfn: Pfn) {
    PAGES.table.lock().poison.insert(pfn.0, ());
}

/// Whether `pfn` is flagged `PageHWPoison` (memory failure marked it).
pub fn page_hwpoison(pfn: Pfn) -> bool {
    PAGES.table.lock().poison.contains_key(&pfn.0)
}

/// Clears `PageHWPoison` on `pfn` (what a successful poison clear through the driver
/// does to the page flag, `pmem_clear_hwpoison`).
pub fn clear_page_hwpoison(pfn: Pfn) {
    PAGES.table.lock().poison.remove(&pfn.0);
}

/// Takes one extra reference on device page `pfn`.
pub(crate) fn pin(pfn: Pfn) {
    *PAGES.table.lock().pins.entry(pfn.0).or_insert(0) += 1;
}

/// Drops a reference taken by [`pin`], waking threads waiting for the page to idle.
pub(crate) fn unpin(pfn: Pfn) {
    let mut t = PAGES.table.lock();
    if let Some(n) = t.pins.get_mut(&pfn.0) {
        *n -= 1;
        if *n == 0 {
            t.pins.remove(&pfn.0);
        }
    }
    drop(t);
    PAGES.idle.notify_all();
}

/// The first pinned pfn in `first .. first + pages` (a busy page: references beyond
/// its mappings).
pub(crate) fn first_pinned(first: Pfn, pages: u64) -> Option<Pfn> {
    let t = PAGES.table.lock();
    t.pins
        .range(first.0..=first.0.saturating_add(pages.saturating_sub(1)))
        .next()
        .map(|(&p, _)| Pfn(p))
}

/// Pins on `pfn`.
pub fn page_pins(pfn: Pfn) -> u32 {
    PAGES.table.lock().pins.get(&pfn.0).copied().unwrap_or(0)
}

/// Waits until `pfn` has no pins or `timeout` passes, and says whether it is idle
/// (`wait_page_idle`, bounded: the caller loops on [`dax_layout_busy_page`] as the
/// kernel's callers do).
///
/// [`dax_layout_busy_page`]: crate::dax_layout_busy_page
pub fn wait_idle(pfn: Pfn, timeout: Duration) -> bool {
    let mut t = PAGES.table.lock();
    if !t.pins.contains_key(&pfn.0) {
        return true;
    }
    PAGES.idle.wait_for(&mut t, timeout);
    !t.pins.contains_key(&pfn.0)
}
