//! [`ExtentMap`]: one file's block map, file block → device block runs.
//!
//! This is the in-memory form of an inode's extent tree (ext4's `ext4_extent`, XFS's
//! data fork). Runs never overlap; two runs are merged when they are contiguous in
//! both the file and the device and have the same state and shared flag.

use std::collections::BTreeMap;

/// One run of a file's blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Extent {
    /// First device block.
    pub(crate) dev: u64,
    /// Number of blocks (> 0).
    pub(crate) len: u64,
    /// Allocated but reading as zeros (ext4/XFS unwritten extents).
    pub(crate) unwritten: bool,
    /// The blocks were reflinked and may be shared with other files (a hint: the
    /// allocator's reference counts are the truth, see `Allocator::shared_prefix`).
    pub(crate) shared: bool,
}

impl Extent {
    /// The same run's tail, from `skip` blocks in.
    fn skip(self, skip: u64) -> Extent {
        Extent {
            dev: self.dev + skip,
            len: self.len - skip,
            ..self
        }
    }

    /// The same run cut to `len` blocks.
    fn take(self, len: u64) -> Extent {
        Extent {
            len: self.len.min(len),
            ..self
        }
    }

    fn same_kind(&self, o: &Extent) -> bool {
        self.unwritten == o.unwritten && self.shared == o.shared
    }
}

/// What a file block is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lookup {
    /// No blocks: `len` blocks until the next extent, `None` when none follows.
    Hole { len: Option<u64> },
    /// Blocks: the extent from the looked-up block on.
    Extent(Extent),
}

/// A file's extent map: `file block -> Extent`, non-overlapping.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ExtentMap {
    map: BTreeMap<u64, Extent>,
}

impl ExtentMap {
    /// An empty map (a file that is all hole).
    pub(crate) fn new() -> Self {
        ExtentMap::default()
    }

    /// What file block `fb` is.
    pub(crate) fn lookup(&self, fb: u64) -> Lookup {
        if let Some((&s, e)) = self.map.range(..=fb).next_back()
            && fb < s + e.len
        {
            return Lookup::Extent(e.skip(fb - s));
        }
        let next = self.map.range(fb..).next().map(|(&s, _)| s - fb);
        Lookup::Hole { len: next }
    }

    /// The pieces of `fb .. fb + len` that have blocks, clipped to the range, in order.
    pub(crate) fn pieces(&self, fb: u64, len: u64) -> Vec<(u64, Extent)> {
        let end = fb.saturating_add(len);
        let mut out = Vec::new();
        if let Some((&s, e)) = self.map.range(..fb).next_back()
            && s + e.len > fb
        {
            out.push((fb, e.skip(fb - s).take(end - fb)));
        }
        for (&s, e) in self.map.range(fb..end) {
            out.push((s, e.take(end - s)));
        }
        out
    }

