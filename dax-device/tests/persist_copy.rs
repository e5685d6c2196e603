//! Every copy, fill and move path the CPU has writes exactly the bytes a plain
//! `memcpy`/`memset`/`memmove` writes, never a byte outside the destination.
//!
//! Under Miri (`scripts/miri`), which checks every access of the copy kernels for
//! bounds and alignment, the sweeps take the lengths and misalignments around the
//! kernels' boundaries instead of every value ([`pick`]), and the multi-megabyte
//! copies are left out.

use dax_device::persist::{
    self, CopyImpl, FlushImpl, PersistFlags, copy_flushcache, memcpy_persist_with,
    memmove_persist_with, memset_persist_with,
};
use std::sync::Once;

const GUARD: usize = 128;
const GUARD_BYTE: u8 = 0xA5;

/// `all`, or under Miri (100 to 1000 times slower) the values in `miri` only.
fn pick(all: impl IntoIterator<Item = usize>, miri: &[usize]) -> Vec<usize> {
    if cfg!(miri) {
        miri.to_vec()
    } else {
        all.into_iter().collect()
    }
}

/// Lengths around the copy paths' boundaries: 8-byte words, the 64-byte line, the
/// non-temporal thresholds (256 and 512).
const MIRI_LENS: [usize; 12] = [0, 1, 7, 8, 9, 63, 64, 65, 255, 256, 257, 300];
/// Misalignments: aligned, odd, word-aligned, the last byte of a line.
const MIRI_MIS: [usize; 4] = [0, 1, 8, 63];

/// Every (copy, flush) pair this CPU supports; prints the skipped ones once.
fn combos() -> Vec<(CopyImpl, FlushImpl)> {
    static REPORT: Once = Once::new();
    REPORT.call_once(|| {
        for c in CopyImpl::ALL.into_iter().filter(|c| !c.is_supported()) {
            eprintln!("skipping copy implementation {c}: not supported by this CPU");
        }
        for f in FlushImpl::ALL.into_iter().filter(|f| !f.is_supported()) {
            eprintln!("skipping flush implementation {f}: not supported by this CPU");
        }
    });
    let mut v = Vec::new();
    for c in CopyImpl::ALL.into_iter().filter(|c| c.is_supported()) {
        for f in FlushImpl::ALL.into_iter().filter(|f| f.is_supported()) {
            v.push((c, f));
        }
    }
    v
}

/// Deterministic non-repeating-ish bytes (xorshift), so a misplaced byte shows.
fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Offset into `buf` at or after `min` whose address is `mis` modulo 64.
fn offset_with_misalignment(buf: &[u8], min: usize, mis: usize) -> usize {
    let base = buf.as_ptr() as usize + min;
    min + (mis + 64 - base % 64) % 64
}

/// Scratch space for one destination: guards of `GUARD_BYTE` around it.
struct Dst {
    buf: Vec<u8>,
}

impl Dst {
    fn new(max_len: usize) -> Dst {
        Dst {
            buf: vec![0; max_len + 2 * GUARD + 64],
        }
    }

    /// Prepares `[off, off + len)` with bytes that differ from `expect` and guards
    /// around it; returns `off` for destination misalignment `mis`.
    fn prepare(&mut self, mis: usize, expect: &[u8]) -> usize {
        let off = offset_with_misalignment(&self.buf, GUARD, mis);
        let len = expect.len();
        self.buf[off - GUARD..off].fill(GUARD_BYTE);
        for (d, s) in self.buf[off..off + len].iter_mut().zip(expect) {
            *d = !*s;
        }
        self.buf[off + len..off + len + GUARD].fill(GUARD_BYTE);
        off
    }

