//! Persistent copy throughput: `dax_core::persist::memcpy_persist` against
//! `copy_nonoverlapping` + `flush_range` + `drain` (the baseline) and PMDK's
//! `pmem_memcpy_persist` (loaded at run time with `dlopen("libpmem.so.1")`; skipped with
//! a note when the library is absent).
//!
//! Method (see `docs/benchmarks.md`, "Persistent copy"):
//! * source and destination are allocated once (page aligned) and every page
//!   is written before any timing: first touch of fresh memory is very slow on VMs;
//! * `warm`: the source stays cached between copies (it fits in the LLC up to 16 MiB);
//! * `cold`: before each timed copy the source range is written back and evicted with
//!   CLFLUSH + MFENCE outside the timed region (`iter_custom`), so every copy reads it
//!   from memory;
//! * PMDK configuration: whatever `PMEM_*` variables the bench is started with; if none
//!   is set, the bench sets `PMEM_AVX512F=1` before loading libpmem (its best
//!   configuration on the reference machine; see the docs).
//!
//! Run: `cargo bench -p dax-benches --bench persist_copy`.
// `criterion_group!` defines an undocumented `pub fn`.
#![allow(missing_docs)]

use std::ffi::c_void;
use std::hint::black_box;
use std::ptr;
use std::time::{Duration, Instant};

use criterion::{
    BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};
use dax_core::persist::{self, FlushImpl, PersistFlags};

const KIB: usize = 1 << 10;
const MIB: usize = 1 << 20;
const SIZES: [usize; 8] = [
    4 * KIB,
    16 * KIB,
    64 * KIB,
    256 * KIB,
    MIB,
    4 * MIB,
    16 * MIB,
    64 * MIB,
];

/// A page-aligned heap buffer, prefaulted.
struct Buf {
    ptr: *mut u8,
    layout: std::alloc::Layout,
}

impl Buf {
    fn new(len: usize, fill: u8) -> Buf {
        let layout = std::alloc::Layout::from_size_align(len, 4096).expect("layout");
        // SAFETY: `layout` has non-zero size.
        let ptr = unsafe { std::alloc::alloc(layout) };
        assert!(!ptr.is_null(), "allocation of {len} bytes failed");
        // Touch every page (and every byte) now, so no page fault lands in a timing.
        // SAFETY: `ptr` is valid for `len` bytes of writes.
        unsafe { ptr::write_bytes(ptr, fill, len) };
        Buf { ptr, layout }
    }
}

impl Drop for Buf {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout.
        unsafe { std::alloc::dealloc(self.ptr, self.layout) };
    }
}

type PmemMemcpyPersist = unsafe extern "C" fn(*mut c_void, *const c_void, usize) -> *mut c_void;

/// PMDK's `pmem_memcpy_persist`, if libpmem.so.1 can be loaded.
fn load_pmdk() -> Option<PmemMemcpyPersist> {
    let any_pmem_env = std::env::vars_os().any(|(k, _)| k.to_string_lossy().starts_with("PMEM_"));
    if !any_pmem_env {
        // libpmem reads its configuration in its constructor, i.e. at dlopen below.
        // SAFETY: called from main's thread before criterion or anything else starts
        // another thread; no other code reads the environment concurrently.
        unsafe { std::env::set_var("PMEM_AVX512F", "1") };
    }
    let config: Vec<String> = std::env::vars()
        .filter(|(k, _)| k.starts_with("PMEM_"))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    // SAFETY: a NUL-terminated library name; RTLD_NOW resolves all symbols up front.
    let handle = unsafe { libc::dlopen(c"libpmem.so.1".as_ptr(), libc::RTLD_NOW) };
    if handle.is_null() {
        eprintln!(
            "note: libpmem.so.1 not found (apt-get install libpmem1): skipping the PMDK baseline"
        );
        return None;
    }
    // SAFETY: `handle` is a live handle from dlopen; the name is NUL-terminated.
    let sym = unsafe { libc::dlsym(handle, c"pmem_memcpy_persist".as_ptr()) };
    if sym.is_null() {
        eprintln!("note: libpmem.so.1 has no pmem_memcpy_persist: skipping the PMDK baseline");
        return None;
    }
    eprintln!("PMDK baseline: libpmem.so.1 with {}", config.join(" "));
    // The handle is deliberately never closed: the function stays valid for the run.
    // SAFETY: `pmem_memcpy_persist` has this C signature (libpmem.h:
    // `void *pmem_memcpy_persist(void *pmemdest, const void *src, size_t len)`).
    Some(unsafe { std::mem::transmute::<*mut c_void, PmemMemcpyPersist>(sym) })
}

