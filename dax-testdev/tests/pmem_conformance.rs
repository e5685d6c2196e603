//! Conformance tests for the pmem driver behaviour MemDevice reproduces (reference
//! §1.2, §2.2, edge cases 11–18) and its deliberate fix of quirk Q8.

use std::sync::Arc;

use dax_device::{DaxAccessMode, DaxDevice, DaxError, DaxOperations, PAGE_SIZE};
use dax_testdev::{DevOp, MemDevice};

const ACCESS: DaxAccessMode = DaxAccessMode::Access;
const RECOVERY: DaxAccessMode = DaxAccessMode::RecoveryWrite;
const PAGE: u64 = PAGE_SIZE as u64;

fn dev(pages: u64) -> Arc<DaxDevice<MemDevice>> {
    MemDevice::builder().size(pages * PAGE).build().unwrap()
}

/// Bad sectors `[start, start + len)` known to the driver (acknowledged, as the
/// platform list reports them), with hardware poison under them.
fn bad_sectors(d: &DaxDevice<MemDevice>, start: u64, len: u64) {
    d.driver().poison(start * 512, len * 512).unwrap();
}

fn records(d: &DaxDevice<MemDevice>) -> Vec<(u64, u64)> {
    d.driver()
        .badblocks()
        .records()
        .iter()
        .map(|r| (r.start, r.len))
        .collect()
}

#[test]
fn drv01_no_badblocks_answers_pages_to_the_end() {
    // ref: DRV-01 (driver level; the core clips to the request)
    let d = dev(16);
    let raw = d.driver().direct_access(5, 1, ACCESS).unwrap();
    assert_eq!(raw.pages, 11);
    assert_eq!(
        d.read_lock().direct_access(5, 1, ACCESS).unwrap().pages(),
        1
    );
    let r0 = d.driver().direct_access(0, 1, ACCESS).unwrap();
    assert_eq!(raw.pfn, r0.pfn.add(5));
    assert_eq!(
        raw.addr.as_ptr() as usize,
        r0.addr.as_ptr() as usize + 5 * PAGE_SIZE
    );
}

#[test]
fn drv02_edge14_badblocks_elsewhere_answer_exactly_the_request() {
    // ref: DRV-02, edge 14
    let d = dev(16);
    bad_sectors(&d, 15 * 8, 1);
    assert_eq!(d.driver().direct_access(2, 4, ACCESS).unwrap().pages, 4);
    assert_eq!(d.driver().direct_access(2, 4, RECOVERY).unwrap().pages, 4);
}

#[test]
fn drv_q8_fixed_never_answers_past_the_end() {
    // ref: quirk Q8 (fixed on purpose): pmem answers nr_pages even past the end when
    // bad blocks exist elsewhere, and wraps for an offset past the end; MemDevice
    // clips to the device and answers 0 (-> ERANGE) past it.
    let d = dev(16);
    bad_sectors(&d, 0, 1);
    assert_eq!(d.driver().direct_access(14, 8, ACCESS).unwrap().pages, 2);
    assert_eq!(d.driver().direct_access(16, 1, ACCESS).unwrap().pages, 0);
    assert_eq!(
        d.driver().direct_access(u64::MAX, 1, ACCESS).unwrap().pages,
        0
    );
    let e = d.read_lock().direct_access(20, 1, ACCESS).unwrap_err();
    assert_eq!(e.errno(), libc::ERANGE);
}

#[test]
fn drv03_edge11_access_mode_fails_on_any_bad_sector_in_the_request() {
    // ref: DRV-03, edge 11: only relative page 3 is bad, still no "3 good pages".
    let d = dev(16);
    bad_sectors(&d, (4 + 3) * 8 + 2, 1);
    let e = d.read_lock().direct_access(4, 8, ACCESS).unwrap_err();
    assert_eq!(
        e,
        DaxError::HwPoison {
            pgoff: 4,
            nr_pages: 8
        }
    );
    assert_eq!(e.errno(), libc::EHWPOISON);
    // The clean leading pages alone are fine.
    assert_eq!(
        d.read_lock().direct_access(4, 3, ACCESS).unwrap().pages(),
        3
    );
    // Unacknowledged records count too.
    let d2 = dev(4);
    d2.driver().badblocks().set(8, 1, false);
    assert_eq!(
        d2.read_lock()
            .direct_access(0, 4, ACCESS)
            .unwrap_err()
            .errno(),
        libc::EHWPOISON
    );
}

