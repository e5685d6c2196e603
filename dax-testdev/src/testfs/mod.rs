//! [`TestFs`]: a small extent filesystem on a DAX device, and the worked example of
//! how a filesystem drives the dax-rs engine.
//!
//! TestFs is what a filesystem author copies from. It has a directory tree rooted at
//! [`ROOT_INO`] (directories, hard links, POSIX rename with `RENAME_NOREPLACE` and
//! `RENAME_EXCHANGE`), the attributes `stat(2)` reports (mode, owner, link count,
//! size, blocks, nanosecond atime/mtime/ctime: [`TestFs::getattr`],
//! [`TestFs::setattr`]), files made of extents (file block → device block runs, MAPPED
//! or UNWRITTEN, with a shared flag for reflinked blocks), a block allocator with
//! reference counts, and a checkpoint of all metadata in a reserved area of the
//! device. That is enough for a FUSE server to serve it to `cp`, `mkdir`, `mv`, `ln`,
//! `rm -r`, `chmod`, `touch`, `truncate`, `fallocate` and `df`. It answers the DAX core the way ext4 and XFS do ([`TestInode`] implements
//! [`IomapOps`](dax_iomap::IomapOps) and [`DaxInode`](dax_iomap::DaxInode)), and its
//! file operations call the engine as their kernel counterparts do:
//!
//! | TestFs | engine call | kernel model |
//! |---|---|---|
//! | [`TestFs::read`] / [`TestFs::write`], and [`TestFs::pread`] / [`TestFs::pwrite`] on an inode handle (an open file) | [`dax_iomap_rw`](dax_iomap::dax_iomap_rw) | `ext2_dax_read_iter` / `ext2_dax_write_iter`, `xfs_file_dax_write` |
//! | [`TestFs::truncate`] | [`dax_truncate_page`](dax_iomap::dax_truncate_page), [`dax_zero_range`](dax_iomap::dax_zero_range) | `ext2_setsize`, `xfs_setattr_size` |
//! | [`TestFs::fallocate`] | [`dax_zero_range`](dax_iomap::dax_zero_range), [`dax_file_unshare`](dax_iomap::dax_file_unshare) | `ext4_fallocate`, `xfs_file_fallocate` |
//! | [`TestFs::reflink`] / [`TestFs::dedupe`] | [`dax_remap_file_range_prep`](dax_iomap::dax_remap_file_range_prep) | `xfs_reflink_remap_prep` |
//! | [`TestFs::fiemap`], [`TestFs::seek_hole`], [`TestFs::seek_data`] | [`iomap_fiemap`](dax_iomap::iomap_fiemap), [`iomap_seek_hole`](dax_iomap::iomap_seek_hole), [`iomap_seek_data`](dax_iomap::iomap_seek_data) | `xfs_vn_fiemap`, `xfs_seek_iomap` |
//!
//! The namespace and attribute calls need no engine; they follow ext2 and the VFS:
//!
//! | TestFs | kernel model |
//! |---|---|
//! | [`TestFs::mkdir`], [`TestFs::create_in`], [`TestFs::lookup_in`] | `vfs_mkdir` + `ext2_mkdir`, `ext2_create`, `ext2_lookup` |
//! | [`TestFs::readdir`], [`TestFs::parent`] | `ext2_readdir` (`dir_emit`), `ext2_get_parent` |
//! | [`TestFs::link`], [`TestFs::unlink_in`], [`TestFs::rmdir`] | `vfs_link` + `ext2_link`, `vfs_unlink` + `ext2_unlink`, `vfs_rmdir` + `ext2_rmdir` |
//! | [`TestFs::rename`] | `do_renameat2`, `vfs_rename`, `ext2_rename` |
//! | [`TestFs::getattr`], [`TestFs::setattr`] | `generic_fillattr`, `notify_change` + `ext2_setattr` (`setattr_copy`) |
//!
//! The flat calls of the first TestFs, [`TestFs::create`], [`TestFs::lookup`],
//! [`TestFs::list`] and [`TestFs::unlink`], act on the root directory.
//!
//! ```
//! use dax_testdev::{FileKind, MemDevice, Perm, ROOT_INO, RenameFlags, TestFs};
//!
//! let dev = MemDevice::builder().size(8 << 20).build()?;
//! let fs = TestFs::mkfs(dev.clone())?;
//! let perm = Perm::new(0o755, 1000, 1000);
//! let src = fs.mkdir(ROOT_INO, "src", perm)?;
//! let f = fs.create_in(src, "main.rs", Perm { mode: 0o644, ..perm })?;
//! fs.write(f, 0, b"fn main() {}")?;
//! fs.link(f, ROOT_INO, "main-link.rs")?; // a second name
//! fs.rename(src, "main.rs", ROOT_INO, "lib.rs", RenameFlags::empty())?;
//! assert_eq!(fs.getattr(f)?.nlink, 2);
//! assert_eq!(fs.readdir(src)?, []);
//! fs.rmdir(ROOT_INO, "src")?;
//! let names: Vec<_> = fs.readdir(ROOT_INO)?.into_iter().map(|e| (e.name, e.kind)).collect();
//! assert_eq!(names, [("lib.rs".into(), FileKind::File), ("main-link.rs".into(), FileKind::File)]);
//! fs.unmount()?; // the tree and every attribute are durable
//! let fs = TestFs::open(dev)?;
//! assert_eq!(fs.lookup_in(ROOT_INO, "lib.rs")?, f);
//! # Ok::<(), dax_device::DaxError>(())
//! ```
//!
//! ```
//! use dax_device::DaxError;
//! use dax_iomap::{IomapFlags, IomapOps, IomapType, IterFlags};
//! use dax_testdev::{FallocMode, MemDevice, TestFs};
//!
//! let dev = MemDevice::builder().size(8 << 20).build()?;
//! let fs = TestFs::mkfs(dev.clone())?;
//! let ino = fs.create("data")?;
//! fs.fallocate(ino, FallocMode::empty(), 0, 1 << 20)?; // 256 unwritten blocks
//! assert_eq!((fs.stat(ino)?.size, fs.stat(ino)?.blocks), (1 << 20, 256));
//!
//! // What the DAX core sees: reads get UNWRITTEN, writes get zeroed, converted blocks.
//! let inode = fs.inode(ino)?;
//! let (map, _) = inode.iomap_begin(0, 4096, IterFlags::DAX)?;
//! assert_eq!(map.kind, IomapType::Unwritten);
//! let (map, src) = inode.iomap_begin(0, 4096, IterFlags::DAX | IterFlags::WRITE)?;
//! assert_eq!((map.kind, src), (IomapType::Mapped, None));
//! assert!(map.flags.contains(IomapFlags::NEW));
//! inode.iomap_end(0, 4096, 4096, IterFlags::DAX | IterFlags::WRITE, &map)?;
//!
//! fs.fsync(ino)?; // checkpoint: survives a crash (drop without unmount)
//! drop((inode, fs));
//! let fs = TestFs::open(dev)?;
//! assert_eq!(fs.stat(fs.lookup("data")?)?.size, 1 << 20);
//! # Ok::<(), DaxError>(())
//! ```
//!
//! Reads and writes go through the engine's `dax_iomap_rw`:
//!
//! ```
//! # use dax_testdev::{MemDevice, TestFs};
//! # let fs = TestFs::mkfs(MemDevice::builder().size(8 << 20).build()?)?;
//! let ino = fs.create("hello")?;
//! assert_eq!(fs.write(ino, 0, b"hello, DAX")?, 10);
//! let mut buf = [0u8; 10];
//! assert_eq!(fs.read(ino, 0, &mut buf)?, 10);
//! assert_eq!(&buf, b"hello, DAX");
//! # Ok::<(), dax_device::DaxError>(())
//! ```
//!
//! # How TestFs answers `iomap_begin`
//!
//! * **Reads** (`DAX`, `DAX|FAULT`, `REPORT`): MAPPED or UNWRITTEN for blocks, with
//!   `dax_dev` set and `addr` the device byte address (there is no partition offset:
//!   TestFs spans the whole device, so REPORT's block-device-relative address is the
//!   same number); HOLE up to the next extent otherwise. Shared blocks carry
//!   `IomapFlags::SHARED` and mappings are cut where sharing starts or stops (XFS's
//!   `xfs_read_iomap_begin` does this for DAX inodes).
//! * **Writes** (`WRITE`, also with `FAULT` or `UNSHARE`): an existing unshared MAPPED
//!   extent is returned as is. A hole is allocated, an unwritten extent converted, and
//!   in both cases the blocks are zeroed *through the driver*
//!   ([`DaxDevice::zero_page_range`](dax_device::DaxDevice::zero_page_range), which also
//!   clears poison on reused blocks) before they are returned MAPPED with
//!   `IomapFlags::NEW`. Shared blocks are copied on write as XFS does: new blocks are
//!   reserved and zeroed and returned as a SHARED destination with a source map of the
//!   old blocks; [`iomap_end`](dax_iomap::IomapOps::iomap_end) then remaps the written
//!   blocks into the file (dropping a reference on the old ones) or cancels the
//!   reservation when nothing was written. `IomapFlags::DIRTY` is set when the write
//!   reaches past EOF or the inode has metadata not yet checkpointed (so a future
//!   MAP_SYNC fault knows it must fsync).
//! * **Zeroing** (`ZERO`): never allocates for holes or unwritten extents (they already
//!   read as zeros). Shared MAPPED blocks are the one exception: zeroing them in place
//!   would change the other file, so they get a CoW destination, as XFS does.
//! * **`NOWAIT`**: any request that would allocate, convert or copy, or that finds a
//!   lock it needs (the metadata lock, the inode's extent lock) taken, fails with [`DaxError::WouldBlock`](dax_device::DaxError)
//!   (`EAGAIN`).
//!
//! # Allocation
//!
//! 4 KiB blocks. An allocation first tries to continue the file's previous extent on
//! the device; for requests of 2 MiB or more, and for files that reach 2 MiB, it then
//! looks for a free run whose start is congruent to the file block modulo 512, so
//! 2 MiB-aligned file ranges land on 2 MiB-aligned device ranges and PMD faults can map
//! them; then first fit; then the longest free run (the mapping is shorter and the
//! engine asks again for the rest). Blocks carry reference counts (reflink shares
//! them). A block freed while the last checkpoint still references it stays *busy*
//! until the next checkpoint, so a crash can never bring back a file whose blocks now
//! hold another file's data; when space runs out while blocks are busy, TestFs
//! checkpoints and retries before answering `ENOSPC`. For the same reason a block
//! that was shared stays copy-on-write after its partner dropped its reference, for
//! as long as a checkpoint that may come back references it: that checkpoint may
//! map it into the other file (which has dropped it since), and a write in place
//! would change that file's durable contents.
//!
//! # Durability and the on-device format
//!
//! Data written through `dax_iomap_rw` reaches the media with non-temporal stores;
//! metadata is durable only once checkpointed, by [`TestFs::fsync`] (which, like a
//! journal commit, checkpoints the whole filesystem), [`TestFs::sync`] (`sync_fs`) and
//! [`TestFs::unmount`]. Dropping a `TestFs` without unmounting is a crash: reopening
//! the device shows exactly the last checkpoint. What fsync reports after a failed
//! writeback or checkpoint, to which open files, and what the data is then, is on
//! [`FileHandle`] (the kernel's errseq rules). All integers are little-endian;
//! checksums are CRC-32C (Castagnoli).
//!
//! ```text
//! block 0                     superblock (written by mkfs only)
//!   0  [u8; 8]  magic "DAXRSTFS"
//!   8  u32      format version (2)
//!  12  u32      block size (4096)
//!  16  u64      fs id (random per mkfs; checkpoints must carry it)
//!  24  u64      total blocks
//!  32  u64      S = blocks per checkpoint slot
//!  40  u32      CRC-32C of bytes 0..40
//! blocks 1 .. 1+S             checkpoint slot 0
//! blocks 1+S .. 1+2S          checkpoint slot 1
//! blocks 1+2S .. total        data blocks
//!
//! checkpoint slot (generation g lives in slot g % 2)
//!   0  [u8; 8]  magic "TFSCKPT1"
//!   8  u64      fs id
//!  16  u64      generation (>= 1, +1 per checkpoint)
//!  24  u64      payload length in bytes
//!  32  u32      CRC-32C of the payload
//!  36  u32      CRC-32C of header bytes 0..36
//!  64  payload:
//!      u64 next inode number (> every inode number; files start at 2)
//!      u32 inode count, then per inode (the root, inode 1, among them):
//!          u64 ino, u8 kind (1 regular file, 2 directory),
//!          u32 mode (permission bits, <= 0o7777), u32 uid, u32 gid, u32 nlink,
//!          atime, mtime, ctime, each i64 seconds since the epoch + u32 nanoseconds
//!          a regular file:
//!              u64 size, u32 extent count, then per extent (sorted by file block):
//!                  u64 file block, u64 device block, u64 length in blocks,
//!                  u8 flags (bit 0 UNWRITTEN, bit 1 SHARED)
//!          a directory:
//!              u64 parent (the root's is itself), u32 entry count, then per entry
//!              (strictly ascending by name bytes): u64 ino, u16 name length, name (UTF-8)
//!      u32 run count, then per run (sorted): u64 device block, u64 length, u32 refcount
//!          (every referenced block; must equal the counts the extent maps imply)
//! ```
//!
//! Mount accepts a payload only if it describes one tree: the root is a directory and
//! its own parent; every entry names an existing inode other than the root; each
//! other directory is named exactly once, by the directory its parent field names;
//! every inode is reachable from the root (so there are no cycles and no orphans); a
//! file's nlink is the number of entries naming it, a directory's 2 plus its
//! subdirectories. Anything else, like any field out of range, makes that slot
//! invalid (`EUCLEAN` if neither slot is valid).
//!
//! Format version 1 (a flat list of names, no attributes) is not read by this version:
//! mount answers `EINVAL` naming the version, as Linux refuses a superblock with
//! features it does not know. There is no conversion; mkfs again. The checkpoint
//! slot magic stayed `TFSCKPT1`; the superblock's version says how to read the
//! payload.
//!
//! A checkpoint writes generation `g + 1` into the slot *not* holding `g`, after a
//! device flush (data before metadata) and followed by one (the commit). Mount reads
//! both slots and takes the highest generation whose header and payload checksums,
//! geometry and reference counts all check out, so a torn or corrupted newest slot
//! falls back to the previous checkpoint. mkfs writes generation 1 to slot 1.
//!
//! # Locking
//!
//! Like ext2 and XFS, five levels, always taken in this order, and a sixth, a leaf:
//!
//! 1. the per-inode **I/O lock** (`i_rwsem`, XFS IOLOCK): shared for reads, fiemap and
//!    seek; exclusive for writes, truncate, fallocate, reflink/dedupe and unlink;
//! 2. the per-inode **invalidate lock** (`mapping->invalidate_lock`, XFS MMAPLOCK):
//!    exclusive for truncate, fallocate (punch, zero range...), reflink/dedupe and
//!    unlink, which break DAX layouts under it before changing the block map; shared
//!    for page faults, for the whole fault including a MAP_SYNC fsync;
//! 3. DAX mapping-entry locks, taken by the engine (faults, writeback, layout
//!    breaking, invalidation from writes);
//! 4. the filesystem-wide **metadata lock** (namespace, inode table, allocator and
//!    reference counts, CoW reservations, dirty state, checkpointing; XFS AGF and
//!    superblock counters), taken only inside TestFs for short critical sections and
//!    never held across an engine call;
//! 5. the per-inode **extent lock** (the file's block map; XFS ILOCK, ext4
//!    `i_data_sem`), innermost. Every change of a block map takes it exclusively *with
//!    the metadata lock held*, so block maps and the allocator's reference counts
//!    change together and a checkpoint (written under the metadata lock, reading every
//!    map shared) is a consistent snapshot. The lock also guards the inode's *dirty*
//!    state (metadata not yet checkpointed, which decides `IomapFlags::DIRTY`). A
//!    read-type `iomap_begin`, and a write-type one that finds written blocks the file
//!    does not share, take only this lock, shared, and no filesystem-wide lock at all;
//!    for an extent flagged shared a read drops it, takes the metadata lock, then this
//!    one again (the reference counts say whether the blocks are still shared). A
//!    read-type `iomap_begin` on a file of at most eight extents does not take it at
//!    all: releasing the lock exclusively republishes such maps under a sequence
//!    counter, and the read uses that copy when no writer was inside while it read
//!    (a seqlock; see `extent_lock.rs`). It falls back to the lock otherwise;
//! 6. the per-inode **timestamp lock** (what `inode->i_lock` is to the kernel's
//!    multigrain ctime): atime, mtime and ctime; nothing is taken under it. Writes,
//!    write faults, truncate, fallocate and reflink stamp mtime and ctime under it
//!    holding only their own locks (no filesystem-wide lock on the write path);
//!    namespace changes and `setattr` stamp times under the metadata lock.
//!
//! The directory tree (entries, parents, link counts) and the other attributes (mode,
//! owner) change only under the metadata lock, each namespace call checking and
//! changing in one critical section, so a rename is atomic. Removing a file's last
//! name (unlink, or rename over it) frees the file: it first takes that file's I/O
//! and invalidate locks exclusively and breaks its layout for good
//! (`dax_break_layout_final`), then the metadata lock, and, under it, the extent lock
//! to take the block map; if the tree changed while it waited, it checks again.
//!
//! The extent lock, not the I/O lock, is what makes a block-map lookup safe: page
//! faults allocate blocks under the invalidate lock held *shared* (as ext2 does),
//! without the I/O lock, so a reader cannot rely on the I/O lock to keep the map
//! still.
//!
//! Operations on two inodes (reflink, dedupe) take both I/O locks, then both
//! invalidate locks, each pair lower inode number first; they never hold two extent
//! locks at once. `iomap_begin` and `iomap_end` take only the metadata and extent
//! locks; they zero new blocks with both dropped and re-check the extent map
//! afterwards (a concurrent fault could have filled the range). The checkpoint is
//! written with the metadata lock held, which keeps it a consistent snapshot; data
//! copies never hold it.
//!
//! # Errors
//!
//! Every failure is a [`DaxError`](dax_device::DaxError) with the errno a user of the
//! kernel would see: `ENOENT` (no such name or inode), `EEXIST`, `ENAMETOOLONG`,
//! `ENOTDIR`, `EISDIR` (a file operation on a directory, unlink of one, a file renamed
//! over one), `ENOTEMPTY`, `EMLINK`, `EPERM` (a hard link to a directory),
//! `EINVAL` (bad names, a directory moved into its own subtree, bad rename flags, bad
//! offsets, unaligned reflink ranges, bad fallocate combinations),
//! `EFBIG`, `ENOSPC`, `EOPNOTSUPP` (punch without keep-size, collapse, insert), `EBADE`
//! (dedupe of different contents), `EAGAIN` (NOWAIT), `EBUSY` (device already mounted),
//! `EUCLEAN` (corrupt metadata), and whatever the engine or the device reports.
//!
//! # Source layout
//!
//! One concept per file; each file's module docs say which of the locks above it
//! takes. Every file uses only files listed before it here, and this file's
//! constants and name check:
//!
//! | file | what it owns |
//! |---|---|
//! | `sync.rs`, `rangeset.rs`, `extent.rs`, `alloc.rs`, `time.rs`, `format.rs`, `verify.rs` | lock types; block ranges; extent maps; the block allocator with reference counts; timestamps; the on-device format and the tree check; the VFS's argument checks |
//! | `inject.rs` | test support: where `iomap_begin`/`iomap_end` failures fire and their schedules ([`IomapHook`]; set with [`TestFs::inject_iomap`]) |
//! | `extent_lock.rs` | the extent lock, its seqlock copy of small maps, and the block map it guards |
//! | `state.rs` | what the filesystem and its inode handles share: `FsState` (with the clock), `Metadata`, `InodeCore`, `InodeMeta`, `Dir`, [`Ino`] |
//! | `attr.rs` | the public tree and attribute types: [`ROOT_INO`], [`FileKind`], [`Perm`], [`Attr`], [`SetAttr`], [`DirEntry`], [`RenameFlags`] |
//! | `checkpoint.rs` | metadata I/O, writing and committing checkpoints, writeback for fsync and sync |
//! | `balloc.rs` | where a file's new blocks go; zeroing them and copying CoW tails |
//! | `failure.rs` | the device holder that answers media failures |
//! | `inode.rs` | [`TestInode`] and its `iomap_begin`/`iomap_end` |
//! | `mmap.rs` | mapping an inode, the fault handler, layout breaking |
//! | `mount.rs` | [`TestFs`] itself: mkfs, mount, sync, unmount, the pinned clock, the iomap injection switches |
//! | `namespace.rs` | the directory tree: mkdir, create, lookup, readdir, link, unlink, rmdir, rename; inode handles |
//! | `io.rs` | read, write, mmap, fsync, open files ([`FileHandle`]: what fsync reports) |
//! | `space.rs` | truncate, fallocate |
//! | `remap.rs` | reflink, dedupe |
//! | `report.rs` | fiemap, seek, stat, statfs, extents |
//! | `setattr.rs` | getattr, setattr |

