//! Edge-value sweep of dax-device's public API: every function or method that takes an
//! index, offset, position, length, count, page number, pfn or order, called with 0,
//! 1, the largest valid value, the first invalid one, `u64::MAX`/`usize::MAX` (and
//! `i64::MAX` where the kernel's type is a signed `long`), and pairs whose sum
//! overflows. Each call must return (no panic, no hang), write nothing outside its
//! range (every device byte and two guard pages are compared with a model), and give
//! the kernel's answer or a typed `DaxError`.
//!
//! Swept: `DaxReadGuard::direct_access`, `DirectAccess::{copy_from, copy_to,
//! copy_mc_from, fill, flush, recovery_write, device_offset, len}`,
//! `DaxDevice::{zero_page_range, fs_dax_get, holder_notify_failure}`,
//! `DaxReadGuard::zero_page_range`, `Pfn::{add, is_aligned}`, `DaxError`'s `Display`,
//! `badblocks::{encode, decode}`, `BadRange::{end, encode}`, `Badblocks::{set, clear,
//! check, show, store}` (enabled, with a shift, disabled, full), and `persist::{
//! flush_range(_with), persist_range, memcpy_persist(_with), memmove_persist(_with),
//! memset_persist(_with), copy_flushcache}` (every implementation and flag, lengths
//! and offsets around cache lines and the non-temporal thresholds).
//!
//! The harness is `dax_testkit::sweep`: the test fails listing every finding.
#![allow(unsafe_code)]

use std::ptr::NonNull;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dax_device::badblocks::{BB_MAX_LEN, BB_SECTOR_LIMIT, BadRange, Badblocks, decode, encode};
use dax_device::persist::{
    self, CopyImpl, FlushImpl, MOVNT_THRESHOLD, MOVNT_THRESHOLD_UNALIGNED, PersistFlags,
};
use dax_device::{
    DaxAccessMode, DaxDevice, DaxError, DaxHolder, DaxOperations, MfFlags, PAGE_SIZE, Pfn,
    RawAccess,
};

use dax_testkit::{sweep, sweep::*};

// =====================================================================================
// The sweeps.
// =====================================================================================

const PAGE: usize = PAGE_SIZE;
const CANARY: u8 = 0xA5;
const LIMIT: u64 = BB_SECTOR_LIMIT;

// ---- a device over a buffer with a guard page on each side ----

/// A driver over `pages` pages of a page-aligned allocation that has one more page on
/// each side (the guards). Device bytes start as a pattern, guards as [`CANARY`].
struct Guarded {
    alloc: usize,
    pages: u64,
    /// Device byte offset of a hardware-poisoned byte (for NOMC copies).
    poison_at: Mutex<Option<u64>>,
}

impl Guarded {
    fn total(pages: u64) -> usize {
        (pages as usize + 2) * PAGE
    }

    fn layout(pages: u64) -> std::alloc::Layout {
        std::alloc::Layout::from_size_align(Self::total(pages), PAGE).unwrap()
    }

    fn device(pages: u64) -> Arc<DaxDevice<Guarded>> {
        // SAFETY: non-zero size.
        let p = unsafe { std::alloc::alloc(Self::layout(pages)) };
        assert!(!p.is_null());
        let total = Self::total(pages);
        for i in 0..total {
            let b = if i < PAGE || i >= total - PAGE {
                CANARY
            } else {
                ((i as u64).wrapping_mul(131) >> 3) as u8 ^ 0x5C
            };
            // SAFETY: `i < total`, inside the allocation.
            unsafe { p.add(i).write(b) };
        }
        let dev = DaxDevice::new(Guarded {
            alloc: p as usize,
            pages,
            poison_at: Mutex::new(None),
        });
        dev.set_write_cache(true);
        dev
    }

    fn base(&self) -> usize {
        self.alloc + PAGE
    }

    /// The whole allocation, guards included.
    fn snapshot(&self) -> Vec<u8> {
        let total = Self::total(self.pages);
        let mut v = vec![0u8; total];
        // SAFETY: the allocation is `total` bytes and lives as long as `self`.
        unsafe { std::ptr::copy_nonoverlapping(self.alloc as *const u8, v.as_mut_ptr(), total) };
        v
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        // SAFETY: allocated in `device` with this layout.
        unsafe { std::alloc::dealloc(self.alloc as *mut u8, Self::layout(self.pages)) };
    }
}

// SAFETY: every address handed out is `base + pgoff * PAGE` with `pgoff < pages`, and
// the pages from there to the end of the device are part of one allocation that lives
// until the driver is dropped; pfns are the address >> 12 (unique, consecutive); the
// memory is only accessed through raw pointers.
unsafe impl DaxOperations for Guarded {
    fn nr_pages(&self) -> u64 {
        self.pages
    }

    fn direct_access(
        &self,
        pgoff: u64,
        _nr: u64,
        _m: DaxAccessMode,
    ) -> Result<RawAccess, DaxError> {
        if pgoff >= self.pages {
            return Ok(RawAccess::none());
        }
        let addr = self.base() + pgoff as usize * PAGE;
        Ok(RawAccess {
            addr: NonNull::new(addr as *mut u8).unwrap(),
            pfn: Pfn(addr as u64 >> 12),
            pages: self.pages - pgoff,
        })
    }

    fn zero_page_range(&self, pgoff: u64, nr: u64) -> Result<(), DaxError> {
        if pgoff >= self.pages || nr > self.pages - pgoff {
            return Err(DaxError::OutOfRange {
                pgoff,
                dev_pages: self.pages,
            });
        }
        // SAFETY: pages `pgoff .. pgoff + nr` are inside the device.
        unsafe {
            std::ptr::write_bytes(
                (self.base() + pgoff as usize * PAGE) as *mut u8,
                0,
                nr as usize * PAGE,
            )
        };
        Ok(())
    }

