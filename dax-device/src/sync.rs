//! The locks, atomics and thread-locals dax-device uses, in one place so that a
//! `--cfg loom` build swaps in loom's versions and model-checks the read-section
//! protocol of [`crate::srcu`].
//!
//! Both flavours expose the same small API: `Mutex::new`, `Mutex::lock` returning the
//! guard, the atomic types with `fence`, `thread_local!`, and [`backoff`] for wait
//! loops.

#[cfg(not(loom))]
mod imp {
    pub(crate) use parking_lot::Mutex;
    pub(crate) use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering, fence};
    pub(crate) use std::thread_local;

    /// One step of a wait loop: spin briefly, then yield, then sleep 50 µs at a time.
    pub(crate) fn backoff(spins: &mut u32) {
        *spins = spins.saturating_add(1);
        if *spins < 64 {
            std::hint::spin_loop();
        } else if *spins < 256 {
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

    /// One step of a wait loop: let loom run another thread.
    pub(crate) fn backoff(_spins: &mut u32) {
        loom::thread::yield_now();
    }
}

pub(crate) use imp::*;
