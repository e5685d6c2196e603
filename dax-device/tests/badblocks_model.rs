//! Model-based test of `dax_device::badblocks` (ref: BB-03..BB-14, §2.3).
//!
//! Random sequences of set (acked/unacked), clear, ack_all, clear_changed, check and
//! show run against the table and against a plain model: one `Option<acked>` per
//! sector of a small domain, so records merge, split and hit the 512-sector limit
//! often. After every step the table's invariants are checked (sorted,
//! non-overlapping, 1..=512 sectors, at most 512 records), its coverage must equal
//! the model, `check` must equal the lowest overlapping record, and the flags must
//! follow BB-11/BB-12/BB-13.
//!
//! Full tables are handled honestly: a set that fails must have failed on a (nearly)
//! full table, and what it left behind must be the model with a *head* of the range
//! applied (partial processing); a clear fails exactly when a full table would need a
//! split. A second property starts from a full table so those paths run constantly.
//! proptest prints the failing seed and the shrunk op sequence.

use dax_device::badblocks::{BB_MAX_LEN, BadRange, Badblocks, MAX_BADBLOCKS};
use dax_testkit::fuzz::badblocks::expected_check;
use proptest::prelude::*;

/// Sectors the ops start in.
const DOMAIN: u64 = 1200;
/// Model size: starts below DOMAIN plus lengths up to 800.
const SPACE: usize = 2048;

#[derive(Debug, Clone)]
enum Op {
    Set { s: u64, n: u64, ack: bool },
    Clear { s: u64, n: u64 },
    AckAll,
    ClearChanged,
    Check { s: u64, n: u64 },
    Show { unack: bool },
}

fn len_strategy() -> impl Strategy<Value = u64> {
    prop_oneof![
        6 => 1u64..=8,
        3 => 1u64..=64,
        1 => 400u64..=800,
    ]
}

fn op_strategy(domain: u64) -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0..domain, len_strategy(), any::<bool>()).prop_map(|(s, n, ack)| Op::Set { s, n, ack }),
        4 => (0..domain, len_strategy()).prop_map(|(s, n)| Op::Clear { s, n }),
        1 => Just(Op::AckAll),
        2 => Just(Op::ClearChanged),
        3 => (0..domain, 0u64..=40).prop_map(|(s, n)| Op::Check { s, n }),
        1 => any::<bool>().prop_map(|unack| Op::Show { unack }),
    ]
}

type Sectors = Vec<Option<bool>>;

struct Harness {
    bb: Badblocks,
    model: Sectors,
    changed: bool,
    unacked_exist: bool,
}

fn coverage(records: &[BadRange]) -> Sectors {
    let mut v = vec![None; SPACE];
    for r in records {
        for i in r.start..r.end() {
            v[i as usize] = Some(r.acknowledged);
        }
    }
    v
}

fn check_invariants(records: &[BadRange]) {
    assert!(records.len() <= MAX_BADBLOCKS, "{} records", records.len());
    for r in records {
        assert!((1..=BB_MAX_LEN).contains(&r.len), "bad length in {r:?}");
        assert!(r.end() as usize <= SPACE, "{r:?} outside the model");
    }
    for w in records.windows(2) {
        assert!(
            w[0].end() <= w[1].start,
            "unsorted or overlapping: {:?} {:?}",
            w[0],
            w[1]
        );
    }
}

/// Two touching records with the same ack that would fit in one.
fn has_mergeable_pair(records: &[BadRange]) -> bool {
    records.windows(2).any(|w| {
        w[0].end() == w[1].start
            && w[0].acknowledged == w[1].acknowledged
            && w[0].len + w[1].len <= BB_MAX_LEN
    })
}

fn any_unacked(records: &[BadRange]) -> bool {
    records.iter().any(|r| !r.acknowledged)
}

impl Harness {
    fn new(bb: Badblocks) -> Self {
        let records = bb.records();
        Harness {
            model: coverage(&records),
            changed: bb.changed(),
            unacked_exist: bb.unacked_exist(),
            bb,
        }
    }

