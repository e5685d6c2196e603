//! Fuzz target `badblocks`: the badblocks table (`dax_device::badblocks`) against a
//! model of its bad sectors, and its sysfs text parser.
//!
//! The model ([`Sectors`]) is the set of bad sectors with each one's acknowledgement,
//! kept as maximal runs so that ranges anywhere in the 2^54-sector space (and the
//! overflowing ones past it) cost what their runs cost. Operations are decoded from
//! the input: set (acknowledged or not), clear, ack_all, clear_changed, check, show,
//! and `store` of a text line (structured or raw bytes). The table starts empty,
//! full (512 one-sector records), disabled, or with a shift (which only `show` uses).
//!
//! After every step: the table's invariants (sorted, disjoint, 1..=512 sectors a
//! record, at most 512 records, the packed form decoding to the records), its
//! coverage equal to the model, `check` equal to the lowest overlapping record and
//! to the model, and the flags' documented rules (`changed` raised by every successful
//! set or clear and cleared only by `clear_changed`; `unacked_exist` never false while
//! an unacknowledged record exists).
//!
//! A set that returns false follows the documented semantics: only a (nearly) full
//! table or a range cut at [`BB_SECTOR_LIMIT`] fails a non-empty set, and then a head
//! of the range is recorded and the rest of the table is untouched. A clear fails
//! exactly when the table is full and the range lies strictly inside one record.
//! `store` is checked against a restatement of its parsing rules (`sscanf("%llu
//! %d%c")`), then like the set it performs. At the end the table's `show` text, stored
//! line by line into a new table, must give back the same bad sectors.
//!
//! No device memory is involved: this target has no canaries.

use std::collections::BTreeMap;

use dax_device::DaxError;
use dax_device::badblocks::{
    BB_MAX_LEN, BB_SECTOR_LIMIT, BadRange, Badblocks, BadblocksCheck, MAX_BADBLOCKS, decode,
};

use super::Input;

/// Operations per input at most.
const MAX_OPS: usize = 200;

/// A set of bad sectors, each acknowledged or not, as maximal runs: start → (end,
/// acknowledged). Adjacent runs always differ in acknowledgement.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sectors(BTreeMap<u64, (u64, bool)>);

/// One piece of a range as the model sees it: `(start, end, None | Some(acked))`.
type Piece = (u64, u64, Option<bool>);

impl Sectors {
    /// The sectors `records` cover.
    pub fn of(records: &[BadRange]) -> Sectors {
        let mut s = Sectors::default();
        let sorted = records.windows(2).all(|w| w[0].end() <= w[1].start);
        if !sorted {
            for r in records {
                s.assign(r.start, r.end(), |_| Some(r.acknowledged));
            }
            return s;
        }
        // Sorted and disjoint (the table's invariant): runs in one pass.
        let mut last: Option<(u64, u64, bool)> = None;
        for r in records {
            match last {
                Some((st, e, a)) if e == r.start && a == r.acknowledged => {
                    last = Some((st, r.end(), a));
                }
                _ => {
                    if let Some((st, e, a)) = last {
                        s.0.insert(st, (e, a));
                    }
                    last = Some((r.start, r.end(), r.acknowledged));
                }
            }
        }
        if let Some((st, e, a)) = last {
            s.0.insert(st, (e, a));
        }
        s
    }

    /// Whether no sector is bad.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `lo .. hi` cut into maximal pieces of equal state, in order, covering it all.
    pub fn pieces(&self, lo: u64, hi: u64) -> Vec<Piece> {
        let mut out: Vec<Piece> = Vec::new();
        let mut push = |s: u64, e: u64, v: Option<bool>| {
            if s >= e {
                return;
            }
            match out.last_mut() {
                Some(last) if last.1 == s && last.2 == v => last.1 = e,
                _ => out.push((s, e, v)),
            }
        };
        let mut at = lo;
        let first = self
            .0
            .range(..=lo)
            .next_back()
            .filter(|(_, (e, _))| *e > lo)
            .map(|(&s, _)| s)
            .unwrap_or(lo);
        for (&s, &(e, ack)) in self.0.range(first..hi) {
            if e <= at {
                continue;
            }
            push(at, s.max(at), None);
            push(s.max(at), e.min(hi), Some(ack));
            at = e.min(hi);
        }
        push(at, hi, None);
        out
    }

