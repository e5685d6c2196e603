//! Writeback of a DAX file's mappings (`dax_writeback_mapping_range`,
//! `dax_writeback_one`): data is already on the device, so writeback only writes the
//! CPU cache back for entries that were written through a mapping, and write-protects
//! those mappings so the next store is seen again.

use std::ops::{RangeBounds, RangeInclusive};

use dax_device::{DaxAccessMode, DaxDevice, DaxError, PAGE_SIZE, Pfn};

use dax_iomap::MappingOps;

use crate::mapping::DaxMapping;

const PAGE: u64 = PAGE_SIZE as u64;

/// Which kind of writeback pass (`enum writeback_sync_modes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncMode {
    /// Background or periodic writeback (`WB_SYNC_NONE`): DAX does nothing.
    None,
    /// A data-integrity pass (`WB_SYNC_ALL`: fsync, sync, msync(MS_SYNC)).
    All,
}

/// What to write back (`struct writeback_control`, the fields DAX reads).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WritebackControl {
    /// The kind of pass.
    pub sync_mode: SyncMode,
    /// First byte of the range.
    pub range_start: u64,
    /// Last byte of the range, inclusive (`u64::MAX` or `i64::MAX`: to the end).
    pub range_end: u64,
}

impl WritebackControl {
    /// A data-integrity pass over the file bytes `bytes` (`..` for the whole file), as
    /// fsync asks for. An empty range writes nothing back.
    pub fn sync_all(bytes: impl RangeBounds<u64>) -> Self {
        // The kernel's fields are an inclusive pair; an empty range is start > end.
        let (range_start, range_end) = crate::range::inclusive(&bytes).unwrap_or((1, 0));
        WritebackControl {
            sync_mode: SyncMode::All,
            range_start,
            range_end,
        }
    }

    /// A background pass over the whole file.
    pub fn background() -> Self {
        WritebackControl {
            sync_mode: SyncMode::None,
            range_start: 0,
            range_end: u64::MAX,
        }
    }
}

/// Writes back the dirty entries of `mapping` in `wbc`'s range
/// (`dax_writeback_mapping_range`, the DAX `writepages`).
///
/// [`DaxError::Io`] if the file's block size is not 4 KiB. Nothing happens (and
/// `Ok`) when the mapping has no entries or the pass is not data-integrity. Otherwise
/// every DIRTY entry in range is tagged TOWRITE, then each tagged entry is locked, its
/// user mappings write-protected and cleaned, its whole device range (4 KiB or 2 MiB,
/// even if the range starts inside it) written back from the CPU cache, and its DIRTY
/// mark cleared before it is unlocked. The first error stops the walk, is recorded in
/// the mapping's writeback error state ([`DaxMapping::set_wb_error`]) and returned;
/// the entry it hit (and every one after it) stays DIRTY for the next pass. A device
/// that cannot give access to a dirty entry's memory (an I/O error, or
/// [`DaxError::Dead`] after `kill`: its data can no longer be written back) is such an
/// error.
pub fn dax_writeback_mapping_range(
    mapping: &DaxMapping,
    dev: &DaxDevice,
    wbc: &WritebackControl,
) -> Result<(), DaxError> {
    if mapping.block_size() != PAGE {
        return Err(DaxError::Io {
            what: "DAX writeback needs 4 KiB blocks",
        });
    }
    let index = mapping.index();
    if index.is_empty() || wbc.sync_mode != SyncMode::All || wbc.range_end < wbc.range_start {
        return Ok(());
    }
    let first = wbc.range_start / PAGE;
    let last = wbc.range_end / PAGE;
    index.tag_towrite(first, last);
    for (start, pfn) in index.towrite_entries(first, last) {
        if let Err(e) = writeback_one(mapping, dev, start, pfn) {
            mapping.set_wb_error(e.clone());
            return Err(e);
        }
    }
    Ok(())
}

/// `dax_writeback_one` for the entry starting at page `start` seen with `pfn`.
///
/// The kernel reaches the entry's memory through its pfn and cannot fail once the
/// entry is locked; here the device is asked for it (`direct_access` in
/// recovery-write mode, which answers up to a poisoned page, whose cache lines hold
/// nothing worth writing back, and then the rest of the entry from after it). If the
/// device cannot answer for the whole entry — it fails, or it is dead — nothing is
/// cleaned: the entry stays DIRTY and its mappings writable, so the next
/// data-integrity pass tries again, and the error goes to the caller (who records it
/// in the mapping's errseq). Cleaning it would let a later fsync succeed without the
/// data ever having been written back.
fn writeback_one(
    mapping: &DaxMapping,
    dev: &DaxDevice,
    start: u64,
    pfn: Pfn,
) -> Result<(), DaxError> {
    let Some(entry) = mapping.index().lock_for_writeback(start, pfn)? else {
        return Ok(());
    };
    let count = entry.entry().pages();
    let index = entry.start();
    let section = dev.read_lock();
    // Every run of the entry, before anything changes.
    let mut runs = Vec::new();
    let mut at = 0;
    while at < count {
        // An error returns with `entry` unlocked by its drop, still DIRTY.
        let da =
            section.direct_access(entry.pgoff() + at, count - at, DaxAccessMode::RecoveryWrite)?;
        if da.pages() == 0 {
            return Err(DaxError::Io {
                what: "the device gave no access to a dirty entry's pages",
            });
        }
        at += da.pages();
        runs.push(da);
    }
    mapping.mkclean(index, count, entry.entry().pfn);
    for da in &runs {
        da.flush(0, da.len());
    }
    drop(runs);
    drop(section);
    entry.unlock_clean();
    Ok(())
}

/// What the iomap layer asks of a file's mappings (`dax-iomap`'s [`MappingOps`]):
/// clearing dirty marks, invalidation before a write into new blocks, writeback.
impl MappingOps for DaxMapping {
    fn clear_dirty_range(&self, pages: RangeInclusive<u64>) {
        let (first, last) = pages.into_inner();
        self.index().clear_dirty_range(first, last);
    }

    fn invalidate_range(&self, pages: RangeInclusive<u64>) -> Result<(), DaxError> {
        let (first, last) = pages.into_inner();
        if last < first {
            return Ok(());
        }
        let all = self.index().invalidate_clean(first, last);
        // `last` may be u64::MAX ("to the end"): the count saturates, it never wraps.
        self.unmap_mapping_pages(first, (last - first).saturating_add(1), false);
        if all {
            Ok(())
        } else {
            Err(DaxError::Busy {
                what: "dirty DAX entries kept in the invalidated range",
            })
        }
    }

    fn write_and_wait_range(&self, bytes: RangeInclusive<u64>) -> Result<(), DaxError> {
        let (start, end) = bytes.into_inner();
        dax_writeback_mapping_range(
            self,
            self.device(),
            &WritebackControl::sync_all(start..=end),
        )
    }

    fn next_entry(&self, pages: RangeInclusive<u64>) -> Option<(u64, u64)> {
        let (first, last) = pages.into_inner();
        self.index().next_entry(first, last)
    }
}