    unsafe fn recovery_write(&self, _pgoff: u64, addr: NonNull<u8>, src: &[u8]) -> Option<usize> {
        // SAFETY: the caller promises the range lies in what direct_access returned.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), addr.as_ptr(), src.len()) };
        Some(src.len())
    }

    fn first_poisoned_byte(&self, dev_offset: u64, len: usize) -> Option<usize> {
        let p = (*self.poison_at.lock().unwrap())?;
        (p >= dev_offset && p - dev_offset < len as u64).then(|| (p - dev_offset) as usize)
    }
}

/// Runs `f` on a fresh `pages`-page device with a model of its memory (guards
/// included, device byte 0 at model index `PAGE`); afterwards every byte must match
/// the model `f` left.
fn on_device(
    pages: u64,
    f: impl FnOnce(&Arc<DaxDevice<Guarded>>, &mut Vec<u8>, &mut Fails),
) -> Check {
    let dev = Guarded::device(pages);
    let mut model = dev.driver().snapshot();
    let mut fails = Fails::default();
    f(&dev, &mut model, &mut fails);
    let got = dev.driver().snapshot();
    if let Err(e) = same_bytes(
        "device memory (offsets from device byte 0)",
        &got,
        &model,
        -(PAGE as i64),
    ) {
        fails.0.push(format!("OUT-OF-RANGE WRITE: {e}"));
    }
    fails.done()
}

const DEV_PAGES: u64 = 8;

// ---- DaxReadGuard::direct_access ----

fn sweep_direct_access(s: &mut Sweep) {
    let n = 16u64;
    let pgoffs = [
        0,
        1,
        n - 1,
        n,
        n + 1,
        i64::MAX as u64,
        u64::MAX - 1,
        u64::MAX,
    ];
    let nrs = [
        0,
        1,
        n - 1,
        n,
        n + 1,
        i64::MAX as u64,
        i64::MAX as u64 + 1,
        u64::MAX,
    ];
    for &pgoff in &pgoffs {
        for &nr in &nrs {
            s.probe(
                format!(
                    "DaxReadGuard::direct_access(pgoff {pgoff}, nr_pages {nr}) on a {n}-page device"
                ),
                || {
                    on_device(n, |dev, _model, f| {
                        for mode in [DaxAccessMode::Access, DaxAccessMode::RecoveryWrite] {
                            let g = dev.read_lock();
                            let r = g.direct_access(pgoff, nr, mode);
                            let what = format!("{mode:?}");
                            if nr > i64::MAX as u64 {
                                f.errno(&what, &r, libc::EINVAL);
                            } else if pgoff >= n {
                                f.errno(&what, &r, libc::ERANGE);
                            } else {
                                match r {
                                    Ok(da) => {
                                        let want = (n - pgoff).min(nr);
                                        f.eq(&format!("{what} pages()"), da.pages(), want);
                                        f.eq(
                                            &format!("{what} len()"),
                                            da.len(),
                                            want as usize * PAGE,
                                        );
                                        f.eq(
                                            &format!("{what} is_empty()"),
                                            da.is_empty(),
                                            want == 0,
                                        );
                                        f.eq(&format!("{what} pgoff()"), da.pgoff(), pgoff);
                                        let base = Pfn(dev.driver().base() as u64 >> 12);
                                        f.eq(
                                            &format!("{what} pfn()"),
                                            da.pfn(),
                                            Pfn(base.0 + pgoff),
                                        );
                                    }
                                    Err(e) => f.0.push(format!("{what}: got {e:?}, expected Ok")),
                                }
                            }
                        }
                    })
                },
            );
        }
    }
    s.probe(
        "DaxReadGuard::direct_access(u64::MAX, u64::MAX) on a dead device",
        || {
            on_device(n, |dev, _m, f| {
                dev.kill();
                let g = dev.read_lock();
                f.errno(
                    "dead",
                    &g.direct_access(u64::MAX, u64::MAX, DaxAccessMode::Access),
                    libc::ENXIO,
                );
            })
        },
    );
}

// ---- DirectAccess copies ----

/// Offsets into a 2-page `DirectAccess`.
const DA_LEN: usize = 2 * PAGE;
const OFFSETS: [usize; 10] = [
    0,
    1,
    PAGE - 1,
    DA_LEN - 1,
    DA_LEN,
    DA_LEN + 1,
    usize::MAX / 2,
    usize::MAX - 10,
    usize::MAX - 1,
    usize::MAX,
];
const LENS: [usize; 8] = [0, 1, 100, PAGE, DA_LEN, DA_LEN + 1, 3 * PAGE, usize::MAX];

/// Model index of device byte `dev_off`.
fn mi(dev_off: usize) -> usize {
    PAGE + dev_off
}

/// Bytes in range from `off` of a range of `len` bytes, at most `want`.
fn clamp(len: usize, off: usize, want: usize) -> usize {
    len.saturating_sub(off).min(want)
}