    /// Sets every sector of `lo .. hi` to `f(its old state)`.
    pub fn assign(&mut self, lo: u64, hi: u64, f: impl Fn(Option<bool>) -> Option<bool>) {
        if lo >= hi {
            return;
        }
        let pieces = self.pieces(lo, hi);
        // Cut the runs that stick out of the range, drop the inside, re-add.
        if let Some((&s, &(e, ack))) = self.0.range(..lo).next_back()
            && e > lo
        {
            self.0.insert(s, (lo, ack));
            if e > hi {
                self.0.insert(hi, (e, ack));
            }
        }
        let inside: Vec<u64> = self.0.range(lo..hi).map(|(&s, _)| s).collect();
        for s in inside {
            let (e, ack) = self.0.remove(&s).unwrap();
            if e > hi {
                self.0.insert(hi, (e, ack));
            }
        }
        for (s, e, v) in pieces {
            if let Some(ack) = f(v) {
                self.0.insert(s, (e, ack));
            }
        }
        self.normalize_around(lo, hi);
    }

    /// Merges touching runs of equal acknowledgement near `lo .. hi`.
    fn normalize_around(&mut self, lo: u64, hi: u64) {
        let from = self
            .0
            .range(..lo)
            .next_back()
            .map(|(&s, _)| s)
            .unwrap_or(lo);
        let keys: Vec<u64> = self.0.range(from..=hi).map(|(&s, _)| s).collect();
        let mut prev: Option<u64> = None;
        for s in keys {
            let Some(&(e, ack)) = self.0.get(&s) else {
                continue;
            };
            if let Some(p) = prev {
                let (pe, pack) = self.0[&p];
                if pe == s && pack == ack {
                    self.0.remove(&s);
                    self.0.insert(p, (e, ack));
                    continue;
                }
            }
            prev = Some(s);
        }
    }

    /// Whether any sector is unacknowledged.
    pub fn any_unacked(&self) -> bool {
        self.0.values().any(|&(_, ack)| !ack)
    }

    /// The kernel result `check` must give for `lo .. hi`: -1 if an unacknowledged
    /// sector is in it, else 1 if a bad one is, else 0.
    pub fn check_result(&self, lo: u64, hi: u64) -> i32 {
        let p = self.pieces(lo, hi);
        if p.iter().any(|x| x.2 == Some(false)) {
            -1
        } else if p.iter().any(|x| x.2 == Some(true)) {
            1
        } else {
            0
        }
    }
}

/// The first sector of `lo .. hi` where `a` and `b` differ.
fn first_difference(a: &Sectors, b: &Sectors, lo: u64, hi: u64) -> Option<u64> {
    let pa = a.pieces(lo, hi);
    let pb = b.pieces(lo, hi);
    let (mut i, mut j) = (0, 0);
    while i < pa.len() && j < pb.len() {
        let s = pa[i].0.max(pb[j].0);
        if pa[i].2 != pb[j].2 {
            return Some(s);
        }
        if pa[i].1 < pb[j].1 {
            i += 1;
        } else if pb[j].1 < pa[i].1 {
            j += 1;
        } else {
            i += 1;
            j += 1;
        }
    }
    None
}

/// One decoded operation.
#[derive(Debug, Clone)]
pub enum Op {
    /// `set(s, n, ack)`.
    Set {
        /// First sector.
        s: u64,
        /// Sectors.
        n: u64,
        /// Acknowledged.
        ack: bool,
    },
    /// `clear(s, n)`.
    Clear {
        /// First sector.
        s: u64,
        /// Sectors.
        n: u64,
    },
    /// `ack_all()`.
    AckAll,
    /// `clear_changed()`.
    ClearChanged,
    /// `check(s, n)`.
    Check {
        /// First sector.
        s: u64,
        /// Sectors.
        n: u64,
    },
    /// `show(unack)`.
    Show {
        /// Only unacknowledged records.
        unack: bool,
    },
    /// `store(text, unack)`.
    Store {
        /// The text written to the sysfs file.
        text: Vec<u8>,
        /// Store unacknowledged.
        unack: bool,
    },
}