    fn check(&self, off: usize, expect: &[u8], what: &dyn Fn() -> String) {
        let len = expect.len();
        assert!(
            self.buf[off - GUARD..off].iter().all(|&b| b == GUARD_BYTE),
            "guard before destination clobbered: {}",
            what()
        );
        assert!(
            self.buf[off + len..off + len + GUARD]
                .iter()
                .all(|&b| b == GUARD_BYTE),
            "guard after destination clobbered: {}",
            what()
        );
        if self.buf[off..off + len] != *expect {
            let first = (0..len)
                .find(|&i| self.buf[off + i] != expect[i])
                .unwrap_or(0);
            panic!("wrong bytes from offset {first}: {}", what());
        }
    }
}

/// One memcpy through `memcpy_persist_with`, checked against the source.
#[allow(clippy::too_many_arguments)]
fn check_memcpy(
    copy: CopyImpl,
    flush: FlushImpl,
    flags: PersistFlags,
    dst: &mut Dst,
    src_buf: &[u8],
    src_mis: usize,
    dst_mis: usize,
    len: usize,
) {
    let src_off = offset_with_misalignment(src_buf, 0, src_mis);
    let src = &src_buf[src_off..src_off + len];
    let off = dst.prepare(dst_mis, src);
    let d = dst.buf[off..].as_mut_ptr();
    // SAFETY: `d` is valid for `len` bytes (prepare left room plus the guard), `src`
    // for `len` bytes; separate allocations, nothing else touches them.
    unsafe { memcpy_persist_with(copy, flush, d, src.as_ptr(), len, flags) };
    dst.check(off, src, &|| {
        format!("memcpy {copy}/{flush} {flags:?} len {len} dst%64 {dst_mis} src%64 {src_mis}")
    });
}

const FLAG_SETS: [PersistFlags; 5] = [
    PersistFlags::empty(),
    PersistFlags::NONTEMPORAL,
    PersistFlags::TEMPORAL,
    PersistFlags::NOFLUSH,
    PersistFlags::NODRAIN,
];

#[test]
fn memcpy_every_length_0_to_300() {
    let src = pattern(300 + 64, 1);
    let mut dst = Dst::new(300);
    for (c, f) in combos() {
        for flags in FLAG_SETS {
            for len in pick(0..=300, &MIRI_LENS) {
                check_memcpy(c, f, flags, &mut dst, &src, 5, 3, len);
                check_memcpy(c, f, flags, &mut dst, &src, 0, 0, len);
            }
        }
    }
}

#[test]
fn memcpy_every_dst_and_src_misalignment() {
    const LENS: [usize; 10] = [1, 7, 9, 63, 64, 65, 129, 256, 300, 1000];
    let src = pattern(1000 + 64, 2);
    let mut dst = Dst::new(1000);
    for (c, f) in combos() {
        for flags in [PersistFlags::NONTEMPORAL, PersistFlags::empty()] {
            // Under Miri: a word and a byte, one past a line, and one past
            // the non-temporal threshold, each at every pair of misalignments.
            for len in pick(LENS, &[9, 65, 300]) {
                for dm in pick(0..64, &MIRI_MIS) {
                    for sm in pick(0..64, &MIRI_MIS) {
                        check_memcpy(c, f, flags, &mut dst, &src, sm, dm, len);
                    }
                }
            }
        }
    }
}

#[test]
#[cfg_attr(miri, ignore = "copies of up to 8 MiB: minutes under Miri")]
fn memcpy_large_sizes() {
    const LENS: [usize; 6] = [
        4096,
        4096 + 1,
        65536 - 13,
        1 << 20,
        (1 << 20) + 4097,
        8 << 20,
    ];
    let max = 8 << 20;
    let src = pattern(max + 64, 3);
    let mut dst = Dst::new(max);
    for (c, f) in combos() {
        for (i, len) in LENS.into_iter().enumerate() {
            let (sm, dm) = [(0, 0), (1, 0), (0, 17), (33, 5), (63, 63), (8, 40)][i];
            check_memcpy(c, f, PersistFlags::empty(), &mut dst, &src, sm, dm, len);
        }
        // One big copy with every forced mode.
        for flags in [PersistFlags::TEMPORAL, PersistFlags::NOFLUSH] {
            check_memcpy(c, f, flags, &mut dst, &src, 3, 61, (2 << 20) + 77);
        }
    }
}

