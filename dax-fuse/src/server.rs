//! [`DaxFuse`]: the FUSE server, a [`fuser::Filesystem`] that answers each FUSE request
//! with a TestFs call.
//!
//! | FUSE request | TestFs call | kernel counterpart |
//! |---|---|---|
//! | `LOOKUP` | `lookup_in`, `getattr` | `ext2_lookup` |
//! | `FORGET` | nothing: inode numbers are never reused, so no lookup counts are kept | `evict_inode` |
//! | `GETATTR` / `SETATTR` | `getattr` / `setattr` (a size goes to [`TestFs::truncate`]) | `ext2_getattr`, `ext2_setattr` |
//! | `MKNOD` (regular files), `CREATE` | `create_in` (+ [`TestFs::inode`] for `CREATE`'s open file) | `ext2_create` |
//! | `OPEN` / `RELEASE` | [`TestFs::open_file`] + [`TestFs::inode`] / drop them (an unlinked file goes with its last `RELEASE`) | `dax_file_open` / `fput` |
//! | `READ` / `WRITE` | [`TestFs::pread`] / [`TestFs::pwrite`] on the open inode: `dax_iomap_rw` | `ext2_dax_read_iter` / `ext2_dax_write_iter` |
//! | `FLUSH` | nothing to do: a write reached device memory before its reply | `filp_flush` |
//! | `FSYNC` / `FSYNCDIR` | [`TestFs::fsync_file`] / [`TestFs::sync`]: a checkpoint, durable | `ext4_sync_file` |
//! | `FALLOCATE` | [`TestFs::fallocate`] with the mode's `FallocMode` | `ext4_fallocate` |
//! | `LSEEK` (`SEEK_DATA`, `SEEK_HOLE`) | [`TestFs::seek_data`], [`TestFs::seek_hole`] | `iomap_seek_data`, `iomap_seek_hole` |
//! | `UNLINK`, `MKDIR`, `RMDIR`, `RENAME`, `LINK` | `unlink_in`, `mkdir`, `rmdir`, `rename`, `link` | `ext2_unlink` ... |
//! | `OPENDIR` / `READDIR` / `RELEASEDIR` | `readdir` and `parent`, snapshotted at open | `ext2_readdir` |
//! | `STATFS` | [`TestFs::statfs`] | `ext2_statfs` |
//!
//! Every error is the [`DaxError`]'s own Linux errno ([`DaxError::errno`]), handed to
//! the kernel unchanged.
//!
//! The namespace and attribute calls (`getattr`, `lookup_in`, ...) are TestFs's
//! directory tree ([`TestFs::mkdir`], [`TestFs::rename`], ...).

use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::OsStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use fsdax::device::DaxError;
use fsdax::testing::{
    Attr, FallocMode, FileHandle as OpenHandle, FileKind, Ino, Perm, ROOT_INO, RenameFlags,
    SetAttr, TestFs, TestInode,
};
use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, InitFlags,
    KernelConfig, LockOwner, OpenFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory,
    ReplyEmpty, ReplyEntry, ReplyLseek, ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow,
    WriteFlags,
};
use parking_lot::{Mutex, RwLock};

use crate::options::CacheMode;

/// How long the kernel may cache attributes and names. The server is the only way to
/// the filesystem, and every change goes through the kernel, which updates or drops
/// what it cached; one second bounds what a missed case could show.
const TTL: Duration = Duration::from_secs(1);

/// The largest READ or WRITE asked for: 1 MiB (the kernel's default
/// `fuse_max_pages_limit` of 256 pages).
pub const MAX_IO: u32 = 1 << 20;

/// The FUSE error for a TestFs error: its Linux errno, unchanged.
pub fn errno(e: &DaxError) -> Errno {
    Errno::from_i32(e.errno())
}

/// An inode number as FUSE and TestFs share it: FUSE's root node id (1) is
/// [`ROOT_INO`], and every other number is the TestFs inode number itself.
fn ino(node: INodeNo) -> Ino {
    Ino(node.0)
}

/// A FUSE name as a TestFs name: TestFs names are UTF-8, so another name cannot exist
/// (`ENOENT` for a lookup) or be made (`EINVAL`).
fn name_str(name: &OsStr, creating: bool) -> Result<&str, Errno> {
    name.to_str().ok_or(if creating {
        Errno::EINVAL
    } else {
        Errno::ENOENT
    })
}

