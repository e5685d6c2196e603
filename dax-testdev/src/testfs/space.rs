//! Changing the space of a file: [`TestFs::truncate`] (`ext2_setsize`,
//! `xfs_setattr_size`) and [`TestFs::fallocate`] (`ext4_fallocate`,
//! `xfs_file_fallocate`) with its [`FallocMode`].
//!
//! Locks: both take the I/O lock and the invalidate lock exclusively; truncate and
//! every fallocate mode but plain allocation then break the file's DAX layout
//! ([`break_layouts`], which drops and retakes the invalidate lock while it waits for
//! pinned pages). Partial blocks are zeroed, and shared blocks unshared, through the
//! engine with only those two held; each block-map change then takes the metadata
//! lock and, under it, the extent lock exclusively.

use dax_device::{DaxError, PAGE_SIZE};
use dax_iomap::{MAX_FILE_SIZE, dax_file_unshare, dax_truncate_page, dax_zero_range};

use super::extent::{Extent, Lookup};
use super::inode::TestInode;
use super::mmap::break_layouts;
use super::mount::TestFs;
use super::state::Ino;
use super::verify::{check_range, efbig, einval};
use super::{B, MAX_FILE_BLOCKS};

bitflags::bitflags! {
    /// The mode of [`TestFs::fallocate`] (`FALLOC_FL_*`, Linux values). The empty mode
    /// allocates (`FALLOC_FL_ALLOCATE_RANGE`).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct FallocMode: u32 {
        /// `FALLOC_FL_KEEP_SIZE`: do not change the file size.
        const KEEP_SIZE = 0x01;
        /// `FALLOC_FL_PUNCH_HOLE`: free the range (requires KEEP_SIZE).
        const PUNCH_HOLE = 0x02;
        /// `FALLOC_FL_NO_HIDE_STALE`: rejected, as Linux does.
        const NO_HIDE_STALE = 0x04;
        /// `FALLOC_FL_COLLAPSE_RANGE`: not supported by TestFs (`EOPNOTSUPP`).
        const COLLAPSE_RANGE = 0x08;
        /// `FALLOC_FL_ZERO_RANGE`: make the range read as zeros, allocated.
        const ZERO_RANGE = 0x10;
        /// `FALLOC_FL_INSERT_RANGE`: not supported by TestFs (`EOPNOTSUPP`).
        const INSERT_RANGE = 0x20;
        /// `FALLOC_FL_UNSHARE_RANGE`: give the range blocks of its own.
        const UNSHARE_RANGE = 0x40;
    }
}

impl TestFs {
    /// Truncates or extends the file to `size` (`truncate(2)`, ext2's `ext2_setsize`,
    /// XFS's `xfs_setattr_size`): I/O and invalidate locks exclusive; on shrink the
    /// tail of the new EOF block is zeroed with
    /// [`dax_truncate_page`](dax_iomap::dax_truncate_page) and every block past it is
    /// freed; on growth the gap is zeroed. mtime and ctime are stamped. `EFBIG` past
    /// the largest file size, `EISDIR` for a directory.
    pub fn truncate(&self, ino: Ino, size: u64) -> Result<(), DaxError> {
        check_range(size, 0)?;
        let inode = self.inode(ino)?;
        let _io = inode.core().io.write();
        let mut inval = Some(inode.core().invalidate.write());
        self.check_live(&inode)?;
        break_layouts(inode.core(), &mut inval)?;
        // truncate(2) always stamps mtime and ctime (`do_truncate` passes
        // ATTR_MTIME | ATTR_CTIME), even when the size does not change.
        self.file_modified(&inode);
        let old = inode.core().size();
        if size < old {
            if !size.is_multiple_of(B) && self.has_mapped(&inode, size, size.next_multiple_of(B))? {
                dax_truncate_page(&inode, &inode, size)?;
            }
            let mut meta = self.state.meta.lock();
            let im = meta.inode(ino.0)?;
            im.core.set_size(size);
            let fb = size.div_ceil(B);
            let removed = {
                let mut blocks = im.core.blocks.write();
                blocks.changed();
                blocks.map.remove(fb, MAX_FILE_BLOCKS - fb)
            };
            meta.release_pieces(&removed);
            drop(meta);
            // `truncate_pagecache`: private copies past the new EOF go too.
            let first = size.div_ceil(PAGE_SIZE as u64);
            inode
                .core()
                .mapping
                .unmap_mapping_pages(first, u64::MAX - first, true);
        } else if size > old {
            self.zero_gap(&inode, old, size)?;
            let mut meta = self.state.meta.lock();
            let im = meta.inode(ino.0)?;
            im.core.set_size(size);
            im.core.blocks.write().dirty = true;
        }
        Ok(())
    }

