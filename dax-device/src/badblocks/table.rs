//! The table algorithms as pure functions over the authoritative record list.
//!
//! Everything here works on a `Vec<u64>` of packed records (see [`super::encode`])
//! that is sorted by start sector and never holds overlapping records. The writer
//! side of [`super::Badblocks`] runs these functions under its mutex and then
//! publishes the result to the lock-free readers.
//!
//! The step structure (one small piece of the request handled per iteration, the
//! order in which the cases are tried, the index that is remembered for the final
//! merge) follows `block/badblocks.c` of Linux 6.15 because the resulting record
//! layouts are observable: they show up in `badblocks_show`, in `count`, and in what
//! a full table can still accept.

use super::{BB_MAX_LEN, MAX_BADBLOCKS};

/// Bit 63 of a packed record: the range is acknowledged.
pub(super) const ACK_BIT: u64 = 1 << 63;
/// Bits 8..0 of a packed record hold `length - 1`.
pub(super) const LEN_MASK: u64 = 0x1ff;
/// The start sector occupies bits 62..9.
pub(super) const START_SHIFT: u32 = 9;
/// 54 bits of start sector.
pub(super) const START_MASK: u64 = (1 << 54) - 1;

#[inline]
pub(super) fn start(r: u64) -> u64 {
    (r >> START_SHIFT) & START_MASK
}

#[inline]
pub(super) fn len(r: u64) -> u64 {
    (r & LEN_MASK) + 1
}

#[inline]
pub(super) fn end(r: u64) -> u64 {
    start(r) + len(r)
}

#[inline]
pub(super) fn acked(r: u64) -> bool {
    r & ACK_BIT != 0
}

/// Packs a record; callers guarantee `start < 2^54` and `1 <= len <= 512`.
#[inline]
pub(super) fn make(start: u64, len: u64, ack: bool) -> u64 {
    debug_assert!(start <= START_MASK);
    debug_assert!((1..=BB_MAX_LEN).contains(&len));
    ((start & START_MASK) << START_SHIFT) | ((len - 1) & LEN_MASK) | if ack { ACK_BIT } else { 0 }
}

/// The two bookkeeping flags of `struct badblocks` that the algorithms update.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) struct Flags {
    pub changed: bool,
    pub unacked_exist: bool,
}

/// Index of the last record that starts at or before `s` (the kernel's
/// `prev_badblocks`; its hint is only a shortcut to the same answer).
fn prev_index(recs: &[u64], s: u64) -> Option<usize> {
    recs.partition_point(|&r| start(r) <= s).checked_sub(1)
}

/// `s` lies inside `recs[i]`.
fn overlaps_front(recs: &[u64], i: usize, s: u64) -> bool {
    s >= start(recs[i]) && s < end(recs[i])
}

/// `[s, s + n)` starts before `recs[i]` and reaches into it.
fn overlaps_behind(recs: &[u64], i: usize, s: u64, n: u64) -> bool {
    s < start(recs[i]) && s + n > start(recs[i])
}

/// Inserts `[s, s + min(n, 512))` at index `at`; returns the sectors recorded.
fn insert_at(recs: &mut Vec<u64>, at: usize, s: u64, n: u64, ack: bool) -> u64 {
    let l = n.min(BB_MAX_LEN);
    recs.insert(at, make(s, l, ack));
    l
}

/// Record `p` starts exactly at `s` and touches record `p - 1` of the same ack, and
/// together they fit in one record.
fn can_combine_front(recs: &[u64], p: usize, s: u64) -> bool {
    p > 0
        && start(recs[p]) == s
        && end(recs[p - 1]) == start(recs[p])
        && len(recs[p - 1]) + len(recs[p]) <= BB_MAX_LEN
        && acked(recs[p - 1]) == acked(recs[p])
}

/// Folds record `p` into record `p - 1`.
fn front_combine(recs: &mut Vec<u64>, p: usize) {
    let merged = make(
        start(recs[p - 1]),
        len(recs[p - 1]) + len(recs[p]),
        acked(recs[p]),
    );
    recs[p - 1] = merged;
    recs.remove(p);
}

/// The piece starting at `s` can be absorbed by record `p`: same ack, and `s` is
/// inside `p` or right after it while `p` still has room to grow.
fn can_merge_front(recs: &[u64], p: usize, s: u64, ack: bool) -> bool {
    let r = recs[p];
    acked(r) == ack && (s < end(r) || (s == end(r) && len(r) < BB_MAX_LEN))
}

/// Absorbs the head of `[s, s + n)` into record `p`; returns the sectors handled.
/// Inside `p` nothing changes; right after it, `p` grows up to 512 sectors but never
/// into the following record.
fn front_merge(recs: &mut [u64], p: usize, s: u64, n: u64, ack: bool) -> u64 {
    let r = recs[p];
    if s < end(r) {
        return n.min(end(r) - s);
    }
    let mut grow = n.min(BB_MAX_LEN - len(r));
    if let Some(&next) = recs.get(p + 1) {
        grow = grow.min(start(next) - end(r));
    }
    recs[p] = make(start(r), len(r) + grow, ack);
    grow
}

