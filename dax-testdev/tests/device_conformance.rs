//! Conformance tests for the dax_device layer (reference §1.1, §2.1, edge cases 1–10),
//! run against `MemDevice`.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex, Weak};
use std::time::Duration;

use dax_device::{
    DaxAccessMode, DaxDevice, DaxError, DaxFlags, DaxHolder, DaxOperations, MfFlags, PAGE_SIZE,
    RawAccess,
};
use dax_testdev::{DevOp, MemDevice, memory_failure};

fn dev(pages: u64) -> Arc<DaxDevice<MemDevice>> {
    MemDevice::builder()
        .size(pages * PAGE_SIZE as u64)
        .build()
        .expect("memfd device")
}

const ACCESS: DaxAccessMode = DaxAccessMode::Access;

#[test]
fn dev01_new_device_is_alive_with_pmem_attach_flags() {
    // ref: DEV-01, DRV-11
    let d = dev(4);
    let f = d.flags();
    assert!(f.contains(DaxFlags::ALIVE | DaxFlags::NOCACHE | DaxFlags::NOMC));
    assert!(f.contains(DaxFlags::SYNC | DaxFlags::WRITE_CACHE));
    assert!(d.holder().is_none());
    let plain = MemDevice::builder()
        .size(4096)
        .write_cache(false)
        .synchronous(false)
        .build()
        .unwrap();
    assert!(!plain.synchronous());
    assert!(!plain.write_cache_enabled());
    let volatile = MemDevice::builder()
        .size(4096)
        .nocache(false)
        .build()
        .unwrap();
    assert!(!volatile.flags().contains(DaxFlags::NOCACHE));
    assert!(volatile.flags().contains(DaxFlags::NOMC));
    plain.set_write_cache(true);
    assert!(plain.write_cache_enabled());
    plain.set_write_cache(false);
    assert!(!plain.write_cache_enabled());
}

#[test]
fn dev_edge01_killed_device_refuses_everything() {
    // ref: DEV-04, DEV-07, DEV-10, DEV-19, edge 1
    let d = dev(4);
    d.kill();
    let s = d.read_lock();
    assert!(!s.alive());
    assert_eq!(s.direct_access(0, 1, ACCESS).unwrap_err(), DaxError::Dead);
    assert_eq!(
        s.direct_access(0, 1, ACCESS).unwrap_err().errno(),
        libc::ENXIO
    );
    drop(s);
    assert_eq!(d.zero_page_range(0, 1).unwrap_err().errno(), libc::ENXIO);
    assert!(d.get_private().is_none());
    assert_eq!(d.flush().unwrap_err(), DaxError::Dead);
    // run_dax makes it usable again.
    d.run();
    assert!(d.get_private().is_some());
    assert_eq!(
        d.read_lock().direct_access(0, 1, ACCESS).unwrap().pages(),
        1
    );
}

#[test]
fn dev_edge01_copies_in_a_section_move_nothing_once_kill_has_begun() {
    // ref: DEV-08, DEV-09, DEV-10, edge 1: a section that began before kill sees the
    // device go dead; copies then move 0 bytes and zeroing fails with ENXIO.
    let d = dev(4);
    let s = d.read_lock();
    let da = s.direct_access(0, 1, ACCESS).unwrap();
    assert_eq!(da.copy_from(0, b"before"), 6);
    let killer = {
        let d = d.clone();
        std::thread::spawn(move || d.kill())
    };
    while d.flags().contains(DaxFlags::ALIVE) {
        std::thread::yield_now();
    }
    assert_eq!(da.copy_from(0, b"after!"), 0);
    let mut buf = [0u8; 6];
    assert_eq!(da.copy_to(0, &mut buf), 0);
    assert_eq!(s.zero_page_range(0, 1).unwrap_err(), DaxError::Dead);
    assert!(
        !killer.is_finished(),
        "kill returned while a section was open"
    );
    drop(s);
    killer.join().unwrap();
    let mut back = [0u8; 6];
    d.driver().peek(0, &mut back).unwrap();
    assert_eq!(&back, b"before");
}