    /// Manipulates the space of `pos .. pos + len` (`fallocate(2)`, modelled on
    /// `ext4_fallocate` and `xfs_file_fallocate`):
    ///
    /// * empty mode / [`FallocMode::KEEP_SIZE`]: holes become unwritten blocks; the
    ///   size grows to `pos + len` unless KEEP_SIZE;
    /// * `PUNCH_HOLE | KEEP_SIZE`: partial blocks at the edges are zeroed
    ///   ([`dax_zero_range`](dax_iomap::dax_zero_range)), whole blocks freed;
    /// * `ZERO_RANGE` (optionally KEEP_SIZE): partial edges zeroed, whole blocks
    ///   replaced by unwritten blocks;
    /// * `UNSHARE_RANGE` (optionally KEEP_SIZE): shared blocks copied
    ///   ([`dax_file_unshare`](dax_iomap::dax_file_unshare)), then as the empty mode.
    ///
    /// Every mode stamps mtime and ctime (as `ext4_fallocate` does).
    ///
    /// Errors in `vfs_fallocate`'s order: `EINVAL` for a zero or negative length or a
    /// negative offset; `EOPNOTSUPP` for unknown bits, PUNCH_HOLE without KEEP_SIZE and
    /// other invalid combinations; `EFBIG` past the largest file size; `EOPNOTSUPP`
    /// for COLLAPSE_RANGE and INSERT_RANGE, which TestFs does not implement; `EISDIR`
    /// for a directory.
    pub fn fallocate(
        &self,
        ino: Ino,
        mode: FallocMode,
        pos: u64,
        len: u64,
    ) -> Result<(), DaxError> {
        let eopnotsupp = |what| DaxError::NotSupported { what };
        if pos > i64::MAX as u64 || len == 0 || len > i64::MAX as u64 {
            return Err(einval("fallocate needs offset >= 0 and length > 0"));
        }
        let op_mask = FallocMode::PUNCH_HOLE
            | FallocMode::COLLAPSE_RANGE
            | FallocMode::ZERO_RANGE
            | FallocMode::INSERT_RANGE
            | FallocMode::UNSHARE_RANGE;
        if mode.bits() & !(op_mask | FallocMode::KEEP_SIZE).bits() != 0 {
            return Err(eopnotsupp("unknown fallocate mode bits"));
        }
        let keep = mode.contains(FallocMode::KEEP_SIZE);
        let op = mode & op_mask;
        let ok = if op.is_empty() || op == FallocMode::ZERO_RANGE || op == FallocMode::UNSHARE_RANGE
        {
            true
        } else if op == FallocMode::PUNCH_HOLE {
            keep
        } else if op == FallocMode::COLLAPSE_RANGE || op == FallocMode::INSERT_RANGE {
            !keep
        } else {
            false
        };
        if !ok {
            return Err(eopnotsupp("invalid fallocate mode combination"));
        }
        let end = pos
            .checked_add(len)
            .filter(|&e| e <= MAX_FILE_SIZE)
            .ok_or(efbig("fallocate range ends past the largest file size"))?;
        if op == FallocMode::COLLAPSE_RANGE || op == FallocMode::INSERT_RANGE {
            return Err(eopnotsupp("TestFs does not collapse or insert ranges"));
        }

        let inode = self.inode(ino)?;
        let _io = inode.core().io.write();
        let mut inval = Some(inode.core().invalidate.write());
        self.check_live(&inode)?;
        self.file_modified(&inode);
        if !op.is_empty() {
            // Blocks will be freed, replaced or copied: no mapping may keep pointing
            // at them (ext4_punch_hole, xfs_file_fallocate: break layouts first).
            break_layouts(inode.core(), &mut inval)?;
        }
        let (fb_in, fb_out) = (pos.div_ceil(B), end / B); // whole blocks inside
        let (fb_lo, fb_hi) = (pos / B, end.div_ceil(B)); // blocks touched
        if op == FallocMode::PUNCH_HOLE || op == FallocMode::ZERO_RANGE {
            if fb_in > fb_out {
                // Inside one block.
                self.zero_partial(&inode, pos, end)?;
            } else {
                self.zero_partial(&inode, pos, fb_in * B)?;
                self.zero_partial(&inode, fb_out * B, end)?;
            }
            if fb_in < fb_out {
                self.punch_blocks(&inode, fb_in, fb_out - fb_in)?;
                // `truncate_pagecache_range`: unlike truncate, it leaves private
                // copy-on-write pages of the range mapped (no `even_cows`: "hole-punching
                // should not remove private COWed pages from the hole"). The layout
                // break above already unmapped everything else.
                inode
                    .core()
                    .mapping
                    .unmap_mapping_pages(fb_in, fb_out - fb_in, false);
                if op == FallocMode::ZERO_RANGE {
                    self.alloc_unwritten(&inode, fb_in, fb_out - fb_in)?;
                }
            }
            if op == FallocMode::PUNCH_HOLE {
                return Ok(());
            }
        } else {
            if op == FallocMode::UNSHARE_RANGE && self.has_shared(&inode, fb_lo, fb_hi)? {
                let size = inode.core().size();
                if pos < size {
                    dax_file_unshare(&inode, &inode, pos, len.min(size - pos))?;
                }
            }
            self.alloc_unwritten(&inode, fb_lo, fb_hi - fb_lo)?;
        }
        let old = inode.core().size();
        if !keep && end > old {
            self.zero_gap(&inode, old, end)?;
            self.grow_size(&inode, end)?;
        }
        Ok(())
    }

