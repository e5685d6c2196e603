//! The file operations that move data: [`TestFs::read`]/[`TestFs::pread`]
//! (`ext2_dax_read_iter`), [`TestFs::write`]/[`TestFs::pwrite`]
//! (`ext2_dax_write_iter`, `xfs_file_dax_write`), [`TestFs::mmap`] and
//! [`TestFs::mmap_real`] (`ext4_file_mmap`), [`TestFs::fsync`] (`ext4_sync_file`),
//! the helpers that zero a gap before the size grows over it (used by truncate,
//! fallocate and reflink too), and the mtime stamp they all make (`file_modified`).
//!
//! Locks: reads take the I/O lock shared, writes exclusive, then call the engine
//! (which takes mapping-entry locks, and calls `iomap_begin`/`iomap_end`, which take
//! the metadata and extent locks). Growing the size takes the metadata lock and the
//! extent lock exclusively, after the engine returned. A write stamps mtime and ctime
//! under the inode's timestamp lock alone. fsync takes no inode lock:
//! writeback, then a checkpoint under the metadata lock (`checkpoint.rs`). The fault
//! handler behind a mapping is in `mmap.rs`.

use std::sync::Arc;

use dax_device::DaxError;
use dax_fault::mmu::{MapOptions, MmuMapping};
use dax_fault::{MappedVma, PageTable, Vma};
use dax_iomap::{dax_iomap_read, dax_iomap_write, dax_zero_range};

use super::B;
use super::inode::TestInode;
use super::mount::TestFs;
use super::state::Ino;
use super::verify::{count_at, verify_area};

impl TestFs {
    /// Reads up to `buf.len()` bytes at `pos` (`read(2)`, ext2's
    /// `ext2_dax_read_iter`): I/O lock shared, then
    /// [`dax_iomap_read`](dax_iomap::dax_iomap_read). Returns the bytes read, 0 at or
    /// past EOF.
    pub fn read(&self, ino: Ino, pos: u64, buf: &mut [u8]) -> Result<usize, DaxError> {
        verify_area(pos, buf.len() as u64)?;
        if buf.is_empty() {
            return Ok(0);
        }
        self.pread(&self.inode(ino)?, pos, buf)
    }

    /// [`TestFs::read`] through an inode handle from [`TestFs::inode`], as `pread(2)`
    /// reads through an open file: no lookup by number. `ENOENT` once the file is
    /// unlinked.
    pub fn pread(&self, inode: &TestInode, pos: u64, buf: &mut [u8]) -> Result<usize, DaxError> {
        verify_area(pos, buf.len() as u64)?;
        if buf.is_empty() {
            return Ok(0);
        }
        let _io = inode.core().io.read();
        self.check_live(inode)?;
        dax_iomap_read(inode, inode, pos, buf)
    }

    /// Writes `buf` at `pos` (`write(2)`, ext2's `ext2_dax_write_iter` and XFS's
    /// `xfs_file_dax_write`): I/O lock exclusive; the gap between the old EOF and `pos`
    /// is zeroed; [`dax_iomap_write`](dax_iomap::dax_iomap_write); then i_size grows to
    /// the end of what was written. Returns the bytes written (a short count when the
    /// engine stopped early), `EFBIG` at the largest file size.
    pub fn write(&self, ino: Ino, pos: u64, buf: &[u8]) -> Result<usize, DaxError> {
        verify_area(pos, buf.len() as u64)?;
        if buf.is_empty() {
            return Ok(0);
        }
        count_at(pos, buf)?;
        self.pwrite(&self.inode(ino)?, pos, buf)
    }

    /// [`TestFs::write`] through an inode handle from [`TestFs::inode`], as `pwrite(2)`
    /// writes through an open file: no lookup by number. `ENOENT` once the file is
    /// unlinked.
    pub fn pwrite(&self, inode: &TestInode, pos: u64, buf: &[u8]) -> Result<usize, DaxError> {
        verify_area(pos, buf.len() as u64)?;
        if buf.is_empty() {
            return Ok(0);
        }
        let count = count_at(pos, buf)?;
        let _io = inode.core().io.write();
        self.check_live(inode)?;
        self.file_modified(inode);
        let old = inode.core().size();
        if pos > old {
            self.zero_gap(inode, old, pos)?;
        }
        let n = dax_iomap_write(inode, inode, pos, &buf[..count])?;
        self.grow_size(inode, pos + n as u64)?;
        Ok(n)
    }

