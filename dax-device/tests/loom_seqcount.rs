//! Loom model of [`SeqCount`] (`seqcount_t`): a writer publishes a pair of atomics
//! under the counter while a reader reads it; the reader must never accept a pair
//! from two different writes, and a conditional flag clear must fail once a writer
//! has been inside.
//!
//! Run: `RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test --release -p
//! dax-device --test loom_seqcount` (normal builds compile this file to nothing).
#![cfg(loom)]

use std::sync::Arc;

use loom::sync::atomic::{AtomicU64, Ordering::Relaxed};
use loom::thread;

use dax_device::SeqCount;

struct Pair {
    seq: SeqCount<1>,
    a: AtomicU64,
    b: AtomicU64,
}

fn pair() -> Arc<Pair> {
    Arc::new(Pair {
        seq: SeqCount::new(),
        a: AtomicU64::new(0),
        b: AtomicU64::new(0),
    })
}

/// Two writes (the only writer thread needs no lock) against a reader that tries
/// once: whatever it accepts is one write's pair, whole.
#[test]
fn a_reader_never_accepts_a_torn_pair() {
    loom::model(|| {
        let p = pair();
        let w = {
            let p = p.clone();
            thread::spawn(move || {
                for v in 1..=2 {
                    let f = p.seq.write_begin();
                    p.a.store(v, Relaxed);
                    p.b.store(v, Relaxed);
                    p.seq.write_end(f ^ 1);
                }
            })
        };
        if let Some(t) = p.seq.try_begin() {
            let (a, b) = (p.a.load(Relaxed), p.b.load(Relaxed));
            if !p.seq.retry(t) {
                assert_eq!(a, b, "accepted a torn pair");
                // The flag it saw belongs to the pair it read: set by odd writes.
                assert_eq!(t.flags(), a & 1);
            }
        }
        w.join().unwrap();
    });
}

/// A conditional clear succeeds only if no writer came in since the read it is based
/// on, so a flag set by a write the reader did not see is never lost.
#[test]
fn a_conditional_clear_never_undoes_a_newer_write() {
    loom::model(|| {
        let p = pair();
        // Flag starts set, as after a write that set it.
        let f = p.seq.write_begin();
        p.seq.write_end(f | 1);
        let w = {
            let p = p.clone();
            thread::spawn(move || {
                let f = p.seq.write_begin();
                p.a.store(1, Relaxed);
                p.seq.write_end(f | 1); // this write wants the flag set
            })
        };
        let t = p.seq.begin();
        let a = p.a.load(Relaxed);
        let valid = !p.seq.retry(t);
        let cleared = p.seq.clear_flags_if_unchanged(t, 1);
        w.join().unwrap();
        // A clear is allowed only on a read that saw the latest write: then the
        // flag stays clear. If the read saw the old pair, the write came after the
        // clear and set the flag again; if the clear failed, the write's flag stands.
        if cleared {
            assert!(valid, "cleared on a read that a writer overlapped");
        }
        let want = if cleared && a == 1 { 0 } else { 1 };
        assert_eq!(p.seq.flags(), want, "valid {valid} a {a} cleared {cleared}");
    });
}
