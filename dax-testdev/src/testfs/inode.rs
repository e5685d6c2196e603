//! [`TestInode`]: a handle on one TestFs file, and how it answers the DAX core
//! (`iomap_begin`/`iomap_end`, modelled on `ext4_iomap_begin`,
//! `xfs_direct_write_iomap_begin`, `xfs_read_iomap_begin` and
//! `xfs_dax_write_iomap_end`).
//!
//! Locks: only the metadata lock and this inode's extent lock, in that order, never
//! the I/O or invalidate lock (those are the callers', as for the kernel's
//! `iomap_ops`). A read, and an overwrite of the file's own written blocks, take just
//! the extent lock shared, or none for a small map (the seqlock copy in
//! `extent_lock.rs`). New blocks are zeroed with both locks dropped and the map is
//! checked again afterwards.

use std::fmt;
use std::sync::Arc;

use dax_device::DaxError;
use dax_iomap::{
    DaxInode, Iomap, IomapFlags, IomapOps, IomapType, IterFlags, MAX_FILE_SIZE, MappingOps,
};

use super::extent::{Extent, Lookup};
use super::extent_lock::Blocks;
use super::inject::IomapHook;
use super::state::{CowResv, FsState, Ino, InodeCore, Metadata, enoent};
use super::sync::RwLockReadGuard;
use super::{B, MAX_FILE_BLOCKS};

/// `private` of a mapping whose blocks `iomap_begin` just allocated.
const PRIV_ALLOC: u64 = 1;
/// `private` of a CoW destination is this plus the reservation's number.
const PRIV_COW_BASE: u64 = 1 << 32;

/// A handle on one TestFs file, from [`TestFs::inode`](super::TestFs::inode): what the
/// DAX engine calls back into. It implements [`IomapOps`] (see the
/// [module docs](crate::testfs) for the answers it gives) and [`DaxInode`].
///
/// Its `iomap_begin`/`iomap_end` take only the metadata lock and the inode's extent
/// lock (a read, or an overwrite of written blocks, just the extent lock, shared);
/// callers
/// that use them directly (instead of through [`TestFs`](super::TestFs)'s file
/// operations) are responsible for the I/O and invalidate locks, as the kernel's
/// callers of `iomap_ops` are. After an unlink they fail with `ENOENT`.
#[derive(Clone)]
pub struct TestInode {
    fs: Arc<FsState>,
    core: Arc<InodeCore>,
}

impl fmt::Debug for TestInode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestInode")
            .field("ino", &self.core.ino())
            .field("size", &self.core.size())
            .finish_non_exhaustive()
    }
}

/// How a write-type `iomap_begin` will provide blocks.
#[derive(Debug, Clone, Copy)]
enum Plan {
    /// Allocate blocks for a hole.
    Alloc,
    /// Convert the unwritten extent at `dev` to written.
    Convert { dev: u64 },
    /// Copy on write from `src` into new blocks.
    Cow { src: Extent },
}

impl TestInode {
    pub(crate) fn new(fs: Arc<FsState>, core: Arc<InodeCore>) -> Self {
        TestInode { fs, core }
    }

    /// The filesystem state this handle belongs to.
    pub(crate) fn state(&self) -> &Arc<FsState> {
        &self.fs
    }

    /// The inode number.
    pub fn ino(&self) -> Ino {
        Ino(self.core.ino())
    }

    pub(crate) fn core(&self) -> &InodeCore {
        &self.core
    }