fn sweep_direct_access_copies(s: &mut Sweep) {
    // The last two pages of the device: the upper guard page follows them.
    let pg = DEV_PAGES - 2;
    let at = pg as usize * PAGE;
    for &off in &OFFSETS {
        s.probe(format!("DirectAccess::copy_from(offset {off}, src of 0..3 pages) over the last 2 device pages"), || {
            on_device(DEV_PAGES, |dev, model, f| {
                let g = dev.read_lock();
                let da = g.direct_access(pg, 2, DaxAccessMode::Access).unwrap();
                for &l in &LENS[..LENS.len() - 1] {
                    let src: Vec<u8> = (0..l).map(|i| (i as u8).wrapping_mul(7) ^ 0x3C).collect();
                    let n = da.copy_from(off, &src);
                    let want = clamp(DA_LEN, off, l);
                    f.eq(&format!("copy_from(len {l}) bytes"), n, want);
                    if want > 0 {
                        model[mi(at + off)..mi(at + off) + want].copy_from_slice(&src[..want]);
                    }
                }
            })
        });
        s.probe(
            format!("DirectAccess::copy_to(offset {off}, dst of 0..3 pages)"),
            || {
                on_device(DEV_PAGES, |dev, model, f| {
                    let g = dev.read_lock();
                    let da = g.direct_access(pg, 2, DaxAccessMode::Access).unwrap();
                    for &l in &LENS[..LENS.len() - 1] {
                        let mut dst = vec![0x77u8; l];
                        let n = da.copy_to(off, &mut dst);
                        let want = clamp(DA_LEN, off, l);
                        f.eq(&format!("copy_to(len {l}) bytes"), n, want);
                        let mut exp = vec![0x77u8; l];
                        if want > 0 {
                            exp[..want].copy_from_slice(&model[mi(at + off)..mi(at + off) + want]);
                        }
                        if let Err(e) =
                            same_bytes(&format!("copy_to(len {l}) destination"), &dst, &exp, 0)
                        {
                            f.0.push(e);
                        }
                    }
                })
            },
        );
        s.probe(
            format!("DirectAccess::fill(offset {off}, 0xEE, len 0..usize::MAX)"),
            || {
                on_device(DEV_PAGES, |dev, model, f| {
                    let g = dev.read_lock();
                    let da = g.direct_access(pg, 2, DaxAccessMode::Access).unwrap();
                    for &l in &LENS {
                        let n = da.fill(off, 0xEE, l);
                        let want = clamp(DA_LEN, off, l);
                        f.eq(&format!("fill(len {l}) bytes"), n, want);
                        if want > 0 {
                            model[mi(at + off)..mi(at + off) + want].fill(0xEE);
                        }
                    }
                })
            },
        );
        s.probe(
            format!("DirectAccess::flush(offset {off}, len 0..usize::MAX), write cache on"),
            || {
                on_device(DEV_PAGES, |dev, _model, _f| {
                    let g = dev.read_lock();
                    let da = g.direct_access(pg, 2, DaxAccessMode::Access).unwrap();
                    for &l in &LENS {
                        da.flush(off, l);
                    }
                })
            },
        );
        s.probe(
            format!("DirectAccess::recovery_write(offset {off}, src of 0..3 pages)"),
            || {
                on_device(DEV_PAGES, |dev, model, f| {
                    let g = dev.read_lock();
                    let da = g
                        .direct_access(pg, 2, DaxAccessMode::RecoveryWrite)
                        .unwrap();
                    for &l in &LENS[..LENS.len() - 1] {
                        let src: Vec<u8> = (0..l).map(|i| (i as u8) ^ 0x81).collect();
                        let n = da.recovery_write(off, &src);
                        let want = clamp(DA_LEN, off, l);
                        f.eq(&format!("recovery_write(len {l}) bytes"), n, want);
                        if want > 0 {
                            model[mi(at + off)..mi(at + off) + want].copy_from_slice(&src[..want]);
                        }
                    }
                })
            },
        );
        s.probe(
            format!("DirectAccess::device_offset({off}) at pgoff {pg}"),
            || {
                on_device(DEV_PAGES, |dev, _m, f| {
                    let g = dev.read_lock();
                    let da = g.direct_access(pg, 2, DaxAccessMode::Access).unwrap();
                    f.eq(
                        "device_offset",
                        da.device_offset(off),
                        (at as u64).saturating_add(off as u64),
                    );
                })
            },
        );
        s.probe(format!("DirectAccess::copy_mc_from(dst offset {off}, src = first 2 pages, every src offset and len)"), || {
            on_device(DEV_PAGES, |dev, model, f| {
                let g = dev.read_lock();
                let dst = g.direct_access(pg, 2, DaxAccessMode::Access).unwrap();
                let src = g.direct_access(0, 2, DaxAccessMode::Access).unwrap();
                for &so in &OFFSETS {
                    for &l in &LENS {
                        let n = dst.copy_mc_from(off, &src, so, l);
                        let want = clamp(DA_LEN, off, l).min(clamp(DA_LEN, so, l));
                        if n != want {
                            f.0.push(format!("copy_mc_from(src offset {so}, len {l}): got {n}, expected {want}"));
                        }
                        if want > 0 {
                            let piece = model[mi(so)..mi(so) + want].to_vec();
                            model[mi(at + off)..mi(at + off) + want].copy_from_slice(&piece);
                        }
                    }
                }
            })
        });
        s.probe(format!("DirectAccess::copy_mc_from(dst offset {off}) from the same overlapping range"), || {
            on_device(DEV_PAGES, |dev, model, f| {
                let g = dev.read_lock();
                let dst = g.direct_access(pg, 2, DaxAccessMode::Access).unwrap();
                let src = g.direct_access(pg, 2, DaxAccessMode::Access).unwrap();
                for &so in &OFFSETS {
                    for &l in &LENS {
                        let n = dst.copy_mc_from(off, &src, so, l);
                        let want = clamp(DA_LEN, off, l).min(clamp(DA_LEN, so, l));
                        if n != want {
                            f.0.push(format!("copy_mc_from(src offset {so}, len {l}): got {n}, expected {want}"));
                        }
                        if want > 0 {
                            let piece = model[mi(at + so)..mi(at + so) + want].to_vec();
                            model[mi(at + off)..mi(at + off) + want].copy_from_slice(&piece);
                        }
                    }
                }
            })
        });
    }
    // NOMC: copies stop at a poisoned byte, wherever it is.
    for poison in [0usize, 1, PAGE, DA_LEN - 1] {
        for &off in &OFFSETS[..6] {
            s.probe(format!("NOMC DirectAccess::copy_to(offset {off}) with poison at byte {poison} of the range"), || {
                on_device(DEV_PAGES, |dev, model, f| {
                    dev.set_nomc();
                    *dev.driver().poison_at.lock().unwrap() = Some((at + poison) as u64);
                    let g = dev.read_lock();
                    let da = g.direct_access(pg, 2, DaxAccessMode::Access).unwrap();
                    for &l in &LENS[..LENS.len() - 1] {
                        let mut dst = vec![0x77u8; l];
                        let n = da.copy_to(off, &mut dst);
                        let mut want = clamp(DA_LEN, off, l);
                        if poison >= off && poison - off < want {
                            want = poison - off;
                        }
                        f.eq(&format!("copy_to(len {l})"), n, want);
                        let mut exp = vec![0x77u8; l];
                        exp[..want].copy_from_slice(&model[mi(at + off)..mi(at + off) + want]);
                        if let Err(e) = same_bytes(&format!("copy_to(len {l}) destination"), &dst, &exp, 0) {
                            f.0.push(e);
                        }
                        // The same range as the source of a device-to-device copy.
                        let lo = g.direct_access(0, 2, DaxAccessMode::Access).unwrap();
                        let n = lo.copy_mc_from(0, &da, off, l);
                        f.eq(&format!("copy_mc_from(src offset {off}, len {l})"), n, want);
                        if n > 0 {
                            let piece = model[mi(at + off)..mi(at + off) + n].to_vec();
                            model[mi(0)..mi(0) + n].copy_from_slice(&piece);
                        }
                    }
                })
            });
        }
    }
    for &off in &OFFSETS {
        s.probe(
            format!(
                "DirectAccess copies (offset {off}) while the device is being killed move nothing"
            ),
            || {
                on_device(DEV_PAGES, |dev, _model, f| {
                    std::thread::scope(|sc| {
                        let g = dev.read_lock();
                        let da = g.direct_access(pg, 2, DaxAccessMode::Access).unwrap();
                        let src = g.direct_access(0, 2, DaxAccessMode::Access).unwrap();
                        let killer = sc.spawn(|| dev.kill());
                        let t = Instant::now();
                        while g.alive() && t.elapsed() < Duration::from_secs(5) {
                            std::thread::yield_now();
                        }
                        f.that(!g.alive(), || "kill did not clear ALIVE".into());
                        for &l in &LENS[..LENS.len() - 1] {
                            let mut buf = vec![1u8; l];
                            f.eq(&format!("copy_from(len {l})"), da.copy_from(off, &buf), 0);
                            f.eq(&format!("copy_to(len {l})"), da.copy_to(off, &mut buf), 0);
                            f.eq(&format!("fill(len {l})"), da.fill(off, 0, l), 0);
                            f.eq(
                                &format!("copy_mc_from(len {l})"),
                                da.copy_mc_from(off, &src, 0, l),
                                0,
                            );
                        }
                        drop(g);
                        killer.join().unwrap();
                    });
                })
            },
        );
    }
}

