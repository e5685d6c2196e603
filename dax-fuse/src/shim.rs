//! A stand-in for TestFs's namespace and attribute API, over today's flat TestFs.
//!
//! TestFs is getting directories and attributes with an agreed API: `ROOT_INO`,
//! [`FileKind`], [`Perm`], [`Attr`], [`SetAttr`], [`DirEntry`], [`RenameFlags`], and
//! the `TestFs` methods of [`NsApi`] (`getattr`, `setattr`, `lookup_in`, `create_in`,
//! `mkdir`, `unlink_in`, `rmdir`, `readdir`, `parent`, `rename`, `link`). Until it
//! lands, this module gives the FUSE server those exact names and signatures over
//! the flat namespace TestFs has today (`create`, `lookup`, `list`, `unlink`, `stat`,
//! `truncate`), so that the server is written once. When the real API lands this file
//! is deleted and `use crate::shim::...` becomes `use fsdax::testing::...` (the
//! [`NsApi`] import goes: the methods are inherent then).
//!
//! What the stand-in does:
//!
//! * **One directory, the root** ([`ROOT_INO`]), holding every file. `lookup_in`,
//!   `create_in`, `unlink_in`, `readdir` and `parent` work on it; a file inode given
//!   as a parent is `ENOTDIR`.
//! * **Inode 1 is the root.** Today's TestFs numbers files from 1, so when `create_in`
//!   gets inode 1 for a new file it unlinks it and creates the file again, which gives
//!   it inode 2 (TestFs never reuses a number). An image that already has a file with
//!   inode 1 (not made by `daxfs-fuse`) hides that file: `lookup_in` answers `EUCLEAN`
//!   for its name and `readdir` leaves it out.
//! * **Synthesized attributes.** Size and blocks come from `TestFs::stat`. Mode, owner
//!   and times live in memory only, in this process: a file created through
//!   `create_in` keeps its [`Perm`] and creation time, `setattr` changes them until
//!   the process exits; a file from an earlier mount reads as mode 0644 (the root
//!   0755), owned by this process's effective uid and gid, with the time this process
//!   first asked as its times. Writes do not move mtime (the stand-in does not see
//!   them). `setattr` with a size truncates for real (`TestFs::truncate`).
//! * **Not supported:** `mkdir` and `link` answer `EPERM` (what Linux answers for a
//!   filesystem without directories or hard links), `rename` answers `ENOSYS`, and
//!   `rmdir` answers `ENOTDIR` for a file, `EBUSY` for the root, `ENOENT` otherwise.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use fsdax::device::DaxError;
use fsdax::testing::{Ino, TestFs};
use parking_lot::Mutex;

/// The root directory's inode number.
pub const ROOT_INO: Ino = Ino(1);

/// What kind of inode an [`Attr`] or [`DirEntry`] describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FileKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
}

/// Who creates and with what permissions (`mode` = permission bits, 0o7777 mask).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Perm {
    /// Permission bits (`S_IRWXU` ..., with setuid, setgid and sticky).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
}

/// What `getattr` returns (`struct stat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Attr {
    /// Inode number (`st_ino`).
    pub ino: Ino,
    /// File or directory.
    pub kind: FileKind,
    /// Permission bits (`st_mode & 0o7777`).
    pub mode: u32,
    /// Owner (`st_uid`).
    pub uid: u32,
    /// Group (`st_gid`).
    pub gid: u32,
    /// Links (`st_nlink`).
    pub nlink: u32,
    /// Size in bytes (`st_size`).
    pub size: u64,
    /// Allocated 4 KiB blocks (`st_blocks / 8`).
    pub blocks: u64,
    /// Last access (`st_atime`).
    pub atime: SystemTime,
    /// Last data change (`st_mtime`).
    pub mtime: SystemTime,
    /// Last inode change (`st_ctime`).
    pub ctime: SystemTime,
}

/// What `setattr` changes; `None` leaves a field alone. `size` truncates or extends
/// (files only; `EISDIR` on a directory).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SetAttr {
    /// New permission bits.
    pub mode: Option<u32>,
    /// New owner.
    pub uid: Option<u32>,
    /// New group.
    pub gid: Option<u32>,
    /// New size (`truncate(2)`).
    pub size: Option<u64>,
    /// New access time.
    pub atime: Option<SystemTime>,
    /// New modification time.
    pub mtime: Option<SystemTime>,
}

impl SetAttr {
    /// Changes nothing.
    pub fn new() -> Self {
        SetAttr::default()
    }

