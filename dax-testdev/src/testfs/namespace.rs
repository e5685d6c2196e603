//! The directory tree: [`TestFs::mkdir`] (`ext2_mkdir`), [`TestFs::create_in`]
//! (`ext2_create`), [`TestFs::lookup_in`] (`ext2_lookup`), [`TestFs::readdir`]
//! (`ext2_readdir`), [`TestFs::parent`] (`ext2_get_parent`), [`TestFs::link`]
//! (`vfs_link`, `ext2_link`), [`TestFs::unlink_in`] (`vfs_unlink`, `ext2_unlink`),
//! [`TestFs::rmdir`] (`vfs_rmdir`, `ext2_rmdir`) and [`TestFs::rename`]
//! (`vfs_rename`, `ext2_rename`, with `RENAME_NOREPLACE` and `RENAME_EXCHANGE`); the
//! flat calls of the first TestFs ([`TestFs::create`], [`TestFs::lookup`],
//! [`TestFs::list`], [`TestFs::unlink`]), which act on the root directory; and the way
//! from an inode number to an inode handle ([`TestFs::inode`], `iget`).
//!
//! The tree lives in the metadata: every directory inode holds its entries (name →
//! inode number) and its parent. The root is [`ROOT_INO`](super::ROOT_INO) and is its
//! own parent. A file may have many names (hard links; its link count is their
//! number); a directory has exactly one, and its link count is 2 plus its
//! subdirectories, as on ext2. Errors and the order they are checked in follow the
//! VFS (`do_renameat2`, `vfs_rename`, `may_delete`, `vfs_link`, `vfs_mkdir`): see each
//! call. Each change stamps the parent directories' mtime and ctime and the child's
//! ctime (`inode_set_ctime_current`).
//!
//! Open files: a [`FileHandle`](super::FileHandle) keeps its file. Removing the last
//! name of a file that is open leaves an orphan (link count 0, found by no name, in no
//! checkpoint), which the last handle's drop frees the way unlink frees a file.
//!
//! Locks: every change of the tree happens under the metadata lock, checks and all,
//! so a change is atomic: no one sees half a rename. Removing a file's last name
//! frees it and its blocks, which needs more, as unlink always has: the file's I/O
//! lock and invalidate lock exclusively, its layout broken (unmapped everywhere,
//! pinned pages waited for, as `dax_break_layout_final` does; its entries are dropped
//! only once it is freed), then the metadata lock and under it the extent lock exclusively to mark the inode unlinked and take
//! its block map. A change that finds it would free a file it has not locked that way
//! drops the metadata lock, takes the file's locks, and starts again
//! (`change_namespace`); the tree may have changed meanwhile, so everything is
//! checked again. Lookups, readdir and inode handles take only the metadata lock.

use std::sync::Arc;
use std::time::Duration;

use dax_device::DaxError;
use dax_fault::pages::wait_idle;
use dax_fault::{dax_delete_mapping_range, dax_layout_busy_page};

use super::attr::{DirEntry, FileKind, MAX_LINKS, Perm, ROOT_INO, RenameFlags};
use super::extent::ExtentMap;
use super::format::{INODE_BYTES, MAX_INO, entry_bytes};
use super::inode::TestInode;
use super::mount::TestFs;
use super::state::{Dir, FsState, Ino, InodeCore, InodeMeta, Metadata, enoent};
use super::time::{Times, Timespec};
use super::{ROOT, check_name};

/// What a namespace change needs next (see [`TestFs::change_namespace`]).
enum Step {
    /// The change is made.
    Done,
    /// The change removes the last name of this file: lock it for eviction and try
    /// again.
    Evict(Arc<InodeCore>),
}

fn eisdir(what: &'static str) -> DaxError {
    DaxError::IsDirectory { what }
}

fn enotdir(what: &'static str) -> DaxError {
    DaxError::NotDirectory { what }
}

/// Whether `name` is `.` or `..`, which name no entry of their own: each call answers
/// them as Linux's path walk does (`LAST_DOT`/`LAST_DOTDOT`), below.
fn is_dot(name: &str) -> bool {
    name == "." || name == ".."
}

