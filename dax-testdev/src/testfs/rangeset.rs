//! [`RangeSet`]: a set of device blocks kept as merged half-open runs.
//!
//! The allocator keeps its free space, its busy (freed but still durable) blocks and
//! the blocks the last checkpoint references in these.

use std::collections::BTreeMap;

/// A set of `u64`s as disjoint, non-adjacent half-open runs `start -> end`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct RangeSet {
    runs: BTreeMap<u64, u64>,
    len: u64,
}

impl RangeSet {
    /// An empty set.
    pub(crate) fn new() -> Self {
        RangeSet::default()
    }

    /// Number of values in the set.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// Whether the set is empty.
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The runs, in order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.runs.iter().map(|(&s, &e)| (s, e))
    }

    /// Adds `start .. end`, merging with overlapping or adjacent runs.
    pub(crate) fn insert(&mut self, start: u64, end: u64) {
        if start >= end {
            return;
        }
        // Take out every run that overlaps or touches [start, end] and merge it in.
        let (mut s, mut e) = (start, end);
        if let Some((&ps, &pe)) = self.runs.range(..=start).next_back()
            && pe >= start
        {
            s = ps;
            e = e.max(pe);
        }
        let touched: Vec<(u64, u64)> = self.runs.range(s..=e).map(|(&a, &b)| (a, b)).collect();
        for (a, b) in touched {
            self.runs.remove(&a);
            self.len -= b - a;
            e = e.max(b);
        }
        self.runs.insert(s, e);
        self.len += e - s;
    }

    /// Removes `start .. end`, splitting runs as needed.
    pub(crate) fn remove(&mut self, start: u64, end: u64) {
        if start >= end {
            return;
        }
        let mut touched: Vec<(u64, u64)> =
            self.runs.range(start..end).map(|(&a, &b)| (a, b)).collect();
        if let Some((&ps, &pe)) = self.runs.range(..start).next_back()
            && pe > start
        {
            touched.push((ps, pe));
        }
        for (a, b) in touched {
            self.runs.remove(&a);
            self.len -= b - a;
            if a < start {
                self.runs.insert(a, start);
                self.len += start - a;
            }
            if b > end {
                self.runs.insert(end, b);
                self.len += b - end;
            }
        }
    }

    /// Whether `v` is in the set.
    pub(crate) fn contains(&self, v: u64) -> bool {
        self.runs
            .range(..=v)
            .next_back()
            .is_some_and(|(_, &e)| v < e)
    }

    /// Whether every value of `start .. end` is in the set.
    #[cfg(test)]
    pub(crate) fn contains_all(&self, start: u64, end: u64) -> bool {
        start >= end
            || self
                .runs
                .range(..=start)
                .next_back()
                .is_some_and(|(_, &e)| end <= e)
    }

    /// The parts of `start .. end` that are in the set, in order.
    pub(crate) fn intersect(&self, start: u64, end: u64) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        if start >= end {
            return out;
        }
        if let Some((_, &pe)) = self.runs.range(..start).next_back()
            && pe > start
        {
            out.push((start, pe.min(end)));
        }
        for (&a, &b) in self.runs.range(start..end) {
            out.push((a, b.min(end)));
        }
        out
    }

    /// The run containing `v`, if any.
    pub(crate) fn run_containing(&self, v: u64) -> Option<(u64, u64)> {
        self.runs
            .range(..=v)
            .next_back()
            .filter(|&(_, &e)| v < e)
            .map(|(&s, &e)| (s, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_merges_and_remove_splits() {
        let mut s = RangeSet::new();
        s.insert(10, 20);
        s.insert(30, 40);
        s.insert(20, 30); // adjacent on both sides
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![(10, 40)]);
        assert_eq!(s.len(), 30);
        s.remove(15, 25);
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![(10, 15), (25, 40)]);
        assert_eq!(s.len(), 20);
        assert!(s.contains(10) && !s.contains(15) && s.contains(39) && !s.contains(40));
        assert!(s.contains_all(25, 40) && !s.contains_all(14, 26));
        assert_eq!(s.intersect(12, 30), vec![(12, 15), (25, 30)]);
        s.insert(5, 50);
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![(5, 50)]);
        s.remove(0, 100);
        assert!(s.is_empty());
        s.insert(7, 7);
        assert!(s.is_empty());
    }

    #[test]
    fn model_check_against_a_bitmap() {
        let mut s = RangeSet::new();
        let mut bits = [false; 64];
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        // Under Miri (safe code, 100 to 1000 times slower) 200 steps.
        for _ in 0..if cfg!(miri) { 200 } else { 2000 } {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let a = x % 64;
            let b = (x >> 8) % 65;
            let (a, b) = (a.min(b), a.max(b));
            if x & (1 << 20) != 0 {
                s.insert(a, b);
                bits[a as usize..b as usize].fill(true);
            } else {
                s.remove(a, b);
                bits[a as usize..b as usize].fill(false);
            }
            for (i, &bit) in bits.iter().enumerate() {
                assert_eq!(s.contains(i as u64), bit);
            }
            assert_eq!(s.len(), bits.iter().filter(|b| **b).count() as u64);
            let runs: Vec<_> = s.iter().collect();
            for w in runs.windows(2) {
                assert!(w[0].1 < w[1].0, "runs not merged: {runs:?}");
            }
        }
    }
}
