//! Conformance tests for zeroing, unshare, dedupe/remap preparation and the reporting
//! helpers (reference §2.10, §2.12, §2.14; Z-*, C-*, IOM-15..18; edge cases 87–99,
//! 106).

use dax_device::{DaxError, PAGE_SIZE};
use dax_iomap::{
    Fiemap, FiemapExtent, FiemapExtentFlags, FiemapFlags, IomapFlags, IomapType, IterFlags,
    RemapFile, RemapFlags, dax_dedupe_file_range_compare, dax_file_unshare,
    dax_remap_file_range_prep, dax_truncate_page, dax_zero_range, iomap_bmap, iomap_fiemap,
    iomap_seek_data, iomap_seek_hole,
};
use dax_testkit::iomap::{IomapMock, PAGE, pattern};

fn filled_file(pages: u64, seed: u8) -> IomapMock {
    let fs = IomapMock::new(64, pages * PAGE);
    fs.map(
        IomapType::Mapped,
        0,
        pages * PAGE,
        10 * PAGE,
        IomapFlags::empty(),
    );
    fs.poke(10 * PAGE, &pattern(pages as usize * PAGE_SIZE, seed));
    fs
}

#[test]
fn z_edge87_truncate_page_zeroes_the_tail_of_the_block() {
    // ref: Z-04, edge 87
    let fs = filled_file(2, 1);
    let before = fs.peek(10 * PAGE, 2 * PAGE_SIZE);
    assert!(!dax_truncate_page(&fs, &fs, PAGE).unwrap());
    assert!(
        fs.begins.lock().is_empty(),
        "aligned: the filesystem is not even asked"
    );
    assert!(dax_truncate_page(&fs, &fs, PAGE + 100).unwrap());
    let after = fs.peek(10 * PAGE, 2 * PAGE_SIZE);
    assert_eq!(after[..PAGE_SIZE + 100], before[..PAGE_SIZE + 100]);
    assert!(after[PAGE_SIZE + 100..].iter().all(|&b| b == 0));
    assert_eq!(fs.begins.lock()[0].2, IterFlags::DAX | IterFlags::ZERO);
}

#[test]
fn z_edge88_zeroing_holes_and_unwritten_writes_nothing() {
    // ref: Z-01, edge 88
    let fs = IomapMock::new(64, 8 * PAGE);
    fs.map(
        IomapType::Unwritten,
        2 * PAGE,
        2 * PAGE,
        10 * PAGE,
        IomapFlags::empty(),
    );
    fs.poke(10 * PAGE, &[0xAB; 2 * PAGE_SIZE]);
    assert!(!dax_zero_range(&fs, &fs, 0, 8 * PAGE).unwrap());
    assert_eq!(fs.peek(10 * PAGE, 2 * PAGE_SIZE), vec![0xAB; 2 * PAGE_SIZE]);
    assert_eq!(fs.dev.driver().calls(dax_testdev::DevOp::DirectAccess), 0);
}

#[test]
fn z_edge89_partial_zero_of_a_poisoned_page_is_eio_full_page_clears_it() {
    // ref: Z-02, Z-03, edge 89
    let fs = filled_file(2, 2);
    fs.dev.driver().poison(10 * PAGE + 1024, 512).unwrap();
    let e = dax_zero_range(&fs, &fs, 100, 100).unwrap_err();
    assert_eq!(e.errno(), libc::EIO);
    assert!(dax_zero_range(&fs, &fs, 0, PAGE).unwrap());
    assert!(fs.dev.driver().badblocks().is_empty());
    assert_eq!(fs.peek(10 * PAGE, PAGE_SIZE), vec![0u8; PAGE_SIZE]);
}

#[test]
fn z01_zero_range_mixes_partial_and_whole_pages() {
    // ref: Z-01..Z-03
    let fs = filled_file(4, 3);
    let before = fs.peek(10 * PAGE, 4 * PAGE_SIZE);
    assert!(dax_zero_range(&fs, &fs, 1000, 2 * PAGE + 500).unwrap());
    let after = fs.peek(10 * PAGE, 4 * PAGE_SIZE);
    let end = 1000 + 2 * PAGE_SIZE + 500;
    assert_eq!(after[..1000], before[..1000]);
    assert!(after[1000..end].iter().all(|&b| b == 0));
    assert_eq!(after[end..], before[end..]);
    // The whole page in the middle went through the driver.
    assert_eq!(fs.dev.driver().calls(dax_testdev::DevOp::ZeroPageRange), 1);
}

