//! Round-trips of the sysfs text format (ref: BB-14, BB-15, §2.3.6): `show` of a
//! table, stored line by line into a fresh table, gives the same records (shift 0).

use dax_device::badblocks::{BB_MAX_LEN, BadRange, Badblocks};
use proptest::prelude::*;

/// Stores every line of `text` into `bb` with the given `unack`.
fn store_lines(bb: &Badblocks, text: &str, unack: bool) {
    for line in text.split_inclusive('\n') {
        assert_eq!(bb.store(line.as_bytes(), unack), Ok(line.len()), "{line:?}");
    }
}

/// Rebuilds a table from `show(true)` (unacknowledged, stored with unack = 1) and the
/// acknowledged lines of `show(false)` (stored with unack = 0), in table order.
fn rebuild(src: &Badblocks) -> Badblocks {
    let dst = Badblocks::new();
    let all = src.show(false);
    let unacked_text = src.show(true);
    // Starts are unique, so a line identifies its record.
    let unacked: Vec<&str> = unacked_text.split_inclusive('\n').collect();
    for line in all.split_inclusive('\n') {
        let unack = unacked.contains(&line);
        store_lines(&dst, line, unack);
    }
    dst
}

/// True when storing the records in order cannot merge any of them: no two touching
/// records with the same ack where the first could still grow.
fn canonical(records: &[BadRange]) -> bool {
    records.windows(2).all(|w| {
        !(w[0].end() == w[1].start
            && w[0].acknowledged == w[1].acknowledged
            && w[0].len < BB_MAX_LEN)
    })
}

#[test]
fn bb14_bb15_show_store_roundtrip_acknowledged() {
    // ref: BB-14, BB-15
    let src = Badblocks::new();
    assert!(src.set(0, 1000, true));
    assert!(src.set(2000, 7, true));
    assert!(src.set(5000, 1, true));
    assert!(src.set(123_456_789_012, 300, true));
    let text = src.show(false);
    assert_eq!(text, "0 512\n512 488\n2000 7\n5000 1\n123456789012 300\n");
    let dst = Badblocks::new();
    store_lines(&dst, &text, false);
    assert_eq!(dst.records(), src.records());
    assert_eq!(dst.raw_records(), src.raw_records());
}

#[test]
fn bb14_bb15_show_store_roundtrip_mixed_ack() {
    // ref: BB-14, BB-15
    let src = Badblocks::new();
    assert!(src.set(0, 16, false));
    assert!(src.set(4, 4, true));
    assert!(src.set(100, 600, false));
    assert_eq!(src.show(true), "0 4\n8 8\n100 512\n612 88\n");
    let dst = rebuild(&src);
    assert_eq!(dst.records(), src.records());
}

proptest! {
    #![proptest_config(dax_testkit::miri::proptest_config(ProptestConfig::default()))]

    #[test]
    fn show_store_roundtrip_reproduces_canonical_tables(
        ops in prop::collection::vec((0u64..3000, 1u64..700, any::<bool>(), any::<bool>()), 1..40)
    ) {
        let src = Badblocks::new();
        for (s, n, ack, clear) in ops {
            if clear {
                src.clear(s, n / 4 + 1);
            } else {
                src.set(s, n, ack);
            }
        }
        let dst = rebuild(&src);
        let (a, b) = (src.records(), dst.records());
        // The same sectors with the same acks, always.
        let cover = |rs: &[BadRange]| {
            let mut v = Vec::new();
            for r in rs {
                v.extend((r.start..r.end()).map(|x| (x, r.acknowledged)));
            }
            v
        };
        prop_assert_eq!(cover(&a), cover(&b));
        // Exactly the same records when no two of them could merge on the way in.
        if canonical(&a) {
            prop_assert_eq!(a, b);
        }
    }
}
