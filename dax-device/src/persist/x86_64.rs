//! x86-64 write-back instructions and non-temporal copy kernels.
//!
//! Layout of a non-temporal copy of `len` bytes to `dst`:
//!
//! ```text
//!  dst                 first 64-aligned byte                    last 64-aligned byte  dst+len
//!   |-- head piece (<64) --|====== body: whole lines, vector NT ======|-- tail piece (<64) --|
//! ```
//!
//! A piece lies inside one cache line. It is written with 8-byte `MOVNTI` stores when
//! both its ends are 8-byte aligned, otherwise with ordinary stores followed by a
//! write-back of its line (never a mix of both in one line: see [`piece_fwd`]). A
//! non-temporal store never leaves a dirty line in the cache, so after the copy no byte
//! of the destination is dirty in the caches; the caller's SFENCE then orders it all.
//!
//! Pieces and body are processed in address order (forward) or in reverse (backward,
//! for `memmove` with `dst` inside the source), and inside each step every source byte
//! is loaded before any destination byte of that step is stored, so overlapping moves
//! never read a byte they already overwrote.

use core::arch::asm;
use core::arch::x86_64::*;
use core::ptr;

use super::{CopyImpl, FlushImpl};

const LINE: usize = 64;

const CPU_CLFLUSH: u8 = 1;
const CPU_CLFLUSHOPT: u8 = 2;
const CPU_CLWB: u8 = 4;

/// CPUID bits for the write-back instructions (std's feature detection does not cover
/// them). Cached: CPUID traps to the hypervisor on VMs.
///
/// Under Miri, none: Miri cannot execute CPUID or the write-back instructions (inline
/// assembly), so every flush there is [`FlushImpl::None`]. The copy kernels that Miri
/// can interpret (SSE2 non-temporal stores, which it runs as ordinary stores) stay
/// selectable, so their pointer arithmetic is still checked.
#[cfg(miri)]
fn cpu_flush_bits() -> u8 {
    0
}

/// CPUID bits for the write-back instructions (std's feature detection does not cover
/// them). Cached: CPUID traps to the hypervisor on VMs.
#[cfg(not(miri))]
fn cpu_flush_bits() -> u8 {
    use std::sync::OnceLock;
    static BITS: OnceLock<u8> = OnceLock::new();
    *BITS.get_or_init(|| {
        let mut bits = 0;
        // CPUID leaf 1, EDX bit 19: CLFLUSH.
        let leaf1 = __cpuid(1);
        if leaf1.edx & (1 << 19) != 0 {
            bits |= CPU_CLFLUSH;
        }
        let max_leaf = __get_cpuid_max(0).0;
        if max_leaf >= 7 {
            // CPUID leaf 7 subleaf 0, EBX bit 23: CLFLUSHOPT; bit 24: CLWB.
            let leaf7 = __cpuid_count(7, 0);
            if leaf7.ebx & (1 << 23) != 0 {
                bits |= CPU_CLFLUSHOPT;
            }
            if leaf7.ebx & (1 << 24) != 0 {
                bits |= CPU_CLWB;
            }
        }
        bits
    })
}

pub(super) fn has_clflush() -> bool {
    cpu_flush_bits() & CPU_CLFLUSH != 0
}

pub(super) fn has_clflushopt() -> bool {
    cpu_flush_bits() & CPU_CLFLUSHOPT != 0
}

pub(super) fn has_clwb() -> bool {
    cpu_flush_bits() & CPU_CLWB != 0
}

#[inline]
pub(super) fn sfence() {
    // SAFETY: SFENCE (SSE) is part of the x86-64 baseline; it only orders stores.
    #[cfg(not(miri))]
    unsafe {
        _mm_sfence()
    };
    // Miri cannot run SFENCE (it has no shim for `llvm.x86.sse.sfence`); it runs
    // non-temporal stores as ordinary ones, which a `SeqCst` fence orders at least as
    // strongly as SFENCE orders the real ones.
    #[cfg(miri)]
    core::sync::atomic::fence(core::sync::atomic::Ordering::SeqCst);
}