    fn step(&mut self, op: &Op) {
        let before = self.bb.records();
        let raw_before = self.bb.raw_records();
        match *op {
            Op::Set { s, n, ack } => self.set(&before, s, n, ack),
            Op::Clear { s, n } => self.clear(&before, &raw_before, s, n),
            Op::AckAll => {
                self.bb.ack_all();
                if self.changed || !self.unacked_exist {
                    assert_eq!(self.bb.raw_records(), raw_before, "ack_all must do nothing");
                } else {
                    for x in self.model.iter_mut().flatten() {
                        *x = true;
                    }
                    self.unacked_exist = false;
                    assert!(
                        !has_mergeable_pair(&self.bb.records()),
                        "ack_all left a mergeable pair"
                    );
                }
            }
            Op::ClearChanged => {
                self.bb.clear_changed();
                self.changed = false;
                assert_eq!(self.bb.raw_records(), raw_before);
            }
            Op::Check { s, n } => {
                let got = self.bb.check(s, n);
                assert_eq!(got, expected_check(&before, s, n), "check({s}, {n})");
                let range = &self.model[s as usize..(s + n.max(1)) as usize];
                let want = if range.contains(&Some(false)) {
                    -1
                } else if range.contains(&Some(true)) {
                    1
                } else {
                    0
                };
                assert_eq!(
                    got.kernel_result(),
                    want,
                    "check({s}, {n}) against the model"
                );
            }
            Op::Show { unack } => {
                let text = self.bb.show(unack);
                let want: String = before
                    .iter()
                    .filter(|r| !unack || !r.acknowledged)
                    .map(|r| format!("{} {}\n", r.start, r.len))
                    .collect();
                assert_eq!(text, want);
                if unack && want.is_empty() {
                    self.unacked_exist = false;
                }
            }
        }
        self.verify();
    }

    fn set(&mut self, before: &[BadRange], s: u64, n: u64, ack: bool) {
        let count_before = before.len();
        let ret = self.bb.set(s, n, ack);
        let after = self.bb.records();
        let actual = coverage(&after);
        let (lo, hi) = (s as usize, (s + n) as usize);
        let applied: Sectors = self.model[lo..hi]
            .iter()
            .map(|&old| if ack { Some(true) } else { old.or(Some(false)) })
            .collect();
        // Outside the range nothing moves.
        assert_eq!(
            actual[..lo],
            self.model[..lo],
            "set touched sectors before the range"
        );
        assert_eq!(
            actual[hi..],
            self.model[hi..],
            "set touched sectors after the range"
        );
        if ret {
            assert_eq!(
                actual[lo..hi],
                applied[..],
                "set({s}, {n}, {ack}) did not apply"
            );
        } else {
            // Only a (nearly) full table fails a set: full (Q2), or an overwrite that
            // needs 2 slots with 511 records.
            assert!(
                count_before >= MAX_BADBLOCKS - 1 || after.len() >= MAX_BADBLOCKS - 1,
                "set failed with {count_before} -> {} records",
                after.len()
            );
            // A head of the range is applied, the rest is untouched.
            let cut = (0..hi - lo)
                .find(|&i| actual[lo + i] != applied[i])
                .unwrap_or(hi - lo);
            assert_eq!(
                actual[lo + cut..hi],
                self.model[lo + cut..hi],
                "failed set({s}, {n}, {ack}) changed sectors past its processed head"
            );
        }
        let coverage_changed = actual[lo..hi] != self.model[lo..hi];
        let fully_acked = self.model[lo..hi].iter().all(|&x| x == Some(true));
        let mergeable = has_mergeable_pair(before);

        // Did any step "add" (BB-11)? Known exactly when `changed` was clear.
        let mut predicted = None;
        if coverage_changed || (ret && ack) || (ret && !fully_acked) {
            predicted = Some(true);
        } else if !ack && fully_acked && !mergeable {
            predicted = Some(false);
        }
        let added = if self.changed {
            predicted
        } else {
            let observed = self.bb.changed();
            if let Some(p) = predicted {
                assert_eq!(observed, p, "changed after set({s}, {n}, {ack})");
            }
            Some(observed)
        };
        let unacked_after = any_unacked(&after);
        let flag_if = |added: bool| {
            if !added {
                self.unacked_exist
            } else if ack {
                self.unacked_exist && unacked_after
            } else {
                true
            }
        };
        match added {
            Some(a) => {
                assert_eq!(
                    self.bb.unacked_exist(),
                    flag_if(a),
                    "unacked_exist after set({s}, {n}, {ack})"
                );
                self.changed |= a;
            }
            None => {
                let got = self.bb.unacked_exist();
                assert!(got == flag_if(true) || got == flag_if(false));
                // `changed` was already set and stays set.
            }
        }
        self.unacked_exist = self.bb.unacked_exist();
        self.model = actual;
    }

