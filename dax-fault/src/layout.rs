//! Layout breaking: finding device pages of a file that something other than a page
//! table still references (`dax_layout_busy_page_range`), and waiting until they are
//! released before the filesystem changes its block map (`dax_break_layout`,
//! `dax_break_layout_final`). Pins ([`pin_user_pages`]) stand in for
//! `get_user_pages` and DMA references.

use std::ops::RangeBounds;
use std::time::Duration;

use dax_device::{DaxError, PAGE_SIZE, PMD_SIZE, Pfn};

use crate::index::EntryKind;
use crate::invalidate::{dax_delete_mapping_range, page_range};
use crate::mapping::{DaxMapping, MappedVma};
use crate::page_state;
use crate::pagetable::{PmdSlot, Pte};

const PAGE: u64 = PAGE_SIZE as u64;
const PMD: u64 = PMD_SIZE as u64;

/// `ERESTARTSYS`: the kernel's "restart the system call" (512), what an interrupted
/// or non-blocking layout break returns.
pub const ERESTARTSYS: i32 = 512;

fn restart(what: &'static str) -> DaxError {
    DaxError::Os {
        errno: ERESTARTSYS,
        what,
    }
}

/// References on device pages taken by [`pin_user_pages`] (what `get_user_pages`
/// gives a driver doing DMA); released when dropped (`unpin_user_pages`).
#[derive(Debug)]
#[must_use = "the pages are unpinned when this is dropped"]
pub struct PagePins {
    pfns: Vec<Pfn>,
}

impl PagePins {
    /// The pinned pages, in address order.
    pub fn pfns(&self) -> &[Pfn] {
        &self.pfns
    }
}

impl Drop for PagePins {
    fn drop(&mut self) {
        for &p in &self.pfns {
            page_state::unpin(p);
        }
    }
}

/// Pins the device pages mapped at `addr .. addr + pages * 4096` in `vma`
/// (`pin_user_pages` on already-faulted pages): each must be mapped to device memory
/// (and writable if `write`), else [`DaxError::Fault`] (`EFAULT`) and nothing stays
/// pinned. Fault the range in first.
pub fn pin_user_pages(
    vma: &MappedVma,
    addr: u64,
    pages: u64,
    write: bool,
) -> Result<PagePins, DaxError> {
    let fault = || DaxError::Fault {
        what: "pinned address is not mapped to device memory",
    };
    let mut pins = PagePins { pfns: Vec::new() };
    let pt = vma.page_table();
    for i in 0..pages {
        let a = addr
            .checked_add(i * PAGE)
            .filter(|&a| vma.vma().contains(a))
            .ok_or_else(fault)?;
        let (pfn, writable) = match pt.pmd(a) {
            PmdSlot::Huge { pfn, writable, .. } => (pfn.add((a & (PMD - 1)) / PAGE), writable),
            _ => match pt.pte(a) {
                Some(Pte::Page { pfn, writable, .. }) => (pfn, writable),
                _ => return Err(fault()),
            },
        };
        if write && !writable {
            return Err(fault());
        }
        page_state::pin(pfn);
        pins.pfns.push(pfn);
    }
    Ok(pins)
}

/// Unmaps the file bytes `bytes` (`..` for the whole file) from every user mapping and
/// returns the first device page of a REAL entry in range that is still referenced
/// beyond its mappings (`dax_layout_busy_page_range`, which takes an inclusive end;
/// an end at `i64::MAX` or beyond means to the end, as the kernel's `LLONG_MAX`).
///
/// The caller holds the locks that keep new faults out of the range (the invalidate
/// lock, exclusively).
pub fn dax_layout_busy_page_range(
    mapping: &DaxMapping,
    bytes: impl RangeBounds<u64>,
) -> Option<Pfn> {
    let (start, end) = crate::range::inclusive(&bytes)?;
    let (first, last) = page_range(start, end)?;
    mapping.unmap_mapping_pages(first, (last - first).saturating_add(1), false);
    let mut busy = None;
    mapping.index().for_each(first, last, |e| {
        if busy.is_none() && e.entry.kind == EntryKind::Real {
            busy = page_state::first_pinned(e.entry.pfn, e.entry.pages());
        }
    });
    busy
}

/// [`dax_layout_busy_page_range`] over the whole file (`dax_layout_busy_page`).
pub fn dax_layout_busy_page(mapping: &DaxMapping) -> Option<Pfn> {
    dax_layout_busy_page_range(mapping, ..)
}