/// Line counts at the forward kernels' internal boundaries: the 8-line blocks, the
/// 16-line prefetch distance and the end of the AVX-512 kernel's prefetching loop
/// (256 + 16 lines), each +-1 line and +-1 block.
const KERNEL_EDGE_LINES: [usize; 22] = [
    1, 7, 8, 9, 15, 16, 17, 23, 24, 25, 33, 255, 256, 257, 263, 264, 271, 272, 273, 280, 281, 1000,
];
/// The edges of [`KERNEL_EDGE_LINES`] that the kernels Miri runs have (SSE2 and
/// portable: no AVX-512 prefetch loop).
const MIRI_EDGE_LINES: [usize; 7] = [1, 7, 8, 9, 16, 17, 33];

/// Whole lines to a 64-aligned destination (the AVX-512 path calls its kernel directly
/// then) and the same lengths with partial first/last lines, around the kernels'
/// boundaries, for every implementation.
#[test]
fn memcpy_kernel_edges() {
    let max = 1000 * 64 + 64;
    let src = pattern(max + 64, 9);
    let mut dst = Dst::new(max);
    for (c, f) in combos() {
        for flags in [PersistFlags::empty(), PersistFlags::NONTEMPORAL] {
            for lines in pick(KERNEL_EDGE_LINES, &MIRI_EDGE_LINES) {
                let len = lines * 64;
                for (sm, dm, extra) in [(0, 0, 0), (5, 0, 0), (0, 0, 24), (0, 40, 0), (7, 9, 3)] {
                    check_memcpy(c, f, flags, &mut dst, &src, sm, dm, len + extra);
                }
            }
        }
    }
}

/// `memcpy_persist` itself (detected implementations, the cached fast path) on the
/// same edges.
#[test]
fn memcpy_persist_detected_kernel_edges() {
    let max = 1000 * 64 + 64;
    let src_buf = pattern(max + 64, 10);
    let mut dst = Dst::new(max);
    for lines in pick(KERNEL_EDGE_LINES, &MIRI_EDGE_LINES) {
        for (sm, dm, extra) in [(0, 0, 0), (3, 0, 0), (0, 0, 8), (0, 24, 40), (1, 63, 5)] {
            let len = lines * 64 + extra;
            let src_off = offset_with_misalignment(&src_buf, 0, sm);
            let src = &src_buf[src_off..src_off + len];
            let off = dst.prepare(dm, src);
            let d = dst.buf[off..].as_mut_ptr();
            // SAFETY: `d` is valid for `len` bytes (prepare left room plus the guard),
            // `src` for `len` bytes; separate allocations, nothing else touches them.
            unsafe { persist::memcpy_persist(d, src.as_ptr(), len, PersistFlags::empty()) };
            dst.check(off, src, &|| {
                format!("memcpy_persist len {len} dst%64 {dm} src%64 {sm}")
            });
        }
    }
}

#[test]
fn copy_flushcache_matches_plain_copy() {
    let src = pattern(5000, 4);
    for len in [0, 1, 8, 63, 64, 100, 255, 256, 4096, 4999] {
        for mis in [0, 1, 8, 31] {
            let mut dst = Dst::new(5000);
            let s = &src[..len];
            let off = dst.prepare(mis, s);
            let d = dst.buf[off..].as_mut_ptr();
            // SAFETY: valid, disjoint ranges of `len` bytes.
            unsafe { copy_flushcache(d, s.as_ptr(), len) };
            persist::drain();
            dst.check(off, s, &|| format!("copy_flushcache len {len} mis {mis}"));
        }
    }
}

