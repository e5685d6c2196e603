//! Checkpoints: how TestFs makes its metadata durable, and reads it back.
//!
//! [`FsState::checkpoint_locked`] writes all metadata as generation `g + 1` into the
//! checkpoint slot not holding `g` and commits it with a device flush (TestFs's
//! journal commit: `jbd2_journal_commit_transaction`, `xfs_log_force`);
//! [`FsState::fsync_inode`] and [`FsState::sync_all`] write mapped data back first
//! (`dax_writeback_mapping_range`), as fsync and `sync(2)` do. The metadata I/O
//! underneath (`write_meta`, `read_meta`) is also what mkfs and mount use. The
//! format itself is in `format.rs`.
//!
//! Locks: a checkpoint is written with the metadata lock held (the caller's, or taken
//! here after writeback), and reads every inode's block map under its extent lock,
//! shared, and its timestamps under their lock, one inode at a time, then takes each
//! extent lock exclusively to clear its dirty state; that is what makes it a
//! consistent snapshot (a write stamping mtime without the metadata lock lands
//! before or after it, as it would around a journal commit). Writeback takes the engine's
//! mapping-entry locks, before the metadata lock, never under it.

use dax_device::{DaxAccessMode, DaxDevice, DaxError};
use dax_fault::{WritebackControl, dax_writeback_mapping_range};

use super::format::{self, Body, Image, InodeRecord};
use super::state::{FsState, InodeCore, Metadata};
use super::{B, BLOCK_SIZE};

impl Metadata {
    /// The metadata as a checkpoint records it.
    pub(crate) fn image(&self) -> Image {
        let inodes: Vec<InodeRecord> = self
            .inodes
            .iter()
            // Orphans (open, nameless files) are not recorded: after a crash or an
            // unmount they are gone, and their blocks free.
            .filter(|(_, im)| im.nlink > 0)
            .map(|(&ino, im)| InodeRecord {
                ino,
                mode: im.mode,
                uid: im.uid,
                gid: im.gid,
                nlink: im.nlink,
                times: im.core.times(),
                body: match &im.dir {
                    None => Body::File {
                        size: im.core.size(),
                        extents: im.core.blocks.read().map.clone(),
                    },
                    Some(d) => Body::Dir {
                        parent: d.parent,
                        entries: d.entries.iter().map(|(n, &i)| (n.clone(), i)).collect(),
                    },
                },
            })
            .collect();
        let refcounts = format::derive_refcounts(inodes.iter().filter_map(InodeRecord::extents));
        Image {
            next_ino: self.next_ino,
            inodes,
            refcounts,
        }
    }
}

impl FsState {
    /// Writes metadata bytes at device byte `offset`, page by page; a page with known
    /// poison is first zeroed through the driver, which clears it (a block write would).
    pub(crate) fn write_meta(&self, offset: u64, data: &[u8]) -> Result<(), DaxError> {
        let section = self.dev.read_lock();
        let mut done = 0usize;
        while done < data.len() {
            let at = offset + done as u64;
            let (pg, in_pg) = (at / B, (at % B) as usize);
            let n = (BLOCK_SIZE - in_pg).min(data.len() - done);
            let da = match section.direct_access(pg, 1, DaxAccessMode::Access) {
                Err(DaxError::HwPoison { .. }) => {
                    section.zero_page_range(pg, 1)?;
                    section.direct_access(pg, 1, DaxAccessMode::Access)
                }
                r => r,
            }
            .map_err(DaxError::mem2blk)?;
            if da.copy_from(in_pg, &data[done..done + n]) != n {
                return Err(DaxError::Io {
                    what: "short metadata write",
                });
            }
            da.flush(in_pg, n);
            done += n;
        }
        Ok(())
    }

    /// Reads `len` metadata bytes at device byte `offset` (`EIO` on poison).
    pub(crate) fn read_meta(dev: &DaxDevice, offset: u64, len: usize) -> Result<Vec<u8>, DaxError> {
        let mut out = vec![0u8; len];
        let section = dev.read_lock();
        let mut done = 0usize;
        while done < len {
            let at = offset + done as u64;
            let (pg, in_pg) = (at / B, (at % B) as usize);
            let n = (BLOCK_SIZE - in_pg).min(len - done);
            let da = section
                .direct_access(pg, 1, DaxAccessMode::Access)
                .map_err(DaxError::mem2blk)?;
            if da.copy_to(in_pg, &mut out[done..done + n]) != n {
                return Err(DaxError::Io {
                    what: "short metadata read",
                });
            }
            done += n;
        }
        Ok(out)
    }