/// The "schedule" step a filesystem gives [`dax_break_layout`]: called while a page is
/// busy with a `wait` function that sleeps until the page may be idle; the filesystem
/// drops its exclusive lock around `wait()` and retakes it (ext4's
/// `ext4_wait_dax_page`, XFS's `xfs_wait_dax_page`). Returning an error (a signal,
/// [`DaxError::Interrupted`]) stops the break.
pub type BreakLayoutWait<'a> = &'a mut dyn FnMut(&dyn Fn()) -> Result<(), DaxError>;

/// Breaks the DAX layout of the file bytes `bytes` (`..` for the whole file) before a
/// block-map change (`dax_break_layout`, which takes an inclusive end): until no device page in range is busy, unmaps the range and
/// waits through `cb` for the busy page to be released; then deletes every entry in
/// range.
///
/// Without `cb` a busy page is `ERESTARTSYS` at once (a non-blocking caller); an
/// error from `cb` is returned as `ERESTARTSYS` too. In both cases the entries stay.
#[must_use = "a failed layout break leaves the entries in place"]
pub fn dax_break_layout(
    mapping: &DaxMapping,
    bytes: impl RangeBounds<u64> + Clone,
    mut cb: Option<BreakLayoutWait<'_>>,
) -> Result<(), DaxError> {
    while let Some(busy) = dax_layout_busy_page_range(mapping, bytes.clone()) {
        let Some(cb) = cb.as_mut() else {
            return Err(restart("busy DAX page and no wait callback"));
        };
        let wait = || {
            page_state::wait_idle(busy, Duration::from_millis(10));
        };
        if cb(&wait).is_err() {
            return Err(restart("layout break interrupted while waiting"));
        }
    }
    dax_delete_mapping_range(mapping, bytes);
    Ok(())
}

/// [`dax_break_layout`] over the whole file (`dax_break_layout_inode`).
#[must_use = "a failed layout break leaves the entries in place"]
pub fn dax_break_layout_inode(
    mapping: &DaxMapping,
    cb: Option<BreakLayoutWait<'_>>,
) -> Result<(), DaxError> {
    dax_break_layout(mapping, .., cb)
}

/// [`dax_break_layout`] with the wait every filesystem writes, ready-made (ext4's
/// `ext4_break_layouts` with `ext4_wait_dax_page`, XFS's `xfs_break_dax_layouts` with
/// `xfs_wait_dax_page`): while a page is busy, the guard in `guard` — the
/// filesystem's invalidate lock, held exclusively — is dropped, the thread sleeps
/// until the page may be idle, and `relock` takes the lock again, so that a thread
/// holding a pin that faults (and needs the lock shared) can finish. `guard` must be
/// `Some` on entry and is `Some` again on return, success or not. When `interrupted`
/// is given and becomes true, the break stops with `ERESTARTSYS`, as a fatal signal
/// stops the kernel's wait; the entries then stay.
///
/// Call it with the I/O lock and the invalidate lock held exclusively, before changing
/// the block map of `bytes` (`..` for the whole file).
///
/// ```
/// # use std::sync::Arc;
/// # use parking_lot::RwLock;
/// # use dax_fault::{DaxMapping, dax_break_layout_relocking};
/// # let dev: Arc<dax_device::DaxDevice> = dax_testdev::MemDevice::builder().size(1 << 20).build().unwrap();
/// let mapping = DaxMapping::new(dev);
/// let invalidate_lock = RwLock::new(());
/// let mut guard = Some(invalidate_lock.write());
/// dax_break_layout_relocking(&mapping, .., &mut guard, || invalidate_lock.write(), None)?;
/// assert!(guard.is_some());
/// // ... now change the block map ...
/// # Ok::<(), dax_device::DaxError>(())
/// ```
#[must_use = "a failed layout break leaves the entries in place"]
pub fn dax_break_layout_relocking<G>(
    mapping: &DaxMapping,
    bytes: impl RangeBounds<u64> + Clone,
    guard: &mut Option<G>,
    mut relock: impl FnMut() -> G,
    interrupted: Option<&std::sync::atomic::AtomicBool>,
) -> Result<(), DaxError> {
    let mut wait = |sleep: &dyn Fn()| {
        if interrupted.is_some_and(|i| i.load(std::sync::atomic::Ordering::Relaxed)) {
            return Err(DaxError::Interrupted);
        }
        *guard = None;
        sleep();
        *guard = Some(relock());
        Ok(())
    };
    dax_break_layout(mapping, bytes, Some(&mut wait))
}

/// Waits, uninterruptibly and without a callback, until no page of the file is busy,
/// then deletes every entry (`dax_break_layout_final`, at inode eviction).
pub fn dax_break_layout_final(mapping: &DaxMapping) {
    while let Some(busy) = dax_layout_busy_page(mapping) {
        page_state::wait_idle(busy, Duration::from_millis(10));
    }
    dax_delete_mapping_range(mapping, ..);
}