#[test]
fn z_shared_partial_zero_fills_the_rest_from_the_source() {
    // ref: Z-03, C-01
    let fs = IomapMock::new(64, 2 * PAGE).with_mapping();
    let old = pattern(PAGE_SIZE, 4);
    fs.poke(20 * PAGE, &old);
    fs.cow(0, PAGE, 40 * PAGE, Some((IomapType::Mapped, 20 * PAGE)));
    assert!(dax_zero_range(&fs, &fs, 100, 100).unwrap());
    let mut want = old.clone();
    want[100..200].fill(0);
    assert_eq!(fs.peek(40 * PAGE, PAGE_SIZE), want);
    assert_eq!(
        fs.mapping.as_ref().unwrap().calls.lock().clone(),
        vec!["invalidate 0..=0"]
    );
}

#[test]
fn z_edge106_delalloc_mapping_is_refused_not_zeroed() {
    // ref: edge 106 (deliberate: EIO instead of zeroing at the mapping's address)
    let fs = IomapMock::new(64, 2 * PAGE);
    fs.map(IomapType::Delalloc, 0, PAGE, 10 * PAGE, IomapFlags::empty());
    fs.poke(10 * PAGE, &[0xCD; PAGE_SIZE]);
    assert_eq!(
        dax_zero_range(&fs, &fs, 0, PAGE).unwrap_err().errno(),
        libc::EIO
    );
    assert_eq!(fs.peek(10 * PAGE, PAGE_SIZE), vec![0xCD; PAGE_SIZE]);
}

#[test]
fn c_edge93_unshare_copies_shared_extents_only_inside_eof() {
    // ref: C-02, edge 93
    let fs = IomapMock::new(64, 3 * PAGE).with_mapping();
    let old = pattern(2 * PAGE_SIZE, 5);
    fs.poke(20 * PAGE, &old);
    fs.cow(0, 2 * PAGE, 40 * PAGE, Some((IomapType::Mapped, 20 * PAGE)));
    fs.map(
        IomapType::Mapped,
        2 * PAGE,
        PAGE,
        50 * PAGE,
        IomapFlags::empty(),
    );
    dax_file_unshare(&fs, &fs, 100, 100 * PAGE).unwrap();
    assert_eq!(fs.peek(40 * PAGE, 2 * PAGE_SIZE), old);
    assert_eq!(
        fs.begins.lock()[0],
        (
            100,
            3 * PAGE - 100,
            IterFlags::DAX | IterFlags::WRITE | IterFlags::UNSHARE
        ),
        "clipped to EOF"
    );
    assert_eq!(
        fs.mapping.as_ref().unwrap().calls.lock().clone(),
        vec!["invalidate 0..=1"]
    );
    // At or past EOF the filesystem is not asked.
    let n = fs.begins.lock().len();
    dax_file_unshare(&fs, &fs, 3 * PAGE, PAGE).unwrap();
    assert_eq!(fs.begins.lock().len(), n);
}

#[test]
fn c_unshare_of_a_poisoned_source_is_eio() {
    // ref: C-02
    let fs = IomapMock::new(64, PAGE);
    fs.cow(0, PAGE, 40 * PAGE, Some((IomapType::Mapped, 20 * PAGE)));
    fs.dev.driver().poison(20 * PAGE, 512).unwrap();
    assert_eq!(
        dax_file_unshare(&fs, &fs, 0, PAGE).unwrap_err().errno(),
        libc::EIO
    );
}

