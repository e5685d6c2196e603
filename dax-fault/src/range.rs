//! Byte ranges given as Rust ranges (the rule is in the crate docs).

use std::ops::{Bound, RangeBounds};

/// The first and last byte of `r` (inclusive), or `None` when it is empty: `a..b`,
/// `a..=b`, `a..` (to the end: `u64::MAX`), `..=b`, `..` (everything).
pub(crate) fn inclusive(r: &impl RangeBounds<u64>) -> Option<(u64, u64)> {
    let start = match r.start_bound() {
        Bound::Included(&s) => s,
        Bound::Excluded(&s) => s.checked_add(1)?,
        Bound::Unbounded => 0,
    };
    let end = match r.end_bound() {
        Bound::Included(&e) => e,
        Bound::Excluded(&e) => e.checked_sub(1)?,
        Bound::Unbounded => u64::MAX,
    };
    (start <= end).then_some((start, end))
}

#[cfg(test)]
mod tests {
    use super::inclusive;

    #[test]
    fn every_kind_of_range() {
        assert_eq!(inclusive(&(..)), Some((0, u64::MAX)));
        assert_eq!(inclusive(&(5..10)), Some((5, 9)));
        assert_eq!(inclusive(&(5..=10)), Some((5, 10)));
        assert_eq!(inclusive(&(5..)), Some((5, u64::MAX)));
        assert_eq!(inclusive(&(..=7)), Some((0, 7)));
        assert_eq!(inclusive(&(..0)), None);
        assert_eq!(inclusive(&(5..5)), None);
        #[allow(clippy::reversed_empty_ranges)]
        let backwards = 6..=5;
        assert_eq!(inclusive(&backwards), None);
        assert_eq!(
            inclusive(&(u64::MAX..=u64::MAX)),
            Some((u64::MAX, u64::MAX))
        );
        let excl = (
            std::ops::Bound::Excluded(u64::MAX),
            std::ops::Bound::Unbounded,
        );
        assert_eq!(inclusive(&excl), None);
    }
}