fn sector(i: &mut Input<'_>) -> u64 {
    match i.below(8) {
        0..=3 => i.below(1200),
        4 => i.below(48),
        5 => BB_SECTOR_LIMIT - 1 - i.below(2000),
        6 => BB_SECTOR_LIMIT + i.below(100),
        _ => i.edge_u64(),
    }
}

fn count(i: &mut Input<'_>) -> u64 {
    match i.below(8) {
        0..=2 => i.range(1, 8),
        3 | 4 => i.range(1, 64),
        5 => i.range(400, 800),
        6 => i.range(0, 20_000),
        _ => i.edge_u64(),
    }
}

/// A sysfs line: usually well formed (with whitespace, signs, overflowing digits and
/// trailing bytes the parser must judge), sometimes raw bytes.
fn store_text(i: &mut Input<'_>) -> Vec<u8> {
    if i.chance(40) {
        let n = i.below(24) as usize;
        return i.bytes(n).to_vec();
    }
    const SPACES: [&str; 6] = ["", " ", "  ", "\t", "\n", "\u{a0}"];
    let ws = |i: &mut Input<'_>| -> Vec<u8> {
        match i.below(6) {
            5 => vec![0xa0],
            k => SPACES[k as usize].as_bytes().to_vec(),
        }
    };
    let mut t = ws(i);
    let start = match i.below(4) {
        0 => u128::from(i.below(1200)),
        1 => u128::from(BB_SECTOR_LIMIT - i.below(1000)),
        2 => u128::from(i.u64()) * u128::from(1 + i.below(1000)),
        _ => u128::from(i.u64()),
    };
    t.extend_from_slice(start.to_string().as_bytes());
    let sep = i.below(8);
    if sep != 0 {
        t.extend(ws(i));
        if sep == 7 {
            t.push(b' ');
        }
    }
    if i.chance(30) {
        t.push(i.pick(b"-+-"));
    }
    let len = match i.below(4) {
        0 => u128::from(i.range(1, 64)),
        1 => u128::from(i.range(400, 2000)),
        2 => u128::from(i.u32()) + (u128::from(i.below(3)) << 32),
        _ => u128::from(i.u64()) * u128::from(1 + i.below(1000)),
    };
    t.extend_from_slice(len.to_string().as_bytes());
    match i.below(6) {
        0 | 1 => {}
        2 | 3 => t.push(b'\n'),
        4 => {
            let n = i.below(4) as usize;
            t.extend_from_slice(i.bytes(n));
        }
        _ => {
            t.push(b'\n');
            let n = i.below(4) as usize;
            t.extend_from_slice(i.bytes(n));
        }
    }
    t
}

/// Decodes one operation.
pub fn op(i: &mut Input<'_>) -> Op {
    match i.below(24) {
        0..=7 => Op::Set {
            s: sector(i),
            n: count(i),
            ack: i.bool(),
        },
        8..=11 => Op::Clear {
            s: sector(i),
            n: count(i),
        },
        12 => Op::AckAll,
        13 | 14 => Op::ClearChanged,
        15..=18 => Op::Check {
            s: sector(i),
            n: count(i),
        },
        19 => Op::Show { unack: i.bool() },
        _ => Op::Store {
            text: store_text(i),
            unack: i.bool(),
        },
    }
}

