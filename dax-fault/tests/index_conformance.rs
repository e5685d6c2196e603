//! Conformance tests for the mapping index and its entry-lock protocol (reference
//! §1.5 ENT-01..ENT-11, §2.5, edge cases 66, 67, 68, 75, 82, 83, 104, quirk Q14).
#![cfg(not(loom))]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use dax_device::Pfn;
use dax_fault::index::{Entry, EntryKind, GrabError, MappingIndex, Marks, bits};

fn no_unmap() -> impl FnMut(u64, u64) {
    |_, _| panic!("nothing should be unmapped here")
}

#[test]
fn ent01_value_encoding_matches_the_kernel() {
    // ref: ENT-01
    assert_eq!(
        (
            bits::LOCKED,
            bits::PMD,
            bits::ZERO_PAGE,
            bits::EMPTY,
            bits::SHIFT
        ),
        (1, 2, 4, 8, 4)
    );
    assert_eq!(Entry::real(0, Pfn(0x123)).encode(false), 0x1230);
    assert_eq!(Entry::real(9, Pfn(0x200)).encode(true), 0x2000 | 1 | 2);
    assert_eq!(Entry::zero(0, Pfn(7)).encode(false), 0x70 | 4);
    assert_eq!(Entry::empty(9).encode(true), 1 | 2 | 8);
    assert_eq!((Entry::empty(0).pages(), Entry::empty(9).pages()), (1, 512));
}

#[test]
fn ent06_pte_grab_inserts_a_locked_empty_entry_and_counts_it() {
    // ref: ENT-06, ENT-11
    let ix = MappingIndex::new();
    let e = ix.grab(5, 0, &mut no_unmap()).unwrap();
    assert_eq!((e.start(), e.entry()), (5, Entry::empty(0)));
    let info = ix.lookup(5).unwrap();
    assert!(info.locked);
    assert_eq!(ix.nrpages(), 1);
    drop(e);
    assert!(!ix.lookup(5).unwrap().locked);
    // Grabbing again returns the same (now unlocked) entry, locked: edge 104 reuses an
    // EMPTY-PTE entry left behind (quirk Q14).
    let e = ix.grab(5, 0, &mut no_unmap()).unwrap();
    assert_eq!(e.entry(), Entry::empty(0));
    assert_eq!(ix.nrpages(), 1);
}

#[test]
fn ent07_pmd_grab_and_edge67_pte_entries_force_fallback() {
    // ref: ENT-07, edge 67, quirk Q14 (an EMPTY PTE blocks a PMD too)
    let ix = MappingIndex::new();
    let e = ix.grab(700, 9, &mut no_unmap()).unwrap();
    assert_eq!((e.start(), e.entry()), (512, Entry::empty(9)));
    assert_eq!(ix.nrpages(), 512);
    drop(e);
    let ix = MappingIndex::new();
    drop(ix.grab(1000, 0, &mut no_unmap()).unwrap());
    assert_eq!(
        ix.grab(512, 9, &mut no_unmap()).unwrap_err(),
        GrabError::Fallback
    );
    assert_eq!(
        ix.grab(600, 9, &mut no_unmap()).unwrap_err(),
        GrabError::Fallback
    );
    assert!(
        ix.grab(0, 9, &mut no_unmap()).is_ok(),
        "another 2 MiB is free"
    );
    assert_eq!(
        ix.grab(3, 4, &mut no_unmap()).unwrap_err(),
        GrabError::BadOrder
    );
}

#[test]
fn ent06_edge66_pte_grab_downgrades_a_zero_pmd() {
    // ref: ENT-06, edge 66: a PTE fault inside a ZERO-PMD entry unmaps the huge zero
    // mapping, removes the entry (-512) and continues with a PTE entry (+1).
    let ix = MappingIndex::new();
    let mut e = ix.grab(0, 9, &mut no_unmap()).unwrap();
    e.insert(
        Entry::zero(9, Pfn(0x99000)),
        0,
        false,
        false,
        false,
        &mut no_unmap(),
    );
    drop(e);
    assert_eq!(ix.nrpages(), 512);
    let mut unmapped = vec![];
    let e = ix
        .grab(7, 0, &mut |first, pages| unmapped.push((first, pages)))
        .unwrap();
    assert_eq!((e.start(), e.entry()), (7, Entry::empty(0)));
    assert_eq!(unmapped, vec![(0, 512)]);
    drop(e);
    assert_eq!(ix.nrpages(), 1);
    // An EMPTY PMD is downgraded without unmapping anything.
    let ix = MappingIndex::new();
    drop(ix.grab(0, 9, &mut no_unmap()).unwrap());
    let e = ix.grab(3, 0, &mut no_unmap()).unwrap();
    assert_eq!(e.entry(), Entry::empty(0));
}