    /// Sets the permission bits.
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = Some(mode);
        self
    }

    /// Sets the owner.
    pub fn uid(mut self, uid: u32) -> Self {
        self.uid = Some(uid);
        self
    }

    /// Sets the group.
    pub fn gid(mut self, gid: u32) -> Self {
        self.gid = Some(gid);
        self
    }

    /// Truncates or extends to `size` bytes.
    pub fn size(mut self, size: u64) -> Self {
        self.size = Some(size);
        self
    }

    /// Sets the access time.
    pub fn atime(mut self, t: SystemTime) -> Self {
        self.atime = Some(t);
        self
    }

    /// Sets the modification time.
    pub fn mtime(mut self, t: SystemTime) -> Self {
        self.mtime = Some(t);
        self
    }
}

/// One entry of a directory, as `readdir` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    /// The name in its directory.
    pub name: String,
    /// The inode it names.
    pub ino: Ino,
    /// File or directory.
    pub kind: FileKind,
}

/// Flags of `rename` (`renameat2(2)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RenameFlags(u32);

impl RenameFlags {
    /// `RENAME_NOREPLACE`: fail with `EEXIST` rather than replace the target.
    pub const NOREPLACE: RenameFlags = RenameFlags(libc::RENAME_NOREPLACE);
    /// `RENAME_EXCHANGE`: swap source and target.
    pub const EXCHANGE: RenameFlags = RenameFlags(libc::RENAME_EXCHANGE);

    /// No flags: a plain `rename(2)`.
    pub fn empty() -> Self {
        RenameFlags(0)
    }
}

/// The namespace and attribute calls of the agreed TestFs API, for `TestFs` (see the
/// [module docs](self) for what the stand-in does). The real methods will be
/// inherent `TestFs` methods with these signatures.
pub trait NsApi {
    /// Attributes of `ino` (`getattr`).
    fn getattr(&self, ino: Ino) -> Result<Attr, DaxError>;
    /// Changes attributes of `ino` and returns the new ones (`setattr`).
    fn setattr(&self, ino: Ino, set: &SetAttr) -> Result<Attr, DaxError>;
    /// The inode named `name` in directory `parent` (`lookup`).
    fn lookup_in(&self, parent: Ino, name: &str) -> Result<Ino, DaxError>;
    /// Creates an empty file `name` in `parent` (`create`, `O_CREAT | O_EXCL`).
    fn create_in(&self, parent: Ino, name: &str, perm: Perm) -> Result<Ino, DaxError>;
    /// Creates a directory (`mkdir`).
    fn mkdir(&self, parent: Ino, name: &str, perm: Perm) -> Result<Ino, DaxError>;
    /// Removes the file `name` from `parent` (`unlink`).
    fn unlink_in(&self, parent: Ino, name: &str) -> Result<(), DaxError>;
    /// Removes the empty directory `name` from `parent` (`rmdir`).
    fn rmdir(&self, parent: Ino, name: &str) -> Result<(), DaxError>;
    /// Entries of `dir`, sorted by name, without `.` and `..` (`readdir`).
    fn readdir(&self, dir: Ino) -> Result<Vec<DirEntry>, DaxError>;
    /// The parent of a directory (the root is its own parent).
    fn parent(&self, dir: Ino) -> Result<Ino, DaxError>;
    /// Renames `parent/name` to `new_parent/new_name` (`renameat2`).
    fn rename(
        &self,
        parent: Ino,
        name: &str,
        new_parent: Ino,
        new_name: &str,
        flags: RenameFlags,
    ) -> Result<(), DaxError>;
    /// A hard link to file `ino` as `new_parent/new_name` (`link`).
    fn link(&self, ino: Ino, new_parent: Ino, new_name: &str) -> Result<(), DaxError>;
}

/// Mode, owner and times the stand-in keeps in memory for one inode.
#[derive(Debug, Clone, Copy)]
struct Side {
    mode: u32,
    uid: u32,
    gid: u32,
    atime: SystemTime,
    mtime: SystemTime,
    ctime: SystemTime,
}

/// The in-memory attributes, per filesystem (keyed by its device's address, which is
/// unique among live filesystems of this process) and inode.
type SideTable = HashMap<(usize, u64), Side>;

fn table() -> &'static Mutex<SideTable> {
    static TABLE: OnceLock<Mutex<SideTable>> = OnceLock::new();
    TABLE.get_or_init(|| Mutex::new(HashMap::new()))
}

fn fs_key(fs: &TestFs) -> usize {
    Arc::as_ptr(fs.device()).cast::<()>() as usize
}

