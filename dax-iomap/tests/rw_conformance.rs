//! Conformance tests for `dax_iomap_rw` (reference §2.6, RW-01..RW-13, edge cases
//! 42–54, 90, 91, 102).

use std::io::{IoSlice, IoSliceMut};
use std::sync::atomic::AtomicBool;

use dax_device::{DaxError, PAGE_SIZE};
use dax_iomap::{
    IomapFlags, IomapType, IovIter, IterFlags, Kiocb, dax_iomap_read, dax_iomap_rw, dax_iomap_write,
};
use dax_testkit::iomap::{IomapMock, PAGE, pattern};

fn mapped_file(pages: u64) -> IomapMock {
    // File pages 0.. map to device pages 10..
    let fs = IomapMock::new(10 + pages + 16, pages * PAGE);
    fs.map(
        IomapType::Mapped,
        0,
        pages * PAGE,
        10 * PAGE,
        IomapFlags::empty(),
    );
    fs
}

#[test]
fn rw_round_trip_through_device_memory() {
    // ref: RW-02, RW-07, RW-13
    let fs = mapped_file(8);
    let data = pattern(5 * PAGE_SIZE + 123, 1);
    assert_eq!(dax_iomap_write(&fs, &fs, 777, &data).unwrap(), data.len());
    assert_eq!(fs.peek(10 * PAGE + 777, data.len()), data);
    let mut back = vec![0u8; data.len()];
    assert_eq!(
        dax_iomap_read(&fs, &fs, 777, &mut back).unwrap(),
        data.len()
    );
    assert_eq!(back, data);
    let flags: Vec<IterFlags> = fs.begins.lock().iter().map(|b| b.2).collect();
    assert_eq!(
        flags,
        vec![IterFlags::DAX | IterFlags::WRITE, IterFlags::DAX]
    );
    let ends = fs.ends.lock().clone();
    assert_eq!(ends[0].written, data.len() as u64);
}

#[test]
fn rw_vectored_buffers_and_kiocb_position() {
    // ref: RW-13
    let fs = mapped_file(4);
    let (a, b, c) = (pattern(100, 2), pattern(0, 3), pattern(5000, 4));
    let mut iocb = Kiocb::new(50);
    let srcs = [IoSlice::new(&a), IoSlice::new(&b), IoSlice::new(&c)];
    let mut iter = IovIter::write(&srcs);
    assert_eq!(dax_iomap_rw(&fs, &fs, &mut iocb, &mut iter).unwrap(), 5100);
    assert_eq!(iocb.pos, 5150);
    assert_eq!(iter.count(), 0);
    let (mut x, mut y) = (vec![0u8; 60], vec![0u8; 5040]);
    let mut iocb = Kiocb::new(50);
    let mut dsts = [IoSliceMut::new(&mut x), IoSliceMut::new(&mut y)];
    let mut iter = IovIter::read(&mut dsts);
    assert_eq!(dax_iomap_rw(&fs, &fs, &mut iocb, &mut iter).unwrap(), 5100);
    let mut all = x;
    all.extend_from_slice(&y);
    assert_eq!(&all[..100], &a[..]);
    assert_eq!(&all[100..], &c[..]);
}

#[test]
fn rw_edge42_reads_stop_at_the_file_size() {
    // ref: RW-03, edge 42
    let fs = mapped_file(4);
    fs.poke(10 * PAGE, &pattern(4 * PAGE_SIZE, 5));
    fs.set_size(3 * PAGE);
    let mut buf = vec![0u8; 8192];
    assert_eq!(dax_iomap_read(&fs, &fs, 3 * PAGE, &mut buf).unwrap(), 0);
    assert_eq!(dax_iomap_read(&fs, &fs, 3 * PAGE + 5, &mut buf).unwrap(), 0);
    assert_eq!(
        dax_iomap_read(&fs, &fs, 3 * PAGE - 100, &mut buf).unwrap(),
        100
    );
    assert_eq!(
        &buf[..100],
        &pattern(4 * PAGE_SIZE, 5)[3 * PAGE_SIZE - 100..3 * PAGE_SIZE]
    );
}