    /// Every extent, in order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u64, Extent)> + '_ {
        self.map.iter().map(|(&s, &e)| (s, e))
    }

    /// Removes `fb .. fb + len` from the map, splitting extents at the edges, and
    /// returns the removed pieces (whose blocks the caller must release).
    pub(crate) fn remove(&mut self, fb: u64, len: u64) -> Vec<(u64, Extent)> {
        let end = fb.saturating_add(len);
        let removed = self.pieces(fb, len);
        let mut starts: Vec<u64> = self.map.range(fb..end).map(|(&s, _)| s).collect();
        if let Some((&s, e)) = self.map.range(..fb).next_back()
            && s + e.len > fb
        {
            starts.push(s);
        }
        for s in starts {
            let Some(e) = self.map.remove(&s) else {
                continue;
            };
            if s < fb {
                self.map.insert(s, e.take(fb - s));
            }
            let e_end = s + e.len;
            if e_end > end {
                self.map.insert(end, e.skip(end - s));
            }
        }
        removed
    }

    /// Inserts `e` at `fb`; the range must be a hole (callers `remove` first). Merges
    /// with neighbours that continue it in both the file and the device.
    pub(crate) fn insert(&mut self, fb: u64, mut e: Extent) {
        debug_assert!(e.len > 0);
        debug_assert!(self.pieces(fb, e.len).is_empty(), "insert over blocks");
        let mut start = fb;
        if let Some((&ls, &l)) = self.map.range(..fb).next_back()
            && ls + l.len == fb
            && l.dev + l.len == e.dev
            && l.same_kind(&e)
        {
            self.map.remove(&ls);
            start = ls;
            e = Extent {
                dev: l.dev,
                len: l.len + e.len,
                ..e
            };
        }
        if let Some(&r) = self.map.get(&(start + e.len))
            && e.dev + e.len == r.dev
            && r.same_kind(&e)
        {
            self.map.remove(&(start + e.len));
            e.len += r.len;
        }
        self.map.insert(start, e);
    }

    /// Sets the state of whatever blocks `fb .. fb + len` has (holes stay holes).
    pub(crate) fn set_state(&mut self, fb: u64, len: u64, unwritten: bool, shared: bool) {
        for (s, e) in self.remove(fb, len) {
            self.insert(
                s,
                Extent {
                    unwritten,
                    shared,
                    ..e
                },
            );
        }
    }

    /// Blocks allocated to the file (mapped and unwritten).
    /// Number of extents.
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    pub(crate) fn blocks(&self) -> u64 {
        self.map.values().map(|e| e.len).sum()
    }

    /// Number of extents.
    pub(crate) fn count(&self) -> usize {
        self.map.len()
    }

    /// The extent that ends nearest before `fb` (for allocation goals).
    pub(crate) fn before(&self, fb: u64) -> Option<(u64, Extent)> {
        self.map.range(..fb).next_back().map(|(&s, &e)| (s, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapped(dev: u64, len: u64) -> Extent {
        Extent {
            dev,
            len,
            unwritten: false,
            shared: false,
        }
    }

    #[test]
    fn lookup_insert_merge_remove() {
        let mut m = ExtentMap::new();
        assert_eq!(m.lookup(5), Lookup::Hole { len: None });
        m.insert(10, mapped(100, 4));
        m.insert(14, mapped(104, 2)); // merges: contiguous in file and device
        assert_eq!(m.count(), 1);
        m.insert(16, mapped(200, 2)); // not contiguous on the device
        assert_eq!(m.count(), 2);
        assert_eq!(m.lookup(5), Lookup::Hole { len: Some(5) });
        assert_eq!(m.lookup(12), Lookup::Extent(mapped(102, 4)));
        assert_eq!(m.blocks(), 8);
        let removed = m.remove(12, 5);
        assert_eq!(removed, vec![(12, mapped(102, 4)), (16, mapped(200, 1))]);
        assert_eq!(
            m.iter().collect::<Vec<_>>(),
            vec![(10, mapped(100, 2)), (17, mapped(201, 1))]
        );
        m.set_state(0, 100, true, false);
        assert!(m.iter().all(|(_, e)| e.unwritten));
        m.insert(
            12,
            Extent {
                unwritten: true,
                ..mapped(102, 5)
            },
        );
        assert_eq!(
            m.count(),
            2,
            "merges left only; right is not device-contiguous"
        );
    }

    #[test]
    fn different_states_do_not_merge() {
        let mut m = ExtentMap::new();
        m.insert(0, mapped(10, 1));
        m.insert(
            1,
            Extent {
                unwritten: true,
                ..mapped(11, 1)
            },
        );
        m.insert(
            2,
            Extent {
                shared: true,
                ..mapped(12, 1)
            },
        );
        assert_eq!(m.count(), 3);
        m.set_state(0, 3, false, false);
        assert_eq!(m.iter().collect::<Vec<_>>(), vec![(0, mapped(10, 3))]);
    }
}