    pub(crate) fn slot_offset(&self, generation: u64) -> u64 {
        self.sb.slot_start(generation % 2) * B
    }

    pub(crate) fn slot_bytes(&self) -> u64 {
        self.sb.slot_blocks * B
    }

    /// Writes a checkpoint of `meta` (which the caller holds locked) and commits it.
    /// A failure is recorded in every inode's writeback errseq (`mapping_set_error`):
    /// a checkpoint commits the whole filesystem, so what it failed to make durable
    /// may be any file's, and every file open now must hear of it once at its next
    /// fsync (see [`FileHandle`](super::FileHandle)).
    pub(crate) fn checkpoint_locked(&self, meta: &mut Metadata) -> Result<(), DaxError> {
        let r = self.try_checkpoint(meta);
        if let Err(e) = &r {
            for im in meta.inodes.values() {
                im.core.mapping.set_wb_error(e.clone());
            }
        }
        r
    }

    fn try_checkpoint(&self, meta: &mut Metadata) -> Result<(), DaxError> {
        // Data (written with non-temporal stores by the engine, or written back from
        // the CPU cache by `dax_writeback_mapping_range` before this) before the
        // metadata that makes it reachable.
        self.dev.flush()?;
        let image = meta.image();
        let generation = meta.generation + 1;
        let bytes = image.encode(self.sb.fs_id, generation);
        if bytes.len() as u64 > self.slot_bytes() {
            return Err(DaxError::NoSpace {
                what: "the metadata no longer fits a checkpoint slot",
            });
        }
        meta.meta_bytes = bytes.len() as u64;
        let referenced = format::referenced_set(&image.refcounts);
        let written = self
            .write_meta(self.slot_offset(generation), &bytes)
            .and_then(|()| self.dev.flush()); // the commit
        if let Err(e) = written {
            // Whether the new checkpoint is on the media is unknown now (written whole
            // but not known flushed, or written in part): either it or the last
            // durable one may come back after a crash, so blocks that either
            // references stay unusable until a commit succeeds.
            meta.alloc.checkpoint_failed(referenced);
            return Err(e);
        }
        meta.generation = generation;
        meta.alloc.checkpoint_committed(referenced);
        for im in meta.inodes.values() {
            im.core.blocks.write().dirty = false;
        }
        Ok(())
    }

    /// Writes back the file's dirty mapped data, then checkpoints (fsync: data before
    /// the metadata that makes it reachable). Without an open file: the fsync of a
    /// synchronous fault (`dax_finish_sync_fault`); `TestFs::fsync_file` is the one
    /// with a file.
    pub(crate) fn fsync_inode(&self, core: &InodeCore) -> Result<(), DaxError> {
        self.check_mounted()?;
        self.writeback_inode(core)?;
        self.commit()
    }

    /// Checkpoints under the metadata lock.
    pub(crate) fn commit(&self) -> Result<(), DaxError> {
        let mut meta = self.meta.lock();
        self.checkpoint_locked(&mut meta)
    }

    /// Writes back the file's dirty mapped data (a data-integrity pass over the whole
    /// file; nothing to do when nothing is mapped).
    pub(crate) fn writeback_inode(&self, core: &InodeCore) -> Result<(), DaxError> {
        dax_writeback_mapping_range(&core.mapping, &self.dev, &WritebackControl::sync_all(..))
    }

    /// Writes back every file's mapped data, then checkpoints all metadata (`sync(2)`:
    /// `writeback_inodes_sb` with `WB_SYNC_ALL`, then `sync_fs`).
    pub(crate) fn sync_all(&self) -> Result<(), DaxError> {
        self.check_mounted()?;
        let cores: Vec<_> = {
            let meta = self.meta.lock();
            meta.inodes.values().map(|im| im.core.clone()).collect()
        };
        for core in cores {
            self.writeback_inode(&core)?;
        }
        self.commit()
    }
}