#[test]
fn c_edge94_dedupe_compare_rules() {
    // ref: C-03, edge 94
    let a = filled_file(2, 6);
    let b = filled_file(2, 6);
    assert!(dax_dedupe_file_range_compare(&a, 0, &b, 0, 2 * PAGE).unwrap());
    // A difference in the last byte.
    b.poke(10 * PAGE + 2 * PAGE - 1, &[0]);
    a.poke(10 * PAGE + 2 * PAGE - 1, &[1]);
    assert!(!dax_dedupe_file_range_compare(&a, 0, &b, 0, 2 * PAGE).unwrap());
    // Both holes: same. A hole against all-zero data: not same.
    let h1 = IomapMock::new(16, 2 * PAGE);
    let h2 = IomapMock::new(16, 2 * PAGE);
    assert!(dax_dedupe_file_range_compare(&h1, 0, &h2, 0, 2 * PAGE).unwrap());
    let z = IomapMock::new(64, 2 * PAGE);
    z.map(
        IomapType::Mapped,
        0,
        2 * PAGE,
        10 * PAGE,
        IomapFlags::empty(),
    );
    assert!(!dax_dedupe_file_range_compare(&h1, 0, &z, 0, 2 * PAGE).unwrap());
    // Unaligned positions within mappings.
    let c = filled_file(3, 7);
    let d = IomapMock::new(64, 3 * PAGE);
    d.map(
        IomapType::Mapped,
        0,
        3 * PAGE,
        30 * PAGE,
        IomapFlags::empty(),
    );
    d.poke(30 * PAGE + 4096 + 10, &pattern(3 * PAGE_SIZE, 7)[..5000]);
    assert!(dax_dedupe_file_range_compare(&c, 0, &d, PAGE + 10, 5000).unwrap());
}

#[test]
fn c_edge95_dedupe_compare_errors_keep_their_errno() {
    // ref: C-03, edge 95, quirk Q4 (fixed: the kernel returns 1 and loses the errno)
    let a = filled_file(1, 8);
    let b = filled_file(1, 8);
    b.dev.driver().poison(10 * PAGE, 512).unwrap();
    let e = dax_dedupe_file_range_compare(&a, 0, &b, 0, PAGE).unwrap_err();
    assert_eq!(e.errno(), libc::EIO);
}

fn remap_file<'a>(fs: &'a IomapMock) -> RemapFile<'a> {
    RemapFile {
        inode: fs,
        ops: fs,
        regular: true,
        directory: false,
        immutable: false,
        swapfile: false,
    }
}