#[test]
fn drv04_edge12_recovery_mode_counts_pages_up_to_the_first_bad_record() {
    // ref: DRV-04, edge 12
    for (first_bad_sector, want) in [(24, 3), (25, 4), (0, 1), (7, 1), (8, 1), (9, 2)] {
        let d = dev(16);
        bad_sectors(&d, first_bad_sector, 1);
        let got = d.read_lock().direct_access(0, 8, RECOVERY).unwrap().pages();
        assert_eq!(got, want, "first bad sector {first_bad_sector}");
    }
}

#[test]
fn drv04_edge13_record_starting_before_the_request_answers_the_whole_request() {
    // ref: DRV-04, edge 13, quirk Q3 (reproduced: the kernel's wrap clipped to nr)
    let d = dev(16);
    bad_sectors(&d, 0, 16);
    assert_eq!(
        d.read_lock().direct_access(1, 4, RECOVERY).unwrap().pages(),
        4
    );
}

#[test]
fn drv05_edge18_zero_page_range_clears_poison() {
    // ref: DRV-05, edge 18
    let d = dev(4);
    d.driver().poke(PAGE, &[0xEE; PAGE_SIZE]).unwrap();
    bad_sectors(&d, 8 + 3, 2);
    assert!(d.driver().is_poisoned(PAGE, PAGE));
    d.zero_page_range(1, 1).unwrap();
    assert!(d.driver().badblocks().is_empty());
    assert!(!d.driver().is_poisoned(0, 4 * PAGE));
    let mut buf = vec![0xFFu8; PAGE_SIZE];
    d.driver().read(PAGE, &mut buf).unwrap();
    assert!(buf.iter().all(|&b| b == 0));
    assert_eq!(d.driver().calls(DevOp::ClearPoison), 1);
    // A clean page is zeroed without asking the firmware.
    d.zero_page_range(2, 1).unwrap();
    assert_eq!(d.driver().calls(DevOp::ClearPoison), 1);
}

#[test]
fn drv05_edge17_partial_clear_fails_zeroing_and_keeps_the_rest_bad() {
    // ref: DRV-05, edge 17 (zero path): half cleared -> EIO, the cleared sectors leave
    // the table, the others stay; nothing is written.
    let d = dev(4);
    d.driver().poke(PAGE, &[0xEE; PAGE_SIZE]).unwrap();
    bad_sectors(&d, 8, 8);
    d.driver().inject_partial_clear(1, PAGE / 2);
    let e = d.zero_page_range(1, 1).unwrap_err();
    assert_eq!(e.errno(), libc::EIO);
    assert_eq!(records(&d), vec![(12, 4)]);
    let mut buf = vec![0u8; PAGE_SIZE];
    d.driver().peek(PAGE, &mut buf).unwrap();
    assert!(buf.iter().all(|&b| b == 0xEE), "a failed zeroing wrote");
    // A failing firmware clear is EIO too, with the table untouched.
    d.driver()
        .inject_error(DevOp::ClearPoison, 1, DaxError::Io { what: "firmware" });
    assert_eq!(d.zero_page_range(1, 1).unwrap_err().errno(), libc::EIO);
    assert_eq!(records(&d), vec![(12, 4)]);
    // Then it works.
    d.zero_page_range(1, 1).unwrap();
    assert!(records(&d).is_empty());
}