/// Writes back every line overlapping `[addr, addr + len)` with `flush`.
///
/// # Safety
///
/// `len > 0`, the range lies in one mapped allocation, `flush` is supported.
#[inline]
pub(super) unsafe fn flush_lines(flush: FlushImpl, addr: *const u8, len: usize) {
    let misalign = addr as usize % LINE;
    // The range is inside one allocation, so `misalign + len` cannot overflow.
    let lines = (misalign + len).div_ceil(LINE);
    let first = addr.wrapping_sub(misalign);
    match flush {
        FlushImpl::Clwb => {
            for i in 0..lines {
                let p = first.wrapping_add(i * LINE);
                // SAFETY: `p` is the start of a line that overlaps the caller's mapped
                // range; CLWB is supported (caller). CLWB neither changes memory
                // contents nor flags; the asm is not `nomem`, so the compiler keeps
                // earlier stores before it.
                unsafe {
                    asm!("clwb byte ptr [{0}]", in(reg) p, options(nostack, preserves_flags))
                };
            }
        }
        FlushImpl::Clflushopt => {
            for i in 0..lines {
                let p = first.wrapping_add(i * LINE);
                // SAFETY: as for CLWB above, with CLFLUSHOPT supported (caller).
                unsafe {
                    asm!("clflushopt byte ptr [{0}]", in(reg) p, options(nostack, preserves_flags))
                };
            }
        }
        FlushImpl::Clflush => {
            for i in 0..lines {
                let p = first.wrapping_add(i * LINE);
                // SAFETY: as for CLWB above, with CLFLUSH supported (caller).
                unsafe {
                    asm!("clflush byte ptr [{0}]", in(reg) p, options(nostack, preserves_flags))
                };
            }
        }
        FlushImpl::None => {}
    }
}

/// Writes back the lines of `[p, p + n)` if `n > 0`.
///
/// # Safety
///
/// As for [`flush_lines`] except that `n` may be 0.
#[inline(always)]
unsafe fn flush_if(flush: FlushImpl, p: *const u8, n: usize) {
    if n != 0 {
        // SAFETY: forwarded contract, n > 0.
        unsafe { flush_lines(flush, p, n) }
    }
}

/// Whether a piece can be written with MOVNTI alone: both ends 8-byte aligned.
#[inline(always)]
fn movnti_fits(dst: *mut u8, n: usize) -> bool {
    (dst as usize | n).is_multiple_of(8)
}

/// One 8-byte non-temporal store (`MOVNTI`, `_mm_stream_si64`).
///
/// Under Miri an ordinary aligned store of the same word: std implements
/// `_mm_stream_si64` with inline assembly, which Miri cannot run. The bytes land where
/// the hardware puts them, so Miri still checks every address of the non-temporal
/// copy kernels (the AVX2 and AVX-512 bodies are never selected under Miri: it
/// reports only the target's baseline features, SSE2).
///
/// # Safety
///
/// `p` is 8-byte aligned and valid for an 8-byte write.
#[inline(always)]
unsafe fn movnti(p: *mut i64, v: i64) {
    // SAFETY: the caller's contract, which is `_mm_stream_si64`'s.
    #[cfg(not(miri))]
    unsafe {
        _mm_stream_si64(p, v)
    };
    // SAFETY: the caller's contract: aligned and valid for the write.
    #[cfg(miri)]
    unsafe {
        p.write(v)
    };
}

/// One 16-byte non-temporal store (`MOVNTDQ`, `_mm_stream_si128`).
///
/// Under Miri an ordinary aligned store of the same bytes, for the reason given at
/// [`movnti`].
///
/// # Safety
///
/// `p` is 16-byte aligned and valid for a 16-byte write.
#[inline(always)]
unsafe fn movntdq(p: *mut __m128i, v: __m128i) {
    // SAFETY: the caller's contract, which is `_mm_stream_si128`'s.
    #[cfg(not(miri))]
    unsafe {
        _mm_stream_si128(p, v)
    };
    // SAFETY: the caller's contract: aligned and valid for the write.
    #[cfg(miri)]
    unsafe {
        p.write(v)
    };
}