fn check_memset(
    copy: CopyImpl,
    flush: FlushImpl,
    flags: PersistFlags,
    dst: &mut Dst,
    mis: usize,
    len: usize,
    byte: u8,
) {
    let expect = vec![byte; len];
    let off = dst.prepare(mis, &expect);
    let d = dst.buf[off..].as_mut_ptr();
    // SAFETY: `d` is valid for `len` bytes of writes.
    unsafe { memset_persist_with(copy, flush, d, byte, len, flags) };
    dst.check(off, &expect, &|| {
        format!("memset {copy}/{flush} {flags:?} len {len} dst%64 {mis} byte {byte:#x}")
    });
}

#[test]
fn memset_every_length_and_misalignment() {
    let mut dst = Dst::new(1 << 12);
    for (c, f) in combos() {
        for flags in FLAG_SETS {
            for len in pick(0..=300, &MIRI_LENS) {
                check_memset(c, f, flags, &mut dst, 7, len, 0x3C);
            }
        }
        for flags in [PersistFlags::NONTEMPORAL, PersistFlags::empty()] {
            for len in [1, 7, 9, 63, 64, 65, 129, 256, 300, 1000] {
                for mis in pick(0..64, &MIRI_MIS) {
                    check_memset(c, f, flags, &mut dst, mis, len, 0);
                    check_memset(c, f, flags, &mut dst, mis, len, 0xFF);
                }
            }
        }
    }
}

#[test]
#[cfg_attr(miri, ignore = "fills of up to 8 MiB: minutes under Miri")]
fn memset_large_sizes() {
    let max = 8 << 20;
    let mut dst = Dst::new(max);
    for (c, f) in combos() {
        for (len, mis) in [(4096, 0), (65536 + 3, 9), (1 << 20, 63), (max - 1, 1)] {
            check_memset(c, f, PersistFlags::empty(), &mut dst, mis, len, 0x81);
        }
    }
}

/// memmove of `len` bytes inside one buffer from `src_off` to `dst_off`, against
/// `copy_within` on a shadow.
#[allow(clippy::too_many_arguments)]
fn check_memmove(
    copy: CopyImpl,
    flush: FlushImpl,
    flags: PersistFlags,
    buf: &mut [u8],
    init: &[u8],
    src_off: usize,
    dst_off: usize,
    len: usize,
) {
    buf.copy_from_slice(init);
    let mut shadow = init.to_vec();
    shadow.copy_within(src_off..src_off + len, dst_off);
    let base = buf.as_mut_ptr();
    // SAFETY: both ranges lie inside `buf`; memmove allows overlap.
    unsafe {
        memmove_persist_with(
            copy,
            flush,
            base.add(dst_off),
            base.add(src_off),
            len,
            flags,
        )
    };
    if *buf != shadow[..] {
        let first = (0..buf.len()).find(|&i| buf[i] != shadow[i]).unwrap_or(0);
        panic!(
            "memmove {copy}/{flush} {flags:?} src {src_off} dst {dst_off} len {len}: \
             first wrong byte at {first}"
        );
    }
}

#[test]
fn memmove_overlapping_both_directions() {
    const SIZE: usize = 4096;
    let init = pattern(SIZE, 5);
    let mut buf = vec![0u8; SIZE];
    let lo = offset_with_misalignment(&buf, 256, 0);
    const DISTANCES: [usize; 12] = [1, 3, 7, 8, 9, 31, 63, 64, 65, 200, 256, 1500];
    const LENS: [usize; 11] = [0, 1, 8, 15, 63, 64, 65, 255, 256, 700, 2000];
    for (c, f) in combos() {
        for flags in [
            PersistFlags::empty(),
            PersistFlags::NONTEMPORAL,
            PersistFlags::TEMPORAL,
        ] {
            for dist in pick(DISTANCES, &[1, 8, 9, 64, 200]) {
                for len in pick(LENS, &[0, 1, 63, 64, 256, 700]) {
                    for mis in pick([0, 1, 13, 40], &[0, 13]) {
                        let a = lo + mis;
                        // Forward overlap (dst below src) and backward (dst above src).
                        check_memmove(c, f, flags, &mut buf, &init, a + dist, a, len);
                        check_memmove(c, f, flags, &mut buf, &init, a, a + dist, len);
                    }
                }
            }
            // Same position: a no-op that must still leave the bytes alone.
            check_memmove(c, f, flags, &mut buf, &init, lo, lo, 1000);
        }
    }
}