/// What an inode with no in-memory attributes reads as.
fn default_side(dir: bool) -> Side {
    static FIRST: OnceLock<SystemTime> = OnceLock::new();
    let t = *FIRST.get_or_init(SystemTime::now);
    Side {
        mode: if dir { 0o755 } else { 0o644 },
        uid: nix::unistd::geteuid().as_raw(),
        gid: nix::unistd::getegid().as_raw(),
        atime: t,
        mtime: t,
        ctime: t,
    }
}

fn side(fs: &TestFs, ino: Ino) -> Side {
    table()
        .lock()
        .get(&(fs_key(fs), ino.0))
        .copied()
        .unwrap_or_else(|| default_side(ino == ROOT_INO))
}

/// Sets the root's mtime and ctime to now (a name was added or removed).
fn touch_root(fs: &TestFs) {
    let now = SystemTime::now();
    let mut t = table().lock();
    let e = t
        .entry((fs_key(fs), ROOT_INO.0))
        .or_insert_with(|| default_side(true));
    e.mtime = now;
    e.ctime = now;
}

/// `Ok` for the root, `ENOTDIR` for a file, `ENOENT` for no inode.
fn check_dir(fs: &TestFs, dir: Ino) -> Result<(), DaxError> {
    if dir == ROOT_INO {
        return Ok(());
    }
    fs.stat(dir)?;
    Err(DaxError::NotDirectory {
        what: "only the root is a directory in today's flat TestFs",
    })
}

fn ino1_error() -> DaxError {
    DaxError::Corrupted {
        what: "a file has inode 1, which the namespace API reserves for the root",
    }
}

impl NsApi for TestFs {
    fn getattr(&self, ino: Ino) -> Result<Attr, DaxError> {
        let s = side(self, ino);
        let (kind, nlink, size, blocks) = if ino == ROOT_INO {
            (FileKind::Dir, 2, 0, 0)
        } else {
            let st = self.stat(ino)?;
            (FileKind::File, 1, st.size, st.blocks)
        };
        Ok(Attr {
            ino,
            kind,
            mode: s.mode,
            uid: s.uid,
            gid: s.gid,
            nlink,
            size,
            blocks,
            atime: s.atime,
            mtime: s.mtime,
            ctime: s.ctime,
        })
    }

    fn setattr(&self, ino: Ino, set: &SetAttr) -> Result<Attr, DaxError> {
        let is_dir = ino == ROOT_INO;
        if !is_dir {
            self.stat(ino)?;
        }
        if let Some(size) = set.size {
            if is_dir {
                return Err(DaxError::IsDirectory {
                    what: "cannot set the size of a directory",
                });
            }
            self.truncate(ino, size)?;
        }
        let now = SystemTime::now();
        {
            let mut t = table().lock();
            let e = t
                .entry((fs_key(self), ino.0))
                .or_insert_with(|| default_side(is_dir));
            if let Some(m) = set.mode {
                e.mode = m & 0o7777;
            }
            if let Some(u) = set.uid {
                e.uid = u;
            }
            if let Some(g) = set.gid {
                e.gid = g;
            }
            if let Some(a) = set.atime {
                e.atime = a;
            }
            if let Some(m) = set.mtime {
                e.mtime = m;
            } else if set.size.is_some() {
                e.mtime = now;
            }
            if *set != SetAttr::default() {
                e.ctime = now;
            }
        }
        self.getattr(ino)
    }

    fn lookup_in(&self, parent: Ino, name: &str) -> Result<Ino, DaxError> {
        check_dir(self, parent)?;
        let ino = self.lookup(name)?;
        if ino == ROOT_INO {
            return Err(ino1_error());
        }
        Ok(ino)
    }

    fn create_in(&self, parent: Ino, name: &str, perm: Perm) -> Result<Ino, DaxError> {
        check_dir(self, parent)?;
        let mut ino = self.create(name)?;
        if ino == ROOT_INO {
            // Inode 1 is the root's: burn it and take the next number.
            self.unlink(name)?;
            ino = self.create(name)?;
        }
        let now = SystemTime::now();
        table().lock().insert(
            (fs_key(self), ino.0),
            Side {
                mode: perm.mode & 0o7777,
                uid: perm.uid,
                gid: perm.gid,
                atime: now,
                mtime: now,
                ctime: now,
            },
        );
        touch_root(self);
        Ok(ino)
    }

    fn mkdir(&self, parent: Ino, _name: &str, _perm: Perm) -> Result<Ino, DaxError> {
        check_dir(self, parent)?;
        Err(DaxError::NotPermitted {
            what: "today's flat TestFs has no directories",
        })
    }

