//! Conformance tests for `dax_device::badblocks` against the behaviour reference
//! (`kernel-dax-semantics.md` §1.3 BB-01..BB-19, §2.3, §3.3 edge cases 19-34, §5 Q1-Q3).
//! Every test asserts exact record layouts, return values and flags.

use dax_device::DaxError;
use dax_device::badblocks::{
    BB_MAX_LEN, BB_SECTOR_LIMIT, BadRange, Badblocks, BadblocksCheck, MAX_BADBLOCKS, decode, encode,
};

const A: bool = true; // acknowledged
const U: bool = false; // unacknowledged

fn recs(bb: &Badblocks) -> Vec<(u64, u64, bool)> {
    bb.records()
        .iter()
        .map(|r| (r.start, r.len, r.acknowledged))
        .collect()
}

fn flags(bb: &Badblocks) -> (bool, bool) {
    (bb.changed(), bb.unacked_exist())
}

fn acked(first_bad: u64, bad_sectors: u64) -> BadblocksCheck {
    BadblocksCheck::Acknowledged {
        first_bad,
        bad_sectors,
    }
}

fn unacked(first_bad: u64, bad_sectors: u64) -> BadblocksCheck {
    BadblocksCheck::Unacknowledged {
        first_bad,
        bad_sectors,
    }
}

/// 512 one-sector acknowledged records at sectors 0, 2, 4, ..., 1022.
fn full_table() -> Badblocks {
    let bb = Badblocks::new();
    for i in 0..MAX_BADBLOCKS as u64 {
        assert!(bb.set(2 * i, 1, A));
    }
    assert_eq!(bb.count(), MAX_BADBLOCKS);
    bb
}

/// `n` one-sector acknowledged records at sectors 0, 2, ..., 2(n-1).
fn table_with(n: usize) -> Badblocks {
    let bb = Badblocks::new();
    for i in 0..n as u64 {
        assert!(bb.set(2 * i, 1, A));
    }
    assert_eq!(bb.count(), n);
    bb
}

// ---------------------------------------------------------------------------
// §1.3 BB rows
// ---------------------------------------------------------------------------

#[test]
fn bb01_record_format_packs_ack_start_and_len_minus_one() {
    // ref: BB-01
    assert_eq!(encode(0, 1, U), Some(0));
    assert_eq!(encode(100, 8, A), Some((1 << 63) | (100 << 9) | 7));
    assert_eq!(
        encode(BB_SECTOR_LIMIT - 1, 512, U),
        Some(((BB_SECTOR_LIMIT - 1) << 9) | 511)
    );
    assert_eq!(encode(BB_SECTOR_LIMIT, 1, A), None);
    assert_eq!(encode(0, 0, A), None);
    assert_eq!(encode(0, 513, A), None);
    assert_eq!(
        decode(0),
        BadRange {
            start: 0,
            len: 1,
            acknowledged: false
        }
    );
    assert_eq!(
        decode(u64::MAX),
        BadRange {
            start: BB_SECTOR_LIMIT - 1,
            len: 512,
            acknowledged: true
        }
    );
    let r = BadRange {
        start: 7,
        len: 3,
        acknowledged: true,
    };
    assert_eq!(r.end(), 10);
    assert_eq!(decode(r.encode().unwrap()), r);

    let bb = Badblocks::new();
    assert!(bb.set(10, 8, A));
    assert!(bb.set(30, 1, U));
    assert_eq!(bb.raw_records(), vec![(1 << 63) | (10 << 9) | 7, 30 << 9]);
    // Sorted by start, non-overlapping.
    assert_eq!(recs(&bb), vec![(10, 8, A), (30, 1, U)]);
}

#[test]
fn bb02_limits_512_records_of_at_most_512_sectors() {
    // ref: BB-02
    assert_eq!(MAX_BADBLOCKS, 512);
    assert_eq!(BB_MAX_LEN, 512);
    let bb = full_table();
    assert!(!bb.set(5000, 1, A));
    assert_eq!(bb.count(), 512);
    let bb = Badblocks::new();
    assert!(bb.set(0, 513, A));
    assert_eq!(recs(&bb), vec![(0, 512, A), (512, 1, A)]);
}