mod alloc;
mod attr;
mod balloc;
mod checkpoint;
mod extent;
mod extent_lock;
mod failure;
mod format;
mod inject;
mod inode;
mod io;
mod mmap;
mod mount;
mod namespace;
mod rangeset;
mod remap;
mod report;
mod setattr;
mod space;
mod state;
mod sync;
mod time;
mod verify;

use dax_device::PAGE_SIZE;
use dax_iomap::MAX_FILE_SIZE;

pub use attr::{Attr, DirEntry, FileKind, MAX_LINKS, Perm, ROOT_INO, RenameFlags, SetAttr};
pub use inject::IomapHook;
pub use inode::TestInode;
pub use io::FileHandle;
pub use mount::{Layout, MkfsOptions, TestFs};
pub use report::{ExtentInfo, Stat, StatFs};
pub use space::FallocMode;
pub use state::Ino;

/// TestFs's block size: 4096 bytes, the page size (DAX requires it).
pub const BLOCK_SIZE: usize = PAGE_SIZE;

/// The longest file name, in bytes (`NAME_MAX`).
pub const MAX_NAME_LEN: usize = 255;

const B: u64 = BLOCK_SIZE as u64;

/// The root directory's inode number as a plain number ([`ROOT_INO`]).
const ROOT: u64 = 1;

/// File blocks a file may have: enough to hold [`MAX_FILE_SIZE`] bytes.
pub(crate) const MAX_FILE_BLOCKS: u64 = MAX_FILE_SIZE.div_ceil(B);

/// Checks the name of a directory entry: `ENOENT` when empty (as `open("")`),
/// `ENAMETOOLONG` past [`MAX_NAME_LEN`], `EINVAL` for `/`, NUL, `.` and `..` (names
/// are single path components; `.` and `..` are no entries of their own).
pub(crate) fn check_name(name: &str) -> Result<(), dax_device::DaxError> {
    use dax_device::DaxError;
    if name.is_empty() {
        return Err(DaxError::NotFound {
            what: "empty file name",
        });
    }
    if name.len() > MAX_NAME_LEN {
        return Err(DaxError::NameTooLong {
            what: "file name longer than 255 bytes",
        });
    }
    if name.contains(['/', '\0']) || name == "." || name == ".." {
        return Err(DaxError::InvalidArgument {
            what: "file names may not contain '/' or NUL, nor be '.' or '..'",
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests;
