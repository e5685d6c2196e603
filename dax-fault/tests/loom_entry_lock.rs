//! Loom model of the entry-lock protocol: every interleaving of two faults grabbing
//! one entry and a writeback-style walk that only looks at it must end (no lost
//! wake-up, the wake-next baton included) with the lock never held twice.
//!
//! Run: `RUSTFLAGS="--cfg loom" cargo test --release -p dax-fault --test loom_entry_lock`
//! (normal builds compile this file to nothing).
#![cfg(loom)]

use loom::sync::Arc;
use loom::sync::atomic::{AtomicBool, Ordering};

use dax_fault::index::MappingIndex;

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

#[test]
fn writeback_waiting_on_a_deleted_entry_skips_it() {
    // Edge 80 / 2.11.4: writeback finds the entry locked by a fault, waits; the
    // holder deletes it (truncate); writeback must wake and skip, never deadlock.
    use dax_device::Pfn;
    use dax_fault::index::Entry;
    loom::model(|| {
        let ix = Arc::new(MappingIndex::new());
        let mut e = ix.grab(0, 0, &mut |_, _| {}).unwrap();
        e.insert(
            Entry::real(0, Pfn(512)),
            0,
            true,
            false,
            false,
            &mut |_, _| {},
        );
        assert_eq!(ix.tag_towrite(0, 0), 1);
        let ix2 = ix.clone();
        let wb = loom::thread::spawn(move || {
            let got = ix2.lock_for_writeback(0, Pfn(512)).unwrap();
            got.is_some()
        });
        e.delete();
        // Either writeback never saw the entry locked and found nothing, or it waited
        // and found it gone: it never locks a deleted entry.
        assert!(!wb.join().unwrap());
        assert!(ix.is_empty());
    });
}

#[test]
fn pmd_and_pte_grabs_on_one_range_settle_on_the_pte() {
    // 2.11.3: a PMD grab and a PTE grab over the same 2 MiB. Whatever the order, the
    // PTE entry wins (a PMD never evicts a PTE; a PTE downgrades an empty PMD) and
    // nobody deadlocks.
    loom::model(|| {
        let ix = Arc::new(MappingIndex::new());
        let (a, b) = (ix.clone(), ix.clone());
        let pmd = loom::thread::spawn(move || a.grab(0, 9, &mut |_, _| {}).map(drop).is_ok());
        let pte = loom::thread::spawn(move || drop(b.grab(5, 0, &mut |_, _| {}).unwrap()));
        let _ = pmd.join().unwrap();
        pte.join().unwrap();
        let e = ix.lookup(5).unwrap();
        assert_eq!((e.start, e.entry.order, e.locked), (5, 0, false));
        assert_eq!(ix.nrpages(), 1);
    });
}