/// The name for a new regular file (`MKNOD`, `CREATE`): other file types are `EPERM`,
/// Linux's answer for a filesystem without them; then as [`name_str`] for a new name.
fn new_file_name(name: &OsStr, mode: u32) -> Result<&str, Errno> {
    let fmt = mode & libc::S_IFMT;
    if fmt != libc::S_IFREG && fmt != 0 {
        return Err(Errno::EPERM);
    }
    name_str(name, true)
}

/// FUSE's view of TestFs attributes (`struct fuse_attr`).
fn file_attr(a: &Attr) -> FileAttr {
    let kind = match a.kind {
        FileKind::Dir => FileType::Directory,
        _ => FileType::RegularFile,
    };
    FileAttr {
        ino: INodeNo(a.ino.0),
        size: a.size,
        blocks: a.blocks.saturating_mul(8),
        atime: a.atime,
        mtime: a.mtime,
        ctime: a.ctime,
        crtime: a.ctime,
        kind,
        perm: (a.mode & 0o7777) as u16,
        nlink: a.nlink,
        uid: a.uid,
        gid: a.gid,
        rdev: 0,
        blksize: 4096,
        flags: 0,
    }
}

/// A time `SETATTR` asked for. fuser 0.18 turns a time before 1970 with a fractional
/// second into one a second too early (it subtracts the nanoseconds from the negative
/// seconds instead of adding them): undone here, so `touch -d 1969-...` stores what
/// was asked.
fn time(t: TimeOrNow) -> SystemTime {
    match t {
        TimeOrNow::SpecificTime(t) => fix_pre_epoch(t),
        TimeOrNow::Now => SystemTime::now(),
    }
}

/// Undoes fuser's pre-1970 error: it built `t` as `EPOCH - (secs + nsec)` from the
/// kernel's `(-secs, nsec)`, which means `EPOCH - secs + nsec`.
fn fix_pre_epoch(t: SystemTime) -> SystemTime {
    match std::time::UNIX_EPOCH.duration_since(t) {
        Ok(before) if before.subsec_nanos() != 0 => {
            let secs = Duration::from_secs(before.as_secs());
            let nanos = Duration::from_nanos(u64::from(before.subsec_nanos()));
            std::time::UNIX_EPOCH - secs + nanos
        }
        _ => t,
    }
}

/// One `readdir` listing, taken at `OPENDIR`: `(node, kind, name)`, with `.` and
/// `..` first.
type Listing = Vec<(INodeNo, FileType, String)>;

/// The FUSE server: TestFs behind [`fuser::Filesystem`]. See the
/// [module docs](self) for which request becomes which call.
pub struct DaxFuse {
    fs: Arc<TestFs>,
    cache: CacheMode,
    /// Open files (`OPEN`/`CREATE` to `RELEASE`), as a kernel `struct file`: the
    /// inode handle each file handle reads and writes through, and TestFs's open
    /// file, which keeps an unlinked file until `RELEASE` and carries the file's
    /// writeback-error cursor for `FSYNC`. Sharded by handle, so that READs and
    /// WRITEs of different files share no lock (the project's rule: no process-wide
    /// lock on the read or write path).
    files: [RwLock<HashMap<u64, OpenFile>>; FILE_SHARDS],
    /// Open directories: the listing taken at `OPENDIR`, so offsets stay stable.
    dirs: Mutex<HashMap<u64, Arc<Listing>>>,
    next_fh: AtomicU64,
}

impl std::fmt::Debug for DaxFuse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DaxFuse")
            .field("cache", &self.cache)
            .field(
                "open_files",
                &self.files.iter().map(|s| s.read().len()).sum::<usize>(),
            )
            .finish_non_exhaustive()
    }
}

/// One open file of [`DaxFuse`].
struct OpenFile {
    inode: TestInode,
    /// Shared so that `FSYNC` can use it without holding the shard's lock.
    file: Arc<OpenHandle>,
}

/// Shards of the open-file table (handles are handed out in sequence, so `fh %
/// FILE_SHARDS` spreads them evenly).
const FILE_SHARDS: usize = 64;

