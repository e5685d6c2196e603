//! [`TestFs`] itself, and the operations on the whole filesystem: mkfs
//! ([`TestFs::mkfs`]), mount ([`TestFs::open`], `xfs_fs_fill_super`), `sync(2)`
//! ([`TestFs::sync`], `sync_filesystem`) and unmount ([`TestFs::unmount`],
//! `kill_block_super`), with [`MkfsOptions`] and [`Layout`]. The file operations are
//! `impl TestFs` blocks of their own modules: `namespace.rs`, `io.rs`, `space.rs`,
//! `remap.rs` and `report.rs`.
//!
//! Locks: mkfs takes the metadata lock only to write the first checkpoint, and mount
//! takes none (no one else can reach the filesystem yet); sync and unmount write every file's mapped data back (the engine's mapping-entry
//! locks), then checkpoint under the metadata lock (see `checkpoint.rs`). No I/O or
//! invalidate lock.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use dax_device::{DaxDevice, DaxError, FsDax};

use crate::memdev::FailSchedule;

use super::alloc::Allocator;
use super::attr::Perm;
use super::extent::ExtentMap;
use super::failure::FailureHolder;
use super::format::{self, Body, CKPT_HEADER, Image, SB_LEN, Superblock};
use super::inject::IomapHook;
use super::state::{CLOCK_SYSTEM, Dir, FsState, InodeCore, InodeMeta, Metadata};
use super::sync::Ordering;
use super::time::{Times, Timespec};
use super::verify::einval;
use super::{B, ROOT};

/// Options of [`TestFs::mkfs_with`]: `MkfsOptions::new().checkpoint_blocks(64)`.
#[derive(Debug, Clone, Copy, Default)]
#[non_exhaustive]
pub struct MkfsOptions {
    /// Blocks per checkpoint slot (the metadata capacity). Default (`None`): 1/64 of
    /// the device, at least 8 and at most 16384 blocks.
    pub checkpoint_blocks: Option<u64>,
    /// Mode and owner of the root directory (`mke2fs -E root_owner`). Default
    /// (`None`): `0o755`, owned by the calling process's user and group.
    pub root: Option<Perm>,
}

impl MkfsOptions {
    /// The defaults.
    pub fn new() -> Self {
        MkfsOptions::default()
    }

    /// Blocks per checkpoint slot; `None` for the default size.
    pub fn checkpoint_blocks(mut self, blocks: impl Into<Option<u64>>) -> Self {
        self.checkpoint_blocks = blocks.into();
        self
    }

    /// Mode and owner of the root directory; `None` for the default.
    pub fn root(mut self, perm: impl Into<Option<Perm>>) -> Self {
        self.root = perm.into();
        self
    }
}

/// Where things are on the device, from the superblock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// [`BLOCK_SIZE`](super::BLOCK_SIZE).
    pub block_size: u64,
    /// Blocks the filesystem spans.
    pub total_blocks: u64,
    /// Blocks per checkpoint slot.
    pub slot_blocks: u64,
    /// Device byte offset of checkpoint slot 0 and slot 1.
    pub slot_offsets: [u64; 2],
    /// First data block.
    pub data_start: u64,
}

/// A small extent filesystem on a DAX device; see the [module docs](crate::testfs)
/// for its format, its locking and how it answers the DAX core.
///
/// A `TestFs` is `Send + Sync`: share it between threads by reference or in an `Arc`.
/// Dropping it without [`unmount`](TestFs::unmount) simulates a crash: nothing is
/// written, and reopening the device shows the last checkpoint.
pub struct TestFs {
    pub(crate) state: Arc<FsState>,
}

impl fmt::Debug for TestFs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestFs")
            .field("layout", &self.layout())
            .finish_non_exhaustive()
    }
}

/// A random, non-zero filesystem id (`getrandom(2)`; the clock and the process id if
/// the kernel has no entropy to give, which only a very early boot sees).
fn fs_id_seed() -> u64 {
    let mut b = [0u8; 8];
    let id = match rustix::rand::getrandom(&mut b, rustix::rand::GetRandomFlags::empty()) {
        Ok(8) => u64::from_ne_bytes(b),
        _ => {
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64);
            t ^ (u64::from(std::process::id()) << 32)
        }
    };
    id | 1
}

impl TestFs {
    /// Formats `dev` as an empty TestFs and mounts it (`mkfs` + `mount`).
    pub fn mkfs(dev: Arc<DaxDevice>) -> Result<TestFs, DaxError> {
        TestFs::mkfs_with(dev, MkfsOptions::default())
    }