/// Merges records `p` and `p + 1` when they touch, have the same ack and fit in one
/// record (`try_adjacent_combine`).
fn try_adjacent_combine(recs: &mut Vec<u64>, p: Option<usize>) -> bool {
    let Some(p) = p else { return false };
    if p + 1 >= recs.len() {
        return false;
    }
    let (a, b) = (recs[p], recs[p + 1]);
    if end(a) == start(b) && len(a) + len(b) <= BB_MAX_LEN && acked(a) == acked(b) {
        recs[p] = make(start(a), len(a) + len(b), acked(a));
        recs.remove(p + 1);
        return true;
    }
    false
}

/// What an acknowledged piece does to the unacknowledged record `p` it starts in.
enum Overwrite {
    /// `p` is acknowledged or the piece is not: acked information wins, skip.
    Skip,
    /// Overwriting needs more slots than the table has.
    NoRoom,
    /// Overwrite `len` sectors, adding `extra` (0, 1 or 2) records.
    Apply { extra: usize, len: u64 },
}

fn plan_overwrite(recs: &[u64], p: usize, s: u64, n: u64, ack: bool) -> Overwrite {
    let r = recs[p];
    if acked(r) >= ack {
        return Overwrite::Skip;
    }
    let at_start = start(r) == s;
    let (extra, len) = if end(r) <= s + n {
        // The piece covers the rest of `p`: flip it whole, or cut off its tail.
        (usize::from(!at_start), end(r) - s)
    } else {
        // The piece ends inside `p`: keep a tail, and a head unless it starts at `p`.
        (if at_start { 1 } else { 2 }, n)
    };
    if recs.len() + extra > MAX_BADBLOCKS {
        return Overwrite::NoRoom;
    }
    Overwrite::Apply { extra, len }
}

fn apply_overwrite(recs: &mut Vec<u64>, p: usize, s: u64, n: u64, extra: usize) {
    let r = recs[p];
    let (a, e, old_ack) = (start(r), end(r), acked(r));
    match extra {
        0 => recs[p] = make(a, len(r), true),
        1 if a == s => {
            recs[p] = make(a, n, true);
            recs.insert(p + 1, make(s + n, e - (s + n), old_ack));
        }
        1 => {
            recs[p] = make(a, s - a, old_ack);
            recs.insert(p + 1, make(s, n, true));
        }
        _ => {
            recs[p] = make(a, s - a, old_ack);
            recs.insert(p + 1, make(s, n, true));
            recs.insert(p + 2, make(s + n, e - (s + n), old_ack));
        }
    }
}

/// `badblocks_update_acked`: drop the hint once no unacknowledged record is left.
fn update_acked(recs: &[u64], flags: &mut Flags) {
    if flags.unacked_exist && recs.iter().all(|&r| acked(r)) {
        flags.unacked_exist = false;
    }
}

/// `_badblocks_set` on `[s, s + n)`, `n > 0`, `s + n <= 2^54`. Returns true when every
/// sector was handled; on a full table the handled head stays and false is returned.
pub(super) fn set(
    recs: &mut Vec<u64>,
    flags: &mut Flags,
    mut s: u64,
    mut n: u64,
    ack: bool,
) -> bool {
    debug_assert!(n > 0);
    let mut added = false;
    // The index the kernel remembers between steps; it decides the final merge.
    let mut prev: Option<usize> = None;
    let done = loop {
        if recs.len() >= MAX_BADBLOCKS {
            // As in the kernel, a full table refuses the step before looking at anything.
            break false;
        }
        let step = if recs.is_empty() {
            added = true;
            insert_at(recs, 0, s, n, ack)
        } else {
            match prev_index(recs, s) {
                None => {
                    // Before every record: stop at the first record's start.
                    let l = n.min(start(recs[0]) - s);
                    added = true;
                    prev = Some(0);
                    insert_at(recs, 0, s, l, ack)
                }
                Some(p) if can_combine_front(recs, p, s) => {
                    front_combine(recs, p);
                    added = true;
                    prev = Some(p);
                    0
                }
                Some(p) if can_merge_front(recs, p, s, ack) => {
                    added = true;
                    prev = Some(p);
                    front_merge(recs, p, s, n, ack)
                }
                Some(p) if overlaps_front(recs, p, s) => match plan_overwrite(recs, p, s, n, ack) {
                    Overwrite::Skip => {
                        prev = Some(p);
                        (end(recs[p]) - s).min(n)
                    }
                    Overwrite::NoRoom => break false,
                    Overwrite::Apply { extra, len } => {
                        apply_overwrite(recs, p, s, len, extra);
                        added = true;
                        if can_combine_front(recs, p, s) {
                            front_combine(recs, p);
                        }
                        prev = Some(p);
                        len
                    }
                },
                Some(p) => {
                    // After `p` without touching it: a new record, stopped at the next.
                    let mut l = n;
                    if p + 1 < recs.len() && overlaps_behind(recs, p + 1, s, l) {
                        l = l.min(start(recs[p + 1]) - s);
                    }
                    added = true;
                    prev = Some(p + 1);
                    insert_at(recs, p + 1, s, l, ack)
                }
            }
        };
        s += step;
        n -= step;
        if n == 0 {
            // The last touched record may now touch its successor.
            try_adjacent_combine(recs, prev);
            break true;
        }
    };
    if added {
        flags.changed = true;
        if ack {
            update_acked(recs, flags);
        } else {
            flags.unacked_exist = true;
        }
    }
    done
}