#[test]
fn rw_edge43_holes_and_unwritten_read_as_zeros_without_touching_the_device() {
    // ref: RW-04, edge 43
    let fs = IomapMock::new(32, 6 * PAGE).with_mapping();
    fs.map(
        IomapType::Unwritten,
        2 * PAGE,
        2 * PAGE,
        10 * PAGE,
        IomapFlags::empty(),
    );
    fs.poke(10 * PAGE, &[0xAA; 2 * PAGE_SIZE]); // stale bytes under the unwritten extent
    fs.dev.driver().poison(10 * PAGE, 512).unwrap(); // would fail any device read
    let mut buf = vec![0xFFu8; 5 * PAGE_SIZE];
    assert_eq!(
        dax_iomap_read(&fs, &fs, 0, &mut buf).unwrap(),
        5 * PAGE_SIZE
    );
    assert!(buf.iter().all(|&b| b == 0));
    assert!(
        fs.mapping.as_ref().unwrap().calls.lock().is_empty(),
        "no index work on reads"
    );
    assert_eq!(fs.dev.driver().calls(dax_testdev::DevOp::DirectAccess), 0);
}

#[test]
fn rw_edge44_delalloc_and_inline_reads_are_eio() {
    // ref: RW-05, edge 44
    for kind in [IomapType::Delalloc, IomapType::Inline] {
        let fs = IomapMock::new(32, 4 * PAGE);
        fs.map(kind, 0, 4 * PAGE, 10 * PAGE, IomapFlags::empty());
        let e = dax_iomap_read(&fs, &fs, 0, &mut [0u8; 100]).unwrap_err();
        assert_eq!(e.errno(), libc::EIO, "{kind:?}");
    }
}

#[test]
fn rw_edge45_writes_over_holes_or_unwritten_without_shared_are_eio() {
    // ref: RW-05, edge 45
    let fs = IomapMock::new(32, 0);
    assert_eq!(
        dax_iomap_write(&fs, &fs, 0, &[1u8; 10])
            .unwrap_err()
            .errno(),
        libc::EIO
    );
    let fs = IomapMock::new(32, 0);
    fs.map(
        IomapType::Unwritten,
        0,
        PAGE,
        10 * PAGE,
        IomapFlags::empty(),
    );
    assert_eq!(
        dax_iomap_write(&fs, &fs, 0, &[1u8; 10])
            .unwrap_err()
            .errno(),
        libc::EIO
    );
    assert_eq!(fs.peek(10 * PAGE, 10), vec![0u8; 10]);
}

#[test]
fn rw_edge46_zero_length_never_calls_the_filesystem() {
    // ref: RW-01, edge 46
    let fs = mapped_file(1);
    assert_eq!(dax_iomap_read(&fs, &fs, 0, &mut []).unwrap(), 0);
    assert_eq!(dax_iomap_write(&fs, &fs, 0, &[]).unwrap(), 0);
    assert!(fs.begins.lock().is_empty());
}

#[test]
fn rw_edge47_poisoned_sector_fails_the_whole_read_chunk() {
    // ref: RW-08, edge 47: one mapping, second page bad -> EIO, 0 bytes.
    let fs = mapped_file(2);
    fs.dev.driver().poison(11 * PAGE + 1024, 512).unwrap();
    let mut buf = vec![0u8; 2 * PAGE_SIZE];
    let e = dax_iomap_read(&fs, &fs, 0, &mut buf).unwrap_err();
    assert_eq!(e.errno(), libc::EIO);
    // The first page in a mapping of its own: a short count of 4096.
    let fs = IomapMock::two_single_page_extents(32);
    fs.dev.driver().poison(11 * PAGE + 1024, 512).unwrap();
    assert_eq!(dax_iomap_read(&fs, &fs, 0, &mut buf).unwrap(), PAGE_SIZE);
}

