//! The iomap iterator (`iomap_iter`, fs/iomap/iter.c, Linux 6.15 semantics).
//!
//! An operation over a file range asks the filesystem for one mapping at a time and
//! runs a body over each; the body advances the position by what it processed
//! ([`IomapIter::advance`]) and may record an error ([`IomapIter::set_status`]).
//! Between bodies the iterator ends the old mapping (`iomap_end`) and begins the next
//! (`iomap_begin`).
//!
//! ```
//! # use dax_device::DaxError;
//! # use dax_iomap::{Iomap, IomapIter, IomapOps, IterFlags};
//! struct AllHoles;
//! impl IomapOps for AllHoles {
//!     fn iomap_begin(&self, pos: u64, len: u64, _f: IterFlags) -> Result<(Iomap<'_>, Option<Iomap<'_>>), DaxError> {
//!         Ok((Iomap::hole(pos, len.min(4096)), None))
//!     }
//! }
//! let mut it = IomapIter::new(&AllHoles, 0, 10_000, IterFlags::REPORT)?;
//! let mut mappings = 0;
//! while it.next()? {
//!     mappings += 1;
//!     let n = it.length();
//!     it.advance(n)?;
//! }
//! assert_eq!((mappings, it.pos()), (3, 10_000));
//! # Ok::<(), DaxError>(())
//! ```
//!
//! Deliberate differences from the kernel, all making a buggy filesystem harmless:
//!
//! * every mapping (and source map) is validated after `iomap_begin`; where the kernel
//!   warns and carries on, this iterator fails with [`DaxError::InvalidMapping`]
//!   (`EIO`): zero length, not covering the position, `offset + length` overflowing,
//!   a STALE flag set by the filesystem, a DAX mapping with storage but no device, an
//!   address not page-aligned with the offset or running past the device, a source
//!   map on a destination that is not SHARED or on an operation that never copies, a
//!   source map itself flagged SHARED (the core would take it for the destination and
//!   zero the old data), a copy-on-write destination or source that does not start
//!   and end on page boundaries (copy-around would write outside it);
//! * a body that keeps marking mappings STALE without progress is stopped after
//!   [`MAX_STALE_RETRIES`] re-queries with `EIO` instead of looping forever;
//! * dropping an iterator in the middle of a mapping still calls `iomap_end` (Rust
//!   code can leave a loop early with `?`).

use std::cell::Cell;

use dax_device::{DaxError, PAGE_SIZE};

use crate::iomap::{Iomap, IomapFlags, IomapOps, IomapType, IterFlags, MAX_FILE_SIZE};

/// How many times in a row a mapping may be re-queried because it went STALE without
/// any progress before the iterator gives up with `EIO`.
pub const MAX_STALE_RETRIES: u32 = 1000;

/// An iteration over a file range (`struct iomap_iter`).
pub struct IomapIter<'a, O: IomapOps + ?Sized> {
    ops: &'a O,
    // The position is in cells so that a body can advance (`&self`) while it holds
    // borrows of the mapping: no copy of the mapping per call.
    pos: Cell<u64>,
    len: Cell<u64>,
    start_pos: u64,
    iter_start_pos: u64,
    status: Result<(), DaxError>,
    flags: IterFlags,
    iomap: Iomap<'a>,
    srcmap: Iomap<'a>,
    active: bool,
    finished: bool,
    stale_retries: u32,
}

fn invalid(pos: u64, m: &Iomap<'_>, reason: &'static str) -> DaxError {
    DaxError::InvalidMapping {
        pos,
        offset: m.offset,
        length: m.length,
        addr: m.addr,
        reason,
    }
}