#[test]
fn bb03_check_result_is_0_1_or_minus_1() {
    // ref: BB-03
    let bb = Badblocks::new();
    assert!(bb.set(10, 10, A));
    assert!(bb.set(30, 10, U));
    let clean = bb.check(0, 10);
    assert_eq!(clean, BadblocksCheck::Clean);
    assert_eq!(
        (clean.kernel_result(), clean.is_bad(), clean.first_bad()),
        (0, false, None)
    );
    let a = bb.check(0, 11);
    assert_eq!(a, acked(10, 10));
    assert_eq!(
        (a.kernel_result(), a.is_bad(), a.first_bad()),
        (1, true, Some((10, 10)))
    );
    let u = bb.check(35, 100);
    assert_eq!(u, unacked(30, 10));
    assert_eq!((u.kernel_result(), u.is_bad()), (-1, true));
    // Any unacknowledged overlap wins, wherever it is in the range.
    assert_eq!(bb.check(0, 31), unacked(10, 10));
    // Half-open ranges: touching is not overlapping.
    assert_eq!(bb.check(20, 10), BadblocksCheck::Clean);
    assert_eq!(bb.check(40, 10), BadblocksCheck::Clean);
    assert_eq!(bb.check(19, 1), acked(10, 10));
}

#[test]
fn bb04_check_reports_lowest_overlapping_record_in_full() {
    // ref: BB-04, Q3
    let bb = Badblocks::new();
    assert!(bb.set(100, 50, A));
    assert!(bb.set(200, 10, U));
    // Start precedes the query and the length is not clipped.
    assert_eq!(bb.check(140, 5), acked(100, 50));
    assert_eq!(bb.check(149, 100), unacked(100, 50));
    assert_eq!(bb.check(150, 100), unacked(200, 10));
}

#[test]
#[cfg_attr(
    miri,
    ignore = "fills the 512-record table: ~40 s under Miri (bb02 fills it there)"
)]
fn bb05_set_returns_true_only_when_fully_processed() {
    // ref: BB-05
    let bb = Badblocks::new();
    assert!(bb.set(0, 8, A));
    assert!(!bb.set(100, 0, A), "zero sectors");
    assert!(!Badblocks::disabled().set(0, 8, A), "disabled");
    // Partial processing: the processed head stays and the call reports failure.
    let bb = table_with(511);
    bb.clear_changed();
    assert!(!bb.set(2000, 1000, A));
    assert_eq!(bb.count(), 512);
    assert_eq!(
        bb.records()[511],
        BadRange {
            start: 2000,
            len: 512,
            acknowledged: A
        }
    );
    assert!(bb.changed(), "the head was added");
}

#[test]
fn bb06_same_ack_overlap_is_skipped_and_touching_record_grows() {
    // ref: BB-06
    let bb = Badblocks::new();
    assert!(bb.set(0, 16, U));
    assert!(bb.set(4, 20, U)); // covered part skipped, rest extends [0,16)
    assert_eq!(recs(&bb), vec![(0, 24, U)]);
    // Growth stops at 512 sectors ...
    assert!(bb.set(24, 600, U));
    assert_eq!(recs(&bb), vec![(0, 512, U), (512, 112, U)]);
    // ... and never reaches into the next record.
    let bb = Badblocks::new();
    assert!(bb.set(0, 500, A));
    assert!(bb.set(510, 10, A));
    assert!(bb.set(500, 20, A));
    assert_eq!(recs(&bb), vec![(0, 510, A), (510, 10, A)]);
}

#[test]
fn bb07_unacked_set_over_acked_is_ignored_and_succeeds() {
    // ref: BB-07
    let bb = Badblocks::new();
    assert!(bb.set(0, 16, A));
    assert!(bb.set(0, 32, U));
    assert_eq!(recs(&bb), vec![(0, 16, A), (16, 16, U)]);
    let bb = Badblocks::new();
    assert!(bb.set(10, 10, A));
    assert!(bb.set(0, 30, U));
    assert_eq!(recs(&bb), vec![(0, 10, U), (10, 10, A), (20, 10, U)]);
}