    fn unlink_in(&self, parent: Ino, name: &str) -> Result<(), DaxError> {
        check_dir(self, parent)?;
        let ino = self.lookup(name)?;
        self.unlink(name)?;
        table().lock().remove(&(fs_key(self), ino.0));
        touch_root(self);
        Ok(())
    }

    fn rmdir(&self, parent: Ino, name: &str) -> Result<(), DaxError> {
        check_dir(self, parent)?;
        if name == "." || name == ".." {
            return Err(DaxError::Busy {
                what: "the root directory cannot be removed",
            });
        }
        self.lookup(name)?;
        Err(DaxError::NotDirectory {
            what: "rmdir of a file",
        })
    }

    fn readdir(&self, dir: Ino) -> Result<Vec<DirEntry>, DaxError> {
        check_dir(self, dir)?;
        Ok(self
            .list()
            .into_iter()
            .filter(|(_, ino)| *ino != ROOT_INO)
            .map(|(name, ino)| DirEntry {
                name,
                ino,
                kind: FileKind::File,
            })
            .collect())
    }

    fn parent(&self, dir: Ino) -> Result<Ino, DaxError> {
        check_dir(self, dir)?;
        Ok(ROOT_INO)
    }

    fn rename(
        &self,
        parent: Ino,
        _name: &str,
        new_parent: Ino,
        _new_name: &str,
        _flags: RenameFlags,
    ) -> Result<(), DaxError> {
        check_dir(self, parent)?;
        check_dir(self, new_parent)?;
        Err(DaxError::Os {
            errno: libc::ENOSYS,
            what: "today's flat TestFs cannot rename",
        })
    }

    fn link(&self, ino: Ino, new_parent: Ino, _new_name: &str) -> Result<(), DaxError> {
        check_dir(self, new_parent)?;
        if ino == ROOT_INO {
            return Err(DaxError::NotPermitted {
                what: "hard link to a directory",
            });
        }
        self.stat(ino)?;
        Err(DaxError::NotPermitted {
            what: "today's flat TestFs has no hard links",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fsdax::testing::MemDevice;

    fn fs() -> TestFs {
        TestFs::mkfs(MemDevice::builder().size(8 << 20).build().unwrap()).unwrap()
    }

    #[test]
    fn files_never_get_the_root_inode() {
        let fs = fs();
        let perm = Perm {
            mode: 0o600,
            uid: 7,
            gid: 8,
        };
        let a = fs.create_in(ROOT_INO, "a", perm).unwrap();
        assert_ne!(a, ROOT_INO);
        assert_eq!(fs.lookup_in(ROOT_INO, "a").unwrap(), a);
        let attr = fs.getattr(a).unwrap();
        assert_eq!(
            (attr.kind, attr.mode, attr.uid, attr.gid),
            (FileKind::File, 0o600, 7, 8)
        );
        assert_eq!(fs.getattr(ROOT_INO).unwrap().kind, FileKind::Dir);
        let names: Vec<_> = fs
            .readdir(ROOT_INO)
            .unwrap()
            .into_iter()
            .map(|e| e.name)
            .collect();
        assert_eq!(names, ["a"]);
    }

    #[test]
    fn errors_are_linux_errnos() {
        let fs = fs();
        let perm = Perm {
            mode: 0o644,
            uid: 0,
            gid: 0,
        };
        let a = fs.create_in(ROOT_INO, "a", perm).unwrap();
        fn errno<T>(r: Result<T, DaxError>) -> i32 {
            r.map(|_| ()).unwrap_err().errno()
        }
        assert_eq!(errno(fs.lookup_in(ROOT_INO, "b")), libc::ENOENT);
        assert_eq!(errno(fs.lookup_in(a, "b")), libc::ENOTDIR);
        assert_eq!(errno(fs.create_in(ROOT_INO, "a", perm)), libc::EEXIST);
        assert_eq!(errno(fs.mkdir(ROOT_INO, "d", perm)), libc::EPERM);
        assert_eq!(errno(fs.link(a, ROOT_INO, "b")), libc::EPERM);
        assert_eq!(errno(fs.rmdir(ROOT_INO, "a")), libc::ENOTDIR);
        assert_eq!(
            errno(fs.rename(ROOT_INO, "a", ROOT_INO, "b", RenameFlags::empty())),
            libc::ENOSYS
        );
        assert_eq!(
            errno(fs.setattr(ROOT_INO, &SetAttr::new().size(0))),
            libc::EISDIR
        );
        assert_eq!(
            fs.setattr(a, &SetAttr::new().size(5000)).unwrap().size,
            5000
        );
        fs.unlink_in(ROOT_INO, "a").unwrap();
        assert_eq!(errno(fs.getattr(a)), libc::ENOENT);
    }
}