#[derive(Clone, Copy)]
enum Which {
    Ours,
    CopyFlush,
    Pmdk(PmemMemcpyPersist),
}

/// One persistent copy of `len` bytes from `src` to `dst`.
///
/// # Safety
///
/// `src`/`dst` valid for `len` bytes, disjoint.
#[inline(always)]
unsafe fn copy_once(which: Which, dst: *mut u8, src: *const u8, len: usize) {
    // SAFETY: forwarded contract.
    unsafe {
        match which {
            Which::Ours => persist::memcpy_persist(dst, src, len, PersistFlags::empty()),
            Which::CopyFlush => {
                ptr::copy_nonoverlapping(src, dst, len);
                persist::flush_range(dst, len);
                persist::drain();
            }
            Which::Pmdk(f) => {
                f(dst.cast(), src.cast(), len);
            }
        }
    }
}

fn bench(c: &mut Criterion) {
    let pmdk = load_pmdk();
    eprintln!(
        "dax-rs persist: copy {}, flush {}, MOVNT_THRESHOLD {}",
        persist::copy_impl(),
        persist::flush_impl(),
        persist::MOVNT_THRESHOLD
    );
    let max = *SIZES.iter().max().expect("sizes");
    let src = Buf::new(max, 0x5a);
    let dst = Buf::new(max, 0xa5);

    let mut impls = vec![("ours", Which::Ours), ("copy_flush", Which::CopyFlush)];
    if let Some(f) = pmdk {
        impls.push(("pmdk", Which::Pmdk(f)));
    }

    for cold in [false, true] {
        let mut g = c.benchmark_group(if cold {
            "persist_copy/cold"
        } else {
            "persist_copy/warm"
        });
        for &size in &SIZES {
            g.throughput(Throughput::Bytes(size as u64));
            if size >= 4 * MIB {
                g.sample_size(10)
                    .sampling_mode(SamplingMode::Flat)
                    .warm_up_time(Duration::from_millis(200))
                    .measurement_time(Duration::from_millis(1200));
            } else {
                g.sample_size(20)
                    .sampling_mode(SamplingMode::Auto)
                    .warm_up_time(Duration::from_millis(200))
                    .measurement_time(Duration::from_millis(600));
            }
            for &(name, which) in &impls {
                let (d, s) = (dst.ptr, src.ptr.cast_const());
                g.bench_with_input(BenchmarkId::new(name, size), &size, |b, &size| {
                    b.iter_custom(|iters| {
                        if !cold {
                            let t = Instant::now();
                            for _ in 0..iters {
                                // SAFETY: both buffers hold `max >= size` bytes, disjoint.
                                unsafe { copy_once(which, black_box(d), black_box(s), size) };
                            }
                            return t.elapsed();
                        }
                        let mut total = Duration::ZERO;
                        for _ in 0..iters {
                            // SAFETY: `s` is valid for `size` bytes; CLFLUSH is in every
                            // x86-64 (elsewhere this is a no-op). The SeqCst fence (MFENCE)
                            // waits for the evictions before the clock starts.
                            unsafe { persist::flush_range_with(FlushImpl::Clflush, s, size) };
                            std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
                            let t = Instant::now();
                            // SAFETY: both buffers hold `max >= size` bytes, disjoint.
                            unsafe { copy_once(which, black_box(d), black_box(s), size) };
                            total += t.elapsed();
                        }
                        total
                    });
                });
            }
        }
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