thread_local! {
    /// Each worker's read buffer, kept between requests (a fresh 1 MiB buffer per
    /// READ would cost page faults every time).
    static READ_BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

impl DaxFuse {
    /// A server for `fs` with the given cache mode.
    pub fn new(fs: Arc<TestFs>, cache: CacheMode) -> Self {
        DaxFuse {
            fs,
            cache,
            files: std::array::from_fn(|_| RwLock::new(HashMap::new())),
            dirs: Mutex::new(HashMap::new()),
            next_fh: AtomicU64::new(1),
        }
    }

    /// The flags every `OPEN`/`CREATE` reply carries, by cache mode.
    fn open_flags(&self) -> FopenFlags {
        match self.cache {
            CacheMode::Direct => {
                FopenFlags::FOPEN_DIRECT_IO | FopenFlags::FOPEN_PARALLEL_DIRECT_WRITES
            }
            CacheMode::Page | CacheMode::Writeback => FopenFlags::FOPEN_KEEP_CACHE,
        }
    }

    /// The open-file shard of handle `fh`.
    fn shard(&self, fh: u64) -> &RwLock<HashMap<u64, OpenFile>> {
        &self.files[(fh % FILE_SHARDS as u64) as usize]
    }

    /// Opens inode `ino` ([`TestFs::open_file`], [`TestFs::inode`]) under a new file
    /// handle.
    fn open_file(&self, ino: Ino) -> Result<FileHandle, DaxError> {
        let file = self.fs.open_file(ino)?;
        let inode = self.fs.inode(ino)?;
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        let file = Arc::new(file);
        self.shard(fh).write().insert(fh, OpenFile { inode, file });
        Ok(FileHandle(fh))
    }

    /// The inode handle of an open file; a handle the kernel did not get from us (it
    /// never sends one) falls back to a lookup by number.
    fn file(&self, node: INodeNo, fh: FileHandle) -> Result<TestInode, DaxError> {
        if let Some(open) = self.shard(fh.0).read().get(&fh.0) {
            return Ok(open.inode.clone());
        }
        self.fs.inode(ino(node))
    }

    fn entry(&self, ino: Ino, reply: ReplyEntry) {
        match self.fs.getattr(ino) {
            Ok(a) => reply.entry(&TTL, &file_attr(&a), Generation(0)),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn listing(&self, dir: Ino) -> Result<Listing, DaxError> {
        let parent = self.fs.parent(dir)?;
        let mut out: Listing = vec![
            (INodeNo(dir.0), FileType::Directory, ".".into()),
            (INodeNo(parent.0), FileType::Directory, "..".into()),
        ];
        for e in self.fs.readdir(dir)? {
            let kind = match e.kind {
                FileKind::Dir => FileType::Directory,
                _ => FileType::RegularFile,
            };
            out.push((INodeNo(e.ino.0), kind, e.name));
        }
        Ok(out)
    }
}

/// `Perm` for a new inode: the mode less the umask, owned by the caller.
fn perm(req: &Request, mode: u32, umask: u32) -> Perm {
    Perm {
        mode: mode & !umask & 0o7777,
        uid: req.uid(),
        gid: req.gid(),
    }
}

impl Filesystem for DaxFuse {
    /// `INIT`: 1 MiB reads and writes; in `direct` mode, `mmap` allowed on direct-I/O
    /// files (`FUSE_DIRECT_IO_ALLOW_MMAP`, through the page cache); in `writeback`
    /// mode, `FUSE_WRITEBACK_CACHE`.
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        if let Err(max) = config.set_max_write(MAX_IO) {
            let _ = config.set_max_write(max);
        }
        if let Err(max) = config.set_max_readahead(MAX_IO) {
            let _ = config.set_max_readahead(max);
        }
        let want = match self.cache {
            CacheMode::Direct => InitFlags::FUSE_DIRECT_IO_ALLOW_MMAP,
            CacheMode::Page => InitFlags::empty(),
            CacheMode::Writeback => InitFlags::FUSE_WRITEBACK_CACHE,
        };
        let _ = config.add_capabilities(want & config.capabilities());
        if self.cache == CacheMode::Writeback
            && !config
                .capabilities()
                .contains(InitFlags::FUSE_WRITEBACK_CACHE)
        {
            return Err(std::io::Error::other(
                "the kernel does not offer FUSE_WRITEBACK_CACHE",
            ));
        }
        Ok(())
    }

    /// `LOOKUP`: `lookup_in` then `getattr`.
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let name = match name_str(name, false) {
            Ok(n) => n,
            Err(e) => return reply.error(e),
        };
        match self.fs.lookup_in(ino(parent), name) {
            Ok(i) => self.entry(i, reply),
            Err(e) => reply.error(errno(&e)),
        }
    }

    /// `FORGET`: nothing to drop. The server keeps no per-lookup state, and TestFs
    /// never reuses an inode number, so a stale number finds nothing (`ENOENT`).
    fn forget(&self, _req: &Request, _ino: INodeNo, _nlookup: u64) {}

    /// `GETATTR`: `getattr`.
    fn getattr(&self, _req: &Request, node: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.fs.getattr(ino(node)) {
            Ok(a) => reply.attr(&TTL, &file_attr(&a)),
            Err(e) => reply.error(errno(&e)),
        }
    }

    /// `SETATTR`: `setattr` (size through [`TestFs::truncate`]; mode, owner, times).
    /// `ctime` is not settable (the filesystem sets it), as with `utimensat(2)`.
    fn setattr(
        &self,
        _req: &Request,
        node: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let mut set = SetAttr::new();
        if let Some(m) = mode {
            set = set.mode(m & 0o7777);
        }
        if let Some(u) = uid {
            set = set.uid(u);
        }
        if let Some(g) = gid {
            set = set.gid(g);
        }
        if let Some(s) = size {
            set = set.size(s);
        }
        if let Some(t) = atime {
            set = set.atime(time(t));
        }
        if let Some(t) = mtime {
            set = set.mtime(time(t));
        }
        match self.fs.setattr(ino(node), &set) {
            Ok(a) => reply.attr(&TTL, &file_attr(&a)),
            Err(e) => reply.error(errno(&e)),
        }
    }

    /// `MKNOD`: regular files only (`create_in`); other types get `EPERM`, Linux's
    /// answer for a filesystem without them.
    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        let name = match new_file_name(name, mode) {
            Ok(n) => n,
            Err(e) => return reply.error(e),
        };
        match self.fs.create_in(ino(parent), name, perm(req, mode, umask)) {
            Ok(i) => self.entry(i, reply),
            Err(e) => reply.error(errno(&e)),
        }
    }

    /// `MKDIR`: `mkdir`.
    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let name = match name_str(name, true) {
            Ok(n) => n,
            Err(e) => return reply.error(e),
        };
        match self.fs.mkdir(ino(parent), name, perm(req, mode, umask)) {
            Ok(i) => self.entry(i, reply),
            Err(e) => reply.error(errno(&e)),
        }
    }

    /// `UNLINK`: `unlink_in`. A file still open (an `OPEN` without its `RELEASE`)
    /// lives on without a name until its last `RELEASE`, as on any Linux filesystem:
    /// reads, writes, `fstat` and `fsync` through it work.
    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let name = match name_str(name, false) {
            Ok(n) => n,
            Err(e) => return reply.error(e),
        };
        match self.fs.unlink_in(ino(parent), name) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(&e)),
        }
    }

    /// `RMDIR`: `rmdir`.
    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let name = match name_str(name, false) {
            Ok(n) => n,
            Err(e) => return reply.error(e),
        };
        match self.fs.rmdir(ino(parent), name) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(&e)),
        }
    }

    /// `RENAME` (`renameat2`): `rename`, with `RENAME_NOREPLACE` or `RENAME_EXCHANGE`;
    /// both at once or `RENAME_WHITEOUT` get `EINVAL`, as Linux answers.
    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: fuser::RenameFlags,
        reply: ReplyEmpty,
    ) {
        let (name, newname) = match (name_str(name, false), name_str(newname, true)) {
            (Ok(a), Ok(b)) => (a, b),
            (Err(e), _) | (_, Err(e)) => return reply.error(e),
        };
        let noreplace = flags.contains(fuser::RenameFlags::RENAME_NOREPLACE);
        let exchange = flags.contains(fuser::RenameFlags::RENAME_EXCHANGE);
        let known = fuser::RenameFlags::RENAME_NOREPLACE | fuser::RenameFlags::RENAME_EXCHANGE;
        if (noreplace && exchange) || !(flags - known).is_empty() {
            return reply.error(Errno::EINVAL);
        }
        let f = if noreplace {
            RenameFlags::NOREPLACE
        } else if exchange {
            RenameFlags::EXCHANGE
        } else {
            RenameFlags::empty()
        };
        match self
            .fs
            .rename(ino(parent), name, ino(newparent), newname, f)
        {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(&e)),
        }
    }

    /// `LINK`: `link`.
    fn link(
        &self,
        _req: &Request,
        node: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        let newname = match name_str(newname, true) {
            Ok(n) => n,
            Err(e) => return reply.error(e),
        };
        match self.fs.link(ino(node), ino(newparent), newname) {
            Ok(()) => self.entry(ino(node), reply),
            Err(e) => reply.error(errno(&e)),
        }
    }

    /// `OPEN`: an inode handle ([`TestFs::inode`]) under a new file handle, with the
    /// cache mode's flags (`FOPEN_DIRECT_IO` by default). `O_TRUNC` arrives as a
    /// separate `SETATTR`.
    fn open(&self, _req: &Request, node: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        if ino(node) == ROOT_INO {
            return reply.error(Errno::EISDIR);
        }
        match self.open_file(ino(node)) {
            Ok(fh) => reply.opened(fh, self.open_flags()),
            Err(e) => reply.error(errno(&e)),
        }
    }

    /// `READ`: [`TestFs::pread`] on the open inode, which is `dax_iomap_rw` (reading)
    /// under the inode's I/O lock.
    fn read(
        &self,
        _req: &Request,
        node: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let inode = match self.file(node, fh) {
            Ok(i) => i,
            Err(e) => return reply.error(errno(&e)),
        };
        READ_BUF.with_borrow_mut(|buf| {
            let want = size as usize;
            if buf.len() < want {
                buf.resize(want, 0);
            }
            let direct = self.cache == CacheMode::Direct;
            let read = read_request(&self.fs, &inode, offset, &mut buf[..want], direct);
            match read {
                Ok(n) => reply.data(&buf[..n]),
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    /// `WRITE`: [`TestFs::pwrite`] on the open inode, which is `dax_iomap_rw`
    /// (writing) under the inode's I/O lock: the bytes are in device memory, written
    /// with non-temporal stores, when the reply goes out.
    fn write(
        &self,
        _req: &Request,
        node: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let inode = match self.file(node, fh) {
            Ok(i) => i,
            Err(e) => return reply.error(errno(&e)),
        };
        match self.fs.pwrite(&inode, offset, data) {
            Ok(n) => reply.written(n as u32),
            Err(e) => reply.error(errno(&e)),
        }
    }

    /// `FLUSH` (each `close(2)`): nothing is buffered here, every WRITE reached device
    /// memory before its reply. Durability is `FSYNC`'s job.
    fn flush(
        &self,
        _req: &Request,
        _node: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    /// `RELEASE` (last close): drops the inode handle.
    fn release(
        &self,
        _req: &Request,
        _node: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.shard(fh.0).write().remove(&fh.0);
        reply.ok();
    }

    /// `FSYNC`: [`TestFs::fsync_file`] on the open file, a checkpoint of the whole
    /// filesystem (like a journal commit): the file's data and all metadata are
    /// durable on return, and a writeback error is reported once per open file (the
    /// kernel's errseq rules). A handle the kernel did not get from us falls back to
    /// [`TestFs::fsync`].
    fn fsync(
        &self,
        _req: &Request,
        node: INodeNo,
        fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        let open = self.shard(fh.0).read().get(&fh.0).map(|o| o.file.clone());
        let r = match open {
            Some(file) => self.fs.fsync_file(&file),
            None => self.fs.fsync(ino(node)),
        };
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(&e)),
        }
    }

    /// `OPENDIR`: the listing (`parent` and `readdir`), kept for this handle so that
    /// `READDIR` offsets mean the same entries however the directory changes.
    fn opendir(&self, _req: &Request, node: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.listing(ino(node)) {
            Ok(l) => {
                let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
                self.dirs.lock().insert(fh, Arc::new(l));
                reply.opened(FileHandle(fh), FopenFlags::empty());
            }
            Err(e) => reply.error(errno(&e)),
        }
    }

    /// `READDIR`: entries of the listing from `offset` (entry `i` has offset `i + 1`).
    /// Offset 0 is a new pass (`opendir`, or `rewinddir`, which glibc sends as a
    /// seek to 0): the listing is taken again, so it shows the directory as it is
    /// now, as POSIX asks of `rewinddir`.
    fn readdir(
        &self,
        _req: &Request,
        node: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let open = self.dirs.lock().get(&fh.0).cloned();
        let listing = match open {
            Some(l) if offset > 0 => l,
            _ => match self.listing(ino(node)) {
                Ok(l) => {
                    let l = Arc::new(l);
                    if let Some(slot) = self.dirs.lock().get_mut(&fh.0) {
                        *slot = l.clone();
                    }
                    l
                }
                Err(e) => return reply.error(errno(&e)),
            },
        };
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        for (i, (n, kind, name)) in listing.iter().enumerate().skip(start) {
            if reply.add(*n, i as u64 + 1, *kind, name) {
                break;
            }
        }
        reply.ok();
    }

    /// `RELEASEDIR`: drops the listing.
    fn releasedir(
        &self,
        _req: &Request,
        _node: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        self.dirs.lock().remove(&fh.0);
        reply.ok();
    }

    /// `FSYNCDIR`: [`TestFs::sync`] (names are metadata, durable at a checkpoint).
    fn fsyncdir(
        &self,
        _req: &Request,
        _node: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        match self.fs.sync() {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(&e)),
        }
    }

    /// `STATFS`: [`TestFs::statfs`]. Blocks freed since the last checkpoint ("busy")
    /// count as free: TestFs checkpoints and takes them when it runs short. Inodes in
    /// use are files and directories; free inodes are how many more names the
    /// checkpoint slot has room for.
    fn statfs(&self, _req: &Request, _node: INodeNo, reply: ReplyStatfs) {
        let s = self.fs.statfs();
        let free = s.free + s.busy;
        reply.statfs(
            s.blocks,
            free,
            free,
            s.files + s.dirs + s.files_free,
            s.files_free,
            s.block_size as u32,
            fsdax::testing::MAX_NAME_LEN as u32,
            s.block_size as u32,
        );
    }

    /// `CREATE` (`open(O_CREAT)` of a new name): `create_in`, then opened as `OPEN`.
    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        let name = match new_file_name(name, mode) {
            Ok(n) => n,
            Err(e) => return reply.error(e),
        };
        let made = self
            .fs
            .create_in(ino(parent), name, perm(req, mode, umask))
            .and_then(|i| Ok((self.fs.getattr(i)?, self.open_file(i)?)));
        match made {
            Ok((a, fh)) => {
                reply.created(&TTL, &file_attr(&a), Generation(0), fh, self.open_flags())
            }
            Err(e) => reply.error(errno(&e)),
        }
    }

    /// `FALLOCATE`: [`TestFs::fallocate`] with the mode bits as they are
    /// (`FALLOC_FL_*` and [`FallocMode`] share values): 0 allocates, `KEEP_SIZE`,
    /// `PUNCH_HOLE | KEEP_SIZE`, `ZERO_RANGE`; TestFs answers `EOPNOTSUPP` for what it
    /// does not do. (The kernel's FUSE client itself refuses modes it does not
    /// forward, also with `EOPNOTSUPP`.)
    fn fallocate(
        &self,
        _req: &Request,
        node: INodeNo,
        _fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        let mode = FallocMode::from_bits_retain(mode as u32);
        match self.fs.fallocate(ino(node), mode, offset, length) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(&e)),
        }
    }

    /// `LSEEK` with `SEEK_DATA` or `SEEK_HOLE` (the kernel answers the other whences
    /// itself): [`TestFs::seek_data`] / [`TestFs::seek_hole`], `ENXIO` at or past EOF.
    fn lseek(
        &self,
        _req: &Request,
        node: INodeNo,
        _fh: FileHandle,
        offset: i64,
        whence: i32,
        reply: ReplyLseek,
    ) {
        let r = match whence {
            libc::SEEK_DATA => self.fs.seek_data(ino(node), offset),
            libc::SEEK_HOLE => self.fs.seek_hole(ino(node), offset),
            _ => return reply.error(Errno::EINVAL),
        };
        match r.and_then(|p| {
            i64::try_from(p).map_err(|_| DaxError::Overflow {
                what: "seek result past i64::MAX",
            })
        }) {
            Ok(p) => reply.offset(p),
            Err(e) => reply.error(errno(&e)),
        }
    }
}

