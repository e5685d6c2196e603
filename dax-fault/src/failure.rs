//! Memory failure on DAX files: locking the entry of a poisoned file page
//! (`dax_lock_mapping_entry`, `dax_lock_folio`), and killing the users that map it
//! (`mf_dax_kill_procs` on the holder path, `mf_generic_kill_procs` without one).

use dax_device::{DaxError, MfFlags, PMD_PAGES, Pfn};

use crate::index::LockedEntry;
use crate::mapping::DaxMapping;
use crate::page_state::{self, Owner};
use crate::pagetable::{PmdSlot, Pte};

/// What [`dax_lock_mapping_entry`] found.
#[derive(Debug)]
pub enum MfLock<'a> {
    /// The mapping is not a DAX mapping (the kernel's 0 cookie): the caller cannot
    /// handle the page here.
    NotDax,
    /// No REAL entry at that index: nothing maps device memory there, so there is
    /// nobody to kill (the all-ones cookie).
    NoPage,
    /// The REAL entry, locked until this is dropped (`dax_unlock_mapping_entry`).
    Locked(LockedEntry<'a>),
}

/// Locks the entry of file page `index` for memory-failure handling
/// (`dax_lock_mapping_entry`): `mapping` is `None` for a file without a DAX mapping.
pub fn dax_lock_mapping_entry(mapping: Option<&DaxMapping>, index: u64) -> MfLock<'_> {
    let Some(m) = mapping else {
        return MfLock::NotDax;
    };
    match m.index().lock_real(index) {
        Some(e) => MfLock::Locked(e),
        None => MfLock::NoPage,
    }
}

/// Kills the users of file pages `index .. index + count` after a media failure
/// (`mf_dax_kill_procs`): for each page with a REAL entry, flags the device page
/// HWPoison (not for [`MfFlags::MEM_PRE_REMOVE`]), removes it (the whole PMD when a
/// huge mapping covers it) from every user mapping, and sends SIGBUS to those users
/// ([`MappedVma::take_signals`](crate::MappedVma::take_signals)). Pages without a
/// REAL entry are skipped; only pages with entries are visited, so a count of
/// `u64::MAX` (to the end of the file) costs what the file has. [`DaxError::Busy`]
/// (`EBUSY`) when `mapping` is `None` and the range is not empty.
pub fn mf_dax_kill_procs(
    mapping: Option<&DaxMapping>,
    index: u64,
    count: u64,
    flags: MfFlags,
) -> Result<(), DaxError> {
    if count == 0 {
        return Ok(());
    }
    let Some(m) = mapping else {
        return Err(DaxError::Busy {
            what: "memory failure on a file that is not DAX-mapped",
        });
    };
    // Visit only the pages that have entries: a walk over a range costs what exists
    // in it, not its length (a count of u64::MAX means to the end of the file).
    let last = index.saturating_add(count - 1);
    let mut next = Some(index);
    while let Some(from) = next
        && let Some((start, pages)) = m.index().next_entry(from, last)
    {
        let end = (start + (pages - 1)).min(last);
        next = end.checked_add(1);
        for i in from.max(start)..=end {
            kill_page(m, i, flags);
        }
    }
    Ok(())
}

/// [`mf_dax_kill_procs`] for file page `i`: nothing unless it has a REAL entry.
fn kill_page(m: &DaxMapping, i: u64, flags: MfFlags) {
    if let MfLock::Locked(e) = dax_lock_mapping_entry(Some(m), i) {
        let entry = e.entry();
        let pfn = entry.pfn.add(i - e.start());
        if !flags.contains(MfFlags::MEM_PRE_REMOVE) {
            page_state::set_hwpoison(pfn);
        }
        kill(m, i, pfn, entry.pages(), e.start());
    }
}

/// Signals every user mapping device page `pfn` at file page `index` and unmaps the
/// page (the entry's whole range when it is a PMD entry). A mapping that shows
/// something else there — nothing, or its own private copy-on-write copy — is not a
/// user of the page and is left alone (`dev_pagemap_mapping_shift` finds no device
/// mapping, so `add_to_kill` drops it).
fn kill(m: &DaxMapping, index: u64, pfn: Pfn, entry_pages: u64, entry_start: u64) {
    for v in m.vmas() {
        if let Some((addr, _)) = v.vma().range_of(index, 1) {
            let pt = v.page_table();
            let mapped = match pt.pmd(addr) {
                PmdSlot::Huge { pfn: head, .. } => pfn.0.wrapping_sub(head.0) < PMD_PAGES,
                _ => matches!(pt.pte(addr), Some(Pte::Page { pfn: p, .. }) if p == pfn),
            };
            if mapped {
                v.signal(addr);
            }
        }
    }
    m.unmap_mapping_pages(entry_start, entry_pages, false);
}

/// Handles a media failure at device page `pfn` without a holder
/// (`memory_failure` → `mf_generic_kill_procs` via `dax_lock_folio`): finds the
/// owning file page through the device-page metadata, flags the page HWPoison, kills
/// the users mapping it. [`DaxError::Busy`] when the page has no single owner (not
/// mapped, or reflinked by several files).
pub fn dax_memory_failure(pfn: Pfn, flags: MfFlags) -> Result<(), DaxError> {
    let busy = || DaxError::Busy {
        what: "device page has no single owning file",
    };
    let Some((Owner::File(weak, start), head, order)) = page_state::owner(pfn) else {
        return Err(busy());
    };
    let Some(m) = weak.upgrade().and_then(|o| o.downcast::<DaxMapping>().ok()) else {
        return Err(busy());
    };
    let index = start + (pfn.0 - head.0);
    let MfLock::Locked(e) = dax_lock_mapping_entry(Some(&m), index) else {
        return Err(busy());
    };
    if e.entry().pfn != head {
        // The page moved while we looked: the kernel retries; the owner changed.
        return Err(busy());
    }
    if !flags.contains(MfFlags::MEM_PRE_REMOVE) {
        page_state::set_hwpoison(pfn);
    }
    kill(&m, index, pfn, 1u64 << order, e.start());
    drop(e);
    Ok(())
}