    /// A mapping of `n` blocks at file block `fb` to device block `dev`. It borrows
    /// the device from the handle: the handle's `Arc<FsState>` keeps it alive.
    fn map(&self, kind: IomapType, fb: u64, dev: u64, n: u64, flags: IomapFlags) -> Iomap<'_> {
        Iomap {
            addr: dev * B,
            offset: fb * B,
            length: n * B,
            kind,
            flags,
            dax_dev: Some(&*self.fs.dev),
            ..Iomap::default()
        }
    }

    fn hole<'a>(fb: u64, len: Option<u64>) -> Iomap<'a> {
        Iomap::hole(fb * B, len.unwrap_or(MAX_FILE_BLOCKS - fb) * B)
    }

    /// Takes the extent lock shared (`EAGAIN` with `nowait` if a writer holds it);
    /// `ENOENT` once the inode is unlinked.
    pub(crate) fn read_blocks(
        &self,
        nowait: bool,
    ) -> Result<RwLockReadGuard<'_, Blocks>, DaxError> {
        let blocks = if nowait {
            self.core.blocks.try_read().ok_or(DaxError::WouldBlock)?
        } else {
            self.core.blocks.read()
        };
        if self.core.is_unlinked() {
            return Err(enoent());
        }
        Ok(blocks)
    }

    /// A read-type answer: the blocks as they are.
    ///
    /// Maps of at most eight extents are read from the copy the extent lock publishes
    /// ([`ExtentLock::lookup_unlocked`](super::extent_lock::ExtentLock::lookup_unlocked)),
    /// without the lock; otherwise, or while a
    /// writer holds it, this takes only this inode's extent lock, shared: reads of
    /// different files, and concurrent reads of one file, never meet on a
    /// filesystem-wide lock. Only an
    /// extent flagged shared needs more: whether its blocks are still shared is the
    /// allocator's to say, so it is looked up again under the metadata lock (taken
    /// first, as the lock order requires).
    #[inline]
    fn read_begin(&self, fb: u64, nowait: bool) -> Result<Iomap<'_>, DaxError> {
        // Small maps are published for lock-free reads; a shared extent still needs
        // the allocator's word, below.
        if let Some((found, seq, unlinked)) = self
            .core
            .blocks
            .lookup_unlocked(fb, || self.core.is_unlinked())
            && !matches!(found, Lookup::Extent(e) if e.shared)
        {
            if unlinked {
                return Err(enoent());
            }
            return Ok(self.read_answer(fb, found, false, seq));
        }
        let blocks = self.read_blocks(nowait)?;
        let (found, shared, seq) = match blocks.map.lookup(fb) {
            Lookup::Extent(e) if e.shared => {
                drop(blocks);
                let meta = self.fs.lock_meta(nowait)?;
                let blocks = self.read_blocks(nowait)?;
                match blocks.map.lookup(fb) {
                    Lookup::Extent(e) if e.shared => {
                        let (shared, n) = meta.alloc.shared_prefix(e.dev, e.len);
                        (Lookup::Extent(Extent { len: n, ..e }), shared, blocks.seq)
                    }
                    found => (found, false, blocks.seq),
                }
            }
            found => (found, false, blocks.seq),
        };
        Ok(self.read_answer(fb, found, shared, seq))
    }

    /// The read-type mapping for what block `fb` is.
    #[inline]
    fn read_answer(&self, fb: u64, found: Lookup, shared: bool, seq: u64) -> Iomap<'_> {
        let mut map = match found {
            Lookup::Hole { len } => Self::hole(fb, len),
            Lookup::Extent(e) => {
                let kind = if e.unwritten {
                    IomapType::Unwritten
                } else {
                    IomapType::Mapped
                };
                let flags = if shared {
                    IomapFlags::SHARED
                } else {
                    IomapFlags::empty()
                };
                self.map(kind, fb, e.dev, e.len, flags)
            }
        };
        map.validity_cookie = seq;
        map
    }

    /// A write-type (`WRITE`) or zeroing (`ZERO`) answer.
    #[inline(never)]
    fn write_begin(
        &self,
        pos: u64,
        length: u64,
        fb: u64,
        want: u64,
        flags: IterFlags,
    ) -> Result<(Iomap<'_>, Option<Iomap<'_>>), DaxError> {
        let nowait = flags.contains(IterFlags::NOWAIT);
        let write = flags.contains(IterFlags::WRITE);
        let ino = self.core.ino();
        // DIRTY: the write reaches past EOF, or the inode has metadata that a
        // checkpoint has not made durable yet (ext4's datasync-dirty inode).
        let dirty = |inode_dirty: bool| {
            if write && (inode_dirty || pos.saturating_add(length) > self.core.size()) {
                IomapFlags::DIRTY
            } else {
                IomapFlags::empty()
            }
        };
        {
            // An overwrite of written blocks that are the file's alone changes no
            // metadata: the extent lock shared is enough, as for a read.
            let blocks = self.read_blocks(nowait)?;
            if let Lookup::Extent(e) = blocks.map.lookup(fb)
                && !e.shared
                && !e.unwritten
            {
                let mut m = self.map(IomapType::Mapped, fb, e.dev, e.len, dirty(blocks.dirty));
                m.validity_cookie = blocks.seq;
                return Ok((m, None));
            }
        }
        loop {
            let mut guard = self.fs.lock_meta(nowait)?;
            let meta = &mut *guard;
            if !meta.inodes.contains_key(&ino) {
                return Err(enoent());
            }
            let mut blocks = if nowait {
                self.core.blocks.try_write().ok_or(DaxError::WouldBlock)?
            } else {
                self.core.blocks.write()
            };
            let (plan, n) = match blocks.map.lookup(fb) {
                Lookup::Hole { len } => {
                    if !write {
                        return Ok((Self::hole(fb, len), None)); // ZERO never allocates
                    }
                    (Plan::Alloc, want.min(len.unwrap_or(u64::MAX)))
                }
                Lookup::Extent(e) => {
                    // Blocks once shared are copied on write while they are shared
                    // or a checkpoint that may come back references them: the
                    // partner that dropped its reference since may still have them
                    // there (`Allocator::cow_prefix`).
                    let (shared, run) = if e.shared {
                        meta.alloc.cow_prefix(e.dev, e.len)
                    } else {
                        (false, e.len)
                    };
                    if e.shared && !shared {
                        // The partner dropped its references, and no durable
                        // checkpoint has the blocks: they are ours alone.
                        blocks.map.set_state(fb, run, e.unwritten, false);
                    }
                    let plain = |kind| {
                        let mut m = self.map(kind, fb, e.dev, run, dirty(blocks.dirty));
                        m.validity_cookie = blocks.seq;
                        Ok((m, None))
                    };
                    match (shared, e.unwritten) {
                        (false, false) => return plain(IomapType::Mapped),
                        // Unwritten blocks already read as zeros: nothing to zero, and
                        // no CoW of them when zeroing (XFS skips them too).
                        (_, true) if !write => return plain(IomapType::Unwritten),
                        (false, true) => (Plan::Convert { dev: e.dev }, want.min(run)),
                        (true, _) => (Plan::Cow { src: e }, want.min(run)),
                    }
                }
            };
            drop(blocks); // allocation may checkpoint, which reads every block map
            if nowait {
                return Err(DaxError::WouldBlock);
            }
            let (dev, n) = match plan {
                Plan::Convert { dev } => (dev, n),
                Plan::Alloc | Plan::Cow { .. } => self.fs.alloc_for(meta, ino, fb, n)?,
            };
            let fresh = !matches!(plan, Plan::Convert { .. });
            drop(guard);

            // Zero through the driver with the metadata lock dropped: new blocks, blocks
            // being converted, and CoW destinations (a short write must leave zeros,
            // not stale data, in the part it did not reach; and this clears poison).
            let zeroed = self.fs.zero_blocks(dev, n);
            let mut guard = self.fs.meta.lock();
            let meta = &mut *guard;
            if let Err(err) = zeroed {
                if fresh {
                    meta.alloc.release(dev, n);
                }
                return Err(err);
            }
            // Re-check: a concurrent fault (which does not take the I/O lock) may have
            // changed the range while the lock was dropped.
            let mut blocks = self.core.blocks.write();
            let still = (!self.core.is_unlinked()).then(|| blocks.map.lookup(fb));
            let valid = match (plan, still) {
                (Plan::Alloc, Some(Lookup::Hole { len })) => len.is_none_or(|l| l >= n),
                (Plan::Convert { dev }, Some(Lookup::Extent(e))) => {
                    e.unwritten && e.dev == dev && e.len >= n && !meta.alloc.shared_prefix(dev, n).0
                }
                (Plan::Cow { src }, Some(Lookup::Extent(e))) => {
                    e.dev == src.dev && e.unwritten == src.unwritten && e.len >= n
                }
                _ => false,
            };
            if !valid {
                if fresh {
                    meta.alloc.release(dev, n);
                }
                if self.core.is_unlinked() {
                    return Err(enoent());
                }
                drop(blocks);
                continue;
            }
            let cow_id = PRIV_COW_BASE + meta.next_cow_id;
            meta.next_cow_id += 1;
            let im = meta.inode(ino)?;
            return Ok(match plan {
                Plan::Alloc | Plan::Convert { .. } => {
                    if matches!(plan, Plan::Alloc) {
                        let e = Extent {
                            dev,
                            len: n,
                            unwritten: false,
                            shared: false,
                        };
                        blocks.map.insert(fb, e);
                    } else {
                        blocks.map.set_state(fb, n, false, false);
                    }
                    blocks.changed();
                    let mut m =
                        self.map(IomapType::Mapped, fb, dev, n, IomapFlags::NEW | dirty(true));
                    m.validity_cookie = blocks.seq;
                    if matches!(plan, Plan::Alloc) {
                        m.private = PRIV_ALLOC;
                    }
                    (m, None)
                }
                Plan::Cow { src } => {
                    im.cow.insert(cow_id, CowResv { fb, dev, len: n });
                    blocks.dirty = true;
                    let mut dst = self.map(
                        IomapType::Mapped,
                        fb,
                        dev,
                        n,
                        IomapFlags::SHARED | dirty(true),
                    );
                    dst.private = cow_id;
                    dst.validity_cookie = blocks.seq;
                    let kind = if src.unwritten {
                        IomapType::Unwritten
                    } else {
                        IomapType::Mapped
                    };
                    // The source carries no SHARED flag (as XFS's data-fork srcmap): on
                    // the effective source SHARED means "this is the destination itself,
                    // the old data was a hole", and the core would zero-fill.
                    let srcmap = self.map(kind, fb, src.dev, n, IomapFlags::empty());
                    (dst, Some(srcmap))
                }
            });
        }
    }

    /// Ends a CoW: remaps the written blocks into the file (`xfs_reflink_end_cow`) or
    /// cancels the reservation (`xfs_reflink_cancel_cow_range`).
    fn cow_end(&self, pos: u64, length: u64, written: u64, iomap: &Iomap<'_>) {
        let mut guard = self.fs.meta.lock();
        let meta: &mut Metadata = &mut guard;
        let Some(im) = meta.inodes.get_mut(&self.core.ino()) else {
            return; // unlinked: the reservation went with the inode
        };
        let Some(r) = im.cow.remove(&iomap.private) else {
            return; // not ours, or already ended
        };
        let mut blocks = self.core.blocks.write();
        let r_end = (r.fb + r.len) * B;
        let wstart = pos.max(r.fb * B);
        let wend = pos.saturating_add(written).min(r_end);
        if written == 0 || wstart >= wend {
            meta.alloc.release(r.dev, r.len);
            return;
        }
        let (a, b) = (wstart / B, wend.div_ceil(B));
        if !wend.is_multiple_of(B) && written < length {
            // The write stopped inside a block the engine did not fill around: bring
            // the rest of that block over from the old data (zeros are already there
            // when the old data was unwritten).
            if let Lookup::Extent(old) = blocks.map.lookup(wend / B)
                && !old.unwritten
            {
                let new = r.dev + (wend / B - r.fb);
                // A failure leaves zeros after the written bytes; the write itself stands.
                let _ = self.fs.copy_block_tail(old.dev, new, (wend % B) as usize);
            }
        }
        let removed = blocks.map.remove(a, b - a);
        let e = Extent {
            dev: r.dev + (a - r.fb),
            len: b - a,
            unwritten: false,
            shared: false,
        };
        blocks.map.insert(a, e);
        blocks.changed();
        drop(blocks);
        meta.release_pieces(&removed);
        meta.alloc.release(r.dev, a - r.fb);
        meta.alloc.release(r.dev + (b - r.fb), r.fb + r.len - b);
    }

    /// After a short write, frees the blocks this mapping allocated past EOF that were
    /// not written (ext2's `ext2_write_failed`).
    fn trim_new(&self, pos: u64, written: u64, iomap: &Iomap<'_>) {
        let mut guard = self.fs.meta.lock();
        let meta: &mut Metadata = &mut guard;
        if !meta.inodes.contains_key(&self.core.ino()) {
            return; // unlinked: its blocks went with it
        }
        let keep = self
            .core
            .size()
            .max(pos.saturating_add(written))
            .div_ceil(B);
        let (m0, m1) = (iomap.offset / B, iomap.end() / B);
        let from = keep.max(m0);
        if from >= m1 {
            return;
        }
        let base = iomap.addr / B;
        let mut freed = Vec::new();
        let mut blocks = self.core.blocks.write();
        for (fb, e) in blocks.map.pieces(from, m1 - from) {
            // Only blocks this mapping handed out.
            if !e.unwritten && base.checked_add(fb - m0) == Some(e.dev) {
                freed.extend(blocks.map.remove(fb, e.len));
            }
        }
        if !freed.is_empty() {
            blocks.changed();
        }
        meta.release_pieces(&freed);
    }
}