#[test]
fn bb08_acked_set_overwrites_unacked_in_every_geometry() {
    // ref: BB-08
    let fresh = || {
        let bb = Badblocks::new();
        assert!(bb.set(0, 16, U));
        bb
    };
    // Strictly inside: head, S, tail (2 extra slots).
    let bb = fresh();
    assert!(bb.set(4, 4, A));
    assert_eq!(recs(&bb), vec![(0, 4, U), (4, 4, A), (8, 8, U)]);
    // Exactly the tail: shrink P, add S.
    let bb = fresh();
    assert!(bb.set(8, 8, A));
    assert_eq!(recs(&bb), vec![(0, 8, U), (8, 8, A)]);
    // From P's start, shorter: S then P's remainder.
    let bb = fresh();
    assert!(bb.set(0, 4, A));
    assert_eq!(recs(&bb), vec![(0, 4, A), (4, 12, U)]);
    // All of P from its start: flip P.
    let bb = fresh();
    assert!(bb.set(0, 16, A));
    assert_eq!(recs(&bb), vec![(0, 16, A)]);
    // The tail and beyond: the overwritten tail then grows.
    let bb = fresh();
    assert!(bb.set(8, 16, A));
    assert_eq!(recs(&bb), vec![(0, 8, U), (8, 16, A)]);
    // After an overwrite, P merges with a touching acknowledged predecessor.
    let bb = Badblocks::new();
    assert!(bb.set(0, 8, A));
    assert!(bb.set(8, 8, U));
    assert!(bb.set(8, 4, A));
    assert_eq!(recs(&bb), vec![(0, 12, A), (12, 4, U)]);
}

#[test]
#[cfg_attr(
    miri,
    ignore = "fills the 512-record table: ~50 s under Miri (bb02 fills it there)"
)]
fn bb08_overwrite_needing_slots_the_table_lacks_fails() {
    // ref: BB-08, Q2
    // 511 records: the split into head/S/tail needs 2 more -> 513 > 512 -> fail.
    let bb = table_with(510);
    assert!(bb.set(5000, 16, U));
    bb.clear_changed();
    let before = recs(&bb);
    assert!(!bb.set(5004, 4, A));
    assert_eq!(recs(&bb), before);
    assert_eq!(flags(&bb), (false, true));
    // Cutting the tail needs 1 -> 512, allowed.
    assert!(bb.set(5008, 8, A));
    assert_eq!(bb.count(), 512);
    assert_eq!(&recs(&bb)[510..], &[(5000, 8, U), (5008, 8, A)]);
}

#[test]
fn bb09_last_touched_record_merges_with_successor_and_predecessor() {
    // ref: BB-09
    // S immediately before E: one record.
    let bb = Badblocks::new();
    assert!(bb.set(8, 8, A));
    assert!(bb.set(0, 8, A));
    assert_eq!(recs(&bb), vec![(0, 16, A)]);
    // S filling the gap between two records of the same ack joins all three.
    let bb = Badblocks::new();
    assert!(bb.set(0, 8, U));
    assert!(bb.set(16, 8, U));
    assert!(bb.set(8, 8, U));
    assert_eq!(recs(&bb), vec![(0, 24, U)]);
    // Not when the result would exceed 512 sectors.
    let bb = Badblocks::new();
    assert!(bb.set(8, 510, A));
    assert!(bb.set(0, 8, A));
    assert_eq!(recs(&bb), vec![(0, 8, A), (8, 510, A)]);
    // Predecessor merge: two touching same-ack records left unmerged by a clear
    // are combined when a set starts exactly at the second one.
    let bb = Badblocks::new();
    assert!(bb.set(0, 600, A));
    assert!(bb.clear(0, 100));
    assert_eq!(recs(&bb), vec![(100, 412, A), (512, 88, A)]);
    assert!(bb.set(512, 10, A));
    assert_eq!(recs(&bb), vec![(100, 500, A)]);
}

#[test]
fn bb09_final_merge_runs_even_when_nothing_was_added() {
    // ref: BB-09, BB-11: the closing merge is not a step, so it does not raise
    // `changed` when every step was an ignored unacked-over-acked piece.
    let bb = Badblocks::new();
    assert!(bb.set(0, 600, A));
    assert!(bb.clear(0, 100));
    bb.clear_changed();
    assert!(bb.set(105, 5, U));
    assert_eq!(recs(&bb), vec![(100, 500, A)]);
    assert_eq!(flags(&bb), (false, false));
}

#[test]
fn bb10_long_ranges_become_consecutive_records() {
    // ref: BB-10
    let bb = Badblocks::new();
    assert!(bb.set(1000, 2000, U));
    assert_eq!(
        recs(&bb),
        vec![
            (1000, 512, U),
            (1512, 512, U),
            (2024, 512, U),
            (2536, 464, U)
        ]
    );
}

