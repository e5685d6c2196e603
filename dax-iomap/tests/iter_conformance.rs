//! Conformance tests for the iomap iterator (reference §2.4.3, IOM-06..IOM-14, edge
//! cases 35–41) and for the mapping validation dax-rs adds.

use dax_device::DaxError;
use dax_iomap::{Iomap, IomapFlags, IomapIter, IomapOps, IomapType, IterFlags, MAX_STALE_RETRIES};
use dax_testkit::iomap::{EndCall, Extent, IomapMock, PAGE};

const F: IterFlags = IterFlags::DAX;

fn fs_with_two_extents() -> IomapMock {
    let fs = IomapMock::new(64, 16 * PAGE);
    fs.map(
        IomapType::Mapped,
        0,
        2 * PAGE,
        8 * PAGE,
        IomapFlags::empty(),
    );
    fs.map(
        IomapType::Mapped,
        2 * PAGE,
        2 * PAGE,
        20 * PAGE,
        IomapFlags::empty(),
    );
    fs
}

#[test]
fn iom08_walks_mappings_and_ends_each_one() {
    // ref: IOM-07, IOM-08, IOM-09, IOM-10
    let fs = fs_with_two_extents();
    let mut it = IomapIter::new(&fs, 100, 3 * PAGE, F).unwrap();
    let mut seen = vec![];
    while it.next().unwrap() {
        seen.push((it.pos(), it.length(), it.iomap().offset));
        let n = it.length();
        it.advance(n).unwrap();
    }
    assert_eq!(
        seen,
        vec![(100, 2 * PAGE - 100, 0), (2 * PAGE, PAGE + 100, 2 * PAGE)]
    );
    assert_eq!(it.processed(), 3 * PAGE);
    assert!(!it.next().unwrap(), "an ended iteration stays ended");
    drop(it);
    let ends = fs.ends.lock().clone();
    assert_eq!(
        ends,
        vec![
            EndCall {
                pos: 100,
                length: 2 * PAGE - 100,
                written: 2 * PAGE - 100,
                flags: F
            },
            EndCall {
                pos: 2 * PAGE,
                length: PAGE + 100,
                written: PAGE + 100,
                flags: F
            },
        ]
    );
    assert_eq!(
        fs.begins.lock().clone(),
        vec![(100, 3 * PAGE, F), (2 * PAGE, PAGE + 100, F)]
    );
}

#[test]
fn iom_edge35_iomap_end_error_counts_only_without_progress() {
    // ref: IOM-07, edge 35
    let fs = fs_with_two_extents();
    *fs.end_result.lock() = Err(DaxError::Io { what: "end" });
    let mut it = IomapIter::new(&fs, 0, 4 * PAGE, F).unwrap();
    assert!(it.next().unwrap());
    it.advance(PAGE).unwrap();
    // Progress was made: the end error is ignored and the next mapping begins.
    assert!(it.next().unwrap());
    assert_eq!(it.pos(), PAGE);
    // No progress in this mapping: the end error is the result.
    assert_eq!(it.next().unwrap_err(), DaxError::Io { what: "end" });
}

#[test]
fn iom_edge36_advance_past_the_mapping_is_eio_and_moves_nothing() {
    // ref: IOM-10, edge 36
    let fs = fs_with_two_extents();
    let mut it = IomapIter::new(&fs, 0, 4 * PAGE, F).unwrap();
    assert!(it.next().unwrap());
    assert_eq!(it.advance(2 * PAGE + 1).unwrap_err().errno(), libc::EIO);
    assert_eq!(it.pos(), 0);
    it.advance(2 * PAGE).unwrap();
    assert_eq!(it.length(), 0);
}

