//! Memory failure: [`FailureHolder`], TestFs's holder on its DAX device, which the
//! device calls when media fails (`dax_holder_notify_failure` →
//! `xfs_dax_notify_failure`).
//!
//! Locks: it takes the metadata lock and, under it, each inode's extent lock shared,
//! one at a time, to find the files mapping the failed blocks; it drops both before
//! calling [`mf_dax_kill_procs`] and invalidating, which take the engine's
//! mapping-entry locks. For a device about to be removed (`MEM_PRE_REMOVE`) it then
//! takes each inode's invalidate lock exclusively, one at a time and with nothing
//! else held, as a barrier against faults under way. It takes no I/O lock.

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
        if pre_remove {
            // The device is going away: shut down first, as XFS freezes the
            // filesystem before it unmaps (`xfs_dax_notify_failure_freeze`), so that
            // no new fault, read, write or fsync starts; the barrier below waits for
            // the faults already under way.
            state.unmounted.store(true, Ordering::Release);
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
        }
        #[cfg(test)]
        test_hook::after_walk();
        if pre_remove {
            // A fault that passed its mounted check before the shutdown may still be
            // mapping a page the walk above has passed: it holds the inode's
            // invalidate lock shared for the whole fault, so taking it exclusively
            // waits it out, and every fault after sees the shutdown (the handler
            // checks again under the lock). Then nothing of the file stays mapped:
            // device pages and zero pages alike, so every later access faults and
            // gets SIGBUS. Dirty entries stay (EBUSY), as in
            // `invalidate_inode_pages2_range`, so a later msync reports that their
            // data could not be written back.
            let cores: Vec<_> = {
                let meta = state.meta.lock();
                meta.inodes.values().map(|im| im.core.clone()).collect()
            };
            for core in cores {
                let _barrier = core.invalidate.write();
                core.mapping.unmap_mapping_pages(0, u64::MAX, false);
                let _ = dax_iomap::MappingOps::invalidate_range(&*core.mapping, 0..=u64::MAX);
            }
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

/// A unit-test hook in the holder, per thread: run after the walk that unmaps the
/// users of the failed range (a fault there is the race a removal must close).
#[cfg(test)]
pub(crate) mod test_hook {
    use std::cell::RefCell;

    thread_local! {
        static HOOK: RefCell<Option<Box<dyn FnMut()>>> = RefCell::new(None);
    }

    /// Runs `f` (once) in this thread's next notification, after the walk.
    pub(crate) fn set(f: impl FnMut() + 'static) {
        HOOK.with(|h| *h.borrow_mut() = Some(Box::new(f)));
    }

    pub(super) fn after_walk() {
        if let Some(mut f) = HOOK.with(|h| h.borrow_mut().take()) {
            f();
        }
    }
}
