//! Memory failure: [`FailureHolder`], TestFs's holder on its DAX device, which the
//! device calls when media fails (`dax_holder_notify_failure` →
//! `xfs_dax_notify_failure`).
//!
//! Locks: it takes the metadata lock and, under it, each inode's extent lock shared,
//! one at a time, to find the files mapping the failed blocks; it drops both before
//! calling [`mf_dax_kill_procs`] and invalidating, which take the engine's
//! mapping-entry locks. It takes no I/O or invalidate lock.

use std::sync::{Arc, OnceLock, Weak};

use dax_device::{DaxError, DaxHolder, MfFlags};
use dax_fault::mf_dax_kill_procs;

use super::B;
use super::state::FsState;
use super::sync::Ordering;

/// TestFs's answer to media-failure notifications (`xfs_dax_notify_failure`): it
/// finds the files whose blocks lie in the failed range by scanning the extent maps
/// (TestFs's stand-in for XFS's reverse-mapping btree) and kills the users mapping
/// them ([`mf_dax_kill_procs`]).
pub(crate) struct FailureHolder {
    fs: OnceLock<Weak<FsState>>,
}

impl DaxHolder for FailureHolder {
    fn notify_failure(&self, offset: u64, len: u64, flags: MfFlags) -> Result<(), DaxError> {
        let Some(state) = self.fs.get().and_then(Weak::upgrade) else {
            return Err(DaxError::Io {
                what: "TestFs is not mounted yet",
            });
        };
        let pre_remove = flags.contains(MfFlags::MEM_PRE_REMOVE);
        let first = offset / B;
        let end = if len == u64::MAX {
            u64::MAX
        } else {
            offset.saturating_add(len).div_ceil(B)
        };
        if first >= state.sb.total_blocks {
            // ENXIO, as `xfs_dax_notify_failure` answers a range past the filesystem.
            // `DaxError` has no variant for it but `Dead` (a killed device), which
            // would say the wrong thing.
            return Err(DaxError::Os {
                errno: libc::ENXIO,
                what: "failed range lies outside the filesystem",
            });
        }
        let metadata_hit = first < state.sb.data_start();
        // (mapping, first file page, pages) of every file block in the range.
        let mut hits = Vec::new();
        {
            let meta = state.meta.lock();
            for im in meta.inodes.values() {
                for (fb, e) in im.core.blocks.read().map.iter() {
                    let (lo, hi) = (e.dev.max(first), (e.dev + e.len).min(end));
                    if lo < hi {
                        hits.push((im.core.clone(), fb + (lo - e.dev), hi - lo));
                    }
                }
            }
        }
        for (core, page, count) in hits {
            mf_dax_kill_procs(Some(&core.mapping), page, count, flags)?;
            if pre_remove {
                // Dirty entries stay (EBUSY), as in `invalidate_inode_pages2_range`.
                let _ = dax_iomap::MappingOps::invalidate_range(
                    &*core.mapping,
                    page..=page + count - 1,
                );
            }
        }
        if pre_remove {
            // The device is going away: shut down, as XFS does.
            state.unmounted.store(true, Ordering::Release);
            return Ok(());
        }
        if metadata_hit {
            return Err(DaxError::Corrupted {
                what: "media failure in TestFs metadata",
            });
        }
        Ok(())
    }
}

impl FailureHolder {
    /// A holder for a filesystem not mounted yet (it answers `EIO` until
    /// [`attach`](Self::attach)).
    pub(crate) fn new() -> FailureHolder {
        FailureHolder {
            fs: OnceLock::new(),
        }
    }

    /// Points the holder at the mounted filesystem (once; it keeps a weak reference,
    /// so the device's claim never keeps the filesystem alive).
    pub(crate) fn attach(&self, state: &Arc<FsState>) {
        let _ = self.fs.set(Arc::downgrade(state));
    }
}