/// What the kernel's `sscanf(page, "%llu %d%c")` and the length check make of a
/// sysfs line, restated from `Badblocks::store`'s docs: `Some((start, length))`, or
/// `None` for EINVAL.
pub fn reference_parse(text: &[u8]) -> Option<(u64, i32)> {
    let text = text.split(|&b| b == 0).next().unwrap_or(&[]);
    let space = |b: &u8| matches!(*b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | 0xa0);
    let skip = |t: &[u8]| -> usize { t.iter().take_while(|b| space(b)).count() };
    let digits = |t: &[u8]| -> usize { t.iter().take_while(|b| b.is_ascii_digit()).count() };
    let value = |d: &[u8]| -> u64 {
        d.iter().fold(0u64, |v, &c| {
            v.wrapping_mul(10).wrapping_add(u64::from(c - b'0'))
        })
    };
    let mut at = skip(text);
    let n1 = digits(&text[at..]);
    if n1 == 0 {
        return None;
    }
    let start = value(&text[at..at + n1]);
    at += n1;
    at += skip(&text[at..]);
    let neg = text.get(at) == Some(&b'-');
    if neg {
        at += 1;
    }
    let n2 = digits(&text[at..]);
    if n2 == 0 {
        return None;
    }
    let mag = value(&text[at..at + n2]);
    at += n2;
    if text.get(at).is_some_and(|&b| b != b'\n') {
        return None;
    }
    let v = if neg { mag.wrapping_neg() } else { mag };
    let len = v as u32 as i32;
    if len <= 0 {
        return None;
    }
    Some((start, len))
}

/// The text `show` must give for `records`, a page at most (the kernel's rules, from
/// `Badblocks::show`'s docs).
fn expected_show(records: &[BadRange], shift: u32, unack: bool) -> String {
    let mut out = String::new();
    let mut produced = 0usize;
    for r in records {
        if produced >= 4096 {
            break;
        }
        if unack && r.acknowledged {
            continue;
        }
        let line = format!(
            "{} {}\n",
            r.start.checked_shl(shift).unwrap_or(0),
            (r.len as u32).checked_shl(shift).unwrap_or(0)
        );
        let room = 4095 - produced.min(4095);
        out.push_str(&line[..line.len().min(room)]);
        produced += line.len();
    }
    out
}

/// What `check(s, n)` must answer for `records` (sorted, not overlapping): the
/// lowest overlapping record in full, unacknowledged if any overlapping record is
/// (`badblocks_check`). Shared with dax-device's `badblocks_model` test.
pub fn expected_check(records: &[BadRange], s: u64, n: u64) -> BadblocksCheck {
    let e = s.saturating_add(n.max(1));
    let hits: Vec<&BadRange> = records
        .iter()
        .filter(|r| r.start < e && s < r.end())
        .collect();
    let Some(first) = hits.first() else {
        return BadblocksCheck::Clean;
    };
    let (first_bad, bad_sectors) = (first.start, first.len);
    if hits.iter().any(|r| !r.acknowledged) {
        BadblocksCheck::Unacknowledged {
            first_bad,
            bad_sectors,
        }
    } else {
        BadblocksCheck::Acknowledged {
            first_bad,
            bad_sectors,
        }
    }
}

/// The table, the model and the flags the model predicts.
pub struct Harness {
    /// The table under test.
    pub bb: Badblocks,
    /// Its bad sectors, as the model has them.
    pub model: Sectors,
    enabled: bool,
    shift: u32,
    changed: bool,
    /// `None`: the model does not know (the table may keep a stale hint).
    unacked_exist: Option<bool>,
}

impl Harness {
    /// A harness over `bb`, taking its current state as the model's.
    pub fn new(bb: Badblocks) -> Harness {
        let records = bb.records();
        Harness {
            model: Sectors::of(&records),
            enabled: bb.shift().is_some(),
            shift: bb.shift().unwrap_or(0),
            changed: bb.changed(),
            unacked_exist: Some(bb.unacked_exist()),
            bb,
        }
    }