/// Ascending piece copy (a piece lies inside one cache line): MOVNTI if both ends are
/// 8-byte aligned, otherwise ordinary stores and a write-back of the line.
///
/// Mixing ordinary and non-temporal stores in one line is avoided on purpose: an
/// ordinary store to a line with pending write-combining data (or the reverse) makes
/// the CPU drain the write-combining buffer and re-read the line, which measured 2-3x
/// slower for short copies to unaligned destinations than writing the whole piece
/// with ordinary stores.
///
/// Out of line on purpose: only copies with a partial first or last line call it, and
/// keeping its `memmove` call and write-back loops out of [`copy_fwd_avx512`] keeps that
/// function's prologue short (see [`copy_fwd_avx512`] for why that matters).
///
/// # Safety
///
/// `src`/`dst` valid for `n` bytes; if they overlap, `dst <= src`; `flush` supported.
#[inline(never)]
unsafe fn piece_fwd(flush: FlushImpl, dst: *mut u8, src: *const u8, n: usize) {
    if movnti_fits(dst, n) {
        let mut off = 0;
        // SAFETY: offsets stay within `0..n`, valid for both ranges (caller); every
        // MOVNTI target `dst + off` is 8-aligned; each step loads its 8 source bytes
        // before storing, and ascending order never reads an overwritten byte when
        // `dst <= src`.
        unsafe {
            while off < n {
                let v = ptr::read_unaligned(src.add(off).cast::<i64>());
                movnti(dst.add(off).cast::<i64>(), v);
                off += 8;
            }
        }
    } else {
        // SAFETY: valid ranges (caller); `ptr::copy` allows overlap.
        unsafe {
            ptr::copy(src, dst, n);
            flush_if(flush, dst, n);
        }
    }
}

/// Descending piece copy: [`piece_fwd`] walking down, for `dst >= src`.
///
/// # Safety
///
/// `src`/`dst` valid for `n` bytes; if they overlap, `dst >= src`; `flush` supported.
#[inline(always)]
unsafe fn piece_bwd(flush: FlushImpl, dst: *mut u8, src: *const u8, n: usize) {
    if movnti_fits(dst, n) {
        let mut off = n;
        // SAFETY: as in `piece_fwd`, mirrored: descending order never reads an
        // overwritten byte when `dst >= src`.
        unsafe {
            while off > 0 {
                off -= 8;
                let v = ptr::read_unaligned(src.add(off).cast::<i64>());
                movnti(dst.add(off).cast::<i64>(), v);
            }
        }
    } else {
        // SAFETY: valid ranges (caller); `ptr::copy` allows overlap.
        unsafe {
            ptr::copy(src, dst, n);
            flush_if(flush, dst, n);
        }
    }
}

/// Fill counterpart of [`piece_fwd`].
///
/// # Safety
///
/// `dst` valid for `n` bytes of writes; `flush` supported.
#[inline(always)]
unsafe fn piece_set(flush: FlushImpl, dst: *mut u8, byte: u8, n: usize) {
    if movnti_fits(dst, n) {
        let word = i64::from_ne_bytes([byte; 8]);
        // SAFETY: offsets stay within `0..n` (valid, caller); targets are 8-aligned.
        unsafe {
            for off in (0..n).step_by(8) {
                movnti(dst.add(off).cast::<i64>(), word);
            }
        }
    } else {
        // SAFETY: `dst` valid for `n` bytes (caller).
        unsafe {
            ptr::write_bytes(dst, byte, n);
            flush_if(flush, dst, n);
        }
    }
}

/// Bytes from `dst` to its next 64-byte boundary, at most `len`.
#[inline(always)]
fn head_len(dst: *mut u8, len: usize) -> usize {
    len.min((LINE - dst as usize % LINE) % LINE)
}

