//! A DAX read section: `DaxDevice::read_lock()` and dropping the guard
//! (`dax_read_lock`/`dax_read_unlock`), beside the scheme it replaced.
//!
//! Baseline: a copy of dax-device's former read side, an epoch and two cache-padded
//! counters shared by every reader, `fetch_add(SeqCst)` to begin a section and
//! `fetch_sub(Release)` to end it (two locked read-modify-writes), behind a guard of
//! the same shape as `DaxReadGuard`. The current read side counts in a per-thread slot
//! with a plain load and store and a compiler fence (the writer uses membarrier).
//!
//! Cases: `alone` (one thread), and `busy_neighbour`, where another thread runs
//! sections on the same device (or baseline) in a loop for the whole measurement, so
//! the baseline's shared counter line moves between the two cores. `writer`: the
//! other side, `kill` + `run` with no section open (the writer now sums per-thread
//! counters and calls membarrier) against the former writer.
//!
//! Run: `cargo bench -p dax-benches --bench read_section`.
#![allow(missing_docs)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use dax_device::DaxDevice;
use dax_testdev::MemDevice;

/// The former dax-device `Srcu` read side, verbatim in behaviour.
#[derive(Default)]
struct TwoCounterSrcu {
    epoch: AtomicUsize,
    readers: [Counter; 2],
}

#[repr(align(128))]
#[derive(Default)]
struct Counter(AtomicUsize);

impl TwoCounterSrcu {
    #[inline]
    fn read_lock(&self) -> usize {
        let idx = self.epoch.load(Ordering::SeqCst) & 1;
        self.readers[idx].0.fetch_add(1, Ordering::SeqCst);
        idx
    }

    #[inline]
    fn read_unlock(&self, idx: usize) {
        self.readers[idx].0.fetch_sub(1, Ordering::Release);
    }

    /// The former writer: advance the epoch twice, each time waiting for the old
    /// index's counter to drain (serialised by the caller).
    fn synchronize(&self) {
        for _ in 0..2 {
            let old = self.epoch.fetch_add(1, Ordering::SeqCst) & 1;
            while self.readers[old].0.load(Ordering::SeqCst) != 0 {
                std::hint::spin_loop();
            }
        }
    }
}

/// The baseline's stand-in for `DaxDevice`: a flags word and the read side.
#[derive(Default)]
struct BaselineDevice {
    flags: AtomicU32,
    srcu: TwoCounterSrcu,
}

/// Same shape as `DaxReadGuard`: the device and the index.
struct BaselineGuard<'a> {
    dev: &'a BaselineDevice,
    idx: usize,
}

impl BaselineDevice {
    /// `kill` then `run` without a holder: clear ALIVE, wait, set ALIVE.
    fn kill_run(&self) {
        self.flags.fetch_and(!1, Ordering::SeqCst);
        self.srcu.synchronize();
        self.flags.fetch_or(1, Ordering::SeqCst);
    }

    #[inline]
    fn read_lock(&self) -> BaselineGuard<'_> {
        BaselineGuard {
            dev: self,
            idx: self.srcu.read_lock(),
        }
    }
}

impl Drop for BaselineGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        self.dev.srcu.read_unlock(self.idx);
    }
}

/// Runs `section` in a loop on another thread until the returned stopper is called.
fn neighbour(section: impl Fn() + Send + 'static) -> impl FnOnce() {
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let t: JoinHandle<u64> = std::thread::spawn(move || {
        let mut n = 0u64;
        while !s.load(Ordering::Relaxed) {
            section();
            n += 1;
        }
        n
    });
    move || {
        stop.store(true, Ordering::Relaxed);
        assert!(t.join().unwrap() > 0, "the neighbour never ran");
    }
}

fn bench(c: &mut Criterion) {
    let dev: Arc<DaxDevice> = MemDevice::builder().size(1 << 20).build().unwrap();
    let base = Arc::new(BaselineDevice::default());
    assert!(dev.read_lock().alive());

    let mut g = c.benchmark_group("read_section");
    g.warm_up_time(Duration::from_millis(800))
        .measurement_time(Duration::from_secs(3))
        .sample_size(60);

    // The sections' atomics keep them from being optimised away; no `black_box`
    // round trip through the stack (a guard stored as two words and reloaded as one
    // stalls store forwarding and cost ~7 ns here, more than the section itself).
    let (d, bd): (&DaxDevice, &BaselineDevice) = (&dev, &base);
    g.bench_function("alone/dax_read_lock", |b| b.iter(|| drop(d.read_lock())));
    g.bench_function("alone/baseline_two_counter", |b| {
        b.iter(|| drop(bd.read_lock()))
    });

    let n = dev.clone();
    let stop = neighbour(move || drop(n.read_lock()));
    g.bench_function("busy_neighbour/dax_read_lock", |b| {
        b.iter(|| drop(d.read_lock()))
    });
    stop();
    let n = base.clone();
    let stop = neighbour(move || drop(n.read_lock()));
    g.bench_function("busy_neighbour/baseline_two_counter", |b| {
        b.iter(|| drop(bd.read_lock()))
    });
    stop();

    // The writer, with no section open: `kill` + `run` (membarrier now) against
    // the former epoch flips over two shared counters.
    g.bench_function("writer/kill_run", |b| {
        b.iter(|| {
            d.kill();
            d.run();
        })
    });
    g.bench_function("writer/baseline_two_counter", |b| b.iter(|| bd.kill_run()));
    assert!(dev.read_lock().alive());
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