#[test]
fn rw_edge48_aligned_write_over_poison_recovers_partial_is_efault() {
    // ref: RW-09, RW-11, edge 48, quirk Q13 (reproduced: EFAULT, not EIO)
    let fs = mapped_file(2);
    fs.dev.driver().poison(10 * PAGE + 512, 512).unwrap();
    let e = dax_iomap_write(&fs, &fs, 100, &[7u8; 100]).unwrap_err();
    assert_eq!(e.errno(), libc::EFAULT);
    assert_eq!(fs.dev.driver().badblocks().count(), 1);
    let data = pattern(PAGE_SIZE, 6);
    assert_eq!(dax_iomap_write(&fs, &fs, 0, &data).unwrap(), PAGE_SIZE);
    assert!(
        fs.dev.driver().badblocks().is_empty(),
        "recovery write cleared the poison"
    );
    let mut back = vec![0u8; PAGE_SIZE];
    assert_eq!(dax_iomap_read(&fs, &fs, 0, &mut back).unwrap(), PAGE_SIZE);
    assert_eq!(back, data);
}

#[test]
fn a_vectored_write_over_poison_recovers_across_its_buffers() {
    // The recovery write needs its data in one piece: a page split over three source
    // buffers (one of them empty) is gathered, and lands whole.
    let fs = mapped_file(2);
    fs.dev.driver().poison(10 * PAGE + 512, 512).unwrap();
    let data = pattern(PAGE_SIZE, 8);
    let (a, b) = data.split_at(1000);
    let srcs = [IoSlice::new(a), IoSlice::new(&[]), IoSlice::new(b)];
    let mut iter = IovIter::write(&srcs);
    let mut iocb = Kiocb::new(0);
    assert_eq!(
        dax_iomap_rw(&fs, &fs, &mut iocb, &mut iter).unwrap(),
        PAGE_SIZE
    );
    assert!(fs.dev.driver().badblocks().is_empty(), "poison cleared");
    let mut back = vec![0u8; PAGE_SIZE];
    assert_eq!(dax_iomap_read(&fs, &fs, 0, &mut back).unwrap(), PAGE_SIZE);
    assert_eq!(back, data);
}

#[test]
fn rw_edge49_writes_into_new_blocks_invalidate_the_range_first() {
    // ref: RW-06, edge 49 (the index side is dax-fault's; here the calls it receives)
    let fs = IomapMock::new(32, 0).with_mapping();
    fs.map(IomapType::Mapped, 0, 4 * PAGE, 10 * PAGE, IomapFlags::NEW);
    dax_iomap_write(&fs, &fs, PAGE + 10, &[1u8; 5000]).unwrap();
    assert_eq!(
        fs.mapping.as_ref().unwrap().calls.lock().clone(),
        vec!["invalidate 1..=2"]
    );
    // Without NEW nothing is invalidated.
    let fs = mapped_file(4).with_mapping();
    dax_iomap_write(&fs, &fs, 0, &[1u8; 5000]).unwrap();
    assert!(fs.mapping.as_ref().unwrap().calls.lock().is_empty());
}

#[test]
fn rw_edge50_buffer_fault_gives_a_short_count_or_efault() {
    // ref: RW-11, edge 50
    let fs = mapped_file(4);
    let data = pattern(3 * PAGE_SIZE, 7);
    let mut iocb = Kiocb::new(0);
    let mut iter = IovIter::write_one(&data).fault_after(1000);
    assert_eq!(dax_iomap_rw(&fs, &fs, &mut iocb, &mut iter).unwrap(), 1000);
    assert_eq!(iocb.pos, 1000);
    let mut iter = IovIter::write_one(&data).fault_after(0);
    let e = dax_iomap_rw(&fs, &fs, &mut Kiocb::new(0), &mut iter).unwrap_err();
    assert_eq!(e.errno(), libc::EFAULT);
    let mut buf = vec![0u8; 3 * PAGE_SIZE];
    let mut iter = IovIter::read_one(&mut buf).fault_after(5000);
    assert_eq!(
        dax_iomap_rw(&fs, &fs, &mut Kiocb::new(0), &mut iter).unwrap(),
        5000
    );
}

