//! Loom models of the page-table lock on [`SimPageTable`] (the contract of
//! `dax_fault::PageTable`: every change to a slot is one step under the lock of its
//! 2 MiB block): an insertion racing a zap, two insertions racing each other, an
//! in-place upgrade (mkwrite) racing writeback's write-protect (mkclean) for a PTE and
//! for a huge mapping, a private copy-on-write page racing a zap (that takes private
//! pages, and one that spares them) and racing a read fault, a 2 MiB fault racing a
//! 4 KiB fault in its block, and a split racing a 4 KiB fault under the huge mapping.
//! Every interleaving must leave slots that agree with what each call reported, and
//! a private page's PTE and contents together or not at all.
//!
//! Run: `RUSTFLAGS="--cfg loom" cargo test --release -p dax-fault --test loom_page_table`
//! (normal builds compile this file to nothing).
#![cfg(loom)]

use loom::sync::Arc;

use dax_device::{DaxDevice, PAGE_SIZE, Pfn};
use dax_fault::sim::{SimPageTable, SimTarget};
use dax_fault::{Inserted, MapTarget, PageTable, PmdSlot, PmdValue, Pte, PteValue};
use dax_testdev::MemDevice;

/// A 2 MiB-aligned address.
const ADDR: u64 = 2 << 20;
const PAGE: u64 = PAGE_SIZE as u64;
const PMD: u64 = 2 << 20;
const PFN: Pfn = Pfn(0x1234);
/// A 512-aligned pfn, for huge mappings.
const HUGE_PFN: Pfn = Pfn(0x1200);

fn device() -> std::sync::Arc<DaxDevice> {
    // Built inside each model run (its locks are loom's); the threads only read its
    // address.
    MemDevice::builder().size(1 << 20).build().unwrap()
}

fn target(dev: &DaxDevice) -> MapTarget<'_> {
    MapTarget {
        pfn: PFN,
        pgoff: 0,
        dev,
    }
}

fn huge_target(dev: &DaxDevice) -> MapTarget<'_> {
    MapTarget {
        pfn: HUGE_PFN,
        pgoff: 0,
        dev,
    }
}

#[test]
fn an_insert_racing_a_zap_leaves_what_the_last_one_did() {
    loom::model(|| {
        let dev = device();
        let pt = Arc::new(SimPageTable::new());
        let (pt2, dev2) = (pt.clone(), dev.clone());
        let ins = loom::thread::spawn(move || {
            pt2.insert_pte(ADDR, PteValue::Page(target(&dev2)), false, false)
                .unwrap()
        });
        pt.unmap(ADDR, PAGE, false);
        let outcome = ins.join().unwrap();
        // The slot started empty, so the insertion always inserts; the zap either
        // came after it (empty now) or before it (the page is there).
        assert_eq!(outcome, Inserted::New);
        match pt.pte(ADDR) {
            None => {}
            Some(Pte::Page { pfn, writable, .. }) => assert!(pfn == PFN && !writable),
            other => panic!("unexpected slot {other:?}"),
        }
    });
}

#[test]
fn of_two_racing_inserts_exactly_one_inserts() {
    loom::model(|| {
        let dev = device();
        let pt = Arc::new(SimPageTable::new());
        let spawn = |write: bool| {
            let (pt, dev) = (pt.clone(), dev.clone());
            loom::thread::spawn(move || {
                pt.insert_pte(ADDR, PteValue::Page(target(&dev)), write, write)
                    .unwrap()
            })
        };
        let (a, b) = (spawn(false), spawn(true));
        let (a, b) = (a.join().unwrap(), b.join().unwrap());
        let news = [a, b].iter().filter(|&&o| o == Inserted::New).count();
        assert_eq!(news, 1, "{a:?} {b:?}");
        // The writer's page ends up writable whichever came first: it inserted it
        // writable, or upgraded the reader's in place.
        assert!(matches!(b, Inserted::New | Inserted::Upgraded), "{b:?}");
        assert_eq!(
            pt.pte(ADDR),
            Some(Pte::Page {
                pfn: PFN,
                writable: true,
                dirty: true
            })
        );
    });
}