#[test]
fn drv06_recovery_write_over_a_clean_range_is_a_plain_copy() {
    // ref: DRV-06
    let d = dev(4);
    bad_sectors(&d, 3 * 8, 1); // elsewhere
    let s = d.read_lock();
    let da = s.direct_access(0, 2, RECOVERY).unwrap();
    assert_eq!(da.recovery_write(100, b"unaligned is fine when clean"), 28);
    let mut back = [0u8; 28];
    d.driver().peek(100, &mut back).unwrap();
    assert_eq!(&back, b"unaligned is fine when clean");
    assert_eq!(d.driver().calls(DevOp::ClearPoison), 0);
}

#[test]
fn drv07_edge15_unaligned_recovery_write_over_poison_writes_nothing() {
    // ref: DRV-07, edge 15
    let d = dev(4);
    bad_sectors(&d, 8, 1);
    let s = d.read_lock();
    let da = s.direct_access(1, 1, RECOVERY).unwrap();
    assert_eq!(
        da.recovery_write(512, &[7u8; 512]),
        0,
        "address not page aligned"
    );
    assert_eq!(
        da.recovery_write(0, &[7u8; 2048]),
        0,
        "length not a page multiple"
    );
    assert_eq!(records(&d), vec![(8, 1)]);
    let mut back = [1u8; 512];
    d.driver().peek(PAGE + 512, &mut back).unwrap();
    assert_eq!(back, [0u8; 512]);
}

#[test]
fn drv08_edge16_aligned_recovery_write_clears_then_writes() {
    // ref: DRV-08, edge 16
    let d = dev(4);
    bad_sectors(&d, 8 + 2, 3);
    {
        let s = d.read_lock();
        let da = s.direct_access(1, 1, RECOVERY).unwrap();
        assert_eq!(da.recovery_write(0, &[0x42u8; PAGE_SIZE]), PAGE_SIZE);
    }
    assert!(records(&d).is_empty());
    assert!(!d.driver().is_poisoned(0, 4 * PAGE));
    let mut buf = vec![0u8; PAGE_SIZE];
    d.driver().read(PAGE, &mut buf).unwrap();
    assert!(buf.iter().all(|&b| b == 0x42));
    // And ordinary access works again.
    assert!(d.read_lock().direct_access(1, 1, ACCESS).is_ok());
}

#[test]
fn drv08_edge17_partial_clear_fails_recovery_write() {
    // ref: DRV-08, edge 17 (recovery path): partial or failed clears write nothing.
    let d = dev(4);
    bad_sectors(&d, 8, 8);
    let s = d.read_lock();
    let da = s.direct_access(1, 1, RECOVERY).unwrap();
    d.driver().inject_partial_clear(1, PAGE / 2);
    assert_eq!(da.recovery_write(0, &[9u8; PAGE_SIZE]), 0);
    d.driver()
        .inject_error(DevOp::ClearPoison, 1, DaxError::Io { what: "firmware" });
    assert_eq!(da.recovery_write(0, &[9u8; PAGE_SIZE]), 0);
    d.driver()
        .inject_error(DevOp::RecoveryWrite, 1, DaxError::Io { what: "injected" });
    assert_eq!(da.recovery_write(0, &[9u8; PAGE_SIZE]), 0);
    let mut back = vec![1u8; PAGE_SIZE];
    d.driver().peek(PAGE, &mut back).unwrap();
    assert!(back.iter().all(|&b| b == 0));
    // The recovery path leaves the table alone when it gives up (records are only
    // removed after a successful copy).
    assert_eq!(records(&d), vec![(8, 8)]);
    assert_eq!(da.recovery_write(0, &[9u8; PAGE_SIZE]), PAGE_SIZE);
    assert!(records(&d).is_empty());
}

#[test]
fn drv08_clear_reporting_zero_bytes_still_writes_but_keeps_records() {
    // ref: DRV-08 step 4: cleared == 0 proceeds with the copy, removes no record.
    let d = dev(4);
    bad_sectors(&d, 8, 8);
    d.driver().inject_partial_clear(1, 0);
    let s = d.read_lock();
    let da = s.direct_access(1, 1, RECOVERY).unwrap();
    assert_eq!(da.recovery_write(0, &[3u8; PAGE_SIZE]), PAGE_SIZE);
    assert_eq!(records(&d), vec![(8, 8)]);
}