fn ebusy(what: &'static str) -> DaxError {
    DaxError::Busy { what }
}

fn eexist() -> DaxError {
    DaxError::Exists {
        what: "file exists",
    }
}

fn emlink(what: &'static str) -> DaxError {
    DaxError::TooManyLinks { what }
}

impl Metadata {
    /// The inode that `name` names in directory `parent`: `ENOENT` when there is no
    /// such entry (or no such directory), `ENOTDIR` when `parent` is a file.
    fn entry(&self, parent: u64, name: &str) -> Result<u64, DaxError> {
        self.dir(parent)?
            .entries
            .get(name)
            .copied()
            .ok_or_else(enoent)
    }

    fn is_dir(&self, ino: u64) -> bool {
        self.inodes.get(&ino).is_some_and(InodeMeta::is_dir)
    }

    /// Whether directory `d` is `top` or lies below it (the VFS's `is_subdir`).
    fn is_within(&self, mut d: u64, top: u64) -> bool {
        // The tree has no cycles, so the walk ends at the root; the bound only keeps
        // a broken invariant from looping.
        for _ in 0..=self.inodes.len() {
            if d == top {
                return true;
            }
            match self.inodes.get(&d).and_then(|i| i.dir.as_ref()) {
                Some(dir) if d != ROOT => d = dir.parent,
                _ => return false,
            }
        }
        false
    }

    /// Admits a namespace change that adds up to `cost` bytes to the checkpoint
    /// (`ENOSPC` otherwise), so that what `create`, `mkdir`, `link` and `rename`
    /// accept can always be checkpointed: the slot is fixed at mkfs, and a change
    /// admitted past it would make every later fsync and the unmount fail. A
    /// sixteenth of the slot stays free for block maps, which grow with writes
    /// without asking. The running bound is re-measured exactly when it runs short.
    fn admit(&mut self, fs: &FsState, cost: u64) -> Result<(), DaxError> {
        let slot = fs.slot_bytes();
        let limit = slot - slot / 16;
        if self.meta_bytes.saturating_add(cost) > limit {
            self.meta_bytes = self.image().encode(0, 0).len() as u64;
            if self.meta_bytes.saturating_add(cost) > limit {
                return Err(DaxError::NoSpace {
                    what: "the metadata would no longer fit a checkpoint slot",
                });
            }
        }
        self.meta_bytes += cost;
        Ok(())
    }

    /// About how many more inodes with 16-byte names [`Metadata::admit`] would
    /// accept now (for `statfs`'s `f_ffree`).
    pub(crate) fn files_free(&mut self, fs: &FsState) -> u64 {
        let slot = fs.slot_bytes();
        let limit = slot - slot / 16;
        if self.meta_bytes == u64::MAX {
            self.meta_bytes = self.image().encode(0, 0).len() as u64;
        }
        limit.saturating_sub(self.meta_bytes) / (INODE_BYTES + entry_bytes(&"n".repeat(16)))
    }

    /// Adds `delta` to the link count of `ino`.
    fn add_links(&mut self, ino: u64, delta: i32) {
        if let Some(im) = self.inodes.get_mut(&ino) {
            im.nlink = im.nlink.saturating_add_signed(delta);
        }
    }

    /// A directory's entries changed: mtime and ctime (`ext2_add_link`,
    /// `ext2_delete_entry`).
    fn stamp_dir(&self, dir: u64, now: Timespec) {
        if let Some(im) = self.inodes.get(&dir) {
            im.core.touch_mtime(now);
        }
    }

    fn stamp_ctime(&self, ino: u64, now: Timespec) {
        if let Some(im) = self.inodes.get(&ino) {
            im.core.touch_ctime(now);
        }
    }