#[test]
fn bb11_bookkeeping_of_changed_and_unacked_exist() {
    // ref: BB-11
    let bb = Badblocks::new();
    assert_eq!(flags(&bb), (false, false));
    assert!(bb.set(0, 8, U));
    assert_eq!(flags(&bb), (true, true));
    bb.clear_changed();
    assert_eq!(flags(&bb), (false, true));
    // Acknowledged set: recompute; an unacked record remains.
    assert!(bb.set(100, 8, A));
    assert_eq!(flags(&bb), (true, true));
    // Acknowledged set that removes the last unacked record.
    assert!(bb.set(0, 8, A));
    assert_eq!(flags(&bb), (true, false));
    assert_eq!(recs(&bb), vec![(0, 8, A), (100, 8, A)]);
    // Unacked set that adds something raises unacked_exist.
    bb.clear_changed();
    assert!(bb.set(200, 1, U));
    assert_eq!(flags(&bb), (true, true));
}

#[test]
fn bb12_clear_shrinks_deletes_and_splits_preserving_ack() {
    // ref: BB-12
    let bb = Badblocks::new();
    assert!(bb.set(0, 10, A));
    assert!(bb.set(20, 10, U));
    assert!(bb.set(40, 10, A));
    bb.clear_changed();
    assert!(bb.clear(5, 40));
    assert_eq!(recs(&bb), vec![(0, 5, A), (45, 5, A)]);
    assert_eq!(flags(&bb), (true, false), "unacked_exist recomputed");
    // Shrink from the head.
    assert!(bb.clear(45, 2));
    assert_eq!(recs(&bb), vec![(0, 5, A), (47, 3, A)]);
    // Split.
    assert!(bb.clear(1, 2));
    assert_eq!(recs(&bb), vec![(0, 1, A), (3, 2, A), (47, 3, A)]);
    // Clearing clean space succeeds and raises `changed`.
    bb.clear_changed();
    assert!(bb.clear(1000, 10));
    assert!(bb.changed());
    assert_eq!(bb.count(), 3);
    // Disabled / zero sectors.
    assert!(!bb.clear(0, 0));
    assert!(!Badblocks::disabled().clear(0, 10));
}

#[test]
fn bb12_clear_keeps_unacked_exist_while_unacked_records_remain() {
    // ref: BB-12
    let bb = Badblocks::new();
    assert!(bb.set(0, 10, U));
    assert!(bb.set(20, 10, U));
    assert!(bb.clear(0, 10));
    assert_eq!(flags(&bb), (true, true));
    assert!(bb.clear(20, 10));
    assert_eq!(flags(&bb), (true, false));
    assert!(bb.is_empty());
}

#[test]
fn bb13_ack_all_acks_merges_and_clears_unacked_exist() {
    // ref: BB-13
    let bb = Badblocks::new();
    assert!(bb.set(0, 300, A));
    assert!(bb.set(300, 300, U));
    assert!(bb.set(600, 100, A));
    assert_eq!(recs(&bb), vec![(0, 300, A), (300, 300, U), (600, 100, A)]);
    bb.clear_changed();
    bb.ack_all();
    // Left to right: 300+300 > 512 stays apart, 300+100 = 400 merges.
    assert_eq!(recs(&bb), vec![(0, 300, A), (300, 400, A)]);
    assert_eq!(flags(&bb), (false, false), "ack_all does not raise changed");
    // Nothing to do when unacked_exist is clear, even with mergeable records.
    let bb = Badblocks::new();
    assert!(bb.set(0, 600, A));
    assert!(bb.clear(0, 100));
    bb.clear_changed();
    bb.ack_all();
    assert_eq!(recs(&bb), vec![(100, 412, A), (512, 88, A)]);
    // Disabled table: no effect.
    Badblocks::disabled().ack_all();
}

#[test]
fn bb14_show_lines_shift_unack_and_disabled() {
    // ref: BB-14
    let bb = Badblocks::new();
    assert!(bb.set(10, 8, A));
    assert!(bb.set(30, 1, U));
    assert_eq!(bb.show(false), "10 8\n30 1\n");
    assert_eq!(bb.show(true), "30 1\n");
    assert!(bb.unacked_exist());
    assert_eq!(Badblocks::disabled().show(false), "");
    let bb = Badblocks::with_shift(4);
    assert!(bb.set(2, 3, A));
    assert_eq!(bb.show(false), "32 48\n");
}

