//! The namespace: [`TestFs::create`], [`TestFs::lookup`], [`TestFs::list`] and
//! [`TestFs::unlink`] (a flat directory of names → inode numbers, ext2's
//! `ext2_create`/`ext2_lookup`/`ext2_unlink`), and the way from an inode number to an
//! inode handle ([`TestFs::inode`], `iget`).
//!
//! Locks: create, lookup, list and inode take only the metadata lock. Unlink takes the
//! file's I/O lock and invalidate lock exclusively, breaks its layout for good
//! ([`dax_break_layout_final`], the engine's mapping-entry locks), then the metadata
//! lock and under it the extent lock exclusively to mark the inode unlinked and take
//! its block map.

use std::collections::BTreeMap;
use std::sync::Arc;

use dax_device::DaxError;
use dax_fault::dax_break_layout_final;

use super::check_name;
use super::extent::ExtentMap;
use super::inode::TestInode;
use super::mount::TestFs;
use super::state::{Ino, InodeCore, InodeMeta, enoent};

impl TestFs {
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
    pub(crate) fn check_live(&self, inode: &TestInode) -> Result<(), DaxError> {
        self.state.check_mounted()?;
        if inode.core().is_unlinked() {
            Err(enoent())
        } else {
            Ok(())
        }
    }
}
