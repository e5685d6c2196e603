//! Persistent copy throughput: `dax_device::persist::memcpy_persist` against
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

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{
    BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};
use dax_device::persist::{self, FlushImpl};

use dax_benches::{Buf, MIB, SIZES, Which, copy_once, load_pmdk};

fn bench(c: &mut Criterion) {
    // SAFETY: criterion runs this on main's thread before starting any other thread;
    // nothing else touches the environment meanwhile.
    let pmdk = unsafe { load_pmdk() };
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
                let (d, s) = (dst.ptr(), src.ptr().cast_const());
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
