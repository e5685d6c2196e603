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
    pub(crate) use loom::sync::atomic::{Ordering, fence};
    pub(crate) use loom::thread_local;

    use crate::loom_membarrier::ipi_point;

    /// loom's atomics, each operation preceded by a point where the simulated
    /// membarrier may interrupt the thread ([`crate::loom_membarrier`]; nothing
    /// happens there unless a model uses the asymmetric fences).
    macro_rules! atomic {
        ($name:ident, $t:ty) => {
            #[derive(Debug, Default)]
            pub(crate) struct $name(loom::sync::atomic::$name);

            #[allow(dead_code)] // not every type uses every operation
            impl $name {
                pub(crate) fn new(v: $t) -> Self {
                    $name(loom::sync::atomic::$name::new(v))
                }

                pub(crate) fn load(&self, o: Ordering) -> $t {
                    ipi_point();
                    self.0.load(o)
                }

                pub(crate) fn store(&self, v: $t, o: Ordering) {
                    ipi_point();
                    self.0.store(v, o)
                }

                pub(crate) fn fetch_add(&self, v: $t, o: Ordering) -> $t {
                    ipi_point();
                    self.0.fetch_add(v, o)
                }

                pub(crate) fn fetch_and(&self, v: $t, o: Ordering) -> $t {
                    ipi_point();
                    self.0.fetch_and(v, o)
                }

                pub(crate) fn fetch_or(&self, v: $t, o: Ordering) -> $t {
                    ipi_point();
                    self.0.fetch_or(v, o)
                }

                pub(crate) fn compare_exchange(
                    &self,
                    current: $t,
                    new: $t,
                    success: Ordering,
                    failure: Ordering,
                ) -> Result<$t, $t> {
                    ipi_point();
                    self.0.compare_exchange(current, new, success, failure)
                }
            }
        };
    }

    atomic!(AtomicU32, u32);
    atomic!(AtomicU64, u64);
    atomic!(AtomicUsize, usize);

    /// A mutex (loom's under `--cfg loom`) with parking_lot's `lock` signature; a
    /// thread taking it leaves the simulated membarrier's CPUs meanwhile
    /// ([`crate::loom_membarrier::lock`]).
    #[derive(Debug)]
    pub(crate) struct Mutex<T>(loom::sync::Mutex<T>);

    impl<T> Mutex<T> {
        pub(crate) fn new(value: T) -> Self {
            Mutex(loom::sync::Mutex::new(value))
        }

        pub(crate) fn lock(&self) -> loom::sync::MutexGuard<'_, T> {
            crate::loom_membarrier::lock(|| self.0.lock().expect("loom mutex poisoned"))
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
