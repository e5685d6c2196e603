//! The state a [`TestFs`](super::TestFs) shares with its [`TestInode`](super::TestInode)
//! handles: [`FsState`] (the device, the superblock, the metadata lock and the clock),
//! [`Metadata`] (everything under the metadata lock), and per inode [`InodeCore`]
//! (its number, size, timestamps, locks and block map) with [`InodeMeta`] (its part
//! of the metadata: owner, mode, link count, and for a directory its entries).
//!
//! Every module above the data structures (extent maps, the extent lock, the
//! allocator, the on-device format) builds on these types; this module uses none of
//! those modules, so the module graph stays acyclic.
//!
//! Locks: the per-inode I/O, invalidate and extent locks and the timestamp lock live
//! in [`InodeCore`], the metadata lock in [`FsState`]; the order they are taken in is
//! in the [module docs](super) ("Locking"). This module takes the metadata lock, in
//! [`FsState::lock_meta`], and the timestamp lock, innermost, in the [`InodeCore`]
//! methods that read or stamp times.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use dax_device::{DaxDevice, DaxError, FsDax};
use dax_fault::DaxMapping;

use super::alloc::Allocator;
use super::extent::{Extent, ExtentMap};
use super::extent_lock::{Blocks, ExtentLock};
use super::format::Superblock;
use super::inject::IomapInjections;
use super::sync::{AtomicBool, AtomicI64, AtomicU64, Mutex, MutexGuard, Ordering, RwLock};
use super::time::{Times, Timespec};

/// An inode number (`ino_t`). Numbers are never reused within a filesystem's life, so
/// a stale number finds nothing (`ENOENT`) rather than another file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ino(pub u64);

impl fmt::Display for Ino {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The error for an inode number or name that names no file: `ENOENT`.
pub(crate) fn enoent() -> DaxError {
    DaxError::NotFound {
        what: "no such file",
    }
}

/// What every handle on one inode shares (the kernel's `struct inode`, XFS's
/// `struct xfs_inode`): its number, its size, its timestamps, its locks and its block
/// map under the extent lock. Directories have one too (with an empty block map and
/// no user mappings), so that timestamps, checkpoints and sync treat every inode
/// alike.
pub(crate) struct InodeCore {
    ino: u64,
    size: AtomicU64,
    /// atime, mtime and ctime, under their own lock, the innermost of all (the
    /// kernel updates timestamps under `i_rwsem` alone; a lock of their own lets a
    /// write stamp mtime without the metadata lock and `getattr` read all three
    /// untorn). Nothing is taken while it is held.
    times: Mutex<Times>,
    /// The I/O lock (`i_rwsem`, XFS IOLOCK).
    pub(crate) io: RwLock<()>,
    /// The invalidate lock (`mapping->invalidate_lock`, XFS MMAPLOCK).
    pub(crate) invalidate: RwLock<()>,
    /// The extent lock and the block map it protects (XFS ILOCK, ext4 `i_data_sem`):
    /// exclusive for every change, always with the metadata lock held; shared to read
    /// (a read-type `iomap_begin`, and a write-type one over the file's own written
    /// blocks, need no other lock). Innermost: see the module docs for the order.
    /// Reads of small maps skip it: see [`ExtentLock`].
    pub(crate) blocks: ExtentLock,
    /// Set by unlink while it holds the I/O lock and the extent lock exclusively, so
    /// anyone holding either can test it without the metadata lock.
    unlinked: AtomicBool,
    /// The file's DAX mapping (`inode->i_mapping`): entries and user mappings.
    pub(crate) mapping: Arc<DaxMapping>,
}

impl InodeCore {
    pub(crate) fn new(
        ino: u64,
        size: u64,
        map: ExtentMap,
        dirty: bool,
        dev: Arc<DaxDevice>,
        times: Times,
    ) -> Self {
        InodeCore {
            ino,
            size: AtomicU64::new(size),
            times: Mutex::new(times),
            io: RwLock::new(()),
            invalidate: RwLock::new(()),
            blocks: ExtentLock::new(Blocks { map, seq: 0, dirty }),
            unlinked: AtomicBool::new(false),
            mapping: DaxMapping::new(dev),
        }
    }

    /// The inode number (`i_ino`).
    pub(crate) fn ino(&self) -> u64 {
        self.ino
    }

    /// `i_size_read`.
    pub(crate) fn size(&self) -> u64 {
        self.size.load(Ordering::Acquire)
    }

    /// `i_size_write`: callers hold the metadata lock (and the I/O lock).
    pub(crate) fn set_size(&self, size: u64) {
        self.size.store(size, Ordering::Release);
    }

    /// Marks the inode unlinked (caller holds the I/O lock and the extent lock
    /// exclusively).
    pub(crate) fn mark_unlinked(&self) {
        self.unlinked.store(true, Ordering::Release);
    }

    /// Whether the inode was unlinked (meaningful under the I/O lock or the extent
    /// lock).
    pub(crate) fn is_unlinked(&self) -> bool {
        self.unlinked.load(Ordering::Acquire)
    }