#[test]
#[cfg_attr(
    miri,
    ignore = "fills the 512-record table: ~55 s under Miri (bb02 fills it there)"
)]
fn bb14_show_stops_at_one_page() {
    // ref: BB-14: 512 lines of "<11 digits> 1\n" (14 bytes) would be 7168 bytes; the
    // kernel's one-page buffer holds 4095 of them plus its NUL.
    let bb = Badblocks::new();
    for i in 0..512u64 {
        assert!(bb.set(10_000_000_000 + 2 * i, 1, A));
    }
    let text = bb.show(false);
    assert_eq!(text.len(), 4095);
    let full = (0..512u64)
        .map(|i| format!("{} 1\n", 10_000_000_000 + 2 * i))
        .collect::<String>();
    assert_eq!(text, full[..4095]);
    assert!(
        !text.ends_with('\n'),
        "last line cut short by the bounded print"
    );
}

#[test]
fn bb15_store_parses_sets_and_returns_length() {
    // ref: BB-15
    let bb = Badblocks::new();
    assert_eq!(bb.store(b"100 8", false), Ok(5));
    assert_eq!(bb.store(b"200 8\n", true), Ok(6));
    assert_eq!(bb.store(b"300 2\nignored", false), Ok(13));
    assert_eq!(recs(&bb), vec![(100, 8, A), (200, 8, U), (300, 2, A)]);
    assert!(matches!(
        bb.store(b"100 8x", false),
        Err(DaxError::InvalidArgument { .. })
    ));
    assert_eq!(bb.store(b"1 0", false).unwrap_err().errno(), 22);
    // Past the 54-bit start field: refused (dax-rs limit).
    let text = format!("{} 10", BB_SECTOR_LIMIT - 4);
    assert!(matches!(
        bb.store(text.as_bytes(), false),
        Err(DaxError::InvalidArgument { .. })
    ));
    // Disabled: set fails -> ENOSPC.
    assert_eq!(
        Badblocks::disabled()
            .store(b"1 1", false)
            .unwrap_err()
            .errno(),
        28
    );
}

#[test]
fn bb16_init_enabled_disabled_and_shift() {
    // ref: BB-16
    let bb = Badblocks::new();
    assert_eq!((bb.shift(), bb.count(), bb.is_empty()), (Some(0), 0, true));
    assert_eq!(flags(&bb), (false, false));
    assert_eq!(Badblocks::default().shift(), Some(0));
    assert_eq!(Badblocks::with_shift(3).shift(), Some(3));
    let d = Badblocks::disabled();
    assert_eq!(d.shift(), None);
    assert!(d.is_empty());
    assert!(!d.set(0, 1, A));
    assert_eq!(d.check(0, 100), BadblocksCheck::Clean);
    fn is_send_sync<T: Send + Sync>() {}
    is_send_sync::<Badblocks>();
}

#[test]
fn bb18_shift_rounding_is_a_no_op_as_in_6_15_4() {
    // ref: BB-18, Q1 (reproduced: no rounding in set, clear or check)
    let bb = Badblocks::with_shift(3);
    assert!(bb.set(9, 1, A));
    assert_eq!(recs(&bb), vec![(9, 1, A)]);
    // check is not rounded out: [8, 9) misses [9, 10).
    assert_eq!(bb.check(8, 1), BadblocksCheck::Clean);
    assert_eq!(bb.check(9, 1), acked(9, 1));
    // clear is not rounded in: clearing [9, 10) removes the record (a rounding
    // clear would have collapsed to nothing).
    assert!(bb.clear(9, 1));
    assert!(bb.is_empty());
}

#[test]
fn bb19_disk_attribute_shows_everything_and_stores_acknowledged() {
    // ref: BB-19: /sys/block/<disk>/badblocks is show(unack = 0) / store(unack = 0).
    let bb = Badblocks::new();
    assert!(bb.set(5, 1, U));
    assert_eq!(bb.store(b"10 4\n", false), Ok(5));
    assert_eq!(bb.show(false), "5 1\n10 4\n");
    assert_eq!(recs(&bb), vec![(5, 1, U), (10, 4, A)]);
}

// ---------------------------------------------------------------------------
// Overflow and no-panic rules (dax-rs)
// ---------------------------------------------------------------------------

