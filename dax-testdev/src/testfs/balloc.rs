//! New blocks for a file: where they go ([`FsState::alloc_for`], with its placement
//! hint, the part of `ext2_find_goal` and `xfs_bmap_btalloc` TestFs has), and the
//! device work that comes with them before they are mapped: zeroing through the
//! driver ([`FsState::zero_blocks`]) and copying the tail of a copy-on-write block
//! ([`FsState::copy_block_tail`]). The allocator itself (free space, reference counts,
//! busy blocks) is `alloc.rs`.
//!
//! Locks: [`FsState::alloc_for`] runs with the metadata lock held by its caller,
//! takes the inode's extent lock shared for a moment (to find the previous extent),
//! and may write a checkpoint under the caller's metadata lock. Zeroing and copying
//! take no TestFs lock (only the device's read section), so callers may hold any, or
//! none: `iomap_begin` zeroes with every TestFs lock dropped.

use dax_device::{DaxAccessMode, DaxError, PMD_SIZE};

use super::alloc::{AllocHint, PMD_BLOCKS};
use super::state::{FsState, Metadata};
use super::{B, BLOCK_SIZE};

impl FsState {
    /// Allocates up to `want` blocks for file block `fb` of `ino` (which exists),
    /// checkpointing once to turn busy blocks into free ones before giving up with
    /// `ENOSPC`.
    pub(crate) fn alloc_for(
        &self,
        meta: &mut Metadata,
        ino: u64,
        fb: u64,
        want: u64,
    ) -> Result<(u64, u64), DaxError> {
        let hint = {
            let im = meta.inode(ino)?;
            let goal = im.core.blocks.read().map.before(fb).and_then(|(s, e)| {
                // Keep `dev - file block` constant: contiguous and equally aligned.
                let g = e.dev.checked_add(fb - s)?;
                (s + e.len <= fb).then_some(g)
            });
            let size_end = im
                .core
                .size()
                .max(fb.saturating_add(want).saturating_mul(B));
            let large = want >= PMD_BLOCKS || size_end >= PMD_SIZE as u64;
            AllocHint {
                goal,
                pmd_align_for: large.then_some(fb),
            }
        };
        match meta.alloc.alloc(want, hint) {
            Err(e) if e.errno() == libc::ENOSPC && meta.alloc.busy_blocks() > 0 => {
                self.checkpoint_locked(meta)?;
                meta.alloc.alloc(want, hint)
            }
            r => r,
        }
    }

    /// Zeroes device blocks `dev .. dev + n` through the driver (which clears poison),
    /// as ext2's `sb_issue_zeroout` and XFS's `XFS_BMAPI_ZERO` do.
    pub(crate) fn zero_blocks(&self, dev: u64, n: u64) -> Result<(), DaxError> {
        let section = self.dev.read_lock();
        for pg in dev..dev + n {
            section.zero_page_range(pg, 1)?;
        }
        Ok(())
    }

    /// Copies device bytes `from_off .. BLOCK_SIZE` of block `src` to block `dst`.
    pub(crate) fn copy_block_tail(
        &self,
        src: u64,
        dst: u64,
        from_off: usize,
    ) -> Result<(), DaxError> {
        let section = self.dev.read_lock();
        let s = section
            .direct_access(src, 1, DaxAccessMode::Access)
            .map_err(DaxError::mem2blk)?;
        let d = section
            .direct_access(dst, 1, DaxAccessMode::Access)
            .map_err(DaxError::mem2blk)?;
        let mut buf = vec![0u8; BLOCK_SIZE - from_off];
        if s.copy_to(from_off, &mut buf) != buf.len() || d.copy_from(from_off, &buf) != buf.len() {
            return Err(DaxError::Io {
                what: "copying the rest of a copy-on-write block",
            });
        }
        d.flush(from_off, buf.len());
        Ok(())
    }
}