    /// Runs one operation and checks the table against the model.
    pub fn step(&mut self, op: &Op) {
        let before = self.bb.records();
        let raw_before = self.bb.raw_records();
        match op {
            &Op::Set { s, n, ack } => {
                let r = self.bb.set(s, n, ack);
                self.after_set(&before, s, n, ack, r, "set");
            }
            &Op::Clear { s, n } => self.clear(&before, &raw_before, s, n),
            Op::AckAll => {
                let eligible = self.enabled && !self.changed && self.bb.unacked_exist();
                self.bb.ack_all();
                if eligible {
                    let all = self.model.pieces(0, u64::MAX);
                    for (s, e, v) in all {
                        if v.is_some() {
                            self.model.assign(s, e, |_| Some(true));
                        }
                    }
                    self.unacked_exist = Some(false);
                    let recs = self.bb.records();
                    let mergeable = recs
                        .windows(2)
                        .any(|w| w[0].end() == w[1].start && w[0].len + w[1].len <= BB_MAX_LEN);
                    assert!(!mergeable, "ack_all left a mergeable pair: {recs:?}");
                } else {
                    assert_eq!(self.bb.raw_records(), raw_before, "ack_all must do nothing");
                }
            }
            Op::ClearChanged => {
                self.bb.clear_changed();
                if self.enabled {
                    self.changed = false;
                }
                assert_eq!(self.bb.raw_records(), raw_before, "clear_changed");
            }
            &Op::Check { s, n } => {
                let got = self.bb.check(s, n);
                assert_eq!(got, expected_check(&before, s, n), "check({s}, {n})");
                let hi = s.saturating_add(n.max(1));
                assert_eq!(
                    got.kernel_result(),
                    self.model.check_result(s, hi),
                    "check({s}, {n}) against the model"
                );
            }
            &Op::Show { unack } => {
                let text = self.bb.show(unack);
                let want = if self.enabled {
                    expected_show(&before, self.shift, unack)
                } else {
                    String::new()
                };
                assert_eq!(text, want, "show({unack})");
                if self.enabled && unack && text.is_empty() {
                    self.unacked_exist = Some(false);
                }
            }
            Op::Store { text, unack } => {
                let got = self.bb.store(text, *unack);
                match reference_parse(text) {
                    None => assert!(
                        matches!(got, Err(DaxError::InvalidArgument { .. })),
                        "store({:?}) parsed to {got:?}, expected EINVAL",
                        String::from_utf8_lossy(text)
                    ),
                    Some((start, len)) => {
                        let len = u64::from(len.unsigned_abs());
                        if start.checked_add(len).is_none_or(|e| e > BB_SECTOR_LIMIT) {
                            assert!(
                                matches!(got, Err(DaxError::InvalidArgument { .. })),
                                "store of a range past 2^54 gave {got:?}"
                            );
                            assert_eq!(self.bb.raw_records(), raw_before);
                        } else {
                            let ok = match got {
                                Ok(n) => {
                                    assert_eq!(n, text.len(), "store returns the input length");
                                    true
                                }
                                Err(DaxError::NoSpace { .. }) => false,
                                Err(e) => panic!("store({start}, {len}) failed with {e:?}"),
                            };
                            self.after_set(&before, start, len, !unack, ok, "store");
                        }
                    }
                }
            }
        }
        self.verify();
    }