#[test]
fn set_past_sector_limit_records_up_to_the_limit_and_fails() {
    let bb = Badblocks::new();
    assert!(!bb.set(u64::MAX - 5, 10, A), "start beyond 2^54");
    assert!(!bb.set(BB_SECTOR_LIMIT, 1, A));
    assert!(bb.is_empty());
    assert!(!bb.changed());
    assert!(
        !bb.set(BB_SECTOR_LIMIT - 4, u64::MAX, A),
        "s + sectors overflows u64"
    );
    assert_eq!(recs(&bb), vec![(BB_SECTOR_LIMIT - 4, 4, A)]);
    assert!(
        bb.set(BB_SECTOR_LIMIT - 8, 8, A),
        "exactly up to the limit is fine"
    );
    assert_eq!(recs(&bb), vec![(BB_SECTOR_LIMIT - 8, 8, A)]);
}

#[test]
fn clear_and_check_saturate_at_u64_max() {
    let bb = Badblocks::new();
    assert!(bb.set(BB_SECTOR_LIMIT - 8, 8, U));
    assert_eq!(bb.check(0, u64::MAX), unacked(BB_SECTOR_LIMIT - 8, 8));
    assert_eq!(bb.check(u64::MAX, u64::MAX), BadblocksCheck::Clean);
    assert_eq!(bb.check(BB_SECTOR_LIMIT, u64::MAX), BadblocksCheck::Clean);
    assert!(
        bb.clear(u64::MAX - 1, u64::MAX),
        "clean space beyond the limit"
    );
    assert!(bb.clear(BB_SECTOR_LIMIT - 2, u64::MAX));
    assert_eq!(recs(&bb), vec![(BB_SECTOR_LIMIT - 8, 6, U)]);
    assert!(bb.clear(0, u64::MAX));
    assert!(bb.is_empty());
}

#[test]
fn check_with_zero_sectors_asks_about_sector_s() {
    // ref: §2.3.2 (the kernel warns on sectors == 0 and scans once)
    let bb = Badblocks::new();
    assert!(bb.set(0, 10, A));
    assert_eq!(bb.check(5, 0), acked(0, 10));
    assert_eq!(bb.check(0, 0), acked(0, 10));
    assert_eq!(bb.check(10, 0), BadblocksCheck::Clean);
}

// ---------------------------------------------------------------------------
// §3.3 edge cases 19-34
// ---------------------------------------------------------------------------

#[test]
fn bb_edge19_empty_table_check_is_clean() {
    // ref: BB-03, edge 19 (no outputs: `Clean` carries none)
    let bb = Badblocks::new();
    let r = bb.check(0, 1000);
    assert_eq!(r, BadblocksCheck::Clean);
    assert_eq!(r.first_bad(), None);
    assert_eq!(r.kernel_result(), 0);
}

#[test]
fn bb_edge20_check_reports_record_starting_before_query() {
    // ref: BB-04, edge 20
    let bb = Badblocks::new();
    assert!(bb.set(90, 15, A));
    let r = bb.check(100, 10);
    assert_eq!(r, acked(90, 15));
    assert_eq!(r.kernel_result(), 1);
}

#[test]
fn bb_edge21_unacked_anywhere_gives_minus_one_with_first_record() {
    // ref: BB-03, BB-04, edge 21
    let bb = Badblocks::new();
    assert!(bb.set(10, 10, A));
    assert!(bb.set(30, 10, U));
    let r = bb.check(15, 20);
    assert_eq!(r, unacked(10, 10));
    assert_eq!(r.kernel_result(), -1);
}

#[test]
fn bb_edge22_long_set_splits_into_512_sector_records() {
    // ref: BB-10, edge 22
    let bb = Badblocks::new();
    assert!(bb.set(0, 1000, A));
    assert_eq!(recs(&bb), vec![(0, 512, A), (512, 488, A)]);
}

#[test]
fn bb_edge23_adjacent_sets_merge_only_with_same_ack() {
    // ref: BB-06, edge 23
    let bb = Badblocks::new();
    assert!(bb.set(0, 8, A));
    assert!(bb.set(8, 8, A));
    assert_eq!(recs(&bb), vec![(0, 16, A)]);
    let bb = Badblocks::new();
    assert!(bb.set(0, 8, A));
    assert!(bb.set(8, 8, U));
    assert_eq!(recs(&bb), vec![(0, 8, A), (8, 8, U)]);
    let bb = Badblocks::new();
    assert!(bb.set(0, 8, U));
    assert!(bb.set(8, 8, A));
    assert_eq!(recs(&bb), vec![(0, 8, U), (8, 8, A)]);
}