#[test]
fn mkwrite_racing_mkclean_never_leaves_a_writable_clean_page() {
    loom::model(|| {
        let dev = device();
        let pt = Arc::new(SimPageTable::new());
        pt.insert_pte(ADDR, PteValue::Page(target(&dev)), false, false)
            .unwrap();
        let (pt2, dev2) = (pt.clone(), dev.clone());
        let mkwrite = loom::thread::spawn(move || {
            pt2.insert_pte(ADDR, PteValue::Page(target(&dev2)), true, true)
                .unwrap()
        });
        pt.wrprotect(ADDR, PAGE, PFN, 1);
        assert_eq!(mkwrite.join().unwrap(), Inserted::Upgraded);
        // Either writeback cleaned the upgraded page (read-only and clean: the next
        // store faults again) or the upgrade came after it (writable and dirty, so
        // the next writeback flushes it). Never writable but clean: a lost store.
        match pt.pte(ADDR) {
            Some(Pte::Page {
                writable, dirty, ..
            }) => assert_eq!(writable, dirty),
            other => panic!("unexpected slot {other:?}"),
        }
    });
}

/// A private copy-on-write page's contents, as the fault copied them.
fn cow_data() -> Box<[u8; PAGE_SIZE]> {
    Box::new([0x5a; PAGE_SIZE])
}

/// Whether a private page is mapped at `addr`, checking that the slot and the private
/// page's contents agree: a private PTE always has its (whole) copy, and no copy
/// outlives its PTE.
fn private_mapped(pt: &SimPageTable, addr: u64) -> bool {
    let mut buf = [0u8; PAGE_SIZE];
    let has_copy = pt.read_private(addr, 0, &mut buf);
    match pt.resolve(addr) {
        Some(SimTarget::Private { writable }) => {
            assert!(writable, "a fresh copy-on-write page is writable");
            assert!(has_copy, "private PTE without its page");
            assert_eq!(buf, *cow_data(), "private page not copied whole");
            true
        }
        other => {
            assert!(!has_copy, "private page left behind by its PTE ({other:?})");
            false
        }
    }
}

/// The contract: `insert_private` fills an empty slot in one step (PTE and copy
/// together) and `unmap(.., even_cows = true)` removes private pages with their
/// copies, in one step under the same lock. So whichever runs last decides: the zap
/// (nothing left: no PTE, no copy) or the copy-on-write fault (its page, whole). Never
/// a PTE without its copy, a copy without its PTE, or a fault that reports a page
/// it did not map.
#[test]
fn a_cow_racing_a_zap_of_cows_leaves_what_the_last_one_did() {
    loom::model(|| {
        let pt = Arc::new(SimPageTable::new());
        let pt2 = pt.clone();
        let cow = loom::thread::spawn(move || pt2.insert_private(ADDR, &cow_data()).unwrap());
        pt.unmap(ADDR, PAGE, true);
        // The slot started empty: the fault always maps its copy.
        assert_eq!(cow.join().unwrap(), Inserted::New);
        // Mapped means the fault came after the zap; empty, before.
        private_mapped(&pt, ADDR);
    });
}

/// A zap that spares private pages (`even_cows` false: truncate's first pass,
/// `unmap_mapping_pages(.., false)`) never takes a racing copy-on-write page, whatever
/// the order, while it still removes the device page next to it.
#[test]
fn a_zap_that_spares_cows_never_takes_a_racing_private_page() {
    loom::model(|| {
        let dev = device();
        let pt = Arc::new(SimPageTable::new());
        pt.insert_pte(ADDR + PAGE, PteValue::Page(target(&dev)), false, false)
            .unwrap();
        let pt2 = pt.clone();
        let cow = loom::thread::spawn(move || pt2.insert_private(ADDR, &cow_data()).unwrap());
        pt.unmap(ADDR, 2 * PAGE, false);
        assert_eq!(cow.join().unwrap(), Inserted::New);
        assert!(private_mapped(&pt, ADDR), "the zap took a private page");
        assert_eq!(pt.pte(ADDR + PAGE), None, "the zap left the device page");
    });
}

/// A copy-on-write fault and a read fault on a shared mapping of the same slot (two
/// VMAs over one page table cannot race there, but one thread's private fault and
/// another's read can): exactly one maps its page, the other finds the slot taken
/// (NOPAGE), and the slot holds the winner's page: a private one with its copy, or
/// the device page and no copy.
#[test]
fn of_a_cow_and_a_read_fault_racing_for_a_slot_exactly_one_maps() {
    loom::model(|| {
        let dev = device();
        let pt = Arc::new(SimPageTable::new());
        let pt2 = pt.clone();
        let cow = loom::thread::spawn(move || pt2.insert_private(ADDR, &cow_data()).unwrap());
        let read = pt
            .insert_pte(ADDR, PteValue::Page(target(&dev)), false, false)
            .unwrap();
        let cow = cow.join().unwrap();
        let private = private_mapped(&pt, ADDR);
        match (cow, read) {
            (Inserted::New, Inserted::Present) => assert!(private),
            (Inserted::Present, Inserted::New) => {
                assert!(!private);
                assert_eq!(pt.pte(ADDR).and_then(|p| p.pfn()), Some(PFN));
            }
            other => panic!("not exactly one insertion: {other:?}"),
        }
    });
}

