//! What TestFs reports without changing anything: [`TestFs::fiemap`],
//! [`TestFs::seek_hole`] and [`TestFs::seek_data`] through the engine's iomap
//! reporting (`xfs_vn_fiemap`, `xfs_seek_iomap`), [`TestFs::stat`] ([`Stat`]),
//! [`TestFs::statfs`] ([`StatFs`]), [`TestFs::extents`] ([`ExtentInfo`]), block
//! reference counts, the checkpoint generation, and for tests the locks held
//! ([`TestFs::held_locks`]).
//!
//! Locks: fiemap and seek take the I/O lock shared, then the engine calls
//! `iomap_begin` (the extent lock, and the metadata lock for shared extents). The
//! others take the metadata lock, and `stat` and `extents` under it the extent lock
//! shared. `held_locks` only tries locks, never waits: the metadata lock to list the
//! inodes, then (with it dropped) each inode's locks and mapping entries.

use dax_device::DaxError;
use dax_iomap::{Fiemap, iomap_fiemap, iomap_seek_data, iomap_seek_hole};

use super::B;
use super::mount::TestFs;
use super::state::{Ino, enoent};

/// What [`TestFs::stat`] reports about a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// The inode number (`st_ino`).
    pub ino: Ino,
    /// The file size in bytes (`st_size`).
    pub size: u64,
    /// Blocks of [`BLOCK_SIZE`](super::BLOCK_SIZE) allocated to the file, mapped or
    /// unwritten, shared blocks counted in full (`st_blocks` is this times 8).
    pub blocks: u64,
}

/// What [`TestFs::statfs`] reports about the filesystem.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct StatFs {
    /// [`BLOCK_SIZE`](super::BLOCK_SIZE) (`f_bsize`).
    pub block_size: u64,
    /// Blocks of the data area (`f_blocks`).
    pub blocks: u64,
    /// Blocks free for allocation now (`f_bfree`).
    pub free: u64,
    /// Blocks freed since the last checkpoint that still references them; they become
    /// free at the next checkpoint.
    pub busy: u64,
    /// Regular files (`f_files - f_ffree` is this plus [`StatFs::dirs`]).
    pub files: u64,
    /// Directories, the root included.
    pub dirs: u64,
    /// About how many more files or directories with 16-byte names the checkpoint
    /// slot has room for (`f_ffree`): names, not blocks, are what runs out (see
    /// [`TestFs::create_in`]'s `ENOSPC`).
    pub files_free: u64,
    /// Generation of the last durable checkpoint.
    pub generation: u64,
}

/// One extent of a file as [`TestFs::extents`] reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtentInfo {
    /// First file block.
    pub file_block: u64,
    /// First device block (device byte address / [`BLOCK_SIZE`](super::BLOCK_SIZE)).
    pub dev_block: u64,
    /// Length in blocks.
    pub len: u64,
    /// Allocated but reading as zeros.
    pub unwritten: bool,
    /// Every block of the run has a reference count of 2 or more.
    pub shared: bool,
}

impl TestFs {
    /// Reports the extents of `start .. start + len` (`FS_IOC_FIEMAP` through
    /// [`iomap_fiemap`](dax_iomap::iomap_fiemap)), I/O lock shared.
    pub fn fiemap(
        &self,
        ino: Ino,
        fiemap: &mut Fiemap,
        start: u64,
        len: u64,
    ) -> Result<(), DaxError> {
        let inode = self.inode(ino)?;
        let _io = inode.core().io.read();
        self.check_live(&inode)?;
        iomap_fiemap(&inode, &inode, fiemap, start, len)
    }

    /// `lseek(SEEK_HOLE)` through [`iomap_seek_hole`](dax_iomap::iomap_seek_hole).
    pub fn seek_hole(&self, ino: Ino, pos: i64) -> Result<u64, DaxError> {
        let inode = self.inode(ino)?;
        let _io = inode.core().io.read();
        self.check_live(&inode)?;
        iomap_seek_hole(&inode, &inode, pos)
    }

