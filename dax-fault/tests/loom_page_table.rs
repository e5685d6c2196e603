//! Loom models of the page-table lock on [`SimPageTable`]: an insertion racing a zap,
//! two insertions racing each other, and an in-place upgrade (mkwrite) racing
//! writeback's write-protect (mkclean). Every interleaving must leave a slot that
//! agrees with what each call reported.
//!
//! Run: `RUSTFLAGS="--cfg loom" cargo test --release -p dax-fault --test loom_page_table`
//! (normal builds compile this file to nothing).
#![cfg(loom)]

use loom::sync::Arc;

use dax_device::{DaxDevice, Pfn};
use dax_fault::sim::SimPageTable;
use dax_fault::{Inserted, MapTarget, PageTable, Pte, PteValue};
use dax_testdev::MemDevice;

const ADDR: u64 = 2 << 20;
const PFN: Pfn = Pfn(0x1234);

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
        pt.unmap(ADDR, 4096, false);
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
        pt.wrprotect(ADDR, 4096, PFN, 1);
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
