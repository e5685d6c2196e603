//! Cache write-back and persistent copies.
//!
//! This module is the userspace counterpart of the kernel's pmem data-movement
//! helpers and of libpmem2's copy functions:
//!
//! | here | kernel | libpmem2 / libpmem |
//! |---|---|---|
//! | [`flush_range`] | `arch_wb_cache_pmem` / `clean_cache_range` (x86) | `pmem2_flush_fn` / `pmem_flush` |
//! | [`drain`] | `pmem_wmb` / `wmb` after a flushcache copy | `pmem2_drain_fn` / `pmem_drain` |
//! | [`persist_range`] | `dax_flush` followed by a store fence | `pmem2_persist_fn` / `pmem_persist` |
//! | [`memcpy_persist`] | `memcpy_flushcache` + fence | `pmem2_memcpy_fn` / `pmem_memcpy` |
//! | [`memmove_persist`] | — | `pmem2_memmove_fn` / `pmem_memmove` |
//! | [`memset_persist`] | — | `pmem2_memset_fn` / `pmem_memset` |
//! | [`copy_flushcache`] | `memcpy_flushcache` (the `dax_copy_from_iter` NOCACHE path) | `pmem_memcpy_nodrain` with `NONTEMPORAL` |
//! | [`PersistFlags`] | — | `PMEM2_F_MEM_*` (same bit values) |
//!
//! The kernel's `copy_mc_to_kernel` (machine-check-safe reads from poisoned media) is
//! not here: recovering from a poisoned load in userspace needs a SIGBUS handler and
//! lives with the fault machinery.
//!
//! # Why these functions are `unsafe`
//!
//! They work on raw pointers into device memory: persistent memory, CXL memory, or a
//! `MAP_SHARED` file mapping that other threads, processes or mappings may read and
//! write at the same time. No `&[u8]` is ever formed over that memory (a reference
//! would promise the compiler that nobody else changes it). The caller therefore has to
//! promise what the type system cannot check:
//!
//! * every pointer is valid for the whole length (`dst` for writes, `src` for reads),
//!   i.e. it points into one mapped allocation that stays mapped for the duration of
//!   the call;
//! * for [`memcpy_persist`] and [`copy_flushcache`], the two ranges do not overlap
//!   ([`memmove_persist`] allows overlap);
//! * any concurrent access to the destination by others is the caller's protocol to
//!   arrange (as for the kernel's pmem driver): these functions make no promise about
//!   what a concurrent reader observes mid-copy, only about the bytes after return.
//!
//! A length of zero never touches memory; the pointers may then be dangling or null.
//!
//! # Implementations and run-time selection
//!
//! The write-back instruction ([`FlushImpl`]: CLWB, CLFLUSHOPT, CLFLUSH, or none) and
//! the copy kernel ([`CopyImpl`]: AVX-512, AVX2, SSE2 non-temporal stores, or a
//! portable `memcpy` + write-back) are detected once, on first use, from CPUID and
//! cached. Two environment variables, read once at that moment, override the choice:
//!
//! * `DAX_RS_COPY_IMPL` = `avx512` | `avx2` | `sse2` | `portable`
//! * `DAX_RS_FLUSH_IMPL` = `clwb` | `clflushopt` | `clflush` | `none`
//!
//! Names are case-insensitive. An unknown name, or one the CPU cannot execute, is
//! ignored and the detected best is used. `none` is always accepted: it turns cache
//! write-back off, which is only correct on platforms whose CPU caches are in the
//! persistence domain (eADR) or for memory that is not persistent at all.
//!
//! Every `*_with` function takes the implementations explicitly (tests use them to run
//! every path the CPU has); all paths write identical bytes.
//!
//! On targets other than x86-64 only [`CopyImpl::Portable`] and [`FlushImpl::None`]
//! exist: [`flush_range`] is then a no-op and [`drain`] a full `fence(SeqCst)`, which
//! orders stores but does not write back caches.
//!
//! Under Miri (which interprets the code and cannot execute CPUID, `CLWB`/`CLFLUSHOPT`/
//! `CLFLUSH` or `SFENCE`) the flush is always [`FlushImpl::None`] and [`drain`] is a
//! `fence(SeqCst)`; the copy kernels whose intrinsics Miri implements (SSE2
//! non-temporal stores, run as ordinary stores) are still selected, so Miri checks
//! their pointer arithmetic and bounds. The bytes written are the same, as on every
//! path.
//!
//! # Example
//!
//! ```
//! use dax_device::persist::{self, PersistFlags};
//!
//! let src = *b"write-ahead log record";
//! let mut device = vec![0u8; 4096]; // stands in for a mapping of persistent memory
//! let dst = device.as_mut_ptr();
//! // SAFETY: `dst` is valid for 4096 bytes and `src` for its length; the ranges are
//! // distinct allocations and nothing else accesses them during the call.
//! unsafe { persist::memcpy_persist(dst.add(100), src.as_ptr(), src.len(), PersistFlags::empty()) };
//! assert_eq!(&device[100..100 + src.len()], &src);
//!
//! // Batch several copies and fence once, as with PMEM2_F_MEM_NODRAIN.
//! // SAFETY: as above; memset writes 64 bytes inside the 4096.
//! unsafe { persist::memset_persist(dst, 0xff, 64, PersistFlags::NODRAIN) };
//! persist::drain();
//! assert!(device[..64].iter().all(|&b| b == 0xff));
//! ```

