//! Concurrency of `dax_device::badblocks` (ref: BB-17): writers set and clear while
//! readers call `check`, `records` and `show`; readers must never see a torn table.
//!
//! The writers move between a small number of known tables. Each writer owns a
//! region and toggles one range there; a background of 400 records lies *after*
//! both regions, so every insert or delete shifts hundreds of published slots. A
//! torn read would show a duplicated or missing record, an overlap, or a table that
//! is not one of the known states. No test asserts time: the loops run for a fixed
//! number of iterations (fewer under Miri, which checks these threads for data races
//! at 100 to 1000 times the cost).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;

use dax_device::badblocks::{BadRange, Badblocks, BadblocksCheck};

const BACKGROUND: u64 = if cfg!(miri) { 40 } else { 400 };
const BG_START: u64 = 100_000;
const TOGGLES: usize = dax_testkit::miri::scale(1500, 8);
/// Rounds each reader makes at least.
const READS: usize = dax_testkit::miri::scale(50, 3);

/// Writer `w` toggles `[REGION[w], +LEN[w])` with ack `ACK[w]`.
const REGION: [u64; 2] = [1_000, 10_000];
const LEN: [u64; 2] = [600, 7];
const ACK: [bool; 2] = [true, false];

fn background() -> Vec<BadRange> {
    (0..BACKGROUND)
        .map(|i| BadRange {
            start: BG_START + 4 * i,
            len: 2,
            acknowledged: i % 2 == 0,
        })
        .collect()
}

fn region_records(w: usize) -> Vec<BadRange> {
    let mut v = Vec::new();
    let mut s = REGION[w];
    let end = REGION[w] + LEN[w];
    while s < end {
        let len = (end - s).min(512);
        v.push(BadRange {
            start: s,
            len,
            acknowledged: ACK[w],
        });
        s += len;
    }
    v
}

/// The four tables the writers can produce.
fn known_states() -> Vec<Vec<BadRange>> {
    let mut states = Vec::new();
    for mask in 0..4 {
        let mut t = Vec::new();
        for w in 0..2 {
            if mask & (1 << w) != 0 {
                t.extend(region_records(w));
            }
        }
        t.extend(background());
        states.push(t);
    }
    states
}

fn assert_well_formed(records: &[BadRange]) {
    for r in records {
        assert!((1..=512).contains(&r.len), "{r:?}");
    }
    for w in records.windows(2) {
        assert!(
            w[0].end() <= w[1].start,
            "torn table: {:?} then {:?}",
            w[0],
            w[1]
        );
    }
}

#[test]
fn bb17_readers_never_see_a_torn_table() {
    // ref: BB-17
    let bb = Arc::new(Badblocks::new());
    for r in background() {
        assert!(bb.set(r.start, r.len, r.acknowledged));
    }
    let states = Arc::new(known_states());
    let done = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));

    let writers: Vec<_> = (0..2)
        .map(|w| {
            let (bb, done) = (Arc::clone(&bb), Arc::clone(&done));
            thread::spawn(move || {
                for _ in 0..TOGGLES {
                    assert!(bb.set(REGION[w], LEN[w], ACK[w]));
                    assert!(bb.clear(REGION[w], LEN[w]));
                }
                done.fetch_add(1, Ordering::Release);
            })
        })
        .collect();

    let readers: Vec<_> = (0..3)
        .map(|k| {
            let (bb, states, stop) = (Arc::clone(&bb), Arc::clone(&states), Arc::clone(&stop));
            thread::spawn(move || {
                let mut seen = 0usize;
                // At least a few rounds even if the writers finish first.
                while !stop.load(Ordering::Acquire) || seen < READS {
                    seen += 1;
                    match k {
                        0 => {
                            let recs = bb.records();
                            assert_well_formed(&recs);
                            assert!(
                                states.contains(&recs),
                                "snapshot is not a known table: {} records",
                                recs.len()
                            );
                        }
                        1 => {
                            let r0 = bb.check(REGION[0], LEN[0]);
                            assert!(
                                r0 == BadblocksCheck::Clean
                                    || r0
                                        == BadblocksCheck::Acknowledged {
                                            first_bad: REGION[0],
                                            bad_sectors: 512
                                        },
                                "{r0:?}"
                            );
                            let r1 = bb.check(REGION[1] + 3, 1);
                            assert!(
                                r1 == BadblocksCheck::Clean
                                    || r1
                                        == BadblocksCheck::Unacknowledged {
                                            first_bad: REGION[1],
                                            bad_sectors: 7
                                        },
                                "{r1:?}"
                            );
                            // The background never changes.
                            let bg = bb.check(BG_START + 4 * (BACKGROUND / 2), 1);
                            assert_eq!(
                                bg,
                                BadblocksCheck::Acknowledged {
                                    first_bad: BG_START + 4 * (BACKGROUND / 2),
                                    bad_sectors: 2
                                }
                            );
                            let bg = bb.check(BG_START + 4 * (BACKGROUND - 1) - 1, 3);
                            assert_eq!(
                                bg,
                                BadblocksCheck::Unacknowledged {
                                    first_bad: BG_START + 4 * (BACKGROUND - 1),
                                    bad_sectors: 2
                                }
                            );
                        }
                        _ => {
                            let text = bb.show(false);
                            let recs: Vec<BadRange> = text
                                .lines()
                                .map(|l| {
                                    let mut it = l.split(' ').map(|x| x.parse::<u64>().unwrap());
                                    BadRange {
                                        start: it.next().unwrap(),
                                        len: it.next().unwrap(),
                                        acknowledged: false,
                                    }
                                })
                                .collect();
                            assert_well_formed(&recs);
                            let n = recs.len();
                            let ok = states.iter().any(|s| {
                                s.len() == n
                                    && s.iter()
                                        .zip(&recs)
                                        .all(|(a, b)| (a.start, a.len) == (b.start, b.len))
                            });
                            assert!(ok, "show printed a table that never existed ({n} lines)");
                        }
                    }
                }
                seen
            })
        })
        .collect();

    for w in writers {
        w.join().unwrap();
    }
    assert_eq!(done.load(Ordering::Acquire), 2);
    stop.store(true, Ordering::Release);
    for r in readers {
        assert!(r.join().unwrap() >= READS);
    }
    assert_eq!(bb.records(), background());
}

#[test]
fn bb17_show_unack_does_not_lose_the_hint_under_writers() {
    // ref: BB-14, BB-17: the hint is cleared only if no writer intervened, so after
    // all threads stop, an unacknowledged record always has the hint set.
    let bb = Arc::new(Badblocks::new());
    let writer = {
        let bb = Arc::clone(&bb);
        thread::spawn(move || {
            for i in 0..dax_testkit::miri::scale(2000, 20) as u64 {
                assert!(bb.set(i % 64, 1, false));
                assert!(bb.clear(i % 64, 1));
            }
            assert!(bb.set(7, 1, false));
        })
    };
    let reader = {
        let bb = Arc::clone(&bb);
        thread::spawn(move || {
            for _ in 0..dax_testkit::miri::scale(2000, 20) {
                let _ = bb.show(true);
            }
        })
    };
    writer.join().unwrap();
    reader.join().unwrap();
    assert!(bb.unacked_exist());
    assert_eq!(bb.show(true), "7 1\n");
}