impl DaxInode for TestInode {
    fn i_size(&self) -> u64 {
        self.core.size()
    }

    fn mapping(&self) -> Option<&dyn MappingOps> {
        Some(&*self.core.mapping)
    }
}

impl IomapOps for TestInode {
    #[inline]
    fn iomap_begin(
        &self,
        pos: u64,
        length: u64,
        flags: IterFlags,
    ) -> Result<(Iomap<'_>, Option<Iomap<'_>>), DaxError> {
        self.fs.check_mounted()?;
        // Test support (`inject.rs`): before anything is looked at or changed.
        self.fs.inject.enter(IomapHook::Begin)?;
        if pos > MAX_FILE_SIZE {
            return Err(DaxError::InvalidArgument {
                what: "iomap_begin position past the largest file offset",
            });
        }
        let fb = pos / B;
        let end = pos.saturating_add(length.max(1)).min(MAX_FILE_BLOCKS * B);
        let want = end.div_ceil(B).saturating_sub(fb).max(1);
        if flags.intersects(IterFlags::WRITE | IterFlags::ZERO) {
            self.write_begin(pos, length, fb, want, flags)
        } else {
            Ok((
                self.read_begin(fb, flags.contains(IterFlags::NOWAIT))?,
                None,
            ))
        }
    }

    fn iomap_end(
        &self,
        pos: u64,
        length: u64,
        written: u64,
        flags: IterFlags,
        iomap: &Iomap<'_>,
    ) -> Result<(), DaxError> {
        let writes = flags.intersects(IterFlags::WRITE | IterFlags::ZERO);
        if writes && iomap.flags.contains(IomapFlags::SHARED) && iomap.private >= PRIV_COW_BASE {
            self.cow_end(pos, length, written, iomap);
        } else if flags.contains(IterFlags::WRITE)
            && iomap.flags.contains(IomapFlags::NEW)
            && iomap.private == PRIV_ALLOC
            && written < length
        {
            self.trim_new(pos, written, iomap);
        }
        // Test support (`inject.rs`): after the work, so nothing written is lost.
        self.fs.inject.enter(IomapHook::End)
    }
}