    /// Maps file `ino` (`mmap(2)` of a DAX file): `vma` in the address space `pt`, with
    /// TestFs's fault handler attached. The mapping lives until the returned handle is
    /// dropped. `EOPNOTSUPP` for MAP_SYNC on a device that is not synchronous,
    /// `ENOENT` for an unknown inode.
    pub fn mmap(
        &self,
        ino: Ino,
        vma: Vma,
        pt: Arc<dyn PageTable>,
    ) -> Result<Arc<MappedVma>, DaxError> {
        self.inode(ino)?.mmap(vma, pt)
    }

    /// Maps `len` bytes of file `ino` from file page `pgoff` into this process for
    /// real ([`MmuMapping`]): loads and stores on the returned pointer go to device
    /// memory, faults are served by the engine through TestFs's fault handler.
    /// Errors as [`TestFs::mmap`], plus [`MmuMapping::map`]'s.
    pub fn mmap_real(
        &self,
        ino: Ino,
        pgoff: u64,
        len: u64,
        opts: MapOptions,
    ) -> Result<MmuMapping, DaxError> {
        self.inode(ino)?.mmap_real(pgoff, len, opts)
    }

    /// Makes the file or directory durable (`fsync(2)`): like a journal commit, it
    /// checkpoints the whole filesystem. `ENOENT` for an unknown inode.
    pub fn fsync(&self, ino: Ino) -> Result<(), DaxError> {
        let core = self.core_of(ino)?;
        self.state.fsync_inode(&core)
    }

    /// Stamps the file's mtime and ctime before its data or size change
    /// (`file_modified`, `file_update_time`): writes, truncate, fallocate, and a
    /// reflink into it. The caller holds the I/O lock exclusively; this takes only the
    /// inode's timestamp lock, no filesystem-wide lock.
    pub(crate) fn file_modified(&self, inode: &TestInode) {
        inode.core().touch_mtime(self.state.now());
    }

    /// Sets i_size to `end` if that is larger, under the metadata lock. The caller
    /// holds the I/O lock exclusively, so the size cannot grow under it: an overwrite
    /// inside the file skips the metadata lock.
    pub(crate) fn grow_size(&self, inode: &TestInode, end: u64) -> Result<(), DaxError> {
        if end <= inode.core().size() {
            return Ok(());
        }
        let mut meta = self.state.meta.lock();
        let im = meta.inode(inode.ino().0)?;
        if end > im.core.size() {
            im.core.set_size(end);
            im.core.blocks.write().dirty = true;
        }
        Ok(())
    }

    /// Whether any MAPPED (not unwritten) block intersects bytes `start .. end`.
    pub(crate) fn has_mapped(
        &self,
        inode: &TestInode,
        start: u64,
        end: u64,
    ) -> Result<bool, DaxError> {
        if start >= end {
            return Ok(false);
        }
        let fb = start / B;
        let nb = end.div_ceil(B) - fb;
        let blocks = inode.read_blocks(false)?;
        Ok(blocks.map.pieces(fb, nb).iter().any(|(_, e)| !e.unwritten))
    }

    /// Makes bytes `old_size .. new_end` read as zeros before the size grows over them
    /// (XFS's `xfs_file_write_checks`/`xfs_setattr_size` zeroing with
    /// `dax_zero_range`). Blocks past EOF are normally holes or unwritten; only MAPPED
    /// ones (a partial EOF block, blocks of a crashed write) need the engine.
    pub(crate) fn zero_gap(
        &self,
        inode: &TestInode,
        old_size: u64,
        new_end: u64,
    ) -> Result<(), DaxError> {
        if self.has_mapped(inode, old_size, new_end)? {
            dax_zero_range(inode, inode, old_size, new_end - old_size)?;
        }
        Ok(())
    }
}
