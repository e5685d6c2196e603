//! The types of TestFs's directory tree and inode attributes: [`ROOT_INO`],
//! [`FileKind`], [`Perm`], [`Attr`] (what `getattr` fills in, the kernel's
//! `generic_fillattr` into a `struct kstat`), [`SetAttr`] (a `struct iattr` for
//! `notify_change`), [`DirEntry`] (what `readdir` emits, `dir_emit`) and
//! [`RenameFlags`] (`renameat2`'s flags). The operations are in `namespace.rs` and
//! `setattr.rs`.
//!
//! Locks: none.

use std::time::SystemTime;

use super::state::Ino;

/// The root directory's inode number (ext2's `EXT2_ROOT_INO` is 2; TestFs's is 1).
/// Files and other directories are numbered from 2 up.
pub const ROOT_INO: Ino = Ino(super::ROOT);

/// The most names a file may have, and the most subdirectories plus two a directory
/// may have (`EXT4_LINK_MAX`): past it, `link`, `mkdir` and `rename` fail with
/// `EMLINK`.
pub const MAX_LINKS: u32 = 65000;

/// What an inode is (the `S_IFMT` part of `st_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FileKind {
    /// A regular file (`S_IFREG`, `DT_REG`).
    File,
    /// A directory (`S_IFDIR`, `DT_DIR`).
    Dir,
}

/// Who creates an inode and with what permissions: the `mode` argument of
/// `open(O_CREAT)`/`mkdir` after the umask, and the caller's fsuid and fsgid
/// (`inode_init_owner`). Only the permission bits of `mode` are kept (`0o7777`, the
/// kernel's `S_IALLUGO`); the kind comes from the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Perm {
    /// Permission bits: `rwx` for user, group and others, setuid, setgid, sticky.
    pub mode: u32,
    /// Owner (`i_uid`).
    pub uid: u32,
    /// Group (`i_gid`).
    pub gid: u32,
}

impl Perm {
    /// `mode` (masked to `0o7777`), owned by `uid`:`gid`.
    pub const fn new(mode: u32, uid: u32, gid: u32) -> Perm {
        Perm {
            mode: mode & 0o7777,
            uid,
            gid,
        }
    }

    /// `mode` owned by the calling process's real user and group (`getuid(2)`,
    /// `getgid(2)`): what the flat [`TestFs::create`](super::TestFs::create) uses with
    /// `0o644`, and mkfs with `0o755` for the root directory (as `mke2fs` makes the
    /// root directory its caller's).
    pub fn current(mode: u32) -> Perm {
        Perm::new(
            mode,
            rustix::process::getuid().as_raw(),
            rustix::process::getgid().as_raw(),
        )
    }
}

/// An inode's attributes, as [`TestFs::getattr`](super::TestFs::getattr) reports them
/// (`struct stat`, filled as the kernel's `generic_fillattr` fills a `struct kstat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Attr {
    /// The inode number (`st_ino`).
    pub ino: Ino,
    /// File or directory (`st_mode & S_IFMT`).
    pub kind: FileKind,
    /// Permission bits (`st_mode & 0o7777`).
    pub mode: u32,
    /// Owner (`st_uid`).
    pub uid: u32,
    /// Group (`st_gid`).
    pub gid: u32,
    /// Links (`st_nlink`): a file's names; for a directory 2 plus its subdirectories
    /// (its name, its `.`, and each child's `..`).
    pub nlink: u32,
    /// Size in bytes (`st_size`); 0 for a directory, whose entries live in the
    /// checkpoint rather than in data blocks.
    pub size: u64,
    /// Allocated [`BLOCK_SIZE`](super::BLOCK_SIZE) blocks, mapped or unwritten, shared
    /// ones counted in full (`st_blocks` is this times 8).
    pub blocks: u64,
    /// Last access (`st_atim`). TestFs does not update it on reads (`noatime`); only
    /// [`SetAttr::atime`] and creation set it.
    pub atime: SystemTime,
    /// Last change of the data (`st_mtim`): writes, truncate, fallocate, a reflink
    /// into the file; for a directory, a change of its entries.
    pub mtime: SystemTime,
    /// Last change of the inode (`st_ctim`): everything that changes mtime, and link
    /// count, owner, mode or time changes.
    pub ctime: SystemTime,
}