/// One `READ` request: [`TestFs::pread`] of `buf.len()` bytes at `offset`.
///
/// `dax_iomap_rw` stops short when an error (poison, `EIO`) follows some progress.
/// With direct I/O (`FOPEN_DIRECT_IO`) the kernel passes a short `READ` on as a short
/// `read(2)`, which is what `dax_iomap_rw` answers a program in the kernel too. Through
/// the page cache the kernel takes a short `READ` for end of file: it fills the rest
/// of the page with zeros and shrinks its idea of the size. So there this reads on
/// until the buffer is full or at end of file, and an error after a partial read is
/// the answer (never zeros in place of data it could not read).
fn read_request(
    fs: &TestFs,
    inode: &TestInode,
    offset: u64,
    buf: &mut [u8],
    direct: bool,
) -> Result<usize, DaxError> {
    let mut done = 0;
    loop {
        match fs.pread(inode, offset + done as u64, &mut buf[done..]) {
            Ok(0) => return Ok(done),
            Ok(n) => {
                done += n;
                if done == buf.len() || direct {
                    return Ok(done);
                }
            }
            // After progress (not direct): the error, never a short count the kernel
            // would take for end of file.
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use fsdax::testing::{BLOCK_SIZE, MemDevice};

    use super::*;

    /// A 64 KiB file of 0xAB in two extents, blocks 0-2 and 3-15, with a poisoned
    /// sector in block 3; its inode. (The device refuses a whole extent with poison
    /// in it, as pmem's `direct_access` does: a read stops short only at an extent
    /// boundary.)
    fn poisoned_file() -> (TestFs, TestInode) {
        let dev = MemDevice::builder().size(16 << 20).build().unwrap();
        let fs = TestFs::mkfs(dev.clone()).unwrap();
        let ino = fs.create("f").unwrap();
        assert_eq!(fs.write(ino, 0, &[0xAB; 3 * 4096]).unwrap(), 3 * 4096);
        let other = fs.create("g").unwrap();
        fs.write(other, 0, &[1; 4096]).unwrap();
        assert_eq!(
            fs.write(ino, 3 * 4096, &[0xAB; 13 * 4096]).unwrap(),
            13 * 4096
        );
        let e = fs.extents(ino).unwrap();
        assert!(e.iter().any(|e| e.file_block == 3), "{e:?}");
        let ext = e.iter().find(|e| e.file_block == 3).unwrap();
        dev.driver()
            .poison(ext.dev_block * BLOCK_SIZE as u64 + 512, 512)
            .unwrap();
        let inode = fs.inode(ino).unwrap();
        (fs, inode)
    }

    #[test]
    fn a_direct_read_stops_short_at_poison() {
        let (fs, inode) = poisoned_file();
        let mut buf = vec![0; 32 << 10];
        let n = read_request(&fs, &inode, 0, &mut buf, true).unwrap();
        // The first extent, then nothing of the poisoned one.
        assert_eq!(n, 3 * 4096);
        assert!(buf[..n].iter().all(|&b| b == 0xAB));
        // Starting at the poison: the error itself.
        let e = read_request(&fs, &inode, n as u64, &mut buf, true).unwrap_err();
        assert_eq!(e.errno(), libc::EIO, "{e}");
    }

    #[test]
    fn a_cached_read_answers_the_error_not_zeros() {
        let (fs, inode) = poisoned_file();
        let mut buf = vec![0; 32 << 10];
        let e = read_request(&fs, &inode, 0, &mut buf, false).unwrap_err();
        assert_eq!(e.errno(), libc::EIO, "{e}");
        // A read that ends before the poison is whole; one past EOF is short.
        assert_eq!(
            read_request(&fs, &inode, 0, &mut buf[..3 * 4096], false).unwrap(),
            3 * 4096
        );
        let n = read_request(&fs, &inode, (64 << 10) - 100, &mut buf, false).unwrap();
        assert_eq!(n, 100);
    }
}