#[test]
fn rw_edge51_interruption_stops_with_eintr_or_a_short_count() {
    // ref: RW-12, edge 51
    let fs = mapped_file(4);
    let stop = AtomicBool::new(true);
    let mut iocb = Kiocb {
        interrupted: Some(&stop),
        ..Kiocb::new(0)
    };
    let mut buf = vec![0u8; 100];
    let mut iter = IovIter::read_one(&mut buf);
    let e = dax_iomap_rw(&fs, &fs, &mut iocb, &mut iter).unwrap_err();
    assert_eq!(e.errno(), libc::EINTR);
    // Holes need no copy loop, so an earlier hole mapping completes first.
    let fs = IomapMock::new(32, 4 * PAGE);
    fs.map(
        IomapType::Mapped,
        PAGE,
        PAGE,
        10 * PAGE,
        IomapFlags::empty(),
    );
    let mut buf = vec![0u8; 2 * PAGE_SIZE];
    let mut iocb = Kiocb {
        interrupted: Some(&stop),
        ..Kiocb::new(0)
    };
    let mut iter = IovIter::read_one(&mut buf);
    assert_eq!(
        dax_iomap_rw(&fs, &fs, &mut iocb, &mut iter).unwrap(),
        PAGE_SIZE
    );
}

#[test]
fn rw_edge52_later_mapping_failure_returns_the_short_count() {
    // ref: RW-13, edge 52
    let fs = IomapMock::new(32, 0);
    fs.map(IomapType::Mapped, 0, PAGE, 10 * PAGE, IomapFlags::empty());
    *fs.fail_begin.lock() = Some((1, DaxError::NoSpace { what: "full" }));
    let mut iocb = Kiocb::new(0);
    let data = pattern(2 * PAGE_SIZE, 8);
    let mut iter = IovIter::write_one(&data);
    assert_eq!(
        dax_iomap_rw(&fs, &fs, &mut iocb, &mut iter).unwrap(),
        PAGE_SIZE
    );
    assert_eq!(iocb.pos, PAGE);
    // The same failure on the first mapping is the result.
    let fs = IomapMock::new(32, 0);
    *fs.fail_begin.lock() = Some((0, DaxError::NoSpace { what: "full" }));
    assert_eq!(
        dax_iomap_write(&fs, &fs, 0, &data).unwrap_err().errno(),
        libc::ENOSPC
    );
}

#[test]
fn rw_edge53_writes_past_eof_leave_the_size_alone() {
    // ref: edge 53
    let fs = mapped_file(4);
    fs.set_size(100);
    dax_iomap_write(&fs, &fs, 3 * PAGE, &[1u8; 10]).unwrap();
    assert_eq!(*fs.size.lock(), 100);
}

#[test]
fn rw_edge54_nowait_passes_the_flag_and_eagain_through() {
    // ref: RW-02, edge 54
    let fs = IomapMock::new(32, 0);
    *fs.fail_begin.lock() = Some((0, DaxError::WouldBlock));
    let mut iocb = Kiocb {
        nowait: true,
        ..Kiocb::new(0)
    };
    let data = [0u8; 10];
    let mut iter = IovIter::write_one(&data);
    let e = dax_iomap_rw(&fs, &fs, &mut iocb, &mut iter).unwrap_err();
    assert_eq!(e.errno(), libc::EAGAIN);
    assert_eq!(
        fs.begins.lock()[0].2,
        IterFlags::DAX | IterFlags::WRITE | IterFlags::NOWAIT
    );
}

#[test]
fn rw_edge90_cow_write_copies_the_page_around_the_written_bytes() {
    // ref: RW-10, C-01, edge 90
    let fs = IomapMock::new(64, 4 * PAGE).with_mapping();
    let old = pattern(2 * PAGE_SIZE, 9);
    fs.poke(20 * PAGE, &old);
    fs.cow(0, 2 * PAGE, 40 * PAGE, Some((IomapType::Mapped, 20 * PAGE)));
    assert_eq!(dax_iomap_write(&fs, &fs, 100, &[0xEE; 100]).unwrap(), 100);
    let mut want = old[..PAGE_SIZE].to_vec();
    want[100..200].fill(0xEE);
    assert_eq!(fs.peek(40 * PAGE, PAGE_SIZE), want);
    assert_eq!(
        fs.peek(20 * PAGE, 2 * PAGE_SIZE),
        old,
        "the source is unchanged"
    );
    assert_eq!(fs.ends.lock()[0].written, 100);
    assert_eq!(
        fs.mapping.as_ref().unwrap().calls.lock().clone(),
        vec!["clear_dirty 0..=0", "invalidate 0..=0"]
    );
    // A write spanning a page boundary fills the head of the first and the tail of the
    // last page.
    assert_eq!(
        dax_iomap_write(&fs, &fs, PAGE - 10, &[0xDD; 30]).unwrap(),
        30
    );
    let got = fs.peek(40 * PAGE, 2 * PAGE_SIZE);
    assert_eq!(&got[PAGE_SIZE - 10..PAGE_SIZE + 20], &[0xDD; 30]);
    assert_eq!(&got[PAGE_SIZE + 20..], &old[PAGE_SIZE + 20..]);
}