// ---- zero_page_range ----

fn sweep_zero_page_range(s: &mut Sweep) {
    let n = DEV_PAGES;
    for pgoff in [0, 1, n - 1, n, n + 1, i64::MAX as u64, u64::MAX] {
        for nr in [0, 1, 2, n, u64::MAX] {
            for guard in [false, true] {
                let api = if guard { "DaxReadGuard" } else { "DaxDevice" };
                s.probe(
                    format!("{api}::zero_page_range(pgoff {pgoff}, nr_pages {nr})"),
                    || {
                        on_device(n, |dev, model, f| {
                            let r = if guard {
                                dev.read_lock().zero_page_range(pgoff, nr)
                            } else {
                                dev.zero_page_range(pgoff, nr)
                            };
                            if nr != 1 {
                                f.errno("nr != 1", &r, libc::EIO);
                            } else if pgoff >= n {
                                f.errno("past the end (the driver's answer)", &r, libc::ERANGE);
                            } else {
                                f.that(r.is_ok(), || format!("got {r:?}"));
                                let at = mi(pgoff as usize * PAGE);
                                model[at..at + PAGE].fill(0);
                            }
                        })
                    },
                );
            }
        }
    }
}

// ---- fs_dax_get, holder_notify_failure ----

#[derive(Default)]
struct Recorder(Mutex<Vec<(u64, u64, MfFlags)>>);

impl DaxHolder for Recorder {
    fn notify_failure(&self, offset: u64, len: u64, flags: MfFlags) -> Result<(), DaxError> {
        self.0.lock().unwrap().push((offset, len, flags));
        Ok(())
    }
}