/// Checks one mapping returned for position `pos` (`source`: it is a source map).
fn validate(pos: u64, m: &Iomap<'_>, flags: IterFlags, source: bool) -> Result<(), DaxError> {
    if m.length == 0 {
        return Err(invalid(pos, m, "zero length"));
    }
    let Some(end) = m.offset.checked_add(m.length) else {
        return Err(invalid(pos, m, "offset + length overflows"));
    };
    if m.offset > pos || end <= pos {
        return Err(invalid(pos, m, "mapping does not cover the position"));
    }
    if m.flags.contains(IomapFlags::STALE) {
        return Err(invalid(
            pos,
            m,
            "STALE is for the core to set, not the filesystem",
        ));
    }
    // Copy-around and unshare fill whole pages of a SHARED destination (and read whole
    // pages of its source): a sub-page extent would let them write outside it. The
    // kernel gets this for free from DAX's block size == page size.
    if flags.contains(IterFlags::DAX)
        && copies(flags)
        && (m.flags.contains(IomapFlags::SHARED) || source)
        && (!m.offset.is_multiple_of(PAGE_SIZE as u64) || end % PAGE_SIZE as u64 != 0)
    {
        return Err(invalid(pos, m, "copy-on-write extent is not page aligned"));
    }
    let needs_storage = m.has_storage() || m.flags.contains(IomapFlags::SHARED);
    if flags.contains(IterFlags::DAX) && needs_storage {
        let Some(dev) = m.dax_dev else {
            return Err(invalid(pos, m, "mapping with storage has no DAX device"));
        };
        if m.addr == crate::IOMAP_NULL_ADDR {
            return Err(invalid(pos, m, "mapping with storage has no address"));
        }
        let page = PAGE_SIZE as u64;
        if m.addr % page != m.offset % page {
            return Err(invalid(
                pos,
                m,
                "address and offset are not page-aligned alike",
            ));
        }
        // The pages the mapping can touch: from the page of its start to the page of
        // its last byte, all inside the device.
        let dev_bytes = dev.driver().nr_pages().saturating_mul(page);
        match m.addr.checked_add(m.length) {
            Some(addr_end) if addr_end <= dev_bytes => {}
            _ => return Err(invalid(pos, m, "mapping runs past the end of the device")),
        }
    }
    Ok(())
}

/// Operations whose mappings may carry a source map (copy-on-write).
fn copies(flags: IterFlags) -> bool {
    flags.intersects(IterFlags::WRITE | IterFlags::ZERO | IterFlags::UNSHARE)
        || flags.contains(IterFlags::FAULT)
}

impl<'a, O: IomapOps + ?Sized> IomapIter<'a, O> {
    /// Prepares an iteration over `pos .. pos + len` with operation `flags`.
    ///
    /// [`DaxError::InvalidArgument`] (`EINVAL`, as `rw_verify_area` answers) when the
    /// range reaches past `i64::MAX`.
    pub fn new(ops: &'a O, pos: u64, len: u64, flags: IterFlags) -> Result<Self, DaxError> {
        if pos > MAX_FILE_SIZE || len > MAX_FILE_SIZE - pos {
            return Err(DaxError::InvalidArgument {
                what: "file range reaches past the largest file offset",
            });
        }
        Ok(IomapIter {
            ops,
            pos: Cell::new(pos),
            len: Cell::new(len),
            start_pos: pos,
            iter_start_pos: pos,
            status: Ok(()),
            flags,
            iomap: Iomap::default(),
            srcmap: Iomap::default(),
            active: false,
            finished: false,
            stale_retries: 0,
        })
    }

