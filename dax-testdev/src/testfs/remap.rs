//! Sharing blocks between files: [`TestFs::reflink`] (`FICLONERANGE`,
//! `xfs_reflink_remap_range`) and [`TestFs::dedupe`] (`FIDEDUPERANGE`), through the
//! engine's [`dax_remap_file_range_prep`], and the block-map surgery behind both
//! (`share_blocks`, `xfs_reflink_remap_blocks`).
//!
//! Locks: both files' I/O locks, then both invalidate locks, exclusive, each pair
//! lower inode number first; both layouts are broken under them. The block maps then
//! change under the metadata lock, taking the source's and the destination's extent
//! locks one after the other, never both at once.

use dax_device::DaxError;
use dax_fault::dax_break_layout_inode;
use dax_iomap::{RemapFile, RemapFlags, dax_remap_file_range_prep};

use super::B;
use super::extent::Extent;
use super::inode::TestInode;
use super::mount::TestFs;
use super::state::Ino;
use super::verify::{check_range, einval, verify_area};

/// One side of a remap as the generic checks see it: a regular TestFs file.
fn remap_side(i: &TestInode) -> RemapFile<'_> {
    RemapFile {
        inode: i,
        ops: i,
        regular: true,
        directory: false,
        immutable: false,
        swapfile: false,
    }
}

impl TestFs {
    /// Shares `len` bytes of `src` at `src_off` into `dst` at `dst_off`
    /// (`FICLONERANGE`, XFS's `xfs_reflink_remap_range`): both files' I/O and
    /// invalidate locks exclusive; the generic checks of
    /// [`dax_remap_file_range_prep`](dax_iomap::dax_remap_file_range_prep); then the
    /// destination's blocks are dropped and the source's extents (holes included)
    /// mapped there with their reference counts raised. Offsets must be block aligned,
    /// and so must `len` unless the range ends at the source's EOF (`EINVAL`). `len ==
    /// 0` means "to the source's EOF". The destination grows to `dst_off + len` if that
    /// is past its EOF, and its mtime and ctime are stamped. Returns the bytes
    /// remapped. `EISDIR` when either is a directory.
    pub fn reflink(
        &self,
        src: Ino,
        src_off: u64,
        dst: Ino,
        dst_off: u64,
        len: u64,
    ) -> Result<u64, DaxError> {
        self.remap(src, src_off, dst, dst_off, len, RemapFlags::empty())
    }

    /// Shares `len` bytes of `src` at `src_off` with `dst` at `dst_off` if their
    /// contents are identical (`FIDEDUPERANGE`), comparing through
    /// [`dax_remap_file_range_prep`](dax_iomap::dax_remap_file_range_prep) with
    /// `REMAP_FILE_DEDUP`: `EBADE` when they differ. Never changes a size. Returns the
    /// bytes deduplicated.
    pub fn dedupe(
        &self,
        src: Ino,
        src_off: u64,
        dst: Ino,
        dst_off: u64,
        len: u64,
    ) -> Result<u64, DaxError> {
        self.remap(src, src_off, dst, dst_off, len, RemapFlags::DEDUP)
    }