fn sweep_holder(s: &mut Sweep) {
    let size = DEV_PAGES * PAGE as u64;
    let p = PAGE as u64;
    let top = !(p - 1);
    let cases: [(u64, u64, bool); 14] = [
        (0, 0, true),
        (0, p, true),
        (0, size, true),
        (size - p, p, true),
        (size, 0, true),
        (0, size + p, false),
        (size, p, false),
        (p, size, false),
        (1, p, false),
        (0, 1, false),
        (top, p, false),
        (p, top, false),
        (top, top, false),
        (u64::MAX, u64::MAX, false),
    ];
    for (start, len, ok) in cases {
        s.probe(
            format!(
                "DaxDevice::fs_dax_get(part_start {start}, part_len {len}) on a {size}-byte device"
            ),
            || {
                on_device(DEV_PAGES, |dev, _m, f| {
                    let h: Arc<dyn DaxHolder> = Arc::new(Recorder::default());
                    let r = dev.fs_dax_get(start, len, Some(h.clone()));
                    if ok {
                        match r {
                            Ok(fsd) => {
                                f.eq("start_off", fsd.start_off(), start);
                                let again = dev.fs_dax_get(start, len, Some(h.clone()));
                                f.errno("second holder", &again.map(|_| ()), libc::EBUSY);
                            }
                            Err(e) => f.0.push(format!("got {e:?}, expected Ok")),
                        }
                    } else {
                        f.errno("bad partition", &r.map(|_| ()), libc::EINVAL);
                        f.that(dev.holder().is_none(), || {
                            "a failed fs_dax_get left a holder".into()
                        });
                    }
                })
            },
        );
    }
    let pairs = [
        (0, 0),
        (0, u64::MAX),
        (u64::MAX, 0),
        (u64::MAX, u64::MAX),
        (u64::MAX - 10, 100),
        (i64::MAX as u64, i64::MAX as u64 + 1),
    ];
    for (off, len) in pairs {
        s.probe(
            format!("DaxDevice::holder_notify_failure(offset {off}, len {len})"),
            || {
                on_device(DEV_PAGES, |dev, _m, f| {
                    f.errno(
                        "no holder",
                        &dev.holder_notify_failure(off, len, MfFlags::empty()),
                        libc::EOPNOTSUPP,
                    );
                    let rec = Arc::new(Recorder::default());
                    dev.claim_holder(rec.clone()).unwrap();
                    let r = dev.holder_notify_failure(off, len, MfFlags::ACTION_REQUIRED);
                    f.that(r.is_ok(), || format!("got {r:?}"));
                    f.eq(
                        "holder saw",
                        rec.0.lock().unwrap().clone(),
                        vec![(off, len, MfFlags::ACTION_REQUIRED)],
                    );
                    dev.kill();
                    f.errno(
                        "dead",
                        &dev.holder_notify_failure(off, len, MfFlags::empty()),
                        libc::ENXIO,
                    );
                })
            },
        );
    }
}

// ---- small value types ----

fn sweep_types(s: &mut Sweep) {
    let cases = [
        (0, 0),
        (0, u64::MAX),
        (u64::MAX, 0),
        (u64::MAX - 1, 1),
        (u64::MAX, 1),
        (1, u64::MAX),
        (u64::MAX, u64::MAX),
    ];
    for (p, n) in cases {
        s.probe(
            format!("Pfn({p}).add({n}) (the kernel's unsigned long pfn arithmetic wraps)"),
            || {
                let got = std::hint::black_box(Pfn(p)).add(std::hint::black_box(n));
                let mut f = Fails::default();
                f.eq("value", got, Pfn(p.wrapping_add(n)));
                f.done()
            },
        );
    }
    for (p, order) in [
        (0, 0),
        (512, 9),
        (1 << 63, 63),
        (0, 64),
        (0, 65),
        (u64::MAX, u32::MAX),
    ] {
        s.probe(format!("Pfn({p}).is_aligned(order {order})"), || {
            let got = std::hint::black_box(Pfn(p)).is_aligned(std::hint::black_box(order));
            let want = order >= 64 && p == 0 || order < 64 && p.trailing_zeros() >= order;
            let mut f = Fails::default();
            f.eq("value", got, want);
            f.done()
        });
    }
    let errors = [
        DaxError::HwPoison {
            pgoff: u64::MAX,
            nr_pages: 1,
        },
        DaxError::HwPoison {
            pgoff: 1,
            nr_pages: u64::MAX,
        },
        DaxError::MediaError {
            pgoff: u64::MAX,
            nr_pages: u64::MAX,
        },
        DaxError::OutOfRange {
            pgoff: u64::MAX,
            dev_pages: u64::MAX,
        },
        DaxError::PoisonNotCleared {
            offset: u64::MAX,
            len: u64::MAX,
            cleared: u64::MAX,
        },
        DaxError::InvalidMapping {
            pos: u64::MAX,
            offset: u64::MAX,
            length: u64::MAX,
            addr: u64::MAX,
            reason: "edge",
        },
    ];
    for e in errors {
        s.probe(
            format!("Display of {e:?} (fields at u64::MAX)"),
            move || {
                let text = std::hint::black_box(format!("{e}"));
                let errno = e.errno();
                let _ = std::io::Error::from(e.clone());
                let _ = e.mem2blk();
                (!text.is_empty() && errno > 0)
                    .then_some(())
                    .ok_or_else(|| "empty text".into())
            },
        );
    }
}

// ---- badblocks ----

/// Every record 1..=512 sectors, below 2^54, sorted, not overlapping.
fn well_formed(bb: &Badblocks) -> Check {
    let recs = bb.records();
    let mut f = Fails::default();
    f.that(recs.len() <= 512, || format!("{} records", recs.len()));
    for r in &recs {
        f.that(
            (1..=BB_MAX_LEN).contains(&r.len) && r.end() <= LIMIT,
            || format!("bad record {r:?}"),
        );
    }
    for w in recs.windows(2) {
        f.that(w[0].end() <= w[1].start, || {
            format!("records overlap: {:?} {:?}", w[0], w[1])
        });
    }
    f.done()
}

const STARTS: [u64; 9] = [
    0,
    1,
    511,
    LIMIT - 513,
    LIMIT - 1,
    LIMIT,
    i64::MAX as u64,
    u64::MAX - 10,
    u64::MAX,
];
const COUNTS: [u64; 8] = [
    0,
    1,
    512,
    513,
    512 * 512,
    512 * 512 + 1,
    i64::MAX as u64,
    u64::MAX,
];