    /// Checks what `set(s, n, ack)` (or a store doing it) that returned `ret` did.
    fn after_set(&mut self, before: &[BadRange], s: u64, n: u64, ack: bool, ret: bool, what: &str) {
        let after = self.bb.records();
        let actual = Sectors::of(&after);
        if !self.enabled || n == 0 || s >= BB_SECTOR_LIMIT {
            assert!(!ret, "{what}({s}, {n}) must fail");
            assert_eq!(actual, self.model, "a refused {what} changed the table");
            return;
        }
        let lo = s;
        let hi = s.saturating_add(n).min(BB_SECTOR_LIMIT);
        let cut = hi - lo < n;
        let mut applied = self.model.clone();
        applied.assign(
            lo,
            hi,
            |old| if ack { Some(true) } else { old.or(Some(false)) },
        );
        // Outside the range nothing moves.
        assert_eq!(
            first_difference(&actual, &self.model, 0, lo),
            None,
            "{what}({s}, {n}, {ack}) touched sectors before its range"
        );
        assert_eq!(
            first_difference(&actual, &self.model, hi, u64::MAX),
            None,
            "{what}({s}, {n}, {ack}) touched sectors after its range"
        );
        if ret {
            assert!(!cut, "{what}({s}, {n}) past the sector limit returned true");
            assert_eq!(
                first_difference(&actual, &applied, lo, hi),
                None,
                "{what}({s}, {n}, {ack}) returned true but did not apply"
            );
        } else {
            let head = first_difference(&actual, &applied, lo, hi);
            if let Some(h) = head {
                // Only a (nearly) full table leaves a range partly done.
                assert!(
                    before.len() >= MAX_BADBLOCKS - 1 || after.len() >= MAX_BADBLOCKS - 1,
                    "{what}({s}, {n}, {ack}) failed with {} -> {} records",
                    before.len(),
                    after.len()
                );
                assert_eq!(
                    first_difference(&actual, &self.model, h, hi),
                    None,
                    "failed {what}({s}, {n}, {ack}) changed sectors past its processed head"
                );
            } else {
                assert!(
                    cut || before.len() >= MAX_BADBLOCKS - 1 || after.len() >= MAX_BADBLOCKS - 1,
                    "{what}({s}, {n}, {ack}) failed on a table with room ({} records)",
                    before.len()
                );
            }
        }
        // Did any step "add" (record, extend, merge, or skip as covered)? Known for
        // sure in these cases; only observable while `changed` was clear.
        let coverage_changed = first_difference(&actual, &self.model, lo, hi).is_some();
        let fully_acked = self.model.pieces(lo, hi).iter().all(|p| p.2 == Some(true));
        let mergeable = before.windows(2).any(|w| {
            w[0].end() == w[1].start
                && w[0].acknowledged == w[1].acknowledged
                && w[0].len + w[1].len <= BB_MAX_LEN
        });
        let predicted = if coverage_changed || (ret && ack) || (ret && !fully_acked) {
            Some(true)
        } else if !ack && fully_acked && !mergeable {
            Some(false)
        } else {
            None
        };
        let added = if self.changed {
            predicted
        } else {
            let observed = self.bb.changed();
            if let Some(p) = predicted {
                assert_eq!(observed, p, "changed after {what}({s}, {n}, {ack})");
            }
            Some(observed)
        };
        let unacked_after = after.iter().any(|r| !r.acknowledged);
        if let (Some(a), Some(prior)) = (added, self.unacked_exist) {
            let want = if !a {
                prior
            } else if ack {
                prior && unacked_after
            } else {
                true
            };
            assert_eq!(
                self.bb.unacked_exist(),
                want,
                "unacked_exist after {what}({s}, {n}, {ack})"
            );
        }
        self.changed |= added.unwrap_or(false) || self.bb.changed();
        self.unacked_exist = Some(self.bb.unacked_exist());
        self.model = actual;
    }

    fn clear(&mut self, before: &[BadRange], raw_before: &[u64], s: u64, n: u64) {
        let ret = self.bb.clear(s, n);
        if !self.enabled || n == 0 {
            assert!(!ret, "clear({s}, {n}) must fail");
            assert_eq!(self.bb.raw_records(), raw_before);
            return;
        }
        let e = s.saturating_add(n).min(BB_SECTOR_LIMIT);
        let needs_split = s < e && before.iter().any(|r| r.start < s && r.end() > e);
        let full = before.len() >= MAX_BADBLOCKS;
        assert_eq!(
            ret,
            !(full && needs_split),
            "clear({s}, {n}) with {} records",
            before.len()
        );
        if ret {
            self.model.assign(s.min(e), e, |_| None);
            self.changed = true;
            // Recomputed by a successful clear.
            self.unacked_exist = Some(self.model.any_unacked());
        } else {
            assert_eq!(
                self.bb.raw_records(),
                raw_before,
                "abandoned clear changed the table"
            );
        }
    }