    fn remap(
        &self,
        src: Ino,
        src_off: u64,
        dst: Ino,
        dst_off: u64,
        len: u64,
        flags: RemapFlags,
    ) -> Result<u64, DaxError> {
        verify_area(src_off, len)?;
        verify_area(dst_off, len)?;
        check_range(src_off, len)?;
        check_range(dst_off, len)?;
        let s = self.inode(src)?;
        let d = self.inode(dst)?;
        // Both I/O locks, then both invalidate locks, lower inode number first.
        let (first, second) = if src <= dst { (&s, &d) } else { (&d, &s) };
        let _io1 = first.core().io.write();
        let _io2 = (src != dst).then(|| second.core().io.write());
        let _inval1 = first.core().invalidate.write();
        let _inval2 = (src != dst).then(|| second.core().invalidate.write());
        self.check_live(&s)?;
        self.check_live(&d)?;
        // Break both files' layouts (`xfs_iolock_two_inodes_and_break_layout`): the
        // source's blocks become shared, so no writable mapping of them may survive,
        // and the destination's blocks are replaced. Waiting keeps the locks (a pin
        // holder never needs them here).
        let mut wait = |sleep: &dyn Fn()| {
            sleep();
            Ok(())
        };
        dax_break_layout_inode(&s.core().mapping, Some(&mut wait))?;
        dax_break_layout_inode(&d.core().mapping, Some(&mut wait))?;
        let len = dax_remap_file_range_prep(
            &remap_side(&s),
            src_off,
            &remap_side(&d),
            dst_off,
            len,
            flags,
        )?;
        if len == 0 {
            return Ok(0);
        }
        // TestFs's own checks (the generic ones, repeated so that a filesystem never
        // trusts a caller with block-map surgery).
        let src_size = s.core().size();
        verify_area(src_off, len)?;
        verify_area(dst_off, len)?;
        let src_end = check_range(src_off, len)?;
        let dst_end = check_range(dst_off, len)?;
        if !src_off.is_multiple_of(B)
            || !dst_off.is_multiple_of(B)
            || (!len.is_multiple_of(B) && src_end != src_size)
        {
            return Err(einval("reflink ranges must be block aligned"));
        }
        if src_end > src_size {
            return Err(einval("reflink source range runs past its EOF"));
        }
        let nb = len.div_ceil(B);
        let (sfb, dfb) = (src_off / B, dst_off / B);
        if src == dst && sfb < dfb + nb && dfb < sfb + nb {
            return Err(einval("overlapping reflink within one file"));
        }
        if flags.contains(RemapFlags::DEDUP) && dst_end > d.core().size() {
            return Err(einval("dedupe range runs past the destination's EOF"));
        }
        let dst_size = d.core().size();
        if dst_off > dst_size {
            self.zero_gap(&d, dst_size, dst_off)?;
        }

        let grow_to = (!flags.contains(RemapFlags::DEDUP)).then_some(dst_end);
        if grow_to.is_some() {
            // A reflink changes the destination's data; a dedupe does not
            // (`generic_remap_file_range_prep` calls `file_modified` for the first only).
            self.file_modified(&d);
        }
        self.share_blocks(src, sfb, dst, dfb, nb, grow_to)?;
        Ok(len)
    }

    /// The block-map part of a remap: file blocks `dfb .. dfb + nb` of `dst` become
    /// what `sfb .. sfb + nb` of `src` are (holes included), sharing the blocks; the
    /// destination grows to `grow_to` bytes if given and larger. Callers hold both
    /// inodes' I/O and invalidate locks and have checked the ranges.
    pub(crate) fn share_blocks(
        &self,
        src: Ino,
        sfb: u64,
        dst: Ino,
        dfb: u64,
        nb: u64,
        grow_to: Option<u64>,
    ) -> Result<(), DaxError> {
        let mut meta = self.state.meta.lock();
        meta.inode(dst.0)?;
        let pieces = meta.inode(src.0)?.core.blocks.read().map.pieces(sfb, nb);
        // References first, so that no block the source maps drops to zero below.
        for (_, e) in &pieces {
            meta.alloc.add_ref(e.dev, e.len);
        }
        let dim = meta.inode(dst.0)?;
        let removed = {
            let mut blocks = dim.core.blocks.write();
            let removed = blocks.map.remove(dfb, nb);
            for &(fb, e) in &pieces {
                blocks
                    .map
                    .insert(dfb + (fb - sfb), Extent { shared: true, ..e });
            }
            blocks.changed();
            removed
        };
        if let Some(end) = grow_to
            && end > dim.core.size()
        {
            dim.core.set_size(end);
        }
        meta.release_pieces(&removed);
        let sim = meta.inode(src.0)?;
        let mut blocks = sim.core.blocks.write();
        for &(fb, e) in &pieces {
            blocks.map.set_state(fb, e.len, e.unwritten, true);
        }
        blocks.changed();
        drop(blocks);
        Ok(())
    }
}
