//! An SRCU-like read-side section: the writer waits for every section that began
//! before it (`srcu_read_lock`/`srcu_read_unlock`/`synchronize_srcu`, as used by
//! `dax_read_lock` and `kill_dax` in drivers/dax/super.c).
//!
//! Two reader counters and an epoch: a reader increments the counter of the current
//! epoch and decrements the same one when it ends; the writer advances the epoch twice
//! and after each advance waits until the counter readers used before it drains. New
//! readers therefore never delay a writer (no starvation), and sections nest freely.
//!
//! What the DAX device relies on (all operations on the counters and the device's
//! flag word are `SeqCst`): a writer first clears ALIVE, then [`Srcu::synchronize`].
//! For any reader, the writer's load that finally sees that reader's counter at 0 is
//! either after the reader's decrement (the section is over, and its accesses
//! happen-before the writer returns through the Release/Acquire pair on the counter)
//! or before the reader's increment in the single total order of `SeqCst` operations,
//! in which case the reader's later load of the flags sees ALIVE clear.

use crate::sync::{AtomicUsize, Mutex, Ordering};

/// Reader counters padded apart so readers of the two epochs do not share a line.
#[repr(align(128))]
#[derive(Default)]
struct Counter(AtomicUsize);

#[derive(Default)]
pub(crate) struct Srcu {
    epoch: AtomicUsize,
    readers: [Counter; 2],
    writer: Mutex<()>,
}

impl Srcu {
    /// Begins a section; the returned index must be passed to [`Srcu::read_unlock`].
    #[inline]
    pub(crate) fn read_lock(&self) -> usize {
        let idx = self.epoch.load(Ordering::SeqCst) & 1;
        self.readers[idx].0.fetch_add(1, Ordering::SeqCst);
        idx
    }

    /// Ends a section begun with [`Srcu::read_lock`].
    #[inline]
    pub(crate) fn read_unlock(&self, idx: usize) {
        self.readers[idx].0.fetch_sub(1, Ordering::Release);
    }

    /// Waits until every section that began before this call has ended.
    pub(crate) fn synchronize(&self) {
        let _serialize = self.writer.lock();
        for _ in 0..2 {
            let old = self.epoch.fetch_add(1, Ordering::SeqCst) & 1;
            let mut spins = 0u32;
            while self.readers[old].0.load(Ordering::SeqCst) != 0 {
                spins += 1;
                if spins < 64 {
                    std::hint::spin_loop();
                } else if spins < 256 {
                    std::thread::yield_now();
                } else {
                    std::thread::sleep(std::time::Duration::from_micros(50));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;

    #[test]
    fn synchronize_without_readers_returns() {
        let s = Srcu::default();
        s.synchronize();
        s.synchronize();
    }

    #[test]
    fn synchronize_waits_for_earlier_section_but_not_later_ones() {
        let s = Arc::new(Srcu::default());
        let idx = s.read_lock();
        let ended = Arc::new(AtomicBool::new(false));
        let (s2, e2) = (s.clone(), ended.clone());
        let writer = std::thread::spawn(move || {
            s2.synchronize();
            e2.load(Ordering::SeqCst)
        });
        std::thread::sleep(std::time::Duration::from_millis(20));
        // A section begun now (after the writer started) must not be waited for
        // indefinitely: keep it open while the earlier one ends.
        let late = s.read_lock();
        ended.store(true, Ordering::SeqCst);
        s.read_unlock(idx);
        // The writer may or may not wait for `late` (it began concurrently); it must
        // finish once the early section is over and `late` is released.
        s.read_unlock(late);
        assert!(
            writer.join().unwrap(),
            "synchronize returned before the section ended"
        );
    }
}
