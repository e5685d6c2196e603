//! Interleaved A/B companion of `persist_copy`: the same three persistent copies
//! (`memcpy_persist`, copy + `flush_range` + `drain`, PMDK's `pmem_memcpy_persist`),
//! sizes and warm/cold sources, but measured in alternation instead of one after the
//! other, so that slow drifts of a shared machine hit all three alike.
//!
//! For every cell: rounds of one batch per implementation (about 0.2 ms of copies
//! each, order rotated every round) until about 1.5 s have passed (at least 15
//! rounds). Printed: the median throughput of each implementation, the median over
//! rounds of ours ÷ PMDK measured in the same round, and in how many rounds ours was
//! at least as fast as PMDK. Buffers, prefaulting, cold-source eviction and the PMDK
//! configuration are as in `persist_copy` (see `docs/benchmarks.md`).
//!
//! Run: `cargo bench -p dax-benches --bench persist_copy_ab` (about 50 s).
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use dax_device::persist::{self, FlushImpl};

use dax_benches::{Buf, KIB, MIB, SIZES, Which, copy_once, load_pmdk};

/// Time of `iters` copies (cold: source evicted before each, outside the timing).
fn batch(
    which: Which,
    dst: *mut u8,
    src: *const u8,
    len: usize,
    iters: usize,
    cold: bool,
) -> Duration {
    if !cold {
        let t = Instant::now();
        for _ in 0..iters {
            // SAFETY: both buffers hold at least `len` bytes and are disjoint.
            unsafe { copy_once(which, black_box(dst), black_box(src), len) };
        }
        return t.elapsed();
    }
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        // SAFETY: `src` is valid for `len` bytes; CLFLUSH is in every x86-64. The
        // SeqCst fence (MFENCE) waits for the evictions before the clock starts.
        unsafe { persist::flush_range_with(FlushImpl::Clflush, src, len) };
        std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
        let t = Instant::now();
        // SAFETY: as above.
        unsafe { copy_once(which, black_box(dst), black_box(src), len) };
        total += t.elapsed();
    }
    total
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    // SAFETY: first thing in main, before any other thread exists.
    let Some(pmdk) = (unsafe { load_pmdk() }) else {
        eprintln!("note: nothing to compare against");
        return;
    };
    let max = *SIZES.iter().max().expect("sizes");
    let src = Buf::new(max, 0x5a);
    let dst = Buf::new(max, 0xa5);
    let impls = [Which::Ours, Which::CopyFlush, Which::Pmdk(pmdk)];
    let gib = (1u64 << 30) as f64;
    println!(
        "| source | size | ours | copy+flush | PMDK | ours ÷ PMDK (median of rounds) | rounds ours ≥ PMDK |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for cold in [false, true] {
        for &size in &SIZES {
            // About 0.2 ms of copies per batch at ~5 GiB/s.
            let iters = (1_000_000 / size).max(1);
            let mut thr: [Vec<f64>; 3] = Default::default();
            let mut ratio = Vec::new();
            let start = Instant::now();
            let mut round = 0;
            while round < 15 || start.elapsed() < Duration::from_millis(1500) {
                let mut t = [0.0; 3];
                for k in 0..3 {
                    let j = (k + round) % 3;
                    let d = batch(impls[j], dst.ptr(), src.ptr(), size, iters, cold);
                    t[j] = (size * iters) as f64 / d.as_secs_f64() / gib;
                }
                for j in 0..3 {
                    thr[j].push(t[j]);
                }
                ratio.push(t[0] / t[2]);
                round += 1;
            }
            let wins = ratio.iter().filter(|&&r| r >= 1.0).count();
            let n = ratio.len();
            let size_s = if size >= MIB {
                format!("{} MiB", size / MIB)
            } else {
                format!("{} KiB", size / KIB)
            };
            println!(
                "| {} | {size_s} | {:.2} | {:.2} | {:.2} | {:.3} | {wins}/{n} |",
                if cold { "cold" } else { "warm" },
                median(&mut thr[0]),
                median(&mut thr[1]),
                median(&mut thr[2]),
                median(&mut ratio),
            );
        }
    }
}