/// Non-temporal copy in ascending order (memcpy, or memmove with `dst <= src`).
///
/// # Safety
///
/// `src`/`dst` valid for `len` bytes; if they overlap then `dst <= src`; `copy` is a
/// vector implementation and it and `flush` are supported by this CPU.
#[inline(always)]
pub(super) unsafe fn copy_nt_forward(
    copy: CopyImpl,
    flush: FlushImpl,
    dst: *mut u8,
    src: *const u8,
    len: usize,
) {
    // SAFETY: the caller's contract is the callees'; AVX-512F is supported when
    // `copy` is `Avx512` (caller).
    unsafe {
        if copy == CopyImpl::Avx512 {
            if (dst as usize | len).is_multiple_of(LINE) {
                // Whole lines only: straight to the kernel, no pieces.
                body_fwd_avx512(dst, src, len / LINE)
            } else {
                copy_fwd_avx512(flush, dst, src, len)
            }
        } else {
            copy_fwd_vec(copy, flush, dst, src, len)
        }
    }
}

/// [`copy_nt_forward`] for AVX2 and SSE2.
///
/// # Safety
///
/// As for [`copy_nt_forward`], and `copy` is `Avx2` or `Sse2`.
#[inline(never)]
unsafe fn copy_fwd_vec(copy: CopyImpl, flush: FlushImpl, dst: *mut u8, src: *const u8, len: usize) {
    let head = head_len(dst, len);
    let lines = (len - head) / LINE;
    let done = head + lines * LINE;
    // SAFETY: head, body and tail partition `0..len`; `dst + head` is 64-aligned as
    // the body kernels require; the ISA matches `copy`, which is supported (caller).
    unsafe {
        piece_fwd(flush, dst, src, head);
        let (d, s) = (dst.add(head), src.add(head));
        match copy {
            CopyImpl::Avx2 => body_fwd_avx2(d, s, lines),
            _ => body_fwd_sse2(d, s, lines),
        }
        piece_fwd(flush, dst.add(done), src.add(done), len - done);
    }
}

/// [`copy_nt_forward`] for [`CopyImpl::Avx512`] when the copy has a partial first or
/// last line: head piece, body and tail piece. Copies of whole lines to a 64-aligned
/// destination skip this and call [`body_fwd_avx512`] directly.
///
/// The fixed cost of a call matters for short copies. In a run of back-to-back
/// persistent copies, each copy's stores queue behind the previous copy's SFENCE, so
/// everything between entry and the first non-temporal store (register saves are
/// stores too) delays the copy: on the reference Cascade Lake VM, the former chain of
/// calls (out-of-line `copy_impl`/`flush_impl`, `copy_nt_forward`, the body kernel,
/// with their register saves) cost about 15-20 ns per 4 KiB copy (~3 %) against the
/// same loop called directly, and about 24 extra stack stores before the loop cost the
/// same. Hence: implementation lookups inline, and one call from `memcpy_persist` to
/// the kernel, a leaf function, whenever there are no pieces to write.
///
/// # Safety
///
/// As for [`copy_nt_forward`]; AVX-512F and `flush` are supported by this CPU.
#[target_feature(enable = "avx512f")]
#[inline(never)]
unsafe fn copy_fwd_avx512(flush: FlushImpl, dst: *mut u8, src: *const u8, len: usize) {
    let head = head_len(dst, len);
    let lines = (len - head) / LINE;
    let done = head + lines * LINE;
    // SAFETY: head, body and tail partition `0..len`; `dst + head` is 64-aligned as
    // the body kernel requires; AVX-512F is supported (caller); forward order keeps
    // overlapping moves with `dst <= src` correct (caller).
    unsafe {
        if head != 0 {
            piece_fwd(flush, dst, src, head);
        }
        body_fwd_avx512(dst.add(head), src.add(head), lines);
        if done != len {
            piece_fwd(flush, dst.add(done), src.add(done), len - done);
        }
    }
}