use core::fmt;
use core::ptr;
use core::str::FromStr;
use core::sync::atomic::{AtomicU8, Ordering};

#[cfg(target_arch = "x86_64")]
mod x86_64;

/// Copies and fills of at least this many bytes to a 64-byte-aligned destination use
/// non-temporal stores when the caller leaves the choice to the implementation (no
/// `TEMPORAL`/`WB`/`NONTEMPORAL`/`WC` flag); shorter ones use ordinary stores followed
/// by a cache write-back.
///
/// This plays the role of libpmem's `Movnt_threshold` (256 there too, tunable with
/// `PMEM_MOVNT_THRESHOLD`). Chosen by measurement on a Cascade Lake VM (see
/// `docs/benchmarks.md`): every persistent copy pays one store-fence round trip to
/// memory (~180-200 ns there), and below about 128-256 bytes ordinary stores plus CLWB
/// and non-temporal stores cost the same; from 256 bytes non-temporal stores win.
pub const MOVNT_THRESHOLD: usize = 256;

/// [`MOVNT_THRESHOLD`] for destinations that do not start on a 64-byte boundary.
///
/// A non-temporal copy to such a destination writes its partial first and last lines
/// with ordinary stores and writes them back, so it needs a longer body to pay off:
/// ordinary stores plus write-back measured faster up to about 512 bytes.
pub const MOVNT_THRESHOLD_UNALIGNED: usize = 512;

/// The cache-line size the write-back and copy loops assume (64 bytes on every x86-64).
pub const CACHE_LINE: usize = 64;

bitflags::bitflags! {
    /// How [`memcpy_persist`], [`memmove_persist`] and [`memset_persist`] store and
    /// persist: libpmem2's `PMEM2_F_MEM_*` flags, with the same bit values.
    ///
    /// With no store-kind flag (`TEMPORAL`, `WB`, `NONTEMPORAL`, `WC`), the
    /// implementation chooses by size: below [`MOVNT_THRESHOLD`] (or
    /// [`MOVNT_THRESHOLD_UNALIGNED`] when the destination is not 64-byte aligned)
    /// ordinary stores plus write-back, at or above it non-temporal stores. When flags conflict, the
    /// precedence is libpmem2's: `NOFLUSH`, then `NONTEMPORAL`/`WC`, then
    /// `TEMPORAL`/`WB`. All flags write identical bytes; they only change how the
    /// bytes leave the CPU caches.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct PersistFlags: u32 {
        /// `PMEM2_F_MEM_NODRAIN`: skip the final store fence ([`drain`]); the caller
        /// drains later, typically once after several copies.
        const NODRAIN = 1 << 0;
        /// `PMEM2_F_MEM_NONTEMPORAL`: use non-temporal stores (they bypass the caches),
        /// whatever the size. Partially covered first and last cache lines are still
        /// written with ordinary stores and written back.
        const NONTEMPORAL = 1 << 1;
        /// `PMEM2_F_MEM_TEMPORAL`: use ordinary (cached) stores followed by a cache
        /// write-back of the destination, whatever the size.
        const TEMPORAL = 1 << 2;
        /// `PMEM2_F_MEM_WC`: hint that the destination is write-combining memory;
        /// handled like `NONTEMPORAL`.
        const WC = 1 << 3;
        /// `PMEM2_F_MEM_WB`: hint that the destination is write-back cached memory;
        /// handled like `TEMPORAL`.
        const WB = 1 << 4;
        /// `PMEM2_F_MEM_NOFLUSH`: ordinary stores and no cache write-back at all; the
        /// caller handles flushing. Only meaningful where the CPU caches are in the
        /// persistence domain (eADR-like platforms) or the caller flushes itself.
        const NOFLUSH = 1 << 5;
    }
}