#[test]
fn ent06_edge68_pte_grab_inside_a_real_pmd_returns_the_pmd() {
    // ref: ENT-06, edge 68: real PMDs are never split; the PMD entry is used (and a PTE
    // write then dirties all of it).
    let ix = MappingIndex::new();
    let mut e = ix.grab(0, 9, &mut no_unmap()).unwrap();
    e.insert(
        Entry::real(9, Pfn(0x40000)),
        0,
        false,
        false,
        false,
        &mut no_unmap(),
    );
    drop(e);
    let mut e = ix.grab(300, 0, &mut no_unmap()).unwrap();
    assert_eq!((e.start(), e.entry()), (0, Entry::real(9, Pfn(0x40000))));
    // Inserting a PTE-order value into it keeps the PMD entry, and dirties it whole.
    let kept = e.insert(
        Entry::real(0, Pfn(0x4012c)),
        0,
        true,
        false,
        false,
        &mut no_unmap(),
    );
    assert_eq!(kept, Entry::real(9, Pfn(0x40000)));
    drop(e);
    assert_eq!(ix.lookup(511).unwrap().marks, Marks::DIRTY);
    assert_eq!(ix.nrpages(), 512);
}

#[test]
fn ent08_insert_replacement_rules() {
    // ref: ENT-08
    let ix = MappingIndex::new();
    // EMPTY -> REAL, dirty write: replaced, DIRTY set, nothing unmapped.
    let mut e = ix.grab(1, 0, &mut no_unmap()).unwrap();
    e.insert(
        Entry::real(0, Pfn(10)),
        0,
        true,
        false,
        false,
        &mut no_unmap(),
    );
    drop(e);
    assert_eq!(ix.lookup(1).unwrap().marks, Marks::DIRTY);
    // ZERO -> REAL: the zero-page mapping is unmapped first.
    let mut e = ix.grab(2, 0, &mut no_unmap()).unwrap();
    e.insert(
        Entry::zero(0, Pfn(1)),
        0,
        false,
        false,
        false,
        &mut no_unmap(),
    );
    let mut unmapped = vec![];
    let got = e.insert(
        Entry::real(0, Pfn(20)),
        0,
        false,
        false,
        false,
        &mut |f, n| unmapped.push((f, n)),
    );
    assert_eq!((got, unmapped), (Entry::real(0, Pfn(20)), vec![(2, 1)]));
    drop(e);
    // REAL -> REAL without SHARED: the old entry stays.
    let mut e = ix.grab(2, 0, &mut no_unmap()).unwrap();
    let got = e.insert(
        Entry::real(0, Pfn(30)),
        0,
        false,
        false,
        false,
        &mut no_unmap(),
    );
    assert_eq!(got, Entry::real(0, Pfn(20)));
    // With SHARED (a CoW fault): unmapped, replaced, and TOWRITE set.
    let mut unmapped = vec![];
    let got = e.insert(Entry::real(0, Pfn(30)), 0, true, true, true, &mut |f, n| {
        unmapped.push((f, n))
    });
    assert_eq!((got, unmapped), (Entry::real(0, Pfn(30)), vec![(2, 1)]));
    drop(e);
    assert_eq!(ix.lookup(2).unwrap().marks, Marks::DIRTY | Marks::TOWRITE);
}