#[test]
fn rw_edge91_cow_from_unwritten_or_hole_zeroes_the_edges() {
    // ref: C-01, edge 91
    for src in [Some((IomapType::Unwritten, 20 * PAGE)), None] {
        let fs = IomapMock::new(64, 4 * PAGE);
        fs.poke(20 * PAGE, &[0x55; PAGE_SIZE]);
        fs.poke(40 * PAGE, &[0x77; PAGE_SIZE]); // stale destination bytes
        fs.cow(0, PAGE, 40 * PAGE, src);
        dax_iomap_write(&fs, &fs, 100, &[0xEE; 100]).unwrap();
        let mut want = vec![0u8; PAGE_SIZE];
        want[100..200].fill(0xEE);
        assert_eq!(fs.peek(40 * PAGE, PAGE_SIZE), want, "source {src:?}");
    }
}

#[test]
fn rw_cow_source_poison_is_eio() {
    // ref: C-01: a source that cannot be read fails the write with EIO.
    let fs = IomapMock::new(64, 4 * PAGE);
    fs.cow(0, PAGE, 40 * PAGE, Some((IomapType::Mapped, 20 * PAGE)));
    fs.dev.driver().poison(20 * PAGE, 512).unwrap();
    let e = dax_iomap_write(&fs, &fs, 100, &[0xEE; 100]).unwrap_err();
    assert_eq!(e.errno(), libc::EIO);
    // Even a write of the whole page: the kernel maps the source for every CoW chunk
    // (copy_all copies it before the data lands), so this is EIO too, not a recovery.
    let e = dax_iomap_write(&fs, &fs, 0, &[0xEE; PAGE_SIZE]).unwrap_err();
    assert_eq!(e.errno(), libc::EIO);
    assert!(!fs.dev.driver().badblocks().is_empty());
}

#[test]
fn rw_edge102_recovery_chunks_and_clean_prefixes() {
    // ref: RW-09, edge 102
    // Bad sector in the middle of page 1: pages 0 and 1 form one recovery chunk of
    // 6144 bytes, which is not a page multiple -> nothing written, EFAULT.
    let fs = mapped_file(4);
    fs.dev.driver().poison(11 * PAGE + 2048, 512).unwrap();
    let data = pattern(6144, 10);
    let e = dax_iomap_write(&fs, &fs, 0, &data).unwrap_err();
    assert_eq!(e.errno(), libc::EFAULT);
    assert_eq!(fs.peek(10 * PAGE, 6144), vec![0u8; 6144]);
    // Bad sector at the start of page 1: the clean page is written, then the next
    // chunk (page 1) fails -> 4096.
    let fs = mapped_file(4);
    fs.dev.driver().poison(11 * PAGE, 512).unwrap();
    assert_eq!(dax_iomap_write(&fs, &fs, 0, &data).unwrap(), PAGE_SIZE);
    assert_eq!(fs.peek(10 * PAGE, PAGE_SIZE), data[..PAGE_SIZE]);
}

#[test]
fn rw_dead_device_is_enxio() {
    // ref: DEV-07 via RW-07
    let fs = mapped_file(2);
    fs.dev.kill();
    let e = dax_iomap_read(&fs, &fs, 0, &mut [0u8; 10]).unwrap_err();
    assert_eq!(e.errno(), libc::ENXIO);
    let e = dax_iomap_write(&fs, &fs, 0, &[0u8; 10]).unwrap_err();
    assert_eq!(e.errno(), libc::ENXIO);
}