/// Non-temporal copy in descending order (memmove with `dst` inside the source).
///
/// # Safety
///
/// As for [`copy_nt_forward`], except that if the ranges overlap then `dst >= src`.
pub(super) unsafe fn copy_nt_backward(
    copy: CopyImpl,
    flush: FlushImpl,
    dst: *mut u8,
    src: *const u8,
    len: usize,
) {
    let head = head_len(dst, len);
    let lines = (len - head) / LINE;
    let done = head + lines * LINE;
    // SAFETY: as in `copy_nt_forward`, in reverse order.
    unsafe {
        piece_bwd(flush, dst.add(done), src.add(done), len - done);
        let (d, s) = (dst.add(head), src.add(head));
        match copy {
            CopyImpl::Avx512 => body_bwd_avx512(d, s, lines),
            CopyImpl::Avx2 => body_bwd_avx2(d, s, lines),
            _ => body_bwd_sse2(d, s, lines),
        }
        piece_bwd(flush, dst, src, head);
    }
}

/// Non-temporal fill.
///
/// # Safety
///
/// `dst` valid for `len` bytes of writes; `copy` is a vector implementation and it and
/// `flush` are supported by this CPU.
pub(super) unsafe fn set_nt(copy: CopyImpl, flush: FlushImpl, dst: *mut u8, byte: u8, len: usize) {
    let head = head_len(dst, len);
    let lines = (len - head) / LINE;
    let done = head + lines * LINE;
    // SAFETY: as in `copy_nt_forward`.
    unsafe {
        piece_set(flush, dst, byte, head);
        let d = dst.add(head);
        match copy {
            CopyImpl::Avx512 => body_set_avx512(d, byte, lines),
            CopyImpl::Avx2 => body_set_avx2(d, byte, lines),
            _ => body_set_sse2(d, byte, lines),
        }
        piece_set(flush, dst.add(done), byte, len - done);
    }
}

// Body kernels. Each moves `lines` whole 64-byte lines; `dst` is 64-aligned, `src` has
// any alignment. The main loop handles several lines per step (AVX-512: 8, AVX2: 4,
// SSE2: 2): all loads of the step, then all stores. Callers guarantee: `src` valid for
// reads and `dst` for writes of `lines * 64` bytes, overlap only in the direction the
// kernel walks, and the CPU supports the kernel's target feature.
//
// The AVX-512 intrinsics and `target_feature(enable = "avx512f")` are stable since
// Rust 1.89, the workspace's `rust-version`.

/// How far ahead of the loads the forward kernels prefetch the source, in lines.
/// Software prefetch matters for short copies from a cold source, where the hardware
/// prefetcher has not ramped up yet.
const PREFETCH_LINES: usize = 16;

/// The AVX-512 forward kernel prefetches (in its loop) only while it copies the first
/// this many lines (16 KiB) of the body; after that it relies on the hardware
/// prefetcher.
///
/// Measured on the reference Cascade Lake VM (`docs/benchmarks.md`): prefetching every
/// line of the whole copy made cold copies (source in memory) 5-10 % faster, but warm
/// copies whose source sits in L2 (64 KiB-1 MiB) about 2 % slower, which put them
/// below PMDK's loop (no software prefetch at all). Prefetching only the start keeps
/// almost all of the gain for short cold copies (the hardware streamer has not ramped
/// up there) and costs nothing measurable when the source is cached.
const PREFETCH_SPAN: usize = 256;

/// Prefetches source lines `from..to` (clamped to `lines`) into all cache levels.
#[inline(always)]
fn prefetch_lines(src: *const u8, from: usize, to: usize, lines: usize) {
    for k in from..to.min(lines) {
        // `wrapping_add`: the address is only a hint; PREFETCHT0 never faults.
        let p = src.wrapping_add(k * LINE).cast::<i8>();
        // SAFETY: PREFETCHT0 (SSE, x86-64 baseline) has no architectural effect and
        // does not fault on any address.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(p) };
    }
}