/// `_badblocks_clear` on `[s, s + n)`, `n > 0`, `s + n` not overflowing. Returns true
/// when at least one step succeeded (clean space counts).
pub(super) fn clear(recs: &mut Vec<u64>, flags: &mut Flags, mut s: u64, mut n: u64) -> bool {
    debug_assert!(n > 0);
    let mut cleared = false;
    loop {
        let step = if recs.is_empty() {
            cleared = true;
            n
        } else {
            match prev_index(recs, s) {
                None => {
                    cleared = true;
                    if overlaps_behind(recs, 0, s, n) {
                        start(recs[0]) - s
                    } else {
                        n
                    }
                }
                Some(p) => {
                    let r = recs[p];
                    let inside = overlaps_front(recs, p, s);
                    let strictly_inside = start(r) < s && end(r) > s + n;
                    if p + 1 >= recs.len() && !inside {
                        // After the last record.
                        cleared = true;
                        n
                    } else if recs.len() >= MAX_BADBLOCKS && strictly_inside {
                        // Splitting needs a slot the full table lacks: abandon the rest.
                        n
                    } else if inside {
                        if strictly_inside {
                            if recs.len() < MAX_BADBLOCKS {
                                recs[p] = make(start(r), s - start(r), acked(r));
                                recs.insert(p + 1, make(s + n, end(r) - (s + n), acked(r)));
                                cleared = true;
                            }
                            n
                        } else {
                            cleared = true;
                            front_clear(recs, p, s, n)
                        }
                    } else if p + 1 < recs.len() && overlaps_behind(recs, p + 1, s, n) {
                        cleared = true;
                        start(recs[p + 1]) - s
                    } else {
                        cleared = true;
                        n
                    }
                }
            }
        };
        s += step;
        n -= step;
        if n == 0 {
            break;
        }
    }
    if cleared {
        update_acked(recs, flags);
        flags.changed = true;
    }
    cleared
}

/// Bookkeeping of a clear that only met clean space outside the table's range.
pub(super) fn cleared_clean_space(recs: &[u64], flags: &mut Flags) {
    update_acked(recs, flags);
    flags.changed = true;
}

/// Removes the part of record `p` at or after `s` that `[s, s + n)` covers, when the
/// range does not end strictly inside `p` after starting past its start.
fn front_clear(recs: &mut Vec<u64>, p: usize, s: u64, n: u64) -> u64 {
    let r = recs[p];
    if s == start(r) {
        if len(r) > n {
            recs[p] = make(start(r) + n, len(r) - n, acked(r));
            n
        } else {
            recs.remove(p);
            len(r)
        }
    } else {
        // s > start(r) and the range reaches end(r) or beyond: keep the head.
        recs[p] = make(start(r), s - start(r), acked(r));
        end(r) - s
    }
}

/// `ack_all_badblocks` body, run only when `changed` is clear.
pub(super) fn ack_all(recs: &mut Vec<u64>, flags: &mut Flags) -> bool {
    if flags.changed || !flags.unacked_exist {
        return false;
    }
    for r in recs.iter_mut() {
        *r |= ACK_BIT;
    }
    let mut i = 0;
    while i < recs.len() {
        while try_adjacent_combine(recs, Some(i)) {}
        i += 1;
    }
    flags.unacked_exist = false;
    true
}

/// Result of a check scan: `(any unacked, first record hit)`.
pub(super) type Scan = Option<(bool, u64)>;

/// `_badblocks_check` over `[s, e)` with records read through `get` (`e > s`).
/// Returns whether an unacknowledged record overlaps, and the lowest overlapping
/// record. Tolerates inconsistent reads (a torn seqlock snapshot): it always stops.
#[inline]
pub(super) fn scan(n: usize, get: impl Fn(usize) -> u64, s: u64, e: u64) -> Scan {
    // First record that ends after s.
    let (mut lo, mut hi) = (0usize, n);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if end(get(mid)) <= s {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    let mut first = None;
    let mut unacked = false;
    let mut i = lo;
    while i < n {
        let r = get(i);
        if start(r) >= e {
            break;
        }
        if first.is_none() {
            first = Some(r);
        }
        if !acked(r) {
            unacked = true;
            break;
        }
        i += 1;
    }
    first.map(|r| (unacked, r))
}