/// Error from parsing a [`FlushImpl`] or [`CopyImpl`] name (for example the value of
/// `DAX_RS_FLUSH_IMPL` / `DAX_RS_COPY_IMPL`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} implementation {name:?} (expected one of: {expected})")]
pub struct ParseImplError {
    /// Which enum was being parsed (`"flush"` or `"copy"`).
    pub kind: &'static str,
    /// The rejected name.
    pub name: String,
    /// The accepted names, comma separated.
    pub expected: &'static str,
}

/// Which instruction writes dirty cache lines back to memory (the kernel's
/// `clean_cache_range` picks CLWB, else CLFLUSHOPT; libpmem2's `flush_clwb`,
/// `flush_clflushopt`, `flush_clflush`).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FlushImpl {
    /// CLWB: write back, the line may stay cached (some CPUs, e.g. Cascade Lake,
    /// still evict it). Weakly ordered; [`drain`] orders it.
    Clwb,
    /// CLFLUSHOPT: write back and invalidate. Weakly ordered; [`drain`] orders it.
    Clflushopt,
    /// CLFLUSH: write back and invalidate, ordered with other stores (slowest).
    Clflush,
    /// No write-back instruction: on non-x86 targets, or chosen for eADR platforms
    /// where the caches are persistent.
    None,
}

impl FlushImpl {
    /// Every variant, best first.
    pub const ALL: [FlushImpl; 4] = [
        FlushImpl::Clwb,
        FlushImpl::Clflushopt,
        FlushImpl::Clflush,
        FlushImpl::None,
    ];

    /// The name used by `DAX_RS_FLUSH_IMPL` and [`FromStr`].
    pub fn name(self) -> &'static str {
        match self {
            FlushImpl::Clwb => "clwb",
            FlushImpl::Clflushopt => "clflushopt",
            FlushImpl::Clflush => "clflush",
            FlushImpl::None => "none",
        }
    }

    /// Whether this CPU can execute this implementation (`None` always can).
    pub fn is_supported(self) -> bool {
        match self {
            FlushImpl::None => true,
            #[cfg(target_arch = "x86_64")]
            FlushImpl::Clwb => x86_64::has_clwb(),
            #[cfg(target_arch = "x86_64")]
            FlushImpl::Clflushopt => x86_64::has_clflushopt(),
            #[cfg(target_arch = "x86_64")]
            FlushImpl::Clflush => x86_64::has_clflush(),
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// The implementation detection picks when `DAX_RS_FLUSH_IMPL` has the value
    /// `env` (`None`: unset): the named one if it parses and the CPU supports it,
    /// otherwise the best supported one. [`flush_impl`] is this applied to the real
    /// environment, once.
    pub fn detect_with(env: Option<&str>) -> FlushImpl {
        if let Some(requested) = env.and_then(|v| v.parse::<FlushImpl>().ok())
            && requested.is_supported()
        {
            return requested;
        }
        Self::ALL
            .into_iter()
            .find(|f| f.is_supported())
            .unwrap_or(FlushImpl::None)
    }

    fn to_u8(self) -> u8 {
        match self {
            FlushImpl::Clwb => 1,
            FlushImpl::Clflushopt => 2,
            FlushImpl::Clflush => 3,
            FlushImpl::None => 4,
        }
    }

    #[inline]
    fn from_u8(v: u8) -> Option<FlushImpl> {
        Some(match v {
            1 => FlushImpl::Clwb,
            2 => FlushImpl::Clflushopt,
            3 => FlushImpl::Clflush,
            4 => FlushImpl::None,
            _ => return None,
        })
    }
}

impl fmt::Display for FlushImpl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for FlushImpl {
    type Err = ParseImplError;

    /// Parses `clwb`, `clflushopt`, `clflush` or `none`, ignoring case and surrounding
    /// white space.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        Self::ALL
            .into_iter()
            .find(|f| f.name().eq_ignore_ascii_case(t))
            .ok_or_else(|| ParseImplError {
                kind: "flush",
                name: s.to_owned(),
                expected: "clwb, clflushopt, clflush, none",
            })
    }
}

/// Which kernel moves the bytes of a non-temporal copy or fill (libpmem2's
/// `memmove_movnt_{avx512f,avx,sse2}`; the kernel's `__memcpy_flushcache`).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CopyImpl {
    /// 64-byte `vmovntdq zmm` stores (AVX-512F).
    Avx512,
    /// 32-byte `vmovntdq ymm` stores (AVX2).
    Avx2,
    /// 16-byte `movntdq xmm` stores (SSE2, every x86-64).
    Sse2,
    /// No non-temporal stores: ordinary `memcpy`/`memset` followed by
    /// [`flush_range`]. The only choice on non-x86 targets.
    Portable,
}