#[test]
fn bb_edge24_unacked_inside_acked_changes_nothing() {
    // ref: BB-07, BB-11, edge 24
    let bb = Badblocks::new();
    assert!(bb.set(0, 16, A));
    assert_eq!(flags(&bb), (true, false));
    assert!(bb.set(4, 4, U));
    assert_eq!(recs(&bb), vec![(0, 16, A)]);
    assert_eq!(flags(&bb), (true, false));
    // With `changed` cleared first, it stays clear.
    bb.clear_changed();
    assert!(bb.set(4, 4, U));
    assert_eq!(flags(&bb), (false, false));
}

#[test]
fn bb_edge25_acked_inside_unacked_splits_in_three() {
    // ref: BB-08, edge 25
    let bb = Badblocks::new();
    assert!(bb.set(0, 16, U));
    assert!(bb.set(4, 4, A));
    assert_eq!(recs(&bb), vec![(0, 4, U), (4, 4, A), (8, 8, U)]);
    assert!(bb.unacked_exist());
}

#[test]
fn bb_edge26_same_ack_reset_is_true_unchanged_and_raises_changed() {
    // ref: BB-06, BB-11, edge 26
    for ack in [A, U] {
        let bb = Badblocks::new();
        assert!(bb.set(0, 16, ack));
        bb.clear_changed();
        assert!(bb.set(2, 10, ack));
        assert_eq!(recs(&bb), vec![(0, 16, ack)]);
        assert!(bb.changed());
    }
}

#[test]
#[cfg_attr(
    miri,
    ignore = "fills the 512-record table: ~40 s under Miri (bb02 fills it there)"
)]
fn bb_edge27_full_table_rejects_every_set_and_store() {
    // ref: BB-05, Q2, edge 27
    let bb = full_table();
    bb.clear_changed();
    let before = bb.raw_records();
    assert!(!bb.set(0, 1, A), "already covered, same ack");
    assert!(!bb.set(1, 1, A), "would merge two records into one");
    assert!(!bb.set(5000, 1, U));
    assert_eq!(bb.raw_records(), before);
    assert_eq!(flags(&bb), (false, false));
    assert_eq!(
        bb.store(b"0 1\n", false),
        Err(DaxError::NoSpace {
            what: "badblocks table is full"
        })
    );
    assert_eq!(bb.store(b"0 1\n", false).unwrap_err().errno(), 28);
    // A clear that frees a slot makes room again.
    assert!(bb.clear(0, 1));
    assert!(bb.set(5000, 1, A));
}

#[test]
fn bb_edge28_clear_splits_removes_and_accepts_clean_gaps() {
    // ref: BB-12, edge 28
    let bb = Badblocks::new();
    assert!(bb.set(0, 16, A));
    assert!(bb.clear(4, 4));
    assert_eq!(recs(&bb), vec![(0, 4, A), (8, 8, A)]);
    let bb = Badblocks::new();
    assert!(bb.set(0, 16, U));
    assert!(bb.clear(4, 4));
    assert_eq!(recs(&bb), vec![(0, 4, U), (8, 8, U)]);
    assert!(bb.clear(0, 16));
    assert!(bb.is_empty());
    let bb = Badblocks::new();
    assert!(bb.set(0, 16, A));
    assert!(bb.clear(0, 16));
    assert!(bb.is_empty());
    let bb = Badblocks::new();
    assert!(bb.set(0, 4, A));
    assert!(bb.set(8, 4, A));
    assert!(bb.clear(4, 4));
    assert_eq!(recs(&bb), vec![(0, 4, A), (8, 4, A)]);
}

#[test]
#[cfg_attr(
    miri,
    ignore = "fills the 512-record table: ~50 s under Miri (bb02 fills it there)"
)]
fn bb_edge29_full_table_clear_inside_one_record_fails_unchanged() {
    // ref: BB-12, edge 29
    let bb = table_with(511);
    assert!(bb.set(2000, 16, A));
    assert_eq!(bb.count(), 512);
    bb.clear_changed();
    let before = bb.raw_records();
    assert!(!bb.clear(2004, 4));
    assert_eq!(bb.raw_records(), before);
    assert!(!bb.changed());
    // Clears that need no split still work on a full table.
    assert!(bb.clear(2000, 4));
    assert!(bb.clear(2010, 6));
    assert_eq!(
        bb.records()[511],
        BadRange {
            start: 2004,
            len: 6,
            acknowledged: A
        }
    );
    assert_eq!(bb.count(), 512);
}