    /// `lseek(SEEK_DATA)` through [`iomap_seek_data`](dax_iomap::iomap_seek_data).
    pub fn seek_data(&self, ino: Ino, pos: i64) -> Result<u64, DaxError> {
        let inode = self.inode(ino)?;
        let _io = inode.core().io.read();
        self.check_live(&inode)?;
        iomap_seek_data(&inode, &inode, pos)
    }

    /// Size and allocated blocks of a file or directory (0 and 0 for a directory); see
    /// [`TestFs::getattr`] for all attributes.
    pub fn stat(&self, ino: Ino) -> Result<Stat, DaxError> {
        self.state.check_mounted()?;
        let mut meta = self.state.meta.lock();
        let im = meta.inode(ino.0)?;
        Ok(Stat {
            ino,
            size: im.core.size(),
            blocks: im.core.blocks.read().map.blocks(),
        })
    }

    /// Space and file counts (`statfs(2)`).
    pub fn statfs(&self) -> StatFs {
        let mut meta = self.state.meta.lock();
        let files_free = meta.files_free(&self.state);
        StatFs {
            files_free,
            block_size: B,
            blocks: meta.alloc.total(),
            free: meta.alloc.free_blocks(),
            busy: meta.alloc.busy_blocks(),
            files: meta.inodes.values().filter(|i| !i.is_dir()).count() as u64,
            dirs: meta.inodes.values().filter(|i| i.is_dir()).count() as u64,
            generation: meta.generation,
        }
    }

    /// A file's extents, split where sharing (reference count >= 2) starts or stops.
    /// For tests and tools (the kernel's `xfs_bmap`/`filefrag -v`).
    pub fn extents(&self, ino: Ino) -> Result<Vec<ExtentInfo>, DaxError> {
        self.state.check_mounted()?;
        let mut meta = self.state.meta.lock();
        let meta = &mut *meta;
        let im = meta.inodes.get(&ino.0).ok_or_else(enoent)?;
        let mut out = Vec::new();
        for (fb, e) in im.core.blocks.read().map.iter() {
            let mut done = 0;
            while done < e.len {
                let (shared, n) = meta.alloc.shared_prefix(e.dev + done, e.len - done);
                out.push(ExtentInfo {
                    file_block: fb + done,
                    dev_block: e.dev + done,
                    len: n,
                    unwritten: e.unwritten,
                    shared,
                });
                done += n;
            }
        }
        Ok(out)
    }

    /// The reference count of device block `block`: 0 when free (or busy), 1 when one
    /// file maps it, more when shared.
    pub fn block_refcount(&self, block: u64) -> u32 {
        self.state.meta.lock().alloc.refcount(block)
    }

    /// Test support: every TestFs lock, and every mapping-index entry lock, held
    /// right now, by name (empty when none is). Each is tried without waiting, and
    /// exclusively, so one held shared shows too: the metadata lock, then for each
    /// inode its I/O, invalidate, extent and timestamp locks and the entries of its
    /// DAX mapping. Call it when no operation is running (between the steps of a
    /// test): anything it names was then left held by an operation that returned. If
    /// the metadata lock is held the inodes cannot be listed; only it is named.
    ///
    /// ```
    /// # use dax_testdev::{MemDevice, TestFs};
    /// let fs = TestFs::mkfs(MemDevice::builder().size(8 << 20).build()?)?;
    /// let ino = fs.create("f")?;
    /// fs.write(ino, 0, b"data")?;
    /// assert!(fs.held_locks().is_empty());
    /// # Ok::<(), dax_device::DaxError>(())
    /// ```
    pub fn held_locks(&self) -> Vec<String> {
        let Some(meta) = self.state.meta.try_lock() else {
            return vec!["metadata lock".to_owned()];
        };
        let cores: Vec<_> = meta.inodes.values().map(|im| im.core.clone()).collect();
        drop(meta);
        cores.iter().flat_map(|c| c.held_locks()).collect()
    }

    /// The generation of the last durable checkpoint (it lives in slot
    /// `generation % 2`).
    pub fn generation(&self) -> u64 {
        self.state.meta.lock().generation
    }
}