impl CopyImpl {
    /// Every variant, best first.
    pub const ALL: [CopyImpl; 4] = [
        CopyImpl::Avx512,
        CopyImpl::Avx2,
        CopyImpl::Sse2,
        CopyImpl::Portable,
    ];

    /// The name used by `DAX_RS_COPY_IMPL` and [`FromStr`].
    pub fn name(self) -> &'static str {
        match self {
            CopyImpl::Avx512 => "avx512",
            CopyImpl::Avx2 => "avx2",
            CopyImpl::Sse2 => "sse2",
            CopyImpl::Portable => "portable",
        }
    }

    /// Whether this CPU can execute this implementation (`Portable` always can).
    pub fn is_supported(self) -> bool {
        match self {
            CopyImpl::Portable => true,
            #[cfg(target_arch = "x86_64")]
            CopyImpl::Avx512 => std::arch::is_x86_feature_detected!("avx512f"),
            #[cfg(target_arch = "x86_64")]
            CopyImpl::Avx2 => std::arch::is_x86_feature_detected!("avx2"),
            #[cfg(target_arch = "x86_64")]
            CopyImpl::Sse2 => std::arch::is_x86_feature_detected!("sse2"),
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// The implementation detection picks when `DAX_RS_COPY_IMPL` has the value `env`
    /// (`None`: unset): the named one if it parses and the CPU supports it, otherwise
    /// the best supported one. [`copy_impl`] is this applied to the real environment,
    /// once.
    pub fn detect_with(env: Option<&str>) -> CopyImpl {
        if let Some(requested) = env.and_then(|v| v.parse::<CopyImpl>().ok())
            && requested.is_supported()
        {
            return requested;
        }
        Self::ALL
            .into_iter()
            .find(|c| c.is_supported())
            .unwrap_or(CopyImpl::Portable)
    }

    fn to_u8(self) -> u8 {
        match self {
            CopyImpl::Avx512 => 1,
            CopyImpl::Avx2 => 2,
            CopyImpl::Sse2 => 3,
            CopyImpl::Portable => 4,
        }
    }

    #[inline]
    fn from_u8(v: u8) -> Option<CopyImpl> {
        Some(match v {
            1 => CopyImpl::Avx512,
            2 => CopyImpl::Avx2,
            3 => CopyImpl::Sse2,
            4 => CopyImpl::Portable,
            _ => return None,
        })
    }
}

impl fmt::Display for CopyImpl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for CopyImpl {
    type Err = ParseImplError;

    /// Parses `avx512`, `avx2`, `sse2` or `portable`, ignoring case and surrounding
    /// white space.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        Self::ALL
            .into_iter()
            .find(|c| c.name().eq_ignore_ascii_case(t))
            .ok_or_else(|| ParseImplError {
                kind: "copy",
                name: s.to_owned(),
                expected: "avx512, avx2, sse2, portable",
            })
    }
}

static FLUSH_IMPL: AtomicU8 = AtomicU8::new(0);
static COPY_IMPL: AtomicU8 = AtomicU8::new(0);

/// The cache write-back implementation in use: detected on first call (honouring
/// `DAX_RS_FLUSH_IMPL`, see the [module docs](self)) and cached. This is the choice the
/// kernel makes with alternatives patching in `clean_cache_range`, and libpmem2 in
/// `pmem2_arch_init`.
///
/// After the first call this is one relaxed byte load (inlined into callers); the
/// detection itself is out of line.
#[inline]
pub fn flush_impl() -> FlushImpl {
    match FlushImpl::from_u8(FLUSH_IMPL.load(Ordering::Relaxed)) {
        Some(f) => f,
        None => detect_flush_impl(),
    }
}

#[cold]
#[inline(never)]
fn detect_flush_impl() -> FlushImpl {
    let env = std::env::var("DAX_RS_FLUSH_IMPL").ok();
    let f = FlushImpl::detect_with(env.as_deref());
    // Racing first callers compute the same value; any of them may win.
    FLUSH_IMPL.store(f.to_u8(), Ordering::Relaxed);
    f
}

/// The copy implementation in use: detected on first call (honouring
/// `DAX_RS_COPY_IMPL`, see the [module docs](self)) and cached.
///
/// After the first call this is one relaxed byte load (inlined into callers); the
/// detection itself is out of line.
#[inline]
pub fn copy_impl() -> CopyImpl {
    match CopyImpl::from_u8(COPY_IMPL.load(Ordering::Relaxed)) {
        Some(c) => c,
        None => detect_copy_impl(),
    }
}

