//! The state a [`TestFs`](super::TestFs) shares with its [`TestInode`](super::TestInode)
//! handles: [`FsState`] (the device, the superblock and the metadata lock),
//! [`Metadata`] (everything under the metadata lock), and per inode [`InodeCore`]
//! (its number, size, locks and block map) with [`InodeMeta`] (its part of the
//! metadata).
//!
//! Every module above the data structures (extent maps, the extent lock, the
//! allocator, the on-device format) builds on these types; this module uses none of
//! those modules, so the module graph stays acyclic.
//!
//! Locks: the per-inode I/O, invalidate and extent locks live in [`InodeCore`], the
//! metadata lock in [`FsState`]; the order they are taken in is in the
//! [module docs](super) ("Locking"). The only lock this module takes is the metadata
//! lock, in [`FsState::lock_meta`].

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use dax_device::{DaxDevice, DaxError, FsDax};
use dax_fault::DaxMapping;

use super::alloc::Allocator;
use super::extent::{Extent, ExtentMap};
use super::extent_lock::{Blocks, ExtentLock};
use super::format::Superblock;
use super::sync::{AtomicBool, AtomicU64, Mutex, MutexGuard, Ordering, RwLock};

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
/// `struct xfs_inode`): its number, its size, its two locks and its block map under
/// the extent lock.
pub(crate) struct InodeCore {
    ino: u64,
    size: AtomicU64,
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
    ) -> Self {
        InodeCore {
            ino,
            size: AtomicU64::new(size),
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
}

/// Per-inode metadata, under the filesystem's metadata lock. The block map is not
/// here: it lives in the [`InodeCore`] under the inode's own extent lock, so that
/// reads can look it up without the metadata lock.
pub(crate) struct InodeMeta {
    pub(crate) core: Arc<InodeCore>,
    pub(crate) name: String,
    /// Outstanding copy-on-write reservations by id (a minimal XFS CoW fork).
    pub(crate) cow: BTreeMap<u64, CowResv>,
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

/// Everything under the metadata lock: the namespace, the inode table, the allocator
/// and its reference counts, CoW reservation ids and the checkpoint generation (XFS
/// keeps the like in its AGF headers and superblock counters).
pub(crate) struct Metadata {
    pub(crate) names: BTreeMap<String, u64>,
    pub(crate) inodes: BTreeMap<u64, InodeMeta>,
    pub(crate) next_ino: u64,
    pub(crate) alloc: Allocator,
    pub(crate) generation: u64,
    pub(crate) next_cow_id: u64,
}

impl Metadata {
    /// The metadata of inode `ino`: `ENOENT` when there is no such inode.
    pub(crate) fn inode(&mut self, ino: u64) -> Result<&mut InodeMeta, DaxError> {
        self.inodes.get_mut(&ino).ok_or_else(enoent)
    }

    /// Drops the references of blocks removed from a file.
    pub(crate) fn release_pieces(&mut self, pieces: &[(u64, Extent)]) {
        for (_, e) in pieces {
            self.alloc.release(e.dev, e.len);
        }
    }
}

/// The state shared by a [`TestFs`](super::TestFs) and its
/// [`TestInode`](super::TestInode) handles: the mounted filesystem (the kernel's
/// `struct super_block` with XFS's `struct xfs_mount`).
pub(crate) struct FsState {
    pub(crate) dev: Arc<DaxDevice>,
    pub(crate) sb: Superblock,
    pub(crate) meta: Mutex<Metadata>,
    pub(crate) unmounted: AtomicBool,
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
            _claim: claim,
        }
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