    /// [`TestFs::mkfs`] with options.
    ///
    /// `EINVAL` when the device is too small for the superblock, two checkpoint slots
    /// and at least one data block; `EBUSY` when the device is mounted (has a holder).
    pub fn mkfs_with(dev: Arc<DaxDevice>, opts: MkfsOptions) -> Result<TestFs, DaxError> {
        let total = dev.driver().nr_pages();
        let slot_blocks = opts
            .checkpoint_blocks
            .unwrap_or((total / 64).clamp(8, 16384));
        let fits = slot_blocks
            .checked_mul(2)
            .and_then(|m| m.checked_add(1))
            .is_some_and(|meta| slot_blocks > 0 && meta < total);
        if !fits {
            return Err(einval(
                "device too small for a TestFs with this checkpoint size",
            ));
        }
        let (claim, holder) = Self::claim(&dev, total)?;
        let sb = Superblock {
            fs_id: fs_id_seed(),
            total_blocks: total,
            slot_blocks,
        };
        let meta = Metadata {
            inodes: BTreeMap::new(),
            next_ino: ROOT + 1,
            alloc: Allocator::new(sb.data_start(), total),
            generation: 0,
            next_cow_id: 1,
            meta_bytes: u64::MAX,
        };
        let state = FsState::new(dev, sb, meta, claim);
        {
            let perm = opts.root.unwrap_or_else(|| Perm::current(0o755));
            let now = state.now();
            let core = InodeCore::new(
                ROOT,
                0,
                ExtentMap::new(),
                false,
                state.dev.clone(),
                Times::all(now),
            );
            let mut root =
                InodeMeta::new(Arc::new(core), perm.mode & 0o7777, perm.uid, perm.gid, 2);
            root.dir = Some(Dir {
                parent: ROOT,
                entries: BTreeMap::new(),
            });
            state.meta.lock().inodes.insert(ROOT, root);
        }
        state.write_meta(0, &sb.encode())?;
        state.write_meta(state.slot_offset(0), &[0u8; CKPT_HEADER])?;
        {
            let mut meta = state.meta.lock();
            state.checkpoint_locked(&mut meta)?; // generation 1, slot 1
        }
        Ok(Self::mounted(state, &holder))
    }

    fn claim(dev: &Arc<DaxDevice>, total: u64) -> Result<(FsDax, Arc<FailureHolder>), DaxError> {
        let holder = Arc::new(FailureHolder::new());
        Ok((dev.fs_dax_get(0, total * B, Some(holder.clone()))?, holder))
    }

    fn mounted(state: FsState, holder: &FailureHolder) -> TestFs {
        let state = Arc::new(state);
        holder.attach(&state);
        TestFs { state }
    }

    /// Mounts the TestFs on `dev` from its newest valid checkpoint.
    ///
    /// `EINVAL` when `dev` holds no TestFs or one of another format version (version
    /// 1, the flat namespace without attributes, is not read: mkfs again), `EUCLEAN`
    /// when no checkpoint slot is valid,
    /// `EIO` on poison in the superblock, `EBUSY` when the device is already mounted.
    pub fn open(dev: Arc<DaxDevice>) -> Result<TestFs, DaxError> {
        let total = dev.driver().nr_pages();
        let (claim, holder) = Self::claim(&dev, total)?;
        let sb = Superblock::decode(&FsState::read_meta(&dev, 0, SB_LEN)?, total)?;
        let max_payload = sb.slot_blocks * B - CKPT_HEADER as u64;
        let mut candidates = Vec::new();
        for slot in 0..2u64 {
            let off = sb.slot_start(slot) * B;
            let Ok(h) = FsState::read_meta(&dev, off, CKPT_HEADER) else {
                continue;
            };
            if let Ok((generation, len, crc)) = Image::decode_header(&h, sb.fs_id, max_payload)
                && generation % 2 == slot
            {
                candidates.push((generation, off, len, crc));
            }
        }
        candidates.sort_by_key(|c| std::cmp::Reverse(c.0));
        let mut chosen = None;
        for (generation, off, len, crc) in candidates {
            let Ok(p) = FsState::read_meta(&dev, off + CKPT_HEADER as u64, len as usize) else {
                continue;
            };
            if let Ok(img) = Image::decode_payload(&p, crc, sb.data_start(), sb.total_blocks) {
                chosen = Some((generation, img));
                break;
            }
        }
        let (generation, img) =
            chosen.ok_or(format::corrupt("no valid TestFs checkpoint on the device"))?;
        let mut meta = Metadata {
            inodes: BTreeMap::new(),
            next_ino: img.next_ino,
            alloc: Allocator::from_refcounts(sb.data_start(), sb.total_blocks, &img.refcounts),
            generation,
            next_cow_id: 1,
            meta_bytes: u64::MAX,
        };
        for rec in img.inodes {
            let (size, extents, dir) = match rec.body {
                Body::File { size, extents } => (size, extents, None),
                Body::Dir { parent, entries } => (
                    0,
                    ExtentMap::new(),
                    Some(Dir {
                        parent,
                        entries: entries.into_iter().collect(),
                    }),
                ),
            };
            let core = InodeCore::new(rec.ino, size, extents, false, dev.clone(), rec.times);
            let mut im = InodeMeta::new(Arc::new(core), rec.mode, rec.uid, rec.gid, rec.nlink);
            im.dir = dir;
            meta.inodes.insert(rec.ino, im);
        }
        let state = FsState::new(dev, sb, meta, claim);
        Ok(Self::mounted(state, &holder))
    }

