//! Test support: making TestFs's own `iomap_begin` and `iomap_end` fail on a
//! schedule ([`TestFs::inject_iomap`](super::TestFs::inject_iomap)), as a
//! filesystem's block mapping can fail in the middle of an operation (a transaction that cannot be reserved, a metadata read that
//! fails). The device side has its own injection ([`MemDevice::inject`](crate::MemDevice::inject)); this is the
//! filesystem side, and it uses the same [`FailSchedule`]s with the same generator, so
//! that one seed reproduces one run.
//!
//! Where each hook fires, and why there, is on [`IomapHook`].
//!
//! Calls are counted per thread, so that counting costs no shared atomic operation on
//! every read; [`TestFs::iomap_calls`](super::TestFs::iomap_calls) sums them.
//!
//! Locks: the injection plan is behind a mutex of its own, a leaf taken only while a
//! plan is set, with nothing taken under it.

use dax_device::DaxError;

use super::sync::{AtomicBool, Mutex, Ordering};
use crate::counters::CallCounts;
use crate::memdev::{FailSchedule, Injected};

/// Which of TestFs's `iomap_ops` an injection makes fail (see
/// [`TestFs::inject_iomap`](super::TestFs::inject_iomap)).
///
/// Where each hook fires, and why there:
///
/// * [`IomapHook::Begin`]: at the top of [`TestInode`](super::TestInode)'s `iomap_begin`, after the
///   mounted check and before it looks at anything, so a failed call has taken no
///   lock, allocated nothing and changed nothing (`xfs_trans_alloc` failing at the
///   start of `xfs_direct_write_iomap_begin` leaves the same state). The engine sees
///   the error in the middle of its iteration: a read or write that already moved
///   bytes returns them as a short count, a fault gets `VM_FAULT_SIGBUS`, zeroing and
///   unsharing fail with it.
/// * [`IomapHook::End`]: at the bottom of `iomap_end`, *after* TestFs has done what
///   the call is for (remapped or cancelled a copy-on-write reservation, freed blocks a
///   short write allocated past EOF), so the filesystem stays consistent and no
///   written byte is lost; only the engine is told "error". It then does what the
///   kernel's `iomap_iter` does: the error ends the operation only if the mapping made
///   no progress, and is ignored otherwise. An `iomap_end` that failed *before* its
///   work would leave a CoW reservation unremapped after the engine reported the
///   bytes written, which is a filesystem bug to find by reading, not a case the
///   engine can do anything about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum IomapHook {
    /// `iomap_begin`, before it looks at anything.
    Begin,
    /// `iomap_end`, after it has done its work.
    End,
}

impl IomapHook {
    fn index(self) -> usize {
        match self {
            IomapHook::Begin => 0,
            IomapHook::End => 1,
        }
    }
}

/// The injection state of one mounted filesystem.
pub(crate) struct IomapInjections {
    /// Whether a plan was ever set: lets every call skip the mutex on a filesystem
    /// nobody injects into. Sticky, as MemDevice's.
    on: AtomicBool,
    plans: Mutex<[Option<Injected>; 2]>,
    calls: CallCounts,
}

impl IomapInjections {
    pub(crate) fn new() -> Self {
        IomapInjections {
            on: AtomicBool::new(false),
            plans: Mutex::new([None, None]),
            calls: CallCounts::new(),
        }
    }

    /// Sets the plan for `hook` (replacing any).
    pub(crate) fn set(&self, hook: IomapHook, schedule: FailSchedule, err: DaxError) {
        self.plans.lock()[hook.index()] = Some(Injected::new(schedule, err));
        self.on.store(true, Ordering::Release);
    }

    /// Removes both plans.
    pub(crate) fn clear(&self) {
        *self.plans.lock() = [None, None];
    }

    /// Calls of `hook` so far (injected failures included).
    pub(crate) fn calls(&self, hook: IomapHook) -> u64 {
        self.calls.get(hook.index())
    }

    /// Counts a call at `hook` and returns the injected error, if one is due.
    #[inline]
    pub(crate) fn enter(&self, hook: IomapHook) -> Result<(), DaxError> {
        self.calls.count(hook.index());
        if !self.on.load(Ordering::Acquire) {
            return Ok(());
        }
        let mut plans = self.plans.lock();
        let slot = &mut plans[hook.index()];
        let Some(plan) = slot else {
            return Ok(());
        };
        let (fail, used_up) = plan.next();
        let err = fail.then(|| plan.err.clone());
        if used_up {
            *slot = None;
        }
        err.map_or(Ok(()), Err)
    }
}