    fn has_shared(&self, inode: &TestInode, fb: u64, end: u64) -> Result<bool, DaxError> {
        Ok(inode
            .read_blocks(false)?
            .map
            .pieces(fb, end - fb)
            .iter()
            .any(|(_, e)| e.shared))
    }

    /// Zeroes bytes `start .. end` lying within one block, through the engine, if that
    /// block has data (`dax_zero_range` for the partial blocks of punch and zero-range,
    /// as ext4's `ext4_block_zero_page_range`).
    fn zero_partial(&self, inode: &TestInode, start: u64, end: u64) -> Result<(), DaxError> {
        if self.has_mapped(inode, start, end)? {
            dax_zero_range(inode, inode, start, end - start)?;
        }
        Ok(())
    }

    /// Frees file blocks `fb .. fb + n` (drops one reference on each).
    fn punch_blocks(&self, inode: &TestInode, fb: u64, n: u64) -> Result<(), DaxError> {
        if n == 0 {
            return Ok(());
        }
        let mut meta = self.state.meta.lock();
        let im = meta.inode(inode.ino().0)?;
        let removed = {
            let mut blocks = im.core.blocks.write();
            let removed = blocks.map.remove(fb, n);
            if !removed.is_empty() {
                blocks.changed();
            }
            removed
        };
        meta.release_pieces(&removed);
        Ok(())
    }

    /// Allocates unwritten blocks over the holes of file blocks `fb .. fb + n`.
    fn alloc_unwritten(&self, inode: &TestInode, fb: u64, n: u64) -> Result<(), DaxError> {
        let ino = inode.ino().0;
        let end = fb + n;
        let mut at = fb;
        let mut meta = self.state.meta.lock();
        while at < end {
            let hole = match inode.read_blocks(false)?.map.lookup(at) {
                Lookup::Extent(e) => {
                    at += e.len.min(end - at);
                    continue;
                }
                Lookup::Hole { len } => len.unwrap_or(u64::MAX).min(end - at),
            };
            let (dev, got) = self.state.alloc_for(&mut meta, ino, at, hole)?;
            let im = meta.inode(ino)?;
            let mut blocks = im.core.blocks.write();
            blocks.map.insert(
                at,
                Extent {
                    dev,
                    len: got,
                    unwritten: true,
                    shared: false,
                },
            );
            blocks.changed();
            drop(blocks);
            at += got;
        }
        Ok(())
    }
}