    /// Test support: the names of this inode's locks that are held now (each tried
    /// exclusively, without waiting), and of its mapping-index entries that are
    /// locked.
    pub(crate) fn held_locks(&self) -> Vec<String> {
        let mut held = Vec::new();
        let ino = self.ino;
        if self.io.try_write().is_none() {
            held.push(format!("inode {ino}: I/O lock"));
        }
        if self.invalidate.try_write().is_none() {
            held.push(format!("inode {ino}: invalidate lock"));
        }
        if self.blocks.try_write().is_none() {
            held.push(format!("inode {ino}: extent lock"));
        }
        if self.times.try_lock().is_none() {
            held.push(format!("inode {ino}: timestamp lock"));
        }
        for e in self.mapping.index().entries() {
            if e.locked {
                held.push(format!(
                    "inode {ino}: mapping entry at page {} ({:?}) locked",
                    e.start, e.entry.kind
                ));
            }
        }
        held
    }

    /// The timestamp lock, held (for unit tests of lock checks).
    #[cfg(test)]
    pub(crate) fn times_guard_for_test(&self) -> MutexGuard<'_, Times> {
        self.times.lock()
    }

    /// The three timestamps.
    pub(crate) fn times(&self) -> Times {
        *self.times.lock()
    }

    /// Changes the timestamps with `f` (under the timestamp lock).
    pub(crate) fn set_times(&self, f: impl FnOnce(&mut Times)) {
        f(&mut self.times.lock());
    }

    /// ctime = `now` (`inode_set_ctime_current`): the inode changed.
    pub(crate) fn touch_ctime(&self, now: Timespec) {
        self.times.lock().ctime = now;
    }

    /// mtime = ctime = `now` (`inode_set_mtime_to_ts(inode,
    /// inode_set_ctime_current(inode))`, what `file_update_time` does): the data or the
    /// directory's entries changed.
    pub(crate) fn touch_mtime(&self, now: Timespec) {
        let mut t = self.times.lock();
        t.mtime = now;
        t.ctime = now;
    }
}

/// A directory's part of the metadata: its entries and its parent (ext2 keeps both
/// in the directory's blocks, the parent as the `..` entry).
#[derive(Debug, Clone, Default)]
pub(crate) struct Dir {
    /// The directory this one is an entry of ([`ROOT_INO`](super::ROOT_INO) for the
    /// root itself).
    pub(crate) parent: u64,
    /// Names → inode numbers, without `.` and `..`.
    pub(crate) entries: BTreeMap<String, u64>,
}

/// Per-inode metadata, under the filesystem's metadata lock. The block map is not
/// here: it lives in the [`InodeCore`] under the inode's own extent lock, so that
/// reads can look it up without the metadata lock.
pub(crate) struct InodeMeta {
    pub(crate) core: Arc<InodeCore>,
    /// Outstanding copy-on-write reservations by id (a minimal XFS CoW fork).
    pub(crate) cow: BTreeMap<u64, CowResv>,
    /// Permission bits (`i_mode & S_IALLUGO`).
    pub(crate) mode: u32,
    /// Owner.
    pub(crate) uid: u32,
    /// Group.
    pub(crate) gid: u32,
    /// Links (`i_nlink`): a file's names; a directory's 2 plus its subdirectories.
    pub(crate) nlink: u32,
    /// The entries, for a directory; `None` for a regular file.
    pub(crate) dir: Option<Dir>,
    /// Open files ([`FileHandle`](super::FileHandle)s) on it: a file whose last name
    /// goes while it is open stays, an orphan (link count 0, in no directory, in no
    /// checkpoint), until the last one is dropped (the VFS's `iput` after the last
    /// `fput`).
    pub(crate) opens: u32,
}

impl InodeMeta {
    /// The metadata of an inode with `core`, no CoW reservations and no directory
    /// entries (set `dir` for a directory).
    pub(crate) fn new(core: Arc<InodeCore>, mode: u32, uid: u32, gid: u32, nlink: u32) -> Self {
        InodeMeta {
            core,
            cow: BTreeMap::new(),
            mode,
            uid,
            gid,
            nlink,
            dir: None,
            opens: 0,
        }
    }

    /// Whether this is a directory.
    pub(crate) fn is_dir(&self) -> bool {
        self.dir.is_some()
    }
}

/// Blocks reserved by `iomap_begin` as the destination of a copy-on-write (an extent
/// of XFS's CoW fork, as `xfs_reflink_allocate_cow` reserves it).
#[derive(Debug, Clone, Copy)]
pub(crate) struct CowResv {
    /// First file block.
    pub(crate) fb: u64,
    /// First reserved device block.
    pub(crate) dev: u64,
    /// Blocks.
    pub(crate) len: u64,
}

