//! `Badblocks::check` (`badblocks_check`) on the read hot path, beside a baseline.
//!
//! Cases: an empty table (one atomic load, no lock), a full table of 512 records
//! with a query that hits a record and one that falls in a gap. The baseline is a
//! plain binary search over a sorted `Vec<u64>` holding the same packed records,
//! with no synchronisation at all: the difference is the price of the seqlock
//! read (two loads of the sequence word, an acquire fence, atomic slot loads).

// `criterion_group!` generates an undocumented `pub fn`.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use dax_device::badblocks::{Badblocks, MAX_BADBLOCKS, decode, encode};

/// Record i covers sectors [16 i, 16 i + 8), acknowledged.
fn full() -> (Badblocks, Vec<u64>) {
    let bb = Badblocks::new();
    let mut raw = Vec::with_capacity(MAX_BADBLOCKS);
    for i in 0..MAX_BADBLOCKS as u64 {
        assert!(bb.set(16 * i, 8, true));
        raw.push(encode(16 * i, 8, true).unwrap());
    }
    assert_eq!(bb.count(), MAX_BADBLOCKS);
    assert_eq!(bb.raw_records(), raw);
    (bb, raw)
}

/// Baseline: lowest record overlapping [s, s + n) in a sorted packed vector.
fn vec_check(raw: &[u64], s: u64, n: u64) -> Option<(u64, u64)> {
    let e = s + n.max(1);
    let i = raw.partition_point(|&r| decode(r).end() <= s);
    raw.get(i)
        .map(|&r| decode(r))
        .filter(|r| r.start < e)
        .map(|r| (r.start, r.len))
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("badblocks_check");
    g.warm_up_time(Duration::from_millis(800))
        .measurement_time(Duration::from_secs(2))
        .sample_size(60);

    let empty = Badblocks::new();
    let empty_vec: Vec<u64> = Vec::new();
    g.bench_function("empty/badblocks", |b| {
        b.iter(|| empty.check(black_box(4096), black_box(8)))
    });
    g.bench_function("empty/baseline_vec", |b| {
        b.iter(|| vec_check(black_box(&empty_vec), black_box(4096), black_box(8)))
    });

    let (bb, raw) = full();
    // Hit: inside record 300. Miss: the gap after record 300.
    let (hit, miss) = (16 * 300 + 2, 16 * 300 + 9);
    assert!(bb.check(hit, 4).is_bad());
    assert!(!bb.check(miss, 4).is_bad());
    assert!(vec_check(&raw, hit, 4).is_some());
    assert!(vec_check(&raw, miss, 4).is_none());
    g.bench_function("full_hit/badblocks", |b| {
        b.iter(|| bb.check(black_box(hit), black_box(4)))
    });
    g.bench_function("full_hit/baseline_vec", |b| {
        b.iter(|| vec_check(black_box(&raw), black_box(hit), black_box(4)))
    });
    g.bench_function("full_miss/badblocks", |b| {
        b.iter(|| bb.check(black_box(miss), black_box(4)))
    });
    g.bench_function("full_miss/baseline_vec", |b| {
        b.iter(|| vec_check(black_box(&raw), black_box(miss), black_box(4)))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
