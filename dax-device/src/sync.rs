//! The locks, atomics and thread-locals dax-device uses, in one place so that a
//! `--cfg loom` build swaps in loom's versions and model-checks the read-section
//! protocol of [`crate::srcu`].
//!
//! Both flavours expose the same small API: `Mutex::new`, `Mutex::lock` returning the
//! guard, the atomic types with `fence`, `thread_local!`, and [`backoff`] for wait
//! loops (the one backoff of the crate, for every wait loop).

/// How long a wait loop may have to wait, which decides whether [`backoff`] ever
/// sleeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wait {
    /// For read sections to end ([`crate::srcu`]'s grace period in `kill`): they may
    /// last as long as an I/O, so after spinning and yielding the waiter sleeps 50 µs
    /// at a time rather than keep a core from the readers it waits for.
    Long,
    /// For a writer to finish publishing a few hundred words ([`crate::SeqCount`]
    /// readers, such as [`crate::badblocks`]'s): the wait is short and the reader is on the I/O path, so it
    /// spins, then yields, and never sleeps.
    Short,
}

#[cfg(not(loom))]
mod imp {
    pub(crate) use parking_lot::Mutex;
    pub(crate) use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering, fence};
    pub(crate) use std::thread_local;

    use super::Wait;

    /// One step of a wait loop: spin briefly, then yield; for a [`Wait::Long`], after
    /// 256 steps, sleep 50 µs at a time.
    pub(crate) fn backoff(spins: &mut u32, wait: Wait) {
        *spins = spins.saturating_add(1);
        if *spins < 64 {
            std::hint::spin_loop();
        } else if *spins < 256 || wait == Wait::Short {
            std::thread::yield_now();
        } else {
            std::thread::sleep(std::time::Duration::from_micros(50));
        }
    }
}

#[cfg(loom)]
mod imp {
    pub(crate) use loom::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering, fence};
    pub(crate) use loom::thread_local;

    /// A mutex (loom's under `--cfg loom`) with parking_lot's `lock` signature.
    #[derive(Debug)]
    pub(crate) struct Mutex<T>(loom::sync::Mutex<T>);

    impl<T> Mutex<T> {
        pub(crate) fn new(value: T) -> Self {
            Mutex(loom::sync::Mutex::new(value))
        }

        pub(crate) fn lock(&self) -> loom::sync::MutexGuard<'_, T> {
            self.0.lock().expect("loom mutex poisoned")
        }
    }

    impl<T: Default> Default for Mutex<T> {
        fn default() -> Self {
            Mutex::new(T::default())
        }
    }

    /// One step of a wait loop, however long the wait: let loom run another thread.
    pub(crate) fn backoff(_spins: &mut u32, _wait: super::Wait) {
        loom::thread::yield_now();
    }
}

pub(crate) use imp::*;