#[test]
fn iom_edge37_srcmap_shorter_than_iomap_limits_the_length() {
    // ref: IOM-09, IOM-11, edge 37
    let fs = IomapMock::new(64, 16 * PAGE);
    let map = Iomap {
        addr: 8 * PAGE,
        offset: 0,
        length: 4 * PAGE,
        kind: IomapType::Mapped,
        flags: IomapFlags::SHARED,
        dax_dev: Some(fs.dyn_dev()),
        ..Iomap::default()
    };
    let src = Iomap {
        addr: 30 * PAGE,
        offset: 0,
        length: PAGE,
        kind: IomapType::Mapped,
        dax_dev: Some(fs.dyn_dev()),
        ..Iomap::default()
    };
    fs.push(Extent {
        map,
        src: Some(src),
    });
    let flags = F | IterFlags::WRITE;
    let mut it = IomapIter::new(&fs, 0, 4 * PAGE, flags).unwrap();
    assert!(it.next().unwrap());
    assert_eq!(it.length(), PAGE);
    assert_eq!(it.srcmap(), &src);
    assert!(it.want_unshare());
    it.advance(PAGE).unwrap();
    // The mock answers the same srcmap again, which no longer covers the position:
    // refused rather than used.
    let e = it.next().unwrap_err();
    assert!(matches!(e, DaxError::InvalidMapping { pos, .. } if pos == PAGE));
    assert_eq!(
        fs.begins.lock()[1].0,
        PAGE,
        "next begin starts at the srcmap end"
    );
    assert_eq!(fs.ends.lock()[0].length, PAGE);
}

#[test]
fn iom_edge38_body_error_is_returned_after_iomap_end() {
    // ref: IOM-12, edge 38
    let fs = fs_with_two_extents();
    let mut it = IomapIter::new(&fs, 0, 4 * PAGE, F).unwrap();
    assert!(it.next().unwrap());
    it.advance(100).unwrap();
    it.set_status(Err(DaxError::WouldBlock));
    assert_eq!(it.next().unwrap_err().errno(), libc::EAGAIN);
    assert_eq!(fs.ends.lock().len(), 1);
    assert_eq!(fs.ends.lock()[0].written, 100);
    assert!(!it.next().unwrap());
}

#[test]
fn iom_edge39_no_progress_ends_the_iteration() {
    // ref: edge 39
    let fs = fs_with_two_extents();
    let mut it = IomapIter::new(&fs, 0, 4 * PAGE, F).unwrap();
    assert!(it.next().unwrap());
    assert!(!it.next().unwrap());
    assert_eq!(it.processed(), 0);
    assert_eq!(fs.begins.lock().len(), 1);
    assert_eq!(fs.ends.lock()[0].written, 0);
}

#[test]
fn iom_edge40_stale_without_progress_asks_again() {
    // ref: IOM-13, edge 40
    let fs = fs_with_two_extents();
    let mut it = IomapIter::new(&fs, 0, 4 * PAGE, F).unwrap();
    assert!(it.next().unwrap());
    it.mark_stale();
    assert!(it.next().unwrap());
    assert_eq!(it.pos(), 0);
    assert_eq!(
        fs.begins.lock().iter().map(|b| b.0).collect::<Vec<_>>(),
        vec![0, 0]
    );
    // A body that keeps going stale without progress is stopped, not looped forever.
    let mut rounds = 0;
    let err = loop {
        it.mark_stale();
        match it.next() {
            Ok(true) => rounds += 1,
            Ok(false) => panic!("stale iteration ended quietly"),
            Err(e) => break e,
        }
    };
    assert_eq!(err.errno(), libc::EIO);
    assert_eq!(rounds, MAX_STALE_RETRIES - 1);
}

#[test]
fn iom_edge41_begin_error_first_call_has_no_end() {
    // ref: IOM-06, edge 41
    let fs = fs_with_two_extents();
    *fs.fail_begin.lock() = Some((0, DaxError::NoSpace { what: "full" }));
    let mut it = IomapIter::new(&fs, 0, 4 * PAGE, F).unwrap();
    assert_eq!(it.next().unwrap_err().errno(), libc::ENOSPC);
    drop(it);
    assert!(fs.ends.lock().is_empty());
}

#[test]
fn dropping_an_iterator_mid_mapping_still_calls_iomap_end() {
    let fs = fs_with_two_extents();
    {
        let mut it = IomapIter::new(&fs, 0, 4 * PAGE, F).unwrap();
        assert!(it.next().unwrap());
        it.advance(10).unwrap();
    }
    assert_eq!(fs.ends.lock()[0].written, 10);
}

#[test]
fn ranges_past_the_largest_offset_are_einval() {
    let fs = fs_with_two_extents();
    for (pos, len) in [
        (i64::MAX as u64 + 1, 0),
        (i64::MAX as u64, 1),
        (1, u64::MAX),
    ] {
        let e = IomapIter::new(&fs, pos, len, F).err().expect("refused");
        assert_eq!(e.errno(), libc::EINVAL);
    }
    assert!(IomapIter::new(&fs, i64::MAX as u64, 0, F).is_ok());
}

