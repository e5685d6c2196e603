//! [`TestFs`]: mount, mkfs, the namespace and the file operations.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use dax_device::{DaxDevice, DaxError, FsDax, PAGE_SIZE};
use dax_fault::{dax_break_layout_final, dax_break_layout_inode};
use dax_iomap::{
    Fiemap, MAX_FILE_SIZE, RemapFile, RemapFlags, dax_file_unshare, dax_iomap_read,
    dax_iomap_write, dax_remap_file_range_prep, dax_truncate_page, dax_zero_range, iomap_fiemap,
    iomap_seek_data, iomap_seek_hole,
};

use super::alloc::Allocator;
use super::extent::{Extent, ExtentMap, Lookup};
use super::failure::FailureHolder;
use super::format::{self, CKPT_HEADER, Image, SB_LEN, Superblock};
use super::inode::TestInode;
use super::mmap::break_layouts;
use super::state::{FsState, InodeCore, InodeMeta, Metadata, enoent};
use super::sync::Ordering;
use super::{B, Ino, MAX_FILE_BLOCKS, check_name};

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
    /// Files (`f_files - f_ffree`).
    pub files: u64,
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

/// Options of [`TestFs::mkfs_with`].
#[derive(Debug, Clone, Copy, Default)]
pub struct MkfsOptions {
    /// Blocks per checkpoint slot (the metadata capacity). Default: 1/64 of the device,
    /// at least 8 and at most 16384 blocks.
    pub checkpoint_blocks: Option<u64>,
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
    state: Arc<FsState>,
}

impl fmt::Debug for TestFs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestFs")
            .field("layout", &self.layout())
            .finish_non_exhaustive()
    }
}

fn fs_id_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.write_u32(std::process::id());
    h.finish() | 1
}

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

fn einval(what: &'static str) -> DaxError {
    DaxError::InvalidArgument { what }
}

fn efbig(what: &'static str) -> DaxError {
    DaxError::FileTooBig { what }
}

/// Checks a file position and length as `loff_t`s: `EINVAL` when either is negative
/// as a signed 64-bit value, `EFBIG` when the end passes [`MAX_FILE_SIZE`].
fn check_range(pos: u64, len: u64) -> Result<u64, DaxError> {
    if pos > i64::MAX as u64 || len > i64::MAX as u64 {
        return Err(einval("offset or length is negative as a loff_t"));
    }
    match pos.checked_add(len) {
        Some(end) if end <= MAX_FILE_SIZE => Ok(end),
        _ => Err(efbig("range ends past the largest file size")),
    }
}

/// `rw_verify_area` and `remap_verify_area`: a position or a length that is negative
/// as a `loff_t`, or a range whose end overflows one, is `EINVAL` (checked before
/// anything else, a zero length included, as `pread64`/`pwrite64` check a negative
/// position first).
fn verify_area(pos: u64, len: u64) -> Result<(), DaxError> {
    let max = i64::MAX as u64;
    if pos > max || len > max || pos + len > max {
        return Err(einval(
            "offset, length or their sum is negative as a loff_t",
        ));
    }
    Ok(())
}