#[test]
fn c04_remap_prep_checks_in_order() {
    // ref: C-04 (order of checks of __generic_remap_file_range_prep)
    let a = filled_file(4, 9);
    let b = filled_file(4, 9);
    let (ra, rb) = (remap_file(&a), remap_file(&b));
    let f = RemapFlags::empty();
    assert_eq!(
        dax_remap_file_range_prep(&ra, 0, &rb, 0, 2 * PAGE, f).unwrap(),
        2 * PAGE
    );
    let errno = |src: &RemapFile, dst: &RemapFile, pi, po, len, fl| {
        dax_remap_file_range_prep(src, pi, dst, po, len, fl)
            .unwrap_err()
            .errno()
    };
    let imm = RemapFile {
        immutable: true,
        swapfile: true,
        ..remap_file(&b)
    };
    assert_eq!(errno(&ra, &imm, 0, 0, PAGE, f), libc::EPERM);
    let swap = RemapFile {
        swapfile: true,
        directory: true,
        ..remap_file(&b)
    };
    assert_eq!(errno(&ra, &swap, 0, 0, PAGE, f), libc::ETXTBSY);
    let dir = RemapFile {
        directory: true,
        regular: false,
        ..remap_file(&b)
    };
    assert_eq!(errno(&dir, &rb, 0, 0, PAGE, f), libc::EISDIR);
    let odd = RemapFile {
        regular: false,
        ..remap_file(&b)
    };
    assert_eq!(errno(&ra, &odd, 0, 0, PAGE, f), libc::EINVAL);
    // Alignment, range and overlap checks.
    assert_eq!(errno(&ra, &rb, 100, 0, PAGE, f), libc::EINVAL);
    assert_eq!(errno(&ra, &rb, 0, 0, 100, f), libc::EINVAL);
    assert_eq!(errno(&ra, &rb, 4 * PAGE, 0, PAGE, f), libc::EINVAL);
    assert_eq!(errno(&ra, &rb, PAGE, 0, u64::MAX - 10, f), libc::EINVAL);
    assert_eq!(
        errno(&ra, &ra, 0, PAGE, 2 * PAGE, f),
        libc::EINVAL,
        "overlap in one file"
    );
    assert_eq!(
        dax_remap_file_range_prep(&ra, 0, &rb, 0, 100, RemapFlags::CAN_SHORTEN).unwrap(),
        0
    );
    // Shortened to the source's end (not block aligned): allowed only where it reaches
    // the destination's end, else generic_remap_check_len rounds it down (CAN_SHORTEN)
    // or refuses it (EINVAL for a clone) so that a partial EOF block never lands in the
    // middle of the destination.
    a.set_size(3 * PAGE + 100);
    let shorten = RemapFlags::CAN_SHORTEN;
    assert_eq!(
        dax_remap_file_range_prep(&ra, 2 * PAGE, &rb, 0, 10 * PAGE, shorten).unwrap(),
        PAGE
    );
    assert_eq!(
        errno(&ra, &rb, 2 * PAGE, 0, 10 * PAGE, f),
        libc::EINVAL,
        "would shorten"
    );
    assert_eq!(
        errno(&ra, &rb, 2 * PAGE, 0, PAGE + 100, f),
        libc::EINVAL,
        "partial block"
    );
    // Reaching the destination's end, the partial block is fine.
    let at_end = dax_remap_file_range_prep(&ra, 2 * PAGE, &rb, 3 * PAGE, PAGE + 100, f);
    assert_eq!(at_end.unwrap(), PAGE + 100);
    // Zero length: a clone goes to the source's end (a partial block inside the
    // destination here: EINVAL; at its end: fine), a dedupe does nothing.
    assert_eq!(errno(&ra, &rb, PAGE, 0, 0, f), libc::EINVAL);
    assert_eq!(
        dax_remap_file_range_prep(&ra, PAGE, &rb, 2 * PAGE, 0, f).unwrap(),
        2 * PAGE + 100
    );
    assert_eq!(
        dax_remap_file_range_prep(&ra, 0, &rb, 0, 0, RemapFlags::DEDUP).unwrap(),
        0
    );
    assert_eq!(errno(&ra, &rb, 8 * PAGE, 0, 0, f), libc::EINVAL);
}

#[test]
fn c04_remap_prep_dedupe_compares_and_answers_ebade() {
    // ref: C-04, C-03
    let a = filled_file(2, 10).with_mapping();
    let b = filled_file(2, 10).with_mapping();
    let (ra, rb) = (remap_file(&a), remap_file(&b));
    assert_eq!(
        dax_remap_file_range_prep(&ra, 0, &rb, 0, 2 * PAGE, RemapFlags::DEDUP).unwrap(),
        2 * PAGE
    );
    assert_eq!(
        a.mapping.as_ref().unwrap().calls.lock().clone(),
        vec![format!("writeback 0..={}", 2 * PAGE - 1)]
    );
    b.poke(10 * PAGE + 5, &[0xFF]);
    let e = dax_remap_file_range_prep(&ra, 0, &rb, 0, 2 * PAGE, RemapFlags::DEDUP).unwrap_err();
    assert_eq!(e.errno(), libc::EBADE);
    // Dedupe ranges must lie inside both files.
    b.set_size(PAGE);
    let e = dax_remap_file_range_prep(&ra, 0, &rb, 0, 2 * PAGE, RemapFlags::DEDUP).unwrap_err();
    assert_eq!(e.errno(), libc::EINVAL);
}

fn three_extents() -> IomapMock {
    // [0, 2P) mapped, [2P, 4P) hole, [4P, 5P) unwritten+shared, [5P, 6P) mapped merged.
    let fs = IomapMock::new(64, 6 * PAGE);
    fs.map(
        IomapType::Mapped,
        0,
        2 * PAGE,
        10 * PAGE,
        IomapFlags::empty(),
    );
    fs.map(
        IomapType::Unwritten,
        4 * PAGE,
        PAGE,
        20 * PAGE,
        IomapFlags::SHARED,
    );
    fs.map(
        IomapType::Mapped,
        5 * PAGE,
        PAGE,
        30 * PAGE,
        IomapFlags::MERGED,
    );
    fs
}