/// Everything under the metadata lock: the inode table with the directory tree in it,
/// the allocator and its reference counts, CoW reservation ids and the checkpoint
/// generation (XFS keeps the like in its AGF headers and superblock counters).
pub(crate) struct Metadata {
    /// Every inode, files and directories, by number; the root is
    /// [`ROOT_INO`](super::ROOT_INO).
    pub(crate) inodes: BTreeMap<u64, InodeMeta>,
    pub(crate) next_ino: u64,
    pub(crate) alloc: Allocator,
    pub(crate) generation: u64,
    pub(crate) next_cow_id: u64,
    /// An upper bound on the encoded checkpoint's size: measured exactly at each
    /// checkpoint (and when admission runs short), plus what each namespace change
    /// has added since. `u64::MAX` until first measured. See
    /// `Metadata::admit`.
    pub(crate) meta_bytes: u64,
}

impl Metadata {
    /// The metadata of inode `ino`: `ENOENT` when there is no such inode.
    pub(crate) fn inode(&mut self, ino: u64) -> Result<&mut InodeMeta, DaxError> {
        self.inodes.get_mut(&ino).ok_or_else(enoent)
    }

    /// The directory `ino`: `ENOENT` when there is no such inode, `ENOTDIR` when it is
    /// not a directory.
    pub(crate) fn dir(&self, ino: u64) -> Result<&Dir, DaxError> {
        self.inodes
            .get(&ino)
            .ok_or_else(enoent)?
            .dir
            .as_ref()
            .ok_or(DaxError::NotDirectory {
                what: "a path component is not a directory",
            })
    }

    /// [`Metadata::dir`], for changing it.
    pub(crate) fn dir_mut(&mut self, ino: u64) -> Result<&mut Dir, DaxError> {
        self.inodes
            .get_mut(&ino)
            .ok_or_else(enoent)?
            .dir
            .as_mut()
            .ok_or(DaxError::NotDirectory {
                what: "a path component is not a directory",
            })
    }

    /// Drops the references of blocks removed from a file.
    pub(crate) fn release_pieces(&mut self, pieces: &[(u64, Extent)]) {
        for (_, e) in pieces {
            self.alloc.release(e.dev, e.len);
        }
    }
}

/// [`FsState`]'s clock value that means "the system clock" (a pinned clock cannot be
/// this one nanosecond in 1677).
pub(crate) const CLOCK_SYSTEM: i64 = i64::MIN;

/// The state shared by a [`TestFs`](super::TestFs) and its
/// [`TestInode`](super::TestInode) handles: the mounted filesystem (the kernel's
/// `struct super_block` with XFS's `struct xfs_mount`).
pub(crate) struct FsState {
    pub(crate) dev: Arc<DaxDevice>,
    pub(crate) sb: Superblock,
    pub(crate) meta: Mutex<Metadata>,
    pub(crate) unmounted: AtomicBool,
    /// A pinned clock, in nanoseconds since the epoch, or [`CLOCK_SYSTEM`] for the
    /// system's (see [`FsState::now`]).
    clock: AtomicI64,
    /// Test support: `iomap_begin`/`iomap_end` failures on a schedule (`inject.rs`).
    pub(crate) inject: IomapInjections,
    /// The holder claim on the device (released on drop, `fs_put_dax`).
    _claim: FsDax,
}

impl FsState {
    /// A mounted filesystem on `dev`, holding the device claim `claim`.
    pub(crate) fn new(
        dev: Arc<DaxDevice>,
        sb: Superblock,
        meta: Metadata,
        claim: FsDax,
    ) -> FsState {
        FsState {
            dev,
            sb,
            meta: Mutex::new(meta),
            unmounted: AtomicBool::new(false),
            clock: AtomicI64::new(CLOCK_SYSTEM),
            inject: IomapInjections::new(),
            _claim: claim,
        }
    }

    /// The time to stamp inodes with (`current_time`): the system's real-time clock
    /// (`CLOCK_REALTIME`), or the time a test pinned with [`FsState::pin_clock`].
    pub(crate) fn now(&self) -> Timespec {
        match self.clock.load(Ordering::Relaxed) {
            CLOCK_SYSTEM => Timespec::from_system(std::time::SystemTime::now()).unwrap_or_default(),
            nanos => Timespec::from_nanos(nanos),
        }
    }

    /// Pins the clock at `nanos` nanoseconds after the epoch, or returns it to the
    /// system's with `None`.
    pub(crate) fn pin_clock(&self, nanos: Option<i64>) {
        let v = nanos.filter(|&n| n != CLOCK_SYSTEM).unwrap_or(CLOCK_SYSTEM);
        self.clock.store(v, Ordering::Relaxed);
    }

    /// `EIO` once the filesystem is unmounted or shut down (XFS's `xfs_is_shutdown`
    /// checks).
    pub(crate) fn check_mounted(&self) -> Result<(), DaxError> {
        if self.unmounted.load(Ordering::Acquire) {
            return Err(DaxError::Io {
                what: "the TestFs has been unmounted",
            });
        }
        Ok(())
    }

    /// Takes the metadata lock; with `nowait`, `EAGAIN` if it is taken.
    pub(crate) fn lock_meta(&self, nowait: bool) -> Result<MutexGuard<'_, Metadata>, DaxError> {
        if nowait {
            self.meta.try_lock().ok_or(DaxError::WouldBlock)
        } else {
            Ok(self.meta.lock())
        }
    }
}