/// How many bytes of `buf` a write at `pos` may take: `EINVAL` for a negative
/// offset, `EFBIG` at the largest file size, else the count cut to stay below it.
fn count_at(pos: u64, buf: &[u8]) -> Result<usize, DaxError> {
    check_range(pos, 0)?;
    if pos >= MAX_FILE_SIZE {
        return Err(efbig("write at the largest file size"));
    }
    Ok(buf
        .len()
        .min(usize::try_from(MAX_FILE_SIZE - pos).unwrap_or(usize::MAX)))
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
            names: BTreeMap::new(),
            inodes: BTreeMap::new(),
            next_ino: 1,
            alloc: Allocator::new(sb.data_start(), total),
            generation: 0,
            next_cow_id: 1,
        };
        let state = FsState::new(dev, sb, meta, claim);
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
    /// `EINVAL` when `dev` holds no TestFs, `EUCLEAN` when no checkpoint slot is valid,
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
            names: BTreeMap::new(),
            inodes: BTreeMap::new(),
            next_ino: img.next_ino,
            alloc: Allocator::from_refcounts(sb.data_start(), sb.total_blocks, &img.refcounts),
            generation,
            next_cow_id: 1,
        };
        for rec in img.inodes {
            meta.names.insert(rec.name.clone(), rec.ino);
            meta.inodes.insert(
                rec.ino,
                InodeMeta {
                    core: Arc::new(InodeCore::new(
                        rec.ino,
                        rec.size,
                        rec.extents,
                        false,
                        dev.clone(),
                    )),
                    name: rec.name,
                    cow: BTreeMap::new(),
                },
            );
        }
        let state = FsState::new(dev, sb, meta, claim);
        Ok(Self::mounted(state, &holder))
    }

    /// Checkpoints and unmounts (`sync_fs` + `kill_sb`). [`TestInode`] handles still
    /// alive afterwards fail with `EIO`, and keep the device claimed until dropped.
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

    // ---- namespace ----

    /// Creates an empty file (`open(O_CREAT | O_EXCL)`): `EEXIST` when the name is
    /// taken, `ENOENT`/`ENAMETOOLONG`/`EINVAL` for bad names.
    pub fn create(&self, name: &str) -> Result<Ino, DaxError> {
        check_name(name)?;
        self.state.check_mounted()?;
        let mut meta = self.state.meta.lock();
        if meta.names.contains_key(name) {
            return Err(DaxError::Exists {
                what: "file exists",
            });
        }
        let ino = meta.next_ino;
        meta.next_ino += 1;
        meta.names.insert(name.to_owned(), ino);
        meta.inodes.insert(
            ino,
            InodeMeta {
                core: Arc::new(InodeCore::new(
                    ino,
                    0,
                    ExtentMap::new(),
                    true,
                    self.state.dev.clone(),
                )),
                name: name.to_owned(),
                cow: BTreeMap::new(),
            },
        );
        Ok(Ino(ino))
    }

    /// The inode of an existing file (`open` without `O_CREAT`): `ENOENT` when none.
    #[doc(alias = "open_file")]
    pub fn lookup(&self, name: &str) -> Result<Ino, DaxError> {
        check_name(name)?;
        self.state.check_mounted()?;
        let meta = self.state.meta.lock();
        meta.names.get(name).map(|&i| Ino(i)).ok_or_else(enoent)
    }

    /// Every file, sorted by name.
    pub fn list(&self) -> Vec<(String, Ino)> {
        let meta = self.state.meta.lock();
        meta.names
            .iter()
            .map(|(n, &i)| (n.clone(), Ino(i)))
            .collect()
    }

    /// Removes a file and frees its blocks (there are no open-file references to
    /// wait for: operations on its inode number fail with `ENOENT` afterwards).
    pub fn unlink(&self, name: &str) -> Result<(), DaxError> {
        let ino = self.lookup(name)?;
        let inode = self.inode(ino)?;
        let _io = inode.core().io.write();
        let _inval = inode.core().invalidate.write();
        // The blocks are freed now (TestFs has no open-file references), so do what
        // eviction does first: unmap the file everywhere, wait for pinned pages, drop
        // every entry (`dax_break_layout_final`).
        dax_break_layout_final(&inode.core().mapping);
        let mut meta = self.state.meta.lock();
        if meta.names.get(name) != Some(&ino.0) {
            return Err(enoent());
        }
        meta.names.remove(name);
        let Some(im) = meta.inodes.remove(&ino.0) else {
            return Err(enoent());
        };
        let map = {
            let mut blocks = inode.core().blocks.write();
            inode.core().mark_unlinked();
            std::mem::take(&mut blocks.map)
        };
        for (_, e) in map.iter() {
            meta.alloc.release(e.dev, e.len);
        }
        for r in im.cow.values() {
            meta.alloc.release(r.dev, r.len);
        }
        Ok(())
    }

    /// A handle on inode `ino` for the engine: it implements
    /// [`IomapOps`](dax_iomap::IomapOps) and [`DaxInode`](dax_iomap::DaxInode).
    pub fn inode(&self, ino: Ino) -> Result<TestInode, DaxError> {
        self.state.check_mounted()?;
        let meta = self.state.meta.lock();
        let im = meta.inodes.get(&ino.0).ok_or_else(enoent)?;
        Ok(TestInode::new(self.state.clone(), im.core.clone()))
    }

    /// `ENOENT` if `inode` was unlinked (checked after taking its I/O lock, which
    /// unlink holds exclusively while it marks the inode).
    fn check_live(&self, inode: &TestInode) -> Result<(), DaxError> {
        self.state.check_mounted()?;
        if inode.core().is_unlinked() {
            Err(enoent())
        } else {
            Ok(())
        }
    }

    // ---- I/O ----

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
        let old = inode.core().size();
        if pos > old {
            self.zero_gap(inode, old, pos)?;
        }
        let n = dax_iomap_write(inode, inode, pos, &buf[..count])?;
        self.grow_size(inode, pos + n as u64)?;
        Ok(n)
    }

    /// Sets i_size to `end` if that is larger, under the metadata lock. The caller
    /// holds the I/O lock exclusively, so the size cannot grow under it: an overwrite
    /// inside the file skips the metadata lock.
    fn grow_size(&self, inode: &TestInode, end: u64) -> Result<(), DaxError> {
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
    fn has_mapped(&self, inode: &TestInode, start: u64, end: u64) -> Result<bool, DaxError> {
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
    fn zero_gap(&self, inode: &TestInode, old_size: u64, new_end: u64) -> Result<(), DaxError> {
        if self.has_mapped(inode, old_size, new_end)? {
            dax_zero_range(inode, inode, old_size, new_end - old_size)?;
        }
        Ok(())
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

    /// Truncates or extends the file to `size` (`truncate(2)`, ext2's `ext2_setsize`,
    /// XFS's `xfs_setattr_size`): I/O and invalidate locks exclusive; on shrink the
    /// tail of the new EOF block is zeroed with
    /// [`dax_truncate_page`](dax_iomap::dax_truncate_page) and every block past it is
    /// freed; on growth the gap is zeroed. `EFBIG` past the largest file size.
    pub fn truncate(&self, ino: Ino, size: u64) -> Result<(), DaxError> {
        check_range(size, 0)?;
        let inode = self.inode(ino)?;
        let _io = inode.core().io.write();
        let mut inval = Some(inode.core().invalidate.write());
        self.check_live(&inode)?;
        break_layouts(inode.core(), &mut inval)?;
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
    /// Errors in `vfs_fallocate`'s order: `EINVAL` for a zero or negative length or a
    /// negative offset; `EOPNOTSUPP` for unknown bits, PUNCH_HOLE without KEEP_SIZE and
    /// other invalid combinations; `EFBIG` past the largest file size; `EOPNOTSUPP`
    /// for COLLAPSE_RANGE and INSERT_RANGE, which TestFs does not implement.
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

    /// Makes the file durable (`fsync(2)`): like a journal commit, it checkpoints the
    /// whole filesystem. `ENOENT` for an unknown inode.
    pub fn fsync(&self, ino: Ino) -> Result<(), DaxError> {
        let inode = self.inode(ino)?;
        self.state.fsync_inode(inode.core())
    }

    /// Writes back every file's mapped data, then checkpoints all metadata (`sync(2)`:
    /// `writeback_inodes_sb` with `WB_SYNC_ALL`, then `sync_fs`).
    pub fn sync(&self) -> Result<(), DaxError> {
        self.state.sync_all()
    }

    // ---- reporting ----

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

    /// Size and allocated blocks of a file (`stat(2)`).
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
        let meta = self.state.meta.lock();
        StatFs {
            block_size: B,
            blocks: meta.alloc.total(),
            free: meta.alloc.free_blocks(),
            busy: meta.alloc.busy_blocks(),
            files: meta.inodes.len() as u64,
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

    /// The generation of the last durable checkpoint (it lives in slot
    /// `generation % 2`).
    pub fn generation(&self) -> u64 {
        self.state.meta.lock().generation
    }

    // ---- reflink / dedupe ----

    /// Shares `len` bytes of `src` at `src_off` into `dst` at `dst_off`
    /// (`FICLONERANGE`, XFS's `xfs_reflink_remap_range`): both files' I/O and
    /// invalidate locks exclusive; the generic checks of
    /// [`dax_remap_file_range_prep`](dax_iomap::dax_remap_file_range_prep); then the
    /// destination's blocks are dropped and the source's extents (holes included)
    /// mapped there with their reference counts raised. Offsets must be block aligned,
    /// and so must `len` unless the range ends at the source's EOF (`EINVAL`). `len ==
    /// 0` means "to the source's EOF". The destination grows to `dst_off + len` if that
    /// is past its EOF. Returns the bytes remapped.
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