/// Moves 8 whole lines with AVX-512: all eight loads, then all eight stores.
///
/// # Safety
///
/// `src` valid for 512 bytes of reads, `dst` for 512 bytes of writes and 64-aligned;
/// if they overlap, `dst <= src`; AVX-512F supported.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn move8_avx512(dst: *mut u8, src: *const u8) {
    // SAFETY: every access is inside the 512 bytes (caller); stores are 64-aligned
    // because `dst` is; loads are unaligned loads and all precede the stores.
    unsafe {
        let r = [
            _mm512_loadu_si512(src.cast()),
            _mm512_loadu_si512(src.add(64).cast()),
            _mm512_loadu_si512(src.add(128).cast()),
            _mm512_loadu_si512(src.add(192).cast()),
            _mm512_loadu_si512(src.add(256).cast()),
            _mm512_loadu_si512(src.add(320).cast()),
            _mm512_loadu_si512(src.add(384).cast()),
            _mm512_loadu_si512(src.add(448).cast()),
        ];
        for (k, v) in r.into_iter().enumerate() {
            _mm512_stream_si512(dst.add(k * LINE).cast(), v);
        }
    }
}

/// # Safety
///
/// See the comment above the body kernels.
#[target_feature(enable = "avx512f")]
unsafe fn body_fwd_avx512(dst: *mut u8, src: *const u8, lines: usize) {
    let mut i = 0;
    prefetch_lines(src, 0, PREFETCH_LINES, lines);
    // The prefetching loop runs while the block it prefetches (lines
    // `i + PREFETCH_LINES .. i + PREFETCH_LINES + 8`) lies inside the source and
    // inside the first `PREFETCH_SPAN + PREFETCH_LINES` lines; the plain loop finishes.
    let pf_end = lines.min(PREFETCH_SPAN + PREFETCH_LINES);
    // SAFETY: every access is inside `0..lines * 64` of `src`/`dst` (caller): the
    // loops move lines `i..i + 8` only while `i + 8 <= lines`, then single lines
    // below `lines`; `dst + i * 64` stays 64-aligned; AVX-512F is supported (caller).
    // Ascending order: with overlap `dst <= src` (caller), no line is read after it
    // was overwritten. Prefetches are hints and never fault.
    unsafe {
        while i + PREFETCH_LINES + 8 <= pf_end {
            move8_avx512(dst.add(i * LINE), src.add(i * LINE));
            let p = src.add((i + PREFETCH_LINES) * LINE);
            for k in 0..8 {
                _mm_prefetch::<_MM_HINT_T0>(p.add(k * LINE).cast());
            }
            i += 8;
        }
        while lines - i >= 8 {
            move8_avx512(dst.add(i * LINE), src.add(i * LINE));
            i += 8;
        }
        while i < lines {
            let a = _mm512_loadu_si512(src.add(i * LINE).cast());
            _mm512_stream_si512(dst.add(i * LINE).cast(), a);
            i += 1;
        }
    }
}

/// # Safety
///
/// See the comment above the body kernels.
#[target_feature(enable = "avx512f")]
unsafe fn body_bwd_avx512(dst: *mut u8, src: *const u8, lines: usize) {
    let mut i = lines;
    // SAFETY: as in `body_fwd_avx512`; indices walk down from `lines` to 0.
    unsafe {
        while i >= 4 {
            i -= 4;
            let s = src.add(i * LINE);
            let d = dst.add(i * LINE);
            let e = _mm512_loadu_si512(s.add(192).cast());
            let c = _mm512_loadu_si512(s.add(128).cast());
            let b = _mm512_loadu_si512(s.add(64).cast());
            let a = _mm512_loadu_si512(s.cast());
            _mm512_stream_si512(d.add(192).cast(), e);
            _mm512_stream_si512(d.add(128).cast(), c);
            _mm512_stream_si512(d.add(64).cast(), b);
            _mm512_stream_si512(d.cast(), a);
        }
        while i > 0 {
            i -= 1;
            let a = _mm512_loadu_si512(src.add(i * LINE).cast());
            _mm512_stream_si512(dst.add(i * LINE).cast(), a);
        }
    }
}

