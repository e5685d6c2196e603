//! No input panics, loops or corrupts the table (DESIGN "No panic on bad input"):
//! `s + sectors` overflow, starts past the 54-bit record field, zero lengths,
//! arbitrary store text. Built with overflow checks (test profile), so any
//! unchecked arithmetic would fail here.

use dax_device::badblocks::{BB_SECTOR_LIMIT, Badblocks};
use proptest::prelude::*;

fn edge_u64() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0u64),
        Just(1),
        Just(511),
        Just(512),
        Just(BB_SECTOR_LIMIT - 513),
        Just(BB_SECTOR_LIMIT - 1),
        Just(BB_SECTOR_LIMIT),
        Just(BB_SECTOR_LIMIT + 1),
        Just(u64::MAX / 2),
        Just(u64::MAX - 1),
        Just(u64::MAX),
        (BB_SECTOR_LIMIT - 4096)..=BB_SECTOR_LIMIT,
        any::<u64>(),
        0u64..4096,
    ]
}

fn well_formed(bb: &Badblocks) {
    let recs = bb.records();
    assert!(recs.len() <= 512);
    for r in &recs {
        assert!((1..=512).contains(&r.len));
        assert!(r.end() <= BB_SECTOR_LIMIT, "{r:?} past the limit");
    }
    for w in recs.windows(2) {
        assert!(w[0].end() <= w[1].start);
    }
}

#[test]
fn clear_at_u64_max_is_clean_space() {
    let bb = Badblocks::new();
    assert!(bb.set(0, 8, false));
    bb.clear_changed();
    assert!(bb.clear(u64::MAX, 1));
    assert!(bb.clear(u64::MAX, u64::MAX));
    assert!(bb.clear(BB_SECTOR_LIMIT, 5));
    assert!(bb.changed());
    assert_eq!(bb.count(), 1);
    assert_eq!(bb.check(u64::MAX, 0).kernel_result(), 0);
}

proptest! {
    #![proptest_config(dax_testkit::miri::proptest_config(ProptestConfig::default()))]

    #[test]
    #[cfg_attr(
        miri,
        ignore = "most sets of an extreme length fill the 512-record table: ~40 s each under Miri"
    )]
    fn no_panic_on_extreme_ranges(
        ops in prop::collection::vec((0u8..4, edge_u64(), edge_u64(), any::<bool>()), 1..60)
    ) {
        let bb = Badblocks::with_shift(9);
        for (kind, s, n, ack) in ops {
            match kind {
                0 => { bb.set(s, n, ack); }
                1 => { bb.clear(s, n); }
                2 => { bb.check(s, n); }
                _ => { bb.show(ack); bb.ack_all(); }
            }
            well_formed(&bb);
        }
    }

    #[test]
    fn no_panic_on_arbitrary_store_text(text in prop::collection::vec(any::<u8>(), 0..40), unack in any::<bool>()) {
        let bb = Badblocks::new();
        if let Ok(n) = bb.store(&text, unack) {
            prop_assert_eq!(n, text.len());
        }
        well_formed(&bb);
    }

    #[test]
    fn no_panic_on_numeric_store_text(s in edge_u64(), n in any::<i64>(), nl in any::<bool>()) {
        let bb = Badblocks::new();
        let text = format!("{s} {n}{}", if nl { "\n" } else { "" });
        let r = bb.store(text.as_bytes(), false);
        let len = n as i32; // the kernel keeps the low 32 bits
        let fits = s.checked_add(len.max(1) as u64).is_some_and(|e| e <= BB_SECTOR_LIMIT);
        if len > 0 && fits && len <= 512 * 512 {
            prop_assert_eq!(r, Ok(text.len()));
            prop_assert!(bb.check(s, len as u64).is_bad());
        } else if len > 0 && fits {
            // More than 512 records' worth: the table fills, ENOSPC (head recorded).
            prop_assert_eq!(r.unwrap_err().errno(), 28);
            prop_assert_eq!(bb.count(), 512);
        } else {
            prop_assert_eq!(r.unwrap_err().errno(), 22);
        }
        well_formed(&bb);
    }
}