    /// A new inode numbered `next_ino`, with no name yet: a file (one link to come)
    /// or, with `parent`, a directory (two).
    /// `ENOSPC` once every number up to [`MAX_INO`] has been used (ext4's answer when
    /// it runs out of inodes).
    fn new_inode(
        &mut self,
        fs: &FsState,
        perm: Perm,
        parent: Option<u64>,
        now: Timespec,
    ) -> Result<u64, DaxError> {
        let ino = self.next_ino;
        if ino > MAX_INO {
            return Err(DaxError::NoSpace {
                what: "every inode number has been used",
            });
        }
        self.next_ino += 1;
        let core = InodeCore::new(
            ino,
            0,
            ExtentMap::new(),
            true,
            fs.dev.clone(),
            Times::all(now),
        );
        let nlink = if parent.is_some() { 2 } else { 1 };
        let mut im = InodeMeta::new(
            Arc::new(core),
            perm.mode & 0o7777,
            perm.uid,
            perm.gid,
            nlink,
        );
        im.dir = parent.map(|parent| Dir {
            parent,
            entries: Default::default(),
        });
        self.inodes.insert(ino, im);
        Ok(ino)
    }

    /// Drops one link of file `ino`, whose entry is already gone: its ctime changes,
    /// and the last link frees it unless a file is open on it (then it is an orphan
    /// until the last is dropped). The caller holds the file's I/O and invalidate
    /// locks for the freeing and has broken its layout.
    fn drop_file_link(&mut self, ino: u64, now: Timespec) {
        self.add_links(ino, -1);
        match self.inodes.get(&ino) {
            Some(im) if im.nlink == 0 && im.opens == 0 => self.free_inode(ino),
            Some(im) => im.core.touch_ctime(now),
            None => {}
        }
    }

    /// Whether `ino` is an orphan no open file holds any more, and so is to be freed.
    fn orphan_to_free(&self, ino: u64) -> Option<Arc<InodeCore>> {
        let im = self.inodes.get(&ino)?;
        (!im.is_dir() && im.nlink == 0 && im.opens == 0).then(|| im.core.clone())
    }

    /// Frees inode `ino` (`evict`): out of the table, marked unlinked under its extent
    /// lock with its block map taken, and its blocks and CoW reservations released.
    fn free_inode(&mut self, ino: u64) {
        let Some(im) = self.inodes.remove(&ino) else {
            return;
        };
        let map = {
            let mut blocks = im.core.blocks.write();
            im.core.mark_unlinked();
            std::mem::take(&mut blocks.map)
        };
        for (_, e) in map.iter() {
            self.alloc.release(e.dev, e.len);
        }
        for r in im.cow.values() {
            self.alloc.release(r.dev, r.len);
        }
    }

    /// Whether removing a name of `ino` removes its last one, and so needs the locks
    /// of an eviction; `locked` is the inode the caller holds them for.
    fn needs_evict(&self, ino: u64, locked: Option<u64>) -> Option<Arc<InodeCore>> {
        let im = self.inodes.get(&ino)?;
        (!im.is_dir() && im.nlink <= 1 && im.opens == 0 && locked != Some(ino))
            .then(|| im.core.clone())
    }
}

impl TestFs {
    /// Runs a namespace change: `step` checks and makes it under the metadata lock,
    /// given the current time and the inode whose eviction locks are held. When it
    /// answers that it would free a file not so locked, this drops the metadata lock,
    /// takes that file's I/O and invalidate locks exclusively, breaks its layout for
    /// good, and calls `step` again with the metadata lock retaken (unlink's order:
    /// see the module docs).
    fn change_namespace(
        &self,
        mut step: impl FnMut(&mut Metadata, Option<u64>, Timespec) -> Result<Step, DaxError>,
    ) -> Result<(), DaxError> {
        self.state.check_mounted()?;
        let mut evict = {
            let mut meta = self.state.meta.lock();
            match step(&mut meta, None, self.state.now())? {
                Step::Done => return Ok(()),
                Step::Evict(core) => core,
            }
        };
        loop {
            let core = evict;
            let _io = core.io.write();
            let _inval = core.invalidate.write();
            // The blocks are freed in `step` (no open file holds it: checked there), so
            // first do what eviction does before blocks go (`dax_break_layout_final`'s
            // wait): unmap the file everywhere and wait until no page is pinned. The
            // invalidate lock keeps new faults out from here on. The entries, dirty
            // ones included, stay until the file is known to be freed: should it keep
            // a name after all (a link made meanwhile), the next fsync must still
            // write back what was stored through a mapping.
            while let Some(busy) = dax_layout_busy_page(&core.mapping) {
                wait_idle(busy, Duration::from_millis(10));
            }
            let mut meta = self.state.meta.lock();
            let next = step(&mut meta, Some(core.ino()), self.state.now());
            drop(meta);
            if core.is_unlinked() {
                // Freed: drop its entries (`truncate_inode_pages_final`), outside the
                // metadata lock (entry locks come first in the lock order).
                dax_delete_mapping_range(&core.mapping, ..);
            }
            match next? {
                Step::Done => return Ok(()),
                Step::Evict(other) => evict = other,
            }
        }
    }