/// # Safety
///
/// See the comment above the body kernels.
#[target_feature(enable = "avx512f")]
unsafe fn body_set_avx512(dst: *mut u8, byte: u8, lines: usize) {
    let v = _mm512_set1_epi8(byte as i8);
    // SAFETY: every store is inside `0..lines * 64` of `dst` (caller), 64-aligned.
    unsafe {
        for i in 0..lines {
            _mm512_stream_si512(dst.add(i * LINE).cast(), v);
        }
    }
}

/// # Safety
///
/// See the comment above the body kernels.
#[target_feature(enable = "avx2")]
unsafe fn body_fwd_avx2(dst: *mut u8, src: *const u8, lines: usize) {
    let mut i = 0;
    prefetch_lines(src, 0, PREFETCH_LINES, lines);
    // SAFETY: every access is inside `0..lines * 64` (caller); stores are 32-aligned
    // because `dst` is 64-aligned; loads are unaligned loads.
    unsafe {
        while lines - i >= 4 {
            prefetch_lines(src, i + PREFETCH_LINES, i + PREFETCH_LINES + 4, lines);
            let s = src.add(i * LINE).cast::<__m256i>();
            let d = dst.add(i * LINE).cast::<__m256i>();
            let r = [
                _mm256_loadu_si256(s),
                _mm256_loadu_si256(s.add(1)),
                _mm256_loadu_si256(s.add(2)),
                _mm256_loadu_si256(s.add(3)),
                _mm256_loadu_si256(s.add(4)),
                _mm256_loadu_si256(s.add(5)),
                _mm256_loadu_si256(s.add(6)),
                _mm256_loadu_si256(s.add(7)),
            ];
            for (k, v) in r.into_iter().enumerate() {
                _mm256_stream_si256(d.add(k), v);
            }
            i += 4;
        }
        while i < lines {
            let s = src.add(i * LINE).cast::<__m256i>();
            let d = dst.add(i * LINE).cast::<__m256i>();
            let a = _mm256_loadu_si256(s);
            let b = _mm256_loadu_si256(s.add(1));
            _mm256_stream_si256(d, a);
            _mm256_stream_si256(d.add(1), b);
            i += 1;
        }
    }
}

/// # Safety
///
/// See the comment above the body kernels.
#[target_feature(enable = "avx2")]
unsafe fn body_bwd_avx2(dst: *mut u8, src: *const u8, lines: usize) {
    let mut i = lines;
    // SAFETY: as in `body_fwd_avx2`; indices walk down from `lines` to 0.
    unsafe {
        while i >= 4 {
            i -= 4;
            let s = src.add(i * LINE).cast::<__m256i>();
            let d = dst.add(i * LINE).cast::<__m256i>();
            let r = [
                _mm256_loadu_si256(s.add(7)),
                _mm256_loadu_si256(s.add(6)),
                _mm256_loadu_si256(s.add(5)),
                _mm256_loadu_si256(s.add(4)),
                _mm256_loadu_si256(s.add(3)),
                _mm256_loadu_si256(s.add(2)),
                _mm256_loadu_si256(s.add(1)),
                _mm256_loadu_si256(s),
            ];
            for (k, v) in r.into_iter().enumerate() {
                _mm256_stream_si256(d.add(7 - k), v);
            }
        }
        while i > 0 {
            i -= 1;
            let s = src.add(i * LINE).cast::<__m256i>();
            let d = dst.add(i * LINE).cast::<__m256i>();
            let b = _mm256_loadu_si256(s.add(1));
            let a = _mm256_loadu_si256(s);
            _mm256_stream_si256(d.add(1), b);
            _mm256_stream_si256(d, a);
        }
    }
}

