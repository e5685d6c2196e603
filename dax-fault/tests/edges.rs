//! Calls at the edges of their argument types: ranges that run to `u64::MAX` ("to the
//! end of the file", as the kernel's `-1`/`LLONG_MAX` ends), walks over huge ranges
//! that must cost what exists in them, indices at the top of the index, and fault
//! flags a memory manager never produces. Each names the bug it guards against.

use std::sync::mpsc;

use dax_device::MfFlags;
use dax_fault::pages::pin_user_pages;
use dax_fault::{
    FaultFlags, PageTable, Pte, VmFault, Vma, Vmf, WritebackControl, dax_delete_mapping_range,
    dax_layout_busy_page_range, dax_writeback_mapping_range, mf_dax_kill_procs,
};
use dax_iomap::MappingOps;
use dax_testkit::fault::*;

/// A file of four mapped pages, each faulted in (read) through a shared mapping.
fn four_mapped_pages() -> (
    std::sync::Arc<ScriptedFs>,
    std::sync::Arc<Space>,
    std::sync::Arc<dax_fault::MappedVma>,
) {
    let fs = ScriptedFs::new(8 * MIB, 4 * PAGE);
    fs.ext(Ext::mapped(0, 4 * PAGE, 0));
    let (space, vma) = fs.map_rw(4 * PAGE);
    for p in 0..4 {
        assert_eq!(rd(&fs, &vma, BASE + p * PAGE), VmFault::NOPAGE);
    }
    assert_eq!(space.ptes().len(), 4);
    (fs, space, vma)
}

/// Runs `f` on another thread and fails if it does not return within the watchdog.
fn returns<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(WATCHDOG)
        .unwrap_or_else(|_| panic!("{what} did not return within {WATCHDOG:?}"))
}

#[test]
fn edge17_invalidate_to_the_end_unmaps_every_page() {
    // Issue 17, item 1: invalidate_range(0, u64::MAX) emptied the index but left the
    // four PTEs mapped (the page count overflowed to 0).
    let (fs, space, _vma) = four_mapped_pages();
    fs.mapping.invalidate_range(0..=u64::MAX).unwrap();
    assert_eq!(fs.mapping.index().nrpages(), 0);
    assert!(space.ptes().is_empty(), "{:?}", space.ptes());
}

#[test]
fn edge17_unmap_with_a_count_past_u64_max_means_to_the_end() {
    let (fs, space, _vma) = four_mapped_pages();
    fs.mapping.unmap_mapping_pages(2, u64::MAX, false);
    let left: Vec<u64> = space
        .ptes()
        .iter()
        .map(|(a, _)| (a - BASE) / PAGE)
        .collect();
    assert_eq!(left, vec![0, 1]);
    fs.mapping.unmap_mapping_pages(0, u64::MAX, false);
    assert!(space.ptes().is_empty());
}

#[test]
fn edge17_writeback_layout_and_delete_to_the_end() {
    let (fs, space, vma) = four_mapped_pages();
    assert_eq!(wr(&fs, &vma, BASE + 3 * PAGE), VmFault::NOPAGE);
    dax_writeback_mapping_range(
        &fs.mapping,
        &fs.mapping.device().clone(),
        &WritebackControl::sync_all(..),
    )
    .unwrap();
    assert!(
        matches!(
            space.pte(BASE + 3 * PAGE),
            Some(Pte::Page {
                writable: false,
                ..
            })
        ),
        "written back and write-protected"
    );
    let pins = pin_user_pages(&vma, BASE + PAGE, 1, false).unwrap();
    assert_eq!(
        dax_layout_busy_page_range(&fs.mapping, ..),
        Some(pins.pfns()[0])
    );
    assert!(
        space.ptes().is_empty(),
        "layout breaking unmapped everything"
    );
    drop(pins);
    dax_delete_mapping_range(&fs.mapping, ..);
    assert_eq!(fs.mapping.index().nrpages(), 0);
}