#[test]
fn drv09_block_read_of_a_bad_sector_is_eio_without_touching_memory() {
    // ref: DRV-09
    let d = dev(4);
    d.driver().poke(0, &[0x11; 3 * PAGE_SIZE]).unwrap();
    bad_sectors(&d, 2, 1); // bytes 1024..1536
    let mut buf = vec![0u8; 1024];
    let e = d.driver().read(512, &mut buf).unwrap_err();
    assert_eq!(e.errno(), libc::EIO);
    assert!(buf.iter().all(|&b| b == 0));
    // The sector before is readable.
    d.driver().read(0, &mut buf[..512]).unwrap();
    // Latent hardware poison (unknown to the table) fails the machine-check-safe copy.
    d.driver().poison_latent(2 * PAGE + 7, 1).unwrap();
    assert_eq!(
        d.driver().read(2 * PAGE, &mut buf).unwrap_err().errno(),
        libc::EIO
    );
    d.driver().read(2 * PAGE + 64, &mut buf[..64]).unwrap();
}

#[test]
fn drv10_block_write_clears_poison_first() {
    // ref: DRV-10
    let d = dev(4);
    bad_sectors(&d, 8, 2);
    d.driver().write(PAGE, &[5u8; 1024]).unwrap();
    assert!(records(&d).is_empty());
    let mut back = [0u8; 1024];
    d.driver().read(PAGE, &mut back).unwrap();
    assert_eq!(back, [5u8; 1024]);
    // A partial clear aborts the write with EIO and keeps the rest bad.
    bad_sectors(&d, 16, 2);
    d.driver().inject_partial_clear(1, 512);
    assert_eq!(
        d.driver()
            .write(2 * PAGE, &[6u8; 1024])
            .unwrap_err()
            .errno(),
        libc::EIO
    );
    assert_eq!(records(&d), vec![(17, 1)]);
    let mut back = [0u8; 1024];
    d.driver().peek(2 * PAGE, &mut back).unwrap();
    assert_eq!(back, [0u8; 1024]);
    // A write that does not cover whole sectors cannot clear them.
    assert_eq!(
        d.driver()
            .write(2 * PAGE + 600, &[6u8; 8])
            .unwrap_err()
            .errno(),
        libc::EIO
    );
}

#[test]
fn clear_unit_alignment_is_enforced_by_the_firmware() {
    // ref: §2.2.4: the firmware needs address and length aligned to its clear unit.
    let d = MemDevice::builder()
        .size(4 * PAGE)
        .clear_unit(4096)
        .build()
        .unwrap();
    d.driver().poison(PAGE + 512, 512).unwrap();
    assert_eq!(
        d.driver()
            .clear_poison(PAGE + 512, 512)
            .unwrap_err()
            .errno(),
        libc::ENXIO
    );
    // A one-sector block write cannot clear with a 4 KiB unit: EIO.
    assert_eq!(
        d.driver()
            .write(PAGE + 512, &[1u8; 512])
            .unwrap_err()
            .errno(),
        libc::EIO
    );
    // Zeroing the whole page can.
    d.zero_page_range(1, 1).unwrap();
    assert!(d.driver().badblocks().is_empty());
    assert!(
        MemDevice::builder()
            .size(PAGE)
            .clear_unit(3)
            .build()
            .is_err()
    );
    assert!(
        MemDevice::builder()
            .size(PAGE)
            .clear_unit(8192)
            .build()
            .is_err()
    );
}

#[test]
fn poison_records_cover_whole_sectors_and_lines() {
    let d = dev(4);
    d.driver().poison(1000, 100).unwrap();
    assert_eq!(records(&d), vec![(1, 2)]);
    assert_eq!(d.driver().poisoned_ranges(), vec![960..1152]);
    assert!(d.driver().poison(4 * PAGE - 1, 2).is_err());
    d.driver().poison(0, 0).unwrap();
    assert_eq!(records(&d), vec![(1, 2)]);
}