#[test]
fn edge82_invalidate_sync_keeps_dirty_entries_and_removes_clean_ones() {
    // ref: WB/INV, edge 82
    let ix = MappingIndex::new();
    let mut e = ix.grab(4, 0, &mut no_unmap()).unwrap();
    e.insert(
        Entry::real(0, Pfn(4)),
        0,
        true,
        false,
        false,
        &mut no_unmap(),
    );
    drop(e);
    assert!(!ix.invalidate_entry_sync(4));
    assert_eq!(ix.nrpages(), 1);
    ix.clear_dirty_range(0, 10);
    assert_eq!(ix.lookup(4).unwrap().marks, Marks::empty());
    assert!(ix.invalidate_entry_sync(4));
    assert_eq!(ix.nrpages(), 0);
    // A PMD entry: nrpages drops by 512.
    drop(ix.grab(512, 9, &mut no_unmap()).unwrap());
    assert!(ix.invalidate_entry_sync(700));
    assert!(ix.is_empty());
}

#[test]
fn edge83_delete_of_a_missing_entry_is_false() {
    // ref: edge 83
    let ix = MappingIndex::new();
    assert!(!ix.delete_entry(9));
    drop(ix.grab(9, 0, &mut no_unmap()).unwrap());
    assert!(ix.delete_entry(9));
    assert!(ix.is_empty());
}

#[test]
fn ranges_invalidate_delete_tag_and_probe() {
    // ref: ENT-11, §2.8, §2.14.2 index probe
    let ix = MappingIndex::new();
    for i in [1, 2, 3, 8] {
        let mut e = ix.grab(i, 0, &mut no_unmap()).unwrap();
        e.insert(
            Entry::real(0, Pfn(i)),
            0,
            i == 2,
            false,
            false,
            &mut no_unmap(),
        );
    }
    drop(ix.grab(512, 9, &mut no_unmap()).unwrap());
    assert_eq!(ix.next_entry(4, 100), Some((8, 1)));
    assert_eq!(
        ix.next_entry(600, 700),
        Some((512, 512)),
        "a PMD entry counts for its span"
    );
    assert_eq!(ix.next_entry(9, 511), None);
    assert_eq!(ix.tag_towrite(0, 1000), 1);
    assert_eq!(ix.lookup(2).unwrap().marks, Marks::DIRTY | Marks::TOWRITE);
    assert!(!ix.invalidate_clean(0, 10), "the dirty entry stays");
    assert_eq!(
        ix.entries().iter().map(|e| e.start).collect::<Vec<_>>(),
        vec![2, 512]
    );
    ix.delete_range(0, u64::MAX - 1);
    assert!(ix.is_empty());
    assert_eq!(ix.nrpages(), 0);
}

