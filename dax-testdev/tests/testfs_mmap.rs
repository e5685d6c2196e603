//! TestFs files mapped through the fault engine into a simulated address space: loads
//! and stores through mappings, PMD mappings of 2 MiB-aligned extents, writeback at
//! fsync, layout breaking at truncate and punch, MAP_SYNC, private mappings, pins.

mod testfs_common;

use std::sync::Arc;

use dax_device::{DaxError, PMD_SIZE};
use dax_fault::index::{EntryKind, Marks};
use dax_fault::pages::pin_user_pages;
use dax_fault::sim::{SimPageTable, SimTarget};
use dax_fault::{PageTable, PmdSlot, Pte, VmFault, Vma};
use dax_testdev::{FallocMode, MemDevice, TestFs};
use testfs_common::*;

const PMD: u64 = PMD_SIZE as u64;
/// Where the tests map files: 2 MiB aligned, so PMD faults are possible.
const BASE: u64 = 0x7000_0000_0000;

fn shared_rw(len: u64) -> Vma {
    Vma::new(BASE, len, 0).unwrap().writable(true)
}

#[test]
fn stores_through_a_mapping_reach_the_file_and_reads_see_them() {
    let (_dev, fs) = mem_fs(16 << 20);
    let ino = fs.create("f").unwrap();
    fs.write(ino, 0, &pattern(1, 0, 3 * B as usize)).unwrap();
    let pt = Arc::new(SimPageTable::new());
    let vma = fs.mmap(ino, shared_rw(4 * B), pt.clone()).unwrap();

    let mut got = vec![0; 100];
    pt.read(&vma, BASE + B + 7, &mut got).unwrap();
    assert_eq!(
        got,
        pattern(1, 0, 3 * B as usize)[B as usize + 7..B as usize + 107]
    );
    // A read maps the page read-only; the store then upgrades it in place.
    assert!(matches!(
        pt.pte(BASE + B),
        Some(Pte::Page {
            writable: false,
            ..
        })
    ));
    pt.write(&vma, BASE + B + 7, b"hello").unwrap();
    assert!(matches!(
        pt.pte(BASE + B),
        Some(Pte::Page {
            writable: true,
            dirty: true,
            ..
        })
    ));
    assert_eq!(pt.calls().mkwrite_pte, 1);

    let mut back = [0u8; 5];
    fs.read(ino, B + 7, &mut back).unwrap();
    assert_eq!(&back, b"hello");
    let e = vma.mapping().index().lookup(1).unwrap();
    assert_eq!((e.entry.kind, e.marks), (EntryKind::Real, Marks::DIRTY));

    // fsync writes the entry back and write-protects the mapping.
    fs.fsync(ino).unwrap();
    assert!(vma.mapping().index().lookup(1).unwrap().marks.is_empty());
    assert!(matches!(
        pt.pte(BASE + B),
        Some(Pte::Page {
            writable: false,
            dirty: false,
            ..
        })
    ));
    // The next store faults again (mkwrite) and re-dirties the entry.
    pt.write(&vma, BASE + B, b"x").unwrap();
    assert_eq!(pt.calls().mkwrite_pte, 2);
    assert_eq!(vma.mapping().index().lookup(1).unwrap().marks, Marks::DIRTY);
}

#[test]
fn a_hole_maps_the_zero_page_until_a_store_allocates() {
    let (_dev, fs) = mem_fs(16 << 20);
    let ino = fs.create("f").unwrap();
    fs.truncate(ino, 4 * B).unwrap();
    let pt = Arc::new(SimPageTable::new());
    // No huge pages: a 16 KiB mapping cannot hold a PMD anyway.
    let vma = fs.mmap(ino, shared_rw(4 * B), pt.clone()).unwrap();
    let mut got = [1u8; 16];
    pt.read(&vma, BASE, &mut got).unwrap();
    assert_eq!(got, [0; 16]);
    assert_eq!(pt.pte(BASE), Some(Pte::Zero));
    assert_eq!(
        vma.mapping().index().lookup(0).unwrap().entry.kind,
        EntryKind::Zero
    );
    assert_eq!(fs.stat(ino).unwrap().blocks, 0);

    pt.write(&vma, BASE + 8, b"data").unwrap();
    assert!(matches!(
        pt.pte(BASE),
        Some(Pte::Page { writable: true, .. })
    ));
    assert_eq!(
        vma.mapping().index().lookup(0).unwrap().entry.kind,
        EntryKind::Real
    );
    assert_eq!(fs.stat(ino).unwrap().blocks, 1);
    let mut back = [0u8; 12];
    fs.read(ino, 0, &mut back).unwrap();
    assert_eq!(&back, b"\0\0\0\0\0\0\0\0data");
    assert!(vma.mapping().stats().major() >= 1);
}