#[cold]
#[inline(never)]
fn detect_copy_impl() -> CopyImpl {
    let env = std::env::var("DAX_RS_COPY_IMPL").ok();
    let c = CopyImpl::detect_with(env.as_deref());
    COPY_IMPL.store(c.to_u8(), Ordering::Relaxed);
    c
}

/// `flush` if this CPU can run it, otherwise the detected one (so a `*_with` call never
/// executes an unsupported instruction).
fn usable_flush(flush: FlushImpl) -> FlushImpl {
    if flush == flush_impl() || flush.is_supported() {
        flush
    } else {
        flush_impl()
    }
}

/// `copy` if this CPU can run it, otherwise the detected one.
fn usable_copy(copy: CopyImpl) -> CopyImpl {
    if copy == copy_impl() || copy.is_supported() {
        copy
    } else {
        copy_impl()
    }
}

/// Writes back every cache line overlapping `[addr, addr + len)`, including partially
/// covered first and last lines, with the detected [`FlushImpl`]; no fence. The
/// kernel's `arch_wb_cache_pmem` (`clean_cache_range` on x86), libpmem2's
/// `pmem2_flush_fn`.
///
/// On targets without a write-back instruction this does nothing.
///
/// # Safety
///
/// `[addr, addr + len)` must lie inside one mapped allocation (its lines are not read
/// or written, but the write-back instructions fault on unmapped addresses). `len == 0`
/// touches nothing.
pub unsafe fn flush_range(addr: *const u8, len: usize) {
    // SAFETY: the caller's contract is ours; `flush_impl()` is supported by this CPU.
    unsafe { flush_range_raw(flush_impl(), addr, len) }
}

/// [`flush_range`] with an explicit implementation; an implementation this CPU does
/// not support is replaced by the detected one.
///
/// # Safety
///
/// As for [`flush_range`].
pub unsafe fn flush_range_with(flush: FlushImpl, addr: *const u8, len: usize) {
    // SAFETY: the caller's contract is ours; `usable_flush` returns a supported one.
    unsafe { flush_range_raw(usable_flush(flush), addr, len) }
}