/// # Safety
///
/// See the comment above the body kernels.
#[target_feature(enable = "avx2")]
unsafe fn body_set_avx2(dst: *mut u8, byte: u8, lines: usize) {
    let v = _mm256_set1_epi8(byte as i8);
    // SAFETY: every store is inside `0..lines * 64` of `dst` (caller), 32-aligned.
    unsafe {
        for i in 0..lines {
            let d = dst.add(i * LINE).cast::<__m256i>();
            _mm256_stream_si256(d, v);
            _mm256_stream_si256(d.add(1), v);
        }
    }
}

/// # Safety
///
/// See the comment above the body kernels.
#[target_feature(enable = "sse2")]
unsafe fn body_fwd_sse2(dst: *mut u8, src: *const u8, lines: usize) {
    let mut i = 0;
    prefetch_lines(src, 0, PREFETCH_LINES, lines);
    // SAFETY: every access is inside `0..lines * 64` (caller); stores are 16-aligned
    // because `dst` is 64-aligned; loads are unaligned loads.
    unsafe {
        while lines - i >= 2 {
            prefetch_lines(src, i + PREFETCH_LINES, i + PREFETCH_LINES + 2, lines);
            let s = src.add(i * LINE).cast::<__m128i>();
            let d = dst.add(i * LINE).cast::<__m128i>();
            let r = [
                _mm_loadu_si128(s),
                _mm_loadu_si128(s.add(1)),
                _mm_loadu_si128(s.add(2)),
                _mm_loadu_si128(s.add(3)),
                _mm_loadu_si128(s.add(4)),
                _mm_loadu_si128(s.add(5)),
                _mm_loadu_si128(s.add(6)),
                _mm_loadu_si128(s.add(7)),
            ];
            for (k, v) in r.into_iter().enumerate() {
                movntdq(d.add(k), v);
            }
            i += 2;
        }
        while i < lines {
            let s = src.add(i * LINE).cast::<__m128i>();
            let d = dst.add(i * LINE).cast::<__m128i>();
            let r = [
                _mm_loadu_si128(s),
                _mm_loadu_si128(s.add(1)),
                _mm_loadu_si128(s.add(2)),
                _mm_loadu_si128(s.add(3)),
            ];
            for (k, v) in r.into_iter().enumerate() {
                movntdq(d.add(k), v);
            }
            i += 1;
        }
    }
}

/// # Safety
///
/// See the comment above the body kernels.
#[target_feature(enable = "sse2")]
unsafe fn body_bwd_sse2(dst: *mut u8, src: *const u8, lines: usize) {
    let mut i = lines;
    // SAFETY: as in `body_fwd_sse2`; indices walk down from `lines` to 0. One line per
    // step: all four loads of the line precede its stores.
    unsafe {
        while i > 0 {
            i -= 1;
            let s = src.add(i * LINE).cast::<__m128i>();
            let d = dst.add(i * LINE).cast::<__m128i>();
            let r = [
                _mm_loadu_si128(s.add(3)),
                _mm_loadu_si128(s.add(2)),
                _mm_loadu_si128(s.add(1)),
                _mm_loadu_si128(s),
            ];
            for (k, v) in r.into_iter().enumerate() {
                movntdq(d.add(3 - k), v);
            }
        }
    }
}

/// # Safety
///
/// See the comment above the body kernels.
#[target_feature(enable = "sse2")]
unsafe fn body_set_sse2(dst: *mut u8, byte: u8, lines: usize) {
    let v = _mm_set1_epi8(byte as i8);
    // SAFETY: every store is inside `0..lines * 64` of `dst` (caller), 16-aligned.
    unsafe {
        for i in 0..lines {
            let d = dst.add(i * LINE).cast::<__m128i>();
            movntdq(d, v);
            movntdq(d.add(1), v);
            movntdq(d.add(2), v);
            movntdq(d.add(3), v);
        }
    }
}