#[test]
fn an_aligned_2m_extent_is_mapped_with_one_pmd() {
    let (_dev, fs) = mem_fs(32 << 20);
    let ino = fs.create("f").unwrap();
    fs.write(ino, 0, &pattern(2, 0, PMD as usize)).unwrap();
    assert_eq!(
        fs.extents(ino).unwrap()[0].dev_block % 512,
        0,
        "allocator aligns 2 MiB runs"
    );
    let pt = Arc::new(SimPageTable::new());
    let vma = fs.mmap(ino, shared_rw(PMD), pt.clone()).unwrap();
    let mut got = vec![0; 64];
    pt.read(&vma, BASE + PMD - 64, &mut got).unwrap();
    assert_eq!(got, pattern(2, 0, PMD as usize)[PMD as usize - 64..]);
    assert!(matches!(
        pt.pmd(BASE),
        PmdSlot::Huge {
            writable: false,
            ..
        }
    ));
    assert!(pt.ptes().is_empty());
    let e = vma.mapping().index().lookup(0).unwrap();
    assert_eq!((e.entry.kind, e.entry.order), (EntryKind::Real, 9));
    assert_eq!(vma.mapping().index().nrpages(), 512);

    pt.write(&vma, BASE + 4 * B, b"pmd").unwrap();
    assert!(matches!(
        pt.pmd(BASE),
        PmdSlot::Huge {
            writable: true,
            dirty: true,
            ..
        }
    ));
    fs.fsync(ino).unwrap();
    assert!(matches!(
        pt.pmd(BASE),
        PmdSlot::Huge {
            writable: false,
            dirty: false,
            ..
        }
    ));
    let mut back = [0u8; 3];
    fs.read(ino, 4 * B, &mut back).unwrap();
    assert_eq!(&back, b"pmd");
}

#[test]
fn truncate_unmaps_and_a_later_access_past_eof_is_sigbus() {
    let (_dev, fs) = mem_fs(16 << 20);
    let ino = fs.create("f").unwrap();
    fs.write(ino, 0, &pattern(3, 0, 4 * B as usize)).unwrap();
    let pt = Arc::new(SimPageTable::new());
    let vma = fs.mmap(ino, shared_rw(4 * B), pt.clone()).unwrap();
    pt.write(&vma, BASE + 3 * B, b"gone").unwrap();
    fs.truncate(ino, 2 * B).unwrap();
    assert!(
        !pt.any_mapped(BASE, 4 * B),
        "truncate breaks the layout: nothing stays mapped"
    );
    assert!(vma.mapping().index().is_empty());
    let mut b = [0u8; 1];
    assert_eq!(pt.read(&vma, BASE + 3 * B, &mut b), Err(VmFault::SIGBUS));
    pt.read(&vma, BASE + B, &mut b).unwrap();
}

#[test]
fn punch_hole_waits_for_a_pin_and_then_frees_the_blocks() {
    let (_dev, fs) = mem_fs(16 << 20);
    let fs = Arc::new(fs);
    let ino = fs.create("f").unwrap();
    fs.write(ino, 0, &pattern(4, 0, 4 * B as usize)).unwrap();
    let pt = Arc::new(SimPageTable::new());
    let vma = fs.mmap(ino, shared_rw(4 * B), pt.clone()).unwrap();
    pt.write(&vma, BASE + B, b"pinned").unwrap();
    let pins = pin_user_pages(&vma, BASE + B, 1, true).unwrap();

    let (tx, rx) = std::sync::mpsc::channel();
    let fs2 = fs.clone();
    let puncher = std::thread::spawn(move || {
        let r = fs2.fallocate(ino, FallocMode::PUNCH_HOLE | FallocMode::KEEP_SIZE, B, B);
        tx.send(()).unwrap();
        r
    });
    // The punch cannot finish while the page is pinned: it is unmapped but its entry
    // and blocks stay.
    assert!(
        rx.recv_timeout(std::time::Duration::from_millis(200))
            .is_err()
    );
    assert_eq!(fs.stat(ino).unwrap().blocks, 4);
    drop(pins);
    puncher.join().unwrap().unwrap();
    assert_eq!(fs.stat(ino).unwrap().blocks, 3);
    let mut b = [9u8; 6];
    pt.read(&vma, BASE + B, &mut b).unwrap();
    assert_eq!(b, [0; 6]);
}