/// # Safety
///
/// As for [`flush_range`], and `flush` must be supported by this CPU.
#[inline]
unsafe fn flush_range_raw(flush: FlushImpl, addr: *const u8, len: usize) {
    if len == 0 {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    // SAFETY: the range is mapped (caller) and `flush` is supported (caller).
    unsafe {
        x86_64::flush_lines(flush, addr, len)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (flush, addr);
}

/// Store fence: waits until earlier cache write-backs and non-temporal stores have
/// reached the persistence domain. `SFENCE` on x86-64 (the kernel's `pmem_wmb` after
/// `arch_wb_cache_pmem`, libpmem2's `pmem2_drain_fn`); a full `fence(SeqCst)`
/// elsewhere, and under Miri, which cannot run `SFENCE`.
#[inline]
pub fn drain() {
    #[cfg(target_arch = "x86_64")]
    x86_64::sfence();
    #[cfg(not(target_arch = "x86_64"))]
    core::sync::atomic::fence(Ordering::SeqCst);
}

/// [`flush_range`] followed by [`drain`]: on return the range's bytes have left the
/// CPU caches. libpmem2's `pmem2_persist_fn`, libpmem's `pmem_persist`.
///
/// # Safety
///
/// As for [`flush_range`].
pub unsafe fn persist_range(addr: *const u8, len: usize) {
    // SAFETY: same contract.
    unsafe { flush_range(addr, len) };
    drain();
}

/// How one call moves its bytes, after flags, size and implementation are considered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Ordinary stores, no write-back (`NOFLUSH`).
    NoFlush,
    /// Ordinary stores, then write-back.
    Temporal,
    /// Non-temporal stores, partial lines with ordinary stores + write-back.
    NonTemporal,
}

fn choose_mode(copy: CopyImpl, flags: PersistFlags, dst: *const u8, len: usize) -> Mode {
    let threshold = if (dst as usize).is_multiple_of(CACHE_LINE) {
        MOVNT_THRESHOLD
    } else {
        MOVNT_THRESHOLD_UNALIGNED
    };
    if flags.contains(PersistFlags::NOFLUSH) {
        Mode::NoFlush
    } else if copy == CopyImpl::Portable {
        Mode::Temporal
    } else if flags.intersects(PersistFlags::NONTEMPORAL | PersistFlags::WC) {
        Mode::NonTemporal
    } else if flags.intersects(PersistFlags::TEMPORAL | PersistFlags::WB) || len < threshold {
        Mode::Temporal
    } else {
        Mode::NonTemporal
    }
}

/// Copies `len` bytes from `src` to `dst` and makes them persistent: on return (unless
/// `NODRAIN`) the bytes are in `dst` and have left the CPU caches, and a store fence
/// has been issued. libpmem2's `pmem2_memcpy_fn`, libpmem's `pmem_memcpy`; with
/// `NONTEMPORAL | NODRAIN` the kernel's `memcpy_flushcache` (see [`copy_flushcache`]).
///
/// Large copies use 64-byte-aligned non-temporal vector stores for the body, 8-byte
/// `MOVNTI` stores for partial first and last lines whose ends are 8-byte aligned, and
/// ordinary stores plus write-back for other partial lines; copies below
/// [`MOVNT_THRESHOLD`] use ordinary stores plus write-back (see [`PersistFlags`]).
///
/// # Safety
///
/// * `src` must be valid for reads of `len` bytes and `dst` for writes of `len` bytes,
///   each inside one mapped allocation;
/// * the two ranges must not overlap (use [`memmove_persist`] otherwise).
///
/// `len == 0` touches neither pointer.
pub unsafe fn memcpy_persist(dst: *mut u8, src: *const u8, len: usize, flags: PersistFlags) {
    // The common case (implementations already detected) is kept free of calls other
    // than the copy kernel itself: every instruction between entry and the first
    // non-temporal store costs time in back-to-back copies (see `x86_64.rs`,
    // `copy_fwd_avx512`).
    match cached_impls() {
        // SAFETY: the caller's contract is ours; cached implementations were detected
        // as supported.
        Some((copy, flush)) => unsafe { copy_raw(copy, flush, dst, src, len, flags, false) },
        // SAFETY: as above; `copy_impl`/`flush_impl` return supported implementations.
        None => unsafe { copy_raw_detect(dst, src, len, flags, false) },
    }
}

/// The detected implementations, if detection has already run.
#[inline(always)]
fn cached_impls() -> Option<(CopyImpl, FlushImpl)> {
    let copy = CopyImpl::from_u8(COPY_IMPL.load(Ordering::Relaxed))?;
    let flush = FlushImpl::from_u8(FLUSH_IMPL.load(Ordering::Relaxed))?;
    Some((copy, flush))
}

/// [`copy_raw`] with detection, for the first calls.
///
/// # Safety
///
/// The contract of [`memcpy_persist`] (or of [`memmove_persist`] when `overlap`).
#[cold]
#[inline(never)]
unsafe fn copy_raw_detect(
    dst: *mut u8,
    src: *const u8,
    len: usize,
    flags: PersistFlags,
    overlap: bool,
) {
    // SAFETY: the caller's contract; detected implementations are supported.
    unsafe { copy_raw(copy_impl(), flush_impl(), dst, src, len, flags, overlap) }
}

/// [`memcpy_persist`] with explicit implementations (for tests and benchmarks); one
/// that this CPU does not support is replaced by the detected one.
///
/// # Safety
///
/// As for [`memcpy_persist`].
pub unsafe fn memcpy_persist_with(
    copy: CopyImpl,
    flush: FlushImpl,
    dst: *mut u8,
    src: *const u8,
    len: usize,
    flags: PersistFlags,
) {
    // SAFETY: the caller's contract is ours; `usable_*` return supported ones.
    unsafe {
        copy_raw(
            usable_copy(copy),
            usable_flush(flush),
            dst,
            src,
            len,
            flags,
            false,
        )
    }
}

/// Like [`memcpy_persist`] but the ranges may overlap: the result is as if `src` were
/// first copied to a temporary buffer. libpmem2's `pmem2_memmove_fn`, libpmem's
/// `pmem_memmove`.
///
/// # Safety
///
/// `src` must be valid for reads of `len` bytes and `dst` for writes of `len` bytes,
/// each inside one mapped allocation. `len == 0` touches neither pointer.
pub unsafe fn memmove_persist(dst: *mut u8, src: *const u8, len: usize, flags: PersistFlags) {
    // SAFETY: the caller's contract is ours; detected implementations are supported.
    unsafe { copy_raw(copy_impl(), flush_impl(), dst, src, len, flags, true) }
}

/// [`memmove_persist`] with explicit implementations; one that this CPU does not
/// support is replaced by the detected one.
///
/// # Safety
///
/// As for [`memmove_persist`].
pub unsafe fn memmove_persist_with(
    copy: CopyImpl,
    flush: FlushImpl,
    dst: *mut u8,
    src: *const u8,
    len: usize,
    flags: PersistFlags,
) {
    // SAFETY: the caller's contract is ours; `usable_*` return supported ones.
    unsafe {
        copy_raw(
            usable_copy(copy),
            usable_flush(flush),
            dst,
            src,
            len,
            flags,
            true,
        )
    }
}

/// Fills `len` bytes at `dst` with `byte` and makes them persistent, with the same
/// store and persistence behaviour as [`memcpy_persist`]. libpmem2's
/// `pmem2_memset_fn`, libpmem's `pmem_memset`.
///
/// # Safety
///
/// `dst` must be valid for writes of `len` bytes inside one mapped allocation.
/// `len == 0` touches nothing.
pub unsafe fn memset_persist(dst: *mut u8, byte: u8, len: usize, flags: PersistFlags) {
    // SAFETY: the caller's contract is ours; detected implementations are supported.
    unsafe { set_raw(copy_impl(), flush_impl(), dst, byte, len, flags) }
}

/// [`memset_persist`] with explicit implementations; one that this CPU does not
/// support is replaced by the detected one.
///
/// # Safety
///
/// As for [`memset_persist`].
pub unsafe fn memset_persist_with(
    copy: CopyImpl,
    flush: FlushImpl,
    dst: *mut u8,
    byte: u8,
    len: usize,
    flags: PersistFlags,
) {
    // SAFETY: the caller's contract is ours; `usable_*` return supported ones.
    unsafe {
        set_raw(
            usable_copy(copy),
            usable_flush(flush),
            dst,
            byte,
            len,
            flags,
        )
    }
}

/// The kernel's `memcpy_flushcache`: copies `len` bytes and, on return, they have left
/// the CPU caches (non-temporal stores, partial lines written back), but no fence is
/// issued; call [`drain`] before relying on ordering. Equal to [`memcpy_persist`] with
/// `NONTEMPORAL | NODRAIN`. This is what `dax_copy_from_iter` uses when the device has
/// NOCACHE.
///
/// # Safety
///
/// As for [`memcpy_persist`] (valid ranges, no overlap).
pub unsafe fn copy_flushcache(dst: *mut u8, src: *const u8, len: usize) {
    // SAFETY: same contract as memcpy_persist.
    unsafe {
        memcpy_persist(
            dst,
            src,
            len,
            PersistFlags::NONTEMPORAL | PersistFlags::NODRAIN,
        )
    }
}

/// # Safety
///
/// The contract of [`memcpy_persist`] (or of [`memmove_persist`] when `overlap`), and
/// `copy` and `flush` are supported by this CPU.
#[inline(always)]
unsafe fn copy_raw(
    copy: CopyImpl,
    flush: FlushImpl,
    dst: *mut u8,
    src: *const u8,
    len: usize,
    flags: PersistFlags,
    overlap: bool,
) {
    if len != 0 {
        match choose_mode(copy, flags, dst, len) {
            Mode::NoFlush | Mode::Temporal => {
                // SAFETY: the caller's contract is the function's.
                unsafe { copy_temporal(flush, dst, src, len, flags, overlap) }
            }
            Mode::NonTemporal => {
                #[cfg(target_arch = "x86_64")]
                {
                    // Copying backwards is needed only when `dst` starts inside the
                    // source range (then a forward copy would overwrite source bytes
                    // before reading them).
                    let backward = overlap
                        && (dst as usize) > (src as usize)
                        && (dst as usize) - (src as usize) < len;
                    // SAFETY: ranges valid (caller), disjoint unless `overlap`, in
                    // which case the direction is chosen as above; `copy` is a vector
                    // implementation (Portable always maps to Mode::Temporal) and both
                    // implementations are supported (caller).
                    unsafe {
                        if backward {
                            x86_64::copy_nt_backward(copy, flush, dst, src, len)
                        } else {
                            x86_64::copy_nt_forward(copy, flush, dst, src, len)
                        }
                    }
                }
                #[cfg(not(target_arch = "x86_64"))]
                unreachable!("only Portable exists off x86-64 and it never chooses NT");
            }
        }
    }
    if !flags.contains(PersistFlags::NODRAIN) {
        drain();
    }
}

/// The ordinary-store part of [`copy_raw`]: copy, then write back unless `NOFLUSH`.
/// Out of line so that the inlined [`copy_raw`] stays small.
///
/// # Safety
///
/// As for [`copy_raw`].
#[inline(never)]
unsafe fn copy_temporal(
    flush: FlushImpl,
    dst: *mut u8,
    src: *const u8,
    len: usize,
    flags: PersistFlags,
    overlap: bool,
) {
    if overlap {
        // SAFETY: both ranges valid (caller); `ptr::copy` allows overlap.
        unsafe { ptr::copy(src, dst, len) };
    } else {
        // SAFETY: both ranges valid and disjoint (caller).
        unsafe { ptr::copy_nonoverlapping(src, dst, len) };
    }
    if flags.contains(PersistFlags::NOFLUSH) {
        // The caller handles flushing.
    } else {
        // SAFETY: `dst` range is mapped (caller); `flush` supported (caller).
        unsafe { flush_range_raw(flush, dst, len) };
    }
}

/// # Safety
///
/// The contract of [`memset_persist`], and `copy` and `flush` are supported by this CPU.
#[inline]
unsafe fn set_raw(
    copy: CopyImpl,
    flush: FlushImpl,
    dst: *mut u8,
    byte: u8,
    len: usize,
    flags: PersistFlags,
) {
    if len != 0 {
        match choose_mode(copy, flags, dst, len) {
            Mode::NoFlush | Mode::Temporal => {
                // SAFETY: `dst` valid for `len` bytes of writes (caller).
                unsafe { ptr::write_bytes(dst, byte, len) };
                if !flags.contains(PersistFlags::NOFLUSH) {
                    // SAFETY: `dst` range is mapped (caller); `flush` supported (caller).
                    unsafe { flush_range_raw(flush, dst, len) };
                }
            }
            Mode::NonTemporal => {
                #[cfg(target_arch = "x86_64")]
                // SAFETY: `dst` valid (caller); `copy` is a vector implementation and
                // both are supported (caller).
                unsafe {
                    x86_64::set_nt(copy, flush, dst, byte, len)
                };
                #[cfg(not(target_arch = "x86_64"))]
                unreachable!("only Portable exists off x86-64 and it never chooses NT");
            }
        }
    }
    if !flags.contains(PersistFlags::NODRAIN) {
        drain();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_bits_match_libpmem2() {
        // PMEM2_F_MEM_* from libpmem2.h.
        assert_eq!(PersistFlags::NODRAIN.bits(), 1);
        assert_eq!(PersistFlags::NONTEMPORAL.bits(), 2);
        assert_eq!(PersistFlags::TEMPORAL.bits(), 4);
        assert_eq!(PersistFlags::WC.bits(), 8);
        assert_eq!(PersistFlags::WB.bits(), 16);
        assert_eq!(PersistFlags::NOFLUSH.bits(), 32);
    }

    #[test]
    fn mode_precedence_follows_libpmem2() {
        let a = CopyImpl::Sse2;
        let nt = PersistFlags::NONTEMPORAL;
        let t = PersistFlags::TEMPORAL;
        let al = 4096 as *const u8; // 64-byte aligned
        let un = 4099 as *const u8; // not
        let m = |c, f, d, l| choose_mode(c, f, d, l);
        assert_eq!(m(a, PersistFlags::NOFLUSH | nt, al, 4096), Mode::NoFlush);
        assert_eq!(m(a, nt | t, al, 8), Mode::NonTemporal);
        assert_eq!(m(a, PersistFlags::WC, un, 8), Mode::NonTemporal);
        assert_eq!(m(a, PersistFlags::WB, al, 1 << 20), Mode::Temporal);
        assert_eq!(m(a, t, al, 1 << 20), Mode::Temporal);
        let e = PersistFlags::empty();
        assert_eq!(m(a, e, al, MOVNT_THRESHOLD - 1), Mode::Temporal);
        assert_eq!(m(a, e, al, MOVNT_THRESHOLD), Mode::NonTemporal);
        assert_eq!(m(a, e, un, MOVNT_THRESHOLD), Mode::Temporal);
        assert_eq!(m(a, e, un, MOVNT_THRESHOLD_UNALIGNED - 1), Mode::Temporal);
        assert_eq!(m(a, e, un, MOVNT_THRESHOLD_UNALIGNED), Mode::NonTemporal);
        assert_eq!(m(CopyImpl::Portable, nt, al, 1 << 20), Mode::Temporal);
        assert_eq!(
            m(CopyImpl::Portable, PersistFlags::NOFLUSH, al, 1),
            Mode::NoFlush
        );
    }

    #[test]
    fn impl_codes_round_trip() {
        for f in FlushImpl::ALL {
            assert_eq!(FlushImpl::from_u8(f.to_u8()), Some(f));
        }
        for c in CopyImpl::ALL {
            assert_eq!(CopyImpl::from_u8(c.to_u8()), Some(c));
        }
        assert_eq!(FlushImpl::from_u8(0), None);
        assert_eq!(CopyImpl::from_u8(0), None);
    }

    #[test]
    fn detected_impls_are_supported() {
        assert!(flush_impl().is_supported());
        assert!(copy_impl().is_supported());
        assert!(usable_flush(FlushImpl::Clwb).is_supported());
        assert!(usable_copy(CopyImpl::Avx512).is_supported());
    }
}