impl Attr {
    /// `st_mode`: the kind bits (`S_IFREG`, `S_IFDIR`) with the permission bits.
    pub fn st_mode(&self) -> u32 {
        let kind = match self.kind {
            FileKind::File => libc::S_IFREG,
            FileKind::Dir => libc::S_IFDIR,
        };
        kind | self.mode
    }
}

/// What [`TestFs::setattr`](super::TestFs::setattr) changes (a `struct iattr` for
/// `notify_change`); `None` leaves a field alone. `size` truncates or extends (files
/// only: `EISDIR` on a directory) and, like `truncate(2)`, sets mtime too. ctime is
/// set to the current time on any change.
///
/// ```
/// # use dax_testdev::SetAttr;
/// let chmod_and_empty = SetAttr::new().mode(0o600).size(0);
/// assert_eq!((chmod_and_empty.mode, chmod_and_empty.uid), (Some(0o600), None));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SetAttr {
    /// New permission bits (`chmod`, `ATTR_MODE`); bits outside `0o7777` are ignored.
    pub mode: Option<u32>,
    /// New owner (`chown`, `ATTR_UID`).
    pub uid: Option<u32>,
    /// New group (`chown`, `ATTR_GID`).
    pub gid: Option<u32>,
    /// New size (`truncate`, `ATTR_SIZE`).
    pub size: Option<u64>,
    /// New access time (`utimensat`, `ATTR_ATIME | ATTR_ATIME_SET`).
    pub atime: Option<SystemTime>,
    /// New modification time (`utimensat`, `ATTR_MTIME | ATTR_MTIME_SET`).
    pub mtime: Option<SystemTime>,
}

impl SetAttr {
    /// Changes nothing.
    pub fn new() -> SetAttr {
        SetAttr::default()
    }

    /// Sets the permission bits.
    pub fn mode(mut self, mode: u32) -> SetAttr {
        self.mode = Some(mode);
        self
    }

    /// Sets the owner.
    pub fn uid(mut self, uid: u32) -> SetAttr {
        self.uid = Some(uid);
        self
    }

    /// Sets the group.
    pub fn gid(mut self, gid: u32) -> SetAttr {
        self.gid = Some(gid);
        self
    }

    /// Truncates or extends to `size` bytes.
    pub fn size(mut self, size: u64) -> SetAttr {
        self.size = Some(size);
        self
    }

    /// Sets the access time.
    pub fn atime(mut self, t: SystemTime) -> SetAttr {
        self.atime = Some(t);
        self
    }

    /// Sets the modification time.
    pub fn mtime(mut self, t: SystemTime) -> SetAttr {
        self.mtime = Some(t);
        self
    }

    /// Whether this changes anything.
    pub fn is_empty(&self) -> bool {
        *self == SetAttr::default()
    }
}

/// One entry of a directory, as [`TestFs::readdir`](super::TestFs::readdir) lists it
/// (`dir_emit`: name, inode number, `DT_*` type).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    /// The name within the directory.
    pub name: String,
    /// The inode it names.
    pub ino: Ino,
    /// What that inode is.
    pub kind: FileKind,
}

bitflags::bitflags! {
    /// The flags of [`TestFs::rename`](super::TestFs::rename) (`renameat2(2)`, Linux
    /// values). Other bits, `RENAME_WHITEOUT` among them, are `EINVAL`.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct RenameFlags: u32 {
        /// `RENAME_NOREPLACE`: `EEXIST` rather than replace an existing target.
        const NOREPLACE = 1 << 0;
        /// `RENAME_EXCHANGE`: swap source and target atomically; both must exist.
        const EXCHANGE = 1 << 1;
    }
}