#[test]
fn map_sync_write_faults_checkpoint_before_the_page_is_writable() {
    let dev = MemDevice::builder()
        .size(16 << 20)
        .synchronous(true)
        .build()
        .unwrap();
    let fs = TestFs::mkfs(dev.clone()).unwrap();
    let ino = fs.create("f").unwrap();
    fs.truncate(ino, 4 * B).unwrap();
    let pt = Arc::new(SimPageTable::new());
    let vma = fs
        .mmap(ino, shared_rw(4 * B).sync(true), pt.clone())
        .unwrap();
    let generation = fs.generation();
    pt.write(&vma, BASE, b"sync").unwrap();
    assert!(
        fs.generation() > generation,
        "the fault checkpointed before mapping writable"
    );
    assert!(matches!(
        pt.pte(BASE),
        Some(Pte::Page { writable: true, .. })
    ));
    assert_eq!(vma.mapping().index().lookup(0).unwrap().marks, Marks::DIRTY);

    // MAP_SYNC needs a synchronous device (virtio-pmem is not).
    let d2 = MemDevice::builder()
        .size(16 << 20)
        .synchronous(false)
        .build()
        .unwrap();
    let fs2 = TestFs::mkfs(d2).unwrap();
    let i2 = fs2.create("g").unwrap();
    let err = fs2.mmap(
        i2,
        shared_rw(4 * B).sync(true),
        Arc::new(SimPageTable::new()),
    );
    assert!(matches!(err, Err(DaxError::NotSupported { .. })));
}

#[test]
fn private_mappings_copy_on_write_and_never_change_the_file() {
    let (_dev, fs) = mem_fs(16 << 20);
    let ino = fs.create("f").unwrap();
    fs.write(ino, 0, &pattern(5, 0, 2 * B as usize)).unwrap();
    let pt = Arc::new(SimPageTable::new());
    let vma = fs
        .mmap(
            ino,
            Vma::new(BASE, 2 * B, 0)
                .unwrap()
                .shared(false)
                .writable(true),
            pt.clone(),
        )
        .unwrap();
    // Store to an unmapped page: DAX fills a private copy (DONE_COW).
    pt.write(&vma, BASE + 10, b"mine").unwrap();
    assert_eq!(
        pt.resolve(BASE),
        Some(SimTarget::Private { writable: true })
    );
    assert_eq!(
        vma.mapping().index().lookup(0).unwrap().entry.kind,
        EntryKind::Empty
    );
    // Read first, then store: the memory manager copies the read-only page itself.
    let mut b = [0u8; 4];
    pt.read(&vma, BASE + B, &mut b).unwrap();
    pt.write(&vma, BASE + B, b"copy").unwrap();
    let mut file = vec![0u8; 2 * B as usize];
    fs.read(ino, 0, &mut file).unwrap();
    assert_eq!(file, pattern(5, 0, 2 * B as usize), "the file is unchanged");
    let mut mine = [0u8; 4];
    pt.read(&vma, BASE + 10, &mut mine).unwrap();
    assert_eq!(&mine, b"mine");
}