#[test]
fn edge17_kill_procs_over_the_whole_file_returns_and_kills() {
    // Issue 17, item 2: index 0, count u64::MAX walked every index and never
    // returned.
    let (fs, space, vma) = four_mapped_pages();
    let fs2 = fs.clone();
    returns("mf_dax_kill_procs(0, u64::MAX)", move || {
        mf_dax_kill_procs(Some(&fs2.mapping), 0, u64::MAX, MfFlags::MEM_PRE_REMOVE)
    })
    .unwrap();
    assert_eq!(vma.take_signals().len(), 4);
    assert!(space.ptes().is_empty());
    let fs3 = fs.clone();
    returns("mf_dax_kill_procs(u64::MAX - 1, u64::MAX)", move || {
        mf_dax_kill_procs(Some(&fs3.mapping), u64::MAX - 1, u64::MAX, MfFlags::empty())
    })
    .unwrap();
}

#[test]
fn edge17_the_index_takes_the_largest_indices_without_panicking() {
    // Issue 17, item 3: grab and lock_existing at u64::MAX panicked ("range start is
    // greater than range end"), prepare_run with a huge count overflowed a capacity.
    let fs = ScriptedFs::new(8 * MIB, 4 * PAGE);
    let ix = fs.mapping.index();
    for order in [0, 9] {
        let at = !((1u64 << order) - 1);
        let e = ix.grab(u64::MAX, order, &mut |_, _| {}).unwrap();
        assert_eq!(e.start(), at);
        drop(e);
        let e = ix.lock_existing(u64::MAX, order);
        assert_eq!(e.map(|e| e.start()), Some(at));
        ix.delete_range(0, u64::MAX);
    }
    let pfn = fs.pfn(0);
    let (n, created) = ix.prepare_run(10, u64::MAX, pfn, 0);
    assert!(n <= 512 && created.len() as u64 == n, "{n}");
    let (n, _) = ix.prepare_run(u64::MAX - 1, u64::MAX, pfn, 0);
    assert_eq!(n, 2, "the run stops at the top of the index");
    ix.delete_range(0, u64::MAX);
    let (n, _) = ix.prepare_pmd_run(!511, u64::MAX, pfn, 0);
    assert_eq!(n, 1);
    assert_eq!(ix.nrpages(), 512);
}

#[test]
fn edge17_a_private_mapping_takes_no_mkwrite_fault() {
    // Issue 17, item 5: a WRITE|MKWRITE fault on a MAP_PRIVATE vma answered NOPAGE
    // and left the device page writable in the private mapping. The memory manager
    // never calls pfn_mkwrite for a private mapping: such a fault is refused.
    let fs = ScriptedFs::new(8 * MIB, 4 * PAGE);
    fs.ext(Ext::mapped(0, 4 * PAGE, 0));
    let space = Space::new();
    let vma = fs.mmap(
        Vma::new(BASE, 4 * PAGE, 0)
            .unwrap()
            .writable(true)
            .shared(false),
        &space,
    );
    assert_eq!(rd(&fs, &vma, BASE), VmFault::NOPAGE);
    let Err(e) = Vmf::new(&vma, BASE, FaultFlags::WRITE | FaultFlags::MKWRITE) else {
        panic!("a private mkwrite fault must be refused");
    };
    assert_eq!(e.errno(), libc::EINVAL);
    // What the memory manager does send for a store to an unmapped page of a
    // private mapping is a copy-on-write fault: a private copy, the device untouched.
    fs.poke(PAGE, b"file");
    assert_eq!(wr(&fs, &vma, BASE + PAGE), VmFault::DONE_COW);
    assert!(matches!(space.pte(BASE + PAGE), Some(Pte::Private { .. })));
    assert!(matches!(
        space.pte(BASE),
        Some(Pte::Page {
            writable: false,
            ..
        })
    ));
    assert_eq!(fs.peek(PAGE, 4), b"file".to_vec());
}