#[test]
fn iom15_fiemap_reports_non_hole_mappings_with_flags() {
    // ref: IOM-15
    let fs = three_extents();
    let mut fm = Fiemap {
        extents_max: 10,
        ..Fiemap::default()
    };
    iomap_fiemap(&fs, &fs, &mut fm, 100, 6 * PAGE).unwrap();
    let ext = |logical, physical, length, flags| FiemapExtent {
        logical,
        physical,
        length,
        flags,
    };
    assert_eq!(
        fm.extents,
        vec![
            ext(0, 10 * PAGE, 2 * PAGE, FiemapExtentFlags::empty()),
            ext(
                4 * PAGE,
                20 * PAGE,
                PAGE,
                FiemapExtentFlags::UNWRITTEN | FiemapExtentFlags::SHARED
            ),
            ext(
                5 * PAGE,
                30 * PAGE,
                PAGE,
                FiemapExtentFlags::MERGED | FiemapExtentFlags::LAST
            ),
        ]
    );
    assert_eq!(fm.mapped, 3);
    assert!(fs.begins.lock().iter().all(|b| b.2 == IterFlags::REPORT));
    // Counting only.
    let mut count = Fiemap::default();
    iomap_fiemap(&fs, &fs, &mut count, 0, 6 * PAGE).unwrap();
    assert_eq!((count.mapped, count.extents.len()), (3, 0));
}

#[test]
fn iom_edge98_fiemap_full_array_drops_last() {
    // ref: IOM-15, edge 98, quirk Q15 (reproduced)
    let fs = three_extents();
    let mut fm = Fiemap {
        extents_max: 1,
        ..Fiemap::default()
    };
    iomap_fiemap(&fs, &fs, &mut fm, 0, 6 * PAGE).unwrap();
    assert_eq!(fm.extents.len(), 1);
    assert!(!fm.extents[0].flags.contains(FiemapExtentFlags::LAST));
    let mut fm = Fiemap {
        extents_max: 3,
        ..Fiemap::default()
    };
    iomap_fiemap(&fs, &fs, &mut fm, 0, 6 * PAGE).unwrap();
    assert!(fm.extents[2].flags.contains(FiemapExtentFlags::LAST));
}

#[test]
fn iom15_fiemap_argument_errors() {
    // ref: IOM-15, §2.15.1
    let fs = three_extents();
    let mut fm = Fiemap::default();
    assert_eq!(
        iomap_fiemap(&fs, &fs, &mut fm, 0, 0).unwrap_err().errno(),
        libc::EINVAL
    );
    assert_eq!(
        iomap_fiemap(&fs, &fs, &mut fm, i64::MAX as u64, 1)
            .unwrap_err()
            .errno(),
        libc::EFBIG
    );
    fm.flags = FiemapFlags::XATTR | FiemapFlags::SYNC;
    assert_eq!(
        iomap_fiemap(&fs, &fs, &mut fm, 0, 1).unwrap_err().errno(),
        libc::EBADR
    );
    assert_eq!(
        fm.flags,
        FiemapFlags::XATTR,
        "the unsupported flags are handed back"
    );
    let fs = three_extents().with_mapping();
    let mut fm = Fiemap {
        flags: FiemapFlags::SYNC,
        ..Fiemap::default()
    };
    iomap_fiemap(&fs, &fs, &mut fm, 0, PAGE).unwrap();
    assert_eq!(
        fs.mapping.as_ref().unwrap().calls.lock().len(),
        1,
        "SYNC wrote back first"
    );
}

#[test]
fn iom_edge97_seek_hole() {
    // ref: IOM-16, edge 97
    let fs = three_extents();
    assert_eq!(iomap_seek_hole(&fs, &fs, 0).unwrap(), 2 * PAGE);
    assert_eq!(
        iomap_seek_hole(&fs, &fs, 3 * PAGE as i64).unwrap(),
        3 * PAGE
    );
    // Unwritten with no index entries: a hole right where the probe starts.
    assert_eq!(
        iomap_seek_hole(&fs, &fs, 4 * PAGE as i64 + 7).unwrap(),
        4 * PAGE + 7
    );
    // Fully mapped tail: the virtual hole at EOF.
    assert_eq!(
        iomap_seek_hole(&fs, &fs, 5 * PAGE as i64).unwrap(),
        6 * PAGE
    );
    for bad in [-1, 6 * PAGE as i64, i64::MAX] {
        assert_eq!(
            iomap_seek_hole(&fs, &fs, bad).unwrap_err().errno(),
            libc::ENXIO
        );
    }
}