#[test]
fn memory_failure_kills_the_mappers_of_the_owning_file_page() {
    // MF-05 through the holder path: the device reports a failed pfn, TestFs finds
    // the owning file page and the engine unmaps it and signals its users.
    let (dev, fs) = mem_fs(16 << 20);
    let ino = fs.create("f").unwrap();
    fs.write(ino, 0, &pattern(6, 0, 4 * B as usize)).unwrap();
    let other = fs.create("g").unwrap();
    fs.write(other, 0, &pattern(7, 0, B as usize)).unwrap();
    let pt = Arc::new(SimPageTable::new());
    let vma = fs.mmap(ino, shared_rw(4 * B), pt.clone()).unwrap();
    let vma2 = fs
        .mmap(other, Vma::new(BASE + PMD, B, 0).unwrap(), pt.clone())
        .unwrap();
    let mut b = [0u8; 1];
    for p in 0..4 {
        pt.read(&vma, BASE + p * B, &mut b).unwrap();
    }
    pt.read(&vma2, BASE + PMD, &mut b).unwrap();
    let Some(SimTarget::Device { pfn, pgoff, .. }) = pt.resolve(BASE + 2 * B) else {
        panic!("page 2 is mapped to the device");
    };
    dev.driver().poison(pgoff * B, B).unwrap();
    dax_testdev::memory_failure(&dev, pfn, 1, dax_device::MfFlags::empty()).unwrap();

    assert_eq!(vma.take_signals(), vec![BASE + 2 * B]);
    assert!(
        vma2.take_signals().is_empty(),
        "the other file is untouched"
    );
    assert!(dax_fault::pages::page_hwpoison(pfn));
    assert_eq!(
        pt.resolve(BASE + 2 * B),
        None,
        "the poisoned page is unmapped"
    );
    assert!(pt.resolve(BASE + B).is_some(), "its neighbours stay");
    // Touching it again faults and the poison answers.
    assert_eq!(pt.read(&vma, BASE + 2 * B, &mut b), Err(VmFault::HWPOISON));
    // A write(2) over the whole page clears the poison (recovery write) and the
    // mapping works again.
    fs.write(ino, 2 * B, &pattern(8, 0, B as usize)).unwrap();
    pt.read(&vma, BASE + 2 * B, &mut b).unwrap();
    assert_eq!(b[0], pattern(8, 0, 1)[0]);
    // Issue 17, item 7: clearing the poison clears the page's HWPoison flag too
    // (pmem's poison clear does), or the healthy page would stay flagged.
    assert!(
        !dax_fault::pages::page_hwpoison(pfn),
        "HWPoison outlived the poison"
    );
    // The same through the driver's zeroing of the whole page (what dax_zero_range
    // and a new block's zeroing do): poison again, flag it, zero the page.
    dev.driver().poison(pgoff * B, B).unwrap();
    dax_testdev::memory_failure(&dev, pfn, 1, dax_device::MfFlags::empty()).unwrap();
    assert!(dax_fault::pages::page_hwpoison(pfn));
    dev.zero_page_range(pgoff, 1).unwrap();
    assert!(!dev.driver().is_poisoned(pgoff * B, B));
    assert!(
        !dax_fault::pages::page_hwpoison(pfn),
        "zeroing cleared the poison"
    );
}

#[test]
fn device_removal_unmaps_every_file_without_flagging_poison() {
    // Edge 101: the pre-remove notification signals and unmaps users, flags nothing.
    let (dev, fs) = mem_fs(16 << 20);
    let ino = fs.create("f").unwrap();
    fs.write(ino, 0, &pattern(9, 0, 2 * B as usize)).unwrap();
    let pt = Arc::new(SimPageTable::new());
    let vma = fs.mmap(ino, shared_rw(2 * B), pt.clone()).unwrap();
    let mut b = [0u8; 1];
    pt.read(&vma, BASE, &mut b).unwrap();
    let Some(SimTarget::Device { pfn, .. }) = pt.resolve(BASE) else {
        panic!("mapped");
    };
    dev.kill();
    assert_eq!(vma.take_signals(), vec![BASE]);
    assert!(!pt.any_mapped(BASE, 2 * B));
    assert!(!dax_fault::pages::page_hwpoison(pfn));
    assert_eq!(pt.read(&vma, BASE, &mut b), Err(VmFault::SIGBUS));
}

#[test]
fn a_private_mapping_sees_data_written_over_a_hole_it_once_mapped_huge_zero() {
    // Splitting a huge zero page in a DAX mapping removes it (`__split_huge_pmd_locked`
    // zaps non-anonymous mappings); zero-page PTEs left behind without an entry would
    // keep showing zeros after the file gets data there.
    let (_dev, fs) = mem_fs(32 << 20);
    let ino = fs.create("f").unwrap();
    fs.truncate(ino, PMD + B).unwrap();
    let pa = Arc::new(SimPageTable::new());
    let pb = Arc::new(SimPageTable::new());
    let shared = fs.mmap(ino, shared_rw(PMD), pa.clone()).unwrap();
    let private = fs
        .mmap(
            ino,
            Vma::new(BASE, PMD, 0).unwrap().shared(false).writable(true),
            pb.clone(),
        )
        .unwrap();
    let mut b = [1u8; 1];
    pb.read(&private, BASE, &mut b).unwrap();
    assert_eq!(pb.pmd(BASE), PmdSlot::HugeZero);
    // The private store splits the huge zero page and copies page 0.
    pb.write(&private, BASE, b"p").unwrap();
    // write(2) to page 0 allocates and drops the zero PMD entry.
    fs.write(ino, 0, b"w").unwrap();
    // A store through the shared mapping allocates page 3.
    pa.write(&shared, BASE + 3 * B, b"shared").unwrap();
    let mut got = [0u8; 6];
    pb.read(&private, BASE + 3 * B, &mut got).unwrap();
    assert_eq!(
        &got, b"shared",
        "the private mapping shows the file's page 3"
    );
}
