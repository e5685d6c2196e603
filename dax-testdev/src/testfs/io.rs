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

use std::fmt;
use std::sync::{Arc, Weak};

use dax_device::DaxError;
use dax_fault::mmu::{MapOptions, MmuMapping};
use dax_fault::{MappedVma, PageTable, Vma};
use dax_iomap::{dax_iomap_read, dax_iomap_write, dax_zero_range};

use super::B;
use super::inode::TestInode;
use super::mount::TestFs;
use super::state::{FsState, Ino, InodeCore};
use super::sync::Mutex;
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

    /// Makes the file or directory durable (`fsync(2)`) as an fsync through a file
    /// opened just for it would: [`TestFs::open_file`] + [`TestFs::fsync_file`] (so it
    /// also reports a writeback error that no one has seen yet; see
    /// [`FileHandle`]). Like a journal commit, it checkpoints the whole filesystem.
    /// `ENOENT` for an unknown inode, `EIO` once the filesystem is shut down.
    pub fn fsync(&self, ino: Ino) -> Result<(), DaxError> {
        self.fsync_file(&self.open_file(ino)?)
    }

    /// Opens file or directory `ino` (`open(2)`) for [`TestFs::fsync_file`]: the
    /// handle samples the file's writeback error state now (`filemap_sample_wb_err`
    /// in `do_dentry_open`), and keeps the file while it lives: a file whose last
    /// name is removed meanwhile stays, as an orphan, until the last handle on it is
    /// dropped (see [`TestFs::unlink_in`]). An orphan can be opened again by its
    /// inode number (as through `/proc/PID/fd`). `ENOENT` for an unknown inode.
    pub fn open_file(&self, ino: Ino) -> Result<FileHandle, DaxError> {
        self.state.check_mounted()?;
        let core = {
            let mut meta = self.state.meta.lock();
            let im = meta.inode(ino.0)?;
            im.opens += 1;
            im.core.clone()
        };
        let since = core.mapping.sample_wb_err();
        Ok(FileHandle {
            core,
            since: Mutex::new(since),
            fs: Arc::downgrade(&self.state),
        })
    }

    /// `fsync(2)` through an open file, as `ext4_sync_file` does it: `EIO` at once if
    /// the filesystem is shut down; else the file's mapped data is written back
    /// (`file_write_and_wait_range`: its error, if any, is the answer, and nothing is
    /// committed); else the whole filesystem is checkpointed (its error is the
    /// answer). In every case that got that far, the handle's writeback error cursor
    /// is then checked and advanced (`file_check_and_advance_wb_err`), and an error
    /// recorded since the handle last looked is the answer if nothing else failed.
    ///
    /// What is recorded, and so reported once to every handle open at the time (and
    /// to the next handle opened if no one has seen it yet), is in [`FileHandle`]'s
    /// docs.
    pub fn fsync_file(&self, file: &FileHandle) -> Result<(), DaxError> {
        self.state.check_mounted()?;
        let done = self
            .state
            .writeback_inode(&file.core)
            .and_then(|()| self.state.commit());
        // `f_wb_err` is advanced under the file's own lock (`f_lock`), held for
        // nothing else.
        let seen = file
            .core
            .mapping
            .check_and_advance_wb_err(&mut file.since.lock());
        done.and(seen)
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

/// An open file (`struct file`) for [`TestFs::fsync_file`]: the inode it names and
/// its writeback error cursor (`f_wb_err`), sampled when it was opened
/// ([`TestFs::open_file`]). It holds no lock and keeps the inode's state alive, not
/// its name; after an unlink its fsync still commits (and reports) as before.
///
/// # What an fsync reports, and to whom
///
/// TestFs keeps the kernel's rules for writeback errors (`errseq_t`, lib/errseq.c:
/// `errseq_set`, `errseq_sample`, `errseq_check_and_advance`, used by
/// `mapping_set_error`, `filemap_sample_wb_err` and `file_check_and_advance_wb_err`):
/// each file's [`DaxMapping`](dax_fault::DaxMapping) records errors, and each open
/// file reports an error recorded after it was opened once, at its next fsync.
/// Recorded errors are:
///
/// * a failed writeback of the file's mapped data (`dax_writeback_mapping_range`;
///   the entry stays dirty and the next fsync writes it back again), recorded in that
///   file only;
/// * a failed checkpoint (the data flush before it, the metadata write, the commit
///   flush, or metadata that no longer fits a slot), recorded in **every** inode: a
///   checkpoint commits the whole filesystem, as a journal commit does, so what it
///   failed to make durable may be any file's. The filesystem stays mounted (it does
///   not shut down as XFS does on a log error) and keeps its state in memory; the
///   next checkpoint writes all of it again.
///
/// So, for a file with handles `a` and `b` open:
///
/// * the fsync that hits the failure reports it (`EIO` from the device), and
///   consumes it for its own handle: `fsync_file(&a)` again reports success if its
///   own writeback and checkpoint succeed — which then made everything durable, since
///   nothing was dropped — as Linux's second fsync on the same descriptor does;
/// * `fsync_file(&b)` reports the same error once even if its own checkpoint
///   succeeds: the error happened while `b` was open, and errseq does not let an
///   fsync on `b` pretend it did not;
/// * a handle opened after someone saw the error does not get it; one opened before
///   anyone saw it (for example after a failed [`TestFs::sync`], which reports to its
///   caller but has no handle to advance) does, once.
///
/// [`TestFs::fsync`] is an fsync through a handle opened for it.
///
/// # The data after a failed fsync
///
/// Nothing is dropped from memory when an fsync fails: dirty mapped pages stay dirty,
/// and the block maps, sizes and tree stay as they were, to be checkpointed again. A
/// crash after the failure brings back one whole checkpoint, the last durable one or
/// the one that failed (its write may have reached the media), with each data byte
/// the old or the new value (data written in place is on the media whichever
/// checkpoint wins, as an overwrite without fsync is); blocks either checkpoint
/// references are not reused until a commit succeeds. After a later fsync succeeds,
/// a crash brings back the new state.
///
/// ```
/// use dax_device::DaxError;
/// use dax_testdev::{DevOp, FailSchedule, MemDevice, TestFs};
///
/// let dev = MemDevice::builder().size(8 << 20).build()?;
/// let fs = TestFs::mkfs(dev.clone())?;
/// let ino = fs.create("f")?;
/// let (a, b) = (fs.open_file(ino)?, fs.open_file(ino)?);
/// fs.write(ino, 0, b"data")?;
/// let eio = DaxError::Io { what: "injected" };
/// dev.driver().inject(DevOp::Flush, FailSchedule::After { skip: 0, count: 1 }, eio);
/// assert_eq!(fs.fsync_file(&a).unwrap_err().errno(), libc::EIO); // the data flush failed
/// fs.fsync_file(&a)?; // committed now; a saw the error already
/// assert_eq!(fs.fsync_file(&b).unwrap_err().errno(), libc::EIO); // b had not
/// fs.fsync_file(&b)?;
/// fs.fsync(ino)?; // a new opener: someone saw it
/// # Ok::<(), DaxError>(())
/// ```
pub struct FileHandle {
    core: Arc<InodeCore>,
    since: Mutex<u64>,
    /// The filesystem, told when the handle is dropped (`fput`); not kept alive by it.
    fs: Weak<FsState>,
}

impl Drop for FileHandle {
    /// The last handle on an orphan frees it (`iput` → `evict`).
    fn drop(&mut self) {
        if let Some(state) = self.fs.upgrade() {
            TestFs { state }.close_file(self.core.ino());
        }
    }
}

impl FileHandle {
    /// The inode the file names.
    pub fn ino(&self) -> Ino {
        Ino(self.core.ino())
    }
}

impl fmt::Debug for FileHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileHandle")
            .field("ino", &self.core.ino())
            .field("wb_err", &*self.since.lock())
            .finish()
    }
}
