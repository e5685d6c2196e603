//! [`CallCounts`]: how many times each [`DevOp`](crate::DevOp) of one
//! [`MemDevice`](crate::MemDevice) was called, counted per thread.
//!
//! One shared `AtomicU64::fetch_add` per device call is a locked read-modify-write on
//! every read, write and fault (about 8-10 ns uncontended, and a cache line bouncing
//! between threads when they share the device). Instead each thread counts in a slot
//! of its own: only that thread ever writes it, so a relaxed load and store lose no
//! increment and need no locked instruction, and a reader sums every slot. A count
//! read while other threads are still calling is a snapshot, as with one shared
//! counter; counts of threads that have been joined are exact.

use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

/// Counters a [`CallCounts`] keeps per thread.
pub(crate) const N_COUNTERS: usize = 8;

type Slot = [AtomicU64; N_COUNTERS];

/// Device identities: never reused, so a thread's slot can never be taken for another
/// device's.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// This thread's slots, by device identity. The device's registry holds the other
    /// reference to each; once the device is gone the slot is this thread's alone and
    /// is dropped the next time the thread registers a slot.
    static SLOTS: RefCell<Vec<(u64, Arc<Slot>)>> = const { RefCell::new(Vec::new()) };
}

/// Per-thread call counters of one device.
pub(crate) struct CallCounts {
    id: u64,
    /// Every thread's slot for this device (threads that exited included).
    slots: Mutex<Vec<Arc<Slot>>>,
    /// Calls made where this thread's slots are unreachable (from a thread-local
    /// destructor, after the thread's own storage is gone).
    fallback: Slot,
}

impl CallCounts {
    pub(crate) fn new() -> Self {
        CallCounts {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            slots: Mutex::new(Vec::new()),
            fallback: Default::default(),
        }
    }

    /// Counts one call of counter `i` (< [`N_COUNTERS`]).
    #[inline]
    pub(crate) fn count(&self, i: usize) {
        let found = SLOTS.try_with(|slots| {
            let slots = slots.borrow();
            match slots.iter().find(|(id, _)| *id == self.id) {
                Some((_, slot)) => {
                    bump(&slot[i]);
                    true
                }
                None => false,
            }
        });
        match found {
            Ok(true) => {}
            Ok(false) => self.count_first(i),
            Err(_) => {
                self.fallback[i].fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// The first call of this thread on this device: a slot for it.
    #[cold]
    fn count_first(&self, i: usize) {
        let slot: Arc<Slot> = Arc::default();
        bump(&slot[i]);
        self.slots.lock().push(slot.clone());
        // If the thread's storage is being torn down the count stays in the registered
        // slot; later calls go to the fallback.
        let _ = SLOTS.try_with(|slots| {
            let mut slots = slots.borrow_mut();
            slots.retain(|(_, s)| Arc::strong_count(s) > 1);
            slots.push((self.id, slot));
        });
    }

    /// Calls counted by counter `i` in every thread.
    pub(crate) fn get(&self, i: usize) -> u64 {
        let slots = self.slots.lock();
        slots
            .iter()
            .map(|s| s[i].load(Ordering::Relaxed))
            .sum::<u64>()
            + self.fallback[i].load(Ordering::Relaxed)
    }
}

/// Adds one to a counter that only the calling thread writes: no increment can be
/// lost between the load and the store, so no locked instruction is needed.
#[inline]
fn bump(c: &AtomicU64) {
    c.store(c.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_from_every_thread_add_up() {
        let c = CallCounts::new();
        let other = CallCounts::new();
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for k in 0..1000 {
                        c.count(k % 2);
                        other.count(2);
                    }
                });
            }
        });
        c.count(1);
        assert_eq!((c.get(0), c.get(1), c.get(2)), (2000, 2001, 0));
        assert_eq!(other.get(2), 4000);
    }

    #[test]
    fn a_thread_forgets_the_slots_of_dropped_devices() {
        for _ in 0..100 {
            let c = CallCounts::new();
            c.count(0);
            assert_eq!(c.get(0), 1);
        }
        // Each registration dropped the slots of the devices before it.
        assert!(SLOTS.with(|s| s.borrow().len()) <= 1);
    }
}
