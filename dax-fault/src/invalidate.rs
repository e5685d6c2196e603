//! Removing entries from a DAX file's index (`dax_delete_mapping_entry`,
//! `dax_delete_mapping_range`, `dax_invalidate_mapping_entry_sync`). None of these
//! unmaps user page tables: callers do that first ([`DaxMapping::unmap_mapping_pages`],
//! or [`dax_break_layout`](crate::dax_break_layout), which does both).

use std::ops::RangeBounds;

use dax_device::PAGE_SIZE;

use crate::mapping::DaxMapping;

const PAGE: u64 = PAGE_SIZE as u64;

/// Removes the entry covering file page `index` whatever its marks, waiting for its
/// lock (`dax_delete_mapping_entry`, truncation). False when there was none (the
/// kernel warns: callers only ask for indices where they saw an entry).
pub fn dax_delete_mapping_entry(mapping: &DaxMapping, index: u64) -> bool {
    mapping.index().delete_entry(index)
}

/// Removes every entry overlapping the file bytes `bytes` (`..` for the whole file),
/// dirty or not, waiting for locked ones (`dax_delete_mapping_range`, which takes an
/// inclusive end; an end at `i64::MAX` or beyond means to the end of the file, as
/// the kernel's `LLONG_MAX` does).
pub fn dax_delete_mapping_range(mapping: &DaxMapping, bytes: impl RangeBounds<u64>) {
    if let Some((first, last)) = crate::range::inclusive(&bytes).and_then(|(s, e)| page_range(s, e))
    {
        mapping.index().delete_range(first, last);
    }
}

/// The file pages `first ..= last` holding bytes `start ..= end`, where an `end` of
/// `i64::MAX` or more (`LLONG_MAX` in the kernel's callers) means to the end of the
/// index; `None` for an empty range.
pub(crate) fn page_range(start: u64, end: u64) -> Option<(u64, u64)> {
    if end < start {
        return None;
    }
    // "To the end" is the whole rest of the index, whatever page numbers it holds.
    let last = if end >= i64::MAX as u64 {
        u64::MAX
    } else {
        end / PAGE
    };
    Some((start / PAGE, last))
}

/// Removes the entry covering file page `index` only if it carries neither DIRTY nor
/// TOWRITE, waiting for its lock (`dax_invalidate_mapping_entry_sync`): true when it
/// was removed, false when it was kept or absent.
pub fn dax_invalidate_mapping_entry_sync(mapping: &DaxMapping, index: u64) -> bool {
    mapping.index().invalidate_entry_sync(index)
}