#[test]
fn rw_offsets_past_the_largest_file_offset_are_einval() {
    let fs = mapped_file(1);
    let e = dax_iomap_read(&fs, &fs, i64::MAX as u64, &mut [0u8; 2]).unwrap_err();
    assert_eq!(e.errno(), libc::EINVAL);
    let e = dax_iomap_write(&fs, &fs, u64::MAX, &[0u8; 2]).unwrap_err();
    assert_eq!(e.errno(), libc::EINVAL);
}

#[test]
fn rw_sub_page_cow_extent_is_refused_and_nothing_outside_it_changes() {
    // A SHARED destination that does not end on a page boundary would make copy-around
    // fill bytes past its end: refused with InvalidMapping (EIO) before any write.
    let fs = IomapMock::new(64, 4 * PAGE);
    fs.poke(20 * PAGE, &[0x55; PAGE_SIZE]);
    fs.poke(40 * PAGE, &[0x77; PAGE_SIZE]);
    fs.cow(0, 100, 40 * PAGE, Some((IomapType::Mapped, 20 * PAGE)));
    let e = dax_iomap_write(&fs, &fs, 10, &[1u8; 10]).unwrap_err();
    assert!(
        matches!(
            e,
            DaxError::InvalidMapping {
                reason: "copy-on-write extent is not page aligned",
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(fs.peek(40 * PAGE, PAGE_SIZE), vec![0x77; PAGE_SIZE]);
    let e = dax_iomap::dax_zero_range(&fs, &fs, 10, 10).unwrap_err();
    assert_eq!(e.errno(), libc::EIO);
    assert_eq!(fs.peek(40 * PAGE, PAGE_SIZE), vec![0x77; PAGE_SIZE]);
}

#[test]
#[cfg_attr(
    miri,
    ignore = "builds, copies and compares 2 MiB buffers: minutes under Miri"
)]
fn c01_copy_around_directly_for_page_and_pmd_alignment() {
    // ref: C-01: the copy-all branch (faults), zero-edge and copy variants, PAGE and
    // 2 MiB alignment; a range past the largest offset is an error, not a panic.
    use dax_device::{DaxAccessMode, PMD_SIZE};
    use dax_iomap::{Iomap, dax_iomap_copy_around};
    let pmd = PMD_SIZE as u64;
    let fs = IomapMock::new(3 * pmd / PAGE, 0);
    let src_bytes = pattern(PMD_SIZE, 14);
    fs.poke(0, &src_bytes);
    let src = Iomap::mapped(0, pmd, 0, fs.dyn_dev());
    let s = fs.dev.read_lock();
    for align in [PAGE, pmd] {
        let dst = s
            .direct_access(pmd / PAGE, align / PAGE, DaxAccessMode::Access)
            .unwrap();
        fs.poke(pmd, &vec![0xEE; align as usize]);
        dax_iomap_copy_around(0, align, align, &src, &dst).unwrap();
        assert_eq!(
            fs.peek(pmd, align as usize),
            src_bytes[..align as usize],
            "copy-all {align}"
        );
        let mut zero_src = src;
        zero_src.kind = IomapType::Unwritten;
        dax_iomap_copy_around(0, align, align, &zero_src, &dst).unwrap();
        assert!(
            fs.peek(pmd, align as usize).iter().all(|&b| b == 0),
            "zero-all {align}"
        );
    }
    // Head and tail around a write of [100, 200) in one page.
    let dst = s
        .direct_access(pmd / PAGE, 1, DaxAccessMode::Access)
        .unwrap();
    fs.poke(pmd, &[0xEE; PAGE_SIZE]);
    dax_iomap_copy_around(100, 100, PAGE, &src, &dst).unwrap();
    let got = fs.peek(pmd, PAGE_SIZE);
    assert_eq!(got[..100], src_bytes[..100]);
    assert_eq!(got[100..200], [0xEE; 100]);
    assert_eq!(got[200..], src_bytes[200..PAGE_SIZE]);
    let e = dax_iomap_copy_around(u64::MAX - 10, 100, PAGE, &src, &dst).unwrap_err();
    assert_eq!(e.errno(), libc::EOVERFLOW);
    assert_eq!(
        dax_iomap_copy_around(0, 1, 100, &src, &dst)
            .unwrap_err()
            .errno(),
        libc::EINVAL
    );
}