    /// A [`FileHandle`](super::FileHandle) on `ino` was dropped: the last one on an
    /// orphan frees it, as unlink frees a file (its layout broken under its locks,
    /// then its blocks released). Nothing to do once the filesystem is unmounted or
    /// shut down (an orphan is in no checkpoint).
    pub(crate) fn close_file(&self, ino: u64) {
        let free = {
            let mut meta = self.state.meta.lock();
            let Some(im) = meta.inodes.get_mut(&ino) else {
                return;
            };
            im.opens = im.opens.saturating_sub(1);
            meta.orphan_to_free(ino).is_some()
        };
        if free {
            // Checked again under the locks: it may have been opened again meanwhile.
            let _ = self.change_namespace(|meta, locked, _| match meta.orphan_to_free(ino) {
                Some(core) if locked != Some(ino) => Ok(Step::Evict(core)),
                Some(_) => {
                    meta.free_inode(ino);
                    Ok(Step::Done)
                }
                None => Ok(Step::Done),
            });
        }
    }

    /// Creates an empty file (`open(O_CREAT | O_EXCL)`) in the root directory, mode
    /// `0o644` owned by the calling process's user and group: [`TestFs::create_in`].
    pub fn create(&self, name: &str) -> Result<Ino, DaxError> {
        self.create_in(ROOT_INO, name, Perm::current(0o644))
    }

    /// Creates an empty file `name` in directory `parent` (`open(O_CREAT | O_EXCL)`,
    /// ext2's `ext2_create`) with `perm`, and stamps the directory's mtime and ctime.
    ///
    /// `ENOENT` when `parent` does not exist (or `name` is empty), `ENOTDIR` when it is
    /// a file, `EEXIST` when the name is taken, `ENAMETOOLONG`/`EINVAL` for bad names,
    /// `ENOSPC` when the checkpoint slot (fixed at mkfs, see
    /// [`MkfsOptions::checkpoint_blocks`](super::MkfsOptions::checkpoint_blocks)) has
    /// no room for another name: metadata that could not be checkpointed is never
    /// accepted. [`StatFs::files_free`](super::StatFs::files_free) says how many more
    /// fit. The same holds for [`TestFs::mkdir`], [`TestFs::link`] and a
    /// [`TestFs::rename`] to a longer name.
    pub fn create_in(&self, parent: Ino, name: &str, perm: Perm) -> Result<Ino, DaxError> {
        self.add_entry(parent, name, perm, false)
    }

    /// Creates directory `name` in directory `parent` (`mkdir(2)`, `vfs_mkdir`,
    /// ext2's `ext2_mkdir`) with `perm`: link count 2, the parent's one more, and the
    /// parent's mtime and ctime stamped.
    ///
    /// Errors as [`TestFs::create_in`], and `EMLINK` when the parent has
    /// [`MAX_LINKS`](super::MAX_LINKS) links already.
    pub fn mkdir(&self, parent: Ino, name: &str, perm: Perm) -> Result<Ino, DaxError> {
        self.add_entry(parent, name, perm, true)
    }