#[test]
fn edge75_concurrent_grabs_of_one_index_are_serialized() {
    // ref: LCK-04, edge 75: the second fault waits until the first unlocks.
    let ix = Arc::new(MappingIndex::new());
    let inside = Arc::new(AtomicBool::new(false));
    let overlaps = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (ix, inside, overlaps) = (ix.clone(), inside.clone(), overlaps.clone());
            std::thread::spawn(move || {
                for _ in 0..200 {
                    let e = ix.grab(42, 0, &mut |_, _| {}).unwrap();
                    if inside.swap(true, Ordering::SeqCst) {
                        overlaps.fetch_add(1, Ordering::SeqCst);
                    }
                    std::thread::yield_now();
                    inside.store(false, Ordering::SeqCst);
                    drop(e);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(
        overlaps.load(Ordering::SeqCst),
        0,
        "two holders of one entry lock"
    );
    assert!(!ix.lookup(42).unwrap().locked);
}

#[test]
fn a_pte_grab_waits_for_a_locked_pmd_then_downgrades_it() {
    // A waiter on a PTE inside a locked EMPTY PMD sleeps on the PMD's queue; when the
    // PMD holder unlocks, the waiter downgrades it and gets its PTE entry.
    let ix = Arc::new(MappingIndex::new());
    let pmd = ix.grab(0, 9, &mut no_unmap()).unwrap();
    let released = Arc::new(AtomicBool::new(false));
    let go = Arc::new(Barrier::new(2));
    let waiter = {
        let (ix, released, go) = (ix.clone(), released.clone(), go.clone());
        std::thread::spawn(move || {
            go.wait();
            let e = ix.grab(5, 0, &mut |_, _| {}).unwrap();
            assert!(
                released.load(Ordering::SeqCst),
                "got the PTE while the PMD was locked"
            );
            assert_eq!((e.start(), e.entry()), (5, Entry::empty(0)));
        })
    };
    go.wait();
    std::thread::sleep(Duration::from_millis(30));
    released.store(true, Ordering::SeqCst);
    drop(pmd);
    waiter.join().unwrap();
    assert_eq!(ix.nrpages(), 1);
}

#[test]
fn delete_wakes_every_waiter_and_lookers_pass_the_baton() {
    // Several threads wait on one locked entry: some to grab it, some only to look at
    // it (clear_dirty_range). Unlocking wakes one; whoever only looked must wake the
    // next, so every thread finishes. Deleting wakes all at once.
    for delete in [false, true] {
        let ix = Arc::new(MappingIndex::new());
        let holder = ix.grab(9, 0, &mut no_unmap()).unwrap();
        let done = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..6)
            .map(|i| {
                let (ix, done) = (ix.clone(), done.clone());
                std::thread::spawn(move || {
                    if i % 2 == 0 {
                        ix.clear_dirty_range(0, 20);
                    } else {
                        drop(ix.grab(9, 0, &mut |_, _| {}).unwrap());
                    }
                    done.fetch_add(1, Ordering::SeqCst);
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(
            done.load(Ordering::SeqCst),
            0,
            "someone went past a locked entry"
        );
        if delete {
            holder.delete();
        } else {
            drop(holder);
        }
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(done.load(Ordering::SeqCst), 6);
        let e = ix.lookup(9).unwrap();
        assert!(!e.locked);
        assert_eq!(e.entry.kind, EntryKind::Empty);
    }
}

#[test]
fn waiters_counts_threads_asleep_on_an_entry() {
    // The probe race tests use instead of sleeping: it sees a blocked grab, and a
    // woken waiter no longer counts.
    let ix = Arc::new(MappingIndex::new());
    let held = ix.grab(7, 0, &mut no_unmap()).unwrap();
    assert_eq!(ix.waiters(7), 0);
    let t = {
        let ix = ix.clone();
        std::thread::spawn(move || drop(ix.grab(7, 0, &mut |_, _| {}).unwrap()))
    };
    while ix.waiters(7) == 0 {
        std::thread::yield_now();
    }
    assert_eq!(ix.waiters(7), 1);
    drop(held);
    assert_eq!(ix.waiters(7), 0, "the unlock woke it");
    t.join().unwrap();
    assert!(!ix.lookup(7).unwrap().locked);
}

#[test]
fn prepare_run_reuses_matching_entries_fills_gaps_and_stops_at_anything_else() {
    // Fault-around (a dax-rs extension): pages 1.. after a faulting page 0.
    let index = MappingIndex::new();
    let base = Pfn(0x40000);
    // Page 2 already has the expected entry, page 5 a ZERO entry.
    let mut e = index.grab(2, 0, &mut no_unmap()).unwrap();
    e.insert(
        Entry::real(0, base.add(2)),
        102,
        false,
        false,
        false,
        &mut no_unmap(),
    );
    drop(e);
    let mut z = index.grab(5, 0, &mut no_unmap()).unwrap();
    z.insert(
        Entry::zero(0, Pfn(1)),
        0,
        false,
        false,
        false,
        &mut no_unmap(),
    );
    drop(z);
    let (n, created) = index.prepare_run(1, 10, base.add(1), 101);
    assert_eq!(
        (n, created),
        (4, vec![0, 2, 3]),
        "pages 1..5: gaps 1, 3, 4 and page 2 reused"
    );
    assert_eq!(index.nrpages(), 2 + 3);
    let e3 = index.lookup(3).unwrap();
    assert_eq!(
        (e3.entry, e3.pgoff, e3.locked),
        (Entry::real(0, base.add(3)), 103, false)
    );
    // A wrong pfn stops the run at once; a run to the end of the range fills it all.
    assert_eq!(index.prepare_run(2, 3, Pfn(7), 0), (0, vec![]));
    assert_eq!(
        index.prepare_run(6, 3, base.add(6), 106),
        (3, vec![0, 1, 2])
    );
}