#[test]
#[cfg_attr(miri, ignore = "moves of 2 MiB: minutes under Miri")]
fn memmove_large_overlap() {
    let size = 3 << 20;
    let init = pattern(size, 6);
    let mut buf = vec![0u8; size];
    for (c, f) in combos() {
        let len = (2 << 20) + 123;
        check_memmove(
            c,
            f,
            PersistFlags::empty(),
            &mut buf,
            &init,
            5,
            4096 + 37,
            len,
        );
        check_memmove(
            c,
            f,
            PersistFlags::empty(),
            &mut buf,
            &init,
            4096 + 37,
            5,
            len,
        );
    }
}

#[test]
fn every_flag_combination_writes_identical_bytes() {
    let src = pattern(2048 + 64, 7);
    let mut dst = Dst::new(2048);
    let mut buf = vec![0u8; 4096];
    let init = pattern(4096, 8);
    let (c, f) = (persist::copy_impl(), persist::flush_impl());
    // Under Miri: every flag alone and a few mixes.
    for bits in pick(0..64, &[0, 1, 2, 4, 8, 16, 32, 6, 33, 63]) {
        let bits = bits as u32;
        let flags = PersistFlags::from_bits(bits).expect("all six bits are defined");
        for len in pick([0, 5, 64, 200, 255, 256, 257, 2048], &[0, 5, 64, 257, 2048]) {
            check_memcpy(c, f, flags, &mut dst, &src, 11, 29, len);
            check_memset(c, f, flags, &mut dst, 29, len, bits as u8);
            check_memmove(c, f, flags, &mut buf, &init, 100, 133, len);
        }
        // NODRAIN combinations leave the fence to the caller.
        persist::drain();
    }
    assert_eq!(PersistFlags::all().bits(), 0b11_1111);
}

#[test]
fn flush_and_persist_leave_bytes_unchanged() {
    let init = pattern(1024, 9);
    let buf = init.clone();
    for f in FlushImpl::ALL.into_iter().filter(|f| f.is_supported()) {
        for (start, len) in [(0, 1), (1, 63), (63, 2), (5, 1000), (64, 64), (0, 1024)] {
            // SAFETY: the range lies inside `buf`.
            unsafe { persist::flush_range_with(f, buf.as_ptr().add(start), len) };
        }
    }
    // SAFETY: the ranges lie inside `buf`.
    unsafe {
        persist::flush_range(buf.as_ptr().add(3), 700);
        persist::persist_range(buf.as_ptr(), 1024);
    }
    persist::drain();
    assert_eq!(buf, init);
}

#[test]
fn zero_length_touches_nothing() {
    let null = std::ptr::null_mut::<u8>();
    for (c, f) in combos() {
        for flags in FLAG_SETS {
            // SAFETY: length zero: the functions must not access the (null) pointers.
            unsafe {
                memcpy_persist_with(c, f, null, null, 0, flags);
                memmove_persist_with(c, f, null, null, 0, flags);
                memset_persist_with(c, f, null, 0, 0, flags);
                persist::flush_range_with(f, null, 0);
            }
        }
    }
    // SAFETY: as above.
    unsafe {
        persist::persist_range(null, 0);
        copy_flushcache(null, null, 0);
    }
}

#[test]
fn unsupported_explicit_impl_falls_back_to_a_working_one() {
    // Whatever this CPU lacks is replaced by the detected implementation, so every
    // variant may be passed without checking support first.
    let src = pattern(1000 + 64, 10);
    let mut dst = Dst::new(1000);
    for c in CopyImpl::ALL {
        for f in FlushImpl::ALL {
            check_memcpy(c, f, PersistFlags::NONTEMPORAL, &mut dst, &src, 1, 2, 999);
        }
    }
}