    fn add_entry(&self, parent: Ino, name: &str, perm: Perm, dir: bool) -> Result<Ino, DaxError> {
        if is_dot(name) {
            return Err(eexist()); // `filename_create`: the name exists
        }
        check_name(name)?;
        self.state.check_mounted()?;
        let mut meta = self.state.meta.lock();
        let now = self.state.now();
        let pim = meta.inode(parent.0)?;
        let pnlink = pim.nlink;
        let pdir = pim
            .dir
            .as_ref()
            .ok_or(enotdir("the parent is not a directory"))?;
        if pdir.entries.contains_key(name) {
            return Err(eexist());
        }
        if dir && pnlink >= MAX_LINKS {
            return Err(emlink(
                "the parent directory has the most subdirectories it may have",
            ));
        }
        meta.admit(&self.state, INODE_BYTES + entry_bytes(name))?;
        let ino = meta.new_inode(&self.state, perm, dir.then_some(parent.0), now)?;
        meta.dir_mut(parent.0)?.entries.insert(name.to_owned(), ino);
        if dir {
            meta.add_links(parent.0, 1);
        }
        meta.stamp_dir(parent.0, now);
        Ok(Ino(ino))
    }

    /// The inode of `name` in the root directory (`open` without `O_CREAT`):
    /// `ENOENT` when none; `EINVAL` for `.` and `..` (kept from the flat namespace of
    /// the first TestFs; [`TestFs::lookup_in`] resolves them).
    #[doc(alias = "open_file")]
    pub fn lookup(&self, name: &str) -> Result<Ino, DaxError> {
        check_name(name)?;
        self.lookup_in(ROOT_INO, name)
    }

    /// The inode `name` names in directory `parent` (ext2's `ext2_lookup`). `.` is
    /// `parent` itself and `..` its parent (the root's is the root).
    ///
    /// `ENOENT` when there is no such entry or directory, `ENOTDIR` when `parent` is a
    /// file, `ENAMETOOLONG`/`EINVAL` for names no entry can have.
    pub fn lookup_in(&self, parent: Ino, name: &str) -> Result<Ino, DaxError> {
        self.state.check_mounted()?;
        if name != "." && name != ".." {
            check_name(name)?;
        }
        let meta = self.state.meta.lock();
        match name {
            "." => meta.dir(parent.0).map(|_| parent),
            ".." => meta.dir(parent.0).map(|d| Ino(d.parent)),
            _ => meta.entry(parent.0, name).map(Ino),
        }
    }