#[test]
fn iom_edge96_seek_data_in_unwritten_extents_probes_the_index() {
    // ref: IOM-17, edge 96
    let fs = IomapMock::new(64, 4 * PAGE).with_mapping();
    fs.map(
        IomapType::Unwritten,
        0,
        2 * PAGE,
        10 * PAGE,
        IomapFlags::empty(),
    );
    assert_eq!(
        iomap_seek_data(&fs, &fs, 0).unwrap_err().errno(),
        libc::ENXIO
    );
    // A read fault left a zero-page entry at page 1: now that page is data.
    fs.mapping.as_ref().unwrap().entries.lock().push((1, 1));
    assert_eq!(iomap_seek_data(&fs, &fs, 0).unwrap(), PAGE);
    assert_eq!(
        iomap_seek_data(&fs, &fs, PAGE as i64 + 5).unwrap(),
        PAGE + 5
    );
    // SEEK_HOLE inside the unwritten extent skips the entry.
    assert_eq!(iomap_seek_hole(&fs, &fs, PAGE as i64).unwrap(), 2 * PAGE);
    // Mapped data after a hole.
    let fs = three_extents();
    assert_eq!(
        iomap_seek_data(&fs, &fs, 2 * PAGE as i64).unwrap(),
        5 * PAGE
    );
    assert_eq!(iomap_seek_data(&fs, &fs, 100).unwrap(), 100);
    assert_eq!(
        iomap_seek_data(&fs, &fs, -5).unwrap_err().errno(),
        libc::ENXIO
    );
}

#[test]
fn iom_edge99_bmap() {
    // ref: IOM-18, edge 99
    let fs = three_extents();
    assert_eq!(iomap_bmap(&fs, &fs, 1), 11);
    assert_eq!(iomap_bmap(&fs, &fs, 2), 0, "hole");
    assert_eq!(iomap_bmap(&fs, &fs, 4), 0, "unwritten");
    assert_eq!(iomap_bmap(&fs, &fs, u64::MAX), 0);
    *fs.fail_begin.lock() = Some((fs.begins.lock().len(), DaxError::Io { what: "x" }));
    assert_eq!(iomap_bmap(&fs, &fs, 0), 0, "errors answer 0");
}

// ---- Regressions from the review against the reference ----

#[test]
fn z_zero_length_zero_and_unshare_with_an_index_do_not_underflow() {
    // A zero-length request at pos 0 over a SHARED extent with a mapping index: the
    // filesystem is asked once with length 0, nothing is invalidated, nothing panics.
    let fs = IomapMock::new(64, 4 * PAGE).with_mapping();
    fs.cow(0, PAGE, 40 * PAGE, Some((IomapType::Mapped, 20 * PAGE)));
    assert!(dax_zero_range(&fs, &fs, 0, 0).unwrap());
    dax_file_unshare(&fs, &fs, 0, 0).unwrap();
    assert_eq!(
        fs.begins.lock().iter().map(|b| b.1).collect::<Vec<_>>(),
        vec![0, 0]
    );
    assert!(fs.mapping.as_ref().unwrap().calls.lock().is_empty());
}

#[test]
fn z_zero_range_over_a_cow_destination_without_source_zeroes_it() {
    // ref: §2.10.2 step 1: a CoW destination whose old data was a hole carries no
    // srcmap; the effective source is the (MAPPED) destination, so it is zeroed.
    let fs = IomapMock::new(64, 2 * PAGE);
    fs.poke(40 * PAGE, &[0x77; PAGE_SIZE]);
    fs.cow(0, PAGE, 40 * PAGE, None);
    assert!(dax_zero_range(&fs, &fs, 100, 100).unwrap());
    assert_eq!(
        fs.peek(40 * PAGE, PAGE_SIZE),
        vec![0u8; PAGE_SIZE],
        "edges zeroed too"
    );
}