/// A 2 MiB fault and a 4 KiB fault in the same block: exactly one maps. If the PMD
/// fault wins, the block is one huge mapping and the PTE fault found it (NOPAGE); if
/// the PTE fault wins, the block has a table with its page and the PMD fault left it
/// (never a huge mapping laid over a table that holds a page it reported mapped).
#[test]
fn a_pmd_fault_racing_a_pte_fault_in_its_block_never_covers_the_pte() {
    loom::model(|| {
        let dev = device();
        let pt = Arc::new(SimPageTable::new());
        let (pt2, dev2) = (pt.clone(), dev.clone());
        let pmd = loom::thread::spawn(move || {
            pt2.insert_pmd(ADDR, PmdValue::Page(huge_target(&dev2)), false, false)
                .unwrap()
        });
        let pte = pt
            .insert_pte(ADDR + 5 * PAGE, PteValue::Page(target(&dev)), false, false)
            .unwrap();
        match (pmd.join().unwrap(), pte) {
            (Inserted::New, Inserted::Present) => {
                assert!(matches!(pt.pmd(ADDR), PmdSlot::Huge { pfn, .. } if pfn == HUGE_PFN));
                assert_eq!(pt.pte(ADDR + 5 * PAGE), None);
            }
            (Inserted::Present, Inserted::New) => {
                assert_eq!(pt.pmd(ADDR), PmdSlot::Table);
                assert_eq!(pt.pte(ADDR + 5 * PAGE).and_then(|p| p.pfn()), Some(PFN));
            }
            other => panic!("not exactly one insertion: {other:?}"),
        }
    });
}

/// Splitting a huge mapping (`split_huge_pmd`, which removes a DAX one) against a
/// 4 KiB fault under it: the fault either came first and found the huge mapping
/// (NOPAGE; the split then leaves the block empty) or came after the split and
/// mapped its page in a table. Never a PTE under a huge mapping, nor a fault that
/// reports a page the split then took away.
#[test]
fn a_split_racing_a_pte_fault_under_the_huge_mapping() {
    loom::model(|| {
        let dev = device();
        let pt = Arc::new(SimPageTable::new());
        pt.insert_pmd(ADDR, PmdValue::Page(huge_target(&dev)), false, false)
            .unwrap();
        let (pt2, dev2) = (pt.clone(), dev.clone());
        let fault = loom::thread::spawn(move || {
            pt2.insert_pte(ADDR + 5 * PAGE, PteValue::Page(target(&dev2)), false, false)
                .unwrap()
        });
        pt.split_pmd(ADDR);
        match fault.join().unwrap() {
            Inserted::Present => assert!(!pt.any_mapped(ADDR, PMD), "split left a mapping"),
            Inserted::New => {
                assert_eq!(pt.pmd(ADDR), PmdSlot::Table);
                assert_eq!(pt.pte(ADDR + 5 * PAGE).and_then(|p| p.pfn()), Some(PFN));
            }
            other => panic!("unexpected outcome {other:?}"),
        }
    });
}

/// mkwrite racing mkclean on a huge mapping, as for a PTE: never writable but clean.
#[test]
fn pmd_mkwrite_racing_mkclean_never_leaves_a_writable_clean_mapping() {
    loom::model(|| {
        let dev = device();
        let pt = Arc::new(SimPageTable::new());
        pt.insert_pmd(ADDR, PmdValue::Page(huge_target(&dev)), false, false)
            .unwrap();
        let (pt2, dev2) = (pt.clone(), dev.clone());
        let mkwrite = loom::thread::spawn(move || {
            pt2.insert_pmd(ADDR, PmdValue::Page(huge_target(&dev2)), true, true)
                .unwrap()
        });
        pt.wrprotect(ADDR, PMD, HUGE_PFN, 512);
        assert_eq!(mkwrite.join().unwrap(), Inserted::Upgraded);
        match pt.pmd(ADDR) {
            PmdSlot::Huge {
                writable, dirty, ..
            } => assert_eq!(writable, dirty),
            other => panic!("unexpected slot {other:?}"),
        }
    });
}