    /// Moves to the next mapping (`iomap_iter`): `Ok(true)` to run the body on it,
    /// `Ok(false)` when the operation is over, an error to stop with.
    ///
    /// Ends the previous mapping first (`iomap_end`, whose error counts only if the
    /// body made no progress); stops on a body error, when the range is done, or when
    /// the body made no progress and did not mark the mapping STALE.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<bool, DaxError> {
        if self.finished {
            return Ok(false);
        }
        let r = self.step();
        if !matches!(r, Ok(true)) {
            self.finished = true;
        }
        r
    }

    fn step(&mut self) -> Result<bool, DaxError> {
        if self.active {
            let advanced = self.pos.get() - self.iter_start_pos;
            let end_result = self.finish_mapping();
            if let Err(e) = end_result
                && advanced == 0
            {
                self.status = Ok(());
                return Err(e);
            }
            let stale = self.iomap.flags.contains(IomapFlags::STALE);
            let status = std::mem::replace(&mut self.status, Ok(()));
            self.iomap = Iomap::default();
            self.srcmap = Iomap::default();
            status?;
            if self.len.get() == 0 {
                return Ok(false);
            }
            if advanced == 0 {
                if !stale {
                    return Ok(false);
                }
                self.stale_retries += 1;
                if self.stale_retries > MAX_STALE_RETRIES {
                    return Err(DaxError::Io {
                        what: "mapping went stale too often without progress",
                    });
                }
            } else {
                self.stale_retries = 0;
            }
        }
        self.begin()
    }

    fn begin(&mut self) -> Result<bool, DaxError> {
        let (iomap, srcmap) = self
            .ops
            .iomap_begin(self.pos.get(), self.len.get(), self.flags)?;
        let srcmap = srcmap.unwrap_or_default();
        let pos = self.pos.get();
        let checked = validate(pos, &iomap, self.flags, false).and_then(|()| {
            if srcmap.kind == IomapType::Hole {
                return Ok(());
            }
            if !copies(self.flags) {
                return Err(invalid(
                    pos,
                    &srcmap,
                    "source map on an operation that never copies",
                ));
            }
            if !iomap.flags.contains(IomapFlags::SHARED) {
                return Err(invalid(
                    pos,
                    &srcmap,
                    "source map for a destination that is not SHARED",
                ));
            }
            if srcmap.flags.contains(IomapFlags::SHARED) {
                // SHARED on the effective source means "the destination itself" to the
                // copy-around and zeroing code: honouring it would zero the old data.
                return Err(invalid(pos, &srcmap, "source map flagged SHARED"));
            }
            validate(pos, &srcmap, self.flags, true)
        });
        if let Err(e) = checked {
            // The filesystem gave us a mapping: let it release what it set up for it.
            let _ = self.ops.iomap_end(pos, 0, 0, self.flags, &iomap);
            return Err(e);
        }
        self.iomap = iomap;
        self.srcmap = srcmap;
        self.iter_start_pos = pos;
        self.active = true;
        Ok(true)
    }

    /// Calls `iomap_end` for the current mapping.
    fn finish_mapping(&mut self) -> Result<(), DaxError> {
        self.active = false;
        let advanced = self.pos.get() - self.iter_start_pos;
        let covered = self.length_from(self.iter_start_pos, self.len.get() + advanced);
        self.ops.iomap_end(
            self.iter_start_pos,
            covered,
            advanced,
            self.flags,
            &self.iomap,
        )
    }

    /// `min(len, mapping end, source end if any) - pos` measured from `pos` with `len`
    /// bytes left.
    fn length_from(&self, pos: u64, len: u64) -> u64 {
        let mut end = self.iomap.end();
        if self.srcmap.kind != IomapType::Hole {
            end = end.min(self.srcmap.end());
        }
        end.saturating_sub(pos).min(len)
    }

    /// Bytes of the current mapping left to process (`iomap_length`).
    pub fn length(&self) -> u64 {
        self.length_from(self.pos.get(), self.len.get())
    }

    /// Records `count` bytes processed (`iomap_iter_advance`). More than
    /// [`length`](Self::length) is `EIO` and advances nothing.
    ///
    /// Takes `&self` so that a body can keep borrowing [`iomap`](Self::iomap) and
    /// [`srcmap`](Self::srcmap) while it advances.
    pub fn advance(&self, count: u64) -> Result<(), DaxError> {
        if count > self.length() {
            return Err(DaxError::Io {
                what: "iomap advance past the end of the mapping",
            });
        }
        self.pos.set(self.pos.get() + count);
        self.len.set(self.len.get() - count);
        Ok(())
    }

    /// Advances over the rest of the current mapping (`iomap_iter_advance_full`).
    pub fn advance_full(&self) {
        let n = self.length();
        self.pos.set(self.pos.get() + n);
        self.len.set(self.len.get() - n);
    }

    /// Records the body's result for this mapping (`iter->status`); an error stops the
    /// iteration after `iomap_end`.
    pub fn set_status(&mut self, status: Result<(), DaxError>) {
        self.status = status;
    }

    /// Marks the current mapping STALE: if the body made no progress, the next call of
    /// [`next`](Self::next) asks the filesystem again for the same position.
    pub fn mark_stale(&mut self) {
        self.iomap.flags |= IomapFlags::STALE;
    }

    /// The current position (`iter->pos`).
    pub fn pos(&self) -> u64 {
        self.pos.get()
    }

    /// Bytes left in the whole operation (`iter->len`).
    pub fn remaining(&self) -> u64 {
        self.len.get()
    }

    /// Bytes processed since the iteration began.
    pub fn processed(&self) -> u64 {
        self.pos.get() - self.start_pos
    }

    /// The operation flags.
    pub fn flags(&self) -> IterFlags {
        self.flags
    }

    /// The current mapping (`iter->iomap`).
    pub fn iomap(&self) -> &Iomap<'a> {
        &self.iomap
    }

    /// The raw source map (`iter->srcmap`): a HOLE when there is none.
    pub fn raw_srcmap(&self) -> &Iomap<'a> {
        &self.srcmap
    }

    /// The source of the data (`iomap_iter_srcmap`): the source map if it is not a
    /// hole, else the mapping itself.
    pub fn srcmap(&self) -> &Iomap<'a> {
        if self.srcmap.kind != IomapType::Hole {
            &self.srcmap
        } else {
            &self.iomap
        }
    }

    /// Whether the current mapping needs unsharing (`iomap_want_unshare_iter`):
    /// SHARED with a MAPPED source.
    pub fn want_unshare(&self) -> bool {
        self.iomap.flags.contains(IomapFlags::SHARED) && self.srcmap.kind == IomapType::Mapped
    }
}

impl<O: IomapOps + ?Sized> Drop for IomapIter<'_, O> {
    fn drop(&mut self) {
        if self.active {
            let _ = self.finish_mapping();
        }
    }
}