#[test]
fn z_did_zero_reflects_completed_mappings_only() {
    // A mapping that fails on its first page leaves did_zero false (the error is the
    // result); an earlier completed mapping does not turn an error into success.
    let fs = filled_file(2, 11);
    fs.dev.driver().poison(10 * PAGE + 1024, 512).unwrap();
    assert_eq!(
        dax_zero_range(&fs, &fs, 10, 10).unwrap_err().errno(),
        libc::EIO
    );
    let fs = IomapMock::two_single_page_extents(64);
    fs.dev.driver().poison(11 * PAGE, 512).unwrap();
    let e = dax_zero_range(&fs, &fs, 100, PAGE).unwrap_err();
    assert_eq!(e.errno(), libc::EIO);
    assert!(
        fs.peek(10 * PAGE + 100, PAGE_SIZE - 100)
            .iter()
            .all(|&b| b == 0)
    );
}

#[test]
fn c_edge93_unshare_skips_shared_without_a_mapped_source() {
    // ref: IOM-14, edge 93: SHARED with an UNWRITTEN source, or with none, is skipped.
    for src in [Some((IomapType::Unwritten, 20 * PAGE)), None] {
        let fs = IomapMock::new(64, PAGE);
        fs.poke(20 * PAGE, &[0x55; PAGE_SIZE]);
        fs.poke(40 * PAGE, &[0x77; PAGE_SIZE]);
        fs.cow(0, PAGE, 40 * PAGE, src);
        dax_file_unshare(&fs, &fs, 0, PAGE).unwrap();
        assert_eq!(
            fs.peek(40 * PAGE, PAGE_SIZE),
            vec![0x77; PAGE_SIZE],
            "{src:?}"
        );
    }
}

#[test]
fn c03_dedupe_of_zero_length_asks_each_file_once() {
    // ref: §2.12.4 last bullet
    let a = filled_file(1, 12);
    let b = filled_file(1, 13);
    assert!(dax_dedupe_file_range_compare(&a, 0, &b, 0, 0).unwrap());
    assert_eq!((a.begins.lock().len(), b.begins.lock().len()), (1, 1));
    let h = IomapMock::new(16, PAGE);
    assert!(
        !dax_dedupe_file_range_compare(&h, 0, &b, 0, 0).unwrap(),
        "one hole"
    );
}

#[test]
fn iom15_fiemap_treats_enoent_as_success() {
    // ref: §2.14.1: ENOENT from the filesystem (no such fork) ends the walk quietly.
    let fs = three_extents();
    *fs.fail_begin.lock() = Some((
        1,
        DaxError::Os {
            errno: libc::ENOENT,
            what: "no fork",
        },
    ));
    let mut fm = Fiemap {
        extents_max: 4,
        ..Fiemap::default()
    };
    iomap_fiemap(&fs, &fs, &mut fm, 0, 6 * PAGE).unwrap();
    assert_eq!(fm.extents.len(), 1);
    assert!(fm.extents[0].flags.contains(FiemapExtentFlags::LAST));
}

#[test]
fn iom18_bmap_ends_its_mapping_with_nothing_written_and_honours_its_error() {
    // ref: IOM-07, IOM-18: the body advances nothing; an iomap_end error answers 0.
    let fs = three_extents();
    assert_eq!(iomap_bmap(&fs, &fs, 1), 11);
    assert_eq!(fs.ends.lock()[0].written, 0);
    *fs.end_result.lock() = Err(DaxError::Io { what: "end" });
    assert_eq!(iomap_bmap(&fs, &fs, 1), 0);
}

#[test]
fn iom16_seek_returns_an_iomap_end_error_of_the_answering_mapping() {
    // ref: IOM-07, IOM-16, IOM-17: the answer is found without advancing, so the
    // iterator ends the mapping and its iomap_end error is the result.
    let fs = three_extents();
    *fs.end_result.lock() = Err(DaxError::Io { what: "end" });
    assert_eq!(iomap_seek_data(&fs, &fs, 0).unwrap_err().errno(), libc::EIO);
    assert_eq!(
        iomap_seek_hole(&fs, &fs, 2 * PAGE as i64)
            .unwrap_err()
            .errno(),
        libc::EIO
    );
}