    fn clear(&mut self, before: &[BadRange], raw_before: &[u64], s: u64, n: u64) {
        let ret = self.bb.clear(s, n);
        let e = s + n;
        let needs_split = before.iter().any(|r| r.start < s && r.end() > e);
        let full = before.len() >= MAX_BADBLOCKS;
        assert_eq!(
            ret,
            !(full && needs_split),
            "clear({s}, {n}) with {} records",
            before.len()
        );
        if ret {
            for x in &mut self.model[s as usize..e as usize] {
                *x = None;
            }
            self.changed = true;
            self.unacked_exist &= self.model.contains(&Some(false));
        } else {
            assert_eq!(
                self.bb.raw_records(),
                raw_before,
                "abandoned clear changed the table"
            );
        }
    }

    fn verify(&self) {
        let records = self.bb.records();
        check_invariants(&records);
        assert_eq!(self.bb.count(), records.len());
        assert_eq!(self.bb.is_empty(), records.is_empty());
        assert_eq!(
            coverage(&records),
            self.model,
            "coverage differs from the model"
        );
        assert_eq!(self.bb.changed(), self.changed, "changed");
        assert_eq!(self.bb.unacked_exist(), self.unacked_exist, "unacked_exist");
        if any_unacked(&records) {
            assert!(self.bb.unacked_exist(), "unacked record without the hint");
        }
    }
}

/// 512 one-sector records at 0, 2, ..., 1022 with the given acks.
fn full_table(acks: &[bool]) -> Badblocks {
    let bb = Badblocks::new();
    for (i, &ack) in acks.iter().enumerate() {
        assert!(bb.set(2 * i as u64, 1, ack));
    }
    bb
}

/// Operations per random sequence, at most: under Miri (where each checked step
/// costs about a second) 20.
const MAX_OPS: usize = dax_testkit::miri::scale(120, 20);

proptest! {
    #![proptest_config(dax_testkit::miri::proptest_config(
        ProptestConfig { cases: 256, ..ProptestConfig::default() }
    ))]

    #[test]
    fn model_random_ops_small_domain(ops in prop::collection::vec(op_strategy(DOMAIN), 1..MAX_OPS)) {
        let mut h = Harness::new(Badblocks::new());
        for op in &ops {
            h.step(op);
        }
    }

    #[test]
    fn model_random_ops_tiny_domain(ops in prop::collection::vec(op_strategy(48), 1..MAX_OPS)) {
        let mut h = Harness::new(Badblocks::new());
        for op in &ops {
            h.step(op);
        }
    }

}

proptest! {
    // Each case starts by filling the table, so fewer cases keep the run short.
    #![proptest_config(dax_testkit::miri::proptest_config(
        ProptestConfig { cases: 128, ..ProptestConfig::default() }
    ))]

    #[test]
    #[cfg_attr(miri, ignore = "each case fills the 512-record table: minutes under Miri")]
    fn model_random_ops_from_full_table(
        acks in prop::collection::vec(any::<bool>(), MAX_BADBLOCKS),
        ops in prop::collection::vec(op_strategy(1100), 1..80),
    ) {
        let bb = full_table(&acks);
        prop_assert_eq!(bb.count(), MAX_BADBLOCKS);
        let mut h = Harness::new(bb);
        for op in &ops {
            h.step(op);
        }
    }
}

#[test]
#[cfg_attr(
    miri,
    ignore = "512 checked steps against the model: minutes under Miri"
)]
fn model_fill_table_to_512_records_then_partial_set() {
    // ref: BB-02, BB-05, Q2: fill through checked steps, then a set that can only
    // be processed partly.
    let mut h = Harness::new(Badblocks::new());
    for i in 0..MAX_BADBLOCKS as u64 {
        h.step(&Op::Set {
            s: 2 * i,
            n: 1,
            ack: i % 3 != 0,
        });
    }
    assert_eq!(h.bb.count(), MAX_BADBLOCKS);
    // Full: even a covered range fails.
    h.step(&Op::Set {
        s: 0,
        n: 1,
        ack: false,
    });
    // Free two slots, then a set over gaps needs more than two new records: the
    // head is processed, the rest is not, and the call fails.
    h.step(&Op::Clear { s: 1000, n: 24 });
    assert_eq!(h.bb.count(), MAX_BADBLOCKS - 12);
    h.step(&Op::ClearChanged);
    let before = h.bb.count();
    assert!(!h.bb.set(1100, 13 * 512, true));
    assert_eq!(h.bb.count(), MAX_BADBLOCKS);
    assert!(h.bb.changed());
    assert_eq!(
        h.bb.records()[before],
        BadRange {
            start: 1100,
            len: 512,
            acknowledged: true
        }
    );
    assert_eq!(
        h.bb.records().last().map(|r| r.start),
        Some(1100 + 11 * 512)
    );
}
