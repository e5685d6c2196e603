//! Loom model of the entry-lock protocol: every interleaving of two faults grabbing
//! one entry and a writeback-style walk that only looks at it must end (no lost
//! wake-up, the wake-next baton included) with the lock never held twice.
//!
//! Run: `RUSTFLAGS="--cfg loom" cargo test --release -p dax-fault --test loom_entry_lock`
//! (normal builds compile this file to nothing).
#![cfg(loom)]

use loom::sync::Arc;
use loom::sync::atomic::{AtomicBool, Ordering};

use dax_fault::MappingIndex;

#[test]
fn two_grabbers_and_a_looker_never_deadlock_or_share_the_lock() {
    loom::model(|| {
        let ix = Arc::new(MappingIndex::new());
        let held = Arc::new(AtomicBool::new(false));
        let grabber = |ix: Arc<MappingIndex>, held: Arc<AtomicBool>| {
            move || {
                let e = ix.grab(0, 0, &mut |_, _| {}).unwrap();
                assert!(!held.swap(true, Ordering::SeqCst), "entry lock held twice");
                held.store(false, Ordering::SeqCst);
                drop(e);
            }
        };
        let t1 = loom::thread::spawn(grabber(ix.clone(), held.clone()));
        let t2 = loom::thread::spawn(grabber(ix.clone(), held.clone()));
        let ix3 = ix.clone();
        let t3 = loom::thread::spawn(move || ix3.clear_dirty_range(0, 0));
        t1.join().unwrap();
        t2.join().unwrap();
        t3.join().unwrap();
        assert_eq!(ix.nrpages(), 1);
        assert!(!ix.lookup(0).unwrap().locked);
    });
}

#[test]
fn delete_while_others_wait_wakes_them_all() {
    loom::model(|| {
        let ix = Arc::new(MappingIndex::new());
        let holder = ix.grab(0, 0, &mut |_, _| {}).unwrap();
        let waiters: Vec<_> = (0..2)
            .map(|_| {
                let ix = ix.clone();
                loom::thread::spawn(move || drop(ix.grab(0, 0, &mut |_, _| {}).unwrap()))
            })
            .collect();
        holder.delete();
        for w in waiters {
            w.join().unwrap();
        }
        assert!(!ix.lookup(0).unwrap().locked);
    });
}