#[test]
fn bb_edge30_ack_all_needs_changed_clear() {
    // ref: BB-13, edge 30
    let bb = Badblocks::new();
    assert!(bb.set(0, 8, U));
    assert!(bb.set(8, 8, A));
    assert!(bb.set(16, 8, U));
    let before = recs(&bb);
    assert_eq!(before, vec![(0, 8, U), (8, 8, A), (16, 8, U)]);
    bb.ack_all();
    assert_eq!(recs(&bb), before);
    assert_eq!(flags(&bb), (true, true));
    bb.clear_changed();
    bb.ack_all();
    assert_eq!(recs(&bb), vec![(0, 24, A)]);
    assert_eq!(flags(&bb), (false, false));
    // Merging stops at 512 sectors.
    let bb = Badblocks::new();
    assert!(bb.set(0, 500, U));
    assert!(bb.set(500, 20, A));
    bb.clear_changed();
    bb.ack_all();
    assert_eq!(recs(&bb), vec![(0, 500, A), (500, 20, A)]);
}

#[test]
fn bb_edge31_show_all_unacked_only_and_stale_hint_cleared() {
    // ref: BB-14, edge 31
    let bb = Badblocks::new();
    assert!(bb.set(10, 8, A));
    assert!(bb.set(30, 1, U));
    assert_eq!(bb.show(false), "10 8\n30 1\n");
    assert_eq!(bb.show(true), "30 1\n");
    assert!(bb.unacked_exist());

    // Only acknowledged records but the hint is set: an unacked set whose only step
    // combined two acknowledged records raises the hint without adding anything
    // unacknowledged.
    let bb = Badblocks::new();
    assert!(bb.set(0, 600, A));
    assert!(bb.clear(0, 100));
    assert!(bb.set(512, 10, U));
    assert_eq!(recs(&bb), vec![(100, 500, A)]);
    assert!(bb.unacked_exist());
    assert_eq!(bb.show(false), "100 500\n");
    assert!(bb.unacked_exist(), "show(unack = 0) leaves the hint alone");
    assert_eq!(bb.show(true), "");
    assert!(!bb.unacked_exist());
}

#[test]
fn bb_edge32_store_syntax() {
    // ref: BB-15, edge 32
    let bb = Badblocks::new();
    assert_eq!(bb.store(b"10 8", false), Ok(4));
    assert_eq!(recs(&bb), vec![(10, 8, A)]);
    let bb = Badblocks::new();
    assert_eq!(bb.store(b"10 8\n", false), Ok(5));
    assert_eq!(recs(&bb), vec![(10, 8, A)]);
    for bad in [&b"10 8 "[..], b"10 0", b"10 -3", b"x", b"10\n"] {
        let bb = Badblocks::new();
        assert_eq!(
            bb.store(bad, false).unwrap_err().errno(),
            22,
            "{:?}",
            String::from_utf8_lossy(bad)
        );
        assert!(bb.is_empty());
    }
    let bb = Badblocks::new();
    assert_eq!(bb.store(b"0 2000", false), Ok(6));
    assert_eq!(
        recs(&bb),
        vec![(0, 512, A), (512, 512, A), (1024, 512, A), (1536, 464, A)]
    );
}

#[test]
fn bb_edge33_zero_sectors_and_disabled_table() {
    // ref: BB-05, BB-12, BB-14, BB-16, edge 33
    let bb = Badblocks::new();
    assert!(!bb.set(0, 0, A));
    assert!(!bb.clear(0, 0));
    assert!(bb.is_empty());
    assert_eq!(flags(&bb), (false, false));
    let d = Badblocks::disabled();
    assert!(!d.set(0, 8, A));
    assert!(!d.clear(0, 8));
    assert_eq!(d.show(false), "");
    assert_eq!(d.show(true), "");
    assert_eq!(d.check(0, 8), BadblocksCheck::Clean);
    assert_eq!(d.check(0, 8).kernel_result(), 0);
}

#[test]
fn bb_edge34_shift_3_set_is_not_rounded_quirk_q1_reproduced() {
    // ref: BB-18, Q1, edge 34. Deliberately reproduces 6.15.4: the range is NOT
    // rounded out to [8, 16) (that is the proposed upstream fix, not adopted here
    // because no upstream tree available to us carries it).
    let bb = Badblocks::with_shift(3);
    assert!(bb.set(9, 1, A));
    assert_eq!(recs(&bb), vec![(9, 1, A)]);
    assert_eq!(bb.show(false), "72 8\n");
}