/// An IomapOps that returns one fixed answer.
struct Fixed<'d>(Iomap<'d>, Option<Iomap<'d>>);

impl IomapOps for Fixed<'_> {
    fn iomap_begin(
        &self,
        _: u64,
        _: u64,
        _: IterFlags,
    ) -> Result<(Iomap<'_>, Option<Iomap<'_>>), DaxError> {
        Ok((self.0, self.1))
    }
}

fn reason(ops: &Fixed<'_>, pos: u64, flags: IterFlags) -> &'static str {
    let mut it = IomapIter::new(ops, pos, PAGE, flags).unwrap();
    match it.next() {
        Err(DaxError::InvalidMapping { reason, .. }) => reason,
        other => panic!("expected InvalidMapping, got {other:?}"),
    }
}

#[test]
fn invalid_mappings_are_refused_with_eio() {
    let fs = IomapMock::new(16, 16 * PAGE);
    let dev = fs.dyn_dev();
    let good = Iomap::mapped(0, PAGE, 0, dev);
    let w = F | IterFlags::WRITE;
    let with = |f: &dyn Fn(&mut Iomap<'_>)| {
        let mut m = good;
        f(&mut m);
        Fixed(m, None)
    };
    assert_eq!(reason(&with(&|m| m.length = 0), 0, F), "zero length");
    assert_eq!(
        reason(&with(&|m| m.offset = 100), 0, F),
        "mapping does not cover the position"
    );
    assert_eq!(
        reason(&with(&|_| {}), PAGE, F),
        "mapping does not cover the position"
    );
    assert_eq!(
        reason(
            &with(&|m| {
                m.offset = u64::MAX - 10;
                m.length = 100
            }),
            0,
            F
        ),
        "offset + length overflows"
    );
    assert_eq!(
        reason(&with(&|m| m.flags = IomapFlags::STALE), 0, F),
        "STALE is for the core to set, not the filesystem"
    );
    assert_eq!(
        reason(&with(&|m| m.dax_dev = None), 0, F),
        "mapping with storage has no DAX device"
    );
    assert_eq!(
        reason(&with(&|m| m.addr = 100), 0, F),
        "address and offset are not page-aligned alike"
    );
    assert_eq!(
        reason(&with(&|m| m.addr = 16 * PAGE), 0, F),
        "mapping runs past the end of the device"
    );
    assert_eq!(
        reason(&with(&|m| m.length = 17 * PAGE), 0, F),
        "mapping runs past the end of the device"
    );
    assert_eq!(
        reason(&with(&|m| m.addr = u64::MAX - 4095), 0, F),
        "mapping runs past the end of the device"
    );
    let src_map = Iomap::mapped(0, PAGE, PAGE, dev);
    let src = Some(src_map);
    assert_eq!(
        reason(&Fixed(good, src), 0, w),
        "source map for a destination that is not SHARED"
    );
    let mut shared = good;
    shared.flags = IomapFlags::SHARED;
    assert_eq!(
        reason(&Fixed(shared, src), 0, F),
        "source map on an operation that never copies"
    );
    let mut shared_src = src_map;
    shared_src.flags = IomapFlags::SHARED;
    assert_eq!(
        reason(&Fixed(shared, Some(shared_src)), 0, w),
        "source map flagged SHARED"
    );
    let mut bad_src = src_map;
    bad_src.offset = PAGE;
    assert_eq!(
        reason(&Fixed(shared, Some(bad_src)), 0, w),
        "mapping does not cover the position"
    );
    // The same mappings are fine where they are valid.
    let ok = Fixed(shared, src);
    let mut it = IomapIter::new(&ok, 0, PAGE, w).unwrap();
    assert!(it.next().unwrap());
    // Without the DAX flag (REPORT) addresses are not checked against the device.
    let far = Fixed(
        Iomap {
            addr: 1 << 50,
            ..good
        },
        None,
    );
    let mut it = IomapIter::new(&far, 0, PAGE, IterFlags::REPORT).unwrap();
    assert!(it.next().unwrap());
    // A hole needs no device or address.
    let hole = Fixed(Iomap::hole(0, PAGE), None);
    let mut it = IomapIter::new(&hole, 0, PAGE, F).unwrap();
    assert!(it.next().unwrap());
}