#[test]
fn dev_edge02_direct_access_argument_checks_and_error_order() {
    // ref: DEV-07, edge 2
    let d = dev(8);
    let s = d.read_lock();
    // nr_pages = 0 on a live device without bad blocks: 0 pages, not an error.
    let da = s.direct_access(3, 0, ACCESS).unwrap();
    assert!(da.is_empty());
    assert_eq!(da.len(), 0);
    // A "negative long".
    let e = s.direct_access(0, u64::MAX, ACCESS).unwrap_err();
    assert_eq!(e.errno(), libc::EINVAL);
    let e = s.direct_access(0, i64::MAX as u64 + 1, ACCESS).unwrap_err();
    assert_eq!(e.errno(), libc::EINVAL);
    // i64::MAX itself is a valid count, clipped by the driver to the device.
    assert_eq!(
        s.direct_access(0, i64::MAX as u64, ACCESS).unwrap().pages(),
        8
    );
    // Driver answering 0 pages (offset past the end) -> ERANGE.
    let e = s.direct_access(8, 1, ACCESS).unwrap_err();
    assert_eq!(
        e,
        DaxError::OutOfRange {
            pgoff: 8,
            dev_pages: 8
        }
    );
    assert_eq!(e.errno(), libc::ERANGE);
    // The result is min(driver answer, nr_pages).
    assert_eq!(s.direct_access(2, 3, ACCESS).unwrap().pages(), 3);
    assert_eq!(s.direct_access(6, 5, ACCESS).unwrap().pages(), 2);
    // Liveness is checked before the arguments.
    drop(s);
    d.kill();
    assert_eq!(
        d.read_lock()
            .direct_access(0, u64::MAX, ACCESS)
            .unwrap_err(),
        DaxError::Dead
    );
}

#[test]
fn dev_edge02_zero_pages_with_bad_blocks_elsewhere_is_erange() {
    // ref: DEV-07, DRV-02: with a non-empty table pmem answers exactly nr_pages, so a
    // request for 0 pages gets a driver answer of 0, which the core turns into ERANGE.
    let d = dev(8);
    d.driver().poison(7 * 4096, 512).unwrap();
    let e = d.read_lock().direct_access(0, 0, ACCESS).unwrap_err();
    assert_eq!(e.errno(), libc::ERANGE);
}

/// A holder that records its notifications and, on pre-remove, checks that the
/// device can still be reached.
struct RecordingHolder {
    dev: Mutex<Weak<DaxDevice<MemDevice>>>,
    calls: Mutex<Vec<(u64, u64, MfFlags, bool)>>,
    answer: Result<(), DaxError>,
}

impl RecordingHolder {
    fn new(answer: Result<(), DaxError>) -> Arc<Self> {
        Arc::new(RecordingHolder {
            dev: Mutex::new(Weak::new()),
            calls: Mutex::new(Vec::new()),
            answer,
        })
    }
}

impl DaxHolder for RecordingHolder {
    fn notify_failure(&self, offset: u64, len: u64, flags: MfFlags) -> Result<(), DaxError> {
        let reachable = self
            .dev
            .lock()
            .unwrap()
            .upgrade()
            .map(|d| d.read_lock().direct_access(0, 1, ACCESS).is_ok())
            .unwrap_or(false);
        self.calls
            .lock()
            .unwrap()
            .push((offset, len, flags, reachable));
        self.answer.clone()
    }
}

#[test]
fn dev_edge03_kill_notifies_holder_once_before_clearing_alive() {
    // ref: DEV-04, DEV-17, DEV-18, edge 3
    let d = dev(4);
    let h = RecordingHolder::new(Ok(()));
    *h.dev.lock().unwrap() = Arc::downgrade(&d);
    d.claim_holder(h.clone()).unwrap();
    assert!(d.holder().is_some());
    d.kill();
    let calls = h.calls.lock().unwrap().clone();
    assert_eq!(calls, vec![(0, u64::MAX, MfFlags::MEM_PRE_REMOVE, true)]);
    assert!(d.holder().is_none());
    assert_eq!(
        d.holder_notify_failure(0, 4096, MfFlags::ACTION_REQUIRED)
            .unwrap_err(),
        DaxError::Dead
    );
    assert_eq!(h.calls.lock().unwrap().len(), 1);
}