fn sweep_badblocks(s: &mut Sweep) {
    for &st in &STARTS {
        for &n in &COUNTS {
            s.probe(
                format!("Badblocks::set(s {st}, sectors {n}) then check/clear/show"),
                || {
                    let bb = Badblocks::new();
                    let mut f = Fails::default();
                    let ok = bb.set(st, n, true);
                    let fits = st < LIMIT && n > 0 && st.checked_add(n).is_some_and(|e| e <= LIMIT);
                    let recorded = if st < LIMIT && n > 0 {
                        n.min(LIMIT - st)
                    } else {
                        0
                    };
                    let want = fits && recorded.div_ceil(BB_MAX_LEN) <= 512;
                    f.eq("set's answer", ok, want);
                    if let Err(e) = well_formed(&bb) {
                        f.0.push(e);
                    }
                    if recorded > 0 {
                        f.that(bb.check(st, 1).is_bad(), || {
                            "first sector not recorded".into()
                        });
                    }
                    f.that(!bb.check(LIMIT, u64::MAX).is_bad(), || {
                        "something at or past 2^54".into()
                    });
                    let _ = bb.show(false);
                    let _ = bb.show(true);
                    f.eq("clear's answer", bb.clear(st, n), n > 0);
                    f.that(n == 0 || st >= LIMIT || !bb.check(st, 1).is_bad(), || {
                        "clear left the first sector".into()
                    });
                    if let Err(e) = well_formed(&bb) {
                        f.0.push(e);
                    }
                    f.done()
                },
            );
        }
    }
    for &st in &STARTS {
        for &n in &COUNTS {
            s.probe(format!("Badblocks::check(s {st}, sectors {n}) and clear on a table holding 100..108 and 2^54-4..2^54"), || {
                let bb = Badblocks::new();
                assert!(bb.set(100, 8, true) && bb.set(LIMIT - 4, 4, false));
                let mut f = Fails::default();
                let end = st.saturating_add(n.max(1));
                let hits_low = st < 108 && end > 100;
                let hits_top = st < LIMIT && end > LIMIT - 4;
                let c = bb.check(st, n);
                let want = if hits_low { Some((100, 8)) } else if hits_top { Some((LIMIT - 4, 4)) } else { None };
                f.eq("check", c.first_bad(), want);
                f.eq("clear", bb.clear(st, n), n > 0);
                if let Err(e) = well_formed(&bb) {
                    f.0.push(e);
                }
                f.done()
            });
        }
    }
    s.probe(
        "Badblocks: a full table (512 records) at every edge",
        || {
            let bb = Badblocks::new();
            for i in 0..512 {
                assert!(bb.set(i * 2, 1, true));
            }
            let mut f = Fails::default();
            for &st in &STARTS {
                for &n in &COUNTS {
                    let _ = bb.set(st, n, false);
                    let _ = bb.check(st, n);
                    let _ = bb.clear(st.saturating_add(1), n.min(1));
                }
            }
            f.that(bb.count() <= 512, || "more than 512 records".into());
            if let Err(e) = well_formed(&bb) {
                f.0.push(e);
            }
            f.done()
        },
    );
    for shift in [0, 1, 9, 31, 32, 54, 63, 64, 65, u32::MAX] {
        s.probe(
            format!("Badblocks::with_shift({shift}): set/check/clear/show at the edges"),
            || {
                let bb = Badblocks::with_shift(shift);
                let mut f = Fails::default();
                for &st in &STARTS {
                    let _ = bb.set(st, 512, true);
                }
                let text = bb.show(false);
                f.that(text.len() < 4096, || "show longer than a page".into());
                let _ = bb.show(true);
                for &st in &STARTS {
                    let _ = bb.check(st, u64::MAX);
                    let _ = bb.clear(st, u64::MAX);
                }
                if let Err(e) = well_formed(&bb) {
                    f.0.push(e);
                }
                f.done()
            },
        );
    }
    s.probe("Badblocks::disabled(): every call at the edges", || {
        let bb = Badblocks::disabled();
        let mut f = Fails::default();
        for &st in &STARTS {
            for &n in &COUNTS {
                f.that(!bb.set(st, n, true), || {
                    format!("set({st}, {n}) on a disabled table")
                });
                f.that(!bb.clear(st, n), || {
                    format!("clear({st}, {n}) on a disabled table")
                });
                f.that(!bb.check(st, n).is_bad(), || {
                    "check on a disabled table".into()
                });
            }
        }
        f.eq("show", bb.show(true), String::new());
        f.errno("store", &bb.store(b"0 1", false), libc::ENOSPC);
        f.done()
    });
    // The sysfs text: (text, Ok or errno).
    let m = u64::MAX;
    let texts: Vec<(String, Option<i32>)> = vec![
        ("0 1".into(), None),
        ("0 512".into(), None),
        (format!("{} 1", LIMIT - 1), None),
        (format!("{} 512", LIMIT - 512), None),
        (format!("{} 513", LIMIT - 512), Some(libc::EINVAL)),
        (format!("{} 1", LIMIT), Some(libc::EINVAL)),
        (format!("{m} 1"), Some(libc::EINVAL)),
        (format!("{} 100", m - 10), Some(libc::EINVAL)),
        // Digits wrap modulo 2^64 as simple_strtoull's do: u64::MAX * 10 = 2^64 - 10.
        (format!("{m}0 1"), Some(libc::EINVAL)),
        // 2^64 + 5 wraps to 5.
        ("18446744073709551621 1".into(), None),
        ("0 0".into(), Some(libc::EINVAL)),
        ("0 -1".into(), Some(libc::EINVAL)),
        ("0 2147483647".into(), Some(libc::ENOSPC)),
        ("0 2147483648".into(), Some(libc::EINVAL)),
        ("0 4294967297".into(), None),
        (format!("0 {m}"), Some(libc::EINVAL)),
        ("".into(), Some(libc::EINVAL)),
        (
            "99999999999999999999999999999999999999 1".into(),
            Some(libc::EINVAL),
        ),
    ];
    for (text, want) in texts {
        s.probe(format!("Badblocks::store({text:?})"), move || {
            let bb = Badblocks::new();
            let r = bb.store(text.as_bytes(), false);
            let mut f = Fails::default();
            match want {
                Some(e) => f.errno("store", &r, e),
                None => match &r {
                    Ok(n) => f.eq("consumed", *n, text.len()),
                    Err(e) => f.0.push(format!("got {e:?}, expected Ok")),
                },
            }
            if let Err(e) = well_formed(&bb) {
                f.0.push(e);
            }
            f.done()
        });
    }
    s.probe(
        "badblocks::{encode, decode}, BadRange::{end, encode} at the edges",
        || {
            let mut f = Fails::default();
            f.eq(
                "encode(2^54-1, 512)",
                encode(LIMIT - 1, 512, true).is_some(),
                true,
            );
            f.eq("encode(2^54, 1)", encode(LIMIT, 1, true), None);
            f.eq("encode(0, 0)", encode(0, 0, false), None);
            f.eq("encode(0, 513)", encode(0, 513, false), None);
            f.eq(
                "encode(u64::MAX, u64::MAX)",
                encode(u64::MAX, u64::MAX, true),
                None,
            );
            for raw in [0, 1, u64::MAX, u64::MAX >> 1, 1 << 63] {
                let r = decode(raw);
                f.that((1..=512).contains(&r.len) && r.start < LIMIT, || {
                    format!("decode({raw:#x}) = {r:?}")
                });
                f.eq(
                    &format!("re-encode of decode({raw:#x})"),
                    r.encode(),
                    Some(raw),
                );
            }
            let r = BadRange {
                start: u64::MAX,
                len: u64::MAX,
                acknowledged: true,
            };
            f.eq("end saturates", r.end(), u64::MAX);
            f.eq("encode of an unencodable range", r.encode(), None);
            f.done()
        },
    );
}