    /// Checkpoints and unmounts (`sync_fs` + `kill_sb`). [`TestInode`](super::TestInode)
    /// handles still alive afterwards fail with `EIO`, and keep the device claimed
    /// until dropped.
    pub fn unmount(self) -> Result<(), DaxError> {
        self.sync()?;
        self.state.unmounted.store(true, Ordering::Release);
        Ok(())
    }

    /// The filesystem state, for unit tests that hold TestFs's locks.
    #[cfg(test)]
    pub(crate) fn state(&self) -> &FsState {
        &self.state
    }

    /// The device.
    pub fn device(&self) -> &Arc<DaxDevice> {
        &self.state.dev
    }

    /// Where the superblock, checkpoint slots and data area are.
    pub fn layout(&self) -> Layout {
        let sb = &self.state.sb;
        Layout {
            block_size: B,
            total_blocks: sb.total_blocks,
            slot_blocks: sb.slot_blocks,
            slot_offsets: [sb.slot_start(0) * B, sb.slot_start(1) * B],
            data_start: sb.data_start(),
        }
    }

    /// Writes back every file's mapped data, then checkpoints all metadata (`sync(2)`:
    /// `writeback_inodes_sb` with `WB_SYNC_ALL`, then `sync_fs`).
    pub fn sync(&self) -> Result<(), DaxError> {
        self.state.sync_all()
    }

    /// Pins the clock this mount stamps atime, mtime and ctime with at `at`, or with
    /// `None` returns it to the system's real-time clock (the default, and what every
    /// mount starts with). For tests that check timestamps exactly.
    ///
    /// `EOVERFLOW` for a time a pinned clock cannot hold: one outside 1677-09-21 ..
    /// 2262-04-11 (it counts nanoseconds since the epoch in an `i64`).
    ///
    /// ```
    /// # use dax_testdev::{MemDevice, TestFs};
    /// use std::time::{Duration, UNIX_EPOCH};
    /// # let fs = TestFs::mkfs(MemDevice::builder().size(8 << 20).build()?)?;
    /// let t = UNIX_EPOCH + Duration::new(1_700_000_000, 5);
    /// fs.set_clock(Some(t))?;
    /// let ino = fs.create("f")?;
    /// assert_eq!(fs.getattr(ino)?.mtime, t);
    /// # Ok::<(), dax_device::DaxError>(())
    /// ```
    pub fn set_clock(&self, at: Option<std::time::SystemTime>) -> Result<(), DaxError> {
        let nanos = at
            .map(|t| {
                Timespec::from_system(t)?
                    .as_nanos()
                    .filter(|&n| n != CLOCK_SYSTEM)
                    .ok_or(DaxError::Overflow {
                        what: "a pinned clock holds times from 1677-09-21 to 2262-04-11 only",
                    })
            })
            .transpose()?;
        self.state.pin_clock(nanos);
        Ok(())
    }

    /// Test support: makes this filesystem's `iomap_begin` or `iomap_end` (of every
    /// file, whoever calls it: reads, writes, zeroing, faults, fiemap) fail with `err`
    /// on `schedule`. A later call for the same hook replaces the plan;
    /// [`clear_iomap_injections`](Self::clear_iomap_injections) removes both.
    /// [`IomapHook`] says where each hook fires and what the engine does with the
    /// error: `Begin` fails before anything is looked at or changed; `End` fails after
    /// TestFs has finished the call's work, and the engine ignores it once the mapping
    /// made progress (`iomap_iter`'s rule).
    ///
    /// ```
    /// use dax_device::DaxError;
    /// use dax_testdev::{FailSchedule, IomapHook, MemDevice, TestFs};
    ///
    /// let fs = TestFs::mkfs(MemDevice::builder().size(8 << 20).build()?)?;
    /// let ino = fs.create("f")?;
    /// fs.fallocate(ino, Default::default(), 0, 12288)?; // three unwritten blocks...
    /// fs.write(ino, 4096, &[1; 4096])?; // ...the middle one written: three extents
    /// // The second iomap_begin of the next write fails: it returns a short count.
    /// let eio = DaxError::Io { what: "injected" };
    /// fs.inject_iomap(IomapHook::Begin, FailSchedule::After { skip: 1, count: 1 }, eio);
    /// let before = fs.iomap_calls(IomapHook::Begin);
    /// assert_eq!(fs.write(ino, 0, &[7; 12288])?, 4096);
    /// assert_eq!(fs.iomap_calls(IomapHook::Begin), before + 2);
    /// # Ok::<(), DaxError>(())
    /// ```
    pub fn inject_iomap(&self, hook: IomapHook, schedule: FailSchedule, err: DaxError) {
        self.state.inject.set(hook, schedule, err);
    }

    /// Removes every pending `iomap_begin`/`iomap_end` injection.
    pub fn clear_iomap_injections(&self) {
        self.state.inject.clear();
    }

    /// How many times `hook` was called on this mount (injected failures included):
    /// exact for calls of this thread and of threads it has joined.
    pub fn iomap_calls(&self, hook: IomapHook) -> u64 {
        self.state.inject.calls(hook)
    }
}