#[test]
fn dev17_notify_failure_without_holder_and_with_one() {
    // ref: DEV-17, DEV-18
    let d = dev(4);
    let e = d
        .holder_notify_failure(0, 4096, MfFlags::empty())
        .unwrap_err();
    assert_eq!(e.errno(), libc::EOPNOTSUPP);
    let h = RecordingHolder::new(Err(DaxError::Busy {
        what: "holder says so",
    }));
    d.claim_holder(h.clone()).unwrap();
    let e = d
        .holder_notify_failure(8192, 4096, MfFlags::ACTION_REQUIRED)
        .unwrap_err();
    assert_eq!(e.errno(), libc::EBUSY, "the holder's answer passes through");
    assert_eq!(
        h.calls.lock().unwrap()[0],
        (8192, 4096, MfFlags::ACTION_REQUIRED, false)
    );
}

#[test]
fn dev_edge04_kill_blocks_until_earlier_sections_end() {
    // ref: DEV-04, DEV-06, edge 4
    let d = dev(4);
    let released = Arc::new(AtomicBool::new(false));
    let entered = Arc::new(Barrier::new(2));
    let reader = {
        let (d, released, entered) = (d.clone(), released.clone(), entered.clone());
        std::thread::spawn(move || {
            let outer = d.read_lock();
            let inner = d.read_lock(); // sections nest
            entered.wait();
            std::thread::sleep(Duration::from_millis(50));
            drop(inner);
            std::thread::sleep(Duration::from_millis(20));
            released.store(true, Ordering::SeqCst);
            drop(outer);
        })
    };
    entered.wait();
    d.kill();
    assert!(
        released.load(Ordering::SeqCst),
        "kill returned while an earlier section was still open"
    );
    // A section opened after the flag clear sees the device dead.
    assert!(!d.read_lock().alive());
    reader.join().unwrap();
}