// ---- persist ----

const GUARD_BYTES: usize = 256;

/// A 64-byte-aligned buffer of `len` bytes with [`GUARD_BYTES`] of canary on each side.
struct Buf {
    v: Vec<u8>,
    off: usize,
    len: usize,
}

impl Buf {
    fn new(len: usize, seed: u8) -> Buf {
        let mut v = vec![CANARY; len + 2 * GUARD_BYTES + 64];
        let off = (64 - (v.as_ptr() as usize % 64)) % 64 + GUARD_BYTES;
        for i in 0..len {
            v[off + i] = (i as u8).wrapping_mul(29) ^ seed;
        }
        Buf { v, off, len }
    }

    fn at(&mut self, i: usize) -> *mut u8 {
        assert!(i <= self.len);
        // SAFETY: inside the vector.
        unsafe { self.v.as_mut_ptr().add(self.off + i) }
    }
}

const P_LENS: [usize; 18] = [
    0,
    1,
    7,
    8,
    9,
    63,
    64,
    65,
    127,
    128,
    129,
    255,
    MOVNT_THRESHOLD - 1,
    MOVNT_THRESHOLD,
    MOVNT_THRESHOLD + 1,
    MOVNT_THRESHOLD_UNALIGNED - 1,
    MOVNT_THRESHOLD_UNALIGNED + 1,
    4096 + 3,
];
const P_OFFS: [usize; 6] = [0, 1, 7, 8, 63, 64];

fn all_flags() -> Vec<PersistFlags> {
    let mut v = vec![PersistFlags::empty()];
    for f in PersistFlags::all().iter() {
        v.push(f);
    }
    v.push(PersistFlags::NONTEMPORAL | PersistFlags::NODRAIN);
    v.push(PersistFlags::all());
    v
}

