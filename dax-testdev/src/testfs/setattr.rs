//! Inode attributes: [`TestFs::getattr`] (`vfs_getattr`, filled as
//! `generic_fillattr` fills a `struct kstat`) and [`TestFs::setattr`]
//! (`notify_change` → ext2's `ext2_setattr`: a size change through
//! [`TestFs::truncate`], then `setattr_copy` of mode, owner and times).
//!
//! Locks: getattr takes the metadata lock, under it the inode's extent lock shared
//! (for its block count) and its timestamp lock. setattr with a size takes what
//! truncate takes first (I/O and invalidate locks, then metadata and extent locks),
//! then the metadata lock and the timestamp lock for the rest; it is not atomic with
//! the truncate, as `ext2_setattr` is not either.

use dax_device::DaxError;

use super::attr::{Attr, FileKind, SetAttr};
use super::mount::TestFs;
use super::state::{Ino, InodeMeta, enoent};
use super::time::Timespec;

/// What `getattr` reports for `im` (`generic_fillattr`).
fn fill_attr(ino: Ino, im: &InodeMeta) -> Attr {
    let t = im.core.times();
    let (kind, size) = if im.is_dir() {
        (FileKind::Dir, 0)
    } else {
        (FileKind::File, im.core.size())
    };
    Attr {
        ino,
        kind,
        mode: im.mode,
        uid: im.uid,
        gid: im.gid,
        nlink: im.nlink,
        size,
        blocks: im.core.blocks.read().map.blocks(),
        atime: t.atime.system(),
        mtime: t.mtime.system(),
        ctime: t.ctime.system(),
    }
}

impl TestFs {
    /// The attributes of inode `ino`, file or directory (`stat(2)`, `vfs_getattr`,
    /// `generic_fillattr`). `ENOENT` for no such inode.
    ///
    /// ```
    /// # use dax_testdev::{FileKind, MemDevice, Perm, ROOT_INO, TestFs};
    /// # let fs = TestFs::mkfs(MemDevice::builder().size(8 << 20).build()?)?;
    /// let d = fs.mkdir(ROOT_INO, "d", Perm::new(0o750, 1000, 1000))?;
    /// let f = fs.create_in(d, "f", Perm::new(0o640, 1000, 1000))?;
    /// fs.write(f, 0, b"hello")?;
    /// let (da, fa) = (fs.getattr(d)?, fs.getattr(f)?);
    /// assert_eq!((da.kind, da.mode, da.nlink), (FileKind::Dir, 0o750, 2));
    /// assert_eq!((fa.kind, fa.size, fa.blocks, fa.uid), (FileKind::File, 5, 1, 1000));
    /// assert_eq!(fs.getattr(ROOT_INO)?.nlink, 3); // ".", its name, and d's ".."
    /// # Ok::<(), dax_device::DaxError>(())
    /// ```
    pub fn getattr(&self, ino: Ino) -> Result<Attr, DaxError> {
        self.state.check_mounted()?;
        let meta = self.state.meta.lock();
        let im = meta.inodes.get(&ino.0).ok_or_else(enoent)?;
        Ok(fill_attr(ino, im))
    }

    /// Changes the attributes `set` names (`notify_change`, ext2's `ext2_setattr`),
    /// and returns them all as [`TestFs::getattr`] would after.
    ///
    /// A size goes first, through [`TestFs::truncate`] (which stamps mtime and
    /// ctime); then mode (permission bits; others are ignored, as `chmod` masks with
    /// `S_IALLUGO`), owner, group, atime and mtime as given (`setattr_copy`); ctime
    /// becomes the current time when anything is set. TestFs checks no permissions:
    /// like a FUSE filesystem mounted with `default_permissions`, it leaves them to
    /// its caller, and it clears no setuid or setgid bits.
    ///
    /// `ENOENT` for no such inode, `EISDIR` for a size on a directory (nothing is
    /// changed then), `EOVERFLOW` for a time more than `i64::MAX` seconds from the
    /// epoch, and truncate's errors (`EFBIG`, ...).
    pub fn setattr(&self, ino: Ino, set: &SetAttr) -> Result<Attr, DaxError> {
        self.state.check_mounted()?;
        let atime = set.atime.map(Timespec::from_system).transpose()?;
        let mtime = set.mtime.map(Timespec::from_system).transpose()?;
        if let Some(size) = set.size {
            if self.state.meta.lock().inode(ino.0)?.is_dir() {
                return Err(DaxError::IsDirectory {
                    what: "setattr of a directory's size",
                });
            }
            self.truncate(ino, size)?;
        }
        let mut meta = self.state.meta.lock();
        let now = self.state.now();
        let im = meta.inode(ino.0)?;
        if let Some(mode) = set.mode {
            im.mode = mode & 0o7777;
        }
        if let Some(uid) = set.uid {
            im.uid = uid;
        }
        if let Some(gid) = set.gid {
            im.gid = gid;
        }
        if !set.is_empty() {
            im.core.set_times(|t| {
                if let Some(a) = atime {
                    t.atime = a;
                }
                if let Some(m) = mtime {
                    t.mtime = m;
                }
                t.ctime = now;
            });
        }
        Ok(fill_attr(ino, im))
    }
}