    /// The table's invariants, and its state against the model.
    pub fn verify(&self) {
        let records = self.bb.records();
        let raw = self.bb.raw_records();
        assert!(records.len() <= MAX_BADBLOCKS, "{} records", records.len());
        assert_eq!(raw.len(), records.len());
        for (r, &w) in records.iter().zip(&raw) {
            assert!((1..=BB_MAX_LEN).contains(&r.len), "bad length in {r:?}");
            assert!(r.start < BB_SECTOR_LIMIT, "{r:?} past the sector limit");
            assert_eq!(decode(w), *r, "packed record {w:#x}");
            assert_eq!(r.encode(), Some(w), "record {r:?} packs back");
        }
        for w in records.windows(2) {
            assert!(
                w[0].end() <= w[1].start,
                "unsorted or overlapping: {:?} {:?}",
                w[0],
                w[1]
            );
        }
        assert_eq!(self.bb.count(), records.len());
        assert_eq!(self.bb.is_empty(), records.is_empty());
        assert_eq!(
            Sectors::of(&records),
            self.model,
            "coverage differs from the model"
        );
        assert_eq!(self.bb.changed(), self.changed, "changed");
        if let Some(u) = self.unacked_exist {
            assert_eq!(self.bb.unacked_exist(), u, "unacked_exist");
        }
        if records.iter().any(|r| !r.acknowledged) {
            assert!(self.bb.unacked_exist(), "unacked record without the hint");
        }
    }
}

/// The fuzz target: decodes a starting table and up to 200 operations from `data`
/// and checks each against the model (see the module docs).
pub fn run(data: &[u8]) {
    let mut i = Input::new(data);
    let bb = match i.below(8) {
        0..=3 => Badblocks::new(),
        4 | 5 => {
            // Full: 512 one-sector records at even sectors, acks from the input.
            let bb = Badblocks::new();
            let acks = i.u64();
            for k in 0..MAX_BADBLOCKS as u64 {
                assert!(bb.set(2 * k, 1, (acks >> (k % 64)) & 1 == 1 || k % 3 == 0));
            }
            if i.bool() {
                bb.clear_changed();
            }
            bb
        }
        6 => Badblocks::with_shift(i.below(70) as u32),
        _ => Badblocks::disabled(),
    };
    let mut h = Harness::new(bb);
    h.verify();
    let mut ops = 0;
    while !i.is_empty() && ops < MAX_OPS {
        let op = op(&mut i);
        h.step(&op);
        ops += 1;
    }
    round_trip(&h);
}

/// `show` text stored back line by line gives the same bad sectors (acknowledged).
fn round_trip(h: &Harness) {
    if !h.enabled || h.shift != 0 {
        return;
    }
    let text = h.bb.show(false);
    if text.len() >= 4000 {
        return; // cut at a page: not all records are in it
    }
    let copy = Badblocks::new();
    for line in text.split_inclusive('\n') {
        copy.store(line.as_bytes(), false)
            .unwrap_or_else(|e| panic!("show line {line:?} does not store back: {e:?}"));
    }
    let mut want = h.model.clone();
    want.assign(0, u64::MAX, |v| v.map(|_| true));
    assert_eq!(
        Sectors::of(&copy.records()),
        want,
        "show text stored back differs"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sectors_of_sorted_records_equals_assigning_them() {
        let r = |start, len, acknowledged| BadRange {
            start,
            len,
            acknowledged,
        };
        let recs = [
            r(0, 4, true),
            r(4, 4, true),
            r(8, 2, false),
            r(20, 1, false),
        ];
        let mut want = Sectors::default();
        for x in &recs {
            want.assign(x.start, x.end(), |_| Some(x.acknowledged));
        }
        assert_eq!(Sectors::of(&recs), want);
        assert_eq!(Sectors::of(&recs).pieces(0, 21).len(), 4);
    }

    #[test]
    fn sectors_merge_and_split() {
        let mut s = Sectors::default();
        s.assign(10, 20, |_| Some(true));
        s.assign(20, 30, |_| Some(true));
        assert_eq!(s.pieces(0, 40).len(), 3);
        s.assign(15, 16, |_| Some(false));
        assert_eq!(
            s.pieces(10, 30),
            vec![
                (10, 15, Some(true)),
                (15, 16, Some(false)),
                (16, 30, Some(true))
            ]
        );
        s.assign(0, 100, |_| None);
        assert!(s.is_empty());
    }

    #[test]
    fn reference_parse_agrees_on_known_lines() {
        assert_eq!(reference_parse(b"10 8\n"), Some((10, 8)));
        assert_eq!(reference_parse(b"10 -4294967295"), Some((10, 1)));
        assert_eq!(reference_parse(b"10 8 "), None);
        assert_eq!(reference_parse(b"10 0"), None);
    }
}