fn sweep_persist(s: &mut Sweep) {
    for fl in FlushImpl::ALL {
        s.probe(format!("persist::flush_range_with({fl:?}) and persist_range: every length and offset, nothing changes"), || {
            let mut f = Fails::default();
            for &l in &P_LENS {
                for &o in &P_OFFS {
                    let mut b = Buf::new(l + o, 3);
                    let before = b.v.clone();
                    let p = b.at(o);
                    // SAFETY: `p .. p + l` lies inside the buffer.
                    unsafe {
                        persist::flush_range_with(fl, p, l);
                        persist::flush_range(p, l);
                        persist::persist_range(p, l);
                    }
                    if let Err(e) = same_bytes(&format!("len {l} off {o}"), &b.v, &before, -(b.off as i64)) {
                        f.0.push(e);
                    }
                }
            }
            f.done()
        });
    }
    for cp in CopyImpl::ALL {
        for fl in [FlushImpl::Clwb, FlushImpl::Clflush] {
            for flags in all_flags() {
                s.probe(format!("persist::memcpy_persist_with({cp:?}, {fl:?}, {flags:?}) every length and offset"), || {
                    let mut f = Fails::default();
                    for &l in &P_LENS {
                        for &o in &P_OFFS {
                            for so in [0usize, 3] {
                                let mut src = Buf::new(l + so, 0x11);
                                let mut dst = Buf::new(l + o + 8, 0x22);
                                let mut want = dst.v.clone();
                                want[dst.off + o..dst.off + o + l].copy_from_slice(&src.v[src.off + so..src.off + so + l]);
                                let src_before = src.v.clone();
                                let (d, sp) = (dst.at(o), src.at(so));
                                // SAFETY: both ranges lie inside their own buffers.
                                unsafe { persist::memcpy_persist_with(cp, fl, d, sp, l, flags) };
                                if let Err(e) = same_bytes(&format!("memcpy len {l} dst+{o} src+{so}"), &dst.v, &want, -(dst.off as i64)) {
                                    f.0.push(e);
                                }
                                if let Err(e) = same_bytes("memcpy source", &src.v, &src_before, -(src.off as i64)) {
                                    f.0.push(e);
                                }
                            }
                        }
                    }
                    f.done()
                });
                s.probe(format!("persist::memmove_persist_with({cp:?}, {fl:?}, {flags:?}) overlapping, both directions"), || {
                    let mut f = Fails::default();
                    for &l in &P_LENS {
                        for &o in &P_OFFS {
                            for shift in [1usize, 8, 64, 65] {
                                for fwd in [true, false] {
                                    let mut b = Buf::new(l + o + shift + 8, 0x33);
                                    let (d, s_) = if fwd { (o + shift, o) } else { (o, o + shift) };
                                    let mut want = b.v.clone();
                                    let piece = want[b.off + s_..b.off + s_ + l].to_vec();
                                    want[b.off + d..b.off + d + l].copy_from_slice(&piece);
                                    let (dp, sp) = (b.at(d), b.at(s_));
                                    // SAFETY: both ranges lie inside the buffer.
                                    unsafe { persist::memmove_persist_with(cp, fl, dp, sp, l, flags) };
                                    if let Err(e) = same_bytes(&format!("memmove len {l} dst {d} src {s_}"), &b.v, &want, -(b.off as i64)) {
                                        f.0.push(e);
                                    }
                                }
                            }
                        }
                    }
                    f.done()
                });
                s.probe(format!("persist::memset_persist_with({cp:?}, {fl:?}, {flags:?}) every length and offset"), || {
                    let mut f = Fails::default();
                    for &l in &P_LENS {
                        for &o in &P_OFFS {
                            let mut b = Buf::new(l + o + 8, 0x44);
                            let mut want = b.v.clone();
                            want[b.off + o..b.off + o + l].fill(0xC3);
                            let p = b.at(o);
                            // SAFETY: the range lies inside the buffer.
                            unsafe { persist::memset_persist_with(cp, fl, p, 0xC3, l, flags) };
                            if let Err(e) = same_bytes(&format!("memset len {l} off {o}"), &b.v, &want, -(b.off as i64)) {
                                f.0.push(e);
                            }
                        }
                    }
                    f.done()
                });
            }
        }
    }
    s.probe("persist::{memcpy_persist, memmove_persist, memset_persist, copy_flushcache} (detected implementations)", || {
        let mut f = Fails::default();
        for &l in &P_LENS {
            for &o in &P_OFFS {
                let mut src = Buf::new(l, 0x55);
                let mut dst = Buf::new(l + o, 0x66);
                let mut want = dst.v.clone();
                want[dst.off + o..dst.off + o + l].copy_from_slice(&src.v[src.off..src.off + l]);
                let (d, sp) = (dst.at(o), src.at(0));
                // SAFETY: both ranges lie inside their buffers.
                unsafe { persist::copy_flushcache(d, sp, l) };
                if let Err(e) = same_bytes(&format!("copy_flushcache len {l} off {o}"), &dst.v, &want, -(dst.off as i64)) {
                    f.0.push(e);
                }
                // SAFETY: as above.
                unsafe { persist::memcpy_persist(d, sp, l, PersistFlags::empty()) };
                if let Err(e) = same_bytes(&format!("memcpy_persist len {l} off {o}"), &dst.v, &want, -(dst.off as i64)) {
                    f.0.push(e);
                }
                // SAFETY: as above.
                unsafe { persist::memmove_persist(d, sp, l, PersistFlags::empty()) };
                if let Err(e) = same_bytes(&format!("memmove_persist len {l} off {o}"), &dst.v, &want, -(dst.off as i64)) {
                    f.0.push(e);
                }
                want[dst.off + o..dst.off + o + l].fill(9);
                // SAFETY: the range lies inside the buffer.
                unsafe { persist::memset_persist(d, 9, l, PersistFlags::empty()) };
                if let Err(e) = same_bytes(&format!("memset_persist len {l} off {o}"), &dst.v, &want, -(dst.off as i64)) {
                    f.0.push(e);
                }
            }
        }
        persist::drain();
        f.done()
    });
}

sweep!(
    /// `DaxReadGuard::direct_access` at every page offset and count edge.
    sweep_core_direct_access,
    child_sweep_core_direct_access,
    sweep_direct_access
);
sweep!(
    /// `DirectAccess` copies, fills, flushes and recovery writes at every offset and
    /// length edge, NOMC copies at poison, dead devices.
    sweep_core_direct_access_copies,
    child_sweep_core_direct_access_copies,
    sweep_direct_access_copies
);
sweep!(
    /// `zero_page_range`, `fs_dax_get`, `holder_notify_failure`.
    sweep_core_device,
    child_sweep_core_device,
    device_all
);
sweep!(
    /// `Pfn`, `DaxError`'s text, the badblocks table and its sysfs text.
    sweep_core_badblocks_and_types,
    child_sweep_core_badblocks_and_types,
    badblocks_and_types
);
sweep!(
    /// The persistent copy, fill and write-back primitives.
    sweep_core_persist,
    child_sweep_core_persist,
    sweep_persist
);

fn device_all(s: &mut Sweep) {
    sweep_zero_page_range(s);
    sweep_holder(s);
}

fn badblocks_and_types(s: &mut Sweep) {
    sweep_types(s);
    sweep_badblocks(s);
}