#[test]
fn dev04_no_reader_touches_memory_after_kill_returns() {
    // ref: DEV-04, DEV-06, LCK-06: many readers in sections while kill runs; every
    // access to device memory is stamped from one counter; kill's return is stamped
    // too; no access may carry a later stamp.
    // Each access is a 1 MiB copy, so an access in flight when kill returns would be
    // caught with high probability if kill did not wait.
    const PAGES: u64 = 256;
    let d = dev(6 * PAGES);
    let clock = Arc::new(AtomicU64::new(0));
    let last_access = Arc::new(AtomicU64::new(0));
    let accesses = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = (0..6)
        .map(|t| {
            let (d, clock, last, accesses, stop) = (
                d.clone(),
                clock.clone(),
                last_access.clone(),
                accesses.clone(),
                stop.clone(),
            );
            std::thread::spawn(move || {
                let mut buf = vec![0u8; PAGES as usize * PAGE_SIZE];
                let src = vec![t as u8; PAGES as usize * PAGE_SIZE];
                while !stop.load(Ordering::SeqCst) {
                    let s = d.read_lock();
                    if let Ok(da) = s.direct_access(t as u64 * PAGES, PAGES, ACCESS) {
                        let n = da.copy_from(0, &src) + da.copy_to(0, &mut buf);
                        if n > 0 {
                            let stamp = clock.fetch_add(1, Ordering::SeqCst);
                            last.fetch_max(stamp, Ordering::SeqCst);
                            accesses.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                    drop(s);
                }
            })
        })
        .collect();
    while accesses.load(Ordering::SeqCst) < 200 {
        std::thread::yield_now();
    }
    d.kill();
    let killed_at = clock.fetch_add(1, Ordering::SeqCst);
    // Let the readers run on against the dead device for a while.
    let after = accesses.load(Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(30));
    stop.store(true, Ordering::SeqCst);
    for t in threads {
        t.join().unwrap();
    }
    assert!(
        last_access.load(Ordering::SeqCst) < killed_at,
        "a reader accessed device memory after kill returned"
    );
    assert_eq!(accesses.load(Ordering::SeqCst), after);
}

#[test]
fn dev_edge06_one_holder_at_a_time() {
    // ref: DEV-20, DEV-21, edge 6
    let d = dev(4);
    let a: Arc<dyn DaxHolder> = RecordingHolder::new(Ok(()));
    let b: Arc<dyn DaxHolder> = RecordingHolder::new(Ok(()));
    d.claim_holder(a.clone()).unwrap();
    assert_eq!(d.claim_holder(b.clone()).unwrap_err().errno(), libc::EBUSY);
    assert_eq!(
        d.claim_holder(a.clone()).unwrap_err().errno(),
        libc::EBUSY,
        "even the same holder"
    );
    // Releasing with a holder that is not registered leaves the registered one.
    assert!(!d.release_holder(&b));
    assert!(Arc::ptr_eq(&d.holder().unwrap(), &a));
    assert!(d.release_holder(&a));
    assert!(d.holder().is_none());
    d.claim_holder(b.clone()).unwrap();
    d.kill();
    assert_eq!(d.claim_holder(a).unwrap_err(), DaxError::Dead);
}

#[test]
fn dev_edge07_zero_page_range_of_two_pages_is_eio_and_zeroes_nothing() {
    // ref: DEV-10, edge 7
    let d = dev(4);
    d.driver().poke(0, &[0xAB; 8192]).unwrap();
    let e = d.zero_page_range(0, 2).unwrap_err();
    assert_eq!(e.errno(), libc::EIO);
    assert_eq!(d.zero_page_range(0, 0).unwrap_err().errno(), libc::EIO);
    let mut buf = vec![0u8; 8192];
    d.driver().peek(0, &mut buf).unwrap();
    assert!(buf.iter().all(|&b| b == 0xAB));
    d.zero_page_range(1, 1).unwrap();
    d.driver().peek(0, &mut buf).unwrap();
    assert!(buf[..4096].iter().all(|&b| b == 0xAB));
    assert!(buf[4096..].iter().all(|&b| b == 0));
}

#[test]
fn dev_edge10_mapping_supported() {
    // ref: DEV-23, edge 10
    let sync = dev(1);
    assert!(sync.mapping_supported(false, false));
    assert!(sync.mapping_supported(false, true));
    assert!(
        !sync.mapping_supported(true, false),
        "MAP_SYNC on a non-DAX inode"
    );
    assert!(sync.mapping_supported(true, true));
    let nosync = MemDevice::builder()
        .size(4096)
        .synchronous(false)
        .build()
        .unwrap();
    assert!(
        !nosync.mapping_supported(true, true),
        "MAP_SYNC on a non-SYNC device"
    );
    assert!(nosync.mapping_supported(false, true));
}

#[test]
fn dev08_copy_from_writes_with_and_without_nocache() {
    // ref: DEV-08, DEV-15: NOCACHE picks the cache-bypassing copy; bytes are the same.
    let d = dev(4);
    let data: Vec<u8> = (0..5000u32).map(|i| (i * 7 + 3) as u8).collect();
    let s = d.read_lock();
    let da = s.direct_access(0, 2, ACCESS).unwrap();
    assert_eq!(da.copy_from(17, &data), 5000);
    let mut back = vec![0u8; 5000];
    d.driver().peek(17, &mut back).unwrap();
    assert_eq!(back, data);
    // A copy that runs past the pages reached is cut short.
    assert_eq!(da.copy_from(8190, &data), 2);
    assert_eq!(da.copy_from(8192, &data), 0);
    assert_eq!(da.copy_from(usize::MAX, &data), 0);
    let plain = MemDevice::builder().size(8192).build().unwrap();
    let ps = plain.read_lock();
    let pda = ps.direct_access(0, 2, ACCESS).unwrap();
    assert_eq!(pda.copy_from(17, &data), 5000);
    let mut back2 = vec![0u8; 5000];
    assert_eq!(pda.copy_to(17, &mut back2), 5000);
    assert_eq!(back2, data);
}

#[test]
fn dev09_copy_to_stops_at_poison_only_with_nomc() {
    // ref: DEV-09, DEV-16: the machine-check-safe copy stops at the first poisoned
    // cache line and reports the bytes copied.
    let d = dev(4);
    d.driver().poke(0, &[0x5A; 8192]).unwrap();
    d.driver().poison_latent(4096 + 100, 1).unwrap(); // poisons line 4096+64..4096+128
    let s = d.read_lock();
    let da = s.direct_access(0, 2, ACCESS).unwrap();
    let mut buf = vec![0u8; 8192];
    assert_eq!(da.copy_to(0, &mut buf), 4096 + 64);
    assert!(buf[..4096 + 64].iter().all(|&b| b == 0x5A));
    assert_eq!(da.copy_to(4096 + 64, &mut buf), 0);
    assert_eq!(da.copy_to(4096 + 128, &mut buf[..100]), 100);
    drop(s);
    // A device without NOMC uses the ordinary copy (which on real hardware would
    // consume the poison).
    let wrapped = MemDevice::builder().size(4096).build().unwrap();
    let raw = DaxDevice::new(Arc::into_inner(wrapped).expect("sole owner").into_driver());
    assert!(!raw.flags().contains(DaxFlags::NOMC));
    raw.driver().poison_latent(0, 1).unwrap();
    let s = raw.read_lock();
    assert_eq!(
        s.direct_access(0, 1, ACCESS)
            .unwrap()
            .copy_to(0, &mut buf[..128]),
        128
    );
}

#[test]
fn dev11_recovery_write_without_driver_op_writes_nothing() {
    // ref: DEV-11: a driver without recovery_write makes dax_recovery_write return 0.
    struct NoRecovery(Arc<DaxDevice<MemDevice>>);
    // SAFETY: forwards to a MemDevice, which upholds the contract; the Arc keeps it
    // (and its memory) alive as long as this driver.
    unsafe impl DaxOperations for NoRecovery {
        fn nr_pages(&self) -> u64 {
            self.0.driver().nr_pages()
        }
        fn direct_access(
            &self,
            pgoff: u64,
            nr: u64,
            mode: DaxAccessMode,
        ) -> Result<RawAccess, DaxError> {
            self.0.driver().direct_access(pgoff, nr, mode)
        }
        fn zero_page_range(&self, pgoff: u64, nr: u64) -> Result<(), DaxError> {
            self.0.driver().zero_page_range(pgoff, nr)
        }
    }
    let inner = dev(2);
    let d = DaxDevice::new(NoRecovery(inner.clone()));
    let s = d.read_lock();
    let da = s.direct_access(0, 1, ACCESS).unwrap();
    assert_eq!(da.recovery_write(0, &[1u8; 4096]), 0);
    let mut buf = [0xFFu8; 16];
    inner.driver().peek(0, &mut buf).unwrap();
    assert_eq!(buf, [0u8; 16]);
}

#[test]
fn drv13_memory_failure_reaches_the_holder_with_device_offsets() {
    // ref: DRV-13, DEV-17
    let d = dev(8);
    let pfn0 = d.read_lock().direct_access(0, 1, ACCESS).unwrap().pfn();
    assert_eq!(
        memory_failure(&d, pfn0.add(3), 2, MfFlags::ACTION_REQUIRED)
            .unwrap_err()
            .errno(),
        libc::EOPNOTSUPP,
        "no holder: the generic path must handle it"
    );
    let h = RecordingHolder::new(Ok(()));
    d.claim_holder(h.clone()).unwrap();
    memory_failure(&d, pfn0.add(3), 2, MfFlags::ACTION_REQUIRED).unwrap();
    assert_eq!(
        h.calls.lock().unwrap()[0],
        (3 * 4096, 2 * 4096, MfFlags::ACTION_REQUIRED, false)
    );
    assert_eq!(
        memory_failure(&d, pfn0.add(8), 1, MfFlags::empty())
            .unwrap_err()
            .errno(),
        libc::EINVAL
    );
}

#[test]
fn injected_errors_fail_the_next_n_calls_and_calls_are_counted() {
    let d = dev(4);
    let err = DaxError::Os {
        errno: libc::EIO,
        what: "injected",
    };
    d.driver().inject_error(DevOp::DirectAccess, 2, err.clone());
    let s = d.read_lock();
    assert_eq!(s.direct_access(0, 1, ACCESS).unwrap_err(), err);
    assert_eq!(s.direct_access(0, 1, ACCESS).unwrap_err(), err);
    assert!(s.direct_access(0, 1, ACCESS).is_ok());
    assert_eq!(d.driver().calls(DevOp::DirectAccess), 3);
    drop(s);
    d.driver()
        .inject_error(DevOp::ZeroPageRange, 1, DaxError::NoSpace { what: "x" });
    assert_eq!(d.zero_page_range(0, 1).unwrap_err().errno(), libc::ENOSPC);
    d.zero_page_range(0, 1).unwrap();
    d.driver().inject_error(DevOp::Flush, 1, err.clone());
    assert_eq!(d.flush().unwrap_err(), err);
    d.flush().unwrap();
    d.driver().inject_error(DevOp::Read, 5, err.clone());
    d.driver().clear_injections();
    d.driver().read(0, &mut [0u8; 8]).unwrap();
}

#[test]
fn dev_edge05_fs_dax_get_refuses_unaligned_partitions() {
    // ref: DEV-20, DEV-21, edge 5, quirk Q5 (fixed: no leaked reference)
    let d = dev(16);
    for (start, len) in [(512, 4096), (4096, 4096 * 2 + 512), (4096, 16 * 4096)] {
        let e = d.fs_dax_get(start, len, None).unwrap_err();
        assert_eq!(e.errno(), libc::EINVAL, "partition {start}+{len}");
    }
    let fs = d.fs_dax_get(8192, 8 * 4096, None).unwrap();
    assert_eq!(fs.start_off(), 8192);
    assert!(d.holder().is_none());
    drop(fs);
    assert_eq!(Arc::strong_count(&d), 1, "fs_dax_get leaked a reference");
    d.kill();
    assert_eq!(d.fs_dax_get(0, 4096, None).unwrap_err(), DaxError::Dead);
}

#[test]
fn dev_edge06_fs_dax_get_claims_and_fs_put_dax_releases() {
    // ref: DEV-20, DEV-21, edge 6
    let d = dev(16);
    let a: Arc<dyn DaxHolder> = RecordingHolder::new(Ok(()));
    let b: Arc<dyn DaxHolder> = RecordingHolder::new(Ok(()));
    let fs_a = d.fs_dax_get(0, 16 * 4096, Some(a.clone())).unwrap();
    assert_eq!(
        d.fs_dax_get(0, 4096, Some(b.clone())).unwrap_err().errno(),
        libc::EBUSY
    );
    assert_eq!(
        d.fs_dax_get(0, 4096, Some(a.clone())).unwrap_err().errno(),
        libc::EBUSY
    );
    let fs_none = d
        .fs_dax_get(0, 4096, None)
        .expect("no holder asked: succeeds");
    drop(fs_none);
    assert!(
        Arc::ptr_eq(&d.holder().unwrap(), &a),
        "a holder-less put released the claim"
    );
    drop(fs_a);
    assert!(d.holder().is_none());
    let _fs_b = d.fs_dax_get(0, 4096, Some(b.clone())).unwrap();
    assert!(Arc::ptr_eq(&d.holder().unwrap(), &b));
}

#[test]
fn copy_mc_from_moves_bytes_and_stops_at_source_poison() {
    // The machine-check-safe device-to-device copy used by copy-on-write.
    let d = dev(8);
    let pattern: Vec<u8> = (0..8192u32).map(|i| (i % 253) as u8).collect();
    d.driver().poke(0, &pattern).unwrap();
    let s = d.read_lock();
    let src = s.direct_access(0, 2, ACCESS).unwrap();
    let dst = s.direct_access(4, 2, ACCESS).unwrap();
    assert_eq!(dst.copy_mc_from(100, &src, 50, 5000), 5000);
    let mut back = vec![0u8; 5000];
    d.driver().peek(4 * 4096 + 100, &mut back).unwrap();
    assert_eq!(back, pattern[50..5050]);
    // Cut at the end of either range.
    assert_eq!(dst.copy_mc_from(8000, &src, 0, 1000), 192);
    assert_eq!(dst.copy_mc_from(0, &src, 8100, 1000), 92);
    // Overlapping ranges behave like memmove.
    assert_eq!(src.copy_mc_from(1, &src, 0, 4096), 4096);
    let mut ov = vec![0u8; 4097];
    d.driver().peek(0, &mut ov).unwrap();
    assert_eq!(ov[1..], pattern[..4096]);
    // Poison in the source stops the copy at its cache line.
    d.driver().poison_latent(4096 + 200, 1).unwrap();
    assert_eq!(dst.copy_mc_from(0, &src, 4096, 4096), 192);
}