    /// The entries of the root directory, sorted by name ([`TestFs::readdir`] of
    /// [`ROOT_INO`](super::ROOT_INO) without the kinds).
    pub fn list(&self) -> Vec<(String, Ino)> {
        let meta = self.state.meta.lock();
        meta.dir(ROOT)
            .map(|d| {
                d.entries
                    .iter()
                    .map(|(n, &i)| (n.clone(), Ino(i)))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The entries of directory `dir`, sorted by name, without `.` and `..`
    /// (`getdents64`, ext2's `ext2_readdir` emitting each entry with `dir_emit`).
    /// `ENOENT` for no such inode, `ENOTDIR` for a file.
    pub fn readdir(&self, dir: Ino) -> Result<Vec<DirEntry>, DaxError> {
        self.state.check_mounted()?;
        let meta = self.state.meta.lock();
        let d = meta.dir(dir.0)?;
        Ok(d.entries
            .iter()
            .map(|(name, &ino)| DirEntry {
                name: name.clone(),
                ino: Ino(ino),
                kind: if meta.is_dir(ino) {
                    FileKind::Dir
                } else {
                    FileKind::File
                },
            })
            .collect())
    }

    /// The parent of directory `dir` (its `..`, ext2's `ext2_get_parent`); the root is
    /// its own parent. `ENOENT` for no such inode, `ENOTDIR` for a file (which may
    /// have many).
    pub fn parent(&self, dir: Ino) -> Result<Ino, DaxError> {
        self.state.check_mounted()?;
        let meta = self.state.meta.lock();
        meta.dir(dir.0).map(|d| Ino(d.parent))
    }

    /// Gives file `ino` another name, `new_name` in directory `new_parent` (`link(2)`,
    /// `vfs_link`, ext2's `ext2_link`): one more link, its ctime and the directory's
    /// mtime and ctime stamped.
    ///
    /// In `vfs_link`'s order: `ENOENT` when `ino` does not exist, `ENOENT`/`ENOTDIR`
    /// for `new_parent`, `EEXIST` when the name is taken, `EPERM` when `ino` is a
    /// directory (Linux allows no hard links to directories), `EMLINK` at
    /// [`MAX_LINKS`](super::MAX_LINKS); `ENAMETOOLONG`/`EINVAL` for bad names.
    pub fn link(&self, ino: Ino, new_parent: Ino, new_name: &str) -> Result<(), DaxError> {
        if is_dot(new_name) {
            return Err(eexist()); // `filename_create`
        }
        check_name(new_name)?;
        self.state.check_mounted()?;
        let mut meta = self.state.meta.lock();
        let now = self.state.now();
        let (is_dir, nlink) = {
            let im = meta.inode(ino.0)?;
            (im.is_dir(), im.nlink)
        };
        if nlink == 0 && !is_dir {
            // An orphan, open but nameless: `vfs_link` refuses it (`ENOENT`).
            return Err(enoent());
        }
        if meta.dir(new_parent.0)?.entries.contains_key(new_name) {
            return Err(eexist());
        }
        if is_dir {
            return Err(DaxError::NotPermitted {
                what: "hard links to directories are not allowed",
            });
        }
        if nlink >= MAX_LINKS {
            return Err(emlink("the file has the most links it may have"));
        }
        meta.admit(&self.state, entry_bytes(new_name))?;
        meta.dir_mut(new_parent.0)?
            .entries
            .insert(new_name.to_owned(), ino.0);
        meta.add_links(ino.0, 1);
        meta.stamp_ctime(ino.0, now);
        meta.stamp_dir(new_parent.0, now);
        Ok(())
    }

    /// Removes `name` from the root directory: [`TestFs::unlink_in`].
    pub fn unlink(&self, name: &str) -> Result<(), DaxError> {
        self.unlink_in(ROOT_INO, name)
    }

    /// Removes the name `name` of a file from directory `parent` (`unlink(2)`,
    /// `vfs_unlink`, ext2's `ext2_unlink`): one link fewer and its ctime stamped, the
    /// directory's mtime and ctime stamped. The last name frees the file and its
    /// blocks at once, unless a [`FileHandle`](super::FileHandle) is open on it: then
    /// it lives on as an orphan (link count 0, found by no name, in no checkpoint, so
    /// a crash or an unmount drops it) whose data, operations by inode number and
    /// mappings work as before, and is freed when the last handle is dropped. After
    /// it is freed, operations on its inode number fail with `ENOENT`.
    ///
    /// `ENOENT` when there is no such entry or directory, `ENOTDIR` when `parent` is a
    /// file, `EISDIR` when `name` is a directory (as Linux answers; POSIX allows
    /// `EPERM`), `ENAMETOOLONG`/`EINVAL` for bad names.
    pub fn unlink_in(&self, parent: Ino, name: &str) -> Result<(), DaxError> {
        if is_dot(name) {
            return Err(eisdir("unlink of . or .."));
        }
        check_name(name)?;
        self.change_namespace(|meta, locked, now| {
            let ino = meta.entry(parent.0, name)?;
            if meta.is_dir(ino) {
                return Err(eisdir("unlink of a directory (use rmdir)"));
            }
            if let Some(core) = meta.needs_evict(ino, locked) {
                return Ok(Step::Evict(core));
            }
            meta.dir_mut(parent.0)?.entries.remove(name);
            meta.stamp_dir(parent.0, now);
            meta.drop_file_link(ino, now);
            Ok(Step::Done)
        })
    }

    /// Removes the empty directory `name` from directory `parent` (`rmdir(2)`,
    /// `vfs_rmdir`, ext2's `ext2_rmdir`): the parent loses a link and its mtime and
    /// ctime are stamped.
    ///
    /// `ENOENT` when there is no such entry or directory, `ENOTDIR` when `parent` or
    /// `name` is a file, `ENOTEMPTY` when the directory has entries,
    /// `ENAMETOOLONG`/`EINVAL` for bad names; as Linux, `EINVAL` for `.` and
    /// `ENOTEMPTY` for `..`.
    pub fn rmdir(&self, parent: Ino, name: &str) -> Result<(), DaxError> {
        match name {
            "." => {
                return Err(DaxError::InvalidArgument { what: "rmdir of ." });
            }
            ".." => {
                return Err(DaxError::NotEmpty {
                    what: "rmdir of ..",
                });
            }
            _ => check_name(name)?,
        }
        self.change_namespace(|meta, _, now| {
            let ino = meta.entry(parent.0, name)?;
            let im = meta.inode(ino)?;
            let dir = im.dir.as_ref().ok_or(enotdir("rmdir of a file"))?;
            if !dir.entries.is_empty() {
                return Err(DaxError::NotEmpty {
                    what: "rmdir of a directory that has entries",
                });
            }
            meta.dir_mut(parent.0)?.entries.remove(name);
            meta.add_links(parent.0, -1);
            meta.stamp_dir(parent.0, now);
            meta.free_inode(ino);
            Ok(Step::Done)
        })
    }

    /// Moves `name` in directory `parent` to `new_name` in directory `new_parent`
    /// (`renameat2(2)`, `vfs_rename`, ext2's `ext2_rename`), atomically. A target that
    /// exists is replaced, as POSIX rename does: a file by a file (the replaced file
    /// loses that link, and is freed with its last), a directory by a directory if
    /// the target is empty. With [`RenameFlags::NOREPLACE`] an existing target is
    /// `EEXIST`; with [`RenameFlags::EXCHANGE`] the two entries are swapped (any
    /// kinds) and the target must exist. Renaming a name onto another name of the same
    /// inode does nothing and succeeds. Both directories' mtime and ctime, and the
    /// moved inodes' ctime, are stamped; a directory moved to another parent moves its
    /// `..` link along.
    ///
    /// In `do_renameat2`'s and `vfs_rename`'s order: `EINVAL` for unknown flags or
    /// both flags; `ENAMETOOLONG`/`EINVAL` for bad names; `ENOENT`/`ENOTDIR` for the
    /// directories; `ENOENT` for no source; `EEXIST` (NOREPLACE, target exists);
    /// `ENOENT` (EXCHANGE, no target); `EINVAL` when a directory would move into its
    /// own subtree; `ENOTEMPTY` (`EINVAL` with EXCHANGE) when the target is a
    /// directory the source lies in; then, replacing, `ENOTDIR` for a directory onto
    /// a file, `EISDIR` for a file onto a directory, `ENOTEMPTY` for a non-empty
    /// target directory; `EMLINK` when a directory would move into a parent with
    /// [`MAX_LINKS`](super::MAX_LINKS) links.
    pub fn rename(
        &self,
        parent: Ino,
        name: &str,
        new_parent: Ino,
        new_name: &str,
        flags: RenameFlags,
    ) -> Result<(), DaxError> {
        if flags.bits() & !RenameFlags::all().bits() != 0
            || flags.contains(RenameFlags::NOREPLACE | RenameFlags::EXCHANGE)
        {
            return Err(DaxError::InvalidArgument {
                what: "rename flags: unknown bits, or NOREPLACE with EXCHANGE",
            });
        }
        if is_dot(name) {
            return Err(ebusy("rename of . or .."));
        }
        if is_dot(new_name) {
            return Err(if flags.contains(RenameFlags::NOREPLACE) {
                eexist()
            } else {
                ebusy("rename onto . or ..")
            });
        }
        check_name(name)?;
        check_name(new_name)?;
        let exchange = flags.contains(RenameFlags::EXCHANGE);
        let (p, np) = (parent.0, new_parent.0);
        self.change_namespace(|meta, locked, now| {
            meta.dir(p)?;
            meta.dir(np)?;
            let src = meta.entry(p, name)?;
            let tgt = meta.dir(np)?.entries.get(new_name).copied();
            if flags.contains(RenameFlags::NOREPLACE) && tgt.is_some() {
                return Err(eexist());
            }
            if exchange && tgt.is_none() {
                return Err(enoent());
            }
            let src_dir = meta.is_dir(src);
            let tgt_dir = tgt.is_some_and(|t| meta.is_dir(t));
            if src_dir && meta.is_within(np, src) {
                return Err(DaxError::InvalidArgument {
                    what: "rename of a directory into its own subtree",
                });
            }
            if let Some(t) = tgt
                && tgt_dir
                && meta.is_within(p, t)
            {
                return Err(if exchange {
                    DaxError::InvalidArgument {
                        what: "exchange of a directory with one inside it",
                    }
                } else {
                    DaxError::NotEmpty {
                        what: "rename onto a directory the source lies in",
                    }
                });
            }
            if tgt == Some(src) {
                return Ok(Step::Done); // two names of one inode: nothing to do
            }
            if let (Some(t), false) = (tgt, exchange) {
                if src_dir && !tgt_dir {
                    return Err(enotdir("rename of a directory onto a file"));
                }
                if !src_dir && tgt_dir {
                    return Err(eisdir("rename of a file onto a directory"));
                }
                if meta.dir(t).is_ok_and(|d| !d.entries.is_empty()) {
                    return Err(DaxError::NotEmpty {
                        what: "rename onto a directory that has entries",
                    });
                }
            }
            if p != np {
                // A directory changing parents takes a link of its new parent (unless
                // it replaces a directory there, or swaps with one).
                let nlink = |d| meta.inodes.get(&d).map_or(0, |i| i.nlink);
                let full = (src_dir && !tgt_dir && nlink(np) >= MAX_LINKS)
                    || (exchange && tgt_dir && !src_dir && nlink(p) >= MAX_LINKS);
                if full {
                    return Err(emlink(
                        "the new parent has the most subdirectories it may have",
                    ));
                }
            }
            if let Some(t) = tgt
                && !exchange
                && let Some(core) = meta.needs_evict(t, locked)
            {
                return Ok(Step::Evict(core));
            }

            if !exchange && new_name.len() > name.len() {
                meta.admit(&self.state, (new_name.len() - name.len()) as u64)?;
            }

            // Checked: now change.
            if exchange {
                let t = tgt.ok_or_else(enoent)?;
                meta.dir_mut(p)?.entries.insert(name.to_owned(), t);
                meta.dir_mut(np)?.entries.insert(new_name.to_owned(), src);
                if p != np {
                    move_dir(meta, src, p, np);
                    move_dir(meta, t, np, p);
                }
                meta.stamp_ctime(t, now);
            } else {
                meta.dir_mut(p)?.entries.remove(name);
                if let Some(t) = tgt {
                    meta.dir_mut(np)?.entries.remove(new_name);
                    if tgt_dir {
                        meta.add_links(np, -1);
                        meta.free_inode(t);
                    } else {
                        meta.drop_file_link(t, now);
                    }
                }
                meta.dir_mut(np)?.entries.insert(new_name.to_owned(), src);
                move_dir(meta, src, p, np);
            }
            meta.stamp_ctime(src, now);
            meta.stamp_dir(p, now);
            meta.stamp_dir(np, now);
            Ok(Step::Done)
        })
    }

    /// A handle on file `ino` for the engine: it implements
    /// [`IomapOps`](dax_iomap::IomapOps) and [`DaxInode`](dax_iomap::DaxInode).
    /// `ENOENT` for no such inode, `EISDIR` for a directory (which has no data; every
    /// file operation, from read to reflink, answers a directory so).
    pub fn inode(&self, ino: Ino) -> Result<TestInode, DaxError> {
        self.state.check_mounted()?;
        let meta = self.state.meta.lock();
        let im = meta.inodes.get(&ino.0).ok_or_else(enoent)?;
        if im.is_dir() {
            return Err(eisdir("file operation on a directory"));
        }
        Ok(TestInode::new(self.state.clone(), im.core.clone()))
    }

    /// `ENOENT` if `inode` was unlinked (checked after taking its I/O lock, which
    /// unlink holds exclusively while it marks the inode).
    pub(crate) fn check_live(&self, inode: &TestInode) -> Result<(), DaxError> {
        self.state.check_mounted()?;
        if inode.core().is_unlinked() {
            Err(enoent())
        } else {
            Ok(())
        }
    }
}

/// Directory `ino`, if it is one, moves from parent `from` to parent `to`: its `..`
/// link moves with it.
fn move_dir(meta: &mut Metadata, ino: u64, from: u64, to: u64) {
    if from == to {
        return;
    }
    let Some(Some(dir)) = meta.inodes.get_mut(&ino).map(|i| i.dir.as_mut()) else {
        return;
    };
    dir.parent = to;
    meta.add_links(from, -1);
    meta.add_links(to, 1);
}
